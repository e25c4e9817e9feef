"""Tests of the node agent's manifests (examples/kubernetes/node-agent/) against the real CLI.

The manifests must parse, their container args must be accepted by the real `tcp-keepalive`,
and the DaemonSet's args, run here as the agent itself against real cgroups named like a node's
(kubepods.slice for the systemd cgroup driver, kubepods for cgroupfs) below a test parent, with
exactly the manifest's capabilities and no others, must attach there (pods created later are
covered, their existing connections swept), leave their programs attached on SIGTERM, are
adopted by a restarted agent (updated in place), detach on SIGTERM with --detach-on-exit, and
`cgroup detach --all` removes everything of ours. Each capability the manifest adds is shown to be needed: without it something fails.

Run by scripts/test.d/75-node-agent.sh. The kernel tests need root, cgroup v2 and bpffs; without
them they skip with the reason, or fail under CI=true. Every wait is bounded; cgroups, pins and
processes made here are removed whatever happens.
"""

import json
import os
import re
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
CLI = os.path.join(ROOT, "target", "release", "tcp-keepalive")
DAEMONSET = os.path.join(HERE, "daemonset.yaml")
POD_ATTACH = os.path.join(HERE, "pod-attach.sh")
CI = os.environ.get("CI") == "true"
NOBODY = 65534
UID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
WAIT = 30  # seconds: the longest any single step may take


def exit_codes():
    """The command's exit codes by name, read from the one place they are defined."""
    with open(os.path.join(ROOT, "cli", "src", "exit_codes.rs")) as f:
        found = dict(re.findall(r"pub const ([A-Z_0-9]+): i32 = (\d+);", f.read()))
    assert found, "no exit codes in cli/src/exit_codes.rs"
    return {name: int(value) for name, value in found.items()}


EXIT = exit_codes()


def cannot(reason):
    if CI:
        pytest.fail(f"CI=true, cannot run: {reason}")
    pytest.skip(reason)


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def daemonset():
    (ds,) = [d for d in docs(DAEMONSET) if d["kind"] == "DaemonSet"]
    return ds


def container(workload):
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    return c


def added_caps(c):
    return set(c["securityContext"]["capabilities"]["add"])


def arg_after(args, flag):
    return args[args.index(flag) + 1]


def pod_attach(*args):
    return subprocess.run(["sh", POD_ATTACH, *args], capture_output=True, text=True, timeout=WAIT)


# --------------------------------------------------------------------------------------------
# The manifests, read as Kubernetes would


def test_daemonset_runs_the_release_image_as_the_agent():
    kinds = [d["kind"] for d in docs(DAEMONSET)]
    assert kinds == ["Namespace", "DaemonSet"]
    c = container(daemonset())
    # Contract C4: the one release image; its entrypoint is the command, so no `command:`.
    assert c["image"].rsplit("/", 1)[-1] == "tcp-keepalive:0.1.0"
    assert "command" not in c
    assert c["args"][:2] == ["cgroup", "agent"]


def test_daemonset_has_the_least_privileges():
    ds = daemonset()
    spec = ds["spec"]["template"]["spec"]
    sc = container(ds)["securityContext"]
    assert sc.get("privileged") is not True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    # Each is shown to be needed in test_each_added_capability_is_needed.
    assert added_caps(container(ds)) == {"BPF", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"}
    assert spec["hostPID"] is True  # the sweep sees the pods' processes
    assert not spec.get("hostNetwork")
    assert spec["automountServiceAccountToken"] is False
    host_paths = {v["hostPath"]["path"] for v in spec["volumes"]}
    assert host_paths == {"/sys/fs/cgroup", "/sys/fs/bpf"}
    mounts = {m["name"]: m for m in container(ds)["volumeMounts"]}
    cgroup_volume = [v["name"] for v in spec["volumes"] if v["hostPath"]["path"] == "/sys/fs/cgroup"][0]
    assert mounts[cgroup_volume].get("readOnly") is True


def test_daemonset_points_the_agent_at_the_mounted_node_cgroup_root_and_bpffs():
    ds = daemonset()
    spec = ds["spec"]["template"]["spec"]
    by_host = {v["hostPath"]["path"]: v["name"] for v in spec["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container(ds)["volumeMounts"]}
    args = container(ds)["args"]
    assert arg_after(args, "--cgroup-root") == mounts[by_host["/sys/fs/cgroup"]]
    # The pins must land on the node's bpffs (or they would die with the container), in the
    # directory the CLI on the node uses by default (/sys/fs/bpf/tcp-keepalive), and not below
    # /sys/fs/ in the container, where the default AppArmor profile denies writes.
    env = {e["name"]: e["value"] for e in container(ds)["env"]}
    bpffs = mounts[by_host["/sys/fs/bpf"]]
    assert not bpffs.startswith("/sys/")
    assert env["TCP_KEEPALIVE_PIN_ROOT"] == bpffs + "/tcp-keepalive"


def test_rolling_update_never_runs_two_agents_that_detach_on_exit():
    ds = daemonset()
    args = container(ds)["args"]
    strategy = ds["spec"]["updateStrategy"]
    assert strategy["type"] == "RollingUpdate"
    if "--detach-on-exit" in args:
        # A surge agent would attach, then the old one's SIGTERM would detach both.
        assert strategy["rollingUpdate"]["maxSurge"] == 0


def test_daemonset_args_are_accepted_by_the_cli(tmp_path):
    # A cgroup root without kubepods: the args parse and the values are valid (else exit 2),
    # and the agent says what it did not find (exit 14).
    args = container(daemonset())["args"]
    args = [str(tmp_path) if a == arg_after(args, "--cgroup-root") else a for a in args]
    done = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == EXIT["NO_KUBEPODS"], done.stderr
    assert "neither kubepods.slice" in done.stderr and str(tmp_path) in done.stderr


POD_PATHS = {
    ("systemd", "Guaranteed"): f"kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice",
    ("systemd", "Burstable"):
        f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice",
    ("systemd", "BestEffort"):
        f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID.replace('-', '_')}.slice",
    ("cgroupfs", "Guaranteed"): f"kubepods/pod{UID}",
    ("cgroupfs", "Burstable"): f"kubepods/burstable/pod{UID}",
    ("cgroupfs", "BestEffort"): f"kubepods/besteffort/pod{UID}",
}


@pytest.mark.parametrize("driver,qos", sorted(POD_PATHS))
def test_pod_attach_targets_the_pods_cgroup(driver, qos):
    done = pod_attach("--uid", UID, "--qos", qos, "--node", "node-7", "--driver", driver)
    assert done.returncode == 0, done.stderr
    (job,) = yaml.safe_load_all(done.stdout)
    assert job["kind"] == "Job"
    spec = job["spec"]["template"]["spec"]
    assert spec["nodeName"] == "node-7" and spec["hostPID"] is True
    c = container(job)
    assert c["args"][:3] == ["cgroup", "attach", "/host/sys/fs/cgroup/" + POD_PATHS[driver, qos]]
    assert c["env"] == container(daemonset())["env"]
    assert c["volumeMounts"] == [{"name": m["name"], "mountPath": m["mountPath"], **(
        {"readOnly": True} if m.get("readOnly") else {})} for m in container(daemonset())["volumeMounts"]]
    assert c["args"][3:] == ["--idle", "60s", "--interval", "10s", "--count", "6"]
    # The same image and privileges as the DaemonSet.
    ds = container(daemonset())
    assert c["image"] == ds["image"] and c["securityContext"] == ds["securityContext"]


def test_pod_attach_detach_and_own_attach_options():
    done = pod_attach("--detach", "--uid", UID, "--qos", "BestEffort", "--node", "n", "--driver", "cgroupfs")
    assert done.returncode == 0, done.stderr
    (job,) = yaml.safe_load_all(done.stdout)
    assert container(job)["args"] == ["cgroup", "detach", f"/host/sys/fs/cgroup/kubepods/besteffort/pod{UID}"]
    done = pod_attach("--uid", UID, "--qos", "Guaranteed", "--node", "n", "--driver", "systemd",
                      "--", "--idle", "30s", "--no-enforce")
    (job,) = yaml.safe_load_all(done.stdout)
    assert container(job)["args"][3:] == ["--idle", "30s", "--no-enforce"]


@pytest.mark.parametrize("flag,value,named", [
    ("--qos", "Premium", "QoS class 'Premium'"),
    ("--driver", "openrc", "cgroup driver 'openrc'"),
    ("--uid", "../../etc", "pod UID '../../etc'"),
])
def test_pod_attach_refuses_bad_input_naming_it(flag, value, named):
    facts = {"--uid": UID, "--qos": "Burstable", "--node": "n", "--driver": "systemd", flag: value}
    done = pod_attach(*[w for kv in facts.items() for w in kv])
    assert done.returncode == EXIT["USAGE"]
    assert named in done.stderr
    assert done.stdout == ""


# --------------------------------------------------------------------------------------------
# The agent on real cgroups, with the manifest's capabilities only


def cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == "cgroup2":
                return fields[1]
    return None


def bpffs_mounted(path="/sys/fs/bpf"):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path and line.split()[2] == "bpf" for line in f)


class Node:
    """A pretend node: a test parent at the cgroup v2 root holding a kubepods cgroup in one
    layout, and a pin root of its own on bpffs. `down` removes it all, whatever state it is in."""

    def __init__(self, layout):
        self.root = os.path.join(cgroup2_mount(), f"tkl-node-agent-{os.getpid()}-{layout}")
        self.kubepods = os.path.join(self.root, "kubepods.slice" if layout == "systemd" else "kubepods")
        self.layout = layout
        self.pins = f"/sys/fs/bpf/tkl-node-agent-{os.getpid()}-{layout}"
        self.env = dict(os.environ, TCP_KEEPALIVE_PIN_ROOT=self.pins)
        self.procs = []
        os.makedirs(self.kubepods)

    def pod(self):
        """A pod's cgroup and its container's, named as the kubelet and containerd name them."""
        if self.layout == "systemd":
            unit = UID.replace("-", "_")
            path = os.path.join(self.kubepods, "kubepods-burstable.slice",
                                f"kubepods-burstable-pod{unit}.slice", "cri-containerd-4f2a.scope")
        else:
            path = os.path.join(self.kubepods, "burstable", f"pod{UID}", "4f2a")
        os.makedirs(path, exist_ok=True)
        return path

    def cli(self, *args):
        return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=WAIT, env=self.env)

    def start(self, argv, cgroup=None, user=None, caps=None):
        """A process, joined to `cgroup` first, as `user`, with only `caps` (names) if given."""
        prefix = []
        if caps is not None:
            bounding = ",".join(["-all"] + [f"+{c.lower()}" for c in sorted(caps)])
            prefix = ["setpriv", "--inh-caps", "-all", "--bounding-set", bounding, "--no-new-privs", "--"]
        if user is not None:
            prefix = ["setpriv", "--reuid", str(user), "--regid", str(user), "--clear-groups", "--"]
        if cgroup is not None:
            prefix = ["sh", "-c", 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', "join", cgroup] + prefix
        proc = Proc(prefix + argv, self.env)
        self.procs.append(proc)
        return proc

    def down(self):
        for proc in self.procs:
            proc.kill()
        self.cli("cgroup", "detach", self.kubepods)
        for path in sorted((d for d, _, _ in os.walk(self.root)), key=len, reverse=True):
            for _ in range(50):
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
        if os.path.isdir(self.pins):
            shutil.rmtree(self.pins, ignore_errors=True)


class Proc:
    """A started process whose output lines a thread collects, so waits can be bounded."""

    def __init__(self, argv, env):
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, env=env,
                                      start_new_session=True)
        self.pid = self.popen.pid  # the exec chain keeps it: the program's own PID
        self.lines = queue.Queue()
        self.said = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout=WAIT):
        """The next line; fails after `timeout` or at exit."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        if line is None:
            raise AssertionError(f"no line in time; it said {self.said}; exit {self.popen.poll()}")
        self.said.append(line)
        return line

    def read_until(self, text, timeout=WAIT):
        """Its lines up to the one containing `text`."""
        until = time.monotonic() + timeout
        start = len(self.said)
        while text not in self.line(max(0.1, until - time.monotonic())):
            pass
        return self.said[start:]

    def finish(self, timeout=WAIT):
        """Waits for the exit: (exit code, every line it said)."""
        self.popen.wait(timeout=timeout)
        self.reader.join(timeout)
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.said.append(line)
        return self.popen.returncode, "\n".join(self.said)

    def kill(self):
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=WAIT)
        if self.popen.stdin:
            self.popen.stdin.close()


@pytest.fixture(params=["systemd", "cgroupfs"])
def node(request):
    if os.geteuid() != 0:
        cannot("the node agent tests need root (BPF, cgroups)")
    if cgroup2_mount() is None:
        cannot("no cgroup v2 mount in /proc/mounts")
    if not bpffs_mounted():
        cannot("no bpffs at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf), as a node has it")
    if not shutil.which("setpriv"):
        cannot("setpriv (util-linux) is missing")
    n = Node(request.param)
    try:
        yield n
    finally:
        n.down()


@pytest.fixture
def listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    accepted = []
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(WAIT)
        for s in accepted:
            s.close()
        srv.close()


# A pod's program: connects to the port, prints its socket's keep-alive from getsockopt as
# "on idle interval count" (or "off ..."), then holds the connection until stdin closes.
CONNECTOR = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
on = s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
t = [s.getsockopt(socket.IPPROTO_TCP, o) for o in (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT)]
print("on" if on else "off", *t, flush=True)
sys.stdin.read()
"""


def connect_from(node, cgroup, port):
    """What a new connection from a pod's process (running as nobody) gets."""
    proc = node.start([sys.executable, "-c", CONNECTOR, str(port)], cgroup=cgroup, user=NOBODY)
    line = proc.line()
    proc.popen.stdin.close()
    proc.finish()
    return line


def agent(node, caps=None, extra=(), values=None):
    """The DaemonSet's container, args (`values` replacing some) and capabilities as written,
    at this node."""
    c = container(daemonset())
    args = list(c["args"])
    for flag, value in {"--cgroup-root": node.root, **(values or {})}.items():
        args[args.index(flag) + 1] = value
    return node.start([CLI, *args, *extra], caps=added_caps(c) if caps is None else caps)


def stop(proc):
    proc.popen.send_signal(signal.SIGTERM)
    return proc.finish()


def manifest_timings():
    args = container(daemonset())["args"]
    return [arg_after(args, f) for f in ("--idle", "--interval", "--count")]


def test_agent_covers_pods_created_later_and_keeps_them_covered_after_sigterm(node, listener):
    proc = agent(node)
    said = proc.read_until("agent: waiting")
    assert any(node.kubepods in line and "enforce on" in line for line in said), said
    status = json.loads(node.cli("cgroup", "status", node.kubepods, "--json").stdout)
    (row,) = status["attachments"]
    idle, interval, count = manifest_timings()
    assert (row["idle_s"], row["interval_s"], row["count"], row["enforce"]) == (
        int(idle.rstrip("s")), int(interval.rstrip("s")), int(count), True)
    # A pod created after the agent started, a connection from its container's process.
    assert connect_from(node, node.pod(), listener) == f"on {row['idle_s']} {row['interval_s']} {row['count']}"

    # SIGTERM (a rolling update, the DaemonSet deleted): the programs stay attached.
    code, out = stop(proc)
    assert code == 0 and "leaving the attachment in place" in out, out
    assert connect_from(node, node.pod(), listener) == f"on {row['idle_s']} {row['interval_s']} {row['count']}"
    # The uninstall: nothing of ours is left, new connections get the system defaults.
    done = node.cli("cgroup", "detach", "--all")
    assert done.returncode == 0 and "nothing of tcp-keepalive is left" in done.stdout, done.stdout + done.stderr
    assert not os.path.exists(node.pins)
    gone = node.cli("cgroup", "status", node.kubepods)
    assert gone.returncode == EXIT["NOT_ATTACHED"], gone.stdout + gone.stderr
    assert connect_from(node, node.pod(), listener).startswith("off ")


def test_restarted_agent_adopts_in_place_and_detach_on_exit_detaches(node, listener):
    first = agent(node)
    first.read_until("agent: waiting")
    code, out = stop(first)
    assert code == 0 and "leaving the attachment in place" in out, out
    # Between agents, new connections stay covered.
    assert connect_from(node, node.pod(), listener).startswith("on ")
    second = agent(node, values={"--idle": "45s"}, extra=["--detach-on-exit"])  # a changed setting
    said = second.read_until("agent: waiting")
    assert any(line.startswith("updated ") for line in said), said
    assert connect_from(node, node.pod(), listener).split()[:2] == ["on", "45"]
    code, out = stop(second)
    assert code == 0 and "detached from" in out, out


def hold_connection(node, port):
    """A pod's process (nobody) with a connection open before any agent runs; its PID."""
    proc = node.start([sys.executable, "-c", CONNECTOR, str(port)], cgroup=node.pod(), user=NOBODY)
    assert proc.line().startswith("off ")
    return proc


def keepalive_of(node, pid):
    done = node.cli("inspect", "--pid", str(pid), "--json")
    assert done.returncode == 0, done.stderr
    (sock,) = [s for s in json.loads(done.stdout)["sockets"] if s["state"] == "ESTABLISHED"]
    k = sock["keepalive"]
    return (k["enabled"], k["idle_s"], k["interval_s"], k["count"])


def test_agent_sweeps_a_pods_open_connection_with_the_manifests_capabilities(node, listener):
    holder = hold_connection(node, listener)
    proc = agent(node)
    said = proc.read_until("agent: waiting")
    assert any("changed 1 of 1 TCP sockets in 1 processes" in line and "failed" not in line
               for line in said), said
    assert not any("sweep:" in line for line in said), said  # no process it could not reach
    idle, interval, count = manifest_timings()
    assert keepalive_of(node, holder.pid) == (True, int(idle.rstrip("s")), int(interval.rstrip("s")), int(count))
    code, out = stop(proc)
    assert code == 0, out


@pytest.mark.parametrize("missing", ["BPF", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"])
def test_each_added_capability_is_needed(node, listener, missing):
    holder = hold_connection(node, listener)
    caps = added_caps(container(daemonset())) - {missing}
    proc = agent(node, caps=caps)
    if missing in ("BPF", "NET_ADMIN"):
        # Loading or attaching the programs is refused: exit 9, the remedy named.
        code, out = proc.finish()
        assert code == EXIT["BPF_PERMISSION"], out
        assert "CAP_BPF" in out
    else:
        # Attached, but the sweep cannot reach the pod's process (another user's).
        said = proc.read_until("agent: waiting")
        # The agent names the process it could not reach, and changed nothing there.
        assert any(f"process {holder.pid}" in line for line in said), said
        assert not any("changed 1 of" in line for line in said), said
        assert keepalive_of(node, holder.pid)[0] is False
        stop(proc)


def job_args(*facts):
    done = pod_attach(*facts)
    assert done.returncode == 0, done.stderr
    (job,) = yaml.safe_load_all(done.stdout)
    return container(job)["args"]


def test_pod_attach_jobs_attach_and_detach_a_real_pod_cgroup(node, listener):
    facts = ["--uid", UID, "--qos", "Burstable", "--node", "n", "--driver", node.layout]
    pod = os.path.dirname(node.pod())  # the pod's cgroup; its container's is below
    attach = [a.replace("/host/sys/fs/cgroup", node.root) for a in job_args(*facts)]
    assert attach[2] == pod
    done = node.cli(*attach)
    assert done.returncode == 0, done.stderr
    assert connect_from(node, node.pod(), listener) == "on 60 10 6"
    # The node's other pods are not covered.
    other = os.path.join(node.kubepods, "other-pod")
    os.makedirs(other)
    assert connect_from(node, other, listener).startswith("off ")
    detach = [a.replace("/host/sys/fs/cgroup", node.root) for a in job_args("--detach", *facts)]
    done = node.cli(*detach)
    assert done.returncode == 0, done.stderr
    assert connect_from(node, node.pod(), listener).startswith("off ")


def test_pod_attach_reads_the_pod_and_the_kubelets_driver_with_kubectl(tmp_path):
    # kubectl is not available here: a stand-in that records its arguments and answers what
    # kubectl answers for these two queries (jsonpath text, the kubelet's compact configz JSON).
    log = tmp_path / "kubectl.log"
    fake = tmp_path / "kubectl"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'case "$*" in\n'
        f'  "get pod web-0 -n shop -o jsonpath="*) printf "%s Guaranteed node-3" {UID} ;;\n'
        '  "get --raw /api/v1/nodes/node-3/proxy/configz") '
        """printf '{"kubeletconfig":{"cgroupRoot":"/","cgroupDriver":"cgroupfs","maxPods":110}}' ;;\n"""
        '  *) exit 1 ;;\n'
        "esac\n")
    fake.chmod(0o755)
    done = subprocess.run(["sh", POD_ATTACH, "web-0", "-n", "shop"], capture_output=True, text=True,
                          timeout=WAIT, env=dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}"))
    assert done.returncode == 0, done.stderr
    (job,) = yaml.safe_load_all(done.stdout)
    assert job["spec"]["template"]["spec"]["nodeName"] == "node-3"
    assert container(job)["args"][2] == f"/host/sys/fs/cgroup/kubepods/pod{UID}"
    assert len(log.read_text().splitlines()) == 2


def test_agent_in_the_containers_mount_layout(node, listener, tmp_path):
    # As in the pod: the node's cgroup v2 root and bpffs bind-mounted read-only and read-write
    # at the manifest's mountPaths (below a test directory here), in a mount namespace of its
    # own, then the agent with the manifest's args, env and capabilities only.
    c = container(daemonset())
    spec = daemonset()["spec"]["template"]["spec"]
    source = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
    real = {"/sys/fs/cgroup": cgroup2_mount(), "/sys/fs/bpf": "/sys/fs/bpf"}
    script = ["set -e"]
    for m in c["volumeMounts"]:
        target = f"{tmp_path}{m['mountPath']}"
        script.append(f"mkdir -p {target} && mount --bind {real[source[m['name']]]} {target}")
        if m.get("readOnly"):
            script.append(f"mount -o remount,bind,ro {target}")
    bounding = ",".join(["-all"] + [f"+{cap.lower()}" for cap in sorted(added_caps(c))])
    script.append(f'exec setpriv --inh-caps -all --bounding-set {bounding} --no-new-privs -- "$@"')
    args = [a.replace("/host/", f"{tmp_path}/host/") for a in c["args"]]
    cgroup_root = arg_after(args, "--cgroup-root")
    # The test's kubepods lives in its own parent below the real root: point there.
    args[args.index("--cgroup-root") + 1] = cgroup_root + node.root[len(cgroup2_mount()):]
    # The manifest's pin root, moved to a directory of this test's own on the same bpffs.
    pin_root = {e["name"]: e["value"] for e in c["env"]}["TCP_KEEPALIVE_PIN_ROOT"]
    assert pin_root.startswith("/host/sys/fs/bpf/")
    own = os.path.basename(node.pins) + "-container"
    host_pins = f"/sys/fs/bpf/{own}"
    env = dict(node.env, TCP_KEEPALIVE_PIN_ROOT=f"{tmp_path}/host/sys/fs/bpf/{own}")
    proc = Proc(["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script),
                 "agent", CLI, *args], env)
    node.procs.append(proc)
    try:
        said = proc.read_until("agent: waiting")
        assert any("enforce on" in line for line in said), said
        assert connect_from(node, node.pod(), listener) == "on 60 10 6"
        # On the node, outside the container's mounts, the same pins are seen.
        status = subprocess.run([CLI, "cgroup", "status", "--json"], capture_output=True, text=True,
                                timeout=WAIT, env=dict(os.environ, TCP_KEEPALIVE_PIN_ROOT=host_pins))
        rows = json.loads(status.stdout)["attachments"]
        assert [(r["cgroup"], r["idle_s"]) for r in rows] == [(node.kubepods, 60)], status.stdout
        code, out = stop(proc)
        assert code == 0 and "leaving the attachment in place" in out, out
        # The uninstall, run on the node.
        done = subprocess.run([CLI, "cgroup", "detach", "--all"], capture_output=True, text=True,
                              timeout=WAIT, env=dict(os.environ, TCP_KEEPALIVE_PIN_ROOT=host_pins))
        assert done.returncode == 0 and "attachments removed: 1" in done.stdout, done.stdout + done.stderr
        assert not os.path.exists(host_pins)
    finally:
        proc.kill()
        shutil.rmtree(host_pins, ignore_errors=True)


# What a container runtime gives a root container by default (containerd's and docker's list).
CONTAINER_DEFAULT_CAPS = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
                          "SETPCAP", "NET_BIND_SERVICE", "NET_RAW", "SYS_CHROOT", "MKNOD",
                          "AUDIT_WRITE", "SETFCAP"}


def test_sweep_of_a_root_pod_needs_sys_ptrace_too(node, listener):
    # A pod running as root with the runtime's default capabilities: same user as the agent,
    # but capabilities the agent lacks, so pidfd_getfd needs CAP_SYS_PTRACE all the same.
    holder = node.start([sys.executable, "-c", CONNECTOR, str(listener)], cgroup=node.pod(),
                        caps=CONTAINER_DEFAULT_CAPS)
    assert holder.line().startswith("off ")
    caps = added_caps(container(daemonset()))
    without = agent(node, caps=caps - {"SYS_PTRACE"})
    said = without.read_until("agent: waiting")
    assert any(f"process {holder.pid}" in line for line in said), said
    assert keepalive_of(node, holder.pid)[0] is False
    stop(without)
    with_all = agent(node)
    said = with_all.read_until("agent: waiting")
    assert any("changed 1 of 1" in line for line in said), said
    assert keepalive_of(node, holder.pid)[0] is True
    stop(with_all)
