//! `tcp-keepalive`: see and fix the TCP keep-alive of running processes, run programs with
//! keep-alive, and check what the system's defaults mean against middleboxes.

mod cgroup;
mod doctor;
mod elf;
mod fail;
mod install;
mod measure;
mod process;
mod run;
mod sockets;
mod table;
mod values;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use values::Timings;

const AFTER_HELP: &str = "\
Examples:
  tcp-keepalive doctor                          what the system defaults mean, which fix fits
  sudo tcp-keepalive inspect --pid 4242         every TCP socket of process 4242, its keep-alive
  sudo tcp-keepalive apply --pid 4242 --idle 60 --interval 10 --count 6
  sudo tcp-keepalive apply --pid 4242 --peer 10.0.0.5:5432 --idle 30s --user-timeout 2m
  tcp-keepalive run --idle 60 -- java -jar client.jar
  sudo tcp-keepalive cgroup attach /sys/fs/cgroup/kubepods.slice --idle 60
  tcp-keepalive measure db.example:5432         the path's idle timeout, and the keep-alive that beats it

Durations: 90, 90s, 2m, 1h, 1500ms. Limits: idle and interval 1 to 32767 s, count 1 to 127,
user timeout 1 ms to 2147483647 ms.

Exit codes:
  0    success
  1    other failure (apply: some sockets failed, the others were changed)
  2    bad command line or option value (nothing was changed)
  3    no such process (ESRCH)
  4    not permitted (needs CAP_SYS_PTRACE, or the same user under kernel.yama.ptrace_scope)
  5    the kernel has no pidfd_getfd (ENOSYS: needs Linux 5.6)
  6    run, install-preload: libkeepalive.so not found, or not a preload library this machine can load
  7    apply: no TCP socket of the process matched (nothing was changed)
  8    cgroup: not a cgroup v2 directory (not a directory, cgroup v1, a plain directory)
  9    cgroup: not permitted to use BPF (needs CAP_BPF and CAP_NET_ADMIN, or root)
  10   cgroup: the kernel cannot (older than 5.9, no BPF or cgroup BPF)
  11   cgroup: no BPF file system for the pins (mount -t bpf bpf /sys/fs/bpf)
  12   cgroup detach/status: not attached to that cgroup
  13   cgroup: another program holds the cgroup exclusively (attached without multi)
  14   cgroup agent: no kubepods.slice or kubepods under the cgroup root
  15   cgroup: the pin root or a pin directory is not root's alone (owner, mode, a symbolic link)
  16   cgroup: another attach or detach held the lock too long (TCP_KEEPALIVE_LOCK_TIMEOUT)
  17   cgroup attach: the cgroup v2 root, every process of the host, without --whole-host
  18   measure: the host name does not resolve (or has no address of the family asked for)
  19   measure: cannot connect (refused, unreachable, no answer within 10 s); --listen: cannot listen
  126  run: the command could not be executed
  127  run: the command was not found
  run: otherwise the program's own exit status (it replaces tcp-keepalive)";

/// See and fix TCP keep-alive of running processes, without a restart.
///
/// A middlebox (AWS NLB or NAT gateway: 350 s, Azure load balancer: 240 s, a conntrack
/// firewall) forgets a TCP connection that stays silent longer than its idle timeout and then
/// drops its packets without a word; Linux sends its first keep-alive probe only after 7200 s,
/// and only on sockets that asked for keep-alive. This command shows which connections of a
/// process are exposed, fixes them in place, and starts programs with keep-alive on.
#[derive(Parser, Debug)]
#[command(name = "tcp-keepalive", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Every TCP socket of a process: addresses, state, keep-alive settings, time to next probe.
    ///
    /// Reads /proc/PID/fd and /proc/PID/net/tcp{,6}, duplicates each TCP socket with
    /// pidfd_getfd and reads its options from the kernel. Needs the process's own user or
    /// CAP_SYS_PTRACE (root), and Linux 5.6+. NEXT-KEEPALIVE is the time until the keep-alive
    /// timer fires (a probe goes out then if the connection has been idle long enough).
    #[command(after_help = "Example:\n  sudo tcp-keepalive inspect --pid 4242 --json")]
    Inspect {
        /// The process to look into.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        pid: i32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Mark each connection whose keep-alive would not beat this path idle timeout (from
        /// `tcp-keepalive measure`, e.g. its low end).
        #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
        path_timeout: Option<String>,
    },
    /// Turn keep-alive on, with these timings, on a running process's TCP sockets.
    ///
    /// Changes the process's own connections (a pidfd_getfd duplicate shares the socket), then
    /// prints each socket's settings before and after, read back from the kernel. Without
    /// --peer every TCP socket is changed, listening ones too (their future connections inherit
    /// the settings). Options not given take the defaults (idle 60 s, interval 10 s, count 6);
    /// the user timeout is left as it is unless given. Only TCP sockets are ever touched.
    /// This is the operator acting by hand on one process: it sets exactly these values, longer
    /// ones than the program chose included (the sweeps of `cgroup attach` and the agent cap).
    #[command(
        after_help = "Examples:\n  sudo tcp-keepalive apply --pid 4242\n  sudo tcp-keepalive apply --pid 4242 --peer 203.0.113.2:8080 --idle 1 --interval 1 --count 3"
    )]
    Apply {
        /// The process whose sockets to change.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        pid: i32,
        #[arg(
            long,
            value_name = "ADDR[:PORT]",
            help = "Only sockets connected to this peer: ADDR or ADDR:PORT (IPv6 as [ADDR]:PORT)"
        )]
        peer: Option<String>,
        #[command(flatten)]
        timings: Timings,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The system's keep-alive defaults, what they mean against common middleboxes, which fix fits.
    Doctor {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Run a program with libkeepalive.so preloaded: every TCP socket it makes gets keep-alive.
    ///
    /// Sets LD_PRELOAD and TCP_KEEPALIVE=on plus the TCP_KEEPALIVE_* variable of each option
    /// given (options not given leave inherited variables, else the defaults, in force), then
    /// executes the program in place of this one: its exit status and signals are its own.
    /// Works for dynamically linked programs (not Go or static binaries, not setuid ones).
    #[command(
        after_help = "Examples:\n  tcp-keepalive run -- curl http://203.0.113.2/slow\n  tcp-keepalive run --idle 30 --user-timeout 45s --log -- java -jar client.jar"
    )]
    Run {
        #[command(flatten)]
        timings: Timings,
        /// The preload library [default: libkeepalive.so next to this binary, or ../lib/].
        #[arg(long, value_name = "PATH")]
        preload: Option<PathBuf>,
        /// One stderr line per socket configured (TCP_KEEPALIVE_LOG=1).
        #[arg(long)]
        log: bool,
        /// The program and its arguments.
        #[arg(
            value_name = "CMD",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        command: Vec<OsString>,
    },
    /// The kernel door: keep-alive for every TCP connection of a cgroup v2, any language.
    ///
    /// BPF programs attached to the cgroup set keep-alive on every connection made or accepted
    /// there (static Go binaries too) and, enforced by default, keep programs from turning it off
    /// or lengthening it. Linux 5.9+, cgroup v2, CAP_BPF + CAP_NET_ADMIN (root).
    #[command(subcommand)]
    Cgroup(cgroup::CgroupCmd),
    /// The idle timeout of the path to HOST:PORT, and the keep-alive that beats it.
    ///
    /// Opens a few dozen connections to any TCP listener and sends nothing on them: keep-alive
    /// probes after chosen silences (every 0.5 s up to 6 s, then 25 % apart, up to --max, then
    /// finer rounds) find the silence after which a middlebox forgets the flow (its probes time
    /// out, or are reset). Prints the bracket, or "no idle timeout up to MAX", or that the server
    /// itself closes idle connections, and the keep-alive that keeps such a path. Takes about the
    /// timeout itself plus a second or two; --max when there is none. A middlebox that re-creates
    /// a forgotten flow from the client's probe (conntrack with nf_conntrack_tcp_loose=1 before a
    /// NAT) cannot be seen from one side: run `tcp-keepalive measure --listen PORT` on the far end
    /// and measure against that port, which also tests the server-to-client direction.
    #[command(
        after_help = "Examples:\n  tcp-keepalive measure db.example:5432\n  tcp-keepalive measure [2001:db8::5]:443 --max 10m --json\n  tcp-keepalive measure --listen 7777    # on the far end, then: measure FAR:7777"
    )]
    Measure {
        /// HOST:PORT (IPv6 as [ADDR]:PORT); a host name is resolved.
        #[arg(value_name = "HOST:PORT", required_unless_present = "listen")]
        target: Option<String>,
        /// The longest silence to test: 1 to 32767 s [default: 15m].
        #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
        max: Option<String>,
        /// Only IPv4 addresses of HOST (--listen: only 0.0.0.0).
        #[arg(long, conflicts_with = "ipv6")]
        ipv4: bool,
        /// Only IPv6 addresses of HOST (--listen: only [::]).
        #[arg(long)]
        ipv6: bool,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
        /// Be the far end of the two-sided mode on this port, until interrupted.
        #[arg(long, value_name = "PORT", conflicts_with_all = ["target", "max", "json"], allow_hyphen_values = true)]
        listen: Option<String>,
    },
    /// Copy libkeepalive.so into DIR (an init container filling a volume shared with the app).
    ///
    /// Copies the library that ships beside this binary (in the image:
    /// /usr/local/lib/libkeepalive.so) to DIR/libkeepalive.so, mode 0644, atomically (a
    /// temporary file renamed over the old one). The application's container then sets
    /// LD_PRELOAD=DIR/libkeepalive.so.
    #[command(
        name = "install-preload",
        after_help = "Example (Kubernetes init container, image tcp-keepalive:0.1.0):\n  args: [\"install-preload\", \"/shared\"]"
    )]
    InstallPreload {
        /// An existing directory, e.g. the shared volume's mount point.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The library to copy [default: libkeepalive.so next to this binary, or ../lib/].
        #[arg(long, value_name = "PATH")]
        preload: Option<PathBuf>,
    },
}

fn main() {
    // Write errors to a closed pipe (`| head`) end the program quietly, as for other tools; a
    // program started by `run` gets the usual default too.
    // SAFETY: setting a signal disposition to its default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match &cli.command {
        Cmd::Inspect {
            pid,
            json,
            path_timeout,
        } => sockets::run_inspect(*pid, *json, path_timeout.as_deref()),
        Cmd::Apply {
            pid,
            peer,
            timings,
            json,
        } => sockets::run_apply(*pid, peer.as_deref(), timings, *json),
        Cmd::Doctor { json } => doctor::run_doctor(*json),
        Cmd::Run {
            timings,
            preload,
            log,
            command,
        } => run::run_run(timings, preload.as_deref(), *log, command),
        Cmd::Cgroup(cmd) => cgroup::run_cgroup(cmd),
        Cmd::InstallPreload { dir, preload } => install::run_install(dir, preload.as_deref()),
        Cmd::Measure {
            target,
            max,
            ipv4,
            ipv6,
            json,
            listen,
        } => {
            let family = match (ipv4, ipv6) {
                (true, _) => Some(4),
                (_, true) => Some(6),
                _ => None,
            };
            match (listen, target) {
                (Some(port), _) => measure::run_listen(port, family),
                (None, Some(target)) => measure::run_measure(&measure::Args {
                    target,
                    max: max.as_deref(),
                    family,
                    json: *json,
                }),
                (None, None) => unreachable!("clap requires HOST:PORT without --listen"),
            }
        }
    };
    let code = match result {
        Ok(code) => code,
        Err(failure) => {
            // Names from the system (a cgroup's, a command's) may hold terminal escapes.
            eprintln!("tcp-keepalive: {}", table::printable(&failure.to_string()));
            failure.exit_code()
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_after_dashes() {
        let cli = Cli::try_parse_from([
            "tcp-keepalive",
            "run",
            "--idle",
            "5",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .unwrap();
        match cli.command {
            Cmd::Run {
                command, timings, ..
            } => {
                assert_eq!(command, ["sh", "-c", "exit 3"]);
                assert_eq!(timings.idle.as_deref(), Some("5"));
            }
            other => panic!("{other:?}"),
        }
    }
}
