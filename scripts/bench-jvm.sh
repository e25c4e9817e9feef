#!/usr/bin/env bash
# Runs the JVM door's JMH benchmark (jni-binding/bench): KeepAlive.configure against
# setKeepAlive(true) + three setOption(ExtendedSocketOptions...) on the same connected loopback
# socket, in one run, and prints the ratio of the two.
# Usage: scripts/bench-jvm.sh [JMH options...]   (default: -f 3 -wi 3 -i 3, 1 s each)
# The result is also written to target/jmh-keepalive.json.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$ROOT/scripts/lib-jvm.sh"
need_jvm >&2
jvm_lock
build_jni_binding
bench="$ROOT/jni-binding/bench"
build_maven_jar "$bench" "$bench/target/benchmarks.jar"
exec 9>&- # the lock is for builds only
[ $# -gt 0 ] || set -- -f 3 -wi 3 -i 3 -w 1s -r 1s
json="$ROOT/target/jmh-keepalive.json"
java -jar "$bench/target/benchmarks.jar" ConfigureBenchmark -rf json -rff "$json" "$@"
python3 - "$json" <<'PY'
import json, sys
results = {r["benchmark"].rsplit(".", 1)[1]: r["primaryMetric"] for r in json.load(open(sys.argv[1]))}
base = results["jdkSetOptions"]["score"]
print("\nsame socket, same run (ns/op, lower is better):")
for name in ("jdkSetOptions", "keepAliveConfigure", "keepAliveApplyValue"):
    m = results.get(name)
    if m:
        print(f"  {name:22s} {m['score']:9.1f} ± {m['scoreError']:.1f}   ratio {m['score'] / base:.2f}x")
PY
