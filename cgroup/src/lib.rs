//! The kernel door of tcp-keepalive: every TCP connection made or accepted in a cgroup v2 (a
//! pod, a systemd service, a whole node's `kubepods`) gets the operator's keep-alive, whatever
//! the program's language or libc, static Go binaries included.
//!
//! Two BPF programs (C in `bpf/keepalive.bpf.c`, compiled by clang at build time and embedded)
//! share one settings map:
//!
//! - a `sock_ops` program sets `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`, `TCP_USER_TIMEOUT`
//!   (when asked for) and `SO_KEEPALIVE` on every connection before its SYN and once established;
//! - a `cgroup/setsockopt` program, while enforcement is on, keeps the operator's settings a
//!   ceiling: a program may choose shorter timings but cannot turn keep-alive off or lengthen them
//!   (Go sets 15/15/9 on every connection right after connect).
//!
//! One attachment per cgroup, with its own map, pinned under the BPF file system in
//! `<pin root>/<cgroup id>/{settings,counters,sock_ops,setsockopt}` so it outlives this process.
//! Links are used (Linux 5.7+), so other programs attached to the cgroup stay attached.
//!
//! ```no_run
//! use tcp_keepalive::KeepAlive;
//! use tcp_keepalive_cgroup::{Attachments, Cgroup};
//!
//! let cgroup = Cgroup::open("/sys/fs/cgroup/kubepods.slice")?;
//! let attachments = Attachments::from_env()?;
//! attachments.attach(&cgroup, &KeepAlive::default(), true)?;
//! println!("{:?}", attachments.status(&cgroup)?);
//! # Ok::<(), tcp_keepalive_cgroup::Error>(())
//! ```
#![warn(missing_docs)]

mod error;
mod map;
mod sys;

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::maps::{Array, Map, MapData, PerCpuArray};
use aya::programs::{CgroupSockopt, SockOps};
use aya::{Ebpf, EbpfLoader};
use tcp_keepalive::KeepAlive;

pub use error::Error;
use map::{MapCounters, MapSettings};

/// The BPF object compiled from `bpf/keepalive.bpf.c` by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/keepalive.bpf.o"));

/// Where attachments are pinned unless `TCP_KEEPALIVE_PIN_ROOT` says otherwise.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/tcp-keepalive";
/// The environment variable that moves the pin root (tests, a second agent).
pub const PIN_ROOT_ENV: &str = "TCP_KEEPALIVE_PIN_ROOT";
/// The oldest kernel whose `bpf_setsockopt` takes the keep-alive options (commit f9bcf96837f1).
pub const MIN_KERNEL: (u32, u32) = (5, 9);

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The pins of one attachment, inside its directory.
const PIN_SETTINGS: &str = "settings";
const PIN_COUNTERS: &str = "counters";
const PIN_SOCK_OPS: &str = "sock_ops";
const PIN_SETSOCKOPT: &str = "setsockopt";
const PINS: [&str; 4] = [PIN_SOCK_OPS, PIN_SETSOCKOPT, PIN_SETTINGS, PIN_COUNTERS];

fn statfs_magic(path: &Path) -> io::Result<i64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statfs into a zeroed buffer we own, with a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs by architecture
    Ok(st.f_type as i64)
}

/// The cgroup v2 mount point, from `/proc/mounts` (`/sys/fs/cgroup` on a unified system,
/// `/sys/fs/cgroup/unified` on a hybrid one).
pub fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (_, dir, fs) = (f.next()?, f.next()?, f.next()?);
        (fs == "cgroup2").then(|| PathBuf::from(unescape_mount(dir)))
    })
}

/// `/proc/mounts` writes spaces and the like as octal escapes (`\040`).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mount_hint() -> String {
    cgroup2_mount().map_or_else(
        || "none is mounted here: `mount -t cgroup2 none /sys/fs/cgroup`".into(),
        |m| format!("{}/...", m.display()),
    )
}

/// A cgroup v2 directory, checked: it exists, is a directory, and is on cgroup2fs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    path: PathBuf,
    id: u64,
}

impl Cgroup {
    /// Checks that `path` is a cgroup v2 directory (not a cgroup v1 controller directory, not a
    /// plain directory) and reads its id.
    pub fn open(path: impl AsRef<Path>) -> Result<Cgroup, Error> {
        let path = path.as_ref().to_path_buf();
        let not_dir = |reason: String| Error::NotADirectory {
            path: path.clone(),
            reason,
            hint: mount_hint(),
        };
        let meta = std::fs::metadata(&path).map_err(|e| not_dir(e.to_string()))?;
        if !meta.is_dir() {
            return Err(not_dir("a file".into()));
        }
        let magic = statfs_magic(&path).map_err(|e| not_dir(e.to_string()))?;
        match magic {
            CGROUP2_SUPER_MAGIC => Ok(Cgroup {
                // On cgroup2fs a directory's inode number is the cgroup id (64-bit kernfs ids).
                id: meta.ino(),
                // `.` or a symlink shown as the directory it is.
                path: std::fs::canonicalize(&path).unwrap_or(path),
            }),
            CGROUP_SUPER_MAGIC => Err(Error::CgroupV1 {
                path,
                hint: mount_hint(),
            }),
            other => Err(Error::NotCgroup {
                path,
                fs: format!("{other:#x}"),
                hint: mount_hint(),
            }),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kernel's cgroup id (what `bpf_get_current_cgroup_id` returns; names the pin directory).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The PIDs in this cgroup and every cgroup below it (`cgroup.procs`, as this process's PID
    /// namespace sees them), sorted; processes that move meanwhile may be missed.
    pub fn processes(&self) -> Result<Vec<i32>, Error> {
        let mut pids = Vec::new();
        let mut dirs = vec![self.path.clone()];
        // Bounded: a cgroup tree has at most a few hundred thousand directories.
        let mut budget = 1_000_000usize;
        while let Some(dir) = dirs.pop() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                break;
            }
            match std::fs::read_to_string(dir.join("cgroup.procs")) {
                Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
                // Removed since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::other(
                        format!("read {}/cgroup.procs", dir.display()),
                        e,
                    ))
                }
            }
            if let Ok(entries) = std::fs::read_dir(&dir) {
                dirs.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }
}

/// What [`Attachments::attach`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// The programs were attached and pinned.
    New,
    /// Already attached: the settings map was updated in place.
    Updated,
}

/// One attachment as read back from its pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The cgroup id (the pin directory's name).
    pub cgroup_id: u64,
    /// The cgroup's directory under the cgroup v2 mount, `None` when it no longer exists.
    pub cgroup_path: Option<PathBuf>,
    /// The pin directory.
    pub pins: PathBuf,
    /// The settings in the map.
    pub keepalive: KeepAlive,
    /// Whether the program's own writes are capped.
    pub enforce: bool,
    /// Connections given the settings so far (established callbacks, summed over CPUs).
    pub configured: u64,
    /// Program writes rewritten by enforcement so far.
    pub capped: u64,
    /// Whether both program links are still pinned.
    pub links_pinned: bool,
    /// Whether both links are attached to this cgroup (false once the cgroup was removed: its
    /// links are then defunct and only the pins remain; `detach` cleans them up).
    pub linked: bool,
}

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

fn check_kernel() -> Result<(), Error> {
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
fn raise_memlock() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct; failure is harmless (newer kernels ignore it).
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
}

/// Loads the object and both programs into the kernel, not attached anywhere.
fn load(settings: &MapSettings) -> Result<Ebpf, Error> {
    check_kernel()?;
    raise_memlock();
    // One loader per process: EbpfLoader::new() reads and parses the kernel's BTF (several MB)
    // every time, most of an attach's CPU in an agent that attaches per pod.
    static LOADER: std::sync::OnceLock<std::sync::Mutex<EbpfLoader<'static>>> =
        std::sync::OnceLock::new();
    let mut ebpf = LOADER
        .get_or_init(|| std::sync::Mutex::new(EbpfLoader::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .load(OBJECT)
        .map_err(|e| Error::from_bpf("load the BPF object (create its maps)", e))?;
    {
        let map = ebpf
            .map_mut(PIN_SETTINGS)
            .ok_or_else(|| Error::other("find the settings map", "missing in the object"))?;
        let mut array: Array<&mut MapData, MapSettings> =
            Array::try_from(map).map_err(|e| Error::other("open the settings map", e))?;
        array
            .set(0, settings, 0)
            .map_err(|e| Error::from_bpf("write the settings map", e))?;
    }
    let sock_ops: &mut SockOps = program(&mut ebpf, "set_keepalive")?;
    sock_ops
        .load()
        .map_err(|e| Error::from_bpf("load the sock_ops program", e))?;
    let setsockopt: &mut CgroupSockopt = program(&mut ebpf, "enforce_keepalive")?;
    setsockopt
        .load()
        .map_err(|e| Error::from_bpf("load the cgroup/setsockopt program", e))?;
    Ok(ebpf)
}

fn program<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, Error>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = ebpf
        .program_mut(name)
        .ok_or_else(|| Error::other(format!("find program {name}"), "missing in the object"))?;
    p.try_into()
        .map_err(|e| Error::other(format!("open program {name}"), e))
}

/// Checks that this machine and this process can run the kernel door: the kernel's version,
/// and loading both programs (nothing is attached). For `doctor`.
pub fn probe() -> Result<(), Error> {
    load(&MapSettings::new(&KeepAlive::default(), true)).map(drop)
}

/// The attachments under one pin root: attach, update, detach, read back.
#[derive(Debug, Clone)]
pub struct Attachments {
    pin_root: PathBuf,
}

impl Attachments {
    /// Attachments pinned under `pin_root` (a directory on a BPF file system, made if missing).
    pub fn new(pin_root: impl Into<PathBuf>) -> Attachments {
        Attachments {
            pin_root: pin_root.into(),
        }
    }

    /// Under `TCP_KEEPALIVE_PIN_ROOT`, else [`DEFAULT_PIN_ROOT`]. An empty or relative value is
    /// an error that names it.
    pub fn from_env() -> Result<Attachments, Error> {
        match std::env::var_os(PIN_ROOT_ENV) {
            None => Ok(Attachments::new(DEFAULT_PIN_ROOT)),
            Some(v) if Path::new(&v).is_absolute() => Ok(Attachments::new(v)),
            Some(v) => Err(Error::Bpffs {
                path: PathBuf::from(&v),
                reason: format!(
                    "{PIN_ROOT_ENV}={:?} is not an absolute path",
                    v.to_string_lossy()
                ),
            }),
        }
    }

    /// The pin root.
    pub fn pin_root(&self) -> &Path {
        &self.pin_root
    }

    /// The pin directory of one cgroup.
    pub fn pins_of(&self, cgroup: &Cgroup) -> PathBuf {
        self.pin_root.join(cgroup.id.to_string())
    }

    /// Makes sure the pin root exists on a BPF file system, mounting one at /sys/fs/bpf when
    /// that is where it belongs and nothing is mounted there.
    fn ensure_bpffs(&self) -> Result<(), Error> {
        let bpffs_error = |reason: String| Error::Bpffs {
            path: self.pin_root.clone(),
            reason,
        };
        let mut existing = self.pin_root.as_path();
        while !existing.exists() {
            existing = existing
                .parent()
                .ok_or_else(|| bpffs_error("no existing parent directory".into()))?;
        }
        let magic = statfs_magic(existing).map_err(|e| bpffs_error(e.to_string()))?;
        if magic != BPF_FS_MAGIC {
            let default_mount = Path::new("/sys/fs/bpf");
            if !(existing == default_mount && self.pin_root.starts_with(default_mount)) {
                return Err(bpffs_error(format!(
                    "{} is not on a BPF file system",
                    existing.display()
                )));
            }
            sys::mount_bpffs(default_mount).map_err(|e| match e.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => Error::Permission {
                    what: "mount the BPF file system at /sys/fs/bpf".into(),
                    source: e,
                },
                _ => bpffs_error(format!("mounting it at /sys/fs/bpf failed: {e}")),
            })?;
        }
        std::fs::create_dir_all(&self.pin_root).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => Error::Permission {
                what: format!("create {}", self.pin_root.display()),
                source: e,
            },
            _ => bpffs_error(format!("creating it failed: {e}")),
        })
    }

    /// An exclusive lock on the pin root, held while pins are checked, made or removed, so
    /// attaches and detaches by several processes (an agent restarting while someone attaches
    /// by hand) take turns. Released when the returned descriptor is dropped.
    fn lock(&self) -> Result<File, Error> {
        let dir = File::open(&self.pin_root).map_err(|e| pin_error(&self.pin_root, e))?;
        // SAFETY: flock on a descriptor we own; it blocks until the other holder is done
        // (they hold it for the few milliseconds an attach takes).
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(pin_error(&self.pin_root, io::Error::last_os_error()));
        }
        Ok(dir)
    }

    /// Attaches both programs to `cgroup` with these settings, or, when already attached,
    /// updates its settings map in place (links stay, no connection is missed). Enforcement on
    /// caps the programs' own keep-alive writes (see the crate's README).
    ///
    /// Nothing is left half-attached: on any failure the links made are detached and the pins
    /// made are removed.
    pub fn attach(
        &self,
        cgroup: &Cgroup,
        keepalive: &KeepAlive,
        enforce: bool,
    ) -> Result<Attached, Error> {
        let settings = MapSettings::new(keepalive, enforce);
        check_kernel()?;
        self.ensure_bpffs()?;
        let _lock = self.lock()?;
        let dir = self.pins_of(cgroup);
        if PINS.iter().all(|p| dir.join(p).exists()) && links_attached(&dir, cgroup.id) {
            write_settings(&dir, settings)?;
            return Ok(Attached::Updated);
        }
        // A directory with only some of the pins (a crash mid-way) or with defunct links:
        // start again from nothing.
        remove_pins(&dir)?;

        let mut ebpf = load(&settings)?;
        let cgroup_dir = File::open(&cgroup.path)
            .map_err(|e| Error::other(format!("open {}", cgroup.path.display()), e))?;
        let attach_error = |program: &'static str, e: io::Error| {
            let what = format!("attach the {program} program to {}", cgroup.path.display());
            match e.raw_os_error() {
                // Root may attach: EPERM here means a program holds the cgroup exclusively.
                Some(libc::EPERM) if is_root() => Error::Exclusive {
                    path: cgroup.path.clone(),
                    program,
                    source: e,
                },
                Some(libc::EINVAL | libc::EOPNOTSUPP) => Error::KernelUnsupported {
                    reason: format!("{what}: {e} (no cgroup BPF links: needs Linux 5.7+)"),
                },
                _ => Error::from_bpf(&what, e),
            }
        };
        // Links (flags 0, aya's default mode): multi-attach by nature, other programs stay.
        let sock_ops: &mut SockOps = program(&mut ebpf, "set_keepalive")?;
        let prog = sock_ops
            .fd()
            .map_err(|e| Error::other("get the sock_ops program's descriptor", e))?;
        let sock_ops_link =
            sys::link_create(prog.as_fd(), cgroup_dir.as_fd(), sys::BPF_CGROUP_SOCK_OPS)
                .map_err(|e| attach_error("sock_ops", e))?;
        let setsockopt: &mut CgroupSockopt = program(&mut ebpf, "enforce_keepalive")?;
        let prog = setsockopt
            .fd()
            .map_err(|e| Error::other("get the setsockopt program's descriptor", e))?;
        let setsockopt_link =
            sys::link_create(prog.as_fd(), cgroup_dir.as_fd(), sys::BPF_CGROUP_SETSOCKOPT)
                .map_err(|e| {
                    // Nothing half-attached, and at once (not when the kernel frees the link).
                    let _ = sys::link_detach(sock_ops_link.as_fd());
                    attach_error("setsockopt", e)
                })?;

        // Under the lock nobody else makes this directory; should a process that ignores it
        // (an older version) have made it meanwhile, ours go and its attachment is updated.
        let links = [
            (PIN_SOCK_OPS, sock_ops_link),
            (PIN_SETSOCKOPT, setsockopt_link),
        ];
        let undo_links = || {
            for (_, link) in &links {
                let _ = sys::link_detach(link.as_fd());
            }
        };
        if let Err(e) = std::fs::create_dir(&dir) {
            undo_links();
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(pin_error(&dir, e));
            }
            return self.update_when_pinned(&dir, cgroup, settings);
        }
        // Until every pin is made, dropping the links detaches them again.
        let pinned = (|| -> Result<(), Error> {
            for name in [PIN_SETTINGS, PIN_COUNTERS] {
                let map = ebpf
                    .map(name)
                    .ok_or_else(|| Error::other(format!("find map {name}"), "missing"))?;
                map_data(map)
                    .pin(dir.join(name))
                    .map_err(|e| pin_error(&dir, io_of(&e)))?;
            }
            for (name, link) in &links {
                sys::pin(link.as_fd(), &dir.join(name)).map_err(|e| pin_error(&dir, e))?;
            }
            Ok(())
        })();
        if let Err(e) = pinned {
            undo_links();
            let _ = remove_pins(&dir);
            return Err(e);
        }
        Ok(Attached::New)
    }

    /// The concurrent attach's pins, once complete (bounded wait), get our settings.
    fn update_when_pinned(
        &self,
        dir: &Path,
        cgroup: &Cgroup,
        settings: MapSettings,
    ) -> Result<Attached, Error> {
        for _ in 0..100 {
            if PINS.iter().all(|p| dir.join(p).exists()) && links_attached(dir, cgroup.id) {
                write_settings(dir, settings)?;
                return Ok(Attached::Updated);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(Error::other(
            format!("attach to {}", cgroup.path.display()),
            format!(
                "{} appeared while attaching and is still incomplete (another tcp-keepalive attaching at the same time?); run attach again",
                dir.display()
            ),
        ))
    }

    /// Detaches our programs from `cgroup` (at once) and removes its pins; other programs stay
    /// attached.
    /// New connections then get the system defaults again; existing ones keep their settings.
    pub fn detach(&self, cgroup: &Cgroup) -> Result<(), Error> {
        let dir = self.pins_of(cgroup);
        self.detach_dir(&dir, cgroup.path())
    }

    /// Detaches the attachment of a cgroup id, also one whose cgroup is gone.
    pub fn detach_id(&self, cgroup_id: u64) -> Result<(), Error> {
        let dir = self.pin_root.join(cgroup_id.to_string());
        self.detach_dir(&dir, Path::new(&format!("cgroup id {cgroup_id}")))
    }

    fn detach_dir(&self, dir: &Path, what: &Path) -> Result<(), Error> {
        let _lock = if self.pin_root.is_dir() {
            Some(self.lock()?)
        } else {
            None
        };
        if !dir.is_dir() {
            return Err(Error::NotAttached {
                path: what.to_path_buf(),
                pins: dir.to_path_buf(),
            });
        }
        remove_pins(dir)
    }

    /// The attachment of one cgroup, read back from its pins.
    pub fn status(&self, cgroup: &Cgroup) -> Result<Status, Error> {
        let dir = self.pins_of(cgroup);
        if !dir.join(PIN_SETTINGS).exists() {
            return Err(Error::NotAttached {
                path: cgroup.path.clone(),
                pins: dir,
            });
        }
        let mut s = read_status(&dir, cgroup.id)?;
        s.cgroup_path = Some(cgroup.path.clone());
        Ok(s)
    }

    /// Removes the pins of attachments whose cgroup is gone (their links are defunct: the
    /// kernel reports them attached to no cgroup). Returns the cgroup ids cleaned up.
    pub fn remove_defunct(&self) -> Result<Vec<u64>, Error> {
        let mut removed = Vec::new();
        for s in self.list()? {
            if s.links_pinned && !s.linked {
                self.detach_id(s.cgroup_id)?;
                removed.push(s.cgroup_id);
            }
        }
        Ok(removed)
    }

    /// Every attachment under the pin root, by cgroup id. A missing pin root means none.
    pub fn list(&self) -> Result<Vec<Status>, Error> {
        let entries = match std::fs::read_dir(&self.pin_root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
                return Err(Error::Permission {
                    what: format!("read {}", self.pin_root.display()),
                    source: e,
                })
            }
            Err(e) => return Err(Error::other(format!("read {}", self.pin_root.display()), e)),
        };
        let mut ids: Vec<u64> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        ids.sort_unstable();
        let paths = find_cgroups(&ids);
        ids.into_iter()
            .map(|id| {
                let mut s = read_status(&self.pin_root.join(id.to_string()), id)?;
                s.cgroup_path = paths.get(&id).cloned();
                Ok(s)
            })
            .collect()
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn io_of(e: &(dyn std::error::Error + 'static)) -> io::Error {
    match error::io_cause(e) {
        Some(io) => io.raw_os_error().map_or_else(
            || io::Error::new(io.kind(), e.to_string()),
            io::Error::from_raw_os_error,
        ),
        None => io::Error::other(e.to_string()),
    }
}

fn pin_error(dir: &Path, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => Error::Permission {
            what: format!("pin in {}", dir.display()),
            source: e,
        },
        _ => Error::Bpffs {
            path: dir.to_path_buf(),
            reason: format!("pinning failed: {e}"),
        },
    }
}

fn map_data(map: &Map) -> &MapData {
    match map {
        Map::Array(d) | Map::PerCpuArray(d) => d,
        // The object has only these two kinds; anything else would be a build mistake.
        other => unreachable!("unexpected map kind {other:?}"),
    }
}

fn open_map(dir: &Path, name: &str) -> Result<Map, Error> {
    let data = MapData::from_pin(dir.join(name))
        .map_err(|e| Error::from_bpf(&format!("open {}", dir.join(name).display()), e))?;
    Map::from_map_data(data).map_err(|e| Error::BadMap {
        pins: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Removes our pins (which detaches the links once nothing else holds them) and the directory.
fn remove_pins(dir: &Path) -> Result<(), Error> {
    if !dir.exists() {
        return Ok(());
    }
    for name in PINS {
        let path = dir.join(name);
        // Detached now, not when the kernel gets round to freeing the link; a pin that is no
        // link (or a kernel before 5.9) is just removed.
        if name == PIN_SOCK_OPS || name == PIN_SETSOCKOPT {
            if let Ok(link) = sys::obj_get(&path) {
                let _ = sys::link_detach(link.as_fd());
            }
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(pin_error(dir, e)),
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(pin_error(dir, e)),
    }
}

fn read_status(dir: &Path, cgroup_id: u64) -> Result<Status, Error> {
    let bad = |reason: String| Error::BadMap {
        pins: dir.to_path_buf(),
        reason,
    };
    let array: Array<MapData, MapSettings> =
        Array::try_from(open_map(dir, PIN_SETTINGS)?).map_err(|e| bad(e.to_string()))?;
    let settings = array
        .get(&0, 0)
        .map_err(|e| Error::from_bpf("read the settings map", e))?;
    if settings.layout != map::SETTINGS_LAYOUT {
        return Err(bad(format!(
            "layout {} where {} was expected",
            settings.layout,
            map::SETTINGS_LAYOUT
        )));
    }
    let keepalive = settings.keepalive().map_err(|e| bad(e.to_string()))?;
    let (mut configured, mut capped) = (0, 0);
    if let Ok(map) = open_map(dir, PIN_COUNTERS) {
        if let Ok(counters) = PerCpuArray::<MapData, MapCounters>::try_from(map) {
            if let Ok(per_cpu) = counters.get(&0, 0) {
                for c in per_cpu.iter() {
                    configured += c.configured;
                    capped += c.capped;
                }
            }
        }
    }
    Ok(Status {
        cgroup_id,
        cgroup_path: None,
        pins: dir.to_path_buf(),
        keepalive,
        enforce: settings.enforce != 0,
        configured,
        capped,
        links_pinned: dir.join(PIN_SOCK_OPS).exists() && dir.join(PIN_SETSOCKOPT).exists(),
        linked: links_attached(dir, cgroup_id),
    })
}

/// Writes the one entry of the pinned settings map: an update in place.
fn write_settings(dir: &Path, settings: MapSettings) -> Result<(), Error> {
    let map = open_map(dir, PIN_SETTINGS)?;
    let mut array: Array<MapData, MapSettings> =
        Array::try_from(map).map_err(|e| Error::other("open the pinned settings map", e))?;
    array
        .set(0, settings, 0)
        .map_err(|e| Error::from_bpf("update the pinned settings map", e))
}

/// Whether both pinned links are attached to this cgroup (a removed cgroup's are at id 0).
fn links_attached(dir: &Path, cgroup_id: u64) -> bool {
    [PIN_SOCK_OPS, PIN_SETSOCKOPT].iter().all(|name| {
        sys::obj_get(&dir.join(name))
            .and_then(|fd| sys::link_cgroup_id(fd.as_fd()))
            .is_ok_and(|id| id == cgroup_id)
    })
}

/// The directories of these cgroup ids under the cgroup v2 mount (a bounded walk).
fn find_cgroups(ids: &[u64]) -> std::collections::HashMap<u64, PathBuf> {
    let mut found = std::collections::HashMap::new();
    let Some(root) = cgroup2_mount() else {
        return found;
    };
    let mut dirs = vec![root];
    let mut budget = 1_000_000usize;
    while let Some(dir) = dirs.pop() {
        if found.len() == ids.len() || budget == 0 {
            break;
        }
        budget -= 1;
        if let Ok(meta) = std::fs::metadata(&dir) {
            if ids.contains(&meta.ino()) {
                found.insert(meta.ino(), dir.clone());
            }
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    found
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

    #[test]
    fn mount_escapes() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }

    #[test]
    fn embedded_object_is_bpf() {
        // ELF, 64-bit, EM_BPF (247).
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        assert_eq!(u16::from_le_bytes([OBJECT[18], OBJECT[19]]), 247);
    }
}
