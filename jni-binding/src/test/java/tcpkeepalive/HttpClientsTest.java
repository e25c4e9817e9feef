package tcpkeepalive;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static tcpkeepalive.TestSupport.assertKernel;
import static tcpkeepalive.TestSupport.expect;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.net.Socket;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import javax.net.SocketFactory;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;
import okhttp3.OkHttpClient;
import okhttp3.Request;
import okhttp3.Response;
import java.net.SocketException;
import java.nio.channels.SocketChannel;
import java.util.concurrent.TimeUnit;
import org.apache.hc.client5.http.async.methods.SimpleHttpResponse;
import org.apache.hc.client5.http.async.methods.SimpleRequestBuilder;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.impl.async.CloseableHttpAsyncClient;
import org.apache.hc.client5.http.impl.async.HttpAsyncClients;
import org.apache.hc.core5.io.CloseMode;
import org.apache.hc.core5.reactor.IOReactorConfig;
import org.apache.hc.core5.reactor.IOSession;
import org.apache.hc.core5.reactor.IOSessionListener;
import org.apache.hc.client5.http.impl.classic.CloseableHttpClient;
import org.apache.hc.client5.http.impl.classic.HttpClients;
import org.apache.hc.client5.http.impl.io.PoolingHttpClientConnectionManager;
import org.apache.hc.client5.http.impl.io.DefaultHttpClientConnectionOperator;
import org.apache.hc.client5.http.io.DetachedSocketFactory;
import org.apache.hc.client5.http.io.HttpClientConnectionOperator;
import org.apache.hc.client5.http.ssl.DefaultClientTlsStrategy;
import org.apache.hc.client5.http.ssl.TlsSocketStrategy;
import org.apache.hc.core5.http.config.RegistryBuilder;
import org.apache.hc.core5.http.io.SocketConfig;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.apache.hc.core5.pool.PoolConcurrencyPolicy;
import org.apache.hc.core5.pool.PoolReusePolicy;
import org.apache.hc.core5.util.TimeValue;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Real HTTP clients against real local servers: each connection's socket is captured from the
 * factory and its options read back from the kernel while the connection is still open (pooled),
 * and matched to the server's view of the connection by port.
 */
@Timeout(120)
class HttpClientsTest {
    private static HttpServer http;
    private static HttpsServer https;
    /** Client ports the servers saw. */
    private static final Set<Integer> SEEN = ConcurrentHashMap.newKeySet();

    private static void hello(HttpExchange exchange) throws IOException {
        SEEN.add(exchange.getRemoteAddress().getPort());
        byte[] body = "hello".getBytes(StandardCharsets.UTF_8);
        try (InputStream in = exchange.getRequestBody()) {
            in.readAllBytes();
        }
        exchange.sendResponseHeaders(200, body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
    }

    @BeforeAll
    static void servers() throws Exception {
        InetSocketAddress any = new InetSocketAddress(InetAddress.getByName("127.0.0.1"), 0);
        http = HttpServer.create(any, 10);
        http.createContext("/hello", HttpClientsTest::hello);
        http.start();
        https = HttpsServer.create(any, 10);
        https.setHttpsConfigurator(new HttpsConfigurator(TestSupport.Tls.get().server));
        https.createContext("/hello", HttpClientsTest::hello);
        https.start();
    }

    @AfterAll
    static void stop() {
        http.stop(0);
        https.stop(0);
    }

    private static String url(HttpServer server, String scheme) {
        return scheme + "://127.0.0.1:" + server.getAddress().getPort() + "/hello";
    }

    /** Wraps a factory and remembers every socket it hands out. */
    static final class Recording extends SocketFactory {
        final SocketFactory inner;
        final List<Socket> sockets = new CopyOnWriteArrayList<>();

        Recording(SocketFactory inner) {
            this.inner = inner;
        }

        private Socket keep(Socket s) {
            sockets.add(s);
            return s;
        }

        @Override public Socket createSocket() throws IOException {
            return keep(inner.createSocket());
        }
        @Override public Socket createSocket(String h, int p) throws IOException {
            return keep(inner.createSocket(h, p));
        }
        @Override public Socket createSocket(String h, int p, InetAddress la, int lp) throws IOException {
            return keep(inner.createSocket(h, p, la, lp));
        }
        @Override public Socket createSocket(InetAddress h, int p) throws IOException {
            return keep(inner.createSocket(h, p));
        }
        @Override public Socket createSocket(InetAddress h, int p, InetAddress la, int lp) throws IOException {
            return keep(inner.createSocket(h, p, la, lp));
        }
    }

    /** The same for TLS factories. */
    static final class RecordingTls extends SSLSocketFactory {
        final SSLSocketFactory inner;
        final List<Socket> sockets = new CopyOnWriteArrayList<>();

        RecordingTls(SSLSocketFactory inner) {
            this.inner = inner;
        }

        private Socket keep(Socket s) {
            sockets.add(s);
            return s;
        }

        @Override public String[] getDefaultCipherSuites() {
            return inner.getDefaultCipherSuites();
        }
        @Override public String[] getSupportedCipherSuites() {
            return inner.getSupportedCipherSuites();
        }
        @Override public Socket createSocket(Socket s, String h, int p, boolean autoClose) throws IOException {
            return keep(inner.createSocket(s, h, p, autoClose));
        }
        @Override public Socket createSocket() throws IOException {
            return keep(inner.createSocket());
        }
        @Override public Socket createSocket(String h, int p) throws IOException {
            return keep(inner.createSocket(h, p));
        }
        @Override public Socket createSocket(String h, int p, InetAddress la, int lp) throws IOException {
            return keep(inner.createSocket(h, p, la, lp));
        }
        @Override public Socket createSocket(InetAddress h, int p) throws IOException {
            return keep(inner.createSocket(h, p));
        }
        @Override public Socket createSocket(InetAddress h, int p, InetAddress la, int lp) throws IOException {
            return keep(inner.createSocket(h, p, la, lp));
        }
    }

    private static KeepAlive ka(int idle, int interval, int count, int userTimeoutMs) {
        return KeepAlive.builder().idle(Duration.ofSeconds(idle)).interval(Duration.ofSeconds(interval)).count(count)
                .userTimeout(Duration.ofMillis(userTimeoutMs)).build();
    }

    /** The one connected socket the factory made, checked to be the connection the server saw. */
    private static Socket theConnection(List<Socket> sockets) {
        List<Socket> connected = new ArrayList<>();
        for (Socket s : sockets) if (s.isConnected() && !s.isClosed()) connected.add(s);
        assertEquals(1, connected.size(), "one open connection made by the factory: " + sockets);
        Socket s = connected.get(0);
        assertTrue(SEEN.contains(s.getLocalPort()), "the server saw this connection (port " + s.getLocalPort() + ")");
        return s;
    }

    private static void close(OkHttpClient client) {
        client.dispatcher().executorService().shutdown();
        client.connectionPool().evictAll();
    }

    @Test
    void okHttpUnconnectedCreateSocketIsConfigured() throws Exception {
        Recording rec = new Recording(new KeepAliveSocketFactory(ka(501, 71, 61, 12_000)));
        OkHttpClient client = new OkHttpClient.Builder().socketFactory(rec).build();
        try {
            for (int i = 0; i < 2; i++) { // the second call reuses the pooled connection
                try (Response r = client.newCall(new Request.Builder().url(url(http, "http")).build()).execute()) {
                    assertEquals(200, r.code());
                    assertEquals("hello", r.body().string());
                }
            }
            assertEquals(1, rec.sockets.size(), "OkHttp made one socket through createSocket()");
            assertKernel(theConnection(rec.sockets), expect(501, 71, 61, 12_000));
        } finally {
            close(client);
        }
    }

    @Test
    void okHttpHttpsLayersTlsOnTheConfiguredSocket() throws Exception {
        TestSupport.Tls tls = TestSupport.Tls.get();
        Recording rec = new Recording(new KeepAliveSocketFactory(SocketFactory.getDefault(), ka(502, 72, 62, 13_000)));
        OkHttpClient client = new OkHttpClient.Builder().socketFactory(rec)
                .sslSocketFactory(tls.client.getSocketFactory(), tls.trustManager).build();
        try {
            try (Response r = client.newCall(new Request.Builder().url(url(https, "https")).build()).execute()) {
                assertEquals(200, r.code());
                assertEquals("hello", r.body().string());
                assertTrue(r.handshake() != null, "it was TLS");
            }
            assertKernel(theConnection(rec.sockets), expect(502, 72, 62, 13_000));
        } finally {
            close(client);
        }
    }

    @Test
    void apacheHttpClient5WithAConnectionSocketFactory() throws Exception {
        Recording rec = new Recording(new KeepAliveSocketFactory(ka(503, 73, 63, 14_000)));
        // HttpClient 5.4+ makes plain sockets through a DetachedSocketFactory (a registry's
        // PlainConnectionSocketFactory is no longer asked): hand it the keep-alive factory's sockets.
        DetachedSocketFactory sockets = proxy -> proxy != null && proxy.type() == Proxy.Type.SOCKS
                ? configured(new Socket(proxy)) : rec.createSocket();
        HttpClientConnectionOperator operator = new DefaultHttpClientConnectionOperator(sockets, null, null,
                RegistryBuilder.<TlsSocketStrategy>create()
                        .register("https", new DefaultClientTlsStrategy(TestSupport.Tls.get().client)).build());
        try (PoolingHttpClientConnectionManager cm = new PoolingHttpClientConnectionManager(operator,
                PoolConcurrencyPolicy.STRICT, PoolReusePolicy.LIFO, TimeValue.NEG_ONE_MILLISECOND, null);
                CloseableHttpClient client = HttpClients.custom().setConnectionManager(cm).build()) {
            // HttpClient applies its SocketConfig after creating the socket, and its default
            // soKeepAlive=false would switch keep-alive off again; the timings stay ours.
            cm.setDefaultSocketConfig(SocketConfig.custom().setSoKeepAlive(true).build());
            for (int i = 0; i < 2; i++) {
                String body = client.execute(new HttpGet(url(http, "http")), response -> {
                    assertEquals(200, response.getCode());
                    return EntityUtils.toString(response.getEntity());
                });
                assertEquals("hello", body);
            }
            assertEquals(1, rec.sockets.size(), "one pooled connection");
            assertKernel(theConnection(rec.sockets), expect(503, 73, 63, 14_000));
            // HTTPS: TLS is layered on a second socket from the same factory.
            String body = client.execute(new HttpGet(url(https, "https")), r -> EntityUtils.toString(r.getEntity()));
            assertEquals("hello", body);
            assertEquals(2, rec.sockets.size(), "a second connection, for https");
            Socket tlsPlain = rec.sockets.get(1);
            assertTrue(SEEN.contains(tlsPlain.getLocalPort()), "the https server saw it");
            assertKernel(tlsPlain, expect(503, 73, 63, 14_000));
        }
    }

    @Test
    void apacheHttpClient5DefaultSocketConfigTurnsKeepAliveOff() throws Exception {
        // Documented pitfall, kept as a test so the README stays true: without soKeepAlive=true
        // HttpClient switches SO_KEEPALIVE off on the socket the factory configured.
        Recording rec = new Recording(new KeepAliveSocketFactory(ka(505, 75, 65, 16_000)));
        HttpClientConnectionOperator operator = new DefaultHttpClientConnectionOperator(proxy -> rec.createSocket(),
                null, null, RegistryBuilder.<TlsSocketStrategy>create().build());
        try (PoolingHttpClientConnectionManager cm = new PoolingHttpClientConnectionManager(operator,
                PoolConcurrencyPolicy.STRICT, PoolReusePolicy.LIFO, TimeValue.NEG_ONE_MILLISECOND, null);
                CloseableHttpClient client = HttpClients.custom().setConnectionManager(cm).build()) {
            String body = client.execute(new HttpGet(url(http, "http")), r -> EntityUtils.toString(r.getEntity()));
            assertEquals("hello", body);
            Socket s = theConnection(rec.sockets);
            assertFalse(s.getKeepAlive(), "HttpClient's default SocketConfig turned SO_KEEPALIVE off");
            assertEquals(505, (int) s.getOption(jdk.net.ExtendedSocketOptions.TCP_KEEPIDLE), "the timings stay");
        }
    }

    /**
     * An IOSessionListener for HttpClient 5 async: {@code connected} runs after the reactor's own
     * socket setup (which sets SO_KEEPALIVE to IOReactorConfig's soKeepAlive, false by default),
     * so what it applies stays. {@code keepAlive} null: only record the channel.
     */
    static final class KeepAliveSessions implements IOSessionListener {
        final KeepAlive keepAlive;
        final List<SocketChannel> channels = new CopyOnWriteArrayList<>();

        KeepAliveSessions(KeepAlive keepAlive) {
            this.keepAlive = keepAlive;
        }

        @Override public void connected(IOSession session) {
            if (!(session.channel() instanceof SocketChannel)) return;
            SocketChannel channel = (SocketChannel) session.channel();
            try {
                if (keepAlive != null) keepAlive.apply(channel);
                channels.add(channel);
            } catch (SocketException e) {
                session.close(CloseMode.IMMEDIATE); // no connection without its keep-alive
            }
        }
        @Override public void startTls(IOSession session) {}
        @Override public void inputReady(IOSession session) {}
        @Override public void outputReady(IOSession session) {}
        @Override public void timeout(IOSession session) {}
        @Override public void exception(IOSession session, Exception ex) {}
        @Override public void disconnected(IOSession session) {}
    }

    @Test
    void apacheHttpClient5AsyncWithAnIOSessionListener() throws Exception {
        KeepAliveSessions sessions = new KeepAliveSessions(ka(506, 76, 66, 17_000));
        try (CloseableHttpAsyncClient client = HttpAsyncClients.custom().setIOSessionListener(sessions).build()) {
            client.start();
            SimpleHttpResponse r = client.execute(SimpleRequestBuilder.get(url(http, "http")).build(), null)
                    .get(30, TimeUnit.SECONDS);
            assertEquals("hello", r.getBodyText());
            assertEquals(1, sessions.channels.size());
            SocketChannel ch = sessions.channels.get(0);
            assertTrue(SEEN.contains(((InetSocketAddress) ch.getLocalAddress()).getPort()), "the server's connection");
            // The default IOReactorConfig (soKeepAlive false) ran before connected(): ours stays.
            assertKernel(ch, expect(506, 76, 66, 17_000));
        }
    }

    @Test
    void apacheHttpClient5AsyncIOReactorConfigNeedsSoKeepAlive() throws Exception {
        // httpcore5 5.3+'s own timings work only together with setSoKeepAlive(true) ...
        KeepAliveSessions seen = new KeepAliveSessions(null);
        try (CloseableHttpAsyncClient client = HttpAsyncClients.custom().setIOSessionListener(seen)
                .setIOReactorConfig(IOReactorConfig.custom().setSoKeepAlive(true).setTcpKeepIdle(507)
                        .setTcpKeepInterval(77).setTcpKeepCount(67).build()).build()) {
            client.start();
            assertEquals("hello", client.execute(SimpleRequestBuilder.get(url(http, "http")).build(), null)
                    .get(30, TimeUnit.SECONDS).getBodyText());
            assertEquals(1, seen.channels.size());
            assertKernel(seen.channels.get(0), expect(507, 77, 67));
        }
        // ... without it the timings are written and SO_KEEPALIVE is switched off: no probes.
        KeepAliveSessions off = new KeepAliveSessions(null);
        try (CloseableHttpAsyncClient client = HttpAsyncClients.custom().setIOSessionListener(off)
                .setIOReactorConfig(IOReactorConfig.custom().setTcpKeepIdle(508).build()).build()) {
            client.start();
            assertEquals("hello", client.execute(SimpleRequestBuilder.get(url(http, "http")).build(), null)
                    .get(30, TimeUnit.SECONDS).getBodyText());
            KeepAlive.Settings s = KeepAlive.inspect(off.channels.get(0));
            assertFalse(s.enabled(), "IOReactorConfig's default soKeepAlive=false: " + s);
        }
    }

    private static Socket configured(Socket s) throws IOException {
        KeepAlive.defaults().apply(s);
        return s;
    }

    @Test
    void httpsUrlConnectionWithKeepAliveSSLSocketFactory() throws Exception {
        TestSupport.Tls tls = TestSupport.Tls.get();
        RecordingTls rec = new RecordingTls(
                new KeepAliveSSLSocketFactory(tls.client.getSocketFactory(), ka(504, 74, 64, 15_000)));
        HttpsURLConnection conn = (HttpsURLConnection) new URL(url(https, "https")).openConnection();
        conn.setSSLSocketFactory(rec);
        conn.setConnectTimeout(10_000);
        conn.setReadTimeout(10_000);
        try {
            assertEquals(200, conn.getResponseCode());
            try (InputStream in = conn.getInputStream()) {
                assertEquals("hello", new String(in.readAllBytes(), StandardCharsets.UTF_8));
            }
            assertFalse(rec.sockets.isEmpty(), "HttpsURLConnection used the factory");
            Socket s = theConnection(rec.sockets);
            assertTrue(s instanceof SSLSocket, s.getClass().getName());
            assertKernel(s, expect(504, 74, 64, 15_000));
        } finally {
            conn.disconnect();
        }
    }

    @Test
    void defaultFactoryUsesTheDefaults() throws Exception {
        Recording rec = new Recording(new KeepAliveSocketFactory());
        try (Socket s = rec.createSocket(InetAddress.getByName("127.0.0.1"), http.getAddress().getPort())) {
            assertKernel(s, expect(60, 10, 6));
        }
        assertEquals(KeepAlive.defaults(), new KeepAliveSocketFactory().keepAlive());
    }
}
