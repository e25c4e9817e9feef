//! `/metrics`: Prometheus's text format (OpenMetrics) by `prometheus-client`, the Prometheus
//! organisation's own Rust client, prefix `tcp_keepalive_`. Per attachment the counters come from
//! the BPF programs' per-CPU counters, read from the kernel at each scrape.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::agent::State;

type Labels = Vec<(String, String)>;

/// (cgroup, namespace, pod, configured, capped) per attachment.
type Row = (String, String, String, u64, u64);

/// The per-attachment rows of the current scrape.
#[derive(Debug, Default, Clone)]
struct Rows(Arc<Mutex<Vec<Row>>>);

impl Collector for Rows {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (name, help, pick) in [
            (
                "connections_configured",
                "Connections given the settings by the BPF program at this attachment (made or accepted)",
                (|r: &Row| r.3) as fn(&Row) -> u64,
            ),
            (
                "writes_capped",
                "Programs' own keep-alive writes rewritten by enforcement at this attachment",
                |r: &Row| r.4,
            ),
        ] {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for r in &rows {
                let labels = [
                    ("cgroup", r.0.as_str()),
                    ("namespace", r.1.as_str()),
                    ("pod", r.2.as_str()),
                ];
                ConstCounter::new(pick(r)).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The agent's metrics.
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    rows: Rows,
    attachments: Gauge,
    loaded_ahead: Gauge,
    pub(crate) attach_errors: Counter,
    pub(crate) detach_errors: Counter,
    pub(crate) policy_errors: Counter,
    swept: Family<Labels, Counter>,
    watch_restarts: Family<Labels, Counter>,
    pub(crate) attach_latency: Histogram,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tcp_keepalive");
        let rows = Rows::default();
        let attachments = Gauge::default();
        let loaded_ahead = Gauge::default();
        let attach_errors = Counter::default();
        let detach_errors = Counter::default();
        let policy_errors = Counter::default();
        let swept = Family::<Labels, Counter>::default();
        let watch_restarts = Family::<Labels, Counter>::default();
        let attach_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let build_info = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        registry.register(
            "attachments",
            "Pod attachments the agent holds",
            attachments.clone(),
        );
        registry.register(
            "loaded_ahead",
            "Selected pods whose programs are loaded, waiting for the kubelet to make their cgroup",
            loaded_ahead.clone(),
        );
        registry.register(
            "attach_errors",
            "Attaches that failed",
            attach_errors.clone(),
        );
        registry.register(
            "detach_errors",
            "Detaches that failed",
            detach_errors.clone(),
        );
        registry.register(
            "policy_errors",
            "Invalid annotations found (each distinct error of a pod once)",
            policy_errors.clone(),
        );
        registry.register(
            "sweep_connections_changed",
            "Open connections given the settings by the sweep when the pod was attached",
            swept.clone(),
        );
        registry.register(
            "watch_restarts",
            "Failed API watches, restarted with backoff",
            watch_restarts.clone(),
        );
        registry.register(
            "attach_latency_seconds",
            "From a pod cgroup appearing (inotify) to its attachment in place",
            attach_latency.clone(),
        );
        // An info metric: `tcp_keepalive_build_info{version="..."} 1`.
        registry.register("build", "The agent's version", build_info);
        registry.register_collector(Box::new(rows.clone()));
        Metrics {
            registry: Arc::new(registry),
            rows,
            attachments,
            loaded_ahead,
            attach_errors,
            detach_errors,
            policy_errors,
            swept,
            watch_restarts,
            attach_latency,
        }
    }

    /// The sweep of a pod's attachment changed `n` connections.
    pub(crate) fn swept(&self, cgroup: &str, namespace: &str, pod: &str, n: u64) {
        self.swept
            .get_or_create(&attachment(cgroup, namespace, pod))
            .inc_by(n);
    }

    /// A pod's attachment is gone: its series go too.
    pub(crate) fn forget(&self, cgroup: &str, namespace: &str, pod: &str) {
        self.swept.remove(&attachment(cgroup, namespace, pod));
    }

    pub(crate) fn watch_restart(&self, resource: &str) {
        self.watch_restarts
            .get_or_create(&vec![("resource".into(), resource.into())])
            .inc();
    }
}

fn attachment(cgroup: &str, namespace: &str, pod: &str) -> Labels {
    vec![
        ("cgroup".into(), cgroup.into()),
        ("namespace".into(), namespace.into()),
        ("pod".into(), pod.into()),
    ]
}

/// One scrape: the per-attachment counters read from the kernel under the agent's lock, then
/// everything encoded outside it.
pub(crate) fn encode(state: &Mutex<State>) -> String {
    let registry = {
        let s = state.lock().unwrap_or_else(|e| e.into_inner());
        let rows = s.counters();
        s.metrics.attachments.set(s.attachments() as i64);
        s.metrics.loaded_ahead.set(s.loaded_ahead() as i64);
        *s.metrics.rows.0.lock().unwrap_or_else(|e| e.into_inner()) = rows;
        s.metrics.registry.clone()
    };
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        out = format!("# encoding failed: {e}\n");
    }
    out
}
