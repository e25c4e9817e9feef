"""Helpers for the tests: real loopback connections and an independent reader (plain getsockopt)."""

import socket

import pytest

TCP_OPTIONS = (
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
)


def raw(sock):
    """(SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT) read with the
    standard library, independent of the package under test. Works on anything with getsockopt
    (socket.socket, asyncio's TransportSocket)."""
    return tuple(sock.getsockopt(level, name) for level, name in TCP_OPTIONS)


def has_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


LOOPBACKS = ["127.0.0.1"] + (["::1"] if has_ipv6() else [])


class Pair:
    """A listener, a client connected to it, and the accepted server side."""

    def __init__(self, host):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, 0), family=family)
        self.client = socket.create_connection(self.listener.getsockname()[:2], timeout=5)
        self.server, _ = self.listener.accept()

    def close(self):
        for s in (self.client, self.server, self.listener):
            s.close()


@pytest.fixture(params=LOOPBACKS)
def pair(request):
    p = Pair(request.param)
    yield p
    p.close()


@pytest.fixture
def pair4():
    p = Pair("127.0.0.1")
    yield p
    p.close()


def system_defaults():
    def read(name):
        with open(f"/proc/sys/net/ipv4/{name}") as f:
            return int(f.read())

    return (
        read("tcp_keepalive_time"),
        read("tcp_keepalive_intvl"),
        read("tcp_keepalive_probes"),
    )
