#!/usr/bin/env bash
# Builds every release artifact into dist/, for Linux x86_64 and aarch64, from a clean clone, and
# installs what it needs (Debian packages as root, the build tools into target/dist-tools):
#   dist/tcp_keepalive-VERSION-cp39-abi3-manylinux2014_ARCH.manylinux_2_17_ARCH.whl  (auditwheel-checked)
#   dist/tcp-keepalive-VERSION.jar          Java 8 bytecode, native/linux-{x86_64,aarch64}/ inside
#   dist/linux-ARCH/lib/libkeepalive.so     the preload, glibc 2.17+
#   dist/linux-ARCH/bin/tcp-keepalive       the command, static (runs without any libc)
#   dist/tcp-keepalive-VERSION.oci.tar      OCI image index tcp-keepalive:VERSION (amd64 + arm64)
#   dist/SHA256SUMS
# Native code links against glibc 2.17 through zig (cargo-zigbuild, maturin --zig), so it loads on
# any glibc 2.17+ system (manylinux2014); the command is linked statically because the image is
# FROM scratch. Everything is built by Debian's rustc 1.96 (rustc-web), the toolchain here that has
# the aarch64 standard library. Reuses the cargo caches under target/dist-*: quick when warm.
# Usage: scripts/dist.sh   (as root on a fresh machine; DIST_DIR=... to write elsewhere)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
DIST=${DIST_DIR:-$ROOT/dist}
TOOLS=$ROOT/target/dist-tools
# Pinned build tools (PyPI). ziglang 0.17.1 is what PyPI serves now (0.17.0 is there too).
TOOL_PINS=(ziglang==0.17.1 cargo-zigbuild==0.24.1 maturin==1.16.0 auditwheel==6.8.2)
ARCHES=(x86_64 aarch64)
IMAGE=tcp-keepalive:$VERSION

# Debian's Rust 1.96 has std for both arches; rustup's toolchain (first on PATH) only for x86_64.
export RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo
export CARGO_PROFILE_RELEASE_STRIP=symbols

setup() {
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        log "adding the arm64 architecture to dpkg (for Rust's aarch64 standard library)"
        [ "$(id -u)" -eq 0 ] || { echo "dist: need root to add the arm64 architecture" >&2; return 1; }
        dpkg --add-architecture arm64
        unset _APT_UPDATED
    fi
    need_packages rustc-web cargo-web libstd-rust-web-dev libstd-rust-web-dev:arm64 \
        build-essential gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu \
        python3 python3-venv python3-dev openjdk-17-jdk-headless maven buildah \
        clang libbpf-dev linux-libc-dev  # the kernel door's BPF object, built into the command
    if [ ! -x "$TOOLS/bin/python" ]; then
        log "creating $TOOLS"
        python3 -m venv "$TOOLS"
        "$TOOLS/bin/pip" install -q --upgrade pip >/dev/null
    fi
    "$TOOLS/bin/pip" install -q "${TOOL_PINS[@]}"
    # cargo finds `cargo-zigbuild` on PATH, cargo-zigbuild finds zig as `python -m ziglang`.
    export PATH="$TOOLS/bin:$PATH"
}

# zigbuild ARCH PACKAGE...: cdylibs for glibc 2.17 into target/dist-zig/ARCH-unknown-linux-gnu/release.
zigbuild() {
    local arch=$1
    shift
    local pkgs=()
    for p in "$@"; do pkgs+=(-p "$p"); done
    "$CARGO" zigbuild --release --locked --quiet "${pkgs[@]}" \
        --target "$arch-unknown-linux-gnu.2.17" --target-dir "$ROOT/target/dist-zig"
}

# static_command ARCH: the command, statically linked against glibc (no libc needed at run time).
# Not zig: zig cannot link glibc statically. The command resolves no host names and no users, so
# static glibc's NSS limits do not apply.
static_command() {
    local arch=$1 upper
    upper=$(echo "$arch" | tr a-z A-Z)
    # Only here the cross gcc links aarch64: exported globally it would override zig's linker.
    env "CARGO_TARGET_${upper}_UNKNOWN_LINUX_GNU_RUSTFLAGS=-C target-feature=+crt-static" \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        "$CARGO" build --release --locked --quiet -p tcp-keepalive-cli \
        --target "$arch-unknown-linux-gnu" --target-dir "$ROOT/target/dist-static"
}

native_files() {
    for arch in "${ARCHES[@]}"; do
        log "libkeepalive.so, the JNI library (glibc 2.17) and the command (static) for $arch"
        zigbuild "$arch" tcp-keepalive-preload tcp-keepalive-jni
        static_command "$arch"
        local zig=target/dist-zig/$arch-unknown-linux-gnu/release
        local cmd=target/dist-static/$arch-unknown-linux-gnu/release/tcp-keepalive
        install -D -m 0644 "$zig/libkeepalive.so" "$DIST/linux-$arch/lib/libkeepalive.so"
        install -D -m 0755 "$cmd" "$DIST/linux-$arch/bin/tcp-keepalive"
        install -D -m 0755 "$zig/libtcp_keepalive_jni.so" \
            "$ROOT/target/dist-jvm/native/linux-$arch/libtcp_keepalive_jni.so"
    done
}

wheels() {
    for arch in "${ARCHES[@]}"; do
        log "the Python wheel (abi3, manylinux2014) for $arch"
        local out=$ROOT/target/dist-wheels/$arch
        rm -rf "$out"
        (cd python-binding && CARGO_TARGET_DIR="$ROOT/target/dist-maturin" \
            maturin build --quiet --release --locked --zig --compatibility manylinux2014 \
            --target "$arch-unknown-linux-gnu" --interpreter "$TOOLS/bin/python" --out "$out")
        local wheel
        wheel=$(ls "$out"/tcp_keepalive-"$VERSION"-cp39-abi3-manylinux2014_"$arch".manylinux_2_17_"$arch".whl)
        # auditwheel: the libraries it needs and their symbol versions allow manylinux_2_17 here
        # (an external library or a newer symbol would make it say linux_ARCH or a later tag).
        local report
        report=$(auditwheel show "$wheel" | tr -s ' \n' ' ')
        if [[ $report != *"consistent with the following platform tag: \"manylinux_2_17_$arch\""* ]]; then
            echo "dist: auditwheel does not accept $wheel as manylinux_2_17_$arch:" >&2
            auditwheel show "$wheel" >&2
            return 1
        fi
        cp "$wheel" "$DIST/"
    done
}

java_jar() {
    log "the jar (Java 8 bytecode, both native libraries)"
    # Maven builds a copy of the Java sources, so the development jar in jni-binding/target (with
    # the workspace's own native build) stays as it is; cargo is skipped, the libraries are ours.
    local work=$ROOT/target/dist-jvm
    rm -rf "$work/project"
    mkdir -p "$work/project/src"
    cp jni-binding/pom.xml "$work/project/"
    cp -r jni-binding/src/main "$work/project/src/"
    # The pom copies $cargo.target.dir/release/libtcp_keepalive_jni.so as native/linux-x86_64.
    install -D -m 0755 "$work/native/linux-x86_64/libtcp_keepalive_jni.so" \
        "$work/cargo-x86_64/release/libtcp_keepalive_jni.so"
    local out
    if ! out=$(mvn -B -q -f "$work/project/pom.xml" -Dmaven.test.skip=true -Dcargo.skip=true \
        "-Dcargo.target.dir=$work/cargo-x86_64" -Dnative.platform=linux-x86_64 package 2>&1); then
        printf '%s\n' "$out" >&2
        echo "dist: mvn package failed" >&2
        return 1
    fi
    local built=$work/project/target/tcp-keepalive-$VERSION.jar
    (cd "$work" && "$JAVA_BIN/jar" uf "$built" native/linux-aarch64/libtcp_keepalive_jni.so)
    cp "$built" "$DIST/tcp-keepalive-$VERSION.jar"
}

# The image: FROM scratch, one per arch, in one OCI index (contract C4). buildah runs daemonless
# with its own storage under target/, so nothing is shared with other builds on the machine.
image() {
    log "the image $IMAGE (linux/amd64, linux/arm64)"
    local store=$ROOT/target/dist-buildah
    local b=(buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs)
    local list=localhost/$IMAGE
    # Working containers a failed run left behind; this storage is ours alone.
    "${b[@]}" rm --all >/dev/null 2>&1 || true
    "${b[@]}" manifest rm "$list" >/dev/null 2>&1 || true
    "${b[@]}" manifest create "$list" >/dev/null
    for arch in "${ARCHES[@]}"; do
        local oci_arch=amd64
        [ "$arch" = aarch64 ] && oci_arch=arm64
        local ctr
        ctr=$("${b[@]}" from --arch "$oci_arch" --os linux --name "tcp-keepalive-dist-$oci_arch-$$" scratch)
        "${b[@]}" copy --chmod 0755 "$ctr" "$DIST/linux-$arch/bin/tcp-keepalive" /usr/local/bin/tcp-keepalive >/dev/null
        "${b[@]}" copy --chmod 0644 "$ctr" "$DIST/linux-$arch/lib/libkeepalive.so" /usr/local/lib/libkeepalive.so >/dev/null
        "${b[@]}" config --arch "$oci_arch" --os linux \
            --entrypoint '["/usr/local/bin/tcp-keepalive"]' --cmd '["--help"]' \
            --created-by "scripts/dist.sh (tcp-keepalive $VERSION)" \
            --label "org.opencontainers.image.title=tcp-keepalive" \
            --label "org.opencontainers.image.version=$VERSION" \
            --label "org.opencontainers.image.licenses=MIT OR Apache-2.0" "$ctr"
        "${b[@]}" commit --quiet --format oci --timestamp 0 "$ctr" "localhost/tcp-keepalive-dist:$VERSION-$oci_arch" >/dev/null
        "${b[@]}" rm "$ctr" >/dev/null
        "${b[@]}" manifest add "$list" "localhost/tcp-keepalive-dist:$VERSION-$oci_arch" >/dev/null
    done
    rm -f "$DIST/tcp-keepalive-$VERSION.oci.tar"
    "${b[@]}" manifest push --quiet --all --format oci "$list" \
        "oci-archive:$DIST/tcp-keepalive-$VERSION.oci.tar:$IMAGE"
}

checksums() {
    (cd "$DIST" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort |
        xargs sha256sum >SHA256SUMS)
}

setup
JAVA_BIN=$(dirname "$(readlink -f "$(command -v javac)")")
rm -rf "$DIST"
mkdir -p "$DIST"
start=$SECONDS
native_files
wheels
java_jar
image
checksums
log "dist/ in $((SECONDS - start)) s:"
cat "$DIST/SHA256SUMS"
