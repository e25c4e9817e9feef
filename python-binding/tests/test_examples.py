"""The example servers of examples/python-server, run for real: every accepted connection carries
the settings of the configured listening socket, read back by the server from the kernel."""

import http.client
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python-server"
VENV_BIN = Path(sys.executable).parent


def start(argv, env_extra, pattern):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TCP_KEEPALIVE", "KEEP"))}
    env.update(env_extra)
    proc = subprocess.Popen(
        argv, cwd=EXAMPLES, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    proc.wait(10)
    raise AssertionError("server did not start:\n" + "".join(seen))


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    proc.stdout.close()


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


ENV = {"TCP_KEEPALIVE_IDLE": "37", "TCP_KEEPALIVE_INTERVAL": "11", "TCP_KEEPALIVE_COUNT": "5",
       "TCP_KEEPALIVE_USER_TIMEOUT": "4500ms"}
EXPECTED = "Settings(enabled=True, idle=37, interval=11, count=5, user_timeout=4.5)\n"
LISTENING = r"listening on [\d.]+:(\d+)"

SERVERS = {
    "threading": ([sys.executable, "slow_server.py", "--port", "0"], LISTENING),
    "uvicorn": ([sys.executable, "uvicorn_server.py", "--port", "0"], LISTENING),
    "gunicorn": (
        [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "-b", "127.0.0.1:0", "wsgi_app:app"],
        # The hook's own line: connections made before it ran keep the kernel's defaults.
        r"TCP keep-alive on http://127\.0\.0\.1:(\d+)",
    ),
}


@pytest.mark.parametrize("name", SERVERS)
def test_accepted_connections_inherit_the_listeners_settings(name):
    argv, pattern = SERVERS[name]
    proc, port = start(argv, ENV, pattern)
    try:
        for _ in range(3):  # fresh connections, possibly different gunicorn workers
            assert get(port, "/keepalive") == (200, EXPECTED)
        assert get(port, "/slow?seconds=0.2") == (200, "done after 0.2 s\n")
    finally:
        stop(proc)


@pytest.mark.parametrize("name", ["threading", "uvicorn"])
def test_without_keepalive_connections_have_the_kernel_default(name):
    argv, pattern = SERVERS[name]
    proc, port = start(argv + ["--no-keepalive"], ENV, pattern)
    try:
        status, text = get(port, "/keepalive")
        assert status == 200 and text.startswith("Settings(enabled=False,"), text
    finally:
        stop(proc)


def test_gunicorn_with_keepalive_turned_off_by_the_environment():
    argv, _ = SERVERS["gunicorn"]
    proc, port = start(argv, {"TCP_KEEPALIVE": "off"}, r"Listening at: http://127\.0\.0\.1:(\d+)")
    try:
        status, text = get(port, "/keepalive")
        assert status == 200 and text.startswith("Settings(enabled=False,"), text
    finally:
        stop(proc)
