#!/usr/bin/env bash
# Benchmarks of the agent's Kubernetes mode (numbers, not pass/fail), against a real control plane,
# real cgroups and BPF: from a pod cgroup appearing to its attachment in place with PODS_AT_ONCE
# (100) cgroups made at once, the agent's memory with PODS_TOTAL (500) pods attached, and a
# /metrics scrape with that many attachments. Needs root; see k8s/benches/kubernetes.py.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
[ "$(id -u)" -eq 0 ] || { echo "needs root (cgroups, BPF)" >&2; exit 1; }
python_venv pytest pyyaml prometheus-client==0.26.0
bash scripts/build-cli.sh
K8S_DIR=$(mktemp -d /tmp/tcpka-k8s-bench.XXXXXX)
export K8S_DIR
trap 'bash scripts/k8s-control-plane.sh stop "$K8S_DIR"; rm -rf "$K8S_DIR"' EXIT
bash scripts/k8s-control-plane.sh start "$K8S_DIR"
"$VENV/bin/python" k8s/benches/kubernetes.py
