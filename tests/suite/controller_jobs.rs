//! The Job controller against the in-process API server, with a scripted kubelet: each test names
//! the issue 3 behaviour it covers.

use crate::controller_support;

use controller_support::*;
use jobwright::apiserver::testkit::TestApiServer;
use jobwright::job::labels::{CONTROLLER_UID, JOB_COMPLETION_INDEX, JOB_NAME, JOB_TRACKING_FINALIZER};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

fn counts(job: &k8s_openapi::api::batch::v1::Job) -> (i32, i32, i32) {
    let s = job.status.as_ref().unwrap();
    (s.active.unwrap_or(0), s.succeeded.unwrap_or(0), s.failed.unwrap_or(0))
}

async fn simple_job_completes_with_counts_conditions_and_events(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    // The pods as the controller creates them, before the kubelet acts: check the first one.
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    let _ctl = start_controller(c.clone());
    let job = jobs.create(&job("simple", json!({}))).await;
    let done = jobs.wait_condition("simple", "Complete").await;
    assert_eq!(counts(&done), (0, 1, 0));
    let st = done.status.as_ref().unwrap();
    assert!(st.start_time.is_some() && st.completion_time.is_some());
    assert_eq!(condition(&done, "SuccessCriteriaMet").reason.as_deref(), Some("CompletionsReached"));
    assert_eq!(condition(&done, "Complete").status, "True");
    let uncounted = st.uncounted_terminated_pods.clone().unwrap_or_default();
    assert!(uncounted.succeeded.unwrap_or_default().is_empty() && uncounted.failed.unwrap_or_default().is_empty());

    let list = job_pods(&c, &job).await;
    assert_eq!(list.len(), 1, "exactly one pod");
    let pod = &list[0];
    let owner = pod.owner_references().iter().find(|r| r.controller == Some(true)).expect("controller ref");
    assert_eq!(
        (owner.api_version.as_str(), owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        (kind.api_version(), "Job", "simple", job.uid().unwrap().as_str())
    );
    assert_eq!(owner.block_owner_deletion, Some(true));
    assert_eq!(pod.labels().get(JOB_NAME).map(String::as_str), Some("simple"));
    assert_eq!(pod.labels().get(CONTROLLER_UID), job.uid().as_ref());
    assert!(!pod.finalizers().iter().any(|f| f == JOB_TRACKING_FINALIZER), "finalizer removed once counted");
    assert!(pods.get(&pod.name_any()).await.is_ok());

    // Events through the core/v1 view, as kubectl describe reads them.
    let has = |evs: &[Event], reason: &str| evs.iter().any(|e| e.reason.as_deref() == Some(reason));
    let evs = wait_events(&c, "simple", |evs| has(evs, "SuccessfulCreate") && has(evs, "Completed")).await;
    let created = evs.iter().find(|e| e.reason.as_deref() == Some("SuccessfulCreate")).unwrap();
    let regarding = &created.involved_object;
    assert_eq!(regarding.api_version.as_deref(), Some(kind.api_version()), "the event regards the Job's kind");
    assert_eq!(regarding.uid, job.uid());
    assert_eq!(created.message.as_deref(), Some(format!("Created pod: {}", pod.name_any()).as_str()));
    let from = created.reporting_component.clone().or(created.source.as_ref().and_then(|s| s.component.clone()));
    assert_eq!(from.as_deref(), Some("job-controller"));
}

/// `kubectl describe job` lists each pod creation as upstream's recorder does: one event per pod
/// (its `related` object), until the tenth similar one in ten minutes, from which on they are one
/// combined event whose count grows, across syncs (parallelism 4: the pods come from several
/// syncs, with status writes between them).
async fn pod_creation_events_are_separate_then_combined_as_upstream(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let _ctl = start_controller(c.clone());
    let job = jobs.create(&job("many", json!({"completions": 12, "parallelism": 4}))).await;
    jobs.wait_condition("many", "Complete").await;
    let pods: std::collections::BTreeMap<String, Option<String>> =
        job_pods(&c, &job).await.iter().map(|p| (p.name_any(), p.uid())).collect();
    assert_eq!(pods.len(), 12);
    let count = event_count;
    let combined = |e: &Event| e.message.as_deref().is_some_and(|m| m.starts_with(COMBINED_CREATED));
    let created = |evs: &[Event]| -> Vec<Event> {
        evs.iter().filter(|e| e.reason.as_deref() == Some("SuccessfulCreate")).cloned().collect()
    };
    let evs = wait_events(&c, "many", |evs| {
        let created = created(evs);
        let (together, apart): (Vec<_>, Vec<_>) = created.iter().partition(|e| combined(e));
        apart.len() == 9 && together.len() == 1 && count(together[0]) == 3
    })
    .await;
    for e in created(&evs).iter().filter(|e| !combined(e)) {
        let related = e.related.as_ref().expect("the pod is the related object");
        let pod = related.name.clone().unwrap_or_default();
        assert_eq!(pods.get(&pod), Some(&related.uid), "{pod}: a pod of the Job, with its uid");
        assert_eq!((related.kind.as_deref(), related.api_version.as_deref()), (Some("Pod"), Some("v1")));
        assert_eq!(e.message.as_deref(), Some(format!("Created pod: {pod}").as_str()));
        assert_eq!(count(e), 1, "one event per pod");
    }
}

async fn parallel_job_runs_completions_with_parallelism(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let mut log = PodLog::start(&s, "default");
    let _ctl = start_controller(c.clone());
    let job = jobs.create(&job("par", json!({"completions": 7, "parallelism": 3}))).await;
    let done = jobs.wait_condition("par", "Complete").await;
    assert_eq!(counts(&done), (0, 7, 0));
    assert_eq!(log.created_for(&job), 7, "one pod per completion, no extra");
}

async fn indexed_job_gives_each_pod_its_index(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let _ctl = start_controller(c.clone());
    let job = jobs.create(&job("idx", json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}))).await;
    let done = jobs.wait_condition("idx", "Complete").await;
    assert_eq!(counts(&done), (0, 3, 0));
    assert_eq!(done.status.as_ref().unwrap().completed_indexes.as_deref(), Some("0-2"));
    let mut indexes: Vec<String> = vec![];
    for p in job_pods(&c, &job).await {
        let idx = p.annotations().get(JOB_COMPLETION_INDEX).cloned().expect("index annotation");
        let env = p.spec.as_ref().unwrap().containers[0].env.clone().unwrap_or_default();
        let v = env.iter().find(|e| e.name == "JOB_COMPLETION_INDEX").expect("index env");
        assert!(v.value_from.is_some() || v.value.as_deref() == Some(idx.as_str()));
        assert_eq!(p.spec.as_ref().unwrap().hostname.as_deref(), Some(format!("idx-{idx}").as_str()));
        indexes.push(idx);
    }
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);
}

async fn backoff_limit_fails_the_job(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Fail(1)).await;
    let mut log = PodLog::start(&s, "default");
    let _ctl = start_controller(c.clone());
    let job = jobs.create(&job("bo", json!({"backoffLimit": 2}))).await;
    let failed = jobs.wait_condition("bo", "Failed").await;
    assert_eq!(counts(&failed), (0, 0, 3));
    assert_eq!(condition(&failed, "Failed").reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(condition(&failed, "FailureTarget").reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(log.created_for(&job), 3);
    assert!(failed.status.as_ref().unwrap().completion_time.is_none(), "a failed Job has no completionTime");
}

async fn pod_failure_policy_fail_job(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Fail(42)).await;
    let _ctl = start_controller(c.clone());
    let spec = json!({"backoffLimit": 6, "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}});
    jobs.create(&job("pfp", spec)).await;
    let failed = jobs.wait_condition("pfp", "Failed").await;
    assert_eq!(condition(&failed, "Failed").reason.as_deref(), Some("PodFailurePolicy"));
    assert_eq!(counts(&failed).2, 1, "no retry after FailJob");
}

async fn active_deadline_fails_the_job_and_deletes_pods(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Run).await;
    let _ctl = start_controller(c.clone());
    let job = jobs.create(&job("dl", json!({"activeDeadlineSeconds": 1, "parallelism": 2, "completions": 4}))).await;
    let failed = jobs.wait_condition("dl", "Failed").await;
    assert_eq!(condition(&failed, "Failed").reason.as_deref(), Some("DeadlineExceeded"));
    let (active, succeeded, failed_n) = counts(&failed);
    assert_eq!((active, succeeded, failed_n), (0, 0, 2), "the running pods are counted as failed");
    for p in job_pods(&c, &job).await {
        assert!(
            p.metadata.deletion_timestamp.is_some() || p.status.as_ref().unwrap().phase.as_deref() == Some("Failed")
        );
    }
    wait_no_tracking_finalizer(&c).await;
}

async fn controller_killed_mid_job_restarts_with_exact_counts(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let mut log = PodLog::start(&s, "default");
    let ctl = start_controller(c.clone());
    let job = jobs.create(&job("big", json!({"completions": 200, "parallelism": 20}))).await;
    jobs.wait("big", "50 succeeded", |j: Option<&k8s_openapi::api::batch::v1::Job>| {
        j.and_then(|j| j.status.as_ref()).and_then(|s| s.succeeded).unwrap_or(0) >= 50
    })
    .await;
    ctl.abort();
    let _ = ctl.await;
    let _ctl = start_controller(c.clone());
    let done = jobs.wait_condition("big", "Complete").await;
    assert_eq!(counts(&done), (0, 200, 0));
    assert_eq!(log.created_for(&job), 200, "no extra pod after the restart");
    wait_no_tracking_finalizer(&c).await;
}

async fn restarts_with_failing_pods_count_every_pod_exactly_once(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    // Every fifth pod fails: failures and successes interleave across the restarts.
    let _k = kubelet(c.clone(), "default", |_, n| if n % 5 == 4 { Outcome::Fail(1) } else { Outcome::Succeed }).await;
    let mut log = PodLog::start(&s, "default");
    let mut ctl = start_controller(c.clone());
    let job = jobs.create(&job("flaky", json!({"completions": 80, "parallelism": 8, "backoffLimit": 1000}))).await;
    for threshold in [20, 45] {
        jobs.wait("flaky", "progress", move |j: Option<&k8s_openapi::api::batch::v1::Job>| {
            j.and_then(|j| j.status.as_ref()).and_then(|s| s.succeeded).unwrap_or(0) >= threshold
        })
        .await;
        ctl.abort();
        let _ = ctl.await;
        ctl = start_controller(c.clone());
    }
    let done = jobs.wait_condition("flaky", "Complete").await;
    let (active, succeeded, failed) = counts(&done);
    assert_eq!((active, succeeded), (0, 80));
    assert_eq!(
        (succeeded + failed) as usize,
        log.created_for(&job),
        "every pod created counted once, as succeeded or failed"
    );
    assert!(failed >= 1);
    wait_no_tracking_finalizer(&c).await;
    ctl.abort();
}

fn index_of(pod: &Pod) -> String {
    pod.annotations().get(JOB_COMPLETION_INDEX).cloned().unwrap_or_default()
}

async fn backoff_limit_per_index_fails_only_that_index(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |p, _| if index_of(p) == "1" { Outcome::Fail(1) } else { Outcome::Succeed })
        .await;
    let _ctl = start_controller(c.clone());
    let spec = json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3, "backoffLimitPerIndex": 1});
    jobs.create(&job("perindex", spec)).await;
    let failed = jobs.wait_condition("perindex", "Failed").await;
    let st = failed.status.as_ref().unwrap();
    assert_eq!(condition(&failed, "Failed").reason.as_deref(), Some("FailedIndexes"));
    assert_eq!(st.failed_indexes.as_deref(), Some("1"));
    assert_eq!(st.completed_indexes.as_deref(), Some("0,2"));
    assert_eq!(counts(&failed), (0, 2, 2), "index 1 ran twice (one retry), the others once");
}

async fn success_policy_completes_the_job_and_stops_the_rest(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k =
        kubelet(c.clone(), "default", |p, _| if index_of(p) == "0" { Outcome::Succeed } else { Outcome::Run }).await;
    let mut log = PodLog::start(&s, "default");
    let _ctl = start_controller(c.clone());
    let spec = json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3,
        "successPolicy": {"rules": [{"succeededIndexes": "0"}]}});
    let job = jobs.create(&job("leader", spec)).await;
    let done = jobs.wait_condition("leader", "Complete").await;
    assert_eq!(condition(&done, "SuccessCriteriaMet").reason.as_deref(), Some("SuccessPolicy"));
    assert_eq!(done.status.as_ref().unwrap().completed_indexes.as_deref(), Some("0"));
    assert_eq!(counts(&done).0, 0, "the running pods were terminated");
    // Complete comes only once no pod is terminating; pods of indexes 1 and 2 were created, and
    // none after the success. (Counted from the API server's record: the kubelet may not have got
    // to a pod yet when Complete is written, since the controller counts a deleted pod as failed
    // without it.)
    assert_eq!(log.created_for(&job), 3, "one pod per index, no replacement");
    for p in job_pods(&c, &job).await.iter().filter(|p| index_of(p) != "0") {
        assert!(
            p.metadata.deletion_timestamp.is_some() || p.status.as_ref().unwrap().phase.as_deref() == Some("Failed")
        );
    }
    wait_no_tracking_finalizer(&c).await;
}

both_kinds!(
    simple_job_completes_with_counts_conditions_and_events,
    pod_creation_events_are_separate_then_combined_as_upstream,
    parallel_job_runs_completions_with_parallelism,
    indexed_job_gives_each_pod_its_index,
    backoff_limit_fails_the_job,
    pod_failure_policy_fail_job,
    active_deadline_fails_the_job_and_deletes_pods,
    controller_killed_mid_job_restarts_with_exact_counts,
    restarts_with_failing_pods_count_every_pod_exactly_once,
    backoff_limit_per_index_fails_only_that_index,
    success_policy_completes_the_job_and_stops_the_rest,
    wide_job_records_25_pod_events_and_its_completed_event,
);

/// The recorder alone against the API server: what `kubectl describe job` lists after a burst of
/// events, as upstream's EventCorrelator would leave it.
#[tokio::test]
async fn recorder_dedups_aggregates_and_serialises_as_client_go() {
    use jobwright::job::events::{JobEvent, created, failed_create};
    use jobwright::job::recorder::EventSink;
    let s = TestApiServer::start().await;
    let c = s.client();
    let regarding = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: Some("burst".into()),
        namespace: Some("default".into()),
        uid: Some("uid-burst".into()),
        ..Default::default()
    };
    let sink = EventSink::new(c.clone(), "job-controller");
    // 12 pod creations over three publishes; the same failure twice at once, from two publishes;
    // another failure message once.
    let pods = |r: std::ops::Range<i32>| r.map(|i| created(&format!("burst-{i:02}"), None)).collect::<Vec<JobEvent>>();
    let count = event_count;
    let msg = |e: &Event| e.message.clone().unwrap_or_default();
    let combined = COMBINED_CREATED;
    sink.publish(regarding.clone(), "uid-burst", pods(0..5));
    sink.publish(regarding.clone(), "uid-burst", pods(5..10));
    // Publishes of one Job normally come from successive syncs: the later one is the latest.
    wait_events(&c, "burst", |evs| evs.iter().any(|e| msg(e).starts_with(combined))).await;
    sink.publish(regarding.clone(), "uid-burst", vec![failed_create("quota A")]);
    sink.publish(regarding.clone(), "uid-burst", vec![failed_create("quota A")]);
    sink.publish(regarding.clone(), "uid-burst", pods(10..12));
    sink.publish(regarding.clone(), "uid-burst", vec![failed_create("quota B")]);
    let evs = wait_events(&c, "burst", |evs| {
        let created = evs.iter().filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"));
        let failed = evs.iter().filter(|e| e.reason.as_deref() == Some("FailedCreate"));
        created.clone().count() == 10
            && created.clone().any(|e| msg(e).starts_with(combined) && count(e) == 3)
            && failed.clone().count() == 2
            && failed.clone().map(count).sum::<i32>() == 3
    })
    .await;
    let of = |reason: &str| evs.iter().filter(|e| e.reason.as_deref() == Some(reason)).collect::<Vec<_>>();
    let created = of("SuccessfulCreate");
    let mut separate: Vec<String> = created.iter().filter(|e| count(e) == 1).map(|e| msg(e)).collect();
    separate.sort();
    let want: Vec<String> = (0..9).map(|i| format!("Created pod: burst-{i:02}")).collect();
    assert_eq!(separate, want, "the first nine stay apart");
    let together = created.iter().find(|e| count(e) == 3).expect("combined");
    assert_eq!(msg(together), format!("{combined}burst-11"), "the combined event shows the latest");
    assert!(together.related.is_none(), "the combined event names no single pod");
    let failed = of("FailedCreate");
    let a = failed.iter().find(|e| msg(e) == "Error creating: quota A").expect("quota A");
    assert_eq!(count(a), 2, "the same message twice, even at once, is one event counted twice");
    let b = failed.iter().find(|e| msg(e) == "Error creating: quota B").expect("quota B");
    assert_eq!(count(b), 1, "another message is another event");
}

/// A client whose requests writing events (create or patch on `events`) are counted.
fn event_write_counting(cfg: kube::Config) -> (kube::Client, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = writes.clone();
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        let path = req.uri().path();
        if path.contains("/events") && matches!(*req.method(), http::Method::POST | http::Method::PATCH) {
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        req
    });
    let client = kube::client::ClientBuilder::try_from(cfg).unwrap().with_layer(&layer).build();
    (client, writes)
}

/// client-go's spam filter: a Job's pod events stop at 25 (a 10,000-pod Job makes 25 event writes,
/// not 10,000), while its lifecycle events have their own budget and are written after that.
#[tokio::test]
async fn recorder_writes_25_pod_events_per_job_and_still_its_lifecycle_events() {
    use jobwright::job::events::{JobEvent, created};
    use jobwright::job::recorder::EventSink;
    let s = TestApiServer::start().await;
    let (c, writes) = event_write_counting(s.config_with_token(s.admin_token()));
    let regarding = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: Some("wide".into()),
        namespace: Some("default".into()),
        uid: Some("uid-wide".into()),
        ..Default::default()
    };
    let sink = EventSink::new(c.clone(), "job-controller");
    // One publish: its events are written one after another, so once `Completed` (the last) is
    // there, every earlier write has been made.
    let mut evs: Vec<JobEvent> = (0..10_000).map(|i| created(&format!("wide-{i}"), None)).collect();
    evs.push(JobEvent::normal("Completed", "Job completed"));
    sink.publish(regarding, "uid-wide", evs);
    let evs =
        wait_events(&s.client(), "wide", |evs| evs.iter().any(|e| e.reason.as_deref() == Some("Completed"))).await;
    let created: Vec<&Event> = evs.iter().filter(|e| e.reason.as_deref() == Some("SuccessfulCreate")).collect();
    assert_eq!(created.iter().map(|e| event_count(e)).sum::<i32>(), 25, "25 pod events recorded, then none");
    assert_eq!(created.len(), 10, "nine apart, then the combined one (counted 16 times)");
    assert_eq!(writes.load(std::sync::atomic::Ordering::SeqCst), 26, "25 pod event writes and the Completed one");
}

/// A Job wider than the pod events' budget: 25 pod-creation events recorded, no more, and its
/// `Completed` event still written after that budget is gone.
async fn wide_job_records_25_pod_events_and_its_completed_event(kind: Kind) {
    let s = TestApiServer::start().await;
    let c = s.client();
    let jobs = Jobs::new(&c, kind).await;
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let _ctl = start_controller(c.clone());
    jobs.create(&job("wide", json!({"completions": 40, "parallelism": 40}))).await;
    jobs.wait_condition("wide", "Complete").await;
    let created = |evs: &[Event]| -> i32 {
        evs.iter().filter(|e| e.reason.as_deref() == Some("SuccessfulCreate")).map(event_count).sum()
    };
    let completed = |evs: &[Event]| evs.iter().any(|e| e.reason.as_deref() == Some("Completed"));
    let evs = wait_events(&c, "wide", |evs| completed(evs) && created(evs) >= 25).await;
    assert_eq!(created(&evs), 25, "40 pods created, 25 of them recorded");
}

/// Counts a client's pod creations in flight (called, answer not yet back) and the most at once.
#[derive(Clone)]
struct CountCreates<S> {
    inner: S,
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl<S, B> tower::Service<http::Request<B>> for CountCreates<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        use std::sync::atomic::Ordering::SeqCst;
        let create = req.method() == http::Method::POST && req.uri().path().ends_with("/pods");
        if create {
            let n = self.now.fetch_add(1, SeqCst) + 1;
            self.max.fetch_max(n, SeqCst);
        }
        let (fut, now) = (self.inner.call(req), self.now.clone());
        Box::pin(async move {
            let r = fut.await;
            if create {
                now.fetch_sub(1, SeqCst);
            }
            r
        })
    }
}

/// A slow-start batch wider than `CREATE_CONCURRENCY` (200 pods: batches 1, 2, 4, ..., 64, 73)
/// has at most that many creations in flight at once, and still creates every pod exactly once.
#[tokio::test]
async fn pod_creations_in_flight_are_bounded_within_a_batch() {
    use jobwright::job::apply::CREATE_CONCURRENCY;
    let s = TestApiServer::start().await;
    let (now, max): (Arc<AtomicUsize>, Arc<AtomicUsize>) = Default::default();
    let layer = {
        let (now, max) = (now.clone(), max.clone());
        tower::layer::layer_fn(move |inner| CountCreates { inner, now: now.clone(), max: max.clone() })
    };
    let counted =
        kube::client::ClientBuilder::try_from(s.config_with_token(s.admin_token())).unwrap().with_layer(&layer).build();
    let c = s.client();
    let jobs = Jobs::batch(&c);
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let mut log = PodLog::start(&s, "default");
    let _ctl = start_controller(counted);
    let job = jobs.create(&job("burst", json!({"completions": 200, "parallelism": 200}))).await;
    let done = jobs.wait_condition("burst", "Complete").await;
    assert_eq!(counts(&done), (0, 200, 0));
    assert_eq!(log.created_for(&job), 200, "one pod per completion, no extra");
    let max = max.load(std::sync::atomic::Ordering::SeqCst);
    assert!(max <= CREATE_CONCURRENCY, "{max} creations in flight at once, more than {CREATE_CONCURRENCY}");
    assert!(max > 1, "creations of a batch run concurrently ({max} at most)");
}
