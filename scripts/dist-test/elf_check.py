#!/usr/bin/env python3
"""Every ELF file in dist/, also inside the wheels and the jar, for its arch and glibc 2.17.

For each ELF: the machine must match the arch its path names (x86_64 / aarch64), and the glibc
symbol versions it needs (objdump -T, the arch's own objdump) must be at most GLIBC_2.17. The
commands (bin/tcp-keepalive) must be static: no program interpreter, no shared library needed.
Every .class file in a jar must be Java 8 bytecode (major version 52) or older.
Prints one line per file; exits 1 if any check fails.
Usage: elf_check.py DIST_DIR
"""

import os
import re
import subprocess
import sys
import tempfile
import zipfile

MAX_GLIBC = (2, 17)
MACHINES = {62: "x86_64", 183: "aarch64"}  # e_machine: EM_X86_64, EM_AARCH64
OBJDUMP = {"x86_64": "objdump", "aarch64": "aarch64-linux-gnu-objdump"}
failures = []
checked = 0


def fail(name, why):
    failures.append(f"{name}: {why}")
    print(f"FAIL {name}: {why}")


def arch_in_name(name):
    found = {a for a in ("x86_64", "aarch64") if a in name}
    return found.pop() if len(found) == 1 else None


def check_elf(name, path):
    global checked
    checked += 1
    with open(path, "rb") as f:
        header = f.read(20)
    machine = MACHINES.get(int.from_bytes(header[18:20], "little"), f"e_machine {header[18:20].hex()}")
    want = arch_in_name(name)
    if want is None:
        fail(name, "its path names no arch (x86_64 or aarch64)")
        return
    if machine != want:
        fail(name, f"is {machine}, its path says {want}")
        return
    out = subprocess.run([OBJDUMP[machine], "-T", path], capture_output=True, text=True)
    versions = sorted({tuple(int(p) for p in v.split(".")) for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", out.stdout)})
    headers = subprocess.run(["readelf", "-ld", path], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", headers)
    newest = ".".join(map(str, versions[-1])) if versions else "none"
    if name.endswith("/bin/tcp-keepalive"):
        if "Requesting program interpreter" in headers or needed:
            fail(name, f"should be static, but needs {needed or 'a program interpreter'}")
            return
        print(f"ok   {name}: {machine}, static")
        return
    if out.returncode != 0:
        fail(name, f"objdump -T failed: {out.stderr.strip()}")
        return
    if versions and versions[-1] > MAX_GLIBC:
        too_new = [".".join(map(str, v)) for v in versions if v > MAX_GLIBC]
        fail(name, f"needs GLIBC_{', GLIBC_'.join(too_new)} (at most 2.17 allowed)")
        return
    allowed = {"libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1",
               "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}
    extra = [n for n in needed if n not in allowed]
    if extra:
        fail(name, f"needs libraries outside glibc: {extra}")
        return
    print(f"ok   {name}: {machine}, newest symbol GLIBC_{newest}, needs {', '.join(needed)}")


def check_class(name, data):
    global checked
    checked += 1
    if data[:4] != b"\xca\xfe\xba\xbe":
        fail(name, "not a class file")
        return
    major = int.from_bytes(data[6:8], "big")
    if major > 52:
        fail(name, f"class file version {major} (Java 8 is 52)")


def is_elf(data):
    return data[:4] == b"\x7fELF"


def main():
    dist = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="tcp-keepalive-elf-check-") as tmp:
        for root, _, files in os.walk(dist):
            for file in sorted(files):
                path = os.path.join(root, file)
                rel = os.path.relpath(path, dist)
                with open(path, "rb") as f:
                    head = f.read(4)
                if is_elf(head):
                    check_elf(rel, path)
                elif file.endswith((".whl", ".jar")):
                    classes = 0
                    with zipfile.ZipFile(path) as z:
                        for member in z.namelist():
                            data = z.read(member)
                            inner = f"{rel}!/{member}"
                            if is_elf(data):
                                extracted = os.path.join(tmp, str(checked))
                                with open(extracted, "wb") as f:
                                    f.write(data)
                                # The wheel's arch is in its file name, the jar's in native/linux-ARCH/.
                                check_elf(inner if arch_in_name(member) else f"{rel} ({arch_in_name(file)})!/{member}", extracted)
                            elif member.endswith(".class"):
                                check_class(inner, data)
                                classes += 1
                    if classes:
                        print(f"ok   {rel}: {classes} classes, Java 8 bytecode")
    if checked == 0:
        fail(dist, "no ELF files found")
    if failures:
        print(f"{len(failures)} of {checked} checks failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
