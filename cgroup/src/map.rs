//! The map values shared with the BPF programs: `#[repr(C)]` twins of `struct settings` and
//! `struct counters` in `bpf/keepalive.bpf.c`, which is their one definition; a test compares
//! these with the compiled object's BTF (members, order, offsets, size).

use std::time::Duration;

use tcp_keepalive::KeepAlive;

/// `struct settings`'s `layout` once filled; the programs do nothing while it is 0.
pub(crate) const SETTINGS_LAYOUT: u32 = 1;

/// The one entry of the `settings` array map: what the programs write and cap to.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct MapSettings {
    pub layout: u32,
    pub idle_s: u32,
    pub interval_s: u32,
    pub count: u32,
    /// 0: no user timeout (the socket's own stays).
    pub user_timeout_ms: u32,
    /// 1: the cgroup/setsockopt program caps the program's own writes.
    pub enforce: u32,
}

// SAFETY: plain integers, no padding, any bit pattern is valid.
unsafe impl aya::Pod for MapSettings {}

/// The per-CPU entry of the `counters` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct MapCounters {
    pub configured: u64,
    pub capped: u64,
}

// SAFETY: plain integers, no padding, any bit pattern is valid.
unsafe impl aya::Pod for MapCounters {}

fn whole<T: TryFrom<u128>>(d: Duration, per_second: u128) -> Option<T> {
    T::try_from(d.as_nanos() * per_second / 1_000_000_000).ok()
}

impl MapSettings {
    /// From settings core has validated: only its accessors, nothing checked again here.
    pub fn new(keepalive: &KeepAlive, enforce: bool) -> MapSettings {
        MapSettings {
            layout: SETTINGS_LAYOUT,
            // Core keeps whole seconds in 1..=32767 and milliseconds in 1..=i32::MAX.
            idle_s: whole(keepalive.idle(), 1).unwrap_or(u32::MAX),
            interval_s: whole(keepalive.interval(), 1).unwrap_or(u32::MAX),
            count: keepalive.count(),
            user_timeout_ms: keepalive
                .user_timeout()
                .map_or(0, |t| whole(t, 1000).unwrap_or(u32::MAX)),
            enforce: u32::from(enforce),
        }
    }

    /// Back to a `KeepAlive`, through core's checks: a map someone else filled is not trusted.
    pub fn keepalive(&self) -> Result<KeepAlive, tcp_keepalive::Error> {
        let k = KeepAlive::new(
            Duration::from_secs(self.idle_s.into()),
            Duration::from_secs(self.interval_s.into()),
            self.count,
        )?;
        match self.user_timeout_ms {
            0 => Ok(k),
            ms => k.with_user_timeout(Duration::from_millis(ms.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_core() {
        let k = KeepAlive::new(Duration::from_secs(61), Duration::from_secs(7), 5)
            .unwrap()
            .with_user_timeout(Duration::from_millis(45_001))
            .unwrap();
        let m = MapSettings::new(&k, true);
        assert_eq!(
            m,
            MapSettings {
                layout: 1,
                idle_s: 61,
                interval_s: 7,
                count: 5,
                user_timeout_ms: 45_001,
                enforce: 1
            }
        );
        assert_eq!(m.keepalive().unwrap(), k);
        let m = MapSettings::new(&KeepAlive::default(), false);
        assert_eq!((m.user_timeout_ms, m.enforce), (0, 0));
        assert_eq!(m.keepalive().unwrap(), KeepAlive::default());
        let broken = MapSettings { idle_s: 0, ..m };
        assert!(broken.keepalive().is_err());
    }

    /// The C structs as the compiler laid them out, from the BTF of the embedded object:
    /// (size, [(member, byte offset)]) of the struct named `name`.
    fn btf_struct(name: &str) -> (u32, Vec<(String, u32)>) {
        let o = crate::load::OBJECT;
        let u16_at = |at: usize| u16::from_le_bytes([o[at], o[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes(o[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(o[at..at + 8].try_into().unwrap());
        // ELF64: section headers at e_shoff, e_shentsize, e_shnum, e_shstrndx.
        let (shoff, shentsize) = (u64_at(0x28) as usize, usize::from(u16_at(0x3a)));
        let (shnum, shstrndx) = (usize::from(u16_at(0x3c)), usize::from(u16_at(0x3e)));
        let section = |i: usize| {
            let h = shoff + i * shentsize;
            (
                u32_at(h) as usize,
                u64_at(h + 0x18) as usize,
                u64_at(h + 0x20) as usize,
            )
        };
        let (_, strtab, _) = section(shstrndx);
        let cstr = |at: usize| {
            let end = o[at..].iter().position(|b| *b == 0).unwrap();
            std::str::from_utf8(&o[at..at + end]).unwrap().to_string()
        };
        let (_, btf, _) = (0..shnum)
            .map(section)
            .find(|(n, _, _)| cstr(strtab + n) == ".BTF")
            .expect("a .BTF section: build.rs compiles with -g");
        assert_eq!(u16_at(btf), 0xeb9f, "BTF magic");
        let hdr_len = u32_at(btf + 4) as usize;
        let (type_off, type_len) = (u32_at(btf + 8) as usize, u32_at(btf + 12) as usize);
        let str_off = u32_at(btf + 16) as usize;
        let strings = btf + hdr_len + str_off;
        let (mut at, end) = (
            btf + hdr_len + type_off,
            btf + hdr_len + type_off + type_len,
        );
        while at < end {
            let (name_off, info, size) = (u32_at(at), u32_at(at + 4), u32_at(at + 8));
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            at += 12;
            let extra = match kind {
                1 | 14 | 17 => 4,
                3 => 12,
                4 | 5 | 15 | 19 => vlen * 12,
                6 | 13 => vlen * 8,
                _ => 0,
            };
            if kind == 4 && cstr(strings + name_off as usize) == name {
                let bitfield = info >> 31 == 1;
                let members = (0..vlen)
                    .map(|m| {
                        let b = at + m * 12;
                        let bits = u32_at(b + 8);
                        let bits = if bitfield { bits & 0xff_ffff } else { bits };
                        (cstr(strings + u32_at(b) as usize), bits / 8)
                    })
                    .collect();
                return (size, members);
            }
            at += extra;
        }
        panic!("no struct {name} in the object's BTF");
    }

    /// The one definition of the map values is the C struct; the Rust twins must have its
    /// members, in its order, at its offsets, and its size (read from the compiled object).
    #[test]
    fn layout_matches_the_c_struct() {
        let named = |v: &[(&str, usize)]| -> Vec<(String, u32)> {
            v.iter().map(|(n, o)| (n.to_string(), *o as u32)).collect()
        };
        use std::mem::{offset_of, size_of};
        assert_eq!(
            btf_struct("settings"),
            (
                size_of::<MapSettings>() as u32,
                named(&[
                    ("layout", offset_of!(MapSettings, layout)),
                    ("idle_s", offset_of!(MapSettings, idle_s)),
                    ("interval_s", offset_of!(MapSettings, interval_s)),
                    ("count", offset_of!(MapSettings, count)),
                    ("user_timeout_ms", offset_of!(MapSettings, user_timeout_ms)),
                    ("enforce", offset_of!(MapSettings, enforce)),
                ])
            )
        );
        assert_eq!(
            btf_struct("counters"),
            (
                size_of::<MapCounters>() as u32,
                named(&[
                    ("configured", offset_of!(MapCounters, configured)),
                    ("capped", offset_of!(MapCounters, capped)),
                ])
            )
        );
    }
}
