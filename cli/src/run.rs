//! `run`: executes a program with `libkeepalive.so` preloaded and the `TCP_KEEPALIVE_*` variables
//! set. The program replaces this process (`execvp`), so its exit status and signals are its own.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tcp_keepalive::OperatorEnv;

use crate::fail::Failure;
use crate::values::Timings;

/// The preload library's file name.
pub const LIBRARY: &str = "libkeepalive.so";

/// Where `run` looks for the library when `--preload` is not given: next to the binary (the
/// cargo build layout, `target/release/`), then `../lib/` (an install into `PREFIX/bin`).
fn candidates() -> Vec<PathBuf> {
    let Ok(exe) = std::env::current_exe() else {
        return Vec::new();
    };
    let Some(dir) = exe.parent() else {
        return Vec::new();
    };
    vec![dir.join(LIBRARY), dir.join("../lib").join(LIBRARY)]
}

/// The absolute path of the preload library to use, checked to be one this machine can load
/// (an ELF shared object of its architecture that exports `socket`).
pub fn find_preload(explicit: Option<&Path>) -> Result<PathBuf, Failure> {
    let path = locate_preload(explicit)?;
    let data = std::fs::read(&path).map_err(|e| Failure::NoPreload {
        detail: format!("reading {}: {e}", path.display()),
    })?;
    crate::elf::check_preload(&data).map_err(|why| Failure::NoPreload {
        detail: format!(
            "{} is not a loadable preload library: {why}",
            path.display()
        ),
    })?;
    Ok(path)
}

/// Where the library is: `--preload`, else next to the binary or in `../lib/`.
fn locate_preload(explicit: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(path) = explicit {
        return match path.canonicalize() {
            Ok(p) if p.is_file() => Ok(p),
            Ok(_) => Err(Failure::NoPreload {
                detail: format!("--preload {} is not a file", path.display()),
            }),
            Err(e) => Err(Failure::NoPreload {
                detail: format!("--preload {}: {e}", path.display()),
            }),
        };
    }
    let looked = candidates();
    for c in &looked {
        if let Ok(p) = c.canonicalize() {
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let list: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
    Err(Failure::NoPreload {
        detail: format!("{LIBRARY} not found (looked in {})", list.join(", ")),
    })
}

/// The variables to set for the program, in order.
fn variables(timings: &Timings, log: bool) -> Result<Vec<(String, String)>, Failure> {
    // Checks every given value (and the defaults for the others) with the option names.
    let checked = timings.resolve()?;
    let mut vars = vec![("TCP_KEEPALIVE".to_string(), "on".to_string())];
    if timings.idle.is_some() {
        vars.push((
            "TCP_KEEPALIVE_IDLE".into(),
            checked.idle().as_secs().to_string(),
        ));
    }
    if timings.interval.is_some() {
        vars.push((
            "TCP_KEEPALIVE_INTERVAL".into(),
            checked.interval().as_secs().to_string(),
        ));
    }
    if timings.count.is_some() {
        vars.push(("TCP_KEEPALIVE_COUNT".into(), checked.count().to_string()));
    }
    if let Some(t) = checked.user_timeout() {
        vars.push((
            "TCP_KEEPALIVE_USER_TIMEOUT".into(),
            format!("{}ms", t.as_millis()),
        ));
    }
    if log {
        vars.push(("TCP_KEEPALIVE_LOG".into(), "1".into()));
    }
    // Options not given leave inherited variables in force: check the whole environment the
    // program will see (TCP_KEEPALIVE_LOG and _ENFORCE too), as the library will read it; an
    // inherited value that is not UTF-8 is refused, not taken as unset.
    OperatorEnv::from_lookup(|name| {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    })
    .map_err(Failure::invalid)?;
    Ok(vars)
}

/// `tcp-keepalive run [timings] [--preload PATH] [--log] -- CMD ARGS...`. Returns only on failure.
pub fn run_run(
    timings: &Timings,
    preload: Option<&Path>,
    log: bool,
    command: &[OsString],
) -> Result<i32, Failure> {
    let vars = variables(timings, log)?;
    let library = find_preload(preload)?;
    let Some((program, args)) = command.split_first() else {
        return Err(Failure::Usage(
            "run needs a command: tcp-keepalive run -- CMD ARGS...".into(),
        ));
    };
    let mut preload_list: OsString = library.clone().into_os_string();
    if let Some(existing) = std::env::var_os("LD_PRELOAD") {
        let ours = library.as_os_str();
        let already = existing
            .to_string_lossy()
            .split([':', ' '])
            .any(|p| Path::new(p) == ours);
        if already {
            preload_list = existing;
        } else if !existing.is_empty() {
            preload_list.push(":");
            preload_list.push(existing);
        }
    }
    let error = Command::new(program)
        .args(args)
        .envs(vars)
        .env("LD_PRELOAD", preload_list)
        .exec();
    Err(Failure::Exec {
        command: program.to_string_lossy().into_owned(),
        error,
    })
}
