//! `configure_keepalive` against the same system calls made directly with libc.
//!
//! Criterion measures each variant; then an interleaved timed loop runs them side by side (the
//! machines are noisy) and prints the ratios:
//! - `apply / same syscalls by hand`: the library's own overhead (goal: at most 1.05);
//! - `apply / 4 bare setsockopt`: the price of the all-or-nothing snapshot reads;
//! - `apply_to_new_socket / 4 bare setsockopt`: the hot path used by socket hooks (goal 1.05);
//! - the same two with a user timeout (5 writes, the user timeout first), against the same
//!   system calls by hand.

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use tcp_keepalive::{configure_keepalive, KeepAlive};

const IDLE: Duration = Duration::from_secs(60);
const INTVL: Duration = Duration::from_secs(10);

fn set(fd: RawFd, level: i32, name: i32, v: i32) {
    // SAFETY: pointer and length describe a live int.
    let rc = unsafe { libc::setsockopt(fd, level, name, (&v as *const i32).cast(), 4) };
    assert_eq!(rc, 0);
}

fn get(fd: RawFd, level: i32, name: i32) -> i32 {
    let mut v = 0i32;
    let mut len = 4 as libc::socklen_t;
    // SAFETY: pointers describe a live int and its length.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut i32).cast(), &mut len) };
    assert_eq!(rc, 0);
    v
}

fn bare_sets(fd: RawFd) {
    set(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 60);
    set(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 10);
    set(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 6);
    set(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
}

fn same_syscalls(fd: RawFd) {
    black_box(get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE));
    black_box(get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL));
    black_box(get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT));
    bare_sets(fd);
}

/// With a user timeout of 30 s: the 4 reads and 5 writes of `apply`, in its order.
fn same_syscalls_ut(fd: RawFd) {
    black_box(get(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT));
    same_syscalls_ut_writes_only(fd, true);
}

fn same_syscalls_ut_writes_only(fd: RawFd, reads: bool) {
    if reads {
        black_box(get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE));
        black_box(get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL));
        black_box(get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT));
    }
    set(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 30_000);
    bare_sets(fd);
}

fn connected() -> (TcpListener, TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (listener, client, server)
}

fn bench(c: &mut Criterion) {
    let (_l, client, _s) = connected();
    let fd = client.as_raw_fd();
    let mut g = c.benchmark_group("configure");
    g.bench_function("libc: 4 setsockopt", |b| {
        b.iter(|| bare_sets(black_box(fd)))
    });
    g.bench_function("libc: 3 getsockopt + 4 setsockopt", |b| {
        b.iter(|| same_syscalls(black_box(fd)))
    });
    g.bench_function("configure_keepalive", |b| {
        b.iter(|| configure_keepalive(black_box(&client), IDLE, INTVL, 6).unwrap())
    });
    let k = KeepAlive::default();
    g.bench_function("apply_to_new_socket", |b| {
        b.iter(|| k.apply_to_new_socket(black_box(&client)).unwrap())
    });
    g.finish();
}

/// Runs the variants in alternating rounds and prints the median per-call time and the ratios.
fn side_by_side() {
    let (_l, client, _s) = connected();
    let fd = client.as_raw_fd();
    let k = KeepAlive::default();
    let k_ut = k.with_user_timeout(Duration::from_secs(30)).unwrap();
    let rounds = 31;
    let per_round = 20_000;
    let mut times: [Vec<f64>; 8] = Default::default();
    type Variant<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let mut variants: [Variant; 8] = [
        ("libc 4 setsockopt", Box::new(|| bare_sets(fd))),
        ("libc same syscalls", Box::new(|| same_syscalls(fd))),
        (
            "configure_keepalive",
            Box::new(|| configure_keepalive(&client, IDLE, INTVL, 6).unwrap()),
        ),
        (
            "apply_to_new_socket",
            Box::new(|| k.apply_to_new_socket(&client).unwrap()),
        ),
        (
            "libc 5 setsockopt (ut)",
            Box::new(|| same_syscalls_ut_writes_only(fd, false)),
        ),
        ("libc same syscalls (ut)", Box::new(|| same_syscalls_ut(fd))),
        ("apply (ut)", Box::new(|| k_ut.apply(&client).unwrap())),
        (
            "apply_to_new_socket (ut)",
            Box::new(|| k_ut.apply_to_new_socket(&client).unwrap()),
        ),
    ];
    for _ in 0..rounds {
        for (i, (_, f)) in variants.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..per_round {
                f();
            }
            times[i].push(start.elapsed().as_nanos() as f64 / per_round as f64);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let m: Vec<f64> = times.iter_mut().map(median).collect();
    println!("\nside by side, median of {rounds} interleaved rounds of {per_round} calls:");
    for (i, (name, _)) in variants.iter().enumerate() {
        println!("  {name:<22} {:8.1} ns/call", m[i]);
    }
    println!(
        "RATIO configure_keepalive / same syscalls by hand   = {:.3}",
        m[2] / m[1]
    );
    println!(
        "RATIO configure_keepalive / 4 bare setsockopt      = {:.3}",
        m[2] / m[0]
    );
    println!(
        "RATIO apply_to_new_socket / 4 bare setsockopt      = {:.3}",
        m[3] / m[0]
    );
    println!(
        "RATIO apply (ut) / same 9 syscalls by hand         = {:.3}",
        m[6] / m[5]
    );
    println!(
        "RATIO apply_to_new_socket (ut) / 5 bare setsockopt = {:.3}",
        m[7] / m[4]
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    side_by_side();
}
