#!/usr/bin/env bash
# Builds the JVM door's jar, jni-binding/target/tcp-keepalive-0.1.0.jar (the linux-x86_64 native
# library inside), and installs it into the local Maven repository (~/.m2) as
# dev.tcpkeepalive:tcp-keepalive:0.1.0 for other Maven builds (examples, benchmarks, the lab).
# Idempotent and quick when nothing changed; prints nothing but errors.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

JAR=jni-binding/target/tcp-keepalive-0.1.0.jar
INSTALLED=${HOME}/.m2/repository/dev/tcpkeepalive/tcp-keepalive/0.1.0/tcp-keepalive-0.1.0.jar
if [ -f "$JAR" ] && cmp -s "$JAR" "$INSTALLED"; then
    changed=$(find jni-binding/pom.xml jni-binding/Cargo.toml jni-binding/src core/Cargo.toml core/src \
        Cargo.toml Cargo.lock -newer "$JAR" -print -quit 2>/dev/null || true)
    [ -z "$changed" ] && exit 0
fi

if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
    need_packages openjdk-17-jdk-headless maven >/dev/null
fi
if ! out=$(mvn -B -q -f jni-binding/pom.xml -DskipTests install 2>&1); then
    printf '%s\n' "$out" >&2
    echo "build-jni: mvn -f jni-binding/pom.xml install failed" >&2
    exit 1
fi
[ -f "$JAR" ] || { echo "build-jni: $JAR was not produced" >&2; exit 1; }
