//! PURE: the pod status a kubelet reports, from what the node knows about the pod's containers.
//!
//! [`PodRun`] is the node's record of a pod (per container: restart count, current state, last
//! termination); [`pod_status`] turns it plus the API object into the `status` to write, following
//! upstream's `generateAPIPodStatus`: the phase from `getPhase` (terminal pods end `Succeeded` only
//! when every container exited 0), the kubelet-owned conditions (`PodReadyToStartContainers`,
//! `Initialized`, `Ready`, `ContainersReady`, `PodScheduled`) regenerated with upstream's reasons
//! and messages while other conditions (e.g. `DisruptionTarget`) are kept, `lastTransitionTime` kept
//! when a condition's status does not change, and terminal phases never left.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
    HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::process::ExitInfo;

/// The IP every pod and node reports: processes run on this host.
pub const LOCAL_IP: &str = "127.0.0.1";

/// Reason of a pod killed for `activeDeadlineSeconds`.
pub const DEADLINE_REASON: &str = "DeadlineExceeded";
/// Message of a pod killed for `activeDeadlineSeconds` (upstream's wording).
pub const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// The state of one container as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Not running: not started yet, or waiting to restart.
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, `CreateContainerConfigError`...
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// Running since.
    Running {
        /// Start time.
        started_at: DateTime<Utc>,
    },
    /// Ended.
    Terminated(ExitInfo),
}

/// One container of a pod on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRun {
    /// Container name.
    pub name: String,
    /// Normalised image reference.
    pub image: String,
    /// Times restarted.
    pub restart_count: i32,
    /// Current state.
    pub state: RunState,
    /// The previous run's end, when restarted.
    pub last: Option<ExitInfo>,
    /// `jobwright://<id>` of the current (or last) run.
    pub container_id: Option<String>,
    /// A sidecar: an init container with `restartPolicy: Always`.
    pub sidecar: bool,
}

impl ContainerRun {
    /// A container that has not started yet.
    pub fn new(c: &Container, waiting_reason: &str) -> Self {
        Self {
            name: c.name.clone(),
            image: normalize_image(c.image.as_deref().unwrap_or_default()),
            restart_count: 0,
            state: RunState::Waiting { reason: waiting_reason.into(), message: None },
            last: None,
            container_id: None,
            sidecar: c.restart_policy.as_deref() == Some("Always"),
        }
    }

    /// The exit of the current run, if it has ended.
    pub fn exit(&self) -> Option<&ExitInfo> {
        match &self.state {
            RunState::Terminated(e) => Some(e),
            _ => None,
        }
    }
}

/// The node's record of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRun {
    /// Init containers, in spec order.
    pub init: Vec<ContainerRun>,
    /// Regular containers, in spec order.
    pub main: Vec<ContainerRun>,
    /// When the node accepted the pod.
    pub start_time: DateTime<Utc>,
    /// The pod is being torn down (deletion, deadline, node loss): its containers will not restart,
    /// and its phase is final once they stop.
    pub terminal: bool,
    /// Pod-level reason and message (e.g. `DeadlineExceeded`).
    pub reason: Option<(String, String)>,
    /// Conditions the executor adds (simulate's `jobwright.dev/simulate-condition`).
    pub extra_conditions: Vec<PodCondition>,
    /// The pod's own address (pod network); `127.0.0.1` (the host's network) when `None`.
    pub pod_ip: Option<String>,
    /// The node's address on the pod network; `127.0.0.1` when `None`.
    pub host_ip: Option<String>,
}

impl PodRun {
    /// The record of a pod the node has just accepted.
    pub fn new(spec: &PodSpec, now: DateTime<Utc>) -> Self {
        let has_init = spec.init_containers.as_ref().is_some_and(|i| !i.is_empty());
        let main_reason = if has_init { "PodInitializing" } else { "ContainerCreating" };
        Self {
            init: spec.init_containers.iter().flatten().map(|c| ContainerRun::new(c, "PodInitializing")).collect(),
            main: spec.containers.iter().map(|c| ContainerRun::new(c, main_reason)).collect(),
            start_time: now,
            terminal: false,
            reason: None,
            extra_conditions: Vec::new(),
            pod_ip: None,
            host_ip: None,
        }
    }

    /// Mark every container that never ran (or is waiting to restart) as gone, as upstream does for
    /// a terminal pod: exit 137, `ContainerStatusUnknown`. Containers with a last run keep it.
    pub fn finalize_waiting(&mut self, now: DateTime<Utc>) {
        for c in self.init.iter_mut().chain(self.main.iter_mut()) {
            if let RunState::Waiting { .. } = c.state {
                if let Some(last) = c.last.take() {
                    c.state = RunState::Terminated(last);
                } else {
                    c.state = RunState::Terminated(ExitInfo {
                        exit_code: 137,
                        reason: "ContainerStatusUnknown".into(),
                        message: Some("The container could not be located when the pod was terminated".into()),
                        started_at: now,
                        finished_at: now,
                    });
                }
            }
        }
    }
}

/// `busybox` → `docker.io/library/busybox:latest`, as container runtimes report images.
pub fn normalize_image(image: &str) -> String {
    if image.is_empty() {
        return String::new();
    }
    let (name, suffix) = match image.split_once('@') {
        Some((n, d)) => (n.to_string(), format!("@{d}")),
        None => (image.to_string(), String::new()),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry = name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_registry {
        name.clone()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if suffix.is_empty() && !last.contains(':') {
        full.push_str(":latest");
    }
    full + &suffix
}

/// A chrono time as the API's `Time` (whole seconds).
pub fn time(t: DateTime<Utc>) -> Time {
    // The API keeps whole seconds; so do we, so a status read back compares equal.
    let ts = k8s_openapi::jiff::Timestamp::new(t.timestamp(), 0);
    Time(ts.unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
}

/// The API's `Time` as a chrono time.
pub fn from_time(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

fn container_status(c: &ContainerRun, init: bool) -> ContainerStatus {
    let to_terminated = |e: &ExitInfo| ContainerStateTerminated {
        exit_code: e.exit_code,
        reason: Some(e.reason.clone()),
        message: e.message.clone(),
        started_at: Some(time(e.started_at)),
        finished_at: Some(time(e.finished_at)),
        container_id: c.container_id.clone(),
        signal: None,
    };
    let (state, ready, started) = match &c.state {
        RunState::Waiting { reason, message } => (
            ContainerState {
                waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
                ..Default::default()
            },
            false,
            false,
        ),
        RunState::Running { started_at } => (
            ContainerState {
                running: Some(ContainerStateRunning { started_at: Some(time(*started_at)) }),
                ..Default::default()
            },
            !init || c.sidecar,
            true,
        ),
        RunState::Terminated(e) => (
            ContainerState { terminated: Some(to_terminated(e)), ..Default::default() },
            init && !c.sidecar && e.exit_code == 0,
            false,
        ),
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: if c.container_id.is_some() { format!("jobwright://image/{}", c.image) } else { String::new() },
        container_id: c.container_id.clone(),
        ready,
        started: Some(started),
        restart_count: c.restart_count,
        state: Some(state),
        last_state: Some(
            c.last
                .as_ref()
                .map(|e| ContainerState { terminated: Some(to_terminated(e)), ..Default::default() })
                .unwrap_or_default(),
        ),
        ..Default::default()
    }
}

/// Upstream's `getPhase`, for pods without sidecar (restartable init) containers.
pub fn phase(restart_policy: &str, run: &PodRun) -> &'static str {
    let mut pending_init = 0;
    let mut failed_init = 0;
    for c in &run.init {
        if c.sidecar {
            // Sidecars only gate the start; once running (or after the regular containers
            // started) they do not count.
            let started = matches!(c.state, RunState::Running { .. }) || c.container_id.is_some() && c.last.is_some();
            if !started && !run.main.iter().any(|m| m.container_id.is_some()) {
                pending_init += 1;
            }
            continue;
        }
        match &c.state {
            RunState::Running { .. } => pending_init += 1,
            RunState::Terminated(e) if e.exit_code != 0 => failed_init += 1,
            RunState::Terminated(_) => {}
            RunState::Waiting { .. } => {
                if c.last.as_ref().is_some_and(|l| l.exit_code != 0) {
                    failed_init += 1;
                }
                pending_init += 1;
            }
        }
    }
    let (mut running, mut stopped, mut succeeded, mut waiting) = (0, 0, 0, 0);
    for c in &run.main {
        match &c.state {
            RunState::Running { .. } => running += 1,
            RunState::Terminated(e) => {
                stopped += 1;
                if e.exit_code == 0 {
                    succeeded += 1;
                }
            }
            RunState::Waiting { .. } => {
                if c.last.is_some() {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
        }
    }
    if failed_init > 0 && restart_policy == "Never" {
        return "Failed";
    }
    if pending_init > 0 || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if run.terminal {
            return if stopped == succeeded { "Succeeded" } else { "Failed" };
        }
        if restart_policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if restart_policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn cond(type_: &str, status: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.map(String::from),
        message,
        ..Default::default()
    }
}

fn fmt_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

/// The kubelet-owned conditions, in upstream's order (without transition times).
fn kubelet_conditions(spec: &PodSpec, run: &PodRun, phase: &str) -> Vec<PodCondition> {
    let sandbox = !(run.terminal || phase == "Succeeded" || phase == "Failed")
        || run.init.iter().chain(&run.main).any(|c| matches!(c.state, RunState::Running { .. }));
    let mut out = vec![cond("PodReadyToStartContainers", sandbox, None, None)];
    // Initialized
    let any_main_started = run.main.iter().any(|c| c.container_id.is_some());
    let incomplete: Vec<String> =
        run.init.iter().filter(|c| c.exit().is_none_or(|e| e.exit_code != 0)).map(|c| c.name.clone()).collect();
    out.push(if phase == "Succeeded" {
        cond("Initialized", true, Some("PodCompleted"), None)
    } else if any_main_started || incomplete.is_empty() {
        cond("Initialized", true, None, None)
    } else {
        cond(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!("containers with incomplete status: {}", fmt_list(&incomplete))),
        )
    });
    // ContainersReady, then Ready with the same verdict (no readiness gates are evaluated).
    let containers_ready = match phase {
        "Succeeded" => cond("ContainersReady", false, Some("PodCompleted"), None),
        "Failed" => cond("ContainersReady", false, Some("PodFailed"), None),
        _ => {
            let unready: Vec<String> = run
                .init
                .iter()
                .filter(|c| c.sidecar)
                .chain(run.main.iter())
                .filter(|c| !matches!(c.state, RunState::Running { .. }))
                .map(|c| c.name.clone())
                .collect();
            if unready.is_empty() {
                cond("ContainersReady", true, None, None)
            } else {
                cond(
                    "ContainersReady",
                    false,
                    Some("ContainersNotReady"),
                    Some(format!("containers with unready status: {}", fmt_list(&unready))),
                )
            }
        }
    };
    let mut ready = containers_ready.clone();
    ready.type_ = "Ready".into();
    let _ = spec;
    out.push(ready);
    out.push(containers_ready);
    out.push(cond("PodScheduled", true, None, None));
    out
}

const KUBELET_CONDITIONS: [&str; 5] =
    ["PodScheduled", "Ready", "Initialized", "ContainersReady", "PodReadyToStartContainers"];

/// The status to write for `pod`, given the node's record `run`, at `now`.
pub fn pod_status(pod: &Pod, run: &PodRun, now: DateTime<Utc>) -> PodStatus {
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let old = pod.status.clone().unwrap_or_default();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let mut phase = phase(policy, run).to_string();
    let mut reason = None;
    let mut message = None;
    if let Some((r, m)) = &run.reason {
        phase = "Failed".into();
        reason = Some(r.clone());
        message = Some(m.clone());
    }
    // Terminal phases are never left.
    if let Some(old_phase) = old.phase.as_deref()
        && (old_phase == "Succeeded" || old_phase == "Failed")
    {
        phase = old_phase.to_string();
        reason = reason.or(old.reason.clone());
        message = message.or(old.message.clone());
    }
    let old_conditions = old.conditions.clone().unwrap_or_default();
    let mut conditions: Vec<PodCondition> =
        old_conditions.iter().filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str())).cloned().collect();
    for extra in &run.extra_conditions {
        conditions.retain(|c| c.type_ != extra.type_);
        conditions.push(extra.clone());
    }
    conditions.extend(kubelet_conditions(spec, run, &phase));
    for c in conditions.iter_mut() {
        let previous = old_conditions.iter().find(|o| o.type_ == c.type_);
        c.last_transition_time = match previous {
            Some(p) if p.status == c.status && p.last_transition_time.is_some() => p.last_transition_time.clone(),
            _ => c.last_transition_time.clone().or(Some(time(now))),
        };
        c.last_probe_time = previous.and_then(|p| p.last_probe_time.clone()).or(c.last_probe_time.take());
    }
    let statuses = |list: &[ContainerRun], init: bool| -> Option<Vec<ContainerStatus>> {
        if list.is_empty() { None } else { Some(list.iter().map(|c| container_status(c, init)).collect()) }
    };
    let pod_ip = run.pod_ip.clone().unwrap_or_else(|| LOCAL_IP.into());
    let host_ip = run.host_ip.clone().unwrap_or_else(|| LOCAL_IP.into());
    PodStatus {
        phase: Some(phase),
        reason,
        message,
        conditions: Some(conditions),
        container_statuses: statuses(&run.main, false),
        init_container_statuses: statuses(&run.init, true),
        start_time: Some(old.start_time.clone().unwrap_or(time(run.start_time))),
        host_ip: Some(host_ip.clone()),
        host_ips: Some(vec![HostIP { ip: host_ip }]),
        pod_ip: Some(pod_ip.clone()),
        pod_ips: Some(vec![PodIP { ip: pod_ip }]),
        qos_class: old.qos_class.clone().or_else(|| Some(qos_class(spec).into())),
        nominated_node_name: old.nominated_node_name.clone(),
        ..Default::default()
    }
}

/// The pod's QoS class from its containers' requests and limits (cpu and memory).
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let containers: Vec<&Container> = spec.init_containers.iter().flatten().chain(spec.containers.iter()).collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let limits: BTreeMap<String, String> = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
            .unwrap_or_default();
        let mut requests: BTreeMap<String, String> = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
            .unwrap_or_default();
        for r in ["cpu", "memory"] {
            if let Some(l) = limits.get(r) {
                requests.entry(r.into()).or_insert_with(|| l.clone());
            }
        }
        for r in ["cpu", "memory"] {
            if limits.contains_key(r) || requests.contains_key(r) {
                any = true;
            }
            if !limits.contains_key(r) || limits.get(r) != requests.get(r) {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn exit(code: i32) -> ExitInfo {
        ExitInfo::from_code(code, t(1), t(2))
    }

    fn run_of(init: Vec<RunState>, main: Vec<RunState>) -> PodRun {
        let mk = |i: usize, s: RunState, prefix: &str| ContainerRun {
            name: format!("{prefix}{i}"),
            image: "docker.io/library/busybox:latest".into(),
            restart_count: 0,
            state: s,
            last: None,
            container_id: Some(format!("jobwright://{prefix}{i}")),
            sidecar: false,
        };
        PodRun {
            init: init.into_iter().enumerate().map(|(i, s)| mk(i, s, "init")).collect(),
            main: main.into_iter().enumerate().map(|(i, s)| mk(i, s, "c")).collect(),
            start_time: t(0),
            terminal: false,
            reason: None,
            extra_conditions: vec![],
            pod_ip: None,
            host_ip: None,
        }
    }

    fn waiting() -> RunState {
        RunState::Waiting { reason: "ContainerCreating".into(), message: None }
    }
    fn running() -> RunState {
        RunState::Running { started_at: t(1) }
    }
    fn done(code: i32) -> RunState {
        RunState::Terminated(exit(code))
    }

    #[test]
    fn phase_table() {
        struct Case {
            name: &'static str,
            policy: &'static str,
            init: Vec<RunState>,
            main: Vec<RunState>,
            terminal: bool,
            want: &'static str,
        }
        let cases = vec![
            Case {
                name: "not started",
                policy: "Never",
                init: vec![],
                main: vec![waiting()],
                terminal: false,
                want: "Pending",
            },
            Case {
                name: "running",
                policy: "Never",
                init: vec![],
                main: vec![running()],
                terminal: false,
                want: "Running",
            },
            Case {
                name: "one done one running",
                policy: "Never",
                init: vec![],
                main: vec![done(0), running()],
                terminal: false,
                want: "Running",
            },
            Case {
                name: "all succeeded, Never",
                policy: "Never",
                init: vec![],
                main: vec![done(0), done(0)],
                terminal: false,
                want: "Succeeded",
            },
            Case {
                name: "one failed, Never",
                policy: "Never",
                init: vec![],
                main: vec![done(0), done(1)],
                terminal: false,
                want: "Failed",
            },
            Case {
                name: "failed, OnFailure restarts",
                policy: "OnFailure",
                init: vec![],
                main: vec![done(1)],
                terminal: false,
                want: "Running",
            },
            Case {
                name: "succeeded, OnFailure",
                policy: "OnFailure",
                init: vec![],
                main: vec![done(0)],
                terminal: false,
                want: "Succeeded",
            },
            Case {
                name: "succeeded, Always restarts",
                policy: "Always",
                init: vec![],
                main: vec![done(0)],
                terminal: false,
                want: "Running",
            },
            Case {
                name: "deleted, killed by TERM",
                policy: "Always",
                init: vec![],
                main: vec![done(143)],
                terminal: true,
                want: "Failed",
            },
            Case {
                name: "deleted, exited 0 on TERM",
                policy: "OnFailure",
                init: vec![],
                main: vec![done(0)],
                terminal: true,
                want: "Succeeded",
            },
            Case {
                name: "init running",
                policy: "Never",
                init: vec![running()],
                main: vec![waiting()],
                terminal: false,
                want: "Pending",
            },
            Case {
                name: "init failed, Never",
                policy: "Never",
                init: vec![done(1)],
                main: vec![waiting()],
                terminal: false,
                want: "Failed",
            },
            Case {
                name: "init done, main running",
                policy: "Never",
                init: vec![done(0)],
                main: vec![running()],
                terminal: false,
                want: "Running",
            },
        ];
        for c in cases {
            let mut run = run_of(c.init, c.main);
            run.terminal = c.terminal;
            assert_eq!(phase(c.policy, &run), c.want, "{}", c.name);
        }
    }

    #[test]
    fn sidecars_do_not_decide_the_phase() {
        let mut run = run_of(vec![running()], vec![done(0)]);
        run.init[0].sidecar = true;
        assert_eq!(phase("Never", &run), "Succeeded");
        run.init[0].state = done(143);
        assert_eq!(phase("Never", &run), "Succeeded");
        let mut starting = run_of(vec![waiting()], vec![waiting()]);
        starting.init[0].sidecar = true;
        starting.init[0].container_id = None;
        starting.main[0].container_id = None;
        assert_eq!(phase("Never", &starting), "Pending");
    }

    #[test]
    fn waiting_to_restart_counts_as_stopped() {
        let mut run = run_of(vec![], vec![RunState::Waiting { reason: "CrashLoopBackOff".into(), message: None }]);
        run.main[0].last = Some(exit(1));
        assert_eq!(phase("OnFailure", &run), "Running");
        run.terminal = true;
        run.finalize_waiting(t(5));
        assert_eq!(run.main[0].exit().unwrap().exit_code, 1, "a terminal pod reports the last run");
        assert_eq!(phase("OnFailure", &run), "Failed");
    }

    #[test]
    fn never_started_containers_of_a_terminal_pod_are_unknown() {
        let mut run = run_of(vec![], vec![waiting()]);
        run.terminal = true;
        run.finalize_waiting(t(5));
        let e = run.main[0].exit().unwrap();
        assert_eq!((e.exit_code, e.reason.as_str()), (137, "ContainerStatusUnknown"));
        assert_eq!(phase("Never", &run), "Failed");
    }

    fn pod(policy: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "c0", "image": "busybox"}]},
            "status": status,
        }))
        .unwrap()
    }

    fn find<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn running_pod_status() {
        let p = pod(
            "Never",
            json!({"phase": "Pending", "qosClass": "BestEffort", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2023-01-01T00:00:00Z"}]}),
        );
        let s = pod_status(&p, &run_of(vec![], vec![running()]), t(10));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let types: Vec<&str> = s.conditions.as_ref().unwrap().iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]);
        assert_eq!(find(&s, "Ready").status, "True");
        assert_eq!(find(&s, "Ready").last_transition_time, Some(time(t(10))));
        assert_eq!(
            from_time(find(&s, "PodScheduled").last_transition_time.as_ref().unwrap()).to_rfc3339(),
            "2023-01-01T00:00:00+00:00",
            "unchanged conditions keep their transition time"
        );
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.started, Some(true));
        assert!(cs.state.as_ref().unwrap().running.is_some());
        assert_eq!(s.pod_ip.as_deref(), Some(LOCAL_IP));
        assert_eq!(s.host_ip.as_deref(), Some(LOCAL_IP));
        assert_eq!(s.start_time, Some(time(t(0))));
        assert!(s.init_container_statuses.is_none());
    }

    #[test]
    fn succeeded_and_failed_pod_conditions() {
        let p = pod("Never", json!({}));
        let s = pod_status(&p, &run_of(vec![], vec![done(0)]), t(10));
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        assert_eq!(find(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
        assert_eq!(find(&s, "ContainersReady").reason.as_deref(), Some("PodCompleted"));
        assert_eq!(find(&s, "Initialized").reason.as_deref(), Some("PodCompleted"));
        assert_eq!(find(&s, "PodReadyToStartContainers").status, "False");
        let term = s.container_statuses.unwrap()[0].state.clone().unwrap().terminated.unwrap();
        assert_eq!((term.exit_code, term.reason.as_deref()), (0, Some("Completed")));

        let s = pod_status(&p, &run_of(vec![], vec![done(3)]), t(10));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(find(&s, "Ready").reason.as_deref(), Some("PodFailed"));
        assert_eq!(find(&s, "Ready").status, "False");
    }

    #[test]
    fn deadline_fails_the_pod_with_upstream_reason() {
        let p = pod("OnFailure", json!({}));
        let mut run = run_of(vec![], vec![done(143)]);
        run.terminal = true;
        run.reason = Some((DEADLINE_REASON.into(), DEADLINE_MESSAGE.into()));
        let s = pod_status(&p, &run, t(10));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(s.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(s.message.as_deref(), Some("Pod was active on the node longer than the specified deadline"));
    }

    #[test]
    fn foreign_conditions_are_kept_and_terminal_phase_sticks() {
        let p = pod(
            "Never",
            json!({"phase": "Failed", "conditions": [
            {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager"}]}),
        );
        let s = pod_status(&p, &run_of(vec![], vec![running()]), t(10));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(find(&s, "DisruptionTarget").reason.as_deref(), Some("DeletionByTaintManager"));
    }

    #[test]
    fn init_containers_gate_initialized() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"restartPolicy": "Never", "initContainers": [{"name": "init0"}, {"name": "init1"}],
                     "containers": [{"name": "c0"}]}}))
        .unwrap();
        let mut run = run_of(
            vec![done(0), running()],
            vec![RunState::Waiting { reason: "PodInitializing".into(), message: None }],
        );
        run.main[0].container_id = None;
        let s = pod_status(&p, &run, t(1));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let init = find(&s, "Initialized");
        assert_eq!(init.status, "False");
        assert_eq!(init.message.as_deref(), Some("containers with incomplete status: [init1]"));
        let ics = s.init_container_statuses.unwrap();
        assert!(ics[0].ready, "a completed init container is ready");
        assert!(!ics[1].ready);
    }

    #[test]
    fn restarted_container_reports_last_state() {
        let p = pod("OnFailure", json!({}));
        let mut run = run_of(
            vec![],
            vec![RunState::Waiting { reason: "CrashLoopBackOff".into(), message: Some("back-off".into()) }],
        );
        run.main[0].restart_count = 2;
        run.main[0].last = Some(exit(1));
        let s = pod_status(&p, &run, t(3));
        let cs = &s.container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 2);
        assert_eq!(cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 1);
        assert_eq!(cs.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(s.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn images_are_normalised() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("perl:5.34.0", "docker.io/library/perl:5.34.0"),
            ("bitnami/kubectl", "docker.io/bitnami/kubectl:latest"),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("alpine@sha256:abc", "docker.io/library/alpine@sha256:abc"),
            ("", ""),
        ];
        for (i, want) in cases {
            assert_eq!(normalize_image(i), want);
        }
    }

    #[test]
    fn qos_classes() {
        let spec = |res: serde_json::Value| -> PodSpec {
            serde_json::from_value(json!({"containers": [{"name": "c", "resources": res}]})).unwrap()
        };
        assert_eq!(qos_class(&spec(json!({}))), "BestEffort");
        assert_eq!(qos_class(&spec(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))), "Guaranteed");
        assert_eq!(qos_class(&spec(json!({"requests": {"cpu": "1"}}))), "Burstable");
    }
}
