package recipes;

import java.net.ConnectException;
import java.net.NoRouteToHostException;
import java.net.SocketException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import tcpkeepalive.KeepAlive;

/**
 * The middlebox lab's client contract (e2e/README.md), shared by the recipe clients: the
 * environment they read and the exit codes they end with.
 *
 * <ul>
 *   <li>{@code LAB_URL}: what to request (required);</li>
 *   <li>{@code LAB_DEADLINE}: seconds, the client's own read timeout (default 30);</li>
 *   <li>{@code LAB_KEEPALIVE}: {@code on} to use the recipe with {@code KeepAlive.fromEnv()} (the
 *       timings from {@code TCP_KEEPALIVE_IDLE} and the rest); anything else: the library as it
 *       comes;</li>
 *   <li>{@code LAB_WRITE_AFTER}: seconds; send a POST whose body follows the headers that late.</li>
 * </ul>
 * Exit codes: 0 the full answer arrived; 10 the read deadline passed; 11 the connection failed
 * (the errno name is printed); 2 bad configuration; 1 keep-alive was asked for and the recipe did
 * not reach the connection's socket.
 */
public final class Lab {
    public static final int OK = 0;
    public static final int NOT_CONFIGURED = 1;
    public static final int BAD_CONFIG = 2;
    public static final int DEADLINE_PASSED = 10;
    public static final int CONNECTION_FAILED = 11;

    public final String url;
    public final long deadlineMillis;
    /** Negative: a GET; else a POST whose body follows this many ms after the headers. */
    public final long writeAfterMillis;
    /** Null: keep-alive not asked for (LAB_KEEPALIVE is not on). */
    public final KeepAlive keepAlive;
    /** Null: {@link #mode()} describes {@link #keepAlive}. */
    private final String fixedMode;
    private final long started = System.nanoTime();

    private Lab(String url, long deadlineMillis, long writeAfterMillis, KeepAlive keepAlive, String fixedMode) {
        this.url = url;
        this.deadlineMillis = deadlineMillis;
        this.writeAfterMillis = writeAfterMillis;
        this.keepAlive = keepAlive;
        this.fixedMode = fixedMode;
    }

    /** Thrown by {@link #fromEnv}: the message says what is wrong; exit {@link #BAD_CONFIG}. */
    public static final class BadConfig extends Exception {
        BadConfig(String message) {
            super(message);
        }
    }

    public static Lab fromEnv(Map<String, String> env) throws BadConfig {
        return fromEnv(env, false);
    }

    /**
     * {@code hookless}: a client without keep-alive code of its own, which ignores
     * {@code LAB_KEEPALIVE} and says where keep-alive may come from instead.
     */
    public static Lab fromEnv(Map<String, String> env, boolean hookless) throws BadConfig {
        String url = env.get("LAB_URL");
        if (url == null || url.isEmpty()) throw new BadConfig("LAB_URL is not set");
        long deadline = millis(env, "LAB_DEADLINE", 30_000);
        long writeAfter = env.containsKey("LAB_WRITE_AFTER") ? millis(env, "LAB_WRITE_AFTER", 0) : -1;
        KeepAlive keepAlive = null;
        if (hookless) {
            String preload = env.get("LD_PRELOAD");
            return new Lab(url, deadline, writeAfter, null, "no keep-alive code"
                    + (preload != null && preload.contains("libkeepalive") ? ", LD_PRELOAD=" + preload : ""));
        }
        if ("on".equals(env.get("LAB_KEEPALIVE"))) {
            try {
                keepAlive = KeepAlive.fromEnv().orElse(KeepAlive.defaults());
            } catch (IllegalArgumentException e) {
                throw new BadConfig(e.getMessage());
            }
        }
        return new Lab(url, deadline, writeAfter, keepAlive, null);
    }

    private static long millis(Map<String, String> env, String name, long dflt) throws BadConfig {
        String text = env.get(name);
        if (text == null) return dflt;
        try {
            double s = Double.parseDouble(text.trim());
            if (s >= 0 && s <= 86400) return Math.max(1, Math.round(s * 1000));
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new BadConfig(name + "=" + text + " is not a number of seconds between 0 and 86400");
    }

    /** What the client used, for its one line: "keep-alive off" or the settings and the door. */
    public String mode() {
        if (fixedMode != null) return fixedMode;
        if (keepAlive == null) return "keep-alive off";
        return "keep-alive on, " + (KeepAlive.isNativeLoaded() ? "native" : "fallback") + ", idle "
                + keepAlive.idle().getSeconds() + "s, interval " + keepAlive.interval().getSeconds() + "s, count "
                + keepAlive.count();
    }

    public String elapsed() {
        return String.format(Locale.ROOT, "%.1f s", (System.nanoTime() - started) / 1e9);
    }

    /** Prints the outcome of an answer and returns its exit code. */
    public int answered(int status, long bytes, String socketSettings) {
        if (status != 200) {
            System.out.println("http-error: HTTP " + status + " after " + elapsed() + " (" + mode() + ")");
            return CONNECTION_FAILED;
        }
        if (keepAlive != null && socketSettings == null) {
            System.out.println("not-configured: HTTP 200 but the recipe never saw the connection's socket (" + mode() + ")");
            return NOT_CONFIGURED;
        }
        System.out.println("ok: HTTP 200, " + bytes + " bytes after " + elapsed() + " (" + mode() + ")"
                + (socketSettings == null ? "" : " [socket: " + socketSettings + "]"));
        return OK;
    }

    public int deadlinePassed() {
        System.out.println("deadline: no answer within " + deadlineMillis / 1000.0 + " s, " + elapsed() + " (" + mode() + ")");
        return DEADLINE_PASSED;
    }

    /** Prints a failure: the errno name behind it when one is found, else EIO. */
    public int failed(Throwable e) {
        System.out.println(errnoName(e) + ": " + e + " after " + elapsed() + " (" + mode() + ")");
        return CONNECTION_FAILED;
    }

    public static List<Throwable> causes(Throwable e) {
        List<Throwable> all = new ArrayList<>();
        for (Throwable c = e; c != null && all.size() < 10; c = c.getCause()) all.add(c);
        return all;
    }

    /** The errno behind a failure, from the OS text the JDK copies into its exceptions. */
    public static String errnoName(Throwable e) {
        String[][] known = {{"connection timed out", "ETIMEDOUT"}, {"connect timed out", "ETIMEDOUT"},
            {"connection reset", "ECONNRESET"}, {"connection refused", "ECONNREFUSED"},
            {"no route to host", "EHOSTUNREACH"}, {"network is unreachable", "ENETUNREACH"},
            {"broken pipe", "EPIPE"}, {"host is down", "EHOSTDOWN"}};
        for (Throwable c : causes(e)) {
            String text = String.valueOf(c.getMessage()).toLowerCase(Locale.ROOT);
            for (String[] k : known) if (text.contains(k[0])) return k[1];
        }
        for (Throwable c : causes(e)) {
            if (c instanceof ConnectException) return "ECONNREFUSED";
            if (c instanceof NoRouteToHostException) return "EHOSTUNREACH";
            if (c instanceof SocketException) return "EIO";
        }
        return "EIO";
    }
}
