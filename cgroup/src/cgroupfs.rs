//! The cgroup v2 file system: where it is mounted, a checked cgroup directory, and the one
//! bounded walk of a cgroup tree that everything else uses.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::Error;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
pub(crate) const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

pub(crate) fn statfs_magic(path: &Path) -> io::Result<i64> {
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
    pub(crate) path: PathBuf,
    pub(crate) id: u64,
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

    /// Whether this is the cgroup v2 root (id 1, or the mount point itself, as a cgroup
    /// namespace shows its root): every process of the host, or of the namespace, is below it.
    pub fn is_root(&self) -> bool {
        self.id == 1 || cgroup2_mount().is_some_and(|m| m == self.path)
    }

    /// The kernel's cgroup id (what `bpf_get_current_cgroup_id` returns; names the pin directory).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The PIDs in this cgroup and every cgroup below it (`cgroup.procs`, as this process's PID
    /// namespace sees them), sorted; processes that move meanwhile may be missed. Processes
    /// outside this PID namespace are left out ([`Cgroup::processes_all`] counts them as 0s).
    pub fn processes(&self) -> Result<Vec<i32>, Error> {
        let mut all = self.processes_all()?;
        all.retain(|&pid| pid != 0);
        all.dedup();
        Ok(all)
    }

    /// As [`Cgroup::processes`], with a 0 for every process outside this PID namespace (the
    /// kernel lists them so in `cgroup.procs`), so a caller can say how many it cannot reach.
    pub fn processes_all(&self) -> Result<Vec<i32>, Error> {
        let mut pids = Vec::new();
        walk(&self.path, |dir| {
            match std::fs::read_to_string(dir.join("cgroup.procs")) {
                Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
                // Removed since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::other(
                        format!("read {}/cgroup.procs", dir.display()),
                        e,
                    ))
                }
            }
            Ok(true)
        })?;
        pids.sort_unstable();
        // Every 0 stays (each is a process), other PIDs once.
        let zeros = pids.iter().take_while(|&&p| p == 0).count();
        let mut out = vec![0; zeros];
        let mut rest: Vec<i32> = pids.into_iter().filter(|&p| p != 0).collect();
        rest.dedup();
        out.extend(rest);
        Ok(out)
    }
}

/// Visits `root` and every directory below it, depth first, at most `WALK_BUDGET` of them (a
/// cgroup tree has at most a few hundred thousand); `visit` returns false to stop early.
/// Directories removed meanwhile are skipped. The one walk of a cgroup tree in this crate.
pub(crate) fn walk(
    root: &Path,
    mut visit: impl FnMut(&Path) -> Result<bool, Error>,
) -> Result<(), Error> {
    const WALK_BUDGET: usize = 1_000_000;
    let mut dirs = vec![root.to_path_buf()];
    let mut budget = WALK_BUDGET;
    while let Some(dir) = dirs.pop() {
        if budget == 0 {
            break;
        }
        budget -= 1;
        if !visit(&dir)? {
            break;
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
    Ok(())
}

/// The directories of these cgroup ids under the cgroup v2 mount.
pub(crate) fn find_cgroups(ids: &[u64]) -> std::collections::HashMap<u64, PathBuf> {
    let mut found = std::collections::HashMap::new();
    let Some(root) = cgroup2_mount() else {
        return found;
    };
    let _ = walk(&root, |dir| {
        if let Ok(meta) = std::fs::metadata(dir) {
            if ids.contains(&meta.ino()) {
                found.insert(meta.ino(), dir.to_path_buf());
            }
        }
        Ok(found.len() < ids.len())
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_escapes() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }
}
