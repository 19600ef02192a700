use serde_json::json;

use super::*;
use crate::registry::Registry;

fn pods() -> ResourceInfo {
    Registry::builtin().get("", "v1", "pods").unwrap()
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "d", "labels": {"a": "1"}},
           "spec": {"containers": [{"name": "c", "image": "x"}]}})
}

fn patch(t: PatchType, body: &str) -> Result<Value, StatusError> {
    apply_patch(&pods(), Some(&pod()), t, body.as_bytes(), &WriteContext::default())
}

fn err(t: PatchType, body: &str) -> StatusError {
    patch(t, body).expect_err(body)
}

#[test]
fn content_types() {
    assert_eq!(PatchType::from_content_type("application/json-patch+json"), Some(PatchType::Json));
    assert_eq!(PatchType::from_content_type("application/merge-patch+json; charset=utf-8"), Some(PatchType::Merge));
    assert_eq!(PatchType::from_content_type("application/strategic-merge-patch+json"), Some(PatchType::StrategicMerge));
    assert_eq!(PatchType::from_content_type("application/apply-patch+yaml"), Some(PatchType::Apply));
    assert_eq!(PatchType::from_content_type("application/json"), None);
}

#[test]
fn json_patch_applies_operations() {
    let got = patch(
        PatchType::Json,
        r#"[{"op":"add","path":"/metadata/labels/b","value":"2"},{"op":"replace","path":"/spec/containers/0/image","value":"y"},
            {"op":"remove","path":"/metadata/labels/a"},{"op":"test","path":"/metadata/name","value":"p"}]"#,
    )
    .unwrap();
    assert_eq!(got["metadata"]["labels"], json!({"b": "2"}));
    assert_eq!(got["spec"]["containers"][0]["image"], "y");
    assert_eq!(patch(PatchType::Json, "null").unwrap(), pod());
}

/// kube-runtime's `finalizer()` helper: add with `test null`, remove with `test` + index.
#[test]
fn kube_runtime_finalizer_patches() {
    let added = patch(
        PatchType::Json,
        r#"[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["f"]}]"#,
    )
    .unwrap();
    assert_eq!(added["metadata"]["finalizers"], json!(["f"]));
    let info = pods();
    let ctx = WriteContext::default();
    let removed = apply_patch(
        &info,
        Some(&added),
        PatchType::Json,
        br#"[{"op":"test","path":"/metadata/finalizers/0","value":"f"},{"op":"remove","path":"/metadata/finalizers/0"}]"#,
        &ctx,
    )
    .unwrap();
    assert_eq!(removed["metadata"]["finalizers"], json!([]));
    // Someone else changed the finalizers in between: the test fails with a 422.
    let e = apply_patch(
        &info,
        Some(&removed),
        PatchType::Json,
        br#"[{"op":"test","path":"/metadata/finalizers/0","value":"f"},{"op":"remove","path":"/metadata/finalizers/0"}]"#,
        &ctx,
    )
    .unwrap_err();
    assert_eq!(e.code, 422);
    // And `test null` fails once the list exists.
    let e = apply_patch(
        &info,
        Some(&added),
        PatchType::Json,
        br#"[{"op":"test","path":"/metadata/finalizers","value":null}]"#,
        &ctx,
    )
    .unwrap_err();
    assert_eq!(e.code, 422);
}

/// Results checked against `kubectl patch --local --type json` (evanphx/json-patch v4).
#[test]
fn json_patch_follows_evanphx_v4_quirks() {
    let ok = |body: &str| patch(PatchType::Json, body).unwrap_or_else(|e| panic!("{body}: {e}"));
    assert_eq!(
        ok(r#"[{"op":"replace","path":"/metadata/annotations","value":{}}]"#)["metadata"]["annotations"],
        json!({})
    );
    assert_eq!(ok(r#"[{"op":"add","path":"/metadata/labels/b"}]"#)["metadata"]["labels"], json!({"a": "1", "b": null}));
    assert_eq!(ok(r#"[{"op":"copy","from":"/nope","path":"/metadata/x"}]"#)["metadata"]["x"], Value::Null);
    assert_eq!(ok(r#"[{"op":"test","path":"/metadata/labels/zz","value":null}]"#), pod());
    assert_eq!(ok(r#"[{"op":"remove","path":"/metadata/labels/a","value":5}]"#)["metadata"]["labels"], json!({}));
    assert_eq!(ok(r#"[{"op":"add","path":"/metadata/labels/~1x","value":"1"}]"#)["metadata"]["labels"]["/x"], "1");
    assert_eq!(
        ok(r#"[{"op":"add","path":"/spec/containers/1","value":{"name":"q"}}]"#)["spec"]["containers"],
        json!([{"name": "c", "image": "x"}, {"name": "q"}])
    );
}

#[test]
fn json_patch_failures_are_the_generic_422() {
    for body in [
        r#"[{"op":"test","path":"/metadata/name","value":"q"}]"#,
        r#"[{"op":"remove","path":"/metadata/annotations/x"}]"#,
        r#"[{"op":"replace","path":"/nope/x","value":1}]"#,
        r#"[{"op":"add","path":"/spec/containers/5","value":{}}]"#,
        r#"[{"op":"move","from":"/nope","path":"/x"}]"#,
        r#"[{"op":"frobnicate","path":"/a"}]"#,
        r#"[{"op":"add","value":1}]"#,
        r#"[{"op":"remove","path":"/metadata/labels/zz"}]"#,
        r#"[{"op":"replace","path":"/spec/containers/3","value":{}}]"#,
        r#"[{"op":"add","path":"/spec/containers/3","value":{}}]"#,
        r#"[{"op":"replace","path":"/metadata/annotations/x","value":"1"}]"#,
        r#"[{"op":"add","path":"metadata/labels/q","value":"x"}]"#,
        r#"[{"op":"remove","path":"/spec/containers/-"}]"#,
        r#"[{"op":"test","path":"/nope/zz","value":null}]"#,
        r#"[{"op":"test","path":"","value":null}]"#,
        r#"[{"path":"/a","value":1}]"#,
        r#"[null]"#,
    ] {
        let e = err(PatchType::Json, body);
        assert_eq!((e.code, e.reason), (422, "Invalid"), "{body}");
        assert_eq!(e.message, "the server rejected our request due to an error in our request");
        assert_eq!(e.to_status()["details"], json!({}));
    }
    // A failed patch changes nothing, even when earlier operations succeeded.
    let e = err(
        PatchType::Json,
        r#"[{"op":"add","path":"/metadata/labels/z","value":"1"},{"op":"test","path":"/x","value":1}]"#,
    );
    assert_eq!(e.code, 422);
}

#[test]
fn malformed_patches_are_400_with_go_wording() {
    let cases: &[(PatchType, &str, &str)] = &[
        (PatchType::Json, "x", "invalid character 'x' looking for beginning of value"),
        (PatchType::Json, "", "unexpected end of JSON input"),
        (PatchType::Json, "[] x", "invalid character 'x' after top-level value"),
        (PatchType::Json, r#"{"op":"add"}"#, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
        (PatchType::Json, r#"["add"]"#, "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
        (PatchType::Merge, "{", "Invalid JSON Patch"),
        (PatchType::Merge, "5", "Invalid JSON Patch"),
        (PatchType::Merge, "null", "Invalid JSON Patch"),
        (PatchType::StrategicMerge, "nope", "invalid character 'o' in literal null (expecting 'u')"),
        (PatchType::StrategicMerge, "[]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    ];
    for (t, body, msg) in cases {
        let e = err(*t, body);
        assert_eq!((e.code, e.reason), (400, "BadRequest"), "{body}");
        if *body != "nope" {
            assert_eq!(e.message, *msg, "{body}");
        }
    }
}

#[test]
fn json_patch_operation_limit_is_413() {
    let ops = vec![json!({"op": "test", "path": "/kind", "value": "Pod"}); MAX_JSON_PATCH_OPERATIONS + 1];
    let e = err(PatchType::Json, &serde_json::to_string(&ops).unwrap());
    assert_eq!(e.code, 413);
    assert!(e.message.ends_with("The allowed maximum operations in a JSON patch is 10000, got 10001"));
}

#[test]
fn patches_producing_a_non_object_are_422() {
    let e = err(PatchType::Json, r#"[{"op":"replace","path":"","value":[1]}]"#);
    assert_eq!((e.code, e.reason), (422, "Invalid"));
    let e = err(PatchType::Merge, "[1]");
    assert_eq!((e.code, e.reason), (422, "Invalid"));
    assert_eq!(e.to_status()["details"]["causes"][0]["field"], "patch");
}

#[test]
fn merge_patch_is_rfc7386() {
    let got =
        patch(PatchType::Merge, r#"{"metadata":{"labels":{"a":null,"b":"2"}},"spec":{"containers":[{"name":"d"}]}}"#)
            .unwrap();
    assert_eq!(got["metadata"]["labels"], json!({"b": "2"}));
    assert_eq!(got["spec"]["containers"], json!([{"name": "d"}]), "lists are replaced");
    // Checked against `kubectl patch --local --type merge` (evanphx/json-patch v4).
    let got = patch(
        PatchType::Merge,
        r#"{"metadata":{"labels":{"b":{"c":null}},"annotations":{"x":null}},"spec":{"containers":[{"name":"b","image":null},null]}}"#,
    )
    .unwrap();
    assert_eq!(got["metadata"]["labels"], json!({"a": "1", "b": {}}));
    assert_eq!(got["metadata"]["annotations"], json!({}));
    assert_eq!(got["spec"]["containers"], json!([{"name": "b"}, null]));
    let got = patch(PatchType::Merge, r#"{"metadata":{"labels":[{"x":null}]}}"#).unwrap();
    assert_eq!(got["metadata"]["labels"], json!([{"x": null}]), "an object replaced by a non-object keeps nulls");
}

#[test]
fn strategic_merge_patch_on_custom_resources_is_415() {
    let cr = ResourceInfo::new("example.com", "v1", "widgets", "Widget", true, &[], &[], &[]);
    let e = apply_patch(&cr, Some(&json!({})), PatchType::StrategicMerge, b"{}", &WriteContext::default()).unwrap_err();
    assert_eq!((e.code, e.reason), (415, "UnsupportedMediaType"));
    assert_eq!(
        e.message,
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
    // Merge and JSON patches work on custom resources.
    let got = apply_patch(
        &cr,
        Some(&json!({"spec": {"a": 1}})),
        PatchType::Merge,
        br#"{"spec":{"b":2}}"#,
        &WriteContext::default(),
    )
    .unwrap();
    assert_eq!(got, json!({"spec": {"a": 1, "b": 2}}));
}

#[test]
fn strategic_merge_patch_uses_the_kind_schema() {
    let got = patch(PatchType::StrategicMerge, r#"{"spec":{"containers":[{"name":"c","image":"y"}]}}"#).unwrap();
    assert_eq!(got["spec"]["containers"], json!([{"name": "c", "image": "y"}]));
    let e = err(PatchType::StrategicMerge, r#"{"spec":{"containers":[{"$patch":"merge"}]}}"#);
    assert_eq!(e.code, 500);
}

#[test]
fn non_apply_patches_need_an_object() {
    let e = apply_patch(&pods(), None, PatchType::Merge, b"{}", &WriteContext::default()).unwrap_err();
    assert_eq!(e.code, 404);
}

#[test]
fn patch_options_validation_matches_upstream() {
    let e = validate_patch_options(PatchType::Apply, None, false).unwrap_err();
    assert_eq!((e.code, e.reason), (422, "Invalid"));
    assert_eq!(
        e.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let s = e.to_status();
    assert_eq!(s["details"]["group"], "meta.k8s.io");
    assert_eq!(s["details"]["kind"], "PatchOptions");
    assert!(s["details"].get("name").is_none());
    assert_eq!(
        s["details"]["causes"][0],
        json!({"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"})
    );
    // The same error from apply_patch itself.
    let e2 = apply_patch(&pods(), Some(&pod()), PatchType::Apply, b"{}", &WriteContext::default()).unwrap_err();
    assert_eq!(e2, e);

    let e = validate_patch_options(PatchType::Merge, None, true).unwrap_err();
    assert_eq!(
        e.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
    );
    assert!(validate_patch_options(PatchType::Apply, Some("kubectl"), true).is_ok());
    assert!(validate_patch_options(PatchType::Merge, None, false).is_ok());
    let long = "m".repeat(129);
    let e = validate_patch_options(PatchType::Apply, Some(&long), false).unwrap_err();
    assert_eq!(e.to_status()["details"]["causes"][0]["reason"], "FieldValueTooLong");
    assert!(validate_field_manager("a\u{7}b").len() == 1);
}

proptest::proptest! {
    /// Arbitrary bodies of every patch type never panic and fail only with 4xx (or upstream's 500s
    /// for strategic merge internals), never with a non-object result.
    #[test]
    fn arbitrary_bodies_never_panic(body in strategic::tests::arb_json(4), raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
        let text = serde_json::to_vec(&body).unwrap();
        for t in [PatchType::Json, PatchType::Merge, PatchType::StrategicMerge] {
            for b in [&text, &raw] {
                match patch(t, std::str::from_utf8(b).unwrap_or("\u{0}")) {
                    Ok(v) => proptest::prop_assert!(v.is_object()),
                    Err(e) => proptest::prop_assert!((400..=500).contains(&e.code)),
                }
            }
        }
        let ctx = WriteContext { field_manager: Some("m"), ..Default::default() };
        for b in [&text, &raw] {
            let _ = apply_patch(&pods(), Some(&pod()), PatchType::Apply, b, &ctx);
            let _ = apply_patch(&pods(), None, PatchType::Apply, b, &ctx);
        }
    }

    /// JSON patch operation lists built from valid-looking operations on real pod paths.
    #[test]
    fn arbitrary_json_patch_operations(ops in proptest::collection::vec(arb_op(), 0..6)) {
        let body = serde_json::to_string(&ops).unwrap();
        match patch(PatchType::Json, &body) {
            Ok(v) => proptest::prop_assert!(v.is_object()),
            Err(e) => proptest::prop_assert!(e.code == 422 || e.code == 400, "{}", e),
        }
    }
}

fn arb_op() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let path = prop_oneof![
        Just("/metadata/labels/a"),
        Just("/metadata/labels/b"),
        Just("/metadata/finalizers"),
        Just("/metadata/finalizers/0"),
        Just("/metadata/finalizers/-"),
        Just("/spec/containers/0/image"),
        Just("/spec/containers/1"),
        Just("/spec/containers/-"),
        Just(""),
        Just("/"),
        Just("bad"),
        Just("/spec/containers/x"),
    ];
    let op = prop_oneof![
        Just("add"),
        Just("remove"),
        Just("replace"),
        Just("move"),
        Just("copy"),
        Just("test"),
        Just("nope")
    ];
    (op, path.clone(), path, strategic::tests::arb_json(2))
        .prop_map(|(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}))
}

fn nested(levels: usize) -> Value {
    let mut v = json!("leaf");
    for _ in 0..levels {
        v = json!({ "x": v });
    }
    v
}

#[test]
fn json_patch_copies_cannot_double_past_the_depth_limit() {
    // Issue 10: a 120-deep value copied into itself five times overflowed the stack.
    let mut ops = vec![json!({"op": "add", "path": "/zzz", "value": nested(110)})];
    for k in 0..5 {
        ops.push(json!({"op": "copy", "from": "/zzz", "path": format!("/zzz{}", "/x".repeat(110 << k))}));
    }
    let e = err(PatchType::Json, &serde_json::to_string(&ops).unwrap());
    assert_eq!(e.code, 422);
    let why = e.details.unwrap()["causes"][0]["message"].as_str().unwrap().to_string();
    assert!(why.contains("at most 120 levels"), "{why}");
    // Adding a value deeper than the limit is refused the same way.
    let add = json!([{"op": "add", "path": "/spec/x", "value": nested(119)}]);
    assert_eq!(err(PatchType::Json, &add.to_string()).code, 422);
    let add = json!([{"op": "add", "path": "/spec/x", "value": nested(100)}]);
    assert!(patch(PatchType::Json, &add.to_string()).is_ok());
}

#[test]
fn json_patch_copies_are_bounded_in_bytes_as_upstream() {
    // Issue 10: 3 KB copying annotations into themselves 18-23 times exhausted memory.
    let mut ops = vec![json!({"op": "add", "path": "/metadata/annotations", "value": {"a": "x".repeat(3000)}})];
    for i in 0..23 {
        ops.push(json!({"op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/c{i}")}));
    }
    let e = err(PatchType::Json, &serde_json::to_string(&ops).unwrap());
    assert_eq!((e.code, e.message.as_str()), (422, "the server rejected our request due to an error in our request"));
    let why = e.details.unwrap()["causes"][0]["message"].as_str().unwrap().to_string();
    assert!(why.starts_with("Unable to complete the copy, the accumulated size increase of copy is "), "{why}");
    assert!(why.ends_with(", exceeding the limit 3145728"), "{why}");
    // Under the limit, copies work.
    let ok = json!([{"op": "copy", "from": "/metadata/labels", "path": "/metadata/annotations"}]);
    assert_eq!(patch(PatchType::Json, &ok.to_string()).unwrap()["metadata"]["annotations"], json!({"a": "1"}));
}

#[test]
fn patch_bodies_deeper_than_the_parser_are_400_naming_the_limit() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    for t in [PatchType::Json, PatchType::Merge, PatchType::StrategicMerge] {
        let e = err(t, &format!(r#"{{"a":{deep}}}"#));
        assert_eq!(e.code, 400, "{t:?}");
        assert!(e.message.contains("exceeded max depth"), "{t:?}: {}", e.message);
    }
}
