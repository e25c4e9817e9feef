#!/usr/bin/env bash
# Python binding: builds and installs the package into the test venv (scripts/build-python.sh),
# then runs its pytest suite against the installed package: real sockets on loopback, real HTTP
# libraries (requests, httpx, aiohttp, asyncio, uvicorn, gunicorn), values read back with
# getsockopt, and (as root, in a network namespace of its own) a server freed from a vanished client.
# The benchmark (python-binding/benches/) runs once in quick mode: it prints ratios, asserts none.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"

bash scripts/build-python.sh || exit 1
need_packages iproute2 nftables || exit 1
# Run from the tests folder so `import tcp_keepalive` finds the installed package, not the tree.
(cd python-binding/tests && "$VENV/bin/python" -m pytest -q -p no:cacheprovider .) || exit 1
# The .pyi stub against the installed module: every name, signature and class flag must agree.
(cd /tmp && "$VENV/bin/python" -m mypy.stubtest tcp_keepalive) || exit 1
"$VENV/bin/python" python-binding/benches/bench_configure.py --quick || exit 1
