//! Option values: durations and counts parsed and checked by core (the number rule and messages of
//! every other door, the value shown as typed), and the `--peer` filter.

use std::net::{IpAddr, SocketAddr};

use clap::Args;
use tcp_keepalive::{EnvConfig, Error, FieldText, KeepAlive, Settings, TextFields};

use crate::fail::Failure;

/// The keep-alive timings shared by `apply` and `run`.
#[derive(Args, Debug, Clone, Default)]
pub struct Timings {
    /// Silence before the first probe: 1 to 32767 s [default: 60]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub idle: Option<String>,
    /// Time between unanswered probes: 1 to 32767 s [default: 10]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub interval: Option<String>,
    /// Unanswered probes before the connection is dropped: 1 to 127 [default: 6]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub count: Option<String>,
    /// How long sent data may stay unacknowledged (TCP_USER_TIMEOUT): 1ms to 2147483647ms
    /// [default: apply keeps the socket's own; run sets none unless TCP_KEEPALIVE_USER_TIMEOUT is set;
    /// cgroup sets none, so programs' own stay]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub user_timeout: Option<String>,
}

impl Timings {
    /// The settings asked for, defaults where an option is missing: core's
    /// [`KeepAlive::from_fields`], each flag named in errors as `idle`, `interval`, `count`,
    /// `user_timeout`.
    pub fn resolve(&self) -> Result<KeepAlive, Failure> {
        fn field<'a>(label: &'a str, value: &'a Option<String>) -> Option<FieldText<'a>> {
            value.as_deref().map(|text| FieldText::new(label, text))
        }
        let fields = TextFields {
            keepalive: None,
            idle: field("idle", &self.idle),
            interval: field("interval", &self.interval),
            count: field("count", &self.count),
            user_timeout: field("user_timeout", &self.user_timeout),
        };
        match KeepAlive::from_fields(&fields).map_err(Failure::invalid)? {
            EnvConfig::On(keepalive) => Ok(keepalive),
            // No flag given (there is no switch, so never off): the defaults.
            EnvConfig::Unset | EnvConfig::Off => Ok(KeepAlive::default()),
        }
    }
}

/// `on 60s/10s/6` (idle/interval/count), plus ` ut 30000ms` when a user timeout is set.
pub fn compact(s: &Settings) -> String {
    let mut out = format!(
        "{} {}s/{}s/{}",
        if s.enabled { "on" } else { "off" },
        s.idle.as_secs(),
        s.interval.as_secs(),
        s.count
    );
    if let Some(t) = s.user_timeout {
        out.push_str(&format!(" ut {}ms", t.as_millis()));
    }
    out
}

/// `--peer ADDR[:PORT]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    ip: IpAddr,
    port: Option<u16>,
}

/// IPv4-mapped IPv6 addresses compare as IPv4 (an IPv6 socket talking to an IPv4 peer).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}", SocketAddr::new(self.ip, port)),
            None => write!(f, "{}", self.ip),
        }
    }
}

impl Peer {
    /// Parses `203.0.113.2`, `203.0.113.2:8080`, `::1`, `[::1]` or `[::1]:8080`.
    pub fn parse(text: &str) -> Result<Peer, Failure> {
        let t = text.trim();
        let parsed = if let Ok(sa) = t.parse::<SocketAddr>() {
            Some(Peer {
                ip: sa.ip(),
                port: Some(sa.port()),
            })
        } else {
            let bare = t
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(t);
            bare.parse::<IpAddr>()
                .ok()
                .map(|ip| Peer { ip, port: None })
        };
        parsed.ok_or_else(|| {
            Failure::invalid(Error::InvalidArgument {
                name: "peer".into(),
                value: text.into(),
                allowed: "an IP address with an optional port: 203.0.113.2, 203.0.113.2:8080, ::1, [::1]:8080".into(),
            })
        })
    }

    /// Whether a socket's peer matches.
    pub fn matches(&self, peer: Option<SocketAddr>) -> bool {
        match peer {
            None => false,
            Some(p) => {
                canonical(p.ip()) == canonical(self.ip)
                    && self.port.is_none_or(|port| port == p.port())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_forms() {
        let p = Peer::parse("127.0.0.1:80").unwrap();
        assert!(p.matches(Some("127.0.0.1:80".parse().unwrap())));
        assert!(p.matches(Some("[::ffff:127.0.0.1]:80".parse().unwrap())));
        assert!(!p.matches(Some("127.0.0.1:81".parse().unwrap())));
        assert!(!p.matches(None));
        let p = Peer::parse("[::1]").unwrap();
        assert!(p.matches(Some("[::1]:5".parse().unwrap())));
        let p = Peer::parse("::1").unwrap();
        assert!(p.matches(Some("[::1]:6".parse().unwrap())));
        let err = Peer::parse("example.com:80").unwrap_err().to_string();
        assert!(
            err.contains("\"example.com:80\"") && err.contains("IP address"),
            "{err}"
        );
    }

    #[test]
    fn timings_use_core_messages() {
        let t = Timings {
            idle: Some("0".into()),
            ..Timings::default()
        };
        let err = t.resolve().unwrap_err().to_string();
        assert!(err.starts_with("invalid idle: \"0\""), "{err}");
        let t = Timings {
            count: Some("many".into()),
            ..Timings::default()
        };
        let err = t.resolve().unwrap_err().to_string();
        assert!(
            err.contains("\"many\"") && err.contains("1 to 127"),
            "{err}"
        );
        let t = Timings::default().resolve().unwrap();
        assert_eq!(t, KeepAlive::default());
    }
}
