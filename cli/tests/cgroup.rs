//! The kernel door (`tcp-keepalive cgroup ...`) on real cgroups and real BPF programs.
//!
//! Each case makes its own cgroup under the cgroup v2 mount (found in /proc/mounts) and its own
//! pin root under /sys/fs/bpf, both named after this test's PID, and a `Scratch` guard removes
//! them (children killed, links and pins removed, cgroups rmdir'ed) even when the case fails.
//! Processes join the cgroup before they create any socket (a `pre_exec` write to
//! `cgroup.procs`) and report their own `getsockopt` readings: a child of this binary
//! (`TCPKA_CGROUP_CHILD=1`) and a static Go program.
//!
//! Its own runner (`harness = false`): it needs root (cgroups, BPF). Without root, BPF or
//! cgroup v2 it skips with the reason, and fails under CI=true.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../../core/tests/harness/mod.rs"]
mod harness;

fn cli_exe() -> PathBuf {
    std::env::var_os("TCPKA_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tcp-keepalive")))
}
const NOBODY: u32 = 65534;
const SOL_SOCKET: i32 = libc::SOL_SOCKET;
const SO_KEEPALIVE: i32 = libc::SO_KEEPALIVE;
const TCP: i32 = libc::IPPROTO_TCP;
const KEEPIDLE: i32 = libc::TCP_KEEPIDLE;
const KEEPINTVL: i32 = libc::TCP_KEEPINTVL;
const KEEPCNT: i32 = libc::TCP_KEEPCNT;
const USER_TIMEOUT: i32 = libc::TCP_USER_TIMEOUT;

// ---------------------------------------------------------------- the child process

/// `getsockopt` as an int, or `-errno`.
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

/// `setsockopt` of an int with `len` bytes of buffer (the int first, zeros after): 0 or `-errno`.
fn raw_set(fd: i32, level: i32, name: i32, value: i32, len: usize) -> i64 {
    let mut buf = vec![0u8; len.max(4)];
    buf[..4].copy_from_slice(&value.to_ne_bytes());
    // SAFETY: setsockopt from a buffer we own, at most its size.
    let r =
        unsafe { libc::setsockopt(fd, level, name, buf.as_ptr().cast(), len as libc::socklen_t) };
    if r == 0 {
        0
    } else {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// [SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT].
fn readings(fd: i32) -> Vec<i64> {
    vec![
        raw_get(fd, SOL_SOCKET, SO_KEEPALIVE),
        raw_get(fd, TCP, KEEPIDLE),
        raw_get(fd, TCP, KEEPINTVL),
        raw_get(fd, TCP, KEEPCNT),
        raw_get(fd, TCP, USER_TIMEOUT),
    ]
}

/// The child: one JSON line per command on stdin.
/// `pair4` / `pair6`: a listener, a client connected to it and the accepted socket; prints
/// `{"id": N, "client": readings, "server": readings}`. `udp`: a UDP socket's SO_KEEPALIVE.
/// `read N`: the pair's readings again. `set N LEVEL NAME VALUE LEN`: a setsockopt on the
/// client, `{"ret": 0 or -errno, "client": readings}`.
fn child_main() {
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::fd::AsRawFd;
    // SAFETY: alarm has no preconditions; the child ends by itself if the test dies.
    unsafe { libc::alarm(120) };
    let mut pairs: Vec<(TcpListener, TcpStream, TcpStream)> = Vec::new();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            [cmd @ ("pair4" | "pair6")] => {
                let l = TcpListener::bind(if *cmd == "pair4" {
                    "127.0.0.1:0"
                } else {
                    "[::1]:0"
                })
                .unwrap();
                let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
                let (a, _) = l.accept().unwrap();
                let v = serde_json::json!({
                    "id": pairs.len(),
                    "client": readings(c.as_raw_fd()),
                    "server": readings(a.as_raw_fd()),
                    "listener": readings(l.as_raw_fd()),
                });
                pairs.push((l, c, a));
                v
            }
            ["udp"] => {
                let u = UdpSocket::bind("127.0.0.1:0").unwrap();
                serde_json::json!({ "keepalive": raw_get(u.as_raw_fd(), SOL_SOCKET, SO_KEEPALIVE) })
            }
            ["read", n] => {
                let (_, c, a) = &pairs[n.parse::<usize>().unwrap()];
                serde_json::json!({ "client": readings(c.as_raw_fd()), "server": readings(a.as_raw_fd()) })
            }
            ["set", n, level, name, value, len] => {
                let (_, c, _) = &pairs[n.parse::<usize>().unwrap()];
                let fd = c.as_raw_fd();
                let ret = raw_set(
                    fd,
                    level.parse().unwrap(),
                    name.parse().unwrap(),
                    value.parse().unwrap(),
                    len.parse().unwrap(),
                );
                serde_json::json!({
                    "ret": ret,
                    "client": readings(fd),
                    "nodelay": raw_get(fd, TCP, libc::TCP_NODELAY),
                    "value": raw_get(fd, level.parse().unwrap(), name.parse().unwrap()),
                })
            }
            _ => serde_json::json!({ "error": line }),
        };
        writeln!(out, "{reply}").unwrap();
        out.flush().unwrap();
    }
}

/// A child of this binary, in a cgroup from before its first socket.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// Makes `cmd` join `cgroup` between fork and exec: the whole process is inside before it runs.
fn join_cgroup(cmd: &mut Command, cgroup: &Path) {
    let procs =
        std::ffi::CString::new(cgroup.join("cgroup.procs").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: only async-signal-safe calls (open, write, close) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0" moves the writing process.
            let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            libc::close(fd);
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

impl Peer {
    fn start(cgroup: Option<&Path>) -> Peer {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env("TCPKA_CGROUP_CHILD", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(cg) = cgroup {
            join_cgroup(&mut cmd, cg);
        }
        let mut child = cmd.spawn().expect("starting the child");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Peer {
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut reply = String::new();
        self.stdout.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("child said {reply:?}: {e}"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- the scratch cgroup and pins

static SERIAL: AtomicUsize = AtomicUsize::new(0);

/// One case's cgroup and pin root; removed on drop, whatever happened.
struct Scratch {
    cgroup: PathBuf,
    pins: PathBuf,
    /// Commands to run on drop (detaching someone else's programs).
    undo: Vec<Vec<String>>,
}

fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[2] == "cgroup2").then(|| PathBuf::from(f[1]))
    })
}

impl Scratch {
    fn new() -> Scratch {
        let n = SERIAL.fetch_add(1, Ordering::SeqCst);
        let name = format!("tcpka-kernel-test-{}-{n}", std::process::id());
        let cgroup = cgroup2_mount().unwrap().join(&name);
        std::fs::create_dir(&cgroup).expect("creating the test cgroup");
        Scratch {
            cgroup,
            pins: PathBuf::from("/sys/fs/bpf").join(name),
            undo: Vec::new(),
        }
    }

    fn child(&self, name: &str) -> PathBuf {
        let p = self.cgroup.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// The command with this case's pin root.
    fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(args, None)
    }

    fn cli_as(&self, args: &[&str], uid: Option<u32>) -> Output {
        let mut cmd = Command::new(cli_exe());
        cmd.args(args).env("TCP_KEEPALIVE_PIN_ROOT", &self.pins);
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        cmd.output().expect("running tcp-keepalive")
    }

    fn attach(&self, extra: &[&str]) -> String {
        let cg = self.cgroup.to_str().unwrap();
        let mut args = vec!["cgroup", "attach", cg];
        args.extend_from_slice(extra);
        let out = self.cli(&args);
        assert_eq!(code(&out), 0, "attach {extra:?}: {}", text(&out));
        text(&out)
    }

    fn status(&self) -> Value {
        let out = self.cli(&["cgroup", "status", self.cgroup.to_str().unwrap(), "--json"]);
        assert_eq!(code(&out), 0, "status: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// Every cgroup below `dir`, deepest first.
fn cgroup_tree(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                cgroup_tree(&e.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for cmd in &self.undo {
            let _ = Command::new(&cmd[0]).args(&cmd[1..]).output();
        }
        let _ = self.cli(&["cgroup", "detach", self.cgroup.to_str().unwrap()]);
        let mut dirs = Vec::new();
        cgroup_tree(&self.cgroup, &mut dirs);
        let root_procs = cgroup2_mount().unwrap().join("cgroup.procs");
        for dir in &dirs {
            // Processes still inside (a child the case did not end) go back to the root first.
            if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in procs.lines() {
                    let _ = std::fs::write(&root_procs, pid);
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
        if let Ok(entries) = std::fs::read_dir(&self.pins) {
            for e in entries.flatten() {
                if let Ok(inner) = std::fs::read_dir(e.path()) {
                    for f in inner.flatten() {
                        let _ = std::fs::remove_file(f.path());
                    }
                }
                let _ = std::fs::remove_dir(e.path());
                let _ = std::fs::remove_file(e.path());
            }
        }
        let _ = std::fs::remove_dir(&self.pins);
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn system_defaults() -> Vec<i64> {
    let n = |name: &str| -> i64 {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    vec![
        0,
        n("tcp_keepalive_time"),
        n("tcp_keepalive_intvl"),
        n("tcp_keepalive_probes"),
        0,
    ]
}

// ---------------------------------------------------------------- the cases

/// A case passes (`Ok`), panics (fails), or cannot run here (`Err(reason)`: skipped, or failed
/// under CI=true).
type Outcome = Result<(), String>;
/// (level, option, value, optlen, expected return, expected [SO_KEEPALIVE, idle, interval,
/// count, user timeout] afterwards).
type SetCase = (i32, i32, i32, usize, i64, [i64; 5]);
/// A named case.
type Case = (&'static str, fn() -> Outcome);

/// Connect and accept, IPv4 and IPv6, inside; UDP inside and everything outside untouched.
fn new_connections_inside_get_the_settings() -> Outcome {
    let s = Scratch::new();
    let said = s.attach(&[
        "--idle",
        "7",
        "--interval",
        "3",
        "--count",
        "2",
        "--user-timeout",
        "4500ms",
    ]);
    assert!(said.starts_with("attached to "), "{said}");
    let mut inside = Peer::start(Some(&s.cgroup));
    let want = vec![1, 7, 3, 2, 4500];
    for family in ["pair4", "pair6"] {
        let r = inside.ask(family);
        assert_eq!(ints(&r["client"]), want, "{family} connect: {r}");
        assert_eq!(ints(&r["server"]), want, "{family} accept: {r}");
        // Listening sockets are not seen by sock_ops: the system's values.
        assert_eq!(
            ints(&r["listener"]),
            system_defaults(),
            "{family} listener: {r}"
        );
    }
    assert_eq!(inside.ask("udp")["keepalive"], 0);
    let mut outside = Peer::start(None);
    let r = outside.ask("pair4");
    assert_eq!(ints(&r["client"]), system_defaults(), "outside: {r}");
    assert_eq!(ints(&r["server"]), system_defaults(), "outside: {r}");
    let st = s.status();
    let a = &st["attachments"][0];
    assert_eq!(
        (
            a["idle_s"].as_i64(),
            a["interval_s"].as_i64(),
            a["count"].as_i64()
        ),
        (Some(7), Some(3), Some(2))
    );
    assert_eq!(a["user_timeout_ms"], 4500);
    assert_eq!(a["enforce"], true);
    // Two pairs: four connections configured at their established callbacks.
    assert_eq!(a["configured"], 4, "{st}");
    Ok(())
}

/// Contract C1, case by case, inside the cgroup; then `--no-enforce` in place.
fn enforcement_caps_the_programs_own_writes() -> Outcome {
    let s = Scratch::new();
    s.attach(&[
        "--idle",
        "7",
        "--interval",
        "3",
        "--count",
        "2",
        "--user-timeout",
        "4500ms",
    ]);
    let mut p = Peer::start(Some(&s.cgroup));
    p.ask("pair4");
    let einval = -i64::from(libc::EINVAL);
    // (level, name, value, optlen, expected return, expected reading of [ka, idle, intvl, cnt, ut])
    let cases: &[SetCase] = &[
        (SOL_SOCKET, SO_KEEPALIVE, 0, 4, 0, [1, 7, 3, 2, 4500]),
        (TCP, KEEPIDLE, 100, 4, 0, [1, 7, 3, 2, 4500]),
        (TCP, KEEPIDLE, 5, 4, 0, [1, 5, 3, 2, 4500]),
        (TCP, KEEPIDLE, 0, 4, einval, [1, 5, 3, 2, 4500]),
        (TCP, KEEPIDLE, 40000, 4, einval, [1, 5, 3, 2, 4500]),
        (TCP, KEEPINTVL, 32767, 4, 0, [1, 5, 3, 2, 4500]),
        (TCP, KEEPINTVL, 1, 4, 0, [1, 5, 1, 2, 4500]),
        (TCP, KEEPCNT, 127, 4, 0, [1, 5, 1, 2, 4500]),
        (TCP, KEEPCNT, 128, 4, einval, [1, 5, 1, 2, 4500]),
        (TCP, USER_TIMEOUT, 10000, 4, 0, [1, 5, 1, 2, 4500]),
        (TCP, USER_TIMEOUT, 100, 4, 0, [1, 5, 1, 2, 100]),
        (TCP, USER_TIMEOUT, 0, 4, 0, [1, 5, 1, 2, 4500]),
        (TCP, USER_TIMEOUT, -1, 4, einval, [1, 5, 1, 2, 4500]),
        // Shorter than an int: untouched, so the kernel's EINVAL.
        (SOL_SOCKET, SO_KEEPALIVE, 0, 2, einval, [1, 5, 1, 2, 4500]),
        // Longer than an int: capped all the same (the kernel reads the first int).
        (TCP, KEEPIDLE, 900, 8, 0, [1, 7, 1, 2, 4500]),
        // Larger than a page: passed through untouched, and it works as the program asked.
        (SOL_SOCKET, SO_KEEPALIVE, 0, 8192, 0, [0, 7, 1, 2, 4500]),
        (SOL_SOCKET, SO_KEEPALIVE, 1, 4, 0, [1, 7, 1, 2, 4500]),
    ];
    for (level, name, value, len, ret, want) in cases {
        let r = p.ask(&format!("set 0 {level} {name} {value} {len}"));
        assert_eq!(
            r["ret"].as_i64(),
            Some(*ret),
            "set {level}/{name}={value} len {len}: {r}"
        );
        assert_eq!(
            ints(&r["client"]),
            want.to_vec(),
            "set {level}/{name}={value} len {len}: {r}"
        );
    }
    // Any other option: untouched.
    let r = p.ask(&format!("set 0 {TCP} {} 1 4", libc::TCP_NODELAY));
    assert_eq!(
        (r["ret"].as_i64(), r["nodelay"].as_i64()),
        (Some(0), Some(1)),
        "{r}"
    );
    assert!(s.status()["attachments"][0]["capped"].as_u64().unwrap() >= 5);

    // The same attachment, enforcement off: the program's writes win.
    let said = s.attach(&[
        "--idle",
        "7",
        "--interval",
        "3",
        "--count",
        "2",
        "--no-enforce",
    ]);
    assert!(said.starts_with("updated "), "{said}");
    for (level, name, value, want) in [
        (SOL_SOCKET, SO_KEEPALIVE, 0, 0),
        (TCP, KEEPIDLE, 100, 100),
        (TCP, KEEPCNT, 9, 9),
    ] {
        let r = p.ask(&format!("set 0 {level} {name} {value} 4"));
        assert_eq!(r["ret"].as_i64(), Some(0), "{r}");
        let got = ints(&r["client"]);
        let idx = match (level, name) {
            (SOL_SOCKET, _) => 0,
            (_, KEEPIDLE) => 1,
            _ => 3,
        };
        assert_eq!(got[idx], want, "no-enforce {level}/{name}={value}: {r}");
    }
    // No user timeout in K: the program's own stays, 0 included.
    s.attach(&["--idle", "7"]);
    let r = p.ask(&format!("set 0 {TCP} {USER_TIMEOUT} 10000 4"));
    assert_eq!(ints(&r["client"])[4], 10000, "{r}");
    let r = p.ask(&format!("set 0 {TCP} {USER_TIMEOUT} 0 4"));
    assert_eq!(ints(&r["client"])[4], 0, "{r}");
    Ok(())
}

/// The shared table of contract C1 (`core/tests/data/enforce-cases.tsv`, core's own cases):
/// each row's requested value set inside the cgroup must do exactly what the expected value
/// does on a socket outside it (the same return, the same value read back).
fn shared_enforce_table() -> Outcome {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/enforce-cases.tsv");
    let Ok(table) = std::fs::read_to_string(&path) else {
        println!(
            "  ({} is not in this tree yet: the table above covers C1)",
            path.display()
        );
        return Ok(());
    };
    let s = Scratch::new();
    let mut p = Peer::start(Some(&s.cgroup));
    p.ask("pair4");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let control = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let control_fd = std::os::fd::AsRawFd::as_raw_fd(&control);
    let mut attached_with = String::new();
    let mut rows = 0;
    for line in table
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = line.split('\t').collect();
        assert!(f.len() >= 9, "bad row {line:?}");
        let settings = format!("{} {} {} {}", f[0], f[1], f[2], f[3]);
        if settings != attached_with {
            let mut args = vec!["--idle", f[0], "--interval", f[1], "--count", f[2]];
            let ut = format!("{}ms", f[3]);
            if f[3] != "-" {
                args.extend(["--user-timeout", ut.as_str()]);
            }
            s.attach(&args);
            attached_with = settings;
        }
        let (level, name): (i32, i32) = (f[4].parse().unwrap(), f[5].parse().unwrap());
        let (requested, expected): (i32, i32) = (f[7].parse().unwrap(), f[8].parse().unwrap());
        let want_ret = raw_set(control_fd, level, name, expected, 4);
        let r = p.ask(&format!("set 0 {level} {name} {requested} 4"));
        assert_eq!(r["ret"].as_i64(), Some(want_ret), "row {line:?}: {r}");
        if want_ret == 0 {
            assert_eq!(
                r["value"].as_i64(),
                Some(raw_get(control_fd, level, name)),
                "row {line:?}: {r}"
            );
        }
        rows += 1;
    }
    assert!(rows > 0, "no rows in {}", path.display());
    println!("  {rows} rows of {}", path.display());
    Ok(())
}

fn go_binary() -> Option<PathBuf> {
    let go = std::env::var_os("GO")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/local/go/bin/go")).filter(|p| p.exists()))
        .or_else(|| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join("go"))
                    .find(|p| p.exists())
            })
        })?;
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let out = target.join("go_keepalive");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/go_keepalive.go");
    let built = Command::new(go)
        .args(["build", "-o"])
        .arg(&out)
        .arg(&src)
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", target.join("go-cache"))
        .env("GOPATH", target.join("go-path"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .output()
        .ok()?;
    assert!(built.status.success(), "go build: {}", text(&built));
    Some(out)
}

fn run_go(go: &Path, cgroup: &Path, mode: &str) -> Value {
    let mut cmd = Command::new(go);
    cmd.arg(mode);
    join_cgroup(&mut cmd, cgroup);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "go program: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A static Go program with Go's own dialer: 15/15/9 capped by enforcement, kept without it;
/// Go's "keep-alive off" still on with enforcement.
fn static_go_program() -> Outcome {
    let Some(go) = go_binary() else {
        return Err("no Go toolchain (set GO, or install it at /usr/local/go)".into());
    };
    let s = Scratch::new();
    s.attach(&["--idle", "5", "--interval", "4", "--count", "3"]);
    let r = run_go(&go, &s.cgroup, "default");
    assert_eq!(ints(&r["dial"]), [1, 5, 4, 3], "Go default, enforced: {r}");
    assert_eq!(
        ints(&r["accept"]),
        [1, 5, 4, 3],
        "Go default, enforced: {r}"
    );
    let r = run_go(&go, &s.cgroup, "disabled");
    assert_eq!(ints(&r["dial"]), [1, 5, 4, 3], "Go disabled, enforced: {r}");
    assert_eq!(
        ints(&r["accept"]),
        [1, 5, 4, 3],
        "Go disabled, enforced: {r}"
    );
    s.attach(&[
        "--idle",
        "5",
        "--interval",
        "4",
        "--count",
        "3",
        "--no-enforce",
    ]);
    let r = run_go(&go, &s.cgroup, "default");
    // Go 1.23+ writes its count (9) too; older Go leaves ours (3).
    let minor: u32 = r["go"]
        .as_str()
        .and_then(|v| v.strip_prefix("go1."))
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Go version in {r}"));
    let go_count = if minor >= 23 { 9 } else { 3 };
    for side in ["dial", "accept"] {
        assert_eq!(
            ints(&r[side]),
            [1, 15, 15, go_count],
            "Go default, not enforced, {side}: {r}"
        );
    }
    // Go's "off" writes nothing at all, so the programs' values stay even without enforcement.
    let r = run_go(&go, &s.cgroup, "disabled");
    assert_eq!(
        ints(&r["dial"]),
        [1, 5, 4, 3],
        "Go disabled, not enforced: {r}"
    );
    Ok(())
}

/// Child cgroups are covered; attaching again updates in place; detach restores the defaults
/// for new connections and leaves open ones as they are.
fn children_reattach_and_detach() -> Outcome {
    let s = Scratch::new();
    let leaf = s.child("pod/container");
    s.attach(&["--idle", "7", "--interval", "3", "--count", "2"]);
    let mut p = Peer::start(Some(&leaf));
    assert_eq!(ints(&p.ask("pair4")["client"]), [1, 7, 3, 2, 0]);
    let said = s.attach(&["--idle", "11", "--interval", "4", "--count", "5"]);
    assert!(said.starts_with("updated "), "{said}");
    let r = p.ask("pair6");
    assert_eq!(ints(&r["client"]), [1, 11, 4, 5, 0], "{r}");
    assert_eq!(ints(&r["server"]), [1, 11, 4, 5, 0], "{r}");
    let out = s.cli(&["cgroup", "detach", s.cgroup.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(ints(&p.ask("pair4")["client"]), system_defaults());
    // Open connections keep what they had; no pins are left.
    assert_eq!(ints(&p.ask("read 1")["client"]), [1, 11, 4, 5, 0]);
    assert!(std::fs::read_dir(&s.pins).unwrap().next().is_none());
    let out = s.cli(&["cgroup", "status", s.cgroup.to_str().unwrap()]);
    assert_eq!(code(&out), 12, "{}", text(&out));
    Ok(())
}

/// The command with only these capabilities (root's bounding set cut down before exec).
fn cli_with_caps(s: &Scratch, args: &[&str], keep: &'static [u32]) -> Output {
    let mut cmd = Command::new(cli_exe());
    cmd.args(args).env("TCP_KEEPALIVE_PIN_ROOT", &s.pins);
    // SAFETY: only prctl between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for cap in 0..64u32 {
                if !keep.contains(&cap) {
                    libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
                }
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

/// CAP_BPF and CAP_NET_ADMIN are enough: the verifier takes both programs without CAP_PERFMON
/// or CAP_SYS_ADMIN (the pin root already exists, as on a node whose bpffs is mounted).
fn least_privileges() -> Outcome {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_BPF: u32 = 39;
    let s = Scratch::new();
    std::fs::create_dir_all(&s.pins).unwrap();
    let cg = s.cgroup.to_str().unwrap();
    let out = cli_with_caps(
        &s,
        &["cgroup", "attach", cg, "--idle", "9"],
        &[CAP_BPF, CAP_NET_ADMIN],
    );
    assert_eq!(
        code(&out),
        0,
        "with CAP_BPF + CAP_NET_ADMIN: {}",
        text(&out)
    );
    let mut p = Peer::start(Some(&s.cgroup));
    assert_eq!(ints(&p.ask("pair4")["client"])[..2], [1, 9]);
    let out = cli_with_caps(&s, &["cgroup", "detach", cg], &[CAP_BPF, CAP_NET_ADMIN]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = cli_with_caps(&s, &["cgroup", "attach", cg], &[CAP_NET_ADMIN]);
    assert_eq!(code(&out), 9, "without CAP_BPF: {}", text(&out));
    assert!(attached_names(&s.cgroup).is_empty());
    Ok(())
}

/// Two cgroups, two attachments, each with its own settings; detaching one leaves the other.
fn one_attachment_per_cgroup() -> Outcome {
    let s = Scratch::new();
    let (a, b) = (s.child("a"), s.child("b"));
    for (dir, idle) in [(&a, "7"), (&b, "11")] {
        let out = s.cli(&["cgroup", "attach", dir.to_str().unwrap(), "--idle", idle]);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    let (mut pa, mut pb) = (Peer::start(Some(&a)), Peer::start(Some(&b)));
    assert_eq!(ints(&pa.ask("pair4")["client"])[..2], [1, 7]);
    assert_eq!(ints(&pb.ask("pair4")["client"])[..2], [1, 11]);
    let out = s.cli(&["cgroup", "status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["attachments"].as_array().map(Vec::len), Some(2), "{v}");
    let out = s.cli(&["cgroup", "detach", a.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(ints(&pa.ask("pair4")["client"]), system_defaults());
    assert_eq!(ints(&pb.ask("pair4")["client"])[..2], [1, 11]);
    // Nested: the kernel runs the inner cgroup's programs first and the outer's after them, so
    // for new connections the outer attachment writes last and wins, while enforcement caps a
    // program's own writes at the smaller of the two (documented in cgroup/README.md).
    s.attach(&["--idle", "20", "--count", "3"]);
    let r = pb.ask("pair4");
    assert_eq!(ints(&r["client"])[..4], [1, 20, 10, 3], "nested: {r}");
    let r = pb.ask(&format!("set 2 {TCP} {KEEPIDLE} 100 4"));
    assert_eq!(ints(&r["client"])[1], 11, "nested enforcement: {r}");
    let out = s.cli(&["cgroup", "detach", b.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    Ok(())
}

/// Attaches of one cgroup at the same moment: one set of programs, the others update it.
fn concurrent_attaches() -> Outcome {
    let s = Scratch::new();
    let cg = s.cgroup.to_str().unwrap().to_string();
    let runs: Vec<Child> = (1..=6)
        .map(|idle| {
            Command::new(cli_exe())
                .args(["cgroup", "attach", &cg, "--idle", &idle.to_string()])
                .env("TCP_KEEPALIVE_PIN_ROOT", &s.pins)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut new = 0;
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out));
        new += usize::from(text(&out).starts_with("attached to "));
    }
    assert_eq!(new, 1, "exactly one attach makes the programs");
    let mut names = attached_names(&s.cgroup);
    names.sort();
    assert_eq!(names, ["enforce_keepalive", "set_keepalive"]);
    let idle = s.status()["attachments"][0]["idle_s"].as_i64().unwrap();
    let mut p = Peer::start(Some(&s.cgroup));
    assert_eq!(ints(&p.ask("pair4")["client"])[1], idle);
    Ok(())
}

/// Connections open before `attach` are changed by its sweep, in the cgroup and below.
fn attach_sweeps_open_connections() -> Outcome {
    let s = Scratch::new();
    let below = s.child("below");
    let mut top = Peer::start(Some(&s.cgroup));
    let mut low = Peer::start(Some(&below));
    assert_eq!(ints(&top.ask("pair4")["client"]), system_defaults());
    assert_eq!(ints(&low.ask("pair6")["server"]), system_defaults());
    let said = s.attach(&["--idle", "9", "--interval", "2", "--count", "4"]);
    // Each child: a listener, a client and an accepted socket.
    assert!(
        said.contains("changed 6 of 6 TCP sockets in 2 processes"),
        "{said}"
    );
    let r = top.ask("read 0");
    assert_eq!(ints(&r["client"]), [1, 9, 2, 4, 0], "{r}");
    assert_eq!(ints(&r["server"]), [1, 9, 2, 4, 0], "{r}");
    assert_eq!(ints(&low.ask("read 0")["client"]), [1, 9, 2, 4, 0]);
    Ok(())
}

fn bpftool(args: &[&str]) -> Output {
    Command::new("bpftool")
        .args(args)
        .output()
        .expect("bpftool (Debian package bpftool)")
}

/// Someone else's programs, pinned in `dir`: compiled with clang, loaded with bpftool.
fn other_programs(dir: &Path) -> (PathBuf, PathBuf) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/other_bpf.c");
    let obj = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("other_bpf.o");
    let asm = [
        "/usr/include/x86_64-linux-gnu",
        "/usr/include/aarch64-linux-gnu",
    ]
    .into_iter()
    .find(|d| Path::new(d).join("asm/types.h").exists())
    .unwrap_or("/usr/include");
    let out = Command::new("clang")
        .args(["-target", "bpf", "-O2", "-g", "-idirafter", asm, "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("clang");
    assert!(out.status.success(), "clang: {}", text(&out));
    std::fs::create_dir_all(dir).unwrap();
    let out = bpftool(&[
        "prog",
        "loadall",
        obj.to_str().unwrap(),
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "bpftool prog loadall: {}", text(&out));
    (dir.join("other_sock_ops"), dir.join("other_setsockopt"))
}

fn attached_names(cgroup: &Path) -> Vec<String> {
    let out = bpftool(&["cgroup", "show", cgroup.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Another program on the same cgroup stays attached through our attach and detach; an
/// exclusive one makes attach fail with nothing of ours left behind.
fn other_programs_stay_attached() -> Outcome {
    let mut s = Scratch::new();
    let other_dir = s.pins.with_file_name(format!(
        "{}-other",
        s.pins.file_name().unwrap().to_str().unwrap()
    ));
    s.undo.push(vec![
        "rm".into(),
        "-rf".into(),
        other_dir.display().to_string(),
    ]);
    let (sock_ops, setsockopt) = other_programs(&other_dir);
    let cg = s.cgroup.to_str().unwrap().to_string();
    let out = bpftool(&[
        "cgroup",
        "attach",
        &cg,
        "sock_ops",
        "pinned",
        sock_ops.to_str().unwrap(),
        "multi",
    ]);
    assert!(out.status.success(), "bpftool attach: {}", text(&out));
    s.undo.push(
        [
            "bpftool",
            "cgroup",
            "detach",
            &cg,
            "sock_ops",
            "pinned",
            sock_ops.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec(),
    );
    s.attach(&["--idle", "7", "--interval", "3", "--count", "2"]);
    let names = attached_names(&s.cgroup);
    assert!(
        names.contains(&"other_sock_ops".to_string())
            && names.contains(&"set_keepalive".to_string()),
        "{names:?}"
    );
    let mut p = Peer::start(Some(&s.cgroup));
    assert_eq!(ints(&p.ask("pair4")["client"]), [1, 7, 3, 2, 0]);
    let out = s.cli(&["cgroup", "detach", &cg]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(attached_names(&s.cgroup), ["other_sock_ops"]);

    // An exclusive setsockopt program: our sock_ops link is made, the setsockopt one refused,
    // and the sock_ops link must be rolled back.
    let out = bpftool(&[
        "cgroup",
        "attach",
        &cg,
        "setsockopt",
        "pinned",
        setsockopt.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "bpftool attach: {}", text(&out));
    s.undo.insert(
        0,
        [
            "bpftool",
            "cgroup",
            "detach",
            &cg,
            "setsockopt",
            "pinned",
            setsockopt.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec(),
    );
    let out = s.cli(&["cgroup", "attach", &cg]);
    assert_eq!(code(&out), 13, "{}", text(&out));
    assert!(text(&out).contains("exclusively"), "{}", text(&out));
    let mut names = attached_names(&s.cgroup);
    names.sort();
    assert_eq!(names, ["other_setsockopt", "other_sock_ops"]);
    assert!(std::fs::read_dir(&s.pins).map_or(true, |mut d| d.next().is_none()));
    Ok(())
}

/// Every bad input: its exit code, its message, nothing attached.
fn bad_input() -> Outcome {
    let s = Scratch::new();
    let cg = s.cgroup.to_str().unwrap().to_string();
    let tmp = std::env::temp_dir().join(format!("tcpka-kernel-test-{}-plain", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let plain = tmp.to_str().unwrap().to_string();
    let mut cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec!["attach".into(), "/etc/hostname".into()],
            8,
            "not a directory",
        ),
        (
            vec!["attach".into(), "/nonexistent-tcpka".into()],
            8,
            "not a directory",
        ),
        (
            vec!["attach".into(), plain.clone()],
            8,
            "not a cgroup v2 directory",
        ),
        (
            vec!["attach".into(), cg.clone(), "--idle".into(), "0".into()],
            2,
            "invalid idle: \"0\"",
        ),
        (
            vec!["attach".into(), cg.clone(), "--count".into(), "128".into()],
            2,
            "1 to 127",
        ),
        (
            vec![
                "attach".into(),
                cg.clone(),
                "--interval".into(),
                "soon".into(),
            ],
            2,
            "\"soon\"",
        ),
        (
            vec![
                "attach".into(),
                cg.clone(),
                "--user-timeout".into(),
                "0".into(),
            ],
            2,
            "user_timeout",
        ),
        (vec!["detach".into(), cg.clone()], 12, "not attached"),
        (vec!["status".into(), cg.clone()], 12, "not attached"),
        (
            vec!["agent".into(), "--cgroup-root".into(), cg.clone()],
            14,
            "kubepods",
        ),
    ];
    // A cgroup v1 controller directory, where this machine has one (hybrid mode).
    if let Some(v1) = std::fs::read_to_string("/proc/mounts").ok().and_then(|m| {
        m.lines()
            .find(|l| l.split_whitespace().nth(2) == Some("cgroup"))
            .and_then(|l| l.split_whitespace().nth(1).map(String::from))
    }) {
        cases.push((vec!["attach".into(), v1], 8, "cgroup v1"));
    } else {
        println!("  (no cgroup v1 hierarchy mounted here: the v1 case is not run)");
    }
    for (args, want, says) in &cases {
        let mut full = vec!["cgroup"];
        full.extend(args.iter().map(String::as_str));
        let out = s.cli(&full);
        assert_eq!(code(&out), *want, "{full:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{full:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{full:?}: one line: {err}");
        assert!(
            attached_names(&s.cgroup).is_empty(),
            "{full:?} left programs attached"
        );
    }
    // No permission: as nobody.
    let out = s.cli_as(&["cgroup", "attach", &cg], Some(NOBODY));
    assert_eq!(code(&out), 9, "as nobody: {}", text(&out));
    assert!(text(&out).contains("CAP_BPF"), "{}", text(&out));
    assert!(attached_names(&s.cgroup).is_empty());
    // Root without capabilities: the bounding set emptied before exec leaves uid 0 with none,
    // so the kernel's own EPERM on loading is what is reported.
    let out = cli_with_caps(&s, &["cgroup", "attach", &cg], &[]);
    assert_eq!(code(&out), 9, "root without capabilities: {}", text(&out));
    assert!(text(&out).contains("CAP_BPF"), "{}", text(&out));
    assert!(attached_names(&s.cgroup).is_empty());
    // A relative pin root is refused.
    let out = Command::new(cli_exe())
        .args(["cgroup", "attach", &cg])
        .env("TCP_KEEPALIVE_PIN_ROOT", "relative/pins")
        .output()
        .unwrap();
    assert_eq!(code(&out), 11, "{}", text(&out));
    let _ = std::fs::remove_dir(&tmp);
    Ok(())
}

/// The node agent: finds kubepods under --cgroup-root, attaches, detaches on SIGTERM; with
/// --keep-on-exit the attachment stays.
fn agent_attaches_at_kubepods() -> Outcome {
    let s = Scratch::new();
    let pod = s.child("kubepods/burstable/pod-test");
    let kubepods = s.cgroup.join("kubepods");
    let status = |s: &Scratch| s.cli(&["cgroup", "status", kubepods.to_str().unwrap(), "--json"]);
    // An attachment whose cgroup was removed: its links are defunct, its pins stay, and the
    // agent clears them when it starts.
    let gone = s.child("gone");
    let out = s.cli(&["cgroup", "attach", gone.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    std::fs::remove_dir(&gone).unwrap();
    // The kernel releases a removed cgroup's programs asynchronously (bounded wait).
    let start = Instant::now();
    let v = loop {
        let out = s.cli(&["cgroup", "status", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["attachments"][0]["linked"] == false || start.elapsed() > Duration::from_secs(10) {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let listed = &v["attachments"][0];
    assert_eq!(
        (
            &listed["linked"],
            &listed["links_pinned"],
            &listed["cgroup"]
        ),
        (&Value::Bool(false), &Value::Bool(true), &Value::Null),
        "{v}"
    );
    let gone_pins = PathBuf::from(listed["pins"].as_str().unwrap());
    // (--keep-on-exit, idle, what the agent says first, attached after SIGTERM): the third
    // run is a restart over the attachment the second one kept.
    let runs = [
        (false, 8, "attached to ", false),
        (true, 8, "attached to ", true),
        (false, 9, "updated ", false),
    ];
    for (keep, idle, says, stays) in runs {
        let mut cmd = Command::new(cli_exe());
        let idle_arg = idle.to_string();
        cmd.args([
            "cgroup",
            "agent",
            "--cgroup-root",
            s.cgroup.to_str().unwrap(),
        ])
        .args(["--idle", &idle_arg])
        .env("TCP_KEEPALIVE_PIN_ROOT", &s.pins)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if keep {
            cmd.arg("--keep-on-exit");
        }
        let agent = cmd.spawn().unwrap();
        // Until the map holds this run's idle (bounded).
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let out = status(&s);
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            if v["attachments"][0]["idle_s"] == idle {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut p = Peer::start(Some(&pod));
        assert_eq!(
            ints(&p.ask("pair4")["client"]),
            [1, idle, 10, 6, 0],
            "run {keep} {idle}"
        );
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
        let out = agent.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "agent: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with(says),
            "agent said: {}",
            text(&out)
        );
        assert!(!gone_pins.exists(), "agent left {}", gone_pins.display());
        assert_eq!(
            code(&status(&s)),
            if stays { 0 } else { 12 },
            "run {keep} {idle}: {}",
            text(&out)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- the runner

fn main() {
    if std::env::var_os("TCPKA_CGROUP_CHILD").is_some() {
        child_main();
        return;
    }
    let skip = |why: &str| harness::skip_all(why);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("the kernel door's tests need root (cgroups, BPF)");
    }
    if cgroup2_mount().is_none() {
        skip("no cgroup v2 mount in /proc/mounts");
    }
    let probe = Command::new(cli_exe())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let doctor: Value = serde_json::from_slice(&probe.stdout).unwrap_or(Value::Null);
    if doctor["kernel_door"]["works"] != true {
        skip(&format!(
            "the kernel door cannot run here: {}",
            doctor["kernel_door"]["problem"]
        ));
    }
    let cases: &[Case] = &[
        (
            "new_connections_inside_get_the_settings",
            new_connections_inside_get_the_settings,
        ),
        (
            "enforcement_caps_the_programs_own_writes",
            enforcement_caps_the_programs_own_writes,
        ),
        ("shared_enforce_table", shared_enforce_table),
        ("static_go_program", static_go_program),
        ("children_reattach_and_detach", children_reattach_and_detach),
        (
            "attach_sweeps_open_connections",
            attach_sweeps_open_connections,
        ),
        ("other_programs_stay_attached", other_programs_stay_attached),
        ("one_attachment_per_cgroup", one_attachment_per_cgroup),
        ("least_privileges", least_privileges),
        ("concurrent_attaches", concurrent_attaches),
        ("bad_input", bad_input),
        ("agent_attaches_at_kubepods", agent_attaches_at_kubepods),
    ];
    harness::run(cases);
}
