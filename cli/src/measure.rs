//! `measure HOST:PORT`: the idle timeout of the path to any TCP listener, found with keep-alive
//! probes; `measure --listen PORT`: the far end of the two-sided mode.
//!
//! How (cli/README.md, "measure"): connections are opened and left silent. A
//! connection is asked one question, "is the flow still known after A seconds of silence?", by
//! setting its keep-alive idle to 1 s once it has been silent for A seconds: the kernel probes at
//! once. An answered probe says yes (and restarts that connection's silence, so it can be asked
//! again later about a shorter silence); a probe that times out (a dropping firewall) or is reset
//! (a NAT that resets) says no. A ladder of such questions on connections opened together finds
//! the first silence the path does not survive; one or two rounds on younger connections then
//! narrow the bracket. Silence counts from each connection's own last packet (its handshake, or
//! the answer to its last probe), times from the kernel's own record (`TCP_INFO`), never from the
//! idle that was asked for.
//!
//! Every keep-alive option is set by core (`KeepAlive::apply`); `tcp_info` reads the probes.

use std::io::{self, BufRead, BufReader, ErrorKind, IsTerminal, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tcp_keepalive::{parse_seconds, tcp_info, Error, KeepAlive, MAX_SECONDS};

use crate::fail::Failure;

/// What the far end (`measure --listen`) says first on every connection.
const BANNER: &str = "tcp-keepalive-measure 1\n";
/// The default `--max`: longer than every cloud default (GCP's 10 min).
pub const DEFAULT_MAX: &str = "15m";
/// How long a connect may take before the target counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The youngest silence a probe can ask about: TCP_KEEPIDLE is whole seconds, at least 1.
const MIN_AGE: f64 = 1.02;
/// A probe not answered this long after it left is taken as lost for planning (the kernel's own
/// verdict, ETIMEDOUT, comes 1 s after the probe and is what the bracket uses).
const SILENCE: f64 = 0.25;
/// Fine rounds after the ladder, at most.
const MAX_FINE_ROUNDS: u32 = 4;
/// Questions asked at once in a fine round.
const FINE_WIDTH: usize = 5;
/// Younger connections opened shortly after the ladder's, for the fine rounds of short timeouts
/// (seconds after the start).
const SPARES_AT: [f64; 3] = [0.25, 0.5, 0.75];

/// The silences the ladder asks about: every 0.5 s up to 6 s (the bracket's goal there is 0.5 s),
/// then 25 % apart (the goal is 5 %, which the fine rounds reach), and `max` last.
pub fn ladder(max: f64) -> Vec<f64> {
    let mut rungs = Vec::new();
    let mut a = 1.0_f64;
    while a < max - 1e-9 {
        rungs.push(a);
        a = if a < 6.0 { a + 0.5 } else { a * 1.25 };
    }
    rungs.push(max);
    rungs
}

/// Width the bracket is narrowed to: 4.5 % of its low end or 0.45 s, whichever is wider (the goal
/// is 5 % or 0.5 s; the margin absorbs the round-trip time added to the high end).
fn tolerance(low: f64) -> f64 {
    (0.045 * low).max(0.45)
}

/// The keep-alive that keeps a path whose idle timeout is longer than `low` seconds: the first
/// probe well before it (half of it, at most the default 60 s; keep-alive timers fire up to 1/8
/// late), and unanswered probes repeated soon enough that one lost probe still keeps the flow.
pub fn keepalive_for(low: f64) -> (u64, u64) {
    let idle = ((low / 2.0).floor() as u64).clamp(1, 60);
    let interval = (((low - idle as f64) / 3.0).floor() as u64).clamp(1, 10);
    (idle, interval)
}

/// `HOST:PORT` (`[v6]:PORT`), resolved to the addresses of the family asked for.
fn resolve(target: &str, family: Option<u8>) -> Result<Vec<SocketAddr>, Failure> {
    let bad = || {
        Failure::invalid(Error::InvalidArgument {
            name: "target".into(),
            value: target.into(),
            allowed: "HOST:PORT with a port from 1 to 65535 (IPv6 as [ADDR]:PORT), e.g. db.example:5432 or [2001:db8::1]:443".into(),
        })
    };
    let t = target.trim();
    let (host, port) = match t.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.contains(':') || h.starts_with('[') => (h, p),
        _ => return Err(bad()),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = match port.parse() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => return Err(bad()),
    };
    if host.is_empty() {
        return Err(bad());
    }
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            return Err(Failure::Resolve(format!(
                "cannot resolve {host:?}: {e}; check the name, or give an IP address"
            )))
        }
    };
    let wanted: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| match family {
            Some(4) => a.is_ipv4(),
            Some(6) => a.is_ipv6(),
            _ => true,
        })
        .collect();
    if wanted.is_empty() {
        let fam = if family == Some(4) { "IPv4" } else { "IPv6" };
        let had: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        return Err(Failure::Resolve(format!(
            "{host:?} has no {fam} address (it resolved to {}); drop --ipv{} or use the other family",
            if had.is_empty() { "nothing".into() } else { had.join(", ") },
            if family == Some(4) { 4 } else { 6 }
        )));
    }
    Ok(wanted)
}

/// The probe settings: first probe after 1 s of silence (at once on a connection silent longer),
/// one probe, the kernel's verdict 1 s later.
fn probe_now() -> KeepAlive {
    KeepAlive::new(Duration::from_secs(1), Duration::from_secs(1), 1).expect("valid")
}

/// Keep-alive on with the longest idle: the connection stays silent until it is asked.
fn hold() -> KeepAlive {
    KeepAlive::new(
        Duration::from_secs(MAX_SECONDS.into()),
        Duration::from_secs(1),
        1,
    )
    .expect("valid")
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A probe asked for and not yet judged.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Probe {
    /// When the kernel showed it out (`tcpi_probes`), at the latest.
    sent_by: Option<Instant>,
    /// The last ACK before it: a later one is its answer.
    ack_before: Instant,
    /// The silence when it was asked for: it left at or after that.
    low: f64,
    /// When it was asked for.
    asked: Instant,
    /// The check above a first "no": only a "yes" matters, which comes within a round trip.
    confirm: bool,
}

/// One measuring connection.
struct Conn {
    stream: TcpStream,
    /// When its handshake completed (the server's own idle clock starts about then).
    opened: Instant,
    /// The last packet of the flow: the handshake's, the server's data, or the answer to a probe.
    origin: Instant,
    /// Which rung of the ladder it is for (connections opened at the start), if still unasked.
    rung: Option<usize>,
    probe: Option<Probe>,
    /// A fine round's question to ask once its silence reaches this (seconds).
    at: Option<f64>,
    /// A server-to-client test (two-sided mode): the far end sends a line after `after` s.
    after: Option<f64>,
    closed: bool,
    rtt: f64,
}

impl Conn {
    fn new(stream: TcpStream) -> io::Result<Conn> {
        let now = Instant::now();
        let info = tcp_info(&stream).map_err(io::Error::from)?;
        stream.set_nonblocking(true)?;
        let origin = now.checked_sub(info.last_ack_recv).unwrap_or(now);
        Ok(Conn {
            stream,
            opened: origin,
            origin,
            rung: None,
            probe: None,
            at: None,
            after: None,
            closed: false,
            rtt: secs(info.rtt),
        })
    }

    fn age(&self, now: Instant) -> f64 {
        secs(now.saturating_duration_since(self.origin))
    }
}

/// A verdict on one question.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    /// The flow survived at least `low` s of silence.
    Alive { low: f64 },
    /// The flow was forgotten after at most `high` s (reset: the middlebox answered with RST).
    Dead { high: f64, reset: bool },
}

/// Everything measured.
#[derive(Default)]
struct Findings {
    low: f64,
    high: Option<f64>,
    /// Every "no" so far, by its high end: one below a later "yes" was a lost probe, not the path.
    deads: Vec<(f64, bool)>,
    /// Provisional: no answer yet within SILENCE, the kernel's verdict still to come.
    suspect: Option<f64>,
    reset: bool,
    server_closes: Vec<f64>,
    /// Two-sided: the silences asked of the far end, and those whose line arrived or was lost
    /// (each less / plus the connection's round-trip time).
    sc_asked: Vec<f64>,
    sc_arrived: Vec<(f64, f64)>,
    sc_lost: Vec<(f64, f64)>,
    rounds: u32,
    log: Vec<String>,
}

/// `--json` output.
#[derive(Serialize)]
struct Bracket {
    low: f64,
    high: f64,
}

#[derive(Serialize)]
struct Report {
    target: String,
    address: String,
    path_idle_timeout_s: Option<Bracket>,
    /// How the path forgets: "dropped" (probes timed out) or "reset" (probes got an RST).
    path_forgets_by: Option<&'static str>,
    server_idle_close_s: Option<f64>,
    two_sided: bool,
    server_to_client_idle_timeout_s: Option<Bracket>,
    max_s: f64,
    elapsed_s: f64,
    rounds: u32,
    connections: usize,
    recommended: Option<Recommendation>,
    notes: Vec<String>,
}

#[derive(Serialize)]
struct Recommendation {
    idle_s: u64,
    interval_s: u64,
    env: String,
    command: String,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The progress line on a terminal, plain lines otherwise.
struct Progress {
    tty: bool,
    quiet: bool,
    last: Option<Instant>,
}

impl Progress {
    fn line(&mut self, text: &str) {
        if self.quiet {
            return;
        }
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("measure: {text}");
        self.last = None;
    }

    fn bar(&mut self, elapsed: f64, max: f64, f: &Findings) {
        if !self.tty
            || self.quiet
            || self
                .last
                .is_some_and(|l| l.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(Instant::now());
        let width = 30usize;
        let filled = ((elapsed / max.max(1.0)).min(1.0) * width as f64) as usize;
        let state = match f.high.or(f.suspect) {
            Some(h) => format!("between {:.1} and {:.1} s, narrowing", f.low, h),
            None => format!(
                "survives {:.1} s so far, at most {:.0} s left",
                f.low,
                (max - elapsed).max(0.0)
            ),
        };
        eprint!(
            "\r\x1b[2K[{}{}] {:.0} s: {state}",
            "#".repeat(filled),
            " ".repeat(width - filled),
            elapsed
        );
        let _ = io::stderr().flush();
    }

    fn done(&mut self) {
        if self.tty && !self.quiet {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Opens a connection, bounded; the error names the address.
fn connect(addr: SocketAddr) -> Result<TcpStream, Failure> {
    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| {
        let hint = match e.kind() {
            ErrorKind::ConnectionRefused => "; is a listener running on that port?",
            ErrorKind::TimedOut => {
                " (no answer within 10 s: a firewall dropping the SYN, or a wrong address)"
            }
            _ => "",
        };
        Failure::Connect(format!("cannot connect to {addr}: {e}{hint}"))
    })
}

/// The arguments of `measure`.
pub struct Args<'a> {
    /// `HOST:PORT`.
    pub target: &'a str,
    /// `--max` as given.
    pub max: Option<&'a str>,
    /// `--ipv4` / `--ipv6`.
    pub family: Option<u8>,
    /// `--json`.
    pub json: bool,
}

/// `tcp-keepalive measure HOST:PORT [--max D] [--ipv4|--ipv6] [--json]`.
pub fn run_measure(args: &Args) -> Result<i32, Failure> {
    // Everything is checked before the first packet.
    // Whole seconds, as keep-alive's idle (finer values round up, as everywhere).
    let max =
        secs(parse_seconds("max", args.max.unwrap_or(DEFAULT_MAX)).map_err(Failure::invalid)?)
            .ceil();
    let addrs = resolve(args.target, args.family)?;
    // The first address that takes a connection is the one measured.
    let mut first = None;
    let mut last_err = None;
    for addr in &addrs {
        match connect(*addr) {
            Ok(s) => {
                first = Some((*addr, s));
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let Some((addr, first)) = first else {
        return Err(last_err.expect("at least one address"));
    };
    let mut progress = Progress {
        tty: io::stderr().is_terminal(),
        quiet: args.json && !io::stderr().is_terminal(),
        last: None,
    };
    let rungs = ladder(max);
    if !progress.quiet {
        progress.line(&format!(
            "{addr}: {} connections, silent; asking about {} silences up to {max:.0} s",
            rungs.len() + SPARES_AT.len(),
            rungs.len()
        ));
    }
    let start = Instant::now();
    let mut conns: Vec<Conn> = Vec::new();
    let mut c0 = Conn::new(first).map_err(|e| Failure::Other(format!("reading TCP_INFO: {e}")))?;
    hold()
        .apply(&c0.stream)
        .map_err(|e| Failure::Other(e.to_string()))?;
    c0.rung = Some(0);
    conns.push(c0);
    // The ladder's connections, opened together (each one's silence counts from its own handshake).
    let opened: Vec<Result<TcpStream, Failure>> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..rungs.len())
            .map(|_| s.spawn(move || connect(addr)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Failure::Other("connect thread".into())))
            })
            .collect()
    });
    for (i, r) in opened.into_iter().enumerate() {
        match r.and_then(|s| Conn::new(s).map_err(|e| Failure::Other(e.to_string()))) {
            Ok(mut c) => {
                hold()
                    .apply(&c.stream)
                    .map_err(|e| Failure::Other(e.to_string()))?;
                c.rung = Some(i + 1);
                conns.push(c);
            }
            Err(e) => progress.line(&format!("one ladder connection failed: {e}")),
        }
    }
    // Spares and two-sided connections arrive from threads.
    let (tx, rx) = mpsc::channel::<(Option<TcpStream>, Option<f64>)>();
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for at in SPARES_AT {
                let wait = Duration::from_secs_f64(at).saturating_sub(start.elapsed());
                std::thread::sleep(wait);
                if let Ok(s) = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                    if tx.send((Some(s), None)).is_err() {
                        return;
                    }
                }
            }
        });
    }
    let mut f = Findings {
        rounds: 1,
        ..Findings::default()
    };
    let mut two_sided = false;
    let mut sc_ladder_started = false;
    let mut sc_fine_rounds = 0u32;
    let mut fine_rounds = 0u32;
    let mut fine_pending = false;
    let mut confirmed = false;
    let deadline = start + Duration::from_secs_f64(max + 30.0);
    let mut next_rung = 0usize;
    let mut buf = [0u8; 512];

    loop {
        let now = Instant::now();
        // New connections from the threads.
        while let Ok((s, after)) = rx.try_recv() {
            let Some(s) = s else {
                // A two-sided connection that could not be set up: that silence stays unasked.
                f.sc_asked.retain(|a| Some(*a) != after);
                continue;
            };
            match Conn::new(s) {
                Ok(mut c) => {
                    if after.is_none() && hold().apply(&c.stream).is_err() {
                        continue;
                    }
                    c.after = after;
                    conns.push(c);
                }
                Err(_) => continue,
            }
        }
        // Events: data, EOF, errors.
        let mut fds: Vec<libc::pollfd> = conns
            .iter()
            .map(|c| libc::pollfd {
                fd: if c.closed { -1 } else { c.stream.as_raw_fd() },
                events: libc::POLLIN | libc::POLLRDHUP,
                revents: 0,
            })
            .collect();
        let pending = conns.iter().any(|c| c.probe.is_some());
        let wait_ms = if pending { 2 } else { 10 };
        // SAFETY: fds is a live array of pollfd of the given length.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        let now2 = Instant::now();
        for (c, p) in conns.iter_mut().zip(&fds) {
            if c.closed || p.revents == 0 {
                continue;
            }
            let verdict = match c.stream.read(&mut buf) {
                Ok(0) => Some(None),
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    if text.starts_with(BANNER.trim_end()) {
                        two_sided = true;
                    }
                    if let Some(after) = c.after {
                        if text.contains('x') {
                            // The far end's line after `after` s of silence arrived.
                            f.sc_arrived.push((after, after - c.rtt));
                            progress.line(&format!(
                                "server-to-client after {after:.2} s of silence: delivered"
                            ));
                            c.closed = true;
                            continue;
                        }
                    }
                    // Server data counts as traffic: silence starts again.
                    if c.probe.is_none() {
                        c.origin = now2;
                    }
                    None
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                Err(e) => Some(Some(e)),
            };
            // Some(None): EOF; Some(Some(e)): an error.
            let Some(err) = verdict else { continue };
            c.closed = true;
            let age_opened = secs(now2.saturating_duration_since(c.opened));
            match (c.probe.take(), err) {
                (Some(Probe { sent_by, low, .. }), Some(e))
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ETIMEDOUT) | Some(libc::ECONNRESET)
                    ) =>
                {
                    let reset = e.raw_os_error() == Some(libc::ECONNRESET);
                    // Not seen out (a reset faster than a look): at the latest, now.
                    let sent = sent_by.unwrap_or(now2);
                    let high = secs(sent.saturating_duration_since(c.origin)) + c.rtt + 0.005;
                    let high = high.max(low);
                    record(&mut f, Verdict::Dead { high, reset }, &mut progress);
                }
                (_, e) => {
                    // Closed by the server without a probe out: its own idle close.
                    f.server_closes.push(age_opened);
                    let how = match e {
                        None => "closed (FIN)".to_string(),
                        Some(e) => format!("reset ({e})"),
                    };
                    if f.server_closes.len() == 1 {
                        progress.line(&format!(
                            "the server {how} a connection after {age_opened:.1} s without a probe: its own idle close"
                        ));
                    }
                }
            }
        }
        // Two-sided: a far end that says who it is also tests the other direction.
        if two_sided && !sc_ladder_started {
            sc_ladder_started = true;
            let sc_rungs = ladder(max);
            f.sc_asked = sc_rungs.clone();
            progress.line(&format!(
                "the far end is `tcp-keepalive measure --listen`: also testing server-to-client after {} silences",
                sc_rungs.len()
            ));
            for after in sc_rungs {
                spawn_sc(addr, after, tx.clone());
            }
        }
        // Two-sided: lines that did not arrive.
        for c in conns.iter_mut() {
            if let (Some(after), false) = (c.after, c.closed) {
                if c.age(now2) > after + 1.0 + 4.0 * c.rtt {
                    c.closed = true;
                    f.sc_lost.push((after, after + c.rtt));
                    progress.line(&format!(
                        "server-to-client after {after:.2} s of silence: lost"
                    ));
                }
            }
        }
        // Longer silences than a lost one answer nothing new.
        if let Some(lost) = f.sc_lost.iter().map(|l| l.0).min_by(f64::total_cmp) {
            for c in conns
                .iter_mut()
                .filter(|c| c.after.is_some_and(|a| a > lost))
            {
                c.closed = true;
            }
        }
        // Probes out: sent? answered?
        f.suspect = None;
        for c in conns.iter_mut().filter(|c| !c.closed) {
            let Some(Probe {
                sent_by,
                ack_before,
                low,
                asked,
                confirm,
            }) = c.probe
            else {
                continue;
            };
            let Ok(info) = tcp_info(&c.stream) else {
                continue;
            };
            let t = Instant::now();
            let ack = t.checked_sub(info.last_ack_recv).unwrap_or(t);
            if ack > ack_before + Duration::from_millis(10) {
                // Answered: alive; its silence starts again at the answer.
                c.probe = None;
                c.origin = ack;
                let _ = hold().apply(&c.stream);
                record(&mut f, Verdict::Alive { low }, &mut progress);
                continue;
            }
            if sent_by.is_none() && info.probes > 0 {
                c.probe = Some(Probe {
                    sent_by: Some(t),
                    ack_before,
                    low,
                    asked,
                    confirm,
                });
            }
            if let Some(sent) = sent_by {
                let waited = secs(t.saturating_duration_since(sent));
                let high = secs(sent.saturating_duration_since(c.origin)) + c.rtt + 0.005;
                // A probe about a silence already proven survivable can only have been lost.
                if waited > SILENCE.max(4.0 * c.rtt)
                    && high > f.low
                    && f.suspect.is_none_or(|s| high < s)
                {
                    f.suspect = Some(high);
                }
            }
        }
        let now = now.max(Instant::now());
        let elapsed = secs(now - start);
        let upper = match (f.high, f.suspect) {
            (Some(h), Some(s)) => Some(h.min(s)),
            (h, s) => h.or(s),
        };
        // The ladder: one question at a time, each on a connection opened at the start, while
        // nothing failed yet.
        // A fine round's questions whose silence has come.
        for c in conns.iter_mut().filter(|c| !c.closed) {
            if c.at.is_some_and(|at| c.age(now) >= at) {
                c.at = None;
                ask(c, &mut progress);
            }
        }
        let any_out = questions_out(&conns, f.low);
        if upper.is_none() && !any_out {
            while next_rung < rungs.len() {
                let Some(c) = conns
                    .iter_mut()
                    .find(|c| c.rung == Some(next_rung) && !c.closed)
                else {
                    next_rung += 1;
                    continue;
                };
                if c.age(now) >= rungs[next_rung].max(MIN_AGE) {
                    c.rung = None;
                    ask(c, &mut progress);
                    next_rung += 1;
                }
                break;
            }
        }
        // Fine rounds: several younger connections at once, their silences spread inside the
        // bracket.
        if upper.is_none() {
            confirmed = false;
        }
        if let Some(high) = upper {
            if !confirmed {
                // The ladder's next connection, silent longer, is asked too: a "yes" there would
                // show the first "no" was a lost probe (the ladder then goes on).
                confirmed = true;
                while next_rung < rungs.len() {
                    let rung = next_rung;
                    next_rung += 1;
                    if let Some(c) = conns.iter_mut().find(|c| c.rung == Some(rung) && !c.closed) {
                        c.rung = None;
                        ask(c, &mut progress);
                        if let Some(p) = c.probe.as_mut() {
                            p.confirm = true;
                        }
                        break;
                    }
                }
            }
            if !any_out {
                fine_pending = false;
            }
            let narrow = high - f.low <= tolerance(f.low);
            if !fine_pending && !narrow && fine_rounds < MAX_FINE_ROUNDS {
                let picked = pick(&conns, now, f.low, high);
                if !picked.is_empty() {
                    fine_rounds += 1;
                    f.rounds += 1;
                    fine_pending = true;
                    for (i, at) in picked {
                        conns[i].rung = None;
                        match at {
                            Some(at) => conns[i].at = Some(at),
                            None => ask(&mut conns[i], &mut progress),
                        }
                    }
                }
            }
        }
        progress.bar(elapsed, max, &f);
        // Done?
        let any_out = questions_out(&conns, f.low);
        // Two-sided: once the ladder's lines are in, a finer round between the last line that
        // arrived and the first that was lost (new connections: it takes about that silence).
        if sc_ladder_started && sc_settled(&f) && sc_fine_rounds < 2 {
            if let Some(b) = sc_bracket(&f) {
                if b.high - b.low > tolerance(b.low) {
                    sc_fine_rounds += 1;
                    let step = (b.high - b.low) / (FINE_WIDTH + 1) as f64;
                    for k in 1..=FINE_WIDTH {
                        let after = ((b.low + step * k as f64) * 1000.0).round() / 1000.0;
                        if after >= MIN_AGE && !f.sc_asked.contains(&after) {
                            f.sc_asked.push(after);
                            spawn_sc(addr, after, tx.clone());
                        }
                    }
                    progress.line(&format!(
                        "server-to-client: a finer round between {:.2} s and {:.2} s",
                        b.low, b.high
                    ));
                }
            }
        }
        let sc_done = !two_sided || (sc_ladder_started && sc_settled(&f));
        let ladder_left = conns.iter().any(|c| c.rung.is_some() && !c.closed);
        let done = if any_out {
            false
        } else if let Some(high) = f.high {
            f.suspect = None;
            let narrow = high - f.low <= tolerance(f.low);
            narrow || fine_rounds >= MAX_FINE_ROUNDS || pick(&conns, now, f.low, high).is_empty()
        } else {
            f.suspect = None;
            // No failure: the ladder ran to the end, or the server closed its connections.
            !ladder_left
        };
        if (done && sc_done) || now > deadline {
            if now > deadline {
                f.log.push(
                    "stopped at the time limit (--max + 30 s) before every answer was in".into(),
                );
            }
            break;
        }
    }
    progress.done();
    let elapsed = secs(start.elapsed());
    let connections = conns.len();
    report(
        args.target,
        addr,
        max,
        elapsed,
        connections,
        two_sided,
        f,
        args.json,
    )
}

/// The server-to-client bracket: the longest silence whose line arrived below the shortest whose
/// line was lost (each widened by the connection's round-trip time).
fn sc_bracket(f: &Findings) -> Option<Bracket> {
    let &(lost, high) = f.sc_lost.iter().min_by(|a, b| a.0.total_cmp(&b.0))?;
    let low = f
        .sc_arrived
        .iter()
        .filter(|a| a.0 < lost)
        .map(|a| a.1)
        .fold(0.0_f64, f64::max);
    Some(Bracket {
        low: low.min(high),
        high,
    })
}

/// Whether the server-to-client tests that matter are in: every silence asked about below the
/// shortest lost one has its line, or was lost.
fn sc_settled(f: &Findings) -> bool {
    let lost = f.sc_lost.iter().map(|l| l.0).min_by(f64::total_cmp);
    f.sc_asked.iter().all(|a| {
        lost.is_some_and(|l| *a >= l)
            || f.sc_arrived.iter().any(|x| x.0 == *a)
            || f.sc_lost.iter().any(|x| x.0 == *a)
    })
}

/// Whether a question that can still change the bracket is out or scheduled: a probe about a
/// silence no longer than one already proven survivable cannot (its "no" would be a lost probe).
/// The check above a first "no" stops counting once its answer, if any, would have come.
fn questions_out(conns: &[Conn], low: f64) -> bool {
    let now = Instant::now();
    conns.iter().any(|c| {
        let waited = |p: &Probe| secs(now.saturating_duration_since(p.asked));
        !c.closed
            && (c.at.is_some()
                || c.probe.is_some_and(|p| {
                    p.low > low - 1e-6
                        && !(p.confirm && waited(&p) > SILENCE.max(4.0 * c.rtt) + 0.05)
                }))
    })
}

/// A two-sided test connection: banner, `after MS`, `ok`; the far end then stays silent for MS
/// and sends a line. Delivered once `ok` arrived (its silence starts there).
fn spawn_sc(addr: SocketAddr, after: f64, tx: mpsc::Sender<(Option<TcpStream>, Option<f64>)>) {
    std::thread::spawn(move || {
        let stream = set_up_sc(addr, after);
        let _ = tx.send((stream, Some(after)));
    });
}

fn set_up_sc(addr: SocketAddr, after: f64) -> Option<TcpStream> {
    {
        let Ok(s) = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) else {
            return None;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut r = BufReader::new(s.try_clone().ok()?);
        let mut line = String::new();
        if r.read_line(&mut line).is_err() || line != BANNER {
            return None;
        }
        let ms = (after * 1000.0).round() as u64;
        (&s).write_all(format!("after {ms}\n").as_bytes()).ok()?;
        line.clear();
        if r.read_line(&mut line).is_err() || line != "ok\n" {
            return None;
        }
        s.set_read_timeout(None).ok()?;
        Some(s)
    }
}

/// Asks one connection about its current silence: idle 1 s on a connection silent longer
/// probes at once.
fn ask(c: &mut Conn, progress: &mut Progress) {
    let now = Instant::now();
    let before = tcp_info(&c.stream).map(|i| now.checked_sub(i.last_ack_recv).unwrap_or(now));
    let low = c.age(now);
    match (before, probe_now().apply(&c.stream)) {
        (Ok(ack_before), Ok(())) => {
            c.probe = Some(Probe {
                sent_by: None,
                ack_before,
                low,
                asked: now,
                confirm: false,
            })
        }
        (_, Err(e)) | (Err(e), _) => {
            progress.line(&format!("could not probe a connection: {e}"));
            c.closed = true;
        }
    }
}

/// Up to FINE_WIDTH questions about silences spread evenly inside (low, high): a connection whose
/// silence is now close enough to a target is asked at once (`None`), else a slightly younger one
/// is asked when its silence reaches the target (`Some(target)`, at most MAX_WAIT from now).
fn pick(conns: &[Conn], now: Instant, low: f64, high: f64) -> Vec<(usize, Option<f64>)> {
    const MAX_WAIT: f64 = 0.6;
    let margin = 0.01;
    let free: Vec<(usize, f64)> = conns
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.closed && c.probe.is_none() && c.at.is_none() && c.after.is_none())
        .map(|(i, c)| (i, c.age(now)))
        .filter(|(_, a)| *a < high - margin)
        .collect();
    let in_range = |a: f64| a >= MIN_AGE && a > low + margin;
    let spacing = (high - low) / (FINE_WIDTH + 1) as f64;
    let mut picked: Vec<(usize, Option<f64>)> = Vec::new();
    let unused = |i: &usize, picked: &Vec<(usize, Option<f64>)>| !picked.iter().any(|p| p.0 == *i);
    for k in 1..=FINE_WIDTH {
        let target = low + spacing * k as f64;
        let closest_now = free
            .iter()
            .filter(|(i, a)| unused(i, &picked) && in_range(*a))
            .min_by(|a, b| (a.1 - target).abs().total_cmp(&(b.1 - target).abs()))
            .copied();
        let younger = free
            .iter()
            .filter(|(i, a)| unused(i, &picked) && *a < target && target - *a <= MAX_WAIT)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .copied();
        let choice = match (closest_now, younger) {
            (Some((i, a)), _) if (a - target).abs() <= spacing / 2.0 => Some((i, None)),
            (_, Some((i, _))) if target >= MIN_AGE => Some((i, Some(target))),
            (Some((i, _)), _) => Some((i, None)),
            _ => None,
        };
        picked.extend(choice);
    }
    picked
}

/// Once: a "no" below a "yes" was packet loss, not the middlebox.
fn note_loss(f: &mut Findings) {
    if !f.log.iter().any(|l| l.contains("packet loss")) {
        f.log.push("a probe went unanswered while one after a longer silence was answered: packet loss on the path; that probe was not counted".into());
    }
}

fn record(f: &mut Findings, v: Verdict, progress: &mut Progress) {
    match v {
        Verdict::Alive { low } => {
            if low > f.low {
                f.low = low;
            }
            // A "no" at a shorter silence than this "yes" was a lost probe (packet loss on the
            // path), not the middlebox: it no longer counts.
            let before = f.deads.len();
            f.deads.retain(|d| d.0 > f.low);
            if f.deads.len() < before {
                note_loss(f);
            }
            f.high = f.deads.iter().map(|d| d.0).min_by(f64::total_cmp);
            f.reset = f.deads.iter().any(|d| d.1);
            // A suspected loss below a proven survival was a slow answer, not a forgotten flow.
            if f.suspect.is_some_and(|s| s <= f.low) {
                f.suspect = None;
            }
            progress.line(&format!("{low:.2} s of silence: probe answered"));
        }
        Verdict::Dead { high, reset } => {
            // Below a proven survival it can only be a lost probe.
            if high > f.low {
                f.deads.push((high, reset));
            } else {
                note_loss(f);
            }
            f.high = f.deads.iter().map(|d| d.0).min_by(f64::total_cmp);
            f.reset = f.deads.iter().any(|d| d.1);
            f.suspect = None;
            progress.line(&format!(
                "{high:.2} s of silence: probe {}",
                if reset {
                    "reset (ECONNRESET)"
                } else {
                    "unanswered (ETIMEDOUT)"
                }
            ));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    target: &str,
    addr: SocketAddr,
    max: f64,
    elapsed: f64,
    connections: usize,
    two_sided: bool,
    mut f: Findings,
    json: bool,
) -> Result<i32, Failure> {
    let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
    let path = f.high.map(|h| Bracket {
        low: round2(f.low.min(h)),
        high: round2(h),
    });
    // The server's own idle close: the connections it closed before any path verdict.
    let server_close = if f.server_closes.is_empty() {
        None
    } else {
        let mut v = f.server_closes.clone();
        v.sort_by(f64::total_cmp);
        Some((v[v.len() / 2] * 10.0).round() / 10.0)
    };
    let sc = sc_bracket(&f).map(|b| Bracket {
        low: round2(b.low),
        high: round2(b.high),
    });
    // What a keep-alive must beat: the shortest forgetting measured.
    let beat = [path.as_ref().map(|b| b.low), sc.as_ref().map(|b| b.low)]
        .into_iter()
        .flatten()
        .min_by(f64::total_cmp);
    if let Some(low) = beat {
        let (idle, interval) = keepalive_for(low);
        if idle as f64 * 1.125 + interval as f64 >= low {
            f.log.push(format!(
                "a timeout this short ({low:.2} s) leaves keep-alive no margin (its idle is at least 1 s and a lost probe is repeated after 1 s at the earliest): send application-level traffic more often, or ask for a longer timeout"
            ));
        }
    }
    let recommended = beat.map(|low| {
        let (idle, interval) = keepalive_for(low);
        Recommendation {
            idle_s: idle,
            interval_s: interval,
            env: format!("TCP_KEEPALIVE=on TCP_KEEPALIVE_IDLE={idle} TCP_KEEPALIVE_INTERVAL={interval}"),
            command: format!(
                "tcp-keepalive run --idle {idle} --interval {interval} -- CMD, or sudo tcp-keepalive apply --pid PID --idle {idle} --interval {interval}"
            ),
        }
    });
    let loose = "a middlebox that re-creates a forgotten flow from a client's probe (Linux conntrack with nf_conntrack_tcp_loose=1, its default, in front of a NAT) is invisible from this side: run `tcp-keepalive measure --listen PORT` on the far end and measure against that port to test the server-to-client direction too";
    if !two_sided {
        f.log.push(loose.into());
    }
    if server_close.is_some() && path.is_none() {
        f.log.push("keep-alive cannot keep these connections open: the server closes them itself when no request comes (probes are not requests); send requests, or raise the server's idle timeout".into());
    }
    if json {
        let r = Report {
            target: target.to_string(),
            address: addr.to_string(),
            path_idle_timeout_s: path,
            path_forgets_by: if f.high.is_some() {
                Some(if f.reset { "reset" } else { "dropped" })
            } else {
                None
            },
            server_idle_close_s: server_close,
            two_sided,
            server_to_client_idle_timeout_s: sc,
            max_s: max,
            elapsed_s: round2(elapsed),
            rounds: f.rounds,
            connections,
            recommended,
            notes: f.log,
        };
        let text = serde_json::to_string_pretty(&r)
            .map_err(|e| Failure::Other(format!("writing JSON failed: {e}")))?;
        println!("{text}");
        return Ok(0);
    }
    println!("target {target} ({addr}, {family})");
    match (&path, server_close) {
        (Some(b), _) => println!(
            "path idle timeout: between {:.2} s and {:.2} s: a middlebox forgets a flow silent that long and then {} its packets",
            b.low,
            b.high,
            if f.reset { "resets (RST)" } else { "drops" }
        ),
        (None, Some(n)) => println!(
            "the server closes idle connections itself after about {n:.1} s; no path idle timeout below that (the path could not be tested longer)"
        ),
        (None, None) => println!("no idle timeout up to {max:.0} s from this side"),
    }
    if let (Some(n), Some(_)) = (server_close, &path) {
        println!("the server also closes idle connections itself after about {n:.1} s");
    }
    if two_sided {
        match &sc {
            Some(b) => println!(
                "server-to-client after silence: lost after between {:.2} s and {:.2} s (a middlebox forgot the flow; a probe from this side would have hidden it)",
                b.low, b.high
            ),
            None => println!("server-to-client after silence: delivered up to {max:.0} s"),
        }
    }
    match &recommended {
        Some(r) => println!(
            "keep-alive that keeps this path: idle {} s, interval {} s: {} (or {})",
            r.idle_s, r.interval_s, r.env, r.command
        ),
        None if server_close.is_none() => println!(
            "keep-alive: the defaults (idle 60 s) are enough for any idle timeout above 70 s: TCP_KEEPALIVE=on, or tcp-keepalive run -- CMD"
        ),
        None => {}
    }
    println!(
        "measured in {elapsed:.1} s with {connections} connections, {} round{}",
        f.rounds,
        if f.rounds == 1 { "" } else { "s" }
    );
    for note in &f.log {
        println!("note: {note}");
    }
    Ok(0)
}

/// `tcp-keepalive measure --listen PORT [--ipv4|--ipv6]`: the far end of the two-sided mode.
pub fn run_listen(port: &str, family: Option<u8>) -> Result<i32, Failure> {
    let bad = || {
        Failure::invalid(Error::InvalidArgument {
            name: "listen".into(),
            value: port.into(),
            allowed: "a port from 1 to 65535".into(),
        })
    };
    let t = port.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let port: u16 = match t.parse() {
        Ok(p) if p > 0 => p,
        _ => return Err(bad()),
    };
    let any: Vec<SocketAddr> = match family {
        Some(4) => vec![(IpAddr::from([0u8; 4]), port).into()],
        Some(6) => vec![(IpAddr::from([0u16; 8]), port).into()],
        _ => vec![
            (IpAddr::from([0u16; 8]), port).into(),
            (IpAddr::from([0u8; 4]), port).into(),
        ],
    };
    let mut err = None;
    let mut listener = None;
    for a in any {
        match TcpListener::bind(a) {
            Ok(l) => {
                listener = Some(l);
                break;
            }
            Err(e) => err = Some((a, e)),
        }
    }
    let Some(listener) = listener else {
        let (a, e) = err.expect("one address tried");
        return Err(Failure::Connect(format!("cannot listen on {a}: {e}")));
    };
    println!(
        "listening on {} for `tcp-keepalive measure HOST:{port}` (two-sided: after a client's `after MS`, one line after MS of silence); Ctrl-C ends it",
        listener.local_addr().map_or_else(|_| port.to_string(), |a| a.to_string())
    );
    let _ = io::stdout().flush();
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        if active.load(Ordering::Relaxed) >= 1024 {
            continue; // dropped: closed at once
        }
        active.fetch_add(1, Ordering::Relaxed);
        let active = Arc::clone(&active);
        std::thread::spawn(move || {
            serve(conn);
            active.fetch_sub(1, Ordering::Relaxed);
        });
    }
    Ok(0)
}

/// One connection of the far end: the banner, then at most one `after MS`, answered with `ok`
/// and, after MS of silence, `x`. Bounded: a connection lives at most the longest silence a
/// client can ask about plus a minute.
fn serve(conn: TcpStream) {
    let limit = Duration::from_secs(u64::from(MAX_SECONDS) + 60);
    let _ = conn.set_read_timeout(Some(limit));
    let _ = conn.set_nodelay(true);
    if (&conn).write_all(BANNER.as_bytes()).is_err() {
        return;
    }
    let Ok(clone) = conn.try_clone() else { return };
    let mut r = BufReader::new(clone.take(256));
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let ms = line
        .trim()
        .strip_prefix("after ")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms <= u64::from(MAX_SECONDS) * 1000);
    let Some(ms) = ms else { return };
    if (&conn).write_all(b"ok\n").is_err() {
        return;
    }
    std::thread::sleep(Duration::from_millis(ms));
    let _ = (&conn).write_all(b"x\n");
    // Until the client closes (or the limit).
    let mut sink = [0u8; 64];
    let _ = (&conn).read(&mut sink);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_steps() {
        let l = ladder(8.0);
        assert_eq!(l[..3], [1.0, 1.5, 2.0]);
        assert_eq!(*l.last().unwrap(), 8.0);
        assert!(l.windows(2).all(|w| w[1] > w[0]));
        let l = ladder(900.0);
        assert!(l.len() <= 36, "{}", l.len());
        assert!(l
            .windows(2)
            .all(|w| w[1] / w[0] <= 1.25 + 1e-9 || w[1] - w[0] <= 0.5 + 1e-9));
    }

    #[test]
    fn recommendation_beats_the_low_end() {
        for low in [1.0, 3.0, 5.0, 30.0, 240.0, 347.0, 600.0] {
            let (idle, interval) = keepalive_for(low);
            assert!((1..=60).contains(&idle));
            // A late timer (1/8) and one lost probe still come before the timeout.
            if low >= 3.0 {
                assert!(
                    (idle as f64) * 1.125 + interval as f64 <= low,
                    "{low}: {idle}/{interval}"
                );
            }
        }
        assert_eq!(keepalive_for(347.0), (60, 10));
    }

    #[test]
    fn a_no_below_a_yes_was_a_lost_probe() {
        let mut f = Findings::default();
        let mut p = Progress {
            tty: false,
            quiet: true,
            last: None,
        };
        record(&mut f, Verdict::Alive { low: 2.0 }, &mut p);
        record(
            &mut f,
            Verdict::Dead {
                high: 2.5,
                reset: false,
            },
            &mut p,
        );
        assert_eq!(f.high, Some(2.5));
        // The ladder's next connection, silent longer, was answered: 2.5 was packet loss.
        record(&mut f, Verdict::Alive { low: 3.0 }, &mut p);
        assert_eq!((f.low, f.high), (3.0, None));
        assert!(f.log[0].contains("packet loss"), "{:?}", f.log);
        record(
            &mut f,
            Verdict::Dead {
                high: 3.6,
                reset: true,
            },
            &mut p,
        );
        record(
            &mut f,
            Verdict::Dead {
                high: 4.2,
                reset: false,
            },
            &mut p,
        );
        assert_eq!(f.high, Some(3.6));
        assert!(f.reset);
        // A "no" below a proven "yes" never counts.
        record(
            &mut f,
            Verdict::Dead {
                high: 2.9,
                reset: false,
            },
            &mut p,
        );
        assert_eq!(f.high, Some(3.6));
    }

    #[test]
    fn targets() {
        for bad in [
            "example.com",
            "example.com:",
            ":80",
            "host:0",
            "host:65536",
            "host:+80",
            "::1",
            "[::1]",
        ] {
            let e = resolve(bad, None).unwrap_err();
            assert_eq!(e.exit_code(), crate::fail::code::USAGE, "{bad}");
            assert!(e.to_string().contains("HOST:PORT"), "{e}");
        }
        assert_eq!(
            resolve("127.0.0.1:80", None).unwrap(),
            ["127.0.0.1:80".parse().unwrap()]
        );
        assert_eq!(
            resolve("[::1]:80", Some(6)).unwrap(),
            ["[::1]:80".parse().unwrap()]
        );
        let e = resolve("127.0.0.1:80", Some(6)).unwrap_err();
        assert_eq!(e.exit_code(), crate::fail::code::RESOLVE);
    }
}
