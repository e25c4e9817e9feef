//! `libkeepalive.so`: load it with `LD_PRELOAD` and every TCP socket an unmodified, dynamically
//! linked program creates gets keep-alive, configured from the environment by `tcp-keepalive`'s
//! core ([`tcp_keepalive::OperatorEnv`]; see `README.md`), and the program cannot undo it.
//!
//! Exported: `socket`, `setsockopt`, `accept`, `accept4`, `dup`, `dup2`, `dup3`. Each calls the
//! real function first and returns exactly what it returned, with `errno` as it left it.
//! - `socket`: a new TCP socket (family `AF_INET`/`AF_INET6`, `(type & 0xf) == SOCK_STREAM`,
//!   protocol 0, `IPPROTO_TCP` or `IPPROTO_MPTCP`) gets core's writes
//!   ([`tcp_keepalive::KeepAlive::socket_options`], in its order, `SO_KEEPALIVE` last), made as
//!   bare system calls; every other socket is left exactly as the kernel made it.
//! - `setsockopt`: enforcement (DESIGN.md, "Who decides"). When the program's own write of a
//!   keep-alive option on a socket we configured succeeded, the value now in force is read back
//!   and, if core's [`tcp_keepalive::KeepAlive::enforce`] says it exceeds the operator's ceiling,
//!   the ceiling is written over it. The program's pointer is never read (a bad one gets the
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
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use libc::{c_int, c_void, sockaddr, socklen_t};
use tcp_keepalive::{KeepAlive, OperatorEnv, SocketOption};

use stderr::Line;

/// `IPPROTO_MPTCP` (Linux 5.6+). Multipath TCP runs TCP subflows through the same middleboxes, and
/// Linux passes keep-alive settings on to them, so such sockets are configured too.
const IPPROTO_MPTCP: c_int = 262;

/// Most writes a new socket gets: four options, then `SO_KEEPALIVE`.
const MAX_WRITES: usize = 5;

/// What the environment asked for, read once by the constructor and never changed or freed.
struct Config {
    /// The operator's settings; `None` when switched off or when a value was invalid.
    keepalive: Option<KeepAlive>,
    /// Core's `[level, option, value]` writes for a new socket, in its order (`SO_KEEPALIVE` last).
    writes: [[c_int; 3]; MAX_WRITES],
    /// How many of `writes` to make; 0 when `keepalive` is `None`.
    write_count: usize,
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

impl Config {
    fn from_env() -> Config {
        let (keepalive, log, enforce, mut problem) = match OperatorEnv::from_env() {
            Ok(env) => (env.config.or_default(), env.log, env.enforce, None),
            Err(err) => (
                None,
                false,
                false,
                Some(format!(
                    "tcp-keepalive (libkeepalive.so): {err}; keep-alive is left off for every \
                     socket of this process\n"
                )),
            ),
        };
        let mut writes = [[0; 3]; MAX_WRITES];
        let mut write_count = 0;
        if let Some(k) = keepalive {
            match k.socket_options() {
                Ok(list) if (4..=MAX_WRITES).contains(&list.len()) => {
                    for (slot, (level, name, value)) in writes.iter_mut().zip(&list) {
                        *slot = [*level, *name, *value];
                    }
                    write_count = list.len();
                }
                Ok(_) => problem = Some("tcp-keepalive (libkeepalive.so): internal error\n".into()),
                Err(err) => {
                    problem = Some(format!(
                        "tcp-keepalive (libkeepalive.so): {err}; keep-alive is left off for \
                         every socket of this process\n"
                    ))
                }
            }
        }
        Config {
            keepalive: keepalive.filter(|_| write_count > 0),
            writes,
            write_count,
            log,
            enforce,
            problem,
            summary: keepalive.map_or_else(String::new, |k| format!("keep-alive on, {k}")),
            #[cfg(debug_assertions)]
            test_panic: std::env::var_os("TCP_KEEPALIVE_PRELOAD_TEST_PANIC").is_some(),
        }
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

/// The configuration, published once by the constructor; null before it ran.
static CONFIG: AtomicPtr<Config> = AtomicPtr::new(ptr::null_mut());
/// Whether [`Config::problem`] has been printed.
static PROBLEM_REPORTED: AtomicBool = AtomicBool::new(false);

/// The published configuration, or `None` before the constructor ran.
#[inline(always)]
fn config() -> Option<&'static Config> {
    // SAFETY: a published Config is never freed or changed.
    unsafe { CONFIG.load(Ordering::Acquire).as_ref() }
}

/// Runs when the library is loaded, before the program's `main` (and before any thread or signal
/// handler of its own): everything that may allocate, lock or call `dlsym` happens here, once.
extern "C" fn load() {
    let _ = panic::catch_unwind(|| {
        // First, so nothing below can print a panic to the host's stderr either.
        // (A closure: the hook's argument type was renamed in Rust 1.81, after our MSRV.)
        panic::set_hook(Box::new(|info| quiet_panic(info)));
        real::resolve();
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
    if config().is_some_and(|c| c.log) {
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

/// Whether `socket(domain, ty, protocol)` made a TCP socket. `SOCK_CLOEXEC`/`SOCK_NONBLOCK` live
/// in the bits above 0xf; `type & SOCK_STREAM` would also match `SOCK_RAW` (3) and
/// `SOCK_SEQPACKET` (5).
#[inline(always)]
fn is_tcp(domain: c_int, ty: c_int, protocol: c_int) -> bool {
    (domain == libc::AF_INET || domain == libc::AF_INET6)
        && (ty & 0xf) == libc::SOCK_STREAM
        && (protocol == 0 || protocol == libc::IPPROTO_TCP || protocol == IPPROTO_MPTCP)
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
        match config() {
            Some(config) if is_tcp(domain, ty, protocol) => {
                // Nothing in `configure` should panic; if something does, the program must not
                // notice.
                if panic::catch_unwind(AssertUnwindSafe(|| configure(fd, domain, protocol, config)))
                    .is_err()
                {
                    tracked::forget(fd);
                }
            }
            // Not TCP, or before our constructor: as the kernel made it, and not ours.
            _ => tracked::forget(fd),
        }
    }
    fd
}

/// Makes core's writes on a new TCP socket; logs when asked. The hot path: no call but the
/// system calls, `errno` untouched.
#[inline(always)]
fn configure(fd: c_int, domain: c_int, protocol: c_int, config: &Config) {
    #[cfg(debug_assertions)]
    if config.test_panic {
        panic!("TCP_KEEPALIVE_PRELOAD_TEST_PANIC is set (debug builds only)");
    }
    let writes = &config.writes;
    // Unrolled (constant indices, no loop counter): each write is its system call and a test.
    macro_rules! write {
        ($i:literal) => {
            let [level, name, value] = &writes[$i];
            // SAFETY: a live c_int.
            let rc = unsafe { real::set_int(fd, *level, *name, value) };
            if rc != 0 {
                return failed(fd, domain, protocol, config, $i, -rc as c_int);
            }
        };
    }
    match config.write_count {
        // Three timings and SO_KEEPALIVE, or with a user timeout too.
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
        _ => return not_configured(fd, config),
    }
    tracked::remember(fd);
    if config.log {
        logged(fd, domain, protocol, config);
    }
}

/// The log line of a configured socket.
#[cold]
#[inline(never)]
fn logged(fd: c_int, domain: c_int, protocol: c_int, config: &Config) {
    let mut line = Line::new();
    let _ = write!(
        line,
        "tcp-keepalive: fd {fd} ({}): ",
        describe(domain, protocol)
    );
    line.push(config.summary.as_bytes());
    line.push(b"\n");
    line.emit();
}

fn describe(domain: c_int, protocol: c_int) -> &'static str {
    match (domain == libc::AF_INET6, protocol == IPPROTO_MPTCP) {
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

/// Write number `done` failed with `err`: undo what matters, as core's `apply_to_new_socket`
/// does for a new socket (`SO_KEEPALIVE` is last, so it stayed off; a user timeout already
/// written is reset to 0; timings do nothing while keep-alive is off), and log when asked. No
/// allocation unless logging.
#[cold]
#[inline(never)]
fn failed(fd: c_int, domain: c_int, protocol: c_int, config: &Config, done: usize, err: c_int) {
    tracked::forget(fd);
    for [level, name, _] in &config.writes[..done] {
        if SocketOption::from_raw(*level, *name) == Some(SocketOption::UserTimeout) {
            let unset: c_int = 0;
            // SAFETY: a live c_int; best effort.
            unsafe { real::set_int(fd, *level, *name, &unset) };
        }
    }
    if config.log {
        let [level, name, _] = config.writes[done];
        let mut line = Line::new();
        let what = describe(domain, protocol);
        let _ = match SocketOption::from_raw(level, name) {
            Some(option) => writeln!(
                line,
                "tcp-keepalive: fd {fd} ({what}): keep-alive left off, socket returned anyway: {}",
                tcp_keepalive::Error::Os {
                    fd,
                    option,
                    source: std::io::Error::from_raw_os_error(err),
                }
            ),
            None => writeln!(
                line,
                "tcp-keepalive: fd {fd} ({what}): keep-alive left off, socket returned anyway: \
                 errno {err}"
            ),
        };
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
        if let Some(config) = config() {
            enforce(fd, level, name, config);
        }
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
        // A TCP-level option succeeds only on a TCP socket; SO_KEEPALIVE succeeds on any socket,
        // so a stale bit (see tracked.rs) is checked with the kernel first.
        if option == SocketOption::KeepAlive && !is_tcp_socket(fd) {
            tracked::forget(fd);
            return;
        }
        let Some(in_force) = get_int(fd, level, name) else {
            return;
        };
        let ceiling = keepalive.enforce(option, in_force);
        if ceiling == in_force {
            return;
        }
        // SAFETY: a live c_int.
        let rc = unsafe { real::set_int(fd, level, name, &ceiling) };
        if config.log {
            let mut line = Line::new();
            let _ = writeln!(
                line,
                "tcp-keepalive: fd {fd}: the program set {option} to {in_force}; {} {ceiling} \
                 (the operator's ceiling; TCP_KEEPALIVE_ENFORCE=off lets the program win)",
                if rc == 0 { "wrote" } else { "could not write" }
            );
            line.emit();
        }
    }));
    // SAFETY: as above.
    unsafe { *errno = saved };
}

/// One int option read back from the kernel.
fn get_int(fd: c_int, level: c_int, name: c_int) -> Option<c_int> {
    let mut value: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: a live c_int and its length.
    let rc =
        unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut c_int).cast(), &mut len) };
    (rc == 0 && len as usize == std::mem::size_of::<c_int>()).then_some(value)
}

/// Whether `fd` is a TCP (or MPTCP) socket now, as the kernel says.
fn is_tcp_socket(fd: c_int) -> bool {
    get_int(fd, libc::SOL_SOCKET, libc::SO_TYPE) == Some(libc::SOCK_STREAM)
        && matches!(
            get_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL),
            Some(p) if p == libc::IPPROTO_TCP || p == IPPROTO_MPTCP
        )
}

/// A connection accepted from one of our listeners is ours; any other socket at that number is not.
#[inline(always)]
fn accepted(listener: c_int, fd: c_int) {
    if fd >= 0 {
        if tracked::contains(listener) {
            tracked::remember(fd);
        } else {
            tracked::forget(fd);
        }
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
        if tracked::contains(old) {
            tracked::remember(new);
        } else {
            tracked::forget(new);
        }
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
