//! `tcp-keepalive cgroup attach|detach|status|agent`: the kernel door, every TCP connection of a
//! cgroup v2 (a pod, a service, a node's `kubepods`), whatever the program's language.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;
use tcp_keepalive::KeepAlive;
use tcp_keepalive_cgroup::{Attached, Attachments, Cgroup, SocketCheck, Status};

use crate::fail::Failure;
use crate::process::Process;
use crate::table;

/// `println!`, with control characters of the text escaped (cgroup names are anyone's).
macro_rules! say {
    ($($arg:tt)*) => { println!("{}", table::printable(&format!($($arg)*))) };
}

/// `eprintln!`, escaped the same way.
macro_rules! warn {
    ($($arg:tt)*) => { eprintln!("{}", table::printable(&format!($($arg)*))) };
}
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
    /// writes win. Then caps every open TCP connection of the cgroup's processes at the settings
    /// (a shorter timing a program chose stays) and says how many it changed. Needs Linux 5.9+, CAP_BPF and
    /// CAP_NET_ADMIN (root).
    #[command(after_help = ATTACH_HELP)]
    Attach {
        /// The cgroup v2 directory, e.g. /sys/fs/cgroup/kubepods.slice.
        #[arg(value_name = "CGROUP")]
        cgroup: PathBuf,
        #[command(flatten)]
        settings: DoorSettings,
        /// Allow the cgroup v2 root itself: every process of the host (refused without it, so
        /// an empty variable in `$POD_CGROUP` cannot do it by accident).
        #[arg(long)]
        whole_host: bool,
    },
    /// Remove our programs and pins from a cgroup, or from every cgroup (--all); other programs
    /// attached there stay.
    ///
    /// New connections get the system defaults again; open ones keep what they have. --all is
    /// the uninstall: every attachment under the pin root (/sys/fs/bpf/tcp-keepalive, or
    /// TCP_KEEPALIVE_PIN_ROOT), broken or partial ones and those of cgroups gone included, then
    /// the pin root itself. Run it on each node once the agents have stopped (an agent still
    /// running attaches again). Nothing attached is not an error there (exit 0); an attachment
    /// that cannot be removed is named and the others are removed all the same (exit: its
    /// error's code).
    #[command(after_help = DETACH_HELP)]
    Detach {
        /// The cgroup v2 directory.
        #[arg(
            value_name = "CGROUP",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        cgroup: Option<PathBuf>,
        /// Every attachment and pin of ours under the pin root, and the pin root.
        #[arg(long)]
        all: bool,
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
    /// open connections, then waits for SIGTERM or SIGINT. On exit it leaves the attachment in
    /// place (new connections stay covered while no agent runs), unless --detach-on-exit. A
    /// restarted agent adopts the attachment: its settings are written in place, and programs
    /// of another version (an upgrade) are replaced in place with no moment uncovered. Uninstall:
    /// `tcp-keepalive cgroup detach --all` on each node once the agents are gone.
    #[command(
        after_help = "Example (a DaemonSet's container args):\n  [\"cgroup\", \"agent\", \"--idle\", \"60\"]"
    )]
    Agent {
        /// Where to look for kubepods [default: the cgroup v2 mount in /proc/mounts].
        #[arg(long, value_name = "DIR")]
        cgroup_root: Option<PathBuf>,
        #[command(flatten)]
        settings: DoorSettings,
        /// Detach when the agent ends (SIGTERM, SIGINT): new connections get the system
        /// defaults until an agent attaches again. Without it the attachment stays.
        #[arg(long, conflicts_with = "keep_on_exit")]
        detach_on_exit: bool,
        /// Leave the attachment in place when the agent ends: the default; accepted for
        /// manifests written when detaching was.
        #[arg(long)]
        keep_on_exit: bool,
        /// How often the agent checks that kubepods is still the cgroup it attached to and that
        /// its programs are still attached there (kubepods removed and made again, a link
        /// detached), and attaches again if not.
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = recheck_interval)]
        recheck: std::time::Duration,
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

/// `--recheck`: a duration of 100ms to 1h (core's parser for the text).
fn recheck_interval(text: &str) -> Result<std::time::Duration, String> {
    let d = tcp_keepalive::parse_duration("recheck", text).map_err(|e| e.to_string())?;
    if !(std::time::Duration::from_millis(100)..=std::time::Duration::from_secs(3600)).contains(&d)
    {
        return Err(format!("invalid recheck: {text:?} (allowed: 100ms to 1h)"));
    }
    Ok(d)
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
        CgroupCmd::Attach {
            cgroup,
            settings,
            whole_host,
        } => {
            // Every value is checked before anything is looked at.
            let keepalive = settings.timings.resolve()?;
            let cgroup = Cgroup::open(cgroup).map_err(Failure::Kernel)?;
            let door = attachments()?.whole_host(*whole_host);
            attach_and_sweep(&door, &cgroup, &keepalive, !settings.no_enforce, true)?;
            Ok(0)
        }
        CgroupCmd::Detach { all: true, .. } => run_detach_all(),
        CgroupCmd::Detach { cgroup, .. } => {
            let Some(cgroup) = cgroup else {
                return Err(Failure::Usage("give a CGROUP or --all".into()));
            };
            let cgroup = Cgroup::open(cgroup).map_err(Failure::Kernel)?;
            attachments()?.detach(&cgroup).map_err(Failure::Kernel)?;
            say!(
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
            detach_on_exit,
            keep_on_exit: _,
            recheck: _,
            kubernetes,
        } if kubernetes.kubernetes => run_kubernetes_agent(
            cgroup_root.as_deref(),
            settings,
            !*detach_on_exit,
            kubernetes,
        ),
        CgroupCmd::Agent {
            cgroup_root,
            settings,
            detach_on_exit,
            keep_on_exit: _,
            recheck,
            kubernetes,
        } => run_agent(
            cgroup_root.as_deref(),
            settings,
            *detach_on_exit,
            *recheck,
            !kubernetes.no_sweep,
        ),
    }
}

const DETACH_HELP: &str = "\
Examples:
  sudo tcp-keepalive cgroup detach /sys/fs/cgroup/system.slice/app.service
  sudo tcp-keepalive cgroup detach --all      # uninstall: every attachment and pin of ours";

/// `cgroup detach --all`: every attachment under the pin root; each one that cannot be
/// removed is named, the others are removed all the same.
fn run_detach_all() -> Result<i32, Failure> {
    let door = attachments()?;
    let done = door.detach_all().map_err(Failure::Kernel)?;
    for id in &done.removed {
        say!("detached cgroup id {id} and removed its pins");
    }
    for path in &done.left {
        warn!(
            "tcp-keepalive: detach --all: {} is no attachment of tcp-keepalive: left as it is (and the pin root with it)",
            path.display()
        );
    }
    let mut code = 0;
    let failed = done.failed.len();
    for (path, e) in done.failed {
        warn!("tcp-keepalive: detach --all: {}: {e}", path.display());
        if code == 0 {
            code = Failure::Kernel(e).exit_code();
        }
    }
    say!(
        "attachments removed: {}{}",
        done.removed.len(),
        if done.pin_root_removed {
            format!(
                "; {} removed: nothing of tcp-keepalive is left",
                door.pin_root().display()
            )
        } else if done.removed.is_empty() && failed == 0 && done.left.is_empty() {
            format!(" (nothing under {})", door.pin_root().display())
        } else {
            String::new()
        }
    );
    Ok(code)
}

fn attachments() -> Result<Attachments, Failure> {
    Attachments::from_env().map_err(Failure::Kernel)
}

/// Attaches, warns when enforcement does not hold ([`not_held`]), sweeps. Returns that warning
/// (`None`: held, enforcement off, or unknown), for the agent's rechecks.
fn attach_and_sweep(
    door: &Attachments,
    cgroup: &Cgroup,
    keepalive: &KeepAlive,
    enforce: bool,
    sweep_open: bool,
) -> Result<Option<String>, Failure> {
    let report = door
        .attach_report(cgroup, keepalive, enforce)
        .map_err(Failure::Kernel)?;
    if let Some(object) = door.object() {
        warn!(
            "tcp-keepalive: loaded the BPF object {} ({}), not the one built in",
            object.display(),
            tcp_keepalive_cgroup::BPF_OBJECT_ENV
        );
    }
    let what = report.attached;
    say!(
        "{} {} (cgroup id {}): {keepalive}, enforce {}",
        match what {
            Attached::New => "attached to",
            Attached::Updated => "updated",
        },
        cgroup.path().display(),
        cgroup.id(),
        if enforce { "on" } else { "off" },
    );
    if report.replaced {
        say!(
            "replaced the programs of cgroup id {} in place: the attached ones were another version (links kept, no connection missed)",
            cgroup.id()
        );
    }
    let warned = door
        .status(cgroup)
        .ok()
        .filter(|_| enforce)
        .and_then(|status| not_held(&status));
    if let Some(warning) = &warned {
        warn!("tcp-keepalive: warning: {warning}");
    }
    if !sweep_open {
        say!("open connections: not swept (--no-sweep): they keep their values");
        return Ok(warned);
    }
    let check = door.socket_check(cgroup).map_err(Failure::Kernel)?;
    let swept = sweep(cgroup, keepalive, &check)?;
    say!(
        "open connections: changed {} of {} TCP sockets in {} processes{}",
        swept.changed,
        swept.sockets,
        swept.processes,
        match swept.outside {
            0 => String::new(),
            n => format!(
                " ({n} more held there belong to a cgroup outside, made before the process moved in or passed in from outside: left alone)"
            ),
        }
    );
    if swept.other_pid_namespace > 0 {
        warn!(
            "tcp-keepalive: sweep: {} processes of the cgroup are outside this process's PID namespace (cgroup.procs lists them as 0), so their open connections were not changed; the sweep needs the host's PID namespace (hostPID: true in a pod); new connections are covered all the same",
            swept.other_pid_namespace
        );
    }
    // The attachment stands (every new connection is covered), so these are warnings.
    for failure in &swept.failed {
        warn!("tcp-keepalive: sweep: {failure}");
    }
    Ok(warned)
}

/// What the sweep of open connections did.
#[derive(Debug, Default)]
struct Sweep {
    processes: usize,
    sockets: usize,
    changed: usize,
    /// Sockets the processes hold whose own cgroup is outside the attached one: not touched.
    outside: usize,
    /// Processes cgroup.procs shows as 0: in a PID namespace this process cannot see.
    other_pid_namespace: usize,
    failed: Vec<String>,
}

/// Caps every TCP socket that belongs to the cgroup or below (`SocketCheck`), of every process
/// in the cgroup and below, at the settings (keep-alive
/// on, each timing the smaller of the socket's and ours: `KeepAlive::apply_ceiling`), through
/// pidfd_getfd duplicates. Processes gone meanwhile are skipped.
fn sweep(cgroup: &Cgroup, keepalive: &KeepAlive, check: &SocketCheck) -> Result<Sweep, Failure> {
    let mut out = Sweep::default();
    let own = std::process::id() as i32;
    crate::process::raise_open_file_limit();
    for pid in cgroup.processes_all().map_err(Failure::Kernel)? {
        if pid == 0 {
            out.other_pid_namespace += 1;
            continue;
        }
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
            // Only sockets of the attached cgroup or below: the socket's own cgroup, which the
            // kernel (and so our program) goes by, not the process's.
            if !check.covers(&s.dup) {
                out.outside += 1;
                return Ok(());
            }
            out.sockets += 1;
            // A ceiling, as for new connections: a program's shorter choice stays.
            match keepalive.apply_ceiling(&s.dup) {
                Ok(changed) => out.changed += usize::from(changed),
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

/// Why enforcement does not hold on an attachment, when another cgroup/setsockopt program runs
/// after ours (it may pass calls through with optlen 0 and so undo the cap).
fn not_held(s: &Status) -> Option<String> {
    let after = s.setsockopt_after_ours.as_ref().filter(|a| !a.is_empty())?;
    if !s.enforce {
        return None;
    }
    let names: Vec<String> = after.iter().map(ToString::to_string).collect();
    Some(format!(
        "enforcement may not hold on cgroup id {}: the kernel runs {} after ours on its sockets \
         (attached later to the same cgroup, or to an ancestor), and a program that passes calls \
         through (optlen = 0) undoes the cap; the CAPPED count then includes writes it undid. \
         Detach it, or attach it before ours / below this cgroup (cgroup/README.md, \"Beside \
         other BPF programs\")",
        s.cgroup_id,
        names.join(", ")
    ))
}

/// [`not_held`] when the kernel's list of programs after ours could be read: `Some(None)` held,
/// `Some(Some(warning))` not held, `None` unknown.
fn not_held_of(s: &Status) -> Option<Option<String>> {
    s.setsockopt_after_ours.as_ref().map(|_| not_held(s))
}

#[derive(Serialize)]
struct OtherJson {
    id: u32,
    name: String,
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
    /// Other cgroup/setsockopt programs run after ours (null: could not be read).
    setsockopt_after_ours: Option<Vec<OtherJson>>,
    /// Enforcement on and no other setsockopt program after ours (null: could not be read).
    enforce_held: Option<bool>,
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
            setsockopt_after_ours: s.setsockopt_after_ours.as_ref().map(|a| {
                a.iter()
                    .map(|p| OtherJson {
                        id: p.id,
                        name: p.name.clone(),
                    })
                    .collect()
            }),
            enforce_held: s
                .setsockopt_after_ours
                .as_ref()
                .map(|a| s.enforce && a.is_empty()),
        }
    }
}

fn run_status(cgroup: Option<&Path>, json: bool) -> Result<i32, Failure> {
    let door = attachments()?;
    // Each attachment is read on its own: one that cannot be read is reported beside the others.
    let mut broken = Vec::new();
    let all = match cgroup {
        Some(path) => {
            let cgroup = Cgroup::open(path).map_err(Failure::Kernel)?;
            vec![door.status(&cgroup).map_err(Failure::Kernel)?]
        }
        None => {
            let mut all = Vec::new();
            for listed in door.list_all().map_err(Failure::Kernel)? {
                match listed.status {
                    Ok(s) => all.push(s),
                    Err(e) => broken.push((listed.cgroup_id, listed.pins, e)),
                }
            }
            all
        }
    };
    for (id, pins, e) in &broken {
        warn!(
            "tcp-keepalive: status: cgroup id {id} ({}): {e}",
            pins.display()
        );
    }
    let code = if broken.is_empty() {
        0
    } else {
        crate::fail::code::OTHER
    };
    if json {
        let rows: Vec<StatusJson> = all.iter().map(StatusJson::from).collect();
        let broken: Vec<serde_json::Value> = broken
            .iter()
            .map(|(id, pins, e)| {
                serde_json::json!({
                    "cgroup_id": id,
                    "pins": pins.display().to_string(),
                    "error": e.to_string(),
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "pin_root": door.pin_root().display().to_string(),
            "attachments": rows,
            "broken": broken,
        }))
        .map_err(|e| Failure::Other(format!("writing JSON failed: {e}")))?;
        say!("{text}");
        return Ok(code);
    }
    if all.is_empty() && broken.is_empty() {
        say!(
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
                match (s.enforce, &s.setsockopt_after_ours) {
                    (false, _) => "off".into(),
                    (true, Some(after)) if !after.is_empty() => format!(
                        "on, NOT HELD: {} after ours",
                        after
                            .iter()
                            .map(|p| p.id.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    (true, _) => "on".into(),
                },
                s.configured.to_string(),
                s.capped.to_string(),
                match (s.linked, &s.cgroup_path) {
                    (true, _) => "yes",
                    (false, None) => "no: cgroup gone",
                    (false, Some(_)) => "NO: detach and attach again",
                }
                .into(),
            ]
        })
        .collect();
    let mut rows = rows;
    for (id, pins, _) in &broken {
        let mut row = vec![format!("(pins {})", pins.display()), id.to_string()];
        row.extend(["-", "-", "-", "-", "-"].map(String::from));
        row.push("UNREADABLE: see above".into());
        rows.push(row);
    }
    for s in &all {
        if let Some(warning) = not_held(s) {
            warn!("tcp-keepalive: warning: {warning}");
        }
    }
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
    Ok(code)
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
    // Programs loaded ahead for pods about to start hold descriptors (k8s/README.md).
    let open_files = crate::process::raise_open_file_limit();
    let sweep: Option<tcp_keepalive_k8s::Sweeper> = (!k.no_sweep).then(|| {
        std::sync::Arc::new(|cgroup: &Cgroup, keepalive: &KeepAlive| {
            // Only the sockets whose own cgroup is the pod's (docs: the sweep's reach).
            let check = attachments()
                .and_then(|door| door.socket_check(cgroup).map_err(Failure::Kernel))
                .map_err(|e| e.to_string())?;
            let swept = sweep(cgroup, keepalive, &check).map_err(|e| e.to_string())?;
            for failure in &swept.failed {
                warn!("tcp-keepalive: sweep: {failure}");
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
        open_files,
    })
    .map_err(Failure::Other)?;
    Ok(0)
}

fn run_agent(
    cgroup_root: Option<&Path>,
    settings: &DoorSettings,
    detach_on_exit: bool,
    recheck: std::time::Duration,
    sweep_open: bool,
) -> Result<i32, Failure> {
    let keepalive = settings.timings.resolve()?;
    // Blocked before anything else, so a SIGTERM during the attach waits for sigwait below.
    let signals = block_termination();
    let root = self::cgroup_root(cgroup_root)?;
    let mut cgroup = Cgroup::open(find_kubepods(&root)?).map_err(Failure::Kernel)?;
    // What `not_held` said of the attachment at attach: warned or said again at a recheck only
    // when it changes (a pass-through program attached or detached since).
    let mut not_held_said = attach_and_sweep(
        &attachments()?,
        &cgroup,
        &keepalive,
        !settings.no_enforce,
        sweep_open,
    )?;
    remove_defunct();
    say!(
        "agent: waiting for SIGTERM or SIGINT; checking kubepods every {}ms",
        recheck.as_millis()
    );
    let mut missing_said = false;
    // Bounded by the signal: every pass waits `recheck` for it.
    let signal = loop {
        if let Some(signal) = wait_for(&signals, recheck) {
            break signal;
        }
        // kubepods removed and made again is another cgroup (another id), with nothing of ours
        // attached: new pods there would stay uncovered while the agent looked healthy.
        let now = match find_kubepods(&root).and_then(|p| Cgroup::open(p).map_err(Failure::Kernel))
        {
            Ok(c) => c,
            Err(e) => {
                if !missing_said {
                    warn!(
                        "tcp-keepalive: agent: kubepods is gone ({e}); waiting for it to come back"
                    );
                    missing_said = true;
                }
                continue;
            }
        };
        missing_said = false;
        let status = attachments()?.status(&now);
        let linked = status.as_ref().is_ok_and(|s| s.linked);
        if now.id() == cgroup.id() && linked {
            // Unknown (the kernel's list unreadable): nothing said.
            if let Some(now_said) = status.ok().and_then(|s| not_held_of(&s)) {
                if now_said != not_held_said {
                    match &now_said {
                        Some(warning) => warn!("tcp-keepalive: warning: {warning}"),
                        None => say!(
                            "agent: enforcement holds again on cgroup id {}: no \
                             cgroup/setsockopt program runs after ours",
                            cgroup.id()
                        ),
                    }
                    not_held_said = now_said;
                }
            }
            continue;
        }
        say!(
            "agent: {} (cgroup id {}, was {}) has {}: attaching again",
            now.path().display(),
            now.id(),
            cgroup.id(),
            if now.id() != cgroup.id() {
                "been made again"
            } else {
                "lost our programs"
            }
        );
        match attach_and_sweep(
            &attachments()?,
            &now,
            &keepalive,
            !settings.no_enforce,
            sweep_open,
        ) {
            Ok(warned) => {
                cgroup = now;
                not_held_said = warned;
                remove_defunct();
            }
            Err(e) => warn!(
                "tcp-keepalive: agent: attaching again failed (next try in {}ms): {e}",
                recheck.as_millis()
            ),
        }
    };
    if !detach_on_exit {
        say!(
            "agent: signal {signal}: leaving the attachment in place (the next agent adopts it; --detach-on-exit detaches)"
        );
        return Ok(0);
    }
    attachments()?.detach(&cgroup).map_err(Failure::Kernel)?;
    say!(
        "agent: signal {signal}: detached from {}",
        cgroup.path().display()
    );
    Ok(0)
}

/// Attachments of cgroups removed meanwhile (kubepods recreated, a pod's cgroup) only hold
/// pins; clearing them is safe, the kernel reports their links attached to nothing.
fn remove_defunct() {
    match attachments().map(|a| a.remove_defunct()) {
        Ok(Ok(ids)) if !ids.is_empty() => {
            say!(
                "agent: removed the pins of {} cgroups that are gone: {ids:?}",
                ids.len()
            )
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!("tcp-keepalive: agent: clearing attachments of removed cgroups: {e}"),
        Err(e) => warn!("tcp-keepalive: agent: {e}"),
    }
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

/// The signal of `set` that arrived within `timeout`, or `None`.
fn wait_for(set: &libc::sigset_t, timeout: std::time::Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: sigtimedwait on a set we blocked, with a timespec we own; no siginfo wanted.
    let signal = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (signal > 0).then_some(signal)
}
