//! What `tcp-keepalive apply` costs per socket, against a program configuring its own socket.
//!
//! - `own socket`: `KeepAlive::apply` on a socket of this process (what a library user does);
//! - `another process's socket`: `pidfd_getfd` of a child's socket, `inspect` before,
//!   `KeepAlive::apply`, `inspect` after, close: the work `apply` does per socket.
//!
//! Criterion measures each; then an interleaved loop runs them side by side and prints the ratio.
//! Needs pidfd_getfd on a child (root, or the same user with ptrace_scope 0); else it says so.

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::Criterion;
use tcp_keepalive::{inspect, KeepAlive};

fn child() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let _a = l.accept().unwrap();
    println!("{}", c.as_raw_fd());
    // Lives until the bench closes our stdin (bounded: 300 s at most).
    // SAFETY: alarm has no preconditions.
    unsafe { libc::alarm(300) };
    let _ = std::io::stdin().lock().lines().count();
}

fn pidfd_open(pid: u32) -> OwnedFd {
    // SAFETY: plain integers; a new descriptor on success.
    let fd = unsafe { libc::syscall(434, pid as libc::c_int, 0) };
    assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: a new descriptor nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn pidfd_getfd(pidfd: &OwnedFd, fd: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain integers; a new descriptor on success.
    let dup = unsafe { libc::syscall(438, pidfd.as_raw_fd(), fd, 0) };
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(dup as i32) })
}

fn remote(keepalive: &KeepAlive, pidfd: &OwnedFd, fd: i32) {
    let dup = pidfd_getfd(pidfd, fd).unwrap();
    black_box(inspect(&dup).unwrap());
    keepalive.apply(&dup).unwrap();
    black_box(inspect(&dup).unwrap());
}

fn main() {
    if std::env::var_os("TCPKA_BENCH_CHILD").is_some() {
        child();
        return;
    }
    let mut kid = Command::new(std::env::current_exe().unwrap())
        .env("TCPKA_BENCH_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(kid.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let fd: i32 = line.trim().parse().unwrap();
    let pidfd = pidfd_open(kid.id());
    if let Err(e) = pidfd_getfd(&pidfd, fd) {
        eprintln!("remote_apply: pidfd_getfd refused ({e}): run as root to measure");
        let _ = kid.kill();
        let _ = kid.wait();
        return;
    }

    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let own = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let keepalive = KeepAlive::new(Duration::from_secs(60), Duration::from_secs(10), 6).unwrap();

    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    c.bench_function("own socket: KeepAlive::apply", |b| {
        b.iter(|| keepalive.apply(&own).unwrap())
    });
    c.bench_function(
        "another process's socket: pidfd_getfd + inspect + apply + inspect",
        |b| b.iter(|| remote(&keepalive, &pidfd, fd)),
    );

    // Side by side, interleaved, so both see the same machine load.
    let rounds = 20;
    let per_round = 2000;
    let (mut t_own, mut t_remote) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..per_round {
            keepalive.apply(&own).unwrap();
        }
        t_own += start.elapsed();
        let start = Instant::now();
        for _ in 0..per_round {
            remote(&keepalive, &pidfd, fd);
        }
        t_remote += start.elapsed();
    }
    let n = f64::from(rounds * per_round);
    println!(
        "side by side ({} calls each): own socket {:.2} µs, another process's socket {:.2} µs per socket: ratio {:.2}",
        rounds * per_round,
        t_own.as_secs_f64() * 1e6 / n,
        t_remote.as_secs_f64() * 1e6 / n,
        t_remote.as_secs_f64() / t_own.as_secs_f64()
    );
    drop(kid.stdin.take());
    let _ = kid.wait();
}
