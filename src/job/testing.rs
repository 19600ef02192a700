//! Builder-style fixtures for Jobs and their pods, for unit and integration tests:
//! `JobBuilder::new("j").completions(3).parallelism(2).indexed().build()`,
//! `PodBuilder::for_job(&job).succeeded().index(2).build()`.
//!
//! Jobs come out as the API server would default them (parallelism 1, completions 1, backoffLimit 6,
//! `restartPolicy: Never`, one container `main`) with UID `uid-<name>` in namespace `default`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::api::batch::v1::{
    Job, JobCondition, JobSpec, JobStatus, PodFailurePolicy, PodFailurePolicyRule, SuccessPolicy, SuccessPolicyRule,
    UncountedTerminatedPods,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
    PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::config::Config;
use super::labels::*;
use super::pods::to_time;
use super::template::controller_ref;

/// A fixed instant tests measure from: 2026-01-01T00:00:00Z.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap_or(DateTime::UNIX_EPOCH)
}

/// `t0() + secs`.
pub fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

/// A config that manages every Job (as `jobwright local`).
pub fn test_config() -> Config {
    Config { manage_all: true, ..Config::default() }
}

/// Builds a [`Job`].
#[derive(Clone, Debug)]
pub struct JobBuilder {
    job: Job,
}

impl JobBuilder {
    /// A defaulted Job named `name`.
    pub fn new(name: &str) -> Self {
        let uid = format!("uid-{name}");
        let labels: BTreeMap<String, String> = [
            (CONTROLLER_UID.to_string(), uid.clone()),
            (JOB_NAME.to_string(), name.to_string()),
            (LEGACY_CONTROLLER_UID.to_string(), uid.clone()),
            (LEGACY_JOB_NAME.to_string(), name.to_string()),
        ]
        .into();
        let job = Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(uid),
                ..Default::default()
            },
            spec: Some(JobSpec {
                parallelism: Some(1),
                completions: Some(1),
                backoff_limit: Some(6),
                completion_mode: Some("NonIndexed".into()),
                suspend: Some(false),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "main".into(),
                            image: Some("busybox".into()),
                            ..Default::default()
                        }],
                        restart_policy: Some("Never".into()),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        };
        Self { job }
    }

    fn spec(&mut self) -> &mut JobSpec {
        self.job.spec.get_or_insert_with(Default::default)
    }

    fn status(&mut self) -> &mut JobStatus {
        self.job.status.get_or_insert_with(Default::default)
    }

    fn pod_spec(&mut self) -> &mut PodSpec {
        self.spec().template.spec.get_or_insert_with(Default::default)
    }

    /// `spec.completions`.
    pub fn completions(mut self, n: i32) -> Self {
        self.spec().completions = Some(n);
        self
    }
    /// No `spec.completions`: a work-queue Job.
    pub fn no_completions(mut self) -> Self {
        self.spec().completions = None;
        self
    }
    /// `spec.parallelism`.
    pub fn parallelism(mut self, n: i32) -> Self {
        self.spec().parallelism = Some(n);
        self
    }
    /// `completionMode: Indexed`.
    pub fn indexed(mut self) -> Self {
        self.spec().completion_mode = Some("Indexed".into());
        self
    }
    /// `spec.completionMode` set to anything.
    pub fn completion_mode(mut self, m: &str) -> Self {
        self.spec().completion_mode = Some(m.into());
        self
    }
    /// `spec.backoffLimit`.
    pub fn backoff_limit(mut self, n: i32) -> Self {
        self.spec().backoff_limit = Some(n);
        self
    }
    /// `spec.backoffLimitPerIndex` (clears backoffLimit, as the API server then defaults it to MaxInt32).
    pub fn backoff_limit_per_index(mut self, n: i32) -> Self {
        self.spec().backoff_limit_per_index = Some(n);
        self.spec().backoff_limit = Some(i32::MAX);
        self
    }
    /// `spec.maxFailedIndexes`.
    pub fn max_failed_indexes(mut self, n: i32) -> Self {
        self.spec().max_failed_indexes = Some(n);
        self
    }
    /// `spec.suspend`.
    pub fn suspend(mut self, s: bool) -> Self {
        self.spec().suspend = Some(s);
        self
    }
    /// `spec.activeDeadlineSeconds`.
    pub fn active_deadline(mut self, secs: i64) -> Self {
        self.spec().active_deadline_seconds = Some(secs);
        self
    }
    /// `spec.podFailurePolicy`.
    pub fn pod_failure_policy(mut self, rules: Vec<PodFailurePolicyRule>) -> Self {
        self.spec().pod_failure_policy = Some(PodFailurePolicy { rules });
        self
    }
    /// `spec.successPolicy`.
    pub fn success_policy(mut self, rules: Vec<SuccessPolicyRule>) -> Self {
        self.spec().success_policy = Some(SuccessPolicy { rules });
        self
    }
    /// `spec.podReplacementPolicy`.
    pub fn pod_replacement_policy(mut self, p: &str) -> Self {
        self.spec().pod_replacement_policy = Some(p.into());
        self
    }
    /// The template's `restartPolicy`.
    pub fn restart_policy(mut self, p: &str) -> Self {
        self.pod_spec().restart_policy = Some(p.into());
        self
    }
    /// `spec.managedBy`.
    pub fn managed_by(mut self, m: &str) -> Self {
        self.spec().managed_by = Some(m.into());
        self
    }
    /// `spec.manualSelector: true` with the template's labels only `app: x`.
    pub fn manual_selector(mut self) -> Self {
        self.spec().manual_selector = Some(true);
        if let Some(m) = self.spec().template.metadata.as_mut() {
            m.labels = Some([("app".to_string(), "x".to_string())].into());
        }
        self
    }
    /// The template's `subdomain`.
    pub fn subdomain(mut self, s: &str) -> Self {
        self.pod_spec().subdomain = Some(s.into());
        self
    }
    /// Adds an init container.
    pub fn init_container(mut self, name: &str) -> Self {
        self.pod_spec().init_containers.get_or_insert_with(Vec::new).push(Container {
            name: name.into(),
            image: Some("busybox".into()),
            ..Default::default()
        });
        self
    }
    /// `metadata.deletionTimestamp`.
    pub fn deleting(mut self) -> Self {
        self.job.metadata.deletion_timestamp = Some(to_time(t0()));
        self
    }
    /// `status.startTime`.
    pub fn start_time(mut self, t: DateTime<Utc>) -> Self {
        self.status().start_time = Some(to_time(t));
        self
    }
    /// `status.succeeded`.
    pub fn succeeded(mut self, n: i32) -> Self {
        self.status().succeeded = Some(n);
        self
    }
    /// `status.failed`.
    pub fn failed(mut self, n: i32) -> Self {
        self.status().failed = Some(n);
        self
    }
    /// `status.active`.
    pub fn active(mut self, n: i32) -> Self {
        self.status().active = Some(n);
        self
    }
    /// `status.completedIndexes`.
    pub fn completed_indexes(mut self, s: &str) -> Self {
        self.status().completed_indexes = Some(s.into());
        self
    }
    /// `status.failedIndexes`.
    pub fn failed_indexes(mut self, s: &str) -> Self {
        self.status().failed_indexes = Some(s.into());
        self
    }
    /// `status.uncountedTerminatedPods`.
    pub fn uncounted(mut self, succeeded: &[&str], failed: &[&str]) -> Self {
        let v = |l: &[&str]| (!l.is_empty()).then(|| l.iter().map(|s| s.to_string()).collect());
        self.status().uncounted_terminated_pods =
            Some(UncountedTerminatedPods { succeeded: v(succeeded), failed: v(failed) });
        self
    }
    /// Adds a status condition.
    pub fn condition(mut self, type_: &str, status: &str, reason: &str, message: &str) -> Self {
        let c = JobCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_probe_time: Some(to_time(t0())),
            last_transition_time: Some(to_time(t0())),
        };
        self.status().conditions.get_or_insert_with(Vec::new).push(c);
        self
    }
    /// The Job.
    pub fn build(self) -> Job {
        self.job
    }
}

static POD_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Builds a [`Pod`] of a Job.
#[derive(Clone, Debug)]
pub struct PodBuilder {
    pod: Pod,
    finished_at: Option<DateTime<Utc>>,
}

impl PodBuilder {
    /// A Pending pod controlled by `job`, with the tracking finalizer, a unique name and UID.
    pub fn for_job(job: &Job) -> Self {
        let n = POD_SEQ.fetch_add(1, Ordering::Relaxed);
        let job_name = job.metadata.name.clone().unwrap_or_default();
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(format!("{job_name}-{n:05}")),
                namespace: job.metadata.namespace.clone(),
                uid: Some(format!("pod-uid-{n}")),
                owner_references: Some(vec![controller_ref(job)]),
                finalizers: Some(vec![JOB_TRACKING_FINALIZER.into()]),
                creation_timestamp: Some(to_time(t0())),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container { name: "main".into(), ..Default::default() }],
                ..Default::default()
            }),
            status: Some(PodStatus { phase: Some("Pending".into()), ..Default::default() }),
        };
        Self { pod, finished_at: None }
    }
    fn status(&mut self) -> &mut PodStatus {
        self.pod.status.get_or_insert_with(Default::default)
    }
    /// Pod name.
    pub fn name(mut self, n: &str) -> Self {
        self.pod.metadata.name = Some(n.into());
        self
    }
    /// Pod UID.
    pub fn uid(mut self, u: &str) -> Self {
        self.pod.metadata.uid = Some(u.into());
        self
    }
    /// Phase.
    pub fn phase(mut self, p: &str) -> Self {
        self.status().phase = Some(p.into());
        self
    }
    /// Phase Pending.
    pub fn pending(self) -> Self {
        self.phase("Pending")
    }
    /// Phase Running, scheduled.
    pub fn running(self) -> Self {
        self.node("node-1").phase("Running")
    }
    /// Phase Running with Ready=True since `t0()`.
    pub fn ready(self) -> Self {
        self.running().condition_at("Ready", "True", t0())
    }
    /// Phase Succeeded.
    pub fn succeeded(self) -> Self {
        self.phase("Succeeded")
    }
    /// Phase Failed.
    pub fn failed(self) -> Self {
        self.phase("Failed")
    }
    /// Completion index annotation and label.
    pub fn index(mut self, ix: i32) -> Self {
        self.pod
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(JOB_COMPLETION_INDEX.into(), ix.to_string());
        self.pod
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(JOB_COMPLETION_INDEX.into(), ix.to_string());
        self
    }
    /// Any annotation.
    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.pod.metadata.annotations.get_or_insert_with(Default::default).insert(k.into(), v.into());
        self
    }
    /// `batch.kubernetes.io/job-index-failure-count`.
    pub fn index_failure_count(self, n: i32) -> Self {
        self.annotation(JOB_INDEX_FAILURE_COUNT, &n.to_string())
    }
    /// Without the tracking finalizer (already counted).
    pub fn no_finalizer(mut self) -> Self {
        self.pod.metadata.finalizers = None;
        self
    }
    /// Without owner references.
    pub fn orphan(mut self) -> Self {
        self.pod.metadata.owner_references = None;
        self
    }
    /// `deletionTimestamp` set (terminating).
    pub fn deleting(mut self) -> Self {
        self.pod.metadata.deletion_timestamp = Some(to_time(t0()));
        self.pod.metadata.deletion_grace_period_seconds = Some(30);
        self
    }
    /// Scheduled to `node`.
    pub fn node(mut self, node: &str) -> Self {
        self.pod.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
        self
    }
    /// Creation time.
    pub fn created_at(mut self, t: DateTime<Utc>) -> Self {
        self.pod.metadata.creation_timestamp = Some(to_time(t));
        self
    }
    /// A container terminated with this exit code.
    pub fn exit_code(mut self, container: &str, code: i32) -> Self {
        let at = self.finished_at.unwrap_or_else(t0);
        let cs = self.status().container_statuses.get_or_insert_with(Vec::new);
        cs.retain(|c| c.name != container);
        cs.push(terminated(container, code, at));
        self
    }
    /// Restart count of container `main`.
    pub fn restarts(mut self, n: i32) -> Self {
        let cs = self.status().container_statuses.get_or_insert_with(Vec::new);
        cs.retain(|c| c.name != "main");
        cs.push(ContainerStatus { name: "main".into(), restart_count: n, ..Default::default() });
        self
    }
    /// Adds a pod condition with transition time `t0()`.
    pub fn condition(self, type_: &str, status: &str) -> Self {
        self.condition_at(type_, status, t0())
    }
    /// Adds a pod condition.
    pub fn condition_at(mut self, type_: &str, status: &str, t: DateTime<Utc>) -> Self {
        let conds = self.status().conditions.get_or_insert_with(Vec::new);
        conds.retain(|c| c.type_ != type_);
        conds.push(PodCondition {
            type_: type_.into(),
            status: status.into(),
            last_transition_time: Some(to_time(t)),
            ..Default::default()
        });
        self
    }
    /// When the pod's containers finished.
    pub fn finished_at(mut self, t: DateTime<Utc>) -> Self {
        self.finished_at = Some(t);
        if let Some(cs) = self.status().container_statuses.as_mut() {
            for c in cs.iter_mut() {
                if let Some(term) = c.state.as_mut().and_then(|s| s.terminated.as_mut()) {
                    term.finished_at = Some(to_time(t));
                }
            }
        }
        self
    }
    /// The pod. Terminal pods get a terminated `main` container (exit 0 / 1) unless one was set.
    pub fn build(mut self) -> Pod {
        let phase = self.status().phase.clone().unwrap_or_default();
        let at = self.finished_at.unwrap_or_else(t0);
        if matches!(phase.as_str(), "Succeeded" | "Failed") {
            let code = if phase == "Succeeded" { 0 } else { 1 };
            let cs = self.status().container_statuses.get_or_insert_with(Vec::new);
            if cs.is_empty() {
                cs.push(terminated("main", code, at));
            }
        }
        self.pod
    }
}

/// A container status: terminated with `code` at `at`.
pub fn terminated(name: &str, code: i32, at: DateTime<Utc>) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                finished_at: Some(to_time(at)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
