#!/usr/bin/env bash
# Builds the JVM recipe clients (examples/jvm-recipes: Pekko HTTP, sttp + OkHttp,
# java.net.http.HttpClient, pgjdbc) into one runnable jar:
#   examples/jvm-recipes/target/jvm-recipes.jar   (java -jar ... pekko|sttp|java-net-http|pgjdbc)
# Builds and installs the JNI binding first. Idempotent, quiet (errors only), quick when built.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$ROOT/scripts/lib-jvm.sh"
build_jvm_project "$ROOT/examples/jvm-recipes" "$ROOT/examples/jvm-recipes/target/jvm-recipes.jar"
