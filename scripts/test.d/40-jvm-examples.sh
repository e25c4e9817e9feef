#!/usr/bin/env bash
# Stage: the JVM examples. Builds the JNI binding, the Scala example client, the lab's Java
# client and the JMH benchmark (compiled only; scripts/bench-jvm.sh runs it), then runs both
# clients for real against a slow HTTP server on 127.0.0.1:
#   - keep-alive on: exit 0, and while the request waits `ss` shows the client connection's
#     keep-alive timer counting down from TCP_KEEPALIVE_IDLE (the factory configured the socket
#     OkHttp actually used, with the timings from the environment);
#   - keep-alive off: exit 0 and no keep-alive timer on the connection;
#   - the lab contract: read deadline passed -> 10, refused -> 11 (ECONNREFUSED), a POST whose
#     body comes LAB_WRITE_AFTER seconds late -> 0, an invalid TCP_KEEPALIVE_IDLE -> 2 naming it;
#   - on a JDK 24+ found under /usr/lib/jvm, keep-alive on again, with no WARNING on stderr.
# Every client run prints the door it used: "native" is required (not the jdk.net fallback).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/scripts/lib-jvm.sh"
cd "$ROOT"

need_packages python3 iproute2 || exit 1
need_jvm || exit 1

log "building jni-binding, the Scala client, the Java client"
bash scripts/build-scala-client.sh || exit 1
bash scripts/build-java-client.sh || exit 1
log "compiling the JMH benchmark (jni-binding/bench)"
quiet mvn -B -f jni-binding/bench/pom.xml test-compile || exit 1

SCALA=(java -jar examples/scala-client/target/scala-client.jar)
JAVA=(java -jar e2e/clients/java-client/target/java-keepalive-client.jar)

work=$(mktemp -d)
cleanup() {
    stop_slow_server
    rm -rf "$work"
}
trap cleanup EXIT

# The slow server (scripts/jvm-slow-server.py) and run_client: scripts/lib-jvm.sh.
start_slow_server "$work" || exit 1
port=$SLOW_PORT

url="http://127.0.0.1:$port/slow?seconds=3"
ka=(LAB_KEEPALIVE=on TCP_KEEPALIVE_IDLE=17 TCP_KEEPALIVE_INTERVAL=3 TCP_KEEPALIVE_COUNT=4)
timings="idle 17s, interval 3s, count 4" # what the clients print they applied (from KeepAlive.fromEnv)
log "Scala and Java clients against the slow server on 127.0.0.1:$port"
for client in scala java; do
    if [ $client = scala ]; then argv=("${SCALA[@]}"); else argv=("${JAVA[@]}"); fi
    run_client "$client keep-alive on" 0 "^ok: HTTP 200.*\\(keep-alive on, native, $timings\\)" idle:17 \
        LAB_URL="$url" LAB_DEADLINE=20 "${ka[@]}" -- "${argv[@]}"
    run_client "$client keep-alive off" 0 '^ok: HTTP 200.*\(keep-alive off\)' off \
        LAB_URL="$url" LAB_DEADLINE=20 LAB_KEEPALIVE=off -- "${argv[@]}"
    run_client "$client read deadline" 10 '^deadline' - \
        LAB_URL="$url" LAB_DEADLINE=1 "${ka[@]}" -- "${argv[@]}"
    run_client "$client refused" 11 '^ECONNREFUSED' - \
        LAB_URL="http://127.0.0.1:1/slow?seconds=1" LAB_DEADLINE=5 "${ka[@]}" -- "${argv[@]}"
    run_client "$client late POST body" 0 "^ok: HTTP 200.*\\(keep-alive on, native, $timings\\)" idle:17 \
        LAB_URL="$url" LAB_DEADLINE=20 LAB_WRITE_AFTER=1 "${ka[@]}" -- "${argv[@]}"
    run_client "$client invalid idle" 2 'TCP_KEEPALIVE_IDLE' - \
        LAB_URL="$url" LAB_DEADLINE=20 LAB_KEEPALIVE=on TCP_KEEPALIVE_IDLE=0 -- "${argv[@]}"
done

# JDK 24+ (e.g. the Temurin 25 under /usr/lib/jvm): the shaded jars' manifests carry
# Enable-Native-Access, so the native library loads without a warning there too.
for release in /usr/lib/jvm/*/release; do
    [ -e "$release" ] || continue
    major=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$release")
    jdk=$(dirname "$release")
    [ -n "$major" ] && [ "$major" -ge 24 ] && [ -x "$jdk/bin/java" ] || continue
    log "the same on JDK $major ($jdk)"
    run_client "scala keep-alive on, JDK $major" 0 "^ok: HTTP 200.*\\(keep-alive on, native, $timings\\)" idle:17 \
        LAB_URL="$url" LAB_DEADLINE=20 "${ka[@]}" -- "$jdk/bin/java" "${SCALA[@]:1}"
    run_client "java keep-alive on, JDK $major" 0 "^ok: HTTP 200.*\\(keep-alive on, native, $timings\\)" idle:17 \
        LAB_URL="$url" LAB_DEADLINE=20 "${ka[@]}" -- "$jdk/bin/java" "${JAVA[@]:1}"
done

echo "jvm-examples: $passed passed, $failed failed"
[ $failed -eq 0 ]
