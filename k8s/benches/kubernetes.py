"""Benchmarks of the Kubernetes mode (numbers, not pass/fail): run by scripts/bench-kubernetes.sh.

1. From a pod's cgroup appearing to its attachment in place, with N pods' cgroups made at once
   (the pods already known from the API, as when the kubelet makes a pod's cgroup after the API
   server has bound it to the node; the agent has loaded their programs ahead): the time from each mkdir to all four pins of that
   cgroup present, polled every 0.2 ms; and the agent's own histogram (inotify event to attached).
2. The agent's resident memory with M annotated pods on its node, all attached.
3. One /metrics scrape with M attachments (wall time of the HTTP request, median of 20).
"""

import os
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import test_kubernetes as t  # noqa: E402


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_pods(env, ns, n, prefix):
    uids = []
    # One request per pod, as a ReplicaSet controller would make them.
    for i in range(n):
        uids.append(t.create_pod(ns, f"{prefix}-{i}", {t.A + "keepalive": "on"}))
    return uids


def latency(env, agent, kubepods, n):
    ns = t.namespace(env)
    uids = make_pods(env, ns, n, "lat")
    # Wait until the agent has seen every pod (its log names the last one only once attached, so
    # use the API's view: the watch delivers in order; the last pod's creation is enough plus a
    # marker attached after it).
    marker = t.create_pod(ns, "lat-marker", {t.A + "keepalive": "on"})
    mcg = t.pod_cgroup(kubepods, marker, "BestEffort")
    os.mkdir(mcg)
    t.wait_for("marker", t.attached(env, mcg))
    dirs = [t.pod_cgroup(kubepods, u, "BestEffort") for u in uids]
    cpu0 = cpu_seconds(agent.proc.pid)
    made = {}
    for d in dirs:
        os.mkdir(d)
        made[d] = (time.monotonic(), os.stat(d).st_ino)
    pins = env["pins"]
    done = {}
    deadline = time.monotonic() + 60
    while len(done) < len(dirs) and time.monotonic() < deadline:
        now = time.monotonic()
        for d, (t0, ino) in made.items():
            if d in done:
                continue
            p = os.path.join(pins, str(ino))
            if all(os.path.exists(os.path.join(p, x)) for x in ("sock_ops", "setsockopt", "settings", "counters")):
                done[d] = now - t0
        time.sleep(0.0002)
    cpu = cpu_seconds(agent.proc.pid) - cpu0
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"agent CPU for {n} attaches: {cpu * 1000 / n:.1f} ms each (user+sys; load average {load})")
    lat = sorted(done.values())
    missing = len(dirs) - len(lat)
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    print(f"attach latency, {n} pod cgroups made at once: p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, "
          f"max {lat[-1] * 1000:.1f} ms ({missing} missing)")
    m = agent.metrics()
    buckets = m.get("tcp_keepalive_attach_latency_seconds_bucket", [])
    print("agent's histogram (inotify event to attached):",
          ", ".join(f"le {l['le']}: {int(v)}" for l, v in buckets if float(l["le"]) <= 0.2 or l["le"] == "+Inf"))
    return ns, dirs


def main():
    n = int(os.environ.get("PODS_AT_ONCE", "100"))
    m = int(os.environ.get("PODS_TOTAL", "500"))
    env_gen = t.make_env()
    env = next(env_gen)
    try:
        root, kubepods = t.layout(env, "bench")
        agent = t.Agent(env, root)
        try:
            print(f"agent RSS idle: {rss_kib(agent.proc.pid)} KiB")
            latency(env, agent, kubepods, n)
            ns = t.namespace(env)
            rest = make_pods(env, ns, m - n - 1, "rss")
            for u in rest:
                os.mkdir(t.pod_cgroup(kubepods, u, "BestEffort"))
            t0 = time.monotonic()
            t.wait_for(f"{m} attachments", lambda: len(t.pin_dirs(env)) >= m, timeout=300, step=0.5)
            print(f"{m - n - 1} more pods attached in {time.monotonic() - t0:.1f} s")
            print(f"agent RSS with {m} pods attached: {rss_kib(agent.proc.pid)} KiB "
                  f"(peak so far, programs loaded ahead included: {rss_kib(agent.proc.pid, 'VmHWM')} KiB)")
            times = []
            for _ in range(20):
                t0 = time.monotonic()
                with urllib.request.urlopen(f"http://127.0.0.1:{agent.port}/metrics", timeout=10) as r:
                    body = r.read()
                times.append(time.monotonic() - t0)
            print(f"/metrics with {m} attachments: median {statistics.median(times) * 1000:.1f} ms, "
                  f"max {max(times) * 1000:.1f} ms, {len(body)} bytes")
            for nsx in env["namespaces"]:
                subprocess.run(["kubectl", "delete", "pods", "--all", "-n", nsx, "--grace-period=0", "--force"],
                               env=dict(os.environ, KUBECONFIG=os.path.join(t.K8S_DIR, "kubeconfig")),
                               capture_output=True, timeout=600)
            t.wait_for("no attachment", lambda: t.pin_dirs(env) == [], timeout=300, step=0.5)
        finally:
            agent.stop()
        left = t.pin_dirs(env)
        print(f"after deleting every pod: {len(left)} pin directories left")
    finally:
        try:
            next(env_gen)
        except StopIteration:
            pass


if __name__ == "__main__":
    main()
