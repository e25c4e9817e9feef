#!/usr/bin/env bash
# Builds the lab's unmodified static C client (e2e/clients/c-client/plain_client.c: plain
# socket/connect/send/recv) to target/lab/c-static-client with `gcc -static`, so LD_PRELOAD cannot
# reach it. Installs build-essential (gcc, libc6-dev with libc.a) when missing. Idempotent: quick
# when the binary is newer than its source; prints nothing but errors.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
need_packages build-essential >/dev/null
src=e2e/clients/c-client/plain_client.c
out=target/lab/c-static-client
mkdir -p target/lab
if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
    gcc -static -O2 -Wall -Wextra -Werror -o "$out.tmp" "$src"
    mv "$out.tmp" "$out"
fi
if readelf -lW "$out" | grep -q 'Requesting program interpreter'; then
    echo "build-c-client: $out is dynamically linked" >&2
    exit 1
fi
