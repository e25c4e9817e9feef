//! Enforcement (contract C1, docs/design.md "Who decides"): the program's own setsockopt calls on the
//! sockets the preload configured, from tests/programs/sockets.c `enforce`. Each case creates a
//! socket, makes one write, and prints the call's result and errno and every value the kernel
//! then holds. The program runs bare and preloaded: result and errno must be the same (the
//! program's call returns what it would have), the values those of the C1 rule.

mod common;

use common::{line, parse, sockets, SocketLine};
use std::collections::BTreeMap;

/// The operator's settings for these tests: no value a default or the kernel's.
const OPERATOR: &[(&str, &str)] = &[
    ("TCP_KEEPALIVE_IDLE", "71"),
    ("TCP_KEEPALIVE_INTERVAL", "13"),
    ("TCP_KEEPALIVE_COUNT", "5"),
    ("TCP_KEEPALIVE_USER_TIMEOUT", "45678ms"),
];

/// The values each case must leave, one C1 line each: (case, ka, idle, intvl, cnt, ut).
const ENFORCED: &[(&str, &str, &str, &str, &str, &str)] = &[
    // SO_KEEPALIVE, any int value: 1.
    ("ka-off", "1", "71", "13", "5", "45678"),
    ("ka-on", "1", "71", "13", "5", "45678"),
    ("ka-two", "1", "71", "13", "5", "45678"),
    ("ka-negative", "1", "71", "13", "5", "45678"),
    ("ka-off-wide", "1", "71", "13", "5", "45678"),
    // Inside Linux's range: min(v, ours).
    ("idle-longer", "1", "71", "13", "5", "45678"),
    ("idle-shorter", "1", "30", "13", "5", "45678"),
    ("idle-max", "1", "71", "13", "5", "45678"),
    ("intvl-longer", "1", "71", "13", "5", "45678"),
    ("intvl-shorter", "1", "71", "4", "5", "45678"),
    ("cnt-longer", "1", "71", "13", "5", "45678"),
    ("cnt-shorter", "1", "71", "13", "2", "45678"),
    // Outside it: unchanged, so the kernel refused it and ours stays.
    ("idle-zero", "1", "71", "13", "5", "45678"),
    ("idle-too-big", "1", "71", "13", "5", "45678"),
    ("idle-negative", "1", "71", "13", "5", "45678"),
    ("intvl-zero", "1", "71", "13", "5", "45678"),
    ("cnt-too-big", "1", "71", "13", "5", "45678"),
    ("cnt-zero", "1", "71", "13", "5", "45678"),
    // TCP_USER_TIMEOUT: 0 (unbounded) becomes ours, longer is capped, shorter stays, < 0 fails.
    ("ut-zero", "1", "71", "13", "5", "45678"),
    ("ut-longer", "1", "71", "13", "5", "45678"),
    ("ut-shorter", "1", "71", "13", "5", "1000"),
    ("ut-negative", "1", "71", "13", "5", "45678"),
    // optlen < sizeof(int), a bad pointer: the kernel's EINVAL and EFAULT, nothing changed.
    ("ka-off-narrow", "1", "71", "13", "5", "45678"),
    ("idle-efault", "1", "71", "13", "5", "45678"),
    // Go's 15/15/9 after SO_KEEPALIVE=1: the shorter idle stays, the rest capped.
    ("go-defaults", "1", "15", "13", "5", "45678"),
    // A duplicate of one of our sockets (dup, dup2, dup3): ours too.
    ("dup-ka-off", "1", "71", "13", "5", "45678"),
    ("dup2-ka-off", "1", "71", "13", "5", "45678"),
    ("dup3-ka-off", "1", "71", "13", "5", "45678"),
    // A vfork child's dup2 over one of ours: still ours in the parent (its table is shared).
    ("vfork-dup2-ka-off", "1", "71", "13", "5", "45678"),
    ("vfork-dup2-idle-longer", "1", "71", "13", "5", "45678"),
    // Accepted from our listener (accept and accept4): ours too.
    ("accepted-ka-off", "1", "71", "13", "5", "45678"),
    ("accepted-idle-longer", "1", "71", "13", "5", "45678"),
    ("accepted4-ka-off", "1", "71", "13", "5", "45678"),
    ("accepted4-idle-longer", "1", "71", "13", "5", "45678"),
];

/// The fields of the fixed cases that must be identical bare and preloaded.
fn same_call_result(bare: &SocketLine, preloaded: &SocketLine) {
    for key in ["set", "errno"] {
        assert_eq!(
            bare.fields.get(key),
            preloaded.fields.get(key),
            "{key} of {}: the program's call must return what it would have",
            bare.name
        );
    }
}

fn by_name(lines: &[SocketLine]) -> BTreeMap<String, SocketLine> {
    lines.iter().map(|l| (l.name.clone(), l.clone())).collect()
}

fn run(preload: bool, env: &[(&str, &str)]) -> Vec<SocketLine> {
    let out = sockets(&["enforce"], preload, env);
    assert_eq!(out.stderr, "", "no log unless asked");
    parse(&out.stdout)
}

#[test]
fn each_rule_of_c1_holds_and_every_call_returns_what_it_would_have() {
    let bare = by_name(&run(false, &[]));
    let preloaded = run(true, OPERATOR);
    assert_eq!(preloaded.len(), bare.len());
    for p in &preloaded {
        same_call_result(&bare[&p.name], p);
    }
    // The invalid ones really failed, with the kernel's errno (EINVAL 22, EFAULT 14).
    for (case, errno) in [
        ("idle-zero", "22"),
        ("idle-too-big", "22"),
        ("idle-negative", "22"),
        ("intvl-zero", "22"),
        ("cnt-too-big", "22"),
        ("cnt-zero", "22"),
        ("ut-negative", "22"),
        ("ka-off-narrow", "22"),
        ("idle-efault", "14"),
    ] {
        let l = line(&preloaded, case);
        assert_eq!((l.get("set"), l.get("errno")), ("fail", errno), "{l:?}");
    }
    for (case, ka, idle, intvl, cnt, ut) in ENFORCED {
        let l = line(&preloaded, case);
        assert_eq!(
            l.keepalive(),
            (*ka, *idle, *intvl, *cnt, *ut),
            "{case}: the values in force"
        );
        if l.get("set") == "ok" {
            assert_eq!(l.get("errno"), "777", "{case}: errno untouched on success");
        }
    }
    // Bare, the program's own values won: the checks above are not what the kernel does anyway.
    assert_eq!(bare["ka-off"].get("ka"), "0");
    assert_eq!(bare["idle-longer"].get("idle"), "7200");
    assert_eq!(bare["ut-longer"].get("ut"), "100000");
}

#[test]
fn other_options_and_other_sockets_are_untouched() {
    let bare = by_name(&run(false, &[]));
    let preloaded = by_name(&run(true, OPERATOR));
    // TCP_NODELAY on one of our sockets; UDP and Unix-domain sockets (SO_KEEPALIVE 1 then 0, and
    // a TCP-level write failing with the kernel's ENOPROTOOPT / EOPNOTSUPP); a TCP socket the hook
    // never saw (raw system call); our number reused by a UDP socket made behind our back.
    for case in [
        "nodelay",
        "udp4-ka-off",
        "udp6-ka-off",
        "unix-stream-ka-off",
        "raw-syscall-ka-off",
        "reused-by-udp",
        "dup2-over-ours-ka-off",
    ] {
        assert_eq!(
            bare[case], preloaded[case],
            "{case}: as without the preload"
        );
    }
    assert_eq!(preloaded["udp4-ka-off"].get("ka"), "0");
    assert_eq!(preloaded["raw-syscall-ka-off"].get("ka"), "0");
    assert_eq!(preloaded["dup2-over-ours-ka-off"].get("ka"), "0");
    assert_eq!(
        preloaded["reused-by-udp"].get("same"),
        "1",
        "the number was reused"
    );
}

#[test]
fn without_a_user_timeout_the_programs_user_timeout_is_its_own() {
    let env = &OPERATOR[..3];
    let preloaded = run(true, env);
    for (case, ut) in [
        ("ut-zero", "0"),
        ("ut-longer", "100000"),
        ("ut-shorter", "1000"),
    ] {
        let l = line(&preloaded, case);
        assert_eq!(l.keepalive(), ("1", "71", "13", "5", ut), "{case}");
    }
}

/// The value a case writes, by its name: `idle-longer` writes idle, `accepted-ka-off` keep-alive.
fn written_field(case: &str) -> Option<&'static str> {
    let option = case
        .trim_start_matches("accepted4-")
        .trim_start_matches("accepted-");
    ["ka", "idle", "intvl", "cnt", "ut"]
        .into_iter()
        .find(|field| option.starts_with(&format!("{field}-")))
}

#[test]
fn enforce_off_lets_the_program_win() {
    let bare = by_name(&run(false, &[]));
    for off in ["off", "0", "no", " false "] {
        let mut env = OPERATOR.to_vec();
        env.push(("TCP_KEEPALIVE_ENFORCE", off));
        let preloaded = run(true, &env);
        for p in &preloaded {
            same_call_result(&bare[&p.name], p);
            // Each successful write is what the kernel holds, as it is bare.
            if let Some(field) = written_field(&p.name) {
                if p.get("set") == "ok" {
                    assert_eq!(p.get(field), bare[&p.name].get(field), "{off}: {p:?}");
                }
            }
        }
        assert_eq!(line(&preloaded, "ka-off").get("ka"), "0", "{off}");
        assert_eq!(line(&preloaded, "idle-longer").get("idle"), "7200");
        assert_eq!(line(&preloaded, "accepted-idle-longer").get("idle"), "7200");
        // The socket was still configured by the preload; only the ceiling is gone.
        assert_eq!(line(&preloaded, "idle-longer").get("intvl"), "13");
    }
}

#[test]
fn an_invalid_enforce_switch_is_reported_and_nothing_is_applied() {
    let bare = sockets(&["enforce"], false, &[]);
    let mut env = OPERATOR.to_vec();
    env.push(("TCP_KEEPALIVE_ENFORCE", "sometimes"));
    let out = sockets(&["enforce"], true, &env);
    assert_eq!(
        out.stdout, bare.stdout,
        "nothing configured, nothing enforced"
    );
    let lines: Vec<_> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{:?}", out.stderr);
    assert!(
        lines[0].contains("TCP_KEEPALIVE_ENFORCE")
            && lines[0].contains("\"sometimes\"")
            && lines[0].contains("allowed"),
        "{}",
        lines[0]
    );
}

#[test]
fn the_log_says_what_was_enforced() {
    let mut env = OPERATOR.to_vec();
    env.push(("TCP_KEEPALIVE_LOG", "1"));
    let out = sockets(&["enforce"], true, &env);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("set TCP_KEEPIDLE to 7200")
                && l.contains("wrote 71")
                && l.contains("TCP_KEEPALIVE_ENFORCE=off")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("set SO_KEEPALIVE to 0") && l.contains("wrote 1")),
        "{}",
        out.stderr
    );
}
