"""configure / inspect / KeepAlive / from_env / socket_options on real loopback sockets, every
value read back with the standard library's getsockopt."""

import asyncio
import datetime
import errno
import os
import socket
import sysconfig
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import tcp_keepalive
from tcp_keepalive import KeepAlive, KeepAliveError, Settings, configure, inspect
from conftest import LOOPBACKS, Pair, raw, system_defaults


def test_the_installed_package_is_under_test():
    # Not the source tree: the wheel pip built and installed into the venv.
    assert tcp_keepalive.__file__.startswith(sysconfig.get_paths()["purelib"])
    assert tcp_keepalive._native.__file__.endswith(".abi3.so")


def test_configure_sets_every_option_and_leaves_the_peer_alone(pair):
    assert raw(pair.client)[0] == 0
    configure(pair.client, idle=37, interval=11, count=5, user_timeout=4.321)
    assert raw(pair.client) == (1, 37, 11, 5, 4321)
    assert raw(pair.server)[0] == 0


def test_defaults_are_60_10_6_and_no_user_timeout(pair4):
    configure(pair4.client)
    assert raw(pair4.client) == (1, 60, 10, 6, 0)
    assert (tcp_keepalive.DEFAULT_IDLE, tcp_keepalive.DEFAULT_INTERVAL) == (60, 10)
    assert tcp_keepalive.DEFAULT_COUNT == 6


class HasFileno:
    def __init__(self, sock):
        self.sock = sock

    def fileno(self):
        return self.sock.fileno()


@pytest.mark.parametrize(
    "as_given",
    [lambda s: s, lambda s: s.fileno(), HasFileno],
    ids=["socket", "int-fd", "has-fileno"],
)
def test_every_socket_form(pair4, as_given):
    configure(as_given(pair4.client), idle=41, interval=13, count=7)
    assert raw(pair4.client) == (1, 41, 13, 7, 0)
    assert inspect(as_given(pair4.client)) == inspect(pair4.client)
    KeepAlive(idle=42).apply(as_given(pair4.client))
    assert raw(pair4.client)[1] == 42


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(idle=90, interval=3, count=2), (1, 90, 3, 2, 0)),
        (dict(idle=2.0, interval=1.2, count=1), (1, 2, 2, 1, 0)),  # finer rounds up
        (dict(idle=0.001, interval=32767, count=127), (1, 1, 32767, 127, 0)),
        (
            dict(
                idle=datetime.timedelta(minutes=2),
                interval=datetime.timedelta(milliseconds=1500),
                count=3,
                user_timeout=datetime.timedelta(milliseconds=2500),
            ),
            (1, 120, 2, 3, 2500),
        ),
        (dict(user_timeout=1), (1, 60, 10, 6, 1000)),
        (dict(user_timeout=0.0000001), (1, 60, 10, 6, 1)),  # rounds up to 1 ms, never 0
        (dict(user_timeout=2147483.647), (1, 60, 10, 6, 2147483647)),
    ],
)
def test_every_duration_form(pair4, kwargs, expected):
    configure(pair4.client, **kwargs)
    assert raw(pair4.client) == expected


def test_inspect_reads_the_kernel_not_a_cache(pair):
    fresh = inspect(pair.client)
    assert (fresh.enabled, fresh.idle, fresh.interval, fresh.count) == (False,) + system_defaults()
    assert fresh.user_timeout is None
    # Set behind the package's back with plain setsockopt: inspect sees it.
    pair.client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    pair.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 33)
    pair.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 22)
    pair.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 11)
    pair.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1250)
    s = inspect(pair.client)
    assert (s.enabled, s.idle, s.interval, s.count, s.user_timeout) == (True, 33, 22, 11, 1.25)


def test_settings_is_immutable_readable_and_hashable(pair4):
    configure(pair4.client, idle=44, interval=12, count=3, user_timeout=1.5)
    s = inspect(pair4.client)
    assert repr(s) == "Settings(enabled=True, idle=44, interval=12, count=3, user_timeout=1.5)"
    assert str(s) == "keep-alive on, idle 44s, interval 12s, count 3, user timeout 1500ms"
    with pytest.raises(AttributeError):
        s.idle = 1
    assert s == inspect(pair4.client) and hash(s) == hash(inspect(pair4.client))
    configure(pair4.client, idle=45)
    assert inspect(pair4.client) != s


def test_keepalive_value():
    k = KeepAlive(idle=30, interval=5, count=4, user_timeout=datetime.timedelta(seconds=20))
    assert (k.idle, k.interval, k.count, k.user_timeout) == (30, 5, 4, 20.0)
    assert k.detection_bound == 30 + 5 * 4
    assert repr(k) == "KeepAlive(idle=30, interval=5, count=4, user_timeout=20)"
    assert str(k) == "idle 30s, interval 5s, count 4, user timeout 20000ms (dead peer noticed within 50s)"
    assert repr(KeepAlive()) == "KeepAlive(idle=60, interval=10, count=6, user_timeout=None)"
    assert KeepAlive(0.5) == KeepAlive(1) and hash(KeepAlive(0.5)) == hash(KeepAlive(1))
    assert len({KeepAlive(), KeepAlive(60, 10, 6)}) == 1
    with pytest.raises(AttributeError):
        k.idle = 5


def test_keepalive_apply_and_apply_to_new_socket(pair4):
    KeepAlive(idle=51, interval=6, count=9, user_timeout=3).apply(pair4.client)
    assert raw(pair4.client) == (1, 51, 6, 9, 3000)
    with socket.socket() as fresh:
        KeepAlive(idle=52, interval=7, count=8).apply_to_new_socket(fresh)
        assert raw(fresh) == (1, 52, 7, 8, 0)


@pytest.mark.parametrize("host", LOOPBACKS)
def test_a_configured_listener_passes_its_settings_to_accepted_sockets(host):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, 0), family=family) as listener:
        configure(listener, idle=29, interval=7, count=4, user_timeout=2.5)
        accepted = []
        for _ in range(3):
            with socket.create_connection(listener.getsockname()[:2], timeout=5) as c:
                conn, _ = listener.accept()
                with conn:
                    accepted.append(raw(conn))
                    assert inspect(conn) == inspect(listener)
                assert raw(c)[0] == 0  # the client side is not affected
        assert accepted == [(1, 29, 7, 4, 2500)] * 3


def test_socket_options_are_the_standard_numbers_and_work_by_hand():
    opts = tcp_keepalive.socket_options(idle=33, interval=4, count=5, user_timeout=7)
    # The user timeout first (the option an MPTCP socket lacks), SO_KEEPALIVE last.
    assert opts == [
        (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 7000),
        (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 33),
        (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 4),
        (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 5),
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    ]
    assert tcp_keepalive.socket_options() == KeepAlive().socket_options()
    assert len(tcp_keepalive.socket_options()) == 4  # no user timeout unless asked
    p = Pair("127.0.0.1")
    try:
        for level, name, value in opts:
            p.client.setsockopt(level, name, value)
        assert raw(p.client) == (1, 33, 4, 5, 7000)
    finally:
        p.close()


ENV_NAMES = [
    "TCP_KEEPALIVE",
    "TCP_KEEPALIVE_IDLE",
    "TCP_KEEPALIVE_INTERVAL",
    "TCP_KEEPALIVE_COUNT",
    "TCP_KEEPALIVE_USER_TIMEOUT",
    "KEEPALIVE",
    "KEEPIDLE",
    "KEEPINTVL",
    "KEEPCNT",
    # The other preloads' names, read last.
    "TCP_KEEPIDLE",
    "TCP_KEEPINTVL",
    "TCP_KEEPCNT",
    "TCP_USER_TIMEOUT",
    "DD_USE_KEEPALIVE",
    "DD_TCP_KEEPALIVE_TIME",
    "DD_TCP_KEEPALIVE_INTVL",
    "DD_TCP_KEEPALIVE_PROBES",
]


@pytest.fixture
def env(monkeypatch):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_from_env(env, pair4):
    assert tcp_keepalive.from_env() is None
    default = KeepAlive(idle=99)
    assert tcp_keepalive.from_env(default) is default
    env.setenv("TCP_KEEPALIVE_IDLE", "2m")
    env.setenv("TCP_KEEPALIVE_INTERVAL", "1500ms")
    env.setenv("KEEPCNT", "4")  # the classic name where the prefixed one is unset
    env.setenv("TCP_KEEPALIVE_USER_TIMEOUT", "30s")
    k = tcp_keepalive.from_env(default)
    assert k == KeepAlive(idle=120, interval=2, count=4, user_timeout=30)
    k.apply(pair4.client)
    assert raw(pair4.client) == (1, 120, 2, 4, 30000)
    env.setenv("TCP_KEEPALIVE", "off")
    assert tcp_keepalive.from_env(default) is None


@pytest.mark.parametrize(
    "name, value, allowed",
    [
        ("TCP_KEEPALIVE", "maybe", "on or off"),
        ("TCP_KEEPALIVE_IDLE", "0", "1 to 32767 seconds"),
        ("TCP_KEEPALIVE_IDLE", "soon", "90s, 2m"),
        ("TCP_KEEPALIVE_COUNT", "200", "1 to 127"),
        ("KEEPINTVL", "40000", "1 to 32767 seconds"),
    ],
)
def test_from_env_refuses_invalid_values(env, name, value, allowed):
    env.setenv(name, value)
    with pytest.raises(ValueError) as e:
        tcp_keepalive.from_env(KeepAlive())
    assert name in str(e.value) and repr(value).strip("'") in str(e.value)
    assert allowed in str(e.value)


# --- errors: each documented, naming the value and what is allowed, changing nothing ---

BEFORE = dict(idle=47, interval=17, count=3, user_timeout=1.234)
BEFORE_RAW = (1, 47, 17, 3, 1234)


@pytest.mark.parametrize(
    "kwargs, shown, allowed",
    [
        (dict(idle=0), '"0s"', "1 to 32767 seconds"),
        (dict(idle=-5), '"-5"', "1 to 32767 seconds"),
        (dict(idle=32768), '"32768s"', "1 to 32767 seconds"),
        (dict(idle=float("nan")), '"nan"', "1 to 32767 seconds"),
        (dict(idle=float("inf")), '"inf"', "1 to 32767 seconds"),
        (dict(idle=10**30), '"1000000000000000000000000000000"', "1 to 32767 seconds"),
        (dict(interval=-0.5), '"-0.5"', "1 to 32767 seconds"),
        (dict(interval=datetime.timedelta(days=1)), '"86400s"', "1 to 32767 seconds"),
        (dict(interval=datetime.timedelta(seconds=-1)), "timedelta(days=-1", "1 to 32767"),
        (dict(count=0), '"0"', "1 to 127 probes"),
        (dict(count=128), '"128"', "1 to 127 probes"),
        (dict(count=-1), '"-1"', "1 to 127 probes"),
        (dict(count=2**70), str(2**70), "1 to 127 probes"),
        (dict(user_timeout=0), '"0ms"', "1 to 2147483647 milliseconds"),
        (dict(user_timeout=-1), '"-1"', "1 to 2147483647 milliseconds"),
        (dict(user_timeout=2147483.648), '"2147483648ms"', "1 to 2147483647 milliseconds"),
    ],
)
def test_out_of_range_values_raise_valueerror_and_change_nothing(pair4, kwargs, shown, allowed):
    configure(pair4.client, **BEFORE)
    name = next(iter(kwargs))
    for call in (
        lambda: configure(pair4.client, **kwargs),
        lambda: KeepAlive(**kwargs),
        lambda: tcp_keepalive.socket_options(**kwargs),
    ):
        with pytest.raises(ValueError) as e:
            call()
        message = str(e.value)
        assert message.startswith(f"invalid {name}: "), message
        assert shown in message and allowed in message, message
    assert raw(pair4.client) == BEFORE_RAW


@pytest.mark.parametrize(
    "kwargs, got",
    [
        (dict(idle=True), "bool True"),
        (dict(interval=False), "bool False"),
        (dict(idle="60"), "str '60'"),
        (dict(idle=None), "NoneType None"),
        (dict(interval=[1]), "list [1]"),
        (dict(count=6.0), "float 6.0"),
        (dict(count=True), "bool True"),
        (dict(count="6"), "str '6'"),
        (dict(user_timeout=True), "bool True"),
        (dict(user_timeout="5s"), "str '5s'"),
    ],
)
def test_wrong_types_raise_typeerror_and_change_nothing(pair4, kwargs, got):
    configure(pair4.client, **BEFORE)
    name = next(iter(kwargs))
    for call in (
        lambda: configure(pair4.client, **kwargs),
        lambda: KeepAlive(**kwargs),
        lambda: tcp_keepalive.socket_options(**kwargs),
    ):
        with pytest.raises(TypeError) as e:
            call()
        assert str(e.value).startswith(f"{name} must be "), str(e.value)
        assert got in str(e.value)
    assert raw(pair4.client) == BEFORE_RAW


class FilenoReturns:
    def __init__(self, value):
        self.value = value

    def fileno(self):
        return self.value


class FilenoRaises:
    def fileno(self):
        raise OSError(errno.EBADF, "closed on purpose")


@pytest.mark.parametrize(
    "sock, error, text",
    [
        (True, TypeError, "sock must be a socket, an object with fileno() or an int file descriptor, not bool True"),
        ("3", TypeError, "not str '3'"),
        (3.0, TypeError, "not float 3.0"),
        (None, TypeError, "not NoneType None"),
        (object(), TypeError, "not object <object"),
        (FilenoReturns("4"), TypeError, "FilenoReturns.fileno() returned str '4', not an int"),
        (FilenoReturns(False), TypeError, "returned bool False"),
        (2**40, ValueError, "invalid file descriptor: 1099511627776 (allowed: 0 to 2147483647)"),
        (FilenoReturns(2**31), ValueError, "invalid file descriptor: 2147483648"),
    ],
)
def test_bad_socket_arguments(sock, error, text):
    for call in (lambda: configure(sock), lambda: inspect(sock), lambda: KeepAlive().apply(sock)):
        with pytest.raises(error) as e:
            call()
        assert text in str(e.value)


def test_fileno_errors_propagate():
    with pytest.raises(OSError, match="closed on purpose"):
        configure(FilenoRaises())


def check_keepalive_error(call, code, text):
    with pytest.raises(KeepAliveError) as e:
        call()
    assert isinstance(e.value, OSError)
    assert e.value.errno in code, e.value
    assert os.strerror(e.value.errno) in e.value.strerror or text in e.value.strerror
    assert text in e.value.strerror, e.value.strerror
    assert str(e.value).startswith(f"[Errno {e.value.errno}] ")


def all_calls(sock):
    return (
        lambda: configure(sock),
        lambda: inspect(sock),
        lambda: KeepAlive().apply(sock),
        lambda: KeepAlive().apply_to_new_socket(sock),
    )


def test_closed_and_negative_descriptors_are_ebadf():
    closed = socket.socket()
    closed.close()
    for sock, fd in ((closed, -1), (-1, -1), (-7, -7), (999_999, 999_999)):
        for call in all_calls(sock):
            check_keepalive_error(call, {errno.EBADF}, f"descriptor {fd} is not open")


@pytest.mark.parametrize(
    "family, kind, what",
    [
        (socket.AF_INET, socket.SOCK_DGRAM, "AF_INET SOCK_DGRAM (UDP) socket, not TCP"),
        (socket.AF_UNIX, socket.SOCK_STREAM, "AF_UNIX SOCK_STREAM socket, not TCP"),
        (socket.AF_UNIX, socket.SOCK_DGRAM, "AF_UNIX SOCK_DGRAM socket, not TCP"),
    ],
)
def test_non_tcp_sockets_are_refused_untouched(family, kind, what):
    with socket.socket(family, kind) as s:
        keepalive_before = s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        for call in all_calls(s):
            check_keepalive_error(call, {errno.ENOPROTOOPT, errno.EOPNOTSUPP}, what)
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == keepalive_before == 0


def test_files_and_pipes_are_not_sockets():
    r, w = os.pipe()
    try:
        with open(__file__) as f:
            for thing in (f, r, w):
                fd = thing if isinstance(thing, int) else thing.fileno()
                for call in all_calls(thing):
                    check_keepalive_error(call, {errno.ENOTSOCK}, f"descriptor {fd} is not a socket")
    finally:
        os.close(r)
        os.close(w)


def test_except_oserror_still_catches_it():
    try:
        configure(-1)
    except OSError as e:
        assert type(e) is KeepAliveError and e.errno == errno.EBADF
    else:
        pytest.fail("no error")


# --- threads and asyncio ---


def test_many_threads_each_with_their_own_values():
    def work(i):
        results = []
        for j in range(25):
            values = dict(idle=1 + (i * 25 + j) % 32767, interval=1 + i, count=1 + j % 127,
                          user_timeout=(i + 1) / 1000)
            p = Pair("127.0.0.1")
            try:
                configure(p.client, **values)
                k = KeepAlive(**values)
                k.apply(p.server)
                results.append((raw(p.client), raw(p.server), inspect(p.client) == inspect(p.server),
                                (1, values["idle"], values["interval"], values["count"], i + 1)))
            finally:
                p.close()
        return results

    with ThreadPoolExecutor(max_workers=16) as pool:
        all_results = [r for rs in pool.map(work, range(16)) for r in rs]
    assert len(all_results) == 16 * 25
    for client, server, same, expected in all_results:
        assert client == server == expected and same


def test_one_listener_shared_by_threads():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        barrier = threading.Barrier(8, timeout=10)

        def work(i):
            barrier.wait()
            for _ in range(50):
                configure(listener, idle=100 + i, interval=10, count=6)
                s = inspect(listener)
                # Another thread may have written in between: still one of the complete settings.
                assert s.enabled and 100 <= s.idle < 108 and (s.interval, s.count) == (10, 6)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(work, range(8)))


def test_asyncio_server_and_client_sockets():
    async def main():
        seen = {}

        async def handle(reader, writer):
            seen["server"] = raw(writer.get_extra_info("socket"))
            seen["server_inspect"] = inspect(writer.get_extra_info("socket"))
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        for s in server.sockets:  # asyncio's TransportSocket: anything with fileno()
            configure(s, idle=31, interval=8, count=3, user_timeout=9)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            transport_sock = writer.get_extra_info("socket")
            configure(transport_sock, idle=32, interval=9, count=4)
            seen["client"] = raw(transport_sock)
            writer.write(b"ping\n")
            await writer.drain()
            assert await asyncio.wait_for(reader.readline(), 5) == b"ping\n"
            writer.close()
            await writer.wait_closed()
        return seen

    seen = asyncio.run(asyncio.wait_for(main(), 20))
    assert seen["server"] == (1, 31, 8, 3, 9000)
    assert seen["server_inspect"].idle == 31
    assert seen["client"] == (1, 32, 9, 4, 0)


def test_random_inputs_raise_only_the_documented_errors(pair4):
    """Thousands of odd values: each call succeeds or raises ValueError, TypeError or
    KeepAliveError, never anything else (a Rust panic would surface as pyo3's PanicException,
    a BaseException that `except Exception` does not catch)."""
    import random

    class BadRepr:
        def __repr__(self):
            raise RuntimeError("no repr")

        def fileno(self):
            return "not an int"

    rng = random.Random(20261124)
    pool = [
        0, 1, -1, 6, 127, 128, 32767, 32768, 2**31 - 1, 2**31, 2**63, -(2**63), 2**64, 10**40,
        0.0, -0.0, 1e-9, 0.5, 1.5, 32767.5, 1e308, float("inf"), float("-inf"), float("nan"),
        True, False, None, "1", b"1", [], {}, object(), BadRepr(),
        datetime.timedelta(0), datetime.timedelta(microseconds=1), datetime.timedelta(days=999999999),
        datetime.timedelta(days=-1), datetime.timedelta(seconds=32767, microseconds=1),
    ]
    socks = [pair4.client, pair4.client.fileno(), -1, 2**40, BadRepr(), None, 1.0, "s"]
    allowed = (ValueError, TypeError, KeepAliveError)
    outcomes = set()
    for _ in range(3000):
        kwargs = {name: rng.choice(pool) for name in ("idle", "interval", "count", "user_timeout")
                  if rng.random() < 0.7}
        sock = rng.choice(socks)
        for call in (lambda: configure(sock, **kwargs), lambda: KeepAlive(**kwargs),
                     lambda: tcp_keepalive.socket_options(**kwargs), lambda: inspect(sock)):
            try:
                call()
                outcomes.add("ok")
            except allowed as e:
                outcomes.add(type(e).__name__)
                assert str(e)
    assert outcomes == {"ok", "ValueError", "TypeError", "KeepAliveError"}
    # The socket still holds values some successful call wrote: all fields in range.
    s = inspect(pair4.client)
    assert 1 <= s.idle <= 32767 and 1 <= s.interval <= 32767 and 1 <= s.count <= 127


def test_version_is_the_distributions():
    import importlib.metadata

    assert tcp_keepalive.__version__ == importlib.metadata.version("tcp-keepalive")
    assert "__version__" in tcp_keepalive.__all__
