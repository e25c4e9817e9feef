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
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# A slow HTTP server: GET|POST /slow?seconds=D answers after D seconds (POST: after reading the
# body). Prints its port, then serves until killed.
cat >"$work/slow_server.py" <<'PY'
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

class Slow(BaseHTTPRequestHandler):
    timeout = 30  # no read waits forever
    def log_message(self, *args):
        pass
    def _answer(self):
        seconds = min(float(parse_qs(urlsplit(self.path).query).get("seconds", ["0"])[0]), 30.0)
        time.sleep(seconds)
        body = f"slept {seconds:g} seconds\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self._answer()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer()

server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
PY
python3 "$work/slow_server.py" >"$work/port" 2>"$work/server.err" &
server_pid=$!
port=
for _ in $(seq 50); do
    port=$(head -n1 "$work/port" 2>/dev/null)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "FAIL: the slow server did not start" >&2; exit 1; }

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "  ok   $*"; }
bad() { failed=$((failed + 1)); echo "  FAIL $*"; }

# keepalive_timer: the timer `ss` shows on the client side of the connection to the server
# (dport = $port): waits up to 5 s for the connection, then up to 2 s for a keep-alive timer.
# Prints e.g. "keepalive,16sec,0", else the last timer seen ("none": no timer running), or
# "no-connection".
keepalive_timer() {
    local line seen=no-connection since=
    for i in $(seq 70); do
        line=$(ss -tnoH state established "( dport = :$port )" 2>/dev/null | head -n1)
        if [ -n "$line" ]; then
            [ -n "$since" ] || since=$i
            if [[ $line =~ timer:\(([^\)]*)\) ]]; then seen=${BASH_REMATCH[1]}; else seen=none; fi
            [[ $seen == keepalive* ]] && break
            [ $((i - since)) -ge 20 ] && break
        fi
        sleep 0.1
    done
    echo "$seen"
}

# run_client NAME EXPECTED_EXIT EXPECTED_OUTPUT_REGEX TIMER_CHECK ENV... -- ARGV...
# TIMER_CHECK: "idle:N" (a keep-alive timer at most N s away), "off" (no keep-alive timer), "-".
run_client() {
    local name=$1 want=$2 pattern=$3 timer=$4
    shift 4
    local env=()
    while [ "$1" != "--" ]; do env+=("$1"); shift; done
    shift
    env "${env[@]}" timeout 60 "$@" >"$work/out" 2>"$work/err" &
    local pid=$! seen=-
    [ "$timer" = "-" ] || seen=$(keepalive_timer)
    wait $pid
    local rc=$? out
    out=$(cat "$work/out")
    local why=""
    [ $rc -eq "$want" ] || why="exit $rc, expected $want"
    [[ $out =~ $pattern ]] || why="$why; output does not match /$pattern/"
    # e.g. JDK 24+'s "WARNING: A restricted method ... has been called" when the native library
    # loads without Enable-Native-Access.
    grep -q WARNING "$work/err" && why="$why; a WARNING on stderr"
    case $timer in
        idle:*)
            local max=${timer#idle:} left
            if [[ $seen =~ ^keepalive,([0-9.]+)(ms|sec|min) ]]; then
                left=${BASH_REMATCH[1]%.*}
                [ "${BASH_REMATCH[2]}" = min ] && left=$((left * 60))
                [ "${BASH_REMATCH[2]}" = ms ] && left=0
                [ "$left" -le "$max" ] || why="$why; keep-alive timer $seen is beyond idle ${max}s"
            else
                why="$why; no keep-alive timer on the connection (ss: $seen)"
            fi
            ;;
        off) [[ $seen == keepalive* ]] && why="$why; a keep-alive timer without keep-alive ($seen)" ;;
    esac
    if [ -z "$why" ]; then
        ok "$name: $out${seen:+ [timer: $seen]}"
    else
        bad "$name: ${why#; } -- stdout: $out; stderr: $(head -c 400 "$work/err")"
    fi
}

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
