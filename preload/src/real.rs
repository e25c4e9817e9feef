//! The functions our hooks stand in front of: libc's, found once by the constructor with
//! `dlsym(RTLD_NEXT)`, never again (a failed lookup is not retried: `dlsym` takes the loader's
//! lock, which a hook may not). Until the constructor has run, or when the lookup failed, each
//! slot holds our stand-in, which makes the system call itself; `syscall(2)` sets `errno` exactly
//! like the libc wrapper.

use std::ffi::CStr;
use std::mem;
use std::sync::atomic::{AtomicPtr, Ordering};

use libc::{c_int, c_void, sockaddr, socklen_t};

type SocketFn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
type SetsockoptFn = unsafe extern "C" fn(c_int, c_int, c_int, *const c_void, socklen_t) -> c_int;
type Accept4Fn = unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int;
type AcceptFn = unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
type DupFn = unsafe extern "C" fn(c_int) -> c_int;
type Dup2Fn = unsafe extern "C" fn(c_int, c_int) -> c_int;
type Dup3Fn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;

/// libc's functions once found; until then (and when the lookup failed) our own system calls,
/// so each hook makes one indirect call, with no test.
static SOCKET: AtomicPtr<()> = AtomicPtr::new(sys_socket as SocketFn as *mut ());
static SETSOCKOPT: AtomicPtr<()> = AtomicPtr::new(sys_setsockopt as SetsockoptFn as *mut ());
static ACCEPT: AtomicPtr<()> = AtomicPtr::new(sys_accept as AcceptFn as *mut ());
static ACCEPT4: AtomicPtr<()> = AtomicPtr::new(sys_accept4 as Accept4Fn as *mut ());
static DUP: AtomicPtr<()> = AtomicPtr::new(sys_dup as DupFn as *mut ());
static DUP2: AtomicPtr<()> = AtomicPtr::new(sys_dup2 as Dup2Fn as *mut ());
static DUP3: AtomicPtr<()> = AtomicPtr::new(sys_dup3 as Dup3Fn as *mut ());

/// The next definition of `name` after ours, or null. Constructor only.
fn next(name: &'static CStr, ours: usize) -> *mut () {
    // SAFETY: a NUL-terminated name; called from the constructor, where ld.so already holds (and
    // may re-take) its lock for this thread.
    let found = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    if found.is_null() || found as usize == ours {
        std::ptr::null_mut()
    } else {
        found.cast()
    }
}

/// Finds libc's functions; called once, by the constructor. A function not found keeps its
/// system call.
pub(crate) fn resolve() {
    let slots: [(&AtomicPtr<()>, &'static CStr, usize); 7] = [
        (&SOCKET, c"socket", crate::socket as *const () as usize),
        (
            &SETSOCKOPT,
            c"setsockopt",
            crate::setsockopt as *const () as usize,
        ),
        (&ACCEPT, c"accept", crate::accept as *const () as usize),
        (&ACCEPT4, c"accept4", crate::accept4 as *const () as usize),
        (&DUP, c"dup", crate::dup as *const () as usize),
        (&DUP2, c"dup2", crate::dup2 as *const () as usize),
        (&DUP3, c"dup3", crate::dup3 as *const () as usize),
    ];
    for (slot, name, ours) in slots {
        let found = next(name, ours);
        if !found.is_null() {
            slot.store(found, Ordering::Relaxed);
        }
    }
}

// The system calls themselves, for when libc's function is not known: each with the type of
// the libc function it stands in for.

unsafe extern "C" fn sys_socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    libc::syscall(libc::SYS_socket, domain, ty, protocol) as c_int
}

unsafe extern "C" fn sys_setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    libc::syscall(libc::SYS_setsockopt, fd, level, name, value, len) as c_int
}

unsafe extern "C" fn sys_accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    libc::syscall(libc::SYS_accept4, fd, addr, len, flags) as c_int
}

unsafe extern "C" fn sys_accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    sys_accept4(fd, addr, len, 0)
}

unsafe extern "C" fn sys_dup(fd: c_int) -> c_int {
    libc::syscall(libc::SYS_dup, fd) as c_int
}

unsafe extern "C" fn sys_dup2(old: c_int, new: c_int) -> c_int {
    sys_dup3(old, new, 0)
}

unsafe extern "C" fn sys_dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    if old == new && flags == 0 {
        // dup2(fd, fd): fd when it is open (aarch64 has no dup2 system call, and dup3 refuses it).
        return if libc::syscall(libc::SYS_fcntl, old, libc::F_GETFD) < 0 {
            -1
        } else {
            new
        };
    }
    libc::syscall(libc::SYS_dup3, old, new, flags) as c_int
}

/// libc's `socket`.
///
/// # Safety
/// The contract of `socket(2)`.
#[inline(always)]
pub(crate) unsafe fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    // SAFETY: the slot holds libc's function or our stand-in, both of this type.
    mem::transmute::<*mut (), SocketFn>(SOCKET.load(Ordering::Relaxed))(domain, ty, protocol)
}

/// libc's `setsockopt`.
///
/// # Safety
/// The contract of `setsockopt(2)`.
#[inline(always)]
pub(crate) unsafe fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: the slot holds libc's function or our stand-in, both of this type.
    mem::transmute::<*mut (), SetsockoptFn>(SETSOCKOPT.load(Ordering::Relaxed))(
        fd, level, name, value, len,
    )
}

/// libc's `accept`.
///
/// # Safety
/// The contract of `accept(2)`.
#[inline(always)]
pub(crate) unsafe fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: the slot holds libc's function or our stand-in, both of this type.
    mem::transmute::<*mut (), AcceptFn>(ACCEPT.load(Ordering::Relaxed))(fd, addr, len)
}

/// libc's `accept4`.
///
/// # Safety
/// The contract of `accept4(2)`.
#[inline(always)]
pub(crate) unsafe fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    // SAFETY: the slot holds libc's function or our stand-in, both of this type.
    mem::transmute::<*mut (), Accept4Fn>(ACCEPT4.load(Ordering::Relaxed))(fd, addr, len, flags)
}

/// libc's `dup`.
///
/// # Safety
/// The contract of `dup(2)`.
#[inline(always)]
pub(crate) unsafe fn dup(fd: c_int) -> c_int {
    // SAFETY: the slot holds libc's function or our stand-in, both of this type.
    mem::transmute::<*mut (), DupFn>(DUP.load(Ordering::Relaxed))(fd)
}

/// libc's `dup2`.
///
/// # Safety
/// The contract of `dup2(2)`.
#[inline(always)]
pub(crate) unsafe fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: the slot holds libc's function or our stand-in, both of this type.
    mem::transmute::<*mut (), Dup2Fn>(DUP2.load(Ordering::Relaxed))(old, new)
}

/// libc's `dup3`.
///
/// # Safety
/// The contract of `dup3(2)`.
#[inline(always)]
pub(crate) unsafe fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: the slot holds libc's function or our stand-in, both of this type.
    mem::transmute::<*mut (), Dup3Fn>(DUP3.load(Ordering::Relaxed))(old, new, flags)
}

/// `setsockopt(fd, level, name, value, sizeof(int))` as a bare system call: returns 0 or
/// `-errno` and leaves `errno` alone, so the hooks need not save and restore it around their own
/// writes. For the writes this library makes itself (core's values on a new socket, a ceiling),
/// never for the program's own call, which goes to libc's `setsockopt` untouched.
///
/// # Safety
/// `value` points to a live `c_int`.
#[inline(always)]
pub(crate) unsafe fn set_int(fd: c_int, level: c_int, name: c_int, value: *const c_int) -> isize {
    let len = mem::size_of::<c_int>();
    #[cfg(target_arch = "x86_64")]
    {
        let ret: isize;
        std::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_setsockopt as isize => ret,
            in("rdi") fd as isize,
            in("rsi") level as isize,
            in("rdx") name as isize,
            in("r10") value,
            in("r8") len,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
        ret
    }
    #[cfg(target_arch = "aarch64")]
    {
        let ret: isize;
        std::arch::asm!(
            "svc 0",
            in("x8") libc::SYS_setsockopt as isize,
            inlateout("x0") fd as isize => ret,
            in("x1") level as isize,
            in("x2") name as isize,
            in("x3") value,
            in("x4") len,
            options(nostack),
        );
        ret
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let errno = libc::__errno_location();
        let saved = *errno;
        let rc = libc::syscall(libc::SYS_setsockopt, fd, level, name, value, len);
        let ret = if rc == 0 { 0 } else { -(*errno as isize) };
        *errno = saved;
        ret
    }
}
