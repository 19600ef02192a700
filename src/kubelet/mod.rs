//! The node simulator: plays scheduler and kubelet for pods, against any API server.
//!
//! [`Kubelet::start`] registers `nodes` Node objects (heartbeat: [`node`]), serves container logs
//! on `127.0.0.1:0` ([`logs`]), and runs one dispatcher task fed by two kube-runtime watchers (all
//! pods, all nodes):
//!
//! - pending pods for the default scheduler are bound to the least-loaded of our nodes with room
//!   ([`scheduler`]); a pod finishing frees its slot and the queue moves on;
//! - each pod bound to one of our nodes gets a pod worker ([`runtime`]) that runs its containers
//!   with the configured executor ([`process`] or [`simulate`]) and writes its status (computed by
//!   the pure [`status`]); the dispatcher forwards later versions of the pod (deletion) to it;
//! - [`Kubelet::fail_node`] (or `kubectl annotate node NAME jobwright.dev/fail-node=true`) makes a
//!   node's pods lost as on a real cluster: processes killed, `DisruptionTarget` condition
//!   (`DeletionByTaintManager`), `Failed`, force-deleted; `kubectl delete node NAME` does the same
//!   with pod GC's reason (`DeletionByPodGC`). [`Kubelet::recover_node`] (or removing the
//!   annotation) brings the node back, Ready and schedulable. A deleted Node is not registered
//!   again while the simulator runs, as a running kubelet upstream does not re-register
//!   (kubernetes#71398): it takes no new pods until the next start registers it again.
//!
//! Starting again over the same API state (`jobwright local --data-dir`, or `jobwright kubelet`
//! restarted) is a node reboot: every node registers again (clearing the fail annotation and the
//! `unreachable` taints); a pod that was running lost its processes with the previous process, so
//! each of its running containers is reported terminated with 137 `ContainerStatusUnknown`, as
//! upstream reports a container it can no longer find. A `restartPolicy: Never` pod thus ends
//! `Failed` (a Job counts one failure and replaces it once); `OnFailure`/`Always` containers restart
//! in place; bound pods that had not started yet simply start.
//!
//! One bad pod never stalls the others: each worker is its own task, and every API error is
//! logged and retried or skipped, never unwrapped. [`Kubelet::shutdown`] kills every process it
//! started and waits for them.

pub mod cli;
pub mod dns;
pub mod env;
pub mod events;
pub mod logs;
pub mod node;
pub mod podnet;
pub mod portforward;
pub mod process;
pub mod proxy;
pub mod runtime;
pub mod scheduler;
pub mod simulate;
mod spdy_dictionary;
pub mod stats;
pub mod status;
pub mod streams;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::lean::Lean;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::runtime::watcher;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use runtime::{Backoff, ExecutorKind, NodeHealth, Outcome};

/// Settings of the node simulator.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// How many nodes to simulate.
    pub nodes: usize,
    /// Node names are `{node_prefix}-{i}`.
    pub node_prefix: String,
    /// Pod capacity of each node (`status.capacity.pods`).
    pub pods_per_node: usize,
    /// How containers run.
    pub executor: ExecutorKind,
    /// Heartbeat period (lease renewal and Ready condition).
    pub heartbeat_interval: Duration,
    /// `leaseDurationSeconds` of node leases.
    pub lease_duration_seconds: i32,
    /// Container restart back-off (upstream: 10 s doubling, capped at 5 min).
    pub backoff: Backoff,
    /// Where pods' working directories and logs go; a fresh temporary directory (removed on
    /// shutdown) when `None`.
    pub data_dir: Option<PathBuf>,
    /// Also play the scheduler (bind pending pods). On by default.
    pub schedule: bool,
    /// Emit events as the kubelet and scheduler do (`Scheduled`, `Pulled`, `Created`, `Started`,
    /// `Killing`, `BackOff`, `Failed`). On by default; turn off for scale runs.
    pub events: bool,
    /// Give each process-executor pod its own network namespace, hostname and DNS files on this
    /// pod network ([`podnet`]); `None`: pods share the host network.
    pub network: Option<Arc<podnet::PodNetwork>>,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        Self {
            nodes: 1,
            node_prefix: "jobwright-node".into(),
            pods_per_node: 110,
            executor: ExecutorKind::Process,
            heartbeat_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            backoff: Backoff { base: Duration::from_secs(10), max: Duration::from_secs(300) },
            data_dir: None,
            schedule: true,
            events: true,
            network: None,
        }
    }
}

/// Errors of the node simulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// Local I/O failed (data directory, log server).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// No such node in this simulator.
    #[error("node {0:?} is not one of this kubelet's nodes")]
    UnknownNode(String),
    /// The simulator has stopped.
    #[error("the kubelet has stopped")]
    Stopped,
}

enum Command {
    FailNode(String, oneshot::Sender<Result<(), Error>>),
    RecoverNode(String, oneshot::Sender<Result<(), Error>>),
}

/// A running node simulator.
pub struct Kubelet {
    nodes: Vec<String>,
    port: u16,
    commands: mpsc::UnboundedSender<Command>,
    shutdown: CancellationToken,
    dispatcher: JoinHandle<()>,
    heartbeats: Vec<JoinHandle<()>>,
    root: PathBuf,
    owns_root: bool,
    logs: Arc<logs::LogStore>,
}

impl Kubelet {
    /// Register the nodes, start the log server, the heartbeats and the dispatcher.
    pub async fn start(client: kube::Client, config: KubeletConfig) -> Result<Self, Error> {
        let (root, owns_root) = match &config.data_dir {
            Some(d) => (d.clone(), false),
            None => (std::env::temp_dir().join(format!("jobwright-kubelet-{}", uuid::Uuid::new_v4().simple())), true),
        };
        std::fs::create_dir_all(root.join("pods"))?;
        let logs = logs::LogStore::new(root.join("logs"));
        let reloaded = logs.load_existing();
        if reloaded > 0 {
            info!(pods = reloaded, "container logs of an earlier run found");
        }
        let shutdown = CancellationToken::new();
        let containers = Arc::new(streams::Containers::default());
        let extra = streams::router(containers.clone()).merge(stats::router(containers.clone()));
        let addr = logs::serve(logs.clone(), extra, shutdown.child_token()).await?;
        node::ensure_lease_namespace(&client).await?;
        let mut slots = Vec::new();
        let mut heartbeats = Vec::new();
        for i in 0..config.nodes {
            let cfg = node::NodeConfig {
                name: format!("{}-{i}", config.node_prefix),
                pods: config.pods_per_node,
                port: addr.port(),
                lease_duration_seconds: config.lease_duration_seconds,
            };
            node::register(&client, &cfg).await?;
            let stop = shutdown.child_token();
            heartbeats.push(tokio::spawn(node::heartbeat_loop(
                client.clone(),
                cfg.clone(),
                config.heartbeat_interval,
                stop.clone(),
            )));
            slots.push(NodeSlot {
                name: cfg.name.clone(),
                capacity: config.pods_per_node,
                load: 0,
                health: watch::channel(NodeHealth::Healthy).0,
                heartbeat: stop,
                cfg: cfg.clone(),
                interval: config.heartbeat_interval,
                failed_by_annotation: false,
                marking: None,
            });
        }
        info!(nodes = config.nodes, port = addr.port(), executor = ?config.executor, "node simulator started");
        let ctx = Arc::new(runtime::PodContext {
            client: client.clone(),
            executor: config.executor,
            logs: logs.clone(),
            pods_dir: root.join("pods"),
            backoff: config.backoff,
            shutdown: shutdown.clone(),
            events: config.events,
            containers,
            network: config.network.clone(),
        });
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (bind_tx, bind_rx) = mpsc::unbounded_channel();
        let nodes = slots.iter().map(|s| s.name.clone()).collect();
        let dispatcher = Dispatcher {
            ctx,
            client: client.clone(),
            nodes: slots,
            pods: HashMap::new(),
            pending: VecDeque::new(),
            cursor: 0,
            workers: JoinSet::new(),
            bind_tx,
            schedule: config.schedule,
            relist: None,
            heartbeats: Vec::new(),
            scheduler_events: config
                .events
                .then(|| Reporter { controller: "default-scheduler".into(), instance: None }),
        };
        let dispatcher = tokio::spawn(dispatcher.run(commands_rx, bind_rx, shutdown.clone()));
        Ok(Self { nodes, port: addr.port(), commands, shutdown, dispatcher, heartbeats, root, owns_root, logs })
    }

    /// Start, run until `shutdown` is cancelled, then stop every process and return.
    pub async fn run(client: kube::Client, config: KubeletConfig, shutdown: CancellationToken) -> Result<(), Error> {
        let kubelet = Self::start(client, config).await?;
        shutdown.cancelled().await;
        kubelet.shutdown().await;
        Ok(())
    }

    /// The names of the simulated nodes.
    pub fn node_names(&self) -> &[String] {
        &self.nodes
    }

    /// The port of the log endpoint (published on every Node).
    pub fn log_port(&self) -> u16 {
        self.port
    }

    /// The container log store (for tests and embedding).
    pub fn logs(&self) -> &Arc<logs::LogStore> {
        &self.logs
    }

    /// Fail a node on demand: its heartbeat stops, it turns NotReady (conditions `Unknown`,
    /// `unreachable` taints), and its pods are lost: processes killed, `DisruptionTarget`
    /// (`DeletionByTaintManager`), phase `Failed`, then force-deleted. Returns once started.
    pub async fn fail_node(&self, name: &str) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::FailNode(name.to_string(), tx)).map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Bring a failed (or deleted) node back: it registers again (taints cleared, Ready), its
    /// heartbeat resumes and pods are scheduled there again. The pods it lost stay lost.
    pub async fn recover_node(&self, name: &str) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::RecoverNode(name.to_string(), tx)).map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Stop: kill every process started, wait for them, stop the heartbeats and the log server.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.dispatcher.await;
        for h in self.heartbeats {
            let _ = h.await;
        }
        if self.owns_root {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

struct NodeSlot {
    name: String,
    capacity: usize,
    load: usize,
    health: watch::Sender<NodeHealth>,
    heartbeat: CancellationToken,
    /// What registration and heartbeat need, to bring the node back.
    cfg: node::NodeConfig,
    interval: Duration,
    /// Failed through the `jobwright.dev/fail-node` annotation: removing it brings the node back.
    failed_by_annotation: bool,
    /// The last node-object update in flight (marking it unreachable), finished before recovery.
    marking: Option<JoinHandle<()>>,
}

/// One pod this kubelet knows of. A finished pod stays (as long as the pod exists), so the entry
/// is kept small: namespace and name in one allocation, node indexes as `u32`.
#[derive(Default)]
struct PodEntry {
    /// Namespace then name, back to back ([`PodEntry::namespace`], [`PodEntry::name`]).
    id: Box<str>,
    /// The namespace's length in `id`.
    ns_len: u32,
    /// Index of our node the pod is bound to.
    node: Option<u32>,
    /// Index of the node whose load counts this pod.
    counted: Option<u32>,
    worker: Option<watch::Sender<Option<Pod>>>,
    finished: bool,
    queued: bool,
    binding: bool,
    delete_sent: bool,
    marked_unschedulable: bool,
}

impl PodEntry {
    fn new(pod: &Pod) -> Self {
        let (ns, name) =
            (pod.metadata.namespace.as_deref().unwrap_or_default(), pod.metadata.name.as_deref().unwrap_or_default());
        match u32::try_from(ns.len()) {
            Ok(ns_len) => Self { id: [ns, name].concat().into_boxed_str(), ns_len, ..Default::default() },
            // A namespace of 4 GiB does not pass validation; keep the entry consistent anyway.
            Err(_) => Self { id: Box::from(name), ..Default::default() },
        }
    }

    fn namespace(&self) -> &str {
        self.id.get(..self.ns_len as usize).unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.id.get(self.ns_len as usize..).unwrap_or_default()
    }

    /// The node the pod is bound to.
    fn node(&self) -> Option<usize> {
        self.node.map(|n| n as usize)
    }
}

/// A node index as [`PodEntry`] keeps it (there are far fewer than 2^32 nodes).
fn node_u32(i: usize) -> Option<u32> {
    u32::try_from(i).ok()
}

struct Dispatcher {
    ctx: Arc<runtime::PodContext>,
    client: kube::Client,
    nodes: Vec<NodeSlot>,
    pods: HashMap<Box<str>, PodEntry>,
    pending: VecDeque<String>,
    cursor: usize,
    workers: JoinSet<(String, Outcome)>,
    bind_tx: mpsc::UnboundedSender<(String, usize, Result<(), kube::Error>)>,
    schedule: bool,
    /// Uids seen since a watcher (re)list began.
    relist: Option<HashSet<String>>,
    /// The scheduler's event reporter, when events are on. Each event gets a fresh
    /// [`events::EventWriter`]: a pod's `Scheduled` (or `FailedScheduling`) event is written
    /// once, and one shared writer would keep every event of the last six minutes in its cache
    /// and scan all of them on every publish, per-pod work growing with the pods.
    scheduler_events: Option<Reporter>,
    /// Heartbeats of recovered nodes.
    heartbeats: Vec<JoinHandle<()>>,
}

type BindResult = (String, usize, Result<(), kube::Error>);

impl Dispatcher {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut binds: mpsc::UnboundedReceiver<BindResult>,
        shutdown: CancellationToken,
    ) {
        // Decoded without `managedFields`, which nothing here reads ([`crate::lean`]).
        let pods = watcher(Api::<Lean<Pod>>::all(self.client.clone()), watcher::Config::default()).default_backoff();
        let nodes = watcher(Api::<Node>::all(self.client.clone()), watcher::Config::default()).default_backoff();
        let mut pods = std::pin::pin!(pods);
        let mut nodes = std::pin::pin!(nodes);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                ev = pods.next() => match ev {
                    Some(Ok(ev)) => self.on_pod_event(ev),
                    Some(Err(e)) => debug!(error = %e, "pod watch error"),
                    None => break,
                },
                ev = nodes.next() => match ev {
                    Some(Ok(watcher::Event::Delete(n))) => self.on_node_deleted(n.metadata.name.as_deref().unwrap_or_default()),
                    Some(Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n))) => self.on_node(&n),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => debug!(error = %e, "node watch error"),
                    None => break,
                },
                Some(done) = self.workers.join_next(), if !self.workers.is_empty() => {
                    match done {
                        Ok((uid, outcome)) => self.on_worker_done(&uid, outcome),
                        Err(e) => warn!(error = %e, "pod worker panicked"),
                    }
                }
                Some((uid, node, result)) = binds.recv() => self.on_bound(uid, node, result),
                Some(cmd) = commands.recv() => match cmd {
                    Command::FailNode(name, reply) => {
                        let _ = reply.send(self.fail_node(&name));
                    }
                    Command::RecoverNode(name, reply) => {
                        let _ = reply.send(self.recover_node(&name));
                    }
                },
            }
            self.schedule_pending();
        }
        // Shutdown: workers see the token, kill their processes and return.
        while self.workers.join_next().await.is_some() {}
        for h in self.heartbeats.drain(..) {
            let _ = h.await;
        }
    }

    fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    fn set_count(nodes: &mut [NodeSlot], entry: &mut PodEntry, node: Option<usize>) {
        let node = node.and_then(node_u32);
        if entry.counted == node {
            return;
        }
        if let Some(old) = entry.counted {
            nodes[old as usize].load = nodes[old as usize].load.saturating_sub(1);
        }
        if let Some(new) = node {
            nodes[new as usize].load += 1;
        }
        entry.counted = node;
    }

    fn on_pod_event(&mut self, ev: watcher::Event<Lean<Pod>>) {
        match ev {
            watcher::Event::Init => self.relist = Some(HashSet::new()),
            watcher::Event::InitApply(Lean(p)) => {
                if let (Some(seen), Some(uid)) = (self.relist.as_mut(), p.metadata.uid.clone()) {
                    seen.insert(uid);
                }
                self.on_pod(p);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.relist.take() {
                    let gone: Vec<String> =
                        self.pods.keys().filter(|u| !seen.contains(&***u)).map(|u| u.to_string()).collect();
                    for uid in gone {
                        self.forget(&uid);
                    }
                    // Also the logs of pods deleted while this kubelet was not running.
                    self.ctx.logs.retain_uids(&seen);
                }
            }
            watcher::Event::Apply(Lean(p)) => self.on_pod(p),
            watcher::Event::Delete(Lean(p)) => {
                if let Some(uid) = p.metadata.uid.as_deref() {
                    self.forget(uid);
                }
            }
        }
    }

    fn forget(&mut self, uid: &str) {
        if let Some(mut entry) = self.pods.remove(uid) {
            if let Some(tx) = entry.worker.take() {
                tx.send_replace(None);
            }
            Self::set_count(&mut self.nodes, &mut entry, None);
            self.ctx.logs.remove_pod(entry.namespace(), entry.name(), Some(uid));
        }
    }

    fn on_pod(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone().filter(|u| !u.is_empty()) else { return };
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty());
        let terminal =
            pod.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|p| p == "Succeeded" || p == "Failed");
        let Some(node_name) = node_name else {
            if self.schedule && scheduler::wants_scheduling(&pod) {
                let entry = self.pods.entry(Box::from(uid.as_str())).or_insert_with(|| PodEntry::new(&pod));
                if !entry.queued && !entry.binding && entry.node.is_none() {
                    entry.queued = true;
                    self.pending.push_back(uid);
                }
            }
            return;
        };
        let Some(idx) = self.node_index(&node_name) else {
            // Bound elsewhere (another kubelet, or a bind race we lost).
            if let Some(mut entry) = self.pods.remove(uid.as_str()) {
                Self::set_count(&mut self.nodes, &mut entry, None);
            }
            return;
        };
        let entry = self.pods.entry(Box::from(uid.as_str())).or_insert_with(|| PodEntry::new(&pod));
        entry.node = node_u32(idx);
        entry.queued = false;
        if let Some(tx) = &entry.worker {
            tx.send_replace(Some(pod));
            return;
        }
        if entry.finished || terminal {
            Self::set_count(&mut self.nodes, entry, None);
            if pod.metadata.deletion_timestamp.is_some() && !entry.delete_sent {
                entry.delete_sent = true;
                let api: Api<Pod> = Api::namespaced(self.client.clone(), entry.namespace());
                let name = entry.name().to_string();
                tokio::spawn(async move { runtime::confirm_delete(&api, &name, &uid).await });
            }
            return;
        }
        Self::set_count(&mut self.nodes, entry, Some(idx));
        // The worker starts from `pod`; the channel carries the later versions only (a receiver
        // waits for a value sent after it was made), so it starts empty instead of with a copy.
        let (tx, rx) = watch::channel(None);
        entry.worker = Some(tx);
        let worker = runtime::Worker::new(self.ctx.clone(), pod);
        let health = self.nodes[idx].health.subscribe();
        self.workers.spawn(async move { (uid, worker.run(rx, health).await) });
    }

    fn on_worker_done(&mut self, uid: &str, outcome: Outcome) {
        debug!(uid, ?outcome, "pod worker ended");
        if let Some(entry) = self.pods.get_mut(uid) {
            entry.worker = None;
            entry.finished = true;
            if outcome == Outcome::Deleted {
                entry.delete_sent = true;
            }
            Self::set_count(&mut self.nodes, entry, None);
        }
    }

    fn on_bound(&mut self, uid: String, node: usize, result: Result<(), kube::Error>) {
        let Some(entry) = self.pods.get_mut(uid.as_str()) else { return };
        entry.binding = false;
        match result {
            Ok(()) => {
                if entry.node.is_none() {
                    entry.node = node_u32(node);
                }
                if let Some(reporter) = self.scheduler_events.clone() {
                    let recorder = events::EventWriter::new(self.client.clone(), reporter);
                    let reference = ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Pod".into()),
                        name: Some(entry.name().to_string()),
                        namespace: Some(entry.namespace().to_string()),
                        uid: Some(uid.clone()),
                        ..Default::default()
                    };
                    let note = format!(
                        "Successfully assigned {}/{} to {}",
                        entry.namespace(),
                        entry.name(),
                        self.nodes[node].name
                    );
                    let ev = Event {
                        type_: EventType::Normal,
                        reason: "Scheduled".into(),
                        note: Some(note),
                        action: "Binding".into(),
                        secondary: None,
                    };
                    tokio::spawn(async move {
                        if let Err(e) = recorder.publish(&ev, &reference).await {
                            debug!(error = %e, "publishing event failed");
                        }
                    });
                }
            }
            Err(e) => {
                if entry.node.is_none() {
                    Self::set_count(&mut self.nodes, entry, None);
                }
                let transient = !matches!(&e, kube::Error::Api(s) if (400..500).contains(&s.code));
                if transient && entry.node.is_none() {
                    entry.queued = true;
                    self.pending.push_back(uid);
                } else {
                    debug!(pod = %entry.name(), error = %e, "binding failed");
                }
            }
        }
    }

    fn schedule_pending(&mut self) {
        while let Some(uid) = self.pending.front().cloned() {
            let Some(entry) = self.pods.get(uid.as_str()) else {
                self.pending.pop_front();
                continue;
            };
            if !entry.queued || entry.node.is_some() || entry.binding {
                self.pending.pop_front();
                continue;
            }
            let candidates: Vec<scheduler::Candidate> = self
                .nodes
                .iter()
                .map(|n| scheduler::Candidate {
                    name: n.name.clone(),
                    load: n.load,
                    capacity: n.capacity,
                    healthy: *n.health.borrow() == NodeHealth::Healthy,
                })
                .collect();
            let Some(idx) = scheduler::pick(&candidates, self.cursor) else {
                self.mark_unschedulable(&candidates);
                break;
            };
            self.pending.pop_front();
            self.cursor = idx + 1;
            let Some(entry) = self.pods.get_mut(uid.as_str()) else { continue };
            entry.queued = false;
            entry.binding = true;
            Self::set_count(&mut self.nodes, entry, Some(idx));
            let client = self.client.clone();
            let (ns, name, node) =
                (entry.namespace().to_string(), entry.name().to_string(), self.nodes[idx].name.clone());
            let tx = self.bind_tx.clone();
            tokio::spawn(async move {
                let result = scheduler::bind(&client, &ns, &name, &uid, &node).await;
                let _ = tx.send((uid, idx, result));
            });
        }
    }

    /// Tell the newly queued pods that no node can take them (each pod once).
    fn mark_unschedulable(&mut self, candidates: &[scheduler::Candidate]) {
        let message = scheduler::unschedulable_message(candidates);
        for uid in self.pending.iter().rev() {
            let Some(entry) = self.pods.get_mut(uid.as_str()) else { continue };
            if entry.marked_unschedulable {
                break;
            }
            entry.marked_unschedulable = true;
            let (client, ns, name, uid, message) = (
                self.client.clone(),
                entry.namespace().to_string(),
                entry.name().to_string(),
                uid.clone(),
                message.clone(),
            );
            let recorder = self.scheduler_events.clone().map(|r| events::EventWriter::new(client.clone(), r));
            tokio::spawn(async move {
                scheduler::mark_unschedulable(&client, &ns, &name, &uid, &message).await;
                if let Some(recorder) = recorder {
                    let reference = ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Pod".into()),
                        name: Some(name),
                        namespace: Some(ns),
                        uid: Some(uid),
                        ..Default::default()
                    };
                    let ev = Event {
                        type_: EventType::Warning,
                        reason: "FailedScheduling".into(),
                        note: Some(message),
                        action: "Scheduling".into(),
                        secondary: None,
                    };
                    let _ = recorder.publish(&ev, &reference).await;
                }
            });
        }
    }

    /// The `jobwright.dev/fail-node` annotation fails a node; removing it brings the node back.
    fn on_node(&mut self, n: &Node) {
        let name = n.metadata.name.as_deref().unwrap_or_default();
        let Some(idx) = self.node_index(name) else { return };
        let requested =
            n.metadata.annotations.as_ref().and_then(|a| a.get(node::FAIL_ANNOTATION)).is_some_and(|v| v == "true");
        let healthy = *self.nodes[idx].health.borrow() == NodeHealth::Healthy;
        if requested && healthy {
            let _ = self.fail_node(name);
            self.nodes[idx].failed_by_annotation = true;
        } else if !requested && !healthy && self.nodes[idx].failed_by_annotation {
            let _ = self.recover_node(name);
        }
    }

    fn recover_node(&mut self, name: &str) -> Result<(), Error> {
        let idx = self.node_index(name).ok_or_else(|| Error::UnknownNode(name.to_string()))?;
        let slot = &mut self.nodes[idx];
        if *slot.health.borrow() == NodeHealth::Healthy {
            return Ok(());
        }
        info!(node = name, "node recovers");
        slot.failed_by_annotation = false;
        slot.heartbeat = self.ctx.shutdown.child_token();
        slot.health.send_replace(NodeHealth::Healthy);
        let (client, cfg, interval, stop) =
            (self.client.clone(), slot.cfg.clone(), slot.interval, slot.heartbeat.clone());
        let marking = slot.marking.take();
        self.heartbeats.push(tokio::spawn(async move {
            if let Some(m) = marking {
                let _ = m.await;
            }
            if let Err(e) = node::register(&client, &cfg).await {
                warn!(node = %cfg.name, error = %e, "registering the recovered node failed");
            }
            node::heartbeat_loop(client, cfg, interval, stop).await;
        }));
        Ok(())
    }

    fn fail_node(&mut self, name: &str) -> Result<(), Error> {
        let idx = self.node_index(name).ok_or_else(|| Error::UnknownNode(name.to_string()))?;
        let slot = &self.nodes[idx];
        if *slot.health.borrow() != NodeHealth::Healthy {
            return Ok(());
        }
        info!(node = name, "failing node");
        slot.heartbeat.cancel();
        slot.health.send_replace(NodeHealth::Failed);
        let client = self.client.clone();
        let name = name.to_string();
        self.nodes[idx].marking = Some(tokio::spawn(async move {
            if let Err(e) = node::mark_unreachable(&client, &name).await {
                warn!(node = %name, error = %e, "marking node unreachable failed");
            }
        }));
        Ok(())
    }

    /// `kubectl delete node`: the pods bound there are orphans; workers evict theirs, pods without
    /// a worker (finished ones) are deleted as pod GC does.
    fn on_node_deleted(&mut self, name: &str) {
        let Some(idx) = self.node_index(name) else { return };
        if *self.nodes[idx].health.borrow() == NodeHealth::Deleted || self.ctx.shutdown.is_cancelled() {
            return;
        }
        info!(node = name, "node deleted: its pods are orphans");
        self.nodes[idx].heartbeat.cancel();
        self.nodes[idx].health.send_replace(NodeHealth::Deleted);
        for (uid, entry) in self.pods.iter_mut() {
            if entry.node() == Some(idx) && entry.worker.is_none() && !entry.delete_sent {
                entry.delete_sent = true;
                let api: Api<Pod> = Api::namespaced(self.client.clone(), entry.namespace());
                let (name, uid) = (entry.name().to_string(), uid.to_string());
                tokio::spawn(async move { runtime::confirm_delete(&api, &name, &uid).await });
            }
        }
    }
}
