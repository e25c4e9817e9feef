#!/usr/bin/env python3
"""The middlebox lab: the seed's hang reproduced in network namespaces, and every fix proven.

    client ns  --veth--  middlebox ns  --veth--  server ns
    198.51.100.2         198.51.100.1            203.0.113.2
    fd00:1::2            fd00:1::1 | 203.0.113.1 fd00:2::2
                                   | fd00:2::1

The middlebox forwards with connection tracking like an AWS NLB or NAT gateway: nftables
`ct state invalid drop` in its forward chain, nf_conntrack_tcp_loose=0 (a forgotten flow is never
picked up again) and, in the idle-drop scenarios, nf_conntrack_tcp_timeout_established=T, so a
flow silent for T seconds is forgotten and its later packets vanish without a reply. It can also
cut one flow entirely (a named nftables set of client ports whose packets are dropped both ways).

Scenarios (each client row runs with and without keep-alive, concurrently):
  idle-drop      T=2 s, the server answers after D=3T; without keep-alive no answer by the
                 deadline, with it (idle 1 s < T) the full answer at about D. IPv4.
  idle-drop-v6   the same over IPv6.
  peer-vanishes  the flow is cut once the request arrived; with idle 1, interval 1, count 3 the
                 read fails with ETIMEDOUT within 4 s + slack; without, still waiting at the
                 deadline.
  black-hole     a POST whose body is written LAB_WRITE_AFTER s after the headers; the flow is
                 cut when the headers arrive; with a user timeout of 3 s the client fails with
                 ETIMEDOUT about 3 s after writing; without, still retransmitting at the deadline.
  server-vanished-client   judges the server: a client sends an upload's headers and vanishes
                 (the path is cut); with keep-alive on the server's listening socket (idle 1,
                 interval 1, count 3, inherited by the accepted socket) the server's read fails
                 with ETIMEDOUT within 4 s + slack; without, its thread is still blocked at the
                 deadline.

The measure cases (MEASURE_CASES) run `tcp-keepalive measure --json` through middleboxes of known
idle timeout T, each in a network of its own, all at once: the bracket must contain T (dropping and
resetting middleboxes, IPv4 and IPv6); a server that closes idle connections first is named as such;
a loose-pickup NAT shows nothing one-sided and is caught two-sided (`measure --listen`). `--bench`
times measurements against T instead.

Rows of the kernel door (cgroup=True in clients.py) run each client, or a server row's server, in
a cgroup v2 of its own, joined before `ip netns exec`; "with" attaches it first with `tcp-keepalive
cgroup attach` and the scenario's timings, and passes only if the kernel then had keep-alive within
them on the socket.

Usage (as root): lab.py --demo | --check [--only NAME]... [--scenario KEY]... | --list | --bench [REPS]
Python 3 standard library only. Every wait is bounded; namespaces and processes are removed in
`finally`/atexit, also on failure and Ctrl-C.
"""

import argparse
import atexit
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import clients as client_table  # noqa: E402  (after the path is set)
import kube  # noqa: E402

PORT = 8080
V4 = {"client": "198.51.100.2", "mb_c": "198.51.100.1", "mb_s": "203.0.113.1", "server": "203.0.113.2"}
V6 = {"client": "fd00:1::2", "mb_c": "fd00:1::1", "mb_s": "fd00:2::1", "server": "fd00:2::2"}
MAC = {"c0": "02:00:00:00:01:02", "m0": "02:00:00:00:01:01",
       "m1": "02:00:00:00:02:01", "s0": "02:00:00:00:02:02"}

T = 2  # seconds of silence after which the idle-drop middlebox forgets a flow
SLACK = 2.0  # seconds allowed beyond a detection bound (process exit, scheduling on a busy box)
COMMAND_TIMEOUT = 20  # every ip/nft/conntrack command
BUILD_TIMEOUT = 900  # a build script (cargo on a busy machine)
START_ALLOWANCE = 40  # seconds a client may take to start (a JVM on a busy box) before its deadline
# Every variable core reads besides the TCP_KEEPALIVE* ones (core/src/env.rs, NAMES): the classic
# names, msantos/libkeepalive's and libdontdie's, so none leaks into a run from the caller.
SCRUBBED = ("LD_PRELOAD", "KEEPALIVE", "KEEPIDLE", "KEEPINTVL", "KEEPCNT",
            "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT",
            "DD_USE_KEEPALIVE", "DD_TCP_KEEPALIVE_TIME", "DD_TCP_KEEPALIVE_INTVL",
            "DD_TCP_KEEPALIVE_PROBES")


# --------------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True)
class Scenario:
    key: str
    number: int
    title: str
    story: str
    family: int
    seconds: float  # D: the server's delay
    deadline: float  # the client's read deadline
    keepalive: Dict[str, str]  # TCP_KEEPALIVE_* for "with"
    keepalive_text: str
    conntrack_timeout: Optional[int]  # established timeout in the middlebox (None: default)
    cut: bool  # cut the flow once the request arrived
    write_after: Optional[float] = None
    bound: Optional[float] = None  # with: ETIMEDOUT within this many seconds of the request
    bound_text: str = ""  # how the bound is made up
    judges: str = "client"  # "server": the lab judges the server's read, not the client

    def expectation(self, mode: str) -> str:
        if self.judges == "server":
            if mode == "without":
                return f"server still blocked reading at {self.deadline:g} s"
            return f"server's read: ETIMEDOUT within {self.bound:g} s ({self.bound_text})"
        if mode == "without":
            after = " after the body" if self.write_after is not None else ""
            return f"no answer by its {self.deadline:g} s read deadline{after}"
        if self.bound is None:
            return f"full answer before {self.deadline:g} s"
        return f"ETIMEDOUT within {self.bound:g} s ({self.bound_text})"


FAST_PROBES = {"TCP_KEEPALIVE_IDLE": "1", "TCP_KEEPALIVE_INTERVAL": "1", "TCP_KEEPALIVE_COUNT": "3"}
D_IDLE = 3 * T
WRITE_AFTER = 2.0
USER_TIMEOUT = 3

SCENARIOS = [
    Scenario(
        key="idle-drop",
        number=1,
        title="Idle drop, IPv4",
        story=f"the middlebox forgets a flow silent for {T} s; the server answers after {D_IDLE} s",
        family=4,
        seconds=D_IDLE,
        deadline=D_IDLE + 4,
        keepalive=FAST_PROBES,
        keepalive_text="idle 1 s, interval 1 s, count 3",
        conntrack_timeout=T,
        cut=False,
    ),
    Scenario(
        key="idle-drop-v6",
        number=1,
        title="Idle drop, IPv6",
        story=f"the same over IPv6: forgotten after {T} s, answer after {D_IDLE} s",
        family=6,
        seconds=D_IDLE,
        deadline=D_IDLE + 4,
        keepalive=FAST_PROBES,
        keepalive_text="idle 1 s, interval 1 s, count 3",
        conntrack_timeout=T,
        cut=False,
    ),
    Scenario(
        key="peer-vanishes",
        number=2,
        title="Peer vanishes, IPv4",
        story="the path is cut once the request arrived; the server's answer (at 7 s) is lost",
        family=4,
        seconds=7,
        deadline=10,
        keepalive=FAST_PROBES,
        keepalive_text="idle 1 s, interval 1 s, count 3",
        conntrack_timeout=None,
        cut=True,
        bound=1 + 1 * 3 + SLACK,  # detection bound idle + interval x count, plus slack
        bound_text=f"1 + 1x3 + {SLACK:g} slack",
    ),
    Scenario(
        key="black-hole",
        number=3,
        title="Data into a black hole, IPv4",
        story=(
            f"the path is cut once the POST's headers arrived; the client writes its body "
            f"{WRITE_AFTER:g} s later into the void"
        ),
        family=4,
        seconds=6,
        deadline=10,
        keepalive={
            "TCP_KEEPALIVE_IDLE": "60",
            "TCP_KEEPALIVE_INTERVAL": "10",
            "TCP_KEEPALIVE_COUNT": "6",
            "TCP_KEEPALIVE_USER_TIMEOUT": str(USER_TIMEOUT),
        },
        keepalive_text=f"defaults + user timeout {USER_TIMEOUT} s",
        conntrack_timeout=None,
        cut=True,
        write_after=WRITE_AFTER,
        bound=WRITE_AFTER + USER_TIMEOUT + SLACK,
        bound_text=f"{WRITE_AFTER:g} wait + {USER_TIMEOUT} + {SLACK:g} slack",
    ),
    Scenario(
        key="server-vanished-client",
        number=4,
        title="Client vanishes, the server waits, IPv4",
        story=(
            "a client sends an upload's headers, then the path is cut; the server's thread waits "
            "for the body (judged: the server; time: until its read failed)"
        ),
        family=4,
        seconds=0,
        deadline=10,
        keepalive=FAST_PROBES,
        keepalive_text="idle 1 s, interval 1 s, count 3 on the listener",
        conntrack_timeout=None,
        cut=True,
        bound=1 + 1 * 3 + SLACK,
        bound_text=f"1 + 1x3 + {SLACK:g} slack",
        judges="server",
    ),
]
SCENARIO_BY_KEY = {s.key: s for s in SCENARIOS}
assert tuple(SCENARIO_BY_KEY) == client_table.SCENARIOS + client_table.SERVER_SCENARIOS
assert {s.key for s in SCENARIOS if s.judges == "server"} == set(client_table.SERVER_SCENARIOS)

# Scenarios sharing a middlebox run at the same time: (name, conntrack timeout, scenario keys).
PHASES = [
    ("idle-drop", T, ("idle-drop", "idle-drop-v6")),
    # A peer vanishes: the client's wait, and the server's (its own server on its own port).
    ("vanished", None, ("peer-vanishes", "server-vanished-client")),
    ("black-hole", None, ("black-hole",)),
]


# --------------------------------------------------------------------------------------------
# Cleanup that runs whatever happens


class Cleanup:
    """Callbacks run once, newest first, from `finally`, atexit and fatal signals."""

    def __init__(self):
        self._lock = threading.Lock()
        self._actions = []

    def add(self, action):
        with self._lock:
            self._actions.append(action)
        return action

    def discard(self, action):
        with self._lock:
            if action in self._actions:
                self._actions.remove(action)

    def run(self):
        while True:
            with self._lock:
                if not self._actions:
                    return
                action = self._actions.pop()
            try:
                action()
            except Exception as e:  # keep cleaning up
                print(f"lab: cleanup step failed: {e}", file=sys.stderr)


CLEANUP = Cleanup()
atexit.register(CLEANUP.run)


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(argv, timeout=COMMAND_TIMEOUT, check=True, input_text=None):
    """Runs a command, bounded in time; returns CompletedProcess (text)."""
    done = subprocess.run(
        argv,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


def kill_group(proc: subprocess.Popen):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


# --------------------------------------------------------------------------------------------
# The network


class Network:
    """Three namespaces (client, middlebox, server) with unique names, joined by veth pairs."""

    def __init__(self, run_id: str, phase: str, conntrack_timeout: Optional[int],
                 reject: bool = False, loose: bool = False, lose_one: bool = False):
        base = f"tkl-{run_id}-{phase}"
        self.client = f"{base}-client"
        self.middlebox = f"{base}-mbox"
        self.server = f"{base}-server"
        self.conntrack_timeout = conntrack_timeout
        # reject: a forgotten flow's packets get a TCP reset (a NAT that resets) instead of
        # silence. loose: nf_conntrack_tcp_loose=1 and the client masqueraded behind m1 (a NAT
        # that re-creates a forgotten flow from the client's next packet).
        self.reject = reject
        self.loose = loose
        # lose_one: the first flow's third client packet (after SYN and ACK: its first keep-alive
        # probe) is dropped once, as a lossy path would (conntrack accounting counts the packets; a
        # quota "until 100 bytes" matches while what it matched stays below 100 bytes: one probe).
        self.lose_one = lose_one
        self._made: List[str] = []

    def up(self):
        CLEANUP.add(self.down)
        for ns in (self.client, self.middlebox, self.server):
            run(["ip", "netns", "add", ns])
            self._made.append(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            # No duplicate address detection: link-local addresses usable at once (no 1 s stall).
            run(["ip", "netns", "exec", ns, "sh", "-ec",
                 "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad; "
                 "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad"])
        # The veth ends are created inside the namespaces: no name in the host's namespace, so
        # concurrent labs cannot collide.
        run(["ip", "-n", self.client, "link", "add", "c0", "address", MAC["c0"], "type", "veth",
             "peer", "name", "m0", "address", MAC["m0"], "netns", self.middlebox])
        run(["ip", "-n", self.middlebox, "link", "add", "m1", "address", MAC["m1"], "type", "veth",
             "peer", "name", "s0", "address", MAC["s0"], "netns", self.server])
        for ns, dev, v4, v6 in (
            (self.client, "c0", V4["client"], V6["client"]),
            (self.middlebox, "m0", V4["mb_c"], V6["mb_c"]),
            (self.middlebox, "m1", V4["mb_s"], V6["mb_s"]),
            (self.server, "s0", V4["server"], V6["server"]),
        ):
            run(["ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", dev])
            run(["ip", "-n", ns, "-6", "addr", "add", f"{v6}/64", "dev", dev, "nodad"])
            run(["ip", "-n", ns, "link", "set", dev, "up"])
        for ns, gw4, gw6 in (
            (self.client, V4["mb_c"], V6["mb_c"]),
            (self.server, V4["mb_s"], V6["mb_s"]),
        ):
            run(["ip", "-n", ns, "route", "add", "default", "via", gw4])
            run(["ip", "-n", ns, "-6", "route", "add", "default", "via", gw6])
        # Static neighbours: without them the first IPv6 SYN of a fresh path was lost to neighbour
        # discovery (a 1 s retransmission), which would skew the IPv6 timings.
        for ns, dev, peer, ips in (
            (self.client, "c0", "m0", (V4["mb_c"], V6["mb_c"])),
            (self.middlebox, "m0", "c0", (V4["client"], V6["client"])),
            (self.middlebox, "m1", "s0", (V4["server"], V6["server"])),
            (self.server, "s0", "m1", (V4["mb_s"], V6["mb_s"])),
        ):
            for ip in ips:
                run(["ip", "-n", ns, "neigh", "replace", ip, "lladdr", MAC[peer], "dev", dev,
                     "nud", "permanent"])
        # The middlebox: nftables first (it loads conntrack for this namespace), then the knobs.
        ruleset = """
table inet lab {
    set cut {
        type inet_service . inet_service
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        tcp sport . tcp dport @cut drop
        tcp dport . tcp sport @cut drop
        ct state invalid drop
    }
}
"""
        if self.reject:
            ruleset = ruleset.replace("ct state invalid drop", "ct state invalid reject with tcp reset")
        if self.lose_one:
            ruleset = ruleset.replace("    chain forward {", "    quota once {\n        until 100 bytes\n    }\n    chain forward {")
            ruleset = ruleset.replace("        ct state invalid", "        ct direction original ct original packets 3 quota name once drop\n        ct state invalid")
        if self.loose:
            ruleset += """
table ip labnat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "m1" masquerade
    }
}
"""
        run(["ip", "netns", "exec", self.middlebox, "nft", "-f", "-"], input_text=ruleset)
        knobs = {
            "net/ipv4/ip_forward": "1",
            "net/ipv6/conf/all/forwarding": "1",
            "net/netfilter/nf_conntrack_tcp_loose": "1" if self.loose else "0",
        }
        if self.lose_one:
            knobs["net/netfilter/nf_conntrack_acct"] = "1"
        if self.conntrack_timeout is not None:
            knobs["net/netfilter/nf_conntrack_tcp_timeout_established"] = str(self.conntrack_timeout)
        script = "; ".join(f"echo {v} > /proc/sys/{k}" for k, v in knobs.items())
        run(["ip", "netns", "exec", self.middlebox, "sh", "-ec", script])
        for k, v in knobs.items():
            got = run(["ip", "netns", "exec", self.middlebox, "cat", f"/proc/sys/{k}"]).stdout.strip()
            if got != v:
                raise RuntimeError(f"middlebox {k} is {got}, wanted {v}")

    def cut(self, client_port: Optional[int] = None, server_port: int = PORT):
        """Drops every packet of the flow between `client_port` and `server_port` both ways,
        silently; without a port, cuts the whole path (every forwarded packet). The pair, not the
        client port alone: connections to different servers may share a client port, and cutting
        by port alone cut another row's flow now and then."""
        if client_port is None:
            cmd = ["nft", "insert", "rule", "inet", "lab", "forward", "drop"]
        else:
            cmd = ["nft", "add", "element", "inet", "lab", "cut", "{", f"{client_port} . {server_port}", "}"]
        run(["ip", "netns", "exec", self.middlebox] + cmd)

    def flow_tracked(self, family: int, client_port: int) -> Optional[bool]:
        """Whether the middlebox's conntrack table holds the flow (None: no conntrack tool)."""
        if not shutil.which("conntrack"):
            return None
        done = run(
            ["ip", "netns", "exec", self.middlebox, "conntrack", "-L", "-f",
             "ipv6" if family == 6 else "ipv4", "-p", "tcp", "--orig-port-src", str(client_port)],
            check=False,
        )
        return f"sport={client_port} " in done.stdout

    def unacked(self, client_port: int) -> Optional[str]:
        """How often the client socket has retransmitted (ss in the client namespace), or None
        when it has no such socket or nothing unacknowledged."""
        done = run(["ip", "netns", "exec", self.client, "ss", "-tinHO", "sport", "=", f":{client_port}"],
                   check=False)
        unacked = re.search(r"\bunacked:(\d+)", done.stdout)
        retrans = re.search(r"\bretrans:(\d+)/(\d+)", done.stdout)
        if not unacked or not retrans:
            return None
        return retrans.group(2) if int(unacked.group(1)) > 0 else None

    def server_holds(self, server_port: int, client_port: int) -> bool:
        """Whether the server namespace still has the flow's socket ESTABLISHED (ss)."""
        done = run(["ip", "netns", "exec", self.server, "ss", "-tnH", "state", "established",
                    "sport", "=", f":{server_port}", "and", "dport", "=", f":{client_port}"],
                   check=False)
        return bool(done.stdout.strip())

    def spawn(self, ns: str, argv: List[str], env: Dict[str, str],
              cgroup: Optional[str] = None, enter: bool = True) -> subprocess.Popen:
        # A cgroup is joined before `ip netns exec`, which mounts a /sys of its own: a shell
        # writes its PID into cgroup.procs and execs the rest (the PID stays the client's).
        join = [] if cgroup is None else [
            "sh", "-c", 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', "lab-join-cgroup", cgroup]
        # A container row (enter=False) starts its container in `ns` itself (LAB_NETNS).
        netns = ["ip", "netns", "exec", ns] if enter else []
        proc = subprocess.Popen(
            join + netns + argv,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        CLEANUP.add(lambda: kill_group(proc))
        return proc

    def down(self):
        for ns in reversed(self._made):
            # Whatever still runs inside (a client that ignored its deadline) goes first.
            pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run(["ip", "netns", "del", ns], check=False)
        self._made.clear()


# --------------------------------------------------------------------------------------------
# The kernel door's cgroups


def urgent():
    """Raises the calling thread's priority (nice -10; Linux's nice is per thread and inherited
    by the threads and processes it starts). Only timing of the lab's own reactions changes, never
    what a client or server does; without the privilege it stays as it is."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
    except (OSError, AttributeError):
        pass


def urgent_group():
    """Gives the lab's own autogroup (this session: the lab and the hooks it runs, not the clients
    and servers, which start sessions of their own) nice -20. With the scheduler's autogroups on, a
    thread's nice only counts inside its session, and two dozen starting JVMs each in a session of
    their own starved a rescue hook that must land within 1 s of a request. Without the privilege,
    or without autogroups, nothing changes."""
    try:
        with open("/proc/self/autogroup", "w") as group:
            group.write("-20")
    except OSError:
        pass


def cgroup2_mount() -> Optional[str]:
    """Where cgroup v2 is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host."""
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return fields[1]
    except OSError:
        pass
    return None


def cli_path() -> str:
    return os.path.join(ROOT, client_table.CLI)


class Cgroups:
    """A phase's cgroups: one per run of a cgroup row (and per cgroup server), below
    tkl-<run id>-<phase> at the cgroup v2 root. `down` detaches what was attached, kills the lab's
    processes still inside (only the lab puts processes there) and removes the directories."""

    def __init__(self, run_id: str, phase: str):
        self.root = cgroup2_mount()
        self.parent = os.path.join(self.root or "/nonexistent", f"tkl-{run_id}-{phase}")
        # The phase's own pin root (TCP_KEEPALIVE_PIN_ROOT), removed in `down`: nothing of the lab
        # stays under the BPF file system, and labs side by side never share one.
        self.pins = f"/sys/fs/bpf/tkl-{run_id}-{phase}"
        self._made: List[str] = []
        self._attached: List[str] = []

    def make(self, name: str) -> str:
        path = os.path.join(self.parent, re.sub(r"[^a-z0-9-]", "-", name))
        self.make_dir(path)
        return path

    def make_dir(self, path: str):
        """Makes `path` (below the phase's cgroup, its parent made first) and removes it in `down`."""
        if self.root is None:
            raise RuntimeError("no cgroup v2 mount in /proc/mounts")
        if not self._made:
            CLEANUP.add(self.down)
            os.mkdir(self.parent)
            self._made.append(self.parent)
        os.mkdir(path)
        self._made.append(path)

    def attach(self, path: str, keepalive: Dict[str, str], enforce: bool = True) -> str:
        """`tcp-keepalive cgroup attach` with the scenario's timings; its first line."""
        argv = ["env", f"TCP_KEEPALIVE_PIN_ROOT={self.pins}", cli_path(), "cgroup", "attach", path,
                "--idle", keepalive["TCP_KEEPALIVE_IDLE"],
                "--interval", keepalive["TCP_KEEPALIVE_INTERVAL"],
                "--count", keepalive["TCP_KEEPALIVE_COUNT"]]
        if "TCP_KEEPALIVE_USER_TIMEOUT" in keepalive:
            argv += ["--user-timeout", keepalive["TCP_KEEPALIVE_USER_TIMEOUT"]]
        if not enforce:
            argv.append("--no-enforce")
        self._attached.append(path)  # before the call: a failed attach is detached too
        done = run(argv, check=False)
        if done.returncode != 0:
            said = done.stderr.strip().splitlines() or done.stdout.strip().splitlines()
            raise RuntimeError(f"tcp-keepalive cgroup attach failed (exit {done.returncode}): "
                               f"{said[0][:160] if said else 'nothing said'}")
        said = done.stdout.strip().splitlines()
        return said[0][:160] if said else ""  # "attached to ... (cgroup id N): <settings>, enforce on"

    def will_attach(self, path: str):
        """Someone else (a row's after_request) attaches `path`: detach it in `down` too."""
        self._attached.append(path)

    def down(self):
        for path in reversed(self._attached):
            run(["env", f"TCP_KEEPALIVE_PIN_ROOT={self.pins}", cli_path(), "cgroup", "detach", path],
                check=False)
        if self._attached:
            try:
                # The pin root's lock directory stays after a detach (the CLI's; root's, 0700).
                if os.path.isdir(os.path.join(self.pins, "lock")):
                    os.rmdir(os.path.join(self.pins, "lock"))
                os.rmdir(self.pins)
            except OSError as e:
                print(f"lab: could not remove the pin root {self.pins}: {e}", file=sys.stderr)
        self._attached.clear()
        for path in reversed(self._made):
            for _ in range(50):  # bounded: 5 s for the killed processes to leave
                try:
                    with open(os.path.join(path, "cgroup.procs")) as procs:
                        pids = [int(p) for p in procs.read().split()]
                except OSError:
                    pids = []
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                print(f"lab: could not remove cgroup {path}", file=sys.stderr)
        self._made.clear()


# `tcp-keepalive cgroup` exit codes that mean this machine cannot run the kernel door at all
# (cli/src/fail.rs): not permitted to load BPF, a kernel without it (or older than 5.9), no bpffs.
KERNEL_DOOR_MISSING = {9: "no permission for BPF", 10: "the kernel cannot", 11: "no BPF file system"}


def kernel_door_missing(run_id: str) -> Optional[str]:
    """Why the kernel door cannot work here (a probe attach on a cgroup of its own), or None;
    other attach failures are left to the runs, which then fail."""
    cgroups = Cgroups(run_id, "probe")
    try:
        path = cgroups.make("probe")
        cgroups.attach(path, {"TCP_KEEPALIVE_IDLE": "60", "TCP_KEEPALIVE_INTERVAL": "10",
                              "TCP_KEEPALIVE_COUNT": "6"})
    except RuntimeError as e:
        code = re.search(r"exit (\d+)", str(e))
        if code and int(code.group(1)) in KERNEL_DOOR_MISSING:
            return f"{KERNEL_DOOR_MISSING[int(code.group(1))]}: {e}"
    finally:
        CLEANUP.discard(cgroups.down)
        cgroups.down()
    return None


def keepalive_of_client(pid: int, client_port: int) -> str:
    """The client socket's keep-alive as the kernel has it (`tcp-keepalive inspect --pid`):
    `off`, or `idle/interval/count` in seconds with `+ut<ms>` for a user timeout."""
    done = run([cli_path(), "inspect", "--pid", str(pid), "--json"], check=False)
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip().splitlines()
        return f"? (inspect exit {done.returncode}: {said[-1][:80] if said else ''})"
    for sock in json.loads(done.stdout).get("sockets", []):
        if sock.get("local", "").rsplit(":", 1)[-1] == str(client_port):
            k = sock["keepalive"]
            if not k["enabled"]:
                return "off"
            text = f"{k['idle_s']}/{k['interval_s']}/{k['count']}"
            return text + (f"+ut{k['user_timeout_ms']}" if k.get("user_timeout_ms") is not None else "")
    return f"? (no socket from port {client_port})"


def within_ceiling(seen: str, keepalive: Dict[str, str]) -> bool:
    """Whether what the kernel has is on and no longer than the scenario's timings: the kernel
    door's enforcement lets a program choose shorter ones (Go's count 9 becomes min(9, 6))."""
    m = re.fullmatch(r"(\d+)/(\d+)/(\d+)(?:\+ut(\d+))?", seen)
    if not m:
        return False
    idle, interval, count = (int(m.group(i)) for i in (1, 2, 3))
    if (idle > int(keepalive["TCP_KEEPALIVE_IDLE"]) or interval > int(keepalive["TCP_KEEPALIVE_INTERVAL"])
            or count > int(keepalive["TCP_KEEPALIVE_COUNT"])):
        return False
    if "TCP_KEEPALIVE_USER_TIMEOUT" in keepalive:
        wanted = int(keepalive["TCP_KEEPALIVE_USER_TIMEOUT"]) * 1000
        return m.group(4) is not None and int(m.group(4)) <= wanted
    return True


# --------------------------------------------------------------------------------------------
# The server and its events


class Server:
    """e2e/server.py in the server namespace (or a server row's command); its event lines, timed
    on arrival. By default the plain server, run by the lab's own python, on PORT."""

    def __init__(self, net: Network, on_request, port: int = PORT, argv: Optional[List[str]] = None,
                 env: Optional[Dict[str, str]] = None, cgroup: Optional[str] = None):
        self.net = net
        self.cgroup = cgroup  # a cgroup row's server runs in it
        self.on_request = on_request
        self.port = port
        self.argv = (argv or [sys.executable, os.path.join(HERE, "server.py")]) + ["--port", str(port)]
        self.env = env or {}
        self.events: Dict[str, Dict[str, object]] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.proc: Optional[subprocess.Popen] = None
        self.keepalive = "?"  # the listening socket's keep-alive, from its READY line
        self.said: List[str] = []  # its last lines that are not events (a traceback)

    def start(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = self.net.spawn(self.net.server, self.argv, env, cgroup=self.cgroup)
        threading.Thread(target=self._read, daemon=True).start()
        until = time.monotonic() + 15
        while not self.ready.wait(0.1):
            exited = self.proc.poll() is not None
            if exited or time.monotonic() > until:
                time.sleep(0.2)  # its last lines
                said = " | ".join(self.said[-2:]) or "nothing"
                how = f"exited ({self.proc.returncode})" if exited else "did not start within 15 s"
                raise RuntimeError(f"the server {how}; it said: {said}")

    def _read(self):
        # The lab's reactions race the middlebox's 2 s (a cut, a rescue): this thread, and the
        # threads and hooks it starts, must not wait behind two dozen starting JVMs.
        urgent()
        for line in self.proc.stdout:
            now = time.monotonic()
            words = line.split()
            if not words:
                continue
            if words[0] == "READY":
                self.keepalive = words[2] if len(words) > 2 else "?"
                self.ready.set()
                continue
            if words[0] not in ("REQUEST", "BODY", "ANSWERED", "FAILED") or len(words) < 2:
                self.said = (self.said + [line.strip()[:160]])[-5:]
                continue
            kind, tag = words[0], words[1]
            with self.lock:
                ev = self.events.setdefault(tag, {})
                if kind == "REQUEST":
                    ev["requests"] = ev.get("requests", 0) + 1
                    if "request" in ev:
                        first = False
                    else:
                        ev["request"] = now
                        ev["port"] = int(words[4])
                        if len(words) > 5:
                            ev["keepalive"] = words[5]  # the accepted socket's, from the kernel
                        first = True
                else:
                    ev.setdefault(kind.lower(), now)
                    if kind == "FAILED":
                        ev["failure"] = " ".join(words[2:])
                    first = False
            if kind == "REQUEST":
                threading.Thread(target=self.on_request, args=(tag, int(words[4]), first, self.port), daemon=True).start()
            elif kind == "ANSWERED":
                threading.Thread(target=self._note_flow, args=(tag,), daemon=True).start()

    def _note_flow(self, tag):
        # Right after the answer left: did the middlebox still know the flow?
        with self.lock:
            ev = self.events.get(tag, {})
            port, family = ev.get("port"), ev.get("family")
        if port is None or family is None:
            return
        try:
            tracked = self.net.flow_tracked(family, port)
        except Exception:
            tracked = None
        with self.lock:
            ev["tracked_at_answer"] = tracked

    def event(self, tag):
        with self.lock:
            return dict(self.events.get(tag, {}))

    def set_family(self, tag, family):
        with self.lock:
            self.events.setdefault(tag, {})["family"] = family


# --------------------------------------------------------------------------------------------
# One client run


@dataclass
class Run:
    client: object
    scenario: Scenario
    mode: str  # "with" / "without"
    tag: str = ""
    started: float = 0.0
    ended: Optional[float] = None
    rc: Optional[int] = None
    output: str = ""
    killed: bool = False
    error: Optional[str] = None  # the lab could not run it (build failed, ...)
    control: bool = False  # a "with" run whose keep-alive is withheld: it must fail
    no_enforce: bool = False  # a control of a cgroup row: attached, but with --no-enforce
    ev: Dict[str, object] = field(default_factory=dict)
    verdict: bool = False
    outcome: str = ""
    took: Optional[float] = None
    why: str = ""
    middlebox: str = "-"  # what the middlebox did with the flow
    retransmitting: Optional[str] = None  # black hole: ss just before the deadline
    pid: Optional[int] = None
    hook: Optional[str] = None  # what the row's after_request command did
    port: int = PORT  # the port of the server this run talks to
    server_keepalive: str = "?"  # its listening socket's keep-alive (READY)
    server_waiting: Optional[bool] = None  # server scenario: ss at the deadline showed the flow
    observed: Optional[float] = None  # when the lab looked (request + deadline)
    cgroup: Optional[str] = None  # a cgroup row's run: its cgroup
    pod: Optional[str] = None  # a kubernetes row's run: its pod's cgroup
    attached: Optional[str] = None  # what `tcp-keepalive cgroup attach` said ("with" runs)
    client_keepalive: Optional[str] = None  # a cgroup row's client socket at the request (kernel)

    @property
    def kill_after(self) -> float:
        return START_ALLOWANCE + self.scenario.deadline + (self.scenario.write_after or 0)


def client_env(run_: Run) -> Dict[str, str]:
    sc, client = run_.scenario, run_.client
    env = {
        k: v for k, v in os.environ.items()
        if not (k.startswith("TCP_KEEPALIVE") or k.startswith("LAB_") or k in SCRUBBED)
    }
    host = V6["server"] if sc.family == 6 else V4["server"]
    url_host = f"[{host}]" if sc.family == 6 else host
    path = f"/slow?seconds={sc.seconds:g}&client={run_.tag}"
    # A server row's keep-alive belongs to its server: its client runs plain in both modes.
    on = run_.mode == "with" and not client.server
    env.update(
        LAB_URL=f"http://{url_host}:{run_.port}{path}",
        LAB_HOST=host,
        LAB_PORT=str(run_.port),
        LAB_PATH=path,
        LAB_DEADLINE=f"{sc.deadline:g}",
        LAB_KEEPALIVE="on" if on else "off",
        TCP_KEEPALIVE="on" if on else "off",
    )
    if run_.control and client.control_env is not None:
        # A preload row's own control: the preload and the settings, plus what must defeat them.
        env.update(sc.keepalive)
        env["LD_PRELOAD"] = os.path.join(ROOT, client_table.PRELOAD_LIB)
        env.update(client.control_env)
    elif run_.control:
        # The negative control: everything as "without", so the "with" expectation must fail.
        env.update(LAB_KEEPALIVE="off", TCP_KEEPALIVE="off")
    elif on:
        env.update(sc.keepalive)
        if client.preload:
            env["LD_PRELOAD"] = os.path.join(ROOT, client_table.PRELOAD_LIB)
    if sc.write_after is not None:
        env["LAB_WRITE_AFTER"] = f"{sc.write_after:g}"
    env.update(client.env)
    return env


def server_env(run_: Run) -> Dict[str, str]:
    """A server row's server: the scenario's keep-alive, or none under --control."""
    if run_.control:
        return {"TCP_KEEPALIVE": "off"}
    return {"TCP_KEEPALIVE": "on", **run_.scenario.keepalive}


def client_argv(client, argv=None) -> List[str]:
    subst = {"python": sys.executable, "root": ROOT, "venv": os.path.join(ROOT, "target", "test-venv")}
    argv = [a.format(**subst) for a in (argv or client.argv)]
    if argv and not os.path.isabs(argv[0]) and os.sep in argv[0]:
        argv[0] = os.path.join(ROOT, argv[0])
    return argv


def judge(r: Run):
    """Holds one run to its scenario's expectation; a control run must miss it."""
    _judge(r)
    if r.verdict and r.client.cgroup and r.mode == "with" and not r.control:
        # The kernel door must be why it passed: the socket had keep-alive on, within the
        # scenario's timings, read from the kernel (the client's socket by `tcp-keepalive
        # inspect`, the server's accepted socket by the server itself).
        seen = str(r.ev.get("keepalive", "?")) if r.client.server else (r.client_keepalive or "?")
        if not within_ceiling(seen, r.scenario.keepalive):
            r.verdict = False
            r.why = (f"the socket's keep-alive in the kernel was {seen}, not on within "
                     f"{r.scenario.keepalive_text}")
    if r.control and not r.error and not r.killed:
        r.verdict = not r.verdict
        r.why = "" if r.verdict else "met the expectation with keep-alive withheld: the check cannot fail"


def _judge(r: Run):
    """Holds one run to its scenario's expectation; fills outcome, took, verdict, why."""
    sc, ev = r.scenario, r.ev
    first_line = r.output.strip().splitlines()[-1] if r.output.strip() else ""
    start = ev.get("request", r.started)
    if r.ended is not None:
        r.took = r.ended - start
    if r.error:
        r.outcome, r.why = "not run", r.error
        return
    if r.killed:
        r.outcome = f"no exit within {r.kill_after:g} s: killed"
        r.why = "the client ignored its own deadline"
        return
    if sc.judges == "server":
        _judge_server(r)
        return
    if r.rc == 0:
        r.outcome = "full answer (exit 0)"
    elif r.rc == 10:
        r.outcome = "hung until its deadline (exit 10)"
    elif r.rc == 11:
        name = first_line.split(":")[0].strip() if ":" in first_line else "error"
        r.outcome = f"{name[:24]} (exit 11)"
    else:
        r.outcome = f"exit {r.rc}: a bug"
    tracked = ev.get("tracked_at_answer")
    if sc.cut:
        r.middlebox = "cut the flow" if "request" in ev else "-"
    elif tracked is not None:
        r.middlebox = "kept the flow" if tracked else "forgot the flow"
    if "request" not in ev:
        r.why = "its request never reached the server"
        return
    if ev.get("requests", 0) > 1:
        r.outcome += f", {ev['requests']} requests"
    if sc.write_after is not None and "body" in ev:
        r.why = "the body reached the server: the lab cut the flow too late"
        return
    if r.mode == "without":
        if r.rc != 10:
            r.why = "expected the hang: no answer by the deadline (exit 10)"
            return
        if not sc.cut and "answered" not in ev:
            r.why = "the server never sent its answer, so the hang proves nothing"
            return
        if not sc.cut and tracked is True:
            r.why = "the middlebox still tracked the flow when the answer left"
            return
        if sc.write_after is not None:
            if not r.retransmitting:
                r.why = "its body was not being retransmitted just before the deadline (ss)"
                return
            r.outcome = f"hung, {r.retransmitting} retransmissions (exit 10)"
        r.verdict = True
        return
    if sc.bound is None:
        if r.rc != 0:
            r.why = "expected the full answer (exit 0)"
            return
        r.verdict = True
        return
    # The errno name, or its strerror text (what a JVM's SocketException carries).
    if r.rc != 11 or not ("ETIMEDOUT" in r.output or "connection timed out" in r.output.lower()):
        r.why = "expected the connection to fail with ETIMEDOUT (exit 11)"
        return
    if r.took is None or r.took > sc.bound:
        took = "-" if r.took is None else f"{r.took:.1f}"
        r.why = f"ETIMEDOUT came after {took} s, later than {sc.bound:g} s"
        return
    r.verdict = True


def _judge_server(r: Run):
    """The server-side scenario: the server's read of a vanished client's body."""
    sc, ev = r.scenario, r.ev
    r.middlebox = "cut the flow" if "request" in ev else "-"
    r.took = None
    if "request" not in ev:
        r.outcome, r.why = f"client exit {r.rc}", "its request never reached the server"
        return
    failed, failure = ev.get("failed"), str(ev.get("failure", ""))
    if failed is not None:
        r.took = failed - ev["request"]
        r.outcome = f"read failed: {failure.split(':')[1] if ':' in failure else failure}"
    elif r.server_waiting:
        r.took = r.observed - ev["request"] if r.observed else None
        r.outcome = "still blocked reading (ss: ESTAB)"
    else:
        r.outcome = "no failed read, flow not seen at the deadline"
    if r.rc != 0:
        r.why = f"the vanishing client failed (exit {r.rc}): a bug"
        return
    if "body" in ev:
        r.why = "the body reached the server: the client did not vanish"
        return
    if r.mode == "without":
        if failed is not None and failed - ev["request"] < sc.deadline:
            r.why = f"the server's read ended by itself after {r.took:.1f} s ({failure})"
            return
        if not r.server_waiting:
            r.why = "at the deadline ss did not show the server still holding the flow"
            return
        r.verdict = True
        return
    if failed is None or not failure.startswith("body:ETIMEDOUT:"):
        r.why = "expected the server's read to fail with ETIMEDOUT"
        return
    if r.took > sc.bound:
        r.why = f"ETIMEDOUT came after {r.took:.1f} s, later than {sc.bound:g} s"
        return
    r.verdict = True


# --------------------------------------------------------------------------------------------
# Running


def build_cli(scripts) -> Dict[str, str]:
    """Builds the command and the Rust client for the measure cases; {script: error} for those
    that failed."""
    failed = {}
    for script in scripts:
        print(f"lab: building with {script}", flush=True)
        try:
            done = run(["bash", os.path.join(ROOT, script)], timeout=BUILD_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            failed[script] = f"{script} did not finish within {BUILD_TIMEOUT} s"
            continue
        if done.returncode != 0:
            failed[script] = f"{script} failed: " + " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
    return failed


def build(clients) -> Dict[str, str]:
    """Runs each build script once; returns {script: error} for those that failed."""
    failed = {}
    scripts = {c.build for c in clients if c.build}
    scripts |= {client_table.CLI_BUILD for c in clients if c.cgroup}  # they attach with the CLI
    for script in sorted(scripts):
        path = os.path.join(ROOT, script)
        if not os.path.exists(path):
            failed[script] = f"build script {script} is missing"
            continue
        print(f"lab: building with {script}", flush=True)
        try:
            done = run(["bash", path], timeout=BUILD_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            failed[script] = f"{script} did not finish within {BUILD_TIMEOUT} s"
            continue
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            failed[script] = f"{script} failed: " + " | ".join(tail)
    return failed


def start_node(run_id, phase, plane, cgroups: "Cgroups", runs: List[Run]):
    """The phase's Kubernetes node for its kubernetes rows' runs: the agent, a namespace, a pod
    per run (annotated for a "with" run), each selected pod attached by the agent before its client
    starts, as for a pod the agent saw created. None without such runs; a failure fails them."""
    mine = [r for r in runs if r.client.kubernetes and not r.error]
    if not mine:
        return None
    t0 = time.monotonic()
    node = kube.Node(plane, f"tkl-{run_id}-{phase}-node", os.path.join(cgroups.parent, "k8s"),
                     cgroups.pins, cli_path(), cgroups.make_dir)
    try:
        if plane is None:
            raise RuntimeError("no control plane")
        node.slices()
        CLEANUP.add(node.stop)  # after the cgroups' `down`: cleanup runs newest first
        node.start_agent()
        ns = f"tkl-{run_id}-{phase}"
        node.namespace(ns)
        for r in mine:
            annotated = r.mode == "with" and (not r.control or r.no_enforce)
            asked = kube.annotations(r.scenario.keepalive, enforce=not r.no_enforce) if annotated else {}
            name = re.sub(r"[^a-z0-9-]", "-", r.tag)
            r.pod = node.pod(ns, name, asked)
            if annotated:
                cgroups.will_attach(r.pod)  # the agent detaches it on exit; `down` makes sure
                s = node.wait_attached(r.pod, int(r.scenario.keepalive["TCP_KEEPALIVE_IDLE"]))
                r.attached = (f"the agent attached pod {ns}/{name} (annotated): idle {s.get('idle_s')} s, "
                              f"interval {s.get('interval_s')} s, count {s.get('count')}")
            else:
                r.attached = f"pod {ns}/{name}: no annotation"
        print(f"lab: phase {phase}: the agent and {len(mine)} pods ready in {time.monotonic() - t0:.1f} s",
              flush=True)
    except Exception as e:
        for r in mine:
            r.error = f"kubernetes: {e}"
    return node


def run_phase(run_id, phase, conntrack_timeout, runs: List[Run], plane=None):
    net = Network(run_id, phase, conntrack_timeout)
    cgroups = Cgroups(run_id, phase)
    node = None
    by_tag = {r.tag: r for r in runs}

    def on_request(tag, port, first, server_port=PORT):
        r = by_tag.get(tag)
        if r is None:
            return
        rescue = first and r.mode == "with" and not r.control and r.client.after_request
        evidence = first and r.client.cgroup and not r.client.server
        if evidence and not rescue:
            # The evidence: what the kernel has on the client's socket once it sent its request.
            watcher = threading.Thread(target=look_at_client, args=(r, port), daemon=True)
            watchers.append(watcher)
            watcher.start()
        if rescue:
            # In a thread of its own: the hook races the middlebox's idle timeout, so it must not
            # wait behind another row's hook or this loop's other events.
            def rescue_then_look():
                pid_known(r)
                after_request(r)
                if evidence:  # a cgroup attached while the client waits: look once it is done
                    look_at_client(r, port)
            watcher = threading.Thread(target=rescue_then_look, daemon=True)
            watchers.append(watcher)
            watcher.start()
        if not r.scenario.cut:
            return
        try:
            net.cut(port, server_port)
        except Exception as e:
            print(f"lab: could not cut {tag}: {e}", file=sys.stderr)
            return
        if first and r.scenario.judges == "server":
            # At the deadline: is the server still holding the flow, waiting for the body?
            timer = threading.Timer(r.scenario.deadline, look_at_server, args=(r, port))
            timer.daemon = True
            timer.start()
            timers.append(timer)
        if first and r.scenario.write_after is not None:
            # Shortly before the client's read deadline: is it still retransmitting its body?
            at = r.scenario.write_after + r.scenario.deadline - 1.5
            timer = threading.Timer(at, look_at_retransmissions, args=(r, port))
            timer.daemon = True
            timer.start()
            timers.append(timer)

    def pid_known(r: Run) -> bool:
        # A quick client's request can arrive before the lab has noted its PID: wait, bounded.
        for _ in range(100):
            if r.pid is not None:
                return True
            time.sleep(0.02)
        return r.pid is not None

    def after_request(r: Run):
        # The row's hook, from the root namespace: e.g. the CLI applying keep-alive to the
        # running client. Its output goes with the client's, so the table shows it.
        env = dict(os.environ, LAB_PID=str(r.pid), **r.scenario.keepalive)
        if r.cgroup:
            env["LAB_CGROUP"] = r.cgroup
            env["TCP_KEEPALIVE_PIN_ROOT"] = cgroups.pins
            cgroups.will_attach(r.cgroup)  # the hook attaches it: detached with the phase
        started = time.monotonic()
        try:
            done = subprocess.run(list(r.client.after_request), capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT, cwd=ROOT, env=env)
            said = (done.stdout + done.stderr).strip().splitlines()
            took = time.monotonic() - started
            r.hook = f"exit {done.returncode} after {took:.1f} s" + (f": {said[-1][:120]}" if said else "")
        except Exception as e:
            r.hook = f"failed: {e}"

    def look_at_client(r: Run, port: int):
        if not pid_known(r):
            r.client_keepalive = "? (the client's PID was not known within 2 s)"
            return
        try:
            r.client_keepalive = keepalive_of_client(r.pid, port)
        except Exception as e:
            r.client_keepalive = f"? ({e})"

    def look_at_retransmissions(r: Run, port: int):
        try:
            r.retransmitting = net.unacked(port)
        except Exception as e:
            r.retransmitting = None
            print(f"lab: ss failed for {r.tag}: {e}", file=sys.stderr)

    def look_at_server(r: Run, port: int):
        r.observed = time.monotonic()
        try:
            r.server_waiting = net.server_holds(r.port, port)
        except Exception as e:
            print(f"lab: ss failed for {r.tag}: {e}", file=sys.stderr)

    timers: List[threading.Timer] = []
    watchers: List[threading.Thread] = []  # rescues and evidence: done before the runs are judged

    try:
        net.up()
        server = Server(net, on_request)
        server.start()
        server_of = {r.tag: server for r in runs}
        # A server row's "with" runs talk to its own server, on a port of its own.
        rows = []
        for r in runs:
            if r.client.server and r.mode == "with" and not r.error and r.client not in rows:
                rows.append(r.client)
        for i, row in enumerate(rows):
            mine = [r for r in runs if r.client is row and r.mode == "with" and not r.error]
            try:
                cgroup = cgroups.make(f"{row.name}-server") if row.cgroup else None
                attached = None
                if cgroup and (not mine[0].control or mine[0].no_enforce):
                    attached = cgroups.attach(cgroup, mine[0].scenario.keepalive,
                                              enforce=not mine[0].no_enforce)
                own = Server(net, on_request, port=PORT + 1 + i, argv=client_argv(row, row.server),
                             env=server_env(mine[0]), cgroup=cgroup)
                for r in mine:
                    r.cgroup, r.attached = cgroup, attached
                own.start()
            except Exception as e:
                for r in mine:
                    r.error = f"{row.name}'s server: {e}"
                continue
            for r in mine:
                server_of[r.tag], r.port = own, own.port
        for r in runs:
            server_of[r.tag].set_family(r.tag, r.scenario.family)
            r.server_keepalive = server_of[r.tag].keepalive
        node = start_node(run_id, phase, plane, cgroups, runs)
        procs = []
        for r in runs:
            if r.error:
                continue
            try:
                if r.client.kubernetes:
                    r.cgroup = node.container(r.pod)  # the pod's container, as the kubelet makes it
                elif r.client.cgroup and not r.client.server:
                    r.cgroup = cgroups.make(r.tag)
                    if r.mode == "with" and (not r.control or r.no_enforce) and not r.client.after_request:
                        r.attached = cgroups.attach(r.cgroup, r.scenario.keepalive,
                                                    enforce=not r.no_enforce)
            except Exception as e:
                r.error = f"cgroup: {e}"
                continue
            r.started = time.monotonic()
            try:
                env = client_env(r)
                if r.client.container:
                    env["LAB_NETNS"] = f"/run/netns/{net.client}"
                proc = net.spawn(net.client, client_argv(r.client), env, cgroup=r.cgroup,
                                 enter=not r.client.container)
            except OSError as e:
                r.error = f"could not start: {e}"
                continue
            r.pid = proc.pid  # `ip netns exec` execs the client: the client's own PID
            procs.append((r, proc))

        def wait(r: Run, proc: subprocess.Popen):
            try:
                out, _ = proc.communicate(timeout=r.kill_after)
            except subprocess.TimeoutExpired:
                r.killed = True
                kill_group(proc)
                out, _ = proc.communicate(timeout=10)
            r.ended = time.monotonic()
            r.rc = proc.returncode
            r.output = out or ""

        threads = [threading.Thread(target=wait, args=p, daemon=True) for p in procs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(START_ALLOWANCE + 60 + max(r.kill_after for r in runs))
        for watcher in list(watchers):
            watcher.join(COMMAND_TIMEOUT + 5)
        time.sleep(0.3)  # let a last conntrack lookup land
        for r in runs:
            r.ev = server_of[r.tag].event(r.tag)
    finally:
        for timer in timers:
            timer.cancel()
        CLEANUP.discard(net.down)
        net.down()
        if node is not None:  # before the cgroups: a running agent would attach again
            CLEANUP.discard(node.stop)
            node.stop()
        CLEANUP.discard(cgroups.down)
        cgroups.down()


def preflight() -> Optional[str]:
    """Why the lab cannot run here, or None."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "not root: the lab makes network namespaces (run it with sudo)"
    for tool in ("ip", "nft"):
        if not shutil.which(tool):
            return f"`{tool}` is missing (apt-get install iproute2 nftables)"
    probe = f"tkl-probe-{os.getpid()}-{secrets.token_hex(2)}"
    try:
        done = run(["ip", "netns", "add", probe], check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot make a network namespace: {e}"
    if done.returncode != 0:
        return f"cannot make a network namespace: {done.stderr.strip()}"
    try:
        ok = run(["ip", "netns", "exec", probe, "nft", "list", "ruleset"], check=False)
        if ok.returncode != 0:
            return f"nftables does not work in a namespace: {ok.stderr.strip()}"
    finally:
        run(["ip", "netns", "del", probe], check=False)
    return None


def validate(rows) -> List[str]:
    """What is wrong with the client table, so a bad row fails loudly instead of silently."""
    problems, seen = [], set()
    for c in rows:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", c.name or ""):
            problems.append(f"row name {c.name!r}: use [a-z0-9._-]")
        if c.name in seen:
            problems.append(f"row name {c.name!r} is used twice")
        seen.add(c.name)
        if not c.argv:
            problems.append(f"{c.name}: argv is empty")
        unknown = set(c.scenarios) - set(SCENARIO_BY_KEY)
        if unknown:
            problems.append(f"{c.name}: unknown scenarios {sorted(unknown)}; known: {list(SCENARIO_BY_KEY)}")
        if not c.modes or set(c.modes) - {"with", "without"}:
            problems.append(f"{c.name}: modes {c.modes!r}: use 'with' and/or 'without'")
        if c.after_request is not None and (isinstance(c.after_request, str) or not c.after_request):
            problems.append(f"{c.name}: after_request must be a non-empty argv list")
        server_side = {s for s in c.scenarios if s in SCENARIO_BY_KEY and SCENARIO_BY_KEY[s].judges == "server"}
        if c.server is not None and (isinstance(c.server, str) or not c.server):
            problems.append(f"{c.name}: server must be a non-empty argv list")
        if c.server and set(c.scenarios) - server_side:
            problems.append(f"{c.name}: a server row runs only {list(client_table.SERVER_SCENARIOS)}")
        if not isinstance(c.cgroup, bool):
            problems.append(f"{c.name}: cgroup must be True or False")
        if c.kubernetes and (not c.cgroup or c.server or c.after_request or c.container):
            problems.append(f"{c.name}: a kubernetes row is a cgroup row's client (cgroup=True), "
                            "no server, after_request or container")
        if c.cgroup and c.preload:
            problems.append(f"{c.name}: a cgroup row's keep-alive comes from the kernel door alone: "
                            "no preload")
        if not c.server and server_side:
            problems.append(f"{c.name}: {sorted(server_side)} judge a server: the row needs `server`")
    return problems


def keepalive_column(r: Run) -> str:
    if r.control and r.client.control_env is not None:
        extra = " ".join(f"{k}={v}" for k, v in r.client.control_env.items())
        return f"with LD_PRELOAD, CONTROL: {extra}"
    if r.control and r.no_enforce:
        return "with, CONTROL: attached --no-enforce"
    if r.control:
        return "with, CONTROL: keep-alive withheld"
    if r.client.kubernetes:
        return (f"with pod annotated: {r.scenario.keepalive_text}" if r.mode == "with"
                else "without: pod not annotated")
    if r.mode == "without":
        if r.client.cgroup:
            return "without: the lab's plain server" if r.client.server else "without: own cgroup, not attached"
        return "without"
    how = r.scenario.keepalive_text
    if r.client.cgroup and r.client.after_request:
        return f"cgroup attached while waiting: {how}"
    if r.client.cgroup:
        # The BPF program sets the accepted socket itself; the listener stays as it was.
        return f"with cgroup BPF: {how.removesuffix(' on the listener')}"
    if r.client.server:
        return f"with: {how}"
    if r.client.after_request:
        return f"added while waiting: {how}"
    return f"with LD_PRELOAD: {how}" if r.client.preload else f"with: {how}"


def table(runs: List[Run], details: bool):
    rows = [("client", "keep-alive", "outcome", "time", "held to", "middlebox", "result")]
    width = [0] * 7
    groups = []
    for sc in SCENARIOS:
        mine = [r for r in runs if r.scenario is sc]
        if mine:
            groups.append((sc, mine))
    cells_by_group = []
    for sc, mine in groups:
        cells = []
        for r in mine:
            took = f"{r.took:5.1f} s" if r.took is not None else "-"
            cells.append((r.client.name, keepalive_column(r), r.outcome, took,
                          ("must miss: " if r.control else "") + sc.expectation(r.mode),
                          r.middlebox, "PASS" if r.verdict else "FAIL"))
        cells_by_group.append(cells)
        rows.extend(cells)
    for row in rows:
        for i, c in enumerate(row):
            width[i] = max(width[i], len(c))

    def line(row):
        return "  ".join(c.ljust(width[i]) for i, c in enumerate(row)).rstrip()

    print()
    print("The bug: a middlebox (conntrack, like an AWS NLB or NAT gateway) forgets a silent flow and")
    print("drops its packets without a word, so a client waiting on a slow answer or a vanished peer")
    print("hangs until its own deadline. The fix: keep-alive probes keep the flow fresh and end the")
    print("wait on a dead peer; a user timeout ends writes into the void.")
    print()
    print("time: from the request reaching the server to the client's exit. middlebox: what its")
    print("conntrack table held when the server's answer left (conntrack -L), or that the lab cut it.")
    if any(r.control for r in runs):
        how = ("cgroups attached with --no-enforce, so programs' own keep-alive wins"
               if any(r.no_enforce for r in runs) else "keep-alive withheld from every 'with' run")
        print(f"CONTROL run: {how}; each must miss its expectation")
    for (sc, mine), cells in zip(groups, cells_by_group):
        print()
        print(f"{sc.number}. {sc.title}: {sc.story}.")
        header = rows[0] if sc.judges == "client" else ("server",) + rows[0][1:]
        print("   " + line(header))
        for r, c in zip(mine, cells):
            print("   " + line(c))
            if not r.verdict and r.why:
                print(f"      FAIL because {r.why}")
            if r.hook and (details or not r.verdict):
                print(f"      after the request: {r.hook}")
            if r.cgroup and not r.error and (details or not r.verdict):
                hooked = r.hook is not None  # attached by the row's after_request command
                if r.attached:
                    print(f"      cgroup: {r.attached}")
                else:
                    print(f"      cgroup {r.cgroup}: {'attached after the request' if hooked else 'not attached'}")
                if not r.client.server:
                    print(f"      client socket {'after that' if hooked else 'at the request'} "
                          f"(tcp-keepalive inspect): {r.client_keepalive or 'not seen'}")
            if sc.judges == "server" and not r.error and (details or not r.verdict):
                print(f"      server: listening socket keep-alive {r.server_keepalive}, accepted socket "
                      f"{r.ev.get('keepalive', '?')} (getsockopt); failed read: {r.ev.get('failure', 'none')}")
            if (details or not r.verdict) and r.output.strip():
                said = r.output.strip().splitlines()
                for l in said[-3:]:
                    print(f"      {r.client.name} said: {l[:160]}")


# --------------------------------------------------------------------------------------------
# The measure scenario: `tcp-keepalive measure` names each middlebox's idle timeout


MEASURE_PORT = PORT + 40  # the far end of the two-sided mode (`measure --listen`)


@dataclass(frozen=True)
class MeasureCase:
    """One middlebox and one `tcp-keepalive measure` through it. `expect`:
    path             the bracket contains `timeout` (and the verdict names drop or reset)
    server-close     the server's own idle close (server_idle_s) is named, no path timeout
    hidden           one-sided, loose pickup: no timeout found, and the caveat is printed
    server-to-client two-sided, loose pickup: the server-to-client bracket contains `timeout`"""
    key: str
    title: str
    family: int
    timeout: int  # the middlebox's conntrack established timeout, seconds
    expect: str
    reject: bool = False
    loose: bool = False
    server_idle: Optional[float] = None  # server.py --idle-timeout
    listen: bool = False  # the far end is `tcp-keepalive measure --listen`
    max: int = 12
    lose_one: bool = False  # the middlebox drops one probe (the first flow's first)

    @property
    def middlebox(self) -> str:
        kind = "NAT, loose pickup" if self.loose else ("resets" if self.reject else "drops")
        return f"T={self.timeout} s, {kind}" + (", loses a probe" if self.lose_one else "")


MEASURE_CASES = [
    MeasureCase("measure-drop", "a dropping firewall, IPv4", 4, 3, "path"),
    MeasureCase("measure-drop-v6", "a dropping firewall, IPv6", 6, 5, "path"),
    MeasureCase("measure-reset", "a resetting NAT, IPv4", 4, 4, "path", reject=True),
    MeasureCase("measure-reset-v6", "a resetting NAT, IPv6", 6, 3, "path", reject=True),
    MeasureCase("measure-lossy", "a dropping firewall that also loses the first probe, IPv4", 4, 4,
                "path", lose_one=True),
    MeasureCase("measure-server-close", "the server closes idle connections after 2 s first, IPv4",
                4, 6, "server-close", server_idle=2.0),
    MeasureCase("measure-loose", "a NAT that re-creates a forgotten flow, one-sided, IPv4", 4, 3,
                "hidden", loose=True, max=8),
    MeasureCase("measure-loose-two-sided", "the same NAT, two-sided (`measure --listen`), IPv4", 4, 3,
                "server-to-client", loose=True, listen=True, max=8),
]


@dataclass
class MeasureRun:
    case: MeasureCase
    report: Optional[dict] = None
    rc: Optional[int] = None
    output: str = ""
    took: Optional[float] = None
    error: Optional[str] = None
    verdict: bool = False
    outcome: str = ""
    why: str = ""
    # The proof of the recommendation: the Rust client waiting longer than T for an answer through
    # the same middlebox, with the recommended keep-alive and without: (exit with, exit without).
    proof: Optional[tuple] = None
    proof_said: str = ""


RUST_CLIENT = "target/debug/rust-client"
RUST_CLIENT_BUILD = "scripts/build-rust-client.sh"


def prove_recommendation(net: Network, r: MeasureRun):
    """The Rust client (core's KeepAlive::from_env) asks the server for an answer after T + 2 s
    of silence, once with the keep-alive `measure` recommended and once without, at the same time.
    With it the answer must come (exit 0); without it the middlebox forgets the flow (exit 10)."""
    c, rec = r.case, r.report.get("recommended") or {}
    wait = c.timeout + 2
    procs = {}
    for mode in ("on", "off"):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LAB_HOST": V6["server"] if c.family == 6 else V4["server"],
            "LAB_PORT": str(PORT),
            "LAB_PATH": f"/slow?seconds={wait}&client={c.key}-{mode}",
            "LAB_DEADLINE": str(wait + 1.5),
            "LAB_KEEPALIVE": mode,
            "TCP_KEEPALIVE": mode,
        }
        if mode == "on":
            env["TCP_KEEPALIVE_IDLE"] = str(rec.get("idle_s"))
            env["TCP_KEEPALIVE_INTERVAL"] = str(rec.get("interval_s"))
        procs[mode] = net.spawn(net.client, [os.path.join(ROOT, RUST_CLIENT)], env)
    codes = {}
    for mode, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=wait + 40)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out, _ = proc.communicate(timeout=10)
        codes[mode] = proc.returncode
        r.proof_said += f"{mode}: {(out or '').strip()[:100]} "
    r.proof = (codes["on"], codes["off"])


def spawn_until(net: Network, argv: List[str], word: str, env: Optional[Dict[str, str]] = None,
                timeout: float = 15) -> subprocess.Popen:
    """Starts a server in the server namespace and waits (bounded) for a line starting `word`."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = net.spawn(net.server, argv, env)
    ready = threading.Event()
    said: List[str] = []

    def read():
        for line in proc.stdout:
            said.append(line.strip())
            if line.startswith(word):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout):
        kill_group(proc)
        raise RuntimeError(f"{argv[0]} did not start within {timeout:g} s: {' | '.join(said[-2:]) or 'nothing said'}")
    return proc


def run_measure_case(run_id: str, r: MeasureRun, extra: Optional[List[str]] = None, prove: bool = True):
    """One middlebox of its own (three namespaces), its server, then the command through it."""
    c = r.case
    net = Network(run_id, c.key.replace("measure", "m"), c.timeout, reject=c.reject, loose=c.loose,
                  lose_one=c.lose_one)
    try:
        net.up()
        if c.listen:
            port = MEASURE_PORT
            spawn_until(net, [cli_path(), "measure", "--listen", str(port)], "listening")
        else:
            port = PORT
            argv = [sys.executable, os.path.join(HERE, "server.py"), "--port", str(port)]
            if c.server_idle is not None:
                argv += ["--idle-timeout", f"{c.server_idle:g}"]
            spawn_until(net, argv, "READY")
        host = f"[{V6['server']}]" if c.family == 6 else V4["server"]
        argv = [cli_path(), "measure", f"{host}:{port}", "--max", str(c.max), "--json"] + (extra or [])
        started = time.monotonic()
        proc = net.spawn(net.client, argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        try:
            out, _ = proc.communicate(timeout=c.max + 60)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out, _ = proc.communicate(timeout=10)
            r.error = f"no exit within {c.max + 60} s: killed"
        r.took = time.monotonic() - started
        r.rc, r.output = proc.returncode, out or ""
        start = r.output.find("{")
        if start >= 0:
            try:
                r.report = json.loads(r.output[start:r.output.rfind("}") + 1])
            except ValueError as e:
                r.error = f"its JSON does not parse: {e}"
        if not prove:
            r.proof = "skipped"  # the bench: the measurement alone
        elif c.expect == "path" and r.report and r.report.get("recommended"):
            prove_recommendation(net, r)
    except Exception as e:
        r.error = f"the lab could not run it: {e}"
    finally:
        CLEANUP.discard(net.down)
        net.down()


def judge_measure(r: MeasureRun):
    c, rep = r.case, r.report
    if r.error or rep is None or r.rc != 0:
        r.outcome = f"exit {r.rc}"
        r.why = r.error or "no JSON report"
        return
    T = c.timeout
    path, sc = rep.get("path_idle_timeout_s"), rep.get("server_to_client_idle_timeout_s")
    close = rep.get("server_idle_close_s")
    show = lambda b: f"{b['low']:.2f}-{b['high']:.2f} s" if b else "none"  # noqa: E731
    r.outcome = f"path {show(path)}" + (f", server closes {close:g} s" if close is not None else "") + \
        (f", server-to-client {show(sc)}" if rep.get("two_sided") else "") + f", {rep.get('rounds')} rounds"
    if c.expect == "path":
        if not path or not path["low"] <= T <= path["high"]:
            r.why = f"the bracket {show(path)} does not contain the middlebox's {T} s"
            return
        wanted = "reset" if c.reject else "dropped"
        if rep.get("path_forgets_by") != wanted:
            r.why = f"path_forgets_by is {rep.get('path_forgets_by')!r}, the middlebox {wanted} the probes"
            return
        if close is not None:
            r.why = "it named a server idle close the server does not have"
            return
        if c.lose_one and not any("packet loss" in n for n in rep.get("notes", [])):
            r.why = "the lost probe was not noticed (no packet-loss note)"
            return
        if not rep.get("recommended") or rep["recommended"]["idle_s"] >= T:
            r.why = f"the recommended keep-alive {rep.get('recommended')} does not beat {T} s"
            return
        k = rep["recommended"]
        if r.proof == "skipped":
            r.verdict = True
            return
        r.outcome += f"; idle {k['idle_s']}/{k['interval_s']}: "
        if r.proof is None:
            r.why = "the recommended keep-alive was not tried (the Rust client did not run)"
            return
        r.outcome += {0: "answer", 10: "hung"}.get(r.proof[0], f"exit {r.proof[0]}") + ", without: " + \
            {0: "answer", 10: "hung"}.get(r.proof[1], f"exit {r.proof[1]}")
        if r.proof != (0, 10):
            r.why = (f"the Rust client waiting {T + 2} s through the middlebox should get its answer with "
                     f"the recommended keep-alive (exit 0) and hang without (exit 10); got {r.proof}: "
                     f"{r.proof_said}")
            return
    elif c.expect == "server-close":
        if close is None or not c.server_idle - 0.3 <= close <= c.server_idle + 0.6:
            r.why = f"expected the server's own close at about {c.server_idle:g} s, got {close}"
            return
        if path is not None:
            r.why = "it reported a path timeout, but the server closed first"
            return
    elif c.expect == "hidden":
        if path is not None or rep.get("two_sided"):
            r.why = "one-sided through a loose-pickup NAT it should see no timeout (the probe re-creates the flow)"
            return
        if not any("nf_conntrack_tcp_loose" in n for n in rep.get("notes", [])):
            r.why = "the loose-pickup caveat is missing from its notes"
            return
    elif c.expect == "server-to-client":
        if not rep.get("two_sided"):
            r.why = "it did not recognise the far end `measure --listen`"
            return
        if not sc or not sc["low"] <= T <= sc["high"]:
            r.why = f"the server-to-client bracket {show(sc)} does not contain the middlebox's {T} s"
            return
    r.verdict = True


def measure_table(runs: List[MeasureRun], details: bool):
    print()
    print("5. Measure: `tcp-keepalive measure HOST:PORT --json` through a middlebox of known idle timeout T.")
    rows = [("case", "middlebox", "expected", "measured", "time", "result")]
    expected = {"path": "bracket contains T; its keep-alive works", "server-close": "the server's own close named",
                "hidden": "nothing found + caveat", "server-to-client": "server-to-client contains T"}
    for r in runs:
        rows.append((r.case.key, r.case.middlebox, expected[r.case.expect], r.outcome,
                     f"{r.took:5.1f} s" if r.took is not None else "-", "PASS" if r.verdict else "FAIL"))
    width = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("   " + "  ".join(c.ljust(width[j]) for j, c in enumerate(row)).rstrip())
        r = runs[i - 1] if i else None
        if r and not r.verdict and r.why:
            print(f"      FAIL because {r.why}")
        if r and (details or not r.verdict) and r.output.strip() and not r.report:
            for line in r.output.strip().splitlines()[-3:]:
                print(f"      measure said: {line[:160]}")


def run_measure_cases(run_id: str, cases: List[MeasureCase], extra=None, prove=True) -> List[MeasureRun]:
    """Every case at once: each has its own namespaces."""
    runs = [MeasureRun(case=c) for c in cases]
    threads = [threading.Thread(target=run_measure_case, args=(run_id, r, extra, prove), daemon=True)
               for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(c.max for c in cases) + 120)
    for r in runs:
        judge_measure(r)
    return runs


def bench(run_id: str, reps: int) -> int:
    """How long a measurement takes and how wide its bracket is, against T (not a test: numbers)."""
    cases = []
    for T in (3, 5, 8):
        for family in (4, 6):
            for i in range(reps):
                cases.append(MeasureCase(f"measure-b{T}{family}{i}", f"T={T}", family, T, "path",
                                         max=4 * T))
    print(f"lab: bench: {len(cases)} measurements through a dropping middlebox, T = 3, 5, 8 s, "
          f"IPv4 and IPv6, {reps} each, {min(len(cases), 6)} at a time", flush=True)
    runs: List[MeasureRun] = []
    for i in range(0, len(cases), 6):
        runs += run_measure_cases(run_id, cases[i:i + 6], prove=False)
    print()
    print("  T   family  runs  right  time/T (mean, max)  bracket width (mean, max)  goal: time <= 1.5 T, width <= max(5 % T, 0.5 s)")
    bad = 0
    for T in (3, 5, 8):
        for family in (4, 6):
            mine = [r for r in runs if r.case.timeout == T and r.case.family == family]
            good = [r for r in mine if r.verdict]
            bad += len(mine) - len(good)
            ratios = [r.report["elapsed_s"] / T for r in good]
            widths = [r.report["path_idle_timeout_s"]["high"] - r.report["path_idle_timeout_s"]["low"] for r in good]
            if good:
                print(f"  {T}   IPv{family}    {len(mine):4}  {len(good):5}  {sum(ratios) / len(ratios):5.2f}, {max(ratios):5.2f}"
                      f"        {sum(widths) / len(widths):5.2f} s, {max(widths):5.2f} s")
            else:
                print(f"  {T}   IPv{family}    {len(mine):4}      0")
            for r in mine:
                if not r.verdict:
                    print(f"      wrong: {r.outcome}: {r.why}")
    return 1 if bad else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The middlebox lab (run as root).")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--demo", action="store_true", help="print the table (and what each client said)")
    mode.add_argument("--check", action="store_true", help="the same; exit 1 when an expectation fails")
    mode.add_argument("--list", action="store_true", help="list client rows and scenarios")
    mode.add_argument("--bench", type=int, nargs="?", const=3, metavar="REPS",
                      help="benchmark `tcp-keepalive measure` (time and bracket width against T, "
                      "T = 3, 5, 8 s, IPv4 and IPv6, REPS each, default 3); numbers, not a test")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only client rows whose name contains NAME (repeatable)")
    parser.add_argument("--scenario", action="append", default=[], metavar="KEY",
                        choices=[s.key for s in SCENARIOS] + ["measure"],
                        help="run only this scenario (repeatable; `measure`: the measure cases)")
    parser.add_argument("--control", action="store_true",
                        help="negative control: run only the 'with' runs, keep-alive withheld; "
                        "each must miss its expectation (proves the checks can fail)")
    parser.add_argument("--no-enforce", action="store_true",
                        help="with --control: attach the cgroup rows' cgroups with --no-enforce "
                        "instead of not at all; a program that sets its own keep-alive (Go) must "
                        "then miss (proves enforcement is what helps it)")
    parser.add_argument("--no-build", action="store_true", help="skip the rows' build scripts")
    args = parser.parse_args(argv)

    clients = [c for c in client_table.CLIENTS if not args.only or any(o in c.name for o in args.only)]
    if args.scenario and not set(args.scenario) - {"measure"}:
        clients = []  # only the measure cases
    measure_cases = [] if args.control or (args.scenario and "measure" not in args.scenario) else [
        m for m in MEASURE_CASES if not args.only or any(o in m.key for o in args.only)]
    names = [c.name for c in client_table.CLIENTS]
    problems = validate(client_table.CLIENTS)
    if problems:
        for p in problems:
            print(f"lab: e2e/clients.py: {p}", file=sys.stderr)
        return 2
    if args.list:
        for m in MEASURE_CASES:
            print(f"{m.key:24} measure       {m.middlebox}: {m.title}")
        for c in client_table.CLIENTS:
            print(f"{c.name:24} {'/'.join(c.modes):13} {' '.join(c.scenarios)}"
                  f"{'  (preload)' if c.preload else ''}{'  (cgroup)' if c.cgroup else ''}{'  (kubernetes)' if c.kubernetes else ''}{'  build: ' + c.build if c.build else ''}"
                  f"{'  server: ' + ' '.join(c.server) if c.server else ''}")
        return 0
    if args.no_enforce and not args.control:
        print("lab: --no-enforce is a negative control: use it with --control", file=sys.stderr)
        return 2
    if not clients and not measure_cases and not args.bench:
        print(f"lab: no client row matches {args.only}; rows: {', '.join(names)}, "
              f"{', '.join(m.key for m in MEASURE_CASES)}", file=sys.stderr)
        return 2

    ci = os.environ.get("CI") == "true"
    reason = preflight()
    if reason:
        if ci:
            print(f"lab: FAIL (CI=true, cannot run): {reason}", file=sys.stderr)
            return 1
        print(f"lab: SKIP: {reason}")
        return 0
    urgent_group()
    kernel_rows = [c.name for c in clients if c.cgroup]
    if kernel_rows and cgroup2_mount() is None:
        reason = "no cgroup v2 mount in /proc/mounts: the kernel door needs cgroup v2"
        if ci:
            print(f"lab: FAIL (CI=true, cannot run {', '.join(kernel_rows)}): {reason}", file=sys.stderr)
            return 1
        print(f"lab: SKIP rows {', '.join(kernel_rows)}: {reason}")
        clients = [c for c in clients if not c.cgroup]
        if not clients and not measure_cases:
            return 0

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    wall = time.monotonic()
    run_id = f"{os.getpid()}{secrets.token_hex(2)}"
    wanted = [s for s in SCENARIOS if not args.scenario or s.key in args.scenario]
    if args.bench:
        try:
            if not args.no_build:
                run(["bash", os.path.join(ROOT, client_table.CLI_BUILD)], timeout=BUILD_TIMEOUT)
            return bench(run_id, args.bench)
        except KeyboardInterrupt:
            return 130
        finally:
            CLEANUP.run()
    measure_runs: List[MeasureRun] = []
    try:
        broken = {} if args.no_build else build(clients)
        if measure_cases and not args.no_build:
            built = {c.build for c in clients if c.build} | (
                {client_table.CLI_BUILD} if any(c.cgroup for c in clients) else set())
            broken.update(build_cli([s for s in (client_table.CLI_BUILD, RUST_CLIENT_BUILD) if s not in built]))
        if any(c.cgroup for c in clients) and client_table.CLI_BUILD not in broken:
            reason = kernel_door_missing(run_id)
            if reason:
                names = ", ".join(c.name for c in clients if c.cgroup)
                if ci:
                    print(f"lab: FAIL (CI=true, cannot run {names}): {reason}", file=sys.stderr)
                    return 1
                print(f"lab: SKIP rows {names}: {reason}")
                clients = [c for c in clients if not c.cgroup]
        runs: List[Run] = []
        for sc in wanted:
            for c in clients:
                if sc.key not in c.scenarios:
                    continue
                for m in ("without", "with"):
                    if m not in c.modes or (args.control and m != "with"):
                        continue
                    r = Run(client=c, scenario=sc, mode=m, tag=f"{c.name}.{m}.{sc.key}",
                            control=args.control, no_enforce=args.no_enforce)
                    if c.build in broken:
                        r.error = broken[c.build]
                    elif c.cgroup and client_table.CLI_BUILD in broken:
                        r.error = broken[client_table.CLI_BUILD]
                    elif c.preload and m == "with" and not args.control and not os.path.exists(
                        os.path.join(ROOT, client_table.PRELOAD_LIB)
                    ):
                        r.error = f"{client_table.PRELOAD_LIB} is missing (scripts/build-preload.sh)"
                    runs.append(r)
        plane = None
        k8s_runs = [r for r in runs if r.client.kubernetes and not r.error]
        if k8s_runs:
            names = ", ".join(sorted({r.client.name for r in k8s_runs}))
            reason = kube.not_cached()
            if reason and ci:
                print(f"lab: FAIL (CI=true, cannot run {names}): {reason}", file=sys.stderr)
                return 1
            if reason:
                print(f"lab: SKIP rows {names}: {reason}")
                runs = [r for r in runs if not r.client.kubernetes]
                clients = [c for c in clients if not c.kubernetes]
            else:
                plane = kube.ControlPlane()
                CLEANUP.add(plane.stop)
                t0 = time.monotonic()
                try:
                    plane.start()
                    print(f"lab: control plane for {names} up in {time.monotonic() - t0:.1f} s", flush=True)
                except Exception as e:
                    for r in k8s_runs:
                        r.error = str(e)
        print(
            f"lab: {len(runs)} runs of {len(clients)} client rows; middlebox forgets idle flows "
            f"after {T} s; phases run one after another, the rows of a phase at once",
            flush=True,
        )
        for phase, timeout, keys in PHASES:
            mine = [r for r in runs if r.scenario.key in keys]
            if not mine:
                continue
            t0 = time.monotonic()
            run_phase(run_id, phase, timeout, mine, plane)
            print(f"lab: phase {phase}: {len(mine)} runs in {time.monotonic() - t0:.1f} s", flush=True)
        if measure_cases:
            t0 = time.monotonic()
            if client_table.CLI_BUILD in broken:
                measure_runs = [MeasureRun(case=m, error=broken[client_table.CLI_BUILD]) for m in measure_cases]
                for m in measure_runs:
                    judge_measure(m)
            else:
                measure_runs = run_measure_cases(run_id, measure_cases)
            print(f"lab: phase measure: {len(measure_runs)} measurements at once in "
                  f"{time.monotonic() - t0:.1f} s", flush=True)
        for r in runs:
            judge(r)
    except KeyboardInterrupt:
        print("\nlab: interrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception as e:
        traceback.print_exc()
        print(f"lab: FAIL: the lab itself failed: {e}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        CLEANUP.run()

    if runs:
        table(runs, details=args.demo)
    if measure_runs:
        measure_table(measure_runs, details=args.demo)
    passed = sum(r.verdict for r in runs) + sum(m.verdict for m in measure_runs)
    failed = len(runs) + len(measure_runs) - passed
    print()
    print(f"lab: wall time {time.monotonic() - wall:.1f} s")
    print(f"lab: {passed} passed, {failed} failed")
    if args.check and failed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
