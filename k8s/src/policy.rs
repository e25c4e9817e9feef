//! The annotations pods and namespaces choose their keep-alive with, and how a pod's own, its
//! namespace's and the agent's flags (the node's defaults) combine.
//!
//! Every value is parsed by core with the rule of every other door (the environment variables,
//! the command line): the annotation's name is the label in core's error text.

use std::collections::BTreeMap;
use std::time::Duration;

use tcp_keepalive::{
    parse_count, parse_seconds, parse_switch, parse_user_timeout, Error, KeepAlive,
};

/// `on` / `off`: whether the pod's connections get keep-alive at all.
pub const KEEPALIVE: &str = "tcp-keepalive.dev/keepalive";
/// Silence before the first probe (`60`, `60s`, `2m`).
pub const IDLE: &str = "tcp-keepalive.dev/idle";
/// Time between unanswered probes.
pub const INTERVAL: &str = "tcp-keepalive.dev/interval";
/// Unanswered probes before the connection is dropped.
pub const COUNT: &str = "tcp-keepalive.dev/count";
/// TCP_USER_TIMEOUT (a bare number is seconds).
pub const USER_TIMEOUT: &str = "tcp-keepalive.dev/user-timeout";
/// `on` / `off`: whether the settings are a ceiling the pod's programs cannot exceed.
pub const ENFORCE: &str = "tcp-keepalive.dev/enforce";
/// Every annotation the agent reads.
pub const ANNOTATIONS: [&str; 6] = [KEEPALIVE, IDLE, INTERVAL, COUNT, USER_TIMEOUT, ENFORCE];

/// Which pods the agent gives settings to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Select {
    /// Only pods whose own or namespace's `tcp-keepalive.dev/keepalive` says `on` (the default:
    /// installing the agent changes no pod until its team asks).
    #[default]
    Annotated,
    /// Every pod except those whose own or namespace's annotation says `off`.
    All,
}

/// One level's annotations (a pod's or a namespace's), parsed; `None` where not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layer {
    /// `tcp-keepalive.dev/keepalive`.
    pub keepalive: Option<bool>,
    /// `tcp-keepalive.dev/idle`.
    pub idle: Option<Duration>,
    /// `tcp-keepalive.dev/interval`.
    pub interval: Option<Duration>,
    /// `tcp-keepalive.dev/count`.
    pub count: Option<u32>,
    /// `tcp-keepalive.dev/user-timeout`.
    pub user_timeout: Option<Duration>,
    /// `tcp-keepalive.dev/enforce`.
    pub enforce: Option<bool>,
}

impl Layer {
    /// Parses the annotations of one object. An empty value (or only ASCII whitespace) counts as
    /// unset, as an empty environment variable does. The first invalid value, in the order of
    /// [`ANNOTATIONS`], is the error (core's text: the annotation, the value, what is allowed):
    /// then nothing of this object's annotations is used.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Result<Layer, Error> {
        let get = |name: &str| {
            annotations
                .get(name)
                .map(String::as_str)
                .filter(|v| !v.trim_matches(|c: char| c.is_ascii_whitespace()).is_empty())
        };
        Ok(Layer {
            keepalive: get(KEEPALIVE)
                .map(|t| parse_switch(KEEPALIVE, t))
                .transpose()?,
            idle: get(IDLE).map(|t| parse_seconds(IDLE, t)).transpose()?,
            interval: get(INTERVAL)
                .map(|t| parse_seconds(INTERVAL, t))
                .transpose()?,
            count: get(COUNT).map(|t| parse_count(COUNT, t)).transpose()?,
            user_timeout: get(USER_TIMEOUT)
                .map(|t| parse_user_timeout(USER_TIMEOUT, t))
                .transpose()?,
            enforce: get(ENFORCE).map(|t| parse_switch(ENFORCE, t)).transpose()?,
        })
    }
}

/// The agent's flags: what a pod gets where neither it nor its namespace says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeDefaults {
    /// The timings (and user timeout, if the flags set one).
    pub keepalive: KeepAlive,
    /// Enforcement.
    pub enforce: bool,
}

/// What a pod gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not selected (or `off`): no attachment at its cgroup.
    Leave,
    /// These settings at its cgroup.
    Attach {
        /// The settings.
        keepalive: KeepAlive,
        /// Enforcement.
        enforce: bool,
    },
}

/// Where an invalid annotation was found.
#[derive(Debug)]
pub struct PolicyError {
    /// `"pod"` or `"namespace"`.
    pub level: &'static str,
    /// Core's error: the annotation, the value and what is allowed.
    pub error: Error,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} annotation: {}; the pod gets nothing from these annotations until it is fixed",
            self.level, self.error
        )
    }
}

/// A pod's settings: each field from the pod's annotation, else its namespace's, else the
/// node's defaults. An invalid annotation at either level gives an error (the caller leaves the
/// pod as it is: nothing new from that set, no default in its place).
pub fn decide(
    pod: &BTreeMap<String, String>,
    namespace: &BTreeMap<String, String>,
    node: &NodeDefaults,
    select: Select,
) -> Result<Decision, PolicyError> {
    let pod = Layer::from_annotations(pod).map_err(|error| PolicyError {
        level: "pod",
        error,
    })?;
    let ns = Layer::from_annotations(namespace).map_err(|error| PolicyError {
        level: "namespace",
        error,
    })?;
    let switch = pod.keepalive.or(ns.keepalive);
    let selected = match select {
        Select::Annotated => switch == Some(true),
        Select::All => switch != Some(false),
    };
    if !selected {
        return Ok(Decision::Leave);
    }
    let d = &node.keepalive;
    let level = |e| PolicyError {
        level: "pod",
        error: e,
    };
    let mut keepalive = KeepAlive::new(
        pod.idle.or(ns.idle).unwrap_or(d.idle()),
        pod.interval.or(ns.interval).unwrap_or(d.interval()),
        pod.count.or(ns.count).unwrap_or(d.count()),
    )
    .map_err(level)?;
    if let Some(t) = pod.user_timeout.or(ns.user_timeout).or(d.user_timeout()) {
        keepalive = keepalive.with_user_timeout(t).map_err(level)?;
    }
    Ok(Decision::Attach {
        keepalive,
        enforce: pod.enforce.or(ns.enforce).unwrap_or(node.enforce),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn node() -> NodeDefaults {
        NodeDefaults {
            keepalive: KeepAlive::default(),
            enforce: true,
        }
    }

    fn attach(d: Decision) -> (KeepAlive, bool) {
        match d {
            Decision::Attach { keepalive, enforce } => (keepalive, enforce),
            Decision::Leave => panic!("expected an attachment"),
        }
    }

    #[test]
    fn pod_over_namespace_over_node() {
        let ns = map(&[
            (KEEPALIVE, "on"),
            (IDLE, "2m"),
            (COUNT, "3"),
            (ENFORCE, "off"),
        ]);
        let pod = map(&[(IDLE, "30s"), (USER_TIMEOUT, "1500ms")]);
        let (k, enforce) = attach(decide(&pod, &ns, &node(), Select::Annotated).unwrap());
        assert_eq!(k.idle(), Duration::from_secs(30));
        assert_eq!(k.interval(), KeepAlive::default().interval());
        assert_eq!(k.count(), 3);
        assert_eq!(k.user_timeout(), Some(Duration::from_millis(1500)));
        assert!(!enforce);
    }

    #[test]
    fn select_annotated_needs_on_and_pod_off_wins() {
        let none = map(&[]);
        let on = map(&[(KEEPALIVE, "on")]);
        let off = map(&[(KEEPALIVE, "off")]);
        let idle_only = map(&[(IDLE, "30")]);
        let d = |p, n, s| decide(p, n, &node(), s).unwrap();
        assert_eq!(d(&none, &none, Select::Annotated), Decision::Leave);
        assert_eq!(d(&idle_only, &none, Select::Annotated), Decision::Leave);
        assert!(matches!(
            d(&on, &none, Select::Annotated),
            Decision::Attach { .. }
        ));
        assert!(matches!(
            d(&none, &on, Select::Annotated),
            Decision::Attach { .. }
        ));
        assert_eq!(d(&off, &on, Select::Annotated), Decision::Leave);
        assert!(matches!(
            d(&on, &off, Select::Annotated),
            Decision::Attach { .. }
        ));
        assert!(matches!(
            d(&none, &none, Select::All),
            Decision::Attach { .. }
        ));
        assert_eq!(d(&none, &off, Select::All), Decision::Leave);
        assert_eq!(d(&off, &none, Select::All), Decision::Leave);
    }

    #[test]
    fn invalid_values_name_annotation_value_and_what_is_allowed() {
        for (name, value) in [
            (IDLE, "0"),
            (IDLE, "fast"),
            (COUNT, "500"),
            (KEEPALIVE, "maybe"),
            (ENFORCE, "2"),
            (USER_TIMEOUT, "-1"),
            (INTERVAL, "40000"),
        ] {
            let bad = map(&[(KEEPALIVE, "on"), (name, value)]);
            let e = decide(&bad, &map(&[]), &node(), Select::All).unwrap_err();
            assert_eq!(e.level, "pod");
            let text = e.to_string();
            assert!(text.contains(name), "{text}");
            assert!(text.contains(&format!("\"{value}\"")), "{text}");
            assert!(text.contains("allowed:"), "{text}");
            let e = decide(&map(&[]), &bad, &node(), Select::All).unwrap_err();
            assert_eq!(e.level, "namespace");
        }
    }

    #[test]
    fn same_number_rule_as_the_environment() {
        let pod = map(&[
            (KEEPALIVE, " yes "),
            (IDLE, " 0090 "),
            (INTERVAL, "1m"),
            (COUNT, "007"),
        ]);
        let (k, _) = attach(decide(&pod, &map(&[]), &node(), Select::Annotated).unwrap());
        assert_eq!(k.idle(), Duration::from_secs(90));
        assert_eq!(k.interval(), Duration::from_secs(60));
        assert_eq!(k.count(), 7);
        // An empty value counts as unset, as an empty variable does.
        let blank = map(&[(KEEPALIVE, "on"), (IDLE, "  ")]);
        let (k, _) = attach(decide(&blank, &map(&[]), &node(), Select::Annotated).unwrap());
        assert_eq!(k.idle(), KeepAlive::default().idle());
    }
}
