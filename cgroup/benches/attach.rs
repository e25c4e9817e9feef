//! The cost of a new attachment, two ways side by side in one run, rounds interleaved:
//! `attach` (programs loaded, which runs the kernel's verifier, then linked and pinned) against
//! `load` done ahead and `attach_loaded` (linked and pinned only), which is what the Kubernetes
//! agent does for a pod the API names before the kubelet makes its cgroup. Per round, each side
//! attaches to `PER_ROUND` fresh cgroups; the median per-attach time of each side and their ratio
//! are printed. The load ahead is timed too, apart.
//!
//! `cargo bench -p tcp-keepalive-cgroup --bench attach` as root (cgroup v2, Linux 5.9+);
//! otherwise it says why and does nothing. Its cgroups and pins are named after its PID and
//! removed at the end, also when it fails.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tcp_keepalive::KeepAlive;
use tcp_keepalive_cgroup::{cgroup2_mount, Attachments, Cgroup};

const ROUNDS: usize = 10;
const PER_ROUND: usize = 50;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Removes every attachment and cgroup made, whatever happened.
struct Scratch {
    base: PathBuf,
    door: Attachments,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.door.detach_all();
        if let Ok(entries) = std::fs::read_dir(&self.base) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir(e.path());
            }
        }
        let _ = std::fs::remove_dir(&self.base);
    }
}

fn fresh_cgroups(scratch: &Scratch, tag: &str, n: usize) -> Vec<Cgroup> {
    (0..n)
        .map(|i| {
            let p = scratch.base.join(format!("{tag}-{i}"));
            std::fs::create_dir(&p).expect("creating a bench cgroup");
            Cgroup::open(&p).expect("opening a bench cgroup")
        })
        .collect()
}

fn detach_and_remove(scratch: &Scratch, cgroups: Vec<Cgroup>) {
    for c in cgroups {
        scratch.door.detach(&c).expect("detaching");
        std::fs::remove_dir(c.path()).expect("removing a bench cgroup");
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP: the attach benchmark needs root (cgroups, BPF)");
        return;
    }
    let Some(root) = cgroup2_mount() else {
        println!("SKIP: no cgroup v2 mount in /proc/mounts");
        return;
    };
    let name = format!("tcpka-attach-bench-{}", std::process::id());
    let scratch = Scratch {
        base: root.join(&name),
        door: Attachments::new(PathBuf::from("/sys/fs/bpf").join(&name)),
    };
    std::fs::create_dir(&scratch.base).expect("creating the bench's cgroup");
    let keepalive = KeepAlive::default();
    // Warm-up: the first load in a process parses the kernel's BTF.
    let warm = fresh_cgroups(&scratch, "warm", 1);
    if let Err(e) = scratch.door.attach(&warm[0], &keepalive, true) {
        println!("SKIP: cannot attach: {e}");
        return;
    }
    detach_and_remove(&scratch, warm);

    let (mut whole, mut ahead, mut linked) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for side in [round % 2, 1 - round % 2] {
            let cgroups = fresh_cgroups(&scratch, &format!("r{round}s{side}"), PER_ROUND);
            if side == 0 {
                let start = Instant::now();
                for c in &cgroups {
                    scratch.door.attach(c, &keepalive, true).expect("attach");
                }
                whole.push(start.elapsed() / PER_ROUND as u32);
            } else {
                let start = Instant::now();
                let loaded: Vec<_> = (0..PER_ROUND)
                    .map(|_| scratch.door.load().expect("load"))
                    .collect();
                ahead.push(start.elapsed() / PER_ROUND as u32);
                let start = Instant::now();
                for (c, l) in cgroups.iter().zip(loaded) {
                    scratch
                        .door
                        .attach_loaded(c, &keepalive, true, l)
                        .expect("attach_loaded");
                }
                linked.push(start.elapsed() / PER_ROUND as u32);
            }
            detach_and_remove(&scratch, cgroups);
        }
    }
    let (whole, ahead, linked) = (median(whole), median(ahead), median(linked));
    println!("per attachment, median of {ROUNDS} rounds of {PER_ROUND}:");
    println!("  attach (load + link + pin)          {whole:>10.1?}");
    println!(
        "  attach_loaded (link + pin)          {linked:>10.1?}   ratio {:.2}",
        linked.as_secs_f64() / whole.as_secs_f64()
    );
    println!("  load ahead (not attached, apart)    {ahead:>10.1?}");
}
