#!/usr/bin/env bash
# Stage: the JVM recipes of jni-binding/README.md, run with the real libraries (examples/jvm-recipes)
# against local servers on 127.0.0.1, each connection's keep-alive read back from the kernel twice:
# by the client itself (KeepAlive.inspect, printed as "[socket: ...]") and from outside while the
# request waits (the `ss` keep-alive timer, and `tcp-keepalive inspect --pid` for every value).
#   - Apache Pekko HTTP (SocketOptionV2.afterConnect) and sttp's OkHttp backend
#     (KeepAliveSocketFactory): keep-alive on with the environment's timings, off, the lab contract
#     (deadline 10, refused 11, invalid TCP_KEEPALIVE_IDLE 2 naming it, Pekko's late POST body);
#   - the Scala recipes again on a JDK 24+ found under /usr/lib/jvm (no WARNING on stderr);
#   - java.net.http.HttpClient, which has no socket hook: bare (no keep-alive) and under
#     LD_PRELOAD=libkeepalive.so (the settings from TCP_KEEPALIVE_*);
#   - pgjdbc against a private PostgreSQL cluster (initdb as user postgres in a temporary
#     directory, a free port on 127.0.0.1, stopped on exit): socketFactory=KeepAliveSocketFactory
#     with socketFactoryArg, and with the environment, during a pg_sleep query, with
#     tcpKeepAlive=true; without it pgjdbc turns SO_KEEPALIVE off; a bad arg is refused by name.
# Reading the kernel from outside needs root (pidfd_getfd): as another user those checks fail
# under CI=true and are skipped otherwise.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/scripts/lib-jvm.sh"
cd "$ROOT"

need_packages python3 iproute2 procps postgresql || exit 1
need_jvm || exit 1

log "building the recipe clients, the tcp-keepalive command, libkeepalive.so"
bash scripts/build-jvm-recipes.sh || exit 1
bash scripts/build-cli.sh || exit 1
bash scripts/build-preload.sh || exit 1

RECIPES=(java -jar examples/jvm-recipes/target/jvm-recipes.jar)
PRELOAD="$ROOT/target/release/libkeepalive.so"

work=$(mktemp -d /tmp/tcp-keepalive-jvm-recipes.XXXXXX)
pg_data=
cleanup() {
    stop_slow_server
    if [ -n "$pg_data" ] && [ -f "$pg_data/postmaster.pid" ]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pg_data" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
    rm -rf "$work"
}
trap cleanup EXIT

start_slow_server "$work" || exit 1
port=$SLOW_PORT

# not_here WHAT: a check this machine cannot make (no root): a failure under CI=true.
not_here() {
    if is_ci; then bad "$*"; else echo "  skip $*"; fi
}
[ "$(id -u)" = 0 ] || not_here "reading sockets from outside needs root (tcp-keepalive inspect --pid)"

# What a socket never configured shows: the host's sysctls (of this network namespace).
host="$(cat /proc/sys/net/ipv4/tcp_keepalive_time) $(cat /proc/sys/net/ipv4/tcp_keepalive_intvl) $(cat /proc/sys/net/ipv4/tcp_keepalive_probes)"
url="http://127.0.0.1:$port/slow?seconds=4"
ka=(LAB_KEEPALIVE=on TCP_KEEPALIVE_IDLE=17 TCP_KEEPALIVE_INTERVAL=3 TCP_KEEPALIVE_COUNT=4)
timings="idle 17s, interval 3s, count 4"
socket="\\[socket: keep-alive on, idle 17s, interval 3s, count 4, user timeout unset\\]"
log "Pekko HTTP and sttp (OkHttp backend) against the slow server on 127.0.0.1:$port"
for client in pekko sttp; do
    EXACT="on 17 3 4 -" run_client "$client keep-alive on" 0 "^ok: HTTP 200.*\\(keep-alive on, native, $timings\\) $socket" \
        idle:17 LAB_URL="$url" LAB_DEADLINE=20 "${ka[@]}" -- "${RECIPES[@]}" $client
    EXACT="off $host -" run_client "$client keep-alive off" 0 '^ok: HTTP 200.*\(keep-alive off\)$' off \
        LAB_URL="$url" LAB_DEADLINE=20 LAB_KEEPALIVE=off -- "${RECIPES[@]}" $client
    run_client "$client read deadline" 10 '^deadline' - \
        LAB_URL="$url" LAB_DEADLINE=1 "${ka[@]}" -- "${RECIPES[@]}" $client
    run_client "$client refused" 11 '^ECONNREFUSED' - \
        LAB_URL="http://127.0.0.1:1/slow?seconds=1" LAB_DEADLINE=5 "${ka[@]}" -- "${RECIPES[@]}" $client
    run_client "$client invalid idle" 2 'invalid TCP_KEEPALIVE_IDLE: "0"' - \
        LAB_URL="$url" LAB_DEADLINE=20 LAB_KEEPALIVE=on TCP_KEEPALIVE_IDLE=0 -- "${RECIPES[@]}" $client
done
EXACT="on 17 3 4 -" run_client "pekko late POST body" 0 "^ok: HTTP 200.*\\(keep-alive on, native, $timings\\) $socket" \
    idle:17 LAB_URL="$url" LAB_DEADLINE=20 LAB_WRITE_AFTER=1 "${ka[@]}" -- "${RECIPES[@]}" pekko

log "java.net.http.HttpClient: no socket hook; bare, then under LD_PRELOAD=libkeepalive.so"
EXACT="off $host -" run_client "java.net.http bare" 0 '^ok: HTTP 200.*\(no keep-alive code\)$' off \
    LAB_URL="$url" LAB_DEADLINE=20 -- "${RECIPES[@]}" java-net-http
EXACT="on 17 3 4 -" run_client "java.net.http preload" 0 '^ok: HTTP 200.*\(no keep-alive code, LD_PRELOAD=' idle:17 \
    LD_PRELOAD="$PRELOAD" TCP_KEEPALIVE_IDLE=17 TCP_KEEPALIVE_INTERVAL=3 TCP_KEEPALIVE_COUNT=4 \
    LAB_URL="$url" LAB_DEADLINE=20 -- "${RECIPES[@]}" java-net-http
EXACT="on 17 3 4 -" run_client "java.net.http preload, late POST body" 0 '^ok: HTTP 200' idle:17 \
    LD_PRELOAD="$PRELOAD" TCP_KEEPALIVE_IDLE=17 TCP_KEEPALIVE_INTERVAL=3 TCP_KEEPALIVE_COUNT=4 \
    LAB_URL="$url" LAB_DEADLINE=20 LAB_WRITE_AFTER=1 -- "${RECIPES[@]}" java-net-http
run_client "java.net.http read deadline" 10 '^deadline' - \
    LAB_URL="$url" LAB_DEADLINE=1 -- "${RECIPES[@]}" java-net-http

# JDK 24+ (the Temurin 25 under /usr/lib/jvm): the shaded jar's manifest carries
# Enable-Native-Access, so the native library loads without a WARNING there too.
for release in /usr/lib/jvm/*/release; do
    [ -e "$release" ] || continue
    major=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$release")
    jdk=$(dirname "$release")
    [ -n "$major" ] && [ "$major" -ge 24 ] && [ -x "$jdk/bin/java" ] || continue
    log "the Scala recipes on JDK $major ($jdk)"
    for client in pekko sttp; do
        # Pekko 1.x itself uses sun.misc.Unsafe, which JDK 24+ warns about (JEP 471), not ours.
        flags=()
        [ $client = pekko ] && flags=(--sun-misc-unsafe-memory-access=allow)
        EXACT="on 17 3 4 -" run_client "$client keep-alive on, JDK $major" 0 \
            "^ok: HTTP 200.*\\(keep-alive on, native, $timings\\) $socket" idle:17 \
            LAB_URL="$url" LAB_DEADLINE=20 "${ka[@]}" -- "$jdk/bin/java" "${flags[@]}" "${RECIPES[@]:1}" $client
    done
done

log "pgjdbc against a private PostgreSQL cluster on 127.0.0.1"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ] || ! id postgres >/dev/null 2>&1; then
    not_here "no PostgreSQL server (initdb) or no postgres user"
elif [ "$(id -u)" != 0 ]; then
    not_here "starting a cluster as user postgres needs root"
else
    pg_data="$work/pg"
    pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$pg_data" && chown postgres "$work" "$pg_data" && chmod 700 "$pg_data"
    if ! runuser -u postgres -- "$PG_BIN/initdb" -D "$pg_data" -A trust -U postgres >"$work/initdb.log" 2>&1 ||
        ! runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pg_data" -l "$work/pg.log" -w -t 60 \
            -o "-p $pg_port -k $pg_data -c listen_addresses=127.0.0.1" start >/dev/null 2>&1; then
        bad "PostgreSQL did not start: $(tail -n 5 "$work/initdb.log" "$work/pg.log" 2>/dev/null)"
        pg_data=
    fi
fi

# run_pg NAME EXPECTED_EXIT EXPECTED_KERNEL JDBC_URL [ENV...]: the pgjdbc client with a 3 s
# pg_sleep; while it runs, its connection (the local port the server reports as client_port) is
# read from the kernel; "-" as EXPECTED_KERNEL skips that (a client that must not connect).
run_pg() {
    local name=$1 want=$2 expect=$3 jdbc=$4
    shift 4
    env "$@" PG_URL="$jdbc" PG_SLEEP=3 timeout 60 "${RECIPES[@]}" pgjdbc >"$work/pg.out" 2>"$work/pg.err" &
    local pid=$! client_port= settings=- why=
    for _ in $(seq 150); do
        client_port=$(sed -n 's/^client_port=//p' "$work/pg.out")
        [ -n "$client_port" ] && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
    done
    if [ "$expect" != "-" ]; then
        if [ -n "$client_port" ]; then
            settings=$(kernel_settings "$(pgrep -P "$pid" | head -n1)" local "$client_port")
        else
            settings=no-connection
        fi
        [ "$settings" = "$expect" ] || why="the kernel says \"$settings\", expected \"$expect\""
    fi
    wait $pid
    local rc=$?
    [ $rc -eq "$want" ] || why="$why; exit $rc, expected $want"
    grep -q WARNING "$work/pg.err" && why="$why; a WARNING on stderr"
    local out
    out=$(grep -v '^waiting$' "$work/pg.out" | tr '\n' ' ')
    if [ -z "$why" ]; then
        ok "$name: $out[kernel: $settings]"
    else
        bad "$name: ${why#; } -- stdout: $out; stderr: $(head -c 400 "$work/pg.err")"
    fi
}

if [ -n "$pg_data" ]; then
    base="jdbc:postgresql://127.0.0.1:$pg_port/postgres?socketFactory=tcpkeepalive.KeepAliveSocketFactory"
    arg="socketFactoryArg=idle=41,interval=7,count=5,user_timeout=30s"
    run_pg "pgjdbc socketFactoryArg, tcpKeepAlive=true" 0 "on 41 7 5 30000" "$base&$arg&tcpKeepAlive=true"
    run_pg "pgjdbc from the environment, tcpKeepAlive=true" 0 "on 43 10 6 -" "$base&tcpKeepAlive=true" \
        TCP_KEEPALIVE_IDLE=43
    # pgjdbc calls socket.setKeepAlive(tcpKeepAlive) after connecting (default false): the
    # timings stay, but no probe is ever sent.
    run_pg "pgjdbc without tcpKeepAlive=true: SO_KEEPALIVE off" 0 "off 41 7 5 30000" "$base&$arg"
    run_pg "pgjdbc bad socketFactoryArg" 2 - "$base&socketFactoryArg=idle=41,count=200&tcpKeepAlive=true"
    grep -q 'invalid count: "200"' "$work/pg.out" && ok "  ... naming the key: $(cat "$work/pg.out")" ||
        bad "the bad socketFactoryArg is not named: $(cat "$work/pg.out")"
fi

echo "jvm-recipes: $passed passed, $failed failed"
[ $failed -eq 0 ]
