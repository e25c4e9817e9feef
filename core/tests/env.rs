//! Environment parsing as a table of cases: valid forms, each invalid form, precedence, `off`.

use std::collections::HashMap;
use std::time::Duration;

use tcp_keepalive::{parse_duration, EnvConfig, Error, KeepAlive, OperatorEnv};

fn from(vars: &[(&str, &str)]) -> Result<EnvConfig, Error> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    KeepAlive::from_lookup(|name| map.get(name).cloned())
}

fn on(idle: u64, interval: u64, count: u32, user_timeout_ms: Option<u64>) -> EnvConfig {
    let k = KeepAlive::new(
        Duration::from_secs(idle),
        Duration::from_secs(interval),
        count,
    )
    .unwrap();
    EnvConfig::On(match user_timeout_ms {
        Some(ms) => k.with_user_timeout(Duration::from_millis(ms)).unwrap(),
        None => k,
    })
}

#[test]
fn valid_settings() {
    let cases: Vec<(Vec<(&str, &str)>, EnvConfig)> = vec![
        (vec![], EnvConfig::Unset),
        (vec![("TCP_KEEPALIVE_IDLE", "")], EnvConfig::Unset),
        (vec![("TCP_KEEPALIVE", "on")], on(60, 10, 6, None)),
        (vec![("TCP_KEEPALIVE", "1")], on(60, 10, 6, None)),
        (vec![("TCP_KEEPALIVE_IDLE", "30")], on(30, 10, 6, None)),
        (vec![("TCP_KEEPALIVE_IDLE", "90s")], on(90, 10, 6, None)),
        (vec![("TCP_KEEPALIVE_IDLE", "2m")], on(120, 10, 6, None)),
        (vec![("TCP_KEEPALIVE_IDLE", "1h")], on(3600, 10, 6, None)),
        (vec![("TCP_KEEPALIVE_IDLE", " 45 ")], on(45, 10, 6, None)),
        (
            vec![("TCP_KEEPALIVE_INTERVAL", "1500ms")],
            on(60, 2, 6, None),
        ),
        (vec![("TCP_KEEPALIVE_COUNT", "127")], on(60, 10, 127, None)),
        (
            vec![("TCP_KEEPALIVE_USER_TIMEOUT", "30s")],
            on(60, 10, 6, Some(30_000)),
        ),
        (
            vec![("TCP_KEEPALIVE_USER_TIMEOUT", "1500ms")],
            on(60, 10, 6, Some(1500)),
        ),
        (
            vec![
                ("KEEPALIVE", "on"),
                ("KEEPIDLE", "20"),
                ("KEEPINTVL", "5"),
                ("KEEPCNT", "3"),
            ],
            on(20, 5, 3, None),
        ),
        // Prefixed names win over the classic ones, each on its own.
        (
            vec![
                ("TCP_KEEPALIVE_IDLE", "40"),
                ("KEEPIDLE", "20"),
                ("KEEPINTVL", "5"),
            ],
            on(40, 5, 6, None),
        ),
        (
            vec![("TCP_KEEPALIVE_COUNT", "2"), ("KEEPCNT", "oops")],
            on(60, 10, 2, None),
        ),
        (vec![("TCP_KEEPALIVE", "off")], EnvConfig::Off),
        (
            vec![("TCP_KEEPALIVE", "OFF"), ("TCP_KEEPALIVE_IDLE", "5")],
            EnvConfig::Off,
        ),
        (vec![("KEEPALIVE", "off")], EnvConfig::Off),
        (
            vec![("TCP_KEEPALIVE", "on"), ("KEEPALIVE", "off")],
            on(60, 10, 6, None),
        ),
    ];
    for (vars, expected) in cases {
        assert_eq!(from(&vars).unwrap(), expected, "{vars:?}");
    }
}

#[test]
fn invalid_settings_name_the_variable_and_value() {
    let cases: &[(&str, &str, &str)] = &[
        ("TCP_KEEPALIVE", "maybe", "on or off"),
        ("KEEPALIVE", "enabled", "on or off"),
        ("TCP_KEEPALIVE_IDLE", "abc", "90s, 2m"),
        ("TCP_KEEPALIVE_IDLE", "0", "1 to 32767 seconds"),
        ("KEEPIDLE", "0", "1 to 32767 seconds"),
        ("TCP_KEEPALIVE_IDLE", "32768", "1 to 32767 seconds"),
        ("TCP_KEEPALIVE_IDLE", "-5", "90s, 2m"),
        ("TCP_KEEPALIVE_IDLE", "1.5", "90s, 2m"),
        ("TCP_KEEPALIVE_IDLE", "10 minutes", "90s, 2m"),
        ("TCP_KEEPALIVE_IDLE", "99999999999999999999", "90s, 2m"),
        ("TCP_KEEPALIVE_INTERVAL", "0s", "1 to 32767 seconds"),
        ("KEEPINTVL", "x", "90s, 2m"),
        ("TCP_KEEPALIVE_COUNT", "0", "1 to 127"),
        ("TCP_KEEPALIVE_COUNT", "128", "1 to 127"),
        ("KEEPCNT", "6s", "whole number from 1 to 127"),
        (
            "TCP_KEEPALIVE_USER_TIMEOUT",
            "0",
            "1 to 2147483647 milliseconds",
        ),
        (
            "TCP_KEEPALIVE_USER_TIMEOUT",
            "600h",
            "1 to 2147483647 milliseconds",
        ),
        ("TCP_KEEPALIVE_USER_TIMEOUT", "soon", "90s, 2m"),
    ];
    for (name, value, allowed) in cases {
        let err = from(&[(name, value)]).unwrap_err();
        let text = err.to_string();
        match &err {
            Error::InvalidArgument {
                name: n,
                value: v,
                allowed: a,
            } => {
                assert_eq!((n.as_str(), v.as_str()), (*name, *value), "{text}");
                assert!(
                    a.contains(allowed),
                    "{name}={value}: {text:?} should say {allowed:?}"
                );
            }
            other => panic!("{name}={value}: expected InvalidArgument, got {other:?}"),
        }
        assert!(text.contains(name) && text.contains(value), "{text}");
    }
}

#[test]
fn an_invalid_value_fails_even_when_others_are_valid() {
    let err = from(&[("TCP_KEEPALIVE_IDLE", "30"), ("TCP_KEEPALIVE_COUNT", "999")]).unwrap_err();
    assert!(err.to_string().contains("TCP_KEEPALIVE_COUNT"));
}

#[test]
fn unset_means_defaults_only_where_loading_is_the_request() {
    assert_eq!(EnvConfig::Unset.or_default(), Some(KeepAlive::default()));
    assert_eq!(EnvConfig::Off.or_default(), None);
}

/// Tests that touch the real environment take this lock, so they never see each other's variables.
static ENV_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn from_env_reads_the_process_environment() {
    let _guard = ENV_LOCK.lock().unwrap();
    std::env::set_var("TCP_KEEPALIVE_IDLE", "33");
    std::env::set_var("KEEPCNT", "4");
    let got = KeepAlive::from_env();
    std::env::remove_var("TCP_KEEPALIVE_IDLE");
    std::env::remove_var("KEEPCNT");
    assert_eq!(got.unwrap(), on(33, 10, 4, None));
}

#[test]
fn parse_duration_forms() {
    assert_eq!(parse_duration("x", "0").unwrap(), Duration::ZERO);
    assert_eq!(
        parse_duration("x", "15m").unwrap(),
        Duration::from_secs(900)
    );
    assert_eq!(
        parse_duration("x", "250ms").unwrap(),
        Duration::from_millis(250)
    );
    for bad in ["", "s", "ms5", "5 5", "5d", "+5"] {
        assert!(parse_duration("x", bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_value_that_is_not_utf8_is_reported_not_ignored() {
    use std::os::unix::ffi::OsStrExt;
    let _guard = ENV_LOCK.lock().unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"6\xff");
    std::env::set_var("TCP_KEEPALIVE_INTERVAL", bad);
    let got = KeepAlive::from_env();
    std::env::remove_var("TCP_KEEPALIVE_INTERVAL");
    match got {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "TCP_KEEPALIVE_INTERVAL"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

fn operator(vars: &[(&str, &str)]) -> Result<OperatorEnv, Error> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    OperatorEnv::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn operator_switches_default_to_log_off_and_enforce_on() {
    let env = operator(&[]).unwrap();
    assert_eq!(
        (env.config, env.log, env.enforce),
        (EnvConfig::Unset, false, true)
    );
    let env = operator(&[("TCP_KEEPALIVE_LOG", " "), ("TCP_KEEPALIVE_ENFORCE", "")]).unwrap();
    assert_eq!((env.log, env.enforce), (false, true), "empty means unset");
}

#[test]
fn operator_switches_take_the_switch_words() {
    for (text, value) in [("1", true), ("on", true), ("YES", true), ("true", true)] {
        let env = operator(&[("TCP_KEEPALIVE_LOG", text), ("TCP_KEEPALIVE_ENFORCE", text)]);
        let env = env.unwrap();
        assert_eq!((env.log, env.enforce), (value, value), "{text}");
    }
    for text in ["0", "off", "No", " false "] {
        let env = operator(&[("TCP_KEEPALIVE_LOG", text), ("TCP_KEEPALIVE_ENFORCE", text)]);
        let env = env.unwrap();
        assert_eq!((env.log, env.enforce), (false, false), "{text}");
    }
    let env = operator(&[("TCP_KEEPALIVE_IDLE", "30"), ("TCP_KEEPALIVE_LOG", "1")]).unwrap();
    assert_eq!(env.config, on(30, 10, 6, None));
}

#[test]
fn an_invalid_operator_switch_is_an_error_naming_it() {
    for name in ["TCP_KEEPALIVE_LOG", "TCP_KEEPALIVE_ENFORCE"] {
        let err = operator(&[(name, "2")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid {name}: \"2\" (allowed: on or off (also 1/0, true/false, yes/no))")
        );
    }
    // The settings are checked first.
    let err = operator(&[("TCP_KEEPALIVE_IDLE", "x"), ("TCP_KEEPALIVE_LOG", "2")]).unwrap_err();
    assert!(err.to_string().contains("TCP_KEEPALIVE_IDLE"), "{err}");
}

#[test]
fn a_non_utf8_operator_switch_is_reported_not_ignored() {
    use std::os::unix::ffi::OsStrExt;
    let _guard = ENV_LOCK.lock().unwrap();
    for name in ["TCP_KEEPALIVE_LOG", "TCP_KEEPALIVE_ENFORCE"] {
        std::env::set_var(name, std::ffi::OsStr::from_bytes(b"1\xff"));
        let got = OperatorEnv::from_env();
        std::env::remove_var(name);
        match got {
            Err(Error::InvalidArgument { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name}: expected InvalidArgument, got {other:?}"),
        }
    }
}
