//! The `scale` subresource of the built-in workloads (Deployments, ReplicaSets, StatefulSets,
//! ReplicationControllers), as an `autoscaling/v1` Scale over `.spec.replicas`,
//! `.status.replicas` and the printed `.spec.selector`, through kube's scale API and
//! `kubectl scale`.

use crate::common;

use common::api_err;
use jobwright::apiserver::testkit::TestApiServer;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "w", "tier": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
}

/// `(plural, kind, group, version, object)` for each kind.
fn kinds() -> Vec<(&'static str, &'static str, &'static str, Value, &'static str)> {
    let sel = json!({"matchLabels": {"app": "w", "tier": "web"}});
    vec![
        (
            "deployments",
            "Deployment",
            "apps",
            json!({"replicas": 2, "selector": sel, "template": template()}),
            "app=w,tier=web",
        ),
        (
            "replicasets",
            "ReplicaSet",
            "apps",
            json!({"replicas": 2, "selector": sel, "template": template()}),
            "app=w,tier=web",
        ),
        (
            "statefulsets",
            "StatefulSet",
            "apps",
            json!({"replicas": 2, "serviceName": "w", "selector": sel, "template": template()}),
            "app=w,tier=web",
        ),
        (
            "replicationcontrollers",
            "ReplicationController",
            "",
            json!({"replicas": 2, "selector": {"tier": "web", "app": "w"}, "template": template()}),
            "app=w,tier=web",
        ),
    ]
}

#[tokio::test]
async fn workloads_serve_scale_as_autoscaling_v1() {
    let server = TestApiServer::start().await;
    let client = server.client();
    for (plural, kind, group, spec, selector) in kinds() {
        let gvk = GroupVersionKind::gvk(group, "v1", kind);
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "default", &ApiResource::from_gvk_with_plural(&gvk, plural));
        let api_version = if group.is_empty() { "v1".to_string() } else { format!("{group}/v1") };
        let obj: DynamicObject = serde_json::from_value(
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "w"}, "spec": spec}),
        )
        .unwrap();
        let created = api.create(&PostParams::default(), &obj).await.unwrap();

        let scale = api.get_scale("w").await.unwrap();
        let sv = serde_json::to_value(&scale).unwrap();
        assert_eq!(sv["apiVersion"], "autoscaling/v1", "{kind}");
        assert_eq!(sv["kind"], "Scale");
        assert_eq!(sv["spec"], json!({"replicas": 2}), "{kind}");
        assert_eq!(sv["status"], json!({"replicas": 0, "selector": selector}), "{kind}");
        assert_eq!(scale.metadata.uid, created.metadata.uid);

        let patched = api
            .patch_scale("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 5}})))
            .await
            .unwrap();
        assert_eq!(patched.spec.unwrap().replicas, Some(5), "{kind}");
        assert_eq!(api.get("w").await.unwrap().data["spec"]["replicas"], 5, "{kind}: the object was scaled");

        // A stale resourceVersion is a conflict; a negative count is refused as upstream.
        let mut stale = scale.clone();
        stale.spec.as_mut().unwrap().replicas = Some(1);
        let e = api.replace_scale("w", &PostParams::default(), &stale).await.unwrap_err();
        assert_eq!(api_err(e).0, 409, "{kind}");
        let e = api
            .patch_scale("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": -1}})))
            .await
            .unwrap_err();
        let (code, _, msg) = api_err(e);
        assert_eq!(code, 422, "{kind}");
        assert_eq!(
            msg,
            "Scale.autoscaling \"w\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
    }
    let missing: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("apps", "v1", "Deployment"), "deployments"),
    );
    let (code, _, msg) = api_err(missing.get_scale("nope").await.unwrap_err());
    assert_eq!((code, msg.as_str()), (404, "deployments.apps \"nope\" not found"));
}

#[tokio::test]
async fn kubectl_scale_deployment() {
    let server = TestApiServer::start().await;
    let kubectl = server.kubectl();
    let manifest = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "w", "tier": "web"}}, "template": template()}});
    kubectl.run_stdin(&["apply", "-f", "-"], &manifest.to_string()).await;
    let out = kubectl.ok(&["scale", "deployment", "web", "--replicas=3"]).await;
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    assert_eq!(kubectl.ok(&["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]).await, "3");
    let out = kubectl.ok(&["scale", "rc,deployment", "--all", "--replicas=4", "--current-replicas=3"]).await;
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    let err = kubectl.fail(&["scale", "deployment", "web", "--replicas=5", "--current-replicas=1"]).await;
    assert!(err.contains("Expected replicas to be 1, was 4"), "{err}");
}
