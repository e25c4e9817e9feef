//! The shared environment vocabulary (contract C3, core/tests/data/env-cases.tsv), through the
//! preload: every row's variables set on a real program under libkeepalive.so, and what the
//! kernel then holds for its socket (or the one stderr line) must be the row's result.
//! "unset" means the preload's defaults (60/10/6): being loaded is the request.

mod common;

use common::{parse, run, sockets_program};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[path = "../../core/tests/data/env_table.rs"]
mod table;

#[test]
fn every_row_of_the_shared_table_holds_under_the_preload() {
    let table = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/env-cases.tsv");
    let text = std::fs::read_to_string(&table).expect("core/tests/data/env-cases.tsv");
    let mut checked = 0;
    for case in table::cases(&text) {
        let expected = case.expected.as_str();
        let row = format!("line {}: {expected}", case.line);
        let mut cmd = Command::new(sockets_program());
        cmd.arg("one");
        for (name, value) in &case.vars {
            cmd.env(name, OsStr::from_bytes(value));
        }
        let out = run(cmd, true, &[], Duration::from_secs(60));
        assert_eq!(out.code, Some(0), "{row}: {out:?}");
        let lines = parse(&out.stdout);
        let socket = common::line(&lines, "exec-child");
        let values = socket.keepalive();
        let words: Vec<_> = expected.split(' ').collect();
        match words[0] {
            "unset" => assert_eq!(values, ("1", "60", "10", "6", "0"), "{row}"),
            "off" => assert_eq!(values.0, "0", "{row}: left alone"),
            "on" => {
                let ut = if words[4] == "-" { "0" } else { words[4] };
                assert_eq!(values, ("1", words[1], words[2], words[3], ut), "{row}");
            }
            "error" => {
                let message = &expected["error ".len()..];
                assert_eq!(values.0, "0", "{row}: nothing applied");
                let lines: Vec<_> = out.stderr.lines().collect();
                assert_eq!(lines.len(), 1, "{row}: {:?}", out.stderr);
                assert!(
                    lines[0].contains(message),
                    "{row}: the preload's line carries core's exact message: {}",
                    lines[0]
                );
            }
            other => panic!("unknown result {other:?} in {row}"),
        }
        if words[0] != "error" {
            assert_eq!(out.stderr, "", "{row}: quiet");
        }
        checked += 1;
    }
    assert!(checked >= 100, "only {checked} rows");
}
