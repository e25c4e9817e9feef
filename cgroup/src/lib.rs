//! The kernel door of tcp-keepalive: every TCP connection made or accepted in a cgroup v2 (a
//! pod, a systemd service, a whole node's `kubepods`) gets the operator's keep-alive, whatever
//! the program's language or libc, static Go binaries included.
//!
//! The operator's settings are a ceiling (docs/design.md, "Who decides"): keep-alive on, each timing
//! the smaller of the program's own choice and the operator's. Two BPF programs (C in
//! `bpf/keepalive.bpf.c`, compiled by clang at build time and embedded) share one settings map:
//!
//! - a `sock_ops` program caps `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT` and
//!   `TCP_USER_TIMEOUT` (when asked for) and sets `SO_KEEPALIVE`: on a connection made here
//!   before its SYN (`TCP_CONNECT_CB`), on one accepted here once established
//!   (`PASSIVE_ESTABLISHED_CB`);
//! - a `cgroup/setsockopt` program, while enforcement is on, caps the program's own writes
//!   (Go sets 15/15/9 on every connection right after connect).
//!
//! One attachment per cgroup, with its own maps, pinned under the BPF file system in
//! `<pin root>/<cgroup id>/` so it outlives this process. Links are used (Linux 5.7+), so other
//! programs attached to the cgroup stay attached.
//!
//! The rooms: `cgroupfs` (the cgroup v2 file system and its one bounded walk), `kernel` (what
//! the kernel can and reports), `load` (the object into the kernel), `pins` (trusted pin
//! directories, the lock, reading and writing pinned maps), `sys` (raw bpf(2) commands), `map`
//! (the map values shared with C); this file holds the attachments built from them.
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

mod cgroupfs;
mod error;
mod kernel;
mod load;
mod map;
mod pins;
mod sys;
mod upgrade;

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use aya::programs::{CgroupSockopt, SockOps};
use tcp_keepalive::KeepAlive;

pub use cgroupfs::{cgroup2_mount, Cgroup};
pub use error::Error;
pub use kernel::{kernel_release, OtherProgram, MIN_KERNEL};
pub use load::probe;

use cgroupfs::{find_cgroups, statfs_magic, BPF_FS_MAGIC};
use kernel::{
    attach_type_of, check_kernel, exclusive_holder, links_attached, setsockopt_after_ours,
};
use load::{io_of, map_data, program};
use map::MapSettings;
pub use pins::DEFAULT_LOCK_TIMEOUT;
use pins::{
    pin_error, remove_pins, PIN_COUNTERS, PIN_SETSOCKOPT, PIN_SETSOCKOPT_PROG, PIN_SETTINGS,
    PIN_SOCK_OPS, PIN_SOCK_OPS_PROG, REQUIRED,
};
use pins::{read_status, write_settings};

/// Where attachments are pinned unless `TCP_KEEPALIVE_PIN_ROOT` says otherwise.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/tcp-keepalive";
/// The environment variable that moves the pin root (tests, a second agent).
pub const PIN_ROOT_ENV: &str = "TCP_KEEPALIVE_PIN_ROOT";
/// The environment variable that bounds the wait for another attach or detach (a duration
/// such as `10s` or `500ms`; default [`DEFAULT_LOCK_TIMEOUT`]).
pub const LOCK_TIMEOUT_ENV: &str = "TCP_KEEPALIVE_LOCK_TIMEOUT";
/// The environment variable that names another compiled BPF object to load instead of the
/// embedded one (see [`Attachments::with_object`]): for testing an upgrade, or running a
/// rebuilt program before a release. Unset in normal use.
pub const BPF_OBJECT_ENV: &str = "TCP_KEEPALIVE_BPF_OBJECT";

/// What [`Attachments::attach`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// The programs were attached and pinned.
    New,
    /// Already attached: the settings map was updated in place.
    Updated,
}

/// What [`Attachments::attach_report`] did, in more detail than [`Attached`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachReport {
    /// New, or an existing attachment adopted (its links kept).
    pub attached: Attached,
    /// Whether the adopted attachment's programs were of another version (another program
    /// tag) than the ones this process loads, and so were replaced in place: both links now
    /// run this version's programs with new maps, swapped by the kernel without a moment in
    /// which a connection goes uncovered (BPF_LINK_UPDATE). Always false for
    /// [`Attached::New`].
    pub replaced: bool,
}

/// Both programs and their maps, loaded into the kernel and attached nowhere: from
/// [`Attachments::load`], for [`Attachments::attach_loaded`]. Dropping it unloads them.
pub struct Loaded {
    ebpf: aya::Ebpf,
    /// The object they came from (`None`: the embedded one).
    object: Option<PathBuf>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").finish_non_exhaustive()
    }
}

/// What [`Attachments::detach_all`] did.
#[derive(Debug, Default)]
pub struct DetachedAll {
    /// The cgroup ids whose links were detached and whose pins were removed.
    pub removed: Vec<u64>,
    /// Attachment directories that could not be removed, each with why (nothing else stopped).
    pub failed: Vec<(PathBuf, Error)>,
    /// Entries of the pin root that are no attachment of ours (not named by a cgroup id, not
    /// the lock): left as they are, and the pin root with them.
    pub left: Vec<PathBuf>,
    /// Whether the pin root itself was removed (nothing was left in it).
    pub pin_root_removed: bool,
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
    /// Whether both links are attached to this cgroup, as the kernel says now (false once the
    /// cgroup was removed, its links then defunct, or once a link was detached by other means,
    /// e.g. `bpftool link detach`; `detach` and attach again repair it).
    pub linked: bool,
    /// The other `cgroup/setsockopt` programs the kernel runs after ours on this cgroup's
    /// sockets (attached later to the same cgroup, or to an ancestor). Any of them may pass a
    /// program's call through (`optlen = 0`, "use the caller's buffer") and so undo
    /// enforcement: while this is not empty, enforcement is not held. `None` when it could not
    /// be read (no CAP_NET_ADMIN, the cgroup gone).
    pub setsockopt_after_ours: Option<Vec<OtherProgram>>,
}

/// One attachment directory as [`Attachments::list_all`] found it.
#[derive(Debug)]
pub struct Listed {
    /// The cgroup id (the directory's name).
    pub cgroup_id: u64,
    /// The cgroup's directory, `None` when no cgroup has this id now.
    pub cgroup_path: Option<PathBuf>,
    /// The pin directory.
    pub pins: PathBuf,
    /// What it holds, or why it cannot be read.
    pub status: Result<Status, Error>,
}

/// The attachments under one pin root: attach, update, detach, read back.
#[derive(Debug, Clone)]
pub struct Attachments {
    pin_root: PathBuf,
    lock_timeout: std::time::Duration,
    whole_host: bool,
    object: Option<PathBuf>,
}

impl Attachments {
    /// Attachments pinned under `pin_root` (a directory on a BPF file system, made if missing).
    pub fn new(pin_root: impl Into<PathBuf>) -> Attachments {
        Attachments {
            pin_root: pin_root.into(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            whole_host: false,
            object: None,
        }
    }

    /// Loads the BPF object compiled into `path` instead of the one embedded in this build.
    /// It must hold the same programs and maps (`bpf/keepalive.bpf.c`, changed or rebuilt):
    /// what it attaches is checked as every attachment is (names, maps), and the settings map's
    /// layout is the embedded one's. An upgrade test loads a changed program this way; nothing
    /// else needs it. [`Attachments::from_env`] takes it from [`BPF_OBJECT_ENV`].
    pub fn with_object(mut self, path: impl Into<PathBuf>) -> Attachments {
        self.object = Some(path.into());
        self
    }

    /// The BPF object loaded instead of the embedded one, if any.
    pub fn object(&self) -> Option<&Path> {
        self.object.as_deref()
    }

    /// Whether [`Attachments::attach`] may attach to the cgroup v2 root (every process of the
    /// host); refused with [`Error::CgroupRoot`] unless asked for here.
    pub fn whole_host(mut self, allowed: bool) -> Attachments {
        self.whole_host = allowed;
        self
    }

    /// How long an attach or detach waits for another one to release the pin root's lock
    /// before it fails with [`Error::Locked`].
    pub fn with_lock_timeout(mut self, timeout: std::time::Duration) -> Attachments {
        self.lock_timeout = timeout;
        self
    }

    /// Under `TCP_KEEPALIVE_PIN_ROOT`, else [`DEFAULT_PIN_ROOT`]. An empty or relative value is
    /// an error that names it.
    /// [`BPF_OBJECT_ENV`], when set, names another object to load (an absolute path).
    pub fn from_env() -> Result<Attachments, Error> {
        let mut door = Attachments::pin_root_from_env()?;
        match std::env::var_os(BPF_OBJECT_ENV) {
            None => {}
            Some(v) if Path::new(&v).is_absolute() => door = door.with_object(v),
            Some(v) => {
                return Err(Error::other(
                    format!("read {BPF_OBJECT_ENV}"),
                    format!("{:?} is not an absolute path", v.to_string_lossy()),
                ))
            }
        }
        match std::env::var(LOCK_TIMEOUT_ENV) {
            Err(_) => Ok(door),
            Ok(text) => tcp_keepalive::parse_duration(LOCK_TIMEOUT_ENV, &text)
                .map(|t| door.with_lock_timeout(t))
                .map_err(|e| Error::other(format!("read {LOCK_TIMEOUT_ENV}"), e)),
        }
    }

    fn pin_root_from_env() -> Result<Attachments, Error> {
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
        // 0700 whatever the umask, root's, and not renamable by others; an existing one that
        // is not is refused (pins::check_trusted).
        pins::make_trusted_dir(&self.pin_root)
    }

    /// An exclusive lock on the pin root, held while pins are checked, made or removed, so
    /// attaches and detaches by several processes (an agent restarting while someone attaches
    /// by hand) take turns; a wait longer than the lock timeout fails with [`Error::Locked`].
    fn lock(&self) -> Result<pins::Lock, Error> {
        pins::lock(&self.pin_root, self.lock_timeout)
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
        self.attach_report(cgroup, keepalive, enforce)
            .map(|r| r.attached)
    }

    /// [`Attachments::attach`], saying also whether an adopted attachment's programs were
    /// replaced in place.
    ///
    /// An attachment already pinned for the cgroup, ours and linked, is adopted: never a second
    /// set of programs. When its programs are this version's (the kernel's program tags
    /// match), only its settings map is written. When they are another version's, this
    /// version's programs are loaded with new maps that already hold the settings (and the
    /// old probe number and counters), each link is switched to its new program with
    /// BPF_LINK_UPDATE (the kernel swaps the program in the cgroup's array at once: every new
    /// connection meets the old program or the new one, never none), and the new maps and
    /// programs take the old ones' pin names (a rename, also atomic).
    pub fn attach_report(
        &self,
        cgroup: &Cgroup,
        keepalive: &KeepAlive,
        enforce: bool,
    ) -> Result<AttachReport, Error> {
        self.attach_with(cgroup, keepalive, enforce, None)
    }

    /// Loads both programs and their maps into the kernel, attached nowhere: the larger part
    /// of a new attachment's cost (the kernel's verifier runs here), done ahead of time so
    /// that [`Attachments::attach_loaded`] only links and pins. The Kubernetes agent loads for
    /// a pod as soon as the API names it, and attaches once the kubelet makes its cgroup.
    /// Until attached nothing runs, and dropping it frees everything.
    pub fn load(&self) -> Result<Loaded, Error> {
        let ebpf = load::load(&MapSettings::default(), self.object.as_deref())?;
        Ok(Loaded {
            ebpf,
            object: self.object.clone(),
        })
    }

    /// [`Attachments::attach_report`] with programs [`Attachments::load`]ed before: the
    /// settings are written into their map, then they are linked and pinned. Where the cgroup
    /// already has an attachment of ours it is adopted as by `attach`, and `loaded` serves
    /// only an upgrade (or is dropped). Programs loaded from another object than this one's
    /// ([`Attachments::with_object`]) are dropped and this one's loaded instead.
    pub fn attach_loaded(
        &self,
        cgroup: &Cgroup,
        keepalive: &KeepAlive,
        enforce: bool,
        loaded: Loaded,
    ) -> Result<AttachReport, Error> {
        let loaded = (loaded.object == self.object).then_some(loaded.ebpf);
        self.attach_with(cgroup, keepalive, enforce, loaded)
    }

    fn attach_with(
        &self,
        cgroup: &Cgroup,
        keepalive: &KeepAlive,
        enforce: bool,
        loaded: Option<aya::Ebpf>,
    ) -> Result<AttachReport, Error> {
        let settings = MapSettings::new(keepalive, enforce);
        if cgroup.is_root() && !self.whole_host {
            return Err(Error::CgroupRoot {
                path: cgroup.path.clone(),
            });
        }
        check_kernel()?;
        self.ensure_bpffs()?;
        let _lock = self.lock()?;
        let dir = self.pins_of(cgroup);
        if REQUIRED.iter().all(|p| dir.join(p).exists()) && links_attached(&dir, cgroup.id) {
            // Pins that are not ours are refused, not updated (nor replaced).
            pins::verify_ours(&dir)?;
            return self.adopt(&dir, settings, loaded);
        }
        // A directory with only some of the pins (a crash mid-way) or with defunct links:
        // start again from nothing.
        remove_pins(&self.pin_root, &cgroup.id.to_string())?;

        let mut ebpf = load::loaded_with(loaded, &settings, self.object.as_deref())?;
        let cgroup_dir = File::open(&cgroup.path)
            .map_err(|e| Error::other(format!("open {}", cgroup.path.display()), e))?;
        let attach_error = |program: &'static str, e: io::Error| {
            let what = format!("attach the {program} program to {}", cgroup.path.display());
            match e.raw_os_error() {
                // EPERM with the privileges to load: a program holding this cgroup or one above
                // it exclusively (named), else a seccomp filter or an LSM.
                Some(libc::EPERM) => {
                    match exclusive_holder(&cgroup.path, attach_type_of(program)) {
                        Ok(Some(path)) => Error::Exclusive {
                            path,
                            program,
                            source: e,
                        },
                        Ok(None) => Error::Refused { what, source: e },
                        Err(q) => Error::from_bpf(&what, q),
                    }
                }
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
        match pins::make_pin_dir(&dir) {
            Ok(true) => {}
            Ok(false) => {
                undo_links();
                return self
                    .update_when_pinned(&dir, cgroup, settings)
                    .map(|attached| AttachReport {
                        attached,
                        replaced: false,
                    });
            }
            Err(e) => {
                undo_links();
                return Err(e);
            }
        }
        // Until every pin is made, dropping the links detaches them again.
        let pinned = (|| -> Result<(), Error> {
            for name in [PIN_SETTINGS, PIN_COUNTERS, pins::PIN_PROBE] {
                let map = ebpf
                    .map(name)
                    .ok_or_else(|| Error::other(format!("find map {name}"), "missing"))?;
                map_data(map)
                    .pin(dir.join(name))
                    .map_err(|e| pin_error(&dir, io_of(&e)))?;
            }
            let sock_ops: &mut SockOps = program(&mut ebpf, "set_keepalive")?;
            let prog = sock_ops
                .fd()
                .map_err(|e| Error::other("get the sock_ops program's descriptor", e))?;
            sys::pin(prog.as_fd(), &dir.join(PIN_SOCK_OPS_PROG)).map_err(|e| pin_error(&dir, e))?;
            let setsockopt: &mut CgroupSockopt = program(&mut ebpf, "enforce_keepalive")?;
            let prog = setsockopt
                .fd()
                .map_err(|e| Error::other("get the setsockopt program's descriptor", e))?;
            sys::pin(prog.as_fd(), &dir.join(PIN_SETSOCKOPT_PROG))
                .map_err(|e| pin_error(&dir, e))?;
            // The links last: `REQUIRED` complete means every pin is made.
            for (name, link) in &links {
                sys::pin(link.as_fd(), &dir.join(name)).map_err(|e| pin_error(&dir, e))?;
            }
            Ok(())
        })();
        if let Err(e) = pinned {
            undo_links();
            let _ = remove_pins(&self.pin_root, &cgroup.id.to_string());
            return Err(e);
        }
        Ok(AttachReport {
            attached: Attached::New,
            replaced: false,
        })
    }

    /// An attachment of ours, pinned in `dir` and linked: its settings written, and its
    /// programs replaced in place when they are another version's.
    fn adopt(
        &self,
        dir: &Path,
        settings: MapSettings,
        loaded: Option<aya::Ebpf>,
    ) -> Result<AttachReport, Error> {
        let object = self.object.as_deref();
        if upgrade::is_current(dir, object)? {
            write_settings(dir, settings)?;
            return Ok(AttachReport {
                attached: Attached::Updated,
                replaced: false,
            });
        }
        let mut ebpf = load::loaded_with(loaded, &settings, object)?;
        let replaced = upgrade::replace_if_changed(dir, &mut ebpf, object)?;
        if !replaced {
            write_settings(dir, settings)?;
        }
        Ok(AttachReport {
            attached: Attached::Updated,
            replaced,
        })
    }

    /// The concurrent attach's pins, once complete (bounded wait), get our settings.
    fn update_when_pinned(
        &self,
        dir: &Path,
        cgroup: &Cgroup,
        settings: MapSettings,
    ) -> Result<Attached, Error> {
        for _ in 0..100 {
            if REQUIRED.iter().all(|p| dir.join(p).exists()) && links_attached(dir, cgroup.id) {
                pins::verify_ours(dir)?;
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

    /// The check the sweep of open connections uses: which sockets belong to this attachment's
    /// cgroup or below ([`SocketCheck::covers`]).
    pub fn socket_check(&self, cgroup: &Cgroup) -> Result<SocketCheck, Error> {
        pins::check_pin_root(&self.pin_root)?;
        let nonce = pins::read_probe(&self.pins_of(cgroup))?;
        Ok(SocketCheck { nonce })
    }

    /// Detaches our programs from `cgroup` (at once) and removes its pins; other programs stay
    /// attached.
    /// New connections then get the system defaults again; existing ones keep their settings.
    pub fn detach(&self, cgroup: &Cgroup) -> Result<(), Error> {
        self.detach_dir(cgroup.id, cgroup.path())
    }

    /// Detaches the attachment of a cgroup id, also one whose cgroup is gone.
    pub fn detach_id(&self, cgroup_id: u64) -> Result<(), Error> {
        self.detach_dir(cgroup_id, Path::new(&format!("cgroup id {cgroup_id}")))
    }

    fn detach_dir(&self, cgroup_id: u64, what: &Path) -> Result<(), Error> {
        pins::check_pin_root(&self.pin_root)?;
        let dir = self.pin_root.join(cgroup_id.to_string());
        let _lock = if self.pin_root.is_dir() {
            Some(self.lock()?)
        } else {
            None
        };
        if std::fs::symlink_metadata(&dir).is_err() {
            return Err(Error::NotAttached {
                path: what.to_path_buf(),
                pins: dir,
            });
        }
        remove_pins(&self.pin_root, &cgroup_id.to_string())
    }

    /// Uninstall: detaches every attachment under the pin root (at once) and removes its pins
    /// and directory, then the lock and the pin root itself when nothing else is left in it.
    /// Programs of others attached to the same cgroups stay. Attachments that are broken or
    /// partial (pins missing, links defunct, an upgrade that did not finish) are removed too;
    /// one that cannot be removed (not root's, holding names that are not ours) is reported in
    /// [`DetachedAll::failed`] and the others are removed all the same. A missing pin root:
    /// nothing to do.
    ///
    /// Run it once no agent runs any more: an agent still running attaches again at its next
    /// check.
    pub fn detach_all(&self) -> Result<DetachedAll, Error> {
        pins::check_pin_root(&self.pin_root)?;
        let mut done = DetachedAll::default();
        match std::fs::symlink_metadata(&self.pin_root) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(done),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
                return Err(Error::Permission {
                    what: format!("read {}", self.pin_root.display()),
                    source: e,
                })
            }
            Err(e) => {
                return Err(Error::other(
                    format!("look at {}", self.pin_root.display()),
                    e,
                ))
            }
        }
        let lock = self.lock()?;
        let entries = std::fs::read_dir(&self.pin_root).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => Error::Permission {
                what: format!("read {}", self.pin_root.display()),
                source: e,
            },
            _ => Error::other(format!("read {}", self.pin_root.display()), e),
        })?;
        let mut names: Vec<String> = Vec::new();
        for entry in entries.flatten() {
            match entry.file_name().into_string() {
                Ok(name) => names.push(name),
                Err(other) => done.left.push(self.pin_root.join(other)),
            }
        }
        names.sort();
        for name in names {
            match name.parse::<u64>() {
                Ok(id) if id.to_string() == name => match remove_pins(&self.pin_root, &name) {
                    Ok(()) => done.removed.push(id),
                    Err(e) => done.failed.push((self.pin_root.join(&name), e)),
                },
                _ if name == pins::LOCK => {}
                _ => done.left.push(self.pin_root.join(&name)),
            }
        }
        if done.failed.is_empty() && done.left.is_empty() {
            // The lock goes last, while held: nothing is left for anyone to lock.
            let _ = std::fs::remove_dir(self.pin_root.join(pins::LOCK));
            drop(lock);
            done.pin_root_removed = std::fs::remove_dir(&self.pin_root).is_ok();
        }
        Ok(done)
    }

    /// The attachment of one cgroup, read back from its pins.
    pub fn status(&self, cgroup: &Cgroup) -> Result<Status, Error> {
        pins::check_pin_root(&self.pin_root)?;
        let dir = self.pins_of(cgroup);
        match std::fs::symlink_metadata(&dir) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotAttached {
                    path: cgroup.path.clone(),
                    pins: dir,
                })
            }
            Err(e) => {
                return Err(pins::pin_read_error(
                    &self.pin_root,
                    &cgroup.id.to_string(),
                    e,
                ))
            }
        }
        let mut s = read_status(&dir, cgroup.id)?;
        s.cgroup_path = Some(cgroup.path.clone());
        s.setsockopt_after_ours = setsockopt_after_ours(&dir, &cgroup.path);
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

    /// Every attachment under the pin root that can be read, by cgroup id (see
    /// [`Attachments::list_all`] for the others). A missing pin root means none.
    pub fn list(&self) -> Result<Vec<Status>, Error> {
        Ok(self
            .list_all()?
            .into_iter()
            .filter_map(|l| l.status.ok())
            .collect())
    }

    /// Every attachment directory under the pin root, by cgroup id, each read on its own: one
    /// that cannot be read (broken, foreign, not permitted) is there with its error, and the
    /// others are read all the same.
    pub fn list_all(&self) -> Result<Vec<Listed>, Error> {
        pins::check_pin_root(&self.pin_root)?;
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
        Ok(ids
            .into_iter()
            .map(|id| {
                let dir = self.pin_root.join(id.to_string());
                let status = read_status(&dir, id).map(|mut s| {
                    s.cgroup_path = paths.get(&id).cloned();
                    s.setsockopt_after_ours = s
                        .cgroup_path
                        .as_deref()
                        .and_then(|p| setsockopt_after_ours(&dir, p));
                    s
                });
                Listed {
                    cgroup_id: id,
                    cgroup_path: paths.get(&id).cloned(),
                    pins: dir,
                    status,
                }
            })
            .collect())
    }
}

/// Tells whether a socket belongs to an attachment's cgroup or one below it: the cgroup the
/// socket was created in, which decides what the kernel runs for it, not the cgroup of the
/// process holding it now (a socket passed with SCM_RIGHTS or inherited from outside, a
/// process moved in after creating it). From [`Attachments::socket_check`].
#[derive(Debug, Clone, Copy)]
pub struct SocketCheck {
    nonce: u64,
}

/// `setsockopt` level and option of the probe (`TCPKA_PROBE` in bpf/keepalive.bpf.c): no TCP
/// option has this number, so without our program the kernel answers ENOPROTOOPT.
const TCPKA_PROBE: libc::c_int = 0x7463_6b61;

impl SocketCheck {
    /// Whether the kernel runs this attachment's programs for `fd`'s socket: a setsockopt our
    /// program alone answers (with the attachment's number). Changes nothing on the socket.
    pub fn covers(&self, fd: impl AsFd) -> bool {
        // SAFETY: setsockopt from a u64 we own, its size.
        let r = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd()),
                libc::IPPROTO_TCP,
                TCPKA_PROBE,
                (&self.nonce as *const u64).cast(),
                8,
            )
        };
        r == 0
    }
}
