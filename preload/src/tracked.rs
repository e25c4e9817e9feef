//! Which descriptors hold a TCP socket this library configured: one bit per descriptor number,
//! in a fixed table (no allocation, no lock: safe in a signal handler and after `fork`).
//!
//! A bit is set when our `socket()` hook configured the socket, when `accept()`/`accept4()`
//! returned a connection of a listener whose bit is set (Linux copies the listener's keep-alive to
//! it), or when `dup()`/`dup2()`/`dup3()` duplicated a descriptor whose bit is set; it is cleared
//! whenever one of those hooks returns anything else at that number. `close` is not hooked (it
//! would tax every close of every file), so a bit can outlive its socket; the enforcement path
//! therefore asks the kernel again before it writes (see `enforce` in lib.rs): a stale bit can at
//! most mean enforcing on a TCP socket the process got at that number without any of our hooks
//! (`SCM_RIGHTS`, `fcntl(F_DUPFD)`, a raw system call), never touching anything that is not TCP.
//!
//! `vfork`: the child runs in the parent's memory, so it shares this table, but it has its own
//! descriptors. The `dup`/`dup2`/`dup3`/`accept` hooks of such a child, and every path that clears
//! a bit (a non-TCP socket, a TCP one whose configuration failed, a stale bit found by
//! enforcement), change nothing here (a bit that would change costs one `getpid` to find out);
//! the `socket()` hook's hot path for a configured TCP socket does not ask, so a TCP socket a
//! vfork child creates before its `exec` marks that number in the parent's table too (at worst a
//! stale bit, as above). A child of `fork` owns its copy (a
//! `pthread_atfork` handler records it); one made by a raw `clone` without `CLONE_VM` is taken for
//! a vfork child, so its duplicates are not tracked (not enforced, never wrongly).

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use libc::c_int;

/// 2^20 descriptors: Linux's default `fs.nr_open`, so every descriptor a default system can hand
/// out. Higher numbers are never tracked (their sockets are configured, but not enforced).
const WORDS: usize = 1 << 14;

#[allow(clippy::declare_interior_mutable_const)]
const CLEAR: AtomicU64 = AtomicU64::new(0);
/// 128 KiB of zero pages; the kernel maps only the ones a process touches.
static BITS: [AtomicU64; WORDS] = [CLEAR; WORDS];

/// `(word, bit)` of a descriptor, or `None` outside the table.
#[inline(always)]
fn slot(fd: c_int) -> Option<(&'static AtomicU64, u64)> {
    let index = fd as u32 as usize;
    BITS.get(index / 64)
        .map(|word| (word, 1u64 << (index % 64)))
}

/// Marks `fd` as a socket we configured.
#[inline(always)]
pub(crate) fn remember(fd: c_int) {
    if let Some((word, bit)) = slot(fd) {
        word.fetch_or(bit, Ordering::Relaxed);
    }
}

/// Marks `fd` as not ours: [`mark`]`(fd, false)`, so a `vfork` child's non-TCP socket (or a TCP
/// one whose configuration failed) at a number its parent uses leaves the parent's bit alone. A
/// read first: most descriptors were never ours, and a plain load is cheaper than the locked
/// instruction (and than the `getpid` asked only when a set bit would be cleared).
#[inline(always)]
pub(crate) fn forget(fd: c_int) {
    mark(fd, false);
}

/// The process whose descriptors the table describes: set by the constructor and, in the child
/// of a `fork`, by the `pthread_atfork` handler. 0 before the constructor ran.
static OWNER: AtomicI32 = AtomicI32::new(0);

/// Records this process as the table's owner; the constructor and the child of `fork` call it.
pub(crate) extern "C" fn own() {
    // SAFETY: getpid has no preconditions and cannot fail.
    OWNER.store(unsafe { libc::getpid() }, Ordering::Relaxed);
}

/// Whether this is a `vfork` child (or a `clone(CLONE_VM)` one): a process that shares our memory,
/// and so this table, but has descriptors of its own. Its `dup2` must not change what the parent's
/// numbers hold. One `getpid` system call; asked only when a bit would change.
#[cold]
#[inline(never)]
fn borrowed_memory() -> bool {
    let owner = OWNER.load(Ordering::Relaxed);
    // SAFETY: as in `own`.
    owner != 0 && owner != unsafe { libc::getpid() }
}

/// Marks `fd` as ours or not, as `dup`/`dup2`/`dup3`/`accept` (or [`forget`]) found it; nothing
/// when the bit is already right, and nothing in a `vfork` child (see [`borrowed_memory`]): its
/// descriptors are not the parent's, whose table this is. Not on the hot path (`socket()` uses
/// [`remember`]).
#[inline(always)]
pub(crate) fn mark(fd: c_int, ours: bool) {
    if let Some((word, bit)) = slot(fd) {
        if (word.load(Ordering::Relaxed) & bit != 0) == ours || borrowed_memory() {
            return;
        }
        if ours {
            word.fetch_or(bit, Ordering::Relaxed);
        } else {
            word.fetch_and(!bit, Ordering::Relaxed);
        }
    }
}

/// Whether `fd` was marked by [`remember`].
#[inline(always)]
pub(crate) fn contains(fd: c_int) -> bool {
    match slot(fd) {
        Some((word, bit)) => word.load(Ordering::Relaxed) & bit != 0,
        None => false,
    }
}
