//! Table tests of [`super::plan`], after upstream's `TestControllerSyncJob`,
//! `TestSyncJobPastDeadline`, `TestSyncJobWithJobPodFailurePolicy`,
//! `TestTrackJobStatusAndRemoveFinalizers`, plus success policy and backoffLimitPerIndex tables.
//!
//! Each case plans one sync, then simulates every finalizer removal succeeding and checks the
//! status the shell would end up writing (phase two if any, else phase one).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{
    Job, JobStatus, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
    PodFailurePolicyRule, SuccessPolicyRule,
};
use k8s_openapi::api::core::v1::Pod;

use super::config::Config;
use super::labels::*;
use super::plan::*;
use super::pods::{CachedPod, to_chrono};
use super::testing::*;

#[derive(Default)]
struct Want {
    outcome: Option<Outcome>,
    creations: Option<usize>,
    created_indexes: Option<Vec<i32>>,
    deletions: Option<Vec<DeletionReason>>,
    removals: Option<usize>,
    active: Option<i32>,
    ready: Option<i32>,
    terminating: Option<i32>,
    succeeded: Option<i32>,
    failed: Option<i32>,
    /// (succeeded, failed) UIDs in `uncountedTerminatedPods` after phase one.
    uncounted: Option<(usize, usize)>,
    completed_indexes: Option<&'static str>,
    failed_indexes: Option<Option<&'static str>>,
    /// (type, status, reason) of every condition of the final status, in order.
    conditions: Option<Vec<(&'static str, &'static str, &'static str)>>,
    /// (type, message) of one condition.
    message: Option<(&'static str, String)>,
    /// Reasons of all events (plan events, then the final write's).
    events: Option<Vec<&'static str>>,
    requeue: Option<Option<u64>>,
    start_time: Option<Option<DateTime<Utc>>>,
    completion_time: Option<bool>,
}

struct Case {
    name: &'static str,
    job: Job,
    pods: Vec<Pod>,
    now: DateTime<Utc>,
    ctx: SyncContext,
    config: Config,
    want: Want,
}

fn case(name: &'static str, job: Job, pods: Vec<Pod>, want: Want) -> Case {
    Case { name, job, pods, now: at(100), ctx: SyncContext::default(), config: test_config(), want }
}

impl Case {
    fn now(mut self, t: DateTime<Utc>) -> Self {
        self.now = t;
        self
    }
    fn unsatisfied(mut self) -> Self {
        self.ctx.expectations_satisfied = false;
        self
    }
    fn expectations_expire_in(mut self, secs: u64) -> Self {
        self.ctx.expectations_expire_in = Some(std::time::Duration::from_secs(secs));
        self
    }
    fn pending_removal(mut self, uid: &str) -> Self {
        self.ctx.pending_finalizer_removals.insert(uid.to_string());
        self
    }
    fn config(mut self, c: Config) -> Self {
        self.config = c;
        self
    }
}

fn final_status(plan: &Plan) -> (JobStatus, Vec<String>) {
    let removed: BTreeSet<String> = plan.finalizer_removals.iter().map(|r| r.uid.clone()).collect();
    let mut events: Vec<String> = plan.events.iter().map(|e| e.reason.clone()).collect();
    match plan.after_finalizers(&removed) {
        Some(w) => {
            events.extend(w.events.iter().map(|e| e.reason.clone()));
            (w.status, events)
        }
        None => (plan.status.clone(), events),
    }
}

fn run(cases: Vec<Case>) {
    for c in cases {
        let n = c.name;
        let plan = plan_with(&c.job, &c.pods, c.now, &c.config, &c.ctx);
        // The controller plans from pods decoded from the API's JSON into its cache entries: the
        // same pods that way give the same plan.
        let decoded: Vec<CachedPod> =
            c.pods.iter().map(|p| serde_json::from_value(serde_json::to_value(p).unwrap()).unwrap()).collect();
        assert_eq!(plan_with(&c.job, &decoded, c.now, &c.config, &c.ctx), plan, "{n}: plan from decoded pods");
        let (st, events) = final_status(&plan);
        let w = &c.want;
        if let Some(o) = &w.outcome {
            assert_eq!(&plan.outcome, o, "{n}: outcome");
        }
        if let Some(x) = w.creations {
            assert_eq!(plan.creations.len(), x, "{n}: creations");
        }
        if let Some(x) = &w.created_indexes {
            let got: Vec<i32> = plan.creations.iter().filter_map(|c| c.index).collect();
            assert_eq!(&got, x, "{n}: created indexes");
        }
        if let Some(x) = &w.deletions {
            let got: Vec<DeletionReason> = plan.deletions.iter().map(|d| d.reason).collect();
            assert_eq!(&got, x, "{n}: deletions");
        }
        if let Some(x) = w.removals {
            assert_eq!(plan.finalizer_removals.len(), x, "{n}: finalizer removals");
        }
        if let Some(x) = w.active {
            assert_eq!(st.active.unwrap_or(0), x, "{n}: active");
        }
        if let Some(x) = w.ready {
            assert_eq!(st.ready, Some(x), "{n}: ready");
        }
        if let Some(x) = w.terminating {
            assert_eq!(st.terminating, Some(x), "{n}: terminating");
        }
        if let Some(x) = w.succeeded {
            assert_eq!(st.succeeded.unwrap_or(0), x, "{n}: succeeded");
        }
        if let Some(x) = w.failed {
            assert_eq!(st.failed.unwrap_or(0), x, "{n}: failed");
        }
        if let Some((s, f)) = w.uncounted {
            let u = plan.status.uncounted_terminated_pods.clone().unwrap_or_default();
            let got = (u.succeeded.map_or(0, |v| v.len()), u.failed.map_or(0, |v| v.len()));
            assert_eq!(got, (s, f), "{n}: uncounted after phase one");
        }
        if let Some(x) = w.completed_indexes {
            assert_eq!(st.completed_indexes.as_deref().unwrap_or(""), x, "{n}: completedIndexes");
        }
        if let Some(x) = w.failed_indexes {
            assert_eq!(st.failed_indexes.as_deref(), x, "{n}: failedIndexes");
        }
        if let Some(x) = &w.conditions {
            let got: Vec<(&str, &str, &str)> = st
                .conditions
                .iter()
                .flatten()
                .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_deref().unwrap_or("")))
                .collect();
            assert_eq!(&got, x, "{n}: conditions");
        }
        if let Some((t, m)) = &w.message {
            let c = st.conditions.iter().flatten().find(|c| c.type_ == *t);
            assert_eq!(c.and_then(|c| c.message.as_deref()), Some(m.as_str()), "{n}: message of {t}");
        }
        if let Some(x) = &w.events {
            assert_eq!(&events, x, "{n}: events");
        }
        if let Some(x) = w.requeue {
            assert_eq!(plan.requeue_after.map(|d| d.as_secs()), x, "{n}: requeue");
        }
        if let Some(x) = w.start_time {
            assert_eq!(st.start_time.as_ref().map(to_chrono), x, "{n}: startTime");
        }
        if let Some(x) = w.completion_time {
            assert_eq!(st.completion_time.is_some(), x, "{n}: completionTime");
        }
    }
}

fn pod(job: &Job) -> PodBuilder {
    PodBuilder::for_job(job)
}

fn pods(job: &Job, n: usize, f: impl Fn(PodBuilder) -> PodBuilder) -> Vec<Pod> {
    (0..n).map(|_| f(pod(job)).build()).collect()
}

fn cat(parts: Vec<Vec<Pod>>) -> Vec<Pod> {
    parts.into_iter().flatten().collect()
}

const SCM: &str = condition::SUCCESS_CRITERIA_MET;
const FT: &str = condition::FAILURE_TARGET;
const DONE: &str = condition::COMPLETE;
const FAILED: &str = condition::FAILED;
const SUSP: &str = condition::SUSPENDED;

#[test]
fn controller_sync_job() {
    use DeletionReason::*;
    let j52 = || JobBuilder::new("j").completions(5).parallelism(2).start_time(t0());
    let wq = || JobBuilder::new("wq").no_completions().parallelism(2).start_time(t0());
    let job = j52().build();
    let wqj = wq().build();
    let cases = vec![
        case(
            "job start creates parallelism pods and sets startTime",
            JobBuilder::new("j").completions(5).parallelism(2).build(),
            vec![],
            Want {
                creations: Some(2),
                active: Some(2),
                ready: Some(0),
                start_time: Some(Some(at(100))),
                conditions: Some(vec![]),
                events: Some(vec![]),
                ..Default::default()
            },
        ),
        case(
            "work-queue job start creates parallelism pods",
            wqj.clone(),
            vec![],
            Want { creations: Some(2), active: Some(2), ..Default::default() },
        ),
        case(
            "pending pods count as active",
            job.clone(),
            pods(&job, 2, |p| p.pending()),
            Want { creations: Some(0), deletions: Some(vec![]), active: Some(2), ready: Some(0), ..Default::default() },
        ),
        case(
            "correct number of ready pods",
            job.clone(),
            pods(&job, 2, |p| p.ready()),
            Want { creations: Some(0), active: Some(2), ready: Some(2), ..Default::default() },
        ),
        case(
            "too few active pods: one succeeded, one replacement created",
            job.clone(),
            cat(vec![pods(&job, 1, |p| p.running()), pods(&job, 1, |p| p.succeeded())]),
            Want {
                creations: Some(1),
                active: Some(2),
                succeeded: Some(1),
                uncounted: Some((1, 0)),
                removals: Some(1),
                ..Default::default()
            },
        ),
        case(
            "too many active pods: excess deleted, finalizer first",
            job.clone(),
            pods(&job, 3, |p| p.running()),
            Want {
                creations: Some(0),
                deletions: Some(vec![ExcessActive]),
                active: Some(2),
                terminating: Some(1),
                ..Default::default()
            },
        ),
        case(
            "more active pods than remaining completions",
            JobBuilder::new("j").completions(3).parallelism(4).start_time(t0()).build(),
            cat(vec![pods(&job, 2, |p| p.running()), pods(&job, 2, |p| p.succeeded())]),
            Want { deletions: Some(vec![ExcessActive]), active: Some(1), succeeded: Some(2), ..Default::default() },
        ),
        case(
            "new failed pod delays the replacement by 10 s",
            job.clone(),
            cat(vec![pods(&job, 1, |p| p.running()), pods(&job, 1, |p| p.failed().finished_at(at(95)))]),
            Want { creations: Some(0), failed: Some(1), active: Some(1), requeue: Some(Some(5)), ..Default::default() },
        ),
        case(
            "failed pod long ago is replaced",
            job.clone(),
            cat(vec![pods(&job, 1, |p| p.running()), pods(&job, 1, |p| p.failed().finished_at(at(0)))]),
            Want { creations: Some(1), failed: Some(1), active: Some(2), requeue: Some(None), ..Default::default() },
        ),
        case(
            "two consecutive failures double the delay",
            job.clone(),
            pods(&job, 2, |p| p.failed().finished_at(at(90))),
            Want { creations: Some(0), failed: Some(2), requeue: Some(Some(10)), ..Default::default() },
        ),
        case(
            "a success resets the backoff",
            job.clone(),
            cat(vec![
                pods(&job, 2, |p| p.failed().finished_at(at(90))),
                pods(&job, 1, |p| p.succeeded().finished_at(at(95))),
            ]),
            Want { creations: Some(2), failed: Some(2), succeeded: Some(1), ..Default::default() },
        ),
        case(
            "job finishes when completions succeeded",
            job.clone(),
            pods(&job, 5, |p| p.succeeded()),
            Want {
                creations: Some(0),
                succeeded: Some(5),
                conditions: Some(vec![(SCM, "True", "CompletionsReached"), (DONE, "True", "CompletionsReached")]),
                message: Some((DONE, "Reached expected number of succeeded pods".into())),
                events: Some(vec!["Completed"]),
                completion_time: Some(true),
                ..Default::default()
            },
        ),
        case(
            "work-queue job: no more pods after the first success, waits for the others",
            wqj.clone(),
            cat(vec![pods(&wqj, 1, |p| p.running()), pods(&wqj, 1, |p| p.succeeded())]),
            Want {
                creations: Some(0),
                deletions: Some(vec![]),
                active: Some(1),
                conditions: Some(vec![]),
                ..Default::default()
            },
        ),
        case(
            "work-queue job completes when one succeeded and none active",
            wqj.clone(),
            cat(vec![pods(&wqj, 1, |p| p.failed()), pods(&wqj, 1, |p| p.succeeded())]),
            Want {
                succeeded: Some(1),
                failed: Some(1),
                conditions: Some(vec![(SCM, "True", "CompletionsReached"), (DONE, "True", "CompletionsReached")]),
                ..Default::default()
            },
        ),
        case(
            "deleted pods count as failed and are replaced (TerminatingOrFailed)",
            job.clone(),
            cat(vec![pods(&job, 1, |p| p.running().deleting()), pods(&job, 1, |p| p.running())]),
            Want { creations: Some(1), failed: Some(1), terminating: Some(1), active: Some(2), ..Default::default() },
        ),
        case(
            "podReplacementPolicy Failed: terminating pods are not replaced nor counted",
            j52().pod_replacement_policy("Failed").build(),
            cat(vec![pods(&job, 1, |p| p.running().deleting()), pods(&job, 1, |p| p.running())]),
            Want { creations: Some(0), failed: Some(0), terminating: Some(1), active: Some(1), ..Default::default() },
        ),
        case(
            "suspending a job deletes its active pods",
            j52().suspend(true).build(),
            pods(&job, 2, |p| p.ready()),
            Want {
                deletions: Some(vec![Suspended, Suspended]),
                creations: Some(0),
                active: Some(0),
                ready: Some(0),
                terminating: Some(2),
                conditions: Some(vec![(SUSP, "True", "JobSuspended")]),
                message: Some((SUSP, "Job suspended".into())),
                events: Some(vec!["Suspended"]),
                ..Default::default()
            },
        ),
        case(
            "suspending with unsatisfied expectations waits",
            j52().suspend(true).build(),
            pods(&job, 2, |p| p.running()),
            Want { deletions: Some(vec![]), conditions: Some(vec![]), events: Some(vec![]), ..Default::default() },
        )
        .unsatisfied(),
        case(
            "job created suspended: no pods, no startTime",
            JobBuilder::new("j").completions(5).parallelism(2).suspend(true).build(),
            vec![],
            Want {
                creations: Some(0),
                start_time: Some(None),
                conditions: Some(vec![(SUSP, "True", "JobSuspended")]),
                ..Default::default()
            },
        ),
        case(
            "resuming a job creates pods and restarts the deadline clock",
            j52().condition(SUSP, "True", "JobSuspended", "Job suspended").build(),
            vec![],
            Want {
                creations: Some(2),
                conditions: Some(vec![(SUSP, "False", "JobResumed")]),
                message: Some((SUSP, "Job resumed".into())),
                events: Some(vec!["Resumed"]),
                start_time: Some(Some(at(100))),
                ..Default::default()
            },
        ),
        case(
            "unsatisfied expectations: nothing created",
            job.clone(),
            vec![],
            Want { creations: Some(0), deletions: Some(vec![]), ..Default::default() },
        )
        .unsatisfied(),
        case(
            "job being deleted: no pods created, finalizers removed",
            j52().deleting().build(),
            cat(vec![pods(&job, 1, |p| p.running()), pods(&job, 1, |p| p.succeeded())]),
            Want { creations: Some(0), removals: Some(2), succeeded: Some(1), failed: Some(0), ..Default::default() },
        ),
        case(
            "finished job: only leftover finalizers are removed",
            j52().condition(DONE, "True", "CompletionsReached", "").build(),
            pods(&job, 2, |p| p.succeeded()),
            Want { outcome: Some(Outcome::Finished), creations: Some(0), removals: Some(2), ..Default::default() },
        ),
        case(
            "job managed by another controller is left alone",
            j52().managed_by("kueue.x-k8s.io/multikueue").build(),
            vec![],
            Want { outcome: Some(Outcome::NotManaged), creations: Some(0), removals: Some(0), ..Default::default() },
        ),
        case(
            "unknown completion mode is skipped with a warning",
            j52().completion_mode("Sometimes").build(),
            vec![],
            Want { creations: Some(0), events: Some(vec!["UnknownCompletionMode"]), ..Default::default() },
        ),
        case(
            "pods controlled by another job are ignored",
            job.clone(),
            pods(&JobBuilder::new("other").build(), 3, |p| p.running()),
            Want { creations: Some(2), deletions: Some(vec![]), active: Some(2), ..Default::default() },
        ),
        case(
            "parallelism beyond the batch cap creates 500",
            JobBuilder::new("big").completions(1000).parallelism(1000).build(),
            vec![],
            Want { creations: Some(500), active: Some(500), ..Default::default() },
        ),
    ];
    run(cases);
}

#[test]
fn backoff_limit_and_failure_states() {
    let job = JobBuilder::new("j").completions(5).parallelism(2).backoff_limit(0).start_time(t0()).build();
    let j1 = JobBuilder::new("j").completions(5).parallelism(2).backoff_limit(1).start_time(t0()).build();
    let on_failure =
        |limit| JobBuilder::new("j").backoff_limit(limit).restart_policy("OnFailure").start_time(t0()).build();
    let of2 = on_failure(2);
    let cases = vec![
        case(
            "backoffLimit 0: one failure fails the job",
            job.clone(),
            pods(&job, 1, |p| p.failed()),
            Want {
                failed: Some(1),
                conditions: Some(vec![(FT, "True", "BackoffLimitExceeded"), (FAILED, "True", "BackoffLimitExceeded")]),
                message: Some((FAILED, "Job has reached the specified backoff limit".into())),
                events: Some(vec!["BackoffLimitExceeded"]),
                completion_time: Some(false),
                ..Default::default()
            },
        ),
        case(
            "backoffLimit exceeded with an active pod: FailureTarget, pod terminated and counted, Failed waits",
            j1.clone(),
            cat(vec![pods(&j1, 2, |p| p.failed()), pods(&j1, 1, |p| p.running())]),
            Want {
                deletions: Some(vec![DeletionReason::JobFinishing]),
                creations: Some(0),
                failed: Some(3),
                terminating: Some(1),
                active: Some(0),
                conditions: Some(vec![(FT, "True", "BackoffLimitExceeded")]),
                events: Some(vec![]),
                ..Default::default()
            },
        ),
        case(
            "FailureTarget recorded and nothing terminating: Failed with the same reason",
            JobBuilder::new("j")
                .start_time(t0())
                .failed(2)
                .condition(FT, "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
                .build(),
            vec![],
            Want {
                conditions: Some(vec![(FT, "True", "BackoffLimitExceeded"), (FAILED, "True", "BackoffLimitExceeded")]),
                events: Some(vec!["BackoffLimitExceeded"]),
                ..Default::default()
            },
        ),
        case(
            "FailureTarget recorded but a pod still terminating: Failed waits",
            JobBuilder::new("j").start_time(t0()).condition(FT, "True", "DeadlineExceeded", "x").build(),
            pods(&job, 1, |p| p.running().deleting()),
            Want {
                conditions: Some(vec![(FT, "True", "DeadlineExceeded")]),
                terminating: Some(1),
                ..Default::default()
            },
        ),
        case(
            "restartPolicy OnFailure: container restarts reach backoffLimit",
            of2.clone(),
            pods(&of2, 1, |p| p.running().restarts(2)),
            Want {
                deletions: Some(vec![DeletionReason::JobFinishing]),
                conditions: Some(vec![(FT, "True", "BackoffLimitExceeded")]),
                ..Default::default()
            },
        ),
        case(
            "restartPolicy OnFailure: restarts below backoffLimit are fine",
            of2.clone(),
            pods(&of2, 1, |p| p.running().restarts(1)),
            Want { deletions: Some(vec![]), conditions: Some(vec![]), ..Default::default() },
        ),
        case(
            "restartPolicy OnFailure with backoffLimit 0: one restart fails",
            on_failure(0),
            pods(&of2, 1, |p| p.running().restarts(1)),
            Want { conditions: Some(vec![(FT, "True", "BackoffLimitExceeded")]), ..Default::default() },
        ),
        case(
            "SuccessCriteriaMet recorded and nothing left: Complete",
            JobBuilder::new("j")
                .start_time(t0())
                .succeeded(1)
                .condition(SCM, "True", "CompletionsReached", "Reached expected number of succeeded pods")
                .build(),
            vec![],
            Want {
                conditions: Some(vec![(SCM, "True", "CompletionsReached"), (DONE, "True", "CompletionsReached")]),
                events: Some(vec!["Completed"]),
                completion_time: Some(true),
                ..Default::default()
            },
        ),
        case(
            "terminal state with unsatisfied expectations: pods deleted, no condition yet",
            j1.clone(),
            cat(vec![pods(&j1, 2, |p| p.failed()), pods(&j1, 1, |p| p.running())]),
            Want {
                deletions: Some(vec![DeletionReason::JobFinishing]),
                conditions: Some(vec![]),
                ..Default::default()
            },
        )
        .unsatisfied(),
    ];
    run(cases);
}

#[test]
fn sync_job_past_deadline() {
    let base = || JobBuilder::new("j").active_deadline(10).start_time(t0());
    let job = base().build();
    let j2 = base().completions(2).parallelism(1).build();
    let cases = vec![
        case(
            "deadline shorter than the pod: pod terminated, FailureTarget DeadlineExceeded",
            job.clone(),
            pods(&job, 1, |p| p.running()),
            Want {
                deletions: Some(vec![DeletionReason::JobFinishing]),
                failed: Some(1),
                conditions: Some(vec![(FT, "True", "DeadlineExceeded")]),
                message: Some((FT, "Job was active longer than specified deadline".into())),
                ..Default::default()
            },
        )
        .now(at(15)),
        case(
            "deadline passes between pods",
            j2.clone(),
            cat(vec![pods(&j2, 1, |p| p.succeeded()), pods(&j2, 1, |p| p.running())]),
            Want {
                succeeded: Some(1),
                failed: Some(1),
                conditions: Some(vec![(FT, "True", "DeadlineExceeded")]),
                ..Default::default()
            },
        )
        .now(at(10)),
        case(
            "deadline before any pod started: Failed at once",
            job.clone(),
            vec![],
            Want {
                creations: Some(0),
                conditions: Some(vec![(FT, "True", "DeadlineExceeded"), (FAILED, "True", "DeadlineExceeded")]),
                events: Some(vec!["DeadlineExceeded"]),
                ..Default::default()
            },
        )
        .now(at(11)),
        case(
            "deadline ahead: requeue when it expires",
            job.clone(),
            pods(&job, 1, |p| p.running()),
            Want { conditions: Some(vec![]), requeue: Some(Some(6)), ..Default::default() },
        )
        .now(at(4)),
        case(
            "backoffLimit takes precedence over the deadline",
            base().backoff_limit(0).build(),
            pods(&job, 1, |p| p.failed()),
            Want {
                conditions: Some(vec![(FT, "True", "BackoffLimitExceeded"), (FAILED, "True", "BackoffLimitExceeded")]),
                ..Default::default()
            },
        )
        .now(at(60)),
        case(
            "a suspended job's deadline does not run",
            base().suspend(true).build(),
            vec![],
            Want { conditions: Some(vec![(SUSP, "True", "JobSuspended")]), requeue: Some(None), ..Default::default() },
        )
        .now(at(60)),
    ];
    run(cases);
}

fn exit_rule(action: &str, op: &str, values: &[i32]) -> PodFailurePolicyRule {
    PodFailurePolicyRule {
        action: action.into(),
        on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
            container_name: None,
            operator: op.into(),
            values: values.to_vec(),
        }),
        on_pod_conditions: None,
    }
}

fn disruption_rule(action: &str) -> PodFailurePolicyRule {
    PodFailurePolicyRule {
        action: action.into(),
        on_exit_codes: None,
        on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
        }]),
    }
}

#[test]
fn sync_job_with_pod_failure_policy() {
    let with = |rules: Vec<PodFailurePolicyRule>, limit: i32| {
        JobBuilder::new("j")
            .completions(2)
            .parallelism(2)
            .backoff_limit(limit)
            .pod_failure_policy(rules)
            .start_time(t0())
            .build()
    };
    let fail_job = with(vec![exit_rule("FailJob", "In", &[5])], 6);
    let ignore = with(vec![disruption_rule("Ignore")], 0);
    let count = with(vec![disruption_rule("Count")], 0);
    let failed5 = pod(&fail_job).name("p5").failed().exit_code("main", 5).build();
    let cases = vec![
        case(
            "FailJob rule on exit code: FailureTarget then Failed with the rule's message",
            fail_job.clone(),
            vec![failed5.clone()],
            Want {
                failed: Some(1),
                conditions: Some(vec![(FT, "True", "PodFailurePolicy"), (FAILED, "True", "PodFailurePolicy")]),
                message: Some((
                    FAILED,
                    "Container main for pod default/p5 failed with exit code 5 matching FailJob rule at index 0".into(),
                )),
                events: Some(vec!["PodFailurePolicy"]),
                ..Default::default()
            },
        ),
        case(
            "FailJob with another active pod: it is terminated and Failed waits",
            fail_job.clone(),
            vec![failed5.clone(), pod(&fail_job).running().build()],
            Want {
                deletions: Some(vec![DeletionReason::JobFinishing]),
                conditions: Some(vec![(FT, "True", "PodFailurePolicy")]),
                ..Default::default()
            },
        ),
        case(
            "exit code not matching: counted as usual and replaced",
            fail_job.clone(),
            vec![pod(&fail_job).failed().exit_code("main", 3).build()],
            Want { failed: Some(1), creations: Some(2), conditions: Some(vec![]), ..Default::default() },
        ),
        case(
            "Ignore on DisruptionTarget: not counted even with backoffLimit 0, pod replaced",
            ignore.clone(),
            vec![pod(&ignore).failed().condition("DisruptionTarget", "True").build()],
            Want {
                failed: Some(0),
                creations: Some(2),
                removals: Some(1),
                uncounted: Some((0, 0)),
                conditions: Some(vec![]),
                ..Default::default()
            },
        ),
        case(
            "Count on DisruptionTarget: counted towards backoffLimit",
            count.clone(),
            vec![pod(&count).failed().condition("DisruptionTarget", "True").build()],
            Want {
                failed: Some(1),
                conditions: Some(vec![(FT, "True", "BackoffLimitExceeded"), (FAILED, "True", "BackoffLimitExceeded")]),
                ..Default::default()
            },
        ),
        case(
            "with a policy, a terminating pod is not failed yet: not counted, not replaced",
            fail_job.clone(),
            vec![pod(&fail_job).running().deleting().build()],
            Want { failed: Some(0), creations: Some(1), terminating: Some(1), removals: Some(0), ..Default::default() },
        ),
    ];
    run(cases);
}

/// An expectation whose watch event never comes (lost to a relist, a pod created and deleted while
/// the watch was down) holds the Job back until it expires, never longer: the plan looks again then.
#[test]
fn expectations_never_stall_a_job() {
    let job = JobBuilder::new("j").completions(4).parallelism(2).start_time(t0()).build();
    let finished = JobBuilder::new("f")
        .completions(1)
        .parallelism(1)
        .start_time(t0())
        .succeeded(1)
        .condition("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods")
        .build();
    let cases = vec![
        case(
            "unobserved pod creation: nothing created, look again when the expectation expires",
            job.clone(),
            pods(&job, 1, |p| p.running()),
            Want { creations: Some(0), requeue: Some(Some(120)), ..Default::default() },
        )
        .unsatisfied()
        .expectations_expire_in(120),
        case(
            "unobserved creation without an expiry (nothing recorded): no requeue from expectations",
            job.clone(),
            pods(&job, 1, |p| p.running()),
            Want { creations: Some(0), requeue: Some(None), ..Default::default() },
        )
        .unsatisfied(),
        case(
            "satisfied expectations: the expiry of a finalizer-free record does not requeue",
            job.clone(),
            pods(&job, 2, |p| p.running()),
            Want { creations: Some(0), requeue: Some(None), ..Default::default() },
        )
        .expectations_expire_in(120),
        case(
            "a pending finalizer removal is not counted again, and looked at again when it expires",
            job.clone(),
            vec![pod(&job).uid("done").succeeded().build(), pod(&job).uid("r").running().build()],
            Want { removals: Some(0), succeeded: Some(0), requeue: Some(Some(30)), ..Default::default() },
        )
        .pending_removal("done")
        .expectations_expire_in(30),
        case(
            "finished Job whose pod's finalizer removal is pending: looked at again when it expires",
            finished.clone(),
            vec![pod(&finished).uid("p").succeeded().build()],
            Want { outcome: Some(Outcome::Finished), removals: Some(0), requeue: Some(Some(45)), ..Default::default() },
        )
        .pending_removal("p")
        .expectations_expire_in(45),
        case(
            "a Job of another controller is never requeued",
            JobBuilder::new("o").managed_by("example.com/other").build(),
            vec![],
            Want { outcome: Some(Outcome::NotManaged), requeue: Some(None), ..Default::default() },
        )
        .unsatisfied()
        .expectations_expire_in(30),
    ];
    run(cases);
}

#[test]
fn track_job_status_and_remove_finalizers() {
    let job = JobBuilder::new("j").completions(10).parallelism(0).start_time(t0()).build();
    let ix = JobBuilder::new("ix").indexed().completions(3).parallelism(0).start_time(t0()).build();
    let cases = vec![
        case(
            "no pods, nothing to do",
            job.clone(),
            vec![],
            Want { removals: Some(0), uncounted: Some((0, 0)), ..Default::default() },
        ),
        case(
            "finished pods are recorded as uncounted, then counted once finalizers are gone",
            job.clone(),
            cat(vec![pods(&job, 2, |p| p.succeeded()), pods(&job, 1, |p| p.failed())]),
            Want {
                uncounted: Some((2, 1)),
                removals: Some(3),
                succeeded: Some(2),
                failed: Some(1),
                ..Default::default()
            },
        ),
        case(
            "uncounted pod whose finalizer is gone is counted at once",
            JobBuilder::new("j").completions(10).parallelism(0).uncounted(&["a"], &["b"]).build(),
            vec![
                pod(&job).uid("a").succeeded().no_finalizer().build(),
                pod(&job).uid("b").failed().no_finalizer().build(),
            ],
            Want {
                uncounted: Some((0, 0)),
                removals: Some(0),
                succeeded: Some(1),
                failed: Some(1),
                ..Default::default()
            },
        ),
        case(
            "uncounted pod deleted from the API is counted",
            JobBuilder::new("j").completions(10).parallelism(0).succeeded(3).uncounted(&["gone"], &[]).build(),
            vec![],
            Want { uncounted: Some((0, 0)), succeeded: Some(4), ..Default::default() },
        ),
        case(
            "pod already uncounted is not added twice",
            JobBuilder::new("j").completions(10).parallelism(0).uncounted(&["x"], &[]).build(),
            vec![pod(&job).uid("x").succeeded().build()],
            Want { uncounted: Some((1, 0)), removals: Some(1), succeeded: Some(1), ..Default::default() },
        ),
        case(
            "pod whose finalizer removal is pending is not counted again",
            JobBuilder::new("j").completions(10).parallelism(0).succeeded(1).build(),
            vec![pod(&job).uid("y").succeeded().build()],
            Want { uncounted: Some((0, 0)), removals: Some(0), succeeded: Some(1), ..Default::default() },
        )
        .pending_removal("y"),
        case(
            "pods without finalizer were counted before",
            JobBuilder::new("j").completions(10).parallelism(0).succeeded(2).build(),
            pods(&job, 2, |p| p.succeeded().no_finalizer()),
            Want { removals: Some(0), succeeded: Some(2), ..Default::default() },
        ),
        case(
            "running pods keep their finalizer",
            JobBuilder::new("j").completions(10).parallelism(2).build(),
            pods(&job, 2, |p| p.running()),
            Want { removals: Some(0), ..Default::default() },
        ),
        case(
            "indexed: a succeeded index goes straight to completedIndexes",
            ix.clone(),
            vec![pod(&ix).index(2).succeeded().build(), pod(&ix).index(0).succeeded().build()],
            Want {
                uncounted: Some((0, 0)),
                removals: Some(2),
                completed_indexes: Some("0,2"),
                succeeded: Some(2),
                ..Default::default()
            },
        ),
        case(
            "indexed: an index completed twice is counted once",
            JobBuilder::new("ix").indexed().completions(3).parallelism(0).completed_indexes("1").succeeded(1).build(),
            vec![pod(&ix).index(1).succeeded().build()],
            Want { completed_indexes: Some("1"), succeeded: Some(1), removals: Some(1), ..Default::default() },
        ),
        case(
            "indexed: succeeded pod beyond completions is not counted",
            ix.clone(),
            vec![pod(&ix).index(5).succeeded().build()],
            Want { completed_indexes: Some(""), succeeded: Some(0), removals: Some(1), ..Default::default() },
        ),
        case(
            "indexed: failed pods are counted through uncounted UIDs",
            ix.clone(),
            vec![pod(&ix).index(1).failed().build()],
            Want { uncounted: Some((0, 1)), failed: Some(1), ..Default::default() },
        ),
        case(
            "indexed: a pod counted failed whose finalizer removal is pending does not complete its index",
            JobBuilder::new("ix").indexed().completions(3).parallelism(0).failed(1).build(),
            vec![pod(&ix).uid("z").index(0).succeeded().build()],
            Want {
                completed_indexes: Some(""),
                succeeded: Some(0),
                failed: Some(1),
                removals: Some(0),
                uncounted: Some((0, 0)),
                ..Default::default()
            },
        )
        .pending_removal("z"),
        case(
            "indexed: a pod recorded as an uncounted failure does not complete its index",
            JobBuilder::new("ix").indexed().completions(3).parallelism(0).uncounted(&[], &["z"]).build(),
            vec![pod(&ix).uid("z").index(0).succeeded().build()],
            Want {
                completed_indexes: Some(""),
                succeeded: Some(0),
                failed: Some(1),
                removals: Some(1),
                ..Default::default()
            },
        ),
        case(
            "at most max_uncounted pods per sync, then requeue",
            job.clone(),
            pods(&job, 5, |p| p.succeeded()),
            Want {
                removals: Some(2),
                uncounted: Some((2, 0)),
                succeeded: Some(2),
                requeue: Some(Some(1)),
                ..Default::default()
            },
        )
        .config(Config { max_uncounted: 2, ..test_config() }),
    ];
    run(cases);
}

#[test]
fn indexed_jobs() {
    use DeletionReason::*;
    let job = JobBuilder::new("ix").indexed().completions(5).parallelism(3).start_time(t0()).build();
    let cases = vec![
        case(
            "indexed job start creates the lowest indexes",
            job.clone(),
            vec![],
            Want { created_indexes: Some(vec![0, 1, 2]), active: Some(3), ..Default::default() },
        ),
        case(
            "indexed job skips completed and active indexes",
            JobBuilder::new("ix")
                .indexed()
                .completions(5)
                .parallelism(3)
                .completed_indexes("0,2")
                .start_time(t0())
                .build(),
            vec![pod(&job).index(1).running().build()],
            Want {
                created_indexes: Some(vec![3, 4]),
                succeeded: Some(2),
                completed_indexes: Some("0,2"),
                ..Default::default()
            },
        ),
        case(
            "duplicate index: all but one deleted, no creation in the same sync",
            job.clone(),
            vec![
                pod(&job).index(1).ready().build(),
                pod(&job).index(1).running().build(),
                pod(&job).index(0).running().build(),
            ],
            Want { deletions: Some(vec![DuplicateIndex]), creations: Some(0), ..Default::default() },
        ),
        case(
            "pod without a completion index is deleted",
            job.clone(),
            vec![pod(&job).running().build()],
            Want { deletions: Some(vec![MissingIndex]), ..Default::default() },
        ),
        case(
            "elastic scale down removes the highest indexes",
            JobBuilder::new("ix").indexed().completions(2).parallelism(2).start_time(t0()).build(),
            (0..4).map(|i| pod(&job).index(i).running().build()).collect(),
            Want { deletions: Some(vec![IndexOutOfRange, IndexOutOfRange]), active: Some(2), ..Default::default() },
        ),
        case(
            "indexed job completes when every index succeeded",
            job.clone(),
            (0..5).map(|i| pod(&job).index(i).succeeded().build()).collect(),
            Want {
                completed_indexes: Some("0-4"),
                succeeded: Some(5),
                conditions: Some(vec![(SCM, "True", "CompletionsReached"), (DONE, "True", "CompletionsReached")]),
                ..Default::default()
            },
        ),
        case(
            "podReplacementPolicy Failed: a terminating pod keeps its index",
            JobBuilder::new("ix")
                .indexed()
                .completions(5)
                .parallelism(3)
                .pod_replacement_policy("Failed")
                .start_time(t0())
                .build(),
            vec![pod(&job).index(0).running().deleting().build()],
            Want { created_indexes: Some(vec![1, 2]), terminating: Some(1), ..Default::default() },
        ),
    ];
    run(cases);
}

#[test]
fn backoff_limit_per_index() {
    let per = |limit: i32| {
        JobBuilder::new("pi").indexed().completions(3).parallelism(3).backoff_limit_per_index(limit).start_time(t0())
    };
    let job = per(1).build();
    let cases = vec![
        case(
            "failure within the limit: index retried, failure count carried, finalizer kept until then",
            job.clone(),
            vec![
                pod(&job).index(0).failed().finished_at(at(0)).build(),
                pod(&job).index(1).running().build(),
                pod(&job).index(2).running().build(),
            ],
            Want {
                created_indexes: Some(vec![0]),
                removals: Some(0),
                failed_indexes: Some(Some("")),
                ..Default::default()
            },
        ),
        case(
            "failure count reaches the limit: index failed, not retried",
            job.clone(),
            vec![pod(&job).index(0).failed().index_failure_count(1).build(), pod(&job).index(1).running().build()],
            Want {
                created_indexes: Some(vec![2]),
                failed_indexes: Some(Some("0")),
                failed: Some(1),
                conditions: Some(vec![]),
                ..Default::default()
            },
        ),
        case(
            "per-index backoff delays the retry",
            job.clone(),
            vec![
                pod(&job).index(0).failed().finished_at(at(95)).build(),
                pod(&job).index(1).running().build(),
                pod(&job).index(2).running().build(),
            ],
            Want { creations: Some(0), requeue: Some(Some(5)), ..Default::default() },
        ),
        case(
            "maxFailedIndexes exceeded fails the job",
            per(0).max_failed_indexes(0).build(),
            vec![pod(&job).index(0).failed().build(), pod(&job).index(1).running().build()],
            Want {
                failed_indexes: Some(Some("0")),
                deletions: Some(vec![DeletionReason::JobFinishing]),
                conditions: Some(vec![(FT, "True", "MaxFailedIndexesExceeded")]),
                message: Some((FT, "Job has exceeded the specified maximal number of failed indexes".into())),
                ..Default::default()
            },
        ),
        case(
            "every index finished with some failed: FailedIndexes",
            per(0).completed_indexes("1,2").succeeded(2).build(),
            vec![pod(&job).index(0).failed().build()],
            Want {
                failed_indexes: Some(Some("0")),
                conditions: Some(vec![(FT, "True", "FailedIndexes"), (FAILED, "True", "FailedIndexes")]),
                message: Some((FAILED, "Job has failed indexes".into())),
                events: Some(vec!["FailedIndexes"]),
                ..Default::default()
            },
        ),
        case(
            "FailIndex rule fails the index at once",
            per(5).pod_failure_policy(vec![exit_rule("FailIndex", "In", &[3])]).build(),
            vec![pod(&job).index(1).failed().exit_code("main", 3).build()],
            Want { failed_indexes: Some(Some("1")), created_indexes: Some(vec![0, 2]), ..Default::default() },
        ),
    ];
    run(cases);
    // The replacement carries the failure count of the pod it replaces.
    let p = plan(
        &job,
        &[pod(&job).index(0).failed().index_failure_count(0).finished_at(at(0)).build()],
        at(100),
        &test_config(),
    );
    let c = p.creations.iter().find(|c| c.index == Some(0)).expect("index 0 retried");
    let pod = c.pod(&job);
    let ann = pod.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann[JOB_INDEX_FAILURE_COUNT], "1");
}

#[test]
fn success_policy() {
    let sp =
        |rules| JobBuilder::new("sp").indexed().completions(3).parallelism(3).success_policy(rules).start_time(t0());
    let rule = |ix: Option<&str>, n: Option<i32>| SuccessPolicyRule {
        succeeded_indexes: ix.map(Into::into),
        succeeded_count: n,
    };
    let job = sp(vec![rule(Some("0"), None)]).build();
    let cases = vec![
        case(
            "succeededIndexes met: SuccessCriteriaMet, remaining pods terminated, Complete waits",
            job.clone(),
            vec![
                pod(&job).index(0).succeeded().build(),
                pod(&job).index(1).running().build(),
                pod(&job).index(2).ready().build(),
            ],
            Want {
                deletions: Some(vec![DeletionReason::JobFinishing; 2]),
                conditions: Some(vec![(SCM, "True", "SuccessPolicy")]),
                message: Some((SCM, "Matched rules at index 0".into())),
                terminating: Some(2),
                failed: Some(0),
                succeeded: Some(1),
                ..Default::default()
            },
        ),
        case(
            "SuccessCriteriaMet and nothing terminating: Complete with the policy's reason",
            sp(vec![rule(Some("0"), None)])
                .completed_indexes("0")
                .succeeded(1)
                .condition(SCM, "True", "SuccessPolicy", "Matched rules at index 0")
                .build(),
            vec![],
            Want {
                conditions: Some(vec![(SCM, "True", "SuccessPolicy"), (DONE, "True", "SuccessPolicy")]),
                message: Some((DONE, "Matched rules at index 0".into())),
                events: Some(vec!["Completed"]),
                ..Default::default()
            },
        ),
        case(
            "succeededCount not yet reached",
            sp(vec![rule(None, Some(2))]).build(),
            vec![pod(&job).index(0).succeeded().build(), pod(&job).index(1).running().build()],
            Want { conditions: Some(vec![]), created_indexes: Some(vec![2]), ..Default::default() },
        ),
        case(
            "second rule's succeededCount reached",
            sp(vec![rule(Some("2"), None), rule(None, Some(2))]).build(),
            vec![pod(&job).index(0).succeeded().build(), pod(&job).index(1).succeeded().build()],
            Want {
                conditions: Some(vec![(SCM, "True", "SuccessPolicy"), (DONE, "True", "SuccessPolicy")]),
                message: Some((DONE, "Matched rules at index 1".into())),
                ..Default::default()
            },
        ),
    ];
    run(cases);
}

#[test]
fn active_pods_are_removed_in_upstream_order() {
    let job = JobBuilder::new("j").completions(10).parallelism(1).start_time(t0()).build();
    let ps = vec![
        pod(&job).name("ready-old").ready().build(),
        pod(&job).name("running-not-ready").running().build(),
        pod(&job).name("pending-scheduled").node("n").pending().build(),
        pod(&job).name("unscheduled").pending().build(),
        pod(&job).name("ready-new").running().condition_at("Ready", "True", at(50)).build(),
    ];
    let p = plan(&job, &ps, at(100), &test_config());
    let names: Vec<&str> = p.deletions.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec!["unscheduled", "pending-scheduled", "running-not-ready", "ready-new"]);
    assert!(p.deletions.iter().all(|d| d.remove_finalizer_first));
}

#[test]
fn slow_start_batches_double() {
    assert_eq!(slow_start_batches(0), Vec::<usize>::new());
    assert_eq!(slow_start_batches(1), vec![1]);
    assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
    assert_eq!(slow_start_batches(500).iter().sum::<usize>(), 500);
}

#[test]
fn partial_finalizer_removal_counts_only_removed_pods() {
    let job = JobBuilder::new("j").completions(10).parallelism(0).build();
    let ps = vec![pod(&job).uid("a").succeeded().build(), pod(&job).uid("b").succeeded().build()];
    let p = plan(&job, &ps, at(1), &test_config());
    assert!(p.status_changed);
    let w = p.after_finalizers(&["a".to_string()].into()).expect("a counted");
    assert_eq!(w.status.succeeded, Some(1));
    assert_eq!(w.status.uncounted_terminated_pods.unwrap().succeeded, Some(vec!["b".to_string()]));
    assert!(p.after_finalizers(&BTreeSet::new()).is_none(), "nothing removed: nothing to write");
}

#[test]
fn orphan_finalizers() {
    let cfg = test_config();
    let job = JobBuilder::new("j").build();
    let done = JobBuilder::new("j").condition(DONE, "True", "", "").build();
    let other = JobBuilder::new("j").managed_by("someone/else").build();
    let p = pod(&job).running().build();
    assert!(!orphan_needs_finalizer_removal(&p, Some(&job), &cfg), "adopted by a live job");
    assert!(orphan_needs_finalizer_removal(&p, Some(&done), &cfg), "job finished");
    assert!(orphan_needs_finalizer_removal(&p, None, &cfg), "job gone");
    assert!(!orphan_needs_finalizer_removal(&p, Some(&other), &cfg), "job of another controller");
    assert!(orphan_needs_finalizer_removal(&pod(&job).orphan().build(), None, &cfg), "no owner");
    assert!(!orphan_needs_finalizer_removal(&pod(&job).no_finalizer().build(), None, &cfg));
    let _ = Duration::ZERO;
}

#[test]
fn failed_pod_operations_correct_the_counters() {
    let job = JobBuilder::new("j").completions(10).parallelism(4).start_time(t0()).build();
    let mut p = plan(&job, &[] as &[Pod], at(1), &test_config());
    assert_eq!(p.creations.len(), 4);
    // Slow start: the second batch (2 pods) failed, the last one was skipped.
    p.account_pod_ops(3, &BTreeSet::new());
    assert_eq!(p.status.active, Some(1));

    let many = pods(&job, 6, |p| p.ready());
    let mut p = plan(&job, &many, at(1), &test_config());
    assert_eq!(p.deletions.len(), 2);
    let failed: BTreeSet<String> = [p.deletions[0].uid.clone()].into();
    p.account_pod_ops(0, &failed);
    assert_eq!((p.status.active, p.status.ready, p.status.terminating), (Some(5), Some(5), Some(1)));
}

#[test]
fn a_status_the_server_normalised_is_not_written_again() {
    let job = JobBuilder::new("j").completions(2).parallelism(1).start_time(t0()).build();
    let ps = pods(&job, 1, |p| p.running());
    let p = plan(&job, &ps, at(1), &test_config());
    assert!(p.status_changed, "first sync records active/ready/terminating");
    // The server dropped the empty uncounted lists and zero counters.
    let mut written = p.status.clone();
    written.uncounted_terminated_pods = None;
    written.terminating = None;
    let job = Job { status: Some(written), ..job };
    let again = plan(&job, &ps, at(2), &test_config());
    assert!(!again.status_changed);
    assert!(again.after_finalizers(&BTreeSet::new()).is_none());
}

#[test]
fn upstream_event_wording() {
    use super::events::*;
    let about_pod = |e: JobEvent| JobEvent { pod: Some("j-abcde".into()), ..e };
    assert_eq!(created("j-abcde", None), about_pod(JobEvent::normal("SuccessfulCreate", "Created pod: j-abcde")));
    assert_eq!(deleted("j-abcde", None), about_pod(JobEvent::normal("SuccessfulDelete", "Deleted pod: j-abcde")));
    let e = failed_create("quota exceeded");
    assert_eq!(
        (e.type_.as_str(), e.reason.as_str(), e.message.as_str()),
        ("Warning", "FailedCreate", "Error creating: quota exceeded")
    );
    assert_eq!(failed_delete("boom").message, "Error deleting: boom");
}

#[test]
fn edge_cases() {
    let job = JobBuilder::new("j").completions(2).parallelism(2).start_time(t0()).build();
    let cases = vec![
        case(
            "more succeeded pods than completions: Complete with a TooManySucceededPods warning",
            job.clone(),
            pods(&job, 3, |p| p.succeeded()),
            Want {
                succeeded: Some(3),
                conditions: Some(vec![(SCM, "True", "CompletionsReached"), (DONE, "True", "CompletionsReached")]),
                events: Some(vec!["TooManySucceededPods", "Completed"]),
                ..Default::default()
            },
        ),
        case(
            "a succeeded pod being deleted counts as succeeded, not failed",
            job.clone(),
            pods(&job, 1, |p| p.succeeded().deleting()),
            Want {
                succeeded: Some(1),
                failed: Some(0),
                terminating: Some(0),
                creations: Some(1),
                ..Default::default()
            },
        ),
        case(
            "a job being deleted still counts its failed pods",
            JobBuilder::new("j").completions(2).parallelism(2).start_time(t0()).deleting().build(),
            pods(&job, 2, |p| p.failed()),
            Want { failed: Some(2), creations: Some(0), removals: Some(2), ..Default::default() },
        ),
        case(
            "terminating job: ready pods deleted lower ready",
            JobBuilder::new("j").completions(2).parallelism(2).backoff_limit(0).start_time(t0()).build(),
            cat(vec![pods(&job, 1, |p| p.failed()), pods(&job, 1, |p| p.ready())]),
            Want {
                deletions: Some(vec![DeletionReason::JobFinishing]),
                ready: Some(0),
                active: Some(0),
                terminating: Some(1),
                failed: Some(2),
                ..Default::default()
            },
        ),
        case(
            "suspended job with a finished pod still counts it",
            JobBuilder::new("j").completions(2).parallelism(2).suspend(true).start_time(t0()).build(),
            pods(&job, 1, |p| p.succeeded()),
            Want { succeeded: Some(1), deletions: Some(vec![]), creations: Some(0), ..Default::default() },
        ),
    ];
    run(cases);
}

#[test]
fn planned_creations_hold_no_pod_and_build_the_templates_pod() {
    // A wide Job's sync plans 500 creations: each used to hold a whole pod (the template copied),
    // all at once, while 50 at most are in flight. A creation is now its index and counts only.
    assert!(std::mem::size_of::<PodCreation>() <= 24, "{} bytes", std::mem::size_of::<PodCreation>());
    for job in [
        JobBuilder::new("big").completions(1000).parallelism(1000).build(),
        JobBuilder::new("wide").indexed().completions(600).parallelism(600).build(),
    ] {
        let p = plan::<Pod>(&job, &[], at(0), &test_config());
        assert_eq!(p.creations.len(), 500);
        let indexed = job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed");
        let mut indexes = BTreeSet::new();
        for c in &p.creations {
            // The pod a creation builds is its index's pod of this Job's template.
            let pod = c.pod(&job);
            let ix = pod.metadata.annotations.as_ref().and_then(|a| a.get(JOB_COMPLETION_INDEX)).cloned();
            assert_eq!(ix, c.index.map(|i| i.to_string()));
            let prefix = match c.index {
                Some(i) => format!("{}-{i}-", job.metadata.name.as_deref().unwrap_or_default()),
                None => format!("{}-", job.metadata.name.as_deref().unwrap_or_default()),
            };
            assert_eq!(pod.metadata.generate_name.as_deref(), Some(prefix.as_str()));
            assert_eq!(c.index.is_some(), indexed);
            if let Some(i) = c.index {
                assert!(indexes.insert(i), "index {i} planned twice");
            }
        }
        if indexed {
            assert_eq!(indexes, (0..500).collect::<BTreeSet<i32>>(), "the lowest 500 indexes");
        }
    }
}
