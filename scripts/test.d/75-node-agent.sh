#!/usr/bin/env bash
# Stage 75: the Kubernetes node agent (examples/kubernetes/node-agent/). Its manifests parse, their
# container args are accepted by the real tcp-keepalive command, and the DaemonSet's args, run as
# the agent on real cgroups laid out like a node's (kubepods.slice and kubepods) with exactly the
# manifest's capabilities, attach there, cover pods created later, sweep open connections, update
# in place on restart and detach on SIGTERM; without each capability it adds, something fails.
# The kernel tests need root, cgroup v2 and bpffs: they skip with the reason elsewhere, fail under
# CI=true.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"

# python3-yaml reads the manifests; util-linux's setpriv bounds the agent's capabilities.
# clang, libbpf-dev, linux-libc-dev: building the CLI compiles the kernel door's BPF programs.
need_packages python3 python3-yaml python3-pytest util-linux build-essential clang libbpf-dev linux-libc-dev
bash scripts/build-cli.sh
if [ "$(id -u)" -eq 0 ] && ! grep -q ' /sys/fs/bpf bpf ' /proc/mounts; then
    mount -t bpf bpf /sys/fs/bpf  # as on a node (systemd mounts it at boot)
fi
python3 -m pytest -q -p no:cacheprovider examples/kubernetes/node-agent/tests/test_node_agent.py
