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
