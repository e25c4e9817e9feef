#!/usr/bin/env python3
"""The slow service on uvicorn, with TCP keep-alive on every connection.

uvicorn has no keep-alive option, but it serves sockets it is handed: bind and configure the
listening socket here, and every accepted connection inherits the settings (Linux).

    python uvicorn_server.py --port 8080
    # the same from the command line: a configured socket passed as --fd (see README.md)
"""

import argparse
import socket

import uvicorn

import tcp_keepalive
from asgi_app import app


def configured_listener(host, port, keepalive):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Before listen(): connections take the listener's settings when their handshake ends.
    if keepalive is not None:
        keepalive.apply(sock)
    sock.listen(2048)
    return sock


def main(argv=None):
    parser = argparse.ArgumentParser(description="slow service on uvicorn with TCP keep-alive")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--no-keepalive", action="store_true")
    args = parser.parse_args(argv)

    keepalive = None if args.no_keepalive else tcp_keepalive.from_env(default=tcp_keepalive.KeepAlive())
    sock = configured_listener(args.host, args.port, keepalive)
    host, port = sock.getsockname()[:2]
    print(f"listening on {host}:{port}, keep-alive: {keepalive or 'off'}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
