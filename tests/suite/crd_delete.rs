//! Deleting a CustomResourceDefinition as kube-apiserver does: the CRD gets a deletionTimestamp,
//! the `customresourcecleanup.apiextensions.k8s.io` finalizer and the `Terminating` condition,
//! stays visible while its instances are deleted (new ones refused with upstream's 403), and
//! goes (a DELETED watch event) once the last instance has gone.

use crate::common;

use common::{WAIT, api_err, wait_for};
use futures::{StreamExt, TryStreamExt};
use jobwright::apiserver::testkit::TestApiServer;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::wait::Condition;
use serde_json::{Value, json};

const CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

fn crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}))
    .unwrap()
}

fn widgets(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk_with_plural(&gvk, "widgets"))
}

fn widget(name: &str, finalizers: &[&str]) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": name, "finalizers": finalizers}, "spec": {"size": 1}}))
    .unwrap()
}

/// A `Terminating` condition: status, reason, message.
type Cond = (String, String, String);

/// A watch event as seen here: type, `Terminating`, whether a finalizer is left.
type Seen = (String, Option<Cond>, bool);

fn terminating(crd: &CustomResourceDefinition) -> Option<Cond> {
    let c = crd.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Terminating")?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
}

fn reason_is(reason: &'static str) -> impl Condition<CustomResourceDefinition> {
    move |c: Option<&CustomResourceDefinition>| c.and_then(terminating).is_some_and(|t| t.1 == reason)
}

#[tokio::test]
async fn a_deleted_crd_terminates_until_its_instances_are_gone() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds.create(&PostParams::default(), &crd()).await.unwrap();
    assert!(created.metadata.finalizers.is_none(), "upstream adds its finalizer on delete, not on create");
    let crd_uid = created.metadata.uid.unwrap();
    let (default, other) = (widgets(&client, "default"), widgets(&client, "kube-system"));
    let uid = |o: DynamicObject| o.metadata.uid.unwrap();
    let free = uid(default.create(&PostParams::default(), &widget("free", &[])).await.unwrap());
    default.create(&PostParams::default(), &widget("held", &["example.com/hold"])).await.unwrap();
    let elsewhere = uid(other.create(&PostParams::default(), &widget("elsewhere", &[])).await.unwrap());

    let rv = crds.get("widgets.example.com").await.unwrap().metadata.resource_version.unwrap();
    let wp = WatchParams::default().fields("metadata.name=widgets.example.com");
    let mut events = crds.watch(&wp, &rv).await.unwrap().boxed();

    let deleted = crds.delete("widgets.example.com", &DeleteParams::default()).await.unwrap();
    let marked = deleted.left().expect("the CRD stays while its instances are deleted");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.finalizers.as_deref(), Some(&[CLEANUP.to_string()][..]));
    assert_eq!(
        terminating(&marked),
        Some((
            "True".into(),
            "InstanceDeletionPending".into(),
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon".into()
        ))
    );

    // The finalizer deletes what it can; the held instance keeps the CRD terminating.
    wait_for(&crds, "widgets.example.com", reason_is("InstanceDeletionInProgress")).await;
    let crd_now = crds.get("widgets.example.com").await.unwrap();
    assert_eq!(
        terminating(&crd_now),
        Some(("True".into(), "InstanceDeletionInProgress".into(), "CustomResource deletion is in progress".into()))
    );
    wait_for(&default, "free", kube::runtime::conditions::is_deleted(&free)).await;
    wait_for(&other, "elsewhere", kube::runtime::conditions::is_deleted(&elsewhere)).await;
    wait_for(&default, "held", |o: Option<&DynamicObject>| o.is_some_and(|o| o.metadata.deletion_timestamp.is_some()))
        .await;

    // No new instances while terminating (create and apply-create); reads and updates still work.
    let e = default.create(&PostParams::default(), &widget("late", &[])).await.unwrap_err();
    let (code, reason, msg) = api_err(e);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        "widgets.example.com \"late\" is forbidden: create not allowed while custom resource definition is terminating"
    );
    let apply = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "late"}});
    let e = default.patch("late", &PatchParams::apply("t"), &Patch::Apply(apply)).await.unwrap_err();
    assert_eq!(api_err(e).0, 403);
    assert_eq!(default.list(&Default::default()).await.unwrap().items.len(), 1);
    assert!(crds.get("widgets.example.com").await.is_ok(), "still visible");

    // Releasing the held instance lets the CRD go.
    default
        .patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    wait_for(&crds, "widgets.example.com", kube::runtime::conditions::is_deleted(&crd_uid)).await;

    let mut seen: Vec<Seen> = Vec::new();
    let collect = async {
        while let Some(ev) = events.try_next().await.unwrap() {
            match ev {
                WatchEvent::Modified(c) => {
                    seen.push((
                        "MODIFIED".into(),
                        terminating(&c),
                        c.metadata.finalizers.is_some_and(|f| !f.is_empty()),
                    ));
                }
                WatchEvent::Deleted(c) => {
                    seen.push((
                        "DELETED".into(),
                        terminating(&c),
                        c.metadata.finalizers.is_some_and(|f| !f.is_empty()),
                    ));
                    return;
                }
                WatchEvent::Bookmark(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, collect).await.expect("a DELETED event");
    let kinds: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"MODIFIED"), "{seen:?}");
    assert_eq!(kinds.last(), Some(&"DELETED"), "{seen:?}");
    assert_eq!(seen[0].1.as_ref().map(|t| t.1.as_str()), Some("InstanceDeletionPending"));
    assert!(seen.iter().any(|s| s.1.as_ref().is_some_and(|t| t.1 == "InstanceDeletionInProgress")));
    let last = seen.last().unwrap();
    assert_eq!(last.1, Some(("False".into(), "InstanceDeletionCompleted".into(), "removed all instances".into())));
    assert!(!last.2, "the DELETED object has no finalizer left");

    // No longer served; a new CRD of the same name starts empty.
    assert_eq!(api_err(default.list(&Default::default()).await.unwrap_err()).0, 404);
    crds.create(&PostParams::default(), &crd()).await.unwrap();
    assert!(default.list(&Default::default()).await.unwrap().items.is_empty());
}

/// kube-rs's `crd_derive_schema` example deletes a CRD and then watches it from `"0"` until its
/// DELETED event: the terminating CRD is listed first, then goes.
#[tokio::test]
async fn a_watch_from_zero_after_delete_sees_the_crd_go() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd()).await.unwrap();
    widgets(&client, "default").create(&PostParams::default(), &widget("held", &["example.com/hold"])).await.unwrap();
    crds.delete("widgets.example.com", &DeleteParams::default()).await.unwrap();
    let wp = WatchParams::default().fields("metadata.name=widgets.example.com");
    let mut events = crds.watch(&wp, "0").await.unwrap().boxed();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Added(c)) => assert!(c.metadata.deletion_timestamp.is_some()),
        other => panic!("expected the terminating CRD first, got {other:?}"),
    }
    widgets(&client, "default")
        .patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": []}})))
        .await
        .unwrap();
    let deleted = tokio::time::timeout(WAIT, async {
        while let Some(ev) = events.try_next().await.unwrap() {
            if let WatchEvent::Deleted(c) = ev {
                return c;
            }
        }
        panic!("watch ended without DELETED");
    })
    .await
    .expect("DELETED within the bound");
    assert_eq!(deleted.metadata.name.as_deref(), Some("widgets.example.com"));
}

#[tokio::test]
async fn kubectl_delete_crd_waits_for_the_instances_and_the_crd() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd()).await.unwrap();
    for n in ["a", "b"] {
        widgets(&client, "default").create(&PostParams::default(), &widget(n, &[])).await.unwrap();
    }
    let out = server.kubectl().ok(&["delete", "crd", "widgets.example.com"]).await;
    assert_eq!(out.trim(), "customresourcedefinition.apiextensions.k8s.io \"widgets.example.com\" deleted");
    let err = server.kubectl().fail(&["get", "crd", "widgets.example.com"]).await;
    assert!(err.contains("NotFound") || err.contains("not found"), "{err}");
    let v: Value = serde_json::from_str(&server.kubectl().ok(&["get", "crd", "-o", "json"]).await).unwrap();
    assert_eq!(v["items"], json!([]));
}
