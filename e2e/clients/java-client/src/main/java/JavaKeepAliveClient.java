import java.io.IOException;
import java.io.InterruptedIOException;
import java.net.ConnectException;
import java.net.NoRouteToHostException;
import java.net.SocketException;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

import okhttp3.MediaType;
import okhttp3.OkHttpClient;
import okhttp3.Request;
import okhttp3.RequestBody;
import okhttp3.Response;
import okio.BufferedSink;
import tcpkeepalive.KeepAlive;
import tcpkeepalive.KeepAliveSocketFactory;

/**
 * The middlebox lab's plain Java client: one request through OkHttp, whose sockets come from a
 * {@link KeepAliveSocketFactory} when {@code LAB_KEEPALIVE=on}.
 *
 * <p>Environment: {@code LAB_URL} (required), {@code LAB_DEADLINE} (seconds, the read timeout,
 * default 30), {@code LAB_KEEPALIVE} ({@code on}: timings from {@link KeepAlive#fromEnv()}),
 * {@code LAB_WRITE_AFTER} (seconds: POST a body that follows the headers after that long).
 * Exit codes: 0 full answer, 10 read deadline passed, 11 connection failed (errno name printed),
 * 2 bad configuration.
 */
public final class JavaKeepAliveClient {
    static final int OK = 0;
    static final int DEADLINE_PASSED = 10;
    static final int CONNECTION_FAILED = 11;
    static final int BAD_CONFIG = 2;

    private JavaKeepAliveClient() {}

    public static void main(String[] args) {
        int code = run();
        System.out.flush();
        // OkHttp keeps non-daemon pool threads alive for a while: leave now.
        System.exit(code);
    }

    static int run() {
        String url = System.getenv("LAB_URL");
        if (url == null || url.isEmpty()) {
            System.out.println("java-client: LAB_URL is not set");
            return BAD_CONFIG;
        }
        long deadlineMillis;
        Long writeAfterMillis = null;
        try {
            deadlineMillis = millis("LAB_DEADLINE", "30");
            if (System.getenv("LAB_WRITE_AFTER") != null) {
                writeAfterMillis = millis("LAB_WRITE_AFTER", "0");
            }
        } catch (IllegalArgumentException e) {
            System.out.println("java-client: " + e.getMessage());
            return BAD_CONFIG;
        }

        OkHttpClient.Builder builder = new OkHttpClient.Builder()
                .readTimeout(deadlineMillis, TimeUnit.MILLISECONDS)
                .writeTimeout(deadlineMillis, TimeUnit.MILLISECONDS)
                .connectTimeout(10, TimeUnit.SECONDS)
                // One attempt: a retry would hide what happened to the first connection.
                .retryOnConnectionFailure(false);
        String mode = "keep-alive off";
        if ("on".equals(System.getenv("LAB_KEEPALIVE"))) {
            KeepAlive keepAlive;
            try {
                Optional<KeepAlive> fromEnv = KeepAlive.fromEnv();
                keepAlive = fromEnv.orElse(KeepAlive.defaults());
            } catch (IllegalArgumentException e) {
                System.out.println("java-client: " + e.getMessage());
                return BAD_CONFIG;
            }
            builder.socketFactory(new KeepAliveSocketFactory(keepAlive));
            mode = String.format(Locale.ROOT, "keep-alive on, %s, idle %ds, interval %ds, count %d",
                    KeepAlive.isNativeLoaded() ? "native" : "fallback", keepAlive.idle().getSeconds(),
                    keepAlive.interval().getSeconds(), keepAlive.count());
        }
        OkHttpClient client = builder.build();

        Request.Builder request = new Request.Builder().url(url);
        if (writeAfterMillis != null) {
            request.post(lateBody(writeAfterMillis));
        }
        long started = System.nanoTime();
        try (Response response = client.newCall(request.build()).execute()) {
            String body = response.body().string();
            if (response.isSuccessful()) {
                System.out.printf("ok: HTTP %d, %d bytes after %s (%s)%n",
                        response.code(), body.length(), elapsed(started), mode);
                return OK;
            }
            System.out.printf("http-error: HTTP %d after %s (%s)%n", response.code(), elapsed(started), mode);
            return CONNECTION_FAILED;
        } catch (IOException e) {
            String errno = errnoName(e);
            if (errno == null && isTimeout(e)) {
                System.out.printf("deadline: no answer within %d ms, %s (%s)%n", deadlineMillis, elapsed(started), mode);
                return DEADLINE_PASSED;
            }
            if (errno == null) {
                errno = "EIO";
            }
            System.out.printf("%s: %s after %s (%s)%n", errno, e.getMessage(), elapsed(started), mode);
            return CONNECTION_FAILED;
        }
    }

    /** A body sent {@code delayMillis} after the request headers (the black-hole scenario). */
    private static RequestBody lateBody(final long delayMillis) {
        final String payload = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        return new RequestBody() {
            @Override
            public MediaType contentType() {
                return MediaType.get("text/plain");
            }

            @Override
            public long contentLength() {
                return payload.length();
            }

            @Override
            public void writeTo(BufferedSink sink) throws IOException {
                sink.flush(); // the headers leave now
                try {
                    Thread.sleep(delayMillis);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new InterruptedIOException("interrupted before the body");
                }
                sink.writeUtf8(payload);
                sink.flush();
            }
        };
    }

    private static long millis(String name, String fallback) {
        String text = System.getenv(name);
        if (text == null) {
            text = fallback;
        }
        double seconds;
        try {
            seconds = Double.parseDouble(text.trim());
        } catch (NumberFormatException e) {
            seconds = Double.NaN;
        }
        if (!(seconds >= 0 && seconds <= 86400)) {
            throw new IllegalArgumentException(name + "=" + text + " is not a number of seconds between 0 and 86400");
        }
        return Math.max(1L, Math.round(seconds * 1000));
    }

    private static String elapsed(long started) {
        return String.format(Locale.ROOT, "%.1f s", (System.nanoTime() - started) / 1e9);
    }

    private static boolean isTimeout(Throwable e) {
        for (int i = 0; e != null && i < 10; i++, e = e.getCause()) {
            if (e instanceof InterruptedIOException) {
                return true;
            }
        }
        return false;
    }

    private static final String[][] KNOWN = {
        {"connection timed out", "ETIMEDOUT"},
        {"connect timed out", "ETIMEDOUT"},
        {"connection reset", "ECONNRESET"},
        {"connection refused", "ECONNREFUSED"},
        {"no route to host", "EHOSTUNREACH"},
        {"network is unreachable", "ENETUNREACH"},
        {"broken pipe", "EPIPE"},
        {"host is down", "EHOSTDOWN"},
    };

    /** The errno behind a JDK socket exception, from the OS text the JDK copies into it. */
    private static String errnoName(Throwable error) {
        Throwable e = error;
        for (int i = 0; e != null && i < 10; i++, e = e.getCause()) {
            String text = e.getMessage() == null ? "" : e.getMessage().toLowerCase(Locale.ROOT);
            for (String[] known : KNOWN) {
                if (text.contains(known[0])) {
                    return known[1];
                }
            }
        }
        e = error;
        for (int i = 0; e != null && i < 10; i++, e = e.getCause()) {
            if (e instanceof ConnectException) {
                return "ECONNREFUSED";
            }
            if (e instanceof NoRouteToHostException) {
                return "EHOSTUNREACH";
            }
            if (e instanceof SocketException && !isTimeout(error)) {
                return "EIO";
            }
        }
        return null;
    }
}
