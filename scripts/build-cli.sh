#!/usr/bin/env bash
# Builds the tcp-keepalive command: target/release/tcp-keepalive. Idempotent, quick when already
# built, prints nothing but errors. `run` finds libkeepalive.so next to it (scripts/build-preload.sh
# puts it in target/release/ too).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
# The kernel door's BPF program is compiled by cgroup/build.rs.
need_packages clang libbpf-dev linux-libc-dev
cargo build --release --quiet -p tcp-keepalive-cli
test -x target/release/tcp-keepalive
