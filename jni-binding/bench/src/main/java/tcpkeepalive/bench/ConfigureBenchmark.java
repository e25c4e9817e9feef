package tcpkeepalive.bench;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.concurrent.TimeUnit;

import jdk.net.ExtendedSocketOptions;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import tcpkeepalive.KeepAlive;

/**
 * The cost of setting keep-alive on one connected loopback socket: tcp-keepalive's
 * {@code KeepAlive.configure} (JNI into the Rust core) against what a JDK 11+ program writes by
 * hand ({@code setKeepAlive(true)} and three {@code setOption(ExtendedSocketOptions...)}).
 * Both write the same four options with the same values on the same socket, so the ratio of the
 * two scores is the price of the binding. {@code applyValue} is the immutable-value path
 * ({@code KeepAlive#apply}), which also snapshots the old values to restore them on failure.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 3)
public class ConfigureBenchmark {
    private static final int IDLE = 60;
    private static final int INTERVAL = 10;
    private static final int COUNT = 6;

    private ServerSocket server;
    private Socket client;
    private Socket accepted;
    private KeepAlive value;

    @Setup(Level.Trial)
    public void connect() throws IOException {
        InetAddress loopback = InetAddress.getLoopbackAddress();
        server = new ServerSocket(0, 1, loopback);
        client = new Socket();
        client.connect(new InetSocketAddress(loopback, server.getLocalPort()), 5000);
        accepted = server.accept();
        value = KeepAlive.builder()
                .idle(java.time.Duration.ofSeconds(IDLE))
                .interval(java.time.Duration.ofSeconds(INTERVAL))
                .count(COUNT)
                .build();
        // Check once, outside the measurement, that both paths really write what they claim.
        KeepAlive.configure(client, IDLE + 1, INTERVAL + 1, COUNT + 1);
        check(IDLE + 1, INTERVAL + 1, COUNT + 1);
        jdkSetOptions();
        check(IDLE, INTERVAL, COUNT);
    }

    private void check(int idle, int interval, int count) throws IOException {
        if (!client.getKeepAlive()
                || client.getOption(ExtendedSocketOptions.TCP_KEEPIDLE) != idle
                || client.getOption(ExtendedSocketOptions.TCP_KEEPINTERVAL) != interval
                || client.getOption(ExtendedSocketOptions.TCP_KEEPCOUNT) != count) {
            throw new IllegalStateException("the socket does not hold " + idle + "/" + interval + "/" + count);
        }
    }

    @TearDown(Level.Trial)
    public void close() throws IOException {
        accepted.close();
        client.close();
        server.close();
    }

    /** tcp-keepalive: one JNI call, four setsockopt in the core. */
    @Benchmark
    public void keepAliveConfigure() throws IOException {
        KeepAlive.configure(client, IDLE, INTERVAL, COUNT);
    }

    /** The JDK by hand: four calls, each one setsockopt. */
    @Benchmark
    public void jdkSetOptions() throws IOException {
        client.setKeepAlive(true);
        client.setOption(ExtendedSocketOptions.TCP_KEEPIDLE, IDLE);
        client.setOption(ExtendedSocketOptions.TCP_KEEPINTERVAL, INTERVAL);
        client.setOption(ExtendedSocketOptions.TCP_KEEPCOUNT, COUNT);
    }

    /** The immutable value's apply: all or nothing, reads the old values first. */
    @Benchmark
    public void keepAliveApplyValue() throws IOException {
        value.apply(client);
    }
}
