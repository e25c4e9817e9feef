package tcpkeepalive;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static tcpkeepalive.TestSupport.assertKernel;
import static tcpkeepalive.TestSupport.expect;
import static tcpkeepalive.TestSupport.listen;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.SocketException;
import java.net.SocketImpl;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.net.SocketFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;

/** Every bad input gets its documented exception, naming the value and what is allowed, and changes nothing. */
@Timeout(120)
class ErrorsTest {
    private static <T extends Throwable> T assertMessage(Class<T> type, Executable call, String... parts) {
        T e = assertThrows(type, call);
        for (String p : parts) {
            assertTrue(e.getMessage() != null && e.getMessage().contains(p),
                    () -> "message \"" + e.getMessage() + "\" should contain \"" + p + "\"");
        }
        return e;
    }

    private static final String SECONDS = "allowed: 1 to 32767 seconds";

    @Test
    void outOfRangeValuesAreRefusedByTheBuilder() {
        assertMessage(IllegalArgumentException.class, () -> KeepAlive.builder().idle(Duration.ZERO).build(),
                "invalid idle", "\"0s\"", SECONDS);
        assertMessage(IllegalArgumentException.class, () -> KeepAlive.builder().idle(Duration.ofSeconds(32768)).build(),
                "invalid idle", "\"32768s\"", SECONDS);
        assertMessage(IllegalArgumentException.class, () -> KeepAlive.builder().idle(Duration.ofSeconds(-5)).build(),
                "invalid idle", "\"-5s\"", SECONDS);
        assertMessage(IllegalArgumentException.class,
                () -> KeepAlive.builder().idle(Duration.ofMillis(32767_001)).build(), "invalid idle", "\"32767001ms\"");
        assertMessage(IllegalArgumentException.class, () -> KeepAlive.builder().interval(Duration.ZERO).build(),
                "invalid interval", "\"0s\"", SECONDS);
        assertMessage(IllegalArgumentException.class,
                () -> KeepAlive.builder().interval(Duration.ofMillis(-1500)).build(), "invalid interval", "\"-1500ms\"");
        assertMessage(IllegalArgumentException.class, () -> KeepAlive.builder().count(0).build(),
                "invalid count", "\"0\"", "allowed: 1 to 127 probes");
        assertMessage(IllegalArgumentException.class, () -> KeepAlive.builder().count(128).build(),
                "invalid count", "\"128\"", "1 to 127");
        assertMessage(IllegalArgumentException.class, () -> KeepAlive.builder().count(-1).build(),
                "invalid count", "\"-1\"");
        assertMessage(IllegalArgumentException.class, () -> KeepAlive.builder().userTimeout(Duration.ZERO).build(),
                "invalid user_timeout", "\"0ms\"", "allowed: 1 to 2147483647 milliseconds");
        assertMessage(IllegalArgumentException.class,
                () -> KeepAlive.builder().userTimeout(Duration.ofMillis(2147483648L)).build(),
                "invalid user_timeout", "\"2147483648ms\"");
        assertMessage(IllegalArgumentException.class,
                () -> KeepAlive.builder().userTimeout(Duration.ofSeconds(Long.MAX_VALUE)).build(), "invalid user_timeout");
        assertMessage(IllegalArgumentException.class,
                () -> KeepAlive.builder().userTimeout(Duration.ofSeconds(-1)).build(), "invalid user_timeout", "\"-1s\"");
        // The order is the core's: idle first.
        assertMessage(IllegalArgumentException.class,
                () -> KeepAlive.builder().idle(Duration.ZERO).count(0).build(), "invalid idle");
        // Neither whole seconds nor whole milliseconds: exact nanoseconds, never a debug format.
        assertMessage(IllegalArgumentException.class,
                () -> KeepAlive.builder().idle(Duration.ofSeconds(32767).plusNanos(1_500_001)).build(),
                "invalid idle", "\"32767001500001ns\"");
        assertMessage(IllegalArgumentException.class,
                () -> KeepAlive.builder().userTimeout(Duration.ofSeconds(3_000_000).plusNanos(1)).build(),
                "invalid user_timeout", "\"3000000000000001ns\"");
    }

    @Test
    void theFallbackWritesEveryRefusedDurationAsTheCoreDoes() {
        long[][] cases = {{32767, 1_500_001}, {32768, 0}, {0, 0}, {-1, 999_999_999}, {-2, 500_000_000}, {32767, 1_000_000}};
        for (long[] c : cases) {
            IllegalArgumentException core = assertThrows(IllegalArgumentException.class,
                    () -> Native.validate(c[0], (int) c[1], 10, 0, 6, false, 0, 0));
            IllegalArgumentException fallback = assertThrows(IllegalArgumentException.class,
                    () -> Fallback.validate(c[0], (int) c[1], 10, 0, 6, false, 0, 0));
            assertEquals(core.getMessage(), fallback.getMessage(), "idle " + c[0] + "s " + c[1] + "ns");
            core = assertThrows(IllegalArgumentException.class,
                    () -> Native.validate(60, 0, 10, 0, 6, true, c[0] * 100_000, (int) c[1]));
            fallback = assertThrows(IllegalArgumentException.class,
                    () -> Fallback.validate(60, 0, 10, 0, 6, true, c[0] * 100_000, (int) c[1]));
            assertEquals(core.getMessage(), fallback.getMessage(), "user timeout " + c[0] * 100_000 + "s " + c[1] + "ns");
        }
    }

    @Test
    void nullsAreNullPointerExceptions() {
        assertThrows(NullPointerException.class, () -> KeepAlive.configure((Socket) null, 60, 10, 6));
        assertThrows(NullPointerException.class, () -> KeepAlive.configure((SocketChannel) null, 60, 10, 6));
        assertThrows(NullPointerException.class, () -> KeepAlive.configure((ServerSocket) null, 60, 10, 6));
        assertThrows(NullPointerException.class, () -> KeepAlive.defaults().apply((Socket) null));
        assertThrows(NullPointerException.class, () -> KeepAlive.defaults().apply((SocketChannel) null));
        assertThrows(NullPointerException.class, () -> KeepAlive.inspect((Socket) null));
        assertThrows(NullPointerException.class, () -> KeepAlive.inspect((SocketChannel) null));
        assertThrows(NullPointerException.class, () -> KeepAlive.builder().idle(null));
        assertThrows(NullPointerException.class, () -> KeepAlive.builder().interval(null));
        assertThrows(NullPointerException.class, () -> KeepAlive.builder().userTimeout(null));
        assertThrows(NullPointerException.class, () -> new KeepAliveSocketFactory((KeepAlive) null));
        assertThrows(NullPointerException.class, () -> new KeepAliveSocketFactory(null, KeepAlive.defaults()));
        assertThrows(NullPointerException.class, () -> new KeepAliveSSLSocketFactory(null, KeepAlive.defaults()));
        // The native side refuses null by itself too (no JVM crash).
        assertMessage(NullPointerException.class, () -> Native.apply(null, 60, 10, 6, 0, false), "socket is null");
        assertMessage(NullPointerException.class, () -> Native.inspect(null), "socket is null");
    }

    @Test
    void invalidValuesChangeNothing() throws Exception {
        try (ServerSocket server = listen(); Socket s = new Socket(server.getInetAddress(), server.getLocalPort());
                Socket peer = server.accept()) {
            KeepAlive.configure(s, 201, 41, 31);
            int[][] bad = {{0, 10, 6}, {32768, 10, 6}, {60, 0, 6}, {60, 32768, 6}, {60, 10, 0}, {60, 10, 128},
                {-1, 10, 6}, {60, -7, 6}, {60, 10, -2}};
            for (int[] b : bad) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> KeepAlive.configure(s, b[0], b[1], b[2]), Arrays.toString(b));
                assertTrue(e.getMessage().startsWith("invalid "), e.getMessage());
                assertTrue(e.getMessage().contains("allowed: 1 to "), e.getMessage());
                assertKernel(s, expect(201, 41, 31));
            }
            assertMessage(IllegalArgumentException.class, () -> KeepAlive.configure(s, 60, 10, -2), "\"-2\"");
        }
    }

    @Test
    void closedSocketsAreSocketExceptions() throws Exception {
        try (ServerSocket server = listen()) {
            Socket s = new Socket(server.getInetAddress(), server.getLocalPort());
            server.accept().close();
            s.close();
            assertMessage(SocketException.class, () -> KeepAlive.configure(s, 60, 10, 6), "closed");
            assertMessage(SocketException.class, () -> KeepAlive.inspect(s), "closed");
            Socket never = new Socket();
            never.close();
            assertMessage(SocketException.class, () -> KeepAlive.defaults().apply(never), "closed");

            SocketChannel ch = SocketChannel.open(TestSupport.address(server));
            server.accept().close();
            ch.close();
            assertMessage(SocketException.class, () -> KeepAlive.configure(ch, 60, 10, 6), "closed");
            assertMessage(SocketException.class, () -> KeepAlive.inspect(ch), "closed");
            assertMessage(SocketException.class, () -> KeepAlive.defaults().apply(ch.socket()), "closed");
        }
        ServerSocket closed = listen();
        closed.close();
        assertMessage(SocketException.class, () -> KeepAlive.configure(closed, 60, 10, 6), "closed");
    }

    @Test
    void unixDomainChannelIsNotTcp() throws Exception {
        Path dir = Files.createTempDirectory("tcp-keepalive-unix");
        Path path = dir.resolve("s.sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(path));
            try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                ch.connect(UnixDomainSocketAddress.of(path));
                assertMessage(SocketException.class, () -> KeepAlive.configure(ch, 60, 10, 6), "not TCP");
                assertMessage(SocketException.class, () -> KeepAlive.inspect(ch), "not TCP");
            }
        } finally {
            Files.deleteIfExists(path);
            Files.delete(dir);
        }
    }

    /** A SocketImpl of someone else's, keeping no descriptor where the JDK's do. */
    static final class ForeignImpl extends SocketImpl {
        @Override protected void create(boolean stream) {}
        @Override protected void connect(String host, int port) {}
        @Override protected void connect(InetAddress address, int port) {}
        @Override protected void connect(SocketAddress address, int timeout) {}
        @Override protected void bind(InetAddress host, int port) {}
        @Override protected void listen(int backlog) {}
        @Override protected void accept(SocketImpl s) {}
        @Override protected InputStream getInputStream() { return InputStream.nullInputStream(); }
        @Override protected OutputStream getOutputStream() { return OutputStream.nullOutputStream(); }
        @Override protected int available() { return 0; }
        @Override protected void close() {}
        @Override protected void sendUrgentData(int data) {}
        @Override public void setOption(int optID, Object value) {}
        @Override public Object getOption(int optID) { return Boolean.FALSE; }
    }

    static final class ForeignSocket extends Socket {
        ForeignSocket() throws SocketException {
            super(new ForeignImpl());
        }
    }

    @Test
    void unknownSocketClassesAreNamed() throws Exception {
        try (Socket foreign = new ForeignSocket()) {
            IllegalArgumentException e = assertMessage(IllegalArgumentException.class,
                    () -> KeepAlive.configure(foreign, 60, 10, 6), ForeignSocket.class.getName(),
                    ForeignImpl.class.getName());
            assertTrue(e.getMessage().contains("cannot find the file descriptor"), e.getMessage());
        }
        // An object that is no socket at all, straight to the native side.
        assertMessage(IllegalArgumentException.class, () -> Native.apply("a string", 60, 10, 6, 0, false),
                "java.lang.String", "cannot find the file descriptor");
        assertMessage(IllegalArgumentException.class, () -> Native.inspect(new Object()), "java.lang.Object");
    }

    /** A factory hands out no socket it could not configure: it closes it and throws. */
    @Test
    void factoryClosesASocketItCannotConfigure() throws Exception {
        ForeignSocket foreign = new ForeignSocket();
        SocketFactory delegate = new SocketFactory() {
            @Override public Socket createSocket() { return foreign; }
            @Override public Socket createSocket(String host, int port) { return foreign; }
            @Override public Socket createSocket(String host, int port, InetAddress la, int lp) { return foreign; }
            @Override public Socket createSocket(InetAddress host, int port) { return foreign; }
            @Override public Socket createSocket(InetAddress host, int port, InetAddress la, int lp) { return foreign; }
        };
        assertMessage(IllegalArgumentException.class,
                () -> new KeepAliveSocketFactory(delegate, KeepAlive.defaults()).createSocket(),
                ForeignSocket.class.getName());
        assertTrue(foreign.isClosed(), "the socket that could not be configured is closed");
    }

    @Test
    void fallbackUserTimeoutIsUnsupported() throws Exception {
        try (ServerSocket server = listen(); Socket s = new Socket(server.getInetAddress(), server.getLocalPort());
                Socket peer = server.accept()) {
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                    () -> Fallback.apply(s, 60, 10, 6, 1000));
            assertTrue(e.getMessage().contains("TCP_USER_TIMEOUT") && e.getMessage().contains("native library"),
                    e.getMessage());
            assertFalse(s.getKeepAlive(), "nothing was changed");
        }
    }

    @Test
    void invalidEnvironmentNamesTheVariable() throws Exception {
        Map<String, String[]> cases = new HashMap<>();
        cases.put("TCP_KEEPALIVE_IDLE", new String[] {"0", "\"0\"", "1 to 32767 seconds"});
        cases.put("TCP_KEEPALIVE_INTERVAL", new String[] {"ten", "\"ten\"", "90s, 2m"});
        cases.put("TCP_KEEPALIVE_COUNT", new String[] {"200", "\"200\"", "1 to 127"});
        cases.put("TCP_KEEPALIVE_USER_TIMEOUT", new String[] {"0ms", "\"0ms\"", "milliseconds"});
        cases.put("TCP_KEEPALIVE", new String[] {"maybe", "\"maybe\"", "on or off"});
        cases.put("KEEPIDLE", new String[] {"40000", "\"40000\"", "32767"});
        for (Map.Entry<String, String[]> c : cases.entrySet()) {
            String out = TestSupport.runJava(Collections.singletonMap(c.getKey(), c.getValue()[0]),
                    Collections.<String>emptyList(), EnvProbe.class);
            assertTrue(out.contains("IllegalArgumentException"), c.getKey() + ": " + out);
            assertTrue(out.contains("invalid " + c.getKey() + ":"), c.getKey() + ": " + out);
            for (int i = 1; i < c.getValue().length; i++) {
                assertTrue(out.contains(c.getValue()[i]), c.getKey() + " should mention " + c.getValue()[i] + ": " + out);
            }
            // The fallback reads the same variables with the same words.
            Map<String, String> env = Collections.singletonMap(c.getKey(), c.getValue()[0]);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Fallback.fromEnv(env));
            assertTrue(out.contains(e.getMessage()), "fallback says \"" + e.getMessage() + "\", native: " + out);
        }
    }

    @Test
    void environmentIsRead() throws Exception {
        List<String> none = Collections.<String>emptyList();
        assertEquals("native=true empty", TestSupport.runJava(Collections.<String, String>emptyMap(), none, EnvProbe.class));
        assertEquals("native=true empty", TestSupport.runJava(Collections.singletonMap("TCP_KEEPALIVE", "off"), none,
                EnvProbe.class));
        Map<String, String> env = new HashMap<>();
        env.put("TCP_KEEPALIVE_IDLE", "2m");
        env.put("KEEPINTVL", "7");
        env.put("TCP_KEEPALIVE_USER_TIMEOUT", "1500ms");
        assertEquals("native=true idle 120s, interval 7s, count 6, user timeout 1500ms (dead peer noticed within 162s)",
                TestSupport.runJava(env, none, EnvProbe.class));
        assertEquals("native=true idle 60s, interval 10s, count 6 (dead peer noticed within 120s)",
                TestSupport.runJava(Collections.singletonMap("TCP_KEEPALIVE", "on"), none, EnvProbe.class));
        // The fallback parser agrees.
        assertEquals(Arrays.toString(new int[] {2, 120, 7, 6, 1500}), Arrays.toString(Fallback.fromEnv(env)));
        assertEquals(Arrays.toString(new int[] {1, 0, 0, 0, 0}),
                Arrays.toString(Fallback.fromEnv(Collections.singletonMap("KEEPALIVE", "off"))));
        assertEquals(0, Fallback.fromEnv(Collections.singletonMap("TCP_KEEPALIVE_IDLE", " "))[0], "empty is unset");
    }

    /** Sanity: the fd handed to the kernel is one the JVM owns (not a stale number). */
    @Test
    void descriptorIsTheSocketsOwn() throws Exception {
        try (ServerSocket server = listen(); Socket s = new Socket(server.getInetAddress(), server.getLocalPort());
                Socket peer = server.accept()) {
            int fd = Native.descriptor(s);
            Path link = Path.of("/proc/self/fd/" + fd);
            assertTrue(Files.readSymbolicLink(link).toString().startsWith("socket:"), link.toString());
        }
    }
}
