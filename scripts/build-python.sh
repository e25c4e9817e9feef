#!/usr/bin/env bash
# Builds the Python package (python-binding/, pyo3 + maturin) and installs it into the shared test
# venv $VENV (target/test-venv) with `pip install ./python-binding`, plus what its tests and the
# examples use. Idempotent: quick when the sources have not changed since the last install.
# Prints nothing but errors.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

need_packages python3 python3-venv python3-dev build-essential >/dev/null
python_venv maturin pytest pytest-benchmark requests httpx aiohttp uvicorn gunicorn mypy >/dev/null

stamp="$VENV/.tcp-keepalive-py.stamp"
sources=$(find python-binding/src python-binding/python python-binding/Cargo.toml \
    python-binding/pyproject.toml core/src core/Cargo.toml Cargo.toml Cargo.lock -type f -print0 |
    sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sources" ] &&
    "$VENV/bin/python" -c 'import tcp_keepalive' 2>/dev/null; then
    exit 0
fi

log_file=$(mktemp)
trap 'rm -f "$log_file"' EXIT
if ! "$VENV/bin/pip" install ./python-binding >"$log_file" 2>&1; then
    cat "$log_file" >&2
    echo "build-python: pip install ./python-binding failed" >&2
    exit 1
fi
echo "$sources" >"$stamp"
