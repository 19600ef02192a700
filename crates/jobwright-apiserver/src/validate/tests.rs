//! Table-driven tests in the style of upstream's `TestValidateJob`: every case asserts the exact
//! field paths and messages of each rejection, or the exact defaults.

use serde_json::{Value, json};

use super::*;
use crate::registry::{Registry, ResourceInfo};

fn info(group: &str, resource: &str) -> ResourceInfo {
    Registry::builtin().get(group, "v1", resource).expect("builtin resource")
}

fn jobs() -> ResourceInfo {
    info("batch", "jobs")
}

/// The causes of a 422 as `field: body` lines, which is what `kubectl` shows.
fn causes(e: &StatusError) -> Vec<String> {
    assert_eq!(e.code, 422, "expected 422, got {e}");
    e.details
        .as_ref()
        .and_then(|d| d["causes"].as_array())
        .expect("causes")
        .iter()
        .map(|c| format!("{}: {}", c["field"].as_str().unwrap(), c["message"].as_str().unwrap()))
        .collect()
}

fn base_job() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "myjob", "namespace": "default", "uid": "1a2b3c"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "abc", "image": "image"}]}}}
    })
}

fn with(mut base: Value, patch: Value) -> Value {
    json_patch::merge(&mut base, &patch);
    base
}

fn create(info: &ResourceInfo, mut obj: Value) -> Result<(Value, Vec<String>), StatusError> {
    let w = admit(info, Operation::Create, &mut obj, None, FieldValidation::Strict)?;
    Ok((obj, w))
}

fn created_job(patch: Value) -> Value {
    create(&jobs(), with(base_job(), patch)).expect("valid job").0
}

#[test]
fn job_create_rejections_name_the_field_and_rule() {
    let long = "a".repeat(60);
    let rules21: Vec<Value> =
        (1..=21).map(|i| json!({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [i]}})).collect();
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("restartPolicy Always is not allowed for Jobs",
            json!({"spec": {"template": {"spec": {"restartPolicy": "Always"}}}}),
            vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]),
        ("unknown restartPolicy is unsupported for both the pod and the job",
            json!({"spec": {"template": {"spec": {"restartPolicy": "Sometimes"}}}}),
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                 "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"OnFailure\", \"Never\""]),
        ("negative parallelism, completions, backoffLimit, activeDeadlineSeconds, ttl",
            json!({"spec": {"parallelism": -1, "completions": -2, "backoffLimit": -3, "activeDeadlineSeconds": -4, "ttlSecondsAfterFinished": -5}}),
            vec!["spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                 "spec.completions: Invalid value: -2: must be greater than or equal to 0",
                 "spec.activeDeadlineSeconds: Invalid value: -4: must be greater than or equal to 0",
                 "spec.backoffLimit: Invalid value: -3: must be greater than or equal to 0",
                 "spec.ttlSecondsAfterFinished: Invalid value: -5: must be greater than or equal to 0"]),
        ("indexed job requires completions",
            json!({"spec": {"completionMode": "Indexed", "parallelism": 2}}),
            vec!["spec.completions: Required value: when completion mode is Indexed"]),
        ("unknown completion mode",
            json!({"spec": {"completionMode": "Sometimes"}}),
            vec!["spec.completionMode: Unsupported value: \"Sometimes\": supported values: \"NonIndexed\", \"Indexed\""]),
        ("indexed job whose last pod hostname would not be a DNS label",
            json!({"metadata": {"name": long}, "spec": {"completionMode": "Indexed", "completions": 1000}}),
            vec![Box::leak(format!("metadata.name: Invalid value: \"{long}\": will not able to create pod with invalid DNS label: {long}-999").into_boxed_str())]),
        ("indexed job parallelism above 100000",
            json!({"spec": {"completionMode": "Indexed", "completions": 5, "parallelism": 100001}}),
            vec!["spec.parallelism: Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed"]),
        ("backoffLimitPerIndex and maxFailedIndexes need Indexed mode",
            json!({"spec": {"backoffLimitPerIndex": 1, "maxFailedIndexes": 1}}),
            vec!["spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode",
                 "spec.maxFailedIndexes: Invalid value: 1: requires indexed completion mode"]),
        ("maxFailedIndexes needs backoffLimitPerIndex and at most completions",
            json!({"spec": {"completionMode": "Indexed", "completions": 2, "maxFailedIndexes": 3}}),
            vec!["spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified",
                 "spec.maxFailedIndexes: Invalid value: 3: must be less than or equal to completions"]),
        ("high completions with backoffLimitPerIndex need maxFailedIndexes and bounded parallelism",
            json!({"spec": {"completionMode": "Indexed", "completions": 100001, "parallelism": 10001, "backoffLimitPerIndex": 1}}),
            vec!["spec.maxFailedIndexes: Required value: must be specified when completions is above 100000",
                 "spec.parallelism: Invalid value: 10001: must be less than or equal to 10000 when completions are above 100000 and used with backoff limit per index"]),
        ("pod failure policy requires restartPolicy Never",
            json!({"spec": {"template": {"spec": {"restartPolicy": "OnFailure"}}, "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}}]}}}),
            vec!["spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified"]),
        ("FailIndex requires backoffLimitPerIndex",
            json!({"spec": {"podFailurePolicy": {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [1]}}]}}}),
            vec!["spec.podFailurePolicy.rules[0].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set"]),
        ("unknown action and operator",
            json!({"spec": {"podFailurePolicy": {"rules": [{"action": "Explode", "onExitCodes": {"operator": "Between", "values": [1]}}]}}}),
            vec!["spec.podFailurePolicy.rules[0].action: Unsupported value: \"Explode\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"",
                 "spec.podFailurePolicy.rules[0].onExitCodes.operator: Unsupported value: \"Between\": supported values: \"In\", \"NotIn\""]),
        ("exit codes: 0 with In, duplicates, unordered, unknown container",
            json!({"spec": {"podFailurePolicy": {"rules": [{"action": "Ignore", "onExitCodes": {"containerName": "nope", "operator": "In", "values": [3, 0, 3]}}]}}}),
            vec!["spec.podFailurePolicy.rules[0].onExitCodes.containerName: Invalid value: \"nope\": must be one of the container or initContainer names in the pod template",
                 "spec.podFailurePolicy.rules[0].onExitCodes.values[1]: Invalid value: 0: must not be 0 for the In operator",
                 "spec.podFailurePolicy.rules[0].onExitCodes.values[2]: Duplicate value: 3",
                 "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: [3,0,3]: must be ordered"]),
        ("a rule needs exactly one of onExitCodes and onPodConditions",
            json!({"spec": {"podFailurePolicy": {"rules": [
                {"action": "Ignore"},
                {"action": "Ignore", "onExitCodes": {"operator": "NotIn", "values": [1]}, "onPodConditions": [{"type": "DisruptionTarget"}]}]}}}),
            vec!["spec.podFailurePolicy.rules[0]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
                 "spec.podFailurePolicy.rules[1]: Invalid value: specifying both OnExitCodes and OnPodConditions is not supported"]),
        ("pod condition pattern with a bad type and status",
            json!({"spec": {"podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "Bad Type", "status": "Maybe"}]}]}}}),
            vec!["spec.podFailurePolicy.rules[0].onPodConditions[0].type: Invalid value: \"Bad Type\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                 "spec.podFailurePolicy.rules[0].onPodConditions[0].status: Unsupported value: \"Maybe\": supported values: \"False\", \"True\", \"Unknown\""]),
        ("at most 20 pod failure policy rules",
            json!({"spec": {"podFailurePolicy": {"rules": rules21}}}),
            vec!["spec.podFailurePolicy.rules: Too many: 21: must have at most 20 items"]),
        ("podReplacementPolicy must be Failed with a pod failure policy",
            json!({"spec": {"podReplacementPolicy": "TerminatingOrFailed", "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}}),
            vec!["spec.podReplacementPolicy: Unsupported value: \"TerminatingOrFailed\": supported values: \"Failed\""]),
        ("unknown podReplacementPolicy",
            json!({"spec": {"podReplacementPolicy": "Whenever"}}),
            vec!["spec.podReplacementPolicy: Unsupported value: \"Whenever\": supported values: \"Failed\", \"TerminatingOrFailed\""]),
        ("successPolicy needs Indexed mode",
            json!({"spec": {"successPolicy": {"rules": [{"succeededCount": 1}]}}}),
            vec!["spec.successPolicy: Invalid value: {\"rules\":[{\"succeededCount\":1}]}: requires indexed completion mode"]),
        ("successPolicy rules: empty, bad indexes, counts above completions and above the index set",
            json!({"spec": {"completionMode": "Indexed", "completions": 10, "successPolicy": {"rules": [
                {}, {"succeededIndexes": "0-12"}, {"succeededIndexes": "3,1"}, {"succeededIndexes": "1-2", "succeededCount": 11}]}}}),
            vec!["spec.successPolicy.rules[0]: Required value: at least one of succeededCount or succeededIndexes must be specified",
                 "spec.successPolicy.rules[1].succeededIndexes: Invalid value: \"0-12\": error parsing succeededIndexes: too large index: \"12\"",
                 "spec.successPolicy.rules[2].succeededIndexes: Invalid value: \"3,1\": error parsing succeededIndexes: non-increasing order, previous: 3, current: 1",
                 "spec.successPolicy.rules[3].succeededCount: Invalid value: 11: must be less than or equal to 10 (the number of specified completions)",
                 "spec.successPolicy.rules[3].succeededCount: Invalid value: 11: must be less than or equal to 2 (the number of indexes in the specified succeededIndexes field)"]),
        ("successPolicy with no rules",
            json!({"spec": {"completionMode": "Indexed", "completions": 10, "successPolicy": {"rules": []}}}),
            vec!["spec.successPolicy.rules: Required value: at least one rules must be specified when the successPolicy is specified"]),
        ("managedBy must be a short domain-prefixed path",
            json!({"spec": {"managedBy": format!("example.com/{}", "x".repeat(60))}}),
            vec!["spec.managedBy: Too long: may not be longer than 63"]),
        ("managedBy without a domain",
            json!({"spec": {"managedBy": "controller"}}),
            vec!["spec.managedBy: Invalid value: \"controller\": must be a domain-prefixed path (such as \"acme.io/foo\")"]),
        ("manual selector must match the template labels",
            json!({"spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "c"}}}}}),
            vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"a\":\"c\"}: `selector` does not match template `labels`"]),
        ("manual selector is required",
            json!({"spec": {"manualSelector": true}}),
            vec!["spec.selector: Required value", "spec.template.metadata.labels: Invalid value: \"null\": `selector` does not match template `labels`"]),
        ("user-set generated label with the wrong uid",
            json!({"spec": {"template": {"metadata": {"labels": {"controller-uid": "other"}}}}}),
            vec!["spec.template.metadata.labels[controller-uid]: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"1a2b3c\", \"batch.kubernetes.io/job-name\":\"myjob\", \"controller-uid\":\"other\", \"job-name\":\"myjob\"}: must be '1a2b3c'"]),
        ("selector that does not select the generated labels",
            json!({"spec": {"selector": {"matchLabels": {"x": "y"}}, "template": {"metadata": {"labels": {"x": "y"}}}}}),
            vec!["spec.selector: Invalid value: {\"matchLabels\":{\"batch.kubernetes.io/controller-uid\":\"1a2b3c\",\"x\":\"y\"}}: `selector` not auto-generated"]),
        ("name must be a DNS subdomain",
            json!({"metadata": {"name": "My_Job"}}),
            vec!["metadata.name: Invalid value: \"My_Job\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
        ("label values are validated",
            json!({"metadata": {"labels": {"app": "-bad-"}}}),
            vec!["metadata.labels: Invalid value: \"-bad-\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
        ("template labels are reported at spec.template.labels (and again on the job labels they default)",
            json!({"spec": {"template": {"metadata": {"labels": {"a/b/c": "x"}}}}}),
            vec!["metadata.labels: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                 "spec.template.labels: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]),
        ("a pod template needs containers",
            json!({"spec": {"template": {"spec": {"containers": []}}}}),
            vec!["spec.template.spec.containers: Required value"]),
        ("containers: bad name, missing image, duplicate name, bad port, empty env name, unknown mount",
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "abc", "image": "i", "ports": [{"containerPort": 70000}], "env": [{"name": ""}], "volumeMounts": [{"name": "data", "mountPath": "/d"}]},
                {"name": "abc", "image": ""},
                {"name": "Bad_Name", "image": "i"}]}}}}),
            vec!["spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                 "spec.template.spec.containers[0].env[0].name: Required value",
                 "spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
                 "spec.template.spec.containers[1].image: Required value",
                 "spec.template.spec.containers[1].name: Duplicate value: \"abc\"",
                 "spec.template.spec.containers[2].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
        ("container restart policies: only init containers, only Always",
            json!({"spec": {"template": {"spec": {
                "containers": [{"name": "abc", "image": "i", "restartPolicy": "Always"}],
                "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always"}, {"name": "init", "image": "i", "restartPolicy": "Never"}]}}}}),
            vec!["spec.template.spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
                 "spec.template.spec.initContainers[1].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]),
        ("duplicate volume names",
            json!({"spec": {"template": {"spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]}}}}),
            vec!["spec.template.spec.volumes[1].name: Duplicate value: \"v\""]),
        ("requests above limits and negative quantities",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "abc", "image": "i", "resources": {
                "limits": {"cpu": "500m", "memory": "-1"}, "requests": {"cpu": "1"}}}]}}}}),
            vec!["spec.template.spec.containers[0].resources.limits[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
                 "spec.template.spec.containers[0].resources.requests[cpu]: Invalid value: \"1\": must be less than or equal to cpu limit of 500m"]),
        ("pod activeDeadlineSeconds must be positive",
            json!({"spec": {"template": {"spec": {"activeDeadlineSeconds": 0}}}}),
            vec!["spec.template.spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"]),
    ];
    for (name, patch, want) in cases {
        let err = create(&jobs(), with(base_job(), patch)).err().unwrap_or_else(|| panic!("{name}: accepted"));
        assert_eq!(causes(&err), want, "{name}");
    }
}

#[test]
fn job_create_acceptances() {
    let cases: Vec<(&str, Value)> = vec![
        ("minimal job", json!({})),
        (
            "valid pod failure policy",
            json!({"spec": {"podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "Count", "onExitCodes": {"containerName": "abc", "operator": "In", "values": [1, 2, 3]}},
            {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [0, 5]}}]}}}),
        ),
        (
            "valid FailIndex rule",
            json!({"spec": {"completionMode": "Indexed", "completions": 2, "backoffLimitPerIndex": 1,
            "podFailurePolicy": {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [10]}}]}}}),
        ),
        (
            "valid success policy",
            json!({"spec": {"completionMode": "Indexed", "completions": 10, "successPolicy": {"rules": [
            {"succeededCount": 1, "succeededIndexes": "0,2,4"}, {"succeededIndexes": "1,3,5-9"}]}}}),
        ),
        (
            "valid manual selector",
            json!({"spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}}}}),
        ),
        ("valid managedBy", json!({"spec": {"managedBy": "jobwright.dev/job-controller"}})),
        (
            "quantities may be JSON numbers",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "abc", "image": "i",
            "resources": {"limits": {"cpu": 1, "memory": "64Mi"}}}]}}}}),
        ),
        (
            "high completions with bounded parallelism",
            json!({"spec": {"completionMode": "Indexed", "completions": 1_000_000_000, "parallelism": 10_000, "maxFailedIndexes": 10_000, "backoffLimitPerIndex": 1}}),
        ),
    ];
    for (name, patch) in cases {
        if let Err(e) = create(&jobs(), with(base_job(), patch)) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn job_defaults_and_generated_selector() {
    let job = created_job(json!({}));
    let spec = &job["spec"];
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["manualSelector"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(spec["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "1a2b3c"}}));
    let labels = json!({"batch.kubernetes.io/controller-uid": "1a2b3c", "batch.kubernetes.io/job-name": "myjob",
        "controller-uid": "1a2b3c", "job-name": "myjob"});
    assert_eq!(spec["template"]["metadata"]["labels"], labels);
    assert_eq!(job["metadata"]["labels"], labels, "job labels default from the template labels");
    assert_eq!(job["metadata"]["generation"], 1);
    assert_eq!(job["status"], json!({}));
    let ps = &spec["template"]["spec"];
    assert_eq!(ps["dnsPolicy"], "ClusterFirst");
    assert_eq!(ps["schedulerName"], "default-scheduler");
    assert_eq!(ps["terminationGracePeriodSeconds"], 30);
    assert_eq!(ps["securityContext"], json!({}));
    assert!(ps.get("enableServiceLinks").is_none(), "enableServiceLinks is a Pod default, not a template one");
    assert!(ps.get("tolerations").is_none(), "admission tolerations are for Pods only");
    let c = &ps["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["resources"], json!({}));
}

#[test]
fn job_defaults_by_case() {
    let cases: Vec<(&str, Value, &str, Value)> = vec![
        (
            "parallelism set, completions stays unset",
            json!({"spec": {"parallelism": 3}}),
            "/spec/completions",
            Value::Null,
        ),
        (
            "completions set, parallelism defaults to 1",
            json!({"spec": {"completions": 5}}),
            "/spec/parallelism",
            json!(1),
        ),
        (
            "backoffLimitPerIndex makes backoffLimit MaxInt32",
            json!({"spec": {"completionMode": "Indexed", "completions": 2, "backoffLimitPerIndex": 1}}),
            "/spec/backoffLimit",
            json!(2147483647),
        ),
        ("explicit backoffLimit kept", json!({"spec": {"backoffLimit": 0}}), "/spec/backoffLimit", json!(0)),
        (
            "pod failure policy makes podReplacementPolicy Failed",
            json!({"spec": {"podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}}),
            "/spec/podReplacementPolicy",
            json!("Failed"),
        ),
        (
            "onPodConditions status defaults to True",
            json!({"spec": {"podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}}),
            "/spec/podFailurePolicy/rules/0/onPodConditions/0/status",
            json!("True"),
        ),
        (
            "tagged image pulls IfNotPresent",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "abc", "image": "busybox:1.36"}]}}}}),
            "/spec/template/spec/containers/0/imagePullPolicy",
            json!("IfNotPresent"),
        ),
        (
            ":latest pulls Always",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "abc", "image": "busybox:latest"}]}}}}),
            "/spec/template/spec/containers/0/imagePullPolicy",
            json!("Always"),
        ),
        (
            "a registry port is not a tag",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "abc", "image": "reg:5000/busybox"}]}}}}),
            "/spec/template/spec/containers/0/imagePullPolicy",
            json!("Always"),
        ),
        (
            "digest-only image pulls IfNotPresent",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "abc", "image": "busybox@sha256:0123"}]}}}}),
            "/spec/template/spec/containers/0/imagePullPolicy",
            json!("IfNotPresent"),
        ),
        (
            "port protocol defaults to TCP",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "abc", "image": "i", "ports": [{"containerPort": 80}]}]}}}}),
            "/spec/template/spec/containers/0/ports/0/protocol",
            json!("TCP"),
        ),
        (
            "user job labels are kept",
            json!({"metadata": {"labels": {"team": "a"}}}),
            "/metadata/labels",
            json!({"team": "a"}),
        ),
        (
            "volume without a source becomes emptyDir",
            json!({"spec": {"template": {"spec": {"volumes": [{"name": "v"}]}}}}),
            "/spec/template/spec/volumes/0/emptyDir",
            json!({}),
        ),
    ];
    for (name, patch, ptr, want) in cases {
        let job = created_job(patch);
        assert_eq!(job.pointer(ptr).cloned().unwrap_or(Value::Null), want, "{name}");
    }
}

#[test]
fn job_without_uid_gets_one_and_name_warning() {
    let mut j = base_job();
    j["metadata"].as_object_mut().unwrap().remove("uid");
    j["metadata"]["name"] = json!("my.job");
    let (job, warnings) = create(&jobs(), j).unwrap();
    let uid = job["metadata"]["uid"].as_str().unwrap();
    assert_eq!(uid.len(), 36);
    assert_eq!(job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"], uid);
    assert_eq!(
        warnings,
        vec![
            "metadata.name: this is used in Pod names and hostnames, which can result in surprising behavior; a DNS label is recommended: [must not contain dots]"
        ]
    );
}

fn update(info: &ResourceInfo, op: Operation, old: &Value, new: Value) -> Result<Value, StatusError> {
    let mut obj = new;
    admit(info, op, &mut obj, Some(old), FieldValidation::Strict)?;
    Ok(obj)
}

#[test]
fn job_update_rules() {
    let old = created_job(json!({"spec": {"completionMode": "Indexed", "completions": 3, "parallelism": 3}}));
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "selector is immutable",
            json!({"spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "1a2b3c", "x": "y"}}}}),
            vec![
                "spec.selector: Invalid value: {\"matchLabels\":{\"batch.kubernetes.io/controller-uid\":\"1a2b3c\",\"x\":\"y\"}}: `selector` not auto-generated",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"1a2b3c\", \"batch.kubernetes.io/job-name\":\"myjob\", \"controller-uid\":\"1a2b3c\", \"job-name\":\"myjob\"}: `selector` does not match template `labels`",
                "spec.selector: Invalid value: {\"matchLabels\":{\"batch.kubernetes.io/controller-uid\":\"1a2b3c\",\"x\":\"y\"}}: field is immutable",
            ],
        ),
        (
            "completionMode is immutable",
            json!({"spec": {"completionMode": "NonIndexed"}}),
            vec!["spec.completionMode: Invalid value: \"NonIndexed\": field is immutable"],
        ),
        (
            "completions are immutable for NonIndexed jobs",
            json!({"spec": {"completionMode": "NonIndexed", "completions": 4, "parallelism": 4}}),
            vec![
                "spec.completions: Invalid value: 4: field is immutable",
                "spec.completionMode: Invalid value: \"NonIndexed\": field is immutable",
            ],
        ),
        (
            "elastic indexed: completions only in tandem with parallelism",
            json!({"spec": {"completions": 5}}),
            vec!["spec.completions: Invalid value: 5: can only be modified in tandem with spec.parallelism"],
        ),
        (
            "backoffLimitPerIndex is immutable",
            json!({"spec": {"backoffLimitPerIndex": 2}}),
            vec!["spec.backoffLimitPerIndex: Invalid value: 2: field is immutable"],
        ),
        (
            "managedBy is immutable",
            json!({"spec": {"managedBy": "example.com/x"}}),
            vec!["spec.managedBy: Invalid value: \"example.com/x\": field is immutable"],
        ),
        (
            "name is immutable (and no longer matches the generated labels)",
            json!({"metadata": {"name": "other"}}),
            vec![
                "spec.template.metadata.labels[job-name]: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"1a2b3c\", \"batch.kubernetes.io/job-name\":\"myjob\", \"controller-uid\":\"1a2b3c\", \"job-name\":\"myjob\"}: must be 'other'",
                "spec.template.metadata.labels[batch.kubernetes.io/job-name]: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"1a2b3c\", \"batch.kubernetes.io/job-name\":\"myjob\", \"controller-uid\":\"1a2b3c\", \"job-name\":\"myjob\"}: must be 'other'",
                "metadata.name: Invalid value: \"other\": field is immutable",
            ],
        ),
    ];
    for (name, patch, want) in cases {
        let err = update(&jobs(), Operation::Update, &old, with(old.clone(), patch))
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        let mut got = causes(&err);
        got.dedup();
        // ValidateJob and ValidateJobUpdate both validate the spec, like upstream; dedup for readability.
        let mut uniq = vec![];
        for g in got {
            if !uniq.contains(&g) {
                uniq.push(g);
            }
        }
        assert_eq!(uniq, want, "{name}");
    }
    let scaled = update(
        &jobs(),
        Operation::Update,
        &old,
        with(old.clone(), json!({"spec": {"completions": 5, "parallelism": 5}})),
    )
    .unwrap();
    assert_eq!(scaled["metadata"]["generation"], 2, "a spec change bumps generation");
    let same = update(&jobs(), Operation::Update, &old, old.clone()).unwrap();
    assert_eq!(same["metadata"]["generation"], 1, "no spec change, same generation");
}

#[test]
fn job_template_is_immutable_except_scheduling_directives_of_suspended_unstarted_jobs() {
    let running = created_job(json!({}));
    let err = update(
        &jobs(),
        Operation::Update,
        &running,
        with(running.clone(), json!({"spec": {"template": {"spec": {"nodeSelector": {"a": "b"}}}}})),
    )
    .unwrap_err();
    assert!(
        causes(&err)
            .iter()
            .any(|c| c.starts_with("spec.template: Invalid value: ") && c.ends_with(": field is immutable")),
        "{err}"
    );
    let suspended = created_job(json!({"spec": {"suspend": true}}));
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"x": "y"}}, "spec": {"nodeSelector": {"a": "b"}, "tolerations": [{"key": "k", "operator": "Exists"}]}}}});
    update(&jobs(), Operation::Update, &suspended, with(suspended.clone(), patch.clone()))
        .expect("mutable scheduling directives");
    let err = update(
        &jobs(),
        Operation::Update,
        &suspended,
        with(
            suspended.clone(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "abc", "image": "other"}]}}}}),
        ),
    )
    .unwrap_err();
    assert!(causes(&err).iter().any(|c| c.starts_with("spec.template: Invalid value")));
}

#[test]
fn job_update_keeps_status_and_status_update_keeps_spec() {
    let mut old = created_job(json!({}));
    old["status"] = json!({"active": 1, "startTime": "2024-01-01T00:00:00Z"});
    let mut new = with(old.clone(), json!({"status": {"active": 7}}));
    new["spec"]["parallelism"] = json!(2);
    let got = update(&jobs(), Operation::Update, &old, new).unwrap();
    assert_eq!(got["status"]["active"], 1);
    assert_eq!(got["spec"]["parallelism"], 2);
    let mut new = with(old.clone(), json!({"status": {"active": 2, "ready": 1}}));
    new["spec"]["parallelism"] = json!(9);
    let got = update(&jobs(), Operation::UpdateStatus, &old, new).unwrap();
    assert_eq!(got["status"]["active"], 2);
    assert_eq!(got["spec"]["parallelism"], 1);
}

#[test]
fn job_status_update_rules() {
    let mut old = created_job(json!({"spec": {"completionMode": "Indexed", "completions": 4, "parallelism": 2}}));
    old["status"] =
        json!({"active": 2, "succeeded": 1, "failed": 2, "startTime": "2024-01-01T00:00:00Z", "completedIndexes": "0"});
    let t = |ty: &str| json!({"type": ty, "status": "True"});
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "counters are non-negative and failed cannot decrease",
            json!({"failed": -1}),
            vec![
                "status.failed: Invalid value: -1: must be greater than or equal to 0",
                "status.failed: Invalid value: -1: cannot decrease the failed counter",
            ],
        ),
        (
            "succeeded cannot decrease",
            json!({"succeeded": 0}),
            vec!["status.succeeded: Invalid value: 0: cannot decrease the succeeded counter"],
        ),
        (
            "ready above active",
            json!({"ready": 3}),
            vec!["status.ready: Invalid value: 3: cannot set more ready pods than active"],
        ),
        (
            "completedIndexes out of range",
            json!({"completedIndexes": "0,7"}),
            vec![
                "status.completedIndexes: Invalid value: \"0,7\": error parsing completedIndexes: too large index: \"7\"",
            ],
        ),
        (
            "failedIndexes need backoffLimitPerIndex",
            json!({"failedIndexes": "1"}),
            vec![
                "status.failedIndexes: Invalid value: \"1\": cannot set non-null failedIndexes when backoffLimitPerIndex is null",
            ],
        ),
        (
            "Complete with active pods, without completionTime nor SuccessCriteriaMet",
            json!({"conditions": [t("Complete")]}),
            vec![
                "status.completionTime: Required value: completionTime is required for Complete jobs",
                "status.conditions: Invalid value: cannot set Complete=True condition without the SuccessCriteriaMet=true condition",
                "status.active: Invalid value: 2: active>0 is invalid for finished job",
            ],
        ),
        (
            "Failed without FailureTarget and with uncounted pods",
            json!({"active": 0, "conditions": [t("Failed")], "uncountedTerminatedPods": {"failed": ["u1"]}}),
            vec![
                "status.conditions: Invalid value: cannot set Failed=True condition without the FailureTarget=true condition",
                "status.uncountedTerminatedPods: Invalid value: {\"failed\":[\"u1\"]}: uncountedTerminatedPods needs to be empty for finished job",
            ],
        ),
        (
            "completionTime without Complete",
            json!({"completionTime": "2024-01-02T00:00:00Z"}),
            vec![
                "status.completionTime: Invalid value: \"2024-01-02T00:00:00Z\": cannot set completionTime when there is no Complete=True condition",
            ],
        ),
        (
            "uncounted uids unique and non-empty",
            json!({"uncountedTerminatedPods": {"succeeded": ["a", ""], "failed": ["a"]}}),
            vec![
                "status.uncountedTerminatedPods.succeeded[1]: Invalid value: \"\": must not be empty",
                "status.uncountedTerminatedPods.failed[0]: Duplicate value: \"a\"",
            ],
        ),
        (
            "startTime cannot be removed from an unsuspended job",
            json!({"startTime": null}),
            vec!["status.startTime: Required value: startTime cannot be removed for unsuspended job"],
        ),
    ];
    for (name, patch, want) in cases {
        let new = with(old.clone(), json!({"status": patch}));
        let err =
            update(&jobs(), Operation::UpdateStatus, &old, new).err().unwrap_or_else(|| panic!("{name}: accepted"));
        assert_eq!(causes(&err), want, "{name}");
    }
    // The upstream controller's finishing sequence is accepted.
    let done = with(
        old.clone(),
        json!({"status": {"active": 0, "ready": 0, "succeeded": 4, "completedIndexes": "0-3",
        "completionTime": "2024-01-01T00:01:00Z", "conditions": [t("SuccessCriteriaMet"), t("Complete")]}}),
    );
    let done = update(&jobs(), Operation::UpdateStatus, &old, done).expect("valid completion");
    // Terminal conditions cannot be removed.
    let back = with(done.clone(), json!({"status": {"conditions": [], "completionTime": null}}));
    let err = update(&jobs(), Operation::UpdateStatus, &done, back).unwrap_err();
    assert_eq!(
        causes(&err),
        vec![
            "status.conditions: Invalid value: cannot disable the terminal Complete=True condition",
            "status.conditions: Invalid value: cannot disable the SuccessCriteriaMet=True condition"
        ]
    );
}

#[test]
fn index_intervals() {
    assert_eq!(job::validate_indexes_format("", 3), Ok(0));
    assert_eq!(job::validate_indexes_format("0,2-4,7", 8), Ok(5));
    assert_eq!(job::validate_indexes_format("1-1", 3), Err("non-increasing order, previous: 1, current: 1".into()));
    assert_eq!(job::validate_indexes_format("a", 3), Err("cannot convert string to integer for index: \"a\"".into()));
    assert_eq!(job::validate_indexes_format("1-2-3", 9), Err("the fragment \"1-2-3\" violates the requirement that an index interval can have at most two parts separated by '-'".into()));
    assert_eq!(
        job::failed_indexes_overlap("0-2,5", "3,5", 9),
        Some("failedIndexes and completedIndexes overlap at index: 5".into())
    );
    assert_eq!(job::failed_indexes_overlap("0-2", "3-4", 9), None);
}

fn pods() -> ResourceInfo {
    info("", "pods")
}

fn base_pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

#[test]
fn pod_create_defaults_admission_and_status() {
    let (pod, _) = create(&pods(), base_pod()).unwrap();
    let s = &pod["spec"];
    assert_eq!(s["restartPolicy"], "Always");
    assert_eq!(s["enableServiceLinks"], true);
    assert_eq!(s["serviceAccountName"], "default");
    assert_eq!(s["serviceAccount"], "default");
    assert_eq!(s["priority"], 0);
    assert_eq!(s["preemptionPolicy"], "PreemptLowerPriority");
    assert_eq!(
        s["tolerations"],
        json!([
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}])
    );
    assert_eq!(pod["status"], json!({"phase": "Pending", "qosClass": "BestEffort"}));
}

#[test]
fn pod_qos_classes() {
    let res =
        |r: Value| with(base_pod(), json!({"spec": {"containers": [{"name": "c", "image": "i", "resources": r}]}}));
    let cases = [
        ("no resources", json!({}), "BestEffort"),
        ("requests only", json!({"requests": {"cpu": "100m"}}), "Burstable"),
        ("limits only default requests", json!({"limits": {"cpu": "1", "memory": "1Gi"}}), "Guaranteed"),
        (
            "equal in different units",
            json!({"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1024Mi"}}),
            "Guaranteed",
        ),
        (
            "limit above request",
            json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}),
            "Burstable",
        ),
    ];
    for (name, r, want) in cases {
        let (pod, _) = create(&pods(), res(r)).unwrap();
        assert_eq!(pod["status"]["qosClass"], want, "{name}");
    }
}

#[test]
fn pod_update_may_only_change_allowed_fields() {
    let (old, _) = create(&pods(), base_pod()).unwrap();
    let image = with(
        old.clone(),
        json!({"spec": {"containers": [{"name": "c", "image": "busybox:2", "imagePullPolicy": "Always",
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}}]}}),
    );
    update(&pods(), Operation::Update, &old, image).expect("image updates are allowed");
    let err = update(&pods(), Operation::Update, &old, with(old.clone(), json!({"spec": {"restartPolicy": "Never"}})))
        .unwrap_err();
    let c = causes(&err);
    assert_eq!(c.len(), 1);
    assert!(
        c[0].starts_with(&format!(
            "spec: Forbidden: pod updates may not change fields other than {}\n",
            pod::POD_UPDATABLE_FIELDS
        )),
        "{}",
        c[0]
    );
    assert!(c[0].contains("restartPolicy"));
    let err =
        update(&pods(), Operation::Update, &old, with(old.clone(), json!({"spec": {"activeDeadlineSeconds": 10}})))
            .map(|_| ());
    assert!(err.is_ok(), "setting activeDeadlineSeconds is allowed");
    // Tolerations may be added, existing ones only get new tolerationSeconds.
    let added = with(
        old.clone(),
        json!({"spec": {"tolerations": [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "extra", "operator": "Exists"}]}}),
    );
    update(&pods(), Operation::Update, &old, added).expect("adding a toleration");
    let removed = with(old.clone(), json!({"spec": {"tolerations": []}}));
    let err = update(&pods(), Operation::Update, &old, removed).unwrap_err();
    assert_eq!(
        causes(&err),
        vec![
            "spec.tolerations[0]: Forbidden: existing toleration can not be modified except its tolerationSeconds",
            "spec.tolerations[1]: Forbidden: existing toleration can not be modified except its tolerationSeconds"
        ]
    );
    // A container that terminated under restartPolicy Never cannot come back.
    let mut never = with(old.clone(), json!({"spec": {"restartPolicy": "Never"}}));
    never["status"]["containerStatuses"] = json!([{"name": "c", "state": {"terminated": {"exitCode": 0}}}]);
    let back = with(never.clone(), json!({"status": {"containerStatuses": [{"name": "c", "state": {"running": {}}}]}}));
    let err = update(&pods(), Operation::UpdateStatus, &never, back).unwrap_err();
    assert_eq!(
        causes(&err),
        vec!["status.containerStatuses[0].state: Forbidden: may not be transitioned to non-terminated state"]
    );
    // Status writes keep the spec.
    let st = with(old.clone(), json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}));
    let got = update(&pods(), Operation::UpdateStatus, &old, st).unwrap();
    assert_eq!(got["status"]["phase"], "Running");
    assert!(got["spec"].get("nodeName").is_none());
}

#[test]
fn strict_field_validation() {
    let j = with(
        base_job(),
        json!({"spec": {"foo": 1, "template": {"spec": {"containers": [{"name": "abc", "image": "i", "bar": true}]}}}, "metadata": {"labels": {"any.key/x": "v"}}}),
    );
    let err = admit(&jobs(), Operation::Create, &mut j.clone(), None, FieldValidation::Strict).unwrap_err();
    assert_eq!(err.code, 400);
    assert_eq!(err.reason, "BadRequest");
    assert_eq!(
        err.message,
        "Job in version \"v1\" cannot be handled as a Job: strict decoding error: unknown field \"spec.foo\", unknown field \"spec.template.spec.containers[0].bar\""
    );
    let mut warned = j.clone();
    let w = admit(&jobs(), Operation::Create, &mut warned, None, FieldValidation::Warn).unwrap();
    assert_eq!(w, vec!["unknown field \"spec.foo\"", "unknown field \"spec.template.spec.containers[0].bar\""]);
    assert!(warned["spec"].get("foo").is_none(), "unknown fields are dropped");
    let mut ignored = j.clone();
    assert_eq!(
        admit(&jobs(), Operation::Create, &mut ignored, None, FieldValidation::Ignore).unwrap(),
        Vec::<String>::new()
    );
    // Wrong types are a 400 whatever the field validation.
    let mut bad = with(base_job(), json!({"spec": {"parallelism": "two"}}));
    let err = admit(&jobs(), Operation::Create, &mut bad, None, FieldValidation::Ignore).unwrap_err();
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        "Job in version \"v1\" cannot be handled as a Job: spec.parallelism: invalid type: string \"two\", expected i32"
    );
    // Numbers that do not fit the field's Go type are a 400 too, never a panic or a wrap-around.
    for huge in [json!(1e20), json!(i64::MAX), json!(2147483648u64), json!(1.5)] {
        let mut bad = with(base_job(), json!({"spec": {"completions": huge}}));
        let err = admit(&jobs(), Operation::Create, &mut bad, None, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code, 400, "{huge}");
    }
    let mut kindless = with(base_job(), json!({"spec": {"parallelism": "two"}}));
    kindless.as_object_mut().unwrap().remove("kind");
    let err = admit(&jobs(), Operation::Create, &mut kindless, None, FieldValidation::Strict).unwrap_err();
    assert_eq!(
        err.message,
        "the object provided is unrecognized (must be of type Job): spec.parallelism: invalid type: string \"two\", expected i32 ({\"apiVersion\":\"batch/v1\",\"meta ...)"
    );
    let err = admit(&jobs(), Operation::Create, &mut json!([1]), None, FieldValidation::Strict).unwrap_err();
    assert_eq!(err.code, 400);
    let mut nulls = with(base_job(), json!({"spec": {"completions": null, "template": {"metadata": null}}}));
    admit(&jobs(), Operation::Create, &mut nulls, None, FieldValidation::Strict).expect("nulls are absent fields");
    // ConfigMap data keys are free-form.
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}, "data": {"whatever": "x"}});
    assert_eq!(
        admit(&info("", "configmaps"), Operation::Create, &mut cm, None, FieldValidation::Strict).unwrap(),
        Vec::<String>::new()
    );
}

fn cronjobs() -> ResourceInfo {
    info("batch", "cronjobs")
}

fn base_cronjob() -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj", "namespace": "default"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}}}}}})
}

#[test]
fn cronjob_defaults_and_validation() {
    let (cj, _) = create(&cronjobs(), base_cronjob()).unwrap();
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["suspend"], false);
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    assert_eq!(cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    for ok in ["@hourly", "@every 1h30m", "0 0 * * MON-FRI", "0 12 1 jan,jul ?", "5-10/2 * * * *"] {
        create(&cronjobs(), with(base_cronjob(), json!({"spec": {"schedule": ok}})))
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "six fields",
            json!({"spec": {"schedule": "* * * * * *"}}),
            vec!["spec.schedule: Invalid value: \"* * * * * *\": expected exactly 5 fields, found 6: [* * * * * *]"],
        ),
        (
            "minute out of range",
            json!({"spec": {"schedule": "61 * * * *"}}),
            vec!["spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"],
        ),
        (
            "not a number",
            json!({"spec": {"schedule": "x * * * *"}}),
            vec![
                "spec.schedule: Invalid value: \"x * * * *\": failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ],
        ),
        (
            "unknown descriptor",
            json!({"spec": {"schedule": "@sometimes"}}),
            vec!["spec.schedule: Invalid value: \"@sometimes\": unrecognized descriptor: @sometimes"],
        ),
        (
            "TZ in schedule",
            json!({"spec": {"schedule": "TZ=UTC 0 * * * *"}}),
            vec![
                "spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ],
        ),
        (
            "empty timeZone",
            json!({"spec": {"timeZone": ""}}),
            vec!["spec.timeZone: Invalid value: \"\": timeZone must be nil or non-empty string"],
        ),
        (
            "bad timeZone",
            json!({"spec": {"timeZone": " Europe/Rome"}}),
            vec!["spec.timeZone: Invalid value: \" Europe/Rome\": unknown time zone  Europe/Rome"],
        ),
        (
            "concurrency policy",
            json!({"spec": {"concurrencyPolicy": "Sometimes"}}),
            vec![
                "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
            ],
        ),
        (
            "job template restartPolicy under spec.jobTemplate.spec",
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Always"}}}}}}),
            vec![
                "spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
            ],
        ),
        (
            "job template selector is generated",
            json!({"spec": {"jobTemplate": {"spec": {"selector": {"matchLabels": {"a": "b"}}}}}}),
            vec![
                "spec.jobTemplate.spec.selector: Invalid value: {\"matchLabels\":{\"a\":\"b\"}}: `selector` will be auto-generated",
            ],
        ),
        (
            "name longer than 52",
            json!({"metadata": {"name": "c".repeat(53)}}),
            vec![Box::leak(
                format!("metadata.name: Invalid value: \"{}\": must be no more than 52 characters", "c".repeat(53))
                    .into_boxed_str(),
            )],
        ),
        (
            "negative history limits",
            json!({"spec": {"successfulJobsHistoryLimit": -1, "startingDeadlineSeconds": -1}}),
            vec![
                "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
            ],
        ),
    ];
    for (name, patch, want) in cases {
        let err = create(&cronjobs(), with(base_cronjob(), patch)).err().unwrap_or_else(|| panic!("{name}: accepted"));
        assert_eq!(causes(&err), want, "{name}");
    }
    create(&cronjobs(), with(base_cronjob(), json!({"spec": {"timeZone": "Europe/Rome"}}))).expect("a real zone");
    let err =
        create(&cronjobs(), with(base_cronjob(), json!({"spec": {"timeZone": "Europe/InvalidRome"}}))).unwrap_err();
    assert_eq!(
        causes(&err),
        vec!["spec.timeZone: Invalid value: \"Europe/InvalidRome\": unknown time zone Europe/InvalidRome"]
    );
    // Go's LoadLocation is case-sensitive; a name only case-insensitively "Local" fails both ways.
    let err = create(&cronjobs(), with(base_cronjob(), json!({"spec": {"timeZone": "europe/rome"}}))).unwrap_err();
    assert_eq!(causes(&err), vec!["spec.timeZone: Invalid value: \"europe/rome\": unknown time zone europe/rome"]);
    let err = create(&cronjobs(), with(base_cronjob(), json!({"spec": {"schedule": "* * * * 7"}}))).unwrap_err();
    assert_eq!(
        causes(&err),
        vec!["spec.schedule: Invalid value: \"* * * * 7\": end of range (7) above maximum (6): 7"]
    );
    let err = create(&cronjobs(), with(base_cronjob(), json!({"spec": {"timeZone": "Local"}}))).unwrap_err();
    assert_eq!(
        causes(&err),
        vec![
            "spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
        ]
    );
}

#[test]
fn namespaces_nodes_leases_events_and_generic_kinds() {
    let (ns, _) = create(&info("", "namespaces"), json!({"metadata": {"name": "team-a"}})).unwrap();
    assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "team-a");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
    let (ns, _) =
        create(&info("", "namespaces"), json!({"metadata": {"name": "b"}, "spec": {"finalizers": ["example.com/x"]}}))
            .unwrap();
    assert_eq!(ns["spec"]["finalizers"], json!(["example.com/x", "kubernetes"]));
    let err = create(&info("", "namespaces"), json!({"metadata": {"name": "b"}, "spec": {"finalizers": ["mine"]}}))
        .unwrap_err();
    assert_eq!(
        causes(&err),
        vec![
            "spec.finalizers[0]: Invalid value: \"mine\": name is neither a standard finalizer name nor is it fully qualified"
        ]
    );
    let err = create(&info("", "namespaces"), json!({"metadata": {"name": "a.b"}})).unwrap_err();
    assert_eq!(causes(&err), vec!["metadata.name: Invalid value: \"a.b\": must not contain dots"]);
    create(&info("", "nodes"), json!({"metadata": {"name": "node-1.example"}})).unwrap();
    let (node, _) = create(
        &info("", "nodes"),
        json!({"metadata": {"name": "n"}, "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}),
    )
    .unwrap();
    assert_eq!(node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250, "a node registers with its status");
    let err = create(&info("", "nodes"), json!({"metadata": {"name": "n"}, "spec": {"taints": [
        {"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"}, {"key": "j", "effect": "Sometimes"}, {"key": "i"}]}})).unwrap_err();
    assert_eq!(
        causes(&err),
        vec![
            "spec.taints[1]: Duplicate value: map[string]string{\"effect\":\"NoSchedule\", \"key\":\"k\"}: taints must be unique by key and effect pair",
            "spec.taints[2].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
            "spec.taints[3].effect: Required value"
        ]
    );
    let err = create(
        &info("coordination.k8s.io", "leases"),
        json!({"metadata": {"name": "l", "namespace": "default"}, "spec": {"leaseDurationSeconds": 0}}),
    )
    .unwrap_err();
    assert_eq!(causes(&err), vec!["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]);
    create(&info("rbac.authorization.k8s.io", "clusterroles"), json!({"metadata": {"name": "system:controller:job"}}))
        .unwrap();
    let err = create(
        &info("", "configmaps"),
        json!({"metadata": {"namespace": "default", "finalizers": ["orphan", "foregroundDeletion"],
        "ownerReferences": [{"apiVersion": "", "kind": "", "name": "", "uid": ""}]}}),
    )
    .unwrap_err();
    assert_eq!(
        causes(&err),
        vec![
            "metadata.name: Required value: name or generateName is required",
            "metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty",
            "metadata.ownerReferences.kind: Invalid value: \"\": must not be empty",
            "metadata.ownerReferences.name: Invalid value: \"\": must not be empty",
            "metadata.ownerReferences.uid: Invalid value: \"\": must not be empty",
            "metadata.finalizers: Invalid value: []string{\"orphan\", \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set"
        ]
    );
    let big = "x".repeat(300 * 1024);
    let err = create(
        &info("", "configmaps"),
        json!({"metadata": {"name": "c", "namespace": "default", "annotations": {"a": big}}}),
    )
    .unwrap_err();
    assert_eq!(causes(&err), vec!["metadata.annotations: Too long: must have at most 262144 bytes"]);
}

/// The Job (and CronJob) manifests of the seed documents: every fenced block, from its first
/// `apiVersion:` line, split on `---`.
fn seed_manifests() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/seeds");
    let mut out = vec![];
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(path).unwrap();
        for block in text.split("```").skip(1).step_by(2) {
            let Some(start) = block.find("apiVersion:") else { continue };
            for doc in block[start..].split("\n---") {
                if !(doc.contains("\nkind: Job") || doc.contains("\nkind: CronJob")) {
                    continue;
                }
                let v: Value = serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
                out.push(v);
            }
        }
    }
    out
}

/// Every Job manifest in the seed documents passes defaulting and validation.
#[test]
fn seed_document_jobs_are_valid() {
    let manifests = seed_manifests();
    let (mut jobs_n, mut cron_n) = (0, 0);
    for mut v in manifests {
        v["metadata"]["namespace"] = json!("default");
        let res = if v["kind"] == "Job" {
            jobs_n += 1;
            admit(&jobs(), Operation::Create, &mut v, None, FieldValidation::Strict)
        } else {
            cron_n += 1;
            v["apiVersion"] = json!("batch/v1"); // the seed uses the retired batch/v1beta1
            admit(&cronjobs(), Operation::Create, &mut v, None, FieldValidation::Strict)
        };
        assert!(res.is_ok(), "{v:#}\n{res:?}");
        if v["kind"] == "Job" {
            assert!(v["spec"]["backoffLimit"].as_i64().is_some());
            assert_eq!(
                v["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
                v["metadata"]["uid"]
            );
        }
    }
    assert_eq!((jobs_n, cron_n), (7, 1));
}

mod garbage {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
            "[a-zA-Z0-9:/._ -]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const PLACES: &[&str] = &[
        "/spec",
        "/spec/parallelism",
        "/spec/template",
        "/spec/template/spec",
        "/spec/template/spec/containers",
        "/spec/podFailurePolicy",
        "/spec/successPolicy",
        "/metadata",
        "/metadata/labels",
        "/status",
        "/spec/selector",
        "/spec/template/spec/containers/0",
        "/spec/template/spec/volumes",
    ];

    fn put(doc: &mut Value, ptr: &str, v: Value) {
        let (parent, key) = ptr.rsplit_once('/').unwrap();
        if let Some(p) = doc.pointer_mut(parent) {
            match p {
                Value::Object(m) => {
                    m.insert(key.to_string(), v);
                }
                Value::Array(a) => {
                    if let Some(x) = key.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                        *x = v;
                    }
                }
                _ => {}
            }
        }
    }

    /// A pod spec shaped like the ones `validate_pod_update` munges: the munged fields, with
    /// any values, among arbitrary others.
    fn any_pod_spec() -> impl Strategy<Value = Value> {
        let container = prop::collection::btree_map(
            prop_oneof![Just("image".to_string()), Just("name".to_string()), "[a-z]{1,6}"],
            any_json(),
            0..4,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect()));
        let field = prop_oneof![
            Just("containers".to_string()),
            Just("initContainers".to_string()),
            Just("activeDeadlineSeconds".to_string()),
            Just("tolerations".to_string()),
            Just("terminationGracePeriodSeconds".to_string()),
            Just("schedulingGates".to_string()),
            "[a-z]{1,8}",
        ];
        let value = prop_oneof![
            prop::collection::vec(container, 0..3).prop_map(Value::Array),
            (-3i64..3).prop_map(Value::from),
            any_json(),
        ];
        prop::collection::btree_map(field, value, 0..7).prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, .. ProptestConfig::default() })]
        /// `validate_pod_update` skips the munge and comparison when the spec is unchanged: for
        /// any spec they would find nothing.
        #[test]
        fn an_unchanged_pod_spec_munges_to_itself_without_errors(spec in prop_oneof![any_pod_spec(), any_json()]) {
            let errs = crate::validate::pod::spec_update_errors(&spec, &spec);
            prop_assert!(errs.is_empty(), "{spec}: {errs:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]
        #[test]
        fn garbage_never_panics(place in 0..PLACES.len(), v in any_json(), op in 0..3usize, fv in 0..3usize) {
            let mut doc = base_job();
            put(&mut doc, PLACES[place], v);
            let old = created_job(json!({}));
            let op = [Operation::Create, Operation::Update, Operation::UpdateStatus][op];
            let fv = [FieldValidation::Ignore, FieldValidation::Warn, FieldValidation::Strict][fv];
            for (i, kind) in [("batch", "jobs"), ("batch", "cronjobs"), ("", "pods"), ("", "namespaces")] {
                let mut d = doc.clone();
                let r = admit(&info(i, kind), op, &mut d, Some(&old), fv);
                if let Err(e) = r { prop_assert!(e.code == 400 || e.code == 422, "{e}"); }
            }
            let mut whole = doc.pointer(PLACES[place]).cloned().unwrap_or(Value::Null);
            let _ = admit(&jobs(), Operation::Create, &mut whole, None, fv);
        }

        /// The per-kind code behind the type check must be total on its own too: feed it garbage
        /// of every JSON type directly, as both the new and the old object.
        #[test]
        fn per_kind_rules_are_total(place in 0..PLACES.len(), v in any_json(), w in any_json(), op in 0..3usize) {
            let op = [Operation::Create, Operation::Update, Operation::UpdateStatus][op];
            let mut doc = base_job();
            put(&mut doc, PLACES[place], v.clone());
            let mut old = created_job(json!({}));
            put(&mut old, PLACES[place], w.clone());
            let run = |f: &dyn Fn(&mut Value, Option<&Value>)| {
                for (d, o) in [(&doc, &old), (&v, &w), (&doc, &w), (&v, &old)] {
                    let mut d1 = d.clone();
                    f(&mut d1, Some(o));
                    let mut d2 = d.clone();
                    f(&mut d2, None);
                }
            };
            run(&|d, o| { let _ = job::admit(op, d, o); });
            run(&|d, o| { let _ = cronjob::admit(op, d, o); });
            run(&|d, o| { let _ = pod::admit(op, d, o); });
            run(&|d, o| { let _ = other::admit_namespace(op, d, o); });
            run(&|d, o| { let _ = other::admit_node(op, d, o); });
            run(&|d, o| { let _ = other::admit_lease(op, d, o); });
            run(&|d, o| { let _ = other::admit_event(&info("", "events"), op, d, o); });
            run(&|d, o| { let _ = other::admit_generic(&info("", "configmaps"), op, d, o); });
        }
    }
}

#[test]
fn generate_name_makes_a_name_before_validation() {
    let mut j = base_job();
    j["metadata"].as_object_mut().unwrap().remove("name");
    j["metadata"]["generateName"] = json!("batch-");
    let (job, _) = create(&jobs(), j).unwrap();
    let name = job["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("batch-") && name.len() == 11, "{name}");
    assert!(name[6..].chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{name}");
    assert_eq!(job["spec"]["template"]["metadata"]["labels"]["job-name"], name);
    let mut bad = base_pod();
    bad["metadata"].as_object_mut().unwrap().remove("name");
    bad["metadata"]["generateName"] = json!("Bad_");
    let err = create(&pods(), bad).unwrap_err();
    assert!(
        causes(&err)[0].starts_with("metadata.generateName: Invalid value: \"Bad_\": a lowercase RFC 1123 subdomain")
    );
}

#[test]
fn no_new_finalizers_once_deleting() {
    let (mut old, _) = create(
        &info("", "configmaps"),
        json!({"metadata": {"name": "c", "namespace": "default", "finalizers": ["a.io/x"]}}),
    )
    .unwrap();
    old["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    let new = with(old.clone(), json!({"metadata": {"finalizers": ["a.io/x", "b.io/y"]}}));
    let err = update(&info("", "configmaps"), Operation::Update, &old, new).unwrap_err();
    assert_eq!(
        causes(&err),
        vec![
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"b.io/y\"}"
        ]
    );
    let removed = with(old.clone(), json!({"metadata": {"finalizers": []}}));
    update(&info("", "configmaps"), Operation::Update, &old, removed).expect("removing finalizers is fine");
}

#[test]
fn pod_admission_tolerations_respect_existing_ones() {
    let p = with(
        base_pod(),
        json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]}}),
    );
    let (pod, _) = create(&pods(), p).unwrap();
    assert_eq!(
        pod["spec"]["tolerations"],
        json!([
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}])
    );
    let all = with(base_pod(), json!({"spec": {"tolerations": [{"operator": "Exists"}]}}));
    let (pod, _) = create(&pods(), all).unwrap();
    assert_eq!(pod["spec"]["tolerations"], json!([{"operator": "Exists"}]));
    let err = create(&pods(), with(base_pod(), json!({"spec": {"tolerations": [{"key": "k", "value": "v", "operator": "Exists", "tolerationSeconds": 1}]}}))).unwrap_err();
    assert_eq!(
        causes(&err),
        vec![
            "spec.tolerations[0].effect: Invalid value: \"\": effect must be 'NoExecute' when `tolerationSeconds` is set",
            "spec.tolerations[0].operator: Invalid value: {\"key\":\"k\",\"operator\":\"Exists\",\"tolerationSeconds\":1,\"value\":\"v\"}: value must be empty when `operator` is 'Exists'"
        ]
    );
}

#[test]
fn namespace_updates_keep_finalizers_and_status() {
    let (old, _) = create(&info("", "namespaces"), json!({"metadata": {"name": "ns"}})).unwrap();
    let new = with(
        old.clone(),
        json!({"spec": {"finalizers": []}, "status": {"phase": "Terminating"}, "metadata": {"labels": {"a": "b"}}}),
    );
    let got = update(&info("", "namespaces"), Operation::Update, &old, new).unwrap();
    assert_eq!(got["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(got["status"]["phase"], "Active");
    assert_eq!(got["metadata"]["labels"], json!({"a": "b", "kubernetes.io/metadata.name": "ns"}));
}

#[test]
fn name_and_key_rules() {
    let cases: Vec<(&str, Vec<String>, Vec<&str>)> = vec![
        ("a valid qualified name with a prefix", meta::is_qualified_name("example.com/MyName"), vec![]),
        ("an empty prefix", meta::is_qualified_name("/a"), vec!["prefix part must be non-empty"]),
        (
            "an upper-case prefix",
            meta::is_qualified_name("Example.com/a"),
            vec![
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ],
        ),
        (
            "an empty name part",
            meta::is_qualified_name("a/"),
            vec![
                "name part must be non-empty",
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            ],
        ),
        (
            "a 64-character name part",
            meta::is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters"],
        ),
        (
            "a 64-character label value",
            meta::is_valid_label_value(&"a".repeat(64)),
            vec!["must be no more than 63 characters"],
        ),
        ("an empty label value is fine", meta::is_valid_label_value(""), vec![]),
        ("a DNS label with dots", meta::is_dns1123_label("a.b"), vec!["must not contain dots"]),
        (
            "a 254-character subdomain",
            meta::is_dns1123_subdomain(&"a".repeat(254)),
            vec!["must be no more than 253 characters"],
        ),
        ("generateName may end with a dash", meta::name_is_dns_subdomain("job-", true), vec![]),
        (
            "a name may not",
            meta::name_is_dns_subdomain("job-", false),
            vec![
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ],
        ),
        ("a port name needs a letter", pod::is_valid_port_name("80"), vec!["must contain at least one letter (a-z)"]),
        (
            "a port name without double hyphens",
            pod::is_valid_port_name("a--b"),
            vec!["must not contain consecutive hyphens"],
        ),
    ];
    for (name, got, want) in cases {
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn label_selector_rules() {
    let sel = json!({"matchExpressions": [
        {"key": "a", "operator": "In", "values": []},
        {"key": "b", "operator": "Exists", "values": ["x"]},
        {"key": "c", "operator": "Near"},
        {"key": "d", "operator": "NotIn", "values": ["-x-"]}]});
    let errs: Vec<String> =
        meta::validate_label_selector(&sel, "spec.selector", false).iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errs,
        vec![
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            "spec.selector.matchExpressions[2].operator: Invalid value: \"Near\": not a valid selector operator",
            "spec.selector.matchExpressions[3].values[0]: Invalid value: \"-x-\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ]
    );
    let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    type Labels = Vec<(String, String)>;
    let cases: Vec<(&str, Option<Value>, Labels, Option<bool>)> = vec![
        ("a missing selector matches nothing", None, labels(&[("a", "b")]), Some(false)),
        ("an empty selector matches everything", Some(json!({})), labels(&[]), Some(true)),
        ("matchLabels", Some(json!({"matchLabels": {"a": "b"}})), labels(&[("a", "b"), ("c", "d")]), Some(true)),
        ("matchLabels mismatch", Some(json!({"matchLabels": {"a": "b"}})), labels(&[("a", "c")]), Some(false)),
        (
            "In",
            Some(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "b"]}]})),
            labels(&[("a", "b")]),
            Some(true),
        ),
        (
            "NotIn with the key absent",
            Some(json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["b"]}]})),
            labels(&[]),
            Some(true),
        ),
        (
            "DoesNotExist",
            Some(json!({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]})),
            labels(&[("a", "b")]),
            Some(false),
        ),
        (
            "an invalid selector cannot be evaluated",
            Some(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})),
            labels(&[]),
            None,
        ),
    ];
    for (name, sel, l, want) in cases {
        assert_eq!(meta::selector_matches(sel.as_ref(), &l), want, "{name}");
    }
}

#[test]
fn field_validation_parameter() {
    assert_eq!(FieldValidation::parse("", "CreateOptions").unwrap(), FieldValidation::Warn);
    assert_eq!(FieldValidation::parse("Strict", "PatchOptions").unwrap(), FieldValidation::Strict);
    assert_eq!(FieldValidation::parse("Ignore", "UpdateOptions").unwrap(), FieldValidation::Ignore);
    let err = FieldValidation::parse("strict", "CreateOptions").unwrap_err();
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"strict\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
    );
}

#[test]
fn configmap_and_secret_keys() {
    let cm = json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"ok.key": "v", "bad key": "v", "..x": "v", "dup": "v"}, "binaryData": {"dup": "AA=="}});
    let err = create(&info("", "configmaps"), cm).unwrap_err();
    assert_eq!(
        causes(&err),
        vec![
            "data[..x]: Invalid value: \"..x\": must not start with '..'",
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            "data[dup]: Invalid value: \"dup\": duplicate of key present in binaryData"
        ]
    );
    // stringData is merged into data before validation, so upstream names data[KEY].
    let secret = json!({"metadata": {"name": "s", "namespace": "default"}, "stringData": {"a/b": "x"}});
    let err = create(&info("", "secrets"), secret).unwrap_err();
    assert_eq!(causes(&err).len(), 1);
    assert!(causes(&err)[0].starts_with("data[a/b]: Invalid value: \"a/b\": a valid config key"), "{err}");
}

#[test]
fn secret_string_data_is_merged_into_data_and_never_kept() {
    let secrets = info("", "secrets");
    let s = json!({"metadata": {"name": "s", "namespace": "default"},
        "data": {"keep": "YQ==", "both": "b2xk"}, "stringData": {"both": "new", "plain": "hello"}});
    let (obj, _) = create(&secrets, s).unwrap();
    assert!(obj.get("stringData").is_none(), "{obj}");
    assert_eq!(obj["data"], json!({"keep": "YQ==", "both": "bmV3", "plain": "aGVsbG8="}), "stringData wins");
    assert_eq!(obj["type"], "Opaque");
    // An update (or a patched object) with stringData merges the same way.
    let new = json!({"metadata": {"name": "s", "namespace": "default"}, "type": "Opaque", "stringData": {"x": ""}});
    let updated = update(&secrets, Operation::Update, &obj, new).unwrap();
    assert_eq!(updated["data"], json!({"x": ""}));
    assert!(updated.get("stringData").is_none());
    // Empty stringData leaves data as it is.
    let (obj2, _) =
        create(&secrets, json!({"metadata": {"name": "t", "namespace": "default"}, "stringData": {}})).unwrap();
    assert!(obj2.get("data").is_none() && obj2.get("stringData").is_none(), "{obj2}");
}

#[test]
fn secret_validation_as_upstream() {
    let secrets = info("", "secrets");
    let base =
        |ty: &str, data: Value| json!({"metadata": {"name": "s", "namespace": "default"}, "type": ty, "data": data});
    let err = |v: Value| causes(&create(&secrets, v).unwrap_err());
    assert_eq!(
        err(base("kubernetes.io/tls", json!({}))),
        ["data[tls.crt]: Required value", "data[tls.key]: Required value"]
    );
    assert_eq!(
        err(base("kubernetes.io/basic-auth", json!({}))),
        ["data[%s][username]: Required value", "data[%s][password]: Required value"]
    );
    assert_eq!(err(base("kubernetes.io/ssh-auth", json!({}))), ["data[%s][ssh-privatekey]: Required value"]);
    assert_eq!(
        err(base("kubernetes.io/service-account-token", json!({}))),
        ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
    );
    assert_eq!(err(base("kubernetes.io/dockerconfigjson", json!({}))), ["data[.dockerconfigjson]: Required value"]);
    let bad_json = err(base("kubernetes.io/dockerconfigjson", json!({".dockerconfigjson": "bm90IGpzb24="})));
    assert!(
        bad_json[0].starts_with("data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": "),
        "{bad_json:?}"
    );
    create(&secrets, base("kubernetes.io/tls", json!({"tls.crt": "", "tls.key": ""}))).unwrap();
    create(&secrets, base("example.com/custom", json!({}))).unwrap();
    // 1 MiB of decoded data is the limit (base64 is 4/3 larger).
    let mib = "A".repeat(1024 * 1024 / 3 * 4 + 4);
    assert_eq!(err(base("Opaque", json!({"big": mib}))), ["data: Too long: must have at most 1048576 bytes"]);
    let (old, _) = create(&secrets, base("Opaque", json!({"a": "YQ=="}))).unwrap();
    let mut changed = old.clone();
    changed["type"] = json!("kubernetes.io/tls");
    changed["data"] = json!({"tls.crt": "", "tls.key": ""});
    let e = update(&secrets, Operation::Update, &old, changed).unwrap_err();
    assert_eq!(causes(&e), ["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]);
    let mut frozen = old.clone();
    frozen["immutable"] = json!(true);
    let frozen = update(&secrets, Operation::Update, &old, frozen).unwrap();
    let mut thaw = frozen.clone();
    thaw["immutable"] = json!(false);
    thaw["data"] = json!({"a": "Yg=="});
    let e = update(&secrets, Operation::Update, &frozen, thaw).unwrap_err();
    assert_eq!(
        causes(&e),
        [
            "immutable: Forbidden: field is immutable when `immutable` is set",
            "data: Forbidden: field is immutable when `immutable` is set"
        ]
    );
}

#[test]
fn role_bindings_validate_and_freeze_the_role_ref() {
    let rb = info("rbac.authorization.k8s.io", "rolebindings");
    let crb = info("rbac.authorization.k8s.io", "clusterrolebindings");
    let binding = |role_ref: Value| {
        json!({"metadata": {"name": "b", "namespace": "default"}, "roleRef": role_ref,
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "sa"}]})
    };
    // Defaults: roleRef.apiGroup, and a User subject's apiGroup (not a ServiceAccount's).
    let (ok, _) = create(&rb, binding(json!({"kind": "Role", "name": "r"}))).unwrap();
    assert_eq!(ok["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(ok["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert!(ok["subjects"][1].get("apiGroup").is_none());
    let e = create(&rb, binding(json!({"kind": "Bogus", "name": "r", "apiGroup": "example.com"}))).unwrap_err();
    assert_eq!(
        causes(&e),
        [
            "roleRef.apiGroup: Unsupported value: \"example.com\": supported values: \"rbac.authorization.k8s.io\"",
            "roleRef.kind: Unsupported value: \"Bogus\": supported values: \"Role\", \"ClusterRole\""
        ]
    );
    assert_eq!(
        causes(&create(&rb, binding(json!({"kind": "Role", "name": ""}))).unwrap_err()),
        ["roleRef.name: Required value"]
    );
    // A ClusterRoleBinding can only reference a ClusterRole, and names its ServiceAccounts' namespace.
    let mut c = binding(json!({"kind": "Role", "name": "r"}));
    c["metadata"] = json!({"name": "c"});
    assert_eq!(
        causes(&create(&crb, c).unwrap_err()),
        [
            "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
            "subjects[1].namespace: Required value"
        ]
    );
    // roleRef is immutable.
    let mut changed = ok.clone();
    changed["roleRef"]["kind"] = json!("ClusterRole");
    changed["roleRef"]["name"] = json!("cluster-admin");
    let e = update(&rb, Operation::Update, &ok, changed).unwrap_err();
    assert_eq!(
        e.message,
        "RoleBinding.rbac.authorization.k8s.io \"b\" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"cluster-admin\"}: cannot change roleRef"
    );
    let mut relabelled = ok.clone();
    relabelled["metadata"]["labels"] = json!({"a": "b"});
    update(&rb, Operation::Update, &ok, relabelled).unwrap();
    let bad_subject = json!({"metadata": {"name": "b", "namespace": "default"}, "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "Robot", "name": "x"}, {"kind": "Group", "name": ""}]});
    assert_eq!(
        causes(&create(&rb, bad_subject).unwrap_err()),
        [
            "subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            "subjects[1].name: Required value"
        ]
    );
}

#[test]
fn policy_rules_validate_as_upstream() {
    let roles = info("rbac.authorization.k8s.io", "roles");
    let role = |rules: Value| json!({"metadata": {"name": "r", "namespace": "default"}, "rules": rules});
    let e = create(
        &roles,
        role(json!([{"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"]},
        {"verbs": ["get"], "nonResourceURLs": ["/x"], "resources": ["pods"]}])),
    )
    .unwrap_err();
    assert_eq!(
        causes(&e),
        [
            "rules[0].verbs: Required value: verbs must contain at least one value",
            "rules[1].apiGroups: Required value: resource rules must supply at least one api group",
            "rules[1].resources: Required value: resource rules must supply at least one resource",
            "rules[2].nonResourceURLs: Invalid value: []string{\"/x\"}: namespaced rules cannot apply to non-resource URLs",
            "rules[2].nonResourceURLs: Invalid value: []string{\"/x\"}: rules cannot apply to both regular resources and non-resource URLs"
        ]
    );
    let cr = info("rbac.authorization.k8s.io", "clusterroles");
    create(&cr, json!({"metadata": {"name": "c"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}))
        .unwrap();
}

/// The status writes upstream's Job controller makes, in order, are each accepted: this is the
/// contract the Job controller must follow (FailureTarget before Failed, SuccessCriteriaMet before
/// Complete, counters through uncountedTerminatedPods, nothing active/terminating once finished).
#[test]
fn job_controller_status_sequences_are_accepted() {
    let t = |ty: &str, reason: &str| {
        json!({"type": ty, "status": "True", "reason": reason, "message": "",
        "lastProbeTime": "2024-01-01T00:00:10Z", "lastTransitionTime": "2024-01-01T00:00:10Z"})
    };
    let success = [
        json!({"startTime": "2024-01-01T00:00:00Z", "active": 1, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}}),
        json!({"startTime": "2024-01-01T00:00:00Z", "active": 1, "ready": 1, "terminating": 0, "uncountedTerminatedPods": {}}),
        json!({"startTime": "2024-01-01T00:00:00Z", "active": 0, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {"succeeded": ["u1"]}}),
        json!({"startTime": "2024-01-01T00:00:00Z", "active": 0, "ready": 0, "terminating": 0, "succeeded": 1, "uncountedTerminatedPods": {},
            "conditions": [t("SuccessCriteriaMet", "CompletionsReached")]}),
        json!({"startTime": "2024-01-01T00:00:00Z", "active": 0, "ready": 0, "terminating": 0, "succeeded": 1, "uncountedTerminatedPods": {},
            "completionTime": "2024-01-01T00:00:10Z",
            "conditions": [t("SuccessCriteriaMet", "CompletionsReached"), t("Complete", "CompletionsReached")]}),
    ];
    let failure = [
        json!({"startTime": "2024-01-01T00:00:00Z", "active": 1, "ready": 1, "failed": 6, "terminating": 0}),
        json!({"startTime": "2024-01-01T00:00:00Z", "active": 0, "ready": 0, "failed": 6, "terminating": 1,
            "conditions": [t("FailureTarget", "BackoffLimitExceeded")]}),
        json!({"startTime": "2024-01-01T00:00:00Z", "active": 0, "ready": 0, "failed": 7, "terminating": 0,
            "conditions": [t("FailureTarget", "BackoffLimitExceeded"), t("Failed", "BackoffLimitExceeded")]}),
    ];
    for (name, steps) in [("success", &success[..]), ("failure", &failure[..])] {
        let mut cur = created_job(json!({}));
        for (i, st) in steps.iter().enumerate() {
            let mut next = cur.clone();
            next["status"] = st.clone();
            cur =
                update(&jobs(), Operation::UpdateStatus, &cur, next).unwrap_or_else(|e| panic!("{name} step {i}: {e}"));
        }
        assert!(job::is_finished(&cur), "{name}");
    }
    // Skipping the intermediate conditions is what upstream rejects.
    let cur = created_job(json!({}));
    let mut next = cur.clone();
    next["status"] =
        json!({"startTime": "2024-01-01T00:00:00Z", "failed": 1, "conditions": [t("Failed", "BackoffLimitExceeded")]});
    let err = update(&jobs(), Operation::UpdateStatus, &cur, next).unwrap_err();
    assert_eq!(
        causes(&err),
        vec![
            "status.conditions: Invalid value: cannot set Failed=True condition without the FailureTarget=true condition"
        ]
    );
    let mut next = cur.clone();
    next["status"] = json!({"startTime": "2024-01-01T00:00:00Z", "active": 0, "terminating": 2,
        "conditions": [t("FailureTarget", "DeadlineExceeded"), t("Failed", "DeadlineExceeded")]});
    let err = update(&jobs(), Operation::UpdateStatus, &cur, next).unwrap_err();
    assert_eq!(causes(&err), vec!["status.terminating: Invalid value: 2: terminating>0 is invalid for finished job"]);
}

fn recorder_event() -> Value {
    // What kube-runtime's Recorder posts to events.k8s.io/v1.
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "myjob.17a2b3c4d5e6f708", "namespace": "default"},
        "eventTime": "2024-01-01T00:00:00.000000Z", "action": "Create", "reason": "SuccessfulCreate", "note": "Created pod: myjob-abcde",
        "type": "Normal", "reportingController": "jobwright.dev/job-controller", "reportingInstance": "jobwright",
        "regarding": {"apiVersion": "batch/v1", "kind": "Job", "name": "myjob", "namespace": "default", "uid": "1a2b3c"}})
}

#[test]
fn events_as_upstream() {
    let new_events = info("events.k8s.io", "events");
    let (ev, _) = create(&new_events, recorder_event()).expect("the Recorder's event");
    let repeat = with(ev.clone(), json!({"series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:05.000000Z"}}));
    update(&new_events, Operation::Update, &ev, repeat).expect("a series update");
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "reporting fields and type",
            json!({"reportingController": null, "reportingInstance": "", "action": "", "type": "Info"}),
            vec![
                "reportingController: Required value",
                "reportingController: Invalid value: \"\": name part must be non-empty",
                "reportingController: Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "reportingInstance: Required value",
                "action: Required value",
                "type: Invalid value: \"\": has invalid value: Info",
            ],
        ),
        ("namespace of the regarding object", json!({"regarding": {"namespace": "other"}}), vec![]),
        ("eventTime is required on the new API", json!({"eventTime": null}), vec!["eventTime: Required value"]),
        (
            "a series counts from 2",
            json!({"series": {"count": 1, "lastObservedTime": "2024-01-01T00:00:05Z"}}),
            vec!["series.count: Invalid value: \"\": should be at least 2"],
        ),
        (
            "deprecated fields must be unset",
            json!({"deprecatedCount": 3}),
            vec!["deprecatedCount: Invalid value: \"\": needs to be unset"],
        ),
    ];
    for (name, patch, want) in cases {
        let res = create(&new_events, with(recorder_event(), patch));
        match res {
            Ok(_) => assert!(want.is_empty(), "{name}: accepted"),
            Err(e) => assert_eq!(causes(&e), want, "{name}"),
        }
    }
    let changed = with(ev.clone(), json!({"reason": "Other"}));
    let err = update(&new_events, Operation::Update, &ev, changed).unwrap_err();
    assert_eq!(causes(&err), vec!["reason: Invalid value: \"Other\": field is immutable"]);
    // Legacy core/v1 events: only the namespace rules.
    let core = json!({"metadata": {"name": "e", "namespace": "default"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "other"}, "reason": "X"});
    let err = create(&info("", "events"), core).unwrap_err();
    assert_eq!(
        causes(&err),
        vec!["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
    );
}

#[test]
fn updates_take_system_metadata_from_the_stored_object() {
    let mut old = created_job(json!({}));
    old["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
    let mut new = old.clone();
    let md = new["metadata"].as_object_mut().unwrap();
    md.remove("uid");
    md.remove("creationTimestamp");
    md.insert("generation".into(), json!(7));
    let got = update(&jobs(), Operation::Update, &old, new).expect("a PUT without uid is fine");
    assert_eq!(got["metadata"]["uid"], "1a2b3c");
    assert_eq!(got["metadata"]["creationTimestamp"], "2024-01-01T00:00:00Z");
    assert_eq!(got["metadata"]["generation"], 1, "generation is the server's");
}
