"""Server-side keep-alive ends the server's wait on a client that vanished.

In a network namespace made for the test: the example ThreadingHTTPServer, a client that sends
the headers of an upload and then disappears (nftables drops everything addressed to it, as if
its host were gone). Without keep-alive the server thread waits in recv() (for hours in real
life; here: still waiting when the test stops looking). With the listener configured
(idle 1 s, interval 1 s, 2 probes) the kernel gives up after about 3 s and recv() fails with
ETIMEDOUT, freeing the thread.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

HELPER = Path(__file__).with_name("vanished_client.py")


def cannot_run():
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


@pytest.fixture
def netns():
    reason = cannot_run()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, cannot run: {reason}")
        pytest.skip(reason)
    name = f"tkpy-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def run(netns, server_args, env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TCP_KEEPALIVE", "KEEP"))}
    env.update(env_extra)
    out = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, str(HELPER), *server_args],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_with_keepalive_the_server_stops_waiting(netns):
    result = run(netns, [], {"TCP_KEEPALIVE_IDLE": "1", "TCP_KEEPALIVE_INTERVAL": "1",
                             "TCP_KEEPALIVE_COUNT": "2", "VANISH_WAIT": "15"})
    assert result["gone_after"] is not None, result
    assert any("client gone: ETIMEDOUT" in line for line in result["server_log"]), result
    # idle + interval x count = 3 s; generous bounds, this is no timing test.
    assert 1.5 <= result["gone_after"] <= 15, result


def test_without_keepalive_the_server_keeps_waiting(netns):
    result = run(netns, ["--no-keepalive"], {"VANISH_WAIT": "8"})
    assert result["gone_after"] is None, result
    assert not any("client gone" in line for line in result["server_log"]), result
