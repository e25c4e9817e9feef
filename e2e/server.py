#!/usr/bin/env python3
"""The seed's slow server: a plain http.server that answers after D seconds.

    GET  /slow?seconds=D[&client=TAG]   sleeps D seconds, then answers 200 with a short body
    POST /slow?seconds=D[&client=TAG]   reads the whole body first (Content-Length), then the same

Without --keepalive nothing here knows about keep-alive: it is the server of the original
failure. With --keepalive (the server-side scenario) its listening socket is configured through the
Python door before listen(), `tcp_keepalive.from_env()` applied to it, exactly what a user of the
door does; on Linux every accepted socket inherits the settings. For the lab it prints one line per
event on stdout, flushed, so the lab can time the client (or this server) and cut the flow:

    READY <port> <keep-alive>                       <keep-alive>: the listening socket's settings
    REQUEST <tag> <method> <peer-ip> <peer-port> <keep-alive>   the request line and headers arrived
    BODY <tag> <bytes>                              a POST body was read completely
    ANSWERED <tag>                                  the answer was handed to the kernel
    FAILED <tag> <where>:<errno name>:<exception>   reading the body or writing the answer failed

<keep-alive> is read back from the kernel with getsockopt: `off`, or `idle/interval/count` in
seconds (the accepted socket's: what it inherited from the listener).

Every wait is bounded: D is capped at MAX_SECONDS and a connection's reads time out after
READ_TIMEOUT seconds.
"""

import argparse
import errno
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


def keepalive_of(sock) -> str:
    """The socket's keep-alive as the kernel has it: `off` or `idle/interval/count`."""
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE):
        return "off"
    return "/".join(
        str(sock.getsockopt(socket.IPPROTO_TCP, opt))
        for opt in (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT)
    )


def failure(where, e: OSError) -> str:
    # ETIMEDOUT (errno 110) is the kernel giving up; errno None is this server's own READ_TIMEOUT.
    name = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else "timeout"
    return f"{where}:{name}:{type(e).__name__}"


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
            emit("FAILED", tag, failure("answer", e))

    def _start(self):
        path, tag, seconds = self._parse()
        peer = self.client_address
        emit("REQUEST", tag, self.command, peer[0], peer[1], keepalive_of(self.connection))
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
            emit("FAILED", tag, failure("body", e))
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
    keepalive = None  # a tcp_keepalive.KeepAlive for the listening socket (--keepalive)

    def server_bind(self):
        # One socket for both families: IPv4 clients arrive as ::ffff:a.b.c.d.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
        # Before listen() (server_activate): the kernel accepts a connection as soon as its
        # handshake ends, with the listener's settings of that moment.
        if self.keepalive is not None:
            self.keepalive.apply(self.socket)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--keepalive",
        action="store_true",
        help="configure the listening socket with tcp_keepalive.from_env() (needs the Python "
        "package; with TCP_KEEPALIVE=off or no TCP_KEEPALIVE* set it stays plain); accepted sockets "
        "inherit it",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        metavar="S",
        help="close a connection that sends no request for S seconds, as HTTP servers do with idle "
        "connections (the measure scenario's server that closes first)",
    )
    args = parser.parse_args()
    if args.idle_timeout is not None:
        # http.server applies it to each accepted socket: a request line that does not come within
        # S seconds times out, and the handler closes the connection (a FIN).
        SlowHandler.timeout = args.idle_timeout
    if args.keepalive:
        import tcp_keepalive  # only here: without the flag this is the seed's plain server

        DualStackServer.keepalive = tcp_keepalive.from_env()
    server = DualStackServer(("::", args.port), SlowHandler)
    emit("READY", server.server_address[1], keepalive_of(server.socket))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
