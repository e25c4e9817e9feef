#!/usr/bin/env python3
"""The dist libkeepalive.so under a C program of its arch (PREFIX runs it, e.g. qemu-aarch64-static
with -L and -E for the environment): preload/tests/programs/sockets.c prints what getsockopt says
for each socket() call; with the preload every TCP socket has the configured values, and every
line of a socket that is not TCP (UDP, raw, Unix) or a failed call (errno included) is the same
as without it.
Usage: preload_check.py LIBRARY -- PREFIX... PROGRAM   (PREFIX gets '-E VAR=VALUE' per variable
       when it is qemu, else the variables are set in the environment)
"""

import os
import subprocess
import sys

SETTINGS = {"TCP_KEEPALIVE_IDLE": "71", "TCP_KEEPALIVE_INTERVAL": "13", "TCP_KEEPALIVE_COUNT": "5",
            "TCP_KEEPALIVE_USER_TIMEOUT": "45678ms"}
WANT = "ka=1 idle=71 intvl=13 cnt=5 ut=45678"


def lines(argv, env_vars):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TCP_KEEPALIVE", "LD_PRELOAD"))}
    cmd = list(argv)
    if "qemu" in os.path.basename(cmd[0]):
        extra = [x for k, v in env_vars.items() for x in ("-E", f"{k}={v}")]
        cmd = cmd[:1] + extra + cmd[1:]
    else:
        env.update(env_vars)
    out = subprocess.run(cmd + ["cases"], capture_output=True, text=True, env=env, timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} cases: exit {out.returncode}\n{out.stderr}")
    return dict(line.split(" ", 1) for line in out.stdout.splitlines())


def main():
    library = sys.argv[1]
    argv = sys.argv[3:]
    bare = lines(argv, {})
    preloaded = lines(argv, dict(SETTINGS, LD_PRELOAD=library))
    failures = 0
    tcp = [n for n in bare if n.startswith(("tcp4", "tcp6"))]
    if len(tcp) < 10 or set(bare) != set(preloaded):
        print(f"FAIL the program printed other sockets: {sorted(bare)} vs {sorted(preloaded)}")
        return 1
    for name, rest in preloaded.items():
        if name in tcp:
            ok = "ret=ok errno=777 " + WANT in rest
            what = f"{name} configured: {rest}"
        elif "ret=fail" in bare[name] or "idle=e" in bare[name]:
            # A failed socket() or one that is not TCP: the preload must not show at all.
            ok = rest == bare[name]
            what = f"{name} as without the preload: {rest}"
        else:
            # MPTCP and odd flags: the preload's own tests decide; shown, not judged here.
            print(f"info {name}: {rest}")
            continue
        print(("ok   " if ok else "FAIL ") + what)
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
