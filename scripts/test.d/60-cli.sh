#!/usr/bin/env bash
# Stage 60-cli: the tcp-keepalive command as shipped, the release build, with libkeepalive.so
# beside it (the debug build's tests already ran in the `rust` stage). Needs root: pidfd_getfd on
# another process, setuid to nobody for the permission case, a network namespace for doctor.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"

[ "$(id -u)" -eq 0 ] || skip_or_fail "the CLI stage needs root (pidfd_getfd on other processes)"
need_packages build-essential python3 util-linux

bash scripts/build-cli.sh
CLI="$ROOT/target/release/tcp-keepalive"
LIB="$ROOT/target/release/libkeepalive.so"
bash scripts/build-preload.sh
[ -f "$LIB" ] || { echo "FAIL: the preload build left no $LIB" >&2; exit 1; }
export TCPKA_PRELOAD="$LIB"

log "cli: the process tests against the release build"
TCPKA_CLI="$CLI" cargo test --quiet -p tcp-keepalive-cli --test processes
log "cli: measure's bad inputs, exit codes and loopback measurements against the release build"
TCPKA_CLI="$CLI" cargo test --quiet -p tcp-keepalive-cli --test measure

# install-preload: the library check with the real libkeepalive.so (TCPKA_PRELOAD) and libc, and
# eight installers at once into one directory, each pid 1 of its own PID namespace.
log "cli: install-preload (the real library, libc refused, concurrent installers)"
cargo test --quiet -p tcp-keepalive-cli --test install_preload

log "cli: the README's walk-through (run, inspect, apply, read back inside the program)"
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
# A Python program started by `run`: a client connection and the server's side of it on
# loopback; each line on its stdin (a FIFO) makes it print its own getsockopt readings. It ends
# at EOF or after 60 s without a line.
mkfifo "$tmp/in"
"$CLI" run --idle 45 --interval 5 --count 4 -- python3 -u -c '
import select, socket, sys
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
c = socket.create_connection(l.getsockname()); a, _ = l.accept()
def show(s):
    return "%d %d %d %d" % (s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                            s.getsockopt(6, 4), s.getsockopt(6, 5), s.getsockopt(6, 6))
f = open(sys.argv[1])
print("ready", flush=True)
while select.select([f], [], [], 60)[0]:
    if not f.readline():
        break
    print(show(c), "|", show(a), flush=True)
' "$tmp/in" >"$tmp/out" &
pid=$!
exec 3>"$tmp/in"
for _ in $(seq 100); do grep -q ready "$tmp/out" && break; sleep 0.1; done
grep -q ready "$tmp/out" || { echo "FAIL: the program did not start" >&2; cat "$tmp/out"; exit 1; }
# reading N: asks for a reading and prints output line N+1 (line 1 is "ready").
reading() {
    echo >&3
    for _ in $(seq 50); do [ "$(wc -l <"$tmp/out")" -gt "$1" ] && break; sleep 0.1; done
    sed -n "$(($1 + 1))p" "$tmp/out"
}
passed=0
got=$(reading 1)
[ "$got" = "1 45 5 4 | 1 45 5 4" ] || { echo "FAIL: after run: '$got'" >&2; exit 1; }
passed=$((passed + 1))
"$CLI" inspect --pid "$pid"
"$CLI" inspect --pid "$pid" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)["sockets"]
assert len(s) == 3, s
assert all(x["keepalive"]["idle_s"] == 45 and x["keepalive"]["enabled"] for x in s), s'
"$CLI" apply --pid "$pid" --idle 20 --interval 2 --count 3
got=$(reading 2)
[ "$got" = "1 20 2 3 | 1 20 2 3" ] || { echo "FAIL: after apply: '$got'" >&2; exit 1; }
passed=$((passed + 1))
exec 3>&-
wait "$pid" || true
pid=
echo "cli walk-through: $passed passed, 0 failed"
