package tcpkeepalive;

import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import javax.net.SocketFactory;

/**
 * A {@link SocketFactory} whose every socket has keep-alive configured: wraps
 * {@link SocketFactory#getDefault()} or any factory given. The unconnected {@link #createSocket()}
 * that OkHttp and Apache HttpClient call before {@code connect()} is configured too (the JDK is
 * made to create its descriptor first), so the settings are in place before the first byte.
 *
 * <pre>{@code
 * OkHttpClient client = new OkHttpClient.Builder()
 *     .socketFactory(new KeepAliveSocketFactory(KeepAlive.defaults()))
 *     .build();
 * }</pre>
 *
 * TLS clients such as OkHttp layer their TLS socket on the plain socket from this factory, so the
 * settings reach HTTPS connections too. A socket that cannot be configured is closed and the error
 * thrown ({@code SocketException}, or {@code UnsupportedOperationException} for a user timeout
 * without the native library).
 */
public class KeepAliveSocketFactory extends SocketFactory {
    private final SocketFactory delegate;
    private final KeepAlive keepAlive;

    /** {@link KeepAlive#defaults()} on {@link SocketFactory#getDefault()}'s sockets. */
    public KeepAliveSocketFactory() {
        this(SocketFactory.getDefault(), KeepAlive.defaults());
    }

    /** {@code keepAlive} on {@link SocketFactory#getDefault()}'s sockets. */
    public KeepAliveSocketFactory(KeepAlive keepAlive) {
        this(SocketFactory.getDefault(), keepAlive);
    }

    /** {@code keepAlive} on {@code delegate}'s sockets. */
    public KeepAliveSocketFactory(SocketFactory delegate, KeepAlive keepAlive) {
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
        return "KeepAliveSocketFactory(" + keepAlive + ")";
    }
}
