package tcpkeepalive;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;

/**
 * Run in a child JVM by LoaderTest: loads (or fails to load) the library as the system properties
 * say, then configures a real loopback connection and prints what the kernel reports.
 */
public final class LoaderProbe {
    private LoaderProbe() {}

    public static void main(String[] args) throws Exception {
        System.out.println("native=" + KeepAlive.isNativeLoaded());
        System.out.println("error=" + KeepAlive.nativeLoadError().orElse("none").replace("\n", " | "));
        // While this JVM still runs: what the extraction left in the directory it was given.
        String setting = System.getProperty("tcpkeepalive.library");
        if (setting != null && new java.io.File(setting).isDirectory()) {
            String[] left = new java.io.File(setting).list();
            System.out.println("left=" + (left == null ? "?" : left.length));
        }
        try (ServerSocket server = new ServerSocket(0, 5, InetAddress.getLoopbackAddress());
                Socket s = new Socket()) {
            KeepAlive.configure(s, 301, 51, 41);
            s.connect(server.getLocalSocketAddress(), 10_000);
            try (Socket peer = server.accept()) {
                System.out.println("jdk=" + s.getKeepAlive() + "," + s.getOption(jdk.net.ExtendedSocketOptions.TCP_KEEPIDLE)
                        + "," + s.getOption(jdk.net.ExtendedSocketOptions.TCP_KEEPINTERVAL) + ","
                        + s.getOption(jdk.net.ExtendedSocketOptions.TCP_KEEPCOUNT));
                System.out.println("inspect=" + KeepAlive.inspect(s));
                try {
                    KeepAlive.builder().userTimeout(Duration.ofSeconds(5)).build().apply(s);
                    System.out.println("userTimeout=" + KeepAlive.inspect(s).userTimeout().orElse(null));
                } catch (UnsupportedOperationException e) {
                    System.out.println("userTimeout=" + e);
                }
            }
        }
    }
}
