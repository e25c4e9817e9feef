//! Core's plans run through a recording fake of the system calls: the write order, the undo of
//! each path after a failure at every write, and the enforcement decision's calls. Real sockets
//! prove the same paths elsewhere (sockets.rs, all_or_nothing.rs, enforce.rs); this proves that a
//! door injecting its own calls (the preload) gets exactly core's sequence.

use std::cell::RefCell;
use std::time::Duration;

use libc::c_int;
use tcp_keepalive::{Enforced, KeepAlive, SocketKind, SocketOption, Syscalls, IPPROTO_MPTCP};

const TCP: c_int = libc::IPPROTO_TCP;
const SOL: c_int = libc::SOL_SOCKET;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Set(c_int, c_int, c_int),
    Get(c_int, c_int),
}

/// Answers every get with `value`, fails the `fail_at`-th set (0-based) with EPERM.
struct Fake {
    calls: RefCell<Vec<Call>>,
    fail_at: Option<usize>,
    value: c_int,
    kind: (c_int, c_int, c_int),
}

impl Fake {
    fn new(fail_at: Option<usize>) -> Fake {
        Fake {
            calls: RefCell::new(Vec::new()),
            fail_at,
            value: 7,
            kind: (libc::AF_INET, libc::SOCK_STREAM, TCP),
        }
    }
    fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }
}

impl Syscalls for Fake {
    fn set(&self, _fd: c_int, level: c_int, name: c_int, value: &c_int) -> Result<(), c_int> {
        let sets = self
            .calls
            .borrow()
            .iter()
            .filter(|c| matches!(c, Call::Set(..)))
            .count();
        self.calls.borrow_mut().push(Call::Set(level, name, *value));
        if Some(sets) == self.fail_at {
            Err(libc::EPERM)
        } else {
            Ok(())
        }
    }
    fn get(&self, _fd: c_int, level: c_int, name: c_int) -> Result<c_int, c_int> {
        self.calls.borrow_mut().push(Call::Get(level, name));
        Ok(match (level, name) {
            (SOL, libc::SO_DOMAIN) => self.kind.0,
            (SOL, libc::SO_TYPE) => self.kind.1,
            (SOL, libc::SO_PROTOCOL) => self.kind.2,
            _ => self.value,
        })
    }
}

fn settings() -> KeepAlive {
    KeepAlive::new(Duration::from_secs(61), Duration::from_secs(11), 5)
        .unwrap()
        .with_user_timeout(Duration::from_millis(2500))
        .unwrap()
}

fn writes() -> Vec<Call> {
    vec![
        Call::Set(TCP, libc::TCP_USER_TIMEOUT, 2500),
        Call::Set(TCP, libc::TCP_KEEPIDLE, 61),
        Call::Set(TCP, libc::TCP_KEEPINTVL, 11),
        Call::Set(TCP, libc::TCP_KEEPCNT, 5),
        Call::Set(SOL, libc::SO_KEEPALIVE, 1),
    ]
}

#[test]
fn the_plan_is_core_order_and_socket_options_are_its_writes() {
    let k = settings();
    let plan = k.plan().unwrap();
    let as_calls: Vec<Call> = plan
        .writes()
        .iter()
        .map(|[l, n, v]| Call::Set(*l, *n, *v))
        .collect();
    assert_eq!(as_calls, writes());
    let options: Vec<(c_int, c_int, c_int)> =
        plan.writes().iter().map(|w| (w[0], w[1], w[2])).collect();
    assert_eq!(k.socket_options().unwrap(), options);
    // Without a user timeout: the four others, SO_KEEPALIVE last.
    let plain = KeepAlive::default().plan().unwrap();
    assert_eq!(plain.writes().len(), 4);
    assert_eq!(plain.writes()[3], [SOL, libc::SO_KEEPALIVE, 1]);
}

#[test]
fn a_new_socket_gets_the_writes_and_on_failure_only_its_user_timeout_back() {
    let fake = Fake::new(None);
    settings().plan().unwrap().apply_new(&fake, 3).unwrap();
    assert_eq!(fake.calls(), writes());
    for fail_at in 0..5 {
        let fake = Fake::new(Some(fail_at));
        let failed = settings().plan().unwrap().apply_new(&fake, 3).unwrap_err();
        assert_eq!((failed.index, failed.errno), (Some(fail_at), libc::EPERM));
        let mut want = writes()[..=fail_at].to_vec();
        if fail_at > 0 {
            want.push(Call::Set(TCP, libc::TCP_USER_TIMEOUT, 0));
        }
        assert_eq!(fake.calls(), want, "failure at write {fail_at}");
    }
}

#[test]
fn apply_reads_first_and_writes_the_old_values_back_on_failure() {
    for fail_at in 0..5 {
        let fake = Fake::new(Some(fail_at));
        let err = settings().apply_with(&fake, 3).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        let reads: Vec<Call> = writes()[..4]
            .iter()
            .map(|c| match c {
                Call::Set(l, n, _) => Call::Get(*l, *n),
                other => other.clone(),
            })
            .collect();
        let mut want = reads;
        want.extend_from_slice(&writes()[..=fail_at]);
        // Every timing written before the failure gets its old value (7) back, in order.
        for c in &writes()[..fail_at.min(4)] {
            if let Call::Set(l, n, _) = c {
                want.push(Call::Set(*l, *n, 7));
            }
        }
        assert_eq!(fake.calls(), want, "failure at write {fail_at}");
    }
}

#[test]
fn enforcement_reads_the_value_in_force_and_writes_only_a_ceiling() {
    let k = settings();
    // The program left 7 s idle: within the ceiling of 61, nothing written.
    let fake = Fake::new(None);
    assert_eq!(
        k.enforce_on(&fake, 3, SocketOption::KeepIdle),
        Enforced::Within
    );
    assert_eq!(fake.calls(), vec![Call::Get(TCP, libc::TCP_KEEPIDLE)]);
    // 999 s in force: capped to 61.
    let fake = Fake {
        value: 999,
        ..Fake::new(None)
    };
    assert_eq!(
        k.enforce_on(&fake, 3, SocketOption::KeepIdle),
        Enforced::Capped {
            from: 999,
            to: 61,
            result: Ok(())
        }
    );
    assert_eq!(
        fake.calls(),
        vec![
            Call::Get(TCP, libc::TCP_KEEPIDLE),
            Call::Set(TCP, libc::TCP_KEEPIDLE, 61)
        ]
    );
    // SO_KEEPALIVE on a number that now holds a UDP socket: the kind is asked, nothing else.
    let fake = Fake {
        kind: (libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        value: 0,
        ..Fake::new(None)
    };
    assert_eq!(
        k.enforce_on(&fake, 3, SocketOption::KeepAlive),
        Enforced::NotTcp
    );
    assert!(fake.calls().iter().all(|c| matches!(c, Call::Get(SOL, _))));
}

#[test]
fn socket_kinds_are_decided_once() {
    use SocketKind::*;
    let stream = libc::SOCK_STREAM;
    for (domain, ty, protocol, call, kernel) in [
        (libc::AF_INET, stream, 0, Tcp, Other),
        (libc::AF_INET6, stream | libc::SOCK_CLOEXEC, TCP, Tcp, Other),
        (libc::AF_INET, stream, TCP, Tcp, Tcp),
        (libc::AF_INET6, stream, IPPROTO_MPTCP, Mptcp, Mptcp),
        (
            libc::AF_INET,
            libc::SOCK_DGRAM,
            libc::IPPROTO_UDP,
            Other,
            Other,
        ),
        (libc::AF_INET, libc::SOCK_RAW, TCP, Other, Other),
        (libc::AF_INET, libc::SOCK_SEQPACKET, 0, Other, Other),
        (libc::AF_UNIX, stream, 0, Other, Other),
    ] {
        assert_eq!(SocketKind::of_socket_call(domain, ty, protocol), call);
        // The kernel reports the type without flags and the protocol resolved.
        if ty == stream {
            assert_eq!(SocketKind::of(domain, ty, protocol), kernel);
        }
    }
    let fake = Fake {
        kind: (libc::AF_INET6, libc::SOCK_STREAM, IPPROTO_MPTCP),
        ..Fake::new(None)
    };
    assert_eq!(tcp_keepalive::socket_kind_with(&fake, 3), Mptcp);
}
