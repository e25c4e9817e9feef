//! The middlebox lab's Rust client: one slow HTTP/1.0 request over a `std::net::TcpStream` whose
//! keep-alive comes from the environment through `KeepAlive::from_env()` and `apply`.
//!
//! What a Rust program copies is the few lines under "The fix" in `main`; the rest speaks the
//! lab's contract (`e2e/README.md`):
//! `LAB_HOST`, `LAB_PORT`, `LAB_PATH`, `LAB_DEADLINE` (seconds, the read deadline),
//! `LAB_KEEPALIVE` (`on`/`off`), `LAB_WRITE_AFTER` (send a POST whose body follows the headers
//! that many seconds later), and the `TCP_KEEPALIVE_*` variables.
//! Exit 0: the full answer; 10: the deadline passed; 11: the connection failed (errno name
//! printed); 2: a bad environment.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tcp_keepalive::{inspect, EnvConfig, KeepAlive};

const BODY_LEN: usize = 4096;

/// How the request ended, mapped to the lab's exit codes.
enum Outcome {
    Answer(String),
    Deadline,
    Failed(io::Error, &'static str),
}

fn main() -> ExitCode {
    let start = Instant::now();
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(msg) => {
            println!("bad environment: {msg}");
            return ExitCode::from(2);
        }
    };
    let addr = SocketAddr::new(cfg.host, cfg.port);
    let stream = match TcpStream::connect_timeout(&addr, cfg.deadline) {
        Ok(s) => s,
        Err(e) => return report(Outcome::Failed(e, "connect"), start, ""),
    };

    // The fix: keep-alive from TCP_KEEPALIVE_* (idle, interval, count, user timeout), applied to
    // the connected socket, all or nothing.
    if cfg.keepalive {
        let keepalive = match KeepAlive::from_env() {
            Ok(EnvConfig::On(k)) => Some(k),
            Ok(EnvConfig::Unset) => Some(KeepAlive::default()),
            Ok(EnvConfig::Off) => None,
            Err(e) => {
                println!("bad environment: {e}");
                return ExitCode::from(2);
            }
        };
        if let Some(k) = keepalive {
            if let Err(e) = k.apply(&stream) {
                println!("keep-alive not applied: {e}");
                return ExitCode::from(2);
            }
        }
    }
    // Read back from the kernel, for the report line.
    let settings = match inspect(&stream) {
        Ok(s) if s.enabled => format!(
            " [kernel: keep-alive idle {}s, interval {}s, count {}{}]",
            s.idle.as_secs(),
            s.interval.as_secs(),
            s.count,
            s.user_timeout
                .map(|t| format!(", user timeout {}ms", t.as_millis()))
                .unwrap_or_default()
        ),
        Ok(_) => " [kernel: keep-alive off]".to_string(),
        Err(e) => format!(" [inspect failed: {e}]"),
    };

    let outcome = exchange(stream, &cfg);
    report(outcome, start, &settings)
}

struct Config {
    host: IpAddr,
    port: u16,
    path: String,
    deadline: Duration,
    keepalive: bool,
    write_after: Option<Duration>,
}

impl Config {
    fn from_env() -> Result<Config, String> {
        fn var(name: &str) -> Result<String, String> {
            std::env::var(name).map_err(|_| format!("{name} is not set"))
        }
        fn seconds(name: &str, text: &str) -> Result<Duration, String> {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s < 86_400.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("{name}={text:?}: expected seconds between 0 and 86400"))
        }
        let host = var("LAB_HOST")?;
        let host = host
            .trim_matches(|c| c == '[' || c == ']')
            .parse()
            .map_err(|_| format!("LAB_HOST={host:?}: expected an IP address"))?;
        let port = var("LAB_PORT")?;
        let port = port
            .parse()
            .map_err(|_| format!("LAB_PORT={port:?}: expected a port number"))?;
        let keepalive = match std::env::var("LAB_KEEPALIVE").as_deref() {
            Ok("on") => true,
            Ok("off") | Err(_) => false,
            Ok(other) => return Err(format!("LAB_KEEPALIVE={other:?}: expected on or off")),
        };
        let write_after = match std::env::var("LAB_WRITE_AFTER") {
            Ok(t) => Some(seconds("LAB_WRITE_AFTER", &t)?),
            Err(_) => None,
        };
        Ok(Config {
            host,
            port,
            path: var("LAB_PATH")?,
            deadline: seconds("LAB_DEADLINE", &var("LAB_DEADLINE")?)?,
            keepalive,
            write_after,
        })
    }
}

/// Sends the request and reads the whole answer before the deadline.
fn exchange(mut stream: TcpStream, cfg: &Config) -> Outcome {
    let host = match cfg.host {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let method = if cfg.write_after.is_some() {
        "POST"
    } else {
        "GET"
    };
    let mut head = format!(
        "{method} {} HTTP/1.0\r\nHost: {host}:{}\r\nUser-Agent: tcp-keepalive-lab-rust\r\n",
        cfg.path, cfg.port
    );
    if cfg.write_after.is_some() {
        head.push_str(&format!(
            "Content-Type: application/octet-stream\r\nContent-Length: {BODY_LEN}\r\n"
        ));
    }
    head.push_str("\r\n");
    if let Err(e) = stream.write_all(head.as_bytes()) {
        return Outcome::Failed(e, "write");
    }
    if let Some(after) = cfg.write_after {
        std::thread::sleep(after);
        // Into a black hole this succeeds (the kernel buffers it); the retransmissions that follow
        // are what TCP_USER_TIMEOUT bounds.
        if let Err(e) = stream.write_all(&[b'x'; BODY_LEN]) {
            return Outcome::Failed(e, "write");
        }
    }

    let until = Instant::now() + cfg.deadline;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(done) = complete(&answer) {
            return done;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::Deadline;
        }
        if let Err(e) = stream.set_read_timeout(Some(left)) {
            return Outcome::Failed(e, "set_read_timeout");
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before the full answer",
                );
                return Outcome::Failed(e, "read");
            }
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // SO_RCVTIMEO expiring: EAGAIN. A dead connection is ETIMEDOUT, kept apart.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Outcome::Deadline,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Outcome::Failed(e, "read"),
        }
    }
}

/// `Some` once `answer` holds a complete HTTP response (status 200 and Content-Length bytes).
fn complete(answer: &[u8]) -> Option<Outcome> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        let e = io::Error::other(format!("unexpected status line {status:?}"));
        return Some(Outcome::Failed(e, "http"));
    }
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    let Some(length) = length else {
        return Some(Outcome::Failed(
            io::Error::other("no Content-Length"),
            "http",
        ));
    };
    let body = &answer[end + 4..];
    (body.len() >= length)
        .then(|| Outcome::Answer(String::from_utf8_lossy(&body[..length]).trim().to_string()))
}

fn report(outcome: Outcome, start: Instant, settings: &str) -> ExitCode {
    let took = start.elapsed().as_secs_f64();
    match outcome {
        Outcome::Answer(body) => {
            println!("answer: {body} (after {took:.1} s){settings}");
            ExitCode::SUCCESS
        }
        Outcome::Deadline => {
            println!("deadline: no answer (after {took:.1} s){settings}");
            ExitCode::from(10)
        }
        Outcome::Failed(e, during) => {
            let name = e.raw_os_error().map_or("-", errno_name);
            println!("{name}: {during}: {e} (after {took:.1} s){settings}");
            ExitCode::from(11)
        }
    }
}

fn errno_name(code: i32) -> &'static str {
    match code {
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EPIPE => "EPIPE",
        libc::EAGAIN => "EAGAIN",
        libc::EINPROGRESS => "EINPROGRESS",
        _ => "errno",
    }
}
