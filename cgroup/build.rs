//! Compiles the BPF programs (bpf/keepalive.bpf.c) with clang into OUT_DIR; src/lib.rs embeds the
//! object. The object is the same for every target (BPF byte code, little-endian), so only the
//! build machine's headers are used: the UAPI headers (linux-libc-dev), its multiarch `asm/`
//! directory, and libbpf's `bpf_helpers.h` (libbpf-dev). Set `CLANG` to use another compiler.

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE: &str = "bpf/keepalive.bpf.c";

fn fail(message: String) -> ! {
    // A build script's panic is shown to the user with its message: say what to install.
    panic!("\n\ntcp-keepalive-cgroup: {message}\n\n");
}

/// The directory that holds the build machine's `asm/types.h` (Debian multiarch), which
/// `linux/types.h` needs; `-target bpf` does not search it by itself.
fn host_asm_dir() -> Option<PathBuf> {
    let host = std::env::var("HOST").unwrap_or_default();
    let arch = host.split('-').next().unwrap_or_default();
    let mut candidates: Vec<PathBuf> = vec![
        PathBuf::from(format!("/usr/include/{arch}-linux-gnu")),
        PathBuf::from(format!("/usr/include/{arch}-linux-musl")),
        PathBuf::from("/usr/include"),
    ];
    if let Ok(dir) = std::fs::read_dir("/usr/include") {
        let mut others: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with("-linux-gnu"))
            .collect();
        others.sort();
        candidates.extend(others);
    }
    candidates
        .into_iter()
        .find(|d| d.join("asm/types.h").is_file())
}

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out.join("keepalive.bpf.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());

    if !Path::new("/usr/include/bpf/bpf_helpers.h").is_file()
        && std::env::var_os("BPF_INCLUDE").is_none()
    {
        fail(
            "bpf/bpf_helpers.h not found in /usr/include: install the Debian package libbpf-dev \
             (apt-get install libbpf-dev), or set BPF_INCLUDE to the directory that holds bpf/"
                .into(),
        );
    }
    println!("cargo:rerun-if-env-changed=BPF_INCLUDE");
    let Some(asm_dir) = host_asm_dir() else {
        fail(
            "asm/types.h not found under /usr/include: install the Debian package linux-libc-dev"
                .into(),
        );
    };

    let mut cmd = Command::new(&clang);
    cmd.args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"]);
    if let Some(dir) = std::env::var_os("BPF_INCLUDE") {
        cmd.arg("-I").arg(dir);
    }
    cmd.arg("-idirafter").arg(&asm_dir);
    cmd.arg("-c").arg(SOURCE).arg("-o").arg(&object);
    match cmd.status() {
        Ok(status) if status.success() => {}
        Ok(status) => fail(format!(
            "`{clang} -target bpf` failed on {SOURCE} ({status})"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(format!(
            "`{clang}` not found: the BPF programs are compiled at build time; install the Debian \
             package clang (apt-get install clang), or set CLANG to a clang that has the BPF target"
        )),
        Err(e) => fail(format!("cannot run `{clang}`: {e}")),
    }
}
