//! A Job's settled pods (finished, tracking finalizer removed): the controller keeps them aside in
//! a compact entry and plans from a summary of them (`job::settled`). These tests drive the cases
//! where a settled pod still matters: a controller restart that re-lists them (past the 500-item
//! page), failures among them (the re-creation backoff and the counts), a podFailurePolicy
//! `FailJob` rule matched by a failed pod, and a settled pod relabelled out of the selector.

use crate::controller_support;

use controller_support::*;
use jobwright::apiserver::testkit::TestApiServer;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

fn status_counts(job: &Job) -> (i32, i32, i32) {
    let s = job.status.as_ref().unwrap();
    (s.active.unwrap_or(0), s.succeeded.unwrap_or(0), s.failed.unwrap_or(0))
}

fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default()
}

/// 600 completions (more than a 500-item list page), every 7th pod failing, the controller killed
/// once a third have succeeded and started again while pods keep finishing: the new controller
/// re-lists every pod, settled ones included, and the Job completes with each pod counted once.
#[tokio::test]
async fn a_wide_job_restarted_midway_counts_every_pod_once() {
    let s = TestApiServer::start().await;
    let c = s.client();
    let _k = kubelet(c.clone(), "default", |_, n| if n % 7 == 3 { Outcome::Fail(1) } else { Outcome::Succeed }).await;
    let mut log = PodLog::start(&s, "default");
    let ctl = start_controller(c.clone());
    let job =
        create_job(&c, &job("wide", json!({"completions": 600, "parallelism": 150, "backoffLimit": 10000}))).await;
    wait_job(&c, "wide", "200 succeeded", |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref()).and_then(|s| s.succeeded).unwrap_or(0) >= 200
    })
    .await;
    ctl.abort();
    let _ = ctl.await;
    // The kubelet goes on finishing the running pods while no controller runs.
    let _ctl = start_controller(c.clone());
    let done = wait_condition(&c, "wide", "Complete").await;
    wait_no_tracking_finalizer(&c).await;
    let pods = job_pods(&c, &job).await;
    let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i32;
    let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i32;
    assert_eq!(status_counts(&done), (0, 600, failed), "status against the pods");
    assert_eq!(succeeded, 600, "exactly completions succeeded pods");
    assert!(failed >= 600 / 7, "{failed} failed pods");
    assert_eq!(log.created_for(&job), pods.len(), "no pod created that is not there");
}

/// A failed pod whose finalizer was removed long ago (settled) still fails its Job through a
/// podFailurePolicy `FailJob` rule when the Job is synced again from a fresh cache: the rule is
/// read from every failed pod, counted or not, as upstream's `getFailJobMessage`. The pod is made
/// settled by hand (finalizer removed, index recorded as failed in the status), the controller
/// started after.
#[tokio::test]
async fn a_settled_failed_pod_matching_fail_job_fails_the_job() {
    let s = TestApiServer::start().await;
    let c = s.client();
    let spec = json!({"completions": 2, "parallelism": 1, "backoffLimit": 5, "podReplacementPolicy": "Failed",
        "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}});
    let job = create_job(&c, &job("failjob", spec)).await;
    // A pod of the Job, created as the controller would, failed with exit code 42, its
    // finalizer already removed and its failure recorded.
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    let mut pod = jobwright::job::template::pod_for(&job, None, None);
    pod.metadata.name = Some("failjob-settled".into());
    pod.metadata.generate_name = None;
    pod.metadata.finalizers = None;
    pod.metadata.owner_references = Some(vec![jobwright::job::template::controller_ref(&job)]);
    let pod = pods.create(&Default::default(), &pod).await.unwrap();
    set_status(&pods, &pod, Outcome::Fail(42)).await;
    let jobs: Api<Job> = Api::default_namespaced(c.clone());
    let st = json!({"status": {"failed": 1, "startTime": "2026-01-01T00:00:00Z"}});
    jobs.patch_status("failjob", &PatchParams::default(), &Patch::Merge(st)).await.unwrap();
    let _ctl = start_controller(c.clone());
    let failed = wait_condition(&c, "failjob", "Failed").await;
    let cond = condition(&failed, "Failed");
    assert_eq!(cond.reason.as_deref(), Some("PodFailurePolicy"), "{cond:?}");
    assert!(cond.message.as_deref().unwrap_or_default().contains("failjob-settled"), "{cond:?}");
    assert_eq!(status_counts(&failed).2, 1, "the settled pod is not counted again");
}

/// A pod that finished and lost its tracking finalizer, then is relabelled out of the Job's
/// selector, is released (its controller ownerReference removed) as upstream's `ClaimPods` does,
/// and is not counted again.
#[tokio::test]
async fn a_settled_pod_relabelled_out_of_the_selector_is_released() {
    let s = TestApiServer::start().await;
    let c = s.client();
    let _k = kubelet(c.clone(), "default", |_, n| if n == 0 { Outcome::Succeed } else { Outcome::Run }).await;
    let _ctl = start_controller(c.clone());
    let job = create_job(&c, &job("rel", json!({"completions": 3, "parallelism": 1}))).await;
    wait_job(&c, "rel", "one succeeded", |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref()).and_then(|s| s.succeeded).unwrap_or(0) >= 1
    })
    .await;
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    let first = job_pods(&c, &job).await.into_iter().find(|p| phase(p) == "Succeeded").expect("the succeeded pod");
    wait_no_tracking_finalizer_on(&c, &first.name_any()).await;
    let p = json!({"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "someone-else"}}});
    pods.patch(&first.name_any(), &PatchParams::default(), &Patch::Merge(p)).await.unwrap();
    let released = |p: Option<&Pod>| p.is_some_and(|p| p.owner_references().is_empty());
    tokio::time::timeout(WAIT, kube::runtime::wait::await_condition(pods.clone(), &first.name_any(), released))
        .await
        .expect("the settled pod was not released in time")
        .expect("watching the pod");
    // A sync after the release (one more pod wanted) still counts the released pod once.
    let jobs: Api<Job> = Api::default_namespaced(c.clone());
    jobs.patch("rel", &PatchParams::default(), &Patch::Merge(json!({"spec": {"parallelism": 2}}))).await.unwrap();
    let j = wait_job(&c, "rel", "two active", |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref()).and_then(|s| s.active).unwrap_or(0) >= 2
    })
    .await;
    assert_eq!(status_counts(&j), (2, 1, 0), "released, not counted again");
    let all = pods.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(all.iter().filter(|p| phase(p) == "Succeeded").count(), 1);
}
