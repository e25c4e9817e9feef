//! Enforcement (contract C1, docs/design.md "Who decides"): the program's own setsockopt calls on the
//! sockets the preload configured, from tests/programs/sockets.c `enforce`. Each case creates a
//! socket, makes one write, and prints the call's result and errno and every value the kernel
//! then holds. The program runs bare and preloaded: result and errno must be the same (the
//! program's call returns what it would have), the values those of the C1 rule. The shared table
//! `core/tests/data/enforce-cases.tsv` runs through sockets.c `table`, every `write` row.

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
    // A vfork child closing that number and making a UDP socket (or a TCP one whose configuration
    // fails) there: still ours in the parent.
    ("vfork-udp-ka-off", "1", "71", "13", "5", "45678"),
    ("vfork-failed-ka-off", "1", "71", "13", "5", "45678"),
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
    // The vfork children really made their socket at the parent's number.
    for case in ["vfork-udp-ka-off-child", "vfork-failed-ka-off-child"] {
        assert_eq!(line(&preloaded, case).get("status"), "0", "{case}");
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

/// One `write` row of the shared enforcement table.
struct Row {
    line: String,
    /// The operator's settings as the preload's variables.
    env: Vec<(&'static str, String)>,
    socket: String,
    level: i32,
    name: i32,
    requested: i32,
    expected: i32,
    optlen: usize,
}

/// The shared table's `write` rows (`core/tests/data/enforce-cases.tsv`); a missing table fails.
fn write_rows() -> Vec<Row> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/data/enforce-cases.tsv");
    let table = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the shared table {}: {e}", path.display()));
    let mut rows = Vec::new();
    for line in table
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 13, "bad row {line:?}");
        assert!(matches!(f[11], "tcp" | "mptcp"), "row {line:?}: socket");
        if f[10] != "write" {
            // connect and sweep are the kernel door's moments: the preload has a socket from
            // socket() on, so every write it sees is a `write`.
            continue;
        }
        let num = |i: usize| -> i64 {
            f[i].parse()
                .unwrap_or_else(|e| panic!("row {line:?}: field {i}: {e}"))
        };
        let mut env = vec![
            ("TCP_KEEPALIVE_IDLE", f[0].to_string()),
            ("TCP_KEEPALIVE_INTERVAL", f[1].to_string()),
            ("TCP_KEEPALIVE_COUNT", f[2].to_string()),
        ];
        if f[3] != "-" {
            env.push(("TCP_KEEPALIVE_USER_TIMEOUT", format!("{}ms", f[3])));
        }
        rows.push(Row {
            line: line.to_string(),
            env,
            socket: f[11].to_string(),
            level: num(4) as i32,
            name: num(5) as i32,
            requested: num(7) as i32,
            expected: num(8) as i32,
            optlen: num(9) as usize,
        });
    }
    rows
}

/// What the kernel does with `value` written (optlen 4) to a fresh socket of `kind` made in this
/// process, without the preload: the call's result (0 or errno) and the value read back.
fn control(kind: &str, level: i32, name: i32, value: i32) -> (i32, i32) {
    let protocol = if kind == "mptcp" { 262 } else { 0 };
    // SAFETY: plain system calls on a descriptor this function owns and closes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, protocol);
        assert!(
            fd >= 0,
            "{kind} socket: {}",
            std::io::Error::last_os_error()
        );
        let ret = match libc::setsockopt(fd, level, name, (&value as *const i32).cast(), 4) {
            0 => 0,
            _ => std::io::Error::last_os_error().raw_os_error().unwrap(),
        };
        let mut got = 0i32;
        let mut len = 4 as libc::socklen_t;
        let read = libc::getsockopt(fd, level, name, (&mut got as *mut i32).cast(), &mut len);
        libc::close(fd);
        (ret, if read == 0 { got } else { i32::MIN })
    }
}

/// Every `write` row of the shared table (docs/design.md, "Who decides"), on a TCP or MPTCP
/// socket as the row says, with the row's optlen (also above a page): the program's call returns
/// bare and preloaded alike, and under the preload with the row's settings the kernel holds what
/// the row's expected value gives when written to a fresh socket.
#[test]
fn every_write_row_of_the_shared_table() {
    let rows = write_rows();
    let mut groups: BTreeMap<Vec<(&str, String)>, Vec<&Row>> = BTreeMap::new();
    for row in &rows {
        groups.entry(row.env.clone()).or_default().push(row);
    }
    let mut checked = BTreeMap::<String, usize>::new();
    for (env, rows) in &groups {
        let args: Vec<String> = std::iter::once("table".to_string())
            .chain(rows.iter().flat_map(|r| {
                [
                    r.socket.clone(),
                    r.level.to_string(),
                    r.name.to_string(),
                    r.requested.to_string(),
                    r.optlen.to_string(),
                ]
            }))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let bare = by_name(&parse(&sockets(&args, false, &[]).stdout));
        let out = sockets(&args, true, &env);
        assert_eq!(out.stderr, "", "no log unless asked");
        let preloaded = by_name(&parse(&out.stdout));
        assert_eq!(preloaded.len(), rows.len(), "{}", out.stdout);
        for (i, row) in rows.iter().enumerate() {
            let name = format!("row{i}");
            let (b, p) = (&bare[&name], &preloaded[&name]);
            assert!(
                !p.fields.contains_key("socket"),
                "row {:?}: no {} socket: {p:?}",
                row.line,
                row.socket
            );
            same_call_result(b, p);
            let (ret, value) = control(&row.socket, row.level, row.name, row.expected);
            let want = if ret == 0 { "ok" } else { "fail" };
            assert_eq!(
                p.get("set"),
                want,
                "row {:?}: the program's call (bare: {b:?}, preloaded: {p:?})",
                row.line
            );
            if ret == 0 {
                assert_eq!(
                    p.get("value"),
                    value.to_string(),
                    "row {:?}: the value the kernel holds under the preload ({env:?})",
                    row.line
                );
            } else {
                assert_eq!(p.get("errno"), ret.to_string(), "row {:?}", row.line);
            }
            let big = if row.optlen > 4096 { "/big" } else { "" };
            *checked.entry(format!("{}{big}", row.socket)).or_default() += 1;
        }
    }
    assert!(
        ["tcp", "tcp/big", "mptcp"]
            .iter()
            .all(|k| checked.get(*k).copied().unwrap_or(0) > 0),
        "rows of every kind: {checked:?}"
    );
    println!("write rows checked: {checked:?}");
}
