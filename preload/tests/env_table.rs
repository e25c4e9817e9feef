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

/// A value with the table's escapes undone, as bytes (`\xHH` may make it non-UTF-8).
fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('s') => out.push(b' '),
            Some('t') => out.push(b'\t'),
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).expect("\\xHH"));
            }
            Some('u') => {
                assert_eq!(chars.next(), Some('{'), "\\u{{HEX}} in {text:?}");
                let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let c = char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap();
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            other => panic!("unknown escape \\{other:?} in {text:?}"),
        }
    }
    out
}

#[test]
fn every_row_of_the_shared_table_holds_under_the_preload() {
    let table = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/env-cases.tsv");
    let text = std::fs::read_to_string(&table).expect("core/tests/data/env-cases.tsv");
    let mut checked = 0;
    for row in text.lines() {
        if row.is_empty() || row.starts_with('#') {
            continue;
        }
        let (variables, expected) = row.split_once('\t').expect("two fields");
        let mut cmd = Command::new(sockets_program());
        cmd.arg("one");
        if variables != "-" {
            for assignment in variables.split(' ') {
                let (name, value) = assignment.split_once('=').expect("NAME=VALUE");
                cmd.env(name, OsStr::from_bytes(&unescape(value)));
            }
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
