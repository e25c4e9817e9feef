use std::fmt;
use std::io;

/// A socket option this crate reads or writes; named in errors so a failure says which call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocketOption {
    /// `SO_KEEPALIVE` at `SOL_SOCKET`: turns keep-alive probing on or off.
    KeepAlive,
    /// `TCP_KEEPIDLE` (`TCP_KEEPALIVE` on Apple systems): seconds of silence before the first probe.
    KeepIdle,
    /// `TCP_KEEPINTVL`: seconds between unanswered probes.
    KeepInterval,
    /// `TCP_KEEPCNT`: unanswered probes before the connection is dropped.
    KeepCount,
    /// `TCP_USER_TIMEOUT` (Linux): milliseconds sent data may stay unacknowledged.
    UserTimeout,
    /// `TCP_INFO` (Linux): the connection's state as the kernel reports it, read by
    /// [`tcp_info`](crate::tcp_info); never written, and not one of the keep-alive options.
    TcpInfo,
}

impl SocketOption {
    /// The option's name as the C headers spell it, e.g. `"TCP_KEEPIDLE"`.
    pub fn name(self) -> &'static str {
        match self {
            SocketOption::KeepAlive => "SO_KEEPALIVE",
            SocketOption::KeepIdle => "TCP_KEEPIDLE",
            SocketOption::KeepInterval => "TCP_KEEPINTVL",
            SocketOption::KeepCount => "TCP_KEEPCNT",
            SocketOption::UserTimeout => "TCP_USER_TIMEOUT",
            SocketOption::TcpInfo => "TCP_INFO",
        }
    }
}

impl SocketOption {
    /// Every option, for [`SocketOption::from_raw`]'s search. Not the order of the writes: that
    /// is [`KeepAlive::plan`](crate::KeepAlive::plan)'s (the user timeout first, `SO_KEEPALIVE`
    /// last).
    const ALL: [SocketOption; 5] = [
        SocketOption::KeepIdle,
        SocketOption::KeepInterval,
        SocketOption::KeepCount,
        SocketOption::UserTimeout,
        SocketOption::KeepAlive,
    ];

    /// The option a `setsockopt(fd, level, name, ...)` call with this platform's numbers sets, or
    /// `None` when it is none of the keep-alive options: for doors that see raw calls (the
    /// preload's `setsockopt` hook) and pass them to [`KeepAlive::enforce`](crate::KeepAlive::enforce).
    #[cfg(unix)]
    #[inline]
    pub fn from_raw(level: libc::c_int, name: libc::c_int) -> Option<SocketOption> {
        Self::ALL
            .into_iter()
            .find(|option| crate::sys::level_and_name(*option) == Some((level, name)))
    }
}

impl fmt::Display for SocketOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value in double quotes as error messages show it, by a rule simple enough for every
/// language to reproduce exactly: printable ASCII stays, except `"` and `\\` which get a
/// backslash; tab, line feed and carriage return are `\t`, `\n`, `\r`; every other character
/// (other controls, any non-ASCII character such as U+3000 or U+FFFD) is `\u{HEX}`, lowercase hex
/// without leading zeros. So invisible and look-alike characters are visible in the message.
pub(crate) fn quote(value: &str) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            _ => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// Everything that can go wrong; each binding maps these variants once to its language's errors.
///
/// Every message names the offending value and what is allowed or what the socket is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value outside Linux's limits, or an environment variable that does not parse.
    /// Raised before any system call, so the socket is untouched.
    ///
    /// The message shows the value in double quotes: printable ASCII as it is, except `"` and `\\`
    /// with a backslash before; tab, line feed, carriage return as `\t`, `\n`, `\r`; any other
    /// character (controls, anything non-ASCII such as U+3000) as `\u{HEX}` in lowercase hex.
    #[error("invalid {name}: {} (allowed: {allowed})", quote(.value))]
    InvalidArgument {
        /// The parameter or environment variable, e.g. `"idle"` or `"TCP_KEEPALIVE_IDLE"`.
        name: String,
        /// The value as given.
        value: String,
        /// What would have been accepted.
        allowed: String,
    },
    /// The descriptor is a socket, but not a TCP one (UDP, Unix-domain, raw, ...).
    #[error(
        "descriptor {fd} is a {kind} socket, not TCP: keep-alive options apply to TCP sockets only"
    )]
    NotTcp {
        /// The descriptor.
        fd: i32,
        /// What the socket is instead, e.g. `"AF_INET SOCK_DGRAM (UDP)"`.
        kind: String,
        /// The kernel's error for the first option tried (ENOPROTOOPT or EOPNOTSUPP).
        source: io::Error,
    },
    /// The descriptor is open but is no socket (a file, pipe or terminal).
    #[error("descriptor {fd} is not a socket (a file, pipe or terminal?): {source}")]
    NotASocket {
        /// The descriptor.
        fd: i32,
        /// The kernel's error (ENOTSOCK).
        source: io::Error,
    },
    /// The descriptor is closed or negative.
    #[error("descriptor {fd} is not open: {source}")]
    BadDescriptor {
        /// The descriptor.
        fd: i32,
        /// The kernel's error (EBADF).
        source: io::Error,
    },
    /// A TCP socket, but this operating system, or this kind of TCP socket, lacks the option
    /// (an MPTCP socket has no `TCP_USER_TIMEOUT`).
    #[error("{option} is not supported by this system or this kind of socket: {source}")]
    Unsupported {
        /// The option that is missing.
        option: SocketOption,
        /// The kernel's error, or ENOPROTOOPT where the option does not exist at compile time.
        source: io::Error,
    },
    /// Any other failure of a system call, with the option it was for.
    #[error("{option} on descriptor {fd} failed: {source}")]
    Os {
        /// The descriptor.
        fd: i32,
        /// The option being read or written.
        option: SocketOption,
        /// The kernel's error.
        source: io::Error,
    },
}

impl Error {
    /// The `errno` behind this error, when it came from the kernel.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::InvalidArgument { .. } => None,
            Error::NotTcp { source, .. }
            | Error::NotASocket { source, .. }
            | Error::BadDescriptor { source, .. }
            | Error::Unsupported { source, .. }
            | Error::Os { source, .. } => source.raw_os_error(),
        }
    }

    /// The same error naming descriptor `fd` instead: for a door that acts through a duplicate
    /// (`tcp-keepalive apply` through `pidfd_getfd`), so the message names the descriptor number
    /// the socket's owner knows, not the duplicate's.
    pub fn with_fd(self, fd: i32) -> Error {
        match self {
            Error::NotTcp { kind, source, .. } => Error::NotTcp { fd, kind, source },
            Error::NotASocket { source, .. } => Error::NotASocket { fd, source },
            Error::BadDescriptor { source, .. } => Error::BadDescriptor { fd, source },
            Error::Os { option, source, .. } => Error::Os { fd, option, source },
            other @ (Error::InvalidArgument { .. } | Error::Unsupported { .. }) => other,
        }
    }

    pub(crate) fn invalid(
        name: impl Into<String>,
        value: impl Into<String>,
        allowed: impl Into<String>,
    ) -> Error {
        Error::InvalidArgument {
            name: name.into(),
            value: value.into(),
            allowed: allowed.into(),
        }
    }
}

impl From<Error> for io::Error {
    /// Keeps the kernel's `errno` where there is one; invalid arguments become `InvalidInput`.
    fn from(err: Error) -> io::Error {
        match err.raw_os_error() {
            Some(code) => io::Error::new(io::Error::from_raw_os_error(code).kind(), err),
            None => io::Error::new(io::ErrorKind::InvalidInput, err),
        }
    }
}
