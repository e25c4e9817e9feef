#!/usr/bin/env bash
# Stage 70-cgroup: the kernel door (`tcp-keepalive cgroup ...`) on real cgroups and real BPF
# programs, against the release build. Needs root, cgroup v2 and a kernel that loads the
# programs (5.9+); installs clang and libbpf-dev (the build), bpftool (someone else's program
# attached beside ours), and Go when none is found (the static Go client).
# Usage: scripts/test.d/70-cgroup.sh [CASE-SUBSTRING...]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"

[ "$(id -u)" -eq 0 ] || skip_or_fail "the kernel door's tests need root (cgroups, BPF)"
grep -q ' cgroup2 ' /proc/mounts || skip_or_fail "no cgroup v2 mount in /proc/mounts"
need_packages build-essential clang libbpf-dev linux-libc-dev bpftool

# Go: /usr/local/go on the development machines, else Debian's.
if [ -z "${GO:-}" ]; then
    if [ -x /usr/local/go/bin/go ]; then
        GO=/usr/local/go/bin/go
    elif command -v go >/dev/null; then
        GO=$(command -v go)
    else
        need_packages golang-go
        GO=$(command -v go)
    fi
fi
export GO

bash scripts/build-cli.sh
CLI="$ROOT/target/release/tcp-keepalive"
log "cgroup: does the kernel door work here?"
"$CLI" doctor | sed -n '/The kernel door/,$p'

log "cgroup: the tests against the release build"
TCPKA_CLI="$CLI" cargo test --quiet -p tcp-keepalive-cli --test cgroup -- "$@"
