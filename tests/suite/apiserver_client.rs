//! Conformance of the envtest-style API server through `kube::Client`: each test names the
//! behaviour of issue 2 it covers and checks its failure case too.

use crate::common;

use common::*;
use futures::{StreamExt, TryStreamExt};
use jobwright::apiserver::http::ServerConfig;
use jobwright::apiserver::store::StoreConfig;
use jobwright::apiserver::testkit::TestApiServer;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent, WatchParams,
};
use kube::runtime::wait::conditions;
use kube::runtime::watcher;
use serde_json::json;

fn rv<K: kube::Resource>(o: &K) -> u64 {
    o.meta().resource_version.as_deref().unwrap().parse().unwrap()
}

// 1. One global, increasing resourceVersion; list rv; limit/continue.

#[tokio::test]
async fn resource_versions_are_global_and_lists_paginate() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let leases: Api<Lease> = Api::default_namespaced(s.client());
    let a = create(&cms, &cm("a")).await;
    let l: Lease = serde_json::from_value(json!({"metadata": {"name": "l"}})).unwrap();
    let l = create(&leases, &l).await;
    let b = create(&cms, &cm("b")).await;
    create(&cms, &cm("c")).await;
    assert!(rv(&a) < rv(&l) && rv(&l) < rv(&b), "one counter across resources");

    let page = cms.list(&ListParams::default().limit(2)).await.unwrap();
    let names: Vec<_> = page.items.iter().map(|c| c.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(page.metadata.remaining_item_count, Some(1));
    let token = page.metadata.continue_.clone().expect("continue token");
    let list_rv: u64 = page.metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv >= rv(&b));
    let page2 = cms.list(&ListParams::default().limit(2).continue_token(&token)).await.unwrap();
    assert_eq!(page2.items.len(), 1);
    assert!(page2.metadata.continue_.is_none());
    // failure: a garbage continue token is a 400
    let (code, _, _) = api_err(cms.list(&ListParams::default().continue_token("nonsense")).await.unwrap_err());
    assert_eq!(code, 400);
}

// 2. Watch: initial ADDEDs, DELETED with the final object, bookmarks, sendInitialEvents, 410.

#[tokio::test]
async fn watch_from_zero_sends_added_then_changes_and_deleted_carries_final_object() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    create(&cms, &cm("a")).await;
    let mut w = cms.watch(&WatchParams::default().disable_bookmarks().timeout(10), "0").await.unwrap().boxed();
    let Some(Ok(WatchEvent::Added(a))) = w.next().await else { panic!("expected ADDED") };
    assert_eq!(a.metadata.name.as_deref(), Some("a"));
    cms.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "changed"}}))).await.unwrap();
    let Some(Ok(WatchEvent::Modified(m))) = w.next().await else { panic!("expected MODIFIED") };
    assert_eq!(m.data.clone().unwrap()["k"], "changed");
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let Some(Ok(WatchEvent::Deleted(d))) = w.next().await else { panic!("expected DELETED") };
    assert_eq!(d.data.clone().unwrap()["k"], "changed", "DELETED carries the last state");
    assert!(rv(&d) > rv(&m));
}

#[tokio::test]
async fn watch_sends_bookmarks_with_kind_and_api_version() {
    let s = TestApiServer::start().await;
    let jobs: Api<Job> = Api::default_namespaced(s.client());
    let mut w = jobs.watch(&WatchParams::default().timeout(10), "0").await.unwrap().boxed();
    let Some(Ok(WatchEvent::Bookmark(b))) = w.next().await else { panic!("expected BOOKMARK") };
    assert_eq!(b.types.kind, "Job");
    assert_eq!(b.types.api_version, "batch/v1");
    assert!(!b.metadata.resource_version.is_empty());
}

#[tokio::test]
async fn send_initial_events_ends_with_annotated_bookmark() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    create(&cms, &cm("a")).await;
    create(&cms, &cm("b")).await;
    let mut w = cms.watch(&WatchParams::default().initial_events().timeout(10), "").await.unwrap().boxed();
    for want in ["a", "b"] {
        let Some(Ok(WatchEvent::Added(o))) = w.next().await else { panic!("expected ADDED") };
        assert_eq!(o.metadata.name.as_deref(), Some(want));
    }
    let Some(Ok(WatchEvent::Bookmark(b))) = w.next().await else { panic!("expected BOOKMARK") };
    assert_eq!(b.metadata.annotations.get("k8s.io/initial-events-end").map(String::as_str), Some("true"));
}

#[tokio::test]
async fn watch_timeout_seconds_ends_the_stream() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let w = cms.watch(&WatchParams::default().disable_bookmarks().timeout(1), "0").await.unwrap();
    let events: Vec<_> = tokio::time::timeout(WAIT, w.collect::<Vec<_>>()).await.expect("stream ended");
    assert!(events.is_empty());
}

fn small_history() -> ServerConfig {
    ServerConfig { store: StoreConfig { history: 3, watcher_buffer: 1000, ..Default::default() }, ..Default::default() }
}

#[tokio::test]
async fn watch_from_compacted_resource_version_is_410_expired() {
    let s = TestApiServer::start_with(small_history()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let first = create(&cms, &cm("a")).await;
    for n in ["b", "c", "d", "e"] {
        create(&cms, &cm(n)).await;
    }
    let mut w = cms.watch(&WatchParams::default(), &rv(&first).to_string()).await.unwrap().boxed();
    let Some(Ok(WatchEvent::Error(e))) = w.next().await else { panic!("expected ERROR") };
    assert_eq!(e.code, 410);
    assert_eq!(e.reason, "Expired");
    assert!(e.message.starts_with(&format!("too old resource version: {} (", rv(&first))), "{}", e.message);
    // a recent resourceVersion is fine: replays what followed it
    let last = cms.get("d").await.unwrap();
    let mut w = cms.watch(&WatchParams::default().disable_bookmarks(), &rv(&last).to_string()).await.unwrap().boxed();
    let Some(Ok(WatchEvent::Added(o))) = w.next().await else { panic!("expected ADDED") };
    assert_eq!(o.metadata.name.as_deref(), Some("e"));
}

#[tokio::test]
async fn kube_runtime_watcher_relists_after_410() {
    let s = TestApiServer::start_with(small_history()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let leases: Api<Lease> = Api::default_namespaced(s.client());
    create(&cms, &cm("a")).await;
    let cfg = watcher::Config::default().timeout(1).disable_bookmarks();
    let mut w = watcher(cms.clone(), cfg).boxed();
    // initial list
    loop {
        match w.next().await.unwrap().unwrap() {
            watcher::Event::InitDone => break,
            _ => continue,
        }
    }
    // push the watcher's resourceVersion out of the history while its watch is open
    for i in 0..5 {
        let l: Lease = serde_json::from_value(json!({"metadata": {"name": format!("l{i}")}})).unwrap();
        create(&leases, &l).await;
    }
    let mut saw_410 = false;
    let mut relisted = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(ev) = w.next().await {
            match ev {
                Err(watcher::Error::WatchError(e)) if e.code == 410 => saw_410 = true,
                Err(e) => panic!("unexpected error {e:?}"),
                Ok(watcher::Event::InitApply(o)) if saw_410 => relisted.push(o.metadata.name.unwrap()),
                Ok(watcher::Event::InitDone) if saw_410 => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("watcher relisted");
    assert!(saw_410);
    assert_eq!(relisted, ["a"]);
}

#[tokio::test]
async fn kube_runtime_streaming_list_watcher_gets_initial_state() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    create(&cms, &cm("a")).await;
    create(&cms, &cm("b")).await;
    let mut w = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut names = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(ev) = w.try_next().await.unwrap() {
            match ev {
                watcher::Event::InitApply(o) => names.push(o.metadata.name.unwrap()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
    })
    .await
    .expect("initial events ended");
    assert_eq!(names, ["a", "b"]);
    create(&cms, &cm("c")).await;
    let ev = tokio::time::timeout(WAIT, w.try_next()).await.unwrap().unwrap().unwrap();
    let watcher::Event::Apply(o) = ev else { panic!("expected Apply, got {ev:?}") };
    assert_eq!(o.metadata.name.as_deref(), Some("c"));
}

// 4. Optimistic concurrency.

#[tokio::test]
async fn stale_update_is_409_conflict_and_unconditional_patch_wins() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let a = create(&cms, &cm("a")).await;
    let mut fresh = a.clone();
    fresh.data = Some([("k".to_string(), "1".to_string())].into());
    cms.replace("a", &PostParams::default(), &fresh).await.unwrap();
    let (code, reason, msg) = api_err(cms.replace("a", &PostParams::default(), &a).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(
        msg,
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // a PUT without resourceVersion is unconditional
    let mut blind = a.clone();
    blind.metadata.resource_version = None;
    cms.replace("a", &PostParams::default(), &blind).await.unwrap();
    // a patch without resourceVersion is unconditional; with a stale one it conflicts
    cms.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "2"}}))).await.unwrap();
    let stale = json!({"metadata": {"resourceVersion": rv(&a).to_string()}, "data": {"k": "3"}});
    let (code, _, _) = api_err(cms.patch("a", &PatchParams::default(), &Patch::Merge(stale)).await.unwrap_err());
    assert_eq!(code, 409);
}

// 5. Status subresource.

#[tokio::test]
async fn status_subresource_splits_spec_and_status_and_generation_tracks_spec() {
    let s = TestApiServer::start().await;
    let jobs: Api<Job> = Api::default_namespaced(s.client());
    let mut j = job("j");
    j.status = Some(serde_json::from_value(json!({"active": 5})).unwrap());
    let created = create(&jobs, &j).await;
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.status.clone().unwrap_or_default().active, None, "create drops status");

    let st = jobs
        .patch_status(
            "j",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"active": 1}, "spec": {"parallelism": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().active, Some(1));
    assert_ne!(st.spec.as_ref().unwrap().parallelism, Some(7), "status writes keep the spec");
    assert_eq!(st.metadata.generation, Some(1));

    let main = jobs
        .patch(
            "j",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"active": 9}, "spec": {"parallelism": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(main.status.unwrap().active, Some(1), "main writes keep the status");
    assert_eq!(main.spec.unwrap().parallelism, Some(3));
    assert_eq!(main.metadata.generation, Some(2), "a spec change bumps generation");

    let meta_only = jobs
        .patch("j", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})))
        .await
        .unwrap();
    assert_eq!(meta_only.metadata.generation, Some(2), "metadata changes don't");
}

// 7. Deletion: finalizers, no new finalizers while deleting, preconditions, generateName.

#[tokio::test]
async fn finalizers_hold_deleted_objects_until_removed() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let mut c = cm("f");
    c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    create(&cms, &c).await;
    let held = cms.delete("f", &DeleteParams::default()).await.unwrap().left().expect("still there");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(held.metadata.deletion_grace_period_seconds, Some(0));
    assert!(cms.get("f").await.is_ok());

    let add = json!({"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}});
    let (code, _, msg) = api_err(cms.patch("f", &PatchParams::default(), &Patch::Merge(add)).await.unwrap_err());
    assert_eq!(code, 422);
    assert_eq!(
        msg,
        "ConfigMap \"f\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/new\"}"
    );

    let uid = held.metadata.uid.clone().unwrap();
    cms.patch("f", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    wait_for(&cms, "f", conditions::is_deleted(&uid)).await;
    assert_eq!(api_err(cms.get("f").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn delete_preconditions_mismatch_is_409() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let c = create(&cms, &cm("p")).await;
    let bad = DeleteParams::default().preconditions(Preconditions { uid: Some("nope".into()), resource_version: None });
    let (code, _, msg) = api_err(cms.delete("p", &bad).await.unwrap_err());
    assert_eq!(code, 409);
    assert!(msg.contains("Precondition failed: UID in precondition: nope, UID in object meta: "), "{msg}");
    let bad_rv = DeleteParams::default().preconditions(Preconditions { uid: None, resource_version: Some("1".into()) });
    assert_eq!(api_err(cms.delete("p", &bad_rv).await.unwrap_err()).0, 409);
    let good =
        DeleteParams::default().preconditions(Preconditions { uid: c.metadata.uid.clone(), resource_version: None });
    assert!(cms.delete("p", &good).await.unwrap().is_right(), "a ConfigMap delete answers a Status");
}

#[tokio::test]
async fn generate_name_and_dry_run_create() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let mut c = cm("");
    c.metadata.name = None;
    c.metadata.generate_name = Some("gen-".into());
    let made = create(&cms, &c).await;
    let name = made.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    let dry = cms.create(&PostParams { dry_run: true, ..Default::default() }, &cm("dry")).await.unwrap();
    assert_eq!(dry.metadata.name.as_deref(), Some("dry"));
    assert_eq!(api_err(cms.get("dry").await.unwrap_err()).0, 404, "dry run stores nothing");
    // failure: neither name nor generateName
    let mut none = cm("");
    none.metadata.name = None;
    let (code, _, msg) = api_err(cms.create(&PostParams::default(), &none).await.unwrap_err());
    assert_eq!(code, 422);
    assert!(msg.contains("metadata.name: Required value: name or generateName is required"), "{msg}");
}

// 8. Garbage collection.

async fn job_with_pods(s: &TestApiServer, name: &str, block: bool) -> (Api<Job>, Api<Pod>, String) {
    let jobs: Api<Job> = Api::default_namespaced(s.client());
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    let j = create(&jobs, &job(name)).await;
    let uid = j.metadata.uid.unwrap();
    for i in 0..2 {
        create(&pods, &pod(&format!("{name}-{i}"), Some(("Job", name, &uid, block)))).await;
    }
    (jobs, pods, uid)
}

#[tokio::test]
async fn background_deletion_collects_dependents() {
    let s = TestApiServer::start().await;
    let (jobs, pods, uid) = job_with_pods(&s, "bg", false).await;
    let p0 = pods.get("bg-0").await.unwrap().metadata.uid.unwrap();
    let p1 = pods.get("bg-1").await.unwrap().metadata.uid.unwrap();
    jobs.delete("bg", &DeleteParams::background()).await.unwrap();
    wait_for(&jobs, "bg", conditions::is_deleted(&uid)).await;
    wait_for(&pods, "bg-0", conditions::is_deleted(&p0)).await;
    wait_for(&pods, "bg-1", conditions::is_deleted(&p1)).await;
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let s = TestApiServer::start().await;
    let (jobs, pods, uid) = job_with_pods(&s, "fg", true).await;
    // a finalizer on one pod keeps it, and so the owner
    pods.patch(
        "fg-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
    )
    .await
    .unwrap();
    let p1 = pods.get("fg-1").await.unwrap().metadata.uid.unwrap();
    let owner = jobs.delete("fg", &DeleteParams::foreground()).await.unwrap().left().expect("owner kept");
    assert!(owner.metadata.finalizers.unwrap_or_default().contains(&"foregroundDeletion".to_string()));
    wait_for(&pods, "fg-1", conditions::is_deleted(&p1)).await;
    wait_for(&pods, "fg-0", |p: Option<&Pod>| p.is_some_and(|p| p.metadata.deletion_timestamp.is_some())).await;
    assert!(jobs.get("fg").await.is_ok(), "owner waits for the blocking dependent");
    pods.patch("fg-0", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    wait_for(&jobs, "fg", conditions::is_deleted(&uid)).await;
}

#[tokio::test]
async fn orphan_deletion_strips_owner_references() {
    let s = TestApiServer::start().await;
    let (jobs, pods, uid) = job_with_pods(&s, "or", false).await;
    jobs.delete("or", &DeleteParams::orphan()).await.unwrap();
    wait_for(&jobs, "or", conditions::is_deleted(&uid)).await;
    for p in ["or-0", "or-1"] {
        let pod = pods.get(p).await.expect("orphaned pod stays");
        assert!(pod.metadata.owner_references.unwrap_or_default().is_empty());
    }
}

#[tokio::test]
async fn jobs_default_to_orphan_when_no_policy_is_given() {
    let s = TestApiServer::start().await;
    let (jobs, pods, uid) = job_with_pods(&s, "df", false).await;
    let kept = jobs.delete("df", &DeleteParams::default()).await.unwrap().left().expect("orphan finalizer holds it");
    assert!(kept.metadata.finalizers.unwrap_or_default().contains(&"orphan".to_string()));
    wait_for(&jobs, "df", conditions::is_deleted(&uid)).await;
    assert!(pods.get("df-0").await.is_ok());
    // contrast: a pod-owning ConfigMap defaults to Background
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let owner = create(&cms, &cm("owner")).await;
    let ouid = owner.metadata.uid.unwrap();
    let dep = create(&pods, &pod("dep", Some(("ConfigMap", "owner", &ouid, false)))).await;
    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    wait_for(&pods, "dep", conditions::is_deleted(&dep.metadata.uid.unwrap())).await;
}

#[tokio::test]
async fn dependents_of_missing_owners_are_collected() {
    let s = TestApiServer::start().await;
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    let p = create(&pods, &pod("lost", Some(("Job", "ghost", "no-such-uid", false)))).await;
    wait_for(&pods, "lost", conditions::is_deleted(&p.metadata.uid.unwrap())).await;
}

// 9. Pod graceful deletion and binding.

#[tokio::test]
async fn scheduled_pods_wait_for_their_node_unscheduled_go_at_once() {
    let s = TestApiServer::start().await;
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    create(&pods, &pod("run", None)).await;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "run"}, "target": {"kind": "Node", "name": "n1"}});
    let req = http::Request::post("/api/v1/namespaces/default/pods/run/binding")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap())
        .unwrap();
    s.client().request_text(req).await.unwrap();
    let bound = pods.get("run").await.unwrap();
    assert_eq!(bound.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
    let conds = bound.status.unwrap().conditions.unwrap();
    assert!(conds.iter().any(|c| c.type_ == "PodScheduled" && c.status == "True"));
    // failure: binding twice
    let req = http::Request::post("/api/v1/namespaces/default/pods/run/binding")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap())
        .unwrap();
    let (code, _, msg) = api_err(s.client().request_text(req).await.unwrap_err());
    assert_eq!(code, 409);
    assert_eq!(
        msg,
        "Operation cannot be fulfilled on pods/binding \"run\": pod run is already assigned to node \"n1\""
    );

    let pending = pods.delete("run", &DeleteParams::default()).await.unwrap().left().expect("graceful");
    assert_eq!(pending.metadata.deletion_grace_period_seconds, Some(30));
    assert!(pods.get("run").await.is_ok());
    let gone = pods.delete("run", &DeleteParams::default().grace_period(0)).await.unwrap();
    assert!(gone.is_left(), "pods answer with the deleted object");
    assert_eq!(api_err(pods.get("run").await.unwrap_err()).0, 404);

    create(&pods, &pod("idle", None)).await;
    pods.delete("idle", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_err(pods.get("idle").await.unwrap_err()).0, 404, "unscheduled pods go at once");
}

// Namespaces.

#[tokio::test]
async fn namespaces_exist_gate_creates_and_delete_their_contents() {
    let s = TestApiServer::start().await;
    let nss: Api<Namespace> = Api::all(s.client());
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(nss.get(n).await.is_ok(), "{n}");
    }
    let missing: Api<ConfigMap> = Api::namespaced(s.client(), "nowhere");
    let (code, _, msg) = api_err(missing.create(&PostParams::default(), &cm("x")).await.unwrap_err());
    assert_eq!((code, msg.as_str()), (404, "namespaces \"nowhere\" not found"));

    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    let ns = nss.create(&PostParams::default(), &ns).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(s.client(), "team");
    create(&cms, &cm("inside")).await;
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    wait_for(&nss, "team", conditions::is_deleted(&ns.metadata.uid.unwrap())).await;
    assert_eq!(api_err(cms.get("inside").await.unwrap_err()).0, 404);
}

// 11. Errors are Status objects.

async fn raw(s: &TestApiServer, req: http::Request<Vec<u8>>) -> (u16, serde_json::Value) {
    let client = s.client();
    match client.request_text(req).await {
        Ok(t) => (200, serde_json::from_str(&t).unwrap()),
        Err(kube::Error::Api(st)) => (st.code, serde_json::to_value(&*st).unwrap()),
        Err(e) => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn bad_requests_get_4xx_statuses() {
    let s = TestApiServer::start().await;
    let post = |path: &str, ct: &str, body: Vec<u8>| {
        http::Request::post(path.to_string()).header("content-type", ct).body(body).unwrap()
    };
    let (code, st) =
        raw(&s, post("/api/v1/namespaces/default/configmaps", "application/json", b"{not json".to_vec())).await;
    assert_eq!((code, st["reason"].as_str()), (400, Some("BadRequest")));
    let huge = format!("{{\"metadata\":{{\"name\":\"h\"}},\"data\":{{\"k\":\"{}\"}}}}", "x".repeat(4 * 1024 * 1024));
    let (code, _) = raw(&s, post("/api/v1/namespaces/default/configmaps", "application/json", huge.into_bytes())).await;
    assert_eq!(code, 413);
    let (code, _) = raw(&s, post("/api/v1/namespaces/default/widgets", "application/json", b"{}".to_vec())).await;
    assert_eq!(code, 404);
    let wrong = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w"}})).unwrap();
    let (code, _) = raw(&s, post("/api/v1/namespaces/default/configmaps", "application/json", wrong)).await;
    assert_eq!(code, 400);
    let mismatch = serde_json::to_vec(&json!({"metadata": {"name": "w", "namespace": "other"}})).unwrap();
    let (code, st) = raw(&s, post("/api/v1/namespaces/default/configmaps", "application/json", mismatch)).await;
    assert_eq!(code, 400);
    assert_eq!(st["message"], "the namespace of the provided object does not match the namespace sent on the request");
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    create(&cms, &cm("a")).await;
    let patch = http::Request::patch("/api/v1/namespaces/default/configmaps/a")
        .header("content-type", "text/plain")
        .body(b"{}".to_vec())
        .unwrap();
    assert_eq!(raw(&s, patch).await.0, 415);
    let (code, st) =
        raw(&s, http::Request::get("/api/v1/namespaces/default/configmaps/zzz").body(vec![]).unwrap()).await;
    assert_eq!((code, st["message"].as_str()), (404, Some("configmaps \"zzz\" not found")));
    let (code, _) = raw(
        &s,
        post("/api/v1/namespaces/default/configmaps", "application/json", b"{\"metadata\":{\"name\":\"a\"}}".to_vec()),
    )
    .await;
    assert_eq!(code, 409, "AlreadyExists");
}

// Events: one store, two views.

#[tokio::test]
async fn events_written_as_events_k8s_io_read_as_core() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as NewEvent;
    let s = TestApiServer::start().await;
    let new: Api<NewEvent> = Api::default_namespaced(s.client());
    let core: Api<CoreEvent> = Api::default_namespaced(s.client());
    let e: NewEvent = serde_json::from_value(json!({
        "metadata": {"name": "e1"}, "eventTime": "2025-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Job", "name": "j", "namespace": "default"}, "note": "made a pod",
        "reason": "SuccessfulCreate", "type": "Normal", "action": "Create",
        "reportingController": "jobwright.dev/job-controller", "reportingInstance": "jobwright-1"}))
    .unwrap();
    new.create(&PostParams::default(), &e).await.unwrap();
    let c = core.get("e1").await.unwrap();
    assert_eq!(c.involved_object.name.as_deref(), Some("j"));
    assert_eq!(c.message.as_deref(), Some("made a pod"));
    assert_eq!(c.reporting_component.as_deref(), Some("jobwright.dev/job-controller"));
    let back = new.get("e1").await.unwrap();
    assert_eq!(back.note.as_deref(), Some("made a pod"));
    assert_eq!(core.list(&ListParams::default()).await.unwrap().items.len(), 1);
    assert_eq!(api_err(new.get("nope").await.unwrap_err()).2, "events.events.k8s.io \"nope\" not found");
}

// Pod logs are proxied to the node's kubelet endpoint.

#[tokio::test]
async fn pod_logs_are_proxied_to_the_kubelet() {
    use axum::extract::{Path, RawQuery};
    let s = TestApiServer::start().await;
    let kubelet = axum::Router::new().route(
        "/containerLogs/{ns}/{pod}/{container}",
        axum::routing::get(|Path((ns, pod, c)): Path<(String, String, String)>, RawQuery(q): RawQuery| async move {
            format!("{ns}/{pod}/{c}?{}\n", q.unwrap_or_default())
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move { axum::serve(listener, kubelet).await });
    let nodes: Api<Node> = Api::all(s.client());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}})),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    let mut p = pod("logger", None);
    p.spec.as_mut().unwrap().node_name = Some("n1".into());
    create(&pods, &p).await;
    let logs = pods.logs("logger", &kube::api::LogParams { tail_lines: Some(5), ..Default::default() }).await.unwrap();
    assert_eq!(logs, "default/logger/main?tailLines=5\n");
    // failure: several containers and none named
    let mut two = pod("two", None);
    let spec = two.spec.as_mut().unwrap();
    spec.node_name = Some("n1".into());
    let mut second = spec.containers[0].clone();
    second.name = "side".into();
    spec.containers.push(second);
    create(&pods, &two).await;
    let (code, _, msg) = api_err(pods.logs("two", &Default::default()).await.unwrap_err());
    assert_eq!(code, 400);
    assert_eq!(msg, "a container name must be specified for pod two, choose one of: [main side]");
    // failure: not scheduled yet
    create(&pods, &pod("pending", None)).await;
    let (code, _, msg) = api_err(pods.logs("pending", &Default::default()).await.unwrap_err());
    assert_eq!((code, msg.as_str()), (400, "pod pending does not have a host assigned"));
    server.abort();
}

#[tokio::test]
async fn delete_collection_removes_matching_objects() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    for n in ["a", "b"] {
        create(&cms, &cm(n)).await;
    }
    cms.delete_collection(&DeleteParams::default(), &ListParams::default()).await.unwrap();
    assert!(cms.list(&ListParams::default()).await.unwrap().items.is_empty());
}

// Custom resources: storing a CRD serves its resources.

#[tokio::test]
async fn crds_serve_custom_resources_until_deleted() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let s = TestApiServer::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(s.client());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}))
    .unwrap();
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.com", "v1", "Widget"), "widgets");
    let widgets: Api<DynamicObject> = Api::default_namespaced_with(s.client(), &ar);
    let w: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 1}, "status": {"ready": true}}))
    .unwrap();
    // failure first: not served before the CRD exists
    assert_eq!(api_err(widgets.create(&PostParams::default(), &w).await.unwrap_err()).0, 404);
    let stored = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conds = stored.status.unwrap().conditions.unwrap();
    assert!(conds.iter().any(|c| c.type_ == "Established" && c.status == "True"));
    let made = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(made.metadata.generation, Some(1));
    assert!(made.data.get("status").is_none(), "status subresource: create drops status (none stored, as upstream)");
    let patched =
        widgets.patch("w1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": 2}}))).await.unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
    crds.delete("widgets.example.com", &DeleteParams::default()).await.unwrap();
    // Its finalizer deletes the objects, then the CRD goes.
    wait_for(&crds, "widgets.example.com", conditions::is_deleted(stored.metadata.uid.as_deref().unwrap())).await;
    assert_eq!(api_err(widgets.get("w1").await.unwrap_err()).0, 404);
}

// Content negotiation: Table and PartialObjectMetadata.

#[tokio::test]
async fn table_and_partial_metadata_responses() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    create(&cms, &cm("a")).await;
    create(&cms, &cm("b")).await;
    let get = |accept: &str| {
        http::Request::get("/api/v1/namespaces/default/configmaps").header("accept", accept).body(vec![]).unwrap()
    };
    let t =
        s.client().request_text(get("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")).await.unwrap();
    let t: serde_json::Value = serde_json::from_str(&t).unwrap();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["rows"].as_array().unwrap().len(), 2);
    assert!(t["metadata"]["resourceVersion"].as_str().is_some_and(|rv| !rv.is_empty()));
    let meta = cms.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(meta.items.len(), 2);
    assert_eq!(meta.items[0].metadata.name.as_deref(), Some("a"));
    // plain JSON stays plain
    let plain = s.client().request_text(get("application/json")).await.unwrap();
    assert!(plain.contains("\"kind\":\"ConfigMapList\""));
}

// Watch of one object through the legacy /watch/ path sees only that object.

#[tokio::test]
async fn watch_path_for_one_object_filters_by_name() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let req =
        http::Request::get("/api/v1/watch/namespaces/default/configmaps/target?resourceVersion=0&timeoutSeconds=5")
            .body(vec![])
            .unwrap();
    let client = s.client();
    let mut lines = {
        use futures::AsyncBufReadExt;
        client.request_stream(req).await.unwrap().lines()
    };
    create(&cms, &cm("other")).await;
    create(&cms, &cm("target")).await;
    let first: serde_json::Value = serde_json::from_str(&lines.next().await.unwrap().unwrap()).unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["metadata"]["name"], "target");
}

// Server-side apply creates; a missing fieldManager is a 422.

#[tokio::test]
async fn apply_patch_creates_and_requires_a_field_manager() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}});
    let made = cms.patch("ssa", &PatchParams::apply("tester"), &Patch::Apply(&body)).await.unwrap();
    assert_eq!(made.data.unwrap()["a"], "1");
    assert!(made.metadata.uid.is_some());
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/ssa")
        .header("content-type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    let (code, _, msg) = api_err(s.client().request_text(req).await.unwrap_err());
    assert_eq!(code, 422);
    assert_eq!(
        msg,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
}

// Dry-run deletes keep the object.

#[tokio::test]
async fn dry_run_delete_keeps_the_object() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    create(&cms, &cm("keep")).await;
    cms.delete("keep", &DeleteParams::default().dry_run()).await.unwrap();
    assert!(cms.get("keep").await.is_ok());
    let (code, _, _) = api_err(cms.delete("absent", &DeleteParams::default().dry_run()).await.unwrap_err());
    assert_eq!(code, 404);
}

#[tokio::test]
async fn terminating_namespaces_refuse_new_content_and_wait_for_finalizers() {
    let s = TestApiServer::start().await;
    let nss: Api<Namespace> = Api::all(s.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "held"}})).unwrap();
    let ns = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    let cms: Api<ConfigMap> = Api::namespaced(s.client(), "held");
    let mut c = cm("pinned");
    c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    create(&cms, &c).await;
    nss.delete("held", &DeleteParams::default()).await.unwrap();
    wait_for(&cms, "pinned", |c: Option<&ConfigMap>| c.is_some_and(|c| c.metadata.deletion_timestamp.is_some())).await;
    let terminating = nss.get("held").await.unwrap();
    assert_eq!(terminating.status.unwrap().phase.as_deref(), Some("Terminating"));
    let (code, _, msg) = api_err(cms.create(&PostParams::default(), &cm("late")).await.unwrap_err());
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        "configmaps \"late\" is forbidden: unable to create new content in namespace held because it is being terminated"
    );
    cms.patch("pinned", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    wait_for(&nss, "held", conditions::is_deleted(&ns.metadata.uid.unwrap())).await;
}

#[tokio::test]
async fn eviction_deletes_the_pod() {
    let s = TestApiServer::start().await;
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    create(&pods, &pod("ev", None)).await;
    pods.evict("ev", &Default::default()).await.unwrap();
    assert_eq!(api_err(pods.get("ev").await.unwrap_err()).0, 404);
    assert_eq!(api_err(pods.evict("ev", &Default::default()).await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn kube_runtime_recorder_events_show_up_in_the_core_view() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let s = TestApiServer::start().await;
    let jobs: Api<Job> = Api::default_namespaced(s.client());
    let j = create(&jobs, &job("rec")).await;
    let reporter = Reporter { controller: "jobwright.dev/job-controller".into(), instance: Some("i-1".into()) };
    let recorder = Recorder::new(s.client(), reporter);
    let ev = Event {
        type_: EventType::Normal,
        reason: "SuccessfulCreate".into(),
        note: Some("Created pod: rec-abcde".into()),
        action: "Create".into(),
        secondary: None,
    };
    let reference = j.object_ref(&());
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let core: Api<CoreEvent> = Api::default_namespaced(s.client());
    let list = core.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1, "the repeat is a patch of the same event");
    let e = &list.items[0];
    assert_eq!(e.involved_object.name.as_deref(), Some("rec"));
    assert_eq!(e.reason.as_deref(), Some("SuccessfulCreate"));
    assert_eq!(e.message.as_deref(), Some("Created pod: rec-abcde"));
    assert_eq!(e.reporting_component.as_deref(), Some("jobwright.dev/job-controller"));
    assert!(e.series.as_ref().is_some_and(|s| s.count == Some(2)), "{:?}", e.series);
}
