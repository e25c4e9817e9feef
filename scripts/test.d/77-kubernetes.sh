#!/usr/bin/env bash
# Stage 77: the agent's Kubernetes mode (`tcp-keepalive cgroup agent --kubernetes`) and its Helm
# chart, against a real control plane (etcd + kube-apiserver built from the Go module proxy by
# scripts/k8s-build.sh, cached in ~/.cache/tcp-keepalive/k8s: cold 6-14 min, warm instant), real
# cgroups and real BPF programs:
#   - the chart: helm lint, helm template, a server-side dry run of every rendered object, and
#     examples/kubernetes/node-agent/kubernetes-mode.yaml is what the chart renders;
#   - k8s/tests/test_kubernetes.py: pods and namespaces with annotations, their cgroups made as
#     the kubelet does, values read back from the kernel, Events, metrics, API outages, RBAC.
# Needs root, cgroup v2, bpffs, Go and openssl: skips with the reason elsewhere, fails under CI=true.
# Usage: scripts/test.d/77-kubernetes.sh [PYTEST -k EXPRESSION]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"

[ "$(id -u)" -eq 0 ] || skip_or_fail "the Kubernetes-mode tests need root (cgroups, BPF)"
grep -q ' cgroup2 ' /proc/mounts || skip_or_fail "no cgroup v2 mount in /proc/mounts"
# python3-yaml reads manifests; prometheus-client parses /metrics (venv); bpftool lists the
# programs attached at a cgroup.
need_packages build-essential clang libbpf-dev linux-libc-dev openssl curl python3 python3-yaml \
    python3-venv bpftool
if ! grep -q ' /sys/fs/bpf bpf ' /proc/mounts; then
    mount -t bpf bpf /sys/fs/bpf # as on a node (systemd mounts it at boot)
fi
python_venv pytest pyyaml prometheus-client==0.26.0

log "kubernetes: etcd, kube-apiserver and helm (cached after the first build)"
bins=$(bash scripts/k8s-build.sh) || skip_or_fail "could not build the control plane from the Go module proxy"
HELM=$(awk '$1=="helm"{print $2}' <<<"$bins")
# kubectl: the machine's (1.24+ for `create token`), else built beside kube-apiserver (Debian's
# kubernetes-client is 1.20).
if ! command -v kubectl >/dev/null || ! kubectl create token --help >/dev/null 2>&1; then
    kubectl=$(bash scripts/k8s-build.sh kubectl | awk '{print $2}')
    PATH="$(dirname "$kubectl"):$PATH"
fi

bash scripts/build-cli.sh

K8S_DIR=$(mktemp -d /tmp/tcpka-k8s.XXXXXX)
export K8S_DIR
cleanup() {
    bash scripts/k8s-control-plane.sh stop "$K8S_DIR" || true
    rm -rf "$K8S_DIR"
}
trap cleanup EXIT
log "kubernetes: starting the control plane"
bash scripts/k8s-control-plane.sh start "$K8S_DIR"
export KUBECONFIG=$K8S_DIR/kubeconfig

log "kubernetes: the chart"
HELM="$HELM" bash scripts/check-chart.sh

log "kubernetes: the agent against the API server, real cgroups and BPF"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider k8s/tests/test_kubernetes.py ${1:+-k "$1"}
