//! `install-preload DIR`: copies the preload library that ships beside the command into DIR, for
//! an init container that fills a volume shared with the application's container (the image is
//! FROM scratch, so there is no `cp` to call).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

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
    let temp = dir.join(format!(".{LIBRARY}.{}.tmp", std::process::id()));
    let bytes = copy_then_rename(&source, &temp, &target).map_err(|e| {
        // Best effort: the temporary file is ours; the target was never touched.
        let _ = fs::remove_file(&temp);
        Failure::Other(format!(
            "install-preload: cannot install {} as {}: {e}; nothing changed in {}",
            source.display(),
            target.display(),
            dir.display()
        ))
    })?;
    println!(
        "installed {} ({bytes} bytes, from {}); use LD_PRELOAD={}",
        target.display(),
        source.display(),
        target.display()
    );
    Ok(0)
}

fn copy_then_rename(source: &Path, temp: &Path, target: &Path) -> io::Result<u64> {
    let mut from = File::open(source)?;
    let mut to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(temp)?;
    let bytes = io::copy(&mut from, &mut to)?;
    // The mode given to open() is narrowed by the umask; the library must stay readable by all.
    to.set_permissions(fs::Permissions::from_mode(MODE))?;
    to.flush()?;
    to.sync_all()?;
    drop(to);
    fs::rename(temp, target)?;
    Ok(bytes)
}
