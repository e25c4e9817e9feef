//! All or nothing: when a write in the middle of `apply` fails, the writes before it are undone.
//!
//! A healthy kernel never fails there once the values are valid, so a seccomp filter makes it
//! fail: it answers EPERM to `setsockopt` of one chosen option. The filter binds the whole
//! process for good, so this test is its own binary (`harness = false`), single-threaded.

#[path = "common/mod.rs"]
mod common;
#[path = "harness/mod.rs"]
mod harness;

use std::time::Duration;

use common::{pair, raw_all, raw_set};
use harness::NOT_APPLICABLE;
use tcp_keepalive::{Error, KeepAlive, SocketOption};

/// Makes every later `setsockopt(fd, level, name, ...)` of this process fail with EPERM.
fn deny_setsockopt(level: u32, name: u32) {
    use libc::{sock_filter, sock_fprog};
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // struct seccomp_data: nr at 0, arch at 4, args[i] at 16 + 8 i (low half first on x86_64).
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    let filter = [
        insn(LD_W_ABS, 0, 0, 0),
        insn(JEQ_K, 0, 5, libc::SYS_setsockopt as u32),
        insn(LD_W_ABS, 0, 0, 24),
        insn(JEQ_K, 0, 3, level),
        insn(LD_W_ABS, 0, 0, 32),
        insn(JEQ_K, 0, 1, name),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: plain prctl calls; `prog` outlives them and the kernel copies the filter.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const sock_fprog
            ),
            0,
            "installing seccomp filter: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn expect_os_eperm(err: Error, option: SocketOption) {
    match err {
        Error::Os {
            option: o,
            ref source,
            ..
        } => {
            assert_eq!(o, option, "{err}");
            assert_eq!(source.raw_os_error(), Some(libc::EPERM));
        }
        other => panic!("expected Os error on {option}, got {other:?}"),
    }
}

/// The settings applied, and a connected socket with earlier settings of its own (keep-alive
/// on) and what it held before.
struct Fixture {
    k: KeepAlive,
    p: common::Pair,
    before: [i32; 5],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let k = KeepAlive::new(Duration::from_secs(31), Duration::from_secs(9), 4)
            .unwrap()
            .with_user_timeout(Duration::from_millis(1234))
            .unwrap();
        let p = pair("127.0.0.1:0");
        raw_set(&p.client, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 500);
        raw_set(&p.client, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 50);
        raw_set(&p.client, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 5);
        raw_set(&p.client, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 777);
        raw_set(&p.client, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
        let before = raw_all(&p.client);
        Fixture { k, p, before }
    })
}

fn supported() -> Result<(), String> {
    if cfg!(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )) {
        Ok(())
    } else {
        Err(format!(
            "{NOT_APPLICABLE}the seccomp offsets are written for 64-bit little-endian Linux"
        ))
    }
}

/// The last write (SO_KEEPALIVE) fails: all four timings are written back; on a new socket
/// (`apply_to_new_socket`) keep-alive stays off and the user timeout is reset.
fn last_write_fails() -> Result<(), String> {
    supported()?;
    let Fixture { k, p, before } = fixture();
    let fresh = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let fresh_before = raw_all(&fresh);
    deny_setsockopt(libc::SOL_SOCKET as u32, libc::SO_KEEPALIVE as u32);
    let off = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    expect_os_eperm(k.apply(&off).unwrap_err(), SocketOption::KeepAlive);
    assert_eq!(
        raw_all(&off),
        fresh_before,
        "keep-alive-off socket restored"
    );
    expect_os_eperm(k.apply(&p.client).unwrap_err(), SocketOption::KeepAlive);
    assert_eq!(
        raw_all(&p.client),
        *before,
        "every timing restored after SO_KEEPALIVE failed"
    );
    expect_os_eperm(
        k.apply_to_new_socket(&fresh).unwrap_err(),
        SocketOption::KeepAlive,
    );
    let after = raw_all(&fresh);
    assert_eq!(
        (after[0], after[4]),
        (0, 0),
        "new socket behaves as before: {after:?}"
    );
    Ok(())
}

/// A write in the middle (TCP_KEEPCNT) fails: the ones already written are undone.
fn middle_write_fails() -> Result<(), String> {
    supported()?;
    let Fixture { k, p, before } = fixture();
    deny_setsockopt(libc::IPPROTO_TCP as u32, libc::TCP_KEEPCNT as u32);
    expect_os_eperm(k.apply(&p.client).unwrap_err(), SocketOption::KeepCount);
    assert_eq!(
        raw_all(&p.client),
        *before,
        "idle and interval restored after TCP_KEEPCNT failed"
    );
    Ok(())
}

/// An early write (TCP_KEEPIDLE) fails: the socket holds what it held.
fn early_write_fails() -> Result<(), String> {
    supported()?;
    let Fixture { k, p, before } = fixture();
    deny_setsockopt(libc::IPPROTO_TCP as u32, libc::TCP_KEEPIDLE as u32);
    expect_os_eperm(k.apply(&p.client).unwrap_err(), SocketOption::KeepIdle);
    assert_eq!(raw_all(&p.client), *before);
    Ok(())
}

fn main() {
    // In this order: each case adds a seccomp filter to the process for good.
    harness::run(&[
        ("last_write_fails", last_write_fails),
        ("middle_write_fails", middle_write_fails),
        ("early_write_fails", early_write_fails),
    ]);
}
