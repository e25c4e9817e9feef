//! The kernel door's Kubernetes mode (`tcp-keepalive cgroup agent --kubernetes`): the node agent
//! learns the pods of its node from the API server (a watch with the field selector
//! `spec.nodeName=<node>`, and the namespaces), and gives each selected pod its own attachment at
//! the pod's cgroup, with the settings its annotations ask for:
//!
//! | annotation | meaning |
//! |---|---|
//! | `tcp-keepalive.dev/keepalive` | `on` / `off` |
//! | `tcp-keepalive.dev/idle`, `tcp-keepalive.dev/interval` | durations (`60`, `60s`, `2m`) |
//! | `tcp-keepalive.dev/count` | probes |
//! | `tcp-keepalive.dev/user-timeout` | duration |
//! | `tcp-keepalive.dev/enforce` | `on` / `off` |
//!
//! A pod's own annotation wins over its namespace's, which wins over the agent's flags. Values are
//! parsed by core, with the rule of the environment variables ([`policy`]). The attachment is made
//! the moment the kubelet makes the pod's cgroup (inotify), before the pod's containers run.
#![warn(missing_docs)]

mod agent;
mod inotify;
pub mod layout;
mod metrics;
pub mod policy;

pub use agent::{run, Config, Sweeper};
pub use policy::{NodeDefaults, Select};
