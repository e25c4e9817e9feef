package recipes;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Map;

/**
 * PostgreSQL's JDBC driver with the recipe in its URL only:
 * {@code socketFactory=tcpkeepalive.KeepAliveSocketFactory&socketFactoryArg=idle=...} (pgjdbc
 * calls the factory's String constructor with the arg) and {@code tcpKeepAlive=true} (without it
 * pgjdbc switches SO_KEEPALIVE off again on the socket the factory configured).
 *
 * <p>Environment: {@code PG_URL} (the JDBC URL, required), {@code PG_SLEEP} (seconds of
 * {@code pg_sleep}: the long query), {@code PG_USER}. It prints the connection's client port as
 * the server sees it ({@code pg_stat_activity.client_port}), then {@code waiting}, runs the long
 * query, and prints {@code ok: ...}; the caller reads the socket with that local port from outside
 * ({@code tcp-keepalive inspect --pid}) while the query runs. Exit codes as {@link Lab}: 0 done,
 * 11 the connection failed, 2 bad configuration (an invalid socketFactoryArg included).
 */
public final class PgjdbcClient {
    private PgjdbcClient() {}

    public static int run(Map<String, String> env) {
        String url = env.get("PG_URL");
        if (url == null || url.isEmpty()) {
            System.out.println("pgjdbc: PG_URL is not set");
            return Lab.BAD_CONFIG;
        }
        double sleep = Double.parseDouble(env.getOrDefault("PG_SLEEP", "0"));
        long started = System.nanoTime();
        try (Connection c = DriverManager.getConnection(url, env.getOrDefault("PG_USER", "postgres"), "");
                Statement st = c.createStatement()) {
            try (ResultSet rs = st.executeQuery(
                    "select client_port from pg_stat_activity where pid = pg_backend_pid()")) {
                rs.next();
                System.out.println("client_port=" + rs.getInt(1));
            }
            System.out.println("waiting");
            System.out.flush();
            try (ResultSet rs = st.executeQuery("select pg_sleep(" + sleep + "), 'slept'")) {
                rs.next();
                System.out.printf("ok: %s %.1f s after connecting%n", rs.getString(2), (System.nanoTime() - started) / 1e9);
            }
            return Lab.OK;
        } catch (SQLException e) {
            for (Throwable t : Lab.causes(e)) {
                if (t instanceof IllegalArgumentException) {
                    System.out.println("pgjdbc: bad socketFactoryArg: " + t.getMessage());
                    return Lab.BAD_CONFIG;
                }
            }
            System.out.println(Lab.errnoName(e) + ": " + e);
            return Lab.CONNECTION_FAILED;
        }
    }
}
