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

/// The command's exit codes, from the one place they are defined.
#[path = "../src/exit_codes.rs"]
#[allow(dead_code)]
mod exit;
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

/// `setsockopt` of an int as a 32-bit program makes it: the ia32 system call (`int $0x80`,
/// number 366) from this 64-bit process, the int in memory below 4 GiB (`MAP_32BIT`). 0 or
/// `-errno` (`-ENOSYS` when the kernel runs no 32-bit system calls).
#[cfg(target_arch = "x86_64")]
fn set_ia32(fd: i32, level: i32, name: i32, value: i32) -> i64 {
    const IA32_SETSOCKOPT: i32 = 366;
    // SAFETY: a private anonymous page we own, unmapped before returning; the system call reads
    // 4 bytes of it. rbx (LLVM's own) is swapped in and out around the call; the kernel clears
    // r8-r11 on the way back from int $0x80, so they are marked clobbered.
    unsafe {
        let page = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        );
        assert!(
            page != libc::MAP_FAILED && (page as usize) < 1 << 32,
            "mmap MAP_32BIT: {}",
            std::io::Error::last_os_error()
        );
        page.cast::<i32>().write(value);
        let ret: i32;
        std::arch::asm!(
            "xchg {fd:r}, rbx",
            "int 0x80",
            "xchg {fd:r}, rbx",
            fd = inout(reg) u64::from(fd as u32) => _,
            inout("eax") IA32_SETSOCKOPT => ret,
            in("ecx") level,
            in("edx") name,
            in("esi") page as usize as u32,
            in("edi") 4u32,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
        );
        libc::munmap(page, 4096);
        i64::from(ret)
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

/// A TCP socket of `family` with `TCP_KEEPIDLE` set to `idle` and `SO_KEEPALIVE` 0, unbound.
fn socket_with_idle(family: i32, idle: i32) -> std::os::fd::OwnedFd {
    use std::os::fd::AsRawFd;
    let fd = tcp_socket(family);
    assert_eq!(raw_set(fd.as_raw_fd(), TCP, KEEPIDLE, idle, 4), 0);
    assert_eq!(raw_set(fd.as_raw_fd(), SOL_SOCKET, SO_KEEPALIVE, 0, 4), 0);
    fd
}

fn tcp_socket(family: i32) -> std::os::fd::OwnedFd {
    tcp_socket_of(family, 0)
}

fn tcp_socket_of(family: i32, protocol: i32) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: a new socket we own.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM, protocol) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd is ours and open.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// A client with `level`/`name` set to `value` before `connect()`.
fn connect_after(
    to: std::net::SocketAddr,
    level: i32,
    name: i32,
    value: i32,
) -> std::net::TcpStream {
    use std::os::fd::AsRawFd;
    let fd = tcp_socket(libc::AF_INET);
    assert_eq!(raw_set(fd.as_raw_fd(), level, name, value, 4), 0);
    connect_fd(fd, to)
}

fn sockaddr_v4(addr: std::net::SocketAddr) -> libc::sockaddr_in {
    let std::net::SocketAddr::V4(a) = addr else {
        panic!("IPv4 only: {addr}")
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// A listener on 127.0.0.1 whose `TCP_KEEPIDLE` was set to `idle` before `listen()`.
fn socket2_listener(idle: i32) -> std::net::TcpListener {
    use std::os::fd::AsRawFd;
    let fd = socket_with_idle(libc::AF_INET, idle);
    let sa = sockaddr_v4("127.0.0.1:0".parse().unwrap());
    let len = std::mem::size_of_val(&sa) as libc::socklen_t;
    // SAFETY: bind and listen on our socket with a valid address.
    unsafe {
        assert_eq!(
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_in).cast(),
                len
            ),
            0
        );
        assert_eq!(libc::listen(fd.as_raw_fd(), 8), 0);
    }
    std::net::TcpListener::from(fd)
}

/// A client whose `TCP_KEEPIDLE` (`idle`) and `SO_KEEPALIVE` 0 were set before `connect()`.
fn connect_with_idle(to: std::net::SocketAddr, idle: i32) -> std::net::TcpStream {
    connect_fd(socket_with_idle(libc::AF_INET, idle), to)
}

fn connect_fd(fd: std::os::fd::OwnedFd, to: std::net::SocketAddr) -> std::net::TcpStream {
    use std::os::fd::AsRawFd;
    let sa = sockaddr_v4(to);
    let len = std::mem::size_of_val(&sa) as libc::socklen_t;
    // SAFETY: connect our socket to a valid address.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            len,
        )
    };
    assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
    std::net::TcpStream::from(fd)
}

/// The child: one JSON line per command on stdin.
/// `pair4` / `pair6`: a listener, a client connected to it and the accepted socket; prints
/// `{"id": N, "client": readings, "server": readings}`. `udp`: a UDP socket's SO_KEEPALIVE.
/// `read N`: the pair's readings again. `set N LEVEL NAME VALUE LEN`: a setsockopt on the
/// client, `{"ret": 0 or -errno, "client": readings}`. `storm MAX`: connects to a listener of
/// its own again and again (one a millisecond, at most MAX) until `stop`, which prints how many
/// client and accepted sockets read back each set of readings.
fn child_main() {
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::fd::AsRawFd;
    // SAFETY: alarm has no preconditions; the child ends by itself if the test dies.
    unsafe { libc::alarm(120) };
    let mut pairs: Vec<(TcpListener, TcpStream, TcpStream)> = Vec::new();
    let mut storm: Option<Storm> = None;
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
            ["pre", client_idle, listener_idle] => {
                // Keep-alive chosen before connect (curl --keepalive-time does it): the client's
                // idle and SO_KEEPALIVE 0 on its socket before connect(), the listener's idle
                // (inherited by the accepted socket) before listen().
                let l = socket2_listener(listener_idle.parse().unwrap());
                let c = connect_with_idle(l.local_addr().unwrap(), client_idle.parse().unwrap());
                let (a, _) = l.accept().unwrap();
                let v = serde_json::json!({
                    "id": pairs.len(),
                    "client": readings(c.as_raw_fd()),
                    "server": readings(a.as_raw_fd()),
                });
                pairs.push((l, c, a));
                v
            }
            ["preset", level, name, value] => {
                // A value set before connect(), on the client only.
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let (level, name) = (level.parse().unwrap(), name.parse().unwrap());
                let c = connect_after(l.local_addr().unwrap(), level, name, value.parse().unwrap());
                let (a, _) = l.accept().unwrap();
                let v = serde_json::json!({
                    "id": pairs.len(),
                    "client": readings(c.as_raw_fd()),
                    "value": raw_get(c.as_raw_fd(), level, name),
                });
                pairs.push((l, c, a));
                v
            }
            ["mptcp", level, name, value] => {
                // An MPTCP socket, unconnected: the program's own write on it.
                let fd = tcp_socket_of(libc::AF_INET, 262);
                let (level, name) = (level.parse().unwrap(), name.parse().unwrap());
                let ret = raw_set(fd.as_raw_fd(), level, name, value.parse().unwrap(), 4);
                serde_json::json!({ "ret": ret, "value": raw_get(fd.as_raw_fd(), level, name) })
            }
            ["value", n, level, name] => {
                let (_, c, _) = &pairs[n.parse::<usize>().unwrap()];
                serde_json::json!({ "value": raw_get(c.as_raw_fd(), level.parse().unwrap(), name.parse().unwrap()) })
            }
            ["storm", max] => {
                storm = Some(Storm::start(max.parse().unwrap()));
                serde_json::json!({ "started": true })
            }
            ["stop"] => match storm.take() {
                Some(st) => st.stop(),
                None => serde_json::json!({ "error": "no storm" }),
            },
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
            #[cfg(target_arch = "x86_64")]
            ["set32", n, level, name, value] => {
                let (_, c, _) = &pairs[n.parse::<usize>().unwrap()];
                let fd = c.as_raw_fd();
                let (level, name) = (level.parse().unwrap(), name.parse().unwrap());
                let ret = set_ia32(fd, level, name, value.parse().unwrap());
                serde_json::json!({
                    "ret": ret,
                    "client": readings(fd),
                    "value": raw_get(fd, level, name),
                })
            }
            _ => serde_json::json!({ "error": line }),
        };
        writeln!(out, "{reply}").unwrap();
        out.flush().unwrap();
    }
}

/// Readings, as the text key `storm` counts them by.
type Tally = std::collections::BTreeMap<String, u64>;

fn tally(t: &std::sync::Mutex<Tally>, fd: i32) {
    let key = readings(fd)
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    *t.lock().unwrap().entry(key).or_default() += 1;
}

/// Connections made continuously from this process (the child's `storm`): a client thread
/// connecting to a listener of its own, an accepting thread; each socket's readings tallied.
struct Storm {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    addr: std::net::SocketAddr,
    client: std::thread::JoinHandle<(Tally, bool)>,
    server: std::thread::JoinHandle<Tally>,
}

impl Storm {
    fn start(max: usize) -> Storm {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let server = std::thread::spawn(move || {
            let t = Mutex::new(Tally::new());
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    tally(&t, c.as_raw_fd());
                }
            }
            t.into_inner().unwrap()
        });
        let flag = stop.clone();
        let client = std::thread::spawn(move || {
            let t = Mutex::new(Tally::new());
            // Bounded: MAX connections at most; `stopped` says whether `stop` came first.
            for _ in 0..max {
                if flag.load(Ordering::SeqCst) {
                    return (t.into_inner().unwrap(), true);
                }
                let c = std::net::TcpStream::connect(addr).unwrap();
                tally(&t, c.as_raw_fd());
                // Closed with a reset: no TIME_WAIT, so the ports never run out.
                let linger = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                // SAFETY: setsockopt from a struct we own, its size.
                unsafe {
                    libc::setsockopt(
                        c.as_raw_fd(),
                        SOL_SOCKET,
                        libc::SO_LINGER,
                        (&linger as *const libc::linger).cast(),
                        std::mem::size_of::<libc::linger>() as libc::socklen_t,
                    )
                };
                drop(c);
                std::thread::sleep(Duration::from_millis(1));
            }
            (t.into_inner().unwrap(), false)
        });
        Storm {
            stop,
            addr,
            client,
            server,
        }
    }

    fn stop(self) -> Value {
        self.stop.store(true, Ordering::SeqCst);
        let (client, stopped) = self.client.join().unwrap();
        // One more connection wakes the accepting thread, which then sees the flag.
        let _ = std::net::TcpStream::connect(self.addr);
        let server = self.server.join().unwrap();
        serde_json::json!({ "client": client, "server": server, "stopped": stopped })
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

    /// The one attachment of `cgroup`, as `status --json` says.
    fn status_of(&self, cgroup: &Path) -> Value {
        let out = self.cli(&["cgroup", "status", cgroup.to_str().unwrap(), "--json"]);
        assert_eq!(code(&out), 0, "status: {}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["attachments"][0].clone()
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

/// The attachments' directories under a pin root (its `lock` directory aside).
fn attachment_dirs(pins: &Path) -> Vec<String> {
    std::fs::read_dir(pins)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lock")
                .collect()
        })
        .unwrap_or_default()
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

/// Values a program chose before connect (or on its listener) are capped, never lengthened:
/// shorter ones stay, longer ones become ours, keep-alive is on; with --no-enforce too.
fn values_set_before_connect_are_capped() -> Outcome {
    let s = Scratch::new();
    let mut p = Peer::start(Some(&s.cgroup));
    for extra in [&[][..], &["--no-enforce"][..]] {
        let mut args = vec!["--idle", "30", "--interval", "3", "--count", "2"];
        args.extend_from_slice(extra);
        s.attach(&args);
        // The client chose 5 (shorter: stays), the listener 40 (longer: ours, 30).
        let r = p.ask("pre 5 40");
        assert_eq!(ints(&r["client"]), [1, 5, 3, 2, 0], "{extra:?}: {r}");
        assert_eq!(ints(&r["server"]), [1, 30, 3, 2, 0], "{extra:?}: {r}");
        let r = p.ask("pre 100 2");
        assert_eq!(ints(&r["client"]), [1, 30, 3, 2, 0], "{extra:?}: {r}");
        assert_eq!(ints(&r["server"]), [1, 2, 3, 2, 0], "{extra:?}: {r}");
    }
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
        // Larger than the page the kernel copied: the kernel reads the first int, so it is
        // capped all the same (keep-alive stays on, 9999 becomes ours), a shorter one stays,
        // and one out of range fails as it would.
        (SOL_SOCKET, SO_KEEPALIVE, 0, 8192, 0, [1, 7, 1, 2, 4500]),
        (TCP, KEEPIDLE, 9999, 8192, 0, [1, 7, 1, 2, 4500]),
        (TCP, KEEPIDLE, 4, 70000, 0, [1, 4, 1, 2, 4500]),
        (TCP, KEEPIDLE, 40000, 8192, einval, [1, 4, 1, 2, 4500]),
        (TCP, USER_TIMEOUT, 0, 20000, 0, [1, 4, 1, 2, 4500]),
        (TCP, KEEPIDLE, 7, 4, 0, [1, 7, 1, 2, 4500]),
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
    // Any other option: untouched, also with a buffer larger than a page.
    let r = p.ask(&format!("set 0 {TCP} {} 1 4", libc::TCP_NODELAY));
    assert_eq!(
        (r["ret"].as_i64(), r["nodelay"].as_i64()),
        (Some(0), Some(1)),
        "{r}"
    );
    let r = p.ask(&format!("set 0 {TCP} {} 0 8192", libc::TCP_NODELAY));
    assert_eq!(
        (r["ret"].as_i64(), r["nodelay"].as_i64()),
        (Some(0), Some(0)),
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

/// The shared enforcement table (`core/tests/data/enforce-cases.tsv`, core's own cases), every
/// row through the kernel door: `write` rows set inside the cgroup with their optlen, `connect`
/// rows set before connect under `--no-enforce` (the sock_ops program alone caps them), `sweep`
/// rows set on an open connection before an enforcing attach. Each must do exactly what the
/// expected value does on a socket outside the cgroup (the same return, the same value read back).
/// A missing table fails.
fn shared_enforce_table() -> Outcome {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/enforce-cases.tsv");
    let table = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the shared table {}: {e}", path.display()));
    let s = Scratch::new();
    let mut p = Peer::start(Some(&s.cgroup));
    let mut pair = p.ask("pair4")["id"].as_i64().unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let control = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let control_fd = std::os::fd::AsRawFd::as_raw_fd(&control);
    let mut attached_with = String::new();
    let mut rows = std::collections::BTreeMap::<String, usize>::new();
    for line in table
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 13, "bad row {line:?}");
        let when = f[10];
        let mptcp = f[11] == "mptcp";
        let enforce = if when == "connect" {
            "--no-enforce"
        } else {
            ""
        };
        let attach = |s: &Scratch, enforce: &str| {
            let mut args = vec!["--idle", f[0], "--interval", f[1], "--count", f[2]];
            let ut = format!("{}ms", f[3]);
            if f[3] != "-" {
                args.extend(["--user-timeout", ut.as_str()]);
            }
            if !enforce.is_empty() {
                args.push(enforce);
            }
            s.attach(&args);
        };
        let settings = format!("{} {} {} {} {enforce}", f[0], f[1], f[2], f[3]);
        if settings != attached_with || when == "sweep" {
            attach(
                &s,
                if when == "sweep" {
                    "--no-enforce"
                } else {
                    enforce
                },
            );
            attached_with = settings;
        }
        let (level, name): (i32, i32) = (f[4].parse().unwrap(), f[5].parse().unwrap());
        let (requested, expected): (i32, i32) = (f[7].parse().unwrap(), f[8].parse().unwrap());
        let optlen: usize = f[9].parse().unwrap();
        let mptcp_control = mptcp.then(|| tcp_socket_of(libc::AF_INET, 262));
        let control_fd = mptcp_control
            .as_ref()
            .map_or(control_fd, std::os::fd::AsRawFd::as_raw_fd);
        let want_ret = raw_set(control_fd, level, name, expected, 4);
        let (ret, value) = match when {
            "write" if mptcp => {
                let r = p.ask(&format!("mptcp {level} {name} {requested}"));
                (r["ret"].as_i64(), r["value"].as_i64())
            }
            "write" => {
                let r = p.ask(&format!("set {pair} {level} {name} {requested} {optlen}"));
                (r["ret"].as_i64(), r["value"].as_i64())
            }
            "connect" => {
                let r = p.ask(&format!("preset {level} {name} {requested}"));
                pair = r["id"].as_i64().unwrap();
                (Some(0), r["value"].as_i64())
            }
            "sweep" => {
                let r = p.ask("pair4");
                pair = r["id"].as_i64().unwrap();
                let r = p.ask(&format!("set {pair} {level} {name} {requested} {optlen}"));
                assert_eq!(r["ret"], 0, "row {line:?}: {r}");
                attach(&s, "");
                attached_with.clear();
                let r = p.ask(&format!("value {pair} {level} {name}"));
                (Some(0), r["value"].as_i64())
            }
            other => panic!("row {line:?}: when {other:?}"),
        };
        assert_eq!(ret, Some(want_ret), "row {line:?}");
        if want_ret == 0 {
            assert_eq!(
                value,
                Some(raw_get(control_fd, level, name)),
                "row {line:?}"
            );
        }
        *rows.entry(format!("{when}/{}", f[11])).or_default() += 1;
    }
    assert!(
        ["write/tcp", "connect/tcp", "sweep/tcp", "write/mptcp"]
            .iter()
            .all(|w| rows.get(*w).copied().unwrap_or(0) > 0),
        "rows of every kind in {}: {rows:?}",
        path.display()
    );
    println!("  rows of {}: {rows:?}", path.display());
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
    assert!(attachment_dirs(&s.pins).is_empty());
    let out = s.cli(&["cgroup", "status", s.cgroup.to_str().unwrap()]);
    assert_eq!(code(&out), exit::NOT_ATTACHED, "{}", text(&out));
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
    // Read back and updated in place with the same capabilities (programs loaded without
    // CAP_SYS_ADMIN have no name: the pins are recognised by their map ids).
    let out = cli_with_caps(&s, &["cgroup", "status", cg], &[CAP_BPF, CAP_NET_ADMIN]);
    assert_eq!(code(&out), 0, "status: {}", text(&out));
    let out = cli_with_caps(
        &s,
        &["cgroup", "attach", cg, "--idle", "8"],
        &[CAP_BPF, CAP_NET_ADMIN],
    );
    assert!(text(&out).starts_with("updated "), "{}", text(&out));
    let out = cli_with_caps(&s, &["cgroup", "detach", cg], &[CAP_BPF, CAP_NET_ADMIN]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = cli_with_caps(&s, &["cgroup", "attach", cg], &[CAP_NET_ADMIN]);
    assert_eq!(
        code(&out),
        exit::BPF_PERMISSION,
        "without CAP_BPF: {}",
        text(&out)
    );
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
    // Nested: the kernel runs the inner cgroup's programs first and the outer's after them;
    // each caps, so new connections and a program's own writes both get the smaller of the two
    // (documented in cgroup/README.md).
    s.attach(&["--idle", "20", "--count", "3"]);
    let r = pb.ask("pair4");
    assert_eq!(ints(&r["client"])[..4], [1, 11, 10, 3], "nested: {r}");
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
    // The sweep caps: a connection whose program chose shorter timings keeps them (5 stays 5,
    // and the count 1 stays 1), the longer ones become ours, keep-alive goes on.
    let r = low.ask(&format!("set 0 {SOL_SOCKET} {SO_KEEPALIVE} 0 4"));
    assert_eq!(r["ret"], 0, "{r}");
    // Enforcement would rewrite the writes below: this attachment lets them through.
    s.attach(&[
        "--idle",
        "9",
        "--interval",
        "2",
        "--count",
        "4",
        "--no-enforce",
    ]);
    for (name, value) in [(KEEPIDLE, 5), (KEEPINTVL, 100), (KEEPCNT, 1)] {
        let r = low.ask(&format!("set 0 {TCP} {name} {value} 4"));
        assert_eq!(r["ret"], 0, "{r}");
    }
    low.ask(&format!("set 0 {SOL_SOCKET} {SO_KEEPALIVE} 0 4"));
    assert_eq!(ints(&low.ask("read 0")["client"]), [0, 5, 100, 1, 0]);
    let said = s.attach(&["--idle", "9", "--interval", "2", "--count", "4"]);
    // Only that one socket was outside the ceiling.
    assert!(
        said.contains("changed 1 of 6 TCP sockets in 2 processes"),
        "{said}"
    );
    assert_eq!(ints(&low.ask("read 0")["client"]), [1, 5, 2, 1, 0]);
    Ok(())
}

/// The sweep goes by each socket's own cgroup, not its process's: a process that moved into the
/// cgroup after making its sockets keeps them as they were (so does a socket passed in from
/// outside, which is the same to the kernel); in another PID namespace the sweep names the cause.
fn sweep_only_the_cgroups_own_sockets() -> Outcome {
    let s = Scratch::new();
    let mut inside = Peer::start(Some(&s.cgroup));
    inside.ask("pair4");
    let mut moved = Peer::start(None);
    moved.ask("pair4");
    std::fs::write(s.cgroup.join("cgroup.procs"), moved.child.id().to_string()).unwrap();
    let said = s.attach(&["--idle", "9", "--interval", "2", "--count", "4"]);
    assert!(
        said.contains("changed 3 of 3 TCP sockets in 2 processes (3 more held there belong to a cgroup outside"),
        "{said}"
    );
    assert_eq!(ints(&inside.ask("read 0")["client"]), [1, 9, 2, 4, 0]);
    let r = moved.ask("read 0");
    assert_eq!(ints(&r["client"]), system_defaults(), "{r}");
    assert_eq!(ints(&r["server"]), system_defaults(), "{r}");
    // From another PID namespace cgroup.procs shows the processes as 0.
    let out = Command::new("unshare")
        .args(["--pid", "--fork"])
        .arg(cli_exe())
        .args([
            "cgroup",
            "attach",
            s.cgroup.to_str().unwrap(),
            "--idle",
            "9",
        ])
        .env("TCP_KEEPALIVE_PIN_ROOT", &s.pins)
        .output()
        .expect("unshare (util-linux)");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("2 processes of the cgroup are outside this process's PID namespace"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("hostPID"), "{}", text(&out));
    assert!(!text(&out).contains("process 0"), "{}", text(&out));
    Ok(())
}

fn bpftool(args: &[&str]) -> Output {
    Command::new("bpftool")
        .args(args)
        .output()
        .expect("bpftool (Debian package bpftool)")
}

/// A directory for someone else's pinned programs beside this case's pin root, removed on drop.
fn other_pins(s: &mut Scratch) -> PathBuf {
    let dir = s.pins.with_file_name(format!(
        "{}-other",
        s.pins.file_name().unwrap().to_str().unwrap()
    ));
    s.undo
        .push(vec!["rm".into(), "-rf".into(), dir.display().to_string()]);
    dir
}

/// A BPF object compiled by clang from `src` (relative to this crate) into the tests' temporary
/// directory as `name`, with `flags` besides the target and the UAPI headers' `asm/` directory.
fn compile_bpf(src: &str, name: &str, flags: &[&str]) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(src);
    let obj = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let asm = [
        "/usr/include/x86_64-linux-gnu",
        "/usr/include/aarch64-linux-gnu",
    ]
    .into_iter()
    .find(|d| Path::new(d).join("asm/types.h").exists())
    .unwrap_or("/usr/include");
    let out = Command::new("clang")
        .args(["-target", "bpf", "-O2", "-g"])
        .args(flags)
        .args(["-idirafter", asm, "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("clang");
    assert!(out.status.success(), "clang: {}", text(&out));
    obj
}

/// Someone else's programs, pinned in `dir`: compiled with clang, loaded with bpftool.
fn other_programs(dir: &Path) -> (PathBuf, PathBuf) {
    let obj = compile_bpf("tests/data/other_bpf.c", "other_bpf.o", &[]);
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
    let other_dir = other_pins(&mut s);
    let (sock_ops, setsockopt) = other_programs(&other_dir);
    let cg = s.cgroup.to_str().unwrap().to_string();
    let cgroup = s.cgroup.clone();
    attach_other(&mut s, &cgroup, "sock_ops", &sock_ops);
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
    attach_other_as(&mut s, &cgroup, "setsockopt", &setsockopt, false);
    let out = s.cli(&["cgroup", "attach", &cg]);
    assert_eq!(code(&out), exit::EXCLUSIVE, "{}", text(&out));
    assert!(text(&out).contains("exclusively"), "{}", text(&out));
    let mut names = attached_names(&s.cgroup);
    names.sort();
    assert_eq!(names, ["other_setsockopt", "other_sock_ops"]);
    assert!(attachment_dirs(&s.pins).is_empty());
    Ok(())
}

/// Attaches the pinned program `prog` to `cgroup` with bpftool (multi), detached on drop.
fn attach_other(s: &mut Scratch, cgroup: &Path, kind: &str, prog: &Path) {
    attach_other_as(s, cgroup, kind, prog, true)
}

/// Attaches the pinned program `prog` to `cgroup` with bpftool, `multi` or exclusively (without
/// it), detached on drop (before the pins it names are removed).
fn attach_other_as(s: &mut Scratch, cgroup: &Path, kind: &str, prog: &Path, multi: bool) {
    let cg = cgroup.to_str().unwrap();
    let mut args = vec![
        "cgroup",
        "attach",
        cg,
        kind,
        "pinned",
        prog.to_str().unwrap(),
    ];
    if multi {
        args.push("multi");
    }
    let out = bpftool(&args);
    assert!(out.status.success(), "bpftool attach: {}", text(&out));
    s.undo.insert(
        0,
        [
            "bpftool",
            "cgroup",
            "detach",
            cg,
            kind,
            "pinned",
            prog.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec(),
    );
}

fn detach_other(s: &mut Scratch) {
    let cmd = s.undo.remove(0);
    let out = Command::new(&cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
}

/// A cgroup/setsockopt program that passes every call through (`optlen = 0`, the kernel's
/// documented "use the caller's buffer", cli/tests/data/other_bpf.c) beside ours. Where the
/// kernel runs it before ours (attached earlier to the same cgroup, or on a child cgroup),
/// enforcement holds. Where it runs after ours (attached later, or on an ancestor), nothing
/// can hold: attach and status say so, and the JSON says `enforce_held: false`.
fn beside_a_pass_through_program() -> Outcome {
    let mut s = Scratch::new();
    let other_dir = other_pins(&mut s);
    let (_, pass_through) = other_programs(&other_dir);
    let top = s.cgroup.clone();
    let held = |p: &mut Peer, pair: i64, what: &str| {
        let r = p.ask(&format!("set {pair} {SOL_SOCKET} {SO_KEEPALIVE} 0 4"));
        assert_eq!(
            (r["ret"].as_i64(), ints(&r["client"])[0]),
            (Some(0), 1),
            "{what}: {r}"
        );
        let r = p.ask(&format!("set {pair} {TCP} {KEEPIDLE} 999 4"));
        assert_eq!(
            (r["ret"].as_i64(), ints(&r["client"])[1]),
            (Some(0), 7),
            "{what}: {r}"
        );
    };
    let json = |s: &Scratch, cg: &Path| -> Value {
        let out = s.cli(&["cgroup", "status", cg.to_str().unwrap(), "--json"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["attachments"][0].clone()
    };
    let settings = ["--idle", "7", "--interval", "3", "--count", "2"];

    // 1. Attached to the same cgroup before ours: it runs first, ours reads the caller's buffer.
    attach_other(&mut s, &top, "setsockopt", &pass_through);
    let said = s.attach(&settings);
    assert!(!said.contains("warning"), "{said}");
    let mut p = Peer::start(Some(&s.cgroup));
    p.ask("pair4");
    held(&mut p, 0, "pass-through before ours");
    let a = json(&s, &s.cgroup);
    assert_eq!(a["enforce_held"], true, "{a}");
    assert!(a["capped"].as_u64().unwrap() >= 2, "{a}");

    // 2. On a child cgroup (the kernel runs the inner cgroup's programs first).
    detach_other(&mut s);
    let inner = s.child("inner");
    attach_other(&mut s, &inner, "setsockopt", &pass_through);
    let mut q = Peer::start(Some(&inner));
    q.ask("pair4");
    held(&mut q, 0, "pass-through on a child cgroup");
    detach_other(&mut s);

    // 3. Attached to the same cgroup after ours: it runs last; attach and status say so.
    attach_other(&mut s, &top, "setsockopt", &pass_through);
    let said = s.attach(&settings);
    assert!(
        said.contains("warning: enforcement may not hold") && said.contains("(other_setsockop)"),
        "{said}"
    );
    let a = json(&s, &s.cgroup);
    assert_eq!(a["enforce_held"], false, "{a}");
    assert_eq!(
        a["setsockopt_after_ours"][0]["name"], "other_setsockop",
        "{a}"
    );
    let out = s.cli(&["cgroup", "status"]);
    assert!(text(&out).contains("NOT HELD"), "{}", text(&out));
    // What the warning is about, read back from the kernel: the write went through.
    let r = p.ask(&format!("set 0 {SOL_SOCKET} {SO_KEEPALIVE} 0 4"));
    assert_eq!(ints(&r["client"])[0], 0, "{r}");
    detach_other(&mut s);
    assert_eq!(json(&s, &s.cgroup)["enforce_held"], true);
    let out = s.cli(&["cgroup", "detach", s.cgroup.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // 4. On an ancestor of the attached cgroup: also after ours.
    attach_other(&mut s, &top, "setsockopt", &pass_through);
    let out = s.cli(&["cgroup", "attach", inner.to_str().unwrap(), "--idle", "7"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("may not hold"), "{}", text(&out));
    assert_eq!(json(&s, &inner)["enforce_held"], false);
    let out = s.cli(&["cgroup", "detach", inner.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    Ok(())
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn chown(path: &Path, uid: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: lchown with a NUL-terminated path.
    assert_eq!(unsafe { libc::lchown(c.as_ptr(), uid, uid) }, 0);
}

/// The pin root is trusted only when it is root's alone: another owner, a mode that lets others
/// write, a symbolic link are refused (exit 15, the fix named, nothing attached); what attach
/// makes is 0700 whatever the umask; a symbolic link planted as a pin directory is never
/// followed; the lock cannot be held by another user, and a wait for it ends with exit 16.
fn pin_root_trust() -> Outcome {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let cg = s.cgroup.to_str().unwrap().to_string();
    let refused = |s: &Scratch, args: &[&str], says: &str| {
        let out = s.cli(args);
        assert_eq!(code(&out), exit::UNTRUSTED_PINS, "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("chmod 0700"), "{}", text(&out));
        assert!(attached_names(&s.cgroup).is_empty(), "{args:?} attached");
    };
    // Made first by another user (as on a 1777 bpffs).
    std::fs::create_dir(&s.pins).unwrap();
    chown(&s.pins, NOBODY);
    refused(&s, &["cgroup", "attach", &cg], "owned by uid 65534");
    refused(&s, &["cgroup", "status"], "owned by uid 65534");
    refused(&s, &["cgroup", "detach", &cg], "owned by uid 65534");
    // Root's, but others may write it.
    chown(&s.pins, 0);
    std::fs::set_permissions(&s.pins, std::fs::Permissions::from_mode(0o777)).unwrap();
    refused(&s, &["cgroup", "attach", &cg], "mode 0777");
    // A symbolic link to a directory that would pass.
    std::fs::remove_dir(&s.pins).unwrap();
    let real = s.pins.with_file_name(format!(
        "{}-real",
        s.pins.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&real, &s.pins).unwrap();
    refused(&s, &["cgroup", "attach", &cg], "symbolic link");
    std::fs::remove_file(&s.pins).unwrap();
    std::fs::remove_dir(&real).unwrap();

    // Under umask 000 attach makes 0700 directories (and the kernel 0600 pins).
    let mut cmd = Command::new(cli_exe());
    cmd.args(["cgroup", "attach", &cg])
        .env("TCP_KEEPALIVE_PIN_ROOT", &s.pins);
    // SAFETY: umask between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let id = s.status()["attachments"][0]["cgroup_id"].as_u64().unwrap();
    let dir = s.pins.join(id.to_string());
    assert_eq!(mode_of(&s.pins), 0o700);
    assert_eq!(mode_of(&dir), 0o700);
    assert_eq!(mode_of(&s.pins.join("lock")), 0o700);
    assert_eq!(
        mode_of(&dir.join("sock_ops")) & 0o077,
        0,
        "a pin others may use"
    );

    // The lock: another user cannot even open it; root holding it makes attach wait, then
    // fail with exit 16 and what to do.
    let lock = s.pins.join("lock");
    let other = Command::new("flock")
        .args(["-n", lock.to_str().unwrap(), "true"])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("flock (util-linux)");
    assert!(!other.status.success(), "nobody took the lock");
    let mut holder = Command::new("flock")
        .args(["-o", lock.to_str().unwrap(), "sleep", "20"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let out = Command::new(cli_exe())
        .args(["cgroup", "attach", &cg, "--idle", "9"])
        .env("TCP_KEEPALIVE_PIN_ROOT", &s.pins)
        .env("TCP_KEEPALIVE_LOCK_TIMEOUT", "400ms")
        .output()
        .unwrap();
    let waited = start.elapsed();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code(&out), exit::LOCKED, "{}", text(&out));
    assert!(text(&out).contains("holds the lock"), "{}", text(&out));
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert_eq!(s.status()["attachments"][0]["idle_s"], 60);

    // A symbolic link planted as the pin directory: refused, never followed.
    let out = s.cli(&["cgroup", "detach", &cg]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let victim = std::env::temp_dir().join(format!("tcpka-victim-{}", std::process::id()));
    std::fs::create_dir_all(&victim).unwrap();
    for name in ["settings", "counters", "sock_ops", "setsockopt"] {
        std::fs::write(victim.join(name), "keep me").unwrap();
    }
    std::os::unix::fs::symlink(&victim, &dir).unwrap();
    for args in [["cgroup", "detach", &cg], ["cgroup", "attach", &cg]] {
        let out = s.cli(&args);
        assert_eq!(code(&out), exit::UNTRUSTED_PINS, "{args:?}: {}", text(&out));
        assert!(text(&out).contains("symbolic link"), "{}", text(&out));
        for name in ["settings", "counters", "sock_ops", "setsockopt"] {
            assert!(
                victim.join(name).exists(),
                "{args:?} removed {name} through the link"
            );
        }
    }
    std::fs::remove_file(&dir).unwrap();
    std::fs::remove_dir_all(&victim).unwrap();
    Ok(())
}

/// The cgroup v2 root (every process of the host) is refused without --whole-host.
fn cgroup_root_refused() -> Outcome {
    let s = Scratch::new();
    let root = cgroup2_mount().unwrap();
    let before = attached_names(&root);
    let out = s.cli(&["cgroup", "attach", root.to_str().unwrap()]);
    assert_eq!(code(&out), exit::CGROUP_ROOT, "{}", text(&out));
    assert!(text(&out).contains("--whole-host"), "{}", text(&out));
    assert_eq!(attached_names(&root), before);
    assert!(!s.pins.join("1").exists());
    Ok(())
}

/// A program attached exclusively on the parent: exit 13 names the parent, where it is. The
/// same EPERM from a seccomp filter is told apart: exit 9, the filter or LSM named.
fn refusals_told_apart() -> Outcome {
    let mut s = Scratch::new();
    let other_dir = other_pins(&mut s);
    let (sock_ops, _) = other_programs(&other_dir);
    let top = s.cgroup.clone();
    let child = s.child("pod");
    // Exclusive: no `multi`.
    attach_other_as(&mut s, &top, "sock_ops", &sock_ops, false);
    let out = s.cli(&["cgroup", "attach", child.to_str().unwrap()]);
    assert_eq!(code(&out), exit::EXCLUSIVE, "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        said.contains(&format!("{} already has a sock_ops program", top.display())),
        "{said}"
    );
    assert!(attached_names(&child).is_empty());
    detach_other(&mut s);

    // bpf(BPF_LINK_CREATE) refused by a seccomp filter (x86_64 numbers).
    if !cfg!(target_arch = "x86_64") {
        println!("  (the seccomp case runs on x86_64 only)");
        return Ok(());
    }
    let mut cmd = Command::new(cli_exe());
    cmd.args(["cgroup", "attach", top.to_str().unwrap()])
        .env("TCP_KEEPALIVE_PIN_ROOT", &s.pins);
    // SAFETY: only prctl between fork and exec, with a filter that lives in the closure.
    unsafe {
        cmd.pre_exec(|| {
            let stmt = |code: u16, k: u32| libc::sock_filter {
                code,
                jt: 0,
                jf: 0,
                k,
            };
            let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
                code: 0x15,
                jt,
                jf,
                k,
            };
            let filter = [
                stmt(0x20, 4),           // arch
                jeq(0xc000_003e, 0, 5),  // AUDIT_ARCH_X86_64, else allow
                stmt(0x20, 0),           // nr
                jeq(321, 0, 3),          // bpf, else allow
                stmt(0x20, 16),          // args[0], low half
                jeq(28, 0, 1),           // BPF_LINK_CREATE, else allow
                stmt(0x06, 0x0005_0001), // SECCOMP_RET_ERRNO | EPERM
                stmt(0x06, 0x7fff_0000), // SECCOMP_RET_ALLOW
            ];
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut _,
            };
            if libc::prctl(libc::PR_SET_SECCOMP, 2, &prog as *const _) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), exit::BPF_PERMISSION, "{}", text(&out));
    assert!(
        text(&out).contains("seccomp filter or an LSM"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("exclusively ("), "{}", text(&out));
    assert!(attached_names(&top).is_empty());
    Ok(())
}

/// Cgroup names are anyone's: terminal escapes in one are written escaped, never raw.
fn escapes_in_names() -> Outcome {
    let s = Scratch::new();
    let evil = s.child("evil\x1b]0;owned\x07\x1b[2J");
    let out = s.cli(&["cgroup", "attach", evil.to_str().unwrap(), "--idle", "9"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = s.cli(&["cgroup", "status"]);
    let all = format!("{:?}", text(&out));
    assert!(text(&out).contains("evil\\x1b]0;owned\\x07"), "{all}");
    assert!(
        !out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b),
        "{all}"
    );
    let out = s.cli(&["cgroup", "detach", evil.to_str().unwrap()]);
    assert!(!out.stdout.contains(&0x1b), "{:?}", text(&out));
    let out = s.cli(&["cgroup", "status", evil.to_str().unwrap()]);
    assert_eq!(code(&out), exit::NOT_ATTACHED, "{}", text(&out));
    assert!(!out.stderr.contains(&0x1b), "{:?}", text(&out));
    Ok(())
}

/// `status` says what the kernel has attached, not what is pinned; one unreadable attachment
/// (a replaced settings map) does not hide the others and is refused, not used; a user who may
/// not read the pins is told so (exit 9), not "not attached".
fn status_reads_the_kernel() -> Outcome {
    let s = Scratch::new();
    let (a, b) = (s.child("a"), s.child("b"));
    for dir in [&a, &b] {
        let out = s.cli(&["cgroup", "attach", dir.to_str().unwrap(), "--idle", "7"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    let id_of = |dir: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir).unwrap().ino()
    };
    // Our sock_ops link of a, detached behind our back.
    let link = s.pins.join(id_of(&a).to_string()).join("sock_ops");
    let out = bpftool(&["link", "show", "pinned", link.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let link_id = v["id"].as_u64().unwrap_or_else(|| panic!("{}", text(&out)));
    let out = bpftool(&["link", "detach", "id", &link_id.to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = s.cli(&["cgroup", "status"]);
    let row = text(&out)
        .lines()
        .find(|l| l.starts_with(a.to_str().unwrap()))
        .unwrap_or_else(|| panic!("{}", text(&out)))
        .to_string();
    assert!(row.ends_with("NO: detach and attach again"), "{row}");
    let out = s.cli(&["cgroup", "status", a.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["attachments"][0]["linked"], false, "{v}");
    // Attaching again repairs it.
    let out = s.cli(&["cgroup", "attach", a.to_str().unwrap(), "--idle", "7"]);
    assert!(text(&out).starts_with("attached to "), "{}", text(&out));
    let mut p = Peer::start(Some(&a));
    assert_eq!(ints(&p.ask("pair4")["client"])[..2], [1, 7]);

    // b's settings map replaced by someone else's.
    let settings = s.pins.join(id_of(&b).to_string()).join("settings");
    std::fs::remove_file(&settings).unwrap();
    let out = bpftool(&[
        "map",
        "create",
        settings.to_str().unwrap(),
        "type",
        "array",
        "key",
        "4",
        "value",
        "24",
        "entries",
        "1",
        "name",
        "settings",
    ]);
    assert!(out.status.success(), "bpftool map create: {}", text(&out));
    let out = s.cli(&["cgroup", "status", b.to_str().unwrap()]);
    assert_eq!(code(&out), exit::UNTRUSTED_PINS, "{}", text(&out));
    assert!(
        text(&out).contains("not one attachment of tcp-keepalive"),
        "{}",
        text(&out)
    );
    let out = s.cli(&["cgroup", "attach", b.to_str().unwrap(), "--idle", "9"]);
    assert_eq!(
        code(&out),
        exit::UNTRUSTED_PINS,
        "a foreign map is not updated: {}",
        text(&out)
    );
    // The whole list still shows a, and b as unreadable, exit 1.
    let out = s.cli(&["cgroup", "status", "--json"]);
    assert_eq!(code(&out), exit::OTHER, "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["attachments"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["attachments"][0]["cgroup_id"], id_of(&a), "{v}");
    assert_eq!(v["broken"][0]["cgroup_id"], id_of(&b), "{v}");
    let out = s.cli(&["cgroup", "status"]);
    assert!(text(&out).contains("UNREADABLE"), "{}", text(&out));
    // detach still removes what is there.
    let out = s.cli(&["cgroup", "detach", b.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // A user who may not read the pins: exit 9, not "not attached".
    let out = s.cli_as(&["cgroup", "status", a.to_str().unwrap()], Some(NOBODY));
    assert_eq!(code(&out), exit::BPF_PERMISSION, "{}", text(&out));
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
            exit::NOT_CGROUP2,
            "not a directory",
        ),
        (
            vec!["attach".into(), "/nonexistent-tcpka".into()],
            exit::NOT_CGROUP2,
            "not a directory",
        ),
        (
            vec!["attach".into(), plain.clone()],
            exit::NOT_CGROUP2,
            "not a cgroup v2 directory",
        ),
        (
            vec!["attach".into(), cg.clone(), "--idle".into(), "0".into()],
            exit::USAGE,
            "invalid idle: \"0\"",
        ),
        (
            vec!["attach".into(), cg.clone(), "--count".into(), "128".into()],
            exit::USAGE,
            "1 to 127",
        ),
        (
            vec![
                "attach".into(),
                cg.clone(),
                "--interval".into(),
                "soon".into(),
            ],
            exit::USAGE,
            "\"soon\"",
        ),
        (
            vec![
                "attach".into(),
                cg.clone(),
                "--user-timeout".into(),
                "0".into(),
            ],
            exit::USAGE,
            "user_timeout",
        ),
        (
            vec!["detach".into(), cg.clone()],
            exit::NOT_ATTACHED,
            "not attached",
        ),
        (
            vec!["status".into(), cg.clone()],
            exit::NOT_ATTACHED,
            "not attached",
        ),
        (
            vec!["agent".into(), "--cgroup-root".into(), cg.clone()],
            exit::NO_KUBEPODS,
            "kubepods",
        ),
    ];
    // A cgroup v1 controller directory, where this machine has one (hybrid mode).
    if let Some(v1) = std::fs::read_to_string("/proc/mounts").ok().and_then(|m| {
        m.lines()
            .find(|l| l.split_whitespace().nth(2) == Some("cgroup"))
            .and_then(|l| l.split_whitespace().nth(1).map(String::from))
    }) {
        cases.push((vec!["attach".into(), v1], exit::NOT_CGROUP2, "cgroup v1"));
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
    assert_eq!(
        code(&out),
        exit::BPF_PERMISSION,
        "as nobody: {}",
        text(&out)
    );
    assert!(text(&out).contains("CAP_BPF"), "{}", text(&out));
    assert!(attached_names(&s.cgroup).is_empty());
    // Root without capabilities: the bounding set emptied before exec leaves uid 0 with none,
    // so the kernel's own EPERM on loading is what is reported.
    let out = cli_with_caps(&s, &["cgroup", "attach", &cg], &[]);
    assert_eq!(
        code(&out),
        exit::BPF_PERMISSION,
        "root without capabilities: {}",
        text(&out)
    );
    assert!(text(&out).contains("CAP_BPF"), "{}", text(&out));
    assert!(attached_names(&s.cgroup).is_empty());
    // A relative pin root is refused.
    let out = Command::new(cli_exe())
        .args(["cgroup", "attach", &cg])
        .env("TCP_KEEPALIVE_PIN_ROOT", "relative/pins")
        .output()
        .unwrap();
    assert_eq!(code(&out), exit::NO_BPFFS, "{}", text(&out));
    let _ = std::fs::remove_dir(&tmp);
    Ok(())
}

/// The node agent: finds kubepods under --cgroup-root, attaches, and on SIGTERM leaves the
/// attachment in place (the default, `--keep-on-exit` says the same) or detaches
/// (`--detach-on-exit`); a restarted agent adopts what it finds.
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
    // (flag, idle, what the agent says first, attached after SIGTERM): the third and fourth
    // runs are restarts over the attachment the one before kept.
    let runs = [
        (Some("--detach-on-exit"), 8, "attached to ", false),
        (None, 8, "attached to ", true),
        (Some("--keep-on-exit"), 9, "updated ", true),
        (Some("--detach-on-exit"), 10, "updated ", false),
    ];
    for (flag, idle, says, stays) in runs {
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
        if let Some(flag) = flag {
            cmd.arg(flag);
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
            "run {flag:?} {idle}"
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
            if stays { 0 } else { exit::NOT_ATTACHED },
            "run {flag:?} {idle}: {}",
            text(&out)
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains(if stays {
                "leaving the attachment in place"
            } else {
                "detached from"
            }),
            "run {flag:?} {idle}: {said}"
        );
    }
    // Both at once is a usage error, and nothing is attached.
    let out = s.cli(&[
        "cgroup",
        "agent",
        "--cgroup-root",
        s.cgroup.to_str().unwrap(),
        "--keep-on-exit",
        "--detach-on-exit",
    ]);
    assert_eq!(code(&out), exit::USAGE, "{}", text(&out));
    assert_eq!(code(&status(&s)), exit::NOT_ATTACHED);
    Ok(())
}

/// The agent with `--cgroup-root` the case's cgroup, its pin root, idle 8, `--recheck 200ms` and
/// `--detach-on-exit`, its output piped.
fn agent_with_detach(s: &Scratch) -> Child {
    Command::new(cli_exe())
        .args([
            "cgroup",
            "agent",
            "--cgroup-root",
            s.cgroup.to_str().unwrap(),
        ])
        .args(["--idle", "8", "--recheck", "200ms", "--detach-on-exit"])
        .env("TCP_KEEPALIVE_PIN_ROOT", &s.pins)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// kubepods removed and made again (a node's kubelet restarted with a wiped cgroup tree): the
/// agent notices within its --recheck interval and attaches to the new one, so pods created
/// there are covered; on SIGTERM (with --detach-on-exit) it detaches from the new one.
fn agent_notices_kubepods_made_again() -> Outcome {
    let s = Scratch::new();
    s.child("kubepods/burstable/pod-a");
    let kubepods = s.cgroup.join("kubepods");
    let linked = |s: &Scratch| {
        let out = s.cli(&["cgroup", "status", kubepods.to_str().unwrap(), "--json"]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)["attachments"][0]
            ["linked"]
            == true
    };
    let agent = agent_with_detach(&s);
    let start = Instant::now();
    while !linked(&s) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(linked(&s), "the agent did not attach");
    let old_id = s.status_of(&kubepods)["cgroup_id"].as_u64().unwrap();
    for dir in ["kubepods/burstable/pod-a", "kubepods/burstable", "kubepods"] {
        std::fs::remove_dir(s.cgroup.join(dir)).unwrap();
    }
    let pod = s.child("kubepods/burstable/pod-b");
    let made = Instant::now();
    while !linked(&s) && made.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = made.elapsed();
    assert!(
        linked(&s),
        "kubepods made again: not attached after {took:?}"
    );
    println!(
        "  kubepods made again: attached after {} ms (--recheck 200ms)",
        took.as_millis()
    );
    assert_ne!(
        s.status_of(&kubepods)["cgroup_id"].as_u64().unwrap(),
        old_id
    );
    let mut p = Peer::start(Some(&pod));
    assert_eq!(ints(&p.ask("pair4")["client"]), [1, 8, 10, 6, 0]);
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let out = agent.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "agent: {}", text(&out));
    assert!(
        text(&out).contains("been made again: attaching again"),
        "{}",
        text(&out)
    );
    let out = s.cli(&["cgroup", "status", kubepods.to_str().unwrap()]);
    assert_eq!(
        code(&out),
        exit::NOT_ATTACHED,
        "detached on SIGTERM: {}",
        text(&out)
    );
    assert!(
        !s.pins.join(old_id.to_string()).exists(),
        "the old kubepods' pins stay"
    );
    Ok(())
}

/// A pass-through cgroup/setsockopt program (cli/tests/data/other_bpf.c) attached on the
/// kubepods parent after the agent started runs after ours on every pod's sockets: the agent's
/// recheck notices and warns once, and says once that enforcement holds again when it is gone.
fn agent_warns_when_enforcement_stops_holding() -> Outcome {
    let mut s = Scratch::new();
    s.child("kubepods/burstable/pod-a");
    let kubepods = s.cgroup.join("kubepods");
    let other_dir = other_pins(&mut s);
    let (_, pass_through) = other_programs(&other_dir);
    /// Kills the agent should the case fail before its SIGTERM.
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            if let Ok(None) = self.0.try_wait() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
    let mut agent = Killed(agent_with_detach(&s));
    // Both streams, line by line, as they come.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let readers: Vec<_> = [
        Box::new(agent.0.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(agent.0.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|stream| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        })
    })
    .collect();
    drop(tx);
    let mut log = Vec::<String>::new();
    // Collects lines for `limit`, or until one contains `until`; the number of such lines.
    let wait = |log: &mut Vec<String>, until: &str, limit: Duration| {
        let start = Instant::now();
        while start.elapsed() < limit {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    let hit = line.contains(until);
                    log.push(line);
                    if hit {
                        break;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
        }
        log.iter().filter(|l| l.contains(until)).count()
    };
    assert_eq!(
        wait(&mut log, "checking kubepods every", Duration::from_secs(20)),
        1,
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("may not hold")), "{log:#?}");
    let top = s.cgroup.clone();
    attach_other(&mut s, &top, "setsockopt", &pass_through);
    let attached = Instant::now();
    assert_eq!(
        wait(&mut log, "enforcement may not hold", Duration::from_secs(5)),
        1,
        "no warning within 5 s of --recheck 200ms: {log:#?}"
    );
    let took = attached.elapsed();
    // Said once: a few more rechecks add nothing.
    let warned = wait(&mut log, "enforcement may not hold", Duration::from_secs(1));
    assert_eq!(warned, 1, "{log:#?}");
    let warning = log.iter().find(|l| l.contains("may not hold")).unwrap();
    assert!(
        warning.contains("(other_setsockop)") && warning.contains("warning"),
        "{warning}"
    );
    // What it warns about, read back from the kernel: a pod's write gets through.
    let mut p = Peer::start(Some(&s.cgroup.join("kubepods/burstable/pod-a")));
    p.ask("pair4");
    let r = p.ask(&format!("set 0 {SOL_SOCKET} {SO_KEEPALIVE} 0 4"));
    assert_eq!(ints(&r["client"])[0], 0, "{r}");
    detach_other(&mut s);
    assert_eq!(
        wait(&mut log, "enforcement holds again", Duration::from_secs(5)),
        1,
        "{log:#?}"
    );
    assert_eq!(
        wait(&mut log, "holds again", Duration::from_secs(1)),
        1,
        "{log:#?}"
    );
    println!(
        "  pass-through after ours: warned after {} ms (--recheck 200ms)",
        took.as_millis()
    );
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGTERM) };
    let status = agent.0.wait().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(status.code(), Some(0), "{log:#?}");
    let out = s.cli(&["cgroup", "status", kubepods.to_str().unwrap()]);
    assert_eq!(code(&out), exit::NOT_ATTACHED, "{}", text(&out));
    Ok(())
}

/// A 32-bit program's setsockopt (x86 `int $0x80`; AArch32 on arm64 alike) is a compat system
/// call, and the kernel runs cgroup/setsockopt programs only for 64-bit ones (net/socket.c skips
/// BPF when `in_compat_syscall()`): in an enforced cgroup such a write gets through, turning
/// keep-alive off or lengthening it, and is not counted as capped. cgroup/README.md states the
/// exception; this case proves it and fails when a kernel changes it. The same socket's 64-bit
/// writes are capped (enforcement is on).
#[cfg(target_arch = "x86_64")]
fn ia32_setsockopt_is_not_enforced() -> Outcome {
    let s = Scratch::new();
    s.attach(&["--idle", "7", "--interval", "3", "--count", "2"]);
    let mut p = Peer::start(Some(&s.cgroup));
    assert_eq!(ints(&p.ask("pair4")["client"]), [1, 7, 3, 2, 0]);
    let capped = |s: &Scratch| s.status()["attachments"][0]["capped"].as_u64().unwrap();
    let before = capped(&s);
    let r = p.ask(&format!("set32 0 {SOL_SOCKET} {SO_KEEPALIVE} 0"));
    if r["ret"] == -i64::from(libc::ENOSYS) {
        return Err(format!(
            "{}this kernel runs no 32-bit system calls (ia32 emulation off), so no 32-bit \
             program can make the call: {r}",
            harness::NOT_APPLICABLE
        ));
    }
    assert_eq!(
        (&r["ret"], &r["value"]),
        (&Value::from(0), &Value::from(0)),
        "{r}"
    );
    let r = p.ask(&format!("set32 0 {TCP} {KEEPIDLE} 999"));
    assert_eq!(r["ret"], 0, "{r}");
    assert_eq!(ints(&r["client"]), [0, 999, 3, 2, 0], "{r}");
    assert_eq!(
        capped(&s),
        before,
        "a 32-bit write is not counted as capped"
    );
    // The same socket's 64-bit writes are capped and counted.
    let r = p.ask(&format!("set 0 {TCP} {KEEPIDLE} 999 4"));
    assert_eq!(ints(&r["client"]), [0, 7, 3, 2, 0], "{r}");
    let r = p.ask(&format!("set 0 {SOL_SOCKET} {SO_KEEPALIVE} 0 4"));
    assert_eq!(ints(&r["client"]), [1, 7, 3, 2, 0], "{r}");
    assert!(capped(&s) >= before + 2, "{}", s.status());
    Ok(())
}

/// Our programs attached to `cgroup` itself, as the kernel lists them (bpftool cgroup show):
/// the ids of `set_keepalive` and of `enforce_keepalive`.
fn ours_on(cgroup: &Path) -> (Vec<u64>, Vec<u64>) {
    try_ours_on(cgroup).unwrap_or_else(|e| panic!("{e}"))
}

fn try_ours_on(cgroup: &Path) -> Result<(Vec<u64>, Vec<u64>), String> {
    let out = bpftool(&["cgroup", "show", cgroup.to_str().unwrap(), "--json"]);
    if !out.status.success() {
        return Err(format!("bpftool cgroup show: {}", text(&out)));
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let ids = |name: &str| -> Vec<u64> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter(|p| p["name"] == name)
                    .filter_map(|p| p["id"].as_u64())
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok((ids("set_keepalive"), ids("enforce_keepalive")))
}

/// The kernel's tag of a program, by id.
fn prog_tag(id: u64) -> String {
    let out = bpftool(&["prog", "show", "id", &id.to_string(), "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["tag"].as_str().unwrap_or_default().to_string()
}

/// "Another version" of our programs: bpf/keepalive.bpf.c compiled with -DTCPKA_VARIANT=1
/// (the same behaviour, other instructions, so other program tags).
fn variant_object() -> PathBuf {
    compile_bpf(
        "../cgroup/bpf/keepalive.bpf.c",
        "keepalive-variant.bpf.o",
        &["-Wall", "-Werror", "-DTCPKA_VARIANT=1"],
    )
}

/// A running agent and the thread that reads the rest of its output.
struct Agent {
    child: Child,
    rest: std::thread::JoinHandle<String>,
}

/// A node agent at `s.cgroup`'s kubepods with 11/4/3, loading `object` when given; returns once
/// it says it is waiting, with what it said.
fn start_agent(s: &Scratch, object: Option<&Path>) -> (Agent, String) {
    let mut cmd = Command::new(cli_exe());
    cmd.args([
        "cgroup",
        "agent",
        "--cgroup-root",
        s.cgroup.to_str().unwrap(),
    ])
    .args(["--idle", "11", "--interval", "4", "--count", "3"])
    .args(["--recheck", "200ms"])
    .env("TCP_KEEPALIVE_PIN_ROOT", &s.pins)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(object) = object {
        cmd.env("TCP_KEEPALIVE_BPF_OBJECT", object);
    }
    let mut agent = cmd.spawn().unwrap();
    let mut out = BufReader::new(agent.stdout.take().unwrap());
    let mut said = String::new();
    // Bounded by the agent: it says "waiting" or ends (EOF).
    while !said.contains("agent: waiting") {
        if out.read_line(&mut said).unwrap() == 0 {
            let _ = agent.kill();
            panic!("the agent ended: {said}");
        }
    }
    // The rest of its output, read until it ends, so it never blocks on a full pipe.
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
        rest
    });
    (Agent { child: agent, rest }, said)
}

/// SIGTERM to an agent; its exit code and what it wrote after "waiting" (stdout, stderr).
fn stop_agent(agent: Agent) -> (i32, String) {
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(agent.child.id() as i32, libc::SIGTERM) };
    let out = agent.child.wait_with_output().unwrap();
    let rest = agent.rest.join().unwrap();
    (code(&out), format!("{rest}{}", text(&out)))
}

/// Upgrades with no gap. Connections are made continuously from a pod below kubepods while the
/// node agent is stopped (it leaves its programs attached), started again with the same
/// version (it adopts them: the same program ids), stopped, and started with a changed program
/// (TCP_KEEPALIVE_BPF_OBJECT: another tag), which replaces ours in place. Every connection, made
/// or accepted, reads back the settings from the kernel; the kernel lists exactly one
/// `set_keepalive` and one `enforce_keepalive` on kubepods at every sample taken meanwhile; the
/// counters are carried over.
fn agent_upgrade_without_a_gap() -> Outcome {
    let s = Scratch::new();
    let pod = s.child("kubepods/burstable/pod-upgrade");
    let kubepods = s.cgroup.join("kubepods");
    let variant = variant_object();

    let (first, said) = start_agent(&s, None);
    assert!(said.contains("attached to "), "{said}");
    let (ops, opts) = ours_on(&kubepods);
    assert_eq!((ops.len(), opts.len()), (1, 1), "{ops:?} {opts:?}");

    // The kernel's list of our programs on kubepods, sampled until the end (bounded by `done`).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let kubepods = kubepods.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !done.load(Ordering::SeqCst) {
                // A failed read is a sample that fails the case (never one of each).
                let (o, p) = try_ours_on(&kubepods).unwrap_or_default();
                samples.push((o.len(), p.len()));
                std::thread::sleep(Duration::from_millis(5));
            }
            samples
        })
    };
    let mut p = Peer::start(Some(&pod));
    assert_eq!(p.ask("storm 30000")["started"], true);
    std::thread::sleep(Duration::from_millis(300));

    // Stopped: the programs stay; nothing runs for a while, connections keep coming.
    let (rc, out) = stop_agent(first);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("leaving the attachment in place"), "{out}");
    std::thread::sleep(Duration::from_millis(300));
    let configured = s.status_of(&kubepods)["configured"].as_u64().unwrap();

    // The same version again: adopted, the same programs.
    let (second, said) = start_agent(&s, None);
    assert!(
        said.starts_with("updated ") && !said.contains("replaced"),
        "{said}"
    );
    assert_eq!(ours_on(&kubepods), (ops.clone(), opts.clone()));
    std::thread::sleep(Duration::from_millis(300));
    let (rc, out) = stop_agent(second);
    assert_eq!(rc, 0, "{out}");

    // A changed program: replaced in place.
    let (third, said) = start_agent(&s, Some(&variant));
    assert!(
        said.contains("replaced the programs of cgroup id"),
        "{said}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let storm = p.ask("stop");
    done.store(true, Ordering::SeqCst);
    let samples = sampler.join().unwrap();

    assert_eq!(
        storm["stopped"], true,
        "the connections ran out before the upgrade was over: {storm}"
    );
    // The client side tells: each connection made gets the settings at TCP_CONNECT_CB. The
    // accepted ones get them at PASSIVE_ESTABLISHED_CB, and once an agent's sweep has capped
    // the storm's listener (an open TCP socket of the pod) from it too.
    for side in ["client", "server"] {
        let tally = storm[side].as_object().unwrap();
        let n: u64 = tally.values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(
            tally.keys().collect::<Vec<_>>(),
            ["1 11 4 3 0"],
            "{side}: every connection must have the settings: {storm}"
        );
        assert!(n >= 500, "{side}: only {n} connections: {storm}");
        println!("  {side}: {n} connections, all 1 11 4 3 0");
    }
    assert!(samples.len() >= 10, "only {} samples", samples.len());
    let off: Vec<_> = samples.iter().filter(|c| **c != (1, 1)).collect();
    assert!(
        off.is_empty(),
        "our programs on kubepods were not one of each in {} of {} samples: {off:?}",
        off.len(),
        samples.len()
    );
    println!(
        "  {} samples of the kernel's list: one set_keepalive and one enforce_keepalive in each",
        samples.len()
    );
    let (new_ops, new_opts) = ours_on(&kubepods);
    assert_eq!((new_ops.len(), new_opts.len()), (1, 1));
    assert_ne!((&new_ops, &new_opts), (&ops, &opts), "not replaced");
    assert_ne!(prog_tag(new_ops[0]), prog_tag(ops[0]));
    let after = s.status_of(&kubepods);
    assert_eq!(after["linked"], true, "{after}");
    assert!(
        after["configured"].as_u64().unwrap() >= configured,
        "the counters were not carried over: {after} (before: {configured})"
    );
    // The sweep's check of a socket's cgroup still answers (the probe number carried over).
    let out = s.cli(&[
        "cgroup",
        "attach",
        kubepods.to_str().unwrap(),
        "--idle",
        "11",
        "--interval",
        "4",
        "--count",
        "3",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let (rc, out) = stop_agent(third);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(ours_on(&kubepods).0.len(), 1, "the last agent left them");
    let out = s.cli(&["cgroup", "detach", "--all"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(ours_on(&kubepods), (vec![], vec![]));
    Ok(())
}

/// In one process, through the library (as a Kubernetes agent adopts an attachment per pod):
/// adopting again writes the settings and keeps the programs (the second time from the tags it
/// remembers, without loading); a changed object replaces them, the built-in one replaces them
/// back; the tags are remembered per object, never mixed up. Each step's settings read back from
/// a new connection, one program of each kind on the cgroup throughout.
fn adopt_in_one_process() -> Outcome {
    use tcp_keepalive::KeepAlive;
    use tcp_keepalive_cgroup::{Attached, Attachments, Cgroup};
    let s = Scratch::new();
    let cg = Cgroup::open(&s.cgroup).unwrap();
    let builtin = Attachments::new(&s.pins);
    let variant = Attachments::new(&s.pins).with_object(variant_object());
    let steps = [
        (&builtin, 21, Attached::New, false),
        (&builtin, 22, Attached::Updated, false),
        (&builtin, 23, Attached::Updated, false),
        (&variant, 24, Attached::Updated, true),
        (&variant, 25, Attached::Updated, false),
        (&builtin, 26, Attached::Updated, true),
        (&builtin, 27, Attached::Updated, false),
    ];
    let mut ids = (Vec::new(), Vec::new());
    for (door, idle, attached, replaced) in steps {
        let k = KeepAlive::new(Duration::from_secs(idle), Duration::from_secs(5), 4).unwrap();
        let r = door
            .attach_report(&cg, &k, true)
            .unwrap_or_else(|e| panic!("idle {idle}: {e}"));
        assert_eq!(
            (r.attached, r.replaced),
            (attached, replaced),
            "idle {idle}"
        );
        let now = ours_on(&s.cgroup);
        assert_eq!((now.0.len(), now.1.len()), (1, 1), "idle {idle}: {now:?}");
        match (attached, replaced) {
            (Attached::New, _) => {}
            (_, true) => assert_ne!(now, ids, "idle {idle}: not replaced"),
            (_, false) => assert_eq!(now, ids, "idle {idle}: the programs changed"),
        }
        ids = now;
        let mut p = Peer::start(Some(&s.cgroup));
        assert_eq!(
            ints(&p.ask("pair4")["client"]),
            [1, idle as i64, 5, 4, 0],
            "idle {idle}"
        );
    }
    Ok(())
}

/// The pin directory of `cgroup`'s attachment, from status.
fn pins_dir(s: &Scratch, cgroup: &Path) -> PathBuf {
    PathBuf::from(s.status_of(cgroup)["pins"].as_str().unwrap())
}

/// `cgroup detach --all`: every attachment of ours goes (a partial one, one of a cgroup gone,
/// one an upgrade left half-way included), then the pin root; someone else's program stays
/// attached; run again it has nothing to do. An entry that is not ours is named and kept, the
/// rest removed all the same; without the privileges nothing is removed.
fn detach_all_leaves_nothing_of_ours() -> Outcome {
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
    let (other_sock_ops, _) = other_programs(&other_dir);
    let [a, b, c, gone] = ["a", "b", "c", "gone"].map(|n| s.child(n));
    attach_other(&mut s, &a, "sock_ops", &other_sock_ops);
    for cg in [&a, &b, &c, &gone] {
        let out = s.cli(&["cgroup", "attach", cg.to_str().unwrap(), "--idle", "7"]);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    // Partial: pins lost mid-way (a crash).
    let c_pins = pins_dir(&s, &c);
    for pin in ["settings", "sock_ops_prog"] {
        std::fs::remove_file(c_pins.join(pin)).unwrap();
    }
    // An upgrade that did not finish: a `_next` pin beside the others.
    let b_pins = pins_dir(&s, &b);
    let made = |path: &Path| {
        let out = bpftool(&[
            "map",
            "create",
            path.to_str().unwrap(),
            "type",
            "array",
            "key",
            "4",
            "value",
            "8",
            "entries",
            "1",
            "name",
            "tcpka_test",
        ]);
        assert!(out.status.success(), "bpftool map create: {}", text(&out));
    };
    made(&b_pins.join("probe_next"));
    // A cgroup removed: its links defunct, its pins stay.
    std::fs::remove_dir(&gone).unwrap();

    // Usage errors, and a user without the privileges: nothing removed.
    for args in [
        vec!["cgroup", "detach"],
        vec!["cgroup", "detach", a.to_str().unwrap(), "--all"],
    ] {
        let out = s.cli(&args);
        assert_eq!(code(&out), exit::USAGE, "{args:?}: {}", text(&out));
    }
    let out = s.cli_as(&["cgroup", "detach", "--all"], Some(NOBODY));
    assert_eq!(code(&out), exit::BPF_PERMISSION, "{}", text(&out));
    assert_eq!(attachment_dirs(&s.pins).len(), 4);

    let out = s.cli(&["cgroup", "detach", "--all"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("attachments removed: 4"),
        "{}",
        text(&out)
    );
    assert!(!s.pins.exists(), "the pin root stays: {}", text(&out));
    assert_eq!(attached_names(&a), ["other_sock_ops"]);
    assert!(attached_names(&b).is_empty() && attached_names(&c).is_empty());
    let mut p = Peer::start(Some(&a));
    assert_eq!(ints(&p.ask("pair4")["client"]), system_defaults());
    let out = s.cli(&["cgroup", "detach", "--all"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("nothing under"), "{}", text(&out));

    // Not ours: a pin we never make inside an attachment's directory, a directory of another
    // name in the pin root. Named, kept; our links detached and our pins removed all the same.
    s.attach(&["--idle", "7"]);
    let out = s.cli(&["cgroup", "attach", b.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let b_pins = pins_dir(&s, &b);
    made(&b_pins.join("foreign"));
    std::fs::create_dir(s.pins.join("notours")).unwrap();
    let out = s.cli(&["cgroup", "detach", "--all"]);
    assert_eq!(code(&out), exit::UNTRUSTED_PINS, "{}", text(&out));
    assert!(text(&out).contains("foreign"), "{}", text(&out));
    assert!(
        text(&out).contains("notours") && text(&out).contains("left as it is"),
        "{}",
        text(&out)
    );
    assert!(attached_names(&b).is_empty() && attached_names(&s.cgroup).is_empty());
    let mut left = attachment_dirs(&s.pins);
    left.sort();
    assert_eq!(
        left,
        [b_pins.file_name().unwrap().to_str().unwrap(), "notours"]
    );
    assert_eq!(
        std::fs::read_dir(&b_pins)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect::<Vec<_>>(),
        ["foreign"]
    );
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
            "values_set_before_connect_are_capped",
            values_set_before_connect_are_capped,
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
        (
            "beside_a_pass_through_program",
            beside_a_pass_through_program,
        ),
        ("one_attachment_per_cgroup", one_attachment_per_cgroup),
        ("least_privileges", least_privileges),
        ("concurrent_attaches", concurrent_attaches),
        ("bad_input", bad_input),
        (
            "sweep_only_the_cgroups_own_sockets",
            sweep_only_the_cgroups_own_sockets,
        ),
        ("status_reads_the_kernel", status_reads_the_kernel),
        ("pin_root_trust", pin_root_trust),
        ("cgroup_root_refused", cgroup_root_refused),
        ("refusals_told_apart", refusals_told_apart),
        ("escapes_in_names", escapes_in_names),
        ("agent_attaches_at_kubepods", agent_attaches_at_kubepods),
        (
            "agent_notices_kubepods_made_again",
            agent_notices_kubepods_made_again,
        ),
        (
            "agent_warns_when_enforcement_stops_holding",
            agent_warns_when_enforcement_stops_holding,
        ),
        #[cfg(target_arch = "x86_64")]
        (
            "ia32_setsockopt_is_not_enforced",
            ia32_setsockopt_is_not_enforced,
        ),
        ("agent_upgrade_without_a_gap", agent_upgrade_without_a_gap),
        ("adopt_in_one_process", adopt_in_one_process),
        (
            "detach_all_leaves_nothing_of_ours",
            detach_all_leaves_nothing_of_ours,
        ),
    ];
    harness::run(cases);
}
