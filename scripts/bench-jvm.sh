#!/usr/bin/env bash
# Runs the JVM door's JMH benchmarks (jni-binding/bench): KeepAlive.configure against
# setKeepAlive(true) + three setOption(ExtendedSocketOptions...) on the same connected loopback
# socket, and KeepAliveSocketFactory.createSocket() (OkHttp's path) against new Socket() with the
# same four calls, in one run, and prints the ratios.
# Usage: scripts/bench-jvm.sh [JMH options...]   (default: -f 3 -wi 3 -i 3, 1 s each)
# The result is also written to target/jmh-keepalive.json. On a shared machine look at the
# median and best-iteration ratios too: other load inflates the mean of whichever runs during it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$ROOT/scripts/lib-jvm.sh"
bench="$ROOT/jni-binding/bench"
build_jvm_project "$bench" "$bench/target/benchmarks.jar"
exec 9>&- # the lock is for builds only
[ $# -gt 0 ] || set -- -f 3 -wi 3 -i 3 -w 1s -r 1s
json="$ROOT/target/jmh-keepalive.json"
java -jar "$bench/target/benchmarks.jar" "tcpkeepalive.bench.*" -rf json -rff "$json" "$@"
python3 - "$json" <<'PY'
import json, statistics, sys
results = {r["benchmark"].rsplit(".", 1)[1]: r["primaryMetric"] for r in json.load(open(sys.argv[1]))}
def iterations(m):
    return [v for fork in m["rawData"] for v in fork]
pairs = (
    ("one connected loopback socket", "jdkSetOptions", ("keepAliveConfigure", "keepAliveApplyValue")),
    ("a new socket, as OkHttp gets it", "jdkNewSocketSetOptions", ("factoryCreateSocket",)),
)
print("\nns/op from one run, lower is better; ratio against the JDK's own four calls")
for title, base_name, names in pairs:
    base = results.get(base_name)
    if not base:
        continue
    print(f"\n{title}:")
    print(f"  {'benchmark':24s} {'mean':>9s} {'±':>7s} {'median':>9s} {'best':>9s}   ratio mean / median / best")
    for name in (base_name,) + names:
        m = results.get(name)
        if not m:
            continue
        it, bit = iterations(m), iterations(base)
        ratios = (m["score"] / base["score"], statistics.median(it) / statistics.median(bit), min(it) / min(bit))
        print(f"  {name:24s} {m['score']:9.1f} {float(m['scoreError']):7.1f} {statistics.median(it):9.1f} {min(it):9.1f}"
              f"   {ratios[0]:.2f}x / {ratios[1]:.2f}x / {ratios[2]:.2f}x")
PY
