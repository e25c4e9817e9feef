#!/usr/bin/env bash
# Builds the Scala example client (examples/scala-client) into one runnable jar:
#   examples/scala-client/target/scala-client.jar   (java -jar ...; the lab's "scala" rows)
# Builds and installs the JNI binding first. Idempotent, quiet (errors only), quick when built.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$ROOT/scripts/lib-jvm.sh"
need_jvm >&2
jvm_lock
build_jni_binding
build_maven_jar "$ROOT/examples/scala-client" "$ROOT/examples/scala-client/target/scala-client.jar"
