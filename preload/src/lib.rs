//! `libkeepalive.so`: load it with `LD_PRELOAD` and every TCP socket an unmodified, dynamically
//! linked program creates gets keep-alive, configured from the environment by `tcp-keepalive`'s
//! core ([`tcp_keepalive::OperatorEnv`]; see `README.md`), and the program cannot undo it.
//!
//! Exported: `socket`, `setsockopt`, `accept`, `accept4`, `dup`, `dup2`, `dup3`. Each calls the
//! real function first and returns exactly what it returned, with `errno` as it left it.
//! - `socket`: a new TCP socket (family `AF_INET`/`AF_INET6`, `(type & 0xf) == SOCK_STREAM`,
//!   protocol 0, `IPPROTO_TCP` or `IPPROTO_MPTCP`: core's [`tcp_keepalive::SocketKind`]) gets
//!   core's write plan and its undo ([`tcp_keepalive::WritePlan::apply_new`], `SO_KEEPALIVE`
//!   last), run through bare system calls; every other socket is left exactly as the kernel made
//!   it.
//! - `setsockopt`: enforcement (docs/design.md, "Who decides"). When the program's own write of a
//!   keep-alive option on a socket we configured succeeded, core's
//!   [`tcp_keepalive::KeepAlive::enforce_on`] reads the value now in force back and, if it exceeds
//!   the operator's ceiling, writes the ceiling over it. The program's pointer is never read (a bad one gets the
//!   kernel's `EFAULT`), an invalid value fails in the kernel as it would have, and every other
//!   call costs a mask test and a bit test, then a jump to libc's. `TCP_KEEPALIVE_ENFORCE=off`
//!   lets the program win.
//! - `accept`, `accept4`: a connection accepted from a listener we configured is ours too (Linux
//!   copied the listener's keep-alive to it), so it is enforced as well.
//! - `dup`, `dup2`, `dup3`: a duplicate of one of our sockets is ours, and a number they reuse
//!   for anything else is not. See `tracked.rs` for how descriptors are told apart.
//!
//! Never harming the host comes first:
//! - The constructor does everything that may allocate or lock: it finds libc's functions
//!   (`dlsym`, once; a failed lookup means raw system calls, never a retry), reads the
//!   environment, precomputes the writes and the log text, and installs a silent panic hook.
//!   After it, the hooks take no lock and allocate nothing (only a failure line with
//!   `TCP_KEEPALIVE_LOG=1` formats core's error, which allocates): safe in a signal handler and in
//!   the child of a threaded `fork`.
//! - Before the constructor has run (another library's constructor calling `socket()` first),
//!   the hooks make the raw system call and configure nothing.
//! - No panic crosses the C boundary and none prints to the host's stderr; lines go out only as
//!   `stderr.rs` allows (never into a descriptor that is no longer our stderr, never a `SIGPIPE`).
#![warn(missing_docs)]

#[cfg(not(any(target_os = "linux", target_os = "android")))]
compile_error!("libkeepalive.so is for Linux: it hooks glibc's socket() and uses Linux's options");

mod real;
mod stderr;
mod tracked;

use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use libc::{c_int, c_void, sockaddr, socklen_t};
use tcp_keepalive::{
    Enforced, KeepAlive, Libc, OperatorEnv, SocketKind, SocketOption, Syscalls, WriteFailed,
    WritePlan,
};

use stderr::Line;

/// What the environment asked for, read once by the constructor and never changed or freed.
/// `repr(C)` with `fast` first: the hot path's plan is at the address of the configuration.
#[repr(C)]
struct Config {
    /// The plan the hot path runs: `plan` without logging, empty with it (so a socket of a
    /// logging process takes the cold path, which runs `plan` and logs).
    fast: WritePlan,
    /// The operator's settings; `None` when switched off or when a value was invalid.
    keepalive: Option<KeepAlive>,
    /// Core's writes for a new socket ([`KeepAlive::plan`]); empty when `keepalive` is `None`.
    plan: WritePlan,
    /// `TCP_KEEPALIVE_LOG`: one stderr line per socket configured (or not) and per write enforced.
    log: bool,
    /// `TCP_KEEPALIVE_ENFORCE`: the operator's settings are a ceiling.
    enforce: bool,
    /// A complete stderr line about an invalid variable, printed once, at the first TCP socket
    /// (so programs that never open one stay quiet).
    problem: Option<String>,
    /// "keep-alive on, idle 60s, ...", formatted once for the log lines.
    summary: String,
    /// Debug builds only: panic inside the hook, to test that no panic crosses the C boundary.
    #[cfg(debug_assertions)]
    test_panic: bool,
}

/// The configuration before the constructor ran: nothing configured, nothing enforced.
static UNLOADED: Config = Config {
    fast: WritePlan::EMPTY,
    keepalive: None,
    plan: WritePlan::EMPTY,
    log: false,
    enforce: false,
    problem: None,
    summary: String::new(),
    #[cfg(debug_assertions)]
    test_panic: false,
};

impl Config {
    fn from_env() -> Config {
        let (keepalive, log, enforce, mut problem) = match OperatorEnv::from_env() {
            Ok(env) => (env.config.or_default(), env.log, env.enforce, None),
            Err(err) => (None, false, false, Some(err)),
        };
        let plan = match keepalive.map(|k| k.plan()).transpose() {
            Ok(plan) => plan.unwrap_or(WritePlan::EMPTY),
            Err(err) => {
                problem = Some(err);
                WritePlan::EMPTY
            }
        };
        let configured = !plan.writes().is_empty();
        #[cfg(debug_assertions)]
        let test_panic = std::env::var_os("TCP_KEEPALIVE_PRELOAD_TEST_PANIC").is_some();
        #[cfg(not(debug_assertions))]
        let test_panic = false;
        Config {
            // Logging (and the test panic) need the cold path for every socket.
            fast: if log || test_panic {
                WritePlan::EMPTY
            } else {
                plan
            },
            keepalive: keepalive.filter(|_| configured),
            plan,
            log,
            enforce,
            problem: problem.map(|err| {
                format!(
                    "tcp-keepalive (libkeepalive.so): {err}; keep-alive is left off for every \
                     socket of this process\n"
                )
            }),
            summary: keepalive.map_or_else(String::new, |k| format!("keep-alive on, {k}")),
            #[cfg(debug_assertions)]
            test_panic,
        }
    }
}

/// Core's system calls made the preload's way: our own writes are bare `setsockopt` system calls
/// (they leave `errno` alone, so the hot path neither saves nor restores it); reads go through
/// libc, on paths that save and restore `errno` themselves.
struct Bare;

impl Syscalls for Bare {
    #[inline(always)]
    fn set(&self, fd: c_int, level: c_int, name: c_int, value: &c_int) -> Result<(), c_int> {
        // SAFETY: a live c_int.
        match unsafe { real::set_int(fd, level, name, value) } {
            0 => Ok(()),
            rc => Err(-rc as c_int),
        }
    }

    fn get(&self, fd: c_int, level: c_int, name: c_int) -> Result<c_int, c_int> {
        Libc.get(fd, level, name)
    }
}

/// The keep-alive options core knows, as bit masks of option numbers (below 64) at `SOL_SOCKET`
/// and at `IPPROTO_TCP`, found once by the constructor with [`SocketOption::from_raw`]: the cheap
/// test every `setsockopt` takes before anything else. Empty (nothing enforced) before it ran.
static OPTIONS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Fills [`OPTIONS`]; constructor only.
fn find_options() {
    for (slot, level) in OPTIONS.iter().zip([libc::SOL_SOCKET, libc::IPPROTO_TCP]) {
        let mask = (0..64)
            .filter(|name| SocketOption::from_raw(level, *name).is_some())
            .fold(0u64, |mask, name| mask | 1 << name);
        slot.store(mask, Ordering::Relaxed);
    }
}

/// Whether `(level, name)` is one of the options core enforces: a few compares, no call.
#[inline(always)]
fn is_keepalive_option(level: c_int, name: c_int) -> bool {
    let mask = match level {
        libc::SOL_SOCKET => OPTIONS[0].load(Ordering::Relaxed),
        libc::IPPROTO_TCP => OPTIONS[1].load(Ordering::Relaxed),
        _ => return false,
    };
    (0..64).contains(&name) && mask & (1u64 << name) != 0
}

/// The configuration, published once by the constructor; [`UNLOADED`] before it ran.
static CONFIG: AtomicPtr<Config> = AtomicPtr::new(&UNLOADED as *const Config as *mut Config);
/// Whether [`Config::problem`] has been printed.
static PROBLEM_REPORTED: AtomicBool = AtomicBool::new(false);

/// The published configuration ([`UNLOADED`] before the constructor ran).
#[inline(always)]
fn config() -> &'static Config {
    // SAFETY: CONFIG always points to a Config that is never freed or changed.
    unsafe { &*CONFIG.load(Ordering::Acquire) }
}

/// Runs when the library is loaded, before the program's `main` (and before any thread or signal
/// handler of its own): everything that may allocate, lock or call `dlsym` happens here, once.
extern "C" fn load() {
    let _ = panic::catch_unwind(|| {
        // First, so nothing below can print a panic to the host's stderr either.
        // (A closure: the hook's argument type was renamed in Rust 1.81, after our MSRV.)
        panic::set_hook(Box::new(|info| quiet_panic(info)));
        real::resolve();
        tracked::own();
        // SAFETY: registers a handler that only stores getpid's result (async-signal-safe).
        unsafe { libc::pthread_atfork(None, None, Some(tracked::own)) };
        find_options();
        stderr::remember();
        let config = Box::into_raw(Box::new(Config::from_env()));
        CONFIG.store(config, Ordering::Release);
    });
}

#[used]
#[link_section = ".init_array"]
static LOAD: extern "C" fn() = load;

/// The panic hook of this library's own copy of std (the host's is not touched): silent, unless
/// `TCP_KEEPALIVE_LOG=1` asked for lines. The hook that panicked then returns as if it had not run.
fn quiet_panic(info: &dyn std::fmt::Display) {
    if config().log {
        let mut line = Line::new();
        let _ = write!(
            line,
            "tcp-keepalive (libkeepalive.so): internal error, caught; the call returned as without \
             us: {info}"
        );
        line.flatten();
        line.push(b"\n");
        line.emit();
    }
}

/// The `socket()` every program calls: the real one first, then keep-alive on TCP sockets.
///
/// Returns exactly what the real call returned, with `errno` exactly as it left it (our own
/// writes are bare system calls, which never touch `errno`).
///
/// # Safety
/// Same contract as `socket(2)`; called by C code.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let fd = real::socket(domain, ty, protocol);
    if fd >= 0 {
        if SocketKind::of_socket_call(domain, ty, protocol).is_tcp() {
            // Nothing in `configure` should panic; if something does, the program must not
            // notice.
            if panic::catch_unwind(AssertUnwindSafe(|| {
                configure(fd, domain, protocol, config())
            }))
            .is_err()
            {
                tracked::forget(fd);
            }
        } else {
            // Not TCP: as the kernel made it, and not ours.
            tracked::forget(fd);
        }
    }
    fd
}

/// Makes core's writes on a new TCP socket ([`WritePlan::apply_new`]). The hot path: no call
/// but the system calls, `errno` untouched; logging, a failure, the off switch and the time
/// before the constructor all take [`slow`].
#[inline(always)]
fn configure(fd: c_int, domain: c_int, protocol: c_int, config: &'static Config) {
    match config.fast.apply_new(&Bare, fd) {
        Ok(()) => tracked::remember(fd),
        Err(failure) => slow(fd, domain, protocol, config, failure),
    }
}

/// Everything but a configured socket without logging: runs the plan when the fast one was empty
/// (logging), then remembers, logs, reports or forgets.
#[cold]
#[inline(never)]
fn slow(fd: c_int, domain: c_int, protocol: c_int, config: &Config, failure: WriteFailed) {
    let kind = SocketKind::of_socket_call(domain, libc::SOCK_STREAM, protocol);
    #[cfg(debug_assertions)]
    if config.test_panic {
        panic!("TCP_KEEPALIVE_PRELOAD_TEST_PANIC is set (debug builds only)");
    }
    let result = match failure.index {
        Some(_) => Err(failure),
        None if config.plan.writes().is_empty() => return not_configured(fd, config),
        None => config.plan.apply_new(&Bare, fd),
    };
    match result {
        Ok(()) => {
            tracked::remember(fd);
            if config.log {
                logged(fd, domain, kind, config);
            }
        }
        Err(failure) => failed(fd, domain, kind, config, failure),
    }
}

/// The log line of a configured socket.
#[cold]
#[inline(never)]
fn logged(fd: c_int, domain: c_int, kind: SocketKind, config: &Config) {
    let mut line = Line::new();
    let _ = write!(
        line,
        "tcp-keepalive: fd {fd} ({}): ",
        describe(domain, kind)
    );
    line.push(config.summary.as_bytes());
    line.push(b"\n");
    line.emit();
}

fn describe(domain: c_int, kind: SocketKind) -> &'static str {
    match (domain == libc::AF_INET6, kind == SocketKind::Mptcp) {
        (false, false) => "AF_INET TCP",
        (false, true) => "AF_INET MPTCP",
        (true, false) => "AF_INET6 TCP",
        (true, true) => "AF_INET6 MPTCP",
    }
}

/// Switched off, or an invalid variable: say so once (the problem line), change nothing.
#[cold]
#[inline(never)]
fn not_configured(fd: c_int, config: &Config) {
    tracked::forget(fd);
    if let Some(problem) = &config.problem {
        if !PROBLEM_REPORTED.swap(true, Ordering::Relaxed) {
            let mut line = Line::new();
            line.push(problem.as_bytes());
            line.emit();
        }
    }
}

/// A write of core's plan failed (core undid what matters: `SO_KEEPALIVE` is last, so it stayed
/// off; a user timeout already written is reset to 0; timings do nothing while keep-alive is
/// off): not ours; log when asked. No allocation unless logging.
#[cold]
#[inline(never)]
fn failed(fd: c_int, domain: c_int, kind: SocketKind, config: &Config, failure: WriteFailed) {
    tracked::forget(fd);
    if config.log {
        let mut line = Line::new();
        let _ = writeln!(
            line,
            "tcp-keepalive: fd {fd} ({}): keep-alive left off, socket returned anyway: {}",
            describe(domain, kind),
            tcp_keepalive::Error::Os {
                fd,
                option: failure.option,
                source: std::io::Error::from_raw_os_error(failure.errno),
            }
        );
        line.emit();
    }
}

/// The `setsockopt()` every program calls: the real one first; then, when it set a keep-alive
/// option on a socket we configured, the operator's ceiling (see the crate docs).
///
/// Returns exactly what the real call returned, with `errno` exactly as it left it.
///
/// # Safety
/// Same contract as `setsockopt(2)`; called by C code.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    // The cheap test first, so every other call is a jump to libc's.
    if !(is_keepalive_option(level, name) && tracked::contains(fd)) {
        return real::setsockopt(fd, level, name, value, len);
    }
    enforced_setsockopt(fd, level, name, value, len)
}

/// The program's write of a keep-alive option on one of our sockets: the real call, then
/// [`enforce`] when it succeeded.
#[cold]
#[inline(never)]
unsafe fn enforced_setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    let rc = real::setsockopt(fd, level, name, value, len);
    if rc == 0 {
        enforce(fd, level, name, config());
    }
    rc
}

/// The program's own successful write on one of our sockets: if it was a keep-alive option and
/// left a value above the operator's ceiling, write the ceiling (core decides it).
#[cold]
#[inline(never)]
fn enforce(fd: c_int, level: c_int, name: c_int, config: &Config) {
    let Some(option) = SocketOption::from_raw(level, name) else {
        return;
    };
    let Some(keepalive) = config.keepalive.filter(|_| config.enforce) else {
        return;
    };
    // SAFETY: errno is thread-local; we put back what we found.
    let errno = unsafe { libc::__errno_location() };
    let saved = unsafe { *errno };
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        match keepalive.enforce_on(&Bare, fd, option) {
            // A stale bit (see tracked.rs): the number holds something else now.
            Enforced::NotTcp => tracked::forget(fd),
            Enforced::Capped { from, to, result } if config.log => {
                let mut line = Line::new();
                let _ = writeln!(
                    line,
                    "tcp-keepalive: fd {fd}: the program set {option} to {from}; {} {to} \
                     (the operator's ceiling; TCP_KEEPALIVE_ENFORCE=off lets the program win)",
                    if result.is_ok() {
                        "wrote"
                    } else {
                        "could not write"
                    }
                );
                line.emit();
            }
            Enforced::Capped { .. } | Enforced::Within | Enforced::Unreadable => {}
        }
    }));
    // SAFETY: as above.
    unsafe { *errno = saved };
}

/// A connection accepted from one of our listeners is ours; any other socket at that number is not.
#[inline(always)]
fn accepted(listener: c_int, fd: c_int) {
    if fd >= 0 {
        tracked::mark(fd, tracked::contains(listener));
    }
}

/// The `accept()` every program calls: the real one, then one bit test (a connection of one of
/// our listeners is ours).
///
/// # Safety
/// Same contract as `accept(2)`; called by C code.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    let conn = real::accept(fd, addr, len);
    accepted(fd, conn);
    conn
}

/// The `accept4()` every program calls: the real one, then one bit test (a connection of one of
/// our listeners is ours).
///
/// # Safety
/// Same contract as `accept4(2)`; called by C code.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let conn = real::accept4(fd, addr, len, flags);
    accepted(fd, conn);
    conn
}

/// A duplicate is the same socket as its original: ours exactly when the original is.
#[inline(always)]
fn duplicated(old: c_int, new: c_int) {
    if new >= 0 && new != old {
        tracked::mark(new, tracked::contains(old));
    }
}

/// The `dup()` every program calls: the real one, then one bit copied (a duplicate of one of our
/// sockets is ours; whatever held the new number before is not).
///
/// # Safety
/// Same contract as `dup(2)`; called by C code.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    let new = real::dup(fd);
    duplicated(fd, new);
    new
}

/// The `dup2()` every program calls: the real one, then one bit copied (see `dup`).
///
/// # Safety
/// Same contract as `dup2(2)`; called by C code.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    let fd = real::dup2(old, new);
    duplicated(old, fd);
    fd
}

/// The `dup3()` every program calls: the real one, then one bit copied (see `dup`).
///
/// # Safety
/// Same contract as `dup3(2)`; called by C code.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    let fd = real::dup3(old, new, flags);
    duplicated(old, fd);
    fd
}

/// Marks this file as tcp-keepalive's preload library. `tcp-keepalive run` and `install-preload`
/// refuse a shared object without this exported symbol: glibc exports `socket` too, and
/// preloading libc itself would configure nothing. Nothing reads its value.
#[no_mangle]
pub static TCP_KEEPALIVE_PRELOAD: u32 = 1;
