//! `doctor`: the system's keep-alive defaults, what they mean against common middleboxes, and
//! which fix fits.

use serde::Serialize;
use tcp_keepalive::KeepAlive;

use crate::fail::Failure;
use crate::table;

/// Idle timeouts of common middleboxes, in seconds.
const MIDDLEBOXES: &[(&str, u64)] = &[
    ("AWS NLB / NAT gateway / Network Firewall", 350),
    ("Azure load balancer (default)", 240),
];

const FIXES: &[(&str, &str)] = &[
    (
        "you do not know the path's idle timeout",
        "tcp-keepalive measure HOST:PORT (finds it with keep-alive probes, nothing to install; names the keep-alive that beats it)",
    ),
    (
        "a process already running, no restart",
        "sudo tcp-keepalive apply --pid PID (--peer ADDR[:PORT] for one connection)",
    ),
    (
        "a program you start (dynamically linked)",
        "tcp-keepalive run -- CMD ARGS... (preloads libkeepalive.so)",
    ),
    (
        "code you can change",
        "the library: Rust KeepAlive::default().apply(&sock), Python configure(sock), Java KeepAlive.configure(socket, 60, 10, 6)",
    ),
    (
        "programs that turn SO_KEEPALIVE on but keep the system timings",
        "sysctl -w net.ipv4.tcp_keepalive_time=60 (per network namespace; a safe sysctl in Kubernetes 1.29+)",
    ),
    (
        "Go and static binaries (no libc socket())",
        "tcp-keepalive apply --pid PID, or the program's own keep-alive setting",
    ),
    (
        "every program of a cgroup, a pod or a node, any language (Linux 5.9+, cgroup v2)",
        "sudo tcp-keepalive cgroup attach /sys/fs/cgroup/CGROUP (the kernel door)",
    ),
];

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether the kernel has `pidfd_getfd`: a call on an invalid pidfd fails with EBADF if it does.
fn pidfd_getfd_available() -> bool {
    // SAFETY: pidfd_getfd(-1, 0, 0) only validates its arguments.
    let ret = unsafe { libc::syscall(438, -1, 0, 0) };
    !(ret < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS))
}

#[derive(Serialize)]
struct Sysctl {
    tcp_keepalive_time: Option<u64>,
    tcp_keepalive_intvl: Option<u64>,
    tcp_keepalive_probes: Option<u64>,
}

#[derive(Serialize)]
struct Middlebox {
    name: String,
    idle_timeout_s: u64,
    /// Whether a socket with SO_KEEPALIVE on and the system timings keeps the flow alive.
    system_defaults_keep_it: Option<bool>,
    /// Whether tcp-keepalive's defaults (idle 60 s) keep it.
    tcp_keepalive_defaults_keep_it: bool,
}

#[derive(Serialize)]
struct Fix {
    situation: &'static str,
    fix: &'static str,
}

/// Whether the kernel door (`cgroup attach`) works on this machine, and why not.
#[derive(Serialize)]
struct KernelDoor {
    kernel: String,
    kernel_at_least_5_9: bool,
    cgroup2_mount: Option<String>,
    bpffs: String,
    /// Loading both BPF programs (nothing attached) succeeded: kernel, BPF and permissions.
    works: bool,
    problem: Option<String>,
}

fn kernel_door() -> KernelDoor {
    let (kernel, kernel_ok) = tcp_keepalive_cgroup::kernel_release();
    let cgroup2 = tcp_keepalive_cgroup::cgroup2_mount();
    let bpffs = match std::fs::read_to_string("/proc/mounts") {
        Ok(m)
            if m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some("bpf")) =>
        {
            "mounted".to_string()
        }
        Ok(_) => "not mounted (cgroup attach mounts it at /sys/fs/bpf)".to_string(),
        Err(e) => format!("unknown: {e}"),
    };
    let problem = match (&cgroup2, tcp_keepalive_cgroup::probe()) {
        (None, _) => Some("no cgroup v2 mount in /proc/mounts".to_string()),
        (Some(_), Err(e)) => Some(e.to_string()),
        (Some(_), Ok(())) => None,
    };
    KernelDoor {
        kernel,
        kernel_at_least_5_9: kernel_ok,
        cgroup2_mount: cgroup2.map(|p| p.display().to_string()),
        bpffs,
        works: problem.is_none(),
        problem,
    }
}

#[derive(Serialize)]
struct Report {
    sysctl: Sysctl,
    system_detection_bound_s: Option<u64>,
    tcp_keepalive_defaults: String,
    middleboxes: Vec<Middlebox>,
    conntrack_tcp_timeout_established_s: Option<u64>,
    pidfd_getfd: bool,
    ptrace_scope: Option<u64>,
    preload: Option<String>,
    kernel_door: KernelDoor,
    fixes: Vec<Fix>,
}

/// `tcp-keepalive doctor [--json]`.
pub fn run_doctor(json: bool) -> Result<i32, Failure> {
    let sysctl = Sysctl {
        tcp_keepalive_time: read_number("/proc/sys/net/ipv4/tcp_keepalive_time"),
        tcp_keepalive_intvl: read_number("/proc/sys/net/ipv4/tcp_keepalive_intvl"),
        tcp_keepalive_probes: read_number("/proc/sys/net/ipv4/tcp_keepalive_probes"),
    };
    let bound = match (
        sysctl.tcp_keepalive_time,
        sysctl.tcp_keepalive_intvl,
        sysctl.tcp_keepalive_probes,
    ) {
        (Some(t), Some(i), Some(p)) => Some(t + i * p),
        _ => None,
    };
    let ours = KeepAlive::default();
    let middleboxes: Vec<Middlebox> = MIDDLEBOXES
        .iter()
        .map(|(name, timeout)| Middlebox {
            name: name.to_string(),
            idle_timeout_s: *timeout,
            system_defaults_keep_it: sysctl.tcp_keepalive_time.map(|t| t < *timeout),
            tcp_keepalive_defaults_keep_it: ours.idle().as_secs() < *timeout,
        })
        .collect();
    let report = Report {
        system_detection_bound_s: bound,
        tcp_keepalive_defaults: ours.to_string(),
        middleboxes,
        conntrack_tcp_timeout_established_s: read_number(
            "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established",
        ),
        pidfd_getfd: pidfd_getfd_available(),
        ptrace_scope: read_number("/proc/sys/kernel/yama/ptrace_scope"),
        preload: crate::run::find_preload(None)
            .ok()
            .map(|p| p.display().to_string()),
        kernel_door: kernel_door(),
        fixes: FIXES
            .iter()
            .map(|(situation, fix)| Fix { situation, fix })
            .collect(),
        sysctl,
    };
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::Other(format!("writing JSON failed: {e}")))?;
        println!("{text}");
        return Ok(0);
    }
    print_report(&report);
    Ok(0)
}

fn secs(v: Option<u64>) -> String {
    v.map_or_else(|| "unknown".into(), |v| format!("{v} s"))
}

fn print_report(r: &Report) {
    println!("System keep-alive defaults (this network namespace):");
    table::print(
        &["SYSCTL", "VALUE", "MEANING"],
        &[
            vec![
                "net.ipv4.tcp_keepalive_time".into(),
                secs(r.sysctl.tcp_keepalive_time),
                "silence before the first probe".into(),
            ],
            vec![
                "net.ipv4.tcp_keepalive_intvl".into(),
                secs(r.sysctl.tcp_keepalive_intvl),
                "time between unanswered probes".into(),
            ],
            vec![
                "net.ipv4.tcp_keepalive_probes".into(),
                r.sysctl
                    .tcp_keepalive_probes
                    .map_or_else(|| "unknown".into(), |v| v.to_string()),
                "unanswered probes before the connection is dropped".into(),
            ],
        ],
    );
    println!(
        "They apply only to sockets that turn SO_KEEPALIVE on (most programs never do); such a socket notices a dead peer after {}.",
        secs(r.system_detection_bound_s)
    );
    println!();
    println!(
        "Against middlebox idle timeouts (a flow survives when the first probe comes sooner):"
    );
    let verdict = |keeps: Option<bool>| match keeps {
        Some(true) => "kept alive".to_string(),
        Some(false) => "FORGOTTEN: idle connections hang".to_string(),
        None => "unknown".to_string(),
    };
    let mut rows: Vec<Vec<String>> = r
        .middleboxes
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                format!("{} s", m.idle_timeout_s),
                verdict(m.system_defaults_keep_it),
                verdict(Some(m.tcp_keepalive_defaults_keep_it)),
            ]
        })
        .collect();
    if let Some(ct) = r.conntrack_tcp_timeout_established_s {
        rows.push(vec![
            "this host's conntrack (established)".into(),
            format!("{ct} s"),
            verdict(r.sysctl.tcp_keepalive_time.map(|t| t < ct)),
            verdict(Some(KeepAlive::default().idle().as_secs() < ct)),
        ]);
    }
    table::print(
        &[
            "MIDDLEBOX",
            "IDLE TIMEOUT",
            "SYSTEM DEFAULTS (with SO_KEEPALIVE)",
            "tcp-keepalive DEFAULTS (idle 60 s)",
        ],
        &rows,
    );
    println!();
    println!("Which fix fits:");
    table::print(
        &["SITUATION", "FIX"],
        &r.fixes
            .iter()
            .map(|f| vec![f.situation.to_string(), f.fix.to_string()])
            .collect::<Vec<_>>(),
    );
    println!();
    println!("This machine:");
    table::print(
        &["CHECK", "RESULT"],
        &[
            vec![
                "pidfd_getfd (inspect/apply)".into(),
                if r.pidfd_getfd {
                    "available".into()
                } else {
                    "MISSING: needs Linux 5.6; use run or the library".into()
                },
            ],
            vec![
                "kernel.yama.ptrace_scope".into(),
                match r.ptrace_scope {
                    None => "not set (Yama off): same user or CAP_SYS_PTRACE".into(),
                    Some(0) => "0: same user or CAP_SYS_PTRACE".into(),
                    Some(1) => {
                        "1: same user only for its own descendants, else CAP_SYS_PTRACE".into()
                    }
                    Some(2) => "2: only CAP_SYS_PTRACE (root)".into(),
                    Some(n) => format!("{n}: nobody may (inspect/apply refused even for root)"),
                },
            ],
            vec![
                "libkeepalive.so (run)".into(),
                r.preload.clone().unwrap_or_else(|| {
                    "none loadable next to this binary (or in ../lib): pass --preload".into()
                }),
            ],
        ],
    );
    println!();
    println!("The kernel door (cgroup attach):");
    let k = &r.kernel_door;
    table::print(
        &["CHECK", "RESULT"],
        &[
            vec![
                "kernel".into(),
                format!(
                    "{} ({})",
                    k.kernel,
                    if k.kernel_at_least_5_9 {
                        "5.9 or later: keep-alive from BPF"
                    } else {
                        "OLDER THAN 5.9: bpf_setsockopt cannot set keep-alive"
                    }
                ),
            ],
            vec![
                "cgroup v2 mount".into(),
                k.cgroup2_mount
                    .clone()
                    .unwrap_or_else(|| "NONE: cgroup BPF needs cgroup v2".into()),
            ],
            vec!["BPF file system".into(), k.bpffs.clone()],
            vec![
                "loading the BPF programs".into(),
                match &k.problem {
                    None => "works".into(),
                    Some(p) => format!("FAILS: {p}"),
                },
            ],
        ],
    );
}
