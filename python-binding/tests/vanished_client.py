"""Run inside a fresh network namespace (by test_server_side.py): the example slow server, a
client that starts an upload and then vanishes, and how long the server keeps waiting for it.

The client sends the headers of POST /upload and no body; then an nftables rule drops every
packet addressed to the client, as if its host had gone (no FIN, no RST, nothing answers the
server's probes). Prints one JSON line: what the server logged and when.

Usage: python vanished_client.py SERVER_ARGS...   (e.g. --no-keepalive); env carries TCP_KEEPALIVE_*
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python-server"
WAIT = float(os.environ.get("VANISH_WAIT", "10"))


def main():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    server = subprocess.Popen(
        [sys.executable, "-u", "slow_server.py", "--port", "0", *sys.argv[1:]],
        cwd=EXAMPLES, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        port = None
        deadline = time.monotonic() + 20
        while port is None and time.monotonic() < deadline:
            m = re.search(r"listening on [\d.]+:(\d+)", server.stdout.readline())
            if m:
                port = int(m.group(1))
        if port is None:
            raise SystemExit("server did not start")
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client_port = client.getsockname()[1]
        client.sendall(b"POST /upload HTTP/1.1\r\nHost: lab\r\nContent-Length: 1000\r\n\r\n")
        time.sleep(0.3)  # the server is now blocked reading the body
        rules = (
            "add table inet vanish\n"
            "add chain inet vanish out { type filter hook output priority 0; }\n"
            f"add rule inet vanish out tcp dport {client_port} drop\n"
        )
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
        vanished = time.monotonic()
        os.set_blocking(server.stdout.fileno(), False)
        lines, gone_after = [], None
        while time.monotonic() - vanished < WAIT and gone_after is None:
            line = server.stdout.readline()
            if not line:
                time.sleep(0.1)
                continue
            lines.append(line.strip())
            if "client gone" in line:
                gone_after = time.monotonic() - vanished
        print(json.dumps({"gone_after": gone_after, "server_log": lines, "waited": WAIT}))
        client.close()
    finally:
        server.kill()
        server.wait(10)


if __name__ == "__main__":
    main()
