use serde_json::json;

use super::*;
use crate::patch::schema::root_for;
use crate::registry::Registry;

fn root(group: &str, resource: &str) -> &'static Shape {
    root_for(&Registry::builtin().get(group, "v1", resource).unwrap())
}

fn pod() -> &'static Shape {
    root("", "pods")
}

fn smp(shape: &Shape, original: Value, patch: Value) -> Result<Value, MergeError> {
    strategic_merge(&original, patch, shape)
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect()
}

/// Table of (case, original, patch, expected) on a Pod.
#[test]
fn pod_merge_table() {
    let cases: Vec<(&str, Value, Value, Value)> = vec![
        (
            "maps merge, null deletes, nulls inside new values are dropped",
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"b": null, "c": "3"}, "annotations": {"x": "y", "z": null}}}),
            json!({"metadata": {"labels": {"a": "1", "c": "3"}, "annotations": {"x": "y"}}}),
        ),
        (
            "containers merge by name",
            json!({"spec": {"containers": [{"name": "a", "image": "x", "args": ["1"]}, {"name": "b", "image": "y"}]}}),
            json!({"spec": {"containers": [{"name": "b", "image": "z"}]}}),
            json!({"spec": {"containers": [{"name": "a", "image": "x", "args": ["1"]}, {"name": "b", "image": "z"}]}}),
        ),
        (
            "a new container without $setElementOrder lands first, as upstream",
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"containers": [{"name": "sidecar", "image": "s"}]}}),
            json!({"spec": {"containers": [{"name": "sidecar", "image": "s"}, {"name": "a"}]}}),
        ),
        (
            "initContainers and ephemeralContainers merge by name",
            json!({"spec": {"initContainers": [{"name": "i", "image": "x"}], "ephemeralContainers": [{"name": "e", "image": "x"}]}}),
            json!({"spec": {"initContainers": [{"name": "i", "image": "y"}], "ephemeralContainers": [{"name": "e", "tty": true}]}}),
            json!({"spec": {"initContainers": [{"name": "i", "image": "y"}], "ephemeralContainers": [{"name": "e", "image": "x", "tty": true}]}}),
        ),
        (
            "env by name, ports by containerPort, volumeMounts by mountPath, volumeDevices by devicePath",
            json!({"spec": {"containers": [{"name": "c",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80, "name": "http"}],
                "volumeMounts": [{"mountPath": "/d", "name": "d"}],
                "volumeDevices": [{"devicePath": "/dev/x", "name": "x"}]}]}}),
            json!({"spec": {"containers": [{"name": "c",
                "env": [{"name": "B", "value": "two"}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "volumeMounts": [{"mountPath": "/d", "readOnly": true}],
                "volumeDevices": [{"devicePath": "/dev/x", "name": "y"}]}]}}),
            json!({"spec": {"containers": [{"name": "c",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}],
                "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                "volumeMounts": [{"mountPath": "/d", "name": "d", "readOnly": true}],
                "volumeDevices": [{"devicePath": "/dev/x", "name": "y"}]}]}}),
        ),
        (
            "volumes, imagePullSecrets, resourceClaims, schedulingGates by name; hostAliases by ip",
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}], "imagePullSecrets": [{"name": "s1"}],
                "resourceClaims": [{"name": "r"}], "schedulingGates": [{"name": "g1"}],
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}]}}),
            json!({"spec": {"volumes": [{"name": "w", "emptyDir": {}}], "imagePullSecrets": [{"name": "s1"}],
                "resourceClaims": [{"name": "r", "resourceClaimName": "rc"}], "schedulingGates": [{"name": "g2"}],
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}]}}),
            json!({"spec": {"volumes": [{"name": "w", "emptyDir": {}}, {"name": "v", "emptyDir": {}}], "imagePullSecrets": [{"name": "s1"}],
                "resourceClaims": [{"name": "r", "resourceClaimName": "rc"}], "schedulingGates": [{"name": "g2"}, {"name": "g1"}],
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}]}}),
        ),
        (
            "topologySpreadConstraints merge by topologyKey",
            json!({"spec": {"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]}}),
            json!({"spec": {"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}]}}),
            json!({"spec": {"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2, "whenUnsatisfiable": "DoNotSchedule"}]}}),
        ),
        (
            "lists without a strategy are replaced (tolerations, args)",
            json!({"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "c", "args": ["1", "2"]}]}}),
            json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["3"]}]}}),
            json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["3"]}]}}),
        ),
        (
            "status conditions merge by type, containerStatuses are atomic",
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "a", "ready": false}, {"name": "b", "ready": false}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [{"name": "a", "ready": true}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "a", "ready": true}]}}),
        ),
        (
            "podIPs merge by ip",
            json!({"status": {"podIPs": [{"ip": "10.0.0.1"}]}}),
            json!({"status": {"podIPs": [{"ip": "fd00::1"}]}}),
            json!({"status": {"podIPs": [{"ip": "fd00::1"}, {"ip": "10.0.0.1"}]}}),
        ),
        (
            "finalizers are a set: duplicates dropped, new ones first",
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        ),
        (
            "$deleteFromPrimitiveList removes values from a set",
            json!({"metadata": {"finalizers": ["a", "b", "c", "b"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
            json!({"metadata": {"finalizers": ["a", "c"]}}),
        ),
        (
            "$deleteFromPrimitiveList on a missing list adds nothing",
            json!({"metadata": {}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
            json!({"metadata": {}}),
        ),
        (
            "ownerReferences merge by uid",
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a", "kind": "Job"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "1", "blockOwnerDeletion": true}, {"uid": "2", "name": "b"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a", "kind": "Job", "blockOwnerDeletion": true}, {"uid": "2", "name": "b"}]}}),
        ),
        (
            "$patch: replace on a map replaces it",
            json!({"spec": {"nodeSelector": {"a": "1", "b": "2"}}}),
            json!({"spec": {"nodeSelector": {"$patch": "replace", "c": "3"}}}),
            json!({"spec": {"nodeSelector": {"c": "3"}}}),
        ),
        (
            "$patch: delete on a map empties it",
            json!({"spec": {"affinity": {"nodeAffinity": {"x": 1}}, "hostname": "h"}}),
            json!({"spec": {"affinity": {"$patch": "delete"}}}),
            json!({"spec": {"affinity": {}, "hostname": "h"}}),
        ),
        (
            "$patch: replace item replaces a merged list",
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"containers": [{"name": "c"}, {"$patch": "replace"}]}}),
            json!({"spec": {"containers": [{"name": "c"}]}}),
        ),
        (
            "$patch: delete item deletes by merge key",
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
            json!({"spec": {"containers": [{"name": "b"}]}}),
        ),
        (
            "$retainKeys drops unlisted keys of the live map",
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "cm"}}]}}),
        ),
        (
            "$setElementOrder orders a merged list",
            json!({"spec": {"containers": [{"name": "a", "other": "x"}, {"name": "b", "value": "2", "other": "y"}]}}),
            json!({"spec": {"$setElementOrder/containers": [{"name": "d"}, {"name": "a"}, {"name": "b"}, {"name": "c"}],
                "containers": [{"name": "d", "value": "4"}, {"name": "c", "value": "3"}]}}),
            json!({"spec": {"containers": [{"name": "d", "value": "4"}, {"name": "a", "other": "x"},
                {"name": "b", "value": "2", "other": "y"}, {"name": "c", "value": "3"}]}}),
        ),
        (
            "$setElementOrder keeps server-only items by their live position",
            json!({"spec": {"containers": [{"name": "a", "other": "x"}, {"name": "c", "value": "2"}]}}),
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]}}),
            json!({"spec": {"containers": [{"name": "a", "value": "1", "other": "x"}, {"name": "b", "value": "2"}, {"name": "c", "value": "2"}]}}),
        ),
        (
            "$setElementOrder with $deleteFromPrimitiveList on a set",
            json!({"metadata": {"finalizers": ["1", "2", "3", "4"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["1", "2", "4"], "$deleteFromPrimitiveList/finalizers": ["3"], "finalizers": ["4"]}}),
            json!({"metadata": {"finalizers": ["1", "2", "4"]}}),
        ),
        (
            "adding and deleting on a set with $setElementOrder puts the new value in order",
            json!({"metadata": {"finalizers": ["1", "2", "3"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["1", "2", "4"], "$deleteFromPrimitiveList/finalizers": ["3"], "finalizers": ["4"]}}),
            json!({"metadata": {"finalizers": ["1", "2", "4"]}}),
        ),
        (
            "directives left in new values are dropped like unknown fields",
            json!({"spec": {}}),
            json!({"spec": {"containers": [{"name": "a", "$setElementOrder/env": [{"name": "X"}], "env": [{"name": "X"}]}]}}),
            json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X"}]}]}}),
        ),
        (
            "a type change replaces the value",
            json!({"spec": {"containers": [{"name": "a"}], "x": {"y": 1}}}),
            json!({"spec": {"x": "scalar"}}),
            json!({"spec": {"containers": [{"name": "a"}], "x": "scalar"}}),
        ),
        ("a null patch changes nothing", json!({"a": 1}), Value::Null, json!({"a": 1})),
    ];
    for (name, original, patch, want) in cases {
        let got = smp(pod(), original, patch).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn conditions_merge_by_type_for_every_kind_with_conditions() {
    for (group, resource) in
        [("", "pods"), ("", "nodes"), ("", "namespaces"), ("batch", "jobs"), ("apps", "deployments"), ("", "services")]
    {
        let got = smp(
            root(group, resource),
            json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "B", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "A", "status": "True"}]}}),
        )
        .unwrap();
        assert_eq!(
            got["status"]["conditions"],
            json!([{"type": "A", "status": "True"}, {"type": "B", "status": "True"}]),
            "{resource}"
        );
    }
}

#[test]
fn node_addresses_merge_by_type_and_service_ports_by_port() {
    let got = smp(
        root("", "nodes"),
        json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n"}]}}),
        json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}}),
    )
    .unwrap();
    assert_eq!(got["status"]["addresses"][0], json!({"type": "InternalIP", "address": "127.0.0.1"}));
    assert_eq!(got["status"]["addresses"][1]["type"], "Hostname");
    let got = smp(
        root("", "services"),
        json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
    )
    .unwrap();
    assert_eq!(got["spec"]["ports"], json!([{"port": 80, "targetPort": 9090}, {"port": 443}]));
}

#[test]
fn job_and_cronjob_templates_use_pod_keys() {
    let job = smp(
        root("batch", "jobs"),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "a", "env": [{"name": "X", "value": "1"}]}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "env": [{"name": "Y", "value": "2"}]}]}}}}),
    )
    .unwrap();
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}])
    );
    let cj = smp(
        root("batch", "cronjobs"),
        json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}}}}),
        json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "x"}]}}}}}}),
    )
    .unwrap();
    assert_eq!(names(&cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]), ["a", "b"]);
}

/// Patches `kubectl apply` (client-side) sends, as its three-way merge computes them.
#[test]
fn kubectl_client_side_apply_patches() {
    let job = json!({
        "metadata": {"name": "pi", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}, "labels": {"app": "pi", "old": "x"}},
        "spec": {"parallelism": 1, "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "main", "image": "busybox:1.36", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "terminationMessagePath": "/dev/termination-log"}]}}}
    });
    // New image, one env var removed and one added, a label removed, the annotation refreshed.
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}\n"}, "labels": {"old": null}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "main"}],
            "containers": [{"name": "main", "image": "busybox:1.37",
                "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}]}]
        }}}
    });
    let got = smp(root("batch", "jobs"), job, patch).unwrap();
    let c = &got["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "busybox:1.37");
    assert_eq!(c["env"], json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]));
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log", "server-set fields survive");
    assert_eq!(got["metadata"]["labels"], json!({"app": "pi"}));
    assert_eq!(got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"], "{\"new\":true}\n");

    // Deployment strategy switched to Recreate: $retainKeys clears rollingUpdate.
    let deploy = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}});
    let got = smp(root("apps", "deployments"), deploy, patch).unwrap();
    assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));

    // A volume switched from emptyDir to a configMap source.
    let deploy = json!({"spec": {"template": {"spec": {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "other", "emptyDir": {}}]}}}});
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/volumes": [{"name": "data"}, {"name": "other"}],
        "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"}, "name": "data"}]}}}});
    let got = smp(root("apps", "deployments"), deploy, patch).unwrap();
    assert_eq!(
        got["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cfg"}}, {"name": "other", "emptyDir": {}}])
    );

    // Container removed from the manifest.
    let pod_v = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "b"}], "containers": [{"$patch": "delete", "name": "a"}]}});
    assert_eq!(smp(pod(), pod_v, patch).unwrap(), json!({"spec": {"containers": [{"name": "b"}]}}));
}

#[test]
fn errors_are_classified_like_upstream() {
    let bad = |v: &str| MergeError::BadRequest(v.to_string());
    let other = |v: &str| MergeError::Other(v.to_string());
    let cases: Vec<(&str, Value, Value, MergeError)> = vec![
        (
            "$patch: merge in a list",
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"containers": [{"$patch": "merge"}]}}),
            other("merging lists cannot yet be specified in the patch"),
        ),
        (
            "unknown $patch in a map",
            json!({"spec": {}}),
            json!({"spec": {"$patch": "bogus", "a": "b"}}),
            other("unknown patch type: bogus in map: map[$patch:bogus a:b]"),
        ),
        (
            "$retainKeys not a list",
            json!({"spec": {}}),
            json!({"spec": {"$retainKeys": "a"}}),
            bad("invalid patch format of retainKeys"),
        ),
        (
            "$retainKeys not listing a patched key",
            json!({"spec": {}}),
            json!({"spec": {"$retainKeys": ["a"], "b": 1}}),
            bad("invalid patch format of retainKeys"),
        ),
        (
            "$setElementOrder without a list name",
            json!({"spec": {}}),
            json!({"spec": {"$setElementOrder": []}}),
            bad("invalid patch format of setElementOrder list"),
        ),
        (
            "$deleteFromPrimitiveList without a list name",
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
            bad("invalid patch format of primitive list"),
        ),
        (
            "list of lists",
            json!({"metadata": {"finalizers": [["a"]]}}),
            json!({"metadata": {"finalizers": [["b"]]}}),
            MergeError::Unprocessable("lists of lists are not supported".into()),
        ),
        (
            "merge key missing",
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"containers": [{"image": "x"}]}}),
            other("map: map[image:x] does not contain declared merge key: name"),
        ),
        (
            "mixed item types",
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"containers": ["x"]}}),
            other("list element types are not identical: [[map[name:a]] [x]]"),
        ),
        (
            "patch body is a list",
            json!({}),
            json!([1]),
            bad("json: cannot unmarshal array into Go value of type map[string]interface {}"),
        ),
        (
            "$setElementOrder out of order with its list",
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "b"}, {"name": "a"}]}}),
            other(
                "The order in patch list:\n[map[name:b] map[name:a]]\n doesn't match $setElementOrder list:\n[map[name:a] map[name:b]]\n",
            ),
        ),
    ];
    for (name, original, patch, want) in cases {
        assert_eq!(smp(pod(), original, patch), Err(want), "{name}");
    }
}

proptest::proptest! {
    #[test]
    fn never_panics_on_arbitrary_patches(patch in arb_json(4)) {
        let original = json!({"metadata": {"name": "p", "finalizers": ["a"], "labels": {"x": "y"}},
            "spec": {"containers": [{"name": "c", "env": [{"name": "A"}], "ports": [{"containerPort": 80}]}]},
            "status": {"conditions": [{"type": "Ready"}]}});
        let _ = smp(pod(), original, patch);
    }
}

/// Arbitrary JSON biased towards directive keys and the Pod's field names.
pub(crate) fn arb_json(depth: u32) -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let key = prop_oneof![
        Just("$patch".to_string()),
        Just("$retainKeys".to_string()),
        Just("$setElementOrder/containers".to_string()),
        Just("$setElementOrder/finalizers".to_string()),
        Just("$deleteFromPrimitiveList/finalizers".to_string()),
        Just("metadata".to_string()),
        Just("spec".to_string()),
        Just("status".to_string()),
        Just("containers".to_string()),
        Just("finalizers".to_string()),
        Just("conditions".to_string()),
        Just("name".to_string()),
        Just("type".to_string()),
        Just("env".to_string()),
        "[a-z]{1,3}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just("replace"), Just("delete"), Just("merge"), Just("a"), Just("c")].prop_map(Value::from),
    ];
    leaf.prop_recursive(depth, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Cases whose expected results were produced by `kubectl patch --local --type strategic`
/// (v1.32, upstream's own merge code with the typed Pod schema).
#[test]
fn agrees_with_kubectl_patch_local() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"spec":{"containers":[{"name":"a"},{"name":"b"},{"name":"c"}]}}"#,
            r#"{"spec":{"$setElementOrder/containers":[{"name":"c"},{"name":"d"}],"containers":[{"name":"d","image":"i"}]}}"#,
            r#"{"spec":{"containers":[{"name":"a"},{"name":"b"},{"name":"c"},{"image":"i","name":"d"}]}}"#,
        ),
        (
            r#"{"spec":{"containers":[{"name":"a","env":[{"name":"X","value":"1"},{"name":"Y","value":"2"},{"name":"Z","value":"3"}]}]}}"#,
            r#"{"spec":{"containers":[{"name":"a","env":[{"name":"W","value":"0"},{"name":"Y","$patch":"delete"}],"$setElementOrder/env":[{"name":"Z"},{"name":"W"},{"name":"X"}]}]}}"#,
            r#"{"spec":{"containers":[{"env":[{"name":"Z","value":"3"},{"name":"W","value":"0"},{"name":"X","value":"1"}],"name":"a"}]}}"#,
        ),
        (
            r#"{"spec":{"containers":[{"name":"a"}]},"metadata":{"finalizers":["a","b","c"]}}"#,
            r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["b"],"finalizers":["d","a"]}}"#,
            r#"{"spec":{"containers":[{"name":"a"}]},"metadata":{"finalizers":["d","a","c"]}}"#,
        ),
        (
            r#"{"spec":{"containers":[{"name":"a"}]},"metadata":{"finalizers":["a","b","c"]}}"#,
            r#"{"metadata":{"$setElementOrder/finalizers":["c","x","a"],"finalizers":["x"]}}"#,
            r#"{"spec":{"containers":[{"name":"a"}]},"metadata":{"finalizers":["b","c","x","a"]}}"#,
        ),
        (
            r#"{"spec":{"containers":[{"name":"a","image":"x"}],"initContainers":[{"name":"i1"},{"name":"i2"}]}}"#,
            r#"{"spec":{"initContainers":[{"name":"i0"},{"name":"i2","image":"n"}]}}"#,
            r#"{"spec":{"containers":[{"image":"x","name":"a"}],"initContainers":[{"name":"i0"},{"name":"i1"},{"image":"n","name":"i2"}]}}"#,
        ),
        (
            r#"{"spec":{"containers":[{"name":"a","volumeMounts":[{"mountPath":"/a","name":"v"},{"mountPath":"/b","name":"w"}]}]}}"#,
            r#"{"spec":{"containers":[{"name":"a","volumeMounts":[{"mountPath":"/b","readOnly":true},{"mountPath":"/c","name":"x"}]}]}}"#,
            r#"{"spec":{"containers":[{"name":"a","volumeMounts":[{"mountPath":"/a","name":"v"},{"mountPath":"/b","name":"w","readOnly":true},{"mountPath":"/c","name":"x"}]}]}}"#,
        ),
        (
            r#"{"spec":{"containers":[{"name":"a"}],"topologySpreadConstraints":[{"topologyKey":"z","maxSkew":1,"whenUnsatisfiable":"DoNotSchedule"}]}}"#,
            r#"{"spec":{"topologySpreadConstraints":[{"topologyKey":"z","maxSkew":3},{"topologyKey":"h","maxSkew":1,"whenUnsatisfiable":"ScheduleAnyway"}]}}"#,
            r#"{"spec":{"containers":[{"name":"a"}],"topologySpreadConstraints":[{"maxSkew":3,"topologyKey":"z","whenUnsatisfiable":"DoNotSchedule"},{"maxSkew":1,"topologyKey":"h","whenUnsatisfiable":"ScheduleAnyway"}]}}"#,
        ),
        (
            r#"{"spec":{"containers":[{"name":"a"}]}}"#,
            r#"{"spec":{"nodeSelector":{"$patch":"replace","a":"b"},"affinity":{"nodeAffinity":{"$patch":"delete"}},"securityContext":{"runAsUser":1}}}"#,
            r#"{"spec":{"affinity":{},"containers":[{"name":"a"}],"securityContext":{"runAsUser":1}}}"#,
        ),
        (
            r#"{"spec":{"containers":[{"name":"a"}]},"metadata":{"labels":{"a":"1"}}}"#,
            r#"{"metadata":{"labels":{"$patch":"delete"},"annotations":{"$patch":"replace"}}}"#,
            r#"{"spec":{"containers":[{"name":"a"}]},"metadata":{"labels":{}}}"#,
        ),
        (
            r#"{"spec":{"containers":[{"name":"a"}],"hostname":"x"}}"#,
            r#"{"spec":{"hostname":{"$patch":"delete"},"tolerations":[{"key":"a"},{"$patch":"delete","key":"b"}]}}"#,
            r#"{"spec":{"containers":[{"name":"a"}],"tolerations":[{"key":"a"}]}}"#,
        ),
    ];
    for (original, patch, want) in cases {
        let got = smp(pod(), serde_json::from_str(original).unwrap(), serde_json::from_str(patch).unwrap()).unwrap();
        assert_eq!(got, serde_json::from_str::<Value>(want).unwrap(), "{patch}");
    }
}
