package tcpkeepalive;

import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketException;
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
 *
 * <p>Drivers that take a factory by class name get the settings from the environment (the no-arg
 * constructor) or from one string (the String constructor), e.g. PostgreSQL's pgjdbc:
 * <pre>{@code
 * jdbc:postgresql://db:5432/app?tcpKeepAlive=true&socketFactory=tcpkeepalive.KeepAliveSocketFactory
 *     &socketFactoryArg=idle=60,interval=10,count=6,user_timeout=30s
 * }</pre>
 */
public class KeepAliveSocketFactory extends SocketFactory {
    private final SocketFactory delegate;
    /** Null: the settings said keep-alive off; sockets are handed out untouched. */
    private final KeepAlive keepAlive;

    /**
     * The environment's settings ({@link KeepAlive#fromEnv()}: {@code TCP_KEEPALIVE_IDLE} and the
     * rest), or {@link KeepAlive#defaults()} when none is set, on {@link SocketFactory#getDefault()}'s
     * sockets; with {@code TCP_KEEPALIVE=off} sockets are left as they are.
     *
     * @throws IllegalArgumentException naming the variable when one is invalid
     */
    public KeepAliveSocketFactory() {
        this(KeepAlive.fromEnvOrDefaults(), SocketFactory.getDefault());
    }

    /**
     * The settings in {@code settings}, on {@link SocketFactory#getDefault()}'s sockets: the
     * environment's vocabulary in one string, {@code idle=60,interval=10,count=6,user_timeout=30s}.
     * Keys: {@code idle}, {@code interval}, {@code user_timeout} (durations as in
     * {@code TCP_KEEPALIVE_IDLE}: {@code 90}, {@code 90s}, {@code 2m}, {@code 1500ms}),
     * {@code count}, and {@code keepalive} ({@code on}/{@code off}; {@code off} leaves sockets as
     * they are); each at most once, keys not given take the defaults, an empty string is the
     * defaults. For pgjdbc's {@code socketFactoryArg}.
     *
     * A null {@code settings} is the no-arg constructor's environment: pgjdbc calls this
     * constructor with null when a URL has {@code socketFactory} but no {@code socketFactoryArg}.
     *
     * @throws IllegalArgumentException naming the key and its value when one is invalid
     */
    public KeepAliveSocketFactory(String settings) {
        this(settings == null ? KeepAlive.fromEnvOrDefaults() : KeepAlive.fromSettings(settings), SocketFactory.getDefault());
    }

    /** {@code keepAlive} on {@link SocketFactory#getDefault()}'s sockets. */
    public KeepAliveSocketFactory(KeepAlive keepAlive) {
        this(SocketFactory.getDefault(), keepAlive);
    }

    /** {@code keepAlive} on {@code delegate}'s sockets. */
    public KeepAliveSocketFactory(SocketFactory delegate, KeepAlive keepAlive) {
        this(requireKeepAlive(keepAlive), delegate);
    }

    private KeepAliveSocketFactory(KeepAlive keepAliveOrNull, SocketFactory delegate) {
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

    private Socket configured(Socket socket) throws SocketException {
        return keepAlive == null ? socket : keepAlive.applyToNew(socket);
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
        return "KeepAliveSocketFactory(" + (keepAlive == null ? "keep-alive off" : keepAlive) + ")";
    }
}
