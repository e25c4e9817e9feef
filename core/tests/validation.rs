//! Property tests of validation: accepted exactly inside Linux's limits, rounded up, never to zero.

use std::time::Duration;

use proptest::prelude::*;
use tcp_keepalive::{Error, KeepAlive, MAX_COUNT, MAX_SECONDS, MAX_USER_TIMEOUT_MS};

fn ceil_secs(d: Duration) -> u128 {
    d.as_nanos().div_ceil(1_000_000_000)
}

proptest! {
    #[test]
    fn new_accepts_exactly_the_linux_ranges(
        idle_ns in 0u64..40_000_000_000_000,
        interval_ns in 0u64..40_000_000_000_000,
        count in 0u32..200,
    ) {
        let (idle, interval) = (Duration::from_nanos(idle_ns), Duration::from_nanos(interval_ns));
        let ok = (1..=MAX_SECONDS as u128).contains(&ceil_secs(idle))
            && (1..=MAX_SECONDS as u128).contains(&ceil_secs(interval))
            && (1..=MAX_COUNT).contains(&count);
        match KeepAlive::new(idle, interval, count) {
            Ok(k) => {
                prop_assert!(ok);
                prop_assert_eq!(k.idle().as_secs() as u128, ceil_secs(idle));
                prop_assert_eq!(k.interval().as_secs() as u128, ceil_secs(interval));
                prop_assert!(k.idle() >= idle && k.interval() >= interval, "rounded up, never down");
                prop_assert_eq!(k.count(), count);
                prop_assert_eq!(
                    k.detection_bound(),
                    k.idle() + k.interval() * k.count()
                );
            }
            Err(Error::InvalidArgument { .. }) => prop_assert!(!ok),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn user_timeout_accepts_1ms_to_int_max(ns in 0u64..(MAX_USER_TIMEOUT_MS + 2_000) * 1_000_000) {
        let d = Duration::from_nanos(ns);
        let ms = d.as_nanos().div_ceil(1_000_000);
        let ok = (1..=MAX_USER_TIMEOUT_MS as u128).contains(&ms);
        match KeepAlive::default().with_user_timeout(d) {
            Ok(k) => {
                prop_assert!(ok);
                prop_assert_eq!(k.user_timeout().unwrap().as_millis(), ms);
            }
            Err(Error::InvalidArgument { name, .. }) => {
                prop_assert!(!ok);
                prop_assert_eq!(name, "user_timeout");
            }
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

#[test]
fn defaults_and_display() {
    let k = KeepAlive::default();
    assert_eq!(
        (k.idle(), k.interval(), k.count(), k.user_timeout()),
        (Duration::from_secs(60), Duration::from_secs(10), 6, None)
    );
    assert_eq!(k.detection_bound(), Duration::from_secs(120));
    assert_eq!(
        k.to_string(),
        "idle 60s, interval 10s, count 6 (dead peer noticed within 120s)"
    );
    let k = k.with_user_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(
        k.to_string(),
        "idle 60s, interval 10s, count 6, user timeout 30000ms (dead peer noticed within 120s)"
    );
}

#[test]
fn huge_durations_are_refused_not_overflowed() {
    assert!(matches!(
        KeepAlive::new(Duration::MAX, Duration::from_secs(1), 1),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        KeepAlive::default().with_user_timeout(Duration::MAX),
        Err(Error::InvalidArgument { .. })
    ));
    // Just above a whole second rounds up to the next one.
    let k = KeepAlive::new(Duration::new(1, 1), Duration::from_nanos(1), 1).unwrap();
    assert_eq!(
        (k.idle(), k.interval()),
        (Duration::from_secs(2), Duration::from_secs(1))
    );
}

#[test]
fn per_field_checks_take_a_doors_raw_value_and_label() {
    use tcp_keepalive::{check_count, check_idle, check_user_timeout, Raw};
    let msg = |r: Result<Duration, Error>| r.unwrap_err().to_string();
    // Exact values with units, never a debug format.
    assert_eq!(
        msg(check_idle("idle", Raw::Duration(Duration::new(32767, 1_500_001)))),
        "invalid idle: \"32767001500001ns\" (allowed: 1 to 32767 seconds (finer values round up to whole seconds))"
    );
    assert_eq!(
        msg(check_idle("idle", Raw::SignedNanos(-1_500_000_000))),
        "invalid idle: \"-1500ms\" (allowed: 1 to 32767 seconds (finer values round up to whole seconds))"
    );
    assert!(msg(check_user_timeout("ut", Raw::SignedNanos(-1))).starts_with("invalid ut: \"-1ns\""));
    assert!(msg(check_user_timeout("ut", Raw::Duration(Duration::ZERO)))
        .starts_with("invalid ut: \"0ms\""));
    assert!(msg(check_idle("idle", Raw::Shown("nan")))
        .starts_with("invalid idle: \"nan\" (allowed: 1 to 32767"));
    assert!(msg(check_idle("tcp-keepalive.dev/idle", Raw::Text(" 0 ")))
        .starts_with("invalid tcp-keepalive.dev/idle: \" 0 \""));
    assert_eq!(
        check_idle("idle", Raw::Text("2m")).unwrap(),
        Duration::from_secs(120)
    );
    assert_eq!(
        check_idle("idle", Raw::SignedNanos(1)).unwrap(),
        Duration::from_nanos(1)
    );
    assert_eq!(check_count("count", Raw::Int(127)).unwrap(), 127);
    assert_eq!(
        check_count("count", Raw::Int(-3)).unwrap_err().to_string(),
        "invalid count: \"-3\" (allowed: 1 to 127 probes)"
    );
    assert!(check_count("count", Raw::Text("6x"))
        .unwrap_err()
        .to_string()
        .contains("a whole number from 1 to 127"));
}

#[test]
fn from_fields_names_each_field_by_its_own_label() {
    use tcp_keepalive::{EnvConfig, FieldText, TextFields};
    let fields = TextFields {
        idle: Some(FieldText::new("tcp-keepalive.dev/idle", "90s")),
        count: Some(FieldText::new("tcp-keepalive.dev/count", "200")),
        ..TextFields::default()
    };
    assert_eq!(
        KeepAlive::from_fields(&fields).unwrap_err().to_string(),
        "invalid tcp-keepalive.dev/count: \"200\" (allowed: 1 to 127 probes)"
    );
    let fields = TextFields {
        keepalive: Some(FieldText::new("tcp-keepalive.dev/keepalive", "off")),
        idle: Some(FieldText::new("tcp-keepalive.dev/idle", "0")),
        ..TextFields::default()
    };
    assert_eq!(KeepAlive::from_fields(&fields).unwrap(), EnvConfig::Off);
    assert_eq!(
        KeepAlive::from_fields(&TextFields::default()).unwrap(),
        EnvConfig::Unset
    );
    let fields = TextFields {
        interval: Some(FieldText::new("interval", "7")),
        user_timeout: Some(FieldText::new("user_timeout", "30s")),
        ..TextFields::default()
    };
    let want = KeepAlive::new(Duration::from_secs(60), Duration::from_secs(7), 6)
        .unwrap()
        .with_user_timeout(Duration::from_secs(30))
        .unwrap();
    assert_eq!(
        KeepAlive::from_fields(&fields).unwrap(),
        EnvConfig::On(want)
    );
}
