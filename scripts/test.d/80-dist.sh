#!/usr/bin/env bash
# Stage: the release artifacts, taken as a user takes them. Builds dist/ (scripts/dist.sh, as from
# a clean clone), then:
#   - every ELF in dist/ (also inside the wheels and the jar) is of its arch and needs at most
#     GLIBC_2.17, the commands are static, the jar's classes are Java 8 bytecode; SHA256SUMS holds;
#   - the x86_64 wheel in a fresh venv with no Rust toolchain on PATH: the Python tests against it;
#   - the JUnit suite against the dist jar's own bytes (its classes and both native libraries);
#   - the preload's C program tests against dist's libkeepalive.so;
#   - the commands (x86_64 natively, arm64 under qemu-user) apply/inspect this machine's sockets;
#   - arm64 under qemu-user against the real kernel: the preload under an arm64 C program, the wheel
#     in Debian's arm64 Python (apt-get download + dpkg-deb -x), values read back with getsockopt;
#   - the image read back with skopeo, each arch unpacked with umoci, its files and config checked,
#     and its command run from the unpacked root with chroot as user 65534 (arm64 through
#     qemu-aarch64-static copied into the root): --version and install-preload into a directory;
#   - cargo publish --dry-run for the crates that are published.
# The image in real containers (podman with runc: init container, application, node agent, kube
# play) is the next stage, 85-containers, which reuses this dist/.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"

[ "$(id -u)" -eq 0 ] || skip_or_fail "the dist stage needs root (apt, chroot, mount namespaces)"
need_packages binutils binutils-aarch64-linux-gnu gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
    qemu-user-static skopeo umoci python3-venv build-essential iproute2 nftables \
    openjdk-17-jdk-headless maven util-linux || exit 1

DIST=$ROOT/dist
HERE=$ROOT/scripts/dist-test
WORK=$ROOT/target/dist-test/$$
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
QEMU=$(command -v qemu-aarch64-static)
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

passed=0
failed_parts=()
part() {
    local name=$1
    shift
    log "dist: $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed_parts+=("$name")
        echo "FAILED: $name" >&2
    fi
}

build() {
    scripts/dist.sh
}

files() {
    python3 "$HERE/elf_check.py" "$DIST" && (cd "$DIST" && sha256sum --check --quiet SHA256SUMS)
}

# A PATH with every program of this machine except the Rust toolchain (and maturin), so nothing
# can build the wheel from source behind our back.
no_rust_path() {
    local bin=$WORK/no-rust-bin
    mkdir -p "$bin"
    local d f name
    for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
        [ -d "$d" ] || continue
        for f in "$d"/*; do
            name=${f##*/}
            case $name in
            cargo | cargo-* | rustc | rustdoc | rustup | rust-* | rustfmt | clippy-driver | maturin) continue ;;
            esac
            [ -e "$bin/$name" ] || ln -s "$f" "$bin/$name"
        done
    done
    echo "$bin"
}

python_wheel() {
    local wheel=$DIST/tcp_keepalive-$VERSION-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
    local venv=$WORK/venv path
    path="$venv/bin:$(no_rust_path)"
    if PATH=$path command -v cargo rustc >/dev/null; then
        echo "a Rust toolchain is still on PATH" >&2
        return 1
    fi
    PATH=$path python3 -m venv "$venv" || return 1
    PATH=$path "$venv/bin/pip" install -q --upgrade pip >/dev/null || return 1
    # --only-binary: the test libraries come as wheels too; nothing may compile.
    PATH=$path "$venv/bin/pip" install -q --only-binary=:all: "$wheel" \
        pytest requests httpx aiohttp uvicorn gunicorn || return 1
    local where
    where=$(cd / && PATH=$path "$venv/bin/python" -c 'import tcp_keepalive; print(tcp_keepalive.__file__)') || return 1
    echo "tcp_keepalive imported from $where"
    [[ $where == "$venv"/lib/*/site-packages/* ]] || { echo "not the installed wheel: $where" >&2; return 1; }
    (cd python-binding/tests && PATH=$path "$venv/bin/python" -m pytest -q -p no:cacheprovider .)
}

# The JUnit suite, compiled and run against the dist jar: a copy of the Maven project whose
# target/classes is the unpacked jar; Maven compiles only the tests (maven.main.skip) and neither
# cargo nor the native copy runs, so the classes and libraries under test are the jar's bytes.
jvm_jar() {
    local jar=$DIST/tcp-keepalive-$VERSION.jar
    local project=$WORK/jvm
    mkdir -p "$project/src" "$project/target/classes"
    cp jni-binding/pom.xml "$project/"
    cp -r jni-binding/src/test "$project/src/"
    (cd "$project/target/classes" && python3 -m zipfile -e "$jar" .) || return 1
    local logfile=$WORK/jvm.log
    if ! mvn -B -q -f "$project/pom.xml" -Dmaven.main.skip=true -Dmaven.antrun.skip=true \
        -Dcargo.skip=true "-Dtest.jvmArgs=-Xcheck:jni" \
        "-DenvCasesTable=$ROOT/core/tests/data/env-cases.tsv" test >"$logfile" 2>&1; then
        cat "$logfile" >&2
        return 1
    fi
    # Maven must not have replaced a byte of what it tested.
    python3 - "$jar" "$project/target/classes" <<'PY' || return 1
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    changed = [m for m in z.namelist() if not m.endswith("/")
               and open(os.path.join(sys.argv[2], m), "rb").read() != z.read(m)]
print(f"target/classes after the run: {'the jar, byte for byte' if not changed else changed}")
sys.exit(1 if changed else 0)
PY
    python3 - "$project/target/surefire-reports" <<'PY' || return 1
import glob, sys, xml.etree.ElementTree as ET
t = f = s = 0
for path in glob.glob(sys.argv[1] + "/TEST-*.xml"):
    r = ET.parse(path).getroot()
    t += int(r.get("tests", 0)); s += int(r.get("skipped", 0))
    f += int(r.get("failures", 0)) + int(r.get("errors", 0))
print(f"jvm against the dist jar: {t - f - s} passed, {f} failed, {s} skipped")
sys.exit(0 if t > 0 and f == 0 else 1)
PY
    if grep -l -E "WARNING in native method|FATAL ERROR in native method" \
        "$project"/target/surefire-reports/*-output.txt "$project"/target/surefire-reports/*.dumpstream 2>/dev/null; then
        echo "-Xcheck:jni reported problems in the files above" >&2
        return 1
    fi
    local out
    out=$(TCP_KEEPALIVE_IDLE=90 java -jar "$jar" 2>&1)
    echo "$out" | head -n 3
    grep -q "native library: loaded" <<<"$out" && grep -q "environment: idle 90s" <<<"$out"
}

preload_x86_64() {
    PRELOAD_LIBRARY=$DIST/linux-x86_64/lib/libkeepalive.so \
        cargo test -q -p tcp-keepalive-preload --test c_program
}

command_x86_64() {
    python3 "$HERE/command_check.py" "$DIST/linux-x86_64/bin/tcp-keepalive"
}

command_arm64() {
    python3 "$HERE/command_check.py" "$QEMU" "$DIST/linux-aarch64/bin/tcp-keepalive"
}

preload_arm64() {
    local program=$WORK/sockets-aarch64
    aarch64-linux-gnu-gcc -O1 -Wall -Werror -pthread -o "$program" preload/tests/programs/sockets.c || return 1
    python3 "$HERE/preload_check.py" "$DIST/linux-aarch64/lib/libkeepalive.so" -- \
        "$QEMU" -L /usr/aarch64-linux-gnu "$program"
}

# Debian's arm64 Python (what FACTS.md checked): fetched once into target/, never installed.
arm64_python() {
    local cache=$ROOT/target/dist-arm64-python
    if [ ! -x "$cache/root/usr/bin/python3.11" ]; then
        rm -rf "$cache"
        mkdir -p "$cache/debs"
        chmod 777 "$cache/debs" # apt-get download drops to user _apt
        (cd "$cache/debs" && apt-get download -q python3.11-minimal:arm64 libpython3.11-minimal:arm64 \
            libpython3.11-stdlib:arm64 zlib1g:arm64 libexpat1:arm64) >/dev/null || return 1
        for deb in "$cache"/debs/*.deb; do dpkg-deb -x "$deb" "$cache/root" || return 1; done
    fi
    echo "$cache/root"
}

wheel_arm64() {
    local wheel=$DIST/tcp_keepalive-$VERSION-cp39-abi3-manylinux2014_aarch64.manylinux_2_17_aarch64.whl
    local root
    root=$(arm64_python) || return 1
    python3 -m venv "$WORK/pip-venv" && "$WORK/pip-venv/bin/pip" install -q --upgrade pip >/dev/null || return 1
    # pip's own tag check for an arm64 CPython 3.11 (what the wheel's tags promise), no deps.
    "$WORK/pip-venv/bin/pip" install -q --no-deps --target "$WORK/installed" --only-binary=:all: \
        --platform manylinux_2_17_aarch64 --python-version 3.11 --implementation cp --abi abi3 "$wheel" || return 1
    "$QEMU" -L /usr/aarch64-linux-gnu \
        -E "LD_LIBRARY_PATH=$root/lib/aarch64-linux-gnu:$root/usr/lib/aarch64-linux-gnu" \
        -E "PYTHONHOME=$root/usr" -E "PYTHONPATH=$WORK/installed" -E PYTHONDONTWRITEBYTECODE=1 \
        "$root/usr/bin/python3.11" "$HERE/wheel_check.py" aarch64
}

# image_arch OCI-ARCH ARCH: one platform of the index, unpacked and run from its root.
image_arch() {
    local oci_arch=$1 arch=$2 dir=$WORK/image-$1
    mkdir -p "$dir"
    skopeo --override-arch "$oci_arch" --override-os linux copy -q \
        "oci-archive:$DIST/tcp-keepalive-$VERSION.oci.tar:tcp-keepalive:$VERSION" "oci:$dir/oci:img" || return 1
    umoci unpack --image "$dir/oci:img" "$dir/bundle" >/dev/null || return 1
    local rootfs=$dir/bundle/rootfs listing
    listing=$(cd "$rootfs" && find . -mindepth 1 \( -type f -o -type l \) -printf '%m %u %p\n' | sort)
    local want="644 root ./usr/local/lib/libkeepalive.so
755 root ./usr/local/bin/tcp-keepalive"
    if [ "$listing" != "$want" ]; then
        printf 'the %s root holds:\n%s\nwant:\n%s\n' "$oci_arch" "$listing" "$want" >&2
        return 1
    fi
    cmp "$rootfs/usr/local/bin/tcp-keepalive" "$DIST/linux-$arch/bin/tcp-keepalive" &&
        cmp "$rootfs/usr/local/lib/libkeepalive.so" "$DIST/linux-$arch/lib/libkeepalive.so" || return 1
    python3 - "$dir/bundle/config.json" "$oci_arch" <<'PY' || return 1
import json, sys
config = json.load(open(sys.argv[1]))
args = config["process"]["args"]
print(f"{sys.argv[2]}: process args {args}")
sys.exit(0 if args[0] == "/usr/local/bin/tcp-keepalive" else 1)
PY
    echo "$oci_arch: files and their bytes as in dist/linux-$arch"
    local run=(/usr/local/bin/tcp-keepalive)
    if [ "$arch" = aarch64 ]; then
        install -D -m 0755 "$QEMU" "$rootfs/usr/bin/qemu-aarch64-static"
        run=(/usr/bin/qemu-aarch64-static /usr/local/bin/tcp-keepalive)
    fi
    # As the init container would: /proc mounted (a private mount namespace, gone when it
    # ends), user 65534, the volume an empty world-writable directory.
    mkdir -p "$rootfs/proc" "$rootfs/shared"
    chmod 1777 "$rootfs/shared"
    local out
    out=$(unshare --mount --propagation private sh -c '
        root=$1; shift
        mount -t proc proc "$root/proc" || exit 1
        chroot --userspec=65534:65534 "$root" "$@" --version || exit 1
        chroot --userspec=65534:65534 "$root" "$@" install-preload /shared' sh "$rootfs" "${run[@]}" 2>&1)
    local status=$?
    printf '%s\n' "$out"
    [ $status -eq 0 ] && grep -qx "tcp-keepalive $VERSION" <<<"$out" || return 1
    cmp "$rootfs/shared/libkeepalive.so" "$DIST/linux-$arch/lib/libkeepalive.so" || return 1
    [ "$(stat -c '%a %u' "$rootfs/shared/libkeepalive.so")" = "644 65534" ] || {
        stat -c '%a %u' "$rootfs/shared/libkeepalive.so" >&2
        return 1
    }
    echo "$oci_arch: install-preload /shared copied the library, mode 0644, as user 65534"
}

# crates.io's own packaging check: the core alone, and the command together with the crates it
# needs (it cannot resolve tcp-keepalive 0.1.0 or tcp-keepalive-cgroup from crates.io before they
# are published).
publish_dry_run() {
    # Cargo verifies each crate against the others packaged in a temporary registry, extracted
    # under $CARGO_HOME/registry/src/<that registry's hash>/ and never again once there, and
    # built into target/debug where a registry crate counts as unchanged once built: a second
    # run from the same checkout path would build against the first run's copies of our own
    # crates (errors like "no `Loaded` in the root"). Only our unpublished names go.
    local stale
    for stale in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/tcp-keepalive{,-cgroup,-k8s,-cli}-"$VERSION" \
        target/debug/.fingerprint/tcp-keepalive-*; do
        [ -e "$stale" ] && rm -rf "$stale"
    done
    cargo publish --dry-run --locked --allow-dirty --quiet -p tcp-keepalive &&
        cargo publish --dry-run --locked --allow-dirty --quiet -p tcp-keepalive -p tcp-keepalive-cgroup \
            -p tcp-keepalive-k8s -p tcp-keepalive-cli
}

image() {
    local index
    index=$(skopeo inspect --raw "oci-archive:$DIST/tcp-keepalive-$VERSION.oci.tar:tcp-keepalive:$VERSION") || return 1
    python3 - "$index" <<'PY' || return 1
import json, sys
index = json.loads(sys.argv[1])
platforms = sorted(f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"])
print(f"index {index['mediaType']}: {platforms}")
sys.exit(0 if index["mediaType"] == "application/vnd.oci.image.index.v1+json"
         and platforms == ["linux/amd64", "linux/arm64"] else 1)
PY
    image_arch amd64 x86_64 && image_arch arm64 aarch64
}

start=$SECONDS
part "build dist/ (scripts/dist.sh)" build
if [ ${#failed_parts[@]} -eq 0 ]; then
    part "ELF files: arch, GLIBC_2.17, static commands; Java 8 classes; SHA256SUMS" files
    part "x86_64 wheel in a fresh venv without Rust: the Python tests" python_wheel
    part "the JUnit suite against the dist jar" jvm_jar
    part "x86_64 libkeepalive.so: the preload's C program tests" preload_x86_64
    part "x86_64 command: apply, inspect on real sockets" command_x86_64
    part "arm64 command under qemu-user: apply, inspect on real sockets" command_arm64
    part "arm64 libkeepalive.so under an arm64 C program (qemu-user)" preload_arm64
    part "arm64 wheel in Debian's arm64 Python (qemu-user)" wheel_arm64
    part "the image: index, files, command run from the unpacked roots" image
    part "cargo publish --dry-run: tcp-keepalive, and tcp-keepalive-cli with it and tcp-keepalive-cgroup" publish_dry_run
fi
echo
echo "dist: ${passed} parts passed, ${#failed_parts[@]} failed ($((SECONDS - start)) s)"
for f in "${failed_parts[@]}"; do echo "  failed: $f"; done
[ ${#failed_parts[@]} -eq 0 ]
