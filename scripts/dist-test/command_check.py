#!/usr/bin/env python3
"""The dist command (`tcp-keepalive`, any arch: PREFIX runs it, e.g. qemu-aarch64-static) on this
very process's sockets, against the real kernel: `apply` changes them, the values are read back
with getsockopt, `inspect --json` reports the same values, a UDP socket and a bad value change
nothing.
Usage: command_check.py [PREFIX...] COMMAND
"""

import json
import os
import socket
import subprocess
import sys

OPTIONS = (
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
)


def raw(sock):
    return tuple(sock.getsockopt(level, name) for level, name in OPTIONS)


def run(argv, *args):
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=120)


def main():
    argv = sys.argv[1:]
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    version = run(argv, "--version")
    check(version.returncode == 0 and version.stdout.strip() == "tcp-keepalive 0.1.0",
          f"--version says {version.stdout.strip()!r} {version.stderr.strip()}")

    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname(), timeout=5)
    server, _ = listener.accept()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = {"listener": listener, "client": client, "server": server}
    before = {name: raw(s) for name, s in tcp.items()}
    udp_before = udp.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)

    bad = run(argv, "apply", "--pid", str(os.getpid()), "--idle", "0")
    check(bad.returncode == 2 and "idle" in bad.stderr, f"apply --idle 0: exit {bad.returncode}, {bad.stderr.strip()}")
    check(all(raw(s) == before[n] for n, s in tcp.items()), "a bad value changed nothing")

    applied = run(argv, "apply", "--pid", str(os.getpid()), "--idle", "23", "--interval", "9", "--count", "4",
                  "--user-timeout", "7s", "--json")
    check(applied.returncode == 0, f"apply: exit {applied.returncode} {applied.stderr.strip()}")
    want = (1, 23, 9, 4, 7000)
    for name, s in tcp.items():
        check(raw(s) == want, f"{name} after apply, read with getsockopt: {raw(s)} (want {want})")
    check(udp.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == udp_before, "the UDP socket is untouched")

    inspected = run(argv, "inspect", "--pid", str(os.getpid()), "--json")
    check(inspected.returncode == 0, f"inspect: exit {inspected.returncode} {inspected.stderr.strip()}")
    if inspected.returncode == 0:
        by_fd = {e["fd"]: e["keepalive"] for e in json.loads(inspected.stdout)["sockets"]}
        for name, s in tcp.items():
            k = by_fd.get(s.fileno())
            got = k and (int(k["enabled"]), k["idle_s"], k["interval_s"], k["count"], k["user_timeout_ms"])
            check(got == raw(s), f"inspect reports {name} (fd {s.fileno()}) as {got}, the kernel says {raw(s)}")
        check(udp.fileno() not in by_fd, "inspect lists no UDP socket")
    for s in (client, server, listener, udp):
        s.close()
    if failures:
        print(f"{len(failures)} checks failed for {' '.join(argv)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
