#!/usr/bin/env bash
# Builds what the lab's container rows need (e2e/clients.py: container-*), into the lab's own
# podman store (target/containers/lab): the release image from dist/ (stage 80-dist builds it in a
# full run; without it, its two files for this arch are built here: lib-containers.sh) and the seed's client image
# (scripts/build-app-images.sh). Loads an image only when its archive changed. Idempotent, quiet.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
PM_STORE=lab
. "$ROOT/scripts/lib-containers.sh"
pm_ready
bash "$ROOT/scripts/build-app-images.sh" scala-client >/dev/null
stamps=$ROOT/target/containers/lab/loaded
mkdir -p "$stamps"
# load NAME ARCHIVE IMAGE: into the store unless this archive is what was loaded last.
load() {
    local sum
    sum=$(sha256sum "$2" | cut -d' ' -f1)
    if [ "$(cat "$stamps/$1" 2>/dev/null)" = "$sum" ] && pm image exists "$3"; then
        return 0
    fi
    if [ "$1" = release ]; then
        pm_load_release
    else
        pm load -q -i "$2" >/dev/null
    fi
    echo "$sum" >"$stamps/$1"
}
release_files
load release "$RELEASE_ARCHIVE" "$RELEASE_IMAGE"
load scala-client "$ROOT/target/containers/images/scala-client.oci.tar" localhost/tkl-scala-client:lab
