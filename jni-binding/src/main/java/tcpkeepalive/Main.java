package tcpkeepalive;

/**
 * {@code java -jar tcp-keepalive-0.1.0.jar}: tells whether the native library loads here (and if
 * not, everything tried) and what the {@code TCP_KEEPALIVE_*} environment asks for. Exit status 0
 * when the library loaded and the environment is valid, 1 otherwise.
 */
public final class Main {
    private Main() {}

    /**
     * Prints the report.
     *
     * @param args ignored
     */
    public static void main(String[] args) {
        int status = 0;
        System.out.println("tcp-keepalive 0.1.0 on Java " + System.getProperty("java.version") + ", "
                + Native.platform());
        if (KeepAlive.isNativeLoaded()) {
            System.out.println("native library: loaded");
        } else {
            System.out.println("native library: " + KeepAlive.nativeLoadError().orElse("not loaded"));
            System.out.println("(falling back to jdk.net.ExtendedSocketOptions: no user timeout)");
            status = 1;
        }
        try {
            System.out.println("environment: " + KeepAlive.fromEnv().map(KeepAlive::toString)
                    .orElse("no keep-alive requested (TCP_KEEPALIVE_* unset, or TCP_KEEPALIVE=off)"));
        } catch (IllegalArgumentException e) {
            System.out.println("environment: " + e.getMessage());
            status = 1;
        }
        System.exit(status);
    }
}
