//! CustomResourceDefinitions served to kube-apiserver's rules, through `kube::Client` and the real
//! `kubectl`: schema defaults, OpenAPI validation messages and field paths, CEL rules (with
//! transition rules), the status subresource (no status stored on create), the scale subresource,
//! two versions with the `None` conversion, printer columns, CRD conditions and name conflicts,
//! structural-schema refusals, and deleting a CRD deleting its objects.

use crate::common;

use common::api_err;
use http_body_util::BodyExt;
use jobwright::apiserver::testkit::TestApiServer;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn schema() -> Value {
    json!({"type": "object", "properties": {
        "spec": {"type": "object", "required": ["name"],
            "x-kubernetes-validations": [
                {"rule": "self.replicas <= 5", "message": "at most 5 replicas"},
                {"rule": "self.mode != 'B' || self.replicas > 0", "messageExpression": "'mode B needs replicas, got ' + string(self.replicas)", "fieldPath": ".replicas"},
            ],
            "properties": {
                "name": {"type": "string", "minLength": 3, "maxLength": 10},
                "replicas": {"type": "integer", "default": 1, "minimum": 0},
                "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "class": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "class is immutable"}]},
            }},
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}, "selector": {"type": "string"}}},
    }})
}

fn version(name: &str, storage: bool) -> Value {
    json!({"name": name, "served": true, "storage": storage,
        "schema": {"openAPIV3Schema": schema()},
        "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"}},
        "additionalPrinterColumns": [
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"}]})
}

fn widget_crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [version("v1", true), version("v1beta1", false)]}})
}

async fn install(client: &kube::Client, crd: Value) -> CustomResourceDefinition {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &serde_json::from_value(crd).unwrap()).await.unwrap()
}

fn widgets(client: &kube::Client, version: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("example.com", version, "Widget");
    Api::namespaced_with(client.clone(), "default", &ApiResource::from_gvk_with_plural(&gvk, "widgets"))
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": name}, "spec": spec}))
    .unwrap()
}

/// A raw request's status code and JSON body (for `details.causes`, which kube's error drops).
async fn raw(client: &kube::Client, method: &str, path: &str, ct: &str, body: Value) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    let resp = client.send(req.map(kube::client::Body::from)).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

const WIDGETS: &str = "/apis/example.com/v1/namespaces/default/widgets";

#[tokio::test]
async fn create_applies_defaults_and_stores_no_status() {
    let server = TestApiServer::start().await;
    let client = server.client();
    install(&client, widget_crd()).await;
    let api = widgets(&client, "v1");
    let mut w = widget("w1", json!({"name": "abc"}));
    w.data["status"] = json!({"replicas": 9});
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.data["spec"], json!({"name": "abc", "replicas": 1, "mode": "A"}));
    assert!(created.data.get("status").is_none(), "status dropped on create: {:?}", created.data);
    let got = api.get("w1").await.unwrap();
    assert!(got.data.get("status").is_none());
    assert_eq!(got.metadata.generation, Some(1));
    // A main-resource update cannot write status either; the status subresource can.
    let mut upd = got.clone();
    upd.data["status"] = json!({"replicas": 4});
    upd.data["spec"]["tags"] = json!(["x"]);
    let upd = api.replace("w1", &PostParams::default(), &upd).await.unwrap();
    assert!(upd.data.get("status").is_none());
    assert_eq!(upd.metadata.generation, Some(2));
    let st = api
        .patch_status("w1", &PatchParams::default(), &Patch::Merge(json!({"status": {"replicas": 4}})))
        .await
        .unwrap();
    assert_eq!(st.data["status"]["replicas"], 4);
    assert_eq!(st.metadata.generation, Some(2), "a status write does not bump generation");
}

#[tokio::test]
async fn schema_violations_are_422_with_upstream_messages_and_causes() {
    let server = TestApiServer::start().await;
    let client = server.client();
    install(&client, widget_crd()).await;
    let api = widgets(&client, "v1");
    let (code, reason, msg) =
        api_err(api.create(&PostParams::default(), &widget("w", json!({"name": "ab"}))).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        msg,
        "Widget.example.com \"w\" is invalid: spec.name: Invalid value: \"ab\": spec.name in body should be at least 3 chars long"
    );
    let (code, body) = raw(
        &client,
        "POST",
        WIDGETS,
        "application/json",
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"name": "abcdefghijkl", "mode": "C", "replicas": "3", "tags": ["a", "a"]}}),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(body["details"]["group"], "example.com");
    assert_eq!(body["details"]["kind"], "Widget");
    let causes: Vec<(String, String, String)> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["reason"].as_str().unwrap().into(),
                c["field"].as_str().unwrap().into(),
                c["message"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("FieldValueNotSupported", "spec.mode", "Unsupported value: \"C\": supported values: \"A\", \"B\""),
        ("FieldValueTooLong", "spec.name", "Too long: may not be longer than 10"),
        (
            "FieldValueTypeInvalid",
            "spec.replicas",
            "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
        ),
        ("FieldValueDuplicate", "spec.tags[1]", "Duplicate value: \"a\""),
    ];
    for (r, f, m) in want {
        assert!(causes.contains(&(r.into(), f.into(), m.into())), "missing {f}: {m} in {causes:?}");
    }
    // Required
    let (code, _, msg) =
        api_err(api.create(&PostParams::default(), &widget("w", json!({"replicas": 2}))).await.unwrap_err());
    assert_eq!(code, 422);
    assert!(msg.ends_with("spec.name: Required value"), "{msg}");
    // Minimum
    let (_, _, msg) = api_err(
        api.create(&PostParams::default(), &widget("w", json!({"name": "abc", "replicas": -1}))).await.unwrap_err(),
    );
    assert!(
        msg.ends_with("spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"),
        "{msg}"
    );
}

#[tokio::test]
async fn cel_rules_and_transition_rules() {
    let server = TestApiServer::start().await;
    let client = server.client();
    install(&client, widget_crd()).await;
    let api = widgets(&client, "v1");
    let (code, _, msg) = api_err(
        api.create(&PostParams::default(), &widget("w", json!({"name": "abc", "replicas": 6}))).await.unwrap_err(),
    );
    assert_eq!(code, 422);
    assert_eq!(msg, "Widget.example.com \"w\" is invalid: spec: Invalid value: \"object\": at most 5 replicas");
    let (_, _, msg) = api_err(
        api.create(&PostParams::default(), &widget("w", json!({"name": "abc", "replicas": 0, "mode": "B"})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        msg,
        "Widget.example.com \"w\" is invalid: spec.replicas: Invalid value: \"object\": mode B needs replicas, got 0"
    );
    // Transition rule: class can be set once, never changed.
    api.create(&PostParams::default(), &widget("w", json!({"name": "abc", "class": "gold"}))).await.unwrap();
    let patch = Patch::Merge(json!({"spec": {"class": "silver"}}));
    let (code, _, msg) = api_err(api.patch("w", &PatchParams::default(), &patch).await.unwrap_err());
    assert_eq!(code, 422);
    assert_eq!(msg, "Widget.example.com \"w\" is invalid: spec.class: Invalid value: \"string\": class is immutable");
    let ok = Patch::Merge(json!({"spec": {"replicas": 3}}));
    assert_eq!(api.patch("w", &PatchParams::default(), &ok).await.unwrap().data["spec"]["replicas"], 3);
}

#[tokio::test]
async fn scale_subresource_reads_and_writes_the_replicas_paths() {
    let server = TestApiServer::start().await;
    let client = server.client();
    install(&client, widget_crd()).await;
    let api = widgets(&client, "v1");
    api.create(&PostParams::default(), &widget("w", json!({"name": "abc"}))).await.unwrap();
    api.patch_status(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"replicas": 1, "selector": "app=w"}})),
    )
    .await
    .unwrap();
    let s = api.get_scale("w").await.unwrap();
    assert_eq!(s.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(s.status.as_ref().unwrap().replicas, 1);
    assert_eq!(s.status.as_ref().unwrap().selector.as_deref(), Some("app=w"));
    let s =
        api.patch_scale("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}}))).await.unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(3));
    let w = api.get("w").await.unwrap();
    assert_eq!(w.data["spec"]["replicas"], 3);
    assert_eq!(w.metadata.generation, Some(2));
    // The schema still applies to a scale write (CEL: at most 5).
    let (code, _, msg) = api_err(
        api.patch_scale("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 7}})))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(msg.ends_with("spec: Invalid value: \"object\": at most 5 replicas"), "{msg}");
    let (code, body) = raw(
        &client,
        "PUT",
        &format!("{WIDGETS}/w/scale"),
        "application/json",
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "w"}, "spec": {"replicas": -1}}),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        body["message"],
        "Scale.autoscaling \"w\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );
    // A stale resourceVersion is a conflict.
    let (code, _) = raw(&client, "PUT", &format!("{WIDGETS}/w/scale"), "application/json",
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "w", "resourceVersion": "1"}, "spec": {"replicas": 2}})).await;
    assert_eq!(code, 409);
}

#[tokio::test]
async fn versions_share_storage_and_rewrite_api_version() {
    let server = TestApiServer::start().await;
    let client = server.client();
    install(&client, widget_crd()).await;
    let v1 = widgets(&client, "v1");
    let beta = widgets(&client, "v1beta1");
    let mut w = widget("w", json!({"name": "abc"}));
    w.types.as_mut().unwrap().api_version = "example.com/v1beta1".into();
    let created = beta.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.types.unwrap().api_version, "example.com/v1beta1");
    assert_eq!(v1.get("w").await.unwrap().types.unwrap().api_version, "example.com/v1");
    let listed = v1.list(&Default::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].types.as_ref().unwrap().api_version, "example.com/v1");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get("widgets.example.com").await.unwrap();
    let status = crd.status.unwrap();
    assert_eq!(status.stored_versions, Some(vec!["v1".to_string()]));
    let conds = status.conditions.unwrap();
    let find =
        |t: &str| conds.iter().find(|c| c.type_ == t).map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()));
    assert_eq!(find("NamesAccepted"), Some(("True".into(), "NoConflicts".into())));
    assert_eq!(find("Established"), Some(("True".into(), "InitialNamesAccepted".into())));
}

#[tokio::test]
async fn crd_names_conflicts_and_structural_schemas() {
    let server = TestApiServer::start().await;
    let client = server.client();
    install(&client, widget_crd()).await;
    // Same kind in the same group: accepted as an object, names not accepted, not served.
    let mut other = widget_crd();
    other["metadata"]["name"] = json!("gadgets.example.com");
    other["spec"]["names"] = json!({"plural": "gadgets", "singular": "gadget", "kind": "Widget"});
    let other = install(&client, other).await;
    let conds = other.status.unwrap().conditions.unwrap();
    let na = conds.iter().find(|c| c.type_ == "NamesAccepted").unwrap();
    assert_eq!((na.status.as_str(), na.reason.as_deref()), ("False", Some("KindConflict")));
    assert_eq!(na.message.as_deref(), Some("\"Widget\" is already in use"));
    let est = conds.iter().find(|c| c.type_ == "Established").unwrap();
    assert_eq!((est.status.as_str(), est.reason.as_deref()), ("False", Some("NotAccepted")));
    let (code, _) =
        raw(&client, "GET", "/apis/example.com/v1/namespaces/default/gadgets", "application/json", Value::Null).await;
    assert_eq!(code, 404);
    // A schema that is not structural is refused with upstream's path and message.
    let mut bad = widget_crd();
    bad["metadata"]["name"] = json!("things.example.com");
    bad["spec"]["names"] = json!({"plural": "things", "kind": "Thing"});
    bad["spec"]["versions"] = json!([{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema":
        {"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}}}]);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let (code, _, msg) =
        api_err(crds.create(&PostParams::default(), &serde_json::from_value(bad).unwrap()).await.unwrap_err());
    assert_eq!(code, 422);
    assert_eq!(
        msg,
        "CustomResourceDefinition.apiextensions.k8s.io \"things.example.com\" is invalid: spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
    );
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_objects() {
    let server = TestApiServer::start().await;
    let client = server.client();
    install(&client, widget_crd()).await;
    let api = widgets(&client, "v1");
    for n in ["a", "b"] {
        api.create(&PostParams::default(), &widget(n, json!({"name": "abc"}))).await.unwrap();
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let uid = crds.get("widgets.example.com").await.unwrap().metadata.uid.unwrap();
    crds.delete("widgets.example.com", &DeleteParams::default()).await.unwrap();
    // The CRD goes once its finalizer has deleted the objects (tests/suite/crd_delete.rs has the steps).
    common::wait_for(&crds, "widgets.example.com", kube::runtime::conditions::is_deleted(&uid)).await;
    let (code, _) = raw(&client, "GET", WIDGETS, "application/json", Value::Null).await;
    assert_eq!(code, 404, "no longer served");
    install(&client, widget_crd()).await;
    assert!(api.list(&Default::default()).await.unwrap().items.is_empty(), "objects went with their CRD");
}

#[tokio::test]
async fn kubectl_sees_messages_printer_columns_and_scales() {
    let server = TestApiServer::start().await;
    let client = server.client();
    install(&client, widget_crd()).await;
    let k = server.kubectl();
    let bad = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  name: ab\n";
    let out = k.run_stdin(&["apply", "-f", "-"], bad).await;
    assert!(!out.success, "{out:?}");
    assert!(
        out.stderr.contains("The Widget \"w\" is invalid: spec.name: Invalid value: \"ab\": spec.name in body should be at least 3 chars long"),
        "{}",
        out.stderr
    );
    let good = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  name: abc\n";
    let out = k.run_stdin(&["apply", "-f", "-"], good).await;
    assert!(out.success, "{out:?}");
    assert_eq!(k.ok(&["scale", "widget", "w", "--replicas=2"]).await.trim(), "widget.example.com/w scaled");
    let rows = jobwright::apiserver::testkit::Kubectl::rows(&k.ok(&["get", "wd"]).await);
    // With additionalPrinterColumns, only those follow NAME (no default Age column).
    assert_eq!(rows[0], ["NAME", "REPLICAS", "MODE"]);
    assert_eq!(&rows[1][..3], ["w", "2", "A"]);
    assert_eq!(
        k.ok(&["get", "widgets.v1beta1.example.com", "w", "-o", "jsonpath={.apiVersion}"]).await,
        "example.com/v1beta1"
    );
}

#[tokio::test]
async fn cel_rules_naming_fields_the_schema_lacks_are_refused_at_crd_create() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut bad = widget_crd();
    bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
        json!([{"rule": "self.replicas >= 0 && self.nope > 0"}]);
    let (code, _, msg) =
        api_err(crds.create(&PostParams::default(), &serde_json::from_value(bad).unwrap()).await.unwrap_err());
    assert_eq!(code, 422);
    let want_start = "CustomResourceDefinition.apiextensions.k8s.io \"widgets.example.com\" is invalid: spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: ";
    assert!(msg.starts_with(want_start), "{msg}");
    assert!(
        msg.ends_with(
            "compilation failed: ERROR: <input>:1:27: undefined field 'nope'\n | self.replicas >= 0 && self.nope > 0\n | ..........................^"
        ),
        "{msg}"
    );
    // The same rule on a field that exists is accepted, and so is one under preserved unknown fields.
    let mut good = widget_crd();
    good["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
        json!([{"rule": "self.replicas >= 0 && self.name != ''"}]);
    install(&client, good).await;
}

/// A CRD's group is a domain (upstream: "should be a domain with at least one dot"), so a CRD
/// cannot take a built-in group's name such as `batch` and shadow its kinds.
#[tokio::test]
async fn a_crd_group_without_a_dot_is_refused() {
    let s = TestApiServer::start().await;
    let mut crd = widget_crd();
    crd["metadata"]["name"] = json!("jobs.batch");
    crd["spec"]["group"] = json!("batch");
    crd["spec"]["names"] = json!({"plural": "jobs", "singular": "job", "kind": "Job"});
    let (code, status) =
        raw(&s.client(), "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "application/json", crd)
            .await;
    assert_eq!(code, 422, "{status}");
    let causes = status["details"]["causes"].as_array().cloned().unwrap_or_default();
    assert!(
        causes.iter().any(|c| c["field"] == "spec.group"
            && c["message"] == "Invalid value: \"batch\": should be a domain with at least one dot"),
        "{status}"
    );
}
