//! `tcp_info`: what the kernel knows about a TCP connection's recent traffic (Linux), for tools
//! that watch keep-alive probes at work (`tcp-keepalive measure`).

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use crate::error::{Error, SocketOption};
use crate::sys;

/// Part of a TCP connection's `TCP_INFO` (Linux): the fields that show keep-alive at work.
///
/// The `last_*` durations count back from the moment of the read, in the kernel's clock ticks
/// (1 to 10 ms). An answered keep-alive probe shows as a small `last_ack_recv`; a probe sent and
/// not yet answered as `probes > 0`.
///
/// `#[non_exhaustive]`: fields may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TcpInfo {
    /// The TCP state (`tcpi_state`): 1 ESTABLISHED, 7 CLOSE, 8 CLOSE_WAIT, ... (include/net/tcp_states.h).
    pub state: u8,
    /// Keep-alive (or zero-window) probes sent and not yet answered (`tcpi_probes`).
    pub probes: u8,
    /// Retransmissions of the oldest unacknowledged segment (`tcpi_retransmits`).
    pub retransmits: u8,
    /// Segments sent and not yet acknowledged (`tcpi_unacked`).
    pub unacked: u32,
    /// Time since data was last sent (`tcpi_last_data_sent`); keep-alive probes do not count.
    pub last_data_sent: Duration,
    /// Time since data was last received (`tcpi_last_data_recv`).
    pub last_data_recv: Duration,
    /// Time since an acknowledgment was last received (`tcpi_last_ack_recv`), the answer to a
    /// keep-alive probe included.
    pub last_ack_recv: Duration,
    /// The smoothed round-trip time (`tcpi_rtt`).
    pub rtt: Duration,
}

/// Reads a TCP socket's `TCP_INFO` from the kernel (Linux). Nothing is changed.
///
/// Fails like [`inspect`](crate::inspect): [`Error::NotTcp`] for a UDP or Unix socket,
/// [`Error::NotASocket`], [`Error::BadDescriptor`]; other failures are [`Error::Os`] naming
/// [`SocketOption::TcpInfo`].
///
/// ```no_run
/// let stream = std::net::TcpStream::connect("127.0.0.1:8080")?;
/// let info = tcp_keepalive::tcp_info(&stream)?;
/// println!("last ACK {:?} ago, {} probes out", info.last_ack_recv, info.probes);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn tcp_info(fd: impl AsFd) -> Result<TcpInfo, Error> {
    let fd = fd.as_fd().as_raw_fd();
    let raw = sys::read_tcp_info(fd).map_err(|e| {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        sys::classify(&crate::Libc, fd, SocketOption::TcpInfo, errno)
    })?;
    let ms = |v: u32| Duration::from_millis(u64::from(v));
    Ok(TcpInfo {
        state: raw.state,
        probes: raw.probes,
        retransmits: raw.retransmits,
        unacked: raw.unacked,
        last_data_sent: ms(raw.last_data_sent),
        last_data_recv: ms(raw.last_data_recv),
        last_ack_recv: ms(raw.last_ack_recv),
        rtt: Duration::from_micros(u64::from(raw.rtt)),
    })
}
