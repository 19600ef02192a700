//! The Job controller across a pod re-list (issue 10: a controller must never wait forever).
//!
//! The controller's client goes through a test layer that can cut its pod watch the way the API
//! server does when a watcher falls behind and the history moves on: the watch ends, the next
//! watch is answered `410 Expired`, and kube-rs lists again. The layer holds that re-list until the
//! test has changed the world, so what happened meanwhile reaches the controller only through the
//! re-list, deterministically.

use crate::controller_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use controller_support::*;
use futures::StreamExt;
use jobwright::apiserver::testkit::TestApiServer;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

/// Controls the cut of one collection's watch (the pods', unless made with [`Cut::of`]).
#[derive(Clone)]
struct Cut {
    /// The collection's path (`/api/v1/pods`).
    path: &'static str,
    /// List requests that carried a `continue` token (pages after the first).
    continued_lists: Arc<AtomicUsize>,
    /// Set: pod watches are ended and new ones answered 410, until a re-list is let through.
    on: Arc<AtomicBool>,
    /// Bumped to end the open pod watches.
    generation: watch::Sender<u64>,
    /// Set by the layer when the re-list arrived (and is held).
    relist_waiting: watch::Sender<bool>,
    /// Set by the test to let the held re-list through.
    release: watch::Sender<bool>,
    /// How many pod PATCH requests to fail with a 500 (an API server fault).
    fail_pod_patches: Arc<AtomicUsize>,
    /// Everything the controller has read from its pod watches and lists.
    delivered: watch::Sender<String>,
}

const EXPIRED: &str = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\
    \"status\":\"Failure\",\"message\":\"too old resource version: 1 (2)\",\"reason\":\"Expired\",\"code\":410}}\n";

/// A client whose pod list/watch requests go through the cut.
fn cutting_client(inner: Client, cut: Cut) -> Client {
    let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let (inner, cut) = (inner.clone(), cut.clone());
        async move {
            if req.method() == http::Method::PATCH
                && req.uri().path().contains("/pods/")
                && cut.fail_pod_patches.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
            {
                let st = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Internal error occurred: injected", "reason": "InternalError", "code": 500});
                let r = http::Response::builder().status(500).header("content-type", "application/json");
                return Ok(r.body(axum::body::Body::from(st.to_string())).unwrap());
            }
            let pods = req.uri().path() == cut.path;
            let query = req.uri().query().unwrap_or("");
            let watching = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
            if pods && !watching && query.split('&').any(|kv| kv.starts_with("continue=")) {
                cut.continued_lists.fetch_add(1, Ordering::SeqCst);
            }
            if pods && watching && cut.on.load(Ordering::SeqCst) {
                let r = http::Response::builder()
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(EXPIRED));
                return Ok::<_, kube::Error>(r.unwrap());
            }
            if pods && !watching && cut.on.load(Ordering::SeqCst) {
                cut.relist_waiting.send_replace(true);
                let mut release = cut.release.subscribe();
                let _ = release.wait_for(|r| *r).await;
                cut.on.store(false, Ordering::SeqCst);
            }
            let res = inner.send(req).await?;
            if !pods {
                return Ok(res.map(axum::body::Body::new));
            }
            // A pod list or watch; a watch ends when the generation changes.
            let mut generation = cut.generation.subscribe();
            let (parts, body) = res.into_parts();
            let delivered = cut.delivered.clone();
            let stream = axum::body::Body::new(body).into_data_stream().inspect(move |chunk| {
                if let Ok(c) = chunk {
                    delivered.send_modify(|d| d.push_str(&String::from_utf8_lossy(c)));
                }
            });
            let stream = stream.take_until(async move {
                if !watching {
                    return std::future::pending().await;
                }
                let _ = generation.changed().await;
            });
            Ok(http::Response::from_parts(parts, axum::body::Body::from_stream(stream)))
        }
    });
    Client::new(svc, "default")
}

impl Cut {
    fn new() -> Self {
        Self::of("/api/v1/pods")
    }

    fn of(path: &'static str) -> Self {
        Self {
            path,
            continued_lists: Arc::new(AtomicUsize::new(0)),
            on: Arc::new(AtomicBool::new(false)),
            generation: watch::channel(0).0,
            relist_waiting: watch::channel(false).0,
            release: watch::channel(false).0,
            fail_pod_patches: Arc::new(AtomicUsize::new(0)),
            delivered: watch::channel(String::new()).0,
        }
    }

    /// Waits until the controller has read `pod` (its uid) from a pod list or watch: cutting the
    /// watch before then would hide the pod's creation from the controller, whose Job then waits
    /// for its creation expectation to expire (5 minutes, as upstream), not for a re-list.
    async fn wait_delivered(&self, pod: &Pod) {
        let uid = format!("\"uid\":\"{}\"", pod.uid().unwrap());
        let mut d = self.delivered.subscribe();
        tokio::time::timeout(WAIT, d.wait_for(|d| d.contains(&uid)))
            .await
            .expect("the controller reads its pod")
            .unwrap();
    }

    /// Ends the controller's pod watch and waits until its re-list is held.
    async fn cut_and_hold(&self) {
        self.on.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
        let mut waiting = self.relist_waiting.subscribe();
        tokio::time::timeout(WAIT, waiting.wait_for(|w| *w)).await.expect("the controller re-lists").unwrap();
    }

    /// Lets the held re-list through.
    fn release(&self) {
        self.release.send_replace(true);
    }
}

/// A controller behind the cut, one Job with one pod; returns the server, the cut, the Job, its
/// pod and the controller task.
async fn one_pod_job() -> (TestApiServer, Cut, k8s_openapi::api::batch::v1::Job, Pod, tokio::task::JoinHandle<()>) {
    let s = TestApiServer::start().await;
    let cut = Cut::new();
    let controller = start_controller(cutting_client(s.client(), cut.clone()));
    let job = create_job(&s.client(), &job("one", json!({"completions": 1, "parallelism": 1}))).await;
    let pod = poll(|| async { job_pods(&s.client(), &job).await.pop() }).await.expect("the Job's pod");
    cut.wait_delivered(&pod).await;
    (s, cut, job, pod, controller)
}

/// Polls `f` every 20 ms until it gives something, for at most [`WAIT`].
async fn poll<T, F: std::future::Future<Output = Option<T>>>(f: impl Fn() -> F) -> Option<T> {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(t) = f().await {
                return t;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .ok()
}

/// A pod deleted while the controller's pod watch was down is missing from the re-list, with no
/// Delete event: its Job (which has no other pod, so no re-listed pod triggers it) must still be
/// synced and get a replacement.
#[tokio::test]
async fn a_pod_deleted_while_the_watch_was_down_is_replaced() {
    let (s, cut, job, first, _controller) = one_pod_job().await;
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    cut.cut_and_hold().await;
    // Meanwhile the pod goes away for good (its tracking finalizer removed by someone else).
    let name = first.name_any();
    pods.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    pods.delete(&name, &DeleteParams::default().grace_period(0)).await.unwrap();
    assert!(pods.get_opt(&name).await.unwrap().is_none());
    cut.release();
    let replacement = poll(|| async { job_pods(&s.client(), &job).await.into_iter().find(|p| p.uid() != first.uid()) })
        .await
        .expect("a replacement pod: the Job was synced after the re-list dropped its pod");
    assert_ne!(replacement.name_any(), name);
}

/// A pod whose last update (Succeeded) reaches the controller only through a re-list is counted,
/// its finalizer removed, and the Job completes.
#[tokio::test]
async fn a_pod_whose_last_update_arrives_only_through_a_relist_is_counted() {
    let (s, cut, job, pod, _controller) = one_pod_job().await;
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    cut.cut_and_hold().await;
    set_status(&pods, &pod, Outcome::Succeed).await;
    cut.release();
    let done = wait_condition(&s.client(), &job.name_any(), "Complete").await;
    assert_eq!(done.status.as_ref().and_then(|st| st.succeeded), Some(1));
    wait_no_tracking_finalizer(&s.client()).await;
}

/// A failed finalizer removal of an orphan pod (a pod with the tracking finalizer and no controller)
/// is retried: no other event may ever come for the pod, which would keep its finalizer forever.
#[tokio::test]
async fn a_failed_orphan_finalizer_removal_is_retried() {
    let s = TestApiServer::start().await;
    let cut = Cut::new();
    cut.fail_pod_patches.store(2, Ordering::SeqCst);
    let _controller = start_controller(cutting_client(s.client(), cut.clone()));
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "finalizers": [jobwright::job::labels::JOB_TRACKING_FINALIZER]},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }))
    .unwrap();
    pods.create(&Default::default(), &orphan).await.unwrap();
    wait_no_tracking_finalizer_on(&s.client(), "orphan").await;
    assert_eq!(cut.fail_pod_patches.load(Ordering::SeqCst), 0, "both injected failures were hit");
}

/// A pod the controller created whose watch event never comes (its ADDED and DELETED both fell
/// into a watch gap: created and deleted while the pod watch was down, so the re-list does not
/// have it either) holds its Job back only until the expectation expires: the Job then gets a
/// replacement, with no other event to trigger it.
#[tokio::test]
async fn a_created_pod_whose_events_never_arrive_blocks_its_job_only_until_the_expectation_expires() {
    let s = TestApiServer::start().await;
    let cut = Cut::new();
    let opts = jobwright::job::controller::Options {
        config: test_config(),
        expectations_ttl: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let _controller = start_controller_opts(cutting_client(s.client(), cut.clone()), opts);
    // The caches are synced once a first Job has its pod.
    let warm = create_job(&s.client(), &job("warm", json!({"completions": 1}))).await;
    poll(|| async { job_pods(&s.client(), &warm).await.pop() }).await.expect("the first Job's pod");

    cut.cut_and_hold().await;
    let job = create_job(&s.client(), &job("blind", json!({"completions": 1}))).await;
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    let first = poll(|| async { job_pods(&s.client(), &job).await.pop() }).await.expect("the Job's pod");
    let name = first.name_any();
    pods.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    pods.delete(&name, &DeleteParams::default().grace_period(0)).await.unwrap();
    cut.release();
    let replacement = poll(|| async { job_pods(&s.client(), &job).await.into_iter().find(|p| p.uid() != first.uid()) })
        .await
        .expect("a replacement pod once the creation expectation expired");
    assert_ne!(replacement.name_any(), name);
}

/// The CronJob controller's spec-less Job informer (`standalone_without_spec`) across list pages
/// (kube-rs lists 500 at a time) and a watch expiry: every Job is cached without its spec from a
/// paged first list, and a paged re-list after a 410 drops what was deleted while the watch was
/// down (as `Delete` events before its `InitDone`) and adds what was created meanwhile.
#[tokio::test]
async fn the_spec_less_job_informer_lists_past_a_page_and_relists_after_an_expiry() {
    use jobwright::job::informer::Subscription;
    use k8s_openapi::api::batch::v1::Job;
    use kube::runtime::watcher::Event;

    const JOBS: usize = 1_203;
    let s = TestApiServer::start().await;
    let jobs: Api<Job> = Api::default_namespaced(s.client());
    let labelled = |name: &str, n: usize| {
        let mut j = job(name, json!({"completions": 1}));
        j.metadata.labels = Some([("n".to_string(), n.to_string())].into());
        j
    };
    futures::stream::iter(0..JOBS)
        .map(|i| {
            let (jobs, j) = (jobs.clone(), labelled(&format!("j{i}"), i));
            async move { jobs.create(&Default::default(), &j).await.unwrap() }
        })
        .buffer_unordered(16)
        .count()
        .await;

    let cut = Cut::of("/apis/batch/v1/jobs");
    let (mut sub, _running) = Subscription::<Job>::standalone_without_spec(&cutting_client(s.client(), cut.clone()));
    // Events up to (and including) the next `InitDone`: the names applied and deleted.
    async fn until_init_done(sub: &mut Subscription<Job>) -> (Vec<String>, Vec<String>) {
        let (mut applied, mut deleted) = (Vec::new(), Vec::new());
        loop {
            let ev = tokio::time::timeout(WAIT, sub.events.next()).await.expect("informer events").expect("open");
            match ev {
                Event::InitApply(j) | Event::Apply(j) => applied.push(j.name_any()),
                Event::Delete(j) => deleted.push(j.name_any()),
                Event::Init => {}
                Event::InitDone => return (applied, deleted),
            }
        }
    }
    let check_cache = |sub: &Subscription<Job>, want: usize| {
        let cached = sub.store.state();
        assert_eq!(cached.len(), want, "every Job is cached");
        for j in &cached {
            assert!(j.spec.is_none(), "{} kept its spec", j.name_any());
            let n = j.labels().get("n").unwrap_or_else(|| panic!("{} lost its labels", j.name_any()));
            assert_eq!(format!("j{n}"), j.name_any(), "metadata is the Job's own");
        }
    };
    let (applied, deleted) = until_init_done(&mut sub).await;
    assert_eq!((applied.len(), deleted.len()), (JOBS, 0));
    check_cache(&sub, JOBS);
    assert!(cut.continued_lists.load(Ordering::SeqCst) >= 2, "the first list came in pages");

    // The watch ends and expires; while the re-list is held, two Jobs go and one comes.
    cut.cut_and_hold().await;
    for gone in ["j0", "j700"] {
        jobs.delete(gone, &DeleteParams::background()).await.unwrap();
    }
    jobs.create(&Default::default(), &labelled(&format!("j{JOBS}"), JOBS)).await.unwrap();
    let pages_before = cut.continued_lists.load(Ordering::SeqCst);
    cut.release();
    let (applied, mut deleted) = until_init_done(&mut sub).await;
    deleted.sort();
    assert_eq!(deleted, ["j0", "j700"], "the re-list's deletions, as Delete events");
    assert_eq!(applied.len(), JOBS - 1);
    assert!(applied.contains(&format!("j{JOBS}")), "the Job created while the watch was down");
    check_cache(&sub, JOBS - 1);
    assert!(cut.continued_lists.load(Ordering::SeqCst) >= pages_before + 2, "the re-list came in pages");
}
