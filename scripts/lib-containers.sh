# podman as the project runs it (sourced after lib.sh): rootful, runc, the cgroupfs manager, the
# project's own containers.conf (scripts/containers/containers.conf: the rlimits this machine
# allows, no network unless asked) and storage of its own under target/containers/STORE, never the
# machine's defaults. See FACTS.md, "Containers here".
#   pm ARGS...             podman with that configuration and $PM_STORE (default "test")
#   pm_ready               installs podman, runc, buildah, skopeo; true when podman can run here
#   host_net_state         ip_forward (v4, v6) and the firewall rules, to compare before/after
#   release_files          the release image's archive, command and library (dist/, or built here)
#   pm_load_release        that image into the store as $RELEASE_IMAGE

export CONTAINERS_CONF=$ROOT/scripts/containers/containers.conf
PM_STORE=${PM_STORE:-test}
TKL_VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)
RELEASE_IMAGE=localhost/tcp-keepalive:$TKL_VERSION

pm() {
    local base=$ROOT/target/containers/$PM_STORE
    mkdir -p "$base/tmp"
    podman --root "$base/storage" --runroot "$base/run" --tmpdir "$base/tmp" \
        --storage-driver overlay --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"
}

pm_ready() {
    # catatonit: kube play builds its pause image from it.
    need_packages podman runc buildah skopeo catatonit containernetworking-plugins iptables iproute2 >/dev/null || return 1
    # crun refuses this kind of host; podman must use runc (the configuration says so).
    command -v runc >/dev/null || { echo "runc is not installed" >&2; return 1; }
}

host_net_state() {
    cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding
    # The rules of every table, without counters: netavark would add chains here.
    iptables-save 2>/dev/null | grep -v -E '^(#|:.*\[[0-9]+:[0-9]+\])' | sort
    ip6tables-save 2>/dev/null | grep -v -E '^(#|:.*\[[0-9]+:[0-9]+\])' | sort
    nft list tables 2>/dev/null | sort
}

# release_files: sets RELEASE_ARCHIVE (the image's OCI archive), RELEASE_CLI and RELEASE_LIB (the
# command and library in it, for this machine's arch): dist/'s when present (stage 80-dist builds
# it); otherwise the same two files built here for this arch only (the command statically linked,
# as dist.sh links it; the preload by scripts/build-preload.sh) and put into a FROM scratch image
# of the same layout, under target/containers/release (dist.sh's two arches take ~20 min cold).
# TKL_DIST=DIR looks for dist/'s files in DIR instead (TKL_DIST=/nonexistent tries the fallback).
release_files() {
    local dist=${TKL_DIST:-$ROOT/dist}
    RELEASE_ARCHIVE=$dist/tcp-keepalive-$TKL_VERSION.oci.tar
    RELEASE_CLI=$dist/linux-$(uname -m)/bin/tcp-keepalive
    RELEASE_LIB=$dist/linux-$(uname -m)/lib/libkeepalive.so
    [ -f "$RELEASE_ARCHIVE" ] && [ -x "$RELEASE_CLI" ] && [ -f "$RELEASE_LIB" ] && return 0
    log "no $RELEASE_ARCHIVE: building the image's two files for $(uname -m) here" >&2
    local out=$ROOT/target/containers/release host
    host=$(rustc -vV | sed -n 's/^host: //p')
    need_packages build-essential clang libbpf-dev linux-libc-dev buildah >/dev/null || return 1
    env "CARGO_TARGET_$(echo "$host" | tr 'a-z-' 'A-Z_')_RUSTFLAGS=-C target-feature=+crt-static" \
        cargo build --release --locked --quiet -p tcp-keepalive-cli --target "$host" \
        --target-dir "$ROOT/target/containers/static" >&2 || return 1
    bash "$ROOT/scripts/build-preload.sh" >&2 || return 1
    mkdir -p "$out"
    RELEASE_CLI=$out/tcp-keepalive
    RELEASE_LIB=$out/libkeepalive.so
    RELEASE_ARCHIVE=$out/tcp-keepalive-$TKL_VERSION.oci.tar
    local built_cli=$ROOT/target/containers/static/$host/release/tcp-keepalive
    local built_lib=$ROOT/target/release/libkeepalive.so
    if [ -f "$RELEASE_ARCHIVE" ] && [ "$RELEASE_ARCHIVE" -nt "$built_cli" ] && [ "$RELEASE_ARCHIVE" -nt "$built_lib" ]; then
        return 0
    fi
    install -m 0755 "$built_cli" "$RELEASE_CLI"
    install -m 0644 "$built_lib" "$RELEASE_LIB"
    local b=(buildah --root "$out/buildah/root" --runroot "$out/buildah/run" --storage-driver vfs) ctr
    "${b[@]}" rm --all >/dev/null 2>&1
    ctr=$("${b[@]}" from scratch) || return 1
    "${b[@]}" copy --chmod 0755 "$ctr" "$RELEASE_CLI" /usr/local/bin/tcp-keepalive >/dev/null &&
        "${b[@]}" copy --chmod 0644 "$ctr" "$RELEASE_LIB" /usr/local/lib/libkeepalive.so >/dev/null &&
        "${b[@]}" config --entrypoint '["/usr/local/bin/tcp-keepalive"]' --cmd '["--help"]' "$ctr" &&
        "${b[@]}" commit --quiet --format oci --rm "$ctr" "localhost/tcp-keepalive:$TKL_VERSION" >/dev/null || return 1
    rm -f "$RELEASE_ARCHIVE"
    "${b[@]}" push --quiet "localhost/tcp-keepalive:$TKL_VERSION" \
        "oci-archive:$RELEASE_ARCHIVE:tcp-keepalive:$TKL_VERSION" || return 1
    "${b[@]}" rmi --all >/dev/null 2>&1
    return 0
}

# pm_load_release: the release image (its linux/amd64 or linux/arm64 manifest, as the node's
# runtime picks it) into the store as $RELEASE_IMAGE.
pm_load_release() {
    release_files || return 1
    pm pull -q "oci-archive:$RELEASE_ARCHIVE:tcp-keepalive:$TKL_VERSION" >/dev/null &&
        pm tag "tcp-keepalive:$TKL_VERSION" "$RELEASE_IMAGE" 2>/dev/null
    pm image exists "$RELEASE_IMAGE"
}

# cgroup2_root: where cgroup v2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid
# host).
cgroup2_root() {
    awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts
}

# remove_cgroup_tree NAME: removes /NAME (depth first) from the v2 hierarchy and every v1
# hierarchy, where runc made it for a --cgroup-parent; only empty directories go.
remove_cgroup_tree() {
    local name=$1 mnt
    for mnt in $(awk '$3 == "cgroup2" || $3 == "cgroup" {print $2}' /proc/mounts); do
        [ -d "$mnt/$name" ] || continue
        find "$mnt/$name" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}
