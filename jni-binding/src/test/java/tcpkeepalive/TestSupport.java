package tcpkeepalive;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketOption;
import java.net.StandardSocketOptions;
import java.nio.channels.NetworkChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import jdk.net.ExtendedSocketOptions;

/** Real peers and kernel read-backs shared by the tests. */
final class TestSupport {
    static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();

    private TestSupport() {}

    /** Expected values: idle s, interval s, count, user timeout ms (0 = unset). */
    static final class Expect {
        final int idle;
        final int interval;
        final int count;
        final int userTimeoutMs;

        Expect(int idle, int interval, int count, int userTimeoutMs) {
            this.idle = idle;
            this.interval = interval;
            this.count = count;
            this.userTimeoutMs = userTimeoutMs;
        }
    }

    static Expect expect(int idle, int interval, int count) {
        return new Expect(idle, interval, count, 0);
    }

    static Expect expect(int idle, int interval, int count, int userTimeoutMs) {
        return new Expect(idle, interval, count, userTimeoutMs);
    }

    /** The option as the JDK reads it from the kernel (an independent path from tcp-keepalive's). */
    static <T> T jdkOption(Object socket, SocketOption<T> option) throws IOException {
        if (socket instanceof Socket) return ((Socket) socket).getOption(option);
        if (socket instanceof ServerSocket) return ((ServerSocket) socket).getOption(option);
        return ((NetworkChannel) socket).getOption(option);
    }

    /**
     * Checks every option twice: through the JDK's own getsockopt (SO_KEEPALIVE and
     * jdk.net.ExtendedSocketOptions) and through KeepAlive.inspect (the core's getsockopt, the only
     * way to read TCP_USER_TIMEOUT from Java).
     */
    static void assertKernel(Object socket, Expect e) throws IOException {
        boolean listening = socket instanceof ServerSocket;
        if (!listening) {
            // The JDK reads no SO_KEEPALIVE of a listening socket; inspect below does.
            assertEquals(Boolean.TRUE, jdkOption(socket, StandardSocketOptions.SO_KEEPALIVE), "SO_KEEPALIVE");
        }
        assertEquals(e.idle, (int) jdkOption(socket, ExtendedSocketOptions.TCP_KEEPIDLE), "TCP_KEEPIDLE");
        assertEquals(e.interval, (int) jdkOption(socket, ExtendedSocketOptions.TCP_KEEPINTERVAL), "TCP_KEEPINTVL");
        assertEquals(e.count, (int) jdkOption(socket, ExtendedSocketOptions.TCP_KEEPCOUNT), "TCP_KEEPCNT");
        KeepAlive.Settings s = inspect(socket);
        assertTrue(s.enabled(), "inspect: enabled");
        assertEquals(e.idle, s.idle().getSeconds(), "inspect: idle");
        assertEquals(e.interval, s.interval().getSeconds(), "inspect: interval");
        assertEquals(e.count, s.count(), "inspect: count");
        assertEquals(e.userTimeoutMs, s.userTimeout().map(d -> (int) d.toMillis()).orElse(0), "inspect: user timeout");
    }

    static KeepAlive.Settings inspect(Object socket) throws IOException {
        if (socket instanceof Socket) return KeepAlive.inspect((Socket) socket);
        if (socket instanceof ServerSocket) return KeepAlive.inspect((ServerSocket) socket);
        return KeepAlive.inspect((java.nio.channels.SocketChannel) socket);
    }

    /** A listening loopback socket. */
    static ServerSocket listen() throws IOException {
        ServerSocket s = new ServerSocket(0, 50, LOOPBACK);
        s.setSoTimeout(10_000);
        return s;
    }

    /** Keeps SOCKS5 connections working: greeting, CONNECT, then bytes both ways. */
    static final class Socks5Server implements AutoCloseable {
        final ServerSocket server;
        final AtomicInteger connections = new AtomicInteger();
        private final List<Socket> open = new ArrayList<>();
        private final Thread acceptor;

        Socks5Server() throws IOException {
            server = listen();
            server.setSoTimeout(0);
            acceptor = new Thread(this::run, "socks5");
            acceptor.setDaemon(true);
            acceptor.start();
        }

        int port() {
            return server.getLocalPort();
        }

        private void run() {
            while (!server.isClosed()) {
                try {
                    Socket client = server.accept();
                    connections.incrementAndGet();
                    synchronized (open) {
                        open.add(client);
                    }
                    Thread t = new Thread(() -> serve(client), "socks5-conn");
                    t.setDaemon(true);
                    t.start();
                } catch (IOException e) {
                    return;
                }
            }
        }

        private void serve(Socket client) {
            try {
                client.setSoTimeout(10_000);
                DataInputStream in = new DataInputStream(client.getInputStream());
                OutputStream out = client.getOutputStream();
                if (in.readUnsignedByte() != 5) throw new IOException("not SOCKS5");
                int methods = in.readUnsignedByte();
                in.readFully(new byte[methods]);
                out.write(new byte[] {5, 0});
                byte[] head = new byte[4];
                in.readFully(head);
                if (head[1] != 1) throw new IOException("only CONNECT");
                InetAddress addr;
                if (head[3] == 1) {
                    byte[] a = new byte[4];
                    in.readFully(a);
                    addr = InetAddress.getByAddress(a);
                } else if (head[3] == 4) {
                    byte[] a = new byte[16];
                    in.readFully(a);
                    addr = InetAddress.getByAddress(a);
                } else {
                    byte[] name = new byte[in.readUnsignedByte()];
                    in.readFully(name);
                    addr = InetAddress.getByName(new String(name, StandardCharsets.US_ASCII));
                }
                int port = in.readUnsignedShort();
                if (!addr.isLoopbackAddress()) throw new IOException("loopback only: " + addr);
                Socket target = new Socket(addr, port);
                synchronized (open) {
                    open.add(target);
                }
                out.write(new byte[] {5, 0, 0, 1, 0, 0, 0, 0, 0, 0});
                client.setSoTimeout(0);
                pump(client.getInputStream(), target.getOutputStream());
                pump(target.getInputStream(), out);
            } catch (IOException e) {
                try {
                    client.close();
                } catch (IOException ignored) {
                    // closing after a failure
                }
            }
        }

        private static void pump(InputStream in, OutputStream out) {
            Thread t = new Thread(() -> {
                byte[] buf = new byte[8192];
                try {
                    for (int n; (n = in.read(buf)) > 0; ) out.write(buf, 0, n);
                } catch (IOException ignored) {
                    // the peer went away
                }
            }, "socks5-pump");
            t.setDaemon(true);
            t.start();
        }

        @Override
        public void close() throws IOException {
            server.close();
            synchronized (open) {
                for (Socket s : open) s.close();
            }
        }
    }

    /** A self-signed certificate for 127.0.0.1 and localhost, made by the JDK's keytool. */
    static final class Tls {
        final SSLContext server;
        final SSLContext client;
        final javax.net.ssl.X509TrustManager trustManager;

        private Tls(SSLContext server, SSLContext client, javax.net.ssl.X509TrustManager tm) {
            this.server = server;
            this.client = client;
            this.trustManager = tm;
        }

        private static Tls instance;

        static synchronized Tls get() throws Exception {
            if (instance == null) instance = create();
            return instance;
        }

        private static Tls create() throws Exception {
            Path dir = Files.createTempDirectory("tcp-keepalive-tls");
            File ks = dir.resolve("server.p12").toFile();
            char[] pass = "changeit".toCharArray();
            String keytool = System.getProperty("java.home") + File.separator + "bin" + File.separator + "keytool";
            Process p = new ProcessBuilder(keytool, "-genkeypair", "-alias", "server", "-keyalg", "EC",
                    "-groupname", "secp256r1", "-dname", "CN=localhost", "-ext", "san=ip:127.0.0.1,dns:localhost",
                    "-validity", "2", "-storetype", "PKCS12", "-keystore", ks.getPath(), "-storepass", "changeit")
                    .redirectErrorStream(true).start();
            ByteArrayOutputStream output = new ByteArrayOutputStream();
            p.getInputStream().transferTo(output);
            if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new IllegalStateException("keytool failed: " + output);
            }
            KeyStore store = KeyStore.getInstance("PKCS12");
            try (InputStream in = Files.newInputStream(ks.toPath())) {
                store.load(in, pass);
            }
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(store, pass);
            SSLContext server = SSLContext.getInstance("TLS");
            server.init(kmf.getKeyManagers(), null, null);
            KeyStore trust = KeyStore.getInstance("PKCS12");
            trust.load(null, null);
            trust.setCertificateEntry("server", store.getCertificate("server"));
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(trust);
            SSLContext client = SSLContext.getInstance("TLS");
            client.init(null, tmf.getTrustManagers(), null);
            Files.delete(ks.toPath());
            Files.delete(dir);
            return new Tls(server, client, (javax.net.ssl.X509TrustManager) tmf.getTrustManagers()[0]);
        }
    }

    /** Runs {@code main} of {@code mainClass} in a new JVM of the same Java with this classpath. */
    static String runJava(Map<String, String> env, List<String> jvmArgs, Class<?> mainClass, String... args)
            throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(System.getProperty("java.home") + File.separator + "bin" + File.separator + "java");
        cmd.add("--enable-native-access=ALL-UNNAMED"); // JDK 24+ warns on System.load without it
        cmd.addAll(jvmArgs);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(mainClass.getName());
        for (String a : args) cmd.add(a);
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        // Every name of the environment vocabulary (ours, the classic, msantos's and libdontdie's).
        pb.environment().keySet().removeIf(name -> name.matches("(TCP_KEEP|TCP_USER_TIMEOUT|KEEP|DD_).*"));
        pb.environment().putAll(env);
        Process p = pb.start();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Thread reader = new Thread(() -> {
            try {
                p.getInputStream().transferTo(out);
            } catch (IOException ignored) {
                // process ended
            }
        });
        reader.start();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("child JVM did not finish in 60 s: " + cmd);
        }
        reader.join(10_000);
        return out.toString(StandardCharsets.UTF_8).trim();
    }

    static InetSocketAddress address(ServerSocket s) {
        return new InetSocketAddress(s.getInetAddress(), s.getLocalPort());
    }
}
