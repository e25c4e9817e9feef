//! The node agent in its Kubernetes mode: learns the pods of its node from the API server, and
//! holds one attachment per selected pod, at the pod's cgroup, with the pod's settings.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{pin_mut, StreamExt};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Pod};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, watcher as watch, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};
use tcp_keepalive::KeepAlive;
use tcp_keepalive_cgroup::{Attached, Attachments, Cgroup, Error as DoorError, Loaded};

use crate::inotify::{self, CgroupEvent};
use crate::layout::{candidates, uid_of};
use crate::metrics::Metrics;
use crate::policy::{decide, Decision, NodeDefaults, Select};

/// Applies the settings to the connections already open in a cgroup (the CLI's sweep); returns
/// how many connections it changed, or why it could not.
pub type Sweeper = Arc<dyn Fn(&Cgroup, &KeepAlive) -> Result<u64, String> + Send + Sync>;

/// The annotation a static pod's mirror carries: the static pod's own UID (the kubelet's hash of
/// its manifest), which names its cgroup.
const MIRROR: &str = "kubernetes.io/config.mirror";

/// At most this many pods have programs loaded ahead of their cgroup (a node runs 110 pods by
/// default), and no more than one per 16 open files the agent may have (each holds about six
/// descriptors); a pod beyond them is loaded for when its cgroup appears, as before.
const LOADED_AHEAD_MAX: usize = 256;

/// Programs are loaded ahead only for a pod that arrived on the node (bound to it) this recently,
/// and are unloaded when its cgroup has not appeared within it: the kubelet makes a pod's cgroup
/// within seconds of the binding, before volumes and images. Pods that will never have one again
/// (a finished Job's, an evicted one, still in the API) so hold nothing.
const LOAD_AHEAD_WINDOW: Duration = Duration::from_secs(60);

/// How the agent runs.
pub struct Config {
    /// kubepods.slice (systemd driver) or kubepods (cgroupfs driver).
    pub kubepods: PathBuf,
    /// The node whose pods it serves.
    pub node_name: String,
    /// Which pods get settings.
    pub select: Select,
    /// The agent's flags.
    pub defaults: NodeDefaults,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (`None`: nowhere).
    pub metrics_address: Option<SocketAddr>,
    /// Leave the attachments in place on exit.
    pub keep_on_exit: bool,
    /// How often every pod is checked again (settings read back from the kernel).
    pub resync: Duration,
    /// The agent's own pod (the downward API's `metadata.uid`): never attached.
    pub own_pod_uid: Option<String>,
    /// The sweep of connections open before a pod's attachment (`None`: no sweep).
    pub sweep: Option<Sweeper>,
    /// How many files the agent may have open: bounds how many pods have programs loaded ahead
    /// of their cgroup (each holds about six descriptors).
    pub open_files: usize,
}

/// One pod of the node, as the API server lists it.
struct PodInfo {
    namespace: String,
    name: String,
    api_uid: String,
    annotations: BTreeMap<String, String>,
    /// When the watch delivered it as new to this node after the first listing; `None` for a
    /// pod listed (at the start or after a watch restart), whose cgroup exists or never will.
    arrived: Option<Instant>,
}

impl PodInfo {
    fn recently_arrived(&self) -> bool {
        self.arrived
            .is_some_and(|t| t.elapsed() < LOAD_AHEAD_WINDOW)
    }
}

/// An attachment the agent holds for a pod.
struct Held {
    namespace: String,
    name: String,
    cgroup: Cgroup,
    keepalive: KeepAlive,
    enforce: bool,
}

/// Everything the agent knows; behind one lock, shared with the HTTP endpoints.
pub(crate) struct State {
    config: Config,
    door: Attachments,
    pub(crate) metrics: Metrics,
    /// By cgroup UID (the pod's UID, or a static pod's manifest hash).
    pods: HashMap<String, PodInfo>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    held: HashMap<String, Held>,
    /// Programs loaded (verified) for selected pods whose cgroup the kubelet has not made yet:
    /// once it appears, only linking and pinning are left (~0.06 ms instead of ~0.5 ms: most
    /// of an attach is the kernel verifying the programs), so a burst of new pods is in force
    /// within milliseconds (k8s/README.md, "Loaded ahead").
    loaded: HashMap<String, Loaded>,
    /// Pods waiting for their programs to be loaded ahead, in arrival order; loaded one at a
    /// time when the agent has nothing else to do (a cgroup appearing always goes first).
    to_load: VecDeque<String>,
    /// Pods ever queued for loading ahead: each one is, at most once.
    ahead_tried: HashSet<String>,
    /// The most pods loaded ahead at once ([`LOADED_AHEAD_MAX`], fewer with few open files).
    loaded_ahead_max: usize,
    /// The last policy error reported per pod (one Event and log line per distinct error).
    reported: HashMap<String, String>,
    pods_synced: bool,
    namespaces_synced: bool,
    adopted: bool,
    pending_events: Vec<(ObjectReference, String)>,
}

fn log(line: impl std::fmt::Display) {
    println!("agent: {line}");
}

fn warn(line: impl std::fmt::Display) {
    eprintln!("tcp-keepalive: agent: {line}");
}

impl State {
    fn synced(&self) -> bool {
        self.pods_synced && self.namespaces_synced
    }

    /// The pod's cgroup, if the kubelet has made it.
    fn cgroup_dir(&self, key: &str) -> Option<PathBuf> {
        candidates(&self.config.kubepods, key, None)
            .into_iter()
            .find(|p| p.is_dir())
    }

    fn decision(&self, pod: &PodInfo) -> Result<Decision, crate::policy::PolicyError> {
        let empty = BTreeMap::new();
        let ns = self.namespaces.get(&pod.namespace).unwrap_or(&empty);
        decide(
            &pod.annotations,
            ns,
            &self.config.defaults,
            self.config.select,
        )
    }

    /// Brings one pod's attachment to what its annotations ask for.
    fn reconcile(&mut self, key: &str) {
        if !self.synced() {
            return;
        }
        let Some(pod) = self.pods.get(key) else {
            self.loaded.remove(key);
            self.release(key, "the pod is gone");
            return;
        };
        if self.config.own_pod_uid.as_deref() == Some(pod.api_uid.as_str()) {
            return;
        }
        let (keepalive, enforce) = match self.decision(pod) {
            Err(e) => {
                self.loaded.remove(key);
                let text = e.to_string();
                if self.reported.get(key) != Some(&text) {
                    warn(format_args!("pod {}/{}: {text}", pod.namespace, pod.name));
                    self.metrics.policy_errors.inc();
                    let reference = ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Pod".into()),
                        name: Some(pod.name.clone()),
                        namespace: Some(pod.namespace.clone()),
                        uid: Some(pod.api_uid.clone()),
                        ..Default::default()
                    };
                    self.pending_events.push((reference, text.clone()));
                    self.reported.insert(key.to_string(), text);
                }
                return;
            }
            Ok(Decision::Leave) => {
                self.loaded.remove(key);
                self.reported.remove(key);
                self.release(key, "not selected");
                return;
            }
            Ok(Decision::Attach { keepalive, enforce }) => (keepalive, enforce),
        };
        self.reported.remove(key);
        let Some(dir) = self.cgroup_dir(key) else {
            // Not made yet: the cgroup watch attaches when it appears, with programs loaded
            // ahead meanwhile for a pod just bound here.
            if pod.recently_arrived() && self.ahead_tried.insert(key.to_string()) {
                self.to_load.push_back(key.to_string());
            }
            return;
        };
        if let Some(h) = self.held.get(key) {
            if h.keepalive == keepalive && h.enforce == enforce && h.cgroup.path() == dir {
                return;
            }
        }
        self.attach(key, &dir, keepalive, enforce);
    }

    fn attach(&mut self, key: &str, dir: &Path, keepalive: KeepAlive, enforce: bool) {
        let pod = &self.pods[key];
        let who = format!("{}/{}", pod.namespace, pod.name);
        let cgroup = match Cgroup::open(dir) {
            Ok(c) => c,
            Err(e) => {
                // Removed meanwhile: nothing to hold.
                if dir.is_dir() {
                    self.metrics.attach_errors.inc();
                    warn(format_args!("pod {who}: {e}"));
                }
                return;
            }
        };
        let attached = match self.loaded.remove(key) {
            Some(loaded) => self
                .door
                .attach_loaded(&cgroup, &keepalive, enforce, loaded),
            None => self.door.attach_report(&cgroup, &keepalive, enforce),
        };
        match attached.map(|r| r.attached) {
            Ok(what) => {
                log(format_args!(
                    "pod {who}: {} {} (cgroup id {}): {keepalive}, enforce {}",
                    match what {
                        Attached::New => "attached to",
                        Attached::Updated => "updated",
                    },
                    dir.display(),
                    cgroup.id(),
                    if enforce { "on" } else { "off" }
                ));
                if what == Attached::New {
                    if let Some(sweep) = &self.config.sweep {
                        match sweep(&cgroup, &keepalive) {
                            Ok(n) => self.metrics.swept(
                                &dir.display().to_string(),
                                &pod.namespace,
                                &pod.name,
                                n,
                            ),
                            Err(e) => warn(format_args!("pod {who}: sweep: {e}")),
                        }
                    }
                }
                let (namespace, name) = (pod.namespace.clone(), pod.name.clone());
                self.held.insert(
                    key.to_string(),
                    Held {
                        namespace,
                        name,
                        cgroup,
                        keepalive,
                        enforce,
                    },
                );
            }
            Err(e) => {
                self.metrics.attach_errors.inc();
                warn(format_args!("pod {who}: attach to {}: {e}", dir.display()));
            }
        }
    }

    /// Detaches what the agent holds for a pod, pins included.
    fn release(&mut self, key: &str, why: &str) {
        let Some(h) = self.held.remove(key) else {
            return;
        };
        self.metrics.forget(
            &h.cgroup.path().display().to_string(),
            &h.namespace,
            &h.name,
        );
        match self.door.detach(&h.cgroup) {
            Ok(()) | Err(DoorError::NotAttached { .. }) => log(format_args!(
                "detached from {} (cgroup id {}): {why}",
                h.cgroup.path().display(),
                h.cgroup.id()
            )),
            Err(e) => {
                self.metrics.detach_errors.inc();
                warn(format_args!(
                    "detach from {}: {e}",
                    h.cgroup.path().display()
                ));
            }
        }
    }

    /// Whether a pod waits for its programs to be loaded ahead.
    fn wants_load(&self) -> bool {
        !self.to_load.is_empty()
    }

    /// Loads the programs of the next queued pod that still needs them (still selected, its
    /// cgroup still not made) while there is room. Each pod is queued once (`ahead_tried`), by
    /// `reconcile`, which leaves out the agent's own pod.
    fn load_next(&mut self) {
        while let Some(key) = self.to_load.pop_front() {
            let wanted = self.pods.get(&key).is_some_and(|pod| {
                pod.recently_arrived() && matches!(self.decision(pod), Ok(Decision::Attach { .. }))
            }) && self.loaded.len() < self.loaded_ahead_max
                && self.cgroup_dir(&key).is_none();
            if !wanted {
                continue;
            }
            match self.door.load() {
                Ok(loaded) => {
                    self.loaded.insert(key, loaded);
                }
                // Not tried again: the attach loads for itself, and reports what fails then.
                Err(e) => warn(format_args!("loading the programs ahead for {key}: {e}")),
            }
            return;
        }
    }

    /// Unloads what was loaded ahead for pods whose cgroup did not appear in time (or that are
    /// gone), and forgets the pods that are gone.
    fn expire_loaded(&mut self) {
        let pods = &self.pods;
        self.loaded
            .retain(|k, _| pods.get(k).is_some_and(PodInfo::recently_arrived));
        self.ahead_tried.retain(|k| pods.contains_key(k));
    }

    fn reconcile_all(&mut self) {
        let mut keys: Vec<String> = self.pods.keys().cloned().collect();
        keys.extend(
            self.held
                .keys()
                .filter(|k| !self.pods.contains_key(*k))
                .cloned(),
        );
        for key in keys {
            self.reconcile(&key);
        }
    }

    /// After the first sync: attachments of ours under kubepods that no pod asks for (an earlier
    /// agent's, pods deleted while no agent ran) go, and so does a node-wide one at kubepods
    /// itself (per-pod settings must win, and an outer attachment would win over them).
    fn adopt(&mut self) {
        self.adopted = true;
        match self.door.remove_defunct() {
            Ok(ids) if !ids.is_empty() => log(format_args!(
                "removed the pins of {} cgroups that are gone",
                ids.len()
            )),
            Ok(_) => {}
            Err(e) => warn(format_args!("clearing attachments of removed cgroups: {e}")),
        }
        let list = match self.door.list() {
            Ok(l) => l,
            Err(e) => {
                warn(format_args!("listing attachments: {e}"));
                return;
            }
        };
        let held_ids: Vec<u64> = self.held.values().map(|h| h.cgroup.id()).collect();
        for s in list {
            let Some(path) = &s.cgroup_path else { continue };
            if !path.starts_with(&self.config.kubepods) || held_ids.contains(&s.cgroup_id) {
                continue;
            }
            let node_wide = path == &self.config.kubepods;
            let pod_cgroup = path.file_name().and_then(|n| n.to_str()).and_then(uid_of);
            if !node_wide && pod_cgroup.is_none() {
                continue; // a QoS tier or a container: not ours to judge
            }
            match self.door.detach_id(s.cgroup_id) {
                Ok(()) => log(format_args!(
                    "detached from {}: {}",
                    path.display(),
                    if node_wide {
                        "a node-wide attachment would override every pod's own settings"
                    } else {
                        "no pod asks for it"
                    }
                )),
                Err(e) => {
                    self.metrics.detach_errors.inc();
                    warn(format_args!("detach from {}: {e}", path.display()));
                }
            }
        }
    }

    fn on_pod(
        &mut self,
        event: Event<PartialObjectMeta<Pod>>,
        buffer: &mut Option<HashMap<String, PodInfo>>,
    ) {
        match event {
            Event::Init => *buffer = Some(HashMap::new()),
            Event::InitApply(p) => {
                if let (Some(b), Some((k, info))) = (buffer.as_mut(), pod_info(&p)) {
                    b.insert(k, info);
                }
            }
            Event::InitDone => {
                let mut fresh = buffer.take().unwrap_or_default();
                for (k, info) in fresh.iter_mut() {
                    info.arrived = self.pods.get(k).and_then(|p| p.arrived);
                }
                let gone: Vec<String> = self
                    .pods
                    .keys()
                    .filter(|k| !fresh.contains_key(*k))
                    .cloned()
                    .collect();
                self.pods = fresh;
                let first = !self.pods_synced;
                self.pods_synced = true;
                log(format_args!(
                    "pods of node {} listed: {}",
                    self.config.node_name,
                    self.pods.len()
                ));
                if first {
                    self.after_first_sync();
                } else {
                    for k in gone {
                        self.reconcile(&k);
                    }
                    self.reconcile_all();
                }
            }
            Event::Apply(p) => {
                if let Some((k, mut info)) = pod_info(&p) {
                    // New to the node once listed: just bound here, its cgroup still to come.
                    info.arrived = match self.pods.get(&k) {
                        Some(known) => known.arrived,
                        None => self.pods_synced.then(Instant::now),
                    };
                    self.pods.insert(k.clone(), info);
                    self.reconcile(&k);
                }
            }
            Event::Delete(p) => {
                if let Some((k, _)) = pod_info(&p) {
                    self.pods.remove(&k);
                    self.reported.remove(&k);
                    self.ahead_tried.remove(&k);
                    self.reconcile(&k);
                }
            }
        }
    }

    fn on_namespace(
        &mut self,
        event: Event<PartialObjectMeta<Namespace>>,
        buffer: &mut Option<HashMap<String, BTreeMap<String, String>>>,
    ) {
        let changed: Option<String> = match event {
            Event::Init => {
                *buffer = Some(HashMap::new());
                None
            }
            Event::InitApply(n) => {
                if let Some(b) = buffer.as_mut() {
                    b.insert(n.name_any(), n.annotations().clone());
                }
                None
            }
            Event::InitDone => {
                self.namespaces = buffer.take().unwrap_or_default();
                let first = !self.namespaces_synced;
                self.namespaces_synced = true;
                if first {
                    self.after_first_sync();
                } else {
                    self.reconcile_all();
                }
                None
            }
            Event::Apply(n) => {
                let name = n.name_any();
                let annotations = n.annotations().clone();
                (self.namespaces.insert(name.clone(), annotations.clone()) != Some(annotations))
                    .then_some(name)
            }
            Event::Delete(n) => {
                let name = n.name_any();
                self.namespaces.remove(&name).map(|_| name)
            }
        };
        if let Some(ns) = changed {
            let keys: Vec<String> = self
                .pods
                .iter()
                .filter(|(_, p)| p.namespace == ns)
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                self.reconcile(&k);
            }
        }
    }

    fn after_first_sync(&mut self) {
        if !self.synced() {
            return;
        }
        self.reconcile_all();
        if !self.adopted {
            self.adopt();
        }
    }

    fn on_cgroup(&mut self, event: CgroupEvent) {
        if event.created {
            if self.pods.contains_key(&event.uid) {
                self.reconcile(&event.uid);
                if self.held.contains_key(&event.uid) {
                    self.metrics
                        .attach_latency
                        .observe(event.seen.elapsed().as_secs_f64());
                }
            }
        } else {
            // A pod whose cgroup is gone (finished, evicted) needs nothing loaded any more.
            self.loaded.remove(&event.uid);
            if self.held.contains_key(&event.uid) {
                // The kubelet removed the pod's cgroup: its links are defunct, only pins remain.
                self.release(&event.uid, "the pod's cgroup was removed");
            }
        }
    }

    /// Every attachment the agent should hold, checked against the kernel; `Err` lists what is
    /// missing.
    pub(crate) fn readiness(&self) -> Result<String, String> {
        if !self.synced() {
            return Err("not yet synced with the API server (pods and namespaces listed)".into());
        }
        let mut missing = Vec::new();
        let mut ok = 0usize;
        for (key, pod) in &self.pods {
            if self.config.own_pod_uid.as_deref() == Some(pod.api_uid.as_str()) {
                continue;
            }
            let Ok(Decision::Attach { keepalive, enforce }) = self.decision(pod) else {
                continue;
            };
            let Some(dir) = self.cgroup_dir(key) else {
                continue;
            };
            let status = Cgroup::open(&dir).and_then(|c| self.door.status(&c));
            match status {
                Ok(s) if s.linked && s.links_pinned && s.keepalive == keepalive && s.enforce == enforce => {
                    ok += 1
                }
                Ok(s) => missing.push(format!(
                    "{}/{}: in the kernel {} enforce {} linked {}, wanted {keepalive} enforce {enforce}",
                    pod.namespace, pod.name, s.keepalive, s.enforce, s.linked && s.links_pinned
                )),
                Err(e) => missing.push(format!("{}/{}: {e}", pod.namespace, pod.name)),
            }
        }
        if missing.is_empty() {
            Ok(format!("ready: {ok} attachments in place and linked\n"))
        } else {
            Err(format!("not ready:\n{}\n", missing.join("\n")))
        }
    }

    /// (cgroup, namespace, pod, configured, capped) of every attachment held, from the kernel.
    pub(crate) fn counters(&self) -> Vec<(String, String, String, u64, u64)> {
        let mut out = Vec::with_capacity(self.held.len());
        for h in self.held.values() {
            let Ok(s) = self.door.status(&h.cgroup) else {
                continue;
            };
            out.push((
                h.cgroup.path().display().to_string(),
                h.namespace.clone(),
                h.name.clone(),
                s.configured,
                s.capped,
            ));
        }
        out
    }

    /// How many pods have programs loaded ahead of their cgroup.
    pub(crate) fn loaded_ahead(&self) -> usize {
        self.loaded.len()
    }

    pub(crate) fn attachments(&self) -> usize {
        self.held.len()
    }
}

/// The cgroup UID and what the agent keeps of a pod.
fn pod_info(p: &PartialObjectMeta<Pod>) -> Option<(String, PodInfo)> {
    let api_uid = p.uid()?;
    let annotations = p.annotations().clone();
    let key = annotations
        .get(MIRROR)
        .cloned()
        .unwrap_or_else(|| api_uid.clone())
        .to_ascii_lowercase();
    Some((
        key,
        PodInfo {
            namespace: p.namespace().unwrap_or_default(),
            name: p.name_any(),
            api_uid,
            annotations,
            arrived: None,
        },
    ))
}

/// The API client as every Kubernetes client finds it: in a pod, its service account; else
/// `KUBECONFIG` (or `~/.kube/config`).
async fn client() -> Result<Client, String> {
    let config = if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        kube::Config::incluster().map_err(|e| format!("in-cluster configuration: {e}"))?
    } else {
        kube::Config::infer().await.map_err(|e| {
            format!("no Kubernetes API configuration (in-cluster or KUBECONFIG): {e}")
        })?
    };
    Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))
}

/// Runs the agent until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    rt.block_on(run_async(config))
}

async fn run_async(config: Config) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let door = Attachments::from_env().map_err(|e| e.to_string())?;
    let client = client().await?;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "tcp-keepalive-agent".into(),
            instance: Some(config.node_name.clone()),
        },
    );
    let (tx, mut cgroups) = tokio::sync::mpsc::unbounded_channel();
    inotify::watch(&config.kubepods, tx).map_err(|e| {
        format!(
            "watching {} for pod cgroups: {e}",
            config.kubepods.display()
        )
    })?;
    let node = config.node_name.clone();
    let resync = config.resync;
    let keep_on_exit = config.keep_on_exit;
    let metrics_address = config.metrics_address;
    log(format_args!(
        "Kubernetes mode: node {node}, pods under {}, select {:?}, defaults {} enforce {}",
        config.kubepods.display(),
        config.select,
        config.defaults.keepalive,
        if config.defaults.enforce { "on" } else { "off" }
    ));
    let open_files = config.open_files;
    let state = Arc::new(Mutex::new(State {
        config,
        door,
        metrics: Metrics::new(),
        pods: HashMap::new(),
        namespaces: HashMap::new(),
        held: HashMap::new(),
        loaded: HashMap::new(),
        to_load: VecDeque::new(),
        ahead_tried: HashSet::new(),
        loaded_ahead_max: LOADED_AHEAD_MAX.min(open_files / 16),
        reported: HashMap::new(),
        pods_synced: false,
        namespaces_synced: false,
        adopted: false,
        pending_events: Vec::new(),
    }));
    if let Some(addr) = metrics_address {
        // A thread of its own: a scrape or a probe is answered while the main loop attaches a
        // burst of pods (it waits only for the state's lock, held for one pod at a time).
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("--metrics-address {addr}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("--metrics-address {addr}: {e}"))?;
        log(format_args!(
            "serving /metrics, /healthz and /readyz on {}",
            listener.local_addr().map_err(|e| e.to_string())?
        ));
        let state = state.clone();
        std::thread::Builder::new()
            .name("endpoints".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the endpoints");
                rt.block_on(serve(listener, state));
            })
            .map_err(|e| format!("starting the endpoints' thread: {e}"))?;
    }

    // Metadata only (names, UIDs, annotations): all the agent needs, and far less to hold.
    let pods = watch(
        Api::<PartialObjectMeta<Pod>>::all(client.clone()),
        watcher::Config::default().fields(&format!("spec.nodeName={node}")),
    )
    .default_backoff();
    let namespaces = watch(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff();
    pin_mut!(pods, namespaces);
    let mut pod_buffer = None;
    let mut ns_buffer = None;
    let mut tick = tokio::time::interval(resync);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let signal = loop {
        let wants_load = lock(&state).wants_load();
        tokio::select! {
            // In this order: a pod's cgroup appearing waits for nothing else.
            biased;
            Some(ev) = cgroups.recv() => lock(&state).on_cgroup(ev),
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            ev = pods.next() => match ev {
                Some(Ok(e)) => lock(&state).on_pod(e, &mut pod_buffer),
                Some(Err(e)) => watch_failed(&state, "pods", &e),
                None => break "the pod watch ended",
            },
            ev = namespaces.next() => match ev {
                Some(Ok(e)) => lock(&state).on_namespace(e, &mut ns_buffer),
                Some(Err(e)) => watch_failed(&state, "namespaces", &e),
                None => break "the namespace watch ended",
            },
            _ = tick.tick() => {
                let mut s = lock(&state);
                if s.synced() {
                    // Attachments removed behind the agent's back come back; settings are
                    // compared with the kernel's.
                    let stale: Vec<String> = s
                        .held
                        .iter()
                        .filter(|(_, h)| !s.door.status(&h.cgroup).is_ok_and(|st| st.linked && st.links_pinned && st.keepalive == h.keepalive && st.enforce == h.enforce))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in stale {
                        s.release(&k, "not as the agent left it in the kernel; attaching again");
                    }
                    s.reconcile_all();
                    s.expire_loaded();
                }
            },
            // Only when nothing above is ready; yielding first lets the runtime take in what has
            // arrived meanwhile (a cgroup event, a signal) before each load.
            _ = tokio::task::yield_now(), if wants_load => lock(&state).load_next(),
        }
        let events = std::mem::take(&mut lock(&state).pending_events);
        for (reference, note) in events {
            let recorder = recorder.clone();
            tokio::spawn(async move {
                let event = KubeEvent {
                    type_: EventType::Warning,
                    reason: "InvalidKeepAliveAnnotation".into(),
                    note: Some(note),
                    action: "Configure".into(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&event, &reference).await {
                    warn(format_args!(
                        "publishing an Event on pod {}/{}: {e}",
                        reference.namespace.unwrap_or_default(),
                        reference.name.unwrap_or_default()
                    ));
                }
            });
        }
    };
    let mut s = lock(&state);
    if keep_on_exit {
        log(format_args!(
            "{signal}: leaving {} attachments in place (--keep-on-exit)",
            s.held.len()
        ));
        return Ok(());
    }
    let keys: Vec<String> = s.held.keys().cloned().collect();
    for k in keys {
        s.release(&k, signal);
    }
    log(format_args!("{signal}: detached from every pod"));
    Ok(())
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn watch_failed(state: &Mutex<State>, resource: &str, e: &watcher::Error) {
    lock(state).metrics.watch_restart(resource);
    warn(format_args!(
        "watching {resource} failed: {e}; keeping every attachment, retrying with backoff"
    ));
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener`, forever.
async fn serve(listener: std::net::TcpListener, state: Arc<Mutex<State>>) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn(format_args!("serving the endpoints: {e}"));
            return;
        }
    };
    {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(respond(&state, req.uri().path())) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

fn respond(state: &Arc<Mutex<State>>, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => {
            let text = crate::metrics::encode(state);
            (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            )
        }
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" => match lock(state).readiness() {
            Ok(t) => (StatusCode::OK, "text/plain", t),
            Err(t) => (StatusCode::SERVICE_UNAVAILABLE, "text/plain", t),
        },
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: /metrics, /healthz, /readyz\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
