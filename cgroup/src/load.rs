//! Loading: the embedded BPF object, its two programs and three maps into the kernel, not
//! attached anywhere.

use std::io;
use std::path::Path;

use aya::maps::{Array, Map, MapData};
use aya::programs::{CgroupSockopt, SockOps};
use aya::{Ebpf, EbpfLoader};
use tcp_keepalive::KeepAlive;

use crate::kernel::{check_kernel, raise_memlock};
use crate::map::MapSettings;
use crate::pins::{PIN_PROBE, PIN_SETTINGS};
use crate::{error, Error};

/// The BPF object compiled from `bpf/keepalive.bpf.c` by build.rs.
pub(crate) static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/keepalive.bpf.o"));

/// Another BPF object's bytes, read from a file, 8-byte aligned as the ELF parser wants them.
struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    fn read(path: &Path) -> Result<Aligned, Error> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::other(format!("read the BPF object {}", path.display()), e))?;
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_ne_bytes(b);
        }
        Ok(Aligned {
            words,
            len: bytes.len(),
        })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes of the vector's own initialised memory, borrowed as long as it.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// Loads the object (the embedded one, or `object` when given: see
/// [`crate::Attachments::with_object`]) and both programs into the kernel, not attached
/// anywhere.
pub(crate) fn load(settings: &MapSettings, object: Option<&Path>) -> Result<Ebpf, Error> {
    check_kernel()?;
    raise_memlock();
    let other = object.map(Aligned::read).transpose()?;
    let bytes = other.as_ref().map_or(OBJECT, Aligned::bytes);
    // One loader per process: EbpfLoader::new() reads and parses the kernel's BTF (several MB)
    // every time, most of an attach's CPU in an agent that attaches per pod (16 ms -> 0.5 ms).
    static LOADER: std::sync::OnceLock<std::sync::Mutex<EbpfLoader<'static>>> =
        std::sync::OnceLock::new();
    let mut ebpf = LOADER
        .get_or_init(|| std::sync::Mutex::new(EbpfLoader::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .load(bytes)
        .map_err(|e| Error::from_bpf("load the BPF object (create its maps)", e))?;
    set_first(&mut ebpf, PIN_SETTINGS, "settings", settings)?;
    set_first(&mut ebpf, PIN_PROBE, "probe", &random_nonzero())?;
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

/// Programs loaded ahead (`Attachments::load`) given these settings, else [`load`]ed now with
/// them: either way the settings are in the map before anything is linked, since the programs
/// run from that moment.
pub(crate) fn loaded_with(
    loaded: Option<Ebpf>,
    settings: &MapSettings,
    object: Option<&Path>,
) -> Result<Ebpf, Error> {
    match loaded {
        Some(mut ebpf) => {
            set_first(&mut ebpf, PIN_SETTINGS, "settings", settings)?;
            Ok(ebpf)
        }
        None => load(settings, object),
    }
}

/// Writes `value` at index 0 of the one-element array map `name` of the object; `what` names
/// the map in the errors ("find/open/write the settings map").
fn set_first<V: aya::Pod>(ebpf: &mut Ebpf, name: &str, what: &str, value: &V) -> Result<(), Error> {
    let map = ebpf
        .map_mut(name)
        .ok_or_else(|| Error::other(format!("find the {what} map"), "missing in the object"))?;
    let mut array: Array<&mut MapData, V> =
        Array::try_from(map).map_err(|e| Error::other(format!("open the {what} map"), e))?;
    array
        .set(0, value, 0)
        .map_err(|e| Error::from_bpf(&format!("write the {what} map"), e))
}

pub(crate) fn program<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, Error>
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
    load(&MapSettings::new(&KeepAlive::default(), true), None).map(drop)
}

/// A random u64 other than 0 (getrandom; the time and PID should it fail).
pub(crate) fn random_nonzero() -> u64 {
    let mut v = 0u64;
    // SAFETY: getrandom into a u64 we own.
    let n = unsafe { libc::getrandom((&mut v as *mut u64).cast(), 8, 0) };
    if n != 8 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        v = t ^ (u64::from(std::process::id()) << 32);
    }
    v.max(1)
}

pub(crate) fn io_of(e: &(dyn std::error::Error + 'static)) -> io::Error {
    match error::io_cause(e) {
        Some(io) => io.raw_os_error().map_or_else(
            || io::Error::new(io.kind(), e.to_string()),
            io::Error::from_raw_os_error,
        ),
        None => io::Error::other(e.to_string()),
    }
}

pub(crate) fn map_data(map: &Map) -> &MapData {
    match map {
        Map::Array(d) | Map::PerCpuArray(d) => d,
        // The object has only these two kinds; anything else would be a build mistake.
        other => unreachable!("unexpected map kind {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_object_is_bpf() {
        // ELF, 64-bit, EM_BPF (247).
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        assert_eq!(u16::from_le_bytes([OBJECT[18], OBJECT[19]]), 247);
    }
}
