"""The agent's Kubernetes mode against a real kube-apiserver, real cgroups and real BPF programs.

A real etcd and kube-apiserver (scripts/k8s-control-plane.sh, started by the stage
scripts/test.d/77-kubernetes.sh, which passes K8S_DIR) hold namespaces and pods with
tcp-keepalive.dev/* annotations and spec.nodeName set. There is no kubelet: the tests make the
pods' cgroups as the kubelet does (systemd and cgroupfs drivers, the three QoS classes) under a
private cgroup subtree, start real processes in them, and read every value back from the kernel
(getsockopt on the process's own connection, the pins' maps). The agent runs as a ServiceAccount
bound to exactly the ClusterRole of the chart (get/list/watch pods and namespaces, create/patch
events).

Every wait is bounded; cgroups, pins, processes and API objects made here are removed whatever
happens.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.environ.get("TCPKA_CLI", os.path.join(ROOT, "target", "release", "tcp-keepalive"))
CONTROL = os.path.join(ROOT, "scripts", "k8s-control-plane.sh")
RENDERED = os.path.join(ROOT, "examples", "kubernetes", "node-agent", "kubernetes-mode.yaml")
K8S_DIR = os.environ.get("K8S_DIR", "")
CI = os.environ.get("CI") == "true"
WAIT = 30  # seconds: the longest any single step may take
TAG = f"tcpka-k8s-{os.getpid()}"
NODE = f"{TAG}-node"
A = "tcp-keepalive.dev/"


def cannot(reason):
    if CI:
        pytest.fail(f"CI=true, cannot run: {reason}")
    pytest.skip(reason)


def cgroup2_mount():
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if parts[2] == "cgroup2":
                return parts[1]
    return None


def wait_for(what, check, timeout=WAIT, step=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def kubectl(*args, kubeconfig=None, input=None, check=True):
    env = dict(os.environ, KUBECONFIG=kubeconfig or os.path.join(K8S_DIR, "kubeconfig"))
    r = subprocess.run(["kubectl", *args], env=env, input=input, capture_output=True, text=True,
                       timeout=WAIT)
    # kubectl 1.32 against a 1.37 server warns about the skew on stderr; only the code counts.
    if check and r.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {r.stderr}")
    return r


def apply(obj):
    return json.loads(kubectl("create", "-o", "json", "-f", "-", input=json.dumps(obj)).stdout)


# ---------------------------------------------------------------------------------------------
# The kubelet's part, done by hand: pod cgroups in both drivers' layouts


QOS_RESOURCES = {
    "Guaranteed": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "10m", "memory": "16Mi"}},
    "Burstable": {"requests": {"cpu": "10m"}},
    "BestEffort": {},
}


def pod_cgroup(kubepods, uid, qos):
    """Where the kubelet makes a pod's cgroup (its own layout, written independently of the agent)."""
    tier = {"Guaranteed": None, "Burstable": "burstable", "BestEffort": "besteffort"}[qos]
    if kubepods.endswith(".slice"):
        u = uid.replace("-", "_")
        if tier is None:
            return os.path.join(kubepods, f"kubepods-pod{u}.slice")
        return os.path.join(kubepods, f"kubepods-{tier}.slice", f"kubepods-{tier}-pod{u}.slice")
    if tier is None:
        return os.path.join(kubepods, f"pod{uid}")
    return os.path.join(kubepods, tier, f"pod{uid}")


def container_cgroup(pod_dir):
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    name = f"cri-containerd-{cid}.scope" if pod_dir.endswith(".slice") else cid
    return os.path.join(pod_dir, name)


def rmdir_tree(path):
    """Removes a cgroup subtree bottom-up (cgroups are removed with rmdir, never rm -r)."""
    if not os.path.isdir(path):
        return
    for dirpath, dirnames, _ in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
        for _ in range(50):
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                # Processes still leaving: wait a little (bounded).
                time.sleep(0.1)


# The start of a process in a cgroup that makes one connection to our listener; report() is its
# keep-alive as the kernel has it (getsockopt on its own socket).
CONNECT = r"""
import json, socket, sys
with open(sys.argv[1] + "/cgroup.procs", "w") as f:
    f.write("0")
s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10)
g = lambda lvl, opt: s.getsockopt(lvl, opt)
report = lambda: json.dumps({
    "keepalive": g(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0,
    "idle": g(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
    "interval": g(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
    "count": g(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    "user_timeout_ms": g(socket.IPPROTO_TCP, 18),
})
"""
# One report, then exit.
PROBE = CONNECT + "print(report())\n"


@pytest.fixture(scope="module")
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(512)
    srv.settimeout(0.2)
    yield srv
    srv.close()


def connect_from(cgroup, listener):
    """The keep-alive a new connection made in `cgroup` gets, read back from the kernel."""
    os.makedirs(cgroup, exist_ok=True)
    p = subprocess.run([sys.executable, "-c", PROBE, cgroup, str(listener.getsockname()[1])],
                       capture_output=True, text=True, timeout=WAIT)
    try:
        while True:
            c, _ = listener.accept()
            c.close()
    except (socket.timeout, BlockingIOError):
        pass
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def defaults():
    def sysctl(name):
        with open(f"/proc/sys/net/ipv4/{name}") as f:
            return int(f.read())
    return {"keepalive": False, "idle": sysctl("tcp_keepalive_time"),
            "interval": sysctl("tcp_keepalive_intvl"), "count": sysctl("tcp_keepalive_probes"),
            "user_timeout_ms": 0}


def want(idle, interval, count, user_timeout_ms=0):
    return {"keepalive": True, "idle": idle, "interval": interval, "count": count,
            "user_timeout_ms": user_timeout_ms}


# ---------------------------------------------------------------------------------------------
# The environment: control plane, RBAC, cgroup subtree, pin root, the agent


@pytest.fixture(scope="module")
def env():
    yield from make_env()


def make_env():
    """The test environment (a generator: set up, yield, clean up); also used by the benchmark."""
    if os.geteuid() != 0:
        cannot("needs root (cgroups, BPF)")
    if not K8S_DIR or not os.path.exists(os.path.join(K8S_DIR, "kubeconfig")):
        cannot("no control plane: run through scripts/test.d/77-kubernetes.sh (K8S_DIR)")
    mount = cgroup2_mount()
    if mount is None:
        cannot("no cgroup v2 mount")
    if not os.path.exists(CLI):
        cannot(f"{CLI} is not built")
    base = os.path.join(mount, TAG)
    pins = f"/sys/fs/bpf/{TAG}"
    os.makedirs(base)
    made_ns = []
    env = {"base": base, "pins": pins, "namespaces": made_ns}
    try:
        env["kubeconfig"] = service_account_kubeconfig()
        yield env
    finally:
        for ns in made_ns:
            kubectl("delete", "namespace", ns, "--wait=false", check=False)
        # Not the Namespace: without a controller-manager a namespace never finishes deleting.
        for o in rbac_objects():
            if o["kind"] != "Namespace":
                kubectl("delete", o["kind"], o["metadata"]["name"], "-n", o["metadata"].get("namespace", "default"),
                        "--ignore-not-found", "--wait=false", check=False)
        rmdir_tree(base)
        shutil.rmtree(pins, ignore_errors=True)


def rbac_objects():
    """The ServiceAccount, ClusterRole and binding of the rendered chart (examples/...)."""
    with open(RENDERED) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    return [d for d in docs if d["kind"] in ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding")]


def service_account_kubeconfig():
    objs = rbac_objects()
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Namespace", "ServiceAccount"], kinds
    for o in objs:
        kubectl("apply", "-f", "-", input=json.dumps(o))
    (sa,) = [o for o in objs if o["kind"] == "ServiceAccount"]
    token = kubectl("create", "token", sa["metadata"]["name"], "-n", sa["metadata"]["namespace"],
                    "--duration", "2h").stdout.strip()
    with open(os.path.join(K8S_DIR, "kubeconfig")) as f:
        admin = yaml.safe_load(f)
    admin["users"] = [{"name": "agent", "user": {"token": token}}]
    admin["contexts"] = [{"name": "agent", "context": {"cluster": "test", "user": "agent"}}]
    admin["current-context"] = "agent"
    path = os.path.join(K8S_DIR, f"{TAG}-agent.kubeconfig")
    with open(path, "w") as f:
        yaml.safe_dump(admin, f)
    return path


class Agent:
    """`tcp-keepalive cgroup agent --kubernetes` as a subprocess, with its own cgroup root."""

    started = 0

    def __init__(self, env, root, *extra, environ=None, sweep=False):
        self.port = free_port()
        Agent.started += 1
        self.log = open(os.path.join(K8S_DIR, f"{TAG}-agent-{Agent.started}.log"), "w+")
        e = dict(os.environ, KUBECONFIG=env["kubeconfig"], TCP_KEEPALIVE_PIN_ROOT=env["pins"],
                 **(environ or {}))
        e.pop("KUBERNETES_SERVICE_HOST", None)
        self.proc = subprocess.Popen(
            [CLI, "cgroup", "agent", "--kubernetes", "--cgroup-root", root, "--node-name", NODE,
             "--metrics-address", f"127.0.0.1:{self.port}", "--resync", "2s",
             *([] if sweep else ["--no-sweep"]),
             "--idle", "300", "--interval", "30", "--count", "5",
             # The agent keeps its attachments on exit by default (upgrades without a gap); the
             # tests that do not say --keep-on-exit want each agent to clean up after itself.
             *([] if "--keep-on-exit" in extra else ["--detach-on-exit"]), *extra],
            env=e, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for("the agent ready", lambda: self.get("/readyz")[0] == 200 or self.dead())

    def dead(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"agent exited {self.proc.returncode}: {self.output()}")
        return False

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:
            return None, str(e)

    def metrics(self):
        status, text = self.get("/metrics")
        assert status == 200, text
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out.setdefault(s.name, []).append((s.labels, s.value))
        return out

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def layout(env, driver):
    root = os.path.join(env["base"], driver)
    systemd = driver.startswith("systemd")
    kubepods = os.path.join(root, "kubepods.slice" if systemd else "kubepods")
    os.makedirs(kubepods)
    for tier in ("burstable", "besteffort"):
        os.makedirs(os.path.join(kubepods, f"kubepods-{tier}.slice" if systemd else tier))
    return root, kubepods


def namespace(env, annotations=None):
    name = f"{TAG}-{len(env['namespaces'])}"
    apply({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "annotations": annotations or {}}})
    env["namespaces"].append(name)
    return name


def pod_object(ns, name, annotations=None, qos="BestEffort", node=NODE, extra_meta=None, extra_spec=None):
    spec = {"containers": [{"name": "app", "image": "registry.example.com/app:1",
                            "resources": QOS_RESOURCES[qos]}]}
    spec.update(extra_spec or {})
    if node:
        spec["nodeName"] = node
    meta = {"name": name, "namespace": ns, "annotations": annotations or {}}
    meta.update(extra_meta or {})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def create_pod(ns, name, annotations=None, qos="BestEffort", **kw):
    p = apply(pod_object(ns, name, annotations, qos, **kw))
    assert p["status"]["qosClass"] == qos, p["status"]
    return p["metadata"]["uid"]


def status_of(env, cgroup):
    r = subprocess.run([CLI, "cgroup", "status", cgroup, "--json"], capture_output=True, text=True,
                       env=dict(os.environ, TCP_KEEPALIVE_PIN_ROOT=env["pins"]), timeout=WAIT)
    if r.returncode != 0:
        return None
    (a,) = json.loads(r.stdout)["attachments"]
    return a


def attached(env, cgroup, idle=None):
    def check():
        s = status_of(env, cgroup)
        return s if s and s["linked"] and (idle is None or s["idle_s"] == idle) else None
    return check


def pin_dirs(env):
    """The attachments pinned under the pin root; its `lock` directory (empty, root-only, taken by
    every attach and detach) holds no pin."""
    names = os.listdir(env["pins"]) if os.path.isdir(env["pins"]) else []
    return sorted(n for n in names if n != "lock")


# ---------------------------------------------------------------------------------------------
# The tests


def test_rbac_is_exactly_what_the_agent_needs(env):
    can = lambda *a: kubectl("auth", "can-i", *a, kubeconfig=env["kubeconfig"], check=False).stdout.strip()
    for verb in ("get", "list", "watch"):
        assert can(verb, "pods", "--all-namespaces") == "yes"
        assert can(verb, "namespaces") == "yes"
    for verb in ("create", "patch"):
        assert can(verb, "events.events.k8s.io", "-n", "default") == "yes"
    for a in (("update", "pods"), ("patch", "pods"), ("delete", "pods"), ("create", "pods"),
              ("list", "secrets"), ("get", "nodes"), ("list", "events.events.k8s.io"),
              ("delete", "events.events.k8s.io"), ("update", "namespaces"), ("get", "configmaps")):
        assert can(*a, "-n", "default") == "no", a


@pytest.fixture(scope="module")
def systemd(env):
    root, kubepods = layout(env, "systemd")
    agent = Agent(env, root)
    yield env, agent, kubepods
    agent.stop()


def test_pod_and_namespace_values_in_every_qos_class(systemd, listener):
    env, agent, kubepods = systemd
    ns = namespace(env, {A + "keepalive": "on", A + "idle": "45s", A + "count": "3"})
    cases = [
        ("guaranteed", "Guaranteed", {A + "idle": "31", A + "interval": "7", A + "count": "4",
                                      A + "user-timeout": "20s"}, want(31, 7, 4, 20000)),
        ("burstable", "Burstable", {A + "interval": "2m"}, want(45, 120, 3)),
        ("besteffort", "BestEffort", {}, want(45, 30, 3)),
    ]
    for name, qos, ann, expected in cases:
        uid = create_pod(ns, name, ann, qos)
        cg = pod_cgroup(kubepods, uid, qos)
        os.mkdir(cg)  # as the kubelet, after the API told it
        wait_for(f"{name}'s attachment", attached(env, cg))
        got = connect_from(container_cgroup(cg), listener)
        assert got == expected, (name, got)
    m = agent.metrics()
    pods = {l["pod"]: v for l, v in m["tcp_keepalive_connections_configured_total"]
            if l["namespace"] == ns}
    assert set(pods) == {"guaranteed", "burstable", "besteffort"}, m
    assert all(v >= 1 for v in pods.values()), pods
    assert agent.get("/readyz")[0] == 200
    assert agent.get("/healthz") == (200, "ok\n")


def test_off_and_unannotated_pods_get_nothing(systemd, listener):
    env, agent, kubepods = systemd
    on = namespace(env, {A + "keepalive": "on"})
    plain = namespace(env)
    for ns, name, ann in ((on, "says-off", {A + "keepalive": "off"}), (plain, "unannotated", {}),
                          (plain, "timings-only", {A + "idle": "30"})):
        uid = create_pod(ns, name, ann)
        cg = pod_cgroup(kubepods, uid, "BestEffort")
        os.mkdir(cg)
        # A pod beside it, created after, is attached: the agent has seen this one by then.
        marker = create_pod(ns, name + "-marker", {A + "keepalive": "on"})
        mcg = pod_cgroup(kubepods, marker, "BestEffort")
        os.mkdir(mcg)
        wait_for("the marker pod's attachment", attached(env, mcg))
        assert status_of(env, cg) is None, name
        assert connect_from(container_cgroup(cg), listener) == defaults(), name


def test_invalid_annotation_gives_nothing_an_event_and_a_metric(systemd, listener):
    env, agent, kubepods = systemd
    ns = namespace(env)
    before = sum(v for _, v in agent.metrics()["tcp_keepalive_policy_errors_total"])
    bad = {"idle-zero": (A + "idle", "0", "1 to 32767"), "idle-fast": (A + "idle", "fast", "90s"),
           "count-500": (A + "count", "500", "1 to 127")}
    cgroups = {}
    for name, (key, value, _) in bad.items():
        uid = create_pod(ns, name, {A + "keepalive": "on", key: value})
        cgroups[name] = pod_cgroup(kubepods, uid, "BestEffort")
        os.mkdir(cgroups[name])
    good = create_pod(ns, "good", {A + "keepalive": "on", A + "idle": "77"})
    gcg = pod_cgroup(kubepods, good, "BestEffort")
    os.mkdir(gcg)
    wait_for("the good pod's attachment", attached(env, gcg, idle=77))

    def events():
        r = kubectl("get", "events.events.k8s.io", "-n", ns, "-o", "json")
        return {e["regarding"]["name"]: e for e in json.loads(r.stdout)["items"]
                if e.get("reason") == "InvalidKeepAliveAnnotation"}
    evs = wait_for("a Warning Event per bad pod", lambda: (e := events()) and set(e) == set(bad) and e)
    for name, (key, value, allowed) in bad.items():
        e = evs[name]
        assert e["type"] == "Warning", e
        assert key in e["note"] and f'"{value}"' in e["note"] and allowed in e["note"], e["note"]
        assert status_of(env, cgroups[name]) is None, name
        assert connect_from(container_cgroup(cgroups[name]), listener) == defaults(), name
    after = sum(v for _, v in agent.metrics()["tcp_keepalive_policy_errors_total"])
    assert after - before == len(bad)
    lines = [l for l in agent.output().splitlines() if "InvalidArgument" in l or "invalid tcp-keepalive.dev/" in l]
    for name in bad:
        assert sum(f"{ns}/{name}:" in l for l in lines) == 1, (name, lines)
    # Fixing the value gives the pod its settings.
    kubectl("annotate", "--overwrite", "pod", "-n", ns, "idle-fast", A + "idle=40")
    wait_for("the fixed pod's attachment", attached(env, cgroups["idle-fast"], idle=40))
    assert connect_from(container_cgroup(cgroups["idle-fast"]), listener) == want(40, 30, 5)


def test_annotation_changes_apply_within_seconds(systemd, listener):
    env, agent, kubepods = systemd
    ns = namespace(env, {A + "keepalive": "on"})
    uid = create_pod(ns, "changing", {A + "idle": "61"}, "Burstable")
    cg = pod_cgroup(kubepods, uid, "Burstable")
    os.mkdir(cg)
    wait_for("the attachment", attached(env, cg, idle=61))
    kubectl("annotate", "--overwrite", "pod", "-n", ns, "changing", A + "idle=62", A + "enforce=off")
    s = wait_for("the new idle in the kernel", attached(env, cg, idle=62), timeout=5)
    assert s["enforce"] is False
    assert connect_from(container_cgroup(cg), listener) == want(62, 30, 5)
    # The namespace's change reaches its pods too.
    kubectl("annotate", "--overwrite", "namespace", ns, A + "count=9")
    wait_for("the namespace's count", lambda: (s := status_of(env, cg)) and s["count"] == 9, timeout=5)
    # And its off removes the attachment (the pod says nothing itself).
    kubectl("annotate", "--overwrite", "namespace", ns, A + "keepalive=off")
    wait_for("the detach", lambda: status_of(env, cg) is None, timeout=5)
    assert connect_from(container_cgroup(cg), listener) == defaults()


def test_deleted_pods_leave_no_attachment_and_no_pin(systemd, listener):
    env, agent, kubepods = systemd
    ns = namespace(env, {A + "keepalive": "on"})
    made = []
    for i in range(5):
        uid = create_pod(ns, f"gone-{i}", qos="Burstable")
        cg = pod_cgroup(kubepods, uid, "Burstable")
        os.mkdir(cg)
        made.append(cg)
    ids = [wait_for("attached", attached(env, cg))["cgroup_id"] for cg in made]
    assert all(str(i) in pin_dirs(env) for i in ids)
    # API deletion first (the kubelet removes the cgroup later), then a cgroup removed first.
    for i in range(3):
        kubectl("delete", "pod", "-n", ns, f"gone-{i}", "--grace-period=0", "--force")
    wait_for("pins of deleted pods gone", lambda: not any(str(i) in pin_dirs(env) for i in ids[:3]))
    for cg in made[:3]:
        assert status_of(env, cg) is None
        assert connect_from(container_cgroup(cg), listener) == defaults()
    for cg in made[3:]:
        rmdir_tree(cg)
    wait_for("pins of removed cgroups gone", lambda: not any(str(i) in pin_dirs(env) for i in ids))


def test_cgroup_before_the_api_says_the_pod_is_ours(systemd, listener):
    """The kubelet may make the cgroup before the agent's watch delivers the pod: covered as soon
    as the pod is known. The pod is created unscheduled, its cgroup made, then bound to the node
    (as the scheduler does)."""
    env, agent, kubepods = systemd
    ns = namespace(env, {A + "keepalive": "on", A + "idle": "88"})
    uid = create_pod(ns, "early", node=None)
    cg = pod_cgroup(kubepods, uid, "BestEffort")
    os.mkdir(cg)
    time.sleep(0.5)
    assert status_of(env, cg) is None
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "early", "namespace": ns},
               "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}}
    kubectl("create", "--raw", f"/api/v1/namespaces/{ns}/pods/early/binding", "-f", "-",
            input=json.dumps(binding))
    wait_for("the attachment after binding", attached(env, cg, idle=88))
    assert connect_from(container_cgroup(cg), listener) == want(88, 30, 5)


def bpftool(*args):
    """What bpftool reads from the kernel, as JSON (a list of programs)."""
    r = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout or "[]")


def sock_ops_programs():
    """The ids of every sock_ops program loaded in the kernel (attached or not)."""
    return {p["id"] for p in bpftool("prog", "show") if p.get("type") == "sock_ops"}


def sock_ops_attached_at(cgroup):
    """The ids of the sock_ops programs attached at the cgroup itself."""
    return {p["id"] for p in bpftool("cgroup", "show", cgroup) if p.get("attach_type") == "cgroup_sock_ops"}


def test_programs_loaded_ahead_of_the_cgroup(systemd, listener):
    """A selected pod bound to the node before the kubelet makes its cgroup gets its programs
    loaded (verified) at once, and those very programs are linked when the cgroup appears, with
    the pod's settings as they are then; a pod deleted before its cgroup appears leaves nothing
    loaded in the kernel, and one not selected gets nothing loaded. Programs are told apart by
    their kernel ids, so other programs loaded meanwhile do not matter."""
    env, agent, kubepods = systemd
    ahead = lambda: sum(v for _, v in agent.metrics()["tcp_keepalive_loaded_ahead"])
    ns = namespace(env, {A + "keepalive": "on"})
    create_pod(ns, "ahead-off", {A + "keepalive": "off"})
    before = sock_ops_programs()
    uid = create_pod(ns, "ahead", {A + "idle": "71"}, "Burstable")
    new = wait_for("programs loaded ahead", lambda: sock_ops_programs() - before)
    assert ahead() >= 1
    # Changed before the cgroup appears: the attachment has the new value.
    kubectl("annotate", "--overwrite", "pod", "-n", ns, "ahead", A + "idle=72")
    cg = pod_cgroup(kubepods, uid, "Burstable")
    os.mkdir(cg)
    wait_for("the attachment", attached(env, cg, idle=72))
    (linked,) = sock_ops_attached_at(cg)
    assert linked in new, f"linked program {linked} is not one loaded ahead ({new})"
    assert connect_from(container_cgroup(cg), listener) == want(72, 30, 5)
    # Its cgroup removed while the pod stays in the API (a finished Job's): nothing is loaded for
    # it again, also after a resync (every 2 s here).
    rmdir_tree(cg)
    wait_for("the detach", lambda: status_of(env, cg) is None)
    before = sock_ops_programs()
    time.sleep(3)
    assert not (sock_ops_programs() - before), "programs loaded again for a pod whose cgroup is gone"
    # Deleted before its cgroup was made: the programs loaded for it are unloaded.
    before = sock_ops_programs()
    create_pod(ns, "never-started", qos="Burstable")
    new = wait_for("programs loaded ahead", lambda: sock_ops_programs() - before)
    kubectl("delete", "pod", "-n", ns, "never-started", "--grace-period=0", "--force")
    wait_for("the kernel unloads them", lambda: not (sock_ops_programs() & new))


def test_static_pods_by_their_mirror_and_the_agents_own_pod(env, listener):
    """A static pod's cgroup is named by the kubelet's UID of it (the manifest hash the mirror pod
    carries in kubernetes.io/config.mirror), not the mirror's API UID. The agent's own pod
    (POD_UID) is never attached."""
    root, kubepods = layout(env, "systemd-own")
    ns = namespace(env, {A + "keepalive": "on"})
    own = create_pod(ns, "agent-itself")
    config_hash = uuid.uuid4().hex
    create_pod(ns, "static-web", qos="Burstable", extra_meta={"annotations": {
        "kubernetes.io/config.mirror": config_hash, "kubernetes.io/config.hash": config_hash,
        "kubernetes.io/config.source": "file"}})
    static_cg = pod_cgroup(kubepods, config_hash, "Burstable")
    own_cg = pod_cgroup(kubepods, own, "BestEffort")
    os.mkdir(static_cg)
    os.mkdir(own_cg)
    agent = Agent(env, root, environ={"POD_UID": own})
    try:
        wait_for("the static pod's attachment", attached(env, static_cg))
        assert status_of(env, own_cg) is None
        assert connect_from(container_cgroup(own_cg), listener) == defaults()
    finally:
        agent.stop()
    # With --detach-on-exit the agent detached everything on SIGTERM.
    assert status_of(env, static_cg) is None


def test_node_wide_attachment_never_beside_per_pod(env, listener):
    """A node-wide attachment (the plain agent's, kept on exit) would win over every pod's own
    (the outer program writes last): the Kubernetes mode removes it once its pods are attached."""
    root, kubepods = layout(env, "systemd-nodewide")
    ns = namespace(env, {A + "keepalive": "on", A + "idle": "99"})
    uid = create_pod(ns, "inner")
    cg = pod_cgroup(kubepods, uid, "BestEffort")
    os.mkdir(cg)
    e = dict(os.environ, TCP_KEEPALIVE_PIN_ROOT=env["pins"])
    subprocess.run([CLI, "cgroup", "attach", kubepods, "--idle", "500"], env=e, check=True,
                   capture_output=True, timeout=WAIT)
    assert connect_from(container_cgroup(cg), listener)["idle"] == 500
    agent = Agent(env, root, "--keep-on-exit")
    try:
        wait_for("the pod's attachment", attached(env, cg, idle=99))
        wait_for("the node-wide one gone", lambda: status_of(env, kubepods) is None)
        assert connect_from(container_cgroup(cg), listener) == want(99, 30, 5)
    finally:
        agent.stop()
    # --keep-on-exit: the pod keeps its attachment; a new agent adopts it (updated in place).
    assert attached(env, cg, idle=99)()
    agent = Agent(env, root)
    try:
        assert "updated" in wait_for("adoption", lambda: [l for l in agent.output().splitlines() if "inner" in l])[0]
    finally:
        agent.stop()


def test_readyz_reads_the_kernel(systemd, listener):
    env, agent, kubepods = systemd
    ns = namespace(env, {A + "keepalive": "on"})
    uid = create_pod(ns, "ready")
    cg = pod_cgroup(kubepods, uid, "BestEffort")
    os.mkdir(cg)
    wait_for("attached", attached(env, cg))
    assert agent.get("/readyz")[0] == 200
    # Removed behind the agent's back: not ready until the resync puts it back.
    e = dict(os.environ, TCP_KEEPALIVE_PIN_ROOT=env["pins"])
    subprocess.run([CLI, "cgroup", "detach", cg], env=e, check=True, capture_output=True, timeout=WAIT)
    status, text = agent.get("/readyz")
    assert status == 503 and f"{ns}/ready" in text, (status, text)
    wait_for("re-attached by the resync", attached(env, cg), timeout=10)
    wait_for("ready again", lambda: agent.get("/readyz")[0] == 200, timeout=10)


def test_api_server_restarted_under_the_agent(systemd, listener):
    env, agent, kubepods = systemd
    ns = namespace(env, {A + "keepalive": "on"})
    uid = create_pod(ns, "survivor", {A + "idle": "71"})
    cg = pod_cgroup(kubepods, uid, "BestEffort")
    os.mkdir(cg)
    wait_for("attached", attached(env, cg, idle=71))
    subprocess.run(["bash", CONTROL, "stop-apiserver", K8S_DIR], check=True, timeout=WAIT)
    try:
        time.sleep(3)
        # The outage changes nothing in the kernel.
        assert attached(env, cg, idle=71)()
        assert connect_from(container_cgroup(cg), listener) == want(71, 30, 5)
        assert agent.proc.poll() is None
    finally:
        subprocess.run(["bash", CONTROL, "start-apiserver", K8S_DIR], check=True, timeout=90)
    restarts = agent.metrics().get("tcp_keepalive_watch_restarts_total", [])
    assert sum(v for _, v in restarts) >= 1, restarts
    kubectl("annotate", "--overwrite", "pod", "-n", ns, "survivor", A + "idle=72")
    wait_for("the change after the outage", attached(env, cg, idle=72), timeout=60)
    assert "retrying with backoff" in agent.output()


def test_cgroupfs_layout_every_qos_class(env, listener):
    root, kubepods = layout(env, "cgroupfs")
    ns = namespace(env, {A + "keepalive": "on", A + "idle": "55"})
    agent = Agent(env, root, "--select", "all")
    try:
        for qos in ("Guaranteed", "Burstable", "BestEffort"):
            uid = create_pod(ns, qos.lower(), qos=qos)
            cg = pod_cgroup(kubepods, uid, qos)
            os.mkdir(cg)
            wait_for(f"{qos} attached", attached(env, cg, idle=55))
            assert connect_from(container_cgroup(cg), listener) == want(55, 30, 5)
        # A host-network pod is served like any other: its sockets belong to its pod's cgroup.
        uid = create_pod(ns, "host-network", extra_spec={"hostNetwork": True})
        cg = pod_cgroup(kubepods, uid, "BestEffort")
        os.mkdir(cg)
        wait_for("the host-network pod attached", attached(env, cg, idle=55))
        assert connect_from(container_cgroup(cg), listener) == want(55, 30, 5)
        # --select all: a pod of a namespace that says nothing gets the agent's flags.
        plain = namespace(env)
        uid = create_pod(plain, "flags")
        cg = pod_cgroup(kubepods, uid, "BestEffort")
        os.mkdir(cg)
        wait_for("attached with the flags", attached(env, cg, idle=300))
        assert connect_from(container_cgroup(cg), listener) == want(300, 30, 5)
    finally:
        agent.stop()


# A process in a cgroup that connects, then on each line of its stdin reports its connection's
# keep-alive as the kernel has it (the connection stays open between reports).
HOLDER = CONNECT + r"""
print("connected", flush=True)
for _ in sys.stdin:
    print(report(), flush=True)
"""


def test_sweep_fixes_connections_open_before_the_pod_is_attached(env, listener):
    """Without --no-sweep, a pod attached while its processes already hold connections (the agent
    started after them, or the annotation came later) gets those connections fixed in place."""
    root, kubepods = layout(env, "systemd-sweep")
    ns = namespace(env)
    uid = create_pod(ns, "running")
    cg = pod_cgroup(kubepods, uid, "BestEffort")
    os.mkdir(cg)
    container = container_cgroup(cg)
    os.mkdir(container)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, container, str(listener.getsockname()[1])],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    agent = None
    try:
        assert holder.stdout.readline().strip() == "connected"
        ask = lambda: (holder.stdin.write("\n"), holder.stdin.flush(), json.loads(holder.stdout.readline()))[2]
        assert ask() == defaults()
        agent = Agent(env, root, sweep=True)
        kubectl("annotate", "pod", "-n", ns, "running", A + "keepalive=on", A + "idle=44")
        wait_for("attached", attached(env, cg, idle=44))
        assert wait_for("the open connection fixed", lambda: (v := ask()) == want(44, 30, 5) and v) == want(44, 30, 5)
        swept = agent.metrics()["tcp_keepalive_sweep_connections_changed_total"]
        assert [(l["namespace"], l["pod"], l["cgroup"]) for l, v in swept if v >= 1] == [(ns, "running", cg)], swept
    finally:
        holder.kill()
        holder.wait()
        if agent:
            agent.stop()


# A process in a cgroup that makes a new connection every 10 ms until its stdin closes and
# reports each one's keep-alive as the kernel has it.
LOOPER = r"""
import json, select, socket, sys
with open(sys.argv[1] + "/cgroup.procs", "w") as f:
    f.write("0")
for _ in range(100000):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10)
    g = lambda lvl, opt: s.getsockopt(lvl, opt)
    print(json.dumps([g(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0, g(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)]), flush=True)
    s.close()
    if select.select([sys.stdin], [], [], 0.01)[0]:
        break
"""


def programs_at(cgroup):
    """Our programs attached at the cgroup itself, by name, as bpftool reads them from the kernel."""
    return sorted(p["name"] for p in bpftool("cgroup", "show", cgroup))


def test_agent_replaced_with_keep_on_exit_leaves_no_gap(env, listener):
    """With --keep-on-exit (what an upgrade needs), connections made continuously while the agent
    is stopped and another started all get the pod's settings, and the cgroup keeps exactly one of
    each of our programs (the new agent adopts the attachment in place)."""
    root, kubepods = layout(env, "systemd-upgrade")
    ns = namespace(env, {A + "keepalive": "on", A + "idle": "66"})
    uid = create_pod(ns, "busy")
    cg = pod_cgroup(kubepods, uid, "BestEffort")
    os.mkdir(cg)
    container = container_cgroup(cg)
    os.mkdir(container)
    first = Agent(env, root, "--keep-on-exit")
    wait_for("attached", attached(env, cg, idle=66))
    assert programs_at(cg) == ["enforce_keepalive", "set_keepalive"]
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = listener.accept()
                accepted.append(c)
            except socket.timeout:
                pass
    acceptor = threading.Thread(target=accept)
    acceptor.start()
    looper = subprocess.Popen([sys.executable, "-c", LOOPER, container, str(listener.getsockname()[1])],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    second = None
    try:
        time.sleep(0.3)
        first.stop()
        second = Agent(env, root, "--keep-on-exit")
        time.sleep(0.3)
        looper.stdin.write("stop\n")
        looper.stdin.flush()
        out, _ = looper.communicate(timeout=WAIT)
    finally:
        looper.kill()
        stop.set()
        acceptor.join()
        for c in accepted:
            c.close()
    seen = [json.loads(line) for line in out.splitlines()]
    assert len(seen) >= 10, seen
    assert all(v == [True, 66] for v in seen), [v for v in seen if v != [True, 66]]
    assert programs_at(cg) == ["enforce_keepalive", "set_keepalive"]
    second.stop()
    assert attached(env, cg, idle=66)()
    subprocess.run([CLI, "cgroup", "detach", cg], env=dict(os.environ, TCP_KEEPALIVE_PIN_ROOT=env["pins"]),
                   check=True, capture_output=True, timeout=WAIT)


def test_everything_made_is_gone_after_the_pods(env, systemd):
    """Last: every pod of the node deleted, the agent holds nothing and leaves no pin."""
    env, agent, kubepods = systemd
    for ns in env["namespaces"]:
        kubectl("delete", "pods", "--all", "-n", ns, "--grace-period=0", "--force", check=False)
    wait_for("no attachment held", lambda: all(v == 0 for _, v in agent.metrics()["tcp_keepalive_attachments"]))
    agent.stop()
    wait_for("no pin left", lambda: pin_dirs(env) == [])
