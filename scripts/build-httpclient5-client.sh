#!/usr/bin/env bash
# For the lab's httpclient5-preload rows: libkeepalive.so (scripts/build-preload.sh) and the
# unmodified Apache HttpClient 5 async client (e2e/clients/httpclient5-async) as one runnable jar:
#   e2e/clients/httpclient5-async/target/httpclient5-async-client.jar
# It has no tcp-keepalive dependency (keep-alive comes from the preload only), so no JNI build.
# Idempotent, quiet (errors only), quick when built.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$ROOT/scripts/lib-jvm.sh"
need_jvm >&2
jvm_lock
bash "$ROOT/scripts/build-preload.sh"
dir="$ROOT/e2e/clients/httpclient5-async"
out="$dir/target/httpclient5-async-client.jar"
if ! up_to_date "$out" "$dir/pom.xml" "$dir/src"; then
    quiet mvn -B -f "$dir/pom.xml" package
    [ -f "$out" ] || { echo "no $out after mvn package in $dir" >&2; exit 1; }
    touch "$out"
fi
