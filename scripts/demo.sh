#!/usr/bin/env bash
# The demo. Until the middlebox lab lands (e2e/), it configures a real loopback connection and
# prints its keep-alive settings, read from the kernel, before and after.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
cargo run -q -p tcp-keepalive --example before_after
