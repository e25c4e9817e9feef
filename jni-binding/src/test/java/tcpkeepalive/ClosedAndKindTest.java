package tcpkeepalive;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static tcpkeepalive.TestSupport.listen;

import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;

/**
 * The door acts only on a socket that is open by the JDK's own account (a subclass's
 * {@code isClosed()} is not believed, and its old descriptor number may be another socket's by
 * now); the native fast path checks the kind it is given; the fallback throws the native path's
 * exception types.
 */
@Timeout(60)
class ClosedAndKindTest {
    /** A socket whose isClosed() always says open: the case of a wrapper that forgets to delegate. */
    static final class LyingSocket extends Socket {
        LyingSocket(InetAddress address, int port) throws IOException {
            super(address, port);
        }

        @Override
        public boolean isClosed() {
            return false;
        }
    }

    static final class LyingServerSocket extends ServerSocket {
        LyingServerSocket() throws IOException {
            super(0, 5, TestSupport.LOOPBACK);
        }

        @Override
        public boolean isClosed() {
            return false;
        }
    }

    private static SocketException closed(Executable call) {
        SocketException e = assertThrows(SocketException.class, call);
        assertTrue(e.getMessage() != null && e.getMessage().toLowerCase().contains("closed"), e.getMessage());
        return e;
    }

    /**
     * Opens sockets (at most 64) until one gets descriptor number {@code fd}; they are added to
     * {@code opened}, the one with {@code fd} last.
     */
    private static Socket reuse(ServerSocket server, int fd, List<Socket> opened) throws IOException {
        for (int i = 0; i < 64; i++) {
            Socket s = new Socket(server.getInetAddress(), server.getLocalPort());
            opened.add(s);
            opened.add(server.accept());
            if (Native.descriptor(s) == fd) {
                opened.add(s);
                return s;
            }
        }
        throw new AssertionError("no new socket reused descriptor " + fd + " in 64 tries");
    }

    @Test
    void aClosedSocketWhoseIsClosedLiesTouchesNoOtherSocket() throws Exception {
        List<Socket> opened = new ArrayList<>();
        try (ServerSocket server = listen()) {
            LyingSocket lying = new LyingSocket(server.getInetAddress(), server.getLocalPort());
            opened.add(server.accept());
            int fd = Native.descriptor(lying);
            lying.close();
            assertFalse(lying.isClosed(), "the subclass says open");
            Socket other = reuse(server, fd, opened);
            int[] before = Native.inspect(other);
            assertEquals(0, before[0], "the new socket has no keep-alive");

            closed(() -> KeepAlive.configure(lying, 71, 11, 7));
            closed(() -> KeepAlive.defaults().apply(lying));
            closed(() -> KeepAlive.inspect(lying));
            closed(() -> Native.descriptorGeneral(lying));
            // The fallback goes through the JDK's setOption, whose SocketImpl checks its own state.
            closed(() -> Fallback.apply(lying, 72, 12, 8, 0));
            closed(() -> Fallback.inspect(lying));
            assertArrayEquals(before, Native.inspect(other), "the socket that reused the number is untouched");
            assertFalse(other.getKeepAlive());
        } finally {
            for (Socket s : opened) s.close();
        }
    }

    @Test
    void aClosedServerSocketWhoseIsClosedLiesIsRefused() throws Exception {
        LyingServerSocket lying = new LyingServerSocket();
        int fd = Native.descriptor(lying);
        lying.close();
        List<Socket> opened = new ArrayList<>();
        try (ServerSocket server = listen()) {
            // The listener above may itself have taken the number: then it is the one to protect.
            Socket other = Native.descriptor(server) == fd ? null : reuse(server, fd, opened);
            int[] before = other == null ? Native.inspect(server) : Native.inspect(other);
            closed(() -> KeepAlive.configure(lying, 73, 13, 9));
            closed(() -> KeepAlive.inspect(lying));
            assertArrayEquals(before, other == null ? Native.inspect(server) : Native.inspect(other));
        } finally {
            for (Socket s : opened) s.close();
        }
    }

    /** Native.descriptor0(socket, kind), the private native method, called with any kind. */
    private static int descriptor0(Object socket, int kind) throws Throwable {
        Method m = Native.class.getDeclaredMethod("descriptor0", Object.class, int.class);
        m.setAccessible(true);
        try {
            return (Integer) m.invoke(null, socket, kind);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    private static void apply0(Object socket, int kind, int idle) throws Throwable {
        Method m = Native.class.getDeclaredMethod("apply0", Object.class, int.class, int.class, int.class, int.class,
                int.class, boolean.class);
        m.setAccessible(true);
        try {
            m.invoke(null, socket, kind, idle, 10, 6, 0, false);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    private static void wrongKind(Object socket, int kind, String... parts) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> descriptor0(socket, kind),
                socket.getClass().getName() + " with kind " + kind);
        for (String p : parts) assertTrue(e.getMessage().contains(p), e.getMessage());
    }

    @Test
    void aWrongKindIsAnExceptionNeverACrash() throws Throwable {
        try (ServerSocket server = listen(); Socket s = new Socket(server.getInetAddress(), server.getLocalPort());
                Socket peer = server.accept();
                SocketChannel ch = SocketChannel.open(TestSupport.address(server));
                Socket chPeer = server.accept();
                LyingSocket lying = new LyingSocket(server.getInetAddress(), server.getLocalPort());
                Socket lyingPeer = server.accept()) {
            // The right kinds find the same descriptor as the general walk.
            assertEquals(descriptor0(s, 0), descriptor0(s, 1));
            assertEquals(descriptor0(ch, 0), descriptor0(ch, 2));
            assertEquals(descriptor0(ch.socket(), 0), descriptor0(ch.socket(), 3));
            for (int kind : new int[] {1, 2, 3}) {
                if (kind != 1) wrongKind(s, kind, "kind " + kind, "java.net.Socket");
                if (kind != 2) wrongKind(ch, kind, "kind " + kind);
                if (kind != 3) wrongKind(ch.socket(), kind, "kind " + kind);
                wrongKind(server, kind, "kind " + kind, "java.net.ServerSocket");
                wrongKind(lying, kind, "kind " + kind, LyingSocket.class.getName());
                wrongKind(peer.getInputStream(), kind, "kind " + kind);
                wrongKind("not a socket", kind, "kind " + kind, "java.lang.String");
                wrongKind(new Object(), kind, "kind " + kind, "java.lang.Object");
            }
            for (int kind : new int[] {4, -1, 99, Integer.MIN_VALUE, Integer.MAX_VALUE}) {
                wrongKind(s, kind, "kind " + kind, "not one of");
            }
            int[] before = Native.inspect(server);
            assertThrows(IllegalArgumentException.class, () -> apply0(server, 1, 77));
            assertThrows(IllegalArgumentException.class, () -> apply0(s, 2, 77));
            assertArrayEquals(before, Native.inspect(server), "nothing changed");
            assertFalse(s.getKeepAlive(), "nothing changed");
            assertThrows(NullPointerException.class, () -> descriptor0(null, 1));
        }
    }

    @Test
    void fallbackThrowsTheNativeTypesForAUnixDomainChannel() throws Exception {
        Path dir = Files.createTempDirectory("tcp-keepalive-unix");
        Path path = dir.resolve("s.sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(path));
            try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                ch.connect(UnixDomainSocketAddress.of(path));
                assertThrows(SocketException.class, () -> Native.apply(ch, 60, 10, 6, 0, false));
                assertThrows(SocketException.class, () -> Native.inspect(ch));
                SocketException e = assertThrows(SocketException.class, () -> Fallback.apply(ch, 60, 10, 6, 0));
                assertTrue(e.getMessage().contains("not a TCP socket"), e.getMessage());
                assertThrows(SocketException.class, () -> Fallback.inspect(ch));
            }
        } finally {
            Files.deleteIfExists(path);
            Files.delete(dir);
        }
    }

    @Test
    void fallbackThrowsTheNativeTypesForAForeignSocketImpl() throws Exception {
        try (Socket foreign = new ErrorsTest.ForeignSocket()) {
            assertThrows(IllegalArgumentException.class, () -> Native.apply(foreign, 60, 10, 6, 0, false));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Fallback.apply(foreign, 60, 10, 6, 0));
            assertTrue(e.getMessage().contains(ErrorsTest.ForeignSocket.class.getName())
                    && e.getMessage().contains("SocketImpl"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Fallback.inspect(foreign));
            assertThrows(IllegalArgumentException.class, () -> Native.inspect(foreign));
        }
    }
}
