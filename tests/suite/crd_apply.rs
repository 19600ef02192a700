//! Server-side apply on custom resources honours the CRD schema's list and map types, as
//! kube-apiserver's structured-merge-diff does: `x-kubernetes-list-type: set` lists merge as sets
//! (`v:` entries in managedFields), `map` lists merge entry by entry on their
//! `x-kubernetes-list-map-keys` (`k:` entries, per-field ownership), other lists are atomic, and
//! `x-kubernetes-map-type: atomic` objects are owned as a whole. Conflicts between managers on
//! those entries are 409s naming the manager and the field.

use crate::common;

use common::api_err;
use jobwright::apiserver::testkit::TestApiServer;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [{"name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "args": {"type": "array", "items": {"type": "integer"}},
                    "ports": {"type": "array", "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name", "protocol"],
                        "items": {"type": "object", "required": ["name"], "properties": {
                            "name": {"type": "string"},
                            "protocol": {"type": "string", "default": "TCP"},
                            "port": {"type": "integer"}}}},
                    "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                        "additionalProperties": {"type": "string"}},
                    "settings": {"type": "object", "additionalProperties": {"type": "string"}},
                }}}}}}]}})
}

async fn setup() -> (TestApiServer, Api<DynamicObject>) {
    let server = TestApiServer::start().await;
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &serde_json::from_value(crd()).unwrap()).await.unwrap();
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Gadget");
    let api = Api::namespaced_with(client, "default", &ApiResource::from_gvk_with_plural(&gvk, "gadgets"));
    (server, api)
}

async fn apply(api: &Api<DynamicObject>, manager: &str, force: bool, spec: Value) -> Result<Value, kube::Error> {
    let body = json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": spec});
    let mut pp = PatchParams::apply(manager);
    pp.force = force;
    let obj = api.patch("g", &pp, &Patch::Apply(body)).await?;
    Ok(serde_json::to_value(obj).unwrap())
}

fn fields_of(obj: &Value, manager: &str) -> Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["manager"] == manager))
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or_else(|| panic!("no managedFields entry for {manager} in {obj}"))
}

#[tokio::test]
async fn set_lists_merge_as_sets_and_record_v_entries() {
    let (_server, api) = setup().await;
    let a = apply(&api, "a", false, json!({"tags": ["x", "y"], "args": [1, 2]})).await.unwrap();
    assert_eq!(fields_of(&a, "a"), json!({"f:spec": {"f:args": {}, "f:tags": {"v:\"x\"": {}, "v:\"y\"": {}}}}));
    let b = apply(&api, "b", false, json!({"tags": ["y", "z"]})).await.unwrap();
    assert_eq!(b["spec"]["tags"], json!(["x", "y", "z"]), "a set merges: live order, then new values");
    assert_eq!(fields_of(&b, "b"), json!({"f:spec": {"f:tags": {"v:\"y\"": {}, "v:\"z\"": {}}}}));
    assert_eq!(fields_of(&b, "a")["f:spec"]["f:tags"], json!({"v:\"x\"": {}, "v:\"y\"": {}}), "y is shared");

    // `a` stops applying y: b still owns it, so it stays; a's x goes when a drops it.
    let a2 = apply(&api, "a", false, json!({"tags": ["x"], "args": [1, 2]})).await.unwrap();
    assert_eq!(a2["spec"]["tags"], json!(["x", "y", "z"]));
    let a3 = apply(&api, "a", false, json!({"args": [1, 2]})).await.unwrap();
    assert_eq!(a3["spec"]["tags"], json!(["y", "z"]));

    // A list without a list type is atomic: another manager changing it conflicts.
    let e = apply(&api, "b", false, json!({"tags": ["y", "z"], "args": [3]})).await.unwrap_err();
    let (code, reason, msg) = api_err(e);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(msg, "Apply failed with 1 conflict: conflict with \"a\": .spec.args");
    let forced = apply(&api, "b", true, json!({"tags": ["y", "z"], "args": [3]})).await.unwrap();
    assert_eq!(forced["spec"]["args"], json!([3]), "an atomic list is replaced as a whole");
}

#[tokio::test]
async fn map_lists_merge_by_key_with_per_entry_ownership() {
    let (_server, api) = setup().await;
    let a = apply(&api, "a", false, json!({"ports": [{"name": "http", "port": 80}]})).await.unwrap();
    let http = r#"k:{"name":"http","protocol":"TCP"}"#;
    let grpc = r#"k:{"name":"grpc","protocol":"TCP"}"#;
    assert_eq!(
        fields_of(&a, "a"),
        json!({"f:spec": {"f:ports": {http: {".": {}, "f:name": {}, "f:port": {}}}}}),
        "the key takes the schema default of a key field the item omits"
    );
    // The schema default was applied to the stored object too.
    assert_eq!(a["spec"]["ports"], json!([{"name": "http", "port": 80, "protocol": "TCP"}]));

    let b = apply(&api, "b", false, json!({"ports": [{"name": "grpc", "port": 90}]})).await.unwrap();
    let names: Vec<&str> = b["spec"]["ports"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["http", "grpc"], "entries merge by key");
    assert_eq!(fields_of(&b, "b"), json!({"f:spec": {"f:ports": {grpc: {".": {}, "f:name": {}, "f:port": {}}}}}));

    // b writing a field of a's entry conflicts, naming the entry by its keys.
    let e = apply(&api, "b", false, json!({"ports": [{"name": "grpc", "port": 90}, {"name": "http", "port": 81}]}))
        .await
        .unwrap_err();
    let (code, _, msg) = api_err(e);
    assert_eq!(code, 409);
    assert_eq!(
        msg,
        "Apply failed with 1 conflict: conflict with \"a\": .spec.ports[name=\"http\",protocol=\"TCP\"].port"
    );

    // b may co-own the entry with the same value, and then a dropping it leaves it in place.
    apply(&api, "b", false, json!({"ports": [{"name": "grpc", "port": 90}, {"name": "http", "port": 80}]}))
        .await
        .unwrap();
    let a2 = apply(&api, "a", false, json!({"ports": []})).await.unwrap();
    assert_eq!(a2["spec"]["ports"].as_array().unwrap().len(), 2, "b still owns both entries");
    let b2 = apply(&api, "b", false, json!({"ports": [{"name": "http", "port": 80}]})).await.unwrap();
    assert_eq!(b2["spec"]["ports"], json!([{"name": "http", "port": 80, "protocol": "TCP"}]), "grpc went with b");
    // A protocol makes another entry.
    let b3 = apply(
        &api,
        "b",
        false,
        json!({"ports": [{"name": "http", "port": 80}, {"name": "http", "protocol": "UDP", "port": 53}]}),
    )
    .await
    .unwrap();
    assert_eq!(b3["spec"]["ports"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn atomic_maps_are_owned_whole_and_granular_maps_by_key() {
    let (_server, api) = setup().await;
    let a = apply(&api, "a", false, json!({"selector": {"app": "x"}, "settings": {"one": "1"}})).await.unwrap();
    assert_eq!(fields_of(&a, "a"), json!({"f:spec": {"f:selector": {}, "f:settings": {"f:one": {}}}}));
    let b = apply(&api, "b", false, json!({"settings": {"two": "2"}})).await.unwrap();
    assert_eq!(b["spec"]["settings"], json!({"one": "1", "two": "2"}));

    let e = apply(&api, "b", false, json!({"settings": {"two": "2"}, "selector": {"app": "x", "tier": "web"}}))
        .await
        .unwrap_err();
    let (code, _, msg) = api_err(e);
    assert_eq!(code, 409);
    assert_eq!(msg, "Apply failed with 1 conflict: conflict with \"a\": .spec.selector");
    let forced = apply(&api, "b", true, json!({"settings": {"two": "2"}, "selector": {"tier": "web"}})).await.unwrap();
    assert_eq!(forced["spec"]["selector"], json!({"tier": "web"}), "an atomic map is replaced, not merged");
    assert!(fields_of(&forced, "a")["f:spec"].get("f:selector").is_none(), "forcing took ownership from a");
}

#[tokio::test]
async fn update_managers_record_set_and_map_entries() {
    let (_server, api) = setup().await;
    let obj: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Gadget",
        "metadata": {"name": "g"}, "spec": {"tags": ["x"], "ports": [{"name": "http", "port": 80}]}}))
    .unwrap();
    api.create(&PostParams { field_manager: Some("creator".into()), ..Default::default() }, &obj).await.unwrap();
    let got = serde_json::to_value(api.get("g").await.unwrap()).unwrap();
    let f = fields_of(&got, "creator");
    assert_eq!(f["f:spec"]["f:tags"], json!({"v:\"x\"": {}}), "a list itself is never a member");
    assert_eq!(
        f["f:spec"]["f:ports"],
        json!({r#"k:{"name":"http","protocol":"TCP"}"#: {".": {}, "f:name": {}, "f:port": {}, "f:protocol": {}}})
    );
    // An applier changing the creator's port conflicts with the Update manager.
    let e = apply(&api, "a", false, json!({"ports": [{"name": "http", "port": 81}]})).await.unwrap_err();
    let (code, _, msg) = api_err(e);
    assert_eq!(code, 409);
    assert_eq!(
        msg,
        "Apply failed with 1 conflict: conflict with \"creator\" using example.com/v1: .spec.ports[name=\"http\",protocol=\"TCP\"].port"
    );
}
