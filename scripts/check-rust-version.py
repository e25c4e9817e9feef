#!/usr/bin/env python3
"""Checks that every workspace crate's `rust-version` is at least what its locked dependencies need.

Only one Rust toolchain can be installed here, so the floor cannot be proven by building with it;
instead this reads the resolved graph (`cargo metadata --locked`: Cargo.lock plus each dependency's
own Cargo.toml from the registry) for the release targets (x86_64 and aarch64 Linux) and compares
each crate's declared rust-version with the highest rust-version among the dependencies it needs
to build (normal and build dependencies, transitively). Dev-dependencies only matter for running
the crate's own tests; what they need is printed, not enforced, because users never build them.

Exit status 0 when every crate's claim holds, 1 with one line per crate that claims too little.
Usage: scripts/check-rust-version.py [--verbose]
"""

import json
import subprocess
import sys

TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]


def version_tuple(text):
    """'1.77' or '1.77.0' -> (1, 77, 0); None -> (0, 0, 0)."""
    parts = [int(p) for p in (text or "0").split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def show(version):
    return ".".join(str(p) for p in version[:2]) + (f".{version[2]}" if version[2] else "")


def metadata(target):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", target],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def needs(meta, root, first_kinds):
    """The packages `root` needs through first-level deps of `first_kinds`, then normal/build ones."""
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    seen = set()
    stack = [
        d["pkg"]
        for d in nodes[root]["deps"]
        if {k["kind"] for k in d["dep_kinds"]} & first_kinds
    ]
    while stack:
        pkg = stack.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        stack.extend(
            d["pkg"]
            for d in nodes[pkg]["deps"]
            if {k["kind"] for k in d["dep_kinds"]} & {None, "build"}
        )
    return seen


def highest(meta, ids):
    """(version, 'name version') of the dependency with the highest rust-version among ids."""
    packages = {p["id"]: p for p in meta["packages"]}
    members = set(meta["workspace_members"])
    best = ((0, 0, 0), "none")
    for i in ids - members:
        p = packages[i]
        best = max(best, (version_tuple(p.get("rust_version")), f"{p['name']} {p['version']}"))
    return best


def main():
    verbose = "--verbose" in sys.argv[1:]
    failures = []
    report = {}
    for target in TARGETS:
        meta = metadata(target)
        packages = {p["id"]: p for p in meta["packages"]}
        for member in meta["workspace_members"]:
            name = packages[member]["name"]
            declared = packages[member].get("rust_version")
            build = highest(meta, needs(meta, member, {None, "build"}))
            dev = highest(meta, needs(meta, member, {"dev"}))
            old = report.get(name)
            report[name] = (declared, max(build, old[1]) if old else build, max(dev, old[2]) if old else dev)
    for name, (declared, build, dev) in sorted(report.items()):
        line = f"{name}: rust-version {declared or 'unset'}; dependencies need {show(build[0])} ({build[1]})"
        line += f"; its tests need {show(max(build, dev)[0])} ({max(build, dev)[1]})"
        if declared is None or version_tuple(declared) < build[0]:
            failures.append(line)
        elif verbose:
            print(line)
    for line in failures:
        print(f"rust-version too low: {line}", file=sys.stderr)
    if failures:
        print("raise rust-version in that crate's Cargo.toml (or the workspace's) to what its dependencies need",
              file=sys.stderr)
        return 1
    print(f"rust-version: {len(report)} crates claim at least what their locked dependencies need")
    return 0


if __name__ == "__main__":
    sys.exit(main())
