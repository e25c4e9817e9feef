"""A pod's program for the container tests: a TCP connection over loopback (client and accepted
side), opened at start, and a second one opened when /tmp/next appears; each time it prints the
keep-alive of every socket as the kernel has it (getsockopt), one line:

    CONNECTED 1 <client> <accepted>
    CONNECTED 2 <client> <accepted> | 1 <client> <accepted>

<keep-alive> is `off` or `idle/interval/count`. Knows nothing of keep-alive otherwise (it never
sets an option). Every wait is bounded: it ends by itself after 300 s.
"""

import os
import socket
import time


def keepalive(s):
    if not s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE):
        return "off"
    return "%d/%d/%d" % (s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                         s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                         s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT))


def pair(listener):
    c = socket.create_connection(listener.getsockname())
    a, _ = listener.accept()
    return c, a


def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    first = pair(listener)
    print("CONNECTED 1", *map(keepalive, first), flush=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not os.path.exists("/tmp/next"):
        time.sleep(0.1)
    second = pair(listener)
    print("CONNECTED 2", *map(keepalive, second), "| 1", *map(keepalive, first), flush=True)
    while time.monotonic() < deadline:
        time.sleep(1)


if __name__ == "__main__":
    main()
