//! What core does to a socket, as plans run through an injected system-call interface
//! ([`Syscalls`]): the write plan and its undo ([`WritePlan`]), the enforcement decision
//! ([`KeepAlive::enforce_on`]) and the socket-kind check ([`socket_kind_with`]). Core's own callers
//! run them through [`Libc`]; the preload through its bare system calls; the tests through a
//! recording fake. So every door makes the same calls in the same order (docs/design.md,
//! "Core owns the doing").

use std::os::fd::RawFd;

use libc::c_int;

use crate::error::{Error, SocketOption};
use crate::{sys, KeepAlive};

/// Linux's multipath TCP protocol number (`IPPROTO_MPTCP`, Linux 5.6+; not in every libc
/// release). Defined once, here: every door asks [`SocketKind`].
pub const IPPROTO_MPTCP: c_int = 262;

/// The two integer socket calls core makes, injected so that one plan serves every door: [`Libc`]
/// for core's own callers, the preload's bare system calls (which leave `errno` alone), a
/// recording fake in tests. Errors are the kernel's `errno` value (positive).
pub trait Syscalls {
    /// `setsockopt(fd, level, name, value, sizeof(int))`. The value is passed by reference, as
    /// `setsockopt` takes it, so a plan's values go to the kernel from where they are stored.
    fn set(&self, fd: RawFd, level: c_int, name: c_int, value: &c_int) -> Result<(), c_int>;
    /// `getsockopt(fd, level, name, &value, &len)` of an `int` option: the value.
    fn get(&self, fd: RawFd, level: c_int, name: c_int) -> Result<c_int, c_int>;
}

/// The C library's `setsockopt` and `getsockopt`: what core's own callers use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Libc;

impl Syscalls for Libc {
    #[inline]
    fn set(&self, fd: RawFd, level: c_int, name: c_int, value: &c_int) -> Result<(), c_int> {
        sys::set_raw(fd, level, name, *value)
    }

    #[inline]
    fn get(&self, fd: RawFd, level: c_int, name: c_int) -> Result<c_int, c_int> {
        sys::get_raw(fd, level, name)
    }
}

/// What a socket is, for keep-alive: TCP, multipath TCP (configured and enforced like TCP: Linux
/// passes the options on to its subflows) or anything else (left alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketKind {
    /// `AF_INET`/`AF_INET6`, `SOCK_STREAM`, `IPPROTO_TCP`.
    Tcp,
    /// `AF_INET`/`AF_INET6`, `SOCK_STREAM`, [`IPPROTO_MPTCP`].
    Mptcp,
    /// Every other socket (UDP, Unix-domain, raw, SCTP, ...), and whatever is not a socket.
    Other,
}

impl SocketKind {
    /// TCP or MPTCP: a socket keep-alive applies to.
    #[inline(always)]
    pub fn is_tcp(self) -> bool {
        !matches!(self, SocketKind::Other)
    }

    /// The kind of a socket from its family, type and protocol as the kernel reports them
    /// (`SO_DOMAIN`, `SO_TYPE`, `SO_PROTOCOL`).
    #[inline(always)]
    pub fn of(domain: c_int, ty: c_int, protocol: c_int) -> SocketKind {
        if (domain == libc::AF_INET || domain == libc::AF_INET6) && ty == libc::SOCK_STREAM {
            match protocol {
                libc::IPPROTO_TCP => return SocketKind::Tcp,
                IPPROTO_MPTCP => return SocketKind::Mptcp,
                _ => {}
            }
        }
        SocketKind::Other
    }

    /// The kind of the socket a `socket(domain, ty, protocol)` call makes: protocol 0 of an
    /// `AF_INET`/`AF_INET6` stream is TCP, and `SOCK_CLOEXEC`/`SOCK_NONBLOCK` (the bits above
    /// 0xf) do not matter (`ty & SOCK_STREAM` would also match `SOCK_RAW` and `SOCK_SEQPACKET`).
    /// For the preload's `socket()` hook: a few compares, no call.
    #[inline(always)]
    pub fn of_socket_call(domain: c_int, ty: c_int, protocol: c_int) -> SocketKind {
        if (domain == libc::AF_INET || domain == libc::AF_INET6) && (ty & 0xf) == libc::SOCK_STREAM
        {
            if protocol == 0 || protocol == libc::IPPROTO_TCP {
                return SocketKind::Tcp;
            }
            if protocol == IPPROTO_MPTCP {
                return SocketKind::Mptcp;
            }
        }
        SocketKind::Other
    }
}

/// The kind of the socket at `fd`, as the kernel says now (`SO_PROTOCOL`, `SO_TYPE`,
/// `SO_DOMAIN` through `sys`; three reads at most, one for most non-TCP descriptors). Anything
/// that is not a socket, or a read that fails, is [`SocketKind::Other`].
pub fn socket_kind_with(sys: &impl Syscalls, fd: RawFd) -> SocketKind {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let read = |name| sys.get(fd, libc::SOL_SOCKET, name);
        let (Ok(protocol), Ok(ty), Ok(domain)) = (
            read(libc::SO_PROTOCOL),
            read(libc::SO_TYPE),
            read(libc::SO_DOMAIN),
        ) else {
            return SocketKind::Other;
        };
        SocketKind::of(domain, ty, protocol)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (sys, fd);
        SocketKind::Other
    }
}

/// Most writes a plan makes: four options, then `SO_KEEPALIVE`.
const MAX_WRITES: usize = 5;

/// Core's writes for a socket, precomputed once: `[level, name, value]` in core's order (the user
/// timeout first when set, the option a TCP-like socket may lack, so failing on it changes
/// nothing; then idle, interval, count; `SO_KEEPALIVE` = 1 last, so probing never starts with
/// half-set timings). Built by [`KeepAlive::plan`]; run by [`WritePlan::apply_new`] (a socket just
/// made) or [`KeepAlive::apply_with`] (any socket, all or nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritePlan {
    writes: [[c_int; 3]; MAX_WRITES],
    options: [SocketOption; MAX_WRITES],
    /// 4 or 5; 0 for [`WritePlan::EMPTY`].
    len: usize,
}

/// A write of a plan that failed: which one and the kernel's `errno`. Writes before it were
/// undone as the plan says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteFailed {
    /// Index into [`WritePlan::writes`] of the write that failed; `None` for an empty plan.
    pub index: Option<usize>,
    /// The option that failed ([`SocketOption::KeepAlive`] for an empty plan).
    pub option: SocketOption,
    /// The kernel's error, positive; 0 for an empty plan.
    pub errno: c_int,
}

impl WritePlan {
    /// A plan that writes nothing: [`WritePlan::apply_new`] returns a [`WriteFailed`] with no
    /// index. For a door that must have a plan before it knows its settings.
    pub const EMPTY: WritePlan = WritePlan {
        writes: [[0; 3]; MAX_WRITES],
        options: [SocketOption::KeepAlive; MAX_WRITES],
        len: 0,
    };

    /// The `[level, name, value]` writes, in order.
    pub fn writes(&self) -> &[[c_int; 3]] {
        &self.writes[..self.len]
    }

    /// The option of each write, in order.
    pub fn options(&self) -> &[SocketOption] {
        &self.options[..self.len]
    }

    /// Whether the plan writes a user timeout (then it is the first write).
    fn has_user_timeout(&self) -> bool {
        self.len == MAX_WRITES
    }

    /// Makes the writes on a socket this program has just created and not yet shared, without
    /// reading old values first (the short path: the preload's `socket()` hook, the socket
    /// factories). A new socket has keep-alive off and no user timeout, so on a failure this
    /// turns back what matters: `SO_KEEPALIVE` is written last and so stays off, and a user timeout
    /// already written is reset to 0 (unset). Timings written before a later failure (which a
    /// healthy kernel never gives for valid values) stay, but do nothing while keep-alive is off.
    ///
    /// Unrolled and inlined: on the success path it is the system calls and a test each.
    #[inline(always)]
    pub fn apply_new<S: Syscalls>(&self, sys: &S, fd: RawFd) -> Result<(), WriteFailed> {
        let w = &self.writes;
        macro_rules! write {
            ($i:literal) => {
                if let Err(errno) = sys.set(fd, w[$i][0], w[$i][1], &w[$i][2]) {
                    return Err(self.undo_new(sys, fd, $i, errno));
                }
            };
        }
        match self.len {
            4 => {
                write!(0);
                write!(1);
                write!(2);
                write!(3);
            }
            5 => {
                write!(0);
                write!(1);
                write!(2);
                write!(3);
                write!(4);
            }
            _ => return Err(self.empty()),
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn empty(&self) -> WriteFailed {
        WriteFailed {
            index: None,
            option: SocketOption::KeepAlive,
            errno: 0,
        }
    }

    /// The undo of [`WritePlan::apply_new`] after write `index` failed with `errno`.
    #[cold]
    #[inline(never)]
    fn undo_new<S: Syscalls>(&self, sys: &S, fd: RawFd, index: usize, errno: c_int) -> WriteFailed {
        if self.has_user_timeout() && index > 0 {
            let [level, name, _] = self.writes[0];
            // Best effort: the original error is what the caller needs to see.
            let _ = sys.set(fd, level, name, &0);
        }
        WriteFailed {
            index: Some(index),
            option: self.options[index],
            errno,
        }
    }
}

/// What [`KeepAlive::enforce_on`] did after a program's own write of a keep-alive option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforced {
    /// The socket is no longer TCP (a stale mark: the number now holds something else): nothing
    /// was read or written, and the door should stop treating the descriptor as its own.
    NotTcp,
    /// The value in force could not be read back: nothing written.
    Unreadable,
    /// The value in force is within the ceiling: nothing written.
    Within,
    /// The value in force exceeded the ceiling, which was written over it.
    Capped {
        /// What the program left in force.
        from: c_int,
        /// The ceiling written.
        to: c_int,
        /// The write's result: `Err(errno)` when the kernel refused it.
        result: Result<(), c_int>,
    },
}

impl KeepAlive {
    /// These settings' writes for a socket, in core's order (see [`WritePlan`]).
    ///
    /// Fails with [`Error::Unsupported`] when a user timeout is asked for on a system without
    /// `TCP_USER_TIMEOUT`.
    pub fn plan(&self) -> Result<WritePlan, Error> {
        let mut plan = WritePlan::EMPTY;
        let ut = self
            .user_timeout_ms
            .map(|ms| (SocketOption::UserTimeout, ms));
        let all = ut.into_iter().chain([
            (SocketOption::KeepIdle, self.idle),
            (SocketOption::KeepInterval, self.interval),
            (SocketOption::KeepCount, self.count),
            (SocketOption::KeepAlive, 1),
        ]);
        for (option, value) in all {
            let (level, name) = sys::level_and_name(option).ok_or_else(|| Error::Unsupported {
                option,
                source: std::io::Error::from_raw_os_error(libc::ENOPROTOOPT),
            })?;
            // Validated values fit a c_int.
            plan.writes[plan.len] = [level, name, value as c_int];
            plan.options[plan.len] = option;
            plan.len += 1;
        }
        Ok(plan)
    }

    /// [`KeepAlive::apply`] through `sys`: reads the current values of the options it writes
    /// (which also tells a non-TCP socket, a non-socket and a closed descriptor apart before
    /// anything changes), makes the plan's writes, and on a failure writes the old values back.
    pub fn apply_with(&self, sys: &impl Syscalls, fd: RawFd) -> Result<(), Error> {
        let plan = self.plan()?;
        let writes = plan.writes();
        // Every write but SO_KEEPALIVE (last) is read first.
        let timings = writes.len() - 1;
        let mut before: [c_int; MAX_WRITES] = [0; MAX_WRITES];
        for (index, [level, name, _]) in writes[..timings].iter().enumerate() {
            before[index] = sys
                .get(fd, *level, *name)
                .map_err(|errno| sys::classify(sys, fd, plan.options()[index], errno))?;
        }
        for (index, [level, name, value]) in writes.iter().enumerate() {
            if let Err(errno) = sys.set(fd, *level, *name, value) {
                // Best effort: the original error is what the caller needs to see.
                for ([level, name, _], old) in writes[..index.min(timings)].iter().zip(before) {
                    let _ = sys.set(fd, *level, *name, &old);
                }
                return Err(sys::classify(sys, fd, plan.options()[index], errno));
            }
        }
        Ok(())
    }

    /// [`KeepAlive::apply_to_new_socket`] through `sys`, with core's error.
    pub fn apply_new_with(&self, sys: &impl Syscalls, fd: RawFd) -> Result<(), Error> {
        self.plan()?
            .apply_new(sys, fd)
            .map_err(|f| sys::classify(sys, fd, f.option, f.errno))
    }

    /// The operator door's step after a program's own successful write of `option` on a socket
    /// the door configured (docs/design.md, "Who decides"): reads the value now in force through
    /// `sys` and, when [`KeepAlive::enforce`] says it exceeds these settings, writes the ceiling
    /// over it. `SO_KEEPALIVE` succeeds on any socket, so for it the socket's kind is checked first
    /// ([`Enforced::NotTcp`] for a descriptor that is no longer TCP); TCP-level options succeed on
    /// TCP sockets only.
    pub fn enforce_on(&self, sys: &impl Syscalls, fd: RawFd, option: SocketOption) -> Enforced {
        if option == SocketOption::KeepAlive && !socket_kind_with(sys, fd).is_tcp() {
            return Enforced::NotTcp;
        }
        let Some((level, name)) = sys::level_and_name(option) else {
            return Enforced::Unreadable;
        };
        let Ok(in_force) = sys.get(fd, level, name) else {
            return Enforced::Unreadable;
        };
        let ceiling = self.enforce(option, in_force);
        if ceiling == in_force {
            return Enforced::Within;
        }
        Enforced::Capped {
            from: in_force,
            to: ceiling,
            result: sys.set(fd, level, name, &ceiling),
        }
    }
}
