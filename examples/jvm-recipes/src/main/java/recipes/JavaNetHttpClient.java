package recipes;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.Flow;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * {@code java.net.http.HttpClient} with no keep-alive code at all, under the lab's client contract
 * ({@link Lab}): it has no socket hook, so keep-alive comes from outside the program, from the
 * preload library ({@code LD_PRELOAD=libkeepalive.so}) or the kernel door (tcp-keepalive cgroup
 * attach). {@code LAB_KEEPALIVE} is ignored.
 */
public final class JavaNetHttpClient {
    private JavaNetHttpClient() {}

    public static int run(Map<String, String> env) {
        Lab lab;
        try {
            lab = Lab.fromEnv(env, true); // keep-alive is not this program's business

        } catch (Lab.BadConfig e) {
            System.out.println("java-net-http: " + e.getMessage());
            return Lab.BAD_CONFIG;
        }
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(10)).build();
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(lab.url))
                // The deadline is a read timeout: it starts once the (late) body is out.
                .timeout(Duration.ofMillis(lab.deadlineMillis + Math.max(0, lab.writeAfterMillis)));
        if (lab.writeAfterMillis >= 0) {
            request.POST(lateBody("x".repeat(64).getBytes(StandardCharsets.US_ASCII), lab.writeAfterMillis));
        }
        try {
            HttpResponse<byte[]> response = client.send(request.build(), HttpResponse.BodyHandlers.ofByteArray());
            return lab.answered(response.statusCode(), response.body().length, null);
        } catch (HttpTimeoutException e) {
            return lab.deadlinePassed();
        } catch (Exception e) {
            return lab.failed(e);
        }
    }

    /** A body of known length whose bytes go out {@code delayMillis} after the headers. */
    private static HttpRequest.BodyPublisher lateBody(byte[] body, long delayMillis) {
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "late-body");
            t.setDaemon(true);
            return t;
        });
        Flow.Publisher<ByteBuffer> late = subscriber -> subscriber.onSubscribe(new Flow.Subscription() {
            private boolean sent;

            @Override
            public synchronized void request(long n) {
                if (sent || n <= 0) return;
                sent = true;
                timer.schedule(() -> {
                    subscriber.onNext(ByteBuffer.wrap(body));
                    subscriber.onComplete();
                }, delayMillis, TimeUnit.MILLISECONDS);
            }

            @Override
            public void cancel() {}
        });
        return HttpRequest.BodyPublishers.fromPublisher(late, body.length);
    }
}
