#!/usr/bin/env bash
# The preload's cost, measured side by side in one run (see socket_loop.c):
#   ratio = (preload - bare) / (by hand - bare)
# 1.0 means libkeepalive.so costs nothing beyond the four setsockopt calls it has to make.
# Usage: preload/bench/run.sh [ROUNDS] [BATCH]   (default 3000 rounds of 200 sockets per kind)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3000}
BATCH=${2:-200}
scripts/build-preload.sh
mkdir -p target/bench
cc -O2 -Wall -o target/bench/socket_loop preload/bench/socket_loop.c -ldl
out=$(env -u TCP_KEEPALIVE -u TCP_KEEPALIVE_IDLE -u TCP_KEEPALIVE_INTERVAL -u TCP_KEEPALIVE_COUNT \
    -u TCP_KEEPALIVE_USER_TIMEOUT -u TCP_KEEPALIVE_LOG -u KEEPALIVE -u KEEPIDLE -u KEEPINTVL \
    -u KEEPCNT LD_PRELOAD="$PWD/target/release/libkeepalive.so" \
    target/bench/socket_loop "$ROUNDS" "$BATCH")
python3 - "$ROUNDS" "$BATCH" <<PY
import statistics, sys
rounds, batch = sys.argv[1:3]
lines = [l.split() for l in """$out""".splitlines()]
checks = {l[1]: (int(l[2]), int(l[3])) for l in lines if l[0] == "check"}
want = {"bare": 0, "preload": 1, "byhand": 1}
for kind, ka in want.items():
    if checks[kind][0] != ka or (ka and checks[kind][1] != 60):
        sys.exit(f"{kind}: SO_KEEPALIVE/TCP_KEEPIDLE = {checks[kind]}, expected {ka}/60")
xs = {k: [float(l[1]) for l in lines if l[0] == k] for k in want}
med = statistics.median
b, p, h = (med(xs[k]) for k in ("bare", "preload", "byhand"))
print(f"{rounds} interleaved rounds x {batch} sockets per kind; ns per socket (median, min)")
for k, name in (("bare", "bare"), ("preload", "preload"), ("byhand", "by hand")):
    print(f"  {name:8} {med(xs[k]):8.1f} {min(xs[k]):8.1f}")
rounds_ratio = sorted((pr - br) / (hr - br)
                      for br, pr, hr in zip(xs["bare"], xs["preload"], xs["byhand"]) if hr != br)
print(f"ratio (preload - bare) / (by hand - bare): {(p - b) / (h - b):.3f} (medians), "
      f"{(min(xs['preload']) - min(xs['bare'])) / (min(xs['byhand']) - min(xs['bare'])):.3f} (mins), "
      f"{med(rounds_ratio):.3f} (median of per-round ratios)")
PY
