//! `libkeepalive.so`: load it with `LD_PRELOAD` and every TCP socket an unmodified, dynamically
//! linked program creates gets keep-alive, configured by `tcp-keepalive`'s core from the
//! environment (`TCP_KEEPALIVE_IDLE`, ... and the classic `KEEPIDLE`, ...; see `README.md`).
//!
//! The library exports one symbol, `socket`. The hook calls the real `socket()` first and returns
//! exactly what it returned, with `errno` as it left it. When the new socket is TCP (family
//! `AF_INET`/`AF_INET6`, `(type & 0xf) == SOCK_STREAM`, so `SOCK_CLOEXEC` and `SOCK_NONBLOCK` are
//! fine, and protocol 0, `IPPROTO_TCP` or `IPPROTO_MPTCP`) it is configured with
//! [`tcp_keepalive::KeepAlive::apply_to_new_socket`]. Every other socket is left exactly as the
//! kernel made it.
//!
//! Never breaking the host program comes first:
//! - the settings are read once, when the library is loaded (lazily on the first `socket()` call
//!   if another library's constructor calls it before ours ran), without locks, so a `fork()`
//!   from a threaded program can never leave the child waiting on one;
//! - an invalid value is never replaced by a default: one line on stderr names the variable, the
//!   value and what is allowed, and no socket is changed;
//! - a failure to configure a socket is logged (with `TCP_KEEPALIVE_LOG=1`) and the socket is
//!   returned anyway; no panic crosses the C boundary;
//! - the real `socket` is looked up lazily with `dlsym(RTLD_NEXT)` (lock-free and thread-safe);
//!   if that is not possible yet, the hook makes the system call itself.
#![warn(missing_docs)]

#[cfg(not(any(target_os = "linux", target_os = "android")))]
compile_error!("libkeepalive.so is for Linux: it hooks glibc's socket() and uses Linux's options");

use std::fmt::{self, Write as _};
use std::os::fd::BorrowedFd;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use libc::c_int;
use tcp_keepalive::KeepAlive;

/// `IPPROTO_MPTCP` (Linux 5.6+). Multipath TCP runs TCP subflows through the same middleboxes, and
/// Linux passes keep-alive settings on to them, so such sockets are configured too.
const IPPROTO_MPTCP: c_int = 262;

/// The variable that switches the per-socket log line on.
const LOG_VARIABLE: &str = "TCP_KEEPALIVE_LOG";

/// What the environment asked for, read once.
struct Config {
    /// The settings to apply; `None` when switched off or when a value was invalid.
    keepalive: Option<KeepAlive>,
    /// `TCP_KEEPALIVE_LOG=1`: one stderr line per socket configured (or not).
    log: bool,
    /// A complete stderr line about an invalid variable, printed once, at the first TCP socket
    /// (so programs that never open one stay quiet).
    problem: Option<String>,
    /// Debug builds only: panic inside the hook, to test that no panic crosses the C boundary.
    #[cfg(debug_assertions)]
    test_panic: bool,
}

impl Config {
    fn from_env() -> Config {
        let mut problems = Vec::new();
        let keepalive = match KeepAlive::from_env() {
            Ok(env) => env.or_default(),
            Err(err) => {
                problems.push(format!(
                    "tcp-keepalive (libkeepalive.so): {err}; keep-alive is left off for every \
                     socket of this process"
                ));
                None
            }
        };
        let log = match std::env::var(LOG_VARIABLE) {
            Err(_) => false,
            Ok(text) => match text.trim().to_ascii_lowercase().as_str() {
                "" | "0" | "off" | "false" | "no" => false,
                "1" | "on" | "true" | "yes" => true,
                _ => {
                    problems.push(format!(
                        "tcp-keepalive (libkeepalive.so): invalid {LOG_VARIABLE}: {text:?} \
                         (allowed: 1 or 0, on or off); logging stays off"
                    ));
                    false
                }
            },
        };
        Config {
            keepalive,
            log,
            problem: (!problems.is_empty()).then(|| problems.join("\n")),
            #[cfg(debug_assertions)]
            test_panic: std::env::var_os("TCP_KEEPALIVE_PRELOAD_TEST_PANIC").is_some(),
        }
    }
}

/// The configuration, published once with a compare-and-swap: no lock, so nothing can deadlock,
/// not even in a child forked while another thread was reading the environment.
static CONFIG: AtomicPtr<Config> = AtomicPtr::new(ptr::null_mut());
/// Whether [`Config::problem`] has been printed.
static PROBLEM_REPORTED: AtomicBool = AtomicBool::new(false);

#[inline]
fn config() -> &'static Config {
    let current = CONFIG.load(Ordering::Acquire);
    if !current.is_null() {
        // SAFETY: a published Config is never freed or changed.
        return unsafe { &*current };
    }
    publish_config()
}

/// Reads the environment and publishes the result, unless another thread got there first.
#[cold]
#[inline(never)]
fn publish_config() -> &'static Config {
    let fresh = Box::into_raw(Box::new(Config::from_env()));
    match CONFIG.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: just published, never freed.
        Ok(_) => unsafe { &*fresh },
        Err(winner) => {
            // SAFETY: `fresh` was never shared; `winner` is published and never freed.
            unsafe {
                drop(Box::from_raw(fresh));
                &*winner
            }
        }
    }
}

/// Reads the environment and finds the real `socket` when the library is loaded, before the
/// program's threads (or signal handlers) exist.
extern "C" fn load() {
    let _ = panic::catch_unwind(|| {
        config();
        find_real_socket();
    });
}

#[used]
#[link_section = ".init_array"]
static LOAD: extern "C" fn() = load;

type SocketFn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;

/// The next `socket` after ours (libc's), or 0 until found.
static REAL_SOCKET: AtomicUsize = AtomicUsize::new(0);

/// The address of the next `socket` after ours, looked up on first use; 0 if the loader cannot
/// tell yet.
fn find_real_socket() -> usize {
    let found = REAL_SOCKET.load(Ordering::Acquire);
    if found != 0 {
        return found;
    }
    // Racing threads all get the same answer from dlsym; storing it twice is harmless.
    // SAFETY: dlsym with a NUL-terminated name.
    let next = unsafe { libc::dlsym(libc::RTLD_NEXT, c"socket".as_ptr()) };
    if next.is_null() || ptr::eq(next, socket as *const libc::c_void) {
        return 0;
    }
    REAL_SOCKET.store(next as usize, Ordering::Release);
    next as usize
}

/// Calls the real `socket()`.
///
/// # Safety
/// Same contract as `socket(2)`.
unsafe fn real_socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let found = find_real_socket();
    if found != 0 {
        // SAFETY: dlsym returned libc's `socket`, whose type this is.
        let real: SocketFn = std::mem::transmute::<usize, SocketFn>(found);
        real(domain, ty, protocol)
    } else {
        // The loader cannot answer yet: make the system call ourselves (it sets errno the same).
        libc::syscall(libc::SYS_socket, domain, ty, protocol) as c_int
    }
}

/// Whether `socket(domain, ty, protocol)` made a TCP socket. `SOCK_CLOEXEC`/`SOCK_NONBLOCK` live
/// in the bits above 0xf; `type & SOCK_STREAM` would also match `SOCK_RAW` (3) and
/// `SOCK_SEQPACKET` (5).
fn is_tcp(domain: c_int, ty: c_int, protocol: c_int) -> bool {
    (domain == libc::AF_INET || domain == libc::AF_INET6)
        && (ty & 0xf) == libc::SOCK_STREAM
        && (protocol == 0 || protocol == libc::IPPROTO_TCP || protocol == IPPROTO_MPTCP)
}

/// The `socket()` every program calls: the real one first, then keep-alive on TCP sockets.
///
/// Returns exactly what the real call returned, with `errno` exactly as it left it.
///
/// # Safety
/// Same contract as `socket(2)`; called by C code.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let fd = real_socket(domain, ty, protocol);
    if fd < 0 || !is_tcp(domain, ty, protocol) {
        return fd;
    }
    let errno = *libc::__errno_location();
    // Nothing in `configure` should panic; if something does, the host program must not notice.
    let _ = panic::catch_unwind(AssertUnwindSafe(|| configure(fd, domain, protocol)));
    *libc::__errno_location() = errno;
    fd
}

/// Applies the configuration to a new TCP socket; logs when asked.
fn configure(fd: c_int, domain: c_int, protocol: c_int) {
    let config = config();
    #[cfg(debug_assertions)]
    if config.test_panic {
        panic!("TCP_KEEPALIVE_PRELOAD_TEST_PANIC is set (debug builds only)");
    }
    if let Some(problem) = &config.problem {
        if !PROBLEM_REPORTED.swap(true, Ordering::Relaxed) {
            let mut line = Line::new();
            let _ = writeln!(line, "{problem}");
            line.write_to_stderr();
        }
    }
    let Some(keepalive) = config.keepalive else {
        return;
    };
    // SAFETY: `fd` was just returned by socket() and is open for the duration of this call.
    let result = keepalive.apply_to_new_socket(unsafe { BorrowedFd::borrow_raw(fd) });
    if config.log {
        let family = if domain == libc::AF_INET6 {
            "AF_INET6"
        } else {
            "AF_INET"
        };
        let kind = if protocol == IPPROTO_MPTCP {
            "MPTCP"
        } else {
            "TCP"
        };
        let mut line = Line::new();
        let _ = match &result {
            Ok(()) => writeln!(
                line,
                "tcp-keepalive: fd {fd} ({family} {kind}): keep-alive on, {keepalive}"
            ),
            Err(err) => writeln!(
                line,
                "tcp-keepalive: fd {fd} ({family} {kind}): keep-alive left off, socket \
                 returned anyway: {err}"
            ),
        };
        line.write_to_stderr();
    }
}

/// A stderr line built on the stack (no allocation on the success path) and written with one
/// `write(2)`, so lines from threads never interleave and no stdio lock is ever taken.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    fn new() -> Line {
        Line {
            buf: [0; 512],
            len: 0,
        }
    }

    fn write_to_stderr(&self) {
        let mut rest = &self.buf[..self.len];
        // Bounded: each round writes at least one byte or stops.
        while !rest.is_empty() {
            // SAFETY: the pointer and length describe initialised bytes of `buf`.
            let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                break;
            }
            rest = &rest[n as usize..];
        }
    }
}

impl fmt::Write for Line {
    /// Appends what fits; a line longer than the buffer is cut, keeping its final newline.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // One byte stays free for the newline of a line that had to be cut.
        let room = (self.buf.len() - 1).saturating_sub(self.len);
        let take = s.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if take < s.len() {
            let last = self.buf.len() - 1;
            self.buf[last] = b'\n';
            self.len = self.buf.len();
        }
        Ok(())
    }
}
