#!/usr/bin/env bash
# Builds the middlebox lab's Rust client (examples/rust-client) to target/debug/rust-client.
# Idempotent and quick when already built; prints nothing but errors.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p tcp-keepalive-example-client --bin rust-client
