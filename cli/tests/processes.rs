//! The `tcp-keepalive` command against real processes.
//!
//! A child process (this test binary started again with `TCPKA_TEST_CHILD=1`) holds TCP
//! connections with known, distinct keep-alive settings (an IPv4 listener, a client connected to
//! it and the accepted socket; the same over IPv6 with keep-alive off), plus a UDP socket, a
//! Unix socket pair and a file. On `dump` it prints its own `getsockopt` readings, so every change
//! the command makes is checked from inside the process that owns the sockets.
//!
//! Its own runner (`harness = false`): the error cases change uid, capabilities and seccomp
//! filters of the command's process, and the whole file needs root (pidfd_getfd on another
//! process, setuid). Without root it skips with the reason, and fails under CI=true.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The command under test: `TCPKA_CLI` (the stage points it at the release build), else the
/// debug build cargo made for these tests.
fn cli_exe() -> PathBuf {
    std::env::var_os("TCPKA_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tcp-keepalive")))
}
const NOBODY: u32 = 65534;

// ---------------------------------------------------------------- the child process

fn raw_get(fd: i32, level: i32, name: i32) -> i64 {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into an int we own.
    let r = unsafe { libc::getsockopt(fd, level, name, &mut v as *mut _ as *mut _, &mut len) };
    if r == 0 {
        i64::from(v)
    } else {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

fn child_main() {
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use tcp_keepalive::KeepAlive;

    // Bounded: the child ends by itself even if the test dies.
    // SAFETY: alarm has no preconditions.
    unsafe { libc::alarm(120) };
    let ka = |i: u64, n: u64, c: u32, ut: Option<u64>| {
        let k = KeepAlive::new(Duration::from_secs(i), Duration::from_secs(n), c).unwrap();
        match ut {
            Some(ms) => k.with_user_timeout(Duration::from_millis(ms)).unwrap(),
            None => k,
        }
    };
    let l4 = TcpListener::bind("127.0.0.1:0").unwrap();
    ka(101, 11, 3, Some(7001)).apply(&l4).unwrap();
    let c4 = TcpStream::connect(l4.local_addr().unwrap()).unwrap();
    ka(202, 22, 4, None).apply(&c4).unwrap();
    let (a4, _) = l4.accept().unwrap();
    ka(303, 33, 5, Some(9003)).apply(&a4).unwrap();
    let l6 = TcpListener::bind("[::1]:0").unwrap();
    let c6 = TcpStream::connect(l6.local_addr().unwrap()).unwrap();
    ka(404, 44, 7, Some(11005)).apply(&c6).unwrap();
    let (a6, _) = l6.accept().unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (ux1, ux2) = UnixStream::pair().unwrap();
    let file = std::fs::File::open("/dev/null").unwrap();

    let tcp = [
        ("l4", l4.as_raw_fd()),
        ("c4", c4.as_raw_fd()),
        ("a4", a4.as_raw_fd()),
        ("l6", l6.as_raw_fd()),
        ("c6", c6.as_raw_fd()),
        ("a6", a6.as_raw_fd()),
    ];
    let other = [
        ("udp", udp.as_raw_fd()),
        ("ux1", ux1.as_raw_fd()),
        ("ux2", ux2.as_raw_fd()),
    ];
    let mut info = serde_json::Map::new();
    for (name, fd) in tcp.iter().chain(&other) {
        info.insert(name.to_string(), json!(fd));
    }
    info.insert("file".into(), json!(file.as_raw_fd()));
    info.insert("port4".into(), json!(l4.local_addr().unwrap().port()));
    info.insert("port6".into(), json!(l6.local_addr().unwrap().port()));
    info.insert("c4_port".into(), json!(c4.local_addr().unwrap().port()));
    info.insert("c6_port".into(), json!(c6.local_addr().unwrap().port()));
    println!("{}", Value::Object(info));

    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "dump" => {
                let mut out = serde_json::Map::new();
                for (name, fd) in tcp {
                    out.insert(
                        name.into(),
                        json!({
                            "keepalive": raw_get(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
                            "idle": raw_get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
                            "interval": raw_get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
                            "count": raw_get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
                            "user_timeout": raw_get(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
                        }),
                    );
                }
                for (name, fd) in other {
                    out.insert(
                        name.into(),
                        json!({ "keepalive": raw_get(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE) }),
                    );
                }
                println!("{}", Value::Object(out));
            }
            _ => break,
        }
    }
}

/// The child, seen from the test.
struct Held {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    info: Value,
}

impl Held {
    fn spawn(as_nobody: bool) -> Held {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new(if as_nobody { for_nobody(&exe) } else { exe });
        cmd.env("TCPKA_TEST_CHILD", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if as_nobody {
            // SAFETY: become_nobody makes only async-signal-safe system calls.
            unsafe {
                cmd.pre_exec(become_nobody);
            }
        }
        let mut child = cmd.spawn().expect("starting the child");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        Held {
            child,
            stdin,
            stdout,
            info,
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn fd(&self, name: &str) -> i64 {
        self.info[name].as_i64().unwrap()
    }

    fn port(&self, name: &str) -> u64 {
        self.info[name].as_u64().unwrap()
    }

    /// The child's own getsockopt readings.
    fn dump(&mut self) -> Value {
        writeln!(self.stdin, "dump").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// keepalive (0/1), idle s, interval s, count, user timeout ms (0: unset).
type Reading = (i64, i64, i64, i64, i64);

/// The settings the child gave each socket: keepalive, idle, interval, count, user timeout ms.
fn initial() -> BTreeMap<&'static str, Reading> {
    BTreeMap::from([
        ("l4", (1, 101, 11, 3, 7001)),
        ("c4", (1, 202, 22, 4, 0)),
        ("a4", (1, 303, 33, 5, 9003)),
        ("l6", (0, 7200, 75, 9, 0)),
        ("c6", (1, 404, 44, 7, 11005)),
        ("a6", (0, 7200, 75, 9, 0)),
    ])
}

fn reading(dump: &Value, name: &str) -> Reading {
    let d = &dump[name];
    let g = |k: &str| {
        d[k].as_i64()
            .unwrap_or_else(|| panic!("{name}.{k} in {dump}"))
    };
    (
        g("keepalive"),
        g("idle"),
        g("interval"),
        g("count"),
        g("user_timeout"),
    )
}

/// Every TCP socket of the dump as expected, where `changed` overrides `initial()`; the non-TCP
/// sockets still without SO_KEEPALIVE.
fn expect_dump(dump: &Value, changed: &[(&str, Reading)]) {
    let system = system_defaults();
    for (name, mut want) in initial() {
        if want.0 == 0 {
            want = (0, system.0, system.1, system.2, 0);
        }
        if let Some((_, c)) = changed.iter().find(|(n, _)| *n == name) {
            want = *c;
        }
        assert_eq!(reading(dump, name), want, "socket {name}: {dump}");
    }
    for name in ["udp", "ux1", "ux2"] {
        assert_eq!(dump[name]["keepalive"], json!(0), "{name} touched: {dump}");
    }
}

fn system_defaults() -> (i64, i64, i64) {
    let read = |n: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/tcp_keepalive_{n}"))
            .unwrap()
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    (read("time"), read("intvl"), read("probes"))
}

// ---------------------------------------------------------------- running the command

/// Runs the command (bounded to 30 s), after `setup` in the forked process before exec.
fn cli_with(args: &[&str], setup: Option<fn() -> std::io::Result<()>>) -> Output {
    cli_from(&cli_exe(), args, setup)
}

fn cli_from(exe: &Path, args: &[&str], setup: Option<fn() -> std::io::Result<()>>) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(f) = setup {
        // SAFETY: the closures used only make async-signal-safe system calls.
        unsafe {
            cmd.pre_exec(f);
        }
    }
    let child = cmd.spawn().expect("starting tcp-keepalive");
    let pid = child.id() as libc::pid_t;
    // Read its output while waiting (a long report fills a pipe), bounded to 30 s.
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match result.recv_timeout(Duration::from_secs(30)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on the child we started; it is not reaped yet, so the PID is its.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("tcp-keepalive {args:?} did not finish in 30 s");
        }
    }
}

fn cli(args: &[&str]) -> Output {
    cli_with(args, None)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn expect_ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Expects exit `code` and one stderr line containing every `needles`.
fn expect_fail(out: &Output, code: i32, needles: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {err}",
        text(&out.stdout)
    );
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("tcp-keepalive: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} missing from: {err}");
    }
}

/// The human table's rows, by descriptor.
fn table_rows(stdout: &str) -> BTreeMap<i64, Vec<String>> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("FD "));
    let header = lines.next().unwrap_or_else(|| panic!("no table: {stdout}"));
    assert!(header.starts_with("FD "), "{header}");
    lines
        .map_while(|l| {
            let cells: Vec<String> = l.split_whitespace().map(String::from).collect();
            let fd = cells.first()?.parse::<i64>().ok()?;
            Some((fd, cells))
        })
        .collect()
}

fn json_sockets(stdout: &str) -> BTreeMap<i64, Value> {
    let v: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    v["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["fd"].as_i64().unwrap(), s.clone()))
        .collect()
}

fn ms_text(ms: i64) -> String {
    if ms == 0 {
        "-".into()
    } else {
        format!("{ms}ms")
    }
}

// ---------------------------------------------------------------- the tests

fn inspect_table_reports_every_tcp_socket_exactly() -> Result<(), String> {
    let mut held = Held::spawn(false);
    let out = cli(&["inspect", "--pid", &held.pid()]);
    let stdout = expect_ok(&out);
    let rows = table_rows(&stdout);
    let (p4, p6) = (held.port("port4"), held.port("port6"));
    let c4p = held.port("c4_port");
    let c6p = held.port("c6_port");
    let expected_addr = [
        ("l4", format!("127.0.0.1:{p4}"), "*".to_string(), "LISTEN"),
        (
            "c4",
            format!("127.0.0.1:{c4p}"),
            format!("127.0.0.1:{p4}"),
            "ESTABLISHED",
        ),
        (
            "a4",
            format!("127.0.0.1:{p4}"),
            format!("127.0.0.1:{c4p}"),
            "ESTABLISHED",
        ),
        ("l6", format!("[::1]:{p6}"), "*".to_string(), "LISTEN"),
        (
            "c6",
            format!("[::1]:{c6p}"),
            format!("[::1]:{p6}"),
            "ESTABLISHED",
        ),
        (
            "a6",
            format!("[::1]:{p6}"),
            format!("[::1]:{c6p}"),
            "ESTABLISHED",
        ),
    ];
    let dump = held.dump();
    expect_dump(&dump, &[]);
    let tcp_fds: Vec<i64> = expected_addr.iter().map(|(n, ..)| held.fd(n)).collect();
    let mut listed: Vec<i64> = rows.keys().copied().collect();
    listed.sort_unstable();
    let mut want_fds = tcp_fds.clone();
    want_fds.sort_unstable();
    assert_eq!(listed, want_fds, "only the TCP sockets: {stdout}");
    for (name, local, peer, state) in &expected_addr {
        let row = &rows[&held.fd(name)];
        let (k, i, n, c, ut) = reading(&dump, name);
        let want = vec![
            held.fd(name).to_string(),
            local.clone(),
            peer.clone(),
            state.to_string(),
            if k == 1 { "on" } else { "off" }.to_string(),
            format!("{i}s"),
            format!("{n}s"),
            c.to_string(),
            ms_text(ut),
        ];
        assert_eq!(&row[..9], &want[..], "{name}: {stdout}");
        // Keep-alive timer: pending on connected sockets with keep-alive on, within idle.
        let timer = &row[9];
        if k == 1 && *state == "ESTABLISHED" {
            let secs: f64 = timer.trim_end_matches('s').parse().unwrap();
            assert!(secs > 0.0 && secs <= i as f64, "{name} timer {timer}");
        } else {
            assert_eq!(timer, "-", "{name}: {stdout}");
        }
    }
    Ok(())
}

fn inspect_json_matches_the_childs_getsockopt() -> Result<(), String> {
    let mut held = Held::spawn(false);
    let out = cli(&["inspect", "--pid", &held.pid(), "--json"]);
    let stdout = expect_ok(&out);
    let whole: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(whole["pid"], json!(held.child.id()));
    let sockets = json_sockets(&stdout);
    assert_eq!(sockets.len(), 6, "{stdout}");
    let dump = held.dump();
    for name in initial().keys() {
        let s = &sockets[&held.fd(name)];
        let (k, i, n, c, ut) = reading(&dump, name);
        assert_eq!(
            s["keepalive"],
            json!({
                "enabled": k == 1, "idle_s": i, "interval_s": n, "count": c,
                "user_timeout_ms": if ut == 0 { Value::Null } else { json!(ut) },
            }),
            "{name}"
        );
        let v6 = name.ends_with('6');
        assert_eq!(s["family"], json!(if v6 { "ipv6" } else { "ipv4" }));
        let listening = name.starts_with('l');
        assert_eq!(
            s["state"],
            json!(if listening { "LISTEN" } else { "ESTABLISHED" })
        );
        assert_eq!(s["peer"].is_null(), listening, "{name}: {s}");
        match s["keepalive_timer_left_ms"].as_i64() {
            Some(ms) => {
                assert!(k == 1 && !listening, "{name}: {s}");
                assert!(ms > 0 && ms <= i * 1000, "{name}: {s}");
                assert_eq!(s["timer"], json!("keepalive"));
            }
            None => assert!(k == 0 || listening, "{name} has no timer: {s}"),
        }
    }
    let p4 = held.port("port4");
    assert_eq!(
        sockets[&held.fd("c4")]["peer"],
        json!(format!("127.0.0.1:{p4}"))
    );
    Ok(())
}

fn apply_changes_every_tcp_socket_and_nothing_else() -> Result<(), String> {
    let mut held = Held::spawn(false);
    let out = cli(&[
        "apply",
        "--pid",
        &held.pid(),
        "--idle",
        "7",
        "--interval",
        "3s",
        "--count",
        "2",
        "--user-timeout",
        "4500ms",
        "--json",
    ]);
    let stdout = expect_ok(&out);
    let new = (1, 7, 3, 2, 4500);
    let changed: Vec<(&str, _)> = initial().keys().map(|n| (*n, new)).collect();
    let dump = held.dump();
    expect_dump(&dump, &changed);
    // The report's before and after are what the child had and has.
    let sockets = json_sockets(&stdout);
    assert_eq!(sockets.len(), 6, "{stdout}");
    let system = system_defaults();
    for (name, mut before) in initial() {
        if before.0 == 0 {
            before = (0, system.0, system.1, system.2, 0);
        }
        let s = &sockets[&held.fd(name)];
        let as_tuple = |v: &Value| {
            (
                i64::from(v["enabled"].as_bool().unwrap()),
                v["idle_s"].as_i64().unwrap(),
                v["interval_s"].as_i64().unwrap(),
                v["count"].as_i64().unwrap(),
                v["user_timeout_ms"].as_i64().unwrap_or(0),
            )
        };
        assert_eq!(as_tuple(&s["before"]), before, "{name}: {s}");
        assert_eq!(as_tuple(&s["after"]), new, "{name}: {s}");
        assert!(s["error"].is_null());
    }
    // Read again through the command: the same.
    let again = json_sockets(&expect_ok(&cli(&[
        "inspect",
        "--pid",
        &held.pid(),
        "--json",
    ])));
    for s in again.values() {
        assert_eq!(s["keepalive"]["idle_s"], json!(7));
        assert_eq!(s["keepalive"]["user_timeout_ms"], json!(4500));
    }
    Ok(())
}

fn apply_peer_filter_changes_only_the_matching_connections() -> Result<(), String> {
    let mut held = Held::spawn(false);
    let p4 = held.port("port4");
    // The IPv4 client only: its peer is the listener's address.
    let out = cli(&[
        "apply",
        "--pid",
        &held.pid(),
        "--peer",
        &format!("127.0.0.1:{p4}"),
        "--idle",
        "9",
    ]);
    let stdout = expect_ok(&out);
    let rows = table_rows(&stdout);
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), [held.fd("c4")]);
    let row = &rows[&held.fd("c4")];
    // BEFORE and AFTER columns: "on 202s/22s/4" then "on 9s/10s/6".
    assert_eq!(
        &row[4..],
        ["on", "202s/22s/4", "on", "9s/10s/6"],
        "{stdout}"
    );
    let c4 = (1, 9, 10, 6, 0);
    expect_dump(&held.dump(), &[("c4", c4)]);

    // Address only, IPv6: both connected IPv6 sockets (peers [::1]:port6 and [::1]:c6_port).
    let out = cli(&[
        "apply",
        "--pid",
        &held.pid(),
        "--peer",
        "[::1]",
        "--idle",
        "8",
        "--interval",
        "8",
        "--count",
        "8",
    ]);
    let rows = table_rows(&expect_ok(&out));
    let mut fds: Vec<i64> = rows.keys().copied().collect();
    fds.sort_unstable();
    let mut want = vec![held.fd("c6"), held.fd("a6")];
    want.sort_unstable();
    assert_eq!(fds, want);
    expect_dump(
        &held.dump(),
        &[
            ("c4", c4),
            ("c6", (1, 8, 8, 8, 11005)), // the user timeout is left as it was
            ("a6", (1, 8, 8, 8, 0)),
        ],
    );

    // No match: exit 7, nothing changed.
    let out = cli(&["apply", "--pid", &held.pid(), "--peer", "192.0.2.1"]);
    expect_fail(&out, 7, &["192.0.2.1", "nothing changed"]);
    expect_dump(
        &held.dump(),
        &[
            ("c4", c4),
            ("c6", (1, 8, 8, 8, 11005)),
            ("a6", (1, 8, 8, 8, 0)),
        ],
    );
    Ok(())
}

fn bad_values_exit_2_name_the_value_and_change_nothing() -> Result<(), String> {
    let mut held = Held::spawn(false);
    let pid = held.pid();
    let cases: &[(&[&str], &[&str])] = &[
        (&["--idle", "0"], &["invalid idle", "\"0\"", "1 to 32767"]),
        // One number rule everywhere: no sign, ASCII digits only, too large is out of range.
        (&["--idle", "+60"], &["invalid idle", "\"+60\"", "90s, 2m"]),
        (
            &["--count", "+6"],
            &["invalid count", "\"+6\"", "a whole number from 1 to 127"],
        ),
        (
            &["--idle", "60\u{3000}"],
            &["invalid idle", "\"60\\u{3000}\"", "90s, 2m"],
        ),
        (
            &["--idle", "99999999999999999999"],
            &[
                "invalid idle",
                "\"99999999999999999999\"",
                "1 to 32767 seconds",
            ],
        ),
        (
            &["--count", "99999999999999999999"],
            &[
                "invalid count",
                "\"99999999999999999999\"",
                "1 to 127 probes",
            ],
        ),
        (
            &["--user-timeout", "99999999999999999999h"],
            &[
                "invalid user_timeout",
                "\"99999999999999999999h\"",
                "2147483647",
            ],
        ),
        (
            &["--idle", "soon"],
            &["invalid idle", "\"soon\"", "90s, 2m"],
        ),
        (
            &["--interval", "40000"],
            &["invalid interval", "\"40000\"", "1 to 32767"],
        ),
        (&["--count", "0"], &["invalid count", "\"0\"", "1 to 127"]),
        (
            &["--count", "128"],
            &["invalid count", "\"128\"", "1 to 127"],
        ),
        (&["--count", "-1"], &["invalid count", "\"-1\"", "1 to 127"]),
        (
            &["--user-timeout", "0"],
            &["invalid user_timeout", "\"0\"", "2147483647"],
        ),
        (
            &["--peer", "example.com"],
            &["invalid peer", "\"example.com\"", "IP address"],
        ),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["apply", "--pid", &pid];
        args.extend_from_slice(extra);
        expect_fail(&cli(&args), 2, needles);
        let mut args = vec!["run", "--preload", "/dev/null"];
        if extra[0] == "--peer" {
            continue;
        }
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "true"]);
        expect_fail(&cli(&args), 2, needles);
    }
    // clap's own usage errors share exit 2.
    for pid in ["abc", "0", "-5"] {
        let out = cli(&["inspect", "--pid", pid]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("--pid"), "{}", text(&out.stderr));
    }
    expect_dump(&held.dump(), &[]);
    Ok(())
}

fn a_process_that_is_gone_exits_3() -> Result<(), String> {
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id().to_string();
    gone.wait().unwrap();
    for args in [
        vec!["inspect", "--pid", &pid],
        vec!["apply", "--pid", &pid, "--idle", "5"],
    ] {
        expect_fail(&cli(&args), 3, &[&format!("process {pid} does not exist")]);
    }
    Ok(())
}

fn drop_ptrace_capability() -> std::io::Result<()> {
    // SAFETY: prctl with plain integers. Root's capabilities after exec are bounded by this set.
    if unsafe {
        libc::prctl(libc::PR_CAPBSET_DROP, 19 /* CAP_SYS_PTRACE */, 0, 0, 0)
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn become_nobody() -> std::io::Result<()> {
    // SAFETY: plain system calls on integers.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(NOBODY) != 0
            || libc::setuid(NOBODY) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A copy of `exe` that nobody may run wherever the repository is (a checkout under /root is
/// not): in a 0755 directory of its own under the temporary directory.
fn for_nobody(exe: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tcpka-cli-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join(exe.file_name().unwrap());
    if !copy.exists() {
        std::fs::copy(exe, &copy).unwrap();
    }
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

fn no_permission_exits_4_and_same_user_works() -> Result<(), String> {
    let result = std::panic::catch_unwind(no_permission);
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("tcpka-cli-nobody-{}", std::process::id())),
    );
    result.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn no_permission() -> Result<(), String> {
    let cli_as_nobody = for_nobody(&cli_exe());
    let as_nobody = |args: &[&str]| cli_from(&cli_as_nobody, args, Some(become_nobody));
    // Another user's process: refused.
    let mut held = Held::spawn(false);
    let pid = held.pid();
    let out = as_nobody(&["inspect", "--pid", &pid]);
    expect_fail(&out, 4, &["not permitted", "CAP_SYS_PTRACE", &pid]);
    let out = as_nobody(&["apply", "--pid", &pid, "--idle", "5"]);
    expect_fail(&out, 4, &["not permitted", "CAP_SYS_PTRACE"]);
    expect_dump(&held.dump(), &[]);

    // Root without CAP_SYS_PTRACE on another user's process: refused too.
    let mut theirs = Held::spawn(true);
    let pid = theirs.pid();
    let out = cli_with(
        &["apply", "--pid", &pid, "--idle", "5"],
        Some(drop_ptrace_capability),
    );
    expect_fail(
        &out,
        4,
        &[
            "not permitted",
            "runs as root but without the CAP_SYS_PTRACE capability",
        ],
    );
    assert!(
        !text(&out.stderr).contains("run as root"),
        "{}",
        text(&out.stderr)
    );
    expect_dump(&theirs.dump(), &[]);

    // The remedy: the same user may (where kernel.yama.ptrace_scope allows it).
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok();
    if scope.as_deref().is_none_or(|s| s.trim() == "0") {
        let out = as_nobody(&["apply", "--pid", &pid, "--idle", "5"]);
        expect_ok(&out);
        let changed: Vec<(&str, _)> = initial()
            .into_iter()
            // Only idle given: interval and count take the defaults, the user timeout stays.
            .map(|(n, (.., ut))| (n, (1, 5, 10, 6, ut)))
            .collect();
        expect_dump(&theirs.dump(), &changed);
    }
    Ok(())
}

/// Makes `pidfd_getfd` (438) fail with ENOSYS, as on a kernel before 5.6.
fn hide_pidfd_getfd() -> std::io::Result<()> {
    use libc::{sock_filter, sock_fprog};
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let filter = [
        sock_filter {
            code: LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        sock_filter {
            code: JEQ_K,
            jt: 0,
            jf: 1,
            k: 438,
        },
        sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        },
        sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let prog = sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: prctl calls; the kernel copies the filter.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn kernel_without_pidfd_getfd_exits_5() -> Result<(), String> {
    let mut held = Held::spawn(false);
    let pid = held.pid();
    for args in [
        vec!["inspect", "--pid", &pid],
        vec!["apply", "--pid", &pid, "--idle", "5"],
    ] {
        let out = cli_with(&args, Some(hide_pidfd_getfd));
        expect_fail(&out, 5, &["pidfd_getfd", "Linux 5.6", "tcp-keepalive run"]);
    }
    expect_dump(&held.dump(), &[]);
    // doctor says so too.
    let out = cli_with(&["doctor", "--json"], Some(hide_pidfd_getfd));
    let v: Value = serde_json::from_str(&expect_ok(&out)).unwrap();
    assert_eq!(v["pidfd_getfd"], json!(false));
    let v: Value = serde_json::from_str(&expect_ok(&cli(&["doctor", "--json"]))).unwrap();
    assert_eq!(v["pidfd_getfd"], json!(true));
    Ok(())
}

fn a_process_without_tcp_sockets() -> Result<(), String> {
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let out = cli(&["inspect", "--pid", &pid]);
    let stdout = expect_ok(&out);
    assert!(
        stdout.starts_with(&format!("process {pid} (sleep): 0 TCP sockets")),
        "{stdout}"
    );
    let v: Value =
        serde_json::from_str(&expect_ok(&cli(&["inspect", "--pid", &pid, "--json"]))).unwrap();
    assert_eq!(v["sockets"], json!([]));
    expect_fail(
        &cli(&["apply", "--pid", &pid]),
        7,
        &["has no TCP socket", "nothing changed"],
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    Ok(())
}

fn doctor_reads_the_namespaces_defaults() -> Result<(), String> {
    let out = expect_ok(&cli(&["doctor", "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    let (t, i, p) = system_defaults();
    assert_eq!(
        v["sysctl"],
        json!({"tcp_keepalive_time": t, "tcp_keepalive_intvl": i, "tcp_keepalive_probes": p})
    );
    assert_eq!(v["system_detection_bound_s"], json!(t + i * p));
    let human = expect_ok(&cli(&["doctor"]));
    let row: Vec<&str> = human
        .lines()
        .find(|l| l.starts_with("net.ipv4.tcp_keepalive_time "))
        .unwrap_or_else(|| panic!("{human}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1..3], [t.to_string().as_str(), "s"], "{human}");
    assert!(human.contains("tcp-keepalive apply --pid PID"), "{human}");

    // In a fresh network namespace with other defaults: the verdicts follow them.
    if Command::new("unshare").arg("--version").output().is_err() {
        return Err("unshare (util-linux) not installed".into());
    }
    for (time, aws, azure) in [(300, true, false), (200, true, true), (7200, false, false)] {
        let script = format!(
            "echo {time} > /proc/sys/net/ipv4/tcp_keepalive_time && exec '{}' doctor --json",
            cli_exe().display()
        );
        let out = Command::new("unshare")
            .args(["--net", "sh", "-c", &script])
            .output()
            .unwrap();
        let v: Value = serde_json::from_str(&expect_ok(&out)).unwrap();
        assert_eq!(v["sysctl"]["tcp_keepalive_time"], json!(time));
        let boxes = v["middleboxes"].as_array().unwrap();
        assert_eq!(boxes[0]["idle_timeout_s"], json!(350));
        assert_eq!(boxes[0]["system_defaults_keep_it"], json!(aws), "{v}");
        assert_eq!(boxes[1]["idle_timeout_s"], json!(240));
        assert_eq!(boxes[1]["system_defaults_keep_it"], json!(azure), "{v}");
        assert_eq!(boxes[1]["tcp_keepalive_defaults_keep_it"], json!(true));
    }
    Ok(())
}

fn run_without_the_library_exits_6() -> Result<(), String> {
    expect_fail(
        &cli(&[
            "run",
            "--preload",
            "/nonexistent/libkeepalive.so",
            "--",
            "true",
        ]),
        6,
        &["/nonexistent/libkeepalive.so", "--preload PATH"],
    );
    // A copy of the binary in a directory without the library beside it.
    let dir = tempdir("run-alone");
    let exe = dir.join("tcp-keepalive");
    std::fs::copy(cli_exe(), &exe).unwrap();
    let out = cli_from(&exe, &["run", "--", "true"], None);
    expect_fail(
        &out,
        6,
        &["libkeepalive.so not found", &dir.display().to_string()],
    );
    let _ = std::fs::remove_dir_all(&dir);
    // A command that does not exist: 127.
    if let Some(lib) = preload_library() {
        let out = cli(&[
            "run",
            "--preload",
            lib.to_str().unwrap(),
            "--",
            "/nonexistent/program",
        ]);
        expect_fail(&out, 127, &["/nonexistent/program"]);
    }
    Ok(())
}

/// `run --preload FILE` checks FILE is a preload library this machine can load before the
/// program runs: else exit 6, and the program never ran.
fn run_refuses_a_file_that_is_no_preload_library() -> Result<(), String> {
    let dir = tempdir("run-not-a-library");
    let marker = dir.join("the-program-ran");
    let marker = marker.to_str().unwrap();
    let cli_itself = cli_exe();
    let mut cases: Vec<(String, &str)> = vec![
        ("/etc/passwd".into(), "not an ELF file"),
        (
            cli_itself.to_str().unwrap().into(),
            "does not export socket()",
        ),
    ];
    // glibc exports socket() too, but it is not ours: refused for lack of the preload's marker.
    let libc = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
    ]
    .into_iter()
    .find(|p| Path::new(p).is_file());
    match libc {
        Some(libc) => cases.push((libc.into(), "exports socket() but is not tcp-keepalive's")),
        None => println!("  (no libc.so.6 at the Debian paths: the libc case is not run)"),
    }
    // A shared object of another architecture, where the cross toolchain put one.
    let foreign = if cfg!(target_arch = "x86_64") {
        "/usr/aarch64-linux-gnu/lib/libc.so.6"
    } else {
        "/usr/x86_64-linux-gnu/lib/libc.so.6"
    };
    if Path::new(foreign).is_file() {
        cases.push((foreign.into(), "an ELF file for"));
    } else {
        println!("  (no {foreign}: the other-architecture case is not run)");
    }
    for (file, why) in &cases {
        let out = cli(&["run", "--preload", file, "--", "touch", marker]);
        expect_fail(&out, 6, &[file, "is not a loadable preload library", why]);
        assert!(!Path::new(marker).exists(), "{file}: the program ran");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `run` checks the environment the program inherits as the library will read it, the operator
/// switches too: an invalid or non-UTF-8 value exits 2 and the program never runs.
fn run_refuses_invalid_inherited_operator_variables() -> Result<(), String> {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempdir("run-bad-env");
    let marker = dir.join("the-program-ran");
    let cases: [(&str, &OsStr, &str); 4] = [
        (
            "TCP_KEEPALIVE_LOG",
            OsStr::new("2"),
            "invalid TCP_KEEPALIVE_LOG: \"2\"",
        ),
        (
            "TCP_KEEPALIVE_LOG",
            OsStr::from_bytes(b"1\xff"),
            "invalid TCP_KEEPALIVE_LOG: \"1\\u{fffd}\"",
        ),
        (
            "TCP_KEEPALIVE_ENFORCE",
            OsStr::new("maybe"),
            "invalid TCP_KEEPALIVE_ENFORCE: \"maybe\" (allowed: on or off",
        ),
        (
            "TCP_KEEPIDLE",
            OsStr::new("+5"),
            "invalid TCP_KEEPIDLE: \"+5\"",
        ),
    ];
    for (name, value, needle) in cases {
        let out = Command::new(cli_exe())
            .args(["run", "--preload", "/dev/null", "--", "touch"])
            .arg(&marker)
            .env(name, value)
            .output()
            .unwrap();
        expect_fail(&out, 2, &[needle]);
        assert!(!marker.exists(), "{name}: the program ran");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `inspect --pid 1` as root without CAP_SYS_PTRACE names the missing capability. PID 1 is that
/// of a PID namespace of the test's own (`unshare`), never this machine's init; the command runs
/// there under `setpriv` without CAP_SYS_PTRACE in its bounding set.
fn inspect_pid_1_without_cap_sys_ptrace_names_the_capability() -> Result<(), String> {
    for tool in ["unshare", "setpriv"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Err(format!("{tool} (util-linux) not installed"));
        }
    }
    // sh stays PID 1 (the command is not its last one, so it is not exec'd in its place).
    let script = format!(
        "setpriv --bounding-set=-sys_ptrace '{}' inspect --pid 1; status=$?; exit $status",
        cli_exe().display()
    );
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script])
        .output()
        .unwrap();
    expect_fail(
        &out,
        4,
        &[
            "not permitted to read the descriptors of process 1",
            "runs as root but without the CAP_SYS_PTRACE capability",
        ],
    );
    assert!(
        !text(&out.stderr).contains("run as root"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

// ---------------------------------------------------------------- many sockets

/// Sockets the big child holds: a listener and this many connections' two ends.
const CONNECTIONS: usize = 2500;

/// The big child (`TCPKA_TEST_CHILD=many`): a listener and 2500 loopback connections, 5001 TCP
/// sockets. On `dump` it prints how many of its sockets read each (keepalive, idle, interval,
/// count) with its own getsockopt.
fn many_child_main() {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    // SAFETY: alarm has no preconditions.
    unsafe { libc::alarm(120) };
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::with_capacity(2 * CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let client = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        held.push(client);
        held.push(server);
    }
    let mut fds: Vec<i32> = held.iter().map(|s| s.as_raw_fd()).collect();
    fds.push(listener.as_raw_fd());
    println!(
        "{}",
        json!({ "sockets": fds.len(), "max_fd": fds.iter().max() })
    );
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() != "dump" {
            break;
        }
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for &fd in &fds {
            let key = format!(
                "{} {} {} {}",
                raw_get(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
                raw_get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
                raw_get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
                raw_get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
            );
            *counts.entry(key).or_default() += 1;
        }
        println!("{}", json!(counts));
    }
}

/// `ulimit -n 1024`: soft and hard open-file limit 1024 for the command.
fn ulimit_1024() -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 1024,
    };
    // SAFETY: setrlimit with a struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn a_process_with_5000_sockets_under_ulimit_1024() -> Result<(), String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if limit.rlim_max < (2 * CONNECTIONS + 100) as u64 {
        return Err(format!(
            "the hard open-file limit ({}) is too low for a child with {} sockets",
            limit.rlim_max,
            2 * CONNECTIONS + 1
        ));
    }
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("TCPKA_TEST_CHILD", "many")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("starting the big child");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let result = (|| {
        let info: Value = serde_json::from_str(&line).map_err(|e| format!("{e}: {line:?}"))?;
        let total = 2 * CONNECTIONS + 1;
        assert_eq!(info["sockets"], json!(total));
        assert!(info["max_fd"].as_i64().unwrap() > 1024, "{info}");
        let pid = child.id().to_string();
        let mut dump = || {
            writeln!(stdin, "dump").unwrap();
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            serde_json::from_str::<Value>(&line).unwrap()
        };
        let (t, i, p) = system_defaults();
        assert_eq!(dump(), json!({ format!("0 {t} {i} {p}"): total }));

        let out = cli_with(&["inspect", "--pid", &pid, "--json"], Some(ulimit_1024));
        let listed = json_sockets(&expect_ok(&out));
        assert_eq!(
            listed.len(),
            total,
            "inspect listed {} sockets",
            listed.len()
        );
        assert!(listed
            .values()
            .all(|s| s["keepalive"]["enabled"] == json!(false)));
        let human = cli_with(&["inspect", "--pid", &pid], Some(ulimit_1024));
        assert!(
            expect_ok(&human).contains(&format!("{total} TCP sockets")),
            "{}",
            text(&human.stdout)
        );

        let out = cli_with(
            &[
                "apply",
                "--pid",
                &pid,
                "--idle",
                "33",
                "--interval",
                "3",
                "--count",
                "3",
            ],
            Some(ulimit_1024),
        );
        let stdout = expect_ok(&out);
        assert!(
            stdout.contains(&format!("on {total} of {total} TCP sockets")),
            "{stdout}"
        );
        // Every socket changed, read back inside the process that owns them.
        assert_eq!(dump(), json!({ "1 33 3 3": total }));
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

// ---------------------------------------------------------------- MPTCP, failures by descriptor

/// A Python child holding an MPTCP listener, client and accepted socket; prints their fds, then
/// on each line of stdin its own readings (keepalive idle interval count per socket).
const MPTCP_CHILD: &str = r#"
import json, socket, sys
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
l.bind(("127.0.0.1", 0)); l.listen()
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
c.connect(l.getsockname()); a, _ = l.accept()
socks = {"l": l, "c": c, "a": a}
print(json.dumps({k: s.fileno() for k, s in socks.items()}), flush=True)
for line in sys.stdin:
    print(json.dumps({k: [s.getsockopt(1, 9), s.getsockopt(6, 4), s.getsockopt(6, 5),
                          s.getsockopt(6, 6)] for k, s in socks.items()}), flush=True)
"#;

struct PyChild {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    fds: Value,
}

impl PyChild {
    fn spawn(program: &str) -> Result<PyChild, String> {
        let mut child = Command::new("timeout")
            .args(["60", "python3", "-c", program])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("python3: {e}"))?;
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let fds =
            serde_json::from_str(&line).map_err(|e| format!("the child said {line:?}: {e}"))?;
        Ok(PyChild {
            child,
            stdin,
            stdout,
            fds,
        })
    }

    /// The PID of python3 (the child of `timeout`).
    fn pid(&self) -> String {
        let children = format!("/proc/{0}/task/{0}/children", self.child.id());
        std::fs::read_to_string(children)
            .unwrap()
            .trim()
            .to_string()
    }

    fn readings(&mut self) -> Value {
        writeln!(self.stdin, "read").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for PyChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mptcp_sockets_are_listed_and_changed_like_tcp() -> Result<(), String> {
    // SAFETY: plain socket(2), closed at once.
    let probe = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 262) };
    if probe < 0 {
        return Err(format!(
            "this kernel has no MPTCP ({}; sysctl net.mptcp.enabled)",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: closing the descriptor just made.
    unsafe { libc::close(probe) };
    let mut held = PyChild::spawn(MPTCP_CHILD)?;
    let pid = held.pid();
    let fds: Vec<i64> = ["l", "c", "a"]
        .iter()
        .map(|k| held.fds[k].as_i64().unwrap())
        .collect();
    let listed = json_sockets(&expect_ok(&cli(&["inspect", "--pid", &pid, "--json"])));
    let mut listed_fds: Vec<i64> = listed.keys().copied().collect();
    listed_fds.sort_unstable();
    let mut want = fds.clone();
    want.sort_unstable();
    assert_eq!(listed_fds, want, "every MPTCP socket is listed");
    expect_ok(&cli(&[
        "apply",
        "--pid",
        &pid,
        "--idle",
        "21",
        "--interval",
        "4",
        "--count",
        "2",
    ]));
    assert_eq!(
        held.readings(),
        json!({"l": [1, 21, 4, 2], "c": [1, 21, 4, 2], "a": [1, 21, 4, 2]})
    );
    // MPTCP has no TCP_USER_TIMEOUT: each socket fails whole, and is left as it was.
    let out = cli(&[
        "apply",
        "--pid",
        &pid,
        "--idle",
        "50",
        "--user-timeout",
        "5s",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    for (fd, s) in json_sockets(&text(&out.stdout)) {
        let error = s["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(
                "TCP_USER_TIMEOUT is not supported by this system or this kind of socket"
            ),
            "fd {fd}: {s}"
        );
    }
    assert_eq!(
        held.readings(),
        json!({"l": [1, 21, 4, 2], "c": [1, 21, 4, 2], "a": [1, 21, 4, 2]}),
        "all or nothing through the duplicate"
    );
    Ok(())
}

/// Makes every `setsockopt(_, IPPROTO_TCP, TCP_KEEPCNT, ...)` of the command fail with EPERM.
fn deny_keepcnt() -> std::io::Result<()> {
    use libc::{sock_filter, sock_fprog};
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    // struct seccomp_data: nr at 0, args[i] at 16 + 8 i (low half first: 64-bit little-endian).
    let filter = [
        insn(LD_W_ABS, 0, 0, 0),
        insn(JEQ_K, 0, 5, libc::SYS_setsockopt as u32),
        insn(LD_W_ABS, 0, 0, 24),
        insn(JEQ_K, 0, 3, libc::IPPROTO_TCP as u32),
        insn(LD_W_ABS, 0, 0, 32),
        insn(JEQ_K, 0, 1, libc::TCP_KEEPCNT as u32),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: prctl calls; the kernel copies the filter.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A socket that fails is reported with the target's descriptor number, never the command's
/// duplicate's, and is left as it was.
fn a_failing_socket_is_named_by_the_targets_descriptor() -> Result<(), String> {
    if !cfg!(all(
        target_os = "linux",
        target_endian = "little",
        target_pointer_width = "64"
    )) {
        return Err(format!(
            "{NOT_APPLICABLE}the seccomp offsets are for 64-bit little-endian"
        ));
    }
    let mut held = Held::spawn(false);
    let pid = held.pid();
    let out = cli_with(&["apply", "--pid", &pid, "--idle", "9"], Some(deny_keepcnt));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rows = table_rows(&stdout);
    assert_eq!(rows.len(), 6, "{stdout}");
    for (fd, cells) in &rows {
        let row = cells.join(" ");
        assert!(
            row.contains(&format!("FAILED: TCP_KEEPCNT on descriptor {fd} failed")),
            "{row}"
        );
    }
    // The duplicates' numbers are small and the target's are not all the same as them: check
    // that no row names a descriptor other than its own.
    for (fd, cells) in &rows {
        for (i, w) in cells.iter().enumerate() {
            if w == "descriptor" {
                assert_eq!(cells.get(i + 1), Some(&fd.to_string()), "{cells:?}");
            }
        }
    }
    expect_dump(&held.dump(), &[]);
    Ok(())
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tcpka-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// libkeepalive.so: `TCPKA_PRELOAD`, else next to the command (cargo builds it there for the
/// workspace's tests), else in target/release.
fn preload_library() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TCPKA_PRELOAD") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "TCPKA_PRELOAD={} is no file", p.display());
        return Some(p);
    }
    let exe = cli_exe();
    let dir = exe.parent()?;
    [
        dir.join("libkeepalive.so"),
        dir.join("../release/libkeepalive.so"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

fn run_preloads_the_library_and_passes_the_status_through() -> Result<(), String> {
    let Some(lib) = preload_library() else {
        // `cargo test` does not build the preload cdylib; the 60-cli stage builds it and runs this
        // test again with TCPKA_PRELOAD set, where a missing library fails.
        return Err(format!(
            "{NOT_APPLICABLE}libkeepalive.so is not built here (scripts/test.sh cli runs this with it)"
        ));
    };
    let lib = lib.to_str().unwrap().to_string();
    // A program that makes a TCP socket with libc's socket() and prints what the kernel says.
    let probe = "import socket; s = socket.socket(); print(s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), s.getsockopt(6, 4), s.getsockopt(6, 5), s.getsockopt(6, 6), s.getsockopt(6, 18))";
    if Command::new("python3").arg("-c").arg("1").output().is_err() {
        return Err("python3 not installed".into());
    }
    let out = cli(&[
        "run",
        "--preload",
        &lib,
        "--idle",
        "17",
        "--interval",
        "4",
        "--count",
        "5",
        "--user-timeout",
        "2500ms",
        "--",
        "python3",
        "-c",
        probe,
    ]);
    assert_eq!(expect_ok(&out).trim(), "1 17 4 5 2500");
    // Found next to the command without --preload (the build layout), defaults then.
    if cli_exe().parent().map(|d| d.join("libkeepalive.so")) == Some(PathBuf::from(&lib)) {
        let out = cli(&["run", "--", "python3", "-c", probe]);
        assert_eq!(expect_ok(&out).trim(), "1 60 10 6 0");
    }
    // Exit status and signals are the program's own.
    let out = cli(&["run", "--preload", &lib, "--", "sh", "-c", "exit 42"]);
    assert_eq!(out.status.code(), Some(42));
    let out = cli(&["run", "--preload", &lib, "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM));
    Ok(())
}

// ---------------------------------------------------------------- the runner

#[path = "../../core/tests/harness/mod.rs"]
mod harness;

use harness::{Case as Test, NOT_APPLICABLE};

fn main() {
    match std::env::var("TCPKA_TEST_CHILD").as_deref() {
        Ok("many") => return many_child_main(),
        Ok(_) => return child_main(),
        Err(_) => {}
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        harness::skip_all("the tcp-keepalive command tests need root (pidfd_getfd on another process, setuid to nobody)");
    }
    let tests: &[Test] = &[
        (
            "inspect_table_reports_every_tcp_socket_exactly",
            inspect_table_reports_every_tcp_socket_exactly,
        ),
        (
            "inspect_json_matches_the_childs_getsockopt",
            inspect_json_matches_the_childs_getsockopt,
        ),
        (
            "apply_changes_every_tcp_socket_and_nothing_else",
            apply_changes_every_tcp_socket_and_nothing_else,
        ),
        (
            "apply_peer_filter_changes_only_the_matching_connections",
            apply_peer_filter_changes_only_the_matching_connections,
        ),
        (
            "bad_values_exit_2_name_the_value_and_change_nothing",
            bad_values_exit_2_name_the_value_and_change_nothing,
        ),
        (
            "a_process_that_is_gone_exits_3",
            a_process_that_is_gone_exits_3,
        ),
        (
            "no_permission_exits_4_and_same_user_works",
            no_permission_exits_4_and_same_user_works,
        ),
        (
            "kernel_without_pidfd_getfd_exits_5",
            kernel_without_pidfd_getfd_exits_5,
        ),
        (
            "a_process_without_tcp_sockets",
            a_process_without_tcp_sockets,
        ),
        (
            "doctor_reads_the_namespaces_defaults",
            doctor_reads_the_namespaces_defaults,
        ),
        (
            "run_without_the_library_exits_6",
            run_without_the_library_exits_6,
        ),
        (
            "run_preloads_the_library_and_passes_the_status_through",
            run_preloads_the_library_and_passes_the_status_through,
        ),
        (
            "run_refuses_a_file_that_is_no_preload_library",
            run_refuses_a_file_that_is_no_preload_library,
        ),
        (
            "run_refuses_invalid_inherited_operator_variables",
            run_refuses_invalid_inherited_operator_variables,
        ),
        (
            "inspect_pid_1_without_cap_sys_ptrace_names_the_capability",
            inspect_pid_1_without_cap_sys_ptrace_names_the_capability,
        ),
        (
            "a_process_with_5000_sockets_under_ulimit_1024",
            a_process_with_5000_sockets_under_ulimit_1024,
        ),
        (
            "mptcp_sockets_are_listed_and_changed_like_tcp",
            mptcp_sockets_are_listed_and_changed_like_tcp,
        ),
        (
            "a_failing_socket_is_named_by_the_targets_descriptor",
            a_failing_socket_is_named_by_the_targets_descriptor,
        ),
    ];
    harness::run(tests);
}
