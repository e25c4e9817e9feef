"""Keep long-idle TCP connections alive through middleboxes, and stop waiting on dead ones.

An AWS NLB or NAT gateway (350 s), an Azure load balancer (240 s) or a conntrack firewall
forgets a TCP flow that stays silent longer than its idle timeout and then drops its packets
without a word: a client waiting minutes for an answer never gets it. Linux sends its first
keep-alive probe only after 7200 s, and only on sockets that asked for keep-alive.

    import socket, tcp_keepalive
    sock = socket.create_connection(("10.0.0.5", 8080))
    tcp_keepalive.configure(sock)                 # idle 60 s, interval 10 s, 6 probes
    print(tcp_keepalive.inspect(sock))            # read back from the kernel

Servers: configure the listening socket once; on Linux every accepted socket inherits it.
Clients whose library creates the socket: ``socket_options(...)`` for urllib3, requests and
httpx. The settings from the environment: ``from_env()``.

Everything is done by the Rust core of tcp-keepalive (validation, defaults, the system calls,
the messages); this package adapts Python's sockets, numbers and exceptions to it.
"""

from ._native import (
    DEFAULT_COUNT,
    DEFAULT_IDLE,
    DEFAULT_INTERVAL,
    KeepAlive,
    KeepAliveError,
    Settings,
    __version__,
    configure,
    from_env,
    inspect,
    socket_options,
)

__all__ = [
    "__version__",
    "DEFAULT_COUNT",
    "DEFAULT_IDLE",
    "DEFAULT_INTERVAL",
    "KeepAlive",
    "KeepAliveError",
    "Settings",
    "configure",
    "from_env",
    "inspect",
    "socket_options",
]
