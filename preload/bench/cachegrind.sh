#!/usr/bin/env bash
# The preload's cost in user-space instructions per socket()+close (valgrind cachegrind:
# deterministic, unlike wall time on a shared machine). Side by side in one run:
#   bare       socket() + close(), no preload
#   by hand    the same + the four setsockopt calls, no preload
#   ours       socket() + close() under libkeepalive.so (which makes the four calls)
#   nodelay    one more setsockopt (TCP_NODELAY) bare and under ours: what every other option costs
# and, for each NAME=PATH[,VAR=VALUE...] given, socket() + close() under that preload with those
# variables (e.g. libdontdie or msantos/libkeepalive built from their sources, set to the same
# four writes; this project does not ship or build them), for example
#   libdontdie=/x/libdontdie.so,DD_TCP_KEEPALIVE_TIME=60,DD_TCP_KEEPALIVE_INTVL=10,DD_TCP_KEEPALIVE_PROBES=6
#   msantos=/x/libkeepalive_socket.so,TCP_KEEPIDLE=60,TCP_KEEPINTVL=10,TCP_KEEPCNT=6,TCP_USER_TIMEOUT=0
# Goal (issue 21): ours <= 1.15 x by hand. Per-socket counts are (I(2N) - I(N)) / N.
# Usage: preload/bench/cachegrind.sh [NAME=PATH[,VAR=VALUE...] ...]   (needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 2; }
N=${N:-2000}
scripts/build-preload.sh
mkdir -p target/bench
cc -O2 -Wall -o target/bench/count_loop preload/bench/count_loop.c
ours="$PWD/target/release/libkeepalive.so"
clean=(env -u TCP_KEEPALIVE -u TCP_KEEPALIVE_IDLE -u TCP_KEEPALIVE_INTERVAL -u TCP_KEEPALIVE_COUNT
    -u TCP_KEEPALIVE_USER_TIMEOUT -u TCP_KEEPALIVE_LOG -u TCP_KEEPALIVE_ENFORCE -u KEEPALIVE
    -u KEEPIDLE -u KEEPINTVL -u KEEPCNT -u TCP_KEEPIDLE -u TCP_KEEPINTVL -u TCP_KEEPCNT
    -u TCP_USER_TIMEOUT -u DD_USE_KEEPALIVE -u DD_TCP_KEEPALIVE_TIME -u DD_TCP_KEEPALIVE_INTVL
    -u DD_TCP_KEEPALIVE_PROBES -u LD_PRELOAD)

# refs PRELOAD MODE COUNT [VAR=VALUE...]: instructions of one run (PRELOAD may be empty); checks
# the first socket's SO_KEEPALIVE against what the mode must give.
refs() {
    local preload=$1 mode=$2 count=$3 log
    shift 3
    log=$(mktemp)
    "${clean[@]}" ${preload:+LD_PRELOAD=$preload} "$@" valgrind --tool=cachegrind --cache-sim=no \
        --cachegrind-out-file=/dev/null target/bench/count_loop "$mode" "$count" 2>"$log"
    local check
    check=$(awk '$1 == "check" {print $2}' "$log")
    local want=0
    { [ -n "$preload" ] || [ "$mode" = byhand ]; } && want=1
    if [ "$check" != "$want" ]; then
        echo "$mode under '${preload:-nothing}': SO_KEEPALIVE=$check, expected $want" >&2
        cat "$log" >&2
        exit 1
    fi
    sed -n 's/.*I *refs: *//p' "$log" | tr -d ,
    rm -f "$log"
}

# per_socket PRELOAD MODE [VAR=VALUE...]
per_socket() {
    local preload=$1 mode=$2 one two
    shift 2
    one=$(refs "$preload" "$mode" "$N" "$@")
    two=$(refs "$preload" "$mode" $((2 * N)) "$@")
    echo $(((two - one) / N))
}

bare=$(per_socket "" bare)
byhand=$(per_socket "" byhand)
mine=$(per_socket "$ours" bare)
nodelay_bare=$(per_socket "" nodelay)
nodelay_ours=$(per_socket "$ours" nodelay)
printf 'user-space instructions per TCP socket()+close, %d sockets (cachegrind)\n' "$N"
printf '  %-28s %5d\n' "bare" "$bare" "by hand (4 setsockopt)" "$byhand" "libkeepalive.so (ours)" "$mine"
for other in "$@"; do
    name=${other%%=*}
    IFS=, read -r -a spec <<<"${other#*=}"
    printf '  %-28s %5d\n' "$name" "$(per_socket "${spec[0]}" bare "${spec[@]:1}")"
done
python3 - "$bare" "$byhand" "$mine" "$nodelay_bare" "$nodelay_ours" <<'PY'
import sys
bare, byhand, ours, nd_bare, nd_ours = map(int, sys.argv[1:])
print(f"ours / by hand: {ours / byhand:.2f} (goal <= 1.15)")
print(f"one other setsockopt (TCP_NODELAY) on our socket: {nd_ours - ours} instructions, "
      f"{nd_bare - bare} without the preload")
PY
