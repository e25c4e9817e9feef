#!/usr/bin/env bash
# The lab's container rows (e2e/clients.py): the seed's Scala/OkHttp client in its own image
# (localhost/tkl-scala-client:lab, scripts/build-app-images.sh), unchanged, run by podman
# (scripts/lib-containers.sh, the lab's own store) in the lab's client network namespace
# (--network ns:$LAB_NETNS). The image's own keep-alive code stays off (LAB_KEEPALIVE=off in the
# container): only the Kubernetes recipes fix it.
#
#   container_client.sh init-preload   "with" (TCP_KEEPALIVE=on from the lab): the init container
#       of examples/kubernetes/deployment.yaml (the release image, user 65534, read-only root, no
#       capabilities, no new privileges) fills a volume with libkeepalive.so, and the client runs
#       with it mounted read-only and LD_PRELOAD plus the scenario's TCP_KEEPALIVE_* (the example's
#       env, the lab's values). "without": the client alone.
#   container_client.sh node-agent     the client container created (a cgroup of its own,
#       <parent>/libpod-<id>); "with": before it starts, the release image run as the DaemonSet
#       runs its agent (capabilities, read-only root, host PID, seccomp unconfined, the cgroup and
#       bpffs host paths) attaches at that cgroup with the scenario's timings. "without": no
#       agent. (Attaching after the request, as a sweep, is too slow here: a podman run takes
#       about 6 s on this loaded machine, the middlebox forgets a flow after 2.)
# The client's exit status is the container's (the lab's contract: 0, 10, 11).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib.sh"
PM_STORE=lab
. "$ROOT/scripts/lib-containers.sh"

NAME=tkl-lab-$$
CLIENT_IMAGE=localhost/tkl-scala-client:lab
mode=${1:-}

client_env() {
    CLIENT_ENV=(-e "LAB_URL=$LAB_URL" -e "LAB_DEADLINE=$LAB_DEADLINE" -e LAB_KEEPALIVE=off)
    [ -z "${LAB_WRITE_AFTER:-}" ] || CLIENT_ENV+=(-e "LAB_WRITE_AFTER=$LAB_WRITE_AFTER")
}

# later: the cleanup in the background, its output nowhere, so the lab sees this client exit (and
# its output end) when the container's process does, not a second of podman later.
later() {
    cleanup </dev/null >/dev/null 2>&1 &
}

case $mode in
init-preload)
    client_env
    cleanup() {
        pm rm -f -t 0 "$NAME-init" "$NAME" >/dev/null 2>&1
        pm volume rm -f "$NAME" >/dev/null 2>&1
    }
    trap later EXIT
    extra=()
    if [ "${TCP_KEEPALIVE:-off}" = on ]; then
        pm volume create "$NAME" >/dev/null || exit 1
        # A kubelet makes an emptyDir world-writable (0777); a podman volume is root's 0755.
        chmod 0777 "$(pm volume inspect "$NAME" --format '{{.Mountpoint}}')" || exit 1
        pm run --rm --name "$NAME-init" --network none --user 65534:65534 --read-only \
            --cap-drop ALL --security-opt no-new-privileges -v "$NAME:/shared" \
            "$RELEASE_IMAGE" install-preload /shared >&2 || exit 1
        extra=(-v "$NAME:/shared:ro" -e LD_PRELOAD=/shared/libkeepalive.so)
        for v in TCP_KEEPALIVE_IDLE TCP_KEEPALIVE_INTERVAL TCP_KEEPALIVE_COUNT TCP_KEEPALIVE_USER_TIMEOUT; do
            [ -z "${!v:-}" ] || extra+=(-e "$v=${!v}")
        done
    fi
    pm run --rm --name "$NAME" --network "ns:$LAB_NETNS" "${CLIENT_ENV[@]}" "${extra[@]}" "$CLIENT_IMAGE"
    ;;
node-agent)
    client_env
    # The client container's cgroup: <parent>/libpod-<id>, as runc makes it with the cgroupfs
    # manager; a parent of this run's own (in the v2 and every v1 hierarchy), removed at the end.
    parent=/tkl-lab-$$
    pins=/sys/fs/bpf/tkl-lab-$$
    v2=$(cgroup2_root)
    cleanup() {
        pm rm -f -t 0 "$NAME" "$NAME-agent" >/dev/null 2>&1
        if [ -d "$pins" ]; then
            # The image's own command (dist/, or what lib-containers.sh built without it).
            local cli=$ROOT/dist/linux-$(uname -m)/bin/tcp-keepalive
            [ -x "$cli" ] || cli=$ROOT/target/containers/release/tcp-keepalive
            TCP_KEEPALIVE_PIN_ROOT=$pins "$cli" cgroup detach --all >/dev/null 2>&1
            rm -rf "$pins"
        fi
        remove_cgroup_tree "${parent#/}"
    }
    trap later EXIT
    id=$(pm create --name "$NAME" --network "ns:$LAB_NETNS" --cgroup-parent "$parent" \
        "${CLIENT_ENV[@]}" "$CLIENT_IMAGE") || exit 1
    if [ "${TCP_KEEPALIVE:-off}" = on ]; then
        # The container's cgroup before its process exists (runc joins an existing one), and the
        # agent attached there first, as for a pod created after the node agent started.
        mkdir -p "$v2$parent/libpod-$id" || exit 1
        args=(--idle "$TCP_KEEPALIVE_IDLE" --interval "$TCP_KEEPALIVE_INTERVAL" --count "$TCP_KEEPALIVE_COUNT")
        [ -z "${TCP_KEEPALIVE_USER_TIMEOUT:-}" ] || args+=(--user-timeout "$TCP_KEEPALIVE_USER_TIMEOUT")
        # The DaemonSet's securityContext, hostPID and host paths (examples/kubernetes/node-agent),
        # with a pin root of this run's own on the node's bpffs. `cgroup attach` instead of
        # `cgroup agent`: the client container's own cgroup, not a kubepods; it returns once
        # attached.
        pm run --rm --name "$NAME-agent" --network none --user 0 --read-only \
            --security-opt no-new-privileges --cap-drop ALL --cap-add BPF --cap-add NET_ADMIN \
            --cap-add SYS_PTRACE --cap-add DAC_READ_SEARCH --security-opt seccomp=unconfined --pid host \
            -v "$v2:/host/sys/fs/cgroup:ro" -v /sys/fs/bpf:/host/sys/fs/bpf \
            -e "TCP_KEEPALIVE_PIN_ROOT=/host$pins" \
            "$RELEASE_IMAGE" cgroup attach "/host/sys/fs/cgroup$parent/libpod-$id" "${args[@]}" >&2 || exit 1
    fi
    pm start --attach "$id"
    ;;
*)
    echo "usage: container_client.sh init-preload|node-agent" >&2
    exit 2
    ;;
esac
