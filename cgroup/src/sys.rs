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
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_F_QUERY_EFFECTIVE: u32 = 1;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_LINK_DETACH: libc::c_long = 34;
/// `BPF_F_REPLACE`: a link update that only happens while the link still runs `old_prog_fd`.
const BPF_F_REPLACE: u32 = 4;

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

/// BPF_LINK_UPDATE with BPF_F_REPLACE (Linux 5.7 for cgroup links): the link runs `new`
/// instead of `old`, swapped atomically in the cgroup's program array (no moment without a
/// program); refused (EPERM) when the link no longer runs `old`.
pub fn link_update(
    link: BorrowedFd<'_>,
    new: BorrowedFd<'_>,
    old: BorrowedFd<'_>,
) -> io::Result<()> {
    let mut attr = Attr([0; 128]);
    // struct { __u32 link_fd; __u32 new_prog_fd; __u32 flags; __u32 old_prog_fd; } link_update
    put_u32(&mut attr, 0, link.as_raw_fd() as u32);
    put_u32(&mut attr, 4, new.as_raw_fd() as u32);
    put_u32(&mut attr, 8, BPF_F_REPLACE);
    put_u32(&mut attr, 12, old.as_raw_fd() as u32);
    bpf(BPF_LINK_UPDATE, &mut attr).map(drop)
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

/// What `BPF_OBJ_GET_INFO_BY_FD` says of a cgroup link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    /// The program the link runs.
    pub prog_id: u32,
    /// The cgroup it is attached to: 0 once that cgroup was removed (the link is defunct).
    pub cgroup_id: u64,
    /// `enum bpf_attach_type`.
    pub attach_type: u32,
}

/// The info of a cgroup link.
pub fn link_info(link: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    // struct bpf_link_info { __u32 type; __u32 id; __u32 prog_id; union { struct { __u64
    // cgroup_id; __u32 attach_type; } cgroup; ... } } (the union is 8-aligned: offset 16).
    let mut info = [0u64; 16];
    get_info(link, &mut info)?;
    Ok(LinkInfo {
        prog_id: info[1] as u32,
        cgroup_id: info[2],
        attach_type: info[3] as u32,
    })
}

fn get_info(fd: BorrowedFd<'_>, info: &mut [u64; 16]) -> io::Result<()> {
    let mut attr = Attr([0; 128]);
    // struct { __u32 bpf_fd; __u32 info_len; __aligned_u64 info; } info
    put_u32(&mut attr, 0, fd.as_raw_fd() as u32);
    put_u32(&mut attr, 4, std::mem::size_of_val(info) as u32);
    attr.0[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
}

/// What `BPF_OBJ_GET_INFO_BY_FD` says of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    /// The program's id.
    pub id: u32,
    /// Its name (the C function's, up to 15 bytes).
    pub name: String,
    /// The kernel's tag: a hash of its instructions as loaded, map references left out, so the
    /// same object gives the same tag on every load and a changed program another.
    pub tag: [u8; 8],
    /// The ids of the maps it uses.
    pub map_ids: Vec<u32>,
}

/// The info of a program: id, name and the ids of its maps (at most 8 read).
pub fn prog_info(prog: BorrowedFd<'_>) -> io::Result<ProgInfo> {
    // struct bpf_prog_info: type 0, id 4, tag 8, jited_prog_len 16, xlated_prog_len 20,
    // jited_prog_insns 24, xlated_prog_insns 32, load_time 40, created_by_uid 48,
    // nr_map_ids 52, map_ids 56, name[16] 64.
    let mut map_ids = [0u32; 8];
    let mut info = [0u64; 16];
    info[6] = u64::from(map_ids.len() as u32) << 32;
    info[7] = map_ids.as_mut_ptr() as u64;
    get_info(prog, &mut info)?;
    let id = (info[0] >> 32) as u32;
    let count = ((info[6] >> 32) as usize).min(map_ids.len());
    let name_bytes: Vec<u8> = info[8..10].iter().flat_map(|w| w.to_ne_bytes()).collect();
    let name =
        String::from_utf8_lossy(name_bytes.split(|b| *b == 0).next().unwrap_or(&[])).into_owned();
    Ok(ProgInfo {
        id,
        name,
        tag: info[1].to_ne_bytes(),
        map_ids: map_ids[..count].to_vec(),
    })
}

/// The id of a map.
pub fn map_id(map: BorrowedFd<'_>) -> io::Result<u32> {
    // struct bpf_map_info { __u32 type; __u32 id; ... }
    let mut info = [0u64; 16];
    get_info(map, &mut info)?;
    Ok((info[0] >> 32) as u32)
}

/// BPF_PROG_GET_FD_BY_ID.
pub fn prog_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr([0; 128]);
    put_u32(&mut attr, 0, id);
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The ids of the programs that run for `attach_type` on sockets of this cgroup, in the order
/// the kernel runs them (BPF_PROG_QUERY, effective: the cgroup's own first, then its
/// ancestors'). Needs CAP_NET_ADMIN.
pub fn effective_programs(cgroup: BorrowedFd<'_>, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = Attr([0; 128]);
    // struct { __u32 target_fd; __u32 attach_type; __u32 query_flags; __u32 attach_flags;
    // __aligned_u64 prog_ids; __u32 prog_cnt; ... } query
    put_u32(&mut attr, 0, cgroup.as_raw_fd() as u32);
    put_u32(&mut attr, 4, attach_type);
    put_u32(&mut attr, 8, BPF_F_QUERY_EFFECTIVE);
    attr.0[16..24].copy_from_slice(&(ids.as_mut_ptr() as u64).to_ne_bytes());
    put_u32(&mut attr, 24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut attr)?;
    let count = u32::from_ne_bytes(attr.0[24..28].try_into().expect("4 bytes")) as usize;
    ids.truncate(count.min(64));
    Ok(ids)
}

/// `BPF_F_ALLOW_MULTI` in a query's `attach_flags`.
pub const BPF_F_ALLOW_MULTI: u32 = 2;

/// The programs attached to this cgroup itself for `attach_type` and the flags they were
/// attached with (0: exclusive; BPF_PROG_QUERY without EFFECTIVE). Needs CAP_NET_ADMIN.
pub fn attached_programs(cgroup: BorrowedFd<'_>, attach_type: u32) -> io::Result<(Vec<u32>, u32)> {
    let mut ids = vec![0u32; 64];
    let mut attr = Attr([0; 128]);
    put_u32(&mut attr, 0, cgroup.as_raw_fd() as u32);
    put_u32(&mut attr, 4, attach_type);
    attr.0[16..24].copy_from_slice(&(ids.as_mut_ptr() as u64).to_ne_bytes());
    put_u32(&mut attr, 24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut attr)?;
    let flags = u32::from_ne_bytes(attr.0[12..16].try_into().expect("4 bytes"));
    let count = u32::from_ne_bytes(attr.0[24..28].try_into().expect("4 bytes")) as usize;
    ids.truncate(count.min(64));
    Ok((ids, flags))
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
