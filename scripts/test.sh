#!/usr/bin/env bash
# Runs every test of the project: Rust checks and tests, then each stage in scripts/test.d/ in
# order (bindings, preload, CLI, the middlebox lab). Installs what it needs. Run as root.
# Usage: scripts/test.sh [STAGE-NAME-SUBSTRING...]   (no argument: everything)
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

passed=0
failed=0
failed_names=()
run_stage() {
    local name=$1
    shift
    log "stage $name"
    local start=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "stage $name: ok ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        echo "stage $name: FAILED ($((SECONDS - start)) s)"
    fi
}
selected() {
    local name=$1
    shift
    [ ${#FILTER[@]} -eq 0 ] && return 0
    for f in "${FILTER[@]}"; do [[ $name == *"$f"* ]] && return 0; done
    return 1
}
FILTER=("$@")

rust_checks() {
    # python3-dev: the Python binding's unit tests link libpython (pyo3 embeds an interpreter).
    # clang, libbpf-dev, linux-libc-dev: the kernel door's build.rs compiles its BPF programs.
    need_packages build-essential pkg-config python3-dev clang libbpf-dev linux-libc-dev &&
        cargo fmt --all --check &&
        python3 scripts/check-rust-version.py &&
        cargo clippy --workspace --all-targets -- -D warnings &&
        # The kernel door's tests are `test = false` (stage 70 runs them as root): --all-targets
        # skips them, so they are linted by name.
        cargo clippy -p tcp-keepalive-cli --test cgroup -- -D warnings &&
        RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps &&
        cargo test --workspace &&
        # Benchmarks compile here; their numbers come from `cargo bench`, never from a test.
        cargo bench --workspace --no-run
}

selected rust && run_stage rust rust_checks
for stage in scripts/test.d/*.sh; do
    [ -e "$stage" ] || continue
    name=$(basename "$stage" .sh)
    selected "$name" && run_stage "$name" bash "$stage"
done

echo
[ $failed -eq 0 ] || echo "failed stages: ${failed_names[*]}"
echo "stages: $passed passed, $failed failed"
[ $failed -eq 0 ]
