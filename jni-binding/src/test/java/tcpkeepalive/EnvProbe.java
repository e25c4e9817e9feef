package tcpkeepalive;

/** Run in a child JVM by the tests: prints what KeepAlive.fromEnv() makes of its environment. */
public final class EnvProbe {
    private EnvProbe() {}

    public static void main(String[] args) {
        try {
            System.out.println("native=" + KeepAlive.isNativeLoaded() + " "
                    + KeepAlive.fromEnv().map(KeepAlive::toString).orElse("empty"));
        } catch (RuntimeException e) {
            System.out.println(e);
        }
    }
}
