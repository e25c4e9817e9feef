package tcpkeepalive;

import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketOption;
import java.net.StandardSocketOptions;
import java.nio.channels.NetworkChannel;
import java.util.Locale;
import java.util.Map;

/**
 * What runs when the native library is not loaded: {@code jdk.net.ExtendedSocketOptions}
 * (JDK 11+, 8u261+) through reflection, so the jar stays Java 8 bytecode. The checks and the
 * environment parsing mirror the core's, with the same messages ({@code FallbackTest} compares
 * them with the native ones). No JDK exposes {@code TCP_USER_TIMEOUT}: asking for one throws
 * {@code UnsupportedOperationException} saying why.
 */
final class Fallback {
    static final int MAX_SECONDS = 32767;
    static final int MAX_COUNT = 127;
    static final long MAX_USER_TIMEOUT_MS = Integer.MAX_VALUE;

    private static final SocketOption<?> IDLE = extended("TCP_KEEPIDLE");
    private static final SocketOption<?> INTERVAL = extended("TCP_KEEPINTERVAL");
    private static final SocketOption<?> COUNT = extended("TCP_KEEPCOUNT");

    private Fallback() {}

    private static SocketOption<?> extended(String name) {
        try {
            Class<?> c = Class.forName("jdk.net.ExtendedSocketOptions");
            Field f = c.getField(name);
            return (SocketOption<?>) f.get(null);
        } catch (Throwable t) {
            return null;
        }
    }

    private static String why() {
        String e = Native.loadError();
        return "tcp-keepalive's native library is not loaded (" + (e == null ? "?" : e.replace("\n", " ")) + ")";
    }

    // ---- checks, as the core makes them ----

    static int[] validate(long idleS, int idleN, long intervalS, int intervalN, int count, boolean hasUt,
            long utS, int utN) {
        int idle = seconds("idle", idleS, idleN);
        int interval = seconds("interval", intervalS, intervalN);
        if (count < 1 || count > MAX_COUNT) {
            throw invalid("count", Integer.toString(count), "1 to " + MAX_COUNT + " probes");
        }
        int ut = 0;
        if (hasUt) {
            long ms = ceil(utS, utN, 1_000_000L);
            if (ms < 1 || ms > MAX_USER_TIMEOUT_MS) {
                String value = (utN % 1_000_000 == 0 && utS >= 0) ? (utS * 1000 + utN / 1_000_000) + "ms" : show(utS, utN);
                throw invalid("user_timeout", value,
                        "1 to " + MAX_USER_TIMEOUT_MS + " milliseconds (finer values round up)");
            }
            ut = (int) ms;
        }
        return new int[] {idle, interval, count, ut};
    }

    private static int seconds(String name, long s, int n) {
        long secs = ceil(s, n, 1_000_000_000L);
        if (secs < 1 || secs > MAX_SECONDS) {
            throw invalid(name, show(s, n), "1 to " + MAX_SECONDS + " seconds (finer values round up to whole seconds)");
        }
        return (int) secs;
    }

    /** Rounds (s, n) up to units of {@code unit} nanoseconds; negative stays negative. */
    private static long ceil(long s, int n, long unit) {
        if (s < 0) return -1;
        long perSecond = 1_000_000_000L / unit;
        long whole = s > Long.MAX_VALUE / perSecond - 1 ? Long.MAX_VALUE / 2 : s * perSecond;
        return whole + (n + unit - 1) / unit;
    }

    /** A duration as the core shows it: 90s, 1500ms, else nanoseconds. */
    private static String show(long s, int n) {
        java.math.BigInteger total = java.math.BigInteger.valueOf(s).multiply(java.math.BigInteger.valueOf(1_000_000_000L))
                .add(java.math.BigInteger.valueOf(n));
        java.math.BigInteger[] sec = total.divideAndRemainder(java.math.BigInteger.valueOf(1_000_000_000L));
        if (sec[1].signum() == 0) return sec[0] + "s";
        java.math.BigInteger[] ms = total.divideAndRemainder(java.math.BigInteger.valueOf(1_000_000L));
        if (ms[1].signum() == 0) return ms[0] + "ms";
        // Exact, as core writes it (core/src/fields.rs show): never a language's debug format.
        return total + "ns";
    }

    static IllegalArgumentException invalid(String name, String value, String allowed) {
        return new IllegalArgumentException("invalid " + name + ": " + quote(value) + " (allowed: " + allowed + ")");
    }

    /**
     * A value as the core's messages show it (core/src/error.rs {@code quote}): printable ASCII
     * as is, except the double quote and the backslash, which get a backslash before; tab, LF, CR
     * as backslash-t, -n, -r; any other character as backslash-u{hex} (lowercase hex).
     */
    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); ) {
            int c = s.codePointAt(i);
            i += Character.charCount(c);
            if (c == '"' || c == '\\') b.append('\\').append((char) c);
            else if (c == '\t') b.append("\\t");
            else if (c == '\n') b.append("\\n");
            else if (c == '\r') b.append("\\r");
            else if (c >= ' ' && c <= '~') b.append((char) c);
            else b.append('\\').append("u{").append(Integer.toHexString(c)).append('}');
        }
        return b.append('"').toString();
    }

    // ---- environment, as the core reads it (core/src/env.rs, KeepAlive::from_lookup) ----

    private static final String DURATION_FORMS = "a whole number of seconds, or with a unit: 90, 90s, 2m, 1h, 1500ms";
    private static final String SWITCH_WORDS = "on or off (also 1/0, true/false, yes/no)";

    /** Each setting's names in the order read (ours, classic libkeepalive, msantos, libdontdie). */
    private static final String[] SWITCH = {"TCP_KEEPALIVE", "KEEPALIVE", "DD_USE_KEEPALIVE"};
    private static final String[] IDLE_VARS = {"TCP_KEEPALIVE_IDLE", "KEEPIDLE", "TCP_KEEPIDLE", "DD_TCP_KEEPALIVE_TIME"};
    private static final String[] INTERVAL_VARS = {"TCP_KEEPALIVE_INTERVAL", "KEEPINTVL", "TCP_KEEPINTVL",
        "DD_TCP_KEEPALIVE_INTVL"};
    private static final String[] COUNT_VARS = {"TCP_KEEPALIVE_COUNT", "KEEPCNT", "TCP_KEEPCNT", "DD_TCP_KEEPALIVE_PROBES"};
    private static final String[] USER_TIMEOUT_VARS = {"TCP_KEEPALIVE_USER_TIMEOUT", "TCP_USER_TIMEOUT"};
    /** msantos/libkeepalive's names: a plain 0 there means "leave the system's value", i.e. unset. */
    private static final java.util.List<String> MSANTOS = java.util.Arrays.asList("TCP_KEEPIDLE", "TCP_KEEPINTVL",
            "TCP_KEEPCNT", "TCP_USER_TIMEOUT");

    private static final java.math.BigInteger NANOS_PER_SECOND = java.math.BigInteger.valueOf(1_000_000_000L);
    private static final java.math.BigInteger NANOS_PER_MILLI = java.math.BigInteger.valueOf(1_000_000L);

    /** {state (0 unset, 1 off, 2 on), idle s, interval s, count, user timeout ms}. */
    static int[] fromEnv(Map<String, String> env) {
        String[] sw = first(env, SWITCH);
        String[] idle = first(env, IDLE_VARS);
        String[] interval = first(env, INTERVAL_VARS);
        String[] count = first(env, COUNT_VARS);
        String[] ut = first(env, USER_TIMEOUT_VARS);
        if (sw != null && !parseSwitch(sw[0], sw[1])) return new int[] {1, 0, 0, 0, 0};
        if (sw == null && idle == null && interval == null && count == null && ut == null) {
            return new int[] {0, 0, 0, 0, 0};
        }
        int i = idle == null ? KeepAlive.DEFAULT_IDLE : envSeconds(idle);
        int n = interval == null ? KeepAlive.DEFAULT_INTERVAL : envSeconds(interval);
        int c = count == null ? KeepAlive.DEFAULT_COUNT : parseCount(count[0], count[1]);
        int u = 0;
        if (ut != null) {
            java.math.BigInteger nanos;
            if (ut[0].equals("TCP_USER_TIMEOUT") && asciiTrim(ut[1]).equals("-1")) {
                nanos = java.math.BigInteger.valueOf(i + (long) n * c).multiply(NANOS_PER_SECOND);
            } else {
                nanos = parseDuration(ut[0], ut[1], ut[0].equals("TCP_USER_TIMEOUT") ? NANOS_PER_MILLI : NANOS_PER_SECOND);
            }
            long ms = ceilUnits(nanos, NANOS_PER_MILLI);
            if (ms < 1 || ms > MAX_USER_TIMEOUT_MS) {
                throw invalid(ut[0], ut[1], "1 to " + MAX_USER_TIMEOUT_MS + " milliseconds (finer values round up)");
            }
            u = (int) ms;
        }
        return new int[] {2, i, n, c, u};
    }

    /** {name, value} of the first of {@code names} that is set (blank is unset; msantos's 0 too). */
    private static String[] first(Map<String, String> env, String[] names) {
        for (String name : names) {
            String v = env.get(name);
            if (v == null || asciiTrim(v).isEmpty()) continue;
            if (MSANTOS.contains(name)) {
                String[] number = splitNumber(v);
                if (!number[0].isEmpty() && number[1].isEmpty() && new java.math.BigInteger(number[0]).signum() == 0) {
                    continue;
                }
            }
            return new String[] {name, v};
        }
        return null;
    }

    private static boolean parseSwitch(String name, String text) {
        String v = asciiLower(asciiTrim(text));
        if (v.equals("on") || v.equals("1") || v.equals("true") || v.equals("yes")) return true;
        if (v.equals("off") || v.equals("0") || v.equals("false") || v.equals("no")) return false;
        throw invalid(name, text, SWITCH_WORDS);
    }

    private static String asciiLower(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (char c : s.toCharArray()) b.append(c >= 'A' && c <= 'Z' ? (char) (c + 32) : c);
        return b.toString();
    }

    /**
     * The number rule: surrounding ASCII whitespace ignored, then ASCII digits only (no sign),
     * any leading zeros. {digits, the rest of the trimmed text}.
     */
    private static String[] splitNumber(String text) {
        String t = asciiTrim(text);
        int split = 0;
        while (split < t.length() && t.charAt(split) >= '0' && t.charAt(split) <= '9') split++;
        return new String[] {t.substring(0, split), t.substring(split)};
    }

    /** Nanoseconds of {@code 90}, {@code 90s}, {@code 2m}, {@code 1h}, {@code 1500ms}; bare in {@code bare}. */
    private static java.math.BigInteger parseDuration(String name, String text, java.math.BigInteger bare) {
        String[] number = splitNumber(text);
        if (number[0].isEmpty()) throw invalid(name, text, DURATION_FORMS);
        java.math.BigInteger n = new java.math.BigInteger(number[0]);
        String unit = asciiTrim(number[1]);
        // Exact arithmetic where the core saturates at u64::MAX: both only ever exceed the range.
        if (unit.isEmpty()) return n.multiply(bare);
        if (unit.equals("s")) return n.multiply(NANOS_PER_SECOND);
        if (unit.equals("ms")) return n.multiply(NANOS_PER_MILLI);
        if (unit.equals("m")) return n.multiply(java.math.BigInteger.valueOf(60_000_000_000L));
        if (unit.equals("h")) return n.multiply(java.math.BigInteger.valueOf(3_600_000_000_000L));
        throw invalid(name, text, DURATION_FORMS);
    }

    /** Rounds up to whole units; beyond a long, Long.MAX_VALUE (out of every range). */
    private static long ceilUnits(java.math.BigInteger nanos, java.math.BigInteger unit) {
        java.math.BigInteger[] qr = nanos.divideAndRemainder(unit);
        java.math.BigInteger units = qr[1].signum() == 0 ? qr[0] : qr[0].add(java.math.BigInteger.ONE);
        return units.bitLength() > 62 ? Long.MAX_VALUE : units.longValue();
    }

    private static int envSeconds(String[] var) {
        long secs = ceilUnits(parseDuration(var[0], var[1], NANOS_PER_SECOND), NANOS_PER_SECOND);
        if (secs < 1 || secs > MAX_SECONDS) {
            throw invalid(var[0], var[1], "1 to " + MAX_SECONDS + " seconds (finer values round up to whole seconds)");
        }
        return (int) secs;
    }

    private static int parseCount(String name, String text) {
        String[] number = splitNumber(text);
        if (number[0].isEmpty() || !number[1].isEmpty()) {
            throw invalid(name, text, "a whole number from 1 to " + MAX_COUNT);
        }
        java.math.BigInteger n = new java.math.BigInteger(number[0]);
        if (n.signum() == 0 || n.compareTo(java.math.BigInteger.valueOf(MAX_COUNT)) > 0) {
            throw invalid(name, text, "1 to " + MAX_COUNT + " probes");
        }
        return n.intValue();
    }

    /** The keys of a settings string and the variables they stand for (lib.rs SETTING_KEYS). */
    private static final String[][] SETTING_KEYS = {{"keepalive", "TCP_KEEPALIVE"}, {"idle", "TCP_KEEPALIVE_IDLE"},
        {"interval", "TCP_KEEPALIVE_INTERVAL"}, {"count", "TCP_KEEPALIVE_COUNT"},
        {"user_timeout", "TCP_KEEPALIVE_USER_TIMEOUT"}};
    private static final String SETTINGS_FORM = "key=value items separated by commas, keys keepalive (on/off), idle, "
            + "interval, count, user_timeout, each at most once, e.g. idle=60,interval=10,count=6,user_timeout=30s";

    /** As the native parseSettings: each key is its variable, parsed by {@link #fromEnv}. */
    static int[] parseSettings(String text) {
        if (text == null) throw new NullPointerException("settings is null");
        Map<String, String> vars = new java.util.HashMap<String, String>();
        boolean blank = asciiTrim(text).isEmpty();
        for (String item : text.split(",", -1)) {
            if (blank) continue;
            int eq = item.indexOf('=');
            String var = null;
            if (eq >= 0) {
                String key = asciiTrim(item.substring(0, eq));
                for (String[] k : SETTING_KEYS) if (k[0].equals(key)) var = k[1];
            }
            if (var == null || vars.containsKey(var) || asciiTrim(item.substring(eq + 1)).isEmpty()) {
                throw invalid("setting", item, SETTINGS_FORM);
            }
            vars.put(var, item.substring(eq + 1));
        }
        try {
            return fromEnv(vars);
        } catch (IllegalArgumentException e) {
            for (String[] k : SETTING_KEYS) {
                String prefix = "invalid " + k[1] + ": ";
                if (e.getMessage().startsWith(prefix)) {
                    throw new IllegalArgumentException("invalid " + k[0] + ": " + e.getMessage().substring(prefix.length()));
                }
            }
            throw e;
        }
    }

    /** Without surrounding ASCII whitespace (space, tab, LF, FF, CR), as the core trims. */
    static String asciiTrim(String s) {
        int start = 0;
        int end = s.length();
        while (start < end && isAsciiWhitespace(s.charAt(start))) start++;
        while (end > start && isAsciiWhitespace(s.charAt(end - 1))) end--;
        return s.substring(start, end);
    }

    private static boolean isAsciiWhitespace(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
    }

    // ---- sockets, through jdk.net.ExtendedSocketOptions ----

    static void apply(Object target, int idle, int interval, int count, int userTimeoutMillis) throws SocketException {
        if (userTimeoutMillis != 0) {
            throw new UnsupportedOperationException("TCP_USER_TIMEOUT cannot be set: " + why()
                    + ", and no JDK offers TCP_USER_TIMEOUT in jdk.net.ExtendedSocketOptions");
        }
        requireOptions();
        requireTcp(target);
        if (target instanceof ServerSocket) {
            throw new UnsupportedOperationException("the JDK cannot set SO_KEEPALIVE on a listening socket, and "
                    + why() + "; configure the accepted sockets instead");
        }
        Object[] opts = {IDLE, INTERVAL, COUNT, StandardSocketOptions.SO_KEEPALIVE};
        Object[] values = {idle, interval, count, Boolean.TRUE};
        Object[] old = new Object[opts.length];
        for (int i = 0; i < opts.length; i++) old[i] = get(target, (SocketOption<?>) opts[i]);
        int done = 0;
        try {
            for (; done < opts.length; done++) set(target, (SocketOption<?>) opts[done], values[done]);
        } catch (SocketException | RuntimeException e) {
            for (int i = 0; i < done; i++) {
                try {
                    set(target, (SocketOption<?>) opts[i], old[i]);
                } catch (Exception ignored) {
                    // best effort: the original error is the one to report
                }
            }
            throw e;
        }
    }

    static int[] inspect(Object target) throws SocketException {
        requireOptions();
        requireTcp(target);
        boolean on = (Boolean) get(target, StandardSocketOptions.SO_KEEPALIVE);
        return new int[] {on ? 1 : 0, (Integer) get(target, IDLE), (Integer) get(target, INTERVAL),
            (Integer) get(target, COUNT), 0};
    }

    private static void requireOptions() {
        if (IDLE == null || INTERVAL == null || COUNT == null) {
            throw new UnsupportedOperationException("keep-alive timings cannot be set: " + why()
                    + ", and this JDK (" + System.getProperty("java.version")
                    + ") lacks jdk.net.ExtendedSocketOptions.TCP_KEEPIDLE (JDK 11+, 8u261+)");
        }
    }

    /**
     * The same exception types as the native path where the JDK would throw
     * {@code UnsupportedOperationException} for a missing option: a channel without TCP options
     * (Unix-domain) is not TCP ({@code SocketException}); a socket whose {@code SocketImpl} is not
     * the JDK's is one this library cannot see into ({@code IllegalArgumentException}).
     */
    private static void requireTcp(Object target) throws SocketException {
        if (target instanceof NetworkChannel) {
            if (!((NetworkChannel) target).supportedOptions().contains(IDLE)) {
                throw new SocketException("the " + target.getClass().getName() + " is not a TCP socket (" + target
                        + "): keep-alive options apply to TCP sockets only");
            }
            return;
        }
        if (!(target instanceof Socket) && !(target instanceof ServerSocket)) {
            throw new IllegalArgumentException("tcp-keepalive cannot configure a " + target.getClass().getName()
                    + ": it knows java.net.Socket, java.net.ServerSocket and SocketChannel");
        }
        Object supported;
        try {
            // JDK 9+ (the jar is Java 8 bytecode); JDK 8 has no way to ask, and goes on.
            supported = target.getClass().getMethod("supportedOptions").invoke(target);
        } catch (ReflectiveOperationException | RuntimeException e) {
            return;
        }
        if (supported instanceof java.util.Set && !((java.util.Set<?>) supported).contains(IDLE)) {
            throw new IllegalArgumentException("tcp-keepalive cannot configure this " + target.getClass().getName()
                    + ": its SocketImpl is not the JDK's and offers no TCP_KEEPIDLE (" + why() + ")");
        }
    }

    private static Object get(Object target, SocketOption<?> option) throws SocketException {
        if (target instanceof NetworkChannel) {
            try {
                return ((NetworkChannel) target).getOption(option);
            } catch (IOException e) {
                throw asSocketException(e);
            }
        }
        return invoke(target, "getOption", option, null, false);
    }

    @SuppressWarnings("unchecked")
    private static void set(Object target, SocketOption<?> option, Object value) throws SocketException {
        if (target instanceof NetworkChannel) {
            try {
                ((NetworkChannel) target).setOption((SocketOption<Object>) option, value);
                return;
            } catch (IOException e) {
                throw asSocketException(e);
            }
        }
        invoke(target, "setOption", option, value, true);
    }

    /** {@code Socket/ServerSocket.get/setOption} (JDK 9+), else {@code jdk.net.Sockets} (JDK 8). */
    private static Object invoke(Object target, String name, SocketOption<?> option, Object value, boolean set)
            throws SocketException {
        Class<?> kind = target instanceof ServerSocket ? ServerSocket.class : Socket.class;
        if (!(target instanceof Socket) && !(target instanceof ServerSocket)) {
            throw new IllegalArgumentException("tcp-keepalive cannot configure a " + target.getClass().getName());
        }
        try {
            Method m;
            Object[] args;
            Object receiver;
            try {
                m = set ? kind.getMethod(name, SocketOption.class, Object.class) : kind.getMethod(name, SocketOption.class);
                args = set ? new Object[] {option, value} : new Object[] {option};
                receiver = target;
            } catch (NoSuchMethodException jdk8) {
                Class<?> sockets = Class.forName("jdk.net.Sockets");
                m = set ? sockets.getMethod(name, kind, SocketOption.class, Object.class)
                        : sockets.getMethod(name, kind, SocketOption.class);
                args = set ? new Object[] {target, option, value} : new Object[] {target, option};
                receiver = null;
            }
            return m.invoke(receiver, args);
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException) throw asSocketException((IOException) cause);
            if (cause instanceof RuntimeException) throw (RuntimeException) cause;
            throw new IllegalStateException(cause);
        } catch (ReflectiveOperationException e) {
            throw new UnsupportedOperationException("cannot set " + option + " on this JDK: " + e, e);
        }
    }

    private static SocketException asSocketException(IOException e) {
        if (e instanceof SocketException) return (SocketException) e;
        SocketException s = new SocketException(e.getMessage());
        s.initCause(e);
        return s;
    }
}
