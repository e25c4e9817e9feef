//! What the kernel can and says: its version, and the programs attached to a cgroup and its
//! ancestors as the kernel reports them (links, effective programs, exclusive holders).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::cgroupfs::cgroup2_mount;
use crate::pins::{PIN_SETSOCKOPT, PIN_SOCK_OPS};
use crate::{sys, Error};

/// The oldest kernel whose `bpf_setsockopt` takes the keep-alive options (commit f9bcf96837f1).
pub const MIN_KERNEL: (u32, u32) = (5, 9);

/// The kernel's release (`uname -r`) and whether it is at least [`MIN_KERNEL`].
pub fn kernel_release() -> (String, bool) {
    // SAFETY: uname into a zeroed buffer we own.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return (String::from("unknown"), false);
    }
    // SAFETY: uname NUL-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let ok = release_at_least(&release, MIN_KERNEL);
    (release, ok)
}

/// `"6.1.0-13-amd64"` against `(5, 9)`: the first two numbers decide.
fn release_at_least(release: &str, min: (u32, u32)) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= min,
        _ => false,
    }
}

pub(crate) fn check_kernel() -> Result<(), Error> {
    match kernel_release() {
        (_, true) => Ok(()),
        (release, false) => Err(Error::KernelUnsupported {
            reason: format!(
                "Linux {release} is older than {}.{} (bpf_setsockopt cannot set keep-alive there)",
                MIN_KERNEL.0, MIN_KERNEL.1
            ),
        }),
    }
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; raise it where we may.
pub(crate) fn raise_memlock() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct; failure is harmless (newer kernels ignore it).
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
}

/// Someone else's BPF program, as the kernel names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherProgram {
    /// The kernel's program id (`bpftool prog show id N`).
    pub id: u32,
    /// Its name, empty when it could not be read (needs CAP_SYS_ADMIN).
    pub name: String,
}

impl std::fmt::Display for OtherProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name.as_str() {
            "" => write!(f, "program id {}", self.id),
            name => write!(f, "program id {} ({name})", self.id),
        }
    }
}

/// The `cgroup/setsockopt` programs that run after ours (pinned in `dir`) on the sockets of
/// the cgroup at `path`, in the kernel's order; `None` when that cannot be read.
pub(crate) fn setsockopt_after_ours(dir: &Path, path: &Path) -> Option<Vec<OtherProgram>> {
    let link = sys::obj_get(&dir.join(PIN_SETSOCKOPT)).ok()?;
    let ours = sys::link_info(link.as_fd()).ok()?.prog_id;
    let cgroup = File::open(path).ok()?;
    let ids = sys::effective_programs(cgroup.as_fd(), sys::BPF_CGROUP_SETSOCKOPT).ok()?;
    let at = ids.iter().position(|id| *id == ours)?;
    Some(
        ids[at + 1..]
            .iter()
            .map(|&id| OtherProgram {
                id,
                name: sys::prog_by_id(id)
                    .and_then(|fd| sys::prog_info(fd.as_fd()))
                    .map(|info| info.name)
                    .unwrap_or_default(),
            })
            .collect(),
    )
}

pub(crate) fn attach_type_of(program: &str) -> u32 {
    if program == "sock_ops" {
        sys::BPF_CGROUP_SOCK_OPS
    } else {
        sys::BPF_CGROUP_SETSOCKOPT
    }
}

/// The cgroup, `path` or one above it up to the cgroup v2 mount, that holds a program of this
/// attach type exclusively (attached without BPF_F_ALLOW_MULTI), which makes the kernel refuse
/// every other attachment at or below it.
pub(crate) fn exclusive_holder(path: &Path, attach_type: u32) -> io::Result<Option<PathBuf>> {
    let top = cgroup2_mount();
    let mut dir = Some(path);
    // Bounded by the path's depth.
    while let Some(d) = dir {
        let f = File::open(d)?;
        let (ids, flags) = sys::attached_programs(f.as_fd(), attach_type)?;
        if !ids.is_empty() && flags & sys::BPF_F_ALLOW_MULTI == 0 {
            return Ok(Some(d.to_path_buf()));
        }
        if top.as_deref() == Some(d) {
            break;
        }
        dir = d.parent();
    }
    Ok(None)
}

/// Whether both pinned links are attached to this cgroup (a removed cgroup's are at id 0).
pub(crate) fn links_attached(dir: &Path, cgroup_id: u64) -> bool {
    [PIN_SOCK_OPS, PIN_SETSOCKOPT].iter().all(|name| {
        sys::obj_get(&dir.join(name))
            .and_then(|fd| sys::link_info(fd.as_fd()))
            .is_ok_and(|info| info.cgroup_id == cgroup_id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert!(release_at_least("5.9.0", (5, 9)));
        assert!(release_at_least("6.1.0-13-amd64", (5, 9)));
        assert!(release_at_least("6.18.44-fc-v1045", (5, 9)));
        assert!(release_at_least("10.0", (5, 9)));
        assert!(!release_at_least("5.8.18", (5, 9)));
        assert!(!release_at_least("4.14.326-245.539.amzn2.x86_64", (5, 9)));
        assert!(!release_at_least("garbage", (5, 9)));
        assert!(!release_at_least("", (5, 9)));
    }
}
