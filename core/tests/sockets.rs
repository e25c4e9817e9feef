//! Real sockets on loopback: every value set is read back from the kernel with plain getsockopt.

mod common;

use std::fs::File;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Duration;

use common::{loopbacks, pair, raw_all, raw_set};
use tcp_keepalive::{configure_keepalive, inspect, Error, KeepAlive, Settings, SocketOption};

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn configure_sets_every_option_ipv4_and_ipv6() {
    for addr in loopbacks() {
        let p = pair(addr);
        assert_eq!(raw_all(&p.client)[0], 0, "{addr}: keep-alive starts off");
        configure_keepalive(&p.client, S(37), S(11), 5).unwrap();
        assert_eq!(raw_all(&p.client), [1, 37, 11, 5, 0], "{addr}");
        // The peer is untouched.
        assert_eq!(raw_all(&p.server)[0], 0, "{addr}");
    }
}

#[test]
fn apply_with_user_timeout_and_inspect_agree_with_libc() {
    for addr in loopbacks() {
        let p = pair(addr);
        let k = KeepAlive::new(S(41), S(13), 7)
            .unwrap()
            .with_user_timeout(Duration::from_millis(4321))
            .unwrap();
        k.apply(&p.client).unwrap();
        assert_eq!(raw_all(&p.client), [1, 41, 13, 7, 4321], "{addr}");
        let got = inspect(&p.client).unwrap();
        assert_eq!(
            (
                got.enabled,
                got.idle,
                got.interval,
                got.count,
                got.user_timeout
            ),
            (true, S(41), S(13), 7, Some(Duration::from_millis(4321)))
        );
        assert_eq!(got, Settings::from(k));
    }
}

#[test]
fn inspect_reads_values_set_by_someone_else() {
    let p = pair("127.0.0.1:0");
    raw_set(&p.client, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 123);
    raw_set(&p.client, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 45);
    raw_set(&p.client, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
    let s = inspect(&p.client).unwrap();
    assert_eq!(
        (s.enabled, s.idle, s.interval, s.count, s.user_timeout),
        (false, S(123), S(45), 3, None)
    );
    raw_set(&p.client, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    raw_set(&p.client, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 999);
    let s = inspect(&p.client).unwrap();
    assert!(s.enabled);
    assert_eq!(s.user_timeout, Some(Duration::from_millis(999)));
}

#[test]
fn inspect_of_a_fresh_socket_reports_the_system_defaults() {
    let p = pair("127.0.0.1:0");
    let read = |name: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let s = inspect(&p.client).unwrap();
    assert!(!s.enabled);
    assert_eq!(s.idle, S(read("tcp_keepalive_time")));
    assert_eq!(s.interval, S(read("tcp_keepalive_intvl")));
    assert_eq!(u64::from(s.count), read("tcp_keepalive_probes"));
}

#[test]
fn unconnected_socket_can_be_configured_before_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    configure_keepalive(&sock, S(21), S(3), 2).unwrap();
    sock.connect(&listener.local_addr().unwrap().into())
        .unwrap();
    assert_eq!(raw_all(&sock), [1, 21, 3, 2, 0]);
}

#[test]
fn listening_socket_settings_are_inherited_by_accepted_sockets() {
    for addr in loopbacks() {
        let listener = TcpListener::bind(addr).unwrap();
        let k = KeepAlive::new(S(29), S(7), 4)
            .unwrap()
            .with_user_timeout(Duration::from_millis(2500))
            .unwrap();
        k.apply(&listener).unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(raw_all(&accepted), [1, 29, 7, 4, 2500], "{addr}");
        assert_eq!(inspect(&accepted).unwrap(), inspect(&listener).unwrap());
    }
}

#[test]
fn subsecond_values_round_up() {
    let p = pair("127.0.0.1:0");
    configure_keepalive(
        &p.client,
        Duration::from_millis(1),
        Duration::from_millis(1500),
        1,
    )
    .unwrap();
    assert_eq!(raw_all(&p.client), [1, 1, 2, 1, 0]);
    KeepAlive::default()
        .with_user_timeout(Duration::from_micros(1))
        .unwrap()
        .apply(&p.client)
        .unwrap();
    assert_eq!(raw_all(&p.client), [1, 60, 10, 6, 1]);
}

#[test]
fn reapplying_replaces_earlier_values() {
    let p = pair("127.0.0.1:0");
    KeepAlive::default()
        .with_user_timeout(S(9))
        .unwrap()
        .apply(&p.client)
        .unwrap();
    configure_keepalive(&p.client, S(100), S(20), 9).unwrap();
    // configure_keepalive sets no user timeout and leaves an earlier one alone.
    assert_eq!(raw_all(&p.client), [1, 100, 20, 9, 9000]);
}

#[test]
fn apply_to_new_socket_sets_the_same_values() {
    let sock = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)
        .or_else(|_| socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None))
        .unwrap();
    let k = KeepAlive::new(S(17), S(4), 9)
        .unwrap()
        .with_user_timeout(S(2))
        .unwrap();
    k.apply_to_new_socket(&sock).unwrap();
    assert_eq!(raw_all(&sock), [1, 17, 4, 9, 2000]);
}

// ---- errors: each expected variant, and the socket left as it was ----

fn assert_invalid(err: Error, name: &str, needle: &str) {
    let text = err.to_string();
    match err {
        Error::InvalidArgument { name: n, .. } => assert_eq!(n, name, "{text}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert!(text.contains(needle), "{text:?} should mention {needle:?}");
}

#[test]
fn out_of_range_values_are_refused_before_any_system_call() {
    let p = pair("127.0.0.1:0");
    raw_set(&p.client, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 77);
    let before = raw_all(&p.client);
    let cases: [(Duration, Duration, u32, &str, &str); 6] = [
        (S(0), S(1), 1, "idle", "1 to 32767 seconds"),
        (S(32768), S(1), 1, "idle", "32768"),
        (S(1), Duration::ZERO, 1, "interval", "1 to 32767 seconds"),
        (S(1), S(40000), 1, "interval", "40000"),
        (S(1), S(1), 0, "count", "1 to 127"),
        (S(1), S(1), 128, "count", "128"),
    ];
    for (idle, intvl, cnt, name, needle) in cases {
        let err = configure_keepalive(&p.client, idle, intvl, cnt).unwrap_err();
        assert_invalid(err, name, needle);
        assert_eq!(
            raw_all(&p.client),
            before,
            "socket changed by a refused call"
        );
    }
    let err = KeepAlive::default()
        .with_user_timeout(Duration::ZERO)
        .unwrap_err();
    assert_invalid(err, "user_timeout", "1 to 2147483647 milliseconds");
    let err = KeepAlive::default()
        .with_user_timeout(Duration::from_millis(i32::MAX as u64 + 1))
        .unwrap_err();
    assert_invalid(err, "user_timeout", "2147483648");
    // The largest values Linux allows are accepted.
    KeepAlive::new(S(32767), S(32767), 127)
        .unwrap()
        .with_user_timeout(Duration::from_millis(i32::MAX as u64))
        .unwrap()
        .apply(&p.client)
        .unwrap();
    assert_eq!(raw_all(&p.client), [1, 32767, 32767, 127, i32::MAX]);
}

fn expect_not_tcp(fd: BorrowedFd<'_>, kind: &str) {
    for err in [
        configure_keepalive(fd, S(60), S(10), 6).unwrap_err(),
        inspect(fd).map(|_| ()).unwrap_err(),
    ] {
        let text = err.to_string();
        match &err {
            Error::NotTcp { kind: k, .. } => {
                assert!(k.contains(kind), "{k:?} should contain {kind:?}")
            }
            other => panic!("expected NotTcp for {kind}, got {other:?}"),
        }
        assert!(text.contains("not TCP"), "{text}");
        assert!(err.raw_os_error().is_some());
    }
}

#[test]
fn udp_unix_and_raw_sockets_are_not_tcp() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    expect_not_tcp(std::os::fd::AsFd::as_fd(&udp), "SOCK_DGRAM (UDP)");
    // SO_KEEPALIVE itself was not turned on for the UDP socket.
    assert_eq!(
        common::raw_get(&udp, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        0
    );

    let (a, _b) = UnixStream::pair().unwrap();
    expect_not_tcp(std::os::fd::AsFd::as_fd(&a), "AF_UNIX SOCK_STREAM");
    assert_eq!(common::raw_get(&a, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);
    let (d, _e) = UnixDatagram::pair().unwrap();
    expect_not_tcp(std::os::fd::AsFd::as_fd(&d), "AF_UNIX SOCK_DGRAM");

    match socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::ICMPV4),
    ) {
        Ok(raw) => expect_not_tcp(std::os::fd::AsFd::as_fd(&raw), "SOCK_RAW"),
        Err(e)
            if e.raw_os_error() == Some(libc::EPERM)
                && std::env::var("CI").as_deref() != Ok("true") =>
        {
            eprintln!("skipping the raw-socket case: creating one needs CAP_NET_RAW ({e})")
        }
        Err(e) => panic!("raw socket: {e} (the test command runs as root)"),
    }
}

/// An MPTCP socket, or `None` (skipped with the reason) where the kernel has none; under
/// `CI=true` a missing MPTCP fails.
fn mptcp_socket() -> Option<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 262) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true: cannot create an MPTCP socket ({e}); see sysctl net.mptcp.enabled");
        }
        eprintln!("skipping MPTCP: {e} (sysctl net.mptcp.enabled)");
        return None;
    }
    // SAFETY: fd was just created and nothing else owns it.
    Some(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// SO_KEEPALIVE and the three timings, read with libc (MPTCP cannot read TCP_USER_TIMEOUT).
fn raw_four(fd: &OwnedFd) -> [i32; 4] {
    let all = [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    ];
    all.map(|(level, name)| common::raw_get(fd, level, name))
}

#[test]
fn mptcp_is_tcp_and_an_option_it_lacks_is_unsupported() {
    let Some(sock) = mptcp_socket() else { return };
    configure_keepalive(&sock, S(19), S(6), 8).unwrap();
    assert_eq!(raw_four(&sock), [1, 19, 6, 8]);
    assert_eq!(inspect(&sock).unwrap().idle, S(19));
    let with_timeout = KeepAlive::new(S(23), S(2), 3)
        .unwrap()
        .with_user_timeout(S(4))
        .unwrap();
    match with_timeout.apply(&sock) {
        Ok(()) => assert_eq!(inspect(&sock).unwrap().user_timeout, Some(S(4))),
        Err(Error::Unsupported { option, .. }) => {
            assert_eq!(option, SocketOption::UserTimeout);
            assert_eq!(raw_four(&sock), [1, 19, 6, 8], "apply: nothing changed");
        }
        Err(other) => {
            panic!("MPTCP with a user timeout: expected Ok or Unsupported, got {other:?}")
        }
    }
}

#[test]
fn mptcp_with_a_user_timeout_is_all_or_nothing_on_a_new_socket() {
    let Some(sock) = mptcp_socket() else { return };
    let before = raw_four(&sock);
    assert_eq!(before[0], 0, "a new socket has keep-alive off");
    let with_timeout = KeepAlive::new(S(23), S(2), 3)
        .unwrap()
        .with_user_timeout(S(4))
        .unwrap();
    match with_timeout.apply_to_new_socket(&sock) {
        Ok(()) => assert_eq!(raw_four(&sock), [1, 23, 2, 3]),
        Err(Error::Unsupported { option, .. }) => {
            assert_eq!(option, SocketOption::UserTimeout);
            assert_eq!(
                raw_four(&sock),
                before,
                "apply_to_new_socket: nothing changed"
            );
        }
        Err(other) => {
            panic!("MPTCP with a user timeout: expected Ok or Unsupported, got {other:?}")
        }
    }
    // Without a user timeout the same socket takes the settings.
    KeepAlive::new(S(23), S(2), 3)
        .unwrap()
        .apply_to_new_socket(&sock)
        .unwrap();
    assert_eq!(raw_four(&sock), [1, 23, 2, 3]);
}

#[test]
fn a_raw_socket_is_described_as_raw_not_tcp() {
    // A raw socket opened with IPPROTO_TCP carries protocol 6; it is still no TCP socket.
    match socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::TCP),
    ) {
        Ok(raw) => {
            let err = inspect(&raw).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("is a AF_INET SOCK_RAW (raw IP, protocol 6) socket, not TCP"),
                "{text}"
            );
            assert!(!text.contains("(TCP)"), "{text}");
        }
        Err(e)
            if e.raw_os_error() == Some(libc::EPERM)
                && std::env::var("CI").as_deref() != Ok("true") =>
        {
            eprintln!("skipping the raw-socket case: creating one needs CAP_NET_RAW ({e})")
        }
        Err(e) => panic!("raw socket: {e} (the test command runs as root)"),
    }
}

#[test]
fn files_and_pipes_are_not_sockets() {
    let file = File::open("/proc/self/status").unwrap();
    let (r, w) = pipe();
    for (fd, what) in [
        (std::os::fd::AsFd::as_fd(&file), "file"),
        (std::os::fd::AsFd::as_fd(&r), "pipe"),
        (std::os::fd::AsFd::as_fd(&w), "pipe"),
    ] {
        for err in [
            configure_keepalive(fd, S(60), S(10), 6).unwrap_err(),
            inspect(fd).unwrap_err(),
        ] {
            assert!(matches!(err, Error::NotASocket { .. }), "{what}: {err:?}");
            assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
            assert!(err.to_string().contains("not a socket"));
        }
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both were just created and are owned by nobody else.
    unsafe {
        (
            std::os::fd::FromRawFd::from_raw_fd(fds[0]),
            std::os::fd::FromRawFd::from_raw_fd(fds[1]),
        )
    }
}

#[test]
fn a_closed_descriptor_is_a_bad_descriptor() {
    let p = pair("127.0.0.1:0");
    let fd = p.client.as_raw_fd();
    // A number far above anything this process opens, so it is certainly closed.
    let closed = 1_000_000 + fd;
    // SAFETY: the kernel only sees a number; no Rust object owns it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(closed) };
    for err in [
        configure_keepalive(borrowed, S(60), S(10), 6).unwrap_err(),
        inspect(borrowed).unwrap_err(),
    ] {
        match &err {
            Error::BadDescriptor { fd, .. } => assert_eq!(*fd, closed),
            other => panic!("expected BadDescriptor, got {other:?}"),
        }
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        assert!(err.to_string().contains(&closed.to_string()));
    }
}

#[test]
fn errors_convert_to_io_errors_keeping_errno() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let io: std::io::Error = configure_keepalive(&udp, S(60), S(10), 6)
        .unwrap_err()
        .into();
    assert!(matches!(
        io.get_ref().and_then(|e| e.downcast_ref::<Error>()),
        Some(Error::NotTcp { .. })
    ));
    assert_ne!(io.kind(), std::io::ErrorKind::InvalidInput);
    let io: std::io::Error = KeepAlive::new(S(0), S(1), 1).unwrap_err().into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(SocketOption::KeepIdle.to_string(), "TCP_KEEPIDLE");
}

#[test]
fn socket_options_written_by_hand_give_what_apply_gives() {
    let with_ut = KeepAlive::new(S(43), S(17), 3)
        .unwrap()
        .with_user_timeout(Duration::from_millis(6789))
        .unwrap();
    for k in [KeepAlive::new(S(31), S(9), 8).unwrap(), with_ut] {
        let options = k.socket_options().unwrap();
        // The user timeout first (when set), then the timings, SO_KEEPALIVE last, with the C
        // headers' numbers.
        assert_eq!(
            options.last(),
            Some(&(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1))
        );
        let idle_at = usize::from(k.user_timeout().is_some());
        assert_eq!(
            options[idle_at],
            (
                libc::IPPROTO_TCP,
                libc::TCP_KEEPIDLE,
                k.idle().as_secs() as i32
            )
        );
        if let Some(t) = k.user_timeout() {
            let ms = t.as_millis() as i32;
            assert_eq!(options[0], (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms));
        }
        let by_hand = pair("127.0.0.1:0");
        for (level, name, value) in &options {
            raw_set(&by_hand.client, *level, *name, *value);
        }
        let by_apply = pair("127.0.0.1:0");
        k.apply(&by_apply.client).unwrap();
        assert_eq!(raw_all(&by_hand.client), raw_all(&by_apply.client), "{k}");
        assert_eq!(
            options.len(),
            if k.user_timeout().is_some() { 5 } else { 4 }
        );
    }
}

#[test]
fn with_fd_names_another_descriptor_and_keeps_the_rest() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = tcp_keepalive::inspect(&udp).unwrap_err();
    let own = std::os::fd::AsRawFd::as_raw_fd(&udp);
    assert!(
        err.to_string().contains(&format!("descriptor {own} ")),
        "{err}"
    );
    let errno = err.raw_os_error();
    let renamed = err.with_fd(4242);
    assert_eq!(
        renamed.to_string(),
        "descriptor 4242 is a AF_INET SOCK_DGRAM (UDP) socket, not TCP: keep-alive options apply to TCP sockets only"
    );
    assert_eq!(renamed.raw_os_error(), errno);
}
