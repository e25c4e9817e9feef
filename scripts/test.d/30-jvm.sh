#!/usr/bin/env bash
# The JVM door (jni-binding/): JUnit tests on Java 17 (mvn install, so the jar also lands in ~/.m2)
# and again on the Java 25 JDK (the test phase, with surefire forking that JDK), both under
# -Xcheck:jni, whose output must stay clean.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"

JDK25=${JDK25:-/usr/lib/jvm/temurin-25-jdk-amd64}
REPORTS=jni-binding/target/surefire-reports
LOGDIR=target/jvm-logs
mkdir -p "$LOGDIR"

if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
    need_packages openjdk-17-jdk-headless maven || exit 1
fi
bash scripts/build-jni.sh || exit 1

# summary LABEL: totals of the surefire XML reports, one line "N passed, N failed, N skipped".
summary() {
    python3 - "$1" "$REPORTS" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
label, reports = sys.argv[1], sys.argv[2]
t = f = s = 0
for path in glob.glob(reports + "/TEST-*.xml"):
    r = ET.parse(path).getroot()
    t += int(r.get("tests", 0)); s += int(r.get("skipped", 0))
    f += int(r.get("failures", 0)) + int(r.get("errors", 0))
print(f"{label}: {t - f - s} passed, {f} failed, {s} skipped")
sys.exit(0 if t > 0 and f == 0 else 1)
PY
}

# jni_clean: -Xcheck:jni writes its complaints to the test JVM's own stdout, which surefire keeps
# in *.dumpstream (System.out goes to *-output.txt); both must be free of them.
jni_clean() {
    if grep -l -E "WARNING in native method|FATAL ERROR in native method|JNI call made with exception pending|exceeds capacity" \
        "$REPORTS"/*-output.txt "$REPORTS"/*.dumpstream 2>/dev/null; then
        echo "-Xcheck:jni reported problems in the files above" >&2
        return 1
    fi
}

# run LABEL LOG MVN-ARGS...: one Maven run; its log is printed only when it fails.
run() {
    local label=$1 logfile=$2
    shift 2
    rm -rf "$REPORTS"
    if mvn -B -q -f jni-binding/pom.xml "$@" >"$logfile" 2>&1; then
        summary "$label" && jni_clean
    else
        cat "$logfile"
        summary "$label"
        return 1
    fi
}

status=0
log "jvm: Java 17, mvn install with tests under -Xcheck:jni"
run "jvm java17" "$LOGDIR/java17.log" install "-Dtest.jvmArgs=-Xcheck:jni" || status=1

if [ -x "$JDK25/bin/java" ]; then
    log "jvm: Java 25 ($JDK25), mvn test under -Xcheck:jni"
    run "jvm java25" "$LOGDIR/java25.log" test "-Djvm=$JDK25/bin/java" \
        "-Dtest.jvmArgs=-Xcheck:jni --enable-native-access=ALL-UNNAMED" || status=1
    grep -h "^java.version=" "$REPORTS"/*-output.txt 2>/dev/null | sort -u
    # The jar's manifest (Enable-Native-Access: ALL-UNNAMED) keeps JDK 25 quiet with java -jar.
    jar_out=$(TCP_KEEPALIVE_IDLE=90 "$JDK25/bin/java" -jar jni-binding/target/tcp-keepalive-0.1.0.jar 2>&1)
    if [ $? -ne 0 ] || grep -q "WARNING" <<<"$jar_out" || ! grep -q "native library: loaded" <<<"$jar_out" ||
        ! grep -q "environment: idle 90s" <<<"$jar_out"; then
        echo "java -jar on Java 25 did not load quietly:" >&2
        printf '%s\n' "$jar_out" >&2
        status=1
    fi
else
    [ $status -eq 0 ] && skip_or_fail "no Java 25 JDK at $JDK25 (set JDK25=...)"
fi
exit $status
