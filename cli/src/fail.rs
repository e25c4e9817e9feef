//! Every way the command can fail: a one-line message with the remedy, and a distinct exit code.

use std::fmt;

/// Exit codes, documented in `--help` and `cli/README.md` (defined in `exit_codes.rs`).
#[path = "exit_codes.rs"]
pub mod code;

/// A failure the user can act on.
#[derive(Debug)]
pub enum Failure {
    /// A bad option value; the message is core's (names the value and what is allowed).
    Usage(String),
    /// The process is gone.
    Gone { pid: i32 },
    /// Not allowed to look into the process.
    Permission { pid: i32, what: String },
    /// The kernel lacks pidfd_open or pidfd_getfd.
    NoPidfd { call: &'static str },
    /// No preload library where it was looked for.
    NoPreload { detail: String },
    /// `apply` found nothing to change.
    NoMatch { pid: i32, detail: String },
    /// `run` could not exec the command.
    Exec {
        command: String,
        error: std::io::Error,
    },
    /// The kernel door failed.
    Kernel(tcp_keepalive_cgroup::Error),
    /// `cgroup agent` found no kubepods cgroup.
    NoKubepods { root: std::path::PathBuf },
    /// `measure`: the target does not resolve.
    Resolve(String),
    /// `measure`: no connection to the target (or no listening socket for `--listen`).
    Connect(String),
    /// Anything else.
    Other(String),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => code::USAGE,
            Failure::Gone { .. } => code::GONE,
            Failure::Permission { .. } => code::PERMISSION,
            Failure::NoPidfd { .. } => code::NO_PIDFD,
            Failure::NoPreload { .. } => code::NO_PRELOAD,
            Failure::NoMatch { .. } => code::NO_MATCH,
            Failure::Exec { error, .. } => {
                if error.kind() == std::io::ErrorKind::NotFound {
                    code::NOT_FOUND
                } else {
                    code::CANNOT_EXECUTE
                }
            }
            Failure::Kernel(e) => {
                use tcp_keepalive_cgroup::Error as K;
                match e {
                    K::NotADirectory { .. } | K::CgroupV1 { .. } | K::NotCgroup { .. } => {
                        code::NOT_CGROUP2
                    }
                    K::Permission { .. } | K::Refused { .. } => code::BPF_PERMISSION,
                    K::UntrustedPins { .. } | K::ForeignPins { .. } => code::UNTRUSTED_PINS,
                    K::Locked { .. } => code::LOCKED,
                    K::CgroupRoot { .. } => code::CGROUP_ROOT,
                    K::KernelUnsupported { .. } => code::KERNEL_UNSUPPORTED,
                    K::Bpffs { .. } => code::NO_BPFFS,
                    K::NotAttached { .. } => code::NOT_ATTACHED,
                    K::Exclusive { .. } => code::EXCLUSIVE,
                    _ => code::OTHER,
                }
            }
            Failure::NoKubepods { .. } => code::NO_KUBEPODS,
            Failure::Resolve(_) => code::RESOLVE,
            Failure::Connect(_) => code::CONNECT,
            Failure::Other(_) => code::OTHER,
        }
    }

    /// An option value that core refused.
    pub fn invalid(err: tcp_keepalive::Error) -> Failure {
        Failure::Usage(err.to_string())
    }
}

/// Whether this process's effective capabilities include CAP_SYS_PTRACE (bit 19), from
/// `/proc/self/status`; `None` when that cannot be read.
fn has_cap_sys_ptrace() -> Option<bool> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let bits = u64::from_str_radix(hex, 16).ok()?;
    Some(bits & (1 << 19) != 0)
}

fn ptrace_scope() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .map(|s| s.trim().to_string())
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(msg) => write!(f, "{msg}"),
            Failure::Gone { pid } => write!(
                f,
                "process {pid} does not exist (it has exited?); find the current PID with `pgrep` or `ss -tnp`"
            ),
            Failure::Permission { pid, what } => {
                // SAFETY: geteuid has no preconditions.
                let root = unsafe { libc::geteuid() } == 0;
                let scope = ptrace_scope();
                match (has_cap_sys_ptrace(), scope.as_deref()) {
                    (_, Some(scope @ "3")) => write!(
                        f,
                        "not permitted to {what} of process {pid}: kernel.yama.ptrace_scope={scope} forbids it for everyone, root too"
                    ),
                    (Some(false), _) if root => write!(
                        f,
                        "not permitted to {what} of process {pid}: this command runs as root but without the CAP_SYS_PTRACE capability (dropped by its container or by capsh/setpriv); give it CAP_SYS_PTRACE (e.g. `docker run --cap-add SYS_PTRACE`, or `securityContext.capabilities.add: [SYS_PTRACE]` in Kubernetes)"
                    ),
                    (Some(true), _) => write!(
                        f,
                        "not permitted to {what} of process {pid} even with CAP_SYS_PTRACE: a security module (SELinux, AppArmor) or the process's user namespace forbids it"
                    ),
                    (_, scope) => {
                        write!(
                            f,
                            "not permitted to {what} of process {pid}: run as root (CAP_SYS_PTRACE, e.g. `sudo tcp-keepalive ...`) or as the process's own user"
                        )?;
                        match scope {
                            Some(scope @ ("1" | "2")) => write!(
                                f,
                                " (kernel.yama.ptrace_scope={scope} also blocks the same user: use root / CAP_SYS_PTRACE)"
                            ),
                            _ => Ok(()),
                        }
                    }
                }
            }
            Failure::NoPidfd { call } => write!(
                f,
                "this kernel has no {call} (ENOSYS): reading another process's sockets needs Linux 5.6 or later; start the program with `tcp-keepalive run -- CMD` instead"
            ),
            Failure::NoPreload { detail } => write!(
                f,
                "{detail}; build it with `cargo build --release -p tcp-keepalive-preload` (target/release/libkeepalive.so, found next to target/release/tcp-keepalive) or pass --preload PATH"
            ),
            Failure::NoMatch { pid, detail } => write!(
                f,
                "{detail}; nothing changed (see `tcp-keepalive inspect --pid {pid}`)"
            ),
            Failure::Exec { command, error } => write!(
                f,
                "cannot run {command}: {error}; check the command name and that it is executable"
            ),
            Failure::Kernel(e) => write!(f, "{e}"),
            Failure::NoKubepods { root } => write!(
                f,
                "neither kubepods.slice (systemd cgroup driver) nor kubepods (cgroupfs) under {}: is this a Kubernetes node, and is --cgroup-root the cgroup v2 mount?",
                root.display()
            ),
            Failure::Resolve(msg) | Failure::Connect(msg) | Failure::Other(msg) => {
                write!(f, "{msg}")
            }
        }
    }
}
