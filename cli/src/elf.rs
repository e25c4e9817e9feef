//! Is a file a preload library this machine can load? An ELF shared object of this machine's
//! class, byte order and architecture whose dynamic symbol table defines `socket` and our own
//! marker, [`MARKER`] (glibc defines `socket` too). Read from the file's headers only: nothing of
//! it is loaded or run here.

/// The data symbol only `libkeepalive.so` exports (preload/src/lib.rs).
pub const MARKER: &str = "TCP_KEEPALIVE_PRELOAD";

/// The ELF `e_machine` of the architecture this command was built for, where known.
fn this_machine() -> Option<u16> {
    if cfg!(target_arch = "x86_64") {
        Some(62)
    } else if cfg!(target_arch = "aarch64") {
        Some(183)
    } else if cfg!(target_arch = "x86") {
        Some(3)
    } else if cfg!(target_arch = "arm") {
        Some(40)
    } else if cfg!(target_arch = "riscv64") {
        Some(243)
    } else if cfg!(target_arch = "powerpc64") {
        Some(21)
    } else if cfg!(target_arch = "s390x") {
        Some(22)
    } else {
        None
    }
}

fn machine_name(machine: u16) -> String {
    match machine {
        3 => "x86".into(),
        40 => "arm".into(),
        62 => "x86_64".into(),
        183 => "aarch64".into(),
        243 => "riscv".into(),
        21 => "powerpc64".into(),
        22 => "s390x".into(),
        other => format!("machine {other}"),
    }
}

/// Fixed-width little- or big-endian reads that fail instead of panicking past the end.
struct Bytes<'a> {
    data: &'a [u8],
    little: bool,
}

impl Bytes<'_> {
    fn get<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.data.get(at..at.checked_add(N)?)?.try_into().ok()
    }
    fn u16(&self, at: usize) -> Option<u16> {
        let b = self.get::<2>(at)?;
        Some(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }
    fn u32(&self, at: usize) -> Option<u32> {
        let b = self.get::<4>(at)?;
        Some(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }
    fn u64(&self, at: usize) -> Option<u64> {
        let b = self.get::<8>(at)?;
        Some(if self.little {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    }
    /// A 64-bit field in ELF64, a 32-bit one in ELF32, as an offset.
    fn word(&self, wide: bool, at: usize) -> Option<usize> {
        if wide {
            usize::try_from(self.u64(at)?).ok()
        } else {
            usize::try_from(self.u32(at)?).ok()
        }
    }
}

const SHT_DYNSYM: u32 = 11;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;

/// `Ok(())` when `data` is a shared object this machine can preload that defines `socket` and
/// [`MARKER`], else what it is instead.
pub fn check_preload(data: &[u8]) -> Result<(), String> {
    if data.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    let malformed = || "a truncated or malformed ELF file".to_string();
    let wide = match data.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(malformed()),
    };
    let little = match data.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Err(malformed()),
    };
    let ours_wide = cfg!(target_pointer_width = "64");
    if wide != ours_wide {
        return Err(format!(
            "a {}-bit ELF file, this machine runs {}-bit programs",
            if wide { 64 } else { 32 },
            if ours_wide { 64 } else { 32 }
        ));
    }
    if little != cfg!(target_endian = "little") {
        return Err("an ELF file of the other byte order".into());
    }
    let b = Bytes { data, little };
    let kind = b.u16(16).ok_or_else(malformed)?;
    let machine = b.u16(18).ok_or_else(malformed)?;
    if let Some(ours) = this_machine() {
        if machine != ours {
            return Err(format!(
                "an ELF file for {}, this machine is {}",
                machine_name(machine),
                machine_name(ours)
            ));
        }
    }
    match kind {
        3 => {}
        1 => return Err("an ELF object file (.o), not a shared object".into()),
        2 => return Err("an ELF executable, not a shared object".into()),
        4 => return Err("an ELF core dump, not a shared object".into()),
        other => return Err(format!("an ELF file of type {other}, not a shared object")),
    }
    let (shoff, shentsize, shnum) = if wide {
        (b.word(true, 0x28), b.u16(0x3a), b.u16(0x3c))
    } else {
        (b.word(false, 0x20), b.u16(0x2e), b.u16(0x30))
    };
    let (shoff, shentsize, shnum) = (
        shoff.ok_or_else(malformed)?,
        usize::from(shentsize.ok_or_else(malformed)?),
        usize::from(shnum.ok_or_else(malformed)?),
    );
    if shoff == 0 || shnum == 0 {
        return Err("a shared object without section headers: its exports cannot be read".into());
    }
    // (offset, size, link, entsize) of section `i`.
    let section = |i: usize| -> Option<(u32, usize, usize, usize, usize)> {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some(if wide {
            (
                b.u32(at + 4)?,
                b.word(true, at + 0x18)?,
                b.word(true, at + 0x20)?,
                b.u32(at + 0x28)? as usize,
                b.word(true, at + 0x38)?,
            )
        } else {
            (
                b.u32(at + 4)?,
                b.word(false, at + 0x10)?,
                b.word(false, at + 0x14)?,
                b.u32(at + 0x18)? as usize,
                b.word(false, at + 0x24)?,
            )
        })
    };
    let (mut socket, mut marker) = (false, false);
    for i in 0..shnum {
        let (kind, offset, size, link, entsize) = section(i).ok_or_else(malformed)?;
        if kind != SHT_DYNSYM || entsize == 0 {
            continue;
        }
        let (_, strings, strings_size, _, _) = section(link).ok_or_else(malformed)?;
        let names = data
            .get(strings..strings.checked_add(strings_size).ok_or_else(malformed)?)
            .ok_or_else(malformed)?;
        for sym in (offset..offset.saturating_add(size)).step_by(entsize) {
            let (name, info, shndx) = if wide {
                (b.u32(sym), data.get(sym + 4), b.u16(sym + 6))
            } else {
                (b.u32(sym), data.get(sym + 12), b.u16(sym + 14))
            };
            let (Some(name), Some(&info), Some(shndx)) = (name, info, shndx) else {
                return Err(malformed());
            };
            let name = names.get(name as usize..).unwrap_or_default();
            if shndx == 0 || !matches!(info >> 4, STB_GLOBAL | STB_WEAK) {
                continue;
            }
            let kind = info & 0xf;
            if name.starts_with(b"socket\0") && matches!(kind, STT_FUNC | STT_GNU_IFUNC) {
                socket = true;
            }
            if name.starts_with(MARKER.as_bytes())
                && name.get(MARKER.len()) == Some(&0)
                && kind == STT_OBJECT
            {
                marker = true;
            }
        }
    }
    match (socket, marker) {
        (true, true) => Ok(()),
        (false, _) => Err(
            "a shared object that does not export socket(), so it cannot configure new sockets"
                .into(),
        ),
        (true, false) => Err(format!(
            "a shared object that exports socket() but is not tcp-keepalive's libkeepalive.so (it lacks the symbol {MARKER})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_no_elf_shared_object() {
        assert_eq!(check_preload(b"root:x:0:0"), Err("not an ELF file".into()));
        assert_eq!(check_preload(b""), Err("not an ELF file".into()));
        let err = check_preload(b"\x7fELF\x02\x01").unwrap_err();
        assert!(err.contains("malformed"), "{err}");
    }

    #[test]
    fn this_test_binary_is_an_executable_or_exports_no_socket() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let err = check_preload(&exe).unwrap_err();
        assert!(
            err.contains("not a shared object") || err.contains("does not export socket()"),
            "{err}"
        );
    }

    #[test]
    fn libc_exports_socket_but_is_not_ours() {
        // glibc itself defines socket(): a real shared object, refused for lack of our marker.
        let candidates = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
            "/usr/lib64/libc.so.6",
        ];
        let Some(libc) = candidates.iter().find_map(|p| std::fs::read(p).ok()) else {
            eprintln!("skipping: no libc.so.6 at {candidates:?}");
            return;
        };
        let err = check_preload(&libc).unwrap_err();
        assert!(
            err.contains("exports socket() but is not tcp-keepalive's"),
            "{err}"
        );
        assert!(err.contains(MARKER), "{err}");
    }
}
