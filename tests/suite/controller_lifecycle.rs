//! The Job controller and the TTL controller over a Job's lifetime: suspension, TTL deletion,
//! deletion under each propagation policy, pods deleted behind the controller's back, status write
//! conflicts, Jobs it must not (or cannot) act on.

use crate::controller_support;

use std::time::Duration;

use controller_support::*;
use jobwright::apiserver::testkit::TestApiServer;
use jobwright::job::controller::{CrdJobs, Options};
use jobwright::metrics::ErrorLabels;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PropagationPolicy};
use serde_json::json;

fn counts(job: &Job) -> (i32, i32, i32) {
    let s = job.status.as_ref().unwrap();
    (s.active.unwrap_or(0), s.succeeded.unwrap_or(0), s.failed.unwrap_or(0))
}

fn active_at_least(n: i32) -> impl Fn(Option<&Job>) -> bool {
    move |j: Option<&Job>| j.and_then(|j| j.status.as_ref()).and_then(|s| s.active).unwrap_or(0) >= n
}

async fn suspended_job_creates_nothing_until_resumed(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let mut log = PodLog::start(&s, "default");
    let _ctl = start_controller(c.clone());
    let job = jobs.create(&job("sus", json!({"suspend": true, "completions": 2}))).await;
    let suspended = jobs.wait_condition("sus", "Suspended").await;
    assert_eq!(condition(&suspended, "Suspended").reason.as_deref(), Some("JobSuspended"));
    assert!(job_pods(&c, &job).await.is_empty(), "no pod while suspended");
    assert!(suspended.status.as_ref().unwrap().start_time.is_none());
    jobs.patch("sus", json!({"spec": {"suspend": false}})).await.unwrap();
    let done = jobs.wait_condition("sus", "Complete").await;
    assert_eq!(counts(&done), (0, 2, 0));
    let cond = condition(&done, "Suspended");
    assert_eq!((cond.status.as_str(), cond.reason.as_deref()), ("False", Some("JobResumed")));
    assert_eq!(log.created_for(&job), 2);
}

async fn work_queue_job_completes_when_a_pod_succeeds(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let mut log = PodLog::start(&s, "default");
    let _ctl = start_controller(c.clone());
    let job = jobs.create(&job("wq", json!({"parallelism": 3}))).await;
    let done = jobs.wait_condition("wq", "Complete").await;
    let (active, succeeded, failed) = counts(&done);
    assert_eq!(active, 0);
    assert!(succeeded >= 1 && failed == 0);
    assert_eq!(succeeded as usize, log.created_for(&job), "every pod created was counted once");
    wait_no_tracking_finalizer(&c).await;
}

async fn ttl_after_finished_deletes_the_job_and_its_pods(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let _ctl = start_controller(c.clone());
    let zero = jobs.create(&job("ttl0", json!({"ttlSecondsAfterFinished": 0}))).await;
    let one = jobs.create(&job("ttl1", json!({"ttlSecondsAfterFinished": 1}))).await;
    let keep = jobs.create(&job("keep", json!({}))).await;
    for j in [&zero, &one] {
        jobs.wait_deleted(&j.name_any(), &j.uid().unwrap()).await;
    }
    // The Job without a TTL stays (it completed at the same time as the others).
    let kept = jobs.wait_condition("keep", "Complete").await;
    assert_eq!(kept.uid(), keep.uid());
    assert!(jobs.get_opt("keep").await.is_some());
    // Background propagation: the pods of the deleted Jobs go too.
    for j in [&zero, &one] {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !job_pods(&c, j).await.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "pods of {} not collected", j.name_any());
            tokio::time::sleep(Duration::from_millis(50)).await; // polling the GC, not synchronising
        }
    }
}

async fn pod_deleted_behind_the_controllers_back_is_still_counted(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, n| if n == 0 { Outcome::Run } else { Outcome::Succeed }).await;
    let mut log = PodLog::start(&s, "default");
    let _ctl = start_controller(c.clone());
    let job = jobs.create(&job("behind", json!({"backoffLimit": 3}))).await;
    jobs.wait("behind", "one active pod", active_at_least(1)).await;
    let victim = job_pods(&c, &job).await.pop().unwrap();
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    pods.delete(&victim.name_any(), &DeleteParams::default()).await.unwrap();
    let done = jobs.wait_condition("behind", "Complete").await;
    assert_eq!(counts(&done), (0, 1, 1), "the deleted pod is counted as failed, its replacement succeeded");
    assert_eq!(log.created_for(&job), 2);
    wait_no_tracking_finalizer(&c).await;
}

async fn status_conflict_storm_still_converges(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let mut log = PodLog::start(&s, "default");
    let (_ctl, metrics) = start_controller_with_metrics(c.clone());
    let conflicts = {
        let m = metrics.clone();
        move || m.reconcile_errors.get_or_create(&ErrorLabels { error: "conflict".into() }).get()
    };
    let job = jobs.create(&job("storm", json!({"completions": 10, "parallelism": 5}))).await;
    // The storm: the Job is touched every 3 ms until its status writes have met 20 conflicts
    // (bounded by conflicts, not time, so a slow machine gets the same storm, not a longer one).
    let toucher = {
        let (jobs, conflicts) = (jobs.clone(), conflicts.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while conflicts() < STORM_CONFLICTS {
                n += 1;
                let p = json!({"metadata": {"annotations": {"touched": n.to_string()}}});
                let _ = jobs.patch("storm", p).await;
                tokio::time::sleep(Duration::from_millis(3)).await; // pacing the load, not synchronising
            }
        })
    };
    let done = jobs.wait_condition("storm", "Complete").await;
    toucher.abort();
    assert_eq!(counts(&done), (0, 10, 0));
    assert_eq!(log.created_for(&job), 10);
    assert!(done.annotations().contains_key("touched"));
    eprintln!("status writes that met a conflict during the storm: {}", conflicts());
    assert!(conflicts() >= 1, "the touches never made a status write conflict: no storm was tested");
}

/// Status-write conflicts after which the storm stops.
const STORM_CONFLICTS: u64 = 20;

async fn deletion_leaves_no_finalizer(kind: Kind, policy: PropagationPolicy) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k =
        kubelet(
            c.clone(),
            "default",
            |p, _| if p.name_any().starts_with("after") { Outcome::Succeed } else { Outcome::Run },
        )
        .await;
    let (_ctl, metrics) = start_controller_with_metrics(c.clone());
    let job = jobs.create(&job("del", json!({"parallelism": 3, "completions": 3}))).await;
    jobs.wait("del", "three active pods", active_at_least(3)).await;
    jobs.delete("del", policy.clone()).await;
    jobs.wait_deleted("del", &job.uid().unwrap()).await;
    wait_no_tracking_finalizer(&c).await;
    // Events of the deleted Job's pods must not leave it waiting in the queue forever (it is never
    // synced again). A later Job's pods come through the same pod watch after them, so once it has
    // completed and released its pods, the queue has seen them all and must drain.
    jobs.create(&controller_support::job("after", json!({}))).await;
    jobs.wait_condition("after", "Complete").await;
    wait_no_tracking_finalizer(&c).await;
    wait_queue_empty(&metrics).await;
    if matches!(policy, PropagationPolicy::Orphan) {
        let pods = job_pods(&c, &job).await;
        assert_eq!(pods.len(), 3, "orphaned pods stay");
        assert!(pods.iter().all(|p| p.owner_references().is_empty()));
    }
}

async fn deletion_background_leaves_no_tracking_finalizer(kind: Kind) {
    deletion_leaves_no_finalizer(kind, PropagationPolicy::Background).await;
}

async fn deletion_foreground_leaves_no_tracking_finalizer(kind: Kind) {
    deletion_leaves_no_finalizer(kind, PropagationPolicy::Foreground).await;
}

async fn deletion_orphan_leaves_no_tracking_finalizer(kind: Kind) {
    deletion_leaves_no_finalizer(kind, PropagationPolicy::Orphan).await;
}

async fn jobs_managed_by_another_controller_are_left_alone(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let _ctl = start_controller(c.clone());
    let other = jobs.create(&job("theirs", json!({"managedBy": "example.com/other"}))).await;
    jobs.create(&job("ours", json!({}))).await;
    jobs.wait_condition("ours", "Complete").await;
    assert!(job_pods(&c, &other).await.is_empty());
    let theirs = jobs.get_opt("theirs").await.unwrap();
    assert!(theirs.status.as_ref().is_none_or(|s| s.start_time.is_none() && s.conditions.is_none()));
}

async fn rejected_pod_template_gets_an_event_and_does_not_stall_other_jobs(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let _ctl = start_controller(c.clone());
    // A valid Job whose pods are not: upstream checks image whitespace for pods only
    // (`validateContainersOnlyForPod`), so the template passes and every pod is a 422.
    let tpl = json!({"spec": {"containers": [{"name": "main", "image": "busybox "}]}});
    let bad = "bad";
    jobs.create(&job(bad, json!({"completions": 2, "template": tpl}))).await;
    jobs.create(&job("fine", json!({"completions": 3}))).await;
    let done = jobs.wait_condition("fine", "Complete").await;
    assert_eq!(counts(&done), (0, 3, 0));
    let reason = |e: &k8s_openapi::api::core::v1::Event| e.reason.as_deref() == Some("FailedCreate");
    let evs = wait_events(&c, bad, |evs| evs.iter().any(reason)).await;
    let e = evs.iter().find(|e| reason(e)).expect("awaited");
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    let msg = e.message.as_deref().unwrap_or("");
    assert!(
        msg.starts_with("Error creating: ") && msg.contains("must not have leading or trailing whitespace"),
        "{msg}"
    );
}

async fn matching_orphan_pod_is_adopted_and_counted(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    // parallelism 0: the controller creates nothing, only the adopted pod can complete the Job.
    // The controller starts once the stray pod has finished: adopted while still running, it would
    // be an active pod beyond parallelism 0 and deleted, as upstream deletes it (that race made
    // this test fail under load).
    let job = jobs.create(&job("adopter", json!({"parallelism": 0, "completions": 1}))).await;
    let uid = job.uid().unwrap();
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "stray", "labels": {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "adopter"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
    }))
    .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    pods.create(&Default::default(), &orphan).await.unwrap();
    let succeeded =
        |p: Option<&Pod>| p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Succeeded");
    tokio::time::timeout(WAIT, kube::runtime::wait::await_condition(pods.clone(), "stray", succeeded))
        .await
        .expect("the kubelet finishes the stray pod")
        .unwrap();
    let _ctl = start_controller(c.clone());
    let done = jobs.wait_condition("adopter", "Complete").await;
    assert_eq!(counts(&done), (0, 1, 0));
    let stray = pods.get("stray").await.unwrap();
    let owner = stray.owner_references().iter().find(|r| r.controller == Some(true)).expect("adopted");
    assert_eq!(owner.uid, uid);
    assert!(stray.finalizers().is_empty(), "the finalizer added on adoption was removed once counted");
}

async fn ttl_changed_after_finishing_is_honoured(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let _ctl = start_controller(c.clone());
    let j = jobs.create(&job("later", json!({"ttlSecondsAfterFinished": 3600}))).await;
    jobs.wait_condition("later", "Complete").await;
    assert!(jobs.get_opt("later").await.is_some(), "an hour to go");
    let p = json!({"spec": {"ttlSecondsAfterFinished": 0}});
    jobs.patch("later", p).await.unwrap();
    jobs.wait_deleted("later", &j.uid().unwrap()).await;
}

/// Default settings: batch/v1 Jobs only if `managedBy` names jobwright; jobwright.dev/v1 Jobs unless
/// `managedBy` names another controller (there is no built-in one for that kind).
async fn default_settings_manage_only_jobs_naming_this_controller(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let config = jobwright::job::Config { manage_all: false, ..test_config() };
    let _ctl = start_controller_with(c.clone(), config);
    let unset = jobs.create(&job("unset", json!({}))).await;
    let ours = json!({"managedBy": jobwright::job::config::MANAGED_BY, "completions": 2});
    jobs.create(&job("ours", ours)).await;
    let done = jobs.wait_condition("ours", "Complete").await;
    assert_eq!(counts(&done), (0, 2, 0));
    match kind {
        Kind::Batch => {
            assert!(job_pods(&c, &unset).await.is_empty(), "a Job without managedBy is the built-in controller's")
        }
        // No built-in controller reconciles jobwright.dev/v1 Jobs: without managedBy they are ours.
        Kind::Crd => assert_eq!(counts(&jobs.wait_condition("unset", "Complete").await), (0, 1, 0)),
    }
}

async fn pod_relabelled_out_of_the_selector_is_released_and_replaced(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Run).await;
    let _ctl = start_controller(c.clone());
    let job = jobs.create(&job("relabel", json!({"parallelism": 1, "completions": 1}))).await;
    jobs.wait("relabel", "one active pod", active_at_least(1)).await;
    let pod = job_pods(&c, &job).await.pop().unwrap();
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    let p = json!({"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "someone-else"}}});
    pods.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(p)).await.unwrap();
    // The controller releases it (no controller ref), the orphan path drops its finalizer, and a
    // replacement is created.
    wait_no_tracking_finalizer_on(&c, &pod.name_any()).await;
    let released = pods.get(&pod.name_any()).await.unwrap();
    assert!(released.owner_references().is_empty(), "{:?}", released.owner_references());
    let deadline = tokio::time::Instant::now() + WAIT;
    while job_pods(&c, &job).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no replacement pod");
        tokio::time::sleep(Duration::from_millis(50)).await; // polling a list, not synchronising
    }
}

both_kinds!(
    suspended_job_creates_nothing_until_resumed,
    work_queue_job_completes_when_a_pod_succeeds,
    ttl_after_finished_deletes_the_job_and_its_pods,
    pod_deleted_behind_the_controllers_back_is_still_counted,
    status_conflict_storm_still_converges,
    deletion_background_leaves_no_tracking_finalizer,
    deletion_foreground_leaves_no_tracking_finalizer,
    deletion_orphan_leaves_no_tracking_finalizer,
    jobs_managed_by_another_controller_are_left_alone,
    rejected_pod_template_gets_an_event_and_does_not_stall_other_jobs,
    matching_orphan_pod_is_adopted_and_counted,
    ttl_changed_after_finishing_is_honoured,
    default_settings_manage_only_jobs_naming_this_controller,
    pod_relabelled_out_of_the_selector_is_released_and_replaced,
);

/// Both kinds at once, with the same name: one pod reflector feeds both controllers, each Job gets
/// exactly its own pods (owned by the right kind) and `--crd-jobs auto` follows discovery.
#[tokio::test]
async fn both_kinds_side_by_side_with_the_same_name() {
    let s = TestApiServer::start().await;
    let c = s.client();
    assert!(!jobwright::job::controller::crd_served(&c).await.unwrap(), "not served before the CRD");
    let crd = Jobs::new(&c, Kind::Crd).await;
    assert!(jobwright::job::controller::crd_served(&c).await.unwrap(), "served once installed");
    let batch = Jobs::new(&c, Kind::Batch).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let mut log = PodLog::start(&s, "default");
    let _ctl = start_controller(c.clone());
    let b = batch.create(&job("same", json!({"completions": 3, "parallelism": 2}))).await;
    let w = crd.create(&job("same", json!({"completions": 2, "parallelism": 2}))).await;
    assert_ne!(b.uid(), w.uid());
    assert_eq!(counts(&batch.wait_condition("same", "Complete").await), (0, 3, 0));
    assert_eq!(counts(&crd.wait_condition("same", "Complete").await), (0, 2, 0));
    assert_eq!((log.created_for(&b), log.created_for(&w)), (3, 2), "one pod per completion of each Job, no extra");
    for (j, api_version, n) in [(&b, "batch/v1", 3), (&w, jobwright::crd::API_VERSION, 2)] {
        let pods = job_pods(&c, j).await;
        assert_eq!(pods.len(), n);
        for p in &pods {
            let owner = p.owner_references().iter().find(|r| r.controller == Some(true)).unwrap();
            assert_eq!((owner.api_version.as_str(), owner.uid.as_str()), (api_version, j.uid().unwrap().as_str()));
        }
    }
    wait_no_tracking_finalizer(&c).await;
}

/// `--crd-jobs auto` started without the CRD: once it is installed, discovery serves it and the
/// controllers restart with both kinds.
#[tokio::test]
async fn crd_installed_after_start_is_reconciled_with_auto() {
    let s = TestApiServer::start().await;
    let c = s.client();
    let batch = Jobs::new(&c, Kind::Batch).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let _ctl = start_controller_opts(
        c.clone(),
        Options {
            config: test_config(),
            crd_jobs: CrdJobs::Auto,
            crd_recheck: Duration::from_millis(100),
            ..Default::default()
        },
    );
    batch.create(&job("before", json!({"completions": 2}))).await;
    let before = batch.wait_condition("before", "Complete").await;
    assert_eq!(counts(&before), (0, 2, 0));
    // The CRD arrives while the controller runs: its Jobs are reconciled without a restart, and
    // batch/v1 Jobs still are.
    let custom = Jobs::new(&c, Kind::Crd).await;
    custom.create(&job("after", json!({"completions": 2}))).await;
    assert_eq!(counts(&custom.wait_condition("after", "Complete").await), (0, 2, 0));
    batch.create(&job("again", json!({"completions": 1}))).await;
    assert_eq!(counts(&batch.wait_condition("again", "Complete").await), (0, 1, 0));
    // The restart relisted: the first Job's pods were not created again.
    assert_eq!(job_pods(&c, &before).await.len(), 2);
}

/// `--crd-jobs true` on an API server without the CRD: batch/v1 Jobs still run and the orphan path
/// (which does not wait for the unserved kind's cache) still removes finalizers.
#[tokio::test]
async fn crd_jobs_forced_on_without_the_crd_still_runs_batch_jobs() {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, Kind::Batch).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Run).await;
    let _ctl = start_controller_opts(
        c.clone(),
        Options { config: test_config(), crd_jobs: CrdJobs::Enabled, ..Default::default() },
    );
    let job = jobs.create(&job("forced", json!({"parallelism": 2, "completions": 2}))).await;
    jobs.wait("forced", "two active pods", active_at_least(2)).await;
    jobs.delete("forced", PropagationPolicy::Orphan).await;
    jobs.wait_deleted("forced", &job.uid().unwrap()).await;
    wait_no_tracking_finalizer(&c).await;
}

/// A `jobwright.dev/v1` Job whose spec batch/v1 validation refuses (nothing but the CRD schema
/// checks a custom resource): no pod is created from it, it gets a Warning `InvalidSpec` Event
/// naming the field and the rule, and a valid Job beside it completes. Fixing the spec syncs it.
#[tokio::test]
async fn invalid_custom_job_spec_gets_an_event_and_creates_nothing() {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, Kind::Crd).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let mut log = PodLog::start(&s, "default");
    let _ctl = start_controller(c.clone());
    let bad = jobs.create(&job("bad-spec", json!({"completions": 2, "parallelism": -1}))).await;
    let fine = jobs.create(&job("fine", json!({"completions": 2}))).await;
    assert_eq!(counts(&jobs.wait_condition("fine", "Complete").await), (0, 2, 0));
    let reason = |e: &k8s_openapi::api::core::v1::Event| e.reason.as_deref() == Some("InvalidSpec");
    let evs = wait_events(&c, "bad-spec", |evs| evs.iter().any(reason)).await;
    let event = evs.into_iter().find(reason).expect("awaited");
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let msg = event.message.unwrap_or_default();
    assert!(msg.contains("spec.parallelism: Invalid value: -1: must be greater than or equal to 0"), "{msg}");
    assert!(job_pods(&c, &bad).await.is_empty(), "no pod from an invalid spec");
    assert_eq!((log.created_for(&bad), log.created_for(&fine)), (0, 2));
    // Fixed, it runs.
    jobs.patch("bad-spec", json!({"spec": {"parallelism": 2}})).await.unwrap();
    assert_eq!(counts(&jobs.wait_condition("bad-spec", "Complete").await), (0, 2, 0));
}
