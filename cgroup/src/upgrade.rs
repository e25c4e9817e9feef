//! Upgrades with no gap: an adopted attachment whose programs are another version's gets this
//! version's programs and maps in place, make-before-break.
//!
//! A version is the kernel's program tag (a hash of the program's instructions as loaded, map
//! references left out): the same object gives the same tags on every load, a changed program
//! other tags. Both programs' tags are compared, the pinned ones' against the ones just loaded;
//! once a load has told a process its own tags, an adopt of the same version compares without
//! loading (a Kubernetes agent adopting an attachment per pod at its start).
//!
//! The order, each step undone when a later one fails before the links are switched:
//! 1. the new maps get the settings (at load), the old probe number (the sweep's socket check
//!    keeps answering) and the old counters;
//! 2. the new maps and programs are pinned beside the old ones (`<name>_next`);
//! 3. each link is switched to its new program (BPF_LINK_UPDATE with BPF_F_REPLACE: only while
//!    it still runs the old one); the kernel swaps the program in the cgroup's effective array
//!    at once, so a new connection meets the old program or the new one, never none, and the
//!    count of ours on the cgroup stays one of each;
//! 4. the `_next` pins are renamed over the old names (rename on bpffs replaces atomically).
//!
//! Between 3 and 4 the links run programs whose maps are not the pinned ones yet: a `status`
//! read in that instant calls the pins foreign; the next read is whole again. A process killed
//! in that instant leaves pins that `attach` refuses (exit 15) and `detach` removes.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aya::maps::{Array, MapData, PerCpuArray, PerCpuValues};
use aya::programs::{CgroupSockopt, SockOps};
use aya::Ebpf;

use crate::load::{io_of, map_data, program};
use crate::map::MapCounters;
use crate::pins::{
    open_map, pin_error, pin_read_error, PIN_COUNTERS, PIN_PROBE, PIN_SETSOCKOPT,
    PIN_SETSOCKOPT_PROG, PIN_SETTINGS, PIN_SOCK_OPS, PIN_SOCK_OPS_PROG,
};
use crate::{sys, Error};

/// Where a new map or program is pinned before it takes its name: `<name>` + this.
pub(crate) const NEXT: &str = "_next";

/// The pins an upgrade makes beside the old ones (removed with an attachment's pins too, so a
/// crashed upgrade leaves nothing `detach` cannot remove).
pub(crate) const NEXT_PINS: [&str; 5] = [
    "settings_next",
    "counters_next",
    "probe_next",
    "sock_ops_prog_next",
    "setsockopt_prog_next",
];

/// The tags of the programs this process loads (per object: `None` is the embedded one), once
/// a load has told them: adopting an attachment of the same version then writes its settings
/// without loading anything (an agent adopting hundreds of attachments at its start).
static KNOWN: Mutex<Vec<(Option<PathBuf>, Tags)>> = Mutex::new(Vec::new());

/// The tags of the `sock_ops` and the `cgroup/setsockopt` program.
type Tags = [[u8; 8]; 2];

fn known(object: Option<&Path>) -> Option<Tags> {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known
        .iter()
        .find(|(o, _)| o.as_deref() == object)
        .map(|(_, tags)| *tags)
}

fn remember(object: Option<&Path>, tags: Tags) {
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if !known.iter().any(|(o, _)| o.as_deref() == object) {
        known.push((object.map(Path::to_path_buf), tags));
    }
}

/// Whether the attachment pinned in `dir` runs the programs this process loads, as far as it
/// knows them already (`false` when not known yet: load, then [`replace_if_changed`]).
pub(crate) fn is_current(dir: &Path, object: Option<&Path>) -> Result<bool, Error> {
    let Some(ours) = known(object) else {
        return Ok(false);
    };
    let pinned = [
        pinned_prog(dir, PIN_SOCK_OPS, PIN_SOCK_OPS_PROG)?,
        pinned_prog(dir, PIN_SETSOCKOPT, PIN_SETSOCKOPT_PROG)?,
    ];
    Ok(pinned
        .iter()
        .zip(ours)
        .all(|((_, old, prog_pin), tag)| prog_tag(dir, old, prog_pin).is_ok_and(|t| t == tag)))
}

/// One of the two programs of an attachment, old (pinned) and new (just loaded).
struct Swap {
    link: OwnedFd,
    old: OwnedFd,
    new: OwnedFd,
    old_tag: [u8; 8],
    new_tag: [u8; 8],
}

fn prog_fd(ebpf: &mut Ebpf, name: &str) -> Result<OwnedFd, Error> {
    let fd = if name == "set_keepalive" {
        let p: &mut SockOps = program(ebpf, name)?;
        p.fd()
            .map_err(|e| Error::other(format!("get program {name}'s descriptor"), e))?
            .as_fd()
            .try_clone_to_owned()
    } else {
        let p: &mut CgroupSockopt = program(ebpf, name)?;
        p.fd()
            .map_err(|e| Error::other(format!("get program {name}'s descriptor"), e))?
            .as_fd()
            .try_clone_to_owned()
    };
    fd.map_err(|e| Error::other(format!("duplicate program {name}'s descriptor"), e))
}

fn prog_tag(dir: &Path, fd: &OwnedFd, what: &str) -> Result<[u8; 8], Error> {
    sys::prog_info(fd.as_fd())
        .map(|i| i.tag)
        .map_err(|e| Error::from_bpf(&format!("read the tag of {}", dir.join(what).display()), e))
}

/// A pinned link and the program it runs (its pin, else by the link's program id).
fn pinned_prog<'a>(
    dir: &Path,
    link_pin: &str,
    prog_pin: &'a str,
) -> Result<(OwnedFd, OwnedFd, &'a str), Error> {
    let link = sys::obj_get(&dir.join(link_pin)).map_err(|e| pin_read_error(dir, link_pin, e))?;
    let old = match sys::obj_get(&dir.join(prog_pin)) {
        Ok(p) => p,
        // An attachment made before the programs were pinned: the link's program by id.
        Err(_) => {
            let info = sys::link_info(link.as_fd()).map_err(|e| {
                Error::from_bpf(&format!("read {}", dir.join(link_pin).display()), e)
            })?;
            sys::prog_by_id(info.prog_id).map_err(|e| pin_read_error(dir, link_pin, e))?
        }
    };
    Ok((link, old, prog_pin))
}

fn swap(
    dir: &Path,
    ebpf: &mut Ebpf,
    link_pin: &str,
    prog_pin: &str,
    name: &str,
) -> Result<Swap, Error> {
    let (link, old, _) = pinned_prog(dir, link_pin, prog_pin)?;
    let new = prog_fd(ebpf, name)?;
    Ok(Swap {
        old_tag: prog_tag(dir, &old, prog_pin)?,
        new_tag: prog_tag(dir, &new, name)?,
        link,
        old,
        new,
    })
}

/// Replaces the programs and maps of the attachment pinned in `dir` (ours, verified, linked)
/// with the ones loaded in `ebpf` from `object` (their settings map filled) when their tags
/// differ. `Ok(false)`: the same version, nothing changed (the caller writes the settings).
pub(crate) fn replace_if_changed(
    dir: &Path,
    ebpf: &mut Ebpf,
    object: Option<&Path>,
) -> Result<bool, Error> {
    let swaps = [
        swap(dir, ebpf, PIN_SOCK_OPS, PIN_SOCK_OPS_PROG, "set_keepalive")?,
        swap(
            dir,
            ebpf,
            PIN_SETSOCKOPT,
            PIN_SETSOCKOPT_PROG,
            "enforce_keepalive",
        )?,
    ];
    remember(object, [swaps[0].new_tag, swaps[1].new_tag]);
    if swaps.iter().all(|s| s.old_tag == s.new_tag) {
        return Ok(false);
    }
    // The settings are in the new settings map already (written at load).
    carry_over(dir, ebpf)?;

    // 2. The new maps and programs pinned beside the old ones.
    remove_next(dir);
    let pinned = (|| -> Result<(), Error> {
        for name in [PIN_SETTINGS, PIN_COUNTERS, PIN_PROBE] {
            let map = ebpf
                .map(name)
                .ok_or_else(|| Error::other(format!("find map {name}"), "missing"))?;
            map_data(map)
                .pin(dir.join(format!("{name}{NEXT}")))
                .map_err(|e| pin_error(dir, io_of(&e)))?;
        }
        for (pin, s) in [PIN_SOCK_OPS_PROG, PIN_SETSOCKOPT_PROG].iter().zip(&swaps) {
            sys::pin(s.new.as_fd(), &dir.join(format!("{pin}{NEXT}")))
                .map_err(|e| pin_error(dir, e))?;
        }
        Ok(())
    })();
    if let Err(e) = pinned {
        remove_next(dir);
        return Err(e);
    }

    // 3. Each link switched to its new program; the first switched back should the second fail.
    for (i, s) in swaps.iter().enumerate() {
        if let Err(e) = sys::link_update(s.link.as_fd(), s.new.as_fd(), s.old.as_fd()) {
            for done in &swaps[..i] {
                let _ = sys::link_update(done.link.as_fd(), done.old.as_fd(), done.new.as_fd());
            }
            remove_next(dir);
            return Err(Error::from_bpf(
                &format!(
                    "replace the program of {} in place (BPF_LINK_UPDATE)",
                    dir.join(if i == 0 { PIN_SOCK_OPS } else { PIN_SETSOCKOPT })
                        .display()
                ),
                e,
            ));
        }
    }

    // 4. The new pins take the old names.
    for name in [
        PIN_SETTINGS,
        PIN_COUNTERS,
        PIN_PROBE,
        PIN_SOCK_OPS_PROG,
        PIN_SETSOCKOPT_PROG,
    ] {
        std::fs::rename(dir.join(format!("{name}{NEXT}")), dir.join(name))
            .map_err(|e| pin_error(dir, e))?;
    }
    Ok(true)
}

/// The old probe number and counters into the new maps, before any program uses them.
fn carry_over(dir: &Path, ebpf: &mut Ebpf) -> Result<(), Error> {
    let nonce = crate::pins::read_probe(dir)?;
    let map = ebpf
        .map_mut(PIN_PROBE)
        .ok_or_else(|| Error::other("find the probe map", "missing in the object"))?;
    let mut new_probe: Array<&mut MapData, u64> =
        Array::try_from(map).map_err(|e| Error::other("open the new probe map", e))?;
    new_probe
        .set(0, nonce, 0)
        .map_err(|e| Error::from_bpf("write the new probe map", e))?;

    // Counters are a tally, not a contract: one that cannot be read starts again from 0. A
    // connection counted by the old program after this copy (in the instant before its link
    // is switched) is not carried over.
    let old = open_map(dir, PIN_COUNTERS)
        .ok()
        .and_then(|m| PerCpuArray::<MapData, MapCounters>::try_from(m).ok())
        .and_then(|a| a.get(&0, 0).ok());
    if let (Some(old), Some(map)) = (old, ebpf.map_mut(PIN_COUNTERS)) {
        let values: Vec<MapCounters> = old.iter().copied().collect();
        if let (Ok(mut new), Ok(values)) = (
            PerCpuArray::<&mut MapData, MapCounters>::try_from(map),
            PerCpuValues::try_from(values),
        ) {
            let _ = new.set(0, values, 0);
        }
    }
    Ok(())
}

/// Removes `_next` pins left by an upgrade that did not finish (best effort).
fn remove_next(dir: &Path) {
    for name in NEXT_PINS {
        let _ = std::fs::remove_file(dir.join(name));
    }
}
