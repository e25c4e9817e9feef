//! Pod cgroups appearing and going, as the kernel reports them (inotify on kubepods and its QoS
//! tier directories): the agent attaches the moment the kubelet makes a pod's cgroup, before the
//! kubelet asks the runtime for the pod's sandbox.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use crate::layout::{tier_dir, uid_of, Driver, TIERS};

/// A pod cgroup made or removed.
#[derive(Debug)]
pub struct CgroupEvent {
    /// The pod UID read from the directory's name.
    pub uid: String,
    /// Made (true) or removed (false).
    pub created: bool,
    /// When the event was read.
    pub seen: Instant,
}

struct Inotify {
    fd: i32,
    watches: Vec<(i32, PathBuf)>,
}

impl Inotify {
    fn add(&mut self, dir: &Path) -> io::Result<()> {
        let c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: a valid inotify descriptor and a NUL-terminated path.
        let wd = unsafe {
            libc::inotify_add_watch(
                self.fd,
                c.as_ptr(),
                libc::IN_CREATE | libc::IN_DELETE | libc::IN_ONLYDIR,
            )
        };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        if !self.watches.iter().any(|(w, _)| *w == wd) {
            self.watches.push((wd, dir.to_path_buf()));
        }
        Ok(())
    }
}

/// Starts watching `kubepods` and its tier directories (added when they appear) on a thread of
/// its own; every pod cgroup made or removed is sent on `tx`. Directories that exist before the
/// watch starts are not reported: the agent looks for known pods' cgroups itself.
pub fn watch(kubepods: &Path, tx: UnboundedSender<CgroupEvent>) -> io::Result<()> {
    // SAFETY: plain system call.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let driver = Driver::of(kubepods);
    let mut ino = Inotify {
        fd,
        watches: Vec::new(),
    };
    ino.add(kubepods)?;
    let tiers: Vec<PathBuf> = TIERS
        .iter()
        .map(|t| tier_dir(kubepods, driver, t))
        .collect();
    for t in &tiers {
        // A tier made later is added when its IN_CREATE arrives.
        let _ = ino.add(t);
    }
    std::thread::Builder::new()
        .name("pod-cgroups".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                // SAFETY: reading into a buffer we own, within its length.
                let n = unsafe { libc::read(ino.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    eprintln!(
                        "tcp-keepalive: agent: reading pod cgroup events failed: {}; pods are found by the periodic resync only",
                        io::Error::last_os_error()
                    );
                    return;
                }
                let seen = Instant::now();
                let mut off = 0usize;
                let header = std::mem::size_of::<libc::inotify_event>();
                while off + header <= n as usize {
                    // SAFETY: the kernel wrote whole events; read_unaligned copes with alignment.
                    let ev: libc::inotify_event =
                        unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                    let name_bytes = &buf[off + header..off + header + ev.len as usize];
                    off += header + ev.len as usize;
                    let name = String::from_utf8_lossy(
                        name_bytes.split(|b| *b == 0).next().unwrap_or_default(),
                    )
                    .into_owned();
                    let Some(parent) = ino
                        .watches
                        .iter()
                        .find(|(w, _)| *w == ev.wd)
                        .map(|(_, p)| p.clone())
                    else {
                        continue;
                    };
                    let path = parent.join(&name);
                    if ev.mask & libc::IN_ISDIR == 0 {
                        continue;
                    }
                    let created = ev.mask & libc::IN_CREATE != 0;
                    if created && tiers.contains(&path) {
                        let _ = ino.add(&path);
                        continue;
                    }
                    if let Some(uid) = uid_of(&name) {
                        let event = CgroupEvent { uid, created, seen };
                        if tx.send(event).is_err() {
                            return; // the agent ended
                        }
                    }
                }
            }
        })?;
    Ok(())
}
