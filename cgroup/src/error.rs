//! Every way attaching, detaching or reading an attachment can fail, each with its remedy.

use std::io;
use std::path::PathBuf;

/// An error of the kernel door. Each message names the value and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path does not exist or is not a directory.
    #[error("{path}: not a directory ({reason}); give a cgroup v2 directory, e.g. {hint}")]
    NotADirectory {
        /// The path as given.
        path: PathBuf,
        /// What it is instead.
        reason: String,
        /// Where cgroup v2 is mounted here, or a typical path.
        hint: String,
    },
    /// A directory of a cgroup v1 hierarchy (a hybrid system's controller directories).
    #[error("{path} is a cgroup v1 directory; cgroup BPF needs cgroup v2: use the same cgroup under the v2 mount ({hint})")]
    CgroupV1 {
        /// The path as given.
        path: PathBuf,
        /// Where cgroup v2 is mounted here.
        hint: String,
    },
    /// A directory that is no cgroup at all.
    #[error("{path} is not a cgroup v2 directory (its file system is {fs}); give one under the cgroup v2 mount ({hint})")]
    NotCgroup {
        /// The path as given.
        path: PathBuf,
        /// The file system's magic number, as hex.
        fs: String,
        /// Where cgroup v2 is mounted here.
        hint: String,
    },
    /// EPERM/EACCES from the kernel while loading, attaching or pinning.
    #[error("not permitted to {what} ({source}): {hint}", hint = permission_hint())]
    Permission {
        /// What was refused.
        what: String,
        /// The kernel's error.
        source: io::Error,
    },
    /// The kernel is older than 5.9 or lacks BPF / cgroup BPF.
    #[error("this kernel cannot run the kernel door: {reason}; it needs Linux 5.9 or later with CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF (use `tcp-keepalive run` or `apply` instead)")]
    KernelUnsupported {
        /// What is missing, e.g. `"Linux 5.4.0 is older than 5.9"`.
        reason: String,
    },
    /// No BPF file system for the pins, and none could be mounted.
    #[error("the BPF file system is not available at {path}: {reason}; mount it (`mount -t bpf bpf /sys/fs/bpf`) or set TCP_KEEPALIVE_PIN_ROOT to a directory on one")]
    Bpffs {
        /// The pin directory.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// Another program holds the cgroup, or a cgroup above it, exclusively (attached without
    /// BPF_F_ALLOW_MULTI); `path` is the cgroup that holds it.
    #[error("{path} already has a {program} program attached exclusively (without BPF_F_ALLOW_MULTI), so no other may join it or a cgroup below it ({source}); detach it or attach it with `multi`")]
    Exclusive {
        /// The cgroup.
        path: PathBuf,
        /// `sock_ops` or `setsockopt`.
        program: &'static str,
        /// The kernel's error.
        source: io::Error,
    },
    /// The pin root or a pin directory is not ours alone: not owned by root, writable by group
    /// or others, or a symbolic link. Nothing is attached, read or removed through it.
    #[error("{path} is not safe to keep pins in: {reason}; the pin root and its directories must be root's and writable by root only (`chown root:root {path} && chmod 0700 {path}`, or remove it and let attach make it; mount bpffs with `-o mode=0700`)")]
    UntrustedPins {
        /// The directory refused.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Pins in one attachment's directory that are not one attachment of ours (a replaced map,
    /// a link running another program): nothing is read from or written to them.
    #[error("the pins in {pins} are not one attachment of tcp-keepalive ({reason}); nothing was read from or written to them; `tcp-keepalive cgroup detach` removes them, then attach again")]
    ForeignPins {
        /// The pin directory.
        pins: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// Another attach or detach held the pin root's lock for longer than the wait allows.
    #[error("another tcp-keepalive holds the lock {path} (waited {}ms); try again once it is done, or raise TCP_KEEPALIVE_LOCK_TIMEOUT", waited.as_millis())]
    Locked {
        /// The lock directory.
        path: PathBuf,
        /// How long this process waited.
        waited: std::time::Duration,
    },
    /// The kernel refused to attach (EPERM) although we have the privileges and no program
    /// holds the cgroup or an ancestor exclusively: a seccomp filter or an LSM said no.
    #[error("the kernel refused to {what} ({source}) although no program holds it or a cgroup above it exclusively: a seccomp filter or an LSM (SELinux, AppArmor, a BPF LSM) denied it; allow bpf(BPF_LINK_CREATE) for this process (e.g. seccomp Unconfined) or check the LSM's log")]
    Refused {
        /// What was refused.
        what: String,
        /// The kernel's error.
        source: io::Error,
    },
    /// The cgroup v2 root: attaching there covers every process of the host.
    #[error("{path} is the cgroup v2 root: attaching there covers every process of the host (an empty $POD_CGROUP or similar?); give the cgroup meant, or pass --whole-host to attach to every process on purpose")]
    CgroupRoot {
        /// The root as given.
        path: PathBuf,
    },
    /// `detach` or `status` of a cgroup we are not attached to.
    #[error("tcp-keepalive is not attached to {path} (no pins in {pins})")]
    NotAttached {
        /// The cgroup.
        path: PathBuf,
        /// The pin directory looked at.
        pins: PathBuf,
    },
    /// A pinned settings map that does not hold valid settings (made by another version?).
    #[error("the settings pinned at {pins} are not valid ({reason}); `tcp-keepalive cgroup detach` and attach again")]
    BadMap {
        /// The pin directory.
        pins: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Anything else, with what was being done.
    #[error("cannot {what}: {source}")]
    Other {
        /// What was being done, e.g. `"load the sock_ops program"`.
        what: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The first `io::Error` in an error's chain, if any.
pub(crate) fn io_cause<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io);
        }
        next = e.source();
    }
    None
}

impl Error {
    /// Classifies a loader error by the kernel's errno: permission, a kernel without BPF, else
    /// `Other` with `what`.
    pub(crate) fn from_bpf(
        what: &str,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        let errno = io_cause(&err).and_then(io::Error::raw_os_error);
        match errno {
            Some(libc::EPERM | libc::EACCES) => Error::Permission {
                what: what.to_string(),
                source: io::Error::from_raw_os_error(errno.unwrap_or(libc::EPERM)),
            },
            Some(libc::ENOSYS) => Error::KernelUnsupported {
                reason: format!("the bpf() system call is missing ({what}: ENOSYS)"),
            },
            _ => Error::Other {
                what: what.to_string(),
                source: Box::new(err),
            },
        }
    }

    pub(crate) fn other(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Other {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Why the kernel said no, as far as this process can tell: without CAP_BPF and CAP_NET_ADMIN
/// that is the fix; with both in its effective set a seccomp filter (a container runtime's default
/// profile allows bpf(2) only with CAP_SYS_ADMIN) or an LSM refused the call, and naming the
/// capabilities again would send the operator the wrong way.
fn permission_hint() -> &'static str {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_BPF: u32 = 39;
    let effective = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        });
    match effective {
        Some(caps) if caps & (1 << CAP_BPF) != 0 && caps & (1 << CAP_NET_ADMIN) != 0 => {
            "this process has CAP_BPF and CAP_NET_ADMIN, so a seccomp filter or an LSM refused the call (a container needs seccomp Unconfined: the runtime's default profile allows bpf(2) only with CAP_SYS_ADMIN)"
        }
        _ => "needs CAP_BPF and CAP_NET_ADMIN (or root), e.g. `sudo tcp-keepalive cgroup ...`",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errors_are_classified_by_errno() {
        let e = Error::from_bpf(
            "load the sock_ops program",
            io::Error::from_raw_os_error(libc::EPERM),
        );
        assert!(matches!(e, Error::Permission { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("not permitted to load the sock_ops program")
                && msg.contains("CAP_BPF and CAP_NET_ADMIN"),
            "{msg}"
        );
        let e = Error::from_bpf("x", io::Error::from_raw_os_error(libc::EACCES));
        assert!(matches!(e, Error::Permission { .. }), "{e:?}");
        let e = Error::from_bpf(
            "load the BPF object",
            io::Error::from_raw_os_error(libc::ENOSYS),
        );
        assert!(matches!(e, Error::KernelUnsupported { .. }), "{e:?}");
        assert!(e.to_string().contains("Linux 5.9 or later"), "{e}");
        let e = Error::from_bpf(
            "write the settings map",
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert!(matches!(e, Error::Other { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with("cannot write the settings map: "),
            "{e}"
        );
    }

    #[test]
    fn the_errno_is_found_down_the_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] io::Error);
        let e = Error::from_bpf("pin", Outer(io::Error::from_raw_os_error(libc::EPERM)));
        assert!(matches!(e, Error::Permission { .. }), "{e:?}");
    }
}
