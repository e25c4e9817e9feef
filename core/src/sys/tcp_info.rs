//! `getsockopt(TCP_INFO)` (Linux): the one structure read here, never written.

use std::io;
use std::mem;
use std::os::fd::RawFd;

/// The stable head of Linux's `struct tcp_info` (include/uapi/linux/tcp.h) up to
/// `tcpi_total_retrans`, unchanged since Linux 2.6; later kernels append fields, and the kernel
/// copies only as many bytes as asked for.
#[repr(C)]
#[derive(Default)]
pub(crate) struct RawTcpInfo {
    pub state: u8,
    pub ca_state: u8,
    pub retransmits: u8,
    pub probes: u8,
    pub backoff: u8,
    pub options: u8,
    pub wscale: u8,
    pub rto: u32,
    pub ato: u32,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    pub unacked: u32,
    pub sacked: u32,
    pub lost: u32,
    pub retrans: u32,
    pub fackets: u32,
    pub last_data_sent: u32,
    pub last_ack_sent: u32,
    pub last_data_recv: u32,
    pub last_ack_recv: u32,
    pub pmtu: u32,
    pub rcv_ssthresh: u32,
    pub rtt: u32,
    pub rttvar: u32,
    pub snd_ssthresh: u32,
    pub snd_cwnd: u32,
    pub advmss: u32,
    pub reordering: u32,
    pub rcv_rtt: u32,
    pub rcv_space: u32,
    pub total_retrans: u32,
}

/// Reads the head of `struct tcp_info`. Errors are raw; `classify` turns them into `Error`.
pub(crate) fn read_tcp_info(fd: RawFd) -> io::Result<RawTcpInfo> {
    let mut info = RawTcpInfo::default();
    let mut len = mem::size_of::<RawTcpInfo>() as libc::socklen_t;
    // SAFETY: the pointer and length describe a live, writable RawTcpInfo; the kernel writes at
    // most `len` bytes and validates `fd`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut RawTcpInfo).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(info)
    } else {
        Err(io::Error::last_os_error())
    }
}
