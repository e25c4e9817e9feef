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
    private final KeepAlive keepAlive;

    /** {@code keepAlive} on {@code delegate}'s TLS sockets. */
    public KeepAliveSSLSocketFactory(SSLSocketFactory delegate, KeepAlive keepAlive) {
        if (delegate == null) throw new NullPointerException("delegate is null");
        if (keepAlive == null) throw new NullPointerException("keepAlive is null");
        this.delegate = delegate;
        this.keepAlive = keepAlive;
    }

    /** The settings every socket gets. */
    public KeepAlive keepAlive() {
        return keepAlive;
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
        keepAlive.apply(s);
        return delegate.createSocket(s, host, port, autoClose);
    }

    /** Configures {@code s}, then layers a server-mode TLS socket that has consumed {@code consumed}. */
    @Override
    public Socket createSocket(Socket s, InputStream consumed, boolean autoClose) throws IOException {
        if (s == null) throw new NullPointerException("socket is null");
        keepAlive.apply(s);
        return delegate.createSocket(s, consumed, autoClose);
    }

    @Override
    public Socket createSocket() throws IOException {
        return keepAlive.applyToNew(delegate.createSocket());
    }

    @Override
    public Socket createSocket(String host, int port) throws IOException {
        return keepAlive.applyToNew(delegate.createSocket(host, port));
    }

    @Override
    public Socket createSocket(String host, int port, InetAddress localHost, int localPort) throws IOException {
        return keepAlive.applyToNew(delegate.createSocket(host, port, localHost, localPort));
    }

    @Override
    public Socket createSocket(InetAddress host, int port) throws IOException {
        return keepAlive.applyToNew(delegate.createSocket(host, port));
    }

    @Override
    public Socket createSocket(InetAddress address, int port, InetAddress localAddress, int localPort)
            throws IOException {
        return keepAlive.applyToNew(delegate.createSocket(address, port, localAddress, localPort));
    }

    @Override
    public String toString() {
        return "KeepAliveSSLSocketFactory(" + keepAlive + ")";
    }
}
