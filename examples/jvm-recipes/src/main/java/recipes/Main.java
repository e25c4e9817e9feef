package recipes;

/**
 * {@code java -jar jvm-recipes.jar CLIENT}: runs one recipe client (pekko, sttp, java-net-http,
 * pgjdbc) and exits with its code (see {@link Lab}).
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) throws Exception {
        String client = args.length > 0 ? args[0] : "";
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
        System.out.flush();
        // Client libraries keep non-daemon threads (pools, dispatchers) for a while: leave at once.
        System.exit(code);
    }
}
