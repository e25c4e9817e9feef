#!/usr/bin/env python3
"""A slow HTTP service on the standard library's ThreadingHTTPServer, with TCP keep-alive on
every connection it accepts.

    GET /slow?seconds=D   answers "done after D s" after D seconds (the long request)
    GET /keepalive        this connection's keep-alive settings, read from the kernel
    POST /upload          reads the body (Content-Length) and answers its size

A client that vanishes mid-upload (its host gone, a middlebox dropping the flow) leaves a server
without keep-alive blocked in recv() for hours; with it, recv() fails with ETIMEDOUT after
idle + interval x count seconds and the thread is free again (logged as "client gone").

The listening socket is configured once; on Linux every accepted socket inherits its settings,
so no request handler has to do anything. The settings come from the environment
(TCP_KEEPALIVE_IDLE=..., TCP_KEEPALIVE=off) and default to idle 60 s, interval 10 s, 6 probes.

    python slow_server.py --port 8080
"""

import argparse
import errno
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import tcp_keepalive

MAX_SECONDS = 3600


class SlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/slow":
            try:
                seconds = float(parse_qs(url.query).get("seconds", ["1"])[0])
            except ValueError:
                return self.answer(400, "seconds must be a number\n")
            seconds = min(max(seconds, 0.0), MAX_SECONDS)
            time.sleep(seconds)
            return self.answer(200, f"done after {seconds:g} s\n")
        if url.path == "/keepalive":
            # The accepted socket itself: what it inherited from the listener.
            return self.answer(200, f"{tcp_keepalive.inspect(self.connection)!r}\n")
        return self.answer(404, "try /slow?seconds=5 or /keepalive\n")

    def do_POST(self):
        if urlparse(self.path).path != "/upload":
            return self.answer(404, "POST /upload\n")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return self.answer(400, "bad Content-Length\n")
        start = time.monotonic()
        try:
            body = self.rfile.read(length)
        except OSError as e:
            name = errno.errorcode.get(e.errno, str(e.errno))
            self.log_message("client gone: %s after %.1f s", name, time.monotonic() - start)
            self.close_connection = True
            return
        return self.answer(200, f"received {len(body)} bytes\n")

    def answer(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("slow_server: " + (fmt % args) + "\n")


class KeepAliveHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    keepalive = tcp_keepalive.KeepAlive()

    def server_bind(self):
        super().server_bind()
        # Before listen(): a connection is accepted by the kernel as soon as its handshake ends,
        # and takes the listener's settings of that moment.
        if self.keepalive is not None:
            self.keepalive.apply(self.socket)  # inherited by every accepted connection


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--no-keepalive", action="store_true", help="leave the kernel's defaults (off)")
    args = parser.parse_args(argv)

    keepalive = None if args.no_keepalive else tcp_keepalive.from_env(default=tcp_keepalive.KeepAlive())
    KeepAliveHTTPServer.keepalive = keepalive
    if ":" in args.host:
        import socket

        KeepAliveHTTPServer.address_family = socket.AF_INET6
    with KeepAliveHTTPServer((args.host, args.port), SlowHandler) as server:
        host, port = server.server_address[:2]
        print(f"listening on {host}:{port}, keep-alive: {keepalive or 'off'}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
