"""The slow service as a plain ASGI application (no framework), for uvicorn and other ASGI servers.

    GET /slow?seconds=D   answers after D seconds
    GET /keepalive        this connection's keep-alive settings, read from the kernel
"""

import asyncio
import os
import socket
from urllib.parse import parse_qs

import tcp_keepalive

MAX_SECONDS = 3600


def accepted_socket_settings(client):
    """ASGI hides the connection's socket; find it among this process's descriptors by its peer
    address (a diagnostic for the /keepalive page, Linux only) and read its settings."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            with socket.socket(fileno=os.dup(fd)) as s:
                if s.type == socket.SOCK_STREAM and s.getpeername()[:2] == tuple(client):
                    return tcp_keepalive.inspect(s)
        except OSError:
            continue
    return None


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            pass
        return await send({"type": "lifespan.shutdown.complete"})
    if scope["path"] == "/slow":
        query = parse_qs(scope["query_string"].decode())
        try:
            seconds = min(max(float(query.get("seconds", ["1"])[0]), 0.0), MAX_SECONDS)
        except ValueError:
            return await answer(send, 400, "seconds must be a number\n")
        await asyncio.sleep(seconds)
        return await answer(send, 200, f"done after {seconds:g} s\n")
    if scope["path"] == "/keepalive":
        return await answer(send, 200, f"{accepted_socket_settings(scope['client'])!r}\n")
    return await answer(send, 404, "try /slow?seconds=5 or /keepalive\n")


async def answer(send, status, text):
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
