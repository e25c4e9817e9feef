"""The clients of the middlebox lab: one row each. Adding a client is adding a row to CLIENTS.

A row is a command the lab runs inside the client namespace, once "with" keep-alive and once
"without", in every scenario it supports. The command speaks the contract in e2e/README.md:

  in:  LAB_URL, LAB_HOST, LAB_PORT, LAB_PATH, LAB_DEADLINE (seconds, its own read timeout),
       LAB_KEEPALIVE (on/off) with TCP_KEEPALIVE=on|off and, when on, TCP_KEEPALIVE_IDLE,
       TCP_KEEPALIVE_INTERVAL, TCP_KEEPALIVE_COUNT and maybe TCP_KEEPALIVE_USER_TIMEOUT;
       LAB_WRITE_AFTER in the black-hole scenario (send a POST, its body that many seconds
       after the headers).
  out: exit 0 = the full answer, 10 = its read deadline passed (the hang), 11 = the connection
       failed with an error (print the errno name, e.g. ETIMEDOUT); one short line on stdout.

Fields of Client:
  name       short, unique, [a-z0-9._-]; shown in the table and matched by --only
  argv       the command; "{python}" is the python running the lab, "{root}" the repository,
             "{venv}" the test venv (target/test-venv); relative paths are from the repository
  env        extra environment for both runs
  scenarios  the scenario keys it supports (default: all of SCENARIOS)
  modes      ("with", "without") by default; a row of an unmodified program that only shows the
             hang lists ("without",)
  preload    True: "with" means LD_PRELOAD=target/release/libkeepalive.so (the program is
             unmodified and ignores LAB_KEEPALIVE)
  build      a script the lab runs first (scripts/build-<door>.sh: idempotent, quiet)
  after_request  a command the lab runs from the root namespace in a "with" run, right after the
             server logged the client's request (the client is connected and waiting); its
             environment: LAB_PID (the client's PID), LAB_CGROUP (a cgroup row's cgroup) and the
             scenario's TCP_KEEPALIVE_*. A rescue
             row starts an unmodified client without keep-alive and turns it on from outside.
  control_env  for the negative control (--control) of a preload row: instead of withholding
             keep-alive, its "with" run keeps LD_PRELOAD and the scenario's settings and adds this
             environment (e.g. TCP_KEEPALIVE_ENFORCE=off), which must make it miss again
  cgroup     True: the kernel door. Each run is started in a cgroup v2 of its own that the lab
             makes; a "with" run's cgroup is attached first with `tcp-keepalive cgroup attach` and
             the scenario's timings (the program is unmodified and ignores LAB_KEEPALIVE), a
             "without" run's is left unattached. In a server row the cgroup holds the server. With
             after_request too, "with" is not attached beforehand: the hook attaches it while the
             client waits ($LAB_CGROUP), and the sweep must fix the open connection.
  server     a row that judges a server, not its client (the scenarios of SERVER_SCENARIOS only):
             the server command of its "with" run, started in the server namespace with
             "--port N" appended and the scenario's TCP_KEEPALIVE_* in its environment
             (TCP_KEEPALIVE=off under --control). Its "without" run uses the lab's plain server;
             argv is then the client the scenario needs (e.g. one that vanishes).
  kubernetes True (with cgroup=True): the kernel door through the node agent's Kubernetes mode.
             Each run is a pod on the lab's node (a real kube-apiserver, e2e/kube.py), its cgroup
             made as the kubelet makes it; "with" is a pod annotated with the scenario's timings
             (tcp-keepalive.dev/keepalive: on, idle, interval, count), "without" a pod with no
             annotation; `tcp-keepalive cgroup agent --kubernetes` attaches the one it selects, and
             the client runs in the pod's container cgroup
  container  True: the command starts a container itself (podman). It runs in the root network
             and mount namespaces, not under `ip netns exec` (whose own /sys has no cgroups for
             podman), with LAB_NETNS=/run/netns/<client namespace> for `--network ns:$LAB_NETNS`.
"""

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

# Scenario keys, in the order the lab runs them. SCENARIOS judge the client; SERVER_SCENARIOS
# judge the server, for rows with a `server` command.
SCENARIOS = ("idle-drop", "idle-drop-v6", "peer-vanishes", "black-hole")
SERVER_SCENARIOS = ("server-vanished-client",)

PRELOAD_LIB = "target/release/libkeepalive.so"
# The command the cgroup rows attach with, and the script that builds it.
CLI = "target/release/tcp-keepalive"
CLI_BUILD = "scripts/build-cli.sh"


@dataclass(frozen=True)
class Client:
    name: str
    argv: Sequence[str]
    env: Dict[str, str] = field(default_factory=dict)
    scenarios: Tuple[str, ...] = SCENARIOS
    modes: Tuple[str, ...] = ("with", "without")
    preload: bool = False
    build: Optional[str] = None
    after_request: Optional[Sequence[str]] = None
    server: Optional[Sequence[str]] = None
    control_env: Optional[Dict[str, str]] = None
    cgroup: bool = False
    kubernetes: bool = False
    container: bool = False


CLIENTS = [
    # The seed's client, unmodified: Python's http.client. Only the hang here; its "with" run
    # comes from the preload door, as a row of its own with preload=True.
    Client(
        name="python-plain",
        argv=["{python}", "e2e/clients/plain_python.py"],
        modes=("without",),
    ),
    # Rust, using core: KeepAlive::from_env() and apply on a std TcpStream.
    Client(
        name="rust",
        argv=["target/debug/rust-client"],
        build="scripts/build-rust-client.sh",
    ),
    # The seed's Python client, unmodified, run bare ("without") and under
    # LD_PRELOAD=libkeepalive.so ("with"): the fix without a code change.
    Client(
        name="python-preload",
        argv=["{python}", "e2e/clients/plain_python.py"],
        preload=True,
        build="scripts/build-preload.sh",
    ),
    # An unmodified Java client (stdlib HttpURLConnection, `java` on PATH) under LD_PRELOAD.
    # Not peer-vanishes: HttpURLConnection silently retries a GET that failed with an error once,
    # on a new connection, so the dead peer keep-alive finds (ETIMEDOUT after 4 s) costs a second
    # request and a second detection (measured: exit 11 after 8.3 s, 2 requests; bound 6 s).
    Client(
        name="java-preload",
        argv=["java", "e2e/clients/PlainJavaClient.java"],
        scenarios=("idle-drop", "idle-drop-v6", "black-hole"),
        preload=True,
        build="scripts/build-preload-java.sh",
    ),
    # Apache HttpClient 5 async (httpclient5 5.5 + httpcore5 5.3), unmodified, DEFAULT
    # configuration: its I/O reactor calls setKeepAlive(false) on every socket before connecting,
    # undoing a socket() hook. "with" holds only because the preload enforces the operator's
    # settings on the program's own setsockopt: its negative control keeps the preload but sets
    # TCP_KEEPALIVE_ENFORCE=off, and then it hangs again (e2e/clients/httpclient5-async).
    # Not peer-vanishes: like HttpURLConnection it retries a GET that failed with an error once,
    # on a new connection (measured: ETIMEDOUT after 8.2 s, 2 requests; bound 6 s).
    Client(
        name="httpclient5-preload",
        argv=["java", "-jar", "{root}/e2e/clients/httpclient5-async/target/httpclient5-async-client.jar"],
        scenarios=("idle-drop", "idle-drop-v6"),
        preload=True,
        build="scripts/build-httpclient5-client.sh",
        control_env={"TCP_KEEPALIVE_ENFORCE": "off"},
    ),
    # Scala 2.13 + OkHttp 5, the seed's kind of client: OkHttp's socketFactory is a
    # KeepAliveSocketFactory with KeepAlive.fromEnv() when LAB_KEEPALIVE=on (examples/scala-client).
    Client(
        name="scala-okhttp",
        argv=["java", "-jar", "{root}/examples/scala-client/target/scala-client.jar"],
        build="scripts/build-scala-client.sh",
    ),
    # Plain Java + OkHttp 5, the same through KeepAliveSocketFactory (e2e/clients/java-client).
    Client(
        name="java-okhttp",
        argv=["java", "-jar", "{root}/e2e/clients/java-client/target/java-keepalive-client.jar"],
        build="scripts/build-java-client.sh",
    ),
    # Apache Pekko HTTP (Scala 2.13): ClientConnectionSettings.withSocketOptions with a
    # SocketOptionV2 whose afterConnect applies KeepAlive.fromEnv() when LAB_KEEPALIVE=on
    # (examples/jvm-recipes, its pool's retries off so a failure is not hidden by a new try).
    Client(
        name="scala-pekko",
        argv=["java", "-jar", "{root}/examples/jvm-recipes/target/jvm-recipes.jar", "pekko"],
        build="scripts/build-jvm-recipes.sh",
    ),
    # java.net.http.HttpClient, which has no socket hook: no keep-alive code in the program, so
    # bare ("without") and under LD_PRELOAD=libkeepalive.so ("with"). Not peer-vanishes: like
    # HttpURLConnection it retries a GET that failed with an error once, on a new connection
    # (measured: ETIMEDOUT after 8.5 s, 2 requests; bound 6 s).
    Client(
        name="java-httpclient-preload",
        argv=["java", "-jar", "{root}/examples/jvm-recipes/target/jvm-recipes.jar", "java-net-http"],
        scenarios=("idle-drop", "idle-drop-v6", "black-hole"),
        preload=True,
        build="scripts/build-jvm-recipes-preload.sh",
    ),
    # Python door: the seed's http.client with tcp_keepalive.from_env() applied to its socket,
    # run by the test venv's python where scripts/build-python.sh installed the package.
    Client(
        name="python-binding",
        argv=["{venv}/bin/python", "e2e/clients/python_binding.py"],
        build="scripts/build-python.sh",
    ),
    # The rescue: the seed's client, started without keep-alive, connected and waiting; the
    # tcp-keepalive command turns keep-alive on in the running process (pidfd_getfd) before the
    # middlebox forgets the flow.
    Client(
        name="cli-rescue",
        argv=["{python}", "e2e/clients/plain_python.py"],
        after_request=[
            "sh", "-c",
            'exec target/release/tcp-keepalive apply --pid "$LAB_PID" --idle "$TCP_KEEPALIVE_IDLE"'
            ' --interval "$TCP_KEEPALIVE_INTERVAL" --count "$TCP_KEEPALIVE_COUNT"'
            ' ${TCP_KEEPALIVE_USER_TIMEOUT:+--user-timeout "$TCP_KEEPALIVE_USER_TIMEOUT"}',
        ],
        build="scripts/build-cli.sh",
    ),
    # Server side: the seed's server (e2e/server.py, ThreadingHTTPServer) with its listening
    # socket configured through the Python door (--keepalive: tcp_keepalive.from_env() applied
    # before listen(), inherited by every accepted socket), run by the test venv's python. Its
    # client sends an upload's headers and vanishes; "without" is the lab's plain server.
    Client(
        name="python-server",
        argv=["{python}", "e2e/clients/vanishing_client.py"],
        scenarios=SERVER_SCENARIOS,
        server=["{venv}/bin/python", "e2e/server.py", "--keepalive"],
        build="scripts/build-python.sh",
    ),
    # The kernel door: an unmodified static Go client (CGO_ENABLED=0, plain net/http with its
    # default transport), which no preload reaches. Go turns keep-alive on itself after connect
    # (idle 30 s, interval 15 s, count 9 on Go 1.23+), far too late for the middlebox; in the
    # attached cgroup the BPF program sets the scenario's timings and, enforcing, caps Go's own.
    Client(
        name="go-static-cgroup",
        argv=["target/lab/go-client"],
        cgroup=True,
        build="scripts/build-go-client.sh",
    ),
    # The kernel door: an unmodified static C client (gcc -static, socket/connect/send/recv).
    Client(
        name="c-static-cgroup",
        argv=["target/lab/c-static-client"],
        cgroup=True,
        build="scripts/build-c-client.sh",
    ),
    # The node agent in Kubernetes mode: the same static C client in two pods of one node, one
    # annotated (tcp-keepalive.dev/keepalive: on and the scenario's timings) and one not. The
    # agent attaches only the annotated pod's cgroup: it gets its answer, the other hangs.
    Client(
        name="k8s-annotated",
        argv=["target/lab/c-static-client"],
        scenarios=("idle-drop", "idle-drop-v6"),
        modes=("with",),
        cgroup=True,
        kubernetes=True,
        build="scripts/build-c-client.sh",
    ),
    Client(
        name="k8s-plain",
        argv=["target/lab/c-static-client"],
        scenarios=("idle-drop", "idle-drop-v6"),
        modes=("without",),
        cgroup=True,
        kubernetes=True,
        build="scripts/build-c-client.sh",
    ),
    # The kernel door, server side: the seed's plain server (no --keepalive, it never imports the
    # package) started in an attached cgroup; its accepted sockets get keep-alive from the BPF
    # program. "without" is the lab's plain server.
    Client(
        name="server-plain-cgroup",
        argv=["{python}", "e2e/clients/vanishing_client.py"],
        scenarios=SERVER_SCENARIOS,
        server=["{python}", "e2e/server.py"],
        cgroup=True,
        build=CLI_BUILD,
    ),
    # The kernel door's sweep: the static C client starts in an unattached cgroup, connects and
    # waits; then its cgroup is attached, and the attach's sweep must change the open connection
    # in place (pidfd_getfd), as the node agent does for the pods already running when it starts.
    Client(
        name="c-static-cgroup-sweep",
        argv=["target/lab/c-static-client"],
        cgroup=True,
        after_request=[
            "sh", "-c",
            'exec target/release/tcp-keepalive cgroup attach "$LAB_CGROUP" --idle "$TCP_KEEPALIVE_IDLE"'
            ' --interval "$TCP_KEEPALIVE_INTERVAL" --count "$TCP_KEEPALIVE_COUNT"'
            ' ${TCP_KEEPALIVE_USER_TIMEOUT:+--user-timeout "$TCP_KEEPALIVE_USER_TIMEOUT"}',
        ],
        build="scripts/build-c-client.sh",
    ),
    # The seed's client in a real container: the Scala/OkHttp client's image
    # (scripts/build-app-images.sh, Debian's JRE), unchanged and with its own keep-alive code off,
    # run by podman in the client namespace. "with": the init container of
    # examples/kubernetes/deployment.yaml (the release image from dist/) fills a volume with
    # libkeepalive.so and the client runs with it preloaded; "without": the client alone.
    Client(
        name="container-init-preload",
        argv=["e2e/clients/container_client.sh", "init-preload"],
        container=True,
        build="scripts/build-container-lab.sh",
    ),
    # The same client container; "with": the release image, run as the node agent's DaemonSet
    # runs it, attaches at the client container's cgroup before the container starts (a pod
    # created after the agent). Not a lab cgroup row: the container's cgroup is podman's, and the
    # wrapper attaches and detaches it (TCP_KEEPALIVE=on from the lab means "with").
    Client(
        name="container-node-agent",
        argv=["e2e/clients/container_client.sh", "node-agent"],
        container=True,
        build="scripts/build-container-lab.sh",
    ),
]
