#!/usr/bin/env bash
# Builds the control plane the Kubernetes-mode tests run against (etcd and kube-apiserver) and helm,
# from the Go module proxy, once: the binaries are cached under $K8S_CACHE (default
# ~/.cache/tcp-keepalive/k8s), keyed by version, so a second run prints their paths and builds nothing.
# `go install` of etcd and kubernetes is refused (their go.mod has replace directives), so each is built
# from a small wrapper module (FACTS.md, "A real Kubernetes API here"). Cold: 6-14 min; warm: instant.
# Usage: scripts/k8s-build.sh [etcd|kube-apiserver|kubectl|helm ...]
#        (no argument: etcd, kube-apiserver and helm; kubectl only when asked for)
# Prints "NAME PATH" per binary on stdout; progress goes to stderr.
# K8S_CACHED_ONLY=1: build nothing; exit 3 naming the first binary that is not cached (the lab's
# Kubernetes rows skip with that reason outside CI rather than spend 6-14 min building).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
K8S_VERSION=${K8S_VERSION:-v1.37.2}
HELM_VERSION=${HELM_VERSION:-v3.21.4}
K8S_CACHE=${K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tcp-keepalive/k8s}

if [ -z "${GO:-}" ] && [ "${K8S_CACHED_ONLY:-}" != 1 ]; then
    if [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go
    elif command -v go >/dev/null; then GO=$(command -v go)
    else need_packages golang-go >&2 && GO=$(command -v go); fi
fi
# Kubernetes may ask for a newer Go than the local one: let the go command fetch that toolchain from
# the module proxy rather than fail.
export GOTOOLCHAIN=${GOTOOLCHAIN_K8S:-auto} GOFLAGS=-buildvcs=false CGO_ENABLED=0

not_cached() { # not_cached NAME PATH: under K8S_CACHED_ONLY=1, stop instead of building
    [ "${K8S_CACHED_ONLY:-}" = 1 ] || return 0
    echo "$1 is not cached ($2 is missing; scripts/k8s-build.sh builds it in 6-14 min)" >&2
    exit 3
}

build_etcd() {
    local out="$K8S_CACHE/etcd-$ETCD_VERSION/etcd"
    [ -x "$out" ] || not_cached etcd "$out"
    if [ ! -x "$out" ]; then
        local w="$K8S_CACHE/src/etcd-$ETCD_VERSION"
        mkdir -p "$w" "$(dirname "$out")"
        log "building etcd $ETCD_VERSION (cached in $out)" >&2
        (cd "$w" && { [ -f go.mod ] || "$GO" mod init build/etcd >&2; } &&
            "$GO" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 &&
            "$GO" build -trimpath -o "$out.tmp" go.etcd.io/etcd/server/v3 >&2 && mv "$out.tmp" "$out")
    fi
    echo "etcd $out"
}

STAGING="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api cri-client
cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils
pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming"

build_apiserver() { build_k8s_cmd kube-apiserver; }

# build_k8s_cmd NAME: a command of k8s.io/kubernetes/cmd (kube-apiserver, kubectl).
build_k8s_cmd() {
    local cmd=$1
    local out="$K8S_CACHE/kubernetes-$K8S_VERSION/$cmd"
    [ -x "$out" ] || not_cached "$cmd" "$out"
    if [ ! -x "$out" ]; then
        local w="$K8S_CACHE/src/kubernetes-$K8S_VERSION" minor=${K8S_VERSION#v1.}
        minor=${minor%%.*}
        local staging_version="v0.${K8S_VERSION#v1.}"
        mkdir -p "$w" "$(dirname "$out")"
        log "building $cmd $K8S_VERSION (cached in $out)" >&2
        {
            echo "module build/kubernetes"
            echo
            echo "go 1.25"
            echo
            echo "require k8s.io/kubernetes $K8S_VERSION"
            echo
            echo "tool k8s.io/kubernetes/cmd/kube-apiserver"
            echo "tool k8s.io/kubernetes/cmd/kubectl"
            echo
            for m in $STAGING; do echo "replace k8s.io/$m => k8s.io/$m $staging_version"; done
        } >"$w/go.mod.want"
        if ! cmp -s "$w/go.mod.want" "$w/go.mod.in" 2>/dev/null; then
            cp "$w/go.mod.want" "$w/go.mod"
            cp "$w/go.mod.want" "$w/go.mod.in"
        fi
        local ld=""
        for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
            ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
        done
        (cd "$w" && "$GO" mod tidy >&2 &&
            "$GO" build -trimpath -ldflags "$ld" -o "$out.tmp" "k8s.io/kubernetes/cmd/$cmd" >&2 &&
            mv "$out.tmp" "$out")
    fi
    echo "$cmd $out"
}

build_helm() {
    local out="$K8S_CACHE/helm-$HELM_VERSION/helm"
    if [ ! -x "$out" ]; then
        mkdir -p "$(dirname "$out")"
        log "building helm $HELM_VERSION (cached in $out)" >&2
        GOBIN="$(dirname "$out")" "$GO" install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
    fi
    echo "helm $out"
}

[ $# -gt 0 ] || set -- etcd kube-apiserver helm
for b in "$@"; do
    case $b in
    etcd) build_etcd ;;
    kube-apiserver) build_apiserver ;;
    kubectl) build_k8s_cmd kubectl ;;
    helm) build_helm ;;
    *) echo "unknown binary: $b (etcd, kube-apiserver, kubectl, helm)" >&2; exit 2 ;;
    esac
done
