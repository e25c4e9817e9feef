#!/usr/bin/env bash
# Builds the Scala example client (examples/scala-client) into one runnable jar:
#   examples/scala-client/target/scala-client.jar   (java -jar ...; the lab's "scala" rows)
# Builds and installs the JNI binding first. Idempotent, quiet (errors only), quick when built.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$ROOT/scripts/lib-jvm.sh"
build_jvm_project "$ROOT/examples/scala-client" "$ROOT/examples/scala-client/target/scala-client.jar"
