#!/usr/bin/env bash
# For the lab's java-httpclient-preload row: the JVM recipe clients (scripts/build-jvm-recipes.sh)
# and libkeepalive.so (scripts/build-preload.sh). Idempotent; prints nothing but errors.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bash "$ROOT/scripts/build-jvm-recipes.sh"
bash "$ROOT/scripts/build-preload.sh"
