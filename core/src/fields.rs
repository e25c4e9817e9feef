//! The checks of one setting at a time, for doors that receive each value in their own form (a
//! Java `Duration`, a Python number, a command-line word, an annotation): each takes the door's
//! raw value and the label its errors name, and returns the checked value or core's error, so no
//! door makes up an input to get core's message (docs/design.md, "Values and their errors").

use std::time::Duration;

use crate::env::{parse_duration_in, saturating_value, split_number};
use crate::{Error, MAX_COUNT, MAX_SECONDS, MAX_USER_TIMEOUT_MS};

/// A value as a door received it, before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raw<'a> {
    /// A duration (never negative): shown in errors as `90s`, `1500ms` or `1500001ns`.
    Duration(Duration),
    /// Signed nanoseconds, e.g. a Java `Duration`'s seconds and nanoseconds: a negative value is
    /// refused and shown exactly (`-5s`, `-1500ms`, `-1ns`).
    SignedNanos(i128),
    /// A whole number of any sign and size: probes for the count, seconds for a duration.
    Int(i128),
    /// Text with the number rule of every door (surrounding ASCII whitespace ignored, ASCII digits
    /// only, a duration may end in `ms`, `s`, `m`, `h`; a bare number is seconds): env variables,
    /// command-line options, the JVM settings string, annotations. Errors show the text as given.
    Text(&'a str),
    /// A value no number here holds (negative or not-a-number floats, values beyond any range),
    /// shown as the door writes it (Python's `repr`): always refused with the field's range.
    Shown(&'a str),
}

/// What a duration looks like to a user: `90s`, `1500ms`, else the exact `1500001ns`; never a
/// language's debug format.
pub(crate) fn show(d: Duration) -> String {
    show_nanos(d.as_nanos() as i128)
}

/// Signed nanoseconds as [`show`] writes them: whole seconds, else whole milliseconds, else
/// nanoseconds.
fn show_nanos(n: i128) -> String {
    if n % 1_000_000_000 == 0 {
        format!("{}s", n / 1_000_000_000)
    } else if n % 1_000_000 == 0 {
        format!("{}ms", n / 1_000_000)
    } else {
        format!("{n}ns")
    }
}

/// A duration in milliseconds when it is whole milliseconds (the unit of the user timeout).
fn show_millis(d: Duration) -> String {
    if d.as_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        show(d)
    }
}

pub(crate) fn seconds_allowed() -> String {
    format!("1 to {MAX_SECONDS} seconds (finer values round up to whole seconds)")
}

pub(crate) fn count_allowed() -> String {
    format!("1 to {MAX_COUNT} probes")
}

pub(crate) fn user_timeout_allowed() -> String {
    format!("1 to {MAX_USER_TIMEOUT_MS} milliseconds (finer values round up)")
}

/// Rounds up to whole units of `unit_nanos` (which divides a second), so that 1 ms never becomes
/// 0 s. Saturates instead of overflowing; u64 arithmetic keeps 128-bit division off the hot path.
pub(crate) fn ceil_units(d: Duration, unit_nanos: u32) -> u64 {
    let per_second = u64::from(1_000_000_000 / unit_nanos);
    d.as_secs()
        .saturating_mul(per_second)
        .saturating_add(u64::from(d.subsec_nanos().div_ceil(unit_nanos)))
}

/// Idle or interval: whole seconds 1 to 32767 after rounding up.
pub(crate) fn seconds_in_range(d: Duration) -> Option<u32> {
    let secs = ceil_units(d, 1_000_000_000);
    (1..=u64::from(MAX_SECONDS))
        .contains(&secs)
        .then_some(secs as u32)
}

/// The user timeout: whole milliseconds 1 to `i32::MAX` after rounding up.
pub(crate) fn millis_in_range(d: Duration) -> Option<u32> {
    let ms = ceil_units(d, 1_000_000);
    (1..=MAX_USER_TIMEOUT_MS).contains(&ms).then_some(ms as u32)
}

/// A raw duration as a `Duration`, or the text its error shows. `bare` is the unit of a bare
/// number in text.
fn to_duration(
    label: &str,
    raw: Raw<'_>,
    bare: fn(u64) -> Duration,
    shown: fn(Duration) -> String,
) -> Result<(Duration, String), (Option<Error>, String)> {
    match raw {
        Raw::Duration(d) => Ok((d, shown(d))),
        Raw::SignedNanos(n) if n < 0 => Err((None, show_nanos(n))),
        Raw::SignedNanos(n) => {
            let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
            let d = Duration::new(secs, (n % 1_000_000_000) as u32);
            Ok((d, shown(d)))
        }
        Raw::Int(n) if n < 0 => Err((None, n.to_string())),
        Raw::Int(n) => Ok((bare(u64::try_from(n).unwrap_or(u64::MAX)), n.to_string())),
        Raw::Text(text) => match parse_duration_in(label, text, bare) {
            Ok(d) => Ok((d, text.to_string())),
            Err(e) => Err((Some(e), String::new())),
        },
        Raw::Shown(text) => Err((None, text.to_string())),
    }
}

fn seconds(label: &str, raw: Raw<'_>) -> Result<Duration, Error> {
    match to_duration(label, raw, Duration::from_secs, show) {
        Ok((d, _)) if seconds_in_range(d).is_some() => Ok(d),
        Ok((_, shown)) | Err((None, shown)) => Err(Error::invalid(label, shown, seconds_allowed())),
        Err((Some(e), _)) => Err(e),
    }
}

/// Checks an idle time (1 to 32767 s; finer values round up) given in any [`Raw`] form; the
/// error names `label` and shows the value as given. Returns the duration as given (round it
/// with [`KeepAlive::new`](crate::KeepAlive::new)).
pub fn check_idle(label: &str, raw: Raw<'_>) -> Result<Duration, Error> {
    seconds(label, raw)
}

/// Checks an interval (1 to 32767 s; finer values round up); see [`check_idle`].
pub fn check_interval(label: &str, raw: Raw<'_>) -> Result<Duration, Error> {
    seconds(label, raw)
}

/// Checks a probe count (1 to 127). Text follows the number rule without a unit; a duration is
/// no count and is refused.
pub fn check_count(label: &str, raw: Raw<'_>) -> Result<u32, Error> {
    let n: i128 = match raw {
        Raw::Int(n) => n,
        Raw::Text(text) => {
            let (digits, rest) = split_number(text);
            if digits.is_empty() || !rest.is_empty() {
                return Err(Error::invalid(
                    label,
                    text,
                    format!("a whole number from 1 to {MAX_COUNT}"),
                ));
            }
            let n = saturating_value(digits);
            if (1..=u64::from(MAX_COUNT)).contains(&n) {
                return Ok(n as u32);
            }
            return Err(Error::invalid(label, text, count_allowed()));
        }
        Raw::Shown(text) => return Err(Error::invalid(label, text, count_allowed())),
        Raw::Duration(d) => return Err(Error::invalid(label, show(d), count_allowed())),
        Raw::SignedNanos(n) => return Err(Error::invalid(label, show_nanos(n), count_allowed())),
    };
    if (1..=i128::from(MAX_COUNT)).contains(&n) {
        Ok(n as u32)
    } else {
        Err(Error::invalid(label, n.to_string(), count_allowed()))
    }
}

/// Checks a user timeout (1 ms to `i32::MAX` ms; finer values round up); see [`check_idle`]. A
/// duration in whole milliseconds is shown in milliseconds.
pub fn check_user_timeout(label: &str, raw: Raw<'_>) -> Result<Duration, Error> {
    user_timeout(label, raw, Duration::from_secs)
}

/// [`check_user_timeout`] where a bare number in text is in the unit `bare` makes.
pub(crate) fn user_timeout(
    label: &str,
    raw: Raw<'_>,
    bare: fn(u64) -> Duration,
) -> Result<Duration, Error> {
    match to_duration(label, raw, bare, show_millis) {
        Ok((d, _)) if millis_in_range(d).is_some() => Ok(d),
        Ok((_, shown)) | Err((None, shown)) => {
            Err(Error::invalid(label, shown, user_timeout_allowed()))
        }
        Err((Some(e), _)) => Err(e),
    }
}

/// Idle or interval as whole seconds, for [`KeepAlive::new`](crate::KeepAlive::new).
pub(crate) fn whole_seconds(label: &str, d: Duration) -> Result<u32, Error> {
    seconds_in_range(d).ok_or_else(|| Error::invalid(label, show(d), seconds_allowed()))
}

/// The user timeout as whole milliseconds, for
/// [`KeepAlive::with_user_timeout`](crate::KeepAlive::with_user_timeout).
pub(crate) fn whole_millis(label: &str, d: Duration) -> Result<u32, Error> {
    millis_in_range(d).ok_or_else(|| Error::invalid(label, show_millis(d), user_timeout_allowed()))
}
