#!/usr/bin/env bash
# Stage: the release image and the Kubernetes examples, run for real in containers (rootful podman
# with runc; scripts/lib-containers.sh). Reuses dist/ (stage 80-dist builds it; without it, the
# image's two files are built here for this arch only, into an image of the same layout) and the
# application images of scripts/build-app-images.sh (cached under target/containers/images).
# About 10-20 s warm, 45 s with the application image to build (dist/ present).
#   - the image loaded from dist/tcp-keepalive-VERSION.oci.tar: --version, doctor;
#   - the init container exactly as examples/kubernetes/deployment.yaml runs it (user 65534,
#     read-only root, no capabilities, no new privileges) fills a volume with libkeepalive.so;
#     the application container (the seed's Python server image, unchanged) mounts it read-only
#     with the example's env: its sockets read back keep-alive from the kernel, inside
#     (getsockopt) and from the host (tcp-keepalive inspect --pid);
#   - the node agent exactly as the DaemonSet runs it (its args, capabilities, read-only root,
#     host PID, seccomp unconfined, the two host paths) finds kubepods under the mounted cgroup
#     root, attaches, sweeps the open connection of a running pod container there, covers a new
#     one, leaves its programs attached on SIGTERM, and `cgroup detach --all` removes them;
#   - podman kube play runs deployment.yaml (a test copy adapted where podman 4.3 lacks a field)
#     and the agent's pod template as a Pod;
#   - containers, images, volumes, pods, cgroups and pins are removed, also on failure, and the
#     host's forwarding and firewall settings are as before (no container gets a network: none, or
#     the lab's namespaces).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/scripts/lib-containers.sh"
cd "$ROOT"

[ "$(id -u)" -eq 0 ] || skip_or_fail "the containers stage needs root (rootful podman, cgroups, BPF)"
pm_ready || skip_or_fail "podman/runc could not be installed"
need_packages python3-yaml >/dev/null || exit 1

ID=tkl-ctr-$$
WORK=$ROOT/target/containers/work-$$
V2=$(cgroup2_root)
PIN_ROOT=/sys/fs/bpf/$ID
mkdir -p "$WORK"
BEFORE=$(host_net_state)

cleanup() {
    # kube play's pods get cgroups under libpod_parent that podman leaves behind (empty).
    local pods
    pods=$(pm pod ps -q --no-trunc 2>/dev/null)
    pm pod rm -a -f -t 0 >/dev/null 2>&1
    local pod
    for pod in $pods; do remove_cgroup_tree "libpod_parent/$pod"; done
    pm rm -a -f -t 0 >/dev/null 2>&1
    pm volume rm -a -f >/dev/null 2>&1
    pm rmi -a -f >/dev/null 2>&1
    [ -d "$PIN_ROOT" ] && TCP_KEEPALIVE_PIN_ROOT=$PIN_ROOT "${CLI:-false}" cgroup detach --all >/dev/null 2>&1
    [ -d "$PIN_ROOT" ] && { rm -rf "${PIN_ROOT:?}"/* 2>/dev/null; rmdir "$PIN_ROOT" 2>/dev/null; }
    remove_cgroup_tree "$ID"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

passed=0
failed_parts=()
part() {
    local name=$1
    shift
    log "containers: $name"
    local start=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "ok: $name ($((SECONDS - start)) s)"
    else
        failed_parts+=("$name")
        echo "FAILED: $name" >&2
    fi
}

# expect WHAT GOT WANT: one line saying what matched, or both values.
expect() {
    if [ "$2" = "$3" ]; then
        echo "  $1: $2"
    else
        echo "  $1: got '$2', want '$3'" >&2
        return 1
    fi
}

# wait_log CTR PATTERN [SECONDS]: until the container's log has a line matching PATTERN. (Logs are
# captured before grep: with pipefail, `pm logs | grep -q` fails when grep exits first.)
wait_log() {
    local i
    for i in $(seq $((${3:-30} * 10))); do
        grep -q -E "$2" <<<"$(pm logs "$1" 2>&1)" && return 0
        sleep 0.1
    done
    echo "  no line matching '$2' in the log of $1 within ${3:-30} s:" >&2
    pm logs "$1" 2>&1 | tail -n 20 >&2
    return 1
}

# keepalive_of PID: the keep-alive of each TCP socket of PID from the host (inspect --json),
# sorted, one "state keep-alive" a line.
keepalive_of() {
    "$CLI" inspect --pid "$1" --json | python3 -c '
import json, sys
for s in json.load(sys.stdin)["sockets"]:
    k = s["keepalive"]
    print(s["state"], "%d/%d/%d" % (k["idle_s"], k["interval_s"], k["count"]) if k["enabled"] else "off")' | sort
}

# The example's values: the init container's and the app's settings, from the file users copy.
example() {
    python3 - "$ROOT/examples/kubernetes/deployment.yaml" "$1" <<'PY'
import sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))["spec"]["template"]["spec"]
init, app = spec["initContainers"][0], spec["containers"][0]
what = sys.argv[2]
if what == "init-args":
    print(" ".join(init["args"]))
elif what == "app-env":
    for e in app["env"]:
        print(f"{e['name']}={e['value']}")
elif what == "mount":
    print(init["volumeMounts"][0]["mountPath"])
PY
}

load() {
    pm_load_release || return 1
    # The image's own command, for inspect/status/detach from the host.
    CLI=$RELEASE_CLI
    echo "  image from $RELEASE_ARCHIVE"
    pm image inspect "$RELEASE_IMAGE" --format '{{.Os}}/{{.Architecture}} {{.Config.Entrypoint}}'
    bash scripts/build-app-images.sh python-server || return 1
    pm load -q -i target/containers/images/python-server.oci.tar >/dev/null || return 1
    [ -x "$CLI" ] || { echo "no $CLI" >&2; return 1; }
}

version_and_doctor() {
    local out
    out=$(pm run --rm --network none "$RELEASE_IMAGE" --version) || return 1
    expect "--version" "$out" "tcp-keepalive $TKL_VERSION" || return 1
    out=$(pm run --rm --network none "$RELEASE_IMAGE" doctor 2>&1) || { echo "$out" >&2; return 1; }
    echo "$out" | head -n 4
    grep -q "tcp_keepalive_time" <<<"$out" || grep -q "7200" <<<"$out"
}

# As deployment.yaml's init container: runAsUser/Group 65534, readOnlyRootFilesystem, capabilities
# drop ALL, allowPrivilegeEscalation false; its args; the emptyDir at its mountPath.
INIT_FLAGS=(--user 65534:65534 --read-only --cap-drop ALL --security-opt no-new-privileges)

init_container() {
    local mount args out
    mount=$(example mount)
    read -r -a args <<<"$(example init-args)"
    pm volume create "$ID-keepalive" >/dev/null || return 1
    # A kubelet makes an emptyDir world-writable (0777); a podman volume is root's 0755.
    chmod 0777 "$(pm volume inspect "$ID-keepalive" --format '{{.Mountpoint}}')" || return 1
    out=$(pm run --rm --network none "${INIT_FLAGS[@]}" -v "$ID-keepalive:$mount" \
        "$RELEASE_IMAGE" "${args[@]}" 2>&1) || { echo "$out" >&2; return 1; }
    echo "  $out"
    local where
    where=$(pm volume inspect "$ID-keepalive" --format '{{.Mountpoint}}') || return 1
    cmp "$where/libkeepalive.so" "$RELEASE_LIB" || return 1
    expect "the installed file (mode, owner)" "$(stat -c '%a %u' "$where/libkeepalive.so")" "644 65534" || return 1
    expect "the volume holds" "$(ls -A "$where")" "libkeepalive.so"
}

# The seed's Python server image, unchanged, with the volume read-only and the example's env.
application() {
    local envs=() line
    while read -r line; do envs+=(-e "$line"); done < <(example app-env)
    pm run -d --name "$ID-app" --network none --cgroup-parent "/$ID" "${envs[@]}" \
        -v "$ID-keepalive:$(example mount):ro" \
        -v "$ROOT/scripts/containers/pod_probe.py:/probe/pod_probe.py:ro" \
        localhost/tkl-python-server:lab python3 /probe/pod_probe.py >/dev/null || return 1
    wait_log "$ID-app" "^CONNECTED 1" || return 1
    pm logs "$ID-app" 2>&1 | sed 's/^/  app: /'
    local want
    want=$(example app-env | sed -n 's/^TCP_KEEPALIVE_IDLE=//p')/$(example app-env | sed -n 's/^TCP_KEEPALIVE_INTERVAL=//p')/$(example app-env | sed -n 's/^TCP_KEEPALIVE_COUNT=//p')
    expect "inside the container (getsockopt)" "$(pm logs "$ID-app" 2>&1 | grep '^CONNECTED 1')" "CONNECTED 1 $want $want" || return 1
    grep -q "tcp-keepalive" <<<"$(pm logs "$ID-app" 2>&1)" || { echo "  no TCP_KEEPALIVE_LOG line" >&2; return 1; }
    local pid
    pid=$(pm inspect "$ID-app" --format '{{.State.Pid}}') || return 1
    expect "from the host (inspect --pid $pid)" "$(keepalive_of "$pid" | tr '\n' ' ')" \
        "ESTABLISHED $want ESTABLISHED $want LISTEN $want " || return 1
    pm rm -f -t 0 "$ID-app" >/dev/null
}

# The DaemonSet's pod template, read from the file users copy.
daemonset() {
    python3 - "$ROOT/examples/kubernetes/node-agent/daemonset.yaml" "$1" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "DaemonSet"]
spec = docs[0]["spec"]["template"]["spec"]
c = spec["containers"][0]
what = sys.argv[2]
if what == "args":
    print("\n".join(c["args"]))
elif what == "flags":
    sc = c["securityContext"]
    print("--user", sc["runAsUser"])
    if sc.get("readOnlyRootFilesystem"):
        print("--read-only")
    if sc.get("allowPrivilegeEscalation") is False:
        print("--security-opt", "no-new-privileges")
    for cap in sc["capabilities"]["drop"]:
        print("--cap-drop", cap)
    for cap in sc["capabilities"]["add"]:
        print("--cap-add", cap)
    if sc["seccompProfile"]["type"] == "Unconfined":
        print("--security-opt", "seccomp=unconfined")
    if spec.get("hostPID"):
        print("--pid", "host")
elif what == "mounts":
    vols = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
    for m in c["volumeMounts"]:
        print(vols[m["name"]], m["mountPath"], "ro" if m.get("readOnly") else "rw")
elif what == "env":
    for e in c.get("env", []):
        print(f"{e['name']}={e['value']}")
PY
}

# The agent container's flags: the DaemonSet's securityContext, hostPID, env and host paths. Two
# host paths point somewhere private (other tests share this machine): /sys/fs/cgroup becomes this
# test's own cgroup tree ($V2/$ID, with kubepods inside, as a node's cgroupfs driver lays it out),
# and the pin root a directory of its own on the node's bpffs.
agent_flags() {
    local line
    while read -r line; do AGENT+=($line); done < <(daemonset flags)
    while read -r host path mode; do
        case $host in
        /sys/fs/cgroup) host=$V2/$ID ;;
        esac
        AGENT+=(-v "$host:$path:$mode")
    done < <(daemonset mounts)
    while read -r line; do
        case $line in
        TCP_KEEPALIVE_PIN_ROOT=/host/sys/fs/bpf/*) line=TCP_KEEPALIVE_PIN_ROOT=/host$PIN_ROOT ;;
        esac
        AGENT+=(-e "$line")
    done < <(daemonset env)
}

node_agent() {
    mkdir -p "$V2/$ID/kubepods" || return 1
    # A pod's container under kubepods (cgroupfs driver: kubepods/<...>/<container>), connected
    # before the agent starts.
    pm run -d --name "$ID-pod" --network none --cgroup-parent "/$ID/kubepods" \
        -v "$ROOT/scripts/containers/pod_probe.py:/probe/pod_probe.py:ro" \
        localhost/tkl-python-server:lab python3 /probe/pod_probe.py >/dev/null || return 1
    wait_log "$ID-pod" "^CONNECTED 1" || return 1
    expect "the pod before the agent" "$(pm logs "$ID-pod" | grep '^CONNECTED 1')" "CONNECTED 1 off off" || return 1
    local pid
    pid=$(pm inspect "$ID-pod" --format '{{.State.Pid}}') || return 1
    grep -q "^0::/$ID/kubepods/" "/proc/$pid/cgroup" || { cat "/proc/$pid/cgroup" >&2; return 1; }
    AGENT=()
    agent_flags
    local args=()
    mapfile -t args < <(daemonset args)
    # The manifest's seccomp Unconfined is needed: podman's default profile (like older
    # containerd ones) allows bpf(2) only with CAP_SYS_ADMIN. Without it the agent fails and
    # attaches nothing.
    local confined=() i
    for ((i = 0; i < ${#AGENT[@]}; i++)); do
        if [ "${AGENT[i]}" = --security-opt ] && [ "${AGENT[i + 1]:-}" = seccomp=unconfined ]; then
            i=$((i + 1))
            continue
        fi
        confined+=("${AGENT[i]}")
    done
    local out rc=0
    out=$(pm run --rm --network none "${confined[@]}" "$RELEASE_IMAGE" "${args[@]}" 2>&1) || rc=$?
    echo "  with the runtime's default seccomp profile: exit $rc: $(tail -n 1 <<<"$out")"
    [ $rc -ne 0 ] || return 1
    # The agent has CAP_BPF and CAP_NET_ADMIN here: its message must name seccomp, not them.
    grep -q "seccomp filter or an LSM refused" <<<"$out" || { echo "  the refusal does not name seccomp" >&2; return 1; }
    # Nothing attached and nothing pinned; the pin root's lock (an empty root-only directory the
    # attach took before it loaded anything) may stay.
    [ -z "$(ls -A "$PIN_ROOT" 2>/dev/null | grep -vx lock)" ] || { echo "  pins left: $(ls "$PIN_ROOT")" >&2; return 1; }
    echo "  podman run ${AGENT[*]} $RELEASE_IMAGE ${args[*]}"
    pm run -d --name "$ID-agent" --network none "${AGENT[@]}" "$RELEASE_IMAGE" "${args[@]}" >/dev/null || return 1
    wait_log "$ID-agent" "waiting for SIGTERM" || return 1
    pm logs "$ID-agent" 2>&1 | sed 's/^/  agent: /'
    local idle interval count want
    idle=$(daemonset args | sed -n '/^--idle$/{n;p}' | tr -d s)
    interval=$(daemonset args | sed -n '/^--interval$/{n;p}' | tr -d s)
    count=$(daemonset args | sed -n '/^--count$/{n;p}')
    want=$idle/$interval/$count
    # The sweep changed the open connection in place: both of its sockets, read from the host.
    expect "the pod's open connection after the agent's sweep" \
        "$(keepalive_of "$pid" | grep ESTAB | tr '\n' ' ')" "ESTABLISHED $want ESTABLISHED $want " || return 1
    TCP_KEEPALIVE_PIN_ROOT=$PIN_ROOT "$CLI" cgroup status | sed 's/^/  status: /'
    # A new connection in the pod: the BPF program sets it at connect, read inside the program.
    pm exec "$ID-pod" python3 -c 'open("/tmp/next", "w")' || return 1
    wait_log "$ID-pod" "^CONNECTED 2" || return 1
    expect "a new connection in the pod" "$(pm logs "$ID-pod" | grep '^CONNECTED 2')" \
        "CONNECTED 2 $want $want | 1 $want $want" || return 1
    # SIGTERM (what the kubelet sends): the agent leaves its programs attached for the next one.
    pm stop -t 10 "$ID-agent" >/dev/null || return 1
    pm logs "$ID-agent" 2>&1 | tail -n 1 | sed 's/^/  agent: /'
    grep -q "leaving the attachment in place" <<<"$(pm logs "$ID-agent" 2>&1)" || return 1
    agent_attachments() {
        TCP_KEEPALIVE_PIN_ROOT=$PIN_ROOT "$CLI" cgroup status --json 2>/dev/null | python3 -c '
import json, sys
try:
    print(len(json.load(sys.stdin).get("attachments", [])))
except ValueError:
    print(0)'
    }
    expect "attachments after SIGTERM" "$(agent_attachments)" "1" || return 1
    # The uninstall on the node: nothing of ours is left.
    TCP_KEEPALIVE_PIN_ROOT=$PIN_ROOT "$CLI" cgroup detach --all | sed 's/^/  /' || return 1
    expect "attachments after detach --all" "$(agent_attachments)" "0" || return 1
    expect "the pin root after detach --all" "$([ -e "$PIN_ROOT" ] && echo present || echo gone)" "gone" || return 1
    pm rm -f -t 0 "$ID-pod" "$ID-agent" >/dev/null
}

# remove_pods_of FILE: kube play --down FILE, and the pods' cgroups podman leaves behind.
remove_pods_of() {
    local pods pod
    pods=$(pm pod ps -q --no-trunc)
    pm kube play --down "$1" >/dev/null
    for pod in $pods; do remove_cgroup_tree "libpod_parent/$pod"; done
}

# podman kube play of deployment.yaml: a test copy with the images that exist here and, where
# podman 4.3 differs from a kubelet, adapted (each change says why); the example is unchanged.
kube_deployment() {
    python3 - "$ROOT/examples/kubernetes/deployment.yaml" "$WORK/deployment.yaml" "$RELEASE_IMAGE" \
        "$ROOT/scripts/containers/pod_probe.py" <<'PY' || return 1
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
spec = doc["spec"]["template"]["spec"]
doc["metadata"]["name"] = "tkl-kube-report-client"
spec["initContainers"][0]["image"] = sys.argv[3]
app = spec["containers"][0]
app["image"] = "localhost/tkl-python-server:lab"
# The app: the probe program of this test instead of the image's own command (a pod needs one
# that connects); the image is the seed's server image, unchanged.
app["command"] = ["python3", "-c", open(sys.argv[4]).read()]
# podman 4.3 gives init containers the pod's restartPolicy (Always for a Deployment): the init
# container would restart forever. A kubelet runs it once; OnFailure does that here.
spec["restartPolicy"] = "OnFailure"
yaml.safe_dump(doc, open(sys.argv[2], "w"))
PY
    local out
    out=$(pm kube play --network none "$WORK/deployment.yaml" 2>&1) || { echo "$out" >&2; return 1; }
    local ctr
    ctr=$(pm ps -a --format '{{.Names}}' | grep -- '-app$' | grep tkl-kube-report-client | head -n 1)
    [ -n "$ctr" ] || { pm ps -a >&2; return 1; }
    wait_log "$ctr" "^CONNECTED 1" || return 1
    pm logs "$ctr" 2>&1 | sed 's/^/  app: /'
    local want
    want=$(example app-env | sed -n 's/^TCP_KEEPALIVE_IDLE=//p')/$(example app-env | sed -n 's/^TCP_KEEPALIVE_INTERVAL=//p')/$(example app-env | sed -n 's/^TCP_KEEPALIVE_COUNT=//p')
    expect "kube play: the app's connection" "$(pm logs "$ctr" 2>&1 | grep '^CONNECTED 1')" "CONNECTED 1 $want $want" || return 1
    # Only the init container fills the emptyDir (podman removes it once it ran): the app's
    # read-only view of it holds the release library, byte for byte.
    local sum
    sum=$(pm exec "$ctr" python3 -c 'import hashlib; print(hashlib.sha256(open("/shared/libkeepalive.so", "rb").read()).hexdigest())') || return 1
    expect "kube play: /shared/libkeepalive.so in the app" "$sum" \
        "$(sha256sum "$RELEASE_LIB" | cut -d' ' -f1)" || return 1
    remove_pods_of "$WORK/deployment.yaml"
}

# podman kube play of the DaemonSet's pod template as a Pod (podman 4.3 rejects DaemonSets).
kube_agent() {
    mkdir -p "$V2/$ID/kubepods" || return 1
    python3 - "$ROOT/examples/kubernetes/node-agent/daemonset.yaml" "$WORK/agent.yaml" "$RELEASE_IMAGE" \
        "$V2/$ID" "/host$PIN_ROOT" <<'PY' || return 1
import sys, yaml
ds = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "DaemonSet"][0]
tpl = ds["spec"]["template"]
spec = tpl["spec"]
c = spec["containers"][0]
c["image"] = sys.argv[3]
# Private places on this shared machine: this test's cgroup tree (kubepods inside) as the node's
# /sys/fs/cgroup, and a pin root of its own on the node's bpffs.
for v in spec["volumes"]:
    if v["hostPath"]["path"] == "/sys/fs/cgroup":
        v["hostPath"]["path"] = sys.argv[4]
for e in c["env"]:
    if e["name"] == "TCP_KEEPALIVE_PIN_ROOT":
        e["value"] = sys.argv[5]
# podman 4.3 ignores securityContext.seccompProfile in kube play; the pod annotation works.
annotations = tpl["metadata"].setdefault("annotations", {})
annotations["seccomp.security.alpha.kubernetes.io/pod"] = "unconfined"
# Fields of a DaemonSet's pod that a bare Pod (or podman) has no use for.
for key in ("priorityClassName", "tolerations", "nodeSelector"):
    spec.pop(key, None)
pod = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "tkl-kube-agent", "labels": tpl["metadata"]["labels"],
                    "annotations": annotations},
       "spec": spec}
yaml.safe_dump(pod, open(sys.argv[2], "w"))
PY
    local out
    out=$(pm kube play --network none "$WORK/agent.yaml" 2>&1) || { echo "$out" >&2; return 1; }
    local ctr
    ctr=$(pm ps -a --format '{{.Names}}' | grep '^tkl-kube-agent-' | grep -v infra | head -n 1)
    [ -n "$ctr" ] || { pm ps -a >&2; return 1; }
    wait_log "$ctr" "waiting for SIGTERM" || return 1
    pm logs "$ctr" 2>&1 | sed 's/^/  agent pod: /'
    grep -q "attached to /host/sys/fs/cgroup/kubepods" <<<"$(pm logs "$ctr" 2>&1)" || return 1
    # A pod container started under kubepods after the agent: its connection has keep-alive.
    pm run -d --name "$ID-pod2" --network none --cgroup-parent "/$ID/kubepods" \
        -v "$ROOT/scripts/containers/pod_probe.py:/probe/pod_probe.py:ro" \
        localhost/tkl-python-server:lab python3 /probe/pod_probe.py >/dev/null || return 1
    wait_log "$ID-pod2" "^CONNECTED 1" || return 1
    expect "a pod started after the agent pod" "$(pm logs "$ID-pod2" | grep '^CONNECTED 1')" \
        "CONNECTED 1 60/10/6 60/10/6" || return 1
    pm rm -f -t 0 "$ID-pod2" >/dev/null
    # kube play --down stops with SIGKILL in 4.3 (no SIGTERM reaches the agent): detach here.
    remove_pods_of "$WORK/agent.yaml"
    TCP_KEEPALIVE_PIN_ROOT=$PIN_ROOT "$CLI" cgroup detach "$V2/$ID/kubepods" | sed 's/^/  /'
}

start=$SECONDS
part "load the release image (dist/) and the application image" load
if [ ${#failed_parts[@]} -eq 0 ]; then
    part "the image: --version, doctor" version_and_doctor
    part "init container as deployment.yaml runs it: install-preload into a volume" init_container
    part "application container with the volume and the example's env: keep-alive from the kernel" application
    part "node agent as the DaemonSet runs it: attach at kubepods, sweep a pod's open connection, detach on SIGTERM" node_agent
    part "podman kube play examples/kubernetes/deployment.yaml" kube_deployment
    part "podman kube play of the DaemonSet's pod as a Pod: the agent attaches, a later pod is covered" kube_agent
fi
cleanup
trap - EXIT
AFTER=$(host_net_state)
if [ "$BEFORE" = "$AFTER" ]; then
    echo "host: ip_forward, IPv6 forwarding and firewall rules as before"
    passed=$((passed + 1))
else
    echo "FAILED: the host's forwarding or firewall changed:" >&2
    diff <(echo "$BEFORE") <(echo "$AFTER") >&2
    failed_parts+=("host forwarding and firewall unchanged")
fi
leftover=$(ls -d "$V2/$ID" "$PIN_ROOT" 2>/dev/null)
[ -z "$leftover" ] || { echo "FAILED: left behind: $leftover" >&2; failed_parts+=("cleanup"); }
echo
echo "containers: ${passed} parts passed, ${#failed_parts[@]} failed ($((SECONDS - start)) s)"
for f in "${failed_parts[@]}"; do echo "  failed: $f"; done
[ ${#failed_parts[@]} -eq 0 ]
