"""Runs inside the Python under test (the arm64 one under qemu-user): the installed wheel
configures real loopback sockets, the values are read back with getsockopt, inspect() agrees, and
a bad value raises ValueError and changes nothing. Prints one line per check; exit 1 on a failure.
Usage: python wheel_check.py EXPECTED_MACHINE
"""

import platform
import socket
import sys

import tcp_keepalive

OPTIONS = (
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
)
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def raw(sock):
    return tuple(sock.getsockopt(level, name) for level, name in OPTIONS)


check(platform.machine() == sys.argv[1], f"Python runs on {platform.machine()} (want {sys.argv[1]})")
check("site-packages" in tcp_keepalive.__file__ or "/installed/" in tcp_keepalive.__file__,
      f"tcp_keepalive from the installed wheel: {tcp_keepalive.__file__}")
listener = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(listener.getsockname(), timeout=5)
server, _ = listener.accept()
tcp_keepalive.configure(client, idle=33, interval=7, count=4, user_timeout=9.5)
check(raw(client) == (1, 33, 7, 4, 9500), f"configure, read with getsockopt: {raw(client)}")
s = tcp_keepalive.inspect(client)
check((s.enabled, s.idle, s.interval, s.count) == (True, 33, 7, 4), f"inspect: {s}")
before = raw(server)
try:
    tcp_keepalive.configure(server, idle=0)
    check(False, "idle=0 raised nothing")
except ValueError as e:
    check("idle" in str(e), f"idle=0: ValueError {e}")
check(raw(server) == before, "the bad value changed nothing")
for sock in (client, server, listener):
    sock.close()
sys.exit(1 if failures else 0)
