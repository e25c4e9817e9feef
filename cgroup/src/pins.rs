//! The pin root and the pin directories: trusted only when root owns them and nobody else may
//! write them, made 0700 whatever the umask, locked through a root-only lock directory with a
//! bounded wait, and emptied with operations relative to opened directories that never follow a
//! symbolic link.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use aya::maps::{Array, Map, MapData, PerCpuArray};

use crate::kernel::links_attached;
use crate::map::{self, MapCounters, MapSettings};
use crate::sys;
use crate::{Error, Status};

/// The pins of one attachment, inside its directory.
pub(crate) const PIN_SETTINGS: &str = "settings";
pub(crate) const PIN_COUNTERS: &str = "counters";
pub(crate) const PIN_SOCK_OPS: &str = "sock_ops";
pub(crate) const PIN_SETSOCKOPT: &str = "setsockopt";
/// The two programs themselves, so that what a link runs can be checked without
/// CAP_SYS_ADMIN (attachments made before these were pinned are checked by program id).
pub(crate) const PIN_SOCK_OPS_PROG: &str = "sock_ops_prog";
pub(crate) const PIN_SETSOCKOPT_PROG: &str = "setsockopt_prog";
/// The map holding the attachment's probe number (the sweep's socket check).
pub(crate) const PIN_PROBE: &str = "probe";
/// The pins an attachment needs (one made before the probe is made afresh by attach).
pub(crate) const REQUIRED: [&str; 5] = [
    PIN_SOCK_OPS,
    PIN_SETSOCKOPT,
    PIN_SETTINGS,
    PIN_COUNTERS,
    PIN_PROBE,
];
/// Every pin an attachment may have, in the order they are removed (links first).
pub(crate) const PINS: [&str; 7] = [
    PIN_SOCK_OPS,
    PIN_SETSOCKOPT,
    PIN_SOCK_OPS_PROG,
    PIN_SETSOCKOPT_PROG,
    PIN_SETTINGS,
    PIN_COUNTERS,
    PIN_PROBE,
];
/// The lock directory inside the pin root (bpffs holds no regular files, and no names with a
/// dot): 0700, root's.
pub(crate) const LOCK: &str = "lock";
/// How long an attach or detach waits for another one to finish, unless told otherwise.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

fn untrusted(path: &Path, reason: impl Into<String>) -> Error {
    Error::UntrustedPins {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Refuses a directory that root does not own, that group or others may write, or that is a
/// symbolic link (looked at with lstat: the link itself, never its target).
pub(crate) fn check_trusted(path: &Path) -> Result<(), Error> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Err(Error::other(format!("look at {}", path.display()), e)),
    };
    if meta.file_type().is_symlink() {
        return Err(untrusted(path, "it is a symbolic link"));
    }
    if !meta.is_dir() {
        return Err(untrusted(path, "it is not a directory"));
    }
    if meta.uid() != 0 {
        return Err(untrusted(
            path,
            format!("it is owned by uid {}, not root", meta.uid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(untrusted(
            path,
            format!(
                "group or others may write it (mode {:04o})",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// The parent of the pin root may be shared (bpffs mounts as 1777 by default), but then only
/// with the sticky bit: without it anyone could rename our pin root away.
fn check_parent(path: &Path) -> Result<(), Error> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    let Ok(meta) = std::fs::metadata(parent) else {
        return Ok(());
    };
    if meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0 {
        return Err(untrusted(
            path,
            format!(
                "its parent {} is writable by group or others without the sticky bit (mode {:04o}), so anyone could rename it",
                parent.display(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Makes `path` (and missing parents) 0700, whatever the umask, then checks it is trusted.
pub(crate) fn make_trusted_dir(path: &Path) -> Result<(), Error> {
    match std::fs::DirBuilder::new()
        .recursive(false)
        .mode(0o700)
        .create(path)
    {
        Ok(()) => {
            // The umask may have taken bits off; never more than 0700 is asked for.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| pin_error(path, e))?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|e| pin_error(parent, e))?;
            }
            return make_trusted_dir(path);
        }
        Err(e) => return Err(pin_error(path, e)),
    }
    check_parent(path)?;
    check_trusted(path)
}

/// Makes one attachment's directory (0700). `Ok(false)` when it exists already.
pub(crate) fn make_pin_dir(path: &Path) -> Result<bool, Error> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| pin_error(path, e))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(pin_error(path, e)),
    }
}

/// Checks the pin root for use (attach, detach, status): trusted, and a parent that cannot
/// rename it away. A missing pin root is fine (nothing attached).
pub(crate) fn check_pin_root(path: &Path) -> Result<(), Error> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    check_parent(path)?;
    check_trusted(path)
}

pub(crate) fn pin_error(dir: &Path, e: io::Error) -> Error {
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

/// An exclusive lock on the pin root, released on drop.
#[derive(Debug)]
pub(crate) struct Lock(#[allow(dead_code)] File);

/// Takes the lock of the pin root (its `lock` directory, made 0700 and root's, so no other
/// user can open it to hold it), waiting at most `timeout` for another attach or detach.
pub(crate) fn lock(pin_root: &Path, timeout: Duration) -> Result<Lock, Error> {
    let path = pin_root.join(LOCK);
    match std::fs::DirBuilder::new().mode(0o700).create(&path) {
        Ok(()) => std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| pin_error(&path, e))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(pin_error(&path, e)),
    }
    check_trusted(&path)?;
    let file = open_dir_nofollow(&path).map_err(|e| pin_error(&path, e))?;
    let start = Instant::now();
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Lock(file));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(pin_error(&path, e));
        }
        if start.elapsed() >= timeout {
            return Err(Error::Locked {
                path,
                waited: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn open_dir_nofollow(path: &Path) -> io::Result<File> {
    let c = cstring(path)?;
    // SAFETY: open with a NUL-terminated path; the descriptor becomes ours.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn openat_dir_nofollow(dir: &File, name: &str) -> io::Result<File> {
    let c = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: openat relative to a directory we hold, with a NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn unlinkat(dir: &File, name: &str, flags: libc::c_int) -> io::Result<()> {
    let c = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: unlinkat relative to a directory we hold; never follows a symbolic link.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether `name` in `dir` is a symbolic link (fstatat without following it).
fn is_symlink_at(dir: &File, name: &str) -> bool {
    let Ok(c) = CString::new(name) else {
        return false;
    };
    // SAFETY: fstatat into a zeroed buffer we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// Removes one attachment's pins (detaching its links at once) and its directory `name` under
/// `pin_root`. Every step is relative to a directory opened without following links: a
/// symbolic link planted as the directory or as a pin is refused or removed itself, never
/// followed.
pub(crate) fn remove_pins(pin_root: &Path, name: &str) -> Result<(), Error> {
    let dir_path = pin_root.join(name);
    let root = match open_dir_nofollow(pin_root) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(pin_error(pin_root, e)),
    };
    let dir = match openat_dir_nofollow(&root, name) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            return Err(untrusted(
                &dir_path,
                "it is a symbolic link or not a directory",
            ))
        }
        Err(e) => return Err(pin_error(&dir_path, e)),
    };
    let meta = dir.metadata().map_err(|e| pin_error(&dir_path, e))?;
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(untrusted(
            &dir_path,
            format!(
                "owned by uid {} with mode {:04o}; only root's 0700 pin directories are removed",
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    for pin in PINS {
        // Detached now, not when the kernel gets round to freeing the link; a pin that is no
        // link (or a kernel before 5.9) is just removed.
        if (pin == PIN_SOCK_OPS || pin == PIN_SETSOCKOPT) && !is_symlink_at(&dir, pin) {
            let via_fd = Path::new("/proc/self/fd")
                .join(dir.as_raw_fd().to_string())
                .join(pin);
            if let Ok(link) = sys::obj_get(&via_fd) {
                let _ = sys::link_detach(std::os::fd::AsFd::as_fd(&link));
            }
        }
        match unlinkat(&dir, pin, 0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(pin_error(&dir_path, e)),
        }
    }
    // What an upgrade that did not finish pinned beside them.
    for pin in crate::upgrade::NEXT_PINS {
        match unlinkat(&dir, pin, 0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(pin_error(&dir_path, e)),
        }
    }
    match unlinkat(&root, name, libc::AT_REMOVEDIR) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
            let mut names: Vec<String> = std::fs::read_dir(&dir_path)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            Err(Error::ForeignPins {
                pins: dir_path,
                reason: format!(
                    "it also holds {}, which tcp-keepalive never pins: our pins were removed, those were left as they are",
                    names.join(", ")
                ),
            })
        }
        Err(e) => Err(pin_error(&dir_path, e)),
    }
}

/// Checks that the pins in `dir` are one attachment of ours: each link is a cgroup link of the
/// right attach type running our program (by name), and that program uses the pinned settings
/// and counters maps. A replaced map or a foreign link is refused ([`Error::UntrustedPins`]):
/// nothing is read from, written to or reported of such pins.
pub(crate) fn verify_ours(dir: &Path) -> Result<(), Error> {
    let foreign = |reason: String| Error::ForeignPins {
        pins: dir.to_path_buf(),
        reason,
    };
    let map_id = |name: &str| -> Result<u32, Error> {
        let fd = sys::obj_get(&dir.join(name)).map_err(|e| pin_read_error(dir, name, e))?;
        sys::map_id(std::os::fd::AsFd::as_fd(&fd))
            .map_err(|e| foreign(format!("{name} is not a map ({e})")))
    };
    let settings = map_id(PIN_SETTINGS)?;
    let counters = map_id(PIN_COUNTERS)?;
    for (link_pin, prog_pin, name, attach_type) in [
        (
            PIN_SOCK_OPS,
            PIN_SOCK_OPS_PROG,
            "set_keepalive",
            sys::BPF_CGROUP_SOCK_OPS,
        ),
        (
            PIN_SETSOCKOPT,
            PIN_SETSOCKOPT_PROG,
            "enforce_keepalive",
            sys::BPF_CGROUP_SETSOCKOPT,
        ),
    ] {
        let link =
            sys::obj_get(&dir.join(link_pin)).map_err(|e| pin_read_error(dir, link_pin, e))?;
        let info = sys::link_info(std::os::fd::AsFd::as_fd(&link))
            .map_err(|e| foreign(format!("{link_pin} is not a link ({e})")))?;
        if info.attach_type != attach_type {
            return Err(foreign(format!(
                "{link_pin} is a link of attach type {}, not {attach_type}",
                info.attach_type
            )));
        }
        let prog = match sys::obj_get(&dir.join(prog_pin)) {
            Ok(p) => p,
            Err(_) => match sys::prog_by_id(info.prog_id) {
                Ok(p) => p,
                // An attachment pinned before its programs were, read without CAP_SYS_ADMIN:
                // its links' programs cannot be looked at; the map ids below are not checked.
                Err(_) => continue,
            },
        };
        let p = sys::prog_info(std::os::fd::AsFd::as_fd(&prog))
            .map_err(|e| foreign(format!("{prog_pin} is not a program ({e})")))?;
        if p.id != info.prog_id {
            return Err(foreign(format!(
                "{link_pin} runs program {}, not the pinned {prog_pin} ({})",
                info.prog_id, p.id
            )));
        }
        // The kernel keeps 15 bytes of a program's name; a program loaded without CAP_SYS_ADMIN
        // may have none (aya's probe for names needs it), then the map ids below decide.
        if !p.name.is_empty() && p.name != name[..name.len().min(15)] {
            return Err(foreign(format!("{link_pin} runs {:?}, not {name}", p.name)));
        }
        let probe = if link_pin == PIN_SETSOCKOPT {
            map_id(PIN_PROBE).ok()
        } else {
            None
        };
        if !p.map_ids.contains(&settings)
            || !p.map_ids.contains(&counters)
            || probe.is_some_and(|id| !p.map_ids.contains(&id))
        {
            return Err(foreign(format!(
                "{link_pin}'s program uses maps {:?}, not the pinned settings ({settings}) and counters ({counters})",
                p.map_ids
            )));
        }
    }
    Ok(())
}

/// A pin that cannot be opened: permission (exit 9), or missing (a broken attachment).
pub(crate) fn pin_read_error(dir: &Path, name: &str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => Error::Permission {
            what: format!("read {}", dir.join(name).display()),
            source: e,
        },
        _ => Error::BadMap {
            pins: dir.to_path_buf(),
            reason: format!("{name}: {e}"),
        },
    }
}

pub(crate) fn open_map(dir: &Path, name: &str) -> Result<Map, Error> {
    let data = MapData::from_pin(dir.join(name))
        .map_err(|e| Error::from_bpf(&format!("open {}", dir.join(name).display()), e))?;
    Map::from_map_data(data).map_err(|e| Error::BadMap {
        pins: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The attachment's probe number (the pinned `probe` map's only entry; the sweep's socket check).
pub(crate) fn read_probe(dir: &Path) -> Result<u64, Error> {
    let array: Array<MapData, u64> =
        Array::try_from(open_map(dir, PIN_PROBE)?).map_err(|e| Error::BadMap {
            pins: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
    array
        .get(&0, 0)
        .map_err(|e| Error::from_bpf("read the probe map", e))
}

pub(crate) fn read_status(dir: &Path, cgroup_id: u64) -> Result<Status, Error> {
    let bad = |reason: String| Error::BadMap {
        pins: dir.to_path_buf(),
        reason,
    };
    verify_ours(dir)?;
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
        setsockopt_after_ours: None,
    })
}

/// Writes the one entry of the pinned settings map: an update in place.
pub(crate) fn write_settings(dir: &Path, settings: MapSettings) -> Result<(), Error> {
    let map = open_map(dir, PIN_SETTINGS)?;
    let mut array: Array<MapData, MapSettings> =
        Array::try_from(map).map_err(|e| Error::other("open the pinned settings map", e))?;
    array
        .set(0, settings, 0)
        .map_err(|e| Error::from_bpf("update the pinned settings map", e))
}
