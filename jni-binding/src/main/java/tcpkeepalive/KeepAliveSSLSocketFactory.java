package tcpkeepalive;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import javax.net.ssl.SSLSocketFactory;

/**
 * An {@link SSLSocketFactory} whose TLS sockets have keep-alive configured on the TCP socket
 * underneath: for {@code HttpsURLConnection.setSSLSocketFactory} and clients that take an
 * {@code SSLSocketFactory}.
 *
 * <pre>{@code
 * SSLSocketFactory tls = new KeepAliveSSLSocketFactory(sslContext.getSocketFactory(), KeepAlive.defaults());
 * connection.setSSLSocketFactory(tls);
 * }</pre>
 *
 * Both kinds of TLS socket are covered: the ones it creates itself (connected or, for
 * {@code createSocket()}, unconnected) and the ones layered over a socket the caller passes in
 * {@link #createSocket(Socket, String, int, boolean)}, whose plain socket is configured first.
 */
public class KeepAliveSSLSocketFactory extends SSLSocketFactory {
    private final SSLSocketFactory delegate;
    /** Null: the settings said keep-alive off; sockets are handed out untouched. */
    private final KeepAlive keepAlive;

    /**
     * The environment's settings (as {@link KeepAliveSocketFactory#KeepAliveSocketFactory()}) on
     * the default {@code SSLSocketFactory}'s sockets.
     *
     * @throws IllegalArgumentException naming the variable when one is invalid
     */
    public KeepAliveSSLSocketFactory() {
        this(KeepAlive.fromEnvOrDefaults(), (SSLSocketFactory) SSLSocketFactory.getDefault());
    }

    /**
     * The settings in {@code settings} (as {@link KeepAliveSocketFactory#KeepAliveSocketFactory(String)},
     * e.g. {@code idle=60,interval=10,count=6}) on the default {@code SSLSocketFactory}'s sockets;
     * null: the environment's, as the no-arg constructor.
     *
     * @throws IllegalArgumentException naming the key and its value when one is invalid
     */
    public KeepAliveSSLSocketFactory(String settings) {
        this(settings == null ? KeepAlive.fromEnvOrDefaults() : KeepAlive.fromSettings(settings), (SSLSocketFactory) SSLSocketFactory.getDefault());
    }

    /** {@code keepAlive} on {@code delegate}'s TLS sockets. */
    public KeepAliveSSLSocketFactory(SSLSocketFactory delegate, KeepAlive keepAlive) {
        this(requireKeepAlive(keepAlive), delegate);
    }

    private KeepAliveSSLSocketFactory(KeepAlive keepAliveOrNull, SSLSocketFactory delegate) {
        if (delegate == null) throw new NullPointerException("delegate is null");
        this.delegate = delegate;
        this.keepAlive = keepAliveOrNull;
    }

    private static KeepAlive requireKeepAlive(KeepAlive keepAlive) {
        if (keepAlive == null) throw new NullPointerException("keepAlive is null");
        return keepAlive;
    }

    /** The settings every socket gets; null when the environment or settings string said off. */
    public KeepAlive keepAlive() {
        return keepAlive;
    }

    private Socket configured(Socket socket) throws IOException {
        return keepAlive == null ? socket : keepAlive.applyToNew(socket);
    }

    @Override
    public String[] getDefaultCipherSuites() {
        return delegate.getDefaultCipherSuites();
    }

    @Override
    public String[] getSupportedCipherSuites() {
        return delegate.getSupportedCipherSuites();
    }

    /** Configures {@code s} (the caller's socket, maybe shared: all or nothing), then layers TLS. */
    @Override
    public Socket createSocket(Socket s, String host, int port, boolean autoClose) throws IOException {
        if (s == null) throw new NullPointerException("socket is null");
        if (keepAlive != null) keepAlive.apply(s);
        return delegate.createSocket(s, host, port, autoClose);
    }

    /** Configures {@code s}, then layers a server-mode TLS socket that has consumed {@code consumed}. */
    @Override
    public Socket createSocket(Socket s, InputStream consumed, boolean autoClose) throws IOException {
        if (s == null) throw new NullPointerException("socket is null");
        if (keepAlive != null) keepAlive.apply(s);
        return delegate.createSocket(s, consumed, autoClose);
    }

    @Override
    public Socket createSocket() throws IOException {
        return configured(delegate.createSocket());
    }

    @Override
    public Socket createSocket(String host, int port) throws IOException {
        return configured(delegate.createSocket(host, port));
    }

    @Override
    public Socket createSocket(String host, int port, InetAddress localHost, int localPort) throws IOException {
        return configured(delegate.createSocket(host, port, localHost, localPort));
    }

    @Override
    public Socket createSocket(InetAddress host, int port) throws IOException {
        return configured(delegate.createSocket(host, port));
    }

    @Override
    public Socket createSocket(InetAddress address, int port, InetAddress localAddress, int localPort)
            throws IOException {
        return configured(delegate.createSocket(address, port, localAddress, localPort));
    }

    @Override
    public String toString() {
        return "KeepAliveSSLSocketFactory(" + (keepAlive == null ? "keep-alive off" : keepAlive) + ")";
    }
}
