//! `tcp_info` on real loopback connections: the fields `tcp-keepalive measure` relies on, read
//! while a keep-alive probe is answered, and the errors of non-TCP descriptors.
#![cfg(target_os = "linux")]

mod common;

use std::fs::File;
use std::io::Write;
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{has_ipv6, pair};
use tcp_keepalive::{tcp_info, Error, KeepAlive, SocketOption};

const ESTABLISHED: u8 = 1;

#[test]
fn an_answered_probe_shows_as_a_fresh_ack() {
    let mut addrs = vec!["127.0.0.1:0"];
    if has_ipv6() {
        addrs.push("[::1]:0");
    }
    for addr in addrs {
        let p = pair(addr);
        // Keep-alive on, first probe far away: the connection stays silent.
        KeepAlive::new(Duration::from_secs(3600), Duration::from_secs(1), 1)
            .unwrap()
            .apply(&p.client)
            .unwrap();
        std::thread::sleep(Duration::from_millis(1300));
        let before = tcp_info(&p.client).unwrap();
        assert_eq!(before.state, ESTABLISHED, "{addr}");
        assert_eq!(before.probes, 0, "{addr}");
        assert!(
            before.last_ack_recv >= Duration::from_millis(1200),
            "{addr}: silent for 1.3 s, yet the last ACK was {:?} ago",
            before.last_ack_recv
        );
        // An idle of 1 s on a connection silent for longer probes at once; the peer's kernel
        // answers, which the next reading shows as an ACK received just now.
        let asked = Instant::now();
        KeepAlive::new(Duration::from_secs(1), Duration::from_secs(1), 1)
            .unwrap()
            .apply(&p.client)
            .unwrap();
        let mut answered = None;
        while asked.elapsed() < Duration::from_millis(800) {
            let now = tcp_info(&p.client).unwrap();
            if now.last_ack_recv < asked.elapsed() {
                answered = Some(now);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let now = answered.unwrap_or_else(|| panic!("{addr}: no answer to the probe within 0.8 s"));
        assert_eq!((now.state, now.probes), (ESTABLISHED, 0), "{addr}");
        assert!(
            now.rtt > Duration::ZERO && now.rtt < Duration::from_millis(100),
            "{addr}: {now:?}"
        );
    }
}

#[test]
fn data_and_a_closed_peer_show() {
    let mut p = pair("127.0.0.1:0");
    std::thread::sleep(Duration::from_millis(400));
    p.server.write_all(b"hello").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let info = tcp_info(&p.client).unwrap();
    // Data arrived just now; the client itself has sent none since the handshake.
    assert!(info.last_data_recv < Duration::from_millis(200), "{info:?}");
    assert!(
        info.last_data_sent >= Duration::from_millis(400),
        "{info:?}"
    );
    drop(p.server);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        tcp_info(&p.client).unwrap().state,
        8,
        "CLOSE_WAIT after the peer's FIN"
    );
}

#[test]
fn non_tcp_descriptors_get_typed_errors() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    match tcp_info(&udp) {
        Err(Error::NotTcp { kind, .. }) => assert!(kind.contains("UDP"), "{kind}"),
        other => panic!("UDP: {other:?}"),
    }
    let (unix, _other) = UnixStream::pair().unwrap();
    assert!(matches!(tcp_info(&unix), Err(Error::NotTcp { .. })));
    let file = File::open("/dev/null").unwrap();
    let err = tcp_info(&file).unwrap_err();
    assert!(matches!(err, Error::NotASocket { .. }), "{err:?}");
    assert_eq!(SocketOption::TcpInfo.name(), "TCP_INFO");
}
