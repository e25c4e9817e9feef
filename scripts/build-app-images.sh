#!/usr/bin/env bash
# Builds the two application images of the seed's failure from files on this machine (no registry
# is reachable, and none is needed), FROM scratch with buildah, into OCI archives cached under
# target/containers/images/:
#   python-server.oci.tar  localhost/tkl-python-server:lab  Debian's libc6, libgcc-s1, python3.11 with its
#                          standard library (the files of the installed packages and the libraries
#                          they load) and the seed's server, e2e/server.py, as /app/server.py
#   scala-client.oci.tar   localhost/tkl-scala-client:lab   the files of Debian's libc6, libgcc-s1 and
#                          openjdk-17-jre-headless and the libraries they load, and the seed's
#                          Scala/OkHttp client (examples/scala-client, scripts/build-scala-client.sh)
#                          as /app/scala-client.jar
# Neither image knows anything of keep-alive: the init container and the node agent fix them.
# An archive is rebuilt only when its inputs changed (a key of the packages' versions and the
# files' hashes). Usage: scripts/build-app-images.sh [python-server|scala-client]...  (as root)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

OUT=$ROOT/target/containers/images
STORE=$ROOT/target/containers/buildah
B=(buildah --root "$STORE/root" --runroot "$STORE/run" --storage-driver vfs)
mkdir -p "$OUT"

need_packages buildah python3.11-minimal libpython3.11-stdlib openjdk-17-jre-headless >/dev/null

# closure FILE...: the shared libraries FILEs load (ldd), with the dynamic loader, one a line.
closure() {
    local f
    for f in "$@"; do
        [ -f "$f" ] && [ ! -L "$f" ] || continue
        head -c 4 "$f" | grep -q ELF || continue
        ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
    done | sort -u
}

# copy_into ROOTFS PATH...: each PATH (file or symlink, and what a symlink points to) at the same
# place under ROOTFS, modes kept (tar: cp --parents -a fails on this coreutils).
copy_into() {
    local rootfs=$1
    shift
    local p
    # The top-level symlinks of a merged /usr (/lib -> usr/lib, ...), as on this machine; every
    # path is then stored under its real directory.
    local top
    for top in /bin /sbin /lib /lib32 /lib64 /libx32; do
        [ -L "$top" ] && [ ! -L "$rootfs$top" ] && ln -s "$(readlink "$top")" "$rootfs$top"
    done
    for p in "$@"; do
        [ -e "$p" ] || [ -L "$p" ] || continue
        local real
        real=$(realpath "$(dirname "$p")")/$(basename "$p")
        printf '%s\n' "${real#/}"
        if [ -L "$p" ]; then
            real=$(readlink -f "$p")
            printf '%s\n' "${real#/}"
        fi
    done | sort -u | tar -C / --no-recursion -cf - -T - | tar -C "$rootfs" -xf -
}

# commit NAME TAG ROOTFS CMD-JSON: the image from ROOTFS, pushed to $OUT/NAME.oci.tar.
commit() {
    local name=$1 tag=$2 rootfs=$3 cmd=$4
    "${B[@]}" rm "tkl-build-$name" >/dev/null 2>&1 || true
    local ctr
    ctr=$("${B[@]}" from --name "tkl-build-$name" scratch)
    "${B[@]}" copy "$ctr" "$rootfs/" / >/dev/null
    "${B[@]}" config --cmd "$cmd" --env PATH=/usr/local/bin:/usr/bin:/bin \
        --label "org.opencontainers.image.title=$name (tcp-keepalive's lab: the seed's failure)" "$ctr"
    "${B[@]}" commit --quiet --format oci --rm "$ctr" "$tag" >/dev/null
    rm -f "$OUT/$name.oci.tar"
    "${B[@]}" push --quiet "$tag" "oci-archive:$OUT/$name.oci.tar:$tag"
    "${B[@]}" rmi "$tag" >/dev/null
}

# fresh NAME KEY: true when $OUT/NAME.oci.tar was built from KEY.
fresh() {
    [ -f "$OUT/$1.oci.tar" ] && [ "$(cat "$OUT/$1.key" 2>/dev/null)" = "$2" ]
}

package_files() {
    dpkg -L "$@" | while read -r f; do
        case $f in /usr/share/doc/* | /usr/share/man/* | /usr/share/lintian/*) continue ;; esac
        [ -f "$f" ] || [ -L "$f" ] && echo "$f"
    done
}

versions() { dpkg-query -W -f '${Package} ${Version}\n' "$@"; }

python_server() {
    # libc6 and libgcc-s1 whole (libc6 depends on it), as every Debian-based image has them: the
    # libraries of the closure alone would lack libpthread.so.0 and libdl.so.2, which Python does
    # not load but other programs (and the preload) do.
    local arch
    arch=$(dpkg --print-architecture)
    local pkgs=("libc6:$arch" "libgcc-s1:$arch" python3.11-minimal libpython3.11-minimal libpython3.11-stdlib)
    local key
    key=$( (versions "${pkgs[@]}"; sha256sum e2e/server.py "$0") | sha256sum | cut -c1-16)
    fresh python-server "$key" && return 0
    log "image python-server (Debian's python3.11, e2e/server.py)"
    local rootfs=$ROOT/target/containers/rootfs/python-server
    rm -rf "$rootfs" && mkdir -p "$rootfs/app" "$rootfs/tmp" && chmod 1777 "$rootfs/tmp"
    local files
    mapfile -t files < <(package_files "${pkgs[@]}" | grep -v -E '/(test|idlelib|tkinter|ensurepip|lib2to3|turtledemo)/')
    copy_into "$rootfs" "${files[@]}"
    mapfile -t libs < <(closure "${files[@]}")
    copy_into "$rootfs" "${libs[@]}"
    ln -sf python3.11 "$rootfs/usr/bin/python3"
    install -m 0644 e2e/server.py "$rootfs/app/server.py"
    commit python-server localhost/tkl-python-server:lab "$rootfs" '["python3", "/app/server.py"]'
    echo "$key" >"$OUT/python-server.key"
    rm -rf "$rootfs"
}

scala_client() {
    local jar=$ROOT/examples/scala-client/target/scala-client.jar
    bash scripts/build-scala-client.sh
    local arch
    arch=$(dpkg --print-architecture)
    local pkgs=("libc6:$arch" "libgcc-s1:$arch" openjdk-17-jre-headless)
    local key
    key=$( (versions "${pkgs[@]}" "zlib1g:$(dpkg --print-architecture)"; sha256sum "$jar" "$0") | sha256sum | cut -c1-16)
    fresh scala-client "$key" && return 0
    log "image scala-client (Debian's openjdk-17-jre-headless, examples/scala-client)"
    local rootfs=$ROOT/target/containers/rootfs/scala-client
    rm -rf "$rootfs" && mkdir -p "$rootfs/app" "$rootfs/tmp" && chmod 1777 "$rootfs/tmp"
    local files
    mapfile -t files < <(package_files "${pkgs[@]}")
    copy_into "$rootfs" "${files[@]}"
    mapfile -t libs < <(closure "${files[@]}")
    copy_into "$rootfs" "${libs[@]}"
    local java
    java=$(dpkg -L openjdk-17-jre-headless | grep '/bin/java$' | head -n 1)
    mkdir -p "$rootfs/usr/bin"
    ln -sf "$java" "$rootfs/usr/bin/java"
    install -m 0644 "$jar" "$rootfs/app/scala-client.jar"
    commit scala-client localhost/tkl-scala-client:lab "$rootfs" '["java", "-jar", "/app/scala-client.jar"]'
    echo "$key" >"$OUT/scala-client.key"
    rm -rf "$rootfs"
}

[ $# -gt 0 ] || set -- python-server scala-client
for image in "$@"; do
    case $image in
    python-server) python_server ;;
    scala-client) scala_client ;;
    *)
        echo "build-app-images: unknown image $image (python-server, scala-client)" >&2
        exit 2
        ;;
    esac
done
