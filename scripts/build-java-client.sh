#!/usr/bin/env bash
# Builds the lab's plain Java client (e2e/clients/java-client) into one runnable jar:
#   e2e/clients/java-client/target/java-keepalive-client.jar   (java -jar ...; the lab's "java" rows)
# Builds and installs the JNI binding first. Idempotent, quiet (errors only), quick when built.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$ROOT/scripts/lib-jvm.sh"
build_jvm_project "$ROOT/e2e/clients/java-client" "$ROOT/e2e/clients/java-client/target/java-keepalive-client.jar"
