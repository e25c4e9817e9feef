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
