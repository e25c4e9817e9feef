//! Helpers shared by the integration tests: real loopback connections and an independent reader.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

/// A connected pair on loopback, plus the listener that made it.
pub struct Pair {
    pub listener: TcpListener,
    pub client: TcpStream,
    pub server: TcpStream,
}

pub fn pair(addr: &str) -> Pair {
    let listener = TcpListener::bind(addr).expect("bind loopback");
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    Pair {
        listener,
        client,
        server,
    }
}

/// Whether this machine has IPv6 loopback.
pub fn has_ipv6() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// Reads an int option with plain libc, independent of the crate under test.
pub fn raw_get(fd: &impl AsRawFd, level: i32, name: i32) -> i32 {
    let mut v = 0i32;
    let mut len = 4 as libc::socklen_t;
    // SAFETY: pointers describe a live int and its length.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    assert_eq!(
        rc,
        0,
        "getsockopt({level}, {name}): {}",
        std::io::Error::last_os_error()
    );
    v
}

/// (SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT) read with libc.
pub fn raw_all(fd: &impl AsRawFd) -> [i32; 5] {
    [
        raw_get(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        raw_get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
        raw_get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
        raw_get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
        raw_get(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
    ]
}

pub fn raw_set(fd: &impl AsRawFd, level: i32, name: i32, v: i32) {
    // SAFETY: pointer and length describe a live int.
    let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (&v as *const i32).cast(), 4) };
    assert_eq!(rc, 0, "setsockopt({level}, {name}, {v})");
}

pub fn loopbacks() -> Vec<&'static str> {
    let mut v = vec!["127.0.0.1:0"];
    if has_ipv6() {
        v.push("[::1]:0");
    } else if std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!(
            "CI=true but this machine has no IPv6 loopback; the IPv6 half of the tests cannot run"
        );
    } else {
        eprintln!("skipping IPv6: no [::1] on this machine");
    }
    v
}
