#!/usr/bin/env bash
# For the lab's java-preload row: libkeepalive.so (scripts/build-preload.sh) and a JDK able to
# run e2e/clients/PlainJavaClient.java as a single file (`java` on PATH, JDK 11+; installs
# openjdk-17-jdk-headless when there is none). Idempotent; prints nothing but errors.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
if ! command -v javac >/dev/null 2>&1; then
    need_packages openjdk-17-jdk-headless >/dev/null
fi
bash scripts/build-preload.sh
