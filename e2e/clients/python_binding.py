#!/usr/bin/env python3
"""The seed's Python client (http.client) with keep-alive from the Python door: after connecting
it applies `tcp_keepalive.from_env()` to its socket. Run with the test venv's python, where
scripts/build-python.sh installed the package.

Lab contract: reads LAB_HOST, LAB_PORT, LAB_PATH, LAB_DEADLINE (its read timeout, seconds), the
TCP_KEEPALIVE* variables (the lab sets TCP_KEEPALIVE=off for the "without" run) and, when set,
LAB_WRITE_AFTER (send a POST whose body follows the headers that many seconds later).
Exit 0: the full answer; 10: the deadline passed; 11: the connection failed (errno name printed).
"""

import errno
import http.client
import os
import sys
import time

import tcp_keepalive

BODY = b"x" * 4096


class KeepAliveConnection(http.client.HTTPConnection):
    """http.client with the environment's keep-alive settings on its socket."""

    keepalive = None

    def connect(self):
        super().connect()
        if self.keepalive is not None:
            self.keepalive.apply(self.sock)


def main():
    host = os.environ["LAB_HOST"]
    port = int(os.environ["LAB_PORT"])
    path = os.environ["LAB_PATH"]
    deadline = float(os.environ["LAB_DEADLINE"])
    write_after = os.environ.get("LAB_WRITE_AFTER")
    # None when TCP_KEEPALIVE=off (or nothing is set): then this is the plain client, which hangs.
    KeepAliveConnection.keepalive = tcp_keepalive.from_env()
    start = time.monotonic()

    def took():
        return f"after {time.monotonic() - start:.1f} s"

    conn = KeepAliveConnection(host, port, timeout=deadline)
    try:
        if write_after is None:
            conn.request("GET", path)
        else:
            conn.putrequest("POST", path)
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Content-Length", str(len(BODY)))
            conn.endheaders()
            time.sleep(float(write_after))
            conn.send(BODY)
        response = conn.getresponse()
        body = response.read()
    except TimeoutError as e:
        # socket.timeout (errno None) is the read deadline; ETIMEDOUT is the kernel giving up.
        if e.errno is None:
            print(f"deadline: no answer within {deadline:g} s ({took()})")
            return 10
        print(f"{errno.errorcode.get(e.errno, e.errno)}: {e.strerror} ({took()})")
        return 11
    except http.client.HTTPException as e:
        print(f"http error: {type(e).__name__}: {e} ({took()})")
        return 11
    except OSError as e:
        name = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
        print(f"{name}: {e.strerror or e} ({took()})")
        return 11
    finally:
        conn.close()
    if response.status != 200:
        print(f"http status {response.status} ({took()})")
        return 11
    ka = KeepAliveConnection.keepalive
    print(f"answer: {body.decode(errors='replace').strip()} ({took()}, keep-alive {ka or 'off'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
