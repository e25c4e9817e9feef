//! Another process's TCP sockets: found through `/proc/PID/fd` and `/proc/PID/net/tcp{,6}`,
//! duplicated into this process with `pidfd_open` + `pidfd_getfd`.
//!
//! A duplicate from `pidfd_getfd` is a second descriptor for the same open socket (like `dup`
//! across processes): reading its options reads the process's socket, setting them changes the
//! process's connection, and closing the duplicate leaves the process's descriptor open.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use crate::fail::Failure;

/// `pidfd_open(2)`, Linux 5.3; the same number on every architecture.
const SYS_PIDFD_OPEN: libc::c_long = 434;
/// `pidfd_getfd(2)`, Linux 5.6; the same number on every architecture.
const SYS_PIDFD_GETFD: libc::c_long = 438;

/// One TCP socket's row of `/proc/PID/net/tcp` or `tcp6`.
#[derive(Debug, Clone)]
pub struct TcpEntry {
    /// Local address and port.
    pub local: SocketAddr,
    /// Peer address and port (unspecified, port 0, for listening or unconnected sockets).
    pub peer: SocketAddr,
    /// The kernel's TCP state number (`TCP_ESTABLISHED` = 1 ...).
    pub state: u8,
    /// The pending timer: 0 none, 1 retransmit, 2 keep-alive (`sk_timer`), 3 TIME_WAIT, 4 zero
    /// window probe.
    pub timer: u8,
    /// Time until that timer fires, in clock ticks (`USER_HZ`).
    pub timer_ticks: u64,
    /// Unanswered keep-alive (or zero window) probes sent so far (`icsk_probes_out`).
    pub probes_out: u32,
}

impl TcpEntry {
    /// The state's name as `ss` prints it.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            1 => "ESTABLISHED",
            2 => "SYN-SENT",
            3 => "SYN-RECV",
            4 => "FIN-WAIT-1",
            5 => "FIN-WAIT-2",
            6 => "TIME-WAIT",
            7 => "CLOSE",
            8 => "CLOSE-WAIT",
            9 => "LAST-ACK",
            10 => "LISTEN",
            11 => "CLOSING",
            12 => "NEW-SYN-RECV",
            _ => "UNKNOWN",
        }
    }

    /// The pending timer's name.
    pub fn timer_name(&self) -> &'static str {
        match self.timer {
            0 => "none",
            1 => "retransmit",
            2 if self.state == 5 => "fin-wait-2",
            2 => "keepalive",
            3 => "time-wait",
            4 => "zero-window-probe",
            _ => "unknown",
        }
    }

    /// Milliseconds until the keep-alive timer fires, when that is the pending timer.
    pub fn keepalive_left_ms(&self) -> Option<u64> {
        (self.timer_name() == "keepalive").then(|| ticks_to_ms(self.timer_ticks))
    }

    /// The peer, or `None` for a listening or unconnected socket.
    pub fn peer(&self) -> Option<SocketAddr> {
        (self.peer.port() != 0 || !self.peer.ip().is_unspecified()).then_some(self.peer)
    }
}

fn ticks_to_ms(ticks: u64) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    ticks.saturating_mul(1000) / hz
}

/// A process we hold a pidfd for.
pub struct Process {
    /// Its PID.
    pub pid: i32,
    pidfd: OwnedFd,
}

/// A TCP socket of the process: its table row and a duplicate descriptor for it.
pub struct Socket {
    /// The descriptor number in the process.
    pub fd: i32,
    /// What `/proc/PID/net/tcp{,6}` says about it.
    pub entry: TcpEntry,
    /// The duplicate, in this process.
    pub dup: OwnedFd,
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

impl Process {
    /// Opens a pidfd, so the process cannot be swapped for another with the same PID meanwhile.
    pub fn open(pid: i32) -> Result<Process, Failure> {
        // SAFETY: pidfd_open(pid, flags) takes plain integers and returns a new descriptor.
        let ret = unsafe { libc::syscall(SYS_PIDFD_OPEN, pid, 0) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            return Err(match errno(&err) {
                libc::ESRCH => Failure::Gone { pid },
                libc::ENOSYS => Failure::NoPidfd { call: "pidfd_open" },
                libc::EINVAL => Failure::Other(format!(
                    "{pid} is not the PID of a process (a thread id?): {err}; use the process id (`ps -o pid= -p {pid}`)"
                )),
                _ => Failure::Other(format!("pidfd_open({pid}) failed: {err}")),
            });
        }
        // SAFETY: a new descriptor that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(ret as i32) };
        Ok(Process { pid, pidfd })
    }

    /// The process's command name (`/proc/PID/comm`), or an empty string.
    pub fn command(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.pid))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default()
    }

    fn proc_path(&self, rest: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/{rest}", self.pid))
    }

    /// Whether the process is still alive (a signal 0 through the pidfd).
    fn alive(&self) -> bool {
        // SAFETY: pidfd_send_signal(pidfd, 0, NULL, 0) only checks.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                0,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            ) == 0
        }
    }

    fn proc_error(&self, err: io::Error, what: &str) -> Failure {
        match errno(&err) {
            libc::ENOENT | libc::ESRCH => Failure::Gone { pid: self.pid },
            libc::EACCES | libc::EPERM => Failure::Permission {
                pid: self.pid,
                what: what.to_string(),
            },
            _ => Failure::Other(format!(
                "reading {what} of process {} failed: {err}",
                self.pid
            )),
        }
    }

    /// `(fd, inode)` of every socket descriptor, from `/proc/PID/fd`.
    fn socket_fds(&self) -> Result<Vec<(i32, u64)>, Failure> {
        let what = "read the descriptors";
        let dir = std::fs::read_dir(self.proc_path("fd")).map_err(|e| self.proc_error(e, what))?;
        let mut found = Vec::new();
        for item in dir {
            let item = item.map_err(|e| self.proc_error(e, what))?;
            let Some(fd) = item
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let target = match std::fs::read_link(item.path()) {
                Ok(t) => t,
                // Closed since the directory was read.
                Err(e) if errno(&e) == libc::ENOENT => continue,
                Err(e) => return Err(self.proc_error(e, what)),
            };
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
            {
                found.push((fd, inode));
            }
        }
        if found.is_empty() && !self.alive() {
            return Err(Failure::Gone { pid: self.pid });
        }
        found.sort_unstable();
        Ok(found)
    }

    /// Every TCP socket in the process's network namespace, by inode.
    fn tcp_table(&self) -> Result<HashMap<u64, TcpEntry>, Failure> {
        let mut table = HashMap::new();
        for name in ["net/tcp", "net/tcp6"] {
            let text = match std::fs::read_to_string(self.proc_path(name)) {
                Ok(t) => t,
                // No IPv6 in this kernel.
                Err(e) if errno(&e) == libc::ENOENT && name == "net/tcp6" => continue,
                Err(e) => return Err(self.proc_error(e, "read the TCP table")),
            };
            for line in text.lines().skip(1) {
                if let Some((inode, entry)) = parse_tcp_line(line) {
                    table.insert(inode, entry);
                }
            }
        }
        Ok(table)
    }

    /// Duplicates descriptor `fd` of the process into this one.
    fn get_fd(&self, fd: i32) -> io::Result<OwnedFd> {
        // SAFETY: pidfd_getfd(pidfd, targetfd, flags) takes plain integers and returns a new
        // descriptor (with FD_CLOEXEC set).
        let ret = unsafe { libc::syscall(SYS_PIDFD_GETFD, self.pidfd.as_raw_fd(), fd, 0) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
    }

    /// Every TCP socket of the process, sorted by descriptor, each with a duplicate.
    ///
    /// Holds one duplicate per socket at once, so a process with more sockets than this one's
    /// open-file limit fails here; [`Process::each_tcp_socket`] holds one at a time.
    // Kept for callers that need every duplicate at once (the kernel door's sweep).
    #[allow(dead_code)]
    pub fn tcp_sockets(&self) -> Result<Vec<Socket>, Failure> {
        let mut sockets = Vec::new();
        self.each_tcp_socket(|s| {
            sockets.push(s);
            Ok(())
        })?;
        Ok(sockets)
    }

    /// Calls `visit` with every TCP socket (MPTCP included) of the process, in descriptor order,
    /// each with a duplicate that is closed when `visit` drops it: one descriptor at a time, so a
    /// process of any size works under any open-file limit. Returns how many were visited; the
    /// first error (of the walk or of `visit`) stops it.
    ///
    /// Only descriptors whose socket is in the TCP tables are duplicated, and each duplicate is
    /// checked again (same inode, core's `socket_kind` TCP or MPTCP), so a descriptor reused meanwhile
    /// for something else is skipped. A TCP socket that is neither bound nor connected is in no
    /// table and so is not listed.
    pub fn each_tcp_socket(
        &self,
        mut visit: impl FnMut(Socket) -> Result<(), Failure>,
    ) -> Result<usize, Failure> {
        let fds = self.socket_fds()?;
        if fds.is_empty() {
            return Ok(0);
        }
        let table = self.tcp_table()?;
        let mut visited = 0;
        for (fd, inode) in fds {
            let Some(entry) = table.get(&inode) else {
                continue;
            };
            let dup = match self.get_fd(fd) {
                Ok(dup) => dup,
                Err(e) => match errno(&e) {
                    libc::EBADF => continue, // closed since /proc was read
                    libc::ESRCH => return Err(Failure::Gone { pid: self.pid }),
                    libc::EPERM | libc::EACCES => {
                        return Err(Failure::Permission {
                            pid: self.pid,
                            what: "take the socket descriptors (pidfd_getfd)".into(),
                        })
                    }
                    libc::ENOSYS => {
                        return Err(Failure::NoPidfd {
                            call: "pidfd_getfd",
                        })
                    }
                    libc::EMFILE | libc::ENFILE => {
                        return Err(Failure::Other(format!(
                            "pidfd_getfd of descriptor {fd} of process {}: {e}; this command holds one descriptor at a time, so even one more is beyond the open-file limit (`ulimit -n`)",
                            self.pid
                        )))
                    }
                    _ => {
                        return Err(Failure::Other(format!(
                            "pidfd_getfd of descriptor {fd} of process {} failed: {e}",
                            self.pid
                        )))
                    }
                },
            };
            if !same_tcp_socket(&dup, inode) {
                continue;
            }
            visit(Socket {
                fd,
                entry: entry.clone(),
                dup,
            })?;
            visited += 1;
        }
        Ok(visited)
    }
}

/// Raises this process's soft open-file limit (`RLIMIT_NOFILE`) to its hard limit, so that the
/// few descriptors a command holds at once never hit a low soft limit. For `inspect`, `apply`,
/// sweeps and the agent, never before `run` (the program would inherit it). Best effort: an
/// error leaves the limit as it was. Returns the soft limit now (1024 when it cannot be read).
pub fn raise_open_file_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                ..limit
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// Whether the duplicate is still a TCP (or MPTCP) socket with this inode: core's
/// [`tcp_keepalive::socket_kind`] decides what TCP is.
fn same_tcp_socket(dup: &OwnedFd, inode: u64) -> bool {
    // SAFETY: fstat into a zeroed stat buffer we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(dup.as_raw_fd(), &mut st) } != 0 || st.st_ino as u64 != inode {
        return false;
    }
    tcp_keepalive::socket_kind(dup).is_tcp()
}

/// Parses `0100007F:1F90` (IPv4) or 32 hex digits + port (IPv6), as the kernel prints them: each
/// 32-bit word in the host's byte order.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// One line of `/proc/net/tcp`:
/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`.
fn parse_tcp_line(line: &str) -> Option<(u64, TcpEntry)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 {
        return None;
    }
    let (timer, when) = f[5].split_once(':')?;
    let inode: u64 = f[9].parse().ok()?;
    Some((
        inode,
        TcpEntry {
            local: parse_addr(f[1])?,
            peer: parse_addr(f[2])?,
            state: u8::from_str_radix(f[3], 16).ok()?,
            timer: u8::from_str_radix(timer, 16).ok()?,
            timer_ticks: u64::from_str_radix(when, 16).ok()?,
            probes_out: f[8].parse().ok()?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn parses_ipv4_and_ipv6_rows() {
        let v4 = "   0: 0100007F:1F90 0100007F:D431 01 00000000:00000000 02:00001770 00000000     0        0 12345 1 0000000000000000 20 4 30 10 -1";
        let (inode, e) = parse_tcp_line(v4).unwrap();
        assert_eq!(inode, 12345);
        assert_eq!(e.local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(e.peer, "127.0.0.1:54321".parse().unwrap());
        assert_eq!(e.state_name(), "ESTABLISHED");
        assert_eq!(e.timer_name(), "keepalive");
        assert_eq!(e.timer_ticks, 6000);
        let v6 = "   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0";
        let (inode, e) = parse_tcp_line(v6).unwrap();
        assert_eq!(inode, 777);
        assert_eq!(e.local, "[::1]:8080".parse().unwrap());
        assert_eq!(e.peer(), None);
        assert_eq!(e.state_name(), "LISTEN");
        assert_eq!(e.keepalive_left_ms(), None);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_tcp_line("  sl  local_address rem_address   st tx_queue").is_none());
        assert!(parse_addr("XYZ:1").is_none());
    }
}
