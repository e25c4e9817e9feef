//! The few bpf(2) commands aya 0.14 does not offer for a cgroup/setsockopt program: creating a
//! link we can pin, and pinning it. Plus mounting bpffs.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `enum bpf_attach_type` (include/uapi/linux/bpf.h).
pub const BPF_CGROUP_SOCK_OPS: u32 = 3;
/// `enum bpf_attach_type`.
pub const BPF_CGROUP_SETSOCKOPT: u32 = 22;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_DETACH: libc::c_long = 34;

/// `union bpf_attr` is at most this big for the commands used here; zeroed beyond.
#[repr(C, align(8))]
struct Attr([u8; 128]);

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: bpf(cmd, attr, size) with a zeroed, properly sized and aligned attr.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Attr,
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn put_u32(attr: &mut Attr, offset: usize, v: u32) {
    attr.0[offset..offset + 4].copy_from_slice(&v.to_ne_bytes());
}

/// BPF_LINK_CREATE: attaches `prog` to the cgroup `target` with flags 0 (a link, multi-attach).
pub fn link_create(
    prog: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let mut attr = Attr([0; 128]);
    // struct { __u32 prog_fd; __u32 target_fd; __u32 attach_type; __u32 flags; ... } link_create
    put_u32(&mut attr, 0, prog.as_raw_fd() as u32);
    put_u32(&mut attr, 4, target.as_raw_fd() as u32);
    put_u32(&mut attr, 8, attach_type);
    let fd = bpf(BPF_LINK_CREATE, &mut attr)?;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// BPF_LINK_DETACH (Linux 5.9): detaches the link from its cgroup now. Closing the last
/// descriptor would too, but later (the kernel frees links from a work queue).
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = Attr([0; 128]);
    // struct { __u32 link_fd; } link_detach
    put_u32(&mut attr, 0, link.as_raw_fd() as u32);
    bpf(BPF_LINK_DETACH, &mut attr).map(drop)
}

/// BPF_OBJ_PIN: pins `fd` at `path` (on bpffs).
pub fn pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut attr = Attr([0; 128]);
    // struct { __aligned_u64 pathname; __u32 bpf_fd; __u32 file_flags; ... }
    attr.0[0..8].copy_from_slice(&(c.as_ptr() as u64).to_ne_bytes());
    put_u32(&mut attr, 8, fd.as_raw_fd() as u32);
    bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}

/// BPF_OBJ_GET: opens the object pinned at `path`.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut attr = Attr([0; 128]);
    // struct { __aligned_u64 pathname; __u32 bpf_fd; __u32 file_flags; ... }
    attr.0[0..8].copy_from_slice(&(c.as_ptr() as u64).to_ne_bytes());
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The cgroup id a cgroup link is attached to: 0 once its cgroup has been removed (the link
/// is then defunct).
pub fn link_cgroup_id(link: BorrowedFd<'_>) -> io::Result<u64> {
    // struct bpf_link_info { __u32 type; __u32 id; __u32 prog_id; union { struct { __u64
    // cgroup_id; __u32 attach_type; } cgroup; ... } } (the union is 8-aligned: offset 16).
    let mut info = [0u64; 16];
    let mut attr = Attr([0; 128]);
    // struct { __u32 bpf_fd; __u32 info_len; __aligned_u64 info; } info
    put_u32(&mut attr, 0, link.as_raw_fd() as u32);
    put_u32(&mut attr, 4, std::mem::size_of_val(&info) as u32);
    attr.0[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info[2])
}

/// `mount -t bpf bpf PATH -o mode=0700`.
pub fn mount_bpffs(path: &Path) -> io::Result<()> {
    let target = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: mount with NUL-terminated strings we own.
    let ret = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
