"""Real HTTP libraries against a real local server on 127.0.0.1: keep-alive set through each
library's own hook, read back with getsockopt on the very connection that carried the request."""

import asyncio
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import httpx
import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection

import tcp_keepalive
from conftest import raw


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs=dict(poll_interval=0.05))
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_requests_with_socket_options(url):
    class KeepAliveAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            # Keep urllib3's own defaults (TCP_NODELAY) and add keep-alive.
            kwargs["socket_options"] = HTTPConnection.default_socket_options + tcp_keepalive.socket_options(
                idle=61, interval=12, count=4, user_timeout=25
            )
            super().init_poolmanager(*args, **kwargs)

    with requests.Session() as session:
        session.mount("http://", KeepAliveAdapter())
        with session.get(url, stream=True, timeout=10) as r:
            sock = r.raw.connection.sock
            assert raw(sock) == (1, 61, 12, 4, 25000)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert r.content == b"hello\n"
        # Without the adapter, nothing is set: the test would catch a no-op.
        with requests.get(url, stream=True, timeout=10) as r:
            assert raw(r.raw.connection.sock)[0] == 0


def test_httpx_transport_socket_options(url):
    opts = tcp_keepalive.socket_options(idle=62, interval=13, count=5)
    with httpx.Client(transport=httpx.HTTPTransport(socket_options=opts), timeout=10) as client:
        with client.stream("GET", url) as r:
            sock = r.extensions["network_stream"].get_extra_info("socket")
            assert raw(sock) == (1, 62, 13, 5, 0)
            assert tcp_keepalive.inspect(sock).idle == 62
            assert r.read() == b"hello\n"
    with httpx.Client(timeout=10) as client:
        with client.stream("GET", url) as r:
            assert raw(r.extensions["network_stream"].get_extra_info("socket"))[0] == 0


def test_httpx_async_transport_socket_options(url):
    opts = tcp_keepalive.socket_options(idle=66, interval=3, count=2)

    async def main():
        transport = httpx.AsyncHTTPTransport(socket_options=opts)
        async with httpx.AsyncClient(transport=transport, timeout=10) as client:
            async with client.stream("GET", url) as r:
                sock = r.extensions["network_stream"].get_extra_info("socket")
                values = raw(sock)
                assert await r.aread() == b"hello\n"
                return values

    assert asyncio.run(main()) == (1, 66, 3, 2, 0)


def test_aiohttp_socket_factory_calling_configure(url):
    made = []

    def socket_factory(addr_info):
        family, type_, proto, _, _ = addr_info
        sock = socket.socket(family=family, type=type_, proto=proto)
        tcp_keepalive.configure(sock, idle=63, interval=14, count=6, user_timeout=40)
        made.append(sock)
        return sock

    async def main():
        connector = aiohttp.TCPConnector(socket_factory=socket_factory)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async with session.get(url) as r:
                assert await r.read() == b"hello\n"
            # The connection stays pooled (HTTP/1.1): the socket the factory made is the one
            # connected to the server, read while it is still open.
            (sock,) = made
            assert sock.getpeername()[1] == int(url.rsplit(":", 1)[1].strip("/"))
            return raw(sock)

    assert asyncio.run(main()) == (1, 63, 14, 6, 40000)


def test_urllib3_pool_directly(url):
    import urllib3

    opts = HTTPConnection.default_socket_options + tcp_keepalive.KeepAlive(idle=64, interval=2, count=9).socket_options()
    with urllib3.PoolManager(socket_options=opts) as pool:
        r = pool.request("GET", url, preload_content=False, timeout=10)
        try:
            assert raw(r.connection.sock) == (1, 64, 2, 9, 0)
            assert r.read() == b"hello\n"
        finally:
            r.release_conn()
