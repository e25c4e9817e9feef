//! Configure and inspect TCP keep-alive on any socket.
//!
//! A middlebox (an AWS NLB or NAT gateway after 350 s, an Azure load balancer after 240 s, any
//! conntrack firewall) forgets a TCP flow that stays silent longer than its idle timeout and then
//! drops its packets without a word. A client waiting minutes for an answer never gets it. Linux
//! sends its first keep-alive probe only after 7200 s, and only on sockets that asked for
//! keep-alive at all. This crate turns keep-alive on with timings that keep such flows fresh
//! (defaults: first probe after 60 s, then every 10 s, 6 unanswered probes end the connection) and
//! reads the settings back from the kernel.
//!
//! ```no_run
//! use std::net::TcpStream;
//! use std::time::Duration;
//!
//! let stream = TcpStream::connect("127.0.0.1:8080")?;
//! tcp_keepalive::configure_keepalive(&stream, Duration::from_secs(60), Duration::from_secs(10), 6)?;
//! let settings = tcp_keepalive::inspect(&stream)?;
//! assert!(settings.enabled);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Servers: on Linux a listening socket's keep-alive settings are inherited by every socket it
//! accepts, so configuring the listener once covers every connection.
//!
//! All or nothing: values are checked before any system call, and a call that fails leaves every
//! option of the socket as it was.
//!
//! Every rule here is written down in the repository's `docs/design.md`, and every action on a
//! socket (the write plan and its undo, the enforcement step, the socket-kind check) runs through
//! one injected interface, [`Syscalls`], so the doors that make their own system calls (the
//! preload) run exactly core's sequence.
#![cfg_attr(not(unix), allow(unused))]
#![warn(missing_docs)]

mod env;
mod error;
mod fields;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod info;
#[cfg(unix)]
mod plan;
#[cfg(unix)]
mod sys;

use std::fmt;
#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

pub use env::{
    parse_count, parse_duration, parse_seconds, parse_switch, parse_user_timeout, EnvConfig,
    FieldText, OperatorEnv, TextFields, ENV_VARIABLES,
};
pub use error::{Error, SocketOption};
pub use fields::{check_count, check_idle, check_interval, check_user_timeout, Raw};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use info::{tcp_info, TcpInfo};
#[cfg(unix)]
pub use plan::{
    socket_kind_with, Enforced, Libc, SocketKind, Syscalls, WriteFailed, WritePlan, IPPROTO_MPTCP,
};

/// Linux's built-in keep-alive timings (`TCP_KEEPALIVE_TIME`, `TCP_KEEPALIVE_INTVL`,
/// `TCP_KEEPALIVE_PROBES`): idle 7200 s, interval 75 s, 9 probes. Every new network namespace
/// starts with them; a socket whose program never set a timing reads its namespace's value.
pub const LINUX_DEFAULTS: (u32, u32, u32) = (7200, 75, 9);

/// Linux's largest `TCP_KEEPIDLE` and `TCP_KEEPINTVL`, in seconds (`MAX_TCP_KEEPIDLE`).
pub const MAX_SECONDS: u32 = 32767;
/// Linux's largest `TCP_KEEPCNT` (`MAX_TCP_KEEPCNT`).
pub const MAX_COUNT: u32 = 127;
/// The largest `TCP_USER_TIMEOUT`, in milliseconds (the option is a C `int`).
pub const MAX_USER_TIMEOUT_MS: u64 = i32::MAX as u64;

/// Seconds of silence before the first probe, by default: shorter than every common middlebox
/// idle timeout (AWS 350 s, Azure 240 s).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(60);
/// Seconds between unanswered probes, by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the connection is dropped, by default.
pub const DEFAULT_COUNT: u32 = 6;

/// Keep-alive settings, validated against Linux's limits when built.
///
/// `Default` is idle 60 s, interval 10 s, count 6 and no user timeout: a dead peer is noticed
/// within 120 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeepAlive {
    idle: u32,
    interval: u32,
    count: u32,
    user_timeout_ms: Option<u32>,
}

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive {
            idle: DEFAULT_IDLE.as_secs() as u32,
            interval: DEFAULT_INTERVAL.as_secs() as u32,
            count: DEFAULT_COUNT,
            user_timeout_ms: None,
        }
    }
}

impl KeepAlive {
    /// Checks the values against Linux's limits: idle and interval 1 to 32767 s, count 1 to 127.
    /// Durations finer than a second round up to whole seconds, never down to zero.
    pub fn new(idle: Duration, interval: Duration, count: u32) -> Result<KeepAlive, Error> {
        Ok(KeepAlive {
            idle: fields::whole_seconds("idle", idle)?,
            interval: fields::whole_seconds("interval", interval)?,
            count: check_count("count", Raw::Int(count.into()))?,
            user_timeout_ms: None,
        })
    }

    /// Adds `TCP_USER_TIMEOUT` (Linux): the longest sent data may stay unacknowledged before the
    /// kernel drops the connection, and, once probing has started, the time that decides when an
    /// unanswered connection ends instead of the probe count. Keep-alive never probes while data
    /// is unacknowledged, so this is the only bound on a write into a black hole.
    /// Allowed: 1 ms to `i32::MAX` ms; finer values round up to whole milliseconds.
    pub fn with_user_timeout(self, user_timeout: Duration) -> Result<KeepAlive, Error> {
        Ok(KeepAlive {
            user_timeout_ms: Some(fields::whole_millis("user_timeout", user_timeout)?),
            ..self
        })
    }

    /// Seconds of silence before the first probe (`TCP_KEEPIDLE`).
    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.idle.into())
    }

    /// Time between unanswered probes (`TCP_KEEPINTVL`).
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval.into())
    }

    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// `TCP_USER_TIMEOUT`, when set.
    pub fn user_timeout(&self) -> Option<Duration> {
        self.user_timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
    }

    /// The value an operator door writes when a program sets `option` to `requested` on a socket
    /// the door configured with these settings: these settings are a ceiling (docs/design.md, "Who
    /// decides").
    ///
    /// - `SO_KEEPALIVE`: always 1, so keep-alive cannot be turned off.
    /// - `TCP_KEEPIDLE`, `TCP_KEEPINTVL` (1 to 32767 s) and `TCP_KEEPCNT` (1 to 127): a value in
    ///   Linux's range becomes the smaller of it and ours; a value outside stays as it is, so the
    ///   kernel refuses it with `EINVAL` as it would have without us.
    /// - `TCP_USER_TIMEOUT` (ms): unchanged when these settings have none or when negative (the
    ///   kernel's `EINVAL`); 0 (no timeout) becomes ours; else the smaller of it and ours.
    /// - `TCP_INFO` is no keep-alive option: unchanged.
    ///
    /// The table of cases is `core/tests/data/enforce-cases.tsv`.
    #[inline]
    pub fn enforce(&self, option: SocketOption, requested: libc::c_int) -> libc::c_int {
        // Our values are validated, so they fit a c_int.
        let ceiling = |ours: u32, max: u32| {
            if (1..=max as libc::c_int).contains(&requested) {
                requested.min(ours as libc::c_int)
            } else {
                requested
            }
        };
        match option {
            SocketOption::KeepAlive => 1,
            SocketOption::KeepIdle => ceiling(self.idle, MAX_SECONDS),
            SocketOption::KeepInterval => ceiling(self.interval, MAX_SECONDS),
            SocketOption::KeepCount => ceiling(self.count, MAX_COUNT),
            SocketOption::UserTimeout => match self.user_timeout_ms {
                None => requested,
                Some(_) if requested < 0 => requested,
                Some(ours) if requested == 0 => ours as libc::c_int,
                Some(ours) => requested.min(ours as libc::c_int),
            },
            // Not a keep-alive option: nothing to enforce.
            SocketOption::TcpInfo => requested,
        }
    }

    /// `idle + interval × count`: the longest a silent dead peer can go unnoticed.
    pub fn detection_bound(&self) -> Duration {
        Duration::from_secs(u64::from(self.idle) + u64::from(self.interval) * u64::from(self.count))
    }
}

impl fmt::Display for KeepAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "idle {}s, interval {}s, count {}",
            self.idle, self.interval, self.count
        )?;
        if let Some(ms) = self.user_timeout_ms {
            write!(f, ", user timeout {ms}ms")?;
        }
        write!(
            f,
            " (dead peer noticed within {}s)",
            self.detection_bound().as_secs()
        )
    }
}

/// Keep-alive settings of a socket as the kernel reports them.
///
/// `#[non_exhaustive]`: a field may be added (another option) without breaking callers; build
/// one with `Settings::from(keepalive)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Settings {
    /// `SO_KEEPALIVE`: whether the kernel probes at all. The timings below apply only when true.
    pub enabled: bool,
    /// `TCP_KEEPIDLE`; the system default (`net.ipv4.tcp_keepalive_time`) when never set.
    pub idle: Duration,
    /// `TCP_KEEPINTVL`; the system default (`net.ipv4.tcp_keepalive_intvl`) when never set.
    pub interval: Duration,
    /// `TCP_KEEPCNT`; the system default (`net.ipv4.tcp_keepalive_probes`) when never set.
    pub count: u32,
    /// `TCP_USER_TIMEOUT`; `None` when unset (0) or on systems without it.
    pub user_timeout: Option<Duration>,
}

impl From<KeepAlive> for Settings {
    /// What [`inspect`] reports for a socket these settings were applied to.
    fn from(k: KeepAlive) -> Settings {
        Settings {
            enabled: true,
            idle: k.idle(),
            interval: k.interval(),
            count: k.count(),
            user_timeout: k.user_timeout(),
        }
    }
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "keep-alive {}, idle {}s, interval {}s, count {}, user timeout ",
            if self.enabled { "on" } else { "off" },
            self.idle.as_secs(),
            self.interval.as_secs(),
            self.count
        )?;
        match self.user_timeout {
            Some(t) => write!(f, "{}ms", t.as_millis()),
            None => f.write_str("unset"),
        }
    }
}

/// Turns keep-alive on for a TCP socket with the given timings: the shortcut for
/// `KeepAlive::new(idle, intvl, cnt)?.apply(fd)`.
///
/// Works on connected, unconnected and listening sockets, IPv4 and IPv6. Values are checked
/// first (idle and interval 1 to 32767 s, count 1 to 127); a failing call changes nothing.
#[cfg(unix)]
pub fn configure_keepalive(
    fd: impl AsFd,
    idle: Duration,
    intvl: Duration,
    cnt: u32,
) -> Result<(), Error> {
    KeepAlive::new(idle, intvl, cnt)?.apply(fd)
}

/// Reads a socket's keep-alive settings from the kernel.
///
/// Fails with [`Error::NotTcp`], [`Error::NotASocket`] or [`Error::BadDescriptor`] like
/// [`KeepAlive::apply`].
#[cfg(unix)]
pub fn inspect(fd: impl AsFd) -> Result<Settings, Error> {
    let fd = fd.as_fd().as_raw_fd();
    // A TCP-level option first: SO_KEEPALIVE alone would succeed on a UDP socket.
    let idle = read(fd, SocketOption::KeepIdle)?;
    let interval = read(fd, SocketOption::KeepInterval)?;
    let count = read(fd, SocketOption::KeepCount)?;
    // A system without TCP_USER_TIMEOUT reports it unset.
    let user_timeout = match read(fd, SocketOption::UserTimeout) {
        Err(Error::Unsupported { .. }) => 0,
        other => other?,
    };
    let enabled = read(fd, SocketOption::KeepAlive)?;
    Ok(Settings {
        enabled: enabled != 0,
        idle: Duration::from_secs(idle.max(0) as u64),
        interval: Duration::from_secs(interval.max(0) as u64),
        count: count.max(0) as u32,
        user_timeout: (user_timeout > 0).then(|| Duration::from_millis(user_timeout as u64)),
    })
}

#[cfg(unix)]
fn read(fd: RawFd, option: SocketOption) -> Result<libc::c_int, Error> {
    let (level, name) = sys::level_and_name(option).ok_or_else(|| Error::Unsupported {
        option,
        source: std::io::Error::from_raw_os_error(libc::ENOPROTOOPT),
    })?;
    sys::get_raw(fd, level, name).map_err(|errno| sys::classify(&Libc, fd, option, errno))
}

/// The kind of the socket at `fd` as the kernel says now: TCP, MPTCP or anything else (also for
/// a descriptor that is no socket or is closed). See [`SocketKind`].
#[cfg(unix)]
pub fn socket_kind(fd: impl AsFd) -> SocketKind {
    socket_kind_with(&Libc, fd.as_fd().as_raw_fd())
}

#[cfg(unix)]
impl KeepAlive {
    /// The `(level, option, value)` triples [`KeepAlive::apply`] writes, in its order (the user
    /// timeout when set, the timings, then `SO_KEEPALIVE` = 1), with this platform's option numbers: for libraries that take
    /// socket options as plain numbers and set them on their own sockets (urllib3's and httpx's
    /// `socket_options`, a Python binding). Nothing is checked against a socket here.
    ///
    /// Fails with [`Error::Unsupported`] when a user timeout is asked for on a system without
    /// `TCP_USER_TIMEOUT`.
    pub fn socket_options(&self) -> Result<Vec<(libc::c_int, libc::c_int, libc::c_int)>, Error> {
        Ok(self
            .plan()?
            .writes()
            .iter()
            .map(|[level, name, value]| (*level, *name, *value))
            .collect())
    }

    /// Applies these settings to a TCP socket: the timings first, then `SO_KEEPALIVE`.
    ///
    /// All or nothing: the current values are read first, and if any write fails the ones
    /// already made are written back, so a failing call leaves the socket as it was. The first
    /// read also tells a non-TCP socket ([`Error::NotTcp`]), a non-socket ([`Error::NotASocket`])
    /// and a closed descriptor ([`Error::BadDescriptor`]) apart, before anything is changed.
    ///
    /// On Linux the settings of a listening socket are inherited by the sockets it accepts.
    pub fn apply(&self, fd: impl AsFd) -> Result<(), Error> {
        self.apply_with(&Libc, fd.as_fd().as_raw_fd())
    }

    /// Applies these settings to a socket this program has just created and not yet shared,
    /// without reading the old values first: half the system calls of [`KeepAlive::apply`], for
    /// hot paths such as a `socket()` hook or a socket factory.
    ///
    /// A new socket has keep-alive off and no user timeout, so on failure this turns back what
    /// matters: `SO_KEEPALIVE` is written last and so stays off, and a user timeout already set is
    /// reset to 0 (unset). The user timeout is written first, so a socket that lacks it (MPTCP)
    /// fails before anything changed. Timings written before a later failure (which a healthy
    /// kernel never gives for valid values) stay, but do nothing while keep-alive is off.
    pub fn apply_to_new_socket(&self, fd: impl AsFd) -> Result<(), Error> {
        self.apply_new_with(&Libc, fd.as_fd().as_raw_fd())
    }
}

#[cfg(unix)]
impl KeepAlive {
    /// The settings an open socket whose kernel values are `current` gets when these settings
    /// are a ceiling (docs/design.md, "Who decides"): each timing the smaller of the socket's and
    /// ours, as [`KeepAlive::enforce`] decides a program's own write. Without a user timeout of
    /// ours the socket's own stays (the result has none, so applying it writes none).
    ///
    /// A timing at Linux's built-in default ([`LINUX_DEFAULTS`]: what a socket whose program
    /// never set it reads) is no choice of the program's: it gets ours, even where ours is longer
    /// (an interval above 75 s, a count above 9). Otherwise every socket would be held to the
    /// defaults' 75 s and 9 probes. A program that set exactly the default gets ours too.
    pub fn ceiling_over(&self, current: &Settings) -> KeepAlive {
        let secs = |d: Duration| d.as_secs().min(i32::MAX as u64) as libc::c_int;
        let mut k = *self;
        k.idle = self.ceiling_of(SocketOption::KeepIdle, secs(current.idle)) as u32;
        k.interval = self.ceiling_of(SocketOption::KeepInterval, secs(current.interval)) as u32;
        k.count = self.ceiling_of(SocketOption::KeepCount, current.count as libc::c_int) as u32;
        if self.user_timeout_ms.is_some() {
            let ms = current
                .user_timeout
                .map_or(0, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
            k.user_timeout_ms = Some(self.enforce(SocketOption::UserTimeout, ms) as u32);
        }
        k
    }

    /// The value an operator door leaves of a socket's existing `value` of `option` (set before
    /// connect, or before the door came): as [`KeepAlive::enforce`] decides a program's write,
    /// except that a timing at Linux's built-in default ([`LINUX_DEFAULTS`]) is no choice and
    /// gets ours. The kernel door's `sock_ops` program decides the same at connect and accept.
    pub fn ceiling_of(&self, option: SocketOption, value: libc::c_int) -> libc::c_int {
        let (idle, interval, count) = LINUX_DEFAULTS;
        let (default, ours) = match option {
            SocketOption::KeepIdle => (idle, self.idle),
            SocketOption::KeepInterval => (interval, self.interval),
            SocketOption::KeepCount => (count, self.count),
            _ => return self.enforce(option, value),
        };
        if value == default as libc::c_int {
            ours as libc::c_int
        } else {
            self.enforce(option, value)
        }
    }

    /// Applies these settings to an open socket as a ceiling: keep-alive on, and each timing the
    /// smaller of the socket's own (read from the kernel) and ours, so a shorter choice of the
    /// program stays (what the operator doors' sweeps do). All or nothing, as [`KeepAlive::apply`].
    /// Returns whether anything changed; a socket already within the ceiling is not written.
    pub fn apply_ceiling(&self, fd: impl AsFd) -> Result<bool, Error> {
        let fd = fd.as_fd();
        let current = inspect(fd)?;
        let capped = self.ceiling_over(&current);
        let unchanged = current.enabled
            && current.idle == capped.idle()
            && current.interval == capped.interval()
            && current.count == capped.count()
            && (capped.user_timeout().is_none() || current.user_timeout == capped.user_timeout());
        if unchanged {
            return Ok(false);
        }
        capped.apply(fd).map(|()| true)
    }
}
