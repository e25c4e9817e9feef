# Shared helpers for scripts/test.sh, scripts/demo.sh and the stage scripts in scripts/test.d/.
# Sourced, not run. Every helper installs what it needs, so a machine that has never seen the
# project works (as root; CI runs as root).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT
export CARGO_TERM_COLOR=never

log() { printf '\n==> %s\n' "$*"; }

# need_packages PKG...: apt-get installs the Debian packages that are missing.
need_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "need root to install: ${missing[*]}" >&2
        return 1
    fi
    if [ -z "${_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        export _APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# python_venv PKG...: the test venv (target/test-venv), made once, with PKG installed from PyPI.
# Prints nothing on stdout; use "$VENV/bin/python" afterwards.
VENV="$ROOT/target/test-venv"
export VENV
python_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    fi
    [ $# -eq 0 ] || "$VENV/bin/pip" install -q "$@"
}

# is_ci: true when CI=true, where a test that cannot run must fail instead of skipping.
is_ci() { [ "${CI:-}" = "true" ]; }

# skip_or_fail REASON: inside a stage, skip (exit 0) with a reason, or fail under CI=true.
skip_or_fail() {
    if is_ci; then
        echo "FAIL (CI=true, cannot run): $*" >&2
        exit 1
    fi
    echo "SKIP: $*" >&2
    exit 0
}
