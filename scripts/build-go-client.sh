#!/usr/bin/env bash
# Builds the lab's unmodified static Go client (e2e/clients/go-client: plain net/http) to
# target/lab/go-client with CGO_ENABLED=0, so it never touches libc and LD_PRELOAD cannot reach it.
# Uses /usr/local/go or `go` on PATH, else installs Debian's golang-go (1.19 is enough).
# Idempotent and quick when built (Go's build cache); prints nothing but errors.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || need_packages golang-go >/dev/null
mkdir -p target/lab
(cd e2e/clients/go-client &&
    CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS= go build -trimpath -o "$ROOT/target/lab/go-client" .)
# Static: no program interpreter, so no dynamic loader and no LD_PRELOAD.
if readelf -lW target/lab/go-client | grep -q 'Requesting program interpreter'; then
    echo "build-go-client: target/lab/go-client is dynamically linked" >&2
    exit 1
fi
