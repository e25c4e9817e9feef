//! The map values shared with the BPF programs: `#[repr(C)]` twins of `struct settings` and
//! `struct counters` in `bpf/keepalive.bpf.c`.

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

    #[test]
    fn layout_matches_the_c_struct() {
        // struct settings: six __u32; struct counters: two __u64.
        assert_eq!(std::mem::size_of::<MapSettings>(), 24);
        assert_eq!(std::mem::size_of::<MapCounters>(), 16);
    }
}
