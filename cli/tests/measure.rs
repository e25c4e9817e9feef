//! `tcp-keepalive measure` on loopback with real sockets: every bad input with its documented
//! message and exit code (`tcp-keepalive --help`: 2 usage, 18 does not resolve, 19 cannot
//! connect), a measurement without a middlebox (nothing forgets: "no idle timeout up to MAX"), a
//! server that closes idle connections itself, the two-sided far end, and `inspect --path-timeout`.
//! The middleboxes themselves are in the lab (e2e/lab.py, the measure cases).

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The command's exit codes, from the one place they are defined.
#[path = "../src/exit_codes.rs"]
#[allow(dead_code)]
mod exit;

fn cli() -> Command {
    Command::new(
        std::env::var_os("TCPKA_CLI").unwrap_or_else(|| env!("CARGO_BIN_EXE_tcp-keepalive").into()),
    )
}

fn measure(args: &[&str]) -> Output {
    cli()
        .arg("measure")
        .args(args)
        .output()
        .expect("run tcp-keepalive")
}

/// Exit code and the one line on stderr; stdout stays empty.
fn fails(args: &[&str], code: i32, words: &[&str]) {
    let out = measure(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(
        out.stdout.is_empty(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for w in words {
        assert!(err.contains(w), "{args:?}: {w:?} not in {err}");
    }
    if code != 2 || err.starts_with("tcp-keepalive: ") {
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line: {err}"
        );
    }
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn bad_targets_are_usage_errors() {
    for t in [
        "example.com",
        "127.0.0.1",
        "127.0.0.1:",
        ":80",
        "[::1]",
        "::1",
    ] {
        fails(&[t], 2, &["invalid target", &format!("{t:?}"), "HOST:PORT"]);
    }
    for t in [
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:http",
        "127.0.0.1:+80",
    ] {
        fails(&[t], 2, &["invalid target", "port from 1 to 65535"]);
    }
}

#[test]
fn bad_max_is_a_usage_error_before_any_connection() {
    // The port is closed: a value checked after connecting would give 19 instead.
    let target = format!("127.0.0.1:{}", closed_port());
    for (max, words) in [
        ("0", &["invalid max: \"0\"", "1 to 32767 seconds"][..]),
        ("32768", &["invalid max: \"32768\"", "1 to 32767"][..]),
        ("10x", &["invalid max: \"10x\""][..]),
        ("-5", &["invalid max: \"-5\""][..]),
    ] {
        fails(&[&target, "--max", max], 2, words);
    }
}

#[test]
fn command_line_conflicts_are_usage_errors() {
    fails(&[], 2, &["HOST:PORT"]);
    fails(&["127.0.0.1:80", "--ipv4", "--ipv6"], 2, &["--ipv6"]);
    fails(&["127.0.0.1:80", "--listen", "7000"], 2, &["--listen"]);
    for port in ["0", "abc", "65536", ""] {
        fails(
            &["--listen", port],
            2,
            &["invalid listen", "a port from 1 to 65535"],
        );
    }
}

#[test]
fn names_that_do_not_resolve_exit_18() {
    fails(
        &["no-such-host.invalid:80"],
        exit::RESOLVE,
        &["cannot resolve \"no-such-host.invalid\""],
    );
    fails(
        &["127.0.0.1:80", "--ipv6"],
        exit::RESOLVE,
        &["\"127.0.0.1\" has no IPv6 address"],
    );
    fails(
        &["[::1]:80", "--ipv4"],
        exit::RESOLVE,
        &["\"::1\" has no IPv4 address"],
    );
}

#[test]
fn a_refused_connection_exits_19() {
    let port = closed_port();
    fails(
        &[&format!("127.0.0.1:{port}"), "--max", "5"],
        exit::CONNECT,
        &[
            &format!("cannot connect to 127.0.0.1:{port}"),
            "refused",
            "listener",
        ],
    );
}

#[test]
fn listen_on_a_port_in_use_exits_19() {
    let held = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    fails(
        &["--listen", &port, "--ipv4"],
        exit::CONNECT,
        &["cannot listen on 0.0.0.0:", "in use"],
    );
}

fn json_of(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// A listener that accepts and holds every connection, silent, like any TCP server.
fn silent_listener(addr: &str) -> (String, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind(addr).unwrap();
    let a = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        l.set_nonblocking(true).unwrap();
        let mut held = Vec::new();
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            match l.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (a, h)
}

#[test]
fn nothing_forgets_on_loopback() {
    let (addr, _h) = silent_listener("127.0.0.1:0");
    let started = Instant::now();
    let r = json_of(&measure(&[&addr, "--max", "2", "--json"]));
    let took = started.elapsed().as_secs_f64();
    assert_eq!(r["target"], addr.as_str());
    assert_eq!(r["path_idle_timeout_s"], Value::Null, "{r}");
    assert_eq!(r["server_idle_close_s"], Value::Null, "{r}");
    assert_eq!(r["two_sided"], false);
    assert_eq!(r["max_s"], 2.0);
    // Every silence up to --max was asked about, so it took at least that long.
    assert!(
        r["elapsed_s"].as_f64().unwrap() >= 2.0 && took >= 2.0,
        "{r}"
    );
    assert_eq!(r["rounds"], 1);
    assert!(r["connections"].as_u64().unwrap() >= 3, "{r}");
    assert!(
        r["notes"][0]
            .as_str()
            .unwrap()
            .contains("nf_conntrack_tcp_loose"),
        "{r}"
    );
}

#[test]
fn plain_output_names_the_result_and_the_caveat() {
    let (addr, _h) = silent_listener("[::1]:0");
    let out = measure(&[&addr, "--max", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(", IPv6)"), "{text}");
    assert!(
        text.contains("no idle timeout up to 1 s from this side"),
        "{text}"
    );
    assert!(text.contains("measure --listen PORT"), "{text}");
    // Not a terminal: plain progress lines on stderr, no carriage returns.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("probe answered") && !err.contains('\r'),
        "{err}"
    );
}

#[test]
fn a_server_that_closes_idle_connections_is_named_not_the_path() {
    // Closes every connection 1.5 s after accepting it, as an HTTP server's idle timeout does.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming().take(64).flatten() {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1500));
                drop(s);
            });
        }
    });
    let r = json_of(&measure(&[&addr, "--max", "10", "--json"]));
    let close = r["server_idle_close_s"].as_f64().expect("a server close");
    assert!((1.3..=2.5).contains(&close), "{r}");
    assert_eq!(r["path_idle_timeout_s"], Value::Null, "{r}");
    // It stopped once the server had closed them, well before --max.
    assert!(r["elapsed_s"].as_f64().unwrap() < 6.0, "{r}");
}

struct Listening(Child);

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_two_sided_far_end_is_recognised() {
    let port = closed_port().to_string();
    let mut child = cli()
        .args(["measure", "--listen", &port])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _far = Listening(child);
    assert!(line.starts_with("listening on "), "{line}");
    // Its protocol, by hand: the banner, then one line after the silence asked for.
    let mut s = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(&mut s, b"after 300\n").unwrap();
    let t = Instant::now();
    let mut got = String::new();
    while !got.ends_with("x\n") {
        let mut b = [0u8; 64];
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "closed early: {got:?}");
        got.push_str(&String::from_utf8_lossy(&b[..n]));
    }
    assert_eq!(got, "tcp-keepalive-measure 1\nok\nx\n");
    assert!(t.elapsed() >= Duration::from_millis(300));
    let r = json_of(&measure(&[
        &format!("127.0.0.1:{port}"),
        "--max",
        "2",
        "--json",
    ]));
    assert_eq!(r["two_sided"], true, "{r}");
    assert_eq!(r["server_to_client_idle_timeout_s"], Value::Null, "{r}");
    assert_eq!(r["path_idle_timeout_s"], Value::Null, "{r}");
    assert!(r["notes"].as_array().unwrap().is_empty(), "{r}");
}

#[test]
fn inspect_marks_keepalive_that_would_not_beat_a_path_timeout() {
    use tcp_keepalive::KeepAlive;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let fast = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let slow = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let off = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let s = |n| Duration::from_secs(n);
    KeepAlive::new(s(20), s(5), 3)
        .unwrap()
        .apply(&fast)
        .unwrap();
    KeepAlive::new(s(45), s(5), 3)
        .unwrap()
        .apply(&slow)
        .unwrap();
    let pid = std::process::id().to_string();
    let out = cli()
        .args(["inspect", "--pid", &pid, "--path-timeout", "30", "--json"])
        .output()
        .unwrap();
    let r = json_of(&out);
    assert_eq!(r["path_timeout_s"], 30);
    let beats = |sock: &TcpStream| {
        let port = sock.local_addr().unwrap().port();
        r["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["local"].as_str().unwrap().ends_with(&format!(":{port}")))
            .unwrap_or_else(|| panic!("port {port} not in {r}"))["beats_path_timeout"]
            .clone()
    };
    assert_eq!(beats(&fast), true, "idle 20 s beats 30 s");
    assert_eq!(beats(&slow), false, "idle 45 s does not");
    assert_eq!(beats(&off), false, "keep-alive off does not");
    let text = cli()
        .args(["inspect", "--pid", &pid, "--path-timeout", "30"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("BEATS-30s"), "{text}");
    assert!(
        text.contains("would not beat the path's 30 s idle timeout"),
        "{text}"
    );
    let bad = cli()
        .args(["inspect", "--pid", &pid, "--path-timeout", "0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid path_timeout: \"0\""));
}

#[test]
fn a_terminal_gets_a_progress_bar() {
    // `script` (util-linux / bsdutils, essential on Debian) runs the command on a pseudo-terminal.
    let Ok(which) = Command::new("script").arg("--version").output() else {
        eprintln!("skipped: no `script` to give the command a terminal");
        return;
    };
    assert!(which.status.success());
    let (addr, _h) = silent_listener("127.0.0.1:0");
    let exe =
        std::env::var_os("TCPKA_CLI").unwrap_or_else(|| env!("CARGO_BIN_EXE_tcp-keepalive").into());
    let line = format!("{} measure {addr} --max 2", exe.to_string_lossy());
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    // The bar redraws in place: carriage returns, the elapsed time and what is known so far.
    assert!(text.contains("\r\x1b[2K["), "{text:?}");
    assert!(text.contains("survives"), "{text:?}");
    assert!(text.contains("no idle timeout up to 2 s"), "{text:?}");
}
