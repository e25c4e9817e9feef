//! The kernel door's cost: connect()+accept()+close() on loopback inside an attached cgroup
//! against the same calls outside it, side by side in one run. Rounds interleave (this process
//! moves itself into the cgroup and out again between them; a socket belongs to the cgroup it
//! was created in), and the median of the per-round ratios is reported (each round's sides ran back to back). A second pair of rows adds one
//! setsockopt(TCP_NODELAY) per connection: the enforcement program's fast path for an option it
//! does not touch.
//!
//! `cargo bench -p tcp-keepalive-cgroup` as root (cgroup v2, Linux 5.9+); otherwise it says why
//! and does nothing. Its own cgroup and pins are named after its PID and removed at the end.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tcp_keepalive::KeepAlive;
use tcp_keepalive_cgroup::{cgroup2_mount, Attachments, Cgroup};

const ROUNDS: usize = 200;
const PER_ROUND: usize = 200;

fn join(cgroup: &Path) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(cgroup.join("cgroup.procs"))
        .expect("opening cgroup.procs");
    f.write_all(b"0").expect("moving into the cgroup");
}

/// One connection's life; `nodelay` adds a setsockopt the enforcement program passes through.
fn connection(listener: &TcpListener, nodelay: bool) {
    let c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    if nodelay {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt from an int we own.
        unsafe {
            libc::setsockopt(
                c.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                4,
            )
        };
    }
    let (a, _) = listener.accept().unwrap();
    drop(a);
    drop(c);
}

fn round(listener: &TcpListener, nodelay: bool) -> Duration {
    let start = Instant::now();
    for _ in 0..PER_ROUND {
        connection(listener, nodelay);
    }
    start.elapsed() / PER_ROUND as u32
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

struct Scratch {
    cgroups: Vec<PathBuf>,
    root: PathBuf,
    pins: Attachments,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        join(&self.root);
        for cgroup in &self.cgroups {
            if let Ok(c) = Cgroup::open(cgroup) {
                let _ = self.pins.detach(&c);
            }
            let _ = std::fs::remove_dir(cgroup);
        }
        let _ = std::fs::remove_dir(self.pins.pin_root());
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP: the kernel door's benchmark needs root (cgroups, BPF)");
        return;
    }
    let Some(root) = cgroup2_mount() else {
        println!("SKIP: no cgroup v2 mount in /proc/mounts");
        return;
    };
    let name = format!("tcpka-kernel-bench-{}", std::process::id());
    // One cgroup with the programs, one without: the programs' own cost, apart from the cgroup's.
    let attached = root.join(format!("{name}-attached"));
    let plain = root.join(format!("{name}-plain"));
    let mut scratch = Scratch {
        cgroups: Vec::new(),
        root: root.clone(),
        pins: Attachments::new(PathBuf::from("/sys/fs/bpf").join(&name)),
    };
    for dir in [&attached, &plain] {
        std::fs::create_dir(dir).expect("creating a bench cgroup");
        scratch.cgroups.push(dir.clone());
    }
    let cg = Cgroup::open(&attached).unwrap();
    if let Err(e) = scratch.pins.attach(&cg, &KeepAlive::default(), true) {
        println!("SKIP: cannot attach: {e}");
        return;
    }
    // Each side's listener lives in its own cgroup, so inside both ends are configured.
    let sides: Vec<(&str, &Path, TcpListener)> = [
        ("outside", root.as_path()),
        ("plain cgroup", &plain),
        ("attached cgroup", &attached),
    ]
    .into_iter()
    .map(|(label, dir)| {
        join(dir);
        (label, dir, TcpListener::bind("127.0.0.1:0").unwrap())
    })
    .collect();
    join(&root);
    // One CPU: the scheduler moving this thread would cost more than what is measured.
    // SAFETY: a CPU set we own, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(1, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }

    for nodelay in [false, true] {
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); sides.len()];
        for (_, dir, listener) in &sides {
            join(dir);
            round(listener, nodelay); // warm-up
        }
        // Rotate the order each round so no side always follows another.
        for r in 0..ROUNDS {
            for k in 0..sides.len() {
                let i = (r + k) % sides.len();
                let (_, dir, listener) = &sides[i];
                join(dir);
                times[i].push(round(listener, nodelay));
            }
        }
        join(&root);
        // Each round's three sides ran back to back: their ratios cancel slow drifts of a
        // shared machine; the median of those ratios is the number.
        let ratio = |a: usize, b: usize| {
            let mut r: Vec<f64> = (0..ROUNDS)
                .map(|k| times[a][k].as_secs_f64() / times[b][k].as_secs_f64())
                .collect();
            r.sort_by(f64::total_cmp);
            r[r.len() / 2]
        };
        let (attached_outside, attached_plain, plain_outside) =
            (ratio(2, 0), ratio(2, 1), ratio(1, 0));
        let m: Vec<f64> = times
            .into_iter()
            .map(|t| median(t).as_secs_f64() * 1e6)
            .collect();
        println!(
            "connect+accept+close{} ({ROUNDS} rounds of {PER_ROUND}, medians): outside {:.2} us, plain cgroup {:.2} us, attached cgroup {:.2} us",
            if nodelay { "+setsockopt(TCP_NODELAY)" } else { "" },
            m[0], m[1], m[2]
        );
        println!(
            "  ratio attached/outside {attached_outside:.3} (goal <= 1.02), attached/plain cgroup {attached_plain:.3} (the programs alone), plain/outside {plain_outside:.3}"
        );
    }
    let status = scratch.pins.status(&cg).unwrap();
    println!(
        "connections configured by the sock_ops program: {}",
        status.configured
    );
}
