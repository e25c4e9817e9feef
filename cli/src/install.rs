//! `install-preload DIR`: copies the preload library that ships beside the command into DIR, for
//! an init container that fills a volume shared with the application's container (the image is
//! FROM scratch, so there is no `cp` to call).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fail::Failure;
use crate::run::{self, LIBRARY};

/// Readable by every user the application may run as; not writable by them.
const MODE: u32 = 0o644;

/// Installs the library as `DIR/libkeepalive.so`, atomically: a reader of DIR sees the old file
/// or the whole new one, never a part. Prints where it went; on failure DIR is as it was.
pub fn run_install(dir: &Path, preload: Option<&Path>) -> Result<i32, Failure> {
    let source = run::find_preload(preload)?;
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Failure::Usage(format!(
                "install-preload: {} is not a directory (DIR must be an existing directory, e.g. the volume shared with the application)",
                dir.display()
            )))
        }
        Err(e) => {
            return Err(Failure::Usage(format!(
                "install-preload: directory {}: {e} (DIR must be an existing directory, e.g. the volume shared with the application)",
                dir.display()
            )))
        }
    }
    let target = dir.join(LIBRARY);
    let fail = |e: io::Error| {
        Failure::Other(format!(
            "install-preload: cannot install {} as {}: {e}; nothing changed in {}",
            source.display(),
            target.display(),
            dir.display()
        ))
    };
    let (temp, file) = create_temporary(dir).map_err(fail)?;
    let bytes = copy_then_rename(&source, file, &temp, &target).map_err(|e| {
        // The temporary file is ours (created with O_EXCL under a name no one else chose); the
        // target was never touched.
        let _ = fs::remove_file(&temp);
        fail(e)
    })?;
    println!(
        "installed {} ({bytes} bytes, from {}); use LD_PRELOAD={}",
        target.display(),
        source.display(),
        target.display()
    );
    Ok(0)
}

/// A new file in `dir` under a name no other installer uses: init containers of several pods
/// sharing one volume all run as pid 1, so the pid alone is not unique. `create_new` (O_EXCL)
/// never opens a file someone else made; a name taken is retried with the next one.
fn create_temporary(dir: &Path) -> io::Result<(PathBuf, File)> {
    let mut seed = [0u8; 8];
    // SAFETY: getrandom writes at most `seed.len()` bytes into `seed`.
    let got = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), libc::GRND_NONBLOCK) };
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    // Without getrandom (older kernels, seccomp) the clock and the pid still differ between
    // installers most of the time, and a collision only costs a retry.
    let seed = if got == 8 {
        u64::from_ne_bytes(seed)
    } else {
        clock ^ u64::from(std::process::id()).rotate_left(32)
    };
    let mut last = None;
    for attempt in 0..64u64 {
        let name = format!(
            ".{LIBRARY}.{}.{:016x}.tmp",
            std::process::id(),
            seed.wrapping_add(attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        );
        let path = dir.join(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MODE)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)))
}

fn copy_then_rename(source: &Path, mut to: File, temp: &Path, target: &Path) -> io::Result<u64> {
    let mut from = File::open(source)?;
    let bytes = io::copy(&mut from, &mut to)?;
    // The mode given to open() is narrowed by the umask; the library must stay readable by all.
    to.set_permissions(fs::Permissions::from_mode(MODE))?;
    to.flush()?;
    to.sync_all()?;
    drop(to);
    fs::rename(temp, target)?;
    Ok(bytes)
}
