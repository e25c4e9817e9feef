//! Our only output: lines on the program's stderr, written so that they can never harm it.
//!
//! - Only to the file fd 2 was when the library was loaded: the constructor remembers its device,
//!   inode and type, and each write first checks (`fstat`) that fd 2 is still that file. A program
//!   that closed stderr (its first socket may then be fd 2) or put something else there (`dup2` of
//!   one of its connections) gets nothing written into it.
//! - Never to a socket, even one that was fd 2 at load (inetd-style services talk to their client
//!   on 0, 1 and 2): a log line must not reach a peer.
//! - Never a `SIGPIPE` (a pipe whose reader is gone): the signal is blocked around the write, and
//!   the one our write raised is taken back with a zero-timeout `sigtimedwait`, unless one was
//!   already pending before (then it stays, as it would have without us).
//! - One `write(2)` per line (lines from threads never interleave), no stdio lock, no allocation,
//!   `errno` restored: safe wherever the hook runs, a signal handler included.

use std::fmt;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What fd 2 was at load: device, inode and `st_mode & S_IFMT`; `USABLE` false when it was closed
/// or a socket.
static DEV: AtomicU64 = AtomicU64::new(0);
static INO: AtomicU64 = AtomicU64::new(0);
static KIND: AtomicU64 = AtomicU64::new(0);
static USABLE: AtomicBool = AtomicBool::new(false);

/// `(device, inode, type)` of fd 2, or `None` when it is closed.
fn identify() -> Option<(u64, u64, u64)> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `stat` on success, and we read it only then.
    if unsafe { libc::fstat(2, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: initialised by the successful fstat.
    let st = unsafe { st.assume_init() };
    Some((st.st_dev, st.st_ino, u64::from(st.st_mode & libc::S_IFMT)))
}

/// Remembers what fd 2 is; called once, by the constructor.
pub(crate) fn remember() {
    if let Some((dev, ino, kind)) = identify() {
        if kind != u64::from(libc::S_IFSOCK) {
            DEV.store(dev, Ordering::Relaxed);
            INO.store(ino, Ordering::Relaxed);
            KIND.store(kind, Ordering::Relaxed);
            USABLE.store(true, Ordering::Release);
        }
    }
}

/// Whether fd 2 is still the file it was at load.
fn unchanged() -> bool {
    USABLE.load(Ordering::Acquire)
        && identify()
            == Some((
                DEV.load(Ordering::Relaxed),
                INO.load(Ordering::Relaxed),
                KIND.load(Ordering::Relaxed),
            ))
}

/// A line built on the stack and written with [`Line::emit`].
pub(crate) struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    /// An empty line.
    pub(crate) fn new() -> Line {
        Line {
            buf: [0; 512],
            len: 0,
        }
    }

    /// Appends raw bytes (cut like [`fmt::Write::write_str`]).
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        // One byte stays free for the newline of a line that had to be cut.
        let room = (self.buf.len() - 1).saturating_sub(self.len);
        let take = bytes.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&bytes[..take]);
        self.len += take;
        if take < bytes.len() {
            let last = self.buf.len() - 1;
            self.buf[last] = b'\n';
            self.len = self.buf.len();
        }
    }

    /// Turns every line break so far into a space: one message, one line.
    pub(crate) fn flatten(&mut self) {
        for byte in &mut self.buf[..self.len] {
            if *byte == b'\n' {
                *byte = b' ';
            }
        }
    }

    /// The bytes so far.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Writes the line to stderr if that cannot harm the program (see the module docs).
    pub(crate) fn emit(&self) {
        // SAFETY: errno is thread-local; we put back what we found.
        let errno = unsafe { libc::__errno_location() };
        let saved = unsafe { *errno };
        if unchanged() {
            // SAFETY: plain libc calls on local, initialised signal sets.
            unsafe { write_without_sigpipe(self.as_bytes()) };
        }
        unsafe { *errno = saved };
    }
}

impl fmt::Write for Line {
    /// Appends what fits; a line longer than the buffer is cut, keeping its final newline.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// `write(2, bytes)` with `SIGPIPE` blocked; a `SIGPIPE` it raised is consumed.
unsafe fn write_without_sigpipe(mut bytes: &[u8]) {
    let mut pipe = MaybeUninit::<libc::sigset_t>::uninit();
    libc::sigemptyset(pipe.as_mut_ptr());
    libc::sigaddset(pipe.as_mut_ptr(), libc::SIGPIPE);
    let pipe = pipe.assume_init();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    if libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, old.as_mut_ptr()) != 0 {
        return;
    }
    let old = old.assume_init();
    let mut pending = MaybeUninit::<libc::sigset_t>::uninit();
    let was_pending = libc::sigpending(pending.as_mut_ptr()) == 0
        && libc::sigismember(pending.as_ptr(), libc::SIGPIPE) == 1;
    let mut broken = false;
    // Bounded: each round writes at least one byte or stops.
    while !bytes.is_empty() {
        let n = libc::write(2, bytes.as_ptr().cast(), bytes.len());
        if n <= 0 {
            broken = n < 0 && *libc::__errno_location() == libc::EPIPE;
            break;
        }
        bytes = &bytes[n as usize..];
    }
    if broken && !was_pending {
        let now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        libc::sigtimedwait(&pipe, ptr::null_mut(), &now);
    }
    libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut());
}
