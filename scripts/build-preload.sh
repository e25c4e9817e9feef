#!/usr/bin/env bash
# Builds libkeepalive.so (release) at target/release/libkeepalive.so. Idempotent and quick when
# already built; prints nothing but errors. Used by the preload stage and the middlebox lab.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p tcp-keepalive-preload
test -f target/release/libkeepalive.so
