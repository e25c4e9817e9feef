# JVM helpers for the build scripts and stages of the JVM examples (the Scala client, the lab's
# Java client, the JMH benchmark). Sourced after lib.sh, not run.

JNI_VERSION=0.1.0
JNI_JAR="$ROOT/jni-binding/target/tcp-keepalive-$JNI_VERSION.jar"
M2_REPO="${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}"
M2_JNI_JAR="$M2_REPO/dev/tcpkeepalive/tcp-keepalive/$JNI_VERSION/tcp-keepalive-$JNI_VERSION.jar"
export JNI_JAR M2_JNI_JAR

# need_jvm: a JDK (17, the machine's default) and Maven.
need_jvm() {
    need_packages openjdk-17-jdk-headless maven
}

# quiet CMD...: runs CMD with its output kept aside; prints it only when CMD fails.
quiet() {
    local out rc=0
    out=$(mktemp)
    "$@" >"$out" 2>&1 || rc=$?
    [ $rc -eq 0 ] || cat "$out" >&2
    rm -f "$out"
    return $rc
}

# jvm_lock: serialises JVM builds of this checkout (the lab may start several build scripts at
# once, and they share jni-binding/target and ~/.m2). Held until the calling script exits.
jvm_lock() {
    mkdir -p "$ROOT/target"
    exec 9>"$ROOT/target/.jvm-build.lock"
    flock -w 900 9 || { echo "timed out waiting for $ROOT/target/.jvm-build.lock" >&2; return 1; }
}

# up_to_date OUTPUT INPUT...: true when OUTPUT exists and no INPUT (file or tree) is newer.
up_to_date() {
    local out=$1
    shift
    [ -f "$out" ] || return 1
    [ -z "$(find "$@" -newer "$out" -print -quit 2>/dev/null)" ]
}

# build_jni_binding: the jar at $JNI_JAR, built and installed into the local Maven repository
# (dev.tcpkeepalive:tcp-keepalive:0.1.0) so the example projects resolve it.
build_jni_binding() {
    if [ -f "$ROOT/scripts/build-jni.sh" ]; then
        bash "$ROOT/scripts/build-jni.sh" || return 1
    elif [ -f "$ROOT/jni-binding/pom.xml" ]; then
        up_to_date "$JNI_JAR" "$ROOT/jni-binding/pom.xml" "$ROOT/jni-binding/Cargo.toml" "$ROOT/jni-binding/src" "$ROOT/core/src" ||
            quiet mvn -B -f "$ROOT/jni-binding/pom.xml" -DskipTests install || return 1
    else
        echo "jni-binding/ is missing from $ROOT: the JVM examples need the JNI binding" >&2
        return 1
    fi
    [ -f "$JNI_JAR" ] || { echo "no $JNI_JAR after building jni-binding" >&2; return 1; }
    # build-jni.sh installs it already; make sure ~/.m2 holds exactly this jar either way.
    cmp -s "$JNI_JAR" "$M2_JNI_JAR" ||
        quiet mvn -B install:install-file -Dfile="$JNI_JAR" -DgroupId=dev.tcpkeepalive \
            -DartifactId=tcp-keepalive -Dversion="$JNI_VERSION" -Dpackaging=jar
}

# build_jvm_project DIR OUTPUT_JAR [MAVEN_ARGS...]: what every JVM build script does: a JDK and
# Maven, the build lock (held until the script exits), the JNI binding installed, then
# build_maven_jar DIR OUTPUT_JAR.
build_jvm_project() {
    need_jvm >&2 || return 1
    jvm_lock || return 1
    build_jni_binding || return 1
    build_maven_jar "$@"
}

# build_maven_jar DIR OUTPUT_JAR [MAVEN_ARGS...]: `mvn package` in DIR unless OUTPUT_JAR is newer
# than DIR's pom and sources and was built against the tcp-keepalive jar now installed (its
# checksum is kept next to OUTPUT_JAR: reinstalling the same jar does not force a rebuild).
build_maven_jar() {
    local dir=$1 out=$2
    shift 2
    local stamp="$out.jni-sha256" sum
    sum=$(sha256sum "$M2_JNI_JAR" 2>/dev/null | cut -d' ' -f1) || sum=none
    if up_to_date "$out" "$dir/pom.xml" "$dir/src" && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
        return 0
    fi
    quiet mvn -B -f "$dir/pom.xml" "$@" package || return 1
    [ -f "$out" ] || { echo "no $out after mvn package in $dir" >&2; return 1; }
    touch "$out"
    echo "$sum" >"$stamp"
}

# ---- running JVM clients against a slow local server (stages 40 and 45) ----

# start_slow_server WORKDIR: scripts/jvm-slow-server.py on 127.0.0.1; sets SLOW_PORT and
# SLOW_PID (stop it with stop_slow_server, e.g. from the stage's EXIT trap).
start_slow_server() {
    local work=$1
    python3 "$ROOT/scripts/jvm-slow-server.py" >"$work/port" 2>"$work/server.err" &
    SLOW_PID=$!
    SLOW_PORT=
    for _ in $(seq 50); do
        SLOW_PORT=$(head -n1 "$work/port" 2>/dev/null)
        [ -n "$SLOW_PORT" ] && return 0
        sleep 0.1
    done
    echo "FAIL: the slow server did not start: $(cat "$work/server.err")" >&2
    return 1
}

stop_slow_server() {
    if [ -n "${SLOW_PID:-}" ]; then
        kill "$SLOW_PID" 2>/dev/null && wait "$SLOW_PID" 2>/dev/null
        SLOW_PID=
    fi
    return 0
}

# Results: ok/bad count and print one line each; run_client needs $work (a scratch directory)
# and $port (the slow server's).
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

# kernel_settings PID FIELD PORT: the keep-alive of process PID's TCP socket whose FIELD ("peer"
# or "local") address has port PORT, read from the kernel by `tcp-keepalive inspect --pid` (root):
# "on IDLE INTERVAL COUNT UT" or "off ..." (UT in ms, "-" unset), "no-socket" when it does not
# appear within 5 s, "no-cli" without target/release/tcp-keepalive.
kernel_settings() {
    local pid=$1 field=$2 want=$3 out
    [ -x "$ROOT/target/release/tcp-keepalive" ] || { echo no-cli; return; }
    for _ in $(seq 50); do
        out=$("$ROOT/target/release/tcp-keepalive" inspect --pid "$pid" --json 2>/dev/null | python3 -c '
import json, sys
field, port = sys.argv[1], sys.argv[2]
try:
    sockets = json.load(sys.stdin)["sockets"]
except ValueError:
    sockets = []
for s in sockets:
    if (s.get(field) or "").rsplit(":", 1)[-1] == port:
        k = s["keepalive"]
        print("on" if k["enabled"] else "off", k["idle_s"], k["interval_s"], k["count"], k["user_timeout_ms"] or "-")
        break
' "$field" "$want")
        [ -n "$out" ] && { echo "$out"; return; }
        sleep 0.1
    done
    echo no-socket
}

# run_client NAME EXPECTED_EXIT EXPECTED_OUTPUT_REGEX TIMER_CHECK ENV... -- ARGV...
# TIMER_CHECK: "idle:N" (a keep-alive timer at most N s away), "off" (no keep-alive timer), "-".
# With EXACT set (e.g. EXACT="on 17 3 4 -"), also the connection's settings read from the kernel
# by kernel_settings while the request waits (needs root: run as another user it is a failure
# under CI=true and skipped otherwise).
run_client() {
    local name=$1 want=$2 pattern=$3 timer=$4
    shift 4
    local env=()
    while [ "$1" != "--" ]; do env+=("$1"); shift; done
    shift
    env "${env[@]}" timeout 60 "$@" >"$work/out" 2>"$work/err" &
    local pid=$! seen=- settings=
    if [ -n "${EXACT:-}" ] && [ "$(id -u)" = 0 ]; then
        # First (it waits for the connection to appear); `timeout` runs the client as its child.
        local child=
        for _ in $(seq 20); do
            child=$(pgrep -P "$pid" | head -n1)
            [ -n "$child" ] && break
            sleep 0.05
        done
        settings=$(kernel_settings "${child:-0}" peer "$SLOW_PORT")
    fi
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
    if [ -n "${EXACT:-}" ]; then
        if [ "$(id -u)" != 0 ]; then
            if is_ci; then why="$why; cannot read the settings from the kernel without root"; fi
        elif [ "$settings" != "$EXACT" ]; then
            why="$why; the kernel says \"$settings\", expected \"$EXACT\""
        fi
    fi
    if [ -z "$why" ]; then
        ok "$name: $out${seen:+ [timer: $seen]}${settings:+ [kernel: $settings]}"
    else
        bad "$name: ${why#; } -- stdout: $out; stderr: $(head -c 400 "$work/err")"
    fi
}

