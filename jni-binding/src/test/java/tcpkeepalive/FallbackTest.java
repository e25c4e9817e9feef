package tcpkeepalive;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static tcpkeepalive.TestSupport.assertKernel;
import static tcpkeepalive.TestSupport.expect;
import static tcpkeepalive.TestSupport.listen;

import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.nio.channels.SocketChannel;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The jdk.net fallback (used when the native library cannot load), checked against the native
 * library in the same JVM: same checks and messages, same effect on real sockets.
 */
@Timeout(60)
class FallbackTest {
    @Test
    void theJavaDefaultsAreTheCores() {
        // keepalive=on and nothing else: core's defaults, through the native library.
        int[] core = Native.parseSettings("keepalive=on");
        assertArrayEquals(new int[] {2, KeepAlive.DEFAULT_IDLE, KeepAlive.DEFAULT_INTERVAL, KeepAlive.DEFAULT_COUNT, 0}, core);
        assertArrayEquals(core, Fallback.parseSettings("keepalive=on"));
    }

    /** {seconds, nanos} pairs around every limit. */
    private static final long[][] DURATIONS = {{0, 0}, {0, 1}, {0, 999_999_999}, {1, 0}, {1, 1}, {-1, 0},
        {-1, 500_000_000}, {-3, 999_999_999}, {59, 500_000_000}, {32767, 0}, {32767, 1}, {32766, 999_999_999},
        {32768, 0}, {2147483, 647_000_000}, {2147483, 647_000_001}, {2147483, 648_000_000}, {Long.MAX_VALUE, 999_999_999}};
    private static final int[] COUNTS = {Integer.MIN_VALUE, -1, 0, 1, 6, 127, 128, Integer.MAX_VALUE};

    private static String outcome(boolean nativeSide, long[] idle, long[] interval, int count, long[] ut) {
        try {
            int[] v = nativeSide
                    ? Native.validate(idle[0], (int) idle[1], interval[0], (int) interval[1], count, ut != null,
                            ut == null ? 0 : ut[0], ut == null ? 0 : (int) ut[1])
                    : Fallback.validate(idle[0], (int) idle[1], interval[0], (int) interval[1], count, ut != null,
                            ut == null ? 0 : ut[0], ut == null ? 0 : (int) ut[1]);
            return Arrays.toString(v);
        } catch (IllegalArgumentException e) {
            return "IAE " + e.getMessage();
        }
    }

    @Test
    void checksAndMessagesMatchTheCore() {
        int compared = 0;
        long[] ok = {10, 0};
        for (long[] d : DURATIONS) {
            for (long[][] args : new long[][][] {{d, ok, null}, {ok, d, null}, {ok, ok, d}}) {
                assertEquals(outcome(true, args[0], args[1], 6, args[2]), outcome(false, args[0], args[1], 6, args[2]),
                        "idle/interval/userTimeout " + Arrays.deepToString(args));
                compared++;
            }
        }
        for (int c : COUNTS) {
            assertEquals(outcome(true, ok, ok, c, null), outcome(false, ok, ok, c, null), "count " + c);
            compared++;
        }
        assertEquals(DURATIONS.length * 3 + COUNTS.length, compared);
    }

    @Test
    void appliesThroughExtendedSocketOptions() throws Exception {
        try (ServerSocket server = listen(); Socket s = new Socket(server.getInetAddress(), server.getLocalPort());
                Socket peer = server.accept()) {
            assertFalse(s.getKeepAlive());
            Fallback.apply(s, 401, 61, 51, 0);
            assertKernel(s, expect(401, 61, 51)); // read by the JDK and by the native inspect
            assertArrayEquals(Native.inspect(s), Fallback.inspect(s));
        }
        try (ServerSocket server = listen(); SocketChannel ch = SocketChannel.open(TestSupport.address(server));
                Socket peer = server.accept()) {
            Fallback.apply(ch, 402, 62, 52, 0);
            assertKernel(ch, expect(402, 62, 52));
            Fallback.apply(ch.socket(), 403, 63, 53, 0);
            assertKernel(ch, expect(403, 63, 53));
        }
        try (ServerSocket server = new ServerSocket(0, 5, TestSupport.LOOPBACK)) {
            int[] before = Native.inspect(server);
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                    () -> Fallback.apply(server, 404, 64, 54, 0));
            assertTrue(e.getMessage().contains("listening socket"), e.getMessage());
            assertArrayEquals(before, Native.inspect(server), "nothing changed");
        }
    }

    @Test
    void kernelRefusalRestoresWhatWasWritten() throws Exception {
        try (ServerSocket server = listen(); Socket s = new Socket(server.getInetAddress(), server.getLocalPort());
                Socket peer = server.accept()) {
            KeepAlive.configure(s, 405, 65, 55);
            // Unchecked values straight to the fallback: the kernel refuses count 200 after idle and
            // interval were written; both go back.
            assertThrows(SocketException.class, () -> Fallback.apply(s, 406, 66, 200, 0));
            assertKernel(s, expect(405, 65, 55));
        }
    }
}
