//! Settings from environment variables: the contract shared by the preload library, the command
//! line tool and every binding's `from_env`.

use std::time::Duration;

use crate::{Error, KeepAlive};

/// Every variable [`KeepAlive::from_env`] reads, prefixed names first. `TCP_KEEPALIVE_LOG` is read
/// by the preload library only.
pub const ENV_VARIABLES: &[&str] = &[
    "TCP_KEEPALIVE",
    "TCP_KEEPALIVE_IDLE",
    "TCP_KEEPALIVE_INTERVAL",
    "TCP_KEEPALIVE_COUNT",
    "TCP_KEEPALIVE_USER_TIMEOUT",
    "KEEPALIVE",
    "KEEPIDLE",
    "KEEPINTVL",
    "KEEPCNT",
];

/// What the environment asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvConfig {
    /// None of the variables is set (or all are empty).
    Unset,
    /// `TCP_KEEPALIVE=off` (or `KEEPALIVE=off`): leave sockets alone.
    Off,
    /// Keep-alive with these settings; variables not set take the defaults.
    On(KeepAlive),
}

impl EnvConfig {
    /// The settings to apply, treating [`EnvConfig::Unset`] as the defaults (what the preload
    /// library does: being loaded is the request).
    pub fn or_default(self) -> Option<KeepAlive> {
        match self {
            EnvConfig::Unset => Some(KeepAlive::default()),
            EnvConfig::Off => None,
            EnvConfig::On(k) => Some(k),
        }
    }
}

const DURATION_FORMS: &str = "a whole number of seconds, or with a unit: 90, 90s, 2m, 1h, 1500ms";

/// Parses `90`, `90s`, `2m`, `1h` or `1500ms` (a bare number is seconds).
///
/// Only the syntax is checked here; ranges are checked by [`KeepAlive::new`] and
/// [`KeepAlive::with_user_timeout`]. The error's `name` is `what`.
pub fn parse_duration(what: &str, text: &str) -> Result<Duration, Error> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || Error::invalid(what, text, DURATION_FORMS);
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    Ok(d)
}

fn parse_switch(name: &str, text: &str) -> Result<bool, Error> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "1" | "true" | "yes" => Ok(true),
        "off" | "0" | "false" | "no" => Ok(false),
        _ => Err(Error::invalid(
            name,
            text,
            "on or off (also 1/0, true/false, yes/no)",
        )),
    }
}

/// Re-labels a range error with the variable it came from, keeping the allowed range.
fn from_variable(name: &str, text: &str, err: Error) -> Error {
    match err {
        Error::InvalidArgument { allowed, .. } => Error::invalid(name, text, allowed),
        other => other,
    }
}

/// What an operator door (the preload library, `tcp-keepalive run`) reads from the environment:
/// the settings, plus the two switches only such a door has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorEnv {
    /// The settings, exactly as [`KeepAlive::from_lookup`] reads them.
    pub config: EnvConfig,
    /// `TCP_KEEPALIVE_LOG`: one line on stderr per socket configured. Default off.
    pub log: bool,
    /// `TCP_KEEPALIVE_ENFORCE`: the operator's settings are a ceiling the program's own
    /// `setsockopt` calls cannot exceed (see [`KeepAlive::enforce`]). Default on.
    pub enforce: bool,
}

impl OperatorEnv {
    /// Reads the process environment; see [`OperatorEnv::from_lookup`]. A value that is not UTF-8
    /// is reported as invalid, never treated as unset.
    pub fn from_env() -> Result<OperatorEnv, Error> {
        Self::from_lookup(env_lookup)
    }

    /// Reads the settings ([`KeepAlive::from_lookup`]), then `TCP_KEEPALIVE_LOG` (default off) and
    /// `TCP_KEEPALIVE_ENFORCE` (default on), both with the switch words of `TCP_KEEPALIVE` (`on`/
    /// `off`, `1`/`0`, `true`/`false`, `yes`/`no`). An empty value counts as unset; an invalid one
    /// is an [`Error::InvalidArgument`] naming the variable, the first found in that order.
    pub fn from_lookup(
        mut lookup: impl FnMut(&str) -> Option<String>,
    ) -> Result<OperatorEnv, Error> {
        let config = KeepAlive::from_lookup(&mut lookup)?;
        let mut switch = |name: &str, default: bool| match lookup(name) {
            Some(text) if !is_blank(&text) => parse_switch(name, &text),
            _ => Ok(default),
        };
        Ok(OperatorEnv {
            config,
            log: switch("TCP_KEEPALIVE_LOG", false)?,
            enforce: switch("TCP_KEEPALIVE_ENFORCE", true)?,
        })
    }
}

/// A variable of the process environment; a value that is not UTF-8 is passed on lossily (with
/// U+FFFD), which no syntax accepts, so it is reported rather than silently treated as unset.
fn env_lookup(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// Empty or only ASCII whitespace: the variable counts as unset.
fn is_blank(text: &str) -> bool {
    trim_ascii(text).is_empty()
}

/// `text` without surrounding ASCII whitespace (space, tab, LF, FF, CR); other whitespace, such as
/// U+3000, stays and is refused by every syntax. (`str::trim_ascii` needs Rust 1.80.)
pub(crate) fn trim_ascii(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_ascii_whitespace())
}

impl KeepAlive {
    /// Reads the settings from the process environment; see [`KeepAlive::from_lookup`].
    pub fn from_env() -> Result<EnvConfig, Error> {
        Self::from_lookup(env_lookup)
    }

    /// Reads the settings through `lookup` (a variable's value, or `None` when unset).
    ///
    /// `TCP_KEEPALIVE`, `TCP_KEEPALIVE_IDLE`, `TCP_KEEPALIVE_INTERVAL`, `TCP_KEEPALIVE_COUNT`,
    /// `TCP_KEEPALIVE_USER_TIMEOUT`; where a prefixed one is unset, the classic libkeepalive
    /// names `KEEPALIVE`, `KEEPIDLE`, `KEEPINTVL`, `KEEPCNT`. An empty value counts as unset.
    /// Durations take a unit (`90`, `90s`, `2m`, `1500ms`). An invalid value is an error naming the
    /// variable and the value; it is never replaced by a default.
    pub fn from_lookup(mut lookup: impl FnMut(&str) -> Option<String>) -> Result<EnvConfig, Error> {
        let mut get = |prefixed: &'static str, classic: Option<&'static str>| {
            let mut value = |name: &'static str| {
                lookup(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name, v))
            };
            match value(prefixed) {
                Some(found) => Some(found),
                None => classic.and_then(value),
            }
        };
        let switch = get("TCP_KEEPALIVE", Some("KEEPALIVE"));
        let idle = get("TCP_KEEPALIVE_IDLE", Some("KEEPIDLE"));
        let interval = get("TCP_KEEPALIVE_INTERVAL", Some("KEEPINTVL"));
        let count = get("TCP_KEEPALIVE_COUNT", Some("KEEPCNT"));
        let user_timeout = get("TCP_KEEPALIVE_USER_TIMEOUT", None);

        if let Some((name, text)) = &switch {
            if !parse_switch(name, text)? {
                return Ok(EnvConfig::Off);
            }
        }
        if switch.is_none()
            && idle.is_none()
            && interval.is_none()
            && count.is_none()
            && user_timeout.is_none()
        {
            return Ok(EnvConfig::Unset);
        }

        let defaults = KeepAlive::default();
        let seconds = |var: Option<(&str, String)>, default: Duration| -> Result<_, Error> {
            match var {
                None => Ok(default),
                Some((name, text)) => {
                    let d = parse_duration(name, &text)?;
                    crate::check_seconds(name, d).map_err(|e| from_variable(name, &text, e))?;
                    Ok(d)
                }
            }
        };
        let idle = seconds(idle, defaults.idle())?;
        let interval = seconds(interval, defaults.interval())?;
        let count = match count {
            None => defaults.count(),
            Some((name, text)) => {
                let allowed = format!("a whole number from 1 to {}", crate::MAX_COUNT);
                let n: u32 = text
                    .trim()
                    .parse()
                    .map_err(|_| Error::invalid(name, &text, allowed.clone()))?;
                crate::check_count(n).map_err(|e| from_variable(name, &text, e))?
            }
        };
        let mut keepalive = KeepAlive::new(idle, interval, count)?;
        if let Some((name, text)) = user_timeout {
            let d = parse_duration(name, &text)?;
            keepalive = keepalive
                .with_user_timeout(d)
                .map_err(|e| from_variable(name, &text, e))?;
        }
        Ok(EnvConfig::On(keepalive))
    }
}
