//! Enforcement (contract C1) as the shared table `tests/data/enforce-cases.tsv`: each row through
//! `SocketOption::from_raw` and `KeepAlive::enforce`, and each keep-alive row's requested and
//! enforced value written to a real TCP socket, proving the program's call succeeds or fails
//! exactly as it would have without the door, and that the kernel holds the enforced value.

#[path = "common/mod.rs"]
mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use tcp_keepalive::{KeepAlive, SocketOption};

const TABLE: &str = include_str!("data/enforce-cases.tsv");

struct Case {
    line: usize,
    when: String,
    socket: String,
    keepalive: KeepAlive,
    level: i32,
    name: i32,
    option: String,
    requested: i32,
    expected: i32,
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (index, line) in TABLE.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        // optlen matters to the doors, not to the decision; `when` picks it: a write is
        // enforced (KeepAlive::enforce), a value set before connect or before a sweep capped
        // (KeepAlive::ceiling_of: the same, but Linux's default timings are no choice).
        assert_eq!(
            f.len(),
            13,
            "line {}: 13 fields expected: {line:?}",
            index + 1
        );
        assert!(
            matches!(f[11], "tcp" | "mptcp"),
            "line {}: socket {:?}",
            index + 1,
            f[11]
        );
        assert!(
            matches!(f[10], "write" | "connect" | "sweep"),
            "line {}: when {:?}",
            index + 1,
            f[10]
        );
        let num = |i: usize| -> i64 {
            f[i].parse()
                .unwrap_or_else(|e| panic!("line {}: field {i} {:?}: {e}", index + 1, f[i]))
        };
        let mut keepalive = KeepAlive::new(
            Duration::from_secs(num(0) as u64),
            Duration::from_secs(num(1) as u64),
            num(2) as u32,
        )
        .unwrap();
        if f[3] != "-" {
            keepalive = keepalive
                .with_user_timeout(Duration::from_millis(num(3) as u64))
                .unwrap();
        }
        cases.push(Case {
            line: index + 1,
            when: f[10].to_string(),
            socket: f[11].to_string(),
            keepalive,
            level: num(4) as i32,
            name: num(5) as i32,
            option: f[6].to_string(),
            requested: num(7) as i32,
            expected: num(8) as i32,
        });
    }
    assert!(cases.len() >= 40, "the table lost rows: {}", cases.len());
    cases
}

#[test]
fn every_row_of_the_table() {
    for case in cases() {
        let option = SocketOption::from_raw(case.level, case.name);
        let got = match option {
            Some(option) => {
                assert_eq!(option.name(), case.option, "line {}", case.line);
                // A program's write is enforced; a value the socket already held (before
                // connect, before the door came) is capped, Linux's defaults being no choice.
                if case.when == "write" {
                    case.keepalive.enforce(option, case.requested)
                } else {
                    case.keepalive.ceiling_of(option, case.requested)
                }
            }
            None => {
                assert_eq!(case.option, "-", "line {}: from_raw missed it", case.line);
                case.requested
            }
        };
        assert_eq!(
            got, case.expected,
            "line {}: {} = {} under {}",
            case.line, case.option, case.requested, case.keepalive
        );
    }
}

#[test]
fn from_raw_knows_every_option_by_this_platforms_numbers() {
    let known = [
        (
            libc::SOL_SOCKET,
            libc::SO_KEEPALIVE,
            SocketOption::KeepAlive,
        ),
        (
            libc::IPPROTO_TCP,
            libc::TCP_KEEPIDLE,
            SocketOption::KeepIdle,
        ),
        (
            libc::IPPROTO_TCP,
            libc::TCP_KEEPINTVL,
            SocketOption::KeepInterval,
        ),
        (
            libc::IPPROTO_TCP,
            libc::TCP_KEEPCNT,
            SocketOption::KeepCount,
        ),
        (
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            SocketOption::UserTimeout,
        ),
    ];
    for (level, name, option) in known {
        assert_eq!(SocketOption::from_raw(level, name), Some(option));
    }
    assert_eq!(
        SocketOption::from_raw(libc::IPPROTO_TCP, libc::SO_KEEPALIVE),
        None
    );
    assert_eq!(
        SocketOption::from_raw(libc::SOL_SOCKET, libc::TCP_KEEPIDLE),
        None
    );
    assert_eq!(
        SocketOption::from_raw(libc::IPPROTO_TCP, libc::TCP_NODELAY),
        None
    );
}

/// `setsockopt` as a program would call it: `Ok` or the kernel's errno.
fn set(stream: &impl AsRawFd, level: i32, name: i32, value: i32) -> Result<(), i32> {
    // SAFETY: pointer and length describe a live int.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            4,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

#[test]
fn the_kernel_answers_the_enforced_value_as_it_answers_the_requested_one() {
    for addr in common::loopbacks() {
        for case in cases()
            .into_iter()
            .filter(|c| c.option != "-" && c.socket == "tcp")
        {
            let pair = common::pair(addr);
            let plain = &pair.client;
            let enforced = &pair.server;
            let without_us = set(plain, case.level, case.name, case.requested);
            let with_us = set(enforced, case.level, case.name, case.expected);
            assert_eq!(
                with_us, without_us,
                "line {}: {} = {} on {addr}: the program's call must return what it would have",
                case.line, case.option, case.requested
            );
            if with_us.is_ok() {
                let read = common::raw_get(enforced, case.level, case.name);
                let want = if case.option == "SO_KEEPALIVE" {
                    1
                } else {
                    case.expected
                };
                assert_eq!(
                    read, want,
                    "line {}: the kernel holds the enforced value",
                    case.line
                );
            }
        }
    }
}

/// The sweep's rows through `KeepAlive::apply_ceiling` (what the operator doors' sweeps call) on a
/// real socket whose program set the requested value before the door came.
#[test]
fn the_sweep_caps_an_open_socket() {
    let mut rows = 0;
    for addr in common::loopbacks() {
        for case in cases().into_iter().filter(|c| c.when == "sweep") {
            let pair = common::pair(addr);
            set(&pair.client, case.level, case.name, case.requested).unwrap();
            assert!(
                case.keepalive.apply_ceiling(&pair.client).unwrap(),
                "line {}: something to change",
                case.line
            );
            let read = common::raw_get(&pair.client, case.level, case.name);
            assert_eq!(read, case.expected, "line {}: {}", case.line, case.option);
            assert_eq!(
                common::raw_get(&pair.client, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
                1,
                "line {}",
                case.line
            );
            // Within the ceiling now: a second sweep writes nothing.
            assert!(!case.keepalive.apply_ceiling(&pair.client).unwrap());
            rows += 1;
        }
    }
    assert!(rows >= 6, "sweep rows: {rows}");
}

/// An MPTCP socket of `family`, or `None` where the kernel has no MPTCP (then its rows cannot
/// be checked here: said on stderr).
fn mptcp_socket(family: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: a new socket we own.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM, 262) };
    // SAFETY: fd is new and ours.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// The MPTCP rows (the operator doors hold MPTCP sockets to the same ceiling): the enforced
/// value answers on an MPTCP socket as the requested one does, and is what the kernel holds.
#[test]
fn mptcp_rows_answer_on_an_mptcp_socket() {
    let mut rows = 0;
    for case in cases().into_iter().filter(|c| c.socket == "mptcp") {
        let (Some(plain), Some(enforced)) =
            (mptcp_socket(libc::AF_INET), mptcp_socket(libc::AF_INET))
        else {
            eprintln!(
                "no MPTCP in this kernel (net.mptcp.enabled): line {} not checked",
                case.line
            );
            continue;
        };
        let without_us = set(&plain, case.level, case.name, case.requested);
        let with_us = set(&enforced, case.level, case.name, case.expected);
        assert_eq!(with_us, without_us, "line {}", case.line);
        if with_us.is_ok() {
            let want = if case.option == "SO_KEEPALIVE" {
                1
            } else {
                case.expected
            };
            assert_eq!(
                common::raw_get(&enforced, case.level, case.name),
                want,
                "line {}",
                case.line
            );
        }
        rows += 1;
    }
    assert!(rows == 0 || rows >= 4, "mptcp rows: {rows}");
}
