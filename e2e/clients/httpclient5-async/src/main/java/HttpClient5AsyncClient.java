// An unmodified Apache HttpClient 5 async client in its default configuration
// (HttpAsyncClients.createDefault()). Its I/O reactor (SingleCoreIOReactor.prepareSocket) calls
// socket.setKeepAlive(false) on every socket before connecting, because IOReactorConfig's
// soKeepAlive defaults to false: it undoes what a socket() hook alone did. Keep-alive, when there
// is any, comes from LD_PRELOAD=libkeepalive.so enforcing the operator's settings.
//
// The middlebox lab's client contract (e2e/clients.py): LAB_URL (the URL to GET), LAB_DEADLINE
// (seconds this client waits for the answer). Exit codes: 0 full answer, 10 deadline passed,
// 11 connection failed (errno name printed), 2 bad usage, 3 anything else.
import java.io.IOException;
import java.net.ConnectException;
import java.net.NoRouteToHostException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.apache.hc.client5.http.async.methods.SimpleHttpRequest;
import org.apache.hc.client5.http.async.methods.SimpleHttpResponse;
import org.apache.hc.client5.http.async.methods.SimpleRequestBuilder;
import org.apache.hc.client5.http.impl.async.CloseableHttpAsyncClient;
import org.apache.hc.client5.http.impl.async.HttpAsyncClients;
import org.apache.hc.core5.io.CloseMode;

public class HttpClient5AsyncClient {
    public static void main(String[] args) {
        String url = System.getenv("LAB_URL");
        String deadline = System.getenv("LAB_DEADLINE");
        if (url == null || deadline == null) {
            System.out.println("usage: LAB_URL=... LAB_DEADLINE=seconds java -jar httpclient5-async-client.jar");
            System.exit(2);
        }
        long deadlineMs = Math.round(Double.parseDouble(deadline) * 1000);
        int code;
        CloseableHttpAsyncClient client = HttpAsyncClients.createDefault();
        try {
            client.start();
            SimpleHttpRequest request = SimpleRequestBuilder.get(url).build();
            Future<SimpleHttpResponse> answer = client.execute(request, null);
            SimpleHttpResponse response = answer.get(deadlineMs, TimeUnit.MILLISECONDS);
            int bytes = response.getBodyBytes() == null ? 0 : response.getBodyBytes().length;
            if (response.getCode() == 200) {
                System.out.println("ok: HTTP 200, " + bytes + " bytes");
                code = 0;
            } else {
                System.out.println("HTTP " + response.getCode());
                code = 11;
            }
        } catch (TimeoutException e) {
            System.out.println("deadline passed: no answer within " + deadline + " s");
            code = 10;
        } catch (ExecutionException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            System.out.println(errnoName(cause) + ": " + cause);
            code = 11;
        } catch (Exception e) {
            System.out.println("bug: " + e);
            code = 3;
        }
        // Immediate: a graceful close would wait for the hung exchange.
        client.close(CloseMode.IMMEDIATE);
        System.exit(code);
    }

    /** The errno behind an I/O error; the JDK keeps only the message. */
    static String errnoName(Throwable e) {
        String m = String.valueOf(e.getMessage());
        if (m.contains("timed out")) return "ETIMEDOUT";
        if (m.contains("reset")) return "ECONNRESET";
        if (m.contains("refused") || e instanceof ConnectException) return "ECONNREFUSED";
        if (m.contains("No route") || e instanceof NoRouteToHostException) return "EHOSTUNREACH";
        if (m.contains("Broken pipe")) return "EPIPE";
        if (e instanceof IOException) return "EIO";
        return "EIO";
    }
}
