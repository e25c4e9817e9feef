package tcpkeepalive;

import java.net.ServerSocket;
import java.net.Socket;

/**
 * Run in a child JVM by the tests: a socket from {@code new KeepAliveSocketFactory()} (or, with
 * an argument, {@code new KeepAliveSocketFactory(arg)}) connected to a local server, and what the
 * kernel then says about it.
 */
public final class FactoryProbe {
    private FactoryProbe() {}

    public static void main(String[] args) throws Exception {
        try (ServerSocket server = new ServerSocket(0, 5, TestSupport.LOOPBACK)) {
            KeepAliveSocketFactory factory =
                    args.length == 0 ? new KeepAliveSocketFactory() : new KeepAliveSocketFactory(args[0]);
            try (Socket s = factory.createSocket(server.getInetAddress(), server.getLocalPort());
                    Socket peer = server.accept()) {
                System.out.println("native=" + KeepAlive.isNativeLoaded() + " " + KeepAlive.inspect(s));
            }
        } catch (RuntimeException e) {
            System.out.println(e);
        }
    }
}
