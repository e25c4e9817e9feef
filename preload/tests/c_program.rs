//! libkeepalive.so under a plain C program (tests/programs/sockets.c) that calls socket() the ways
//! real programs do and reads every option back with getsockopt. Each test runs the program bare
//! and under LD_PRELOAD and compares what the kernel says.

mod common;

use common::{line, parse, sockets, SocketLine};
use std::process::Command;

/// Distinct values for every option, none of them a default (60/10/6) or the kernel's (7200/75/9).
const DISTINCT: &[(&str, &str)] = &[
    ("TCP_KEEPALIVE_IDLE", "71"),
    ("TCP_KEEPALIVE_INTERVAL", "13"),
    ("TCP_KEEPALIVE_COUNT", "5"),
    ("TCP_KEEPALIVE_USER_TIMEOUT", "45678ms"),
];

fn is_tcp_case(name: &str) -> bool {
    name.starts_with("tcp")
}

fn is_mptcp_case(name: &str) -> bool {
    name.starts_with("mptcp")
}

/// The `cases` run: every TCP socket configured, every other one byte-for-byte as bare.
fn check_cases(
    bare: &[SocketLine],
    preloaded: &[SocketLine],
    expect: (&str, &str, &str, &str, &str),
) {
    assert_eq!(bare.len(), preloaded.len());
    assert!(bare.len() >= 29, "every case ran: {bare:?}");
    let mut configured = 0;
    for (b, p) in bare.iter().zip(preloaded) {
        assert_eq!(b.name, p.name);
        // Return value, errno (777 = untouched on success), CLOEXEC and NONBLOCK: as the kernel gave.
        for key in ["ret", "errno", "cloexec", "nonblock"] {
            assert_eq!(b.fields.get(key), p.fields.get(key), "{key} of {}", b.name);
        }
        if is_tcp_case(&b.name) {
            assert_eq!(b.get("ret"), "ok", "{b:?}");
            assert_eq!(b.get("errno"), "777", "socket() left errno alone: {b:?}");
            assert_eq!(b.get("ka"), "0", "bare sockets have keep-alive off: {b:?}");
            assert_eq!(p.keepalive(), expect, "{}", p.name);
            configured += 1;
        } else if is_mptcp_case(&b.name) && b.get("ret") == "ok" {
            // Configured too, where the kernel accepts every option (see README: MPTCP).
            let ut_supported = !b.get("ut").starts_with('e');
            if expect.4 == "0" || ut_supported {
                let want = (expect.0, expect.1, expect.2, expect.3, b.get("ut"));
                let want = if ut_supported { expect } else { want };
                assert_eq!(p.keepalive(), want, "{}", p.name);
            } else {
                // No TCP_USER_TIMEOUT on MPTCP in this kernel: all or nothing leaves it off.
                assert_eq!(p.get("ka"), "0", "{p:?}");
            }
        } else {
            assert_eq!(
                b, p,
                "a non-TCP socket (or failed call) must be left as it was"
            );
        }
    }
    assert_eq!(configured, 12);
}

#[test]
fn every_tcp_flag_combination_is_configured_and_nothing_else_is_touched() {
    let bare = parse(&sockets(&["cases"], false, &[]).stdout);
    let out = sockets(&["cases"], true, DISTINCT);
    assert_eq!(out.stderr, "", "no log unless TCP_KEEPALIVE_LOG=1");
    check_cases(&bare, &parse(&out.stdout), ("1", "71", "13", "5", "45678"));
    // The failing calls really failed, with the kernel's own errno.
    let fails: Vec<_> = bare.iter().filter(|l| l.get("ret") == "fail").collect();
    assert!(fails.len() >= 4, "{fails:?}");
    assert!(fails.iter().all(|l| l.get("errno") != "777"));
}

#[test]
fn defaults_when_only_loaded() {
    let bare = parse(&sockets(&["cases"], false, &[]).stdout);
    let out = sockets(&["cases"], true, &[]);
    check_cases(&bare, &parse(&out.stdout), ("1", "60", "10", "6", "0"));
}

#[test]
fn classic_libkeepalive_names_are_read() {
    let bare = parse(&sockets(&["cases"], false, &[]).stdout);
    let env = [
        ("KEEPALIVE", "on"),
        ("KEEPIDLE", "91"),
        ("KEEPINTVL", "17"),
        ("KEEPCNT", "4"),
    ];
    let out = sockets(&["cases"], true, &env);
    check_cases(&bare, &parse(&out.stdout), ("1", "91", "17", "4", "0"));
    // A prefixed variable wins over its classic name; units are accepted.
    let env = [("KEEPIDLE", "91"), ("TCP_KEEPALIVE_IDLE", "2m")];
    let out = sockets(&["cases"], true, &env);
    check_cases(&bare, &parse(&out.stdout), ("1", "120", "10", "6", "0"));
}

#[test]
fn the_other_preloads_names_are_read_in_their_own_units() {
    // Replacing msantos/libkeepalive or libdontdie keeps a deployment's settings (core reads
    // their names last; msantos's TCP_USER_TIMEOUT is milliseconds).
    let bare = parse(&sockets(&["cases"], false, &[]).stdout);
    let msantos = [
        ("TCP_KEEPIDLE", "15"),
        ("TCP_KEEPINTVL", "16"),
        ("TCP_KEEPCNT", "9"),
        ("TCP_USER_TIMEOUT", "150000"),
    ];
    let out = sockets(&["cases"], true, &msantos);
    check_cases(&bare, &parse(&out.stdout), ("1", "15", "16", "9", "150000"));
    let dontdie = [
        ("DD_USE_KEEPALIVE", "1"),
        ("DD_TCP_KEEPALIVE_TIME", "33"),
        ("DD_TCP_KEEPALIVE_INTVL", "7"),
        ("DD_TCP_KEEPALIVE_PROBES", "4"),
    ];
    let out = sockets(&["cases"], true, &dontdie);
    check_cases(&bare, &parse(&out.stdout), ("1", "33", "7", "4", "0"));
    // Ours win over theirs.
    let both = [("TCP_KEEPIDLE", "15"), ("TCP_KEEPALIVE_IDLE", "71")];
    let out = sockets(&["cases"], true, &both);
    check_cases(&bare, &parse(&out.stdout), ("1", "71", "10", "6", "0"));
    // libdontdie's off switch.
    let out = sockets(&["cases"], true, &[("DD_USE_KEEPALIVE", "0")]);
    assert_eq!(
        parse(&out.stdout),
        bare,
        "DD_USE_KEEPALIVE=0 leaves every socket alone"
    );
}

#[test]
fn invalid_values_are_reported_once_and_change_no_socket() {
    let bare = sockets(&["cases"], false, &[]).stdout;
    let invalid = [
        ("KEEPIDLE", "0"),
        ("TCP_KEEPALIVE_IDLE", "abc"),
        ("TCP_KEEPALIVE_IDLE", "-5"),
        ("TCP_KEEPALIVE_INTERVAL", "40000"),
        ("KEEPINTVL", "1.5"),
        ("TCP_KEEPALIVE_COUNT", "128"),
        ("KEEPCNT", "0"),
        ("TCP_KEEPALIVE_USER_TIMEOUT", "0"),
        ("TCP_KEEPALIVE_USER_TIMEOUT", "3000000000ms"),
        ("TCP_KEEPALIVE", "maybe"),
        ("KEEPALIVE", "enable"),
    ];
    for (name, value) in invalid {
        // Valid values for the others, so only the invalid one can be the reason.
        let mut env = vec![("TCP_KEEPALIVE_LOG", "1")];
        if !name.contains("IDLE") {
            env.push(("KEEPIDLE", "71"));
        }
        env.push((name, value));
        let out = sockets(&["cases"], true, &env);
        assert_eq!(
            out.stdout, bare,
            "{name}={value}: every socket must be left exactly as bare"
        );
        let lines: Vec<_> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{name}={value}: one line: {:?}", out.stderr);
        let msg = lines[0];
        assert!(
            msg.contains(name) && msg.contains(&format!("{value:?}")) && msg.contains("allowed"),
            "{name}={value}: the line names the variable, the value and what is allowed: {msg}"
        );
    }
}

#[test]
fn an_invalid_log_switch_is_reported_and_nothing_is_applied() {
    // Parsed by core (OperatorEnv) like every other variable: invalid means nothing applied.
    let bare = sockets(&["cases"], false, &[]).stdout;
    let out = sockets(&["cases"], true, &[("TCP_KEEPALIVE_LOG", "verbose")]);
    assert_eq!(out.stdout, bare);
    let lines: Vec<_> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{:?}", out.stderr);
    assert!(lines[0].contains("TCP_KEEPALIVE_LOG") && lines[0].contains("\"verbose\""));
    assert!(lines[0].contains("allowed"), "{}", lines[0]);
}

#[test]
fn a_log_switch_that_is_not_utf8_is_reported_not_ignored() {
    use std::os::unix::ffi::OsStrExt;
    let bare = sockets(&["cases"], false, &[]).stdout;
    let mut cmd = Command::new(common::sockets_program());
    cmd.arg("cases")
        .env("TCP_KEEPALIVE_LOG", std::ffi::OsStr::from_bytes(b"o\xffn"));
    let out = common::run(cmd, true, &[], std::time::Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, bare, "nothing applied");
    let lines: Vec<_> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{:?}", out.stderr);
    assert!(lines[0].contains("TCP_KEEPALIVE_LOG"), "{}", lines[0]);
}

#[test]
fn an_empty_value_means_unset() {
    let bare = parse(&sockets(&["cases"], false, &[]).stdout);
    let env = [
        ("TCP_KEEPALIVE_IDLE", ""),
        ("KEEPIDLE", "91"),
        ("TCP_KEEPALIVE_LOG", " "),
        ("TCP_KEEPALIVE_ENFORCE", ""),
    ];
    let out = sockets(&["cases"], true, &env);
    assert_eq!(out.stderr, "", "an empty TCP_KEEPALIVE_LOG is off");
    check_cases(&bare, &parse(&out.stdout), ("1", "91", "10", "6", "0"));
}

#[test]
fn off_switch_leaves_every_socket_alone() {
    let bare = sockets(&["cases"], false, &[]).stdout;
    for off in [
        ("TCP_KEEPALIVE", "off"),
        ("TCP_KEEPALIVE", "0"),
        ("KEEPALIVE", "off"),
    ] {
        let env = [
            off,
            ("TCP_KEEPALIVE_IDLE", "71"),
            ("TCP_KEEPALIVE_LOG", "1"),
        ];
        let out = sockets(&["cases"], true, &env);
        assert_eq!(out.stdout, bare, "{off:?}");
        assert_eq!(
            out.stderr, "",
            "{off:?}: nothing configured, nothing logged"
        );
    }
    // TCP_KEEPALIVE=off wins over the classic KEEPALIVE=on, and =on is on.
    let env = [("TCP_KEEPALIVE", "off"), ("KEEPALIVE", "on")];
    assert_eq!(sockets(&["cases"], true, &env).stdout, bare);
    let on = sockets(&["cases"], true, &[("TCP_KEEPALIVE", "on")]);
    check_cases(
        &parse(&bare),
        &parse(&on.stdout),
        ("1", "60", "10", "6", "0"),
    );
}

#[test]
fn log_prints_one_line_per_configured_socket() {
    let env = [("TCP_KEEPALIVE_LOG", "1"), ("TCP_KEEPALIVE_IDLE", "71")];
    let out = sockets(&["cases"], true, &env);
    let configured = parse(&out.stdout)
        .iter()
        .filter(|l| (is_tcp_case(&l.name) || is_mptcp_case(&l.name)) && l.get("ret") == "ok")
        .count();
    let lines: Vec<_> = out.stderr.lines().collect();
    assert_eq!(lines.len(), configured, "{}", out.stderr);
    for l in &lines {
        assert!(l.starts_with("tcp-keepalive: fd "), "{l}");
        assert!(
            l.contains("keep-alive on, idle 71s, interval 10s, count 6"),
            "{l}"
        );
    }
}

#[test]
fn failing_setsockopt_returns_the_socket_with_errno_untouched() {
    // A seccomp filter makes every setsockopt fail with EPERM.
    let bare = sockets(&["seccomp"], false, &[]);
    let env = [("TCP_KEEPALIVE_LOG", "1"), ("TCP_KEEPALIVE_IDLE", "71")];
    let out = sockets(&["seccomp"], true, &env);
    assert_eq!(
        out.stdout, bare.stdout,
        "socket returned as the kernel made it"
    );
    let l = &parse(&out.stdout)[0];
    assert_eq!(
        (l.get("ret"), l.get("errno"), l.get("ka")),
        ("ok", "777", "0")
    );
    assert!(
        out.stderr
            .contains("keep-alive left off, socket returned anyway")
            && out.stderr.contains("Operation not permitted"),
        "{}",
        out.stderr
    );
    // Without the log switch the failure is silent.
    let quiet = sockets(&["seccomp"], true, &[("TCP_KEEPALIVE_IDLE", "71")]);
    assert_eq!(quiet.stderr, "");
}

#[test]
fn a_failing_tcp_socket_call_keeps_its_errno() {
    let bare = sockets(&["emfile"], false, &[]);
    let out = sockets(&["emfile"], true, DISTINCT);
    let lines = parse(&out.stdout);
    assert_eq!(out.stdout, bare.stdout);
    for l in &lines {
        assert_eq!(
            (l.get("ret"), l.get("errno")),
            ("fail", "24"),
            "EMFILE: {l:?}"
        );
    }
    assert_eq!(lines.len(), 2);
}

#[test]
fn many_threads_creating_sockets_at_once() {
    let out = sockets(&["threads", "32", "40"], true, DISTINCT);
    let lines = parse(&out.stdout);
    assert_eq!(lines.len(), 32 * 40);
    for l in &lines {
        assert_eq!(l.get("errno"), "777", "{l:?}");
        assert_eq!(l.keepalive(), ("1", "71", "13", "5", "45678"), "{l:?}");
    }
}

#[test]
fn forked_children_and_exec_ed_programs_are_covered() {
    let out = sockets(&["fork"], true, DISTINCT);
    let lines = parse(&out.stdout);
    for name in ["forked-child", "exec-child", "parent"] {
        assert_eq!(
            line(&lines, name).keepalive(),
            ("1", "71", "13", "5", "45678"),
            "{name}"
        );
    }
    // Bare, the same program's sockets are off: the preload is what turned them on.
    let bare = parse(&sockets(&["fork"], false, &[]).stdout);
    assert!(bare.iter().all(|l| l.get("ka") == "0"), "{bare:?}");
}

#[test]
fn accepted_sockets_inherit_the_listeners_settings() {
    let out = sockets(&["listen"], true, DISTINCT);
    let lines = parse(&out.stdout);
    assert_eq!(
        line(&lines, "accepted").keepalive(),
        ("1", "71", "13", "5", "45678")
    );
    // The peer was made with a raw system call (as Go does), so the hook never saw it.
    assert_eq!(line(&lines, "raw-syscall-client").get("ka"), "0");
    let bare = parse(&sockets(&["listen"], false, &[]).stdout);
    assert_eq!(line(&bare, "accepted").get("ka"), "0");
}

#[test]
fn a_socket_made_before_the_library_was_initialised_is_left_alone() {
    // Constructors of preloaded libraries run last-listed first: early.so's runs before ours.
    // Until our constructor ran, the hook makes the bare system call and configures nothing (no
    // dlsym, no environment, no allocation); every socket after it is configured.
    let preload = format!(
        "{} {}",
        common::library().display(),
        common::early_library().display()
    );
    let mut cmd = Command::new(common::sockets_program());
    cmd.arg("one");
    let mut env = vec![("LD_PRELOAD", preload.as_str())];
    env.extend_from_slice(DISTINCT);
    let out = common::run(cmd, false, &env, std::time::Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines = parse(&out.stdout);
    let early = line(&lines, "early-constructor");
    assert_eq!(
        (early.get("ret"), early.get("errno")),
        ("ok", "777"),
        "{early:?}"
    );
    assert_eq!(early.get("ka"), "0", "{early:?}");
    let later = line(&lines, "exec-child");
    assert_eq!(later.get("errno"), "777", "{later:?}");
    assert_eq!(later.keepalive(), ("1", "71", "13", "5", "45678"));
}

#[test]
fn a_panic_inside_the_hook_never_reaches_the_program() {
    let lib = std::fs::read(common::library()).unwrap();
    let switch = b"TCP_KEEPALIVE_PRELOAD_TEST_PANIC";
    if !lib.windows(switch.len()).any(|w| w == switch) {
        eprintln!("the panic switch exists in debug builds of libkeepalive.so only");
        return;
    }
    let bare = sockets(&["cases"], false, &[]).stdout;
    // `sockets` asserts exit code 0: the program ran to its end.
    let out = sockets(
        &["cases"],
        true,
        &[("TCP_KEEPALIVE_PRELOAD_TEST_PANIC", "1")],
    );
    assert_eq!(out.stdout, bare, "every socket returned, errno untouched");
    assert_eq!(
        out.stderr, "",
        "a caught panic prints nothing to the host's stderr"
    );
    // With the log asked for, one line per caught panic says so (so the panic did happen).
    let env = [
        ("TCP_KEEPALIVE_PRELOAD_TEST_PANIC", "1"),
        ("TCP_KEEPALIVE_LOG", "1"),
    ];
    let out = sockets(&["cases"], true, &env);
    assert_eq!(out.stdout, bare);
    assert!(
        out.stderr.lines().count() >= 12
            && out
                .stderr
                .lines()
                .all(|l| l.contains("internal error, caught")
                    && l.contains("TCP_KEEPALIVE_PRELOAD_TEST_PANIC")),
        "{}",
        out.stderr
    );
}

#[test]
fn only_the_hooks_and_the_marker_are_exported() {
    let out = Command::new("nm")
        .args(["-D", "--defined-only", "--format=just-symbols"])
        .arg(common::library())
        .output()
        .expect("nm (binutils)");
    assert!(out.status.success());
    let symbols = String::from_utf8(out.stdout).unwrap();
    let symbols: Vec<_> = symbols.lines().collect();
    assert_eq!(
        symbols,
        [
            // The marker `run --preload` and `install-preload` check (lib.rs).
            "TCP_KEEPALIVE_PRELOAD",
            "accept",
            "accept4",
            "dup",
            "dup2",
            "dup3",
            "setsockopt",
            "socket"
        ]
    );
}
