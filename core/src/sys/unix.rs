//! The only place that calls `setsockopt`/`getsockopt` for keep-alive options.

use std::io;
use std::mem;
use std::os::fd::RawFd;

use crate::error::{Error, SocketOption};
use crate::plan::{SocketKind, Syscalls, IPPROTO_MPTCP};

/// Where an option lives: its level and its number on this platform.
/// `None` when the platform has no such option. Inline: `SocketOption::from_raw` runs in the
/// preload's `setsockopt` hook on every call a program makes.
#[inline]
pub(crate) fn level_and_name(option: SocketOption) -> Option<(libc::c_int, libc::c_int)> {
    match option {
        SocketOption::KeepAlive => Some((libc::SOL_SOCKET, libc::SO_KEEPALIVE)),
        #[cfg(target_vendor = "apple")]
        SocketOption::KeepIdle => Some((libc::IPPROTO_TCP, libc::TCP_KEEPALIVE)),
        #[cfg(not(target_vendor = "apple"))]
        SocketOption::KeepIdle => Some((libc::IPPROTO_TCP, libc::TCP_KEEPIDLE)),
        SocketOption::KeepInterval => Some((libc::IPPROTO_TCP, libc::TCP_KEEPINTVL)),
        SocketOption::KeepCount => Some((libc::IPPROTO_TCP, libc::TCP_KEEPCNT)),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        SocketOption::UserTimeout => Some((libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT)),
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        SocketOption::UserTimeout => None,
        // A structure, read by `tcp_info.rs`; no integer option to get or set.
        SocketOption::TcpInfo => None,
    }
}

/// `setsockopt` of one `int` through the C library: Ok, or the `errno`.
#[inline]
pub(crate) fn set_raw(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> Result<(), libc::c_int> {
    // SAFETY: the pointer and length describe a live c_int; the kernel validates `fd`.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// `getsockopt` of one `int` through the C library: the value, or the `errno`.
#[inline]
pub(crate) fn get_raw(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> Result<libc::c_int, libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the pointers describe a live c_int and its length; the kernel validates `fd`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(errno())
    }
}

fn errno() -> libc::c_int {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Turns a failed system call into the crate's error. Runs only on the failure path, so the extra
/// `getsockopt` calls it makes to tell a UDP socket from a TCP one cost nothing on success.
pub(crate) fn classify(
    sys: &impl Syscalls,
    fd: RawFd,
    option: SocketOption,
    errno: libc::c_int,
) -> Error {
    let err = io::Error::from_raw_os_error(errno);
    match err.raw_os_error() {
        Some(libc::EBADF) => Error::BadDescriptor { fd, source: err },
        Some(libc::ENOTSOCK) => Error::NotASocket { fd, source: err },
        Some(code) if code == libc::ENOPROTOOPT || code == libc::EOPNOTSUPP => {
            match describe_socket(sys, fd) {
                Some((true, _)) | None => Error::Unsupported {
                    option,
                    source: err,
                },
                Some((false, kind)) => Error::NotTcp {
                    fd,
                    kind,
                    source: err,
                },
            }
        }
        _ => Error::Os {
            fd,
            option,
            source: err,
        },
    }
}

/// `(is_tcp, description)` of a socket, from SO_DOMAIN/SO_TYPE/SO_PROTOCOL where the OS has them.
fn describe_socket(sys: &impl Syscalls, fd: RawFd) -> Option<(bool, String)> {
    let ty = sys.get(fd, libc::SOL_SOCKET, libc::SO_TYPE).ok()?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let (domain, protocol) = (
        sys.get(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).ok()?,
        sys.get(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL).ok()?,
    );
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let (domain, protocol) = (-1, -1);

    let family = match domain {
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_UNIX => "AF_UNIX",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        libc::AF_NETLINK => "AF_NETLINK",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        libc::AF_PACKET => "AF_PACKET",
        -1 => "",
        _ => "other-family",
    };
    let kind = match ty {
        libc::SOCK_STREAM => "SOCK_STREAM",
        libc::SOCK_DGRAM => "SOCK_DGRAM",
        libc::SOCK_RAW => "SOCK_RAW",
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET",
        _ => "other-type",
    };
    let inet = domain == libc::AF_INET || domain == libc::AF_INET6;
    // Name the protocol only where the type makes it that protocol: a raw socket opened with
    // IPPROTO_TCP is a raw socket, not "(TCP)".
    let proto = match (ty, protocol) {
        (libc::SOCK_STREAM, libc::IPPROTO_TCP) if inet => " (TCP)".to_string(),
        (libc::SOCK_STREAM, IPPROTO_MPTCP) if inet => " (MPTCP)".to_string(),
        (libc::SOCK_DGRAM, libc::IPPROTO_UDP) if inet => " (UDP)".to_string(),
        (libc::SOCK_RAW, _) if inet => format!(" (raw IP, protocol {protocol})"),
        _ => String::new(),
    };
    // MPTCP carries keep-alive to its subflows; an option it lacks is Unsupported, not "not TCP".
    let is_tcp = SocketKind::of(domain, ty, protocol).is_tcp();
    Some((is_tcp, format!("{family} {kind}{proto}").trim().to_string()))
}
