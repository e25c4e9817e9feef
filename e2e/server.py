#!/usr/bin/env python3
"""The seed's slow server: a plain http.server that answers after D seconds.

    GET  /slow?seconds=D[&client=TAG]   sleeps D seconds, then answers 200 with a short body
    POST /slow?seconds=D[&client=TAG]   reads the whole body first (Content-Length), then the same

Nothing here knows about keep-alive: it is the server of the original failure. For the lab it
prints one line per event on stdout, flushed, so the lab can time the client and cut its flow:

    READY <port>
    REQUEST <tag> <method> <peer-ip> <peer-port>    the request line and headers arrived
    BODY <tag> <bytes>                              a POST body was read completely
    ANSWERED <tag>                                  the answer was handed to the kernel
    FAILED <tag> <reason>                           reading the body or writing the answer failed

Every wait is bounded: D is capped at MAX_SECONDS and a connection's reads time out after
READ_TIMEOUT seconds.
"""

import argparse
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_SECONDS = 120.0
READ_TIMEOUT = 60.0
_print_lock = threading.Lock()


def emit(*words):
    with _print_lock:
        print(*words, flush=True)


class SlowHandler(BaseHTTPRequestHandler):
    # http.server applies this to the accepted socket: no read waits forever.
    timeout = READ_TIMEOUT
    server_version = "lab-slow-server/1"

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass  # stdout carries the event lines only

    def _parse(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        tag = query.get("client", ["-"])[0] or "-"
        tag = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in tag)[:80]
        try:
            seconds = float(query.get("seconds", ["0"])[0])
        except ValueError:
            seconds = -1.0
        return url.path, tag, seconds

    def _answer(self, tag, seconds, extra=""):
        time.sleep(seconds)
        body = (f"slept {seconds:g} seconds{extra}\n").encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            emit("ANSWERED", tag)
        except OSError as e:
            emit("FAILED", tag, f"answer:{type(e).__name__}:{e.errno}")

    def _start(self):
        path, tag, seconds = self._parse()
        peer = self.client_address
        emit("REQUEST", tag, self.command, peer[0], peer[1])
        if path != "/slow" or not 0 <= seconds <= MAX_SECONDS:
            self.send_error(404 if path != "/slow" else 400)
            return None
        return tag, seconds

    def do_GET(self):  # noqa: N802 - http.server's naming
        started = self._start()
        if started:
            self._answer(*started)

    def do_POST(self):  # noqa: N802
        started = self._start()
        if not started:
            return
        tag, seconds = started
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self.send_error(400)
            return
        try:
            got = len(self.rfile.read(length)) if length > 0 else 0
        except OSError as e:
            emit("FAILED", tag, f"body:{type(e).__name__}:{e.errno}")
            return
        emit("BODY", tag, got)
        if got != length:
            emit("FAILED", tag, f"body:short:{got}/{length}")
            return
        self._answer(tag, seconds, f", read {got} bytes")


class DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    request_queue_size = 64

    def server_bind(self):
        # One socket for both families: IPv4 clients arrive as ::ffff:a.b.c.d.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    server = DualStackServer(("::", args.port), SlowHandler)
    emit("READY", server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
