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
        (
            "TCP_KEEPALIVE_IDLE",
            "99999999999999999999",
            "1 to 32767 seconds",
        ),
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

#[test]
fn the_other_preloads_names_are_read_last_in_their_own_units() {
    let cases: Vec<(Vec<(&str, &str)>, EnvConfig)> = vec![
        // msantos/libkeepalive: seconds, a count, TCP_USER_TIMEOUT in milliseconds.
        (
            vec![
                ("TCP_KEEPIDLE", "20"),
                ("TCP_KEEPINTVL", "4"),
                ("TCP_KEEPCNT", "3"),
                ("TCP_USER_TIMEOUT", "45000"),
            ],
            on(20, 4, 3, Some(45_000)),
        ),
        (
            vec![("TCP_USER_TIMEOUT", "30s")],
            on(60, 10, 6, Some(30_000)),
        ),
        // Its -1: derive the user timeout from the others (idle + interval × count).
        (
            vec![("TCP_KEEPIDLE", "20"), ("TCP_USER_TIMEOUT", "-1")],
            on(20, 10, 6, Some(80_000)),
        ),
        // Its 0: leave the value alone, so the next name or our default applies.
        (vec![("TCP_KEEPIDLE", "0")], EnvConfig::Unset),
        (
            vec![("TCP_KEEPIDLE", "0"), ("DD_TCP_KEEPALIVE_TIME", "50")],
            on(50, 10, 6, None),
        ),
        // libdontdie.
        (
            vec![
                ("DD_TCP_KEEPALIVE_TIME", "30"),
                ("DD_TCP_KEEPALIVE_INTVL", "7"),
                ("DD_TCP_KEEPALIVE_PROBES", "2"),
            ],
            on(30, 7, 2, None),
        ),
        (vec![("DD_USE_KEEPALIVE", "1")], on(60, 10, 6, None)),
        (vec![("DD_USE_KEEPALIVE", "0")], EnvConfig::Off),
        // Order: ours, classic, msantos, libdontdie.
        (
            vec![
                ("TCP_KEEPALIVE_IDLE", "11"),
                ("KEEPIDLE", "12"),
                ("TCP_KEEPIDLE", "13"),
                ("DD_TCP_KEEPALIVE_TIME", "14"),
            ],
            on(11, 10, 6, None),
        ),
        (
            vec![
                ("KEEPIDLE", "12"),
                ("TCP_KEEPIDLE", "13"),
                ("DD_TCP_KEEPALIVE_TIME", "14"),
            ],
            on(12, 10, 6, None),
        ),
        (
            vec![("TCP_KEEPIDLE", "13"), ("DD_TCP_KEEPALIVE_TIME", "14")],
            on(13, 10, 6, None),
        ),
        (
            vec![("TCP_KEEPALIVE", "on"), ("DD_USE_KEEPALIVE", "0")],
            on(60, 10, 6, None),
        ),
        (
            vec![
                ("TCP_KEEPALIVE_USER_TIMEOUT", "2s"),
                ("TCP_USER_TIMEOUT", "9000"),
            ],
            on(60, 10, 6, Some(2000)),
        ),
    ];
    for (vars, expected) in cases {
        assert_eq!(from(&vars).unwrap(), expected, "{vars:?}");
    }
    let err = from(&[("DD_TCP_KEEPALIVE_PROBES", "200")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid DD_TCP_KEEPALIVE_PROBES: \"200\" (allowed: 1 to 127 probes)"
    );
}

#[test]
fn one_number_rule() {
    let ok: &[(&str, u64)] = &[
        (" 45 ", 45),
        ("\t45\n", 45),
        ("00000000000000000000045", 45),
        ("45 s", 45),
        ("0000000000000000000000000000000000000001m", 60),
    ];
    for (text, secs) in ok {
        assert_eq!(
            from(&[("TCP_KEEPALIVE_IDLE", text)]).unwrap(),
            on(*secs, 10, 6, None),
            "{text:?}"
        );
    }
    assert_eq!(
        from(&[("TCP_KEEPALIVE_COUNT", " 007 ")]).unwrap(),
        on(60, 10, 7, None)
    );
    for text in [
        "+60",
        "-60",
        "60\u{3000}",
        "\u{3000}60",
        "６０",
        "6_0",
        "0x3c",
    ] {
        let err = from(&[("TCP_KEEPALIVE_IDLE", text)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("90s, 2m"), "{text:?}: {err}");
        let err = from(&[("TCP_KEEPALIVE_COUNT", text)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a whole number from 1 to 127"),
            "{text:?}: {err}"
        );
    }
    for text in ["18446744073709551616", "99999999999999999999999h"] {
        let err = from(&[("TCP_KEEPALIVE_IDLE", text)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 to 32767 seconds"), "{text:?}: {err}");
        let err = from(&[("TCP_KEEPALIVE_USER_TIMEOUT", text)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("1 to 2147483647 milliseconds"),
            "{text:?}: {err}"
        );
    }
    let err = from(&[("TCP_KEEPALIVE_COUNT", "18446744073709551616")]).unwrap_err();
    assert!(err.to_string().contains("1 to 127 probes"), "{err}");
    assert_eq!(
        from(&[("TCP_KEEPALIVE_IDLE", "60\u{3000}")])
            .unwrap_err()
            .to_string(),
        "invalid TCP_KEEPALIVE_IDLE: \"60\\u{3000}\" (allowed: a whole number of seconds, or with a unit: 90, 90s, 2m, 1h, 1500ms)"
    );
}

#[test]
fn env_variables_lists_every_name_read() {
    for name in [
        "TCP_KEEPIDLE",
        "TCP_KEEPINTVL",
        "TCP_KEEPCNT",
        "TCP_USER_TIMEOUT",
        "DD_USE_KEEPALIVE",
        "DD_TCP_KEEPALIVE_TIME",
        "DD_TCP_KEEPALIVE_INTVL",
        "DD_TCP_KEEPALIVE_PROBES",
    ] {
        assert!(tcp_keepalive::ENV_VARIABLES.contains(&name), "{name}");
        // Each name really is read: set alone, it changes the result.
        assert_ne!(from(&[(name, "1")]).unwrap(), EnvConfig::Unset, "{name}");
    }
}

#[test]
fn the_parsers_for_doors_that_take_text_show_the_value_as_typed() {
    use tcp_keepalive::{parse_count, parse_seconds, parse_user_timeout};
    assert_eq!(
        parse_seconds("idle", " 2m ").unwrap(),
        Duration::from_secs(120)
    );
    assert_eq!(
        parse_seconds("idle", "1500ms").unwrap(),
        Duration::from_millis(1500)
    );
    assert_eq!(parse_count("count", "007").unwrap(), 7);
    assert_eq!(
        parse_user_timeout("user_timeout", "30").unwrap(),
        Duration::from_secs(30)
    );
    let cases: [(Result<(), Error>, &str); 6] = [
        (
            parse_seconds("idle", "0").map(drop),
            "invalid idle: \"0\" (allowed: 1 to 32767 seconds (finer values round up to whole seconds))",
        ),
        (
            parse_seconds("idle", "+60").map(drop),
            "invalid idle: \"+60\" (allowed: a whole number of seconds, or with a unit: 90, 90s, 2m, 1h, 1500ms)",
        ),
        (
            parse_count("count", "+6").map(drop),
            "invalid count: \"+6\" (allowed: a whole number from 1 to 127)",
        ),
        (
            parse_count("count", "128").map(drop),
            "invalid count: \"128\" (allowed: 1 to 127 probes)",
        ),
        (
            parse_user_timeout("user_timeout", "0").map(drop),
            "invalid user_timeout: \"0\" (allowed: 1 to 2147483647 milliseconds (finer values round up))",
        ),
        (
            parse_user_timeout("user_timeout", "99999999999999999999999h").map(drop),
            "invalid user_timeout: \"99999999999999999999999h\" (allowed: 1 to 2147483647 milliseconds (finer values round up))",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got.unwrap_err().to_string(), want);
    }
}
