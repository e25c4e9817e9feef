//! libkeepalive.so under real, unmodified runtimes: CPython's `socket.socket()` and Java 17/25
//! (`Socket`, `SocketChannel`, `HttpURLConnection`), read back from inside (getsockopt,
//! `jdk.net.ExtendedSocketOptions`) and from outside (the client's socket duplicated with
//! `pidfd_getfd`, and `ss -tnoi`).
//!
//! These need python3, JDKs and `ss`, which the `rust` stage does not install, so they are
//! `#[ignore]`d there; `scripts/test.d/50-preload.sh` installs them and runs these with
//! `--include-ignored`. `PYTHON` picks the interpreter, `PRELOAD_TEST_JDKS` (JDK homes,
//! colon-separated) the JDKs; by default every JDK under /usr/lib/jvm.

mod common;

use common::{line, parse, run, spawn};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const DISTINCT: &[(&str, &str)] = &[
    ("TCP_KEEPALIVE_IDLE", "73"),
    ("TCP_KEEPALIVE_INTERVAL", "11"),
    ("TCP_KEEPALIVE_COUNT", "7"),
    ("TCP_KEEPALIVE_USER_TIMEOUT", "23456ms"),
];

const PYTHON_PROBE: &str = r#"
import socket
def show(name, s):
    g = lambda level, opt: s.getsockopt(level, opt)
    T = socket.IPPROTO_TCP
    print(name, "ka=%d idle=%d intvl=%d cnt=%d ut=%d" % (
        g(socket.SOL_SOCKET, socket.SO_KEEPALIVE), g(T, socket.TCP_KEEPIDLE),
        g(T, socket.TCP_KEEPINTVL), g(T, socket.TCP_KEEPCNT), g(T, socket.TCP_USER_TIMEOUT)))
show("py-socket", socket.socket())
show("py-socket6", socket.socket(socket.AF_INET6))
server = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(server.getsockname(), timeout=10)
accepted, _ = server.accept()
show("py-create-connection", client)
show("py-accepted", accepted)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print("py-udp ka=%d" % udp.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
unix = socket.socket(socket.AF_UNIX)
print("py-unix ka=%d" % unix.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
"#;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

#[test]
#[ignore = "needs python3; run by scripts/test.d/50-preload.sh"]
fn python_socket_socket_is_configured() {
    let probe = |preload: bool, env: &[(&str, &str)]| {
        let mut cmd = Command::new(python());
        cmd.args(["-c", PYTHON_PROBE]);
        let out = run(cmd, preload, env, Duration::from_secs(60));
        assert_eq!(out.code, Some(0), "{out:?}");
        parse(&out.stdout)
    };
    let on = probe(true, DISTINCT);
    for name in [
        "py-socket",
        "py-socket6",
        "py-create-connection",
        "py-accepted",
    ] {
        assert_eq!(
            line(&on, name).keepalive(),
            ("1", "73", "11", "7", "23456"),
            "{name}"
        );
    }
    assert_eq!(line(&on, "py-udp").get("ka"), "0");
    assert_eq!(line(&on, "py-unix").get("ka"), "0");
    let bare = probe(false, &[]);
    assert!(bare.iter().all(|l| l.get("ka") == "0"), "{bare:?}");
    let off = probe(true, &[("TCP_KEEPALIVE", "off")]);
    assert_eq!(off, bare);
}

/// The JDK homes to test: `PRELOAD_TEST_JDKS`, else every JDK (with javac, for single-file source
/// launch) under /usr/lib/jvm, each once.
fn jdks() -> Vec<PathBuf> {
    let mut homes: Vec<PathBuf> = match std::env::var("PRELOAD_TEST_JDKS") {
        Ok(list) => list
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect(),
        Err(_) => std::fs::read_dir("/usr/lib/jvm")
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default(),
    };
    homes.retain(|h| h.join("bin/javac").is_file());
    let mut seen = Vec::new();
    homes.retain(|h| {
        let real = h.canonicalize().unwrap_or_else(|_| h.clone());
        let new = !seen.contains(&real);
        seen.push(real);
        new
    });
    homes.sort();
    assert!(
        !homes.is_empty(),
        "no JDK found (PRELOAD_TEST_JDKS or /usr/lib/jvm)"
    );
    homes
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
#[ignore = "needs JDKs; run by scripts/test.d/50-preload.sh"]
fn java_sockets_are_configured_read_from_inside() {
    let probe = repo().join("preload/tests/programs/JavaProbe.java");
    for jdk in jdks() {
        let mut cmd = Command::new(jdk.join("bin/java"));
        cmd.arg(&probe);
        let out = run(cmd, true, DISTINCT, Duration::from_secs(180));
        assert_eq!(out.code, Some(0), "{}: {out:?}", jdk.display());
        let lines = parse(&out.stdout);
        for name in ["java-socket", "java-accepted", "java-channel"] {
            let l = line(&lines, name);
            assert_eq!(
                (l.get("ka"), l.get("idle"), l.get("intvl"), l.get("cnt")),
                ("true", "73", "11", "7"),
                "{} {name}",
                jdk.display()
            );
        }
        // Bare, the same program sees the kernel's defaults: the preload did it.
        let mut cmd = Command::new(jdk.join("bin/java"));
        cmd.arg(&probe);
        let bare = run(cmd, false, &[], Duration::from_secs(180));
        let l = line(&parse(&bare.stdout), "java-socket").clone();
        assert_eq!(l.get("ka"), "false", "{}", jdk.display());
        eprintln!("{}: configured", jdk.display());
    }
}

fn getsockopt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int) -> libc::c_int {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: pointers to a live c_int and its length.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
    v
}

/// The socket of process `pid` whose local port is `port`, duplicated into this process with
/// pidfd_getfd (Linux 5.6+; needs ptrace rights over `pid`, which a parent as root has).
fn socket_of(pid: u32, port: u16) -> OwnedFd {
    let mut inode = None;
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap();
        for row in text.lines().skip(1) {
            let cols: Vec<_> = row.split_whitespace().collect();
            let local_port = cols[1].rsplit(':').next().unwrap();
            if u16::from_str_radix(local_port, 16) == Ok(port) && cols[3] == "01" {
                inode = Some(cols[9].to_string());
            }
        }
    }
    let inode = inode.unwrap_or_else(|| panic!("no established socket on port {port} in {pid}"));
    let target = format!("socket:[{inode}]");
    let fd = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == target.as_str()))
        .and_then(|e| e.file_name().to_str()?.parse::<libc::c_int>().ok())
        .unwrap_or_else(|| panic!("{target} is not among {pid}'s descriptors"));
    // SAFETY: plain system calls; the results are checked before use.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) as libc::c_int;
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        let pidfd = OwnedFd::from_raw_fd(pidfd);
        let dup = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) as libc::c_int;
        assert!(dup >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
        OwnedFd::from_raw_fd(dup)
    }
}

/// What the unmodified HttpURLConnection client's connection looked like from outside while it
/// waited for the answer: (keep-alive, idle, interval, count, user timeout ms, `ss -tnoi` line).
fn java_client_seen_from_outside(jdk: &Path, preload: bool) -> (i32, i32, i32, i32, i32, String) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_port = server.local_addr().unwrap().port();
    let (peer_tx, peer_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let http = thread::spawn(move || {
        let (stream, peer) = server.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut reader = BufReader::new(&stream);
        let mut header = String::new();
        // Bounded: at most 100 header lines.
        for _ in 0..100 {
            header.clear();
            if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                break;
            }
        }
        peer_tx.send(peer.port()).unwrap();
        // Answer only once the test has looked at the waiting client's socket.
        let _ = go_rx.recv_timeout(Duration::from_secs(60));
        let mut w = &stream;
        let _ =
            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
    });
    let mut cmd = Command::new(jdk.join("bin/java"));
    cmd.arg(repo().join("e2e/clients/PlainJavaClient.java"));
    let url = format!("http://127.0.0.1:{server_port}/slow?seconds=1");
    let mut env = vec![("LAB_URL", url.as_str()), ("LAB_DEADLINE", "60")];
    env.extend_from_slice(DISTINCT);
    let client = spawn(cmd, preload, &env);
    let port = peer_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the Java client connected");
    let sock = socket_of(client.child.id(), port);
    let seen = (
        getsockopt(&sock, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        getsockopt(&sock, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
        getsockopt(&sock, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
        getsockopt(&sock, libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
        getsockopt(&sock, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
    );
    let ss = Command::new("ss")
        .args(["-tnoi", "state", "established"])
        .arg(format!("( sport = :{port} )"))
        .output()
        .expect("ss (iproute2)");
    let ss = String::from_utf8_lossy(&ss.stdout).into_owned();
    drop(sock);
    go_tx.send(()).unwrap();
    let out = client.finish(Duration::from_secs(120));
    http.join().unwrap();
    assert_eq!(out.code, Some(0), "the client got its answer: {out:?}");
    (seen.0, seen.1, seen.2, seen.3, seen.4, ss)
}

#[test]
#[ignore = "needs JDKs and ss; run by scripts/test.d/50-preload.sh"]
fn java_http_url_connection_is_configured_seen_from_outside() {
    for jdk in jdks() {
        let (ka, idle, intvl, cnt, ut, ss) = java_client_seen_from_outside(&jdk, true);
        assert_eq!(
            (ka, idle, intvl, cnt, ut),
            (1, 73, 11, 7, 23456),
            "{}",
            jdk.display()
        );
        assert!(
            ss.contains("timer:(keepalive,"),
            "{}: ss: {ss}",
            jdk.display()
        );
        let (ka, .., ss) = java_client_seen_from_outside(&jdk, false);
        assert_eq!(ka, 0, "{}: bare client has keep-alive off", jdk.display());
        assert!(!ss.contains("keepalive"), "{}: ss: {ss}", jdk.display());
        eprintln!("{}: configured", jdk.display());
    }
}
