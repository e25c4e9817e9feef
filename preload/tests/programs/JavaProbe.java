// An ordinary Java program (no keep-alive code of its own) that opens TCP sockets the usual ways
// and prints their keep-alive settings as the JDK reads them from the kernel
// (jdk.net.ExtendedSocketOptions). Run as a single file: `java JavaProbe.java`.
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketOption;
import java.net.StandardSocketOptions;
import java.nio.channels.NetworkChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import jdk.net.ExtendedSocketOptions;

public class JavaProbe {
    static String describe(String name, Object ka, Object idle, Object intvl, Object cnt) {
        return name + " ka=" + ka + " idle=" + idle + " intvl=" + intvl + " cnt=" + cnt;
    }

    static String of(String name, Socket s) throws Exception {
        return describe(name, s.getKeepAlive(), s.getOption(ExtendedSocketOptions.TCP_KEEPIDLE),
                s.getOption(ExtendedSocketOptions.TCP_KEEPINTERVAL),
                s.getOption(ExtendedSocketOptions.TCP_KEEPCOUNT));
    }

    static String of(String name, NetworkChannel c) throws Exception {
        return describe(name, c.getOption(StandardSocketOptions.SO_KEEPALIVE),
                c.getOption(ExtendedSocketOptions.TCP_KEEPIDLE),
                c.getOption(ExtendedSocketOptions.TCP_KEEPINTERVAL),
                c.getOption(ExtendedSocketOptions.TCP_KEEPCOUNT));
    }

    public static void main(String[] args) throws Exception {
        InetAddress loopback = InetAddress.getLoopbackAddress();
        try (ServerSocket server = new ServerSocket(0, 8, loopback);
                Socket client = new Socket(loopback, server.getLocalPort());
                Socket accepted = server.accept();
                SocketChannel channel = SocketChannel.open(
                        new InetSocketAddress(loopback, server.getLocalPort()));
                Socket accepted2 = server.accept()) {
            System.out.println(of("java-socket", client));
            System.out.println(of("java-accepted", accepted));
            System.out.println(of("java-channel", channel));
        }
        try (ServerSocketChannel listener = ServerSocketChannel.open()) {
            listener.bind(new InetSocketAddress(loopback, 0));
            System.out.println(describe("java-server-channel", "n/a",
                    listener.getOption(ExtendedSocketOptions.TCP_KEEPIDLE), "n/a", "n/a"));
        } catch (UnsupportedOperationException e) {
            System.out.println("java-server-channel unsupported");
        }
    }
}
