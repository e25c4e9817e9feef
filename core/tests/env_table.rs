//! The shared environment vocabulary (contract C3): every row of `tests/data/env-cases.tsv`
//! through `KeepAlive::from_lookup`, and through `KeepAlive::from_env` with the variables really
//! set in this process's environment (bytes that are not UTF-8 included). The Python tests and
//! the Java fallback's tests read the same table; its header documents the format.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

use tcp_keepalive::{EnvConfig, Error, KeepAlive, ENV_VARIABLES};

const TABLE: &str = include_str!("data/env-cases.tsv");

#[path = "data/env_table.rs"]
mod table;

use table::Case;

fn cases() -> Vec<Case> {
    let cases = table::cases(TABLE);
    for case in &cases {
        for (name, _) in &case.vars {
            assert!(
                ENV_VARIABLES.contains(&name.as_str()),
                "line {}: {name} is not in ENV_VARIABLES",
                case.line
            );
        }
    }
    assert!(cases.len() >= 150, "the table lost rows: {}", cases.len());
    cases
}

/// A result in the table's notation.
fn show(result: Result<EnvConfig, Error>) -> String {
    match result {
        Ok(EnvConfig::Unset) => "unset".into(),
        Ok(EnvConfig::Off) => "off".into(),
        Ok(EnvConfig::On(k)) => format!(
            "on {} {} {} {}",
            k.idle().as_secs(),
            k.interval().as_secs(),
            k.count(),
            k.user_timeout()
                .map_or("-".to_string(), |t| t.as_millis().to_string())
        ),
        Err(e @ Error::InvalidArgument { .. }) => format!("error {e}"),
        Err(other) => panic!("only InvalidArgument comes from the environment: {other:?}"),
    }
}

#[test]
fn every_row_through_from_lookup() {
    for case in cases() {
        let got = KeepAlive::from_lookup(|name| {
            case.vars
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        });
        assert_eq!(show(got), case.expected, "line {}", case.line);
    }
}

#[test]
fn every_row_through_the_real_environment() {
    // The only test in this binary that touches the environment.
    for case in cases() {
        for name in ENV_VARIABLES {
            std::env::remove_var(name);
        }
        for (name, value) in &case.vars {
            std::env::set_var(name, OsString::from_vec(value.clone()));
        }
        let got = show(KeepAlive::from_env());
        for (name, _) in &case.vars {
            std::env::remove_var(name);
        }
        assert_eq!(got, case.expected, "line {}", case.line);
    }
}

#[test]
fn the_settings_rows_are_valid_keepalives() {
    // `on` rows must be settings KeepAlive::new accepts, so a reader can build them.
    for case in cases().iter().filter(|c| c.expected.starts_with("on ")) {
        let f: Vec<&str> = case.expected.split(' ').collect();
        assert_eq!(f.len(), 5, "line {}", case.line);
        let secs = |s: &str| Duration::from_secs(s.parse().unwrap());
        let k = KeepAlive::new(secs(f[1]), secs(f[2]), f[3].parse().unwrap());
        assert!(k.is_ok(), "line {}", case.line);
    }
}
