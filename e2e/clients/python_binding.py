#!/usr/bin/env python3
"""The seed's Python client (http.client) with keep-alive from the Python door: after connecting
it applies `tcp_keepalive.from_env()` to its socket. Run with the test venv's python, where
scripts/build-python.sh installed the package.

Lab contract: reads LAB_HOST, LAB_PORT, LAB_PATH, LAB_DEADLINE (its read timeout, seconds), the
TCP_KEEPALIVE* variables (the lab sets TCP_KEEPALIVE=off for the "without" run) and, when set,
LAB_WRITE_AFTER (send a POST whose body follows the headers that many seconds later).
Exit 0: the full answer; 10: the deadline passed; 11: the connection failed (errno name printed).
The request and the exit codes are plain_python.py's (beside this file); only the connection
class differs.
"""

import http.client
import sys

import tcp_keepalive

import plain_python


class KeepAliveConnection(http.client.HTTPConnection):
    """http.client with the environment's keep-alive settings on its socket."""

    keepalive = None

    def connect(self):
        super().connect()
        if self.keepalive is not None:
            self.keepalive.apply(self.sock)


def main():
    # None when TCP_KEEPALIVE=off (or nothing is set): then this is the plain client, which hangs.
    ka = KeepAliveConnection.keepalive = tcp_keepalive.from_env()
    return plain_python.main(KeepAliveConnection, note=f", keep-alive {ka or 'off'}")


if __name__ == "__main__":
    sys.exit(main())
