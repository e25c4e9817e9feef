#!/usr/bin/env python3
"""The client of the server-side scenario: it starts an upload and vanishes.

It sends the headers of a POST with a Content-Length body, never sends the body, and holds its
socket for LAB_DEADLINE + 1 seconds. The lab cuts the path the moment the server logs the
request, so for the server this client's host is simply gone: no FIN, no RST, nothing. What the
lab judges is the server (blocked reading the body, or freed by keep-alive), not this client.

Lab contract: reads LAB_HOST, LAB_PORT, LAB_PATH, LAB_DEADLINE. Exit 0: it sent the headers and
held on (its part done); 11: it could not connect or send (errno name printed).
"""

import errno
import os
import socket
import sys
import time

BODY_LENGTH = 4096


def main():
    host = os.environ["LAB_HOST"]
    port = int(os.environ["LAB_PORT"])
    path = os.environ["LAB_PATH"]
    hold = float(os.environ["LAB_DEADLINE"]) + 1
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {BODY_LENGTH}\r\n"
        "\r\n"
    ).encode()
    try:
        sock = socket.create_connection((host, port), timeout=10)
        sock.sendall(head)
    except OSError as e:
        name = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
        print(f"{name}: could not send the headers: {e.strerror or e}")
        return 11
    time.sleep(hold)  # the body never comes; meanwhile the lab cuts the path
    print(f"sent the headers of a {BODY_LENGTH}-byte upload, then vanished (held {hold:g} s)")
    sock.close()  # too late: the path is cut, the server never sees this
    return 0


if __name__ == "__main__":
    sys.exit(main())
