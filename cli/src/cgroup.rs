//! `tcp-keepalive cgroup attach|detach|status|agent`: the kernel door, every TCP connection of a
//! cgroup v2 (a pod, a service, a node's `kubepods`), whatever the program's language.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;
use tcp_keepalive::KeepAlive;
use tcp_keepalive_cgroup::{Attached, Attachments, Cgroup, Status};

use crate::fail::Failure;
use crate::process::Process;
use crate::table;
use crate::values::Timings;

const ATTACH_HELP: &str = "\
Examples:
  sudo tcp-keepalive cgroup attach /sys/fs/cgroup/system.slice/app.service
  sudo tcp-keepalive cgroup attach /sys/fs/cgroup/kubepods.slice --idle 60 --interval 10 --count 6
  sudo tcp-keepalive cgroup attach /sys/fs/cgroup/my.slice --idle 30 --no-enforce";

/// The kernel door's subcommands.
#[derive(Subcommand, Debug)]
pub enum CgroupCmd {
    /// Give every TCP connection made or accepted in a cgroup v2 (and the cgroups below it) these
    /// keep-alive settings, and fix the connections already open there.
    ///
    /// Attaches two BPF programs to the cgroup and pins them under /sys/fs/bpf/tcp-keepalive
    /// (TCP_KEEPALIVE_PIN_ROOT moves it), so the attachment outlives this command. Attaching
    /// again updates the settings in place. Enforced by default: programs may choose shorter
    /// timings but cannot turn keep-alive off or lengthen them; --no-enforce lets their own
    /// writes win. Then applies the settings to every open TCP connection of the cgroup's
    /// processes (as `apply` does) and says how many it changed. Needs Linux 5.9+, CAP_BPF and
    /// CAP_NET_ADMIN (root).
    #[command(after_help = ATTACH_HELP)]
    Attach {
        /// The cgroup v2 directory, e.g. /sys/fs/cgroup/kubepods.slice.
        #[arg(value_name = "CGROUP")]
        cgroup: PathBuf,
        #[command(flatten)]
        settings: DoorSettings,
    },
    /// Remove our programs and pins from a cgroup; other programs attached there stay.
    ///
    /// New connections get the system defaults again; open ones keep what they have.
    Detach {
        /// The cgroup v2 directory.
        #[arg(value_name = "CGROUP")]
        cgroup: PathBuf,
    },
    /// Every cgroup we are attached to (or one), with its settings and counters, read from the map.
    Status {
        /// Only this cgroup v2 directory.
        #[arg(value_name = "CGROUP")]
        cgroup: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The node agent (a Kubernetes DaemonSet's entry): attach at kubepods, sweep, wait for SIGTERM.
    ///
    /// Finds kubepods.slice (systemd cgroup driver) or kubepods (cgroupfs driver) under
    /// --cgroup-root, attaches there (every pod below it, pods created later too), fixes the pods'
    /// open connections, then waits for SIGTERM or SIGINT. On exit it detaches, unless
    /// --keep-on-exit; a restarted agent updates the attachment in place.
    #[command(
        after_help = "Example (a DaemonSet's container args):\n  [\"cgroup\", \"agent\", \"--idle\", \"60\", \"--keep-on-exit\"]"
    )]
    Agent {
        /// Where to look for kubepods [default: the cgroup v2 mount in /proc/mounts].
        #[arg(long, value_name = "DIR")]
        cgroup_root: Option<PathBuf>,
        #[command(flatten)]
        settings: DoorSettings,
        /// Leave the attachment in place when the agent ends (new pods stay covered meanwhile).
        #[arg(long)]
        keep_on_exit: bool,
        #[command(flatten)]
        kubernetes: KubernetesArgs,
    },
}

/// The agent's Kubernetes mode.
#[derive(Args, Debug, Clone, Default)]
pub struct KubernetesArgs {
    /// Per pod, by annotation: learn the node's pods from the Kubernetes API (in-cluster service
    /// account, else KUBECONFIG) and attach at each selected pod's cgroup with the settings its
    /// tcp-keepalive.dev/* annotations (or its namespace's) ask for; the timing flags are the
    /// defaults. Never attaches at kubepods itself (per-pod settings must win).
    #[arg(long)]
    kubernetes: bool,
    /// The node whose pods to serve [default: the NODE_NAME environment variable].
    #[arg(long, value_name = "NODE", requires = "kubernetes")]
    node_name: Option<String>,
    /// Which pods: `annotated` (only those whose own or namespace's tcp-keepalive.dev/keepalive
    /// says on: installing the agent changes nothing until a team asks) or `all` (every pod but
    /// those that say off).
    #[arg(long, value_name = "WHICH", default_value = "annotated", value_parser = ["annotated", "all"], requires = "kubernetes")]
    select: String,
    /// Where /metrics, /healthz and /readyz are served, or `off`.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:9977",
        requires = "kubernetes"
    )]
    metrics_address: String,
    /// Do not fix the connections open in a pod when it is first attached (needs no hostPID,
    /// CAP_SYS_PTRACE or CAP_DAC_READ_SEARCH then; connections made before keep their values).
    #[arg(long)]
    no_sweep: bool,
    /// How often every pod's attachment is checked against the kernel and the API's view.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        requires = "kubernetes"
    )]
    resync: String,
}

/// The settings `attach` and `agent` take.
#[derive(Args, Debug, Clone, Default)]
pub struct DoorSettings {
    #[command(flatten)]
    timings: Timings,
    /// Let programs' own keep-alive writes win (no ceiling).
    #[arg(long)]
    no_enforce: bool,
}

/// `tcp-keepalive cgroup ...`.
pub fn run_cgroup(cmd: &CgroupCmd) -> Result<i32, Failure> {
    match cmd {
        CgroupCmd::Attach { cgroup, settings } => {
            // Every value is checked before anything is looked at.
            let keepalive = settings.timings.resolve()?;
            let cgroup = Cgroup::open(cgroup).map_err(Failure::Kernel)?;
            attach_and_sweep(&cgroup, &keepalive, !settings.no_enforce, true)?;
            Ok(0)
        }
        CgroupCmd::Detach { cgroup } => {
            let cgroup = Cgroup::open(cgroup).map_err(Failure::Kernel)?;
            attachments()?.detach(&cgroup).map_err(Failure::Kernel)?;
            println!(
                "detached from {} (cgroup id {}): new connections get the system defaults",
                cgroup.path().display(),
                cgroup.id()
            );
            Ok(0)
        }
        CgroupCmd::Status { cgroup, json } => run_status(cgroup.as_deref(), *json),
        CgroupCmd::Agent {
            cgroup_root,
            settings,
            keep_on_exit,
            kubernetes,
        } if kubernetes.kubernetes => {
            run_kubernetes_agent(cgroup_root.as_deref(), settings, *keep_on_exit, kubernetes)
        }
        CgroupCmd::Agent {
            cgroup_root,
            settings,
            keep_on_exit,
            kubernetes,
        } => run_agent(
            cgroup_root.as_deref(),
            settings,
            *keep_on_exit,
            !kubernetes.no_sweep,
        ),
    }
}

fn attachments() -> Result<Attachments, Failure> {
    Attachments::from_env().map_err(Failure::Kernel)
}

fn attach_and_sweep(
    cgroup: &Cgroup,
    keepalive: &KeepAlive,
    enforce: bool,
    sweep_open: bool,
) -> Result<(), Failure> {
    let what = attachments()?
        .attach(cgroup, keepalive, enforce)
        .map_err(Failure::Kernel)?;
    println!(
        "{} {} (cgroup id {}): {keepalive}, enforce {}",
        match what {
            Attached::New => "attached to",
            Attached::Updated => "updated",
        },
        cgroup.path().display(),
        cgroup.id(),
        if enforce { "on" } else { "off" },
    );
    if !sweep_open {
        println!("open connections: not swept (--no-sweep): they keep their values");
        return Ok(());
    }
    let swept = sweep(cgroup, keepalive)?;
    println!(
        "open connections: changed {} of {} TCP sockets in {} processes",
        swept.changed, swept.sockets, swept.processes,
    );
    // The attachment stands (every new connection is covered), so these are warnings.
    for failure in &swept.failed {
        eprintln!("tcp-keepalive: sweep: {failure}");
    }
    Ok(())
}

/// What the sweep of open connections did.
#[derive(Debug, Default)]
struct Sweep {
    processes: usize,
    sockets: usize,
    changed: usize,
    failed: Vec<String>,
}

/// Applies the settings to every TCP socket of every process in the cgroup and below, through
/// pidfd_getfd duplicates, as `apply` does. Processes gone meanwhile are skipped.
fn sweep(cgroup: &Cgroup, keepalive: &KeepAlive) -> Result<Sweep, Failure> {
    let mut out = Sweep::default();
    let own = std::process::id() as i32;
    crate::process::raise_open_file_limit();
    for pid in cgroup.processes().map_err(Failure::Kernel)? {
        if pid == own {
            continue;
        }
        let process = match Process::open(pid) {
            Ok(p) => p,
            Err(Failure::Gone { .. }) => continue,
            Err(e) => {
                out.failed.push(format!("process {pid}: {e}"));
                continue;
            }
        };
        // One duplicate at a time, as `apply` does: any process under any open-file limit.
        let visited = process.each_tcp_socket(|s| {
            out.sockets += 1;
            match keepalive.apply(&s.dup) {
                Ok(()) => out.changed += 1,
                Err(e) => out
                    .failed
                    .push(format!("process {pid}: {}", e.with_fd(s.fd))),
            }
            Ok(())
        });
        match visited {
            Ok(_) => out.processes += 1,
            Err(Failure::Gone { .. }) => {}
            Err(e) => out.failed.push(format!("process {pid}: {e}")),
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct StatusJson {
    cgroup_id: u64,
    cgroup: Option<String>,
    pins: String,
    idle_s: u64,
    interval_s: u64,
    count: u32,
    user_timeout_ms: Option<u64>,
    enforce: bool,
    configured: u64,
    capped: u64,
    links_pinned: bool,
    linked: bool,
}

impl From<&Status> for StatusJson {
    fn from(s: &Status) -> Self {
        StatusJson {
            cgroup_id: s.cgroup_id,
            cgroup: s.cgroup_path.as_ref().map(|p| p.display().to_string()),
            pins: s.pins.display().to_string(),
            idle_s: s.keepalive.idle().as_secs(),
            interval_s: s.keepalive.interval().as_secs(),
            count: s.keepalive.count(),
            user_timeout_ms: s.keepalive.user_timeout().map(|t| t.as_millis() as u64),
            enforce: s.enforce,
            configured: s.configured,
            capped: s.capped,
            links_pinned: s.links_pinned,
            linked: s.linked,
        }
    }
}

fn run_status(cgroup: Option<&Path>, json: bool) -> Result<i32, Failure> {
    let door = attachments()?;
    let all = match cgroup {
        Some(path) => {
            let cgroup = Cgroup::open(path).map_err(Failure::Kernel)?;
            vec![door.status(&cgroup).map_err(Failure::Kernel)?]
        }
        None => door.list().map_err(Failure::Kernel)?,
    };
    if json {
        let rows: Vec<StatusJson> = all.iter().map(StatusJson::from).collect();
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "pin_root": door.pin_root().display().to_string(),
            "attachments": rows,
        }))
        .map_err(|e| Failure::Other(format!("writing JSON failed: {e}")))?;
        println!("{text}");
        return Ok(0);
    }
    if all.is_empty() {
        println!(
            "tcp-keepalive is attached to no cgroup (pins: {})",
            door.pin_root().display()
        );
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            vec![
                match (&s.cgroup_path, s.linked) {
                    (Some(p), _) => p.display().to_string(),
                    (None, false) => "(cgroup gone)".into(),
                    (None, true) => "(not found under the cgroup2 mount)".into(),
                },
                s.cgroup_id.to_string(),
                format!(
                    "{}s/{}s/{}",
                    s.keepalive.idle().as_secs(),
                    s.keepalive.interval().as_secs(),
                    s.keepalive.count()
                ),
                s.keepalive
                    .user_timeout()
                    .map_or_else(|| "-".into(), |t| format!("{}ms", t.as_millis())),
                if s.enforce { "on" } else { "off" }.into(),
                s.configured.to_string(),
                s.capped.to_string(),
                if s.links_pinned {
                    "yes"
                } else {
                    "NO: detach and attach again"
                }
                .into(),
            ]
        })
        .collect();
    table::print(
        &[
            "CGROUP",
            "ID",
            "IDLE/INTERVAL/COUNT",
            "USER-TIMEOUT",
            "ENFORCE",
            "CONFIGURED",
            "CAPPED",
            "LINKED",
        ],
        &rows,
    );
    Ok(0)
}

/// kubepods.slice (systemd driver) or kubepods (cgroupfs driver) under `root`.
fn find_kubepods(root: &Path) -> Result<PathBuf, Failure> {
    ["kubepods.slice", "kubepods"]
        .iter()
        .map(|name| root.join(name))
        .find(|p| p.is_dir())
        .ok_or_else(|| Failure::NoKubepods {
            root: root.to_path_buf(),
        })
}

fn cgroup_root(cgroup_root: Option<&Path>) -> Result<PathBuf, Failure> {
    match cgroup_root {
        Some(r) => Ok(r.to_path_buf()),
        None => tcp_keepalive_cgroup::cgroup2_mount().ok_or_else(|| {
            Failure::Kernel(tcp_keepalive_cgroup::Error::NotADirectory {
                path: PathBuf::from("/proc/mounts"),
                reason: "no cgroup2 file system is mounted".into(),
                hint: "mount it, or pass --cgroup-root".into(),
            })
        }),
    }
}

fn run_kubernetes_agent(
    root: Option<&Path>,
    settings: &DoorSettings,
    keep_on_exit: bool,
    k: &KubernetesArgs,
) -> Result<i32, Failure> {
    let keepalive = settings.timings.resolve()?;
    let resync = tcp_keepalive::parse_seconds("resync", &k.resync).map_err(Failure::invalid)?;
    let metrics_address = match k.metrics_address.as_str() {
        "off" => None,
        a => Some(a.parse().map_err(|_| {
            Failure::invalid(tcp_keepalive::Error::InvalidArgument {
                name: "metrics-address".into(),
                value: a.into(),
                allowed: "ADDRESS:PORT (0.0.0.0:9977, 127.0.0.1:9977, [::]:9977) or off".into(),
            })
        })?),
    };
    let node_name = match k.node_name.clone().or_else(|| std::env::var("NODE_NAME").ok()) {
        Some(n) if !n.trim().is_empty() => n,
        _ => {
            return Err(Failure::Usage(
                "--kubernetes needs the node's name: --node-name, or NODE_NAME (the downward API's spec.nodeName)".into(),
            ))
        }
    };
    let kubepods = find_kubepods(&cgroup_root(root)?)?;
    let sweep: Option<tcp_keepalive_k8s::Sweeper> = (!k.no_sweep).then(|| {
        std::sync::Arc::new(|cgroup: &Cgroup, keepalive: &KeepAlive| {
            let swept = sweep(cgroup, keepalive).map_err(|e| e.to_string())?;
            for failure in &swept.failed {
                eprintln!("tcp-keepalive: sweep: {failure}");
            }
            Ok(swept.changed as u64)
        }) as tcp_keepalive_k8s::Sweeper
    });
    tcp_keepalive_k8s::run(tcp_keepalive_k8s::Config {
        kubepods,
        node_name,
        select: if k.select == "all" {
            tcp_keepalive_k8s::Select::All
        } else {
            tcp_keepalive_k8s::Select::Annotated
        },
        defaults: tcp_keepalive_k8s::NodeDefaults {
            keepalive,
            enforce: !settings.no_enforce,
        },
        metrics_address,
        keep_on_exit,
        resync,
        own_pod_uid: std::env::var("POD_UID").ok().filter(|u| !u.is_empty()),
        sweep,
    })
    .map_err(Failure::Other)?;
    Ok(0)
}

fn run_agent(
    cgroup_root: Option<&Path>,
    settings: &DoorSettings,
    keep_on_exit: bool,
    sweep_open: bool,
) -> Result<i32, Failure> {
    let keepalive = settings.timings.resolve()?;
    // Blocked before anything else, so a SIGTERM during the attach waits for sigwait below.
    let signals = block_termination();
    let root = self::cgroup_root(cgroup_root)?;
    let cgroup = Cgroup::open(find_kubepods(&root)?).map_err(Failure::Kernel)?;
    attach_and_sweep(&cgroup, &keepalive, !settings.no_enforce, sweep_open)?;
    // Attachments of cgroups removed meanwhile (kubepods recreated, a pod's cgroup) only hold
    // pins; clearing them is safe, the kernel reports their links attached to nothing.
    match attachments()?.remove_defunct() {
        Ok(ids) if !ids.is_empty() => {
            println!(
                "agent: removed the pins of {} cgroups that are gone: {ids:?}",
                ids.len()
            )
        }
        Ok(_) => {}
        Err(e) => eprintln!("tcp-keepalive: agent: clearing attachments of removed cgroups: {e}"),
    }
    println!("agent: waiting for SIGTERM or SIGINT");
    let signal = wait_for(&signals);
    if keep_on_exit {
        println!("agent: signal {signal}: leaving the attachment in place (--keep-on-exit)");
        return Ok(0);
    }
    attachments()?.detach(&cgroup).map_err(Failure::Kernel)?;
    println!(
        "agent: signal {signal}: detached from {}",
        cgroup.path().display()
    );
    Ok(0)
}

fn block_termination() -> libc::sigset_t {
    // SAFETY: building a signal set we own and blocking it for this (single) thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for(set: &libc::sigset_t) -> i32 {
    let mut signal: libc::c_int = 0;
    // SAFETY: sigwait on a set we blocked; it only writes the signal number.
    while unsafe { libc::sigwait(set, &mut signal) } != 0 {}
    signal
}
