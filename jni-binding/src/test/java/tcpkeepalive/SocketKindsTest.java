package tcpkeepalive;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static tcpkeepalive.TestSupport.address;
import static tcpkeepalive.TestSupport.assertKernel;
import static tcpkeepalive.TestSupport.expect;
import static tcpkeepalive.TestSupport.listen;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Every kind of JVM socket, each option set to a distinct value and read back from the kernel. */
@Timeout(60)
class SocketKindsTest {
    @BeforeAll
    static void nativeLoaded() {
        assertTrue(KeepAlive.isNativeLoaded(), () -> KeepAlive.nativeLoadError().orElse(""));
        System.out.println("java.version=" + System.getProperty("java.version"));
    }

    private static KeepAlive ka(int idle, int interval, int count, int userTimeoutMs) {
        KeepAlive.Builder b = KeepAlive.builder().idle(Duration.ofSeconds(idle))
                .interval(Duration.ofSeconds(interval)).count(count);
        if (userTimeoutMs != 0) b.userTimeout(Duration.ofMillis(userTimeoutMs));
        return b.build();
    }

    @Test
    void connectedSocket() throws Exception {
        try (ServerSocket server = listen(); Socket s = new Socket(server.getInetAddress(), server.getLocalPort());
                Socket peer = server.accept()) {
            assertFalse(s.getKeepAlive());
            KeepAlive.configure(s, 101, 17, 5);
            assertKernel(s, expect(101, 17, 5));
            ka(102, 18, 7, 4321).apply(s);
            assertKernel(s, expect(102, 18, 7, 4321));
            assertNotEquals(KeepAlive.inspect(s), KeepAlive.inspect(peer), "the peer is a different socket");
        }
    }

    @Test
    void unconnectedSocketKeepsItsSettingsThroughConnect() throws Exception {
        try (ServerSocket server = listen(); Socket s = new Socket()) {
            ka(103, 19, 8, 2500).apply(s);
            assertKernel(s, expect(103, 19, 8, 2500));
            s.connect(address(server), 10_000);
            try (Socket peer = server.accept()) {
                assertKernel(s, expect(103, 19, 8, 2500));
            }
        }
    }

    @Test
    void listeningSocketIsInheritedByAcceptedSockets() throws Exception {
        try (ServerSocket server = new ServerSocket()) {
            KeepAlive.configure(server, 104, 21, 9);
            server.bind(new InetSocketAddress(TestSupport.LOOPBACK, 0));
            server.setSoTimeout(10_000);
            assertKernel(server, expect(104, 21, 9));
            try (Socket client = new Socket(server.getInetAddress(), server.getLocalPort());
                    Socket accepted = server.accept()) {
                assertKernel(accepted, expect(104, 21, 9));
                assertFalse(client.getKeepAlive(), "the client side was not configured");
            }
        }
    }

    @Test
    void acceptedSocket() throws Exception {
        try (ServerSocket server = listen(); Socket client = new Socket(server.getInetAddress(), server.getLocalPort());
                Socket accepted = server.accept()) {
            ka(105, 22, 10, 6000).apply(accepted);
            assertKernel(accepted, expect(105, 22, 10, 6000));
            assertFalse(client.getKeepAlive());
        }
    }

    @Test
    void socksProxySocketConnectedThroughARealSocksServer() throws Exception {
        try (TestSupport.Socks5Server socks = new TestSupport.Socks5Server(); ServerSocket target = listen()) {
            Proxy proxy = new Proxy(Proxy.Type.SOCKS, new InetSocketAddress(TestSupport.LOOPBACK, socks.port()));
            try (Socket s = new Socket(proxy)) {
                ka(106, 23, 11, 0).apply(s); // unconnected: the SocksSocketImpl's delegate gets a descriptor
                assertKernel(s, expect(106, 23, 11));
                s.connect(address(target), 10_000);
                try (Socket peer = target.accept()) {
                    s.getOutputStream().write('x');
                    assertEquals('x', peer.getInputStream().read(), "bytes went through the proxy");
                    assertEquals(1, socks.connections.get(), "the connection went through the SOCKS server");
                    assertKernel(s, expect(106, 23, 11));
                    KeepAlive.configure(s, 107, 24, 12);
                    assertKernel(s, expect(107, 24, 12));
                }
            }
        }
    }

    @Test
    void httpProxySocketBeforeConnect() throws Exception {
        // new Socket(Proxy HTTP) is an HttpConnectSocketImpl around the platform impl (JDK 13+).
        Proxy proxy = new Proxy(Proxy.Type.HTTP, new InetSocketAddress(TestSupport.LOOPBACK, 3128));
        try (Socket s = new Socket(proxy)) {
            ka(119, 37, 24, 3000).apply(s);
            assertKernel(s, expect(119, 37, 24, 3000));
        }
    }

    @Test
    void socketChannelConnectedAndUnconnected() throws Exception {
        try (ServerSocket server = listen(); SocketChannel ch = SocketChannel.open()) {
            KeepAlive.configure(ch, 108, 25, 13);
            assertKernel(ch, expect(108, 25, 13));
            ch.connect(address(server));
            try (Socket peer = server.accept()) {
                ka(109, 26, 14, 7000).apply(ch);
                assertKernel(ch, expect(109, 26, 14, 7000));
            }
        }
    }

    @Test
    void channelSocketAdaptor() throws Exception {
        // What Pekko/Akka SocketOptionV2.afterConnect receives: the channel's socket() adaptor.
        try (ServerSocket server = listen(); SocketChannel ch = SocketChannel.open(address(server));
                Socket peer = server.accept()) {
            Socket adaptor = ch.socket();
            assertNotEquals(Socket.class, adaptor.getClass());
            ka(110, 27, 15, 8000).apply(adaptor);
            assertKernel(adaptor, expect(110, 27, 15, 8000));
            assertKernel(ch, expect(110, 27, 15, 8000));
        }
    }

    @Test
    void serverSocketChannelAndAcceptedChannel() throws Exception {
        try (ServerSocketChannel ssc = ServerSocketChannel.open()) {
            ssc.bind(new InetSocketAddress(TestSupport.LOOPBACK, 0));
            KeepAlive.configure(ssc.socket(), 111, 28, 16);
            assertKernel(ssc.socket(), expect(111, 28, 16));
            try (SocketChannel client = SocketChannel.open(ssc.getLocalAddress()); SocketChannel accepted = ssc.accept()) {
                assertKernel(accepted, expect(111, 28, 16));
                ka(112, 29, 17, 0).apply(accepted);
                assertKernel(accepted, expect(112, 29, 17));
            }
        }
    }

    @Test
    void ipv6Loopback() throws Exception {
        InetAddress v6 = InetAddress.getByName("::1");
        ServerSocket server;
        try {
            server = new ServerSocket(0, 10, v6);
        } catch (IOException noIpv6) {
            org.junit.jupiter.api.Assumptions.abort("no IPv6 loopback here: " + noIpv6);
            return;
        }
        try (ServerSocket srv = server; Socket s = new Socket(v6, srv.getLocalPort()); Socket peer = srv.accept()) {
            assertTrue(s.getInetAddress() instanceof Inet6Address);
            ka(113, 31, 18, 9000).apply(s);
            assertKernel(s, expect(113, 31, 18, 9000));
        }
    }

    /** A TLS echo peer on loopback: accepts one connection, handshakes, echoes one byte. */
    private static Thread tlsEcho(SSLServerSocket server) {
        Thread t = new Thread(() -> {
            try (Socket c = server.accept()) {
                InputStream in = c.getInputStream();
                OutputStream out = c.getOutputStream();
                out.write(in.read());
                out.flush();
                in.read();
            } catch (IOException ignored) {
                // the test reports what matters
            }
        }, "tls-echo");
        t.setDaemon(true);
        t.start();
        return t;
    }

    @Test
    void sslSocketLayeredOverAPlainSocket() throws Exception {
        TestSupport.Tls tls = TestSupport.Tls.get();
        try (SSLServerSocket server = (SSLServerSocket) tls.server.getServerSocketFactory()
                .createServerSocket(0, 10, TestSupport.LOOPBACK)) {
            server.setSoTimeout(10_000);
            tlsEcho(server);
            try (Socket plain = new Socket(server.getInetAddress(), server.getLocalPort());
                    SSLSocket ssl = (SSLSocket) tls.client.getSocketFactory()
                            .createSocket(plain, "127.0.0.1", server.getLocalPort(), true)) {
                ka(114, 32, 19, 0).apply(ssl); // configures the plain socket underneath
                assertKernel(plain, expect(114, 32, 19));
                assertKernel(ssl, expect(114, 32, 19));
                ssl.getOutputStream().write(42);
                assertEquals(42, ssl.getInputStream().read(), "TLS works over the configured socket");
                KeepAlive.configure(ssl, 115, 33, 20);
                assertKernel(plain, expect(115, 33, 20));
            }
        }
    }

    @Test
    void sslSocketCreatedDirectlyConnectedAndUnconnected() throws Exception {
        TestSupport.Tls tls = TestSupport.Tls.get();
        SSLSocketFactory factory = tls.client.getSocketFactory();
        try (SSLServerSocket server = (SSLServerSocket) tls.server.getServerSocketFactory()
                .createServerSocket(0, 10, TestSupport.LOOPBACK)) {
            server.setSoTimeout(10_000);
            tlsEcho(server);
            try (SSLSocket direct = (SSLSocket) factory.createSocket(server.getInetAddress(), server.getLocalPort())) {
                ka(116, 34, 21, 11000).apply(direct);
                assertKernel(direct, expect(116, 34, 21, 11000));
                direct.getOutputStream().write(7);
                assertEquals(7, direct.getInputStream().read());
            }
            tlsEcho(server);
            try (SSLSocket unconnected = (SSLSocket) factory.createSocket()) {
                KeepAlive.configure(unconnected, 117, 35, 22);
                assertKernel(unconnected, expect(117, 35, 22));
                unconnected.connect(new InetSocketAddress(server.getInetAddress(), server.getLocalPort()), 10_000);
                unconnected.getOutputStream().write(8);
                assertEquals(8, unconnected.getInputStream().read());
                assertKernel(unconnected, expect(117, 35, 22));
            }
        }
    }

    @Test
    void defaultsAndDetectionBound() throws Exception {
        KeepAlive d = KeepAlive.defaults();
        assertEquals(Duration.ofSeconds(60), d.idle());
        assertEquals(Duration.ofSeconds(10), d.interval());
        assertEquals(6, d.count());
        assertFalse(d.userTimeout().isPresent());
        assertEquals(Duration.ofSeconds(120), d.detectionBound());
        assertEquals(d, KeepAlive.builder().build());
        assertEquals("idle 60s, interval 10s, count 6 (dead peer noticed within 120s)", d.toString());
        KeepAlive k = ka(118, 36, 23, 1500);
        assertEquals(Duration.ofSeconds(118 + 36 * 23), k.detectionBound());
        assertEquals("idle 118s, interval 36s, count 23, user timeout 1500ms (dead peer noticed within 946s)",
                k.toString());
        // Finer durations round up, never down to zero.
        KeepAlive fine = KeepAlive.builder().idle(Duration.ofMillis(1)).interval(Duration.ofMillis(1500))
                .userTimeout(Duration.ofNanos(1)).build();
        assertEquals(Duration.ofSeconds(1), fine.idle());
        assertEquals(Duration.ofSeconds(2), fine.interval());
        assertEquals(Duration.ofMillis(1), fine.userTimeout().get());
        try (ServerSocket server = listen(); Socket s = new Socket(server.getInetAddress(), server.getLocalPort());
                Socket peer = server.accept()) {
            d.apply(s);
            assertKernel(s, expect(60, 10, 6));
            assertEquals("keep-alive on, idle 60s, interval 10s, count 6, user timeout unset",
                    KeepAlive.inspect(s).toString());
        }
    }

    @Test
    void limitsAreAccepted() throws Exception {
        try (ServerSocket server = listen(); Socket s = new Socket(server.getInetAddress(), server.getLocalPort());
                Socket peer = server.accept()) {
            ka(32767, 32767, 127, Integer.MAX_VALUE).apply(s);
            assertKernel(s, expect(32767, 32767, 127, Integer.MAX_VALUE));
            ka(1, 1, 1, 1).apply(s);
            assertKernel(s, expect(1, 1, 1, 1));
        }
    }

    @Test
    void nativeDescriptorMatchesForEveryView() throws Exception {
        try (ServerSocketChannel ssc = ServerSocketChannel.open()) {
            ssc.bind(new InetSocketAddress(TestSupport.LOOPBACK, 0));
            try (SocketChannel ch = SocketChannel.open(ssc.getLocalAddress()); SocketChannel acc = ssc.accept()) {
                int fd = Native.descriptor(ch);
                assertTrue(fd > 2, "a real descriptor: " + fd);
                assertEquals(fd, Native.descriptor(ch.socket()));
                assertNotEquals(fd, Native.descriptor(acc));
                assertNotEquals(fd, Native.descriptor(ssc));
                assertEquals(Native.descriptor(ssc), Native.descriptor(ssc.socket()));
            }
        }
    }

    @Test
    void manyThreadsAtOnce() throws Exception {
        int threads = 8;
        int perThread = 25;
        try (ServerSocket server = new ServerSocket(0, threads * perThread, TestSupport.LOOPBACK)) {
            java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(threads);
            try {
                java.util.List<java.util.concurrent.Future<Integer>> results = new java.util.ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    final int idle = 600 + t;
                    results.add(pool.submit(() -> {
                        KeepAliveSocketFactory factory = new KeepAliveSocketFactory(ka(idle, 40 + idle % 7, 1 + idle % 100, 0));
                        int checked = 0;
                        for (int i = 0; i < perThread; i++) {
                            try (Socket s = factory.createSocket(server.getInetAddress(), server.getLocalPort())) {
                                assertKernel(s, expect(idle, 40 + idle % 7, 1 + idle % 100));
                                checked++;
                            }
                        }
                        return checked;
                    }));
                }
                int total = 0;
                for (java.util.concurrent.Future<Integer> r : results) {
                    total += r.get(50, java.util.concurrent.TimeUnit.SECONDS);
                }
                assertEquals(threads * perThread, total);
            } finally {
                pool.shutdownNow();
            }
        }
    }

    @Test
    void fastPathsAgreeWithTheGeneralWalk() throws Exception {
        try (ServerSocket server = listen(); Socket plain = new Socket(server.getInetAddress(), server.getLocalPort());
                Socket accepted = server.accept(); SocketChannel ch = SocketChannel.open(address(server));
                Socket acceptedToo = server.accept()) {
            Object[] fast = {plain, accepted, ch, ch.socket()};
            int[] kinds = {1, 1, 2, 3};
            for (int i = 0; i < fast.length; i++) {
                assertEquals(kinds[i], Native.kind(fast[i]), fast[i].getClass().getName());
                assertEquals(Native.descriptorGeneral(fast[i]), Native.descriptor(fast[i]), fast[i].getClass().getName());
            }
            assertEquals(0, Native.kind(server));
            assertEquals(0, Native.kind("not a socket"));
        }
    }
}
