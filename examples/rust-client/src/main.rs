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
    let cfg = match Config::from_lookup(|name| std::env::var(name).ok()) {
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
    /// Reads the `LAB_*` variables through `lookup` (a variable's value, or `None`).
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let var = |name: &str| lookup(name).ok_or_else(|| format!("{name} is not set"));
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
        let keepalive = match lookup("LAB_KEEPALIVE").as_deref() {
            Some("on") => true,
            Some("off") | None => false,
            Some(other) => return Err(format!("LAB_KEEPALIVE={other:?}: expected on or off")),
        };
        let write_after = match lookup("LAB_WRITE_AFTER") {
            Some(t) => Some(seconds("LAB_WRITE_AFTER", &t)?),
            None => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    const GOOD: &[(&str, &str)] = &[
        ("LAB_HOST", "fd00:2::2"),
        ("LAB_PORT", "8080"),
        ("LAB_PATH", "/slow?seconds=6"),
        ("LAB_DEADLINE", "10"),
        ("LAB_KEEPALIVE", "on"),
        ("LAB_WRITE_AFTER", "1.5"),
    ];

    fn with(name: &str, value: &str) -> Vec<(&'static str, String)> {
        GOOD.iter()
            .map(|(k, v)| (*k, if *k == name { value } else { v }.to_string()))
            .collect()
    }

    fn err(name: &str, value: &str) -> String {
        let vars = with(name, value);
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match config(&refs) {
            Ok(_) => panic!("{name}={value:?} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn reads_the_contract() {
        let c = config(GOOD).unwrap();
        assert_eq!(c.host, "fd00:2::2".parse::<IpAddr>().unwrap());
        assert_eq!(c.port, 8080);
        assert_eq!(c.path, "/slow?seconds=6");
        assert_eq!(c.deadline, Duration::from_secs(10));
        assert!(c.keepalive);
        assert_eq!(c.write_after, Some(Duration::from_millis(1500)));
        let bracketed = config(&[
            ("LAB_HOST", "[fd00:2::2]"),
            ("LAB_PORT", "1"),
            ("LAB_PATH", "/"),
            ("LAB_DEADLINE", "0.5"),
        ])
        .unwrap();
        assert_eq!(bracketed.host, "fd00:2::2".parse::<IpAddr>().unwrap());
        assert!(!bracketed.keepalive);
        assert_eq!(bracketed.write_after, None);
    }

    #[test]
    fn bad_values_name_the_variable_and_what_is_allowed() {
        let e = err("LAB_HOST", "server.example");
        assert!(
            e.contains("LAB_HOST=\"server.example\"") && e.contains("IP address"),
            "{e}"
        );
        let e = err("LAB_PORT", "70000");
        assert!(
            e.contains("LAB_PORT=\"70000\"") && e.contains("port number"),
            "{e}"
        );
        let e = err("LAB_DEADLINE", "-1");
        assert!(
            e.contains("LAB_DEADLINE=\"-1\"") && e.contains("between 0 and 86400"),
            "{e}"
        );
        let e = err("LAB_WRITE_AFTER", "soon");
        assert!(e.contains("LAB_WRITE_AFTER=\"soon\""), "{e}");
        let e = err("LAB_KEEPALIVE", "maybe");
        assert!(
            e.contains("LAB_KEEPALIVE=\"maybe\"") && e.contains("on or off"),
            "{e}"
        );
        let e = config(&[("LAB_HOST", "1.2.3.4")]).err().unwrap();
        assert!(e.contains("LAB_PORT is not set"), "{e}");
    }

    #[test]
    fn an_answer_is_complete_only_with_all_its_bytes() {
        let head = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert!(complete(b"HTTP/1.0 200 OK\r\nContent-").is_none());
        let mut partial = head.to_vec();
        partial.extend_from_slice(b"abc");
        assert!(complete(&partial).is_none());
        partial.extend_from_slice(b"de");
        assert!(matches!(complete(&partial), Some(Outcome::Answer(b)) if b == "abcde"));
        let bad = complete(b"HTTP/1.0 503 Busy\r\nContent-Length: 0\r\n\r\n");
        assert!(matches!(bad, Some(Outcome::Failed(e, "http")) if e.to_string().contains("503")));
        let no_length = complete(b"HTTP/1.0 200 OK\r\n\r\nabc");
        assert!(matches!(no_length, Some(Outcome::Failed(_, "http"))));
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::ETIMEDOUT), "ETIMEDOUT");
        assert_eq!(errno_name(libc::ECONNRESET), "ECONNRESET");
        assert_eq!(errno_name(9999), "errno");
    }
}
