package tcpkeepalive;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.Optional;

/**
 * TCP keep-alive settings, and the calls that put them on sockets.
 *
 * <p>A middlebox (an AWS NLB or NAT gateway after 350 s, an Azure load balancer after 240 s, a
 * conntrack firewall) forgets a TCP flow that stays silent for longer than its idle timeout and
 * then drops its packets without a word. Keep-alive probes keep such flows fresh, and end the wait
 * on a dead peer after {@link #detectionBound()}.
 *
 * <pre>{@code
 * KeepAlive.configure(socket, 60, 10, 6);                  // one socket
 * KeepAlive ka = KeepAlive.builder().idle(Duration.ofSeconds(60)).build();
 * ka.apply(socket);
 * KeepAlive.Settings now = KeepAlive.inspect(socket);      // read back from the kernel
 * OkHttpClient c = new OkHttpClient.Builder().socketFactory(new KeepAliveSocketFactory(ka)).build();
 * }</pre>
 *
 * <p>Values are checked when built (idle and interval 1 to 32767 s, count 1 to 127, user timeout
 * 1 ms to 2147483647 ms; finer durations round up) and a failing {@code apply} leaves the socket as
 * it was. Errors: {@code NullPointerException} for null, {@code IllegalArgumentException} for a
 * value out of range or a socket class this library does not know, {@code SocketException} for a
 * closed or non-TCP socket (with the OS error text), {@code UnsupportedOperationException} for an
 * option this system lacks.
 *
 * <p>Instances are immutable and thread-safe.
 */
public final class KeepAlive {
    /** Core's defaults (tcp_keepalive::DEFAULT_IDLE, _INTERVAL, _COUNT), written once for Java. */
    static final int DEFAULT_IDLE = 60;
    static final int DEFAULT_INTERVAL = 10;
    static final int DEFAULT_COUNT = 6;

    private static final KeepAlive DEFAULTS = new KeepAlive(DEFAULT_IDLE, DEFAULT_INTERVAL, DEFAULT_COUNT, 0);

    private final int idleSeconds;
    private final int intervalSeconds;
    private final int count;
    /** 0 when not set. */
    private final int userTimeoutMillis;

    private KeepAlive(int idleSeconds, int intervalSeconds, int count, int userTimeoutMillis) {
        this.idleSeconds = idleSeconds;
        this.intervalSeconds = intervalSeconds;
        this.count = count;
        this.userTimeoutMillis = userTimeoutMillis;
    }

    /** Idle 60 s, interval 10 s, count 6, no user timeout: a dead peer is noticed within 120 s. */
    public static KeepAlive defaults() {
        return DEFAULTS;
    }

    /** A builder starting from {@link #defaults()}. */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * The settings the environment asks for: {@code TCP_KEEPALIVE} ({@code on}/{@code off}),
     * {@code TCP_KEEPALIVE_IDLE}, {@code TCP_KEEPALIVE_INTERVAL}, {@code TCP_KEEPALIVE_COUNT},
     * {@code TCP_KEEPALIVE_USER_TIMEOUT} (durations such as {@code 90}, {@code 90s}, {@code 2m},
     * {@code 1500ms}), or the classic {@code KEEPALIVE}, {@code KEEPIDLE}, {@code KEEPINTVL},
     * {@code KEEPCNT} where a prefixed one is unset; variables not set take the defaults.
     *
     * @return empty when none of the variables is set, or when {@code TCP_KEEPALIVE=off}
     * @throws IllegalArgumentException naming the variable and its value when one is invalid
     */
    public static Optional<KeepAlive> fromEnv() {
        int[] v = Native.loaded() ? Native.fromEnv() : Fallback.fromEnv(System.getenv());
        if (v[0] != 2) return Optional.empty();
        return Optional.of(new KeepAlive(v[1], v[2], v[3], v[4]));
    }

    /**
     * What the factories' no-arg constructors use: {@link #fromEnv()}'s settings, the defaults
     * when no variable is set, null for {@code TCP_KEEPALIVE=off} (sockets are left alone).
     */
    static KeepAlive fromEnvOrDefaults() {
        return ofState(Native.loaded() ? Native.fromEnv() : Fallback.fromEnv(System.getenv()));
    }

    /**
     * What the factories' String constructors use: a settings string in the environment's
     * vocabulary, {@code idle=60,interval=10,count=6,user_timeout=30s} (keys {@code keepalive}
     * on/off, {@code idle}, {@code interval}, {@code count}, {@code user_timeout}; values as the
     * {@code TCP_KEEPALIVE_*} variables take them; keys not given take the defaults). Null for
     * {@code keepalive=off}.
     *
     * @throws IllegalArgumentException naming the key and its value when one is invalid
     */
    static KeepAlive fromSettings(String settings) {
        if (settings == null) throw new NullPointerException("settings is null");
        return ofState(Native.loaded() ? Native.parseSettings(settings) : Fallback.parseSettings(settings));
    }

    private static KeepAlive ofState(int[] v) {
        if (v[0] == 0) return DEFAULTS;
        if (v[0] == 1) return null;
        return new KeepAlive(v[1], v[2], v[3], v[4]);
    }

    /**
     * Turns keep-alive on for a TCP socket (connected, unconnected or a TLS socket) with these
     * timings, all or nothing.
     *
     * @throws NullPointerException when {@code socket} is null
     * @throws IllegalArgumentException when a value is out of range (idle and interval 1 to 32767,
     *     count 1 to 127), or the socket's class is one this library cannot see into
     * @throws SocketException when the socket is closed or not TCP
     */
    public static void configure(Socket socket, int idleSeconds, int intervalSeconds, int count)
            throws SocketException {
        configureObject(socket, idleSeconds, intervalSeconds, count);
    }

    /** {@link #configure(Socket, int, int, int)} for a {@code SocketChannel}. */
    public static void configure(SocketChannel channel, int idleSeconds, int intervalSeconds, int count)
            throws SocketException {
        configureObject(channel, idleSeconds, intervalSeconds, count);
    }

    /**
     * {@link #configure(Socket, int, int, int)} for a listening socket: on Linux every socket it
     * accepts inherits the settings.
     */
    public static void configure(ServerSocket server, int idleSeconds, int intervalSeconds, int count)
            throws SocketException {
        configureObject(server, idleSeconds, intervalSeconds, count);
    }

    private static void configureObject(Object target, int idle, int interval, int count)
            throws SocketException {
        ready(target);
        if (Native.loaded()) {
            Native.apply(target, idle, interval, count, 0, false);
        } else {
            int[] v = Fallback.validate(idle, 0, interval, 0, count, false, 0, 0);
            Fallback.apply(target, v[0], v[1], v[2], 0);
        }
    }

    /**
     * Applies these settings to a TCP socket: the timings, then {@code SO_KEEPALIVE}. All or
     * nothing: if a call fails the options already written are restored.
     *
     * @throws NullPointerException when {@code socket} is null
     * @throws IllegalArgumentException when the socket's class is one this library cannot see into
     * @throws SocketException when the socket is closed or not TCP
     * @throws UnsupportedOperationException when this system lacks an option (a user timeout
     *     without the native library)
     */
    public void apply(Socket socket) throws SocketException {
        applyObject(socket, false);
    }

    /** {@link #apply(Socket)} for a {@code SocketChannel}. */
    public void apply(SocketChannel channel) throws SocketException {
        applyObject(channel, false);
    }

    /** {@link #apply(Socket)} for a listening socket: on Linux accepted sockets inherit it. */
    public void apply(ServerSocket server) throws SocketException {
        applyObject(server, false);
    }

    /**
     * For a socket a factory has just created and not yet handed out: fewer system calls. Returns
     * it configured; on failure closes it and throws, so a factory never hands out a socket
     * without the settings (nor leaks one).
     */
    Socket applyToNew(Socket socket) throws SocketException {
        if (socket == null) throw new NullPointerException("the delegate factory returned no socket");
        try {
            applyObject(socket, true);
            return socket;
        } catch (SocketException | RuntimeException e) {
            try {
                socket.close();
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    private void applyObject(Object target, boolean fresh) throws SocketException {
        ready(target);
        if (Native.loaded()) {
            Native.apply(target, idleSeconds, intervalSeconds, count, userTimeoutMillis, fresh);
        } else {
            Fallback.apply(target, idleSeconds, intervalSeconds, count, userTimeoutMillis);
        }
    }

    /**
     * Checks the socket is open (the native side asks the JDK's own closed state again for any
     * subclass, whose {@code isClosed()} may be overridden; the fallback's JDK calls check their
     * implementation's state) and makes sure it has a file descriptor: an unconnected
     * {@code new Socket()} (what OkHttp's {@code createSocket()} returns) gets one from the JDK
     * only when first used. Reading {@code SO_TIMEOUT} creates it without changing anything and
     * without a system call of its own (the JDK keeps that timeout in a field), so the factory path
     * costs the same system calls as the JDK's own way: socket() and the four writes.
     */
    private static void ready(Object target) throws SocketException {
        if (target == null) throw new NullPointerException("socket is null");
        if (target instanceof Socket) {
            Socket s = (Socket) target;
            if (s.isClosed()) throw new SocketException("Socket is closed");
            if (!s.isConnected() && !s.isBound()) s.getSoTimeout();
        } else if (target instanceof SocketChannel) {
            if (!((SocketChannel) target).isOpen()) throw new SocketException("Socket is closed");
        } else if (target instanceof ServerSocket) {
            ServerSocket s = (ServerSocket) target;
            if (s.isClosed()) throw new SocketException("Socket is closed");
            if (!s.isBound()) s.getReuseAddress();
        }
    }

    /**
     * Reads a socket's keep-alive settings from the kernel.
     *
     * @throws NullPointerException when {@code socket} is null
     * @throws SocketException when the socket is closed or not TCP
     */
    public static Settings inspect(Socket socket) throws SocketException {
        return inspectObject(socket);
    }

    /** {@link #inspect(Socket)} for a {@code SocketChannel}. */
    public static Settings inspect(SocketChannel channel) throws SocketException {
        return inspectObject(channel);
    }

    /** {@link #inspect(Socket)} for a listening socket. */
    public static Settings inspect(ServerSocket server) throws SocketException {
        return inspectObject(server);
    }

    private static Settings inspectObject(Object target) throws SocketException {
        ready(target);
        int[] v = Native.loaded() ? Native.inspect(target) : Fallback.inspect(target);
        return new Settings(v[0] != 0, v[1], v[2], v[3], v[4]);
    }

    /** True when the native library is loaded; false means the {@code jdk.net} fallback is used. */
    public static boolean isNativeLoaded() {
        return Native.loaded();
    }

    /** Why the native library did not load, listing every place tried; empty when it loaded. */
    public static Optional<String> nativeLoadError() {
        return Optional.ofNullable(Native.loadError());
    }

    /** Seconds of silence before the first probe ({@code TCP_KEEPIDLE}). */
    public Duration idle() {
        return Duration.ofSeconds(idleSeconds);
    }

    /** Time between unanswered probes ({@code TCP_KEEPINTVL}). */
    public Duration interval() {
        return Duration.ofSeconds(intervalSeconds);
    }

    /** Unanswered probes before the connection is dropped ({@code TCP_KEEPCNT}). */
    public int count() {
        return count;
    }

    /** {@code TCP_USER_TIMEOUT}, when set. */
    public Optional<Duration> userTimeout() {
        return millisOrEmpty(userTimeoutMillis);
    }

    /** A user timeout as stored here and in {@link Settings}: 0 means unset. */
    private static Optional<Duration> millisOrEmpty(int millis) {
        return millis == 0 ? Optional.<Duration>empty() : Optional.of(Duration.ofMillis(millis));
    }

    /** {@code idle + interval × count}: the longest a silent dead peer can go unnoticed. */
    public Duration detectionBound() {
        return Duration.ofSeconds(idleSeconds + (long) intervalSeconds * count);
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof KeepAlive)) return false;
        KeepAlive k = (KeepAlive) o;
        return idleSeconds == k.idleSeconds && intervalSeconds == k.intervalSeconds && count == k.count
                && userTimeoutMillis == k.userTimeoutMillis;
    }

    @Override
    public int hashCode() {
        return ((idleSeconds * 31 + intervalSeconds) * 31 + count) * 31 + userTimeoutMillis;
    }

    /** Like the core's: {@code idle 60s, interval 10s, count 6 (dead peer noticed within 120s)}. */
    @Override
    public String toString() {
        StringBuilder b = new StringBuilder();
        b.append("idle ").append(idleSeconds).append("s, interval ").append(intervalSeconds)
                .append("s, count ").append(count);
        if (userTimeoutMillis != 0) b.append(", user timeout ").append(userTimeoutMillis).append("ms");
        return b.append(" (dead peer noticed within ").append(detectionBound().getSeconds()).append("s)").toString();
    }

    /** Builds a {@link KeepAlive}; starts from the defaults (60 s, 10 s, 6, no user timeout). */
    public static final class Builder {
        private Duration idle = Duration.ofSeconds(DEFAULT_IDLE);
        private Duration interval = Duration.ofSeconds(DEFAULT_INTERVAL);
        private int count = DEFAULT_COUNT;
        private Duration userTimeout;

        private Builder() {}

        /** Silence before the first probe: 1 to 32767 s; finer values round up to whole seconds. */
        public Builder idle(Duration idle) {
            this.idle = requireNonNull(idle, "idle");
            return this;
        }

        /** Time between probes: 1 to 32767 s; finer values round up to whole seconds. */
        public Builder interval(Duration interval) {
            this.interval = requireNonNull(interval, "interval");
            return this;
        }

        /** Unanswered probes before the connection is dropped: 1 to 127. */
        public Builder count(int count) {
            this.count = count;
            return this;
        }

        /**
         * {@code TCP_USER_TIMEOUT} (Linux): how long sent data may stay unacknowledged before the
         * connection is dropped; also what ends a connection once probing has started. 1 ms to
         * 2147483647 ms, finer values round up. Keep-alive never probes while data is
         * unacknowledged, so this is the only bound on a write into a black hole.
         */
        public Builder userTimeout(Duration userTimeout) {
            this.userTimeout = requireNonNull(userTimeout, "userTimeout");
            return this;
        }

        /**
         * Checks every value (in the order idle, interval, count, user timeout).
         *
         * @throws IllegalArgumentException naming the value and what is allowed
         */
        public KeepAlive build() {
            boolean hasUt = userTimeout != null;
            long utS = hasUt ? userTimeout.getSeconds() : 0;
            int utN = hasUt ? userTimeout.getNano() : 0;
            int[] v = Native.loaded()
                    ? Native.validate(idle.getSeconds(), idle.getNano(), interval.getSeconds(),
                            interval.getNano(), count, hasUt, utS, utN)
                    : Fallback.validate(idle.getSeconds(), idle.getNano(), interval.getSeconds(),
                            interval.getNano(), count, hasUt, utS, utN);
            return new KeepAlive(v[0], v[1], v[2], v[3]);
        }

        private static <T> T requireNonNull(T value, String name) {
            if (value == null) throw new NullPointerException(name + " is null");
            return value;
        }
    }

    /** A socket's keep-alive settings as the kernel reports them (never a cache). */
    public static final class Settings {
        private final boolean enabled;
        private final int idleSeconds;
        private final int intervalSeconds;
        private final int count;
        private final int userTimeoutMillis;

        Settings(boolean enabled, int idleSeconds, int intervalSeconds, int count, int userTimeoutMillis) {
            this.enabled = enabled;
            this.idleSeconds = idleSeconds;
            this.intervalSeconds = intervalSeconds;
            this.count = count;
            this.userTimeoutMillis = userTimeoutMillis;
        }

        /** {@code SO_KEEPALIVE}: whether the kernel probes at all; the timings apply only when true. */
        public boolean enabled() {
            return enabled;
        }

        /**
         * {@code TCP_KEEPIDLE}; when never set on the socket, the host's
         * {@code net.ipv4.tcp_keepalive_time} (of the socket's network namespace).
         */
        public Duration idle() {
            return Duration.ofSeconds(idleSeconds);
        }

        /** {@code TCP_KEEPINTVL}; when never set, the host's {@code net.ipv4.tcp_keepalive_intvl}. */
        public Duration interval() {
            return Duration.ofSeconds(intervalSeconds);
        }

        /** {@code TCP_KEEPCNT}; when never set, the host's {@code net.ipv4.tcp_keepalive_probes}. */
        public int count() {
            return count;
        }

        /** {@code TCP_USER_TIMEOUT}; empty when unset (or unreadable without the native library). */
        public Optional<Duration> userTimeout() {
            return millisOrEmpty(userTimeoutMillis);
        }

        @Override
        public boolean equals(Object o) {
            if (!(o instanceof Settings)) return false;
            Settings s = (Settings) o;
            return enabled == s.enabled && idleSeconds == s.idleSeconds && intervalSeconds == s.intervalSeconds
                    && count == s.count && userTimeoutMillis == s.userTimeoutMillis;
        }

        @Override
        public int hashCode() {
            return ((((enabled ? 1 : 0) * 31 + idleSeconds) * 31 + intervalSeconds) * 31 + count) * 31 + userTimeoutMillis;
        }

        /** Like the core's: {@code keep-alive on, idle 60s, interval 10s, count 6, user timeout unset}. */
        @Override
        public String toString() {
            return "keep-alive " + (enabled ? "on" : "off") + ", idle " + idleSeconds + "s, interval "
                    + intervalSeconds + "s, count " + count + ", user timeout "
                    + (userTimeoutMillis == 0 ? "unset" : userTimeoutMillis + "ms");
        }
    }
}
