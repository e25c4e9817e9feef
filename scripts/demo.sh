#!/usr/bin/env bash
# The demo: the middlebox lab. A conntrack middlebox in network namespaces forgets idle flows
# and silently drops their packets; every client row runs with and without keep-alive and the
# table shows the hang and the fix. Builds what the rows need first (each row's build script).
# Then, as a coda, a loopback connection's keep-alive before and after, read from the kernel.
# Run as root.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

if [ "$(id -u)" -eq 0 ]; then
    # clang, libbpf-dev, linux-libc-dev: the CLI the cgroup and cli-rescue rows use builds BPF.
    need_packages python3 iproute2 nftables conntrack build-essential clang libbpf-dev linux-libc-dev
fi
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
"$PY" e2e/lab.py --demo

echo
echo "The Rust core on a loopback connection, read back from the kernel:"
cargo run -q -p tcp-keepalive --example before_after
