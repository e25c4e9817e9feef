// An unmodified Java HTTP client: java.net.HttpURLConnection, no keep-alive code at all.
// It follows the middlebox lab's client contract (see e2e/ and HELPERS): run as a single file,
//   java PlainJavaClient.java
// with LAB_URL (the URL to GET), LAB_DEADLINE (read timeout in seconds) and, optionally,
// LAB_WRITE_AFTER (send a POST whose body goes out that many seconds after the headers).
// Exit codes: 0 full answer, 10 read deadline passed, 11 connection failed (errno name printed),
// 2 bad usage. Keep-alive, when there is any, comes from LD_PRELOAD=libkeepalive.so.
// Note: HttpURLConnection silently retries a GET once, on a new connection, when the first one
// fails with an error (reset, ETIMEDOUT), but not after its read timeout, and never a POST in
// streaming mode. That is stock JDK behaviour, kept here because this client is "unmodified".
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.HttpURLConnection;
import java.net.NoRouteToHostException;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.nio.charset.StandardCharsets;

public class PlainJavaClient {
    public static void main(String[] args) {
        String url = System.getenv("LAB_URL");
        String deadline = System.getenv("LAB_DEADLINE");
        if (url == null || deadline == null) {
            System.out.println("usage: LAB_URL=... LAB_DEADLINE=seconds java PlainJavaClient.java");
            System.exit(2);
        }
        String writeAfter = System.getenv("LAB_WRITE_AFTER");
        int deadlineMs = (int) Math.round(Double.parseDouble(deadline) * 1000);
        try {
            HttpURLConnection conn = (HttpURLConnection) new URI(url).toURL().openConnection();
            conn.setConnectTimeout(deadlineMs);
            conn.setReadTimeout(deadlineMs);
            if (writeAfter != null && !writeAfter.isEmpty()) {
                byte[] body = "late body\n".getBytes(StandardCharsets.US_ASCII);
                conn.setRequestMethod("POST");
                conn.setDoOutput(true);
                // Streaming mode sends the headers when the stream is opened, the body later.
                conn.setFixedLengthStreamingMode(body.length);
                try (OutputStream out = conn.getOutputStream()) {
                    Thread.sleep(Math.round(Double.parseDouble(writeAfter) * 1000));
                    out.write(body);
                }
            }
            int status = conn.getResponseCode();
            long expected = conn.getContentLengthLong();
            long bytes = 0;
            try (InputStream in = status < 400 ? conn.getInputStream() : conn.getErrorStream()) {
                byte[] buf = new byte[8192];
                for (int n; in != null && (n = in.read(buf)) > 0; ) {
                    bytes += n;
                }
            }
            if (status != 200) {
                System.out.println("HTTP " + status);
                System.exit(11);
            }
            if (expected >= 0 && bytes != expected) {
                System.out.println("EOF: " + bytes + " of " + expected + " bytes");
                System.exit(11);
            }
            System.out.println("ok: HTTP 200, " + bytes + " bytes");
            System.exit(0);
        } catch (SocketTimeoutException e) {
            System.out.println("deadline passed: " + e.getMessage());
            System.exit(10);
        } catch (IOException e) {
            System.out.println(errnoName(e) + ": " + e);
            System.exit(11);
        } catch (Exception e) {
            System.out.println("bug: " + e);
            System.exit(3);
        }
    }

    /** The errno behind a JDK I/O error; the JDK keeps only the message. */
    static String errnoName(IOException e) {
        String m = String.valueOf(e.getMessage());
        if (m.contains("timed out")) return "ETIMEDOUT";
        if (m.contains("reset")) return "ECONNRESET";
        if (m.contains("refused") || e instanceof ConnectException) return "ECONNREFUSED";
        if (m.contains("No route") || e instanceof NoRouteToHostException) return "EHOSTUNREACH";
        if (m.contains("Broken pipe")) return "EPIPE";
        if (m.contains("Unexpected end of file")) return "EOF";
        return "EIO";
    }
}
