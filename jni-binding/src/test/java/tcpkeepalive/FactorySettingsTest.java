package tcpkeepalive;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static tcpkeepalive.TestSupport.assertKernel;
import static tcpkeepalive.TestSupport.expect;
import static tcpkeepalive.TestSupport.listen;

import java.net.ServerSocket;
import java.net.Socket;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The factories' constructors for drivers that take a class name (pgjdbc's socketFactory and
 * socketFactoryArg): the no-arg one reads the environment, the String one a settings string in the
 * same vocabulary; the native path (the core) and the fallback give the same results and errors.
 */
@Timeout(120)
class FactorySettingsTest {
    private static final String[] SETTINGS = {"", "  ", "idle=81,interval=8,count=4,user_timeout=12s", "idle=2m",
        " idle = 90s , count = 3 ", "count=127", "user_timeout=1500ms", "keepalive=on", "keepalive=off",
        "keepalive=off,idle=0", "keepalive=yes,interval=1h", "idle=0", "idle=32768", "idle=1h", "interval=ten",
        "count=0", "count=128", "count=+5", "count=5x", "user_timeout=0", "user_timeout=2147483648ms",
        "keepalive=maybe", "idle=60,idle=61", "idle", "idle=", "=60", "idle=60,", ",idle=60", "IDLE=60",
        "KEEPIDLE=60", "TCP_KEEPALIVE_IDLE=60", "idle=60;count=5", "idle=00000000000000000000060",
        "idle=99999999999999999999999h", "idle=60\u3000", "idle=\t60\n"};

    private static String outcome(boolean nativeSide, String settings) {
        try {
            return Arrays.toString(nativeSide ? Native.parseSettings(settings) : Fallback.parseSettings(settings));
        } catch (IllegalArgumentException e) {
            return "IAE " + e.getMessage();
        }
    }

    @Test
    void nativeAndFallbackParseSettingsAlike() {
        for (String s : SETTINGS) assertEquals(outcome(true, s), outcome(false, s), "settings \"" + s + "\"");
        assertEquals("[2, 81, 8, 4, 12000]", outcome(true, SETTINGS[2]));
        assertEquals("[0, 0, 0, 0, 0]", outcome(true, ""));
        assertEquals("[1, 0, 0, 0, 0]", outcome(true, "keepalive=off"));
        assertEquals("IAE invalid idle: \"0\" (allowed: 1 to 32767 seconds (finer values round up to whole seconds))",
                outcome(true, "idle=0"));
        assertTrue(outcome(true, "count=128").startsWith("IAE invalid count: \"128\""));
        assertTrue(outcome(true, "idle=60,idle=61").startsWith("IAE invalid setting: \"idle=61\" (allowed: key=value"));
        assertTrue(outcome(true, "KEEPIDLE=60").startsWith("IAE invalid setting: \"KEEPIDLE=60\""));
    }

    @Test
    void stringConstructorConfiguresEverySocket() throws Exception {
        KeepAliveSocketFactory f = new KeepAliveSocketFactory("idle=81,interval=8,count=4,user_timeout=12s");
        assertEquals(KeepAlive.builder().idle(java.time.Duration.ofSeconds(81)).interval(java.time.Duration.ofSeconds(8))
                .count(4).userTimeout(java.time.Duration.ofSeconds(12)).build(), f.keepAlive());
        try (ServerSocket server = listen(); Socket s = f.createSocket(server.getInetAddress(), server.getLocalPort());
                Socket peer = server.accept()) {
            assertKernel(s, expect(81, 8, 4, 12_000));
        }
        KeepAliveSSLSocketFactory tls = new KeepAliveSSLSocketFactory("idle=82,count=3");
        try (Socket s = tls.createSocket()) {
            assertKernel(s, expect(82, 10, 3));
        }
        assertEquals(KeepAlive.defaults(), new KeepAliveSocketFactory("").keepAlive());
    }

    @Test
    void keepaliveOffHandsSocketsOutUntouched() throws Exception {
        KeepAliveSocketFactory off = new KeepAliveSocketFactory("keepalive=off");
        assertNull(off.keepAlive());
        assertTrue(off.toString().contains("off"), off.toString());
        try (ServerSocket server = listen(); Socket s = off.createSocket(server.getInetAddress(), server.getLocalPort());
                Socket peer = server.accept()) {
            assertFalse(s.getKeepAlive());
        }
    }

    @Test
    void badSettingsAreRefusedNamingTheKey() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new KeepAliveSocketFactory("idle=60,count=500"));
        assertTrue(e.getMessage().startsWith("invalid count: \"500\""), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new KeepAliveSSLSocketFactory("idel=60"));
        assertTrue(e.getMessage().contains("\"idel=60\"") && e.getMessage().contains("keys keepalive"), e.getMessage());
        // pgjdbc passes null when the URL has no socketFactoryArg: the environment's settings.
        assertEquals(new KeepAliveSocketFactory().keepAlive(), new KeepAliveSocketFactory((String) null).keepAlive());
        assertEquals(new KeepAliveSSLSocketFactory().keepAlive(), new KeepAliveSSLSocketFactory((String) null).keepAlive());
    }

    /** The no-arg constructor in a child JVM with this environment, native and fallback. */
    private static String probe(Map<String, String> env, String... args) throws Exception {
        String nativeOut = TestSupport.runJava(env, Collections.<String>emptyList(), FactoryProbe.class, args);
        String fallbackOut = TestSupport.runJava(env, List.of("-Dtcpkeepalive.library=off"), FactoryProbe.class, args);
        assertTrue(nativeOut.startsWith("native=true ") || !nativeOut.startsWith("native="), nativeOut);
        assertTrue(fallbackOut.startsWith("native=false ") || !fallbackOut.startsWith("native="), fallbackOut);
        assertEquals(nativeOut.replace("native=true ", ""), fallbackOut.replace("native=false ", ""),
                "the fallback agrees with the core");
        return nativeOut.replace("native=true ", "");
    }

    @Test
    void noArgConstructorReadsTheEnvironment() throws Exception {
        Map<String, String> env = new HashMap<>();
        env.put("TCP_KEEPALIVE_IDLE", "83");
        env.put("TCP_KEEPALIVE_INTERVAL", "9");
        env.put("KEEPCNT", "5");
        assertEquals("keep-alive on, idle 83s, interval 9s, count 5, user timeout unset", probe(env));
        assertEquals("keep-alive on, idle 60s, interval 10s, count 6, user timeout unset",
                probe(Collections.<String, String>emptyMap()), "no variable: the defaults");
        assertTrue(probe(Collections.singletonMap("TCP_KEEPALIVE", "off")).startsWith("keep-alive off"),
                "TCP_KEEPALIVE=off: the socket is left alone");
        String bad = probe(Collections.singletonMap("TCP_KEEPALIVE_COUNT", "0"));
        assertTrue(bad.startsWith("java.lang.IllegalArgumentException: invalid TCP_KEEPALIVE_COUNT: \"0\""), bad);
        // The String constructor in a JVM of its own too (the fallback without the native library).
        assertEquals("keep-alive on, idle 84s, interval 10s, count 6, user timeout unset",
                probe(Collections.singletonMap("TCP_KEEPALIVE_IDLE", "85"), "idle=84"), "the string, not the environment");
    }
}
