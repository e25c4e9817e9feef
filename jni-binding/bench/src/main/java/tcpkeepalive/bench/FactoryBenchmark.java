package tcpkeepalive.bench;

import java.io.IOException;
import java.net.Socket;
import java.util.concurrent.TimeUnit;

import javax.net.SocketFactory;

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
import org.openjdk.jmh.annotations.Warmup;
import tcpkeepalive.KeepAlive;
import tcpkeepalive.KeepAliveSocketFactory;

/**
 * The path OkHttp takes: {@code createSocket()} on a {@link KeepAliveSocketFactory} (a new,
 * unconnected socket, configured before it is handed out) against the JDK by hand on a
 * {@code new Socket()}. Both create the descriptor, write the four options and close it again.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 3)
public class FactoryBenchmark {
    private static final int IDLE = 60;
    private static final int INTERVAL = 10;
    private static final int COUNT = 6;

    private SocketFactory factory;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        factory = new KeepAliveSocketFactory(KeepAlive.builder()
                .idle(java.time.Duration.ofSeconds(IDLE))
                .interval(java.time.Duration.ofSeconds(INTERVAL))
                .count(COUNT)
                .build());
        try (Socket s = factory.createSocket()) {
            if (!s.getKeepAlive() || s.getOption(ExtendedSocketOptions.TCP_KEEPIDLE) != IDLE
                    || s.getOption(ExtendedSocketOptions.TCP_KEEPINTERVAL) != INTERVAL
                    || s.getOption(ExtendedSocketOptions.TCP_KEEPCOUNT) != COUNT) {
                throw new IllegalStateException("the factory's socket is not configured");
            }
        }
    }

    /** tcp-keepalive's factory: new socket, descriptor, four options (no snapshot: it is new). */
    @Benchmark
    public void factoryCreateSocket() throws IOException {
        factory.createSocket().close();
    }

    /** The JDK by hand on a new socket: the first call creates the descriptor. */
    @Benchmark
    public void jdkNewSocketSetOptions() throws IOException {
        Socket s = new Socket();
        s.setKeepAlive(true);
        s.setOption(ExtendedSocketOptions.TCP_KEEPIDLE, IDLE);
        s.setOption(ExtendedSocketOptions.TCP_KEEPINTERVAL, INTERVAL);
        s.setOption(ExtendedSocketOptions.TCP_KEEPCOUNT, COUNT);
        s.close();
    }
}
