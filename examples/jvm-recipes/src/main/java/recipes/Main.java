package recipes;

/**
 * {@code java -jar jvm-recipes.jar CLIENT}: runs one recipe client (pekko, sttp, java-net-http,
 * pgjdbc) and exits with its code (see {@link Lab}).
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        String client = args.length > 0 ? args[0] : "";
        int code;
        try {
            code = run(client);
        } catch (Throwable t) {
            System.out.println("EIO: the client failed: " + t);
            code = Lab.CONNECTION_FAILED;
        }
        System.out.flush();
        // Client libraries keep non-daemon threads (pools, dispatchers) for a while: leave at once.
        System.exit(code);
    }

    private static int run(String client) throws Exception {
        int code;
        switch (client) {
            case "pekko": code = PekkoHttpClient.run(System.getenv()); break;
            case "sttp": code = SttpOkHttpClient.run(System.getenv()); break;
            case "java-net-http": code = JavaNetHttpClient.run(System.getenv()); break;
            case "pgjdbc": code = PgjdbcClient.run(System.getenv()); break;
            default:
                System.out.println("usage: java -jar jvm-recipes.jar pekko|sttp|java-net-http|pgjdbc");
                code = Lab.BAD_CONFIG;
        }
        return code;
    }
}
