//! Settings from environment variables: the contract shared by the preload library, the command
//! line tool and every binding's `from_env`.

use std::time::Duration;

use crate::{Error, KeepAlive, Raw};

/// Every variable, once: a row per source, in the order they are read (ours, then the classic
/// libkeepalive names, then msantos/libkeepalive's, then libdontdie's; the first that is set
/// wins), a column per setting (the switch, idle, interval, count, user timeout).
const NAMES: [[Option<&str>; 5]; 4] = [
    [
        Some("TCP_KEEPALIVE"),
        Some("TCP_KEEPALIVE_IDLE"),
        Some("TCP_KEEPALIVE_INTERVAL"),
        Some("TCP_KEEPALIVE_COUNT"),
        Some("TCP_KEEPALIVE_USER_TIMEOUT"),
    ],
    [
        Some("KEEPALIVE"),
        Some("KEEPIDLE"),
        Some("KEEPINTVL"),
        Some("KEEPCNT"),
        None,
    ],
    // msantos/libkeepalive's: there 0 means "leave the system's value", so here 0 counts as
    // unset, and its TCP_USER_TIMEOUT is in milliseconds, -1 meaning "derive from the others".
    [
        None,
        Some("TCP_KEEPIDLE"),
        Some("TCP_KEEPINTVL"),
        Some("TCP_KEEPCNT"),
        Some("TCP_USER_TIMEOUT"),
    ],
    [
        Some("DD_USE_KEEPALIVE"),
        Some("DD_TCP_KEEPALIVE_TIME"),
        Some("DD_TCP_KEEPALIVE_INTVL"),
        Some("DD_TCP_KEEPALIVE_PROBES"),
        None,
    ],
];

/// The row of msantos/libkeepalive's names in [`NAMES`].
const MSANTOS: usize = 2;

/// How many names [`NAMES`] holds.
const COUNT_OF_NAMES: usize = {
    let mut n = 0;
    let mut row = 0;
    while row < NAMES.len() {
        let mut column = 0;
        while column < 5 {
            if NAMES[row][column].is_some() {
                n += 1;
            }
            column += 1;
        }
        row += 1;
    }
    n
};

/// [`NAMES`] row by row.
const ALL_NAMES: [&str; COUNT_OF_NAMES] = {
    let mut out = [""; COUNT_OF_NAMES];
    let mut i = 0;
    let mut row = 0;
    while row < NAMES.len() {
        let mut column = 0;
        while column < 5 {
            if let Some(name) = NAMES[row][column] {
                out[i] = name;
                i += 1;
            }
            column += 1;
        }
        row += 1;
    }
    out
};

/// Every variable [`KeepAlive::from_env`] reads: ours, the classic libkeepalive names, then the
/// names of msantos/libkeepalive and libdontdie, so replacing their library keeps a deployment's
/// settings. [`OperatorEnv`] also reads `TCP_KEEPALIVE_LOG` and `TCP_KEEPALIVE_ENFORCE`.
pub const ENV_VARIABLES: &[&str] = &ALL_NAMES;

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
const SWITCH_WORDS: &str = "on or off (also 1/0, true/false, yes/no)";

/// The number rule, the same for every number in every door: surrounding ASCII whitespace is
/// ignored, then ASCII digits only (no sign, no `_`, no other script's digits), any number of
/// leading zeros. Returns the digits and the rest of the trimmed text.
pub(crate) fn split_number(text: &str) -> (&str, &str) {
    let t = trim_ascii(text);
    t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()))
}

/// The value of ASCII digits, saturating at `u64::MAX`: a number too large for 64 bits is out of
/// every range, and the range check says so.
pub(crate) fn saturating_value(digits: &str) -> u64 {
    digits.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    })
}

/// Parses `90`, `90s`, `2m`, `1h` or `1500ms` (a bare number is seconds), with the number rule:
/// surrounding ASCII whitespace ignored, ASCII digits only, no sign, any leading zeros; ASCII
/// whitespace may separate number and unit.
///
/// Only the syntax is checked here; ranges are checked by [`KeepAlive::new`] and
/// [`KeepAlive::with_user_timeout`]. A number too large for 64 bits gives the largest duration
/// of its unit, so the range check reports it. The error's `name` is `what`.
pub fn parse_duration(what: &str, text: &str) -> Result<Duration, Error> {
    parse_duration_in(what, text, Duration::from_secs)
}

/// [`parse_duration`] where a bare number is in the unit `bare` makes.
pub(crate) fn parse_duration_in(
    what: &str,
    text: &str,
    bare: fn(u64) -> Duration,
) -> Result<Duration, Error> {
    let (digits, unit) = split_number(text);
    if digits.is_empty() {
        return Err(Error::invalid(what, text, DURATION_FORMS));
    }
    let n = saturating_value(digits);
    match trim_ascii(unit) {
        "" => Ok(bare(n)),
        "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        _ => Err(Error::invalid(what, text, DURATION_FORMS)),
    }
}

/// Parses idle or interval seconds (`90`, `2m`, ...; see [`parse_duration`]) and checks the range,
/// 1 to 32767 s (finer values round up), with the text as given in the error: for doors that
/// take text (the command line). The error's `name` is `what`.
pub fn parse_seconds(what: &str, text: &str) -> Result<Duration, Error> {
    crate::check_idle(what, Raw::Text(text))
}

/// Parses a user timeout (a bare number is seconds; see [`parse_duration`]) and checks the range,
/// 1 ms to `i32::MAX` ms (finer values round up), with the text as given in the error. The
/// error's `name` is `what`.
pub fn parse_user_timeout(what: &str, text: &str) -> Result<Duration, Error> {
    crate::check_user_timeout(what, Raw::Text(text))
}

/// Parses a probe count with the number rule (see [`parse_duration`]) and checks its range,
/// 1 to 127: the one count parser of every door. The error's `name` is `what`.
pub fn parse_count(what: &str, text: &str) -> Result<u32, Error> {
    crate::check_count(what, Raw::Text(text))
}

/// Parses a switch (`on`/`off`, `1`/`0`, `true`/`false`, `yes`/`no`, any case, surrounding ASCII
/// whitespace ignored): the one switch rule of every door (`TCP_KEEPALIVE`, `TCP_KEEPALIVE_ENFORCE`,
/// the Kubernetes annotations). The error's `name` is `name`.
///
/// ```
/// assert!(!tcp_keepalive::parse_switch("tcp-keepalive.dev/enforce", " Off ")?);
/// let err = tcp_keepalive::parse_switch("tcp-keepalive.dev/enforce", "maybe").unwrap_err();
/// assert!(err.to_string().starts_with("invalid tcp-keepalive.dev/enforce: \"maybe\""));
/// # Ok::<(), tcp_keepalive::Error>(())
/// ```
pub fn parse_switch(name: &str, text: &str) -> Result<bool, Error> {
    match trim_ascii(text).to_ascii_lowercase().as_str() {
        "on" | "1" | "true" | "yes" => Ok(true),
        "off" | "0" | "false" | "no" => Ok(false),
        _ => Err(Error::invalid(name, text, SWITCH_WORDS)),
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
    /// Each setting is read from the first of its names that is set (an empty value, or one of
    /// only ASCII whitespace, counts as unset): ours (`TCP_KEEPALIVE`, `TCP_KEEPALIVE_IDLE`,
    /// `_INTERVAL`, `_COUNT`, `_USER_TIMEOUT`), then the classic libkeepalive names (`KEEPALIVE`,
    /// `KEEPIDLE`, `KEEPINTVL`, `KEEPCNT`), then msantos/libkeepalive's (`TCP_KEEPIDLE`,
    /// `TCP_KEEPINTVL`, `TCP_KEEPCNT`, `TCP_USER_TIMEOUT`, where 0 counts as unset, a bare user
    /// timeout is milliseconds and -1 derives it as `idle + interval × count`), then libdontdie's
    /// (`DD_USE_KEEPALIVE` 1/0, `DD_TCP_KEEPALIVE_TIME`, `_INTVL`, `_PROBES`).
    ///
    /// Durations take a unit (`90`, `90s`, `2m`, `1500ms`); every number follows the rule of
    /// [`parse_duration`]. An invalid value is an error naming the variable and the value; it is
    /// never replaced by a default.
    pub fn from_lookup(mut lookup: impl FnMut(&str) -> Option<String>) -> Result<EnvConfig, Error> {
        let mut first = |column: usize| {
            NAMES.iter().enumerate().find_map(|(row, names)| {
                let name = names[column]?;
                let text = lookup(name).filter(|v| !is_blank(v))?;
                let leave_alone = row == MSANTOS && {
                    let (digits, rest) = split_number(&text);
                    !digits.is_empty() && rest.is_empty() && saturating_value(digits) == 0
                };
                (!leave_alone).then_some((name, text))
            })
        };
        let switch = first(0);
        let idle = first(1);
        let interval = first(2);
        let count = first(3);
        let user_timeout = first(4);
        fn field<'a>(var: &'a Option<(&'static str, String)>) -> Option<FieldText<'a>> {
            var.as_ref()
                .map(|(name, text)| FieldText::new(name, text.as_str()))
        }
        let fields = TextFields {
            keepalive: field(&switch),
            idle: field(&idle),
            interval: field(&interval),
            count: field(&count),
            user_timeout: field(&user_timeout),
        };
        // msantos/libkeepalive's TCP_USER_TIMEOUT: a bare number is milliseconds, -1 derives it.
        let msantos = matches!(&user_timeout, Some((name, _)) if Some(*name) == NAMES[MSANTOS][4]);
        from_fields_in(&fields, msantos)
    }

    /// Settings from text fields, each checked with the number rule of [`parse_duration`] and
    /// named in errors by its own label: the one path behind the environment
    /// ([`KeepAlive::from_lookup`], labels the variables), the command's flags (`idle`, ...),
    /// the JVM settings string (its keys) and Kubernetes annotations (their names).
    ///
    /// `keepalive` takes the switch words (`on`/`off`, `1`/`0`, `true`/`false`, `yes`/`no`);
    /// when it says off the result is [`EnvConfig::Off`] whatever the others hold. With no field
    /// at all the result is [`EnvConfig::Unset`]; fields not given take the defaults. Checked in
    /// the order keepalive, idle, interval, count, user timeout; the first invalid one is the
    /// error. A field is taken as given: a door that treats empty values as unset leaves them out.
    ///
    /// ```
    /// use tcp_keepalive::{EnvConfig, FieldText, KeepAlive, TextFields};
    ///
    /// // A pod's annotations, each named by its own key in errors.
    /// let fields = TextFields {
    ///     idle: Some(FieldText::new("tcp-keepalive.dev/idle", "2m")),
    ///     count: Some(FieldText::new("tcp-keepalive.dev/count", "0")),
    ///     ..TextFields::default()
    /// };
    /// let err = KeepAlive::from_fields(&fields).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid tcp-keepalive.dev/count: \"0\" (allowed: 1 to 127 probes)"
    /// );
    /// let fields = TextFields {
    ///     idle: Some(FieldText::new("tcp-keepalive.dev/idle", "2m")),
    ///     ..TextFields::default()
    /// };
    /// let EnvConfig::On(k) = KeepAlive::from_fields(&fields)? else { unreachable!() };
    /// assert_eq!(k.idle().as_secs(), 120);
    /// # Ok::<(), tcp_keepalive::Error>(())
    /// ```
    pub fn from_fields(fields: &TextFields<'_>) -> Result<EnvConfig, Error> {
        from_fields_in(fields, false)
    }
}

/// One setting as text, with the label its errors name (an environment variable, a command-line
/// option, a key of the JVM settings string, a Kubernetes annotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldText<'a> {
    /// The name errors give the value.
    pub label: &'a str,
    /// The value as given.
    pub text: &'a str,
}

impl<'a> FieldText<'a> {
    /// A field `label` holding `text`.
    pub fn new(label: &'a str, text: &'a str) -> FieldText<'a> {
        FieldText { label, text }
    }
}

/// The five settings as text, each optional: the input of [`KeepAlive::from_fields`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextFields<'a> {
    /// The switch: `on`/`off` and the other switch words.
    pub keepalive: Option<FieldText<'a>>,
    /// Silence before the first probe (a bare number is seconds).
    pub idle: Option<FieldText<'a>>,
    /// Time between unanswered probes.
    pub interval: Option<FieldText<'a>>,
    /// Unanswered probes before the connection is dropped.
    pub count: Option<FieldText<'a>>,
    /// `TCP_USER_TIMEOUT` (a bare number is seconds).
    pub user_timeout: Option<FieldText<'a>>,
}

/// [`KeepAlive::from_fields`]; `msantos`: the user timeout is msantos/libkeepalive's (a bare
/// number is milliseconds, `-1` is `idle + interval × count`).
fn from_fields_in(fields: &TextFields<'_>, msantos: bool) -> Result<EnvConfig, Error> {
    if let Some(f) = fields.keepalive {
        if !parse_switch(f.label, f.text)? {
            return Ok(EnvConfig::Off);
        }
    }
    let TextFields {
        keepalive,
        idle,
        interval,
        count,
        user_timeout,
    } = *fields;
    if keepalive.is_none()
        && idle.is_none()
        && interval.is_none()
        && count.is_none()
        && user_timeout.is_none()
    {
        return Ok(EnvConfig::Unset);
    }
    let defaults = KeepAlive::default();
    let idle = match idle {
        None => defaults.idle(),
        Some(f) => crate::check_idle(f.label, Raw::Text(f.text))?,
    };
    let interval = match interval {
        None => defaults.interval(),
        Some(f) => crate::check_interval(f.label, Raw::Text(f.text))?,
    };
    let count = match count {
        None => defaults.count(),
        Some(f) => crate::check_count(f.label, Raw::Text(f.text))?,
    };
    let mut keepalive = KeepAlive::new(idle, interval, count)?;
    if let Some(f) = user_timeout {
        let d = if msantos && trim_ascii(f.text) == "-1" {
            keepalive.detection_bound()
        } else {
            let bare = if msantos {
                Duration::from_millis
            } else {
                Duration::from_secs
            };
            crate::fields::user_timeout(f.label, Raw::Text(f.text), bare)?
        };
        keepalive = keepalive.with_user_timeout(d)?;
    }
    Ok(EnvConfig::On(keepalive))
}
