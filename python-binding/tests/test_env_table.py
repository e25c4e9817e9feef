"""The shared environment vocabulary (contract C3): every row of core/tests/data/env-cases.tsv
through tcp_keepalive.from_env() with the variables really set in this process's environment
(os.environb, so values that are not UTF-8 too). Its header documents the format; core's tests
and the Java fallback's tests read the same file."""

import datetime
import os
import pathlib
import re

import pytest

import tcp_keepalive
from tcp_keepalive import KeepAlive
from conftest import raw
from test_configure import ENV_NAMES

TABLE = pathlib.Path(__file__).resolve().parents[2] / "core" / "tests" / "data" / "env-cases.tsv"

ESCAPE = re.compile(rb"\\(?:([stnr\\])|x([0-9a-fA-F]{2})|u\{([0-9a-fA-F]+)\}|(.))")
SIMPLE = {b"s": b" ", b"t": b"\t", b"n": b"\n", b"r": b"\r", b"\\": b"\\"}


def unescape(text):
    """The table's escapes (\\s \\t \\n \\r \\\\, \\xHH one byte, \\u{HEX}) undone, as bytes."""

    def one(m):
        simple, byte, code, unknown = m.groups()
        if unknown is not None:
            raise ValueError(f"unknown escape \\{unknown!r} in {text!r}")
        if simple is not None:
            return SIMPLE[simple]
        if byte is not None:
            return bytes([int(byte, 16)])
        return chr(int(code, 16)).encode()

    return ESCAPE.sub(one, text.encode())


def cases():
    rows = []
    for number, line in enumerate(TABLE.read_text(encoding="utf-8").splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        variables, expected = line.split("\t")
        pairs = []
        if variables != "-":
            for assignment in variables.split(" "):
                name, _, value = assignment.partition("=")
                pairs.append((name, unescape(value)))
        rows.append(pytest.param(pairs, expected, id=f"line{number}"))
    assert len(rows) >= 150, f"the table lost rows: {len(rows)}"
    return rows


UNSET = KeepAlive(idle=1234)  # a default no row produces, so `unset` is told from `on`


def test_the_table_names_only_variables_the_tests_clear():
    for param in cases():
        for name, _ in param.values[0]:
            assert name in ENV_NAMES, name


@pytest.mark.parametrize("pairs, expected", cases())
def test_env_case(monkeypatch, pair4, pairs, expected):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in pairs:
        monkeypatch.setitem(os.environb, name.encode(), value)
    if expected.startswith("error "):
        with pytest.raises(ValueError) as e:
            tcp_keepalive.from_env(UNSET)
        assert str(e.value) == expected[len("error ") :]
        return
    got = tcp_keepalive.from_env(UNSET)
    if expected == "unset":
        assert got is UNSET
    elif expected == "off":
        assert got is None
    else:
        _, idle, interval, count, ut = expected.split(" ")
        user_timeout = None if ut == "-" else datetime.timedelta(milliseconds=int(ut))
        want = KeepAlive(
            idle=int(idle), interval=int(interval), count=int(count), user_timeout=user_timeout
        )
        assert got == want
        # And the settings really land on a socket.
        got.apply(pair4.client)
        ut_ms = 0 if ut == "-" else int(ut)
        assert raw(pair4.client) == (1, int(idle), int(interval), int(count), ut_ms)
