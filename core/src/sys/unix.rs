//! The only place that calls `setsockopt`/`getsockopt` for keep-alive options.

use std::io;
use std::mem;
use std::os::fd::RawFd;

use crate::error::{Error, SocketOption};

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

fn unsupported(option: SocketOption) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{option} does not exist on this platform"),
    )
}

/// Writes one integer option. Errors are raw; [`classify`] turns them into [`Error`].
#[inline]
pub(crate) fn set(fd: RawFd, option: SocketOption, value: libc::c_int) -> io::Result<()> {
    let Some((level, name)) = level_and_name(option) else {
        return Err(unsupported(option));
    };
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
        Err(io::Error::last_os_error())
    }
}

/// Reads one integer option.
#[inline]
pub(crate) fn get(fd: RawFd, option: SocketOption) -> io::Result<libc::c_int> {
    let Some((level, name)) = level_and_name(option) else {
        return Err(unsupported(option));
    };
    get_raw(fd, level, name)
}

fn get_raw(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
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
        Err(io::Error::last_os_error())
    }
}

/// Turns a failed system call into the crate's error. Runs only on the failure path, so the extra
/// `getsockopt` calls it makes to tell a UDP socket from a TCP one cost nothing on success.
pub(crate) fn classify(fd: RawFd, option: SocketOption, err: io::Error) -> Error {
    match err.raw_os_error() {
        Some(libc::EBADF) => Error::BadDescriptor { fd, source: err },
        Some(libc::ENOTSOCK) => Error::NotASocket { fd, source: err },
        Some(code) if code == libc::ENOPROTOOPT || code == libc::EOPNOTSUPP => {
            match describe_socket(fd) {
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

/// Linux's multipath TCP protocol number (not in every libc release).
const IPPROTO_MPTCP: libc::c_int = 262;

/// `(is_tcp, description)` of a socket, from SO_DOMAIN/SO_TYPE/SO_PROTOCOL where the OS has them.
fn describe_socket(fd: RawFd) -> Option<(bool, String)> {
    let ty = get_raw(fd, libc::SOL_SOCKET, libc::SO_TYPE).ok()?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let (domain, protocol) = (
        get_raw(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).ok()?,
        get_raw(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL).ok()?,
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
    let is_tcp = inet
        && ty == libc::SOCK_STREAM
        && (protocol == libc::IPPROTO_TCP || protocol == IPPROTO_MPTCP);
    Some((is_tcp, format!("{family} {kind}{proto}").trim().to_string()))
}
