#!/usr/bin/env bash
# A real Kubernetes control plane for tests: etcd and kube-apiserver (built and cached by
# scripts/k8s-build.sh) on 127.0.0.1, RBAC on, a static admin token, a service-account key pair.
# No kubelet, controller-manager or scheduler: tests create pods with spec.nodeName set and make
# their cgroups themselves. The ServiceAccount admission plugin is off (without the
# controller-manager no namespace gets a `default` ServiceAccount, and pods would be refused).
#
# Usage: scripts/k8s-control-plane.sh start DIR     start both; DIR/kubeconfig, DIR/env (sourceable)
#        scripts/k8s-control-plane.sh stop DIR      stop both (apiserver first), keep DIR
#        scripts/k8s-control-plane.sh stop-apiserver DIR | start-apiserver DIR   (an API outage)
# A stage sources DIR/env and calls `stop` from its EXIT trap, so a failed test leaves nothing running.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmd=${1:?usage: $0 start|stop|stop-apiserver|start-apiserver DIR}
dir=${2:?usage: $0 $cmd DIR}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_pid() { # stop_pid FILE: SIGTERM, then SIGKILL after 10 s (bounded)
    local f=$1 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

start_apiserver() {
    . "$dir/env"
    "$KUBE_APISERVER_BIN" \
        --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
        --tls-cert-file="$dir/apiserver.crt" --tls-private-key-file="$dir/apiserver.key" \
        --client-ca-file="$dir/ca.crt" --token-auth-file="$dir/tokens.csv" \
        --service-account-key-file="$dir/sa.pub" --service-account-signing-key-file="$dir/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --api-audiences=https://kubernetes.default.svc.cluster.local \
        --authorization-mode=RBAC --endpoint-reconciler-type=none \
        --service-cluster-ip-range=10.96.0.0/16 \
        --disable-admission-plugins=ServiceAccount \
        >>"$dir/apiserver.log" 2>&1 &
    echo $! >"$dir/apiserver.pid"
    local url="https://127.0.0.1:$APISERVER_PORT/readyz"
    for _ in $(seq 600); do # at most 60 s
        if curl -sf --cacert "$dir/ca.crt" -H "Authorization: Bearer $(cat "$dir/admin.token")" "$url" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null || { tail -20 "$dir/apiserver.log" >&2; return 1; }
        sleep 0.1
    done
    echo "kube-apiserver not ready after 60 s; its log: $dir/apiserver.log" >&2
    tail -20 "$dir/apiserver.log" >&2
    return 1
}

case $cmd in
start)
    need_packages openssl curl >&2
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    bins=$(bash "$ROOT/scripts/k8s-build.sh" etcd kube-apiserver)
    etcd_bin=$(awk '$1=="etcd"{print $2}' <<<"$bins")
    apiserver_bin=$(awk '$1=="kube-apiserver"{print $2}' <<<"$bins")
    (
        cd "$dir"
        openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
        openssl req -x509 -new -key ca.key -subj /CN=tcp-keepalive-test-ca -days 2 -out ca.crt 2>/dev/null
        openssl ecparam -name prime256v1 -genkey -noout -out apiserver.key 2>/dev/null
        openssl req -new -key apiserver.key -subj /CN=kube-apiserver -out apiserver.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >san.ext
        openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -extfile san.ext -out apiserver.crt 2>/dev/null
        openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
        openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
        head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >admin.token
        echo "$(cat admin.token),admin,admin,system:masters" >tokens.csv
    )
    etcd_port=$(free_port)
    peer_port=$(free_port)
    api_port=$(free_port)
    cat >"$dir/env" <<ENV
ETCD_BIN=$etcd_bin
KUBE_APISERVER_BIN=$apiserver_bin
ETCD_PORT=$etcd_port
APISERVER_PORT=$api_port
APISERVER_URL=https://127.0.0.1:$api_port
KUBECONFIG=$dir/kubeconfig
K8S_DIR=$dir
ENV
    ca=$(base64 -w0 <"$dir/ca.crt")
    cat >"$dir/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://127.0.0.1:$api_port", certificate-authority-data: $ca}
users:
- name: admin
  user: {token: $(cat "$dir/admin.token")}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
KC
    "$etcd_bin" --name test --data-dir "$dir/etcd" --unsafe-no-fsync \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "test=http://127.0.0.1:$peer_port" >"$dir/etcd.log" 2>&1 &
    echo $! >"$dir/etcd.pid"
    start=$SECONDS
    start_apiserver || { bash "$0" stop "$dir"; exit 1; }
    echo "control plane up in $((SECONDS - start)) s: $dir/kubeconfig" >&2
    ;;
stop)
    stop_pid "$dir/apiserver.pid"
    stop_pid "$dir/etcd.pid"
    ;;
stop-apiserver) stop_pid "$dir/apiserver.pid" ;;
start-apiserver) start_apiserver ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
