#!/usr/bin/env python3
"""An unmodified HTTP client: Python's http.client, knowing nothing of keep-alive.

It is the seed's client. Without help it hangs on a flow the middlebox forgot; the preload rows
run this same file under LD_PRELOAD=libkeepalive.so to show the fix needs no code change.

Lab contract: reads LAB_HOST, LAB_PORT, LAB_PATH, LAB_DEADLINE (its read timeout, seconds) and,
when set, LAB_WRITE_AFTER (send a POST whose body follows the headers that many seconds later).
Exit 0: the full answer; 10: the deadline passed; 11: the connection failed (errno name printed).

A client built on this one (python_binding.py) calls main() with its own HTTPConnection subclass
and a note for the answer line; run as a program, it is plain http.client.
"""

import errno
import http.client
import os
import sys
import time

BODY = b"x" * 4096


def main(connection_class=http.client.HTTPConnection, note=""):
    host = os.environ["LAB_HOST"]
    port = int(os.environ["LAB_PORT"])
    path = os.environ["LAB_PATH"]
    deadline = float(os.environ["LAB_DEADLINE"])
    write_after = os.environ.get("LAB_WRITE_AFTER")
    start = time.monotonic()

    def took():
        return f"after {time.monotonic() - start:.1f} s"

    # The timeout bounds the connect and every single read: the answer comes in one read after
    # the wait, so it is the deadline for the answer.
    conn = connection_class(host, port, timeout=deadline)
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
        # The same exception class covers socket.timeout (errno None) and the kernel's ETIMEDOUT.
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
    print(f"answer: {body.decode(errors='replace').strip()} ({took()}{note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
