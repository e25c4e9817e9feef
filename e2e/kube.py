"""The lab's Kubernetes node: a real control plane, pods on one node, the agent in Kubernetes mode.

For the rows with kubernetes=True (e2e/clients.py): a real etcd and kube-apiserver
(scripts/k8s-control-plane.sh, binaries cached by scripts/k8s-build.sh), one per lab run; per
phase, a namespace, one pod per run on node NODE (spec.nodeName set; no kubelet, no scheduler),
their cgroups made as the kubelet's systemd driver makes a BestEffort pod's
(kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid with _>.slice/<container>),
and `tcp-keepalive cgroup agent --kubernetes` watching that node with a cgroup root and a pin root
of the phase's own. The API is spoken with the standard library (urllib), like the rest of the lab.
"""

import json
import os
import signal
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from typing import Callable, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTROL = os.path.join(ROOT, "scripts", "k8s-control-plane.sh")
BUILD = os.path.join(ROOT, "scripts", "k8s-build.sh")
ANNOTATION = "tcp-keepalive.dev/"
WAIT = 30  # seconds: the longest one step (the API, the agent's attach) may take
NOT_CACHED = 3  # scripts/k8s-build.sh under K8S_CACHED_ONLY=1


def not_cached() -> Optional[str]:
    """Why the control plane cannot start without building it first (6-14 min), or None."""
    done = subprocess.run(["bash", BUILD, "etcd", "kube-apiserver"], capture_output=True, text=True,
                          env=dict(os.environ, K8S_CACHED_ONLY="1"), timeout=60)
    if done.returncode == 0:
        return None
    said = done.stderr.strip().splitlines()
    return said[-1] if said else f"scripts/k8s-build.sh exit {done.returncode}"


class ControlPlane:
    """etcd and kube-apiserver in a directory of their own, stopped and removed by `stop`."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tkl-k8s-")
        self.url = ""
        self.token = ""
        self.ssl: Optional[ssl.SSLContext] = None

    def start(self):
        done = subprocess.run(["bash", CONTROL, "start", self.dir], capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"the control plane did not start: {tail}")
        with open(os.path.join(self.dir, "env")) as f:
            env = dict(line.strip().split("=", 1) for line in f if "=" in line)
        self.url = env["APISERVER_URL"]
        with open(os.path.join(self.dir, "admin.token")) as f:
            self.token = f.read().strip()
        self.ssl = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))

    def stop(self):
        subprocess.run(["bash", CONTROL, "stop", self.dir], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)

    def create(self, path: str, obj: dict) -> dict:
        """POSTs `obj` to the API (as the admin); the object the API server made."""
        req = urllib.request.Request(self.url + path, data=json.dumps(obj).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=WAIT, context=self.ssl) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"POST {path}: {e.code} {e.read().decode()[:200]}") from None


def annotations(keepalive: Dict[str, str], enforce: bool = True) -> Dict[str, str]:
    """The tcp-keepalive.dev/* annotations asking for a scenario's TCP_KEEPALIVE_* timings."""
    names = {"TCP_KEEPALIVE_IDLE": "idle", "TCP_KEEPALIVE_INTERVAL": "interval",
             "TCP_KEEPALIVE_COUNT": "count", "TCP_KEEPALIVE_USER_TIMEOUT": "user-timeout"}
    out = {ANNOTATION + "keepalive": "on"}
    out.update({ANNOTATION + names[k]: v for k, v in keepalive.items() if k in names})
    if not enforce:
        out[ANNOTATION + "enforce"] = "off"
    return out


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Node:
    """One phase's node: a namespace, its pods, their kubelet-like cgroups below `root` (made with
    `mkdir`, a callable that records each directory for removal), and the agent."""

    def __init__(self, plane: ControlPlane, name: str, root: str, pins: str, cli: str,
                 mkdir: Callable[[str], None]):
        self.plane, self.name, self.root, self.pins, self.cli = plane, name, root, pins, cli
        self.mkdir = mkdir
        self.kubepods = os.path.join(root, "kubepods.slice")
        self.besteffort = os.path.join(self.kubepods, "kubepods-besteffort.slice")
        self.agent: Optional[subprocess.Popen] = None
        self.log = os.path.join(plane.dir, f"agent-{name}.log")
        self.pods: List[str] = []

    def slices(self):
        """The kubelet's fixed slices: kubepods.slice and its BestEffort tier."""
        self.mkdir(self.root)
        self.mkdir(self.kubepods)
        self.mkdir(self.besteffort)

    def start_agent(self):
        """The agent, on the slices (ready: /readyz answers 200)."""
        kubeconfig = os.path.join(self.plane.dir, "kubeconfig")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TCP_KEEPALIVE") and k != "KUBERNETES_SERVICE_HOST"}
        env.update(KUBECONFIG=kubeconfig, TCP_KEEPALIVE_PIN_ROOT=self.pins)
        port = free_port()
        with open(self.log, "w") as log:
            self.agent = subprocess.Popen(
                [self.cli, "cgroup", "agent", "--kubernetes", "--cgroup-root", self.root,
                 "--node-name", self.name, "--metrics-address", f"127.0.0.1:{port}", "--no-sweep",
                 "--detach-on-exit"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.agent.poll() is not None:
                raise RuntimeError(f"the agent exited {self.agent.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the agent not ready within {WAIT} s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            with open(self.log) as f:
                return " | ".join(f.read().strip().splitlines()[-3:])[:300]
        except OSError:
            return "no log"

    def namespace(self, name: str):
        self.plane.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": name}})

    def pod(self, namespace: str, name: str, annotations: Dict[str, str]) -> str:
        """A BestEffort pod on this node; its cgroup as the kubelet's systemd driver makes it
        (the agent attaches there when it is selected); returns its container's cgroup."""
        pod = self.plane.create(f"/api/v1/namespaces/{namespace}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"nodeName": self.name,
                     "containers": [{"name": "client", "image": "registry.example.com/lab:1"}]}})
        uid = pod["metadata"]["uid"].replace("-", "_")
        pod_dir = os.path.join(self.besteffort, f"kubepods-besteffort-pod{uid}.slice")
        self.mkdir(pod_dir)
        self.pods.append(pod_dir)
        return pod_dir

    def container(self, pod_dir: str) -> str:
        path = os.path.join(pod_dir, f"cri-containerd-{uuid.uuid4().hex}.scope")
        self.mkdir(path)
        return path

    def status(self, pod_dir: str) -> Optional[dict]:
        """The attachment at a pod's cgroup (`tcp-keepalive cgroup status --json`), or None."""
        done = subprocess.run([self.cli, "cgroup", "status", pod_dir, "--json"], capture_output=True,
                              text=True, env=dict(os.environ, TCP_KEEPALIVE_PIN_ROOT=self.pins),
                              timeout=WAIT)
        if done.returncode != 0:
            return None
        found = json.loads(done.stdout).get("attachments") or []
        return found[0] if found and found[0].get("linked") else None

    def wait_attached(self, pod_dir: str, idle: int) -> dict:
        """Until the agent attached the pod's cgroup with the idle it asked for (bounded)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.agent is not None and self.agent.poll() is not None:
                raise RuntimeError(f"the agent exited {self.agent.returncode}: {self.log_tail()}")
            s = self.status(pod_dir)
            if s and s.get("idle_s") == idle:
                return s
            time.sleep(0.05)
        raise RuntimeError(f"the agent did not attach {pod_dir} within {WAIT} s: {self.log_tail()}")

    def stop(self):
        """Stops the agent (SIGTERM: it detaches what it attached), SIGKILL after WAIT s."""
        if self.agent is None or self.agent.poll() is not None:
            return
        self.agent.send_signal(signal.SIGTERM)
        try:
            self.agent.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.agent.kill()
            self.agent.wait(timeout=10)
