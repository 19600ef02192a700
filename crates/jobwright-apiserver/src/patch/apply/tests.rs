use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::patch::{PatchType, apply_patch_at, record_write_at};
use crate::registry::Registry;

fn jobs() -> ResourceInfo {
    Registry::builtin().get("batch", "v1", "jobs").unwrap()
}

fn t(sec: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, sec).unwrap()
}

fn ctx(manager: &str) -> WriteContext<'_> {
    WriteContext { field_manager: Some(manager), ..Default::default() }
}

fn apply(
    current: Option<&Value>,
    body: &str,
    manager: &str,
    force: bool,
    now: DateTime<Utc>,
) -> Result<Value, StatusError> {
    let c = WriteContext { force, ..ctx(manager) };
    apply_patch_at(&jobs(), current, PatchType::Apply, body.as_bytes(), &c, now)
}

const JOB_YAML: &str = r#"
# applied by kubectl apply --server-side
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
  namespace: default
  labels:
    app: pi
spec:
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        ports:
        - containerPort: 80
"#;

fn entry<'v>(obj: &'v Value, manager: &str) -> &'v Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["manager"] == manager))
        .unwrap_or_else(|| panic!("no entry for {manager} in {obj}"))
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter().map(|e| (e["manager"].as_str().unwrap().into(), e["operation"].as_str().unwrap().into())).collect()
        })
        .unwrap_or_default()
}

#[test]
fn apply_creates_and_records_ownership() {
    let job = apply(None, JOB_YAML, "kubectl", false, t(1)).unwrap();
    assert_eq!(job["spec"]["parallelism"], 2);
    assert_eq!(job["metadata"]["labels"], json!({"app": "pi"}));
    let e = entry(&job, "kubectl");
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "batch/v1");
    assert_eq!(e["time"], "2025-01-02T03:04:01Z");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert!(e.get("subresource").is_none());
    assert_eq!(
        e["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:parallelism": {}, "f:template": {"f:spec": {
                "f:restartPolicy": {},
                "f:containers": {"k:{\"name\":\"main\"}": {".": {}, "f:name": {}, "f:image": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}
            }}}
        })
    );
}

#[test]
fn apply_accepts_json_bodies() {
    let body = r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"pi"},"spec":{"parallelism":3}}"#;
    let job = apply(None, body, "ctrl", false, t(0)).unwrap();
    assert_eq!(job["spec"]["parallelism"], 3);
    assert_eq!(entry(&job, "ctrl")["fieldsV1"], json!({"f:spec": {"f:parallelism": {}}}));
}

#[test]
fn apply_rejects_bad_bodies_like_upstream() {
    let cases: &[(&str, u16, &str)] = &[
        (
            "apiVersion: v1\nkind: Job\n",
            400,
            "Incorrect version specified in apply patch. Specified patch version: v1, expected: batch/v1",
        ),
        (
            "kind: Job\n",
            400,
            "Incorrect version specified in apply patch. Specified patch version: , expected: batch/v1",
        ),
        ("", 400, "Incorrect version specified in apply patch. Specified patch version: , expected: batch/v1"),
        (
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  managedFields: []\n",
            400,
            "metadata.managedFields must be nil",
        ),
        (
            "apiVersion: batch/v1\nkind: Jbo\nmetadata:\n  name: x\n  namespace: d\n",
            500,
            "failed to create typed patch object (batch/v1, Kind=Jbo d/x): no corresponding type for batch/v1, Kind=Jbo",
        ),
        (
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\nspec: {template: {spec: {containers: [{image: b}]}}}\n",
            500,
            "failed to create typed patch object (batch/v1, Kind=Job /x): .spec.template.spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)",
        ),
        (
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\nspec: {template: {spec: {containers: [{name: c}, {name: c}]}}}\n",
            500,
            "failed to create typed patch object (batch/v1, Kind=Job /x): .spec.template.spec.containers: duplicate entries for key [name=\"c\"]",
        ),
        (
            "- a\n- b\n",
            400,
            "error decoding YAML: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}",
        ),
    ];
    for (body, code, msg) in cases {
        let e = apply(None, body, "m", false, t(0)).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (*code, *msg), "{body}");
    }
    let e = apply(None, "a: [b\n", "m", false, t(0)).unwrap_err();
    assert_eq!(e.code, 400);
    assert!(e.message.starts_with("error decoding YAML: "), "{}", e.message);
}

#[test]
fn reapplying_the_same_config_changes_nothing() {
    let job = apply(None, JOB_YAML, "kubectl", false, t(1)).unwrap();
    let again = apply(Some(&job), JOB_YAML, "kubectl", false, t(9)).unwrap();
    assert_eq!(again, job, "same object, same timestamp");
}

#[test]
fn conflict_with_an_update_manager_is_409_with_causes() {
    // `kubectl create` then `kubectl apply` (client side) wrote parallelism: 1.
    let mut live = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default"},
        "spec": {"parallelism": 1, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}}});
    record_write_at(&jobs(), None, &mut live, &ctx("kubectl-client-side-apply"), t(0));
    let e = apply(Some(&live), JOB_YAML, "kubectl", false, t(1)).unwrap_err();
    assert_eq!((e.code, e.reason), (409, "Conflict"));
    assert_eq!(
        e.message,
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using batch/v1: .spec.parallelism"
    );
    assert_eq!(
        e.to_status()["details"],
        json!({"causes": [{"reason": "FieldManagerConflict", "message": "conflict with \"kubectl-client-side-apply\" using batch/v1", "field": ".spec.parallelism"}]})
    );

    // Same values for the shared fields: no conflict, both own them.
    let same = JOB_YAML.replace("parallelism: 2", "parallelism: 1");
    let shared = apply(Some(&live), &same, "kubectl", false, t(1)).unwrap();
    assert!(entry(&shared, "kubectl")["fieldsV1"]["f:spec"]["f:parallelism"].is_object());
    assert!(entry(&shared, "kubectl-client-side-apply")["fieldsV1"]["f:spec"]["f:parallelism"].is_object());
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let base = apply(
        None,
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec: {parallelism: 1}\n",
        "a",
        false,
        t(0),
    )
    .unwrap();
    let mut live = base.clone();
    live["spec"]["completions"] = json!(1);
    live["spec"]["backoffLimit"] = json!(1);
    record_write_at(&jobs(), Some(&base), &mut live, &ctx("b"), t(1));
    let e = apply(
        Some(&live),
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec: {parallelism: 2, completions: 2, backoffLimit: 2}\n",
        "c",
        false,
        t(2),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "Apply failed with 3 conflicts: conflicts with \"a\":\n- .spec.parallelism\nconflicts with \"b\" using batch/v1:\n- .spec.backoffLimit\n- .spec.completions"
    );
    assert_eq!(e.to_status()["details"]["causes"].as_array().unwrap().len(), 3);
}

#[test]
fn force_moves_ownership_to_the_applier() {
    let mut live = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"}, "spec": {"parallelism": 1, "suspend": false}});
    record_write_at(&jobs(), None, &mut live, &ctx("kubectl-client-side-apply"), t(0));
    let job = apply(
        Some(&live),
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec: {parallelism: 5}\n",
        "kubectl",
        true,
        t(1),
    )
    .unwrap();
    assert_eq!(job["spec"]["parallelism"], 5);
    assert_eq!(entry(&job, "kubectl")["fieldsV1"], json!({"f:spec": {"f:parallelism": {}}}));
    assert_eq!(entry(&job, "kubectl-client-side-apply")["fieldsV1"], json!({"f:spec": {"f:suspend": {}}}));
}

#[test]
fn fields_no_longer_applied_are_removed_unless_owned_elsewhere() {
    let v1 = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: pi\n  labels: {a: '1', b: '2', c: '3'}\n";
    let job = apply(None, v1, "one", false, t(0)).unwrap();
    // Another applier also sets c to the same value: it co-owns it.
    let job = apply(
        Some(&job),
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: pi\n  labels: {c: '3'}\n",
        "two",
        false,
        t(1),
    )
    .unwrap();
    let v2 = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: pi\n  labels: {a: '1'}\n";
    let job = apply(Some(&job), v2, "one", false, t(2)).unwrap();
    assert_eq!(job["metadata"]["labels"], json!({"a": "1", "c": "3"}));
    assert_eq!(entry(&job, "one")["fieldsV1"], json!({"f:metadata": {"f:labels": {"f:a": {}}}}));
    // Nothing left: the whole labels map goes.
    let job = apply(Some(&job), "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\n", "two", false, t(3)).unwrap();
    assert_eq!(job["metadata"]["labels"], json!({"a": "1"}));
    let job = apply(Some(&job), "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\n", "one", false, t(4)).unwrap();
    assert!(job["metadata"].get("labels").is_none(), "{job}");
    assert!(job["metadata"].get("managedFields").is_none(), "no manager owns anything: {job}");
}

#[test]
fn associative_lists_merge_by_key_and_drop_unapplied_items() {
    let v1 = r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"pi"},"spec":{"template":{"spec":{"containers":[
        {"name":"a","image":"x","env":[{"name":"A","value":"1"}]},{"name":"b","image":"y"}]}}}}"#;
    let mut job = apply(None, v1, "app", false, t(0)).unwrap();
    // The server defaulted a field nobody owns; another writer injected a sidecar.
    let before = job.clone();
    job["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = json!("/dev/termination-log");
    job["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "s"}));
    record_write_at(&jobs(), Some(&before), &mut job, &ctx("injector"), t(1));
    let injector = entry(&job, "injector")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"].clone();
    assert_eq!(
        injector,
        json!({"k:{\"name\":\"a\"}": {"f:terminationMessagePath": {}}, "k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}}})
    );

    // Re-apply: container b dropped, a gets a new image and env var.
    let v2 = r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"pi"},"spec":{"template":{"spec":{"containers":[
        {"name":"a","image":"x2","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}]}}}}"#;
    let job = apply(Some(&job), v2, "app", false, t(2)).unwrap();
    let containers = &job["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        *containers,
        json!([
            {"name": "a", "image": "x2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "terminationMessagePath": "/dev/termination-log"},
            {"name": "sidecar", "image": "s"}
        ])
    );
}

#[test]
fn sets_merge_as_unions() {
    let job =
        apply(None, "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi, finalizers: [a]}\n", "one", false, t(0))
            .unwrap();
    let job = apply(
        Some(&job),
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi, finalizers: [b]}\n",
        "two",
        false,
        t(1),
    )
    .unwrap();
    assert_eq!(job["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(entry(&job, "two")["fieldsV1"], json!({"f:metadata": {"f:finalizers": {"v:\"b\"": {}}}}));
    let job = apply(Some(&job), "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\n", "one", false, t(2)).unwrap();
    assert_eq!(job["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn status_is_scoped_to_its_subresource() {
    let body = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec: {parallelism: 1}\nstatus: {active: 3}\n";
    let job = apply(None, body, "m", false, t(0)).unwrap();
    assert!(job.get("status").is_none(), "the main resource ignores status");
    let c = WriteContext { subresource: Some("status"), ..ctx("ctrl") };
    let status = apply_patch_at(&jobs(), Some(&job), PatchType::Apply, body.as_bytes(), &c, t(1)).unwrap();
    assert_eq!(status["status"]["active"], 3);
    let e = entry(&status, "ctrl");
    assert_eq!(e["subresource"], "status");
    assert_eq!(e["fieldsV1"], json!({"f:status": {"f:active": {}}}));
    assert_eq!(managers(&status), [("m".into(), "Apply".into()), ("ctrl".into(), "Apply".into())]);
}

#[test]
fn record_write_shapes_update_entries() {
    let mut job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "d", "labels": {"app": "pi"}, "uid": "u", "resourceVersion": "1"},
        "spec": {"parallelism": 1, "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}, "status": {"active": 1}});
    let ua = WriteContext { user_agent: Some("kubectl/v1.32.0 (linux/amd64) kubernetes/abc"), ..Default::default() };
    record_write_at(&jobs(), None, &mut job, &ua, t(5));
    let e = entry(&job, "kubectl");
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["time"], "2025-01-02T03:04:05Z");
    assert_eq!(
        e["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:parallelism": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}
        }),
        "identity, system metadata and status are not owned"
    );
}

#[test]
fn record_write_moves_and_drops_ownership() {
    let mut job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"}, "spec": {"parallelism": 1, "completions": 1}});
    record_write_at(&jobs(), None, &mut job, &ctx("create"), t(0));
    let old = job.clone();
    job["spec"]["parallelism"] = json!(2);
    job["spec"].as_object_mut().unwrap().remove("completions");
    record_write_at(&jobs(), Some(&old), &mut job, &ctx("edit"), t(1));
    assert_eq!(entry(&job, "edit")["fieldsV1"], json!({"f:spec": {"f:parallelism": {}}}));
    assert!(job["metadata"]["managedFields"].as_array().unwrap().iter().all(|e| e["manager"] != "create"), "{job}");

    // The same manager again: entries merge and the time moves.
    let old = job.clone();
    job["spec"]["suspend"] = json!(true);
    record_write_at(&jobs(), Some(&old), &mut job, &ctx("edit"), t(2));
    let e = entry(&job, "edit");
    assert_eq!(e["fieldsV1"], json!({"f:spec": {"f:parallelism": {}, "f:suspend": {}}}));
    assert_eq!(e["time"], "2025-01-02T03:04:02Z");
    assert_eq!(job["metadata"]["managedFields"].as_array().unwrap().len(), 1);

    // A no-op write changes nothing, not even the time.
    let old = job.clone();
    record_write_at(&jobs(), Some(&old), &mut job, &ctx("edit"), t(9));
    assert_eq!(job, old);
}

#[test]
fn record_write_takes_fields_from_appliers() {
    let job = apply(
        None,
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec: {parallelism: 1, completions: 1}\n",
        "kubectl",
        false,
        t(0),
    )
    .unwrap();
    let mut edited = job.clone();
    edited["spec"]["parallelism"] = json!(3);
    record_write_at(&jobs(), Some(&job), &mut edited, &ctx("kubectl-edit"), t(1));
    assert_eq!(entry(&edited, "kubectl")["fieldsV1"], json!({"f:spec": {"f:completions": {}}}));
    // Applying the old value again now conflicts with the editor.
    let e = apply(
        Some(&edited),
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec: {parallelism: 1, completions: 1}\n",
        "kubectl",
        false,
        t(2),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using batch/v1: .spec.parallelism"
    );
}

#[test]
fn record_write_scopes_status_writes() {
    let mut job =
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"}, "spec": {"parallelism": 1}});
    record_write_at(&jobs(), None, &mut job, &ctx("create"), t(0));
    let old = job.clone();
    job["status"] = json!({"active": 1, "conditions": [{"type": "Complete", "status": "True"}]});
    let c = WriteContext { subresource: Some("status"), ..ctx("job-controller") };
    record_write_at(&jobs(), Some(&old), &mut job, &c, t(1));
    let e = entry(&job, "job-controller");
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {"f:active": {}, "f:conditions": {"k:{\"type\":\"Complete\"}": {".": {}, "f:status": {}, "f:type": {}}}}})
    );
    // A main-resource write that carries a status change does not own it.
    let old = job.clone();
    job["status"]["active"] = json!(0);
    record_write_at(&jobs(), Some(&old), &mut job, &ctx("other"), t(2));
    assert_eq!(managers(&job).iter().filter(|(m, _)| m == "other").count(), 0);
}

#[test]
fn manager_names_follow_upstream() {
    let c = |fm: Option<&'static str>, ua: Option<&'static str>| {
        manager_name(&WriteContext { field_manager: fm, user_agent: ua, ..Default::default() })
    };
    assert_eq!(c(Some("kubectl-create"), Some("kubectl/v1.32")), "kubectl-create");
    assert_eq!(c(None, Some("kube-rs/0.99 x")), "kube-rs");
    assert_eq!(c(Some(""), Some("jobwright")), "jobwright");
    assert_eq!(c(None, None), "");
    assert_eq!(c(None, Some(&*"x".repeat(300).leak())).len(), 128);
}

proptest::proptest! {
    /// Applying any configuration twice gives the same object the second time (same timestamp
    /// too), and never panics; conflicts only arise against other managers.
    #[test]
    fn apply_is_idempotent(spec in crate::patch::strategic::tests::arb_json(3),
                           labels in proptest::collection::btree_map("[a-c]", "[x-z]", 0..3),
                           other in crate::patch::strategic::tests::arb_json(3)) {
        let pods = Registry::builtin().get("", "v1", "pods").unwrap();
        let live = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "q"}},
            "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "E", "value": "1"}]}]}});
        let seeded = apply_patch_at(&pods, Some(&live), PatchType::Apply,
            serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": other})).unwrap().as_slice(),
            &ctx("seed"), t(0));
        let live = seeded.unwrap_or(live);
        let config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": labels}, "spec": spec});
        let body = serde_json::to_vec(&config).unwrap();
        let c = WriteContext { force: true, ..ctx("me") };
        if let Ok(first) = apply_patch_at(&pods, Some(&live), PatchType::Apply, &body, &c, t(1)) {
            proptest::prop_assert!(first.is_object());
            let second = apply_patch_at(&pods, Some(&first), PatchType::Apply, &body, &c, t(2)).unwrap();
            proptest::prop_assert_eq!(second, first);
        }
    }

    /// Recording a write twice (the second time as a no-op) changes nothing more.
    #[test]
    fn record_write_is_stable(spec_old in crate::patch::strategic::tests::arb_json(3),
                              spec_new in crate::patch::strategic::tests::arb_json(3)) {
        let pods = Registry::builtin().get("", "v1", "pods").unwrap();
        let old = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec_old});
        let mut old_recorded = old.clone();
        record_write_at(&pods, None, &mut old_recorded, &ctx("a"), t(0));
        let mut new = json!({"apiVersion": "v1", "kind": "Pod", "metadata": old_recorded["metadata"].clone(), "spec": spec_new});
        record_write_at(&pods, Some(&old_recorded), &mut new, &ctx("b"), t(1));
        let again = new.clone();
        let mut new2 = new.clone();
        record_write_at(&pods, Some(&again), &mut new2, &ctx("c"), t(2));
        proptest::prop_assert_eq!(new2, new);
    }
}

#[test]
fn update_managers_are_capped_into_ancient_changes() {
    let mut job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "labels": {}}});
    for i in 0..12u32 {
        let old = job.clone();
        job["metadata"]["labels"][format!("l{i}")] = json!("x");
        record_write_at(&jobs(), Some(&old), &mut job, &ctx(&format!("m{i:02}")), t(i));
    }
    let ms = managers(&job);
    assert_eq!(ms.len(), 10, "{ms:?}");
    let ancient = entry(&job, "ancient-changes");
    assert_eq!(
        ancient["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:l0": {}, "f:l1": {}, "f:l2": {}}}}),
        "the three oldest merged"
    );
    assert_eq!(ancient["time"], "2025-01-02T03:04:02Z");
    assert!(ms.iter().any(|(m, _)| m == "m11"));
    assert!(!ms.iter().any(|(m, _)| m == "m00" || m == "m02"));
}

#[test]
fn record_write_resets_managed_fields_on_request() {
    let mut job =
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"}, "spec": {"parallelism": 1}});
    record_write_at(&jobs(), None, &mut job, &ctx("create"), t(0));
    for reset in [json!([]), json!([{}])] {
        let mut new = job.clone();
        new["metadata"]["managedFields"] = reset.clone();
        record_write_at(&jobs(), Some(&job), &mut new, &ctx("edit"), t(1));
        assert!(new["metadata"].get("managedFields").is_none(), "{reset}: {new}");
    }
    // Dropping the field altogether keeps the live entries.
    let mut new = job.clone();
    new["metadata"].as_object_mut().unwrap().remove("managedFields");
    record_write_at(&jobs(), Some(&job), &mut new, &ctx("edit"), t(1));
    assert_eq!(managers(&new), [("create".to_string(), "Update".to_string())]);
}

mod fast_path {
    //! `record_update` keeps the entries a write does not touch as they are instead of decoding
    //! and encoding them: it must write exactly what the reference (`record_update_slow`) writes,
    //! whatever the stored and sent `managedFields` look like.
    use proptest::prelude::*;

    use super::*;

    const MANAGERS: [&str; 4] = ["kubectl", "job-controller", "kubelet", "edit"];

    /// A small Job whose fields the strategy moves around.
    fn job(variant: &[u8]) -> Value {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        for (i, b) in variant.iter().enumerate() {
            match (i % 8, b % 4) {
                (0, 1) => j["metadata"]["labels"] = json!({"a": "1"}),
                (0, 2) => j["metadata"]["labels"] = json!({"a": "2", "b": "x"}),
                (1, 1 | 2) => j["metadata"]["finalizers"] = json!(["f"]),
                (2, 1) => j["spec"]["parallelism"] = json!(b),
                (2, 2) => j["spec"]["completions"] = json!(3),
                (3, 1) => j["spec"]["template"]["spec"]["containers"][0]["image"] = json!("y"),
                (3, 2) => {
                    j["spec"]["template"]["spec"]["containers"] =
                        json!([{"name": "c", "image": "x"}, {"name": "d", "image": "z", "args": ["a"]}])
                }
                (4, 1) => j["status"] = json!({"active": 1}),
                (4, 2) => j["status"] = json!({"active": 0, "conditions": [{"type": "Complete", "status": "True"}]}),
                (5, 1) => j["metadata"]["annotations"] = json!({"n": "v"}),
                (6, 1) => j["spec"]["suspend"] = json!(true),
                (7, 1) => j["spec"]["template"]["metadata"] = json!({"labels": {"x": "y"}}),
                _ => {}
            }
        }
        j
    }

    /// Ways a sent or stored list can differ from what encoding writes.
    fn corrupt(list: &mut Value, how: u8) {
        let Some(items) = list.as_array_mut() else { return };
        let Some(first) = items.first_mut() else { return };
        match how % 9 {
            0 => first["fieldsV1"]["."] = json!({}),
            1 => first["time"] = json!(5),
            2 => first["subresource"] = json!(""),
            3 => {
                let dup = first.clone();
                items.push(dup);
            }
            4 => items.reverse(),
            5 => first["fieldsV1"] = json!({}),
            6 => first["operation"] = json!("Nope"),
            7 => first["extra"] = json!(1),
            _ => {
                if let Some(m) = first["fieldsV1"].as_object_mut()
                    && let Some((_, v)) = m.iter_mut().next()
                {
                    *v = json!({".": {}});
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 600, .. ProptestConfig::default() })]
        #[test]
        fn fast_and_reference_write_the_same(
            steps in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..8), 0usize..4, any::<bool>()), 1..6),
            last in prop::collection::vec(any::<u8>(), 0..8),
            manager in 0usize..4,
            status in any::<bool>(),
            send in 0u8..4,
            how in any::<u8>(),
            stored_corrupt in any::<bool>(),
        ) {
            let info = jobs();
            // Build a stored object through the reference, several managers and subresources.
            let mut live: Option<Value> = None;
            for (n, (variant, m, sub)) in steps.iter().enumerate() {
                let mut next = job(variant);
                let c = WriteContext { subresource: (*sub && live.is_some()).then_some("status"), ..ctx(MANAGERS[*m]) };
                record_update_slow(&info, live.as_ref(), &mut next, &c, t(n as u32));
                live = Some(next);
            }
            let mut live = live.unwrap();
            if stored_corrupt {
                corrupt(&mut live["metadata"]["managedFields"], how);
            }
            let mut new = job(&last);
            match send {
                1 => new["metadata"]["managedFields"] = live["metadata"]["managedFields"].clone(),
                2 => {
                    let mut l = live["metadata"]["managedFields"].clone();
                    corrupt(&mut l, how.wrapping_add(1));
                    new["metadata"]["managedFields"] = l;
                }
                3 => new["metadata"]["managedFields"] = json!([]),
                _ => {}
            }
            let c = WriteContext { subresource: status.then_some("status"), ..ctx(MANAGERS[manager]) };
            let (mut fast, mut slow) = (new.clone(), new);
            record_update(&info, Some(&live), &mut fast, &c, t(30));
            record_update_slow(&info, Some(&live), &mut slow, &c, t(30));
            prop_assert_eq!(&fast, &slow);
            // And a create.
            let (mut fast, mut slow) = (job(&last), job(&last));
            record_update(&info, None, &mut fast, &ctx(MANAGERS[manager]), t(31));
            record_update_slow(&info, None, &mut slow, &ctx(MANAGERS[manager]), t(31));
            prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn more_than_ten_updaters_are_capped_the_same_way() {
        let info = jobs();
        let mut live = job(&[1, 1, 1]);
        record_update_slow(&info, None, &mut live, &ctx("m0"), t(0));
        for i in 1..14u8 {
            // Each manager adds a label of its own, so each keeps an entry.
            let mut next = live.clone();
            next["metadata"]["labels"][format!("l{i}")] = json!("v");
            let name = format!("m{i}");
            let (mut fast, mut slow) = (next.clone(), next);
            record_update(&info, Some(&live), &mut fast, &ctx(&name), t(u32::from(i)));
            record_update_slow(&info, Some(&live), &mut slow, &ctx(&name), t(u32::from(i)));
            assert_eq!(fast, slow, "write {i}");
            live = fast;
        }
        assert!(
            live["metadata"]["managedFields"].as_array().unwrap().iter().any(|e| e["manager"] == "ancient-changes")
        );
    }
}

/// The lists this server writes take the fast path (so the common write does not decode them).
#[test]
fn written_lists_take_the_fast_path() {
    let info = jobs();
    let mut job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "labels": {"a": "b"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    record_write_at(&info, None, &mut job, &ctx("create"), t(0));
    let old = job.clone();
    job["status"] = json!({"active": 1});
    let status = WriteContext { subresource: Some("status"), ..ctx("job-controller") };
    record_write_at(&info, Some(&old), &mut job, &status, t(1));
    let list = &job["metadata"]["managedFields"];
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (changed, removed) = (FieldSet::default(), FieldSet::default());
    let update = Update {
        changed: &changed,
        removed: &removed,
        manager: "job-controller".into(),
        api_version: "batch/v1".into(),
        subresource: "status",
        now: t(2),
    };
    assert_eq!(update.fast(list).as_ref(), Some(list), "nothing changed: the list as it is");
    let mut odd = list.clone();
    odd[0]["time"] = json!(5);
    assert_eq!(update.fast(&odd), None, "a list not as encoding writes it goes the slow way");
}

mod create_path {
    //! A create's `managedFields` built in one pass from the object (`record_create`) must be
    //! exactly what the reference (`record_update_slow`: compare against `{}`, strip, scope,
    //! encode) writes, for any object of any built-in kind, whatever it sends as `managedFields`.
    use proptest::prelude::*;

    use super::*;

    fn any_json() -> impl Strategy<Value = Value> {
        crate::patch::any_json_with_keys(&[
            "name",
            "image",
            "containers",
            "containerPort",
            "ports",
            "labels",
            "finalizers",
            "type",
            "uid",
            "managedFields",
            ".",
        ])
    }

    const RESOURCES: [(&str, &str); 7] = [
        ("batch", "jobs"),
        ("", "pods"),
        ("", "events"),
        ("events.k8s.io", "events"),
        ("", "namespaces"),
        ("", "configmaps"),
        ("coordination.k8s.io", "leases"),
    ];

    /// Where the strategy puts its values: the top level, the stripped metadata fields, lists
    /// with keys and sets, status.
    const PATHS: [&str; 16] = [
        "/apiVersion",
        "/kind",
        "/metadata",
        "/metadata/name",
        "/metadata/uid",
        "/metadata/labels",
        "/metadata/finalizers",
        "/metadata/managedFields",
        "/metadata/ownerReferences",
        "/metadata/generation",
        "/spec",
        "/spec/containers",
        "/spec/template/spec/containers",
        "/status",
        "/status/conditions",
        "/x",
    ];

    fn put(obj: &mut Value, path: &str, v: Value) {
        let mut cur = obj;
        let segs: Vec<&str> = path.split('/').skip(1).collect();
        for (i, seg) in segs.iter().enumerate() {
            if !cur.is_object() {
                *cur = json!({});
            }
            let m = cur.as_object_mut().unwrap();
            if i + 1 == segs.len() {
                m.insert((*seg).to_string(), v);
                return;
            }
            cur = m.entry(*seg).or_insert_with(|| json!({}));
        }
    }

    fn base(resource: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "n", "namespace": "d", "uid": "u",
            "creationTimestamp": "2025-01-01T00:00:00Z", "generation": 1, "labels": {"a": "b"}},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x",
                "ports": [{"containerPort": 80}, {"containerPort": 81, "protocol": "UDP"}]}]}},
                "containers": [{"name": "c", "image": "x"}], "holderIdentity": resource},
            "involvedObject": {"kind": "Pod", "name": "p"}, "regarding": {"kind": "Pod"}, "data": {"k": "v"},
            "status": {}})
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]
        #[test]
        fn creates_write_what_the_reference_writes(
            resource in 0usize..RESOURCES.len(),
            edits in prop::collection::vec((0usize..PATHS.len(), any_json()), 0..5),
            drop in prop::collection::vec(0usize..PATHS.len(), 0..3),
            sent in 0u8..5,
            sub in 0u8..4,
            manager in 0usize..3,
        ) {
            let (group, res) = RESOURCES[resource];
            let info = Registry::builtin().get(group, "v1", res).unwrap();
            let mut obj = base(res);
            for (p, v) in edits {
                put(&mut obj, PATHS[p], v);
            }
            for p in drop {
                let (parent, last) = PATHS[p].rsplit_once('/').unwrap();
                if let Some(m) = obj.pointer_mut(parent).and_then(Value::as_object_mut) {
                    m.remove(last);
                }
            }
            match sent {
                1 => put(&mut obj, "/metadata/managedFields", json!([])),
                2 => put(&mut obj, "/metadata/managedFields", json!([{}])),
                3 => put(&mut obj, "/metadata/managedFields", json!([{"manager": "m", "operation": "Update",
                    "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {}}}}])),
                4 => put(&mut obj, "/metadata/managedFields", json!([{"manager": "m", "operation": "Nope"}])),
                _ => {}
            }
            let subresource = [None, Some("status"), Some("scale"), None][usize::from(sub)];
            let c = WriteContext {
                subresource,
                user_agent: Some("kubectl/v1.33 (linux)"),
                field_manager: [None, Some(""), Some("job-controller")][manager],
                ..Default::default()
            };
            let (mut fast, mut slow) = (obj.clone(), obj);
            record_update(&info, None, &mut fast, &c, t(7));
            record_update_slow(&info, None, &mut slow, &c, t(7));
            prop_assert_eq!(fast, slow);
        }
    }

    /// Not an object, or no `metadata` object: the same as the reference too.
    #[test]
    fn odd_objects_write_what_the_reference_writes() {
        for obj in
            [json!(null), json!([1]), json!({"metadata": "x", "spec": {"a": 1}}), json!({}), json!({"kind": "K"})]
        {
            for info in [jobs(), Registry::builtin().get("", "v1", "pods").unwrap()] {
                let (mut fast, mut slow) = (obj.clone(), obj.clone());
                record_update(&info, None, &mut fast, &ctx("m"), t(1));
                record_update_slow(&info, None, &mut slow, &ctx("m"), t(1));
                assert_eq!(fast, slow, "{obj}");
            }
        }
    }
}
