//! Where the kubelet puts a pod's cgroup, in both of its cgroup drivers, and how to read a pod's
//! UID back from a cgroup directory's name.
//!
//! - systemd driver: `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice`
//!   (besteffort alike), Guaranteed pods `kubepods.slice/kubepods-pod<uid>.slice`, the UID's `-`
//!   written as `_`;
//! - cgroupfs driver: `kubepods/burstable/pod<uid>`, `kubepods/besteffort/pod<uid>`,
//!   Guaranteed `kubepods/pod<uid>`.

use std::path::{Path, PathBuf};

/// The kubelet's cgroup driver, known from the kubepods directory's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `kubepods.slice`.
    Systemd,
    /// `kubepods`.
    Cgroupfs,
}

impl Driver {
    /// The driver whose kubepods directory this is.
    pub fn of(kubepods: &Path) -> Driver {
        if kubepods.extension().is_some_and(|e| e == "slice") {
            Driver::Systemd
        } else {
            Driver::Cgroupfs
        }
    }
}

/// The QoS tiers that have their own directory (Guaranteed pods sit directly under kubepods).
pub const TIERS: [&str; 2] = ["burstable", "besteffort"];

/// The directory of a QoS tier under kubepods.
pub fn tier_dir(kubepods: &Path, driver: Driver, tier: &str) -> PathBuf {
    match driver {
        Driver::Systemd => kubepods.join(format!("kubepods-{tier}.slice")),
        Driver::Cgroupfs => kubepods.join(tier),
    }
}

/// Every place the pod with this UID may have its cgroup: its QoS class's first (when known:
/// `Guaranteed`, `Burstable`, `BestEffort`), then the others.
pub fn candidates(kubepods: &Path, uid: &str, qos: Option<&str>) -> Vec<PathBuf> {
    let driver = Driver::of(kubepods);
    let name = |tier: Option<&str>| match (driver, tier) {
        (Driver::Systemd, None) => format!("kubepods-pod{}.slice", uid.replace('-', "_")),
        (Driver::Systemd, Some(t)) => format!("kubepods-{t}-pod{}.slice", uid.replace('-', "_")),
        (Driver::Cgroupfs, _) => format!("pod{uid}"),
    };
    let mut out = Vec::with_capacity(3);
    let mut tiers: Vec<Option<&str>> = vec![None, Some("burstable"), Some("besteffort")];
    if let Some(q) = qos.map(str::to_ascii_lowercase) {
        if let Some(i) = tiers.iter().position(|t| t.unwrap_or("guaranteed") == q) {
            let first = tiers.remove(i);
            tiers.insert(0, first);
        }
    }
    for tier in tiers {
        let parent = match tier {
            None => kubepods.to_path_buf(),
            Some(t) => tier_dir(kubepods, driver, t),
        };
        out.push(parent.join(name(tier)));
    }
    out
}

/// The pod UID in a pod cgroup directory's name (either driver), with `-` as in the API.
pub fn uid_of(dir_name: &str) -> Option<String> {
    let raw = if let Some(rest) = dir_name.strip_suffix(".slice") {
        // kubepods-pod<uid>.slice or kubepods-<tier>-pod<uid>.slice
        let rest = rest.strip_prefix("kubepods-")?;
        let i = rest.find("pod")?;
        let tier = &rest[..i];
        if !(tier.is_empty() || TIERS.iter().any(|t| tier == format!("{t}-"))) {
            return None;
        }
        rest[i + 3..].replace('_', "-")
    } else {
        dir_name.strip_prefix("pod")?.to_string()
    };
    // An API UID (36 characters with dashes), or a static pod's: the kubelet's hash of its
    // manifest, 32 hex digits.
    let ok = match raw.len() {
        36 => raw.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'),
        32 => raw.bytes().all(|b| b.is_ascii_hexdigit()),
        _ => false,
    };
    ok.then(|| raw.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f3c2a4e-1b2c-4d5e-8f90-a1b2c3d4e5f6";

    #[test]
    fn both_drivers_every_tier() {
        let s = candidates(Path::new("/cg/kubepods.slice"), UID, Some("Burstable"));
        assert_eq!(
            s[0],
            Path::new("/cg/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f3c2a4e_1b2c_4d5e_8f90_a1b2c3d4e5f6.slice")
        );
        assert_eq!(
            s[1],
            Path::new("/cg/kubepods.slice/kubepods-pod0f3c2a4e_1b2c_4d5e_8f90_a1b2c3d4e5f6.slice")
        );
        let c = candidates(Path::new("/cg/kubepods"), UID, Some("BestEffort"));
        assert_eq!(
            c[0],
            Path::new(&format!("/cg/kubepods/besteffort/pod{UID}"))
        );
        let g = candidates(Path::new("/cg/kubepods"), UID, Some("Guaranteed"));
        assert_eq!(g[0], Path::new(&format!("/cg/kubepods/pod{UID}")));
        for p in s.iter().chain(&c) {
            let name = p.file_name().unwrap().to_str().unwrap();
            assert_eq!(uid_of(name).as_deref(), Some(UID), "{name}");
        }
        let hash = "6a0b4c1d2e3f405162738495a6b7c8d9";
        let s = candidates(Path::new("/cg/kubepods.slice"), hash, None);
        assert_eq!(
            uid_of(s[2].file_name().unwrap().to_str().unwrap()).as_deref(),
            Some(hash)
        );
    }

    #[test]
    fn other_directories_are_no_pods() {
        for name in [
            "kubepods-burstable.slice",
            "burstable",
            "cri-containerd-0123.scope",
            "pod1234",
            "kubepods-other-pod0f3c2a4e_1b2c_4d5e_8f90_a1b2c3d4e5f6.slice",
        ] {
            assert_eq!(uid_of(name), None, "{name}");
        }
    }
}
