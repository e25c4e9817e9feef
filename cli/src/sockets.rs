//! `inspect` and `apply`: a running process's TCP sockets, read and changed through duplicates.

use serde::Serialize;
use std::time::Duration;

use tcp_keepalive::{inspect, parse_seconds, KeepAlive, Settings};

use crate::fail::{code, Failure};
use crate::process::{raise_open_file_limit, Process, Socket, TcpEntry};
use crate::table;
use crate::values::{compact, Peer, Timings};

/// Keep-alive settings as the kernel reports them, for `--json`.
#[derive(Serialize)]
struct SettingsJson {
    enabled: bool,
    idle_s: u64,
    interval_s: u64,
    count: u32,
    user_timeout_ms: Option<u64>,
}

impl From<&Settings> for SettingsJson {
    fn from(s: &Settings) -> Self {
        SettingsJson {
            enabled: s.enabled,
            idle_s: s.idle.as_secs(),
            interval_s: s.interval.as_secs(),
            count: s.count,
            user_timeout_ms: s.user_timeout.map(|t| t.as_millis() as u64),
        }
    }
}

/// What identifies a socket, for `--json`.
#[derive(Serialize)]
struct SocketJson {
    fd: i32,
    family: &'static str,
    local: String,
    peer: Option<String>,
    state: &'static str,
    timer: &'static str,
    keepalive_timer_left_ms: Option<u64>,
    probes_out: u32,
}

/// A socket as listed: the target's descriptor number and its table row (the duplicate is
/// closed as soon as it has been read or changed).
struct Listed {
    fd: i32,
    entry: TcpEntry,
}

impl Listed {
    fn of(s: &Socket) -> Listed {
        Listed {
            fd: s.fd,
            entry: s.entry.clone(),
        }
    }
}

impl From<&Listed> for SocketJson {
    fn from(s: &Listed) -> Self {
        SocketJson {
            fd: s.fd,
            family: if s.entry.local.is_ipv4() {
                "ipv4"
            } else {
                "ipv6"
            },
            local: s.entry.local.to_string(),
            peer: s.entry.peer().map(|p| p.to_string()),
            state: s.entry.state_name(),
            timer: s.entry.timer_name(),
            keepalive_timer_left_ms: s.entry.keepalive_left_ms(),
            probes_out: s.entry.probes_out,
        }
    }
}

fn peer_text(s: &Listed) -> String {
    s.entry.peer().map_or_else(|| "*".into(), |p| p.to_string())
}

fn timer_text(s: &Listed) -> String {
    match s.entry.keepalive_left_ms() {
        Some(ms) => format!("{}.{}s", ms / 1000, ms % 1000 / 100),
        None => "-".into(),
    }
}

fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Other(format!("writing JSON failed: {e}")))?;
    println!("{text}");
    Ok(())
}

/// Whether keep-alive with these settings keeps a flow through a path that forgets it after
/// `path` of silence: on, and its first probe due before then even when the timer fires 1/8
/// late (measured on Linux 6.x: timers fire late by up to ~12 %, one timer-wheel step).
fn beats(k: &Settings, path: Duration) -> bool {
    k.enabled && k.idle.as_secs_f64() * 1.125 < path.as_secs_f64()
}

/// `tcp-keepalive inspect --pid PID [--json] [--path-timeout D]`.
pub fn run_inspect(pid: i32, json: bool, path_timeout: Option<&str>) -> Result<i32, Failure> {
    let path = path_timeout
        .map(|t| parse_seconds("path_timeout", t).map_err(Failure::invalid))
        .transpose()?;
    raise_open_file_limit();
    let process = Process::open(pid)?;
    let mut rows = Vec::new();
    // One duplicate at a time: any number of sockets under any open-file limit.
    process.each_tcp_socket(|s| {
        let settings = inspect(&s.dup).map_err(|e| {
            Failure::Other(format!(
                "reading keep-alive of descriptor {} of process {pid} failed: {}",
                s.fd,
                e.with_fd(s.fd)
            ))
        })?;
        rows.push((Listed::of(&s), settings));
        Ok(())
    })?;

    if json {
        #[derive(Serialize)]
        struct Row {
            #[serde(flatten)]
            socket: SocketJson,
            keepalive: SettingsJson,
            #[serde(skip_serializing_if = "Option::is_none")]
            beats_path_timeout: Option<bool>,
        }
        #[derive(Serialize)]
        struct Out {
            pid: i32,
            command: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            path_timeout_s: Option<u64>,
            sockets: Vec<Row>,
        }
        return print_json(&Out {
            pid,
            command: process.command(),
            path_timeout_s: path.map(|p| p.as_secs()),
            sockets: rows
                .iter()
                .map(|(s, k)| Row {
                    socket: SocketJson::from(s),
                    keepalive: SettingsJson::from(k),
                    beats_path_timeout: path.map(|p| beats(k, p)),
                })
                .collect(),
        })
        .map(|()| 0);
    }

    println!(
        "process {pid} ({}): {} TCP socket{}",
        process.command(),
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    if rows.is_empty() {
        return Ok(0);
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(s, k)| {
            let mut row = vec![
                s.fd.to_string(),
                s.entry.local.to_string(),
                peer_text(s),
                s.entry.state_name().to_string(),
                if k.enabled { "on" } else { "off" }.to_string(),
                format!("{}s", k.idle.as_secs()),
                format!("{}s", k.interval.as_secs()),
                k.count.to_string(),
                k.user_timeout
                    .map_or_else(|| "-".into(), |t| format!("{}ms", t.as_millis())),
                timer_text(s),
            ];
            if let Some(p) = path {
                row.push(if beats(k, p) { "yes" } else { "NO" }.to_string());
            }
            row
        })
        .collect();
    let mut header = vec![
        "FD",
        "LOCAL",
        "PEER",
        "STATE",
        "KEEPALIVE",
        "IDLE",
        "INTERVAL",
        "COUNT",
        "USER-TIMEOUT",
        "NEXT-KEEPALIVE",
    ];
    let beats_header = path.map(|p| format!("BEATS-{}s", p.as_secs()));
    if let Some(h) = &beats_header {
        header.push(h);
    }
    table::print(&header, &table_rows);
    if let Some(p) = path {
        let losing = rows.iter().filter(|(_, k)| !beats(k, p)).count();
        if losing > 0 {
            let (idle, interval) = crate::measure::keepalive_for(p.as_secs_f64());
            println!(
                "{losing} socket{} whose keep-alive would not beat the path's {} s idle timeout: fix with `tcp-keepalive apply --pid {pid} --idle {idle} --interval {interval}`",
                if losing == 1 { "" } else { "s" },
                p.as_secs()
            );
        }
        return Ok(0);
    }
    let weak = rows
        .iter()
        .filter(|(_, k)| !k.enabled || k.idle.as_secs() >= 240)
        .count();
    if weak > 0 {
        println!(
            "hint: {weak} socket{} without keep-alive shorter than 240 s (Azure LB; AWS NLB/NAT: 350 s): fix with `tcp-keepalive apply --pid {pid}`; `tcp-keepalive measure HOST:PORT` finds a path's own timeout",
            if weak == 1 { "" } else { "s" }
        );
    }
    Ok(0)
}

/// `tcp-keepalive apply --pid PID [--peer ADDR[:PORT]] [timings]`.
pub fn run_apply(
    pid: i32,
    peer: Option<&str>,
    timings: &Timings,
    json: bool,
) -> Result<i32, Failure> {
    // Every value is checked before the process is even looked at.
    let keepalive = timings.resolve()?;
    let peer = peer.map(Peer::parse).transpose()?;
    raise_open_file_limit();
    let process = Process::open(pid)?;

    struct Outcome {
        socket: Listed,
        before: Option<Settings>,
        after: Option<Settings>,
        error: Option<String>,
    }
    let mut outcomes: Vec<Outcome> = Vec::new();
    // One duplicate at a time: any number of sockets under any open-file limit.
    let total = process.each_tcp_socket(|s| {
        if peer.is_none_or(|p| p.matches(s.entry.peer())) {
            let (before, after, error) = apply_one(&keepalive, &s);
            outcomes.push(Outcome {
                socket: Listed::of(&s),
                before,
                after,
                error,
            });
        }
        Ok(())
    })?;
    if outcomes.is_empty() {
        let detail = match (peer, total) {
            (_, 0) => format!("process {pid} has no TCP socket"),
            _ => format!(
                "none of the {total} TCP sockets of process {pid} has the peer {}",
                peer_arg(peer)
            ),
        };
        return Err(Failure::NoMatch { pid, detail });
    }
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let exit = if failed == 0 { 0 } else { code::OTHER };

    if json {
        #[derive(Serialize)]
        struct Row {
            #[serde(flatten)]
            socket: SocketJson,
            before: Option<SettingsJson>,
            after: Option<SettingsJson>,
            error: Option<String>,
        }
        #[derive(Serialize)]
        struct Out {
            pid: i32,
            command: String,
            applied: SettingsJson,
            changed: usize,
            failed: usize,
            sockets: Vec<Row>,
        }
        let applied = Settings::from(keepalive);
        print_json(&Out {
            pid,
            command: process.command(),
            applied: SettingsJson::from(&applied),
            changed: outcomes.len() - failed,
            failed,
            sockets: outcomes
                .iter()
                .map(|o| Row {
                    socket: SocketJson::from(&o.socket),
                    before: o.before.as_ref().map(SettingsJson::from),
                    after: o.after.as_ref().map(SettingsJson::from),
                    error: o.error.clone(),
                })
                .collect(),
        })?;
        return Ok(exit);
    }

    println!(
        "process {pid} ({}): {keepalive} on {} of {total} TCP socket{}{}",
        process.command(),
        outcomes.len() - failed,
        if total == 1 { "" } else { "s" },
        peer.map_or_else(String::new, |_| format!(" (peer {})", peer_arg(peer))),
    );
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            let show = |s: &Option<Settings>| s.as_ref().map_or_else(|| "?".into(), compact);
            vec![
                o.socket.fd.to_string(),
                o.socket.entry.local.to_string(),
                peer_text(&o.socket),
                o.socket.entry.state_name().to_string(),
                show(&o.before),
                match &o.error {
                    None => show(&o.after),
                    Some(e) => format!("FAILED: {e}"),
                },
            ]
        })
        .collect();
    table::print(
        &[
            "FD",
            "LOCAL",
            "PEER",
            "STATE",
            "BEFORE (idle/interval/count)",
            "AFTER",
        ],
        &rows,
    );
    if failed > 0 {
        eprintln!("tcp-keepalive: {failed} socket(s) failed; the others were changed");
    }
    Ok(exit)
}

fn peer_arg(peer: Option<Peer>) -> String {
    peer.map_or_else(String::new, |p| format!("{p}"))
}

/// Reads, applies (all or nothing, by core), reads back: (before, after, error). Errors name the
/// target's descriptor, not the duplicate's.
fn apply_one(
    keepalive: &KeepAlive,
    s: &Socket,
) -> (Option<Settings>, Option<Settings>, Option<String>) {
    let message = |e: tcp_keepalive::Error| Some(e.with_fd(s.fd).to_string());
    let before = match inspect(&s.dup) {
        Ok(b) => b,
        Err(e) => return (None, None, message(e)),
    };
    if let Err(e) = keepalive.apply(&s.dup) {
        return (Some(before), None, message(e));
    }
    match inspect(&s.dup) {
        Ok(after) => (Some(before), Some(after), None),
        Err(e) => (Some(before), None, message(e)),
    }
}
