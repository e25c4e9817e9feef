#!/usr/bin/env bash
# The Helm chart charts/tcp-keepalive/: `helm lint`, `helm template` with the default values and
# with the variants that change objects (sweep off, ServiceMonitor on, select all), every rendered
# object through a server-side dry run against the API server of $KUBECONFIG (when set), then a
# real helm install and uninstall there, and
# examples/kubernetes/node-agent/kubernetes-mode.yaml must be what the chart renders.
# Usage: scripts/check-chart.sh            check
#        scripts/check-chart.sh --update   re-render the example from the chart
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

HELM=${HELM:-$(bash scripts/k8s-build.sh helm | awk '{print $2}')}
CHART=charts/tcp-keepalive
EXAMPLE=examples/kubernetes/node-agent/kubernetes-mode.yaml
render_example() {
    {
        echo "# Rendered from charts/tcp-keepalive by scripts/check-chart.sh --update; do not edit."
        echo "# The agent's Kubernetes mode: per-pod keep-alive by annotation (README.md, \"Whole cluster\")."
        "$HELM" template tcp-keepalive "$CHART" --namespace tcp-keepalive --set namespace.create=true
    } | sed -e 's/[[:space:]]*$//'
}

if [ "${1:-}" = "--update" ]; then
    render_example >"$EXAMPLE"
    echo "wrote $EXAMPLE"
    exit 0
fi

"$HELM" lint --strict "$CHART"
diff -u "$EXAMPLE" <(render_example) ||
    { echo "$EXAMPLE is not what the chart renders: run scripts/check-chart.sh --update" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$HELM" template t "$CHART" -n tcp-keepalive >"$tmp/default.yaml"
"$HELM" template t "$CHART" -n tcp-keepalive --set sweep=false >"$tmp/nosweep.yaml"
"$HELM" template t "$CHART" -n tcp-keepalive --set serviceMonitor.enabled=true --set select=all \
    --set enforce=false --set keepOnExit=false --set timings.userTimeout=2m >"$tmp/monitor.yaml"
if "$HELM" template t "$CHART" --set select=some >/dev/null 2>"$tmp/err"; then
    echo "select=some was accepted" >&2; exit 1
fi
grep -q 'select: "some" is not allowed (annotated or all)' "$tmp/err"

python3 - "$tmp" <<'PY'
import sys, yaml
d = sys.argv[1]
load = lambda n: [x for x in yaml.safe_load_all(open(f"{d}/{n}.yaml")) if x]
kinds = lambda docs: sorted(x["kind"] for x in docs)
default, nosweep, monitor = load("default"), load("nosweep"), load("monitor")
assert kinds(default) == ["ClusterRole", "ClusterRoleBinding", "DaemonSet", "ServiceAccount"], kinds(default)
assert "ServiceMonitor" in kinds(monitor) and "Service" in kinds(monitor)
(role,) = [x for x in default if x["kind"] == "ClusterRole"]
assert role["rules"] == [
    {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
], role["rules"]
def pod(docs):
    (ds,) = [x for x in docs if x["kind"] == "DaemonSet"]
    return ds["spec"]["template"]["spec"]
p, q, m = pod(default), pod(nosweep), pod(monitor)
assert p["hostPID"] is True and "hostPID" not in q
caps = lambda s: s["containers"][0]["securityContext"]["capabilities"]["add"]
assert caps(p) == ["BPF", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"] and caps(q) == ["BPF", "NET_ADMIN"]
args = lambda s: s["containers"][0]["args"]
assert "--no-sweep" in args(q) and "--no-sweep" not in args(p)
for flag in ("--no-enforce", "--detach-on-exit", "--user-timeout"):
    assert flag in args(m) and flag not in args(p), flag
assert args(m)[args(m).index("--select") + 1] == "all"
c = p["containers"][0]
assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
print("chart: rendered objects as expected")
PY

# The args the chart renders are accepted by the real command: clap parses (and checks) every
# argument before the trailing --help, which then stops before anything runs.
CLI=target/release/tcp-keepalive
if [ -x "$CLI" ]; then
    for f in default nosweep monitor; do
        mapfile -t a < <(python3 -c 'import sys,yaml; [print("\n".join(d["spec"]["template"]["spec"]["containers"][0]["args"])) for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"]=="DaemonSet"]' "$tmp/$f.yaml")
        "$CLI" "${a[@]}" --help >/dev/null
    done
fi

if [ -n "${KUBECONFIG:-}" ]; then
    kubectl create namespace tcp-keepalive --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    for f in default nosweep; do
        kubectl apply --dry-run=server -f "$tmp/$f.yaml" >/dev/null
    done
    # The ServiceMonitor needs prometheus-operator's CRD, absent here: its Service goes through.
    python3 -c 'import sys,yaml; print(yaml.safe_dump_all([d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"]!="ServiceMonitor"]))' "$tmp/monitor.yaml" |
        kubectl apply --dry-run=server -f - >/dev/null
    echo "chart: every rendered object passed a server-side dry run"
    # helm install and uninstall for real (no kubelet here: the DaemonSet makes no pod; the objects
    # and their removal are what is checked).
    rel=tcpka-check-$$
    "$HELM" install "$rel" "$CHART" -n "$rel" --create-namespace >/dev/null
    for o in daemonset/"$rel"-agent serviceaccount/"$rel"-agent clusterrole/"$rel"-agent clusterrolebinding/"$rel"-agent; do
        kubectl get -n "$rel" "$o" >/dev/null
    done
    "$HELM" uninstall "$rel" -n "$rel" --wait >/dev/null
    for o in daemonset/"$rel"-agent serviceaccount/"$rel"-agent clusterrole/"$rel"-agent clusterrolebinding/"$rel"-agent; do
        if kubectl get -n "$rel" "$o" >/dev/null 2>&1; then echo "$o is left after helm uninstall" >&2; exit 1; fi
    done
    echo "chart: helm install created every object, helm uninstall removed them"
fi
