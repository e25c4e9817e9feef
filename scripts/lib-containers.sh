# podman as the project runs it (sourced after lib.sh): rootful, runc, the cgroupfs manager, the
# project's own containers.conf (scripts/containers/containers.conf: the rlimits this machine
# allows, no network unless asked) and storage of its own under target/containers/STORE, never the
# machine's defaults. See FACTS.md, "Containers here".
#   pm ARGS...             podman with that configuration and $PM_STORE (default "test")
#   pm_ready               installs podman, runc, buildah, skopeo; true when podman can run here
#   host_net_state         ip_forward (v4, v6) and the firewall rules, to compare before/after
#   release_image_archive  dist/tcp-keepalive-VERSION.oci.tar, built by scripts/dist.sh if absent

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

release_image_archive() {
    local archive=${TKL_RELEASE_ARCHIVE:-$ROOT/dist/tcp-keepalive-$TKL_VERSION.oci.tar}
    if [ ! -f "$archive" ]; then
        log "no $archive: building dist/ (scripts/dist.sh)"
        bash "$ROOT/scripts/dist.sh" >&2 || return 1
    fi
    echo "$archive"
}

# pm_load_release: the release image (its linux/amd64 or linux/arm64 manifest, as the node's
# runtime picks it) into the store as $RELEASE_IMAGE.
pm_load_release() {
    local archive
    archive=$(release_image_archive) || return 1
    pm pull -q "oci-archive:$archive:tcp-keepalive:$TKL_VERSION" >/dev/null &&
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
