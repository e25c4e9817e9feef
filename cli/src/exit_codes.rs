//! The command's exit codes, defined once: `fail.rs` maps failures to them, and the tests
//! (`cli/tests/*.rs` with `#[path]`, the node agent's Python tests by reading this file) take
//! them from here. Documented in `--help` and `cli/README.md`.

/// Something else failed (an I/O error, or `apply` failed on some sockets).
pub const OTHER: i32 = 1;
/// A bad command line or option value (clap uses 2 for its own usage errors too).
pub const USAGE: i32 = 2;
/// The process does not exist (ESRCH).
pub const GONE: i32 = 3;
/// Not permitted to read the process's descriptors (EPERM/EACCES).
pub const PERMISSION: i32 = 4;
/// The kernel has no `pidfd_open`/`pidfd_getfd` (ENOSYS: before Linux 5.6).
pub const NO_PIDFD: i32 = 5;
/// `run`, `install-preload`: `libkeepalive.so` was not found.
pub const NO_PRELOAD: i32 = 6;
/// `apply`: no TCP socket of the process matched.
pub const NO_MATCH: i32 = 7;
/// `cgroup`: the path is no cgroup v2 directory (not a directory, cgroup v1, a plain directory).
pub const NOT_CGROUP2: i32 = 8;
/// `cgroup`: not permitted to load or attach BPF programs (needs CAP_BPF + CAP_NET_ADMIN).
pub const BPF_PERMISSION: i32 = 9;
/// `cgroup`: the kernel cannot (older than 5.9, no BPF or cgroup BPF).
pub const KERNEL_UNSUPPORTED: i32 = 10;
/// `cgroup`: no BPF file system for the pins, and none could be mounted.
pub const NO_BPFFS: i32 = 11;
/// `cgroup detach/status`: not attached to that cgroup.
pub const NOT_ATTACHED: i32 = 12;
/// `cgroup`: another program holds the cgroup exclusively (attached without multi).
pub const EXCLUSIVE: i32 = 13;
/// `cgroup agent`: neither kubepods.slice nor kubepods under the cgroup root.
pub const NO_KUBEPODS: i32 = 14;
/// `cgroup`: the pin root or a pin directory is not root's alone (owner, mode, a link).
pub const UNTRUSTED_PINS: i32 = 15;
/// `cgroup`: another attach or detach held the lock longer than the wait allows.
pub const LOCKED: i32 = 16;
/// `cgroup attach`: the cgroup v2 root (every process of the host) without `--whole-host`.
pub const CGROUP_ROOT: i32 = 17;
/// `measure`: the host name does not resolve, or has no address of the family asked for.
pub const RESOLVE: i32 = 18;
/// `measure`: no connection to HOST:PORT (refused, unreachable, no answer within 10 s); `measure
/// --listen`: the port cannot be listened on.
pub const CONNECT: i32 = 19;
/// `run`: the command exists but could not be executed.
pub const CANNOT_EXECUTE: i32 = 126;
/// `run`: the command was not found.
pub const NOT_FOUND: i32 = 127;
