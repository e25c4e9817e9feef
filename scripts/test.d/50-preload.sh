#!/usr/bin/env bash
# Stage: libkeepalive.so (preload/). Runs its tests with everything they need installed: a C
# compiler and nm (the C program, the export check), python3 (socket.socket()), JDK 17 and every
# other JDK under /usr/lib/jvm (Temurin 25 where present), ss (iproute2). Then runs the C program
# tests (configuration, enforcement, host safety) again against the release build, the file users
# and the middlebox lab load. The cost is measured by preload/bench/run.sh (wall clock) and
# preload/bench/cachegrind.sh (instructions), not here.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"

need_packages build-essential binutils python3 iproute2 openjdk-17-jdk-headless
scripts/build-preload.sh

log "preload: tests (debug build), including Python and Java"
PYTHON=$(command -v python3) cargo test -p tcp-keepalive-preload -- --include-ignored

log "preload: C program tests against target/release/libkeepalive.so"
PRELOAD_LIBRARY="$ROOT/target/release/libkeepalive.so" \
    cargo test -p tcp-keepalive-preload --test c_program --test enforce --test host --test env_table
