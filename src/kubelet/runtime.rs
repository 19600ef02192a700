//! The pod worker: one task per pod bound to one of our nodes, driving it from acceptance to a
//! terminal phase, as the kubelet's pod workers do.
//!
//! The worker owns the pod's [`PodRun`] record. Each container run is its own task (executor start,
//! wait, exit) reporting [`ContainerEvent`]s back on a channel; the worker folds them into the
//! record, decides what runs next ([`Worker::reconcile`]: init containers one by one, then the
//! regular ones; restarts per `restartPolicy` with the CrashLoopBackOff delay), and writes the
//! status computed by the pure [`super::status::pod_status`] through the `/status` subresource
//! (`PUT` with the resourceVersion it holds; a 409 re-reads the pod and recomputes).
//!
//! Endings:
//! - containers done by themselves: the final status is written, the worker ends ([`Outcome::Finished`]);
//! - `deletionTimestamp` set: SIGTERM, SIGKILL after `deletionGracePeriodSeconds`, final status with
//!   the phase from the exit codes, then `DELETE` with `gracePeriodSeconds=0` and a uid precondition;
//! - `activeDeadlineSeconds` passed: killed with the pod's grace period, `Failed`/`DeadlineExceeded`;
//! - node failed or deleted: processes killed, then the pod is evicted the way the taint manager /
//!   pod GC would: `DisruptionTarget` condition, phase `Failed`, force-deleted;
//! - kubelet shutdown, or the pod removed from the API: processes killed, nothing written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::{ConfigMap, Container, ObjectReference, Pod, PodCondition, Secret};
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType, Reporter};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::env::{self, EnvSources, SourceKind};
use super::logs::LogStore;
use super::process::{ExitInfo, ProcessExecutor, ProcessSpec, StopRequest};
use super::simulate::{self, SimulateExecutor};
use super::status::{self, ContainerRun, DEADLINE_MESSAGE, DEADLINE_REASON, PodRun, RunState};
use crate::lean::Lean;

/// Which executor runs containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExecutorKind {
    /// Run `command` + `args` as local processes.
    #[default]
    Process,
    /// Run nothing; pod annotations decide duration and exit code.
    Simulate,
}

/// The health of a node, as the pod workers on it see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeHealth {
    /// Heartbeating.
    Healthy,
    /// Failed on demand: pods are lost (taint manager eviction).
    Failed,
    /// The Node object was deleted: pods are orphans (pod GC).
    Deleted,
}

/// Restart back-off: the first restart is immediate, then `base`, doubling, capped at `max`
/// (upstream: 10 s doubling up to 5 min).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first non-zero delay.
    pub base: Duration,
    /// The cap.
    pub max: Duration,
}

impl Backoff {
    /// The delay before the restart of a container that has restarted `restarts` times so far.
    pub fn delay(&self, restarts: i32) -> Duration {
        if restarts <= 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl((restarts - 1).min(30) as u32).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// What every pod worker shares.
pub struct PodContext {
    /// API client.
    pub client: kube::Client,
    /// The executor.
    pub executor: ExecutorKind,
    /// Container logs.
    pub logs: Arc<LogStore>,
    /// Where per-pod working directories live.
    pub pods_dir: PathBuf,
    /// Restart back-off.
    pub backoff: Backoff,
    /// Kubelet shutdown.
    pub shutdown: CancellationToken,
    /// Emit the kubelet's events (Pulled, Created, Started, Killing, BackOff, Failed).
    pub events: bool,
    /// Running process containers, for exec, attach and metrics.
    pub containers: Arc<super::streams::Containers>,
    /// The pod network, when pods get their own namespaces.
    pub network: Option<Arc<super::podnet::PodNetwork>>,
}

/// How a worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The pod reached a terminal phase; the object remains.
    Finished,
    /// The pod was deleted (graceful deletion confirmed or eviction after node loss).
    Deleted,
    /// Stopped without writing (shutdown, or the pod vanished from the API).
    Abandoned,
}

/// Identifies a container in the record: init or regular, and its index.
type Key = (bool, usize);

/// What a container task reports.
#[derive(Debug)]
pub enum ContainerEvent {
    /// The run started.
    Started {
        /// Which container.
        key: (bool, usize),
        /// When.
        at: chrono::DateTime<Utc>,
        /// The run's `Exited` follows at once (a zero-length simulated run: the container task
        /// sends both with no await between): the worker writes no status in between.
        exits_at_once: bool,
    },
    /// The run ended (or could not start).
    Exited {
        /// Which container.
        key: (bool, usize),
        /// How.
        exit: ExitInfo,
    },
    /// The environment could not be built: waiting `CreateContainerConfigError`, retried later.
    ConfigError {
        /// Which container.
        key: (bool, usize),
        /// Why.
        message: String,
    },
}

/// Longest pause between two attempts of a failed pod status write (they start at 50 ms).
const STATUS_RETRY_MAX_MS: u64 = 500;

fn rv_number(p: &Pod) -> Option<u64> {
    p.metadata.resource_version.as_deref().and_then(|r| r.parse().ok())
}

/// Whether `candidate` is at least as new as `current` (resourceVersions compared as numbers
/// when both are, which holds for jobwright's server; otherwise the candidate wins).
fn newer(candidate: &Pod, current: &Pod) -> bool {
    match (rv_number(candidate), rv_number(current)) {
        (Some(a), Some(b)) => a >= b,
        _ => true,
    }
}

fn is_api_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// The pod worker.
pub struct Worker {
    ctx: Arc<PodContext>,
    api: Api<Pod>,
    /// The same pods, read back without `managedFields` (status writes, re-reads).
    pods: Api<Lean<Pod>>,
    latest: Pod,
    name: String,
    namespace: String,
    uid: String,
    run: PodRun,
    restart_policy: String,
    active: HashMap<Key, ()>,
    timers: HashMap<Key, Instant>,
    deadline: Option<Instant>,
    deleting: bool,
    /// Per running container: its stop request channel.
    stops: HashMap<Key, watch::Sender<StopRequest>>,
    /// Set once the pod is being torn down: how long containers get.
    stop_all: Option<Duration>,
    /// The regular containers are done and the sidecars are being stopped.
    sidecars_stopping: bool,
    events_tx: mpsc::UnboundedSender<ContainerEvent>,
    events_rx: mpsc::UnboundedReceiver<ContainerEvent>,
    /// Containers that reported `Started { exits_at_once }` and whose `Exited` is still in flight.
    exiting: HashSet<Key>,
    pod_dir: PathBuf,
    recorder: Option<super::events::EventWriter>,
    /// The pod's network sandbox, when it has its own.
    sandbox: Option<Arc<super::podnet::Sandbox>>,
}

impl Worker {
    /// A worker for `pod` (bound to one of our nodes, not terminal).
    pub fn new(ctx: Arc<PodContext>, pod: Pod) -> Self {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let api = Api::namespaced(ctx.client.clone(), &namespace);
        let pods = Api::namespaced(ctx.client.clone(), &namespace);
        let spec = pod.spec.clone().unwrap_or_default();
        let mut run = PodRun::new(&spec, Utc::now());
        restore(&mut run, &pod);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let pod_dir = ctx.pods_dir.join(format!("{namespace}_{name}_{uid}"));
        let node = spec.node_name.clone().unwrap_or_default();
        let recorder = ctx.events.then(|| {
            super::events::EventWriter::new(
                ctx.client.clone(),
                Reporter { controller: "kubelet".into(), instance: Some(node) },
            )
        });
        Self {
            recorder,
            ctx,
            api,
            pods,
            name,
            namespace,
            uid,
            run,
            restart_policy: spec.restart_policy.clone().unwrap_or_else(|| "Always".into()),
            active: HashMap::new(),
            timers: HashMap::new(),
            deadline: None,
            deleting: false,
            stops: HashMap::new(),
            stop_all: None,
            sidecars_stopping: false,
            events_tx,
            events_rx,
            exiting: HashSet::new(),
            pod_dir,
            latest: pod,
            sandbox: None,
        }
    }

    fn container(&self, key: Key) -> Option<Container> {
        let spec = self.latest.spec.as_ref()?;
        if key.0 { spec.init_containers.as_ref()?.get(key.1).cloned() } else { spec.containers.get(key.1).cloned() }
    }

    fn record(&mut self, key: Key) -> &mut ContainerRun {
        if key.0 { &mut self.run.init[key.1] } else { &mut self.run.main[key.1] }
    }

    /// Drive the pod until it ends. `updates` carries the latest API object (`None` once deleted);
    /// `health` the node's health.
    pub async fn run(
        mut self,
        mut updates: watch::Receiver<Option<Pod>>,
        mut health: watch::Receiver<NodeHealth>,
    ) -> Outcome {
        let mut names: Vec<String> = self.run.init.iter().map(|c| c.name.clone()).collect();
        names.extend(self.run.main.iter().map(|c| c.name.clone()));
        self.ctx.logs.register_pod(&self.namespace, &self.name, &self.uid, names);
        let start = self.latest.status.as_ref().and_then(|s| s.start_time.as_ref()).map(status::from_time);
        let start = start.unwrap_or(self.run.start_time);
        if let Some(secs) = self.latest.spec.as_ref().and_then(|s| s.active_deadline_seconds) {
            let elapsed = (Utc::now() - start).to_std().unwrap_or_default();
            let left = Duration::from_secs(secs.max(0) as u64).saturating_sub(elapsed);
            self.deadline = Some(Instant::now() + left);
        }
        let h = *health.borrow_and_update();
        if h != NodeHealth::Healthy {
            return self.evict(h).await;
        }
        if self.latest.metadata.deletion_timestamp.is_some() {
            self.begin_deletion();
        } else if self.ctx.executor == ExecutorKind::Process {
            // The simulate executor skips the `Pending`/`ContainerCreating` write: its containers
            // start at once, and scale runs are bound by API writes.
            self.create_sandbox().await;
            if self.write_status().await.is_err() {
                self.release_sandbox();
                return Outcome::Abandoned;
            }
        }
        loop {
            if self.reconcile() {
                return self.finish().await;
            }
            let next_timer = self.timers.values().copied().chain(self.deadline.filter(|_| !self.run.terminal)).min();
            tokio::select! {
                Some(ev) = self.events_rx.recv() => {
                    self.apply_event(ev);
                    while let Ok(ev) = self.events_rx.try_recv() {
                        self.apply_event(ev);
                    }
                    // A zero-length simulated run: its exit is already on the way, and one
                    // status write with the final state replaces `Running` then `Succeeded`.
                    if !self.exiting.is_empty() {
                        continue;
                    }
                    if self.write_status().await.is_err() {
                        self.kill_all().await;
                        return Outcome::Abandoned;
                    }
                }
                changed = updates.changed() => {
                    let pod = if changed.is_ok() { updates.borrow_and_update().clone() } else { None };
                    match pod {
                        Some(p) => {
                            if newer(&p, &self.latest) {
                                self.latest = p;
                            }
                            if self.latest.metadata.deletion_timestamp.is_some() && !self.deleting {
                                self.begin_deletion();
                                let _ = self.write_status().await;
                            }
                        }
                        None => {
                            self.kill_all().await;
                            return Outcome::Abandoned;
                        }
                    }
                }
                changed = health.changed() => {
                    if changed.is_err() {
                        self.kill_all().await;
                        return Outcome::Abandoned;
                    }
                    let h = *health.borrow_and_update();
                    if h != NodeHealth::Healthy {
                        self.kill_all().await;
                        return self.evict(h).await;
                    }
                }
                _ = self.ctx.shutdown.cancelled() => {
                    self.kill_all().await;
                    return Outcome::Abandoned;
                }
                _ = sleep_until_opt(next_timer) => {
                    self.fire_timers();
                    if self.write_status().await.is_err() {
                        self.kill_all().await;
                        return Outcome::Abandoned;
                    }
                }
            }
        }
    }

    /// Publish an event about a container of this pod, in the background.
    fn event(&self, key: Key, type_: EventType, reason: &str, note: String) {
        let field = if key.0 { "initContainers" } else { "containers" };
        let name = if key.0 { &self.run.init[key.1].name } else { &self.run.main[key.1].name };
        self.publish(Some(format!("spec.{field}{{{name}}}")), type_, reason, note);
    }

    /// Publish an event about the pod (or one of its fields), in the background.
    fn publish(&self, field_path: Option<String>, type_: EventType, reason: &str, note: String) {
        let Some(recorder) = self.recorder.clone() else { return };
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            uid: Some(self.uid.clone()),
            field_path,
            ..Default::default()
        };
        let ev = Event { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&ev, &reference).await {
                debug!(error = %e, "publishing event failed");
            }
        });
    }

    /// `Killing` events for every running container.
    fn killing_events(&self) {
        let running: Vec<(Key, String)> = (self.run.init.iter().enumerate().map(|(i, c)| ((true, i), c)))
            .chain(self.run.main.iter().enumerate().map(|(i, c)| ((false, i), c)))
            .filter(|(_, c)| matches!(c.state, RunState::Running { .. }))
            .map(|(k, c)| (k, c.name.clone()))
            .collect();
        for (key, name) in running {
            self.event(key, EventType::Normal, "Killing", format!("Stopping container {name}"));
        }
    }

    fn begin_deletion(&mut self) {
        self.killing_events();
        self.deleting = true;
        self.run.terminal = true;
        self.timers.clear();
        let grace = self
            .latest
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| self.latest.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        self.stop_everything(Duration::from_secs(grace.max(0) as u64));
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        if let Some(d) = self.deadline
            && d <= now
            && !self.run.terminal
        {
            self.publish(None, EventType::Normal, DEADLINE_REASON, DEADLINE_MESSAGE.into());
            self.killing_events();
            self.run.terminal = true;
            self.run.reason = Some((DEADLINE_REASON.into(), DEADLINE_MESSAGE.into()));
            self.timers.clear();
            let grace = self.latest.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
            self.stop_everything(Duration::from_secs(grace.max(0) as u64));
            return;
        }
        let due: Vec<Key> = self.timers.iter().filter(|(_, t)| **t <= now).map(|(k, _)| *k).collect();
        for key in due {
            self.timers.remove(&key);
            self.start_container(key);
        }
    }

    fn apply_event(&mut self, ev: ContainerEvent) {
        match ev {
            ContainerEvent::Started { key, at, exits_at_once } => {
                if exits_at_once {
                    self.exiting.insert(key);
                }
                self.record(key).state = RunState::Running { started_at: at };
                let name = self.record(key).name.clone();
                // The event names the image as written in the spec, not the normalised reference.
                let image = self.container(key).and_then(|c| c.image).unwrap_or_default();
                self.event(
                    key,
                    EventType::Normal,
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                );
                self.event(key, EventType::Normal, "Created", format!("Created container: {name}"));
                self.event(key, EventType::Normal, "Started", format!("Started container {name}"));
            }
            ContainerEvent::Exited { key, exit } => {
                self.exiting.remove(&key);
                self.active.remove(&key);
                self.stops.remove(&key);
                if matches!(exit.reason.as_str(), "StartError" | "CreateContainerError") {
                    let msg = exit.message.clone().unwrap_or_default();
                    self.event(key, EventType::Warning, "Failed", format!("Error: {msg}"));
                }
                self.record(key).state = RunState::Terminated(exit);
            }
            ContainerEvent::ConfigError { key, message } => {
                self.active.remove(&key);
                self.stops.remove(&key);
                self.event(key, EventType::Warning, "Failed", format!("Error: {message}"));
                let rec = self.record(key);
                rec.state = RunState::Waiting { reason: "CreateContainerConfigError".into(), message: Some(message) };
                // Nothing ran: the retry is not a restart.
                rec.container_id = None;
                if !self.run.terminal {
                    self.timers.insert(key, Instant::now() + self.ctx.backoff.base);
                }
            }
        }
    }

    /// Decide what runs next. True when the pod is done (nothing running, nothing will start).
    fn reconcile(&mut self) -> bool {
        if self.run.terminal {
            return self.active.is_empty();
        }
        let policy = self.restart_policy.clone();
        // Init containers, one at a time, in order. A sidecar (an init container with
        // `restartPolicy: Always`) only has to be running for the next one to start, and restarts
        // whenever it stops until the regular containers are done.
        for i in 0..self.run.init.len() {
            let key = (true, i);
            let busy = self.active.contains_key(&key) || self.timers.contains_key(&key);
            let state = self.run.init[i].state.clone();
            let never_started = self.run.init[i].last.is_none() && self.run.init[i].container_id.is_none();
            if self.is_sidecar(i) {
                if self.sidecars_stopping {
                    continue;
                }
                // Once the regular containers have started, a restarting sidecar holds nothing up.
                let main_started = self.run.main.iter().any(|c| c.container_id.is_some());
                match state {
                    RunState::Running { .. } => continue,
                    _ if busy => {}
                    RunState::Waiting { .. } if never_started => self.start_container(key),
                    _ => self.schedule_restart(key),
                }
                if main_started {
                    continue;
                }
                return false;
            }
            if self.run.init[i].exit().is_some_and(|e| e.exit_code == 0) {
                continue;
            }
            if busy {
                return false;
            }
            match state {
                RunState::Terminated(_) if policy == "Never" => return self.stop_sidecars(),
                RunState::Terminated(_) => self.schedule_restart(key),
                RunState::Waiting { .. } if never_started => self.start_container(key),
                RunState::Waiting { .. } => self.schedule_restart(key),
                RunState::Running { .. } => {}
            }
            return false;
        }
        let mut all_done = true;
        for i in 0..self.run.main.len() {
            let key = (false, i);
            if self.active.contains_key(&key) || self.timers.contains_key(&key) {
                all_done = false;
                continue;
            }
            match self.run.main[i].state.clone() {
                RunState::Running { .. } => all_done = false,
                RunState::Waiting { .. } => {
                    all_done = false;
                    if self.run.main[i].container_id.is_none() && self.run.main[i].last.is_none() {
                        self.start_container(key);
                    } else {
                        self.schedule_restart(key);
                    }
                }
                RunState::Terminated(e) => {
                    let restart = policy == "Always" || (policy == "OnFailure" && e.exit_code != 0);
                    if restart {
                        all_done = false;
                        self.schedule_restart(key);
                    }
                }
            }
        }
        all_done && self.stop_sidecars()
    }

    /// The regular containers are done: stop the sidecars (SIGTERM, the pod's grace period). True
    /// once none is running.
    fn stop_sidecars(&mut self) -> bool {
        if !self.sidecars_stopping {
            self.sidecars_stopping = true;
            let grace = self.latest.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
            let grace = Duration::from_secs(grace.max(0) as u64);
            for i in 0..self.run.init.len() {
                if self.is_sidecar(i) {
                    self.timers.remove(&(true, i));
                    if let Some(tx) = self.stops.get(&(true, i)) {
                        tx.send_replace(Some(grace));
                    }
                }
            }
        }
        !(0..self.run.init.len()).any(|i| self.is_sidecar(i) && self.active.contains_key(&(true, i)))
    }

    /// Restart a stopped container after its back-off delay, showing `CrashLoopBackOff` meanwhile.
    fn schedule_restart(&mut self, key: Key) {
        let pod = format!("{}_{}({})", self.name, self.namespace, self.uid);
        let backoff = self.ctx.backoff;
        let rec = self.record(key);
        if let RunState::Terminated(exit) = rec.state.clone() {
            rec.last = Some(exit);
        }
        let delay = backoff.delay(rec.restart_count);
        if delay.is_zero() {
            self.start_container(key);
            return;
        }
        let cname = self.record(key).name.clone();
        self.event(
            key,
            EventType::Warning,
            "BackOff",
            format!("Back-off restarting failed container {cname} in pod {pod}"),
        );
        let rec = self.record(key);
        rec.state = RunState::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some(format!("back-off {} restarting failed container={} pod={pod}", fmt_delay(delay), rec.name)),
        };
        self.timers.insert(key, Instant::now() + delay);
    }

    fn start_container(&mut self, key: Key) {
        let Some(container) = self.container(key) else { return };
        let rec = self.record(key);
        let restart_count = if rec.container_id.is_some() || rec.last.is_some() {
            if let RunState::Terminated(exit) = rec.state.clone() {
                rec.last = Some(exit);
            }
            rec.restart_count + 1
        } else {
            rec.restart_count
        };
        rec.restart_count = restart_count;
        rec.container_id = Some(format!("jobwright://{}", uuid::Uuid::new_v4().simple()));
        rec.state = RunState::Waiting { reason: "ContainerCreating".into(), message: None };
        self.active.insert(key, ());
        let (stop_tx, stop_rx) = watch::channel(self.stop_all);
        self.stops.insert(key, stop_tx);
        let task = ContainerTask {
            ctx: self.ctx.clone(),
            pod: self.latest.clone(),
            key,
            container,
            restart_count,
            pod_dir: self.pod_dir.clone(),
            stop: stop_rx,
            events: self.events_tx.clone(),
            sandbox: self.sandbox.clone(),
        };
        tokio::spawn(task.run());
    }

    /// Ask every container to stop within `grace` (a shorter grace than an earlier request wins).
    fn stop_everything(&mut self, grace: Duration) {
        let grace = self.stop_all.map_or(grace, |g| g.min(grace));
        self.stop_all = Some(grace);
        for tx in self.stops.values() {
            tx.send_replace(Some(grace));
        }
    }

    fn is_sidecar(&self, i: usize) -> bool {
        self.run.init.get(i).is_some_and(|c| c.sidecar)
    }

    async fn kill_all(&mut self) {
        self.stop_everything(Duration::ZERO);
        self.timers.clear();
        while !self.active.is_empty() {
            match self.events_rx.recv().await {
                Some(ev) => self.apply_event(ev),
                None => break,
            }
        }
        self.cleanup_dir();
    }

    /// Give the pod its own network namespace (with the pod network on, for a pod not on the host
    /// network), and record its address for the status. On failure a `FailedCreatePodSandBox`
    /// Warning event says why, and the pod runs on the host network.
    /// (The `ip` commands run on the blocking pool, off the runtime's threads.)
    async fn create_sandbox(&mut self) {
        let Some(net) = self.ctx.network.clone() else { return };
        if self.latest.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false) || self.sandbox.is_some() {
            return;
        }
        let (pod, dir) = (self.latest.clone(), self.pod_dir.join(".jobwright"));
        let made = tokio::task::spawn_blocking(move || net.create(&pod, &dir)).await;
        match made.unwrap_or_else(|e| Err(e.to_string())) {
            Ok(sb) => {
                self.run.pod_ip = Some(sb.ip.to_string());
                self.run.host_ip = Some(sb.host_ip.to_string());
                self.sandbox = Some(Arc::new(sb));
            }
            Err(e) => {
                warn!(pod = %self.name, namespace = %self.namespace, error = %e, "cannot create the pod's network");
                let note = format!("Failed to create pod sandbox: {e}");
                self.publish(None, EventType::Warning, "FailedCreatePodSandBox", note);
            }
        }
    }

    /// Remove the pod's network (its processes have stopped); the address is free again once the
    /// namespace is gone.
    fn release_sandbox(&mut self) {
        if let (Some(net), Some(sb)) = (self.ctx.network.clone(), self.sandbox.take()) {
            tokio::task::spawn_blocking(move || net.remove(&sb));
        }
    }

    fn cleanup_dir(&mut self) {
        self.release_sandbox();
        if self.ctx.executor == ExecutorKind::Process {
            let _ = std::fs::remove_dir_all(&self.pod_dir);
        }
    }

    async fn finish(mut self) -> Outcome {
        if self.run.terminal {
            self.run.finalize_waiting(Utc::now());
        }
        self.cleanup_dir();
        if self.write_status().await.is_err() {
            return Outcome::Abandoned;
        }
        if self.deleting {
            self.confirm_delete().await;
            return Outcome::Deleted;
        }
        Outcome::Finished
    }

    async fn confirm_delete(&self) {
        confirm_delete(&self.api, &self.name, &self.uid).await;
    }

    /// The node is gone: record the loss the way the taint manager (node failed) or pod GC (node
    /// deleted) does, then force-delete.
    async fn evict(mut self, health: NodeHealth) -> Outcome {
        let (reason, message) = match health {
            NodeHealth::Deleted => ("DeletionByPodGC", "PodGC: node no longer exists"),
            _ => ("DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint"),
        };
        if health == NodeHealth::Failed {
            let note = format!("Marking for deletion Pod {}/{}", self.namespace, self.name);
            self.publish(None, EventType::Normal, "TaintManagerEviction", note);
        }
        self.run.terminal = true;
        self.run.finalize_waiting(Utc::now());
        self.run.extra_conditions.push(PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(status::time(Utc::now())),
            ..Default::default()
        });
        // Pod GC marks the pod Failed whatever its containers did.
        if self.run.reason.is_none() {
            self.run.reason = Some((String::new(), String::new()));
        }
        if self.write_status().await.is_ok() {
            confirm_delete(&self.api, &self.name, &self.uid).await;
        }
        Outcome::Deleted
    }

    /// The simulate executor's pod condition (`jobwright.dev/simulate-condition`), added in the same
    /// write that makes the phase terminal, as the kubelet does with its own disruption conditions.
    fn add_simulated_condition(&mut self) {
        if self.ctx.executor != ExecutorKind::Simulate {
            return;
        }
        let Some(c) = self.latest.metadata.annotations.as_ref().and_then(simulate::pod_condition) else { return };
        if self.run.extra_conditions.iter().any(|e| e.type_ == c.type_) {
            return;
        }
        let terminal = self.run.reason.is_some()
            || matches!(status::phase(&self.restart_policy, &self.run), "Succeeded" | "Failed");
        if terminal {
            self.run.extra_conditions.push(PodCondition {
                type_: c.type_,
                status: "True".into(),
                reason: Some(c.reason),
                message: c.message,
                last_transition_time: Some(status::time(Utc::now())),
                ..Default::default()
            });
        }
    }

    /// Write the computed status; `Err` when the pod is gone (404 or replaced by another uid) or
    /// the simulator shuts down. Any other failure is retried until the write goes through: a
    /// status given up on would leave the pod `Running` in the API for good while this worker
    /// ends (nothing else writes it again), and its Job would wait forever.
    async fn write_status(&mut self) -> Result<(), ()> {
        self.add_simulated_condition();
        for attempt in 0u64.. {
            let mut status = status::pod_status(&self.latest, &self.run, Utc::now());
            if status.reason.as_deref() == Some("") {
                status.reason = None;
                status.message = None;
            }
            if self.latest.status.as_ref() == Some(&status) {
                return Ok(());
            }
            // The body is the pod as last read with the new status, sent without copying the pod
            // (its status is put back if the write fails); it holds no `managedFields`, since
            // every version the worker holds was read without them (`Lean<Pod>`).
            self.latest.metadata.managed_fields = None;
            let previous = self.latest.status.replace(status);
            let written =
                self.pods.replace_subresource("status", &self.name, &PostParams::default(), &self.latest).await;
            if written.is_err() {
                self.latest.status = previous;
            }
            match written {
                Ok(Lean(p)) => {
                    self.latest = p;
                    return Ok(());
                }
                Err(e) if is_api_code(&e, 404) => return Err(()),
                Err(e) if is_api_code(&e, 409) => match self.pods.get_opt(&self.name).await {
                    Ok(Some(Lean(p))) if p.metadata.uid.as_deref() == Some(&self.uid) => self.latest = p,
                    Ok(_) => return Err(()),
                    Err(e) => {
                        debug!(pod = %self.name, error = %e, "re-reading pod after conflict failed");
                        self.pause(attempt).await?;
                    }
                },
                Err(e) => {
                    warn!(pod = %self.name, namespace = %self.namespace, error = %e, "writing pod status failed");
                    self.pause(attempt).await?;
                }
            }
        }
        Err(())
    }

    /// The pause before retry `attempt + 1` of a status write; `Err` once the simulator stops.
    async fn pause(&self, attempt: u64) -> Result<(), ()> {
        let delay = Duration::from_millis((50 * (attempt + 1)).min(STATUS_RETRY_MAX_MS));
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = self.ctx.shutdown.cancelled() => Err(()),
        }
    }
}

/// Confirm a deletion: `DELETE` with `gracePeriodSeconds=0` and a uid precondition. A 404 or 409
/// (already gone, or another pod under the name) is fine.
pub async fn confirm_delete(api: &Api<Pod>, name: &str, uid: &str) {
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
        ..Default::default()
    };
    if let Err(e) = api.delete(name, &dp).await
        && !is_api_code(&e, 404)
        && !is_api_code(&e, 409)
    {
        warn!(pod = %name, error = %e, "confirming pod deletion failed");
    }
}

fn fmt_delay(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m0s", secs / 60)
    } else if secs >= 60 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else if d.subsec_millis() != 0 || secs == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{secs}s")
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Rebuild the record from a status written by an earlier kubelet life: restart counts and ended
/// runs are kept; a container that was running is gone (its process died with that kubelet) and
/// counts as ended with 137 `ContainerStatusUnknown`, as upstream reports a lost container.
fn restore(run: &mut PodRun, pod: &Pod) {
    let Some(st) = pod.status.as_ref() else { return };
    let apply = |records: &mut Vec<ContainerRun>,
                 statuses: Option<&Vec<k8s_openapi::api::core::v1::ContainerStatus>>| {
        for cs in statuses.into_iter().flatten() {
            let Some(rec) = records.iter_mut().find(|r| r.name == cs.name) else { continue };
            if cs.container_id.is_none() {
                continue;
            }
            rec.restart_count = cs.restart_count;
            rec.container_id = cs.container_id.clone();
            let term = |t: &k8s_openapi::api::core::v1::ContainerStateTerminated| ExitInfo {
                exit_code: t.exit_code,
                reason: t.reason.clone().unwrap_or_else(|| "Error".into()),
                message: t.message.clone(),
                started_at: t.started_at.as_ref().map(status::from_time).unwrap_or_default(),
                finished_at: t.finished_at.as_ref().map(status::from_time).unwrap_or_default(),
            };
            rec.last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()).map(term);
            let state = cs.state.clone().unwrap_or_default();
            rec.state = if let Some(t) = state.terminated.as_ref() {
                RunState::Terminated(term(t))
            } else if let Some(r) = state.running.as_ref() {
                let now = Utc::now();
                RunState::Terminated(ExitInfo {
                    exit_code: 137,
                    reason: "ContainerStatusUnknown".into(),
                    message: Some("The container could not be located when the pod was terminated".into()),
                    started_at: r.started_at.as_ref().map(status::from_time).unwrap_or(now),
                    finished_at: now,
                })
            } else {
                match rec.last.clone() {
                    Some(l) => RunState::Terminated(l),
                    None => rec.state.clone(),
                }
            };
        }
    };
    apply(&mut run.init, st.init_container_statuses.as_ref());
    apply(&mut run.main, st.container_statuses.as_ref());
}

/// One container run: build the environment, start with the executor, wait, report.
struct ContainerTask {
    ctx: Arc<PodContext>,
    pod: Pod,
    key: Key,
    container: Container,
    restart_count: i32,
    pod_dir: PathBuf,
    stop: watch::Receiver<StopRequest>,
    events: mpsc::UnboundedSender<ContainerEvent>,
    sandbox: Option<Arc<super::podnet::Sandbox>>,
}

impl ContainerTask {
    async fn run(mut self) {
        let key = self.key;
        let exit = match self.ctx.executor {
            ExecutorKind::Process => self.run_process().await,
            ExecutorKind::Simulate => self.run_simulated().await,
        };
        if let Some(exit) = exit {
            let _ = self.events.send(ContainerEvent::Exited { key, exit });
        }
    }

    fn log(&self) -> Option<Arc<super::logs::LogFile>> {
        let meta = &self.pod.metadata;
        self.ctx
            .logs
            .begin_run(
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
                meta.uid.as_deref().unwrap_or_default(),
                &self.container.name,
                self.restart_count,
            )
            .map_err(|e| warn!(error = %e, "cannot create log file"))
            .ok()
    }

    async fn run_simulated(&mut self) -> Option<ExitInfo> {
        let annotations = self.pod.metadata.annotations.clone().unwrap_or_default();
        let wants_log = annotations.contains_key(simulate::LOGS);
        let log = if wants_log {
            self.log()
        } else {
            let meta = &self.pod.metadata;
            self.ctx.logs.begin_silent_run(
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
                meta.uid.as_deref().unwrap_or_default(),
                &self.container.name,
            );
            None
        };
        match SimulateExecutor.start(&annotations, self.restart_count, log) {
            Ok(run) => {
                let exits_at_once = run.ends_at_once();
                let _ =
                    self.events.send(ContainerEvent::Started { key: self.key, at: run.started_at(), exits_at_once });
                Some(run.wait(&mut self.stop).await)
            }
            Err(exit) => Some(exit),
        }
    }

    async fn fetch_sources(&self) -> Result<EnvSources, String> {
        let namespace = self.pod.metadata.namespace.clone().unwrap_or_default();
        let mut sources = EnvSources::new();
        for (kind, name) in env::referenced_sources(&self.container) {
            let data: Option<BTreeMap<String, String>> = match kind {
                SourceKind::ConfigMap => {
                    let api: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), &namespace);
                    api.get_opt(&name).await.map_err(|e| e.to_string())?.map(|cm| {
                        let mut d = cm.data.unwrap_or_default();
                        for (k, v) in cm.binary_data.unwrap_or_default() {
                            d.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                        }
                        d
                    })
                }
                SourceKind::Secret => {
                    let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &namespace);
                    api.get_opt(&name).await.map_err(|e| e.to_string())?.map(|s| {
                        let mut d: BTreeMap<String, String> = s
                            .data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                            .collect();
                        d.extend(s.string_data.unwrap_or_default());
                        d
                    })
                }
            };
            sources.insert((kind, name), data);
        }
        Ok(sources)
    }

    async fn run_process(&mut self) -> Option<ExitInfo> {
        let key = self.key;
        let config_error = |message: String| {
            let _ = self.events.send(ContainerEvent::ConfigError { key, message });
            None
        };
        let sources = match self.fetch_sources().await {
            Ok(s) => s,
            Err(e) => return config_error(e),
        };
        let mut envs = match env::container_env(&self.pod, &self.container, &sources) {
            Ok(e) => e,
            Err(e) => return config_error(e.to_string()),
        };
        let argv = match env::command_line(&self.container, &envs) {
            Ok(a) => a,
            Err(e) => {
                let now = Utc::now();
                let log = self.log();
                if let Some(l) = log {
                    l.finish();
                }
                return Some(ExitInfo {
                    exit_code: 128,
                    reason: "CreateContainerError".into(),
                    message: Some(e.to_string()),
                    started_at: now,
                    finished_at: now,
                });
            }
        };
        let tmp = self.pod_dir.join("tmp");
        let _ = std::fs::create_dir_all(&tmp);
        let defaults = [
            // containerd sets HOSTNAME to the sandbox's hostname (the kubelet's pod hostname).
            ("HOSTNAME", super::podnet::container_hostname(&self.pod)),
            ("HOME", self.pod_dir.display().to_string()),
            ("TMPDIR", tmp.display().to_string()),
        ];
        for (k, v) in defaults {
            if !envs.iter().any(|(n, _)| n == k) {
                envs.insert(0, (k.to_string(), v));
            }
        }
        let working_dir = match self.container.working_dir.as_deref().filter(|w| !w.is_empty()) {
            Some(w) => PathBuf::from(w),
            None => self.pod_dir.clone(),
        };
        let sandbox = self.sandbox.as_ref().map(|s| s.exec_prefix());
        let stdin = self.container.stdin.unwrap_or(false);
        let spec = ProcessSpec { argv, env: envs, working_dir, stdin, sandbox };
        let Some(log) = self.log() else {
            let now = Utc::now();
            return Some(ExitInfo {
                exit_code: 128,
                reason: "StartError".into(),
                message: Some("cannot create the container's log file".into()),
                started_at: now,
                finished_at: now,
            });
        };
        if self.stop.borrow().is_some() {
            log.finish();
            return Some(ExitInfo::from_code(137, Utc::now(), Utc::now()));
        }
        let log_path = log.path().to_path_buf();
        match ProcessExecutor.start(&spec, log.clone()) {
            Ok(mut p) => {
                let _ = self.events.send(ContainerEvent::Started { key, at: p.started_at(), exits_at_once: false });
                let meta = &self.pod.metadata;
                let (ns, pod) = (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default());
                let handle = Arc::new(super::streams::ContainerHandle {
                    uid: meta.uid.clone().unwrap_or_default(),
                    spec: spec.clone(),
                    log,
                    pgid: p.pgid(),
                    netns: self.sandbox.as_ref().map(|s| s.netns_path()),
                    started: std::time::Instant::now(),
                    stopped: CancellationToken::new(),
                    execs: Default::default(),
                    stdin: tokio::sync::Mutex::new(p.take_stdin()),
                    stdin_once: self.container.stdin_once.unwrap_or(false),
                });
                self.ctx.containers.register(&ns, &pod, &self.container.name, handle.clone());
                let mut exit = p.wait(&mut self.stop).await;
                self.ctx.containers.unregister(&ns, &pod, &self.container.name, &handle);
                // `terminationMessagePolicy: FallbackToLogsOnError`: a failed container's message is
                // the tail of its log (upstream: last 80 lines, at most 2048 bytes).
                let fallback = self.container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
                if fallback && exit.exit_code != 0 && exit.message.is_none() {
                    let data = tokio::fs::read(&log_path).await.unwrap_or_default();
                    let message = super::logs::termination_message(&data);
                    exit.message = (!message.is_empty()).then_some(message);
                }
                Some(exit)
            }
            Err(exit) => Some(exit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_second_restart_and_caps() {
        let b = Backoff { base: Duration::from_secs(10), max: Duration::from_secs(300) };
        let delays: Vec<u64> = (0..8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.delay(i32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn delays_print_like_go_durations() {
        assert_eq!(fmt_delay(Duration::from_secs(10)), "10s");
        assert_eq!(fmt_delay(Duration::from_secs(300)), "5m0s");
        assert_eq!(fmt_delay(Duration::from_secs(80)), "1m20s");
        assert_eq!(fmt_delay(Duration::from_millis(20)), "20ms");
    }

    #[test]
    fn restore_turns_running_containers_into_lost_ones() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"containerStatuses": [
                {"name": "a", "image": "x", "imageID": "", "ready": true, "restartCount": 2, "containerID": "jobwright://1",
                 "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}},
                {"name": "b", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "containerID": "jobwright://2",
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
            ]}
        }))
        .unwrap();
        let mut run = PodRun::new(pod.spec.as_ref().unwrap(), Utc::now());
        restore(&mut run, &pod);
        assert_eq!(run.main[0].restart_count, 2);
        let a = run.main[0].exit().unwrap();
        assert_eq!((a.exit_code, a.reason.as_str()), (137, "ContainerStatusUnknown"));
        assert_eq!(run.main[1].exit().unwrap().reason, "Completed");
    }
}
