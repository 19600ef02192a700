//! Every `kubectl create` subcommand of a served type, through the real kubectl: its typed
//! commands send `application/vnd.kubernetes.protobuf` bodies and ask for protobuf answers.
//!
//! Each command runs twice: `--dry-run=client -o json` prints the object kubectl builds (Go's
//! JSON of the Go object it then encodes as protobuf), and the real create sends it. Every field of
//! the printed object must be in what the server stored, with the same value: nothing the protobuf
//! carried is lost or changed.

use crate::common;

use common::contains;

use jobwright::apiserver::testkit::{Kubectl, TestApiServer};
use serde_json::Value;

/// `kubectl create ARGS` after its `--dry-run=client -o json`; returns (printed, stored).
async fn create(k: &Kubectl, args: &[&str], resource: &str, name: &str) -> (Value, Value) {
    // The flags go before a `--` that starts the container's command.
    let mut dry = args.to_vec();
    let at = dry.iter().position(|a| *a == "--").unwrap_or(dry.len());
    dry.splice(at..at, ["--dry-run=client", "-o", "json"]);
    let printed = k.ok(&dry).await;
    let want: Value = serde_json::from_str(&printed).unwrap_or_else(|e| panic!("{dry:?}: {e}: {printed}"));
    let out = k.run(args).await;
    assert!(out.success, "kubectl create {args:?}: {}", out.stderr);
    assert!(out.stdout.trim().ends_with(" created"), "{args:?}: {}", out.stdout);
    let stored = k.ok(&["get", resource, name, "-o", "json"]).await;
    let got: Value = serde_json::from_str(&stored).unwrap_or_else(|e| panic!("{args:?}: {e}: {stored}"));
    // A create resets the status of a type with a status subresource (as upstream).
    let mut want = want;
    want.as_object_mut().unwrap().remove("status");
    let mut errs = Vec::new();
    contains(&want, &got, "", &mut errs);
    assert!(errs.is_empty(), "kubectl create {args:?} lost or changed fields:\n{}\nstored: {got:#}", errs.join("\n"));
    (want, got)
}

#[tokio::test]
async fn every_create_subcommand_of_a_served_type() {
    let server = TestApiServer::start().await;
    let k = server.kubectl();
    let dir = tempfile::tempdir().unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let (cert, key) = (format!("--cert={fixtures}/tls.crt"), format!("--key={fixtures}/tls.key"));
    // Binary content goes to a ConfigMap's binaryData (bytes on the wire).
    let bin = dir.path().join("blob.bin");
    std::fs::write(&bin, [0u8, 0xff, 0xfe, 1, 2, 3]).unwrap();
    let bin_arg = format!("--from-file=blob={}", bin.display());

    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["create", "namespace", "ns1"], "namespace", "ns1"),
        (vec!["create", "serviceaccount", "sa1"], "serviceaccount", "sa1"),
        (vec!["create", "configmap", "cm1", "--from-literal=a=b", "--from-literal=c=", &bin_arg], "configmap", "cm1"),
        (vec!["create", "secret", "generic", "sec1", "--from-literal=user=admin", "--type=Opaque"], "secret", "sec1"),
        (
            vec![
                "create",
                "secret",
                "docker-registry",
                "sec2",
                "--docker-server=registry.example.com",
                "--docker-username=u",
                "--docker-password=p",
                "--docker-email=u@example.com",
            ],
            "secret",
            "sec2",
        ),
        (vec!["create", "secret", "tls", "sec3", &cert, &key], "secret", "sec3"),
        (vec!["create", "service", "clusterip", "svc1", "--tcp=80:8080", "--tcp=443:https"], "service", "svc1"),
        (vec!["create", "service", "clusterip", "svc2", "--clusterip=None"], "service", "svc2"),
        (vec!["create", "service", "nodeport", "svc3", "--tcp=80:8080", "--node-port=30080"], "service", "svc3"),
        (vec!["create", "service", "loadbalancer", "svc4", "--tcp=443:8443"], "service", "svc4"),
        (
            vec!["create", "service", "externalname", "svc5", "--external-name=example.com", "--tcp=80"],
            "service",
            "svc5",
        ),
        (
            vec!["create", "deployment", "dep1", "--image=busybox", "--replicas=2", "--port=8080", "--", "sleep", "1"],
            "deployment",
            "dep1",
        ),
        (vec!["create", "job", "job1", "--image=busybox", "--", "echo", "hi"], "job", "job1"),
        (
            vec![
                "create",
                "cronjob",
                "cj1",
                "--image=busybox",
                "--schedule=*/5 * * * *",
                "--restart=OnFailure",
                "--",
                "echo",
                "hi",
            ],
            "cronjob",
            "cj1",
        ),
        // The Job's template comes from the stored CronJob with the server's defaults
        // (terminationMessagePath, imagePullPolicy, ...), all sent back as protobuf.
        (vec!["create", "job", "job2", "--from=cronjob/cj1"], "job", "job2"),
        (
            vec!["create", "role", "role1", "--verb=get,list,watch", "--resource=pods,jobs.batch", "--resource-name=x"],
            "role",
            "role1",
        ),
        (
            vec![
                "create",
                "rolebinding",
                "rb1",
                "--role=role1",
                "--user=alice",
                "--group=devs",
                "--serviceaccount=default:sa1",
            ],
            "rolebinding",
            "rb1",
        ),
        (vec!["create", "clusterrole", "cr1", "--verb=get", "--resource=nodes"], "clusterrole", "cr1"),
        (vec!["create", "clusterrole", "cr2", "--verb=get", "--non-resource-url=/logs/*"], "clusterrole", "cr2"),
        (
            vec!["create", "clusterrole", "cr3", "--aggregation-rule=rbac.example.com/aggregate=true"],
            "clusterrole",
            "cr3",
        ),
        (
            vec!["create", "clusterrolebinding", "crb1", "--clusterrole=cr1", "--user=alice"],
            "clusterrolebinding",
            "crb1",
        ),
        (vec!["create", "poddisruptionbudget", "pdb1", "--selector=app=x", "--min-available=1"], "pdb", "pdb1"),
        (vec!["create", "poddisruptionbudget", "pdb2", "--selector=app=y", "--max-unavailable=50%"], "pdb", "pdb2"),
    ];
    for (args, resource, name) in &cases {
        create(&k, args, resource, name).await;
    }

    // Spot checks of the types protobuf carries differently from JSON.
    let get = |r: &str, n: &str| {
        let k = &k;
        let (r, n) = (r.to_string(), n.to_string());
        async move { serde_json::from_str::<Value>(&k.ok(&["get", &r, &n, "-o", "json"]).await).unwrap() }
    };
    let cm = get("configmap", "cm1").await;
    assert_eq!(cm["binaryData"]["blob"], "AP/+AQID");
    assert_eq!(cm["data"]["c"], "");
    let pdb = get("pdb", "pdb2").await;
    assert_eq!(pdb["spec"]["maxUnavailable"], "50%");
    let pdb = get("pdb", "pdb1").await;
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let svc = get("service", "svc1").await;
    assert_eq!(svc["spec"]["ports"][1]["targetPort"], "https");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    let job2 = get("job", "job2").await;
    assert_eq!(job2["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"], "manual");
    assert_eq!(job2["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    let sec = get("secret", "sec3").await;
    assert_eq!(sec["type"], "kubernetes.io/tls");
    assert!(sec["data"]["tls.crt"].as_str().is_some_and(|s| !s.is_empty()));
}

/// kubectl's typed create sends protobuf and is answered in protobuf (its `-v=8` log shows both).
#[tokio::test]
async fn kubectl_is_answered_in_protobuf() {
    let server = TestApiServer::start().await;
    let k = server.kubectl();
    let out = k.run(&["create", "configmap", "pb", "--from-literal=a=b", "-v=8"]).await;
    assert!(out.success, "{}", out.stderr);
    let request = out.stderr.split("\"Request\" verb=\"POST\"").nth(1).expect("request logged");
    let request = request.split(" >").next().unwrap();
    assert!(request.contains("Content-Type: application/vnd.kubernetes.protobuf"), "{request}");
    let response = out.stderr.split("\"Response\" status=\"201 Created\"").nth(1).expect("response logged");
    let headers = response.split(" >").next().unwrap();
    assert!(headers.contains("Content-Type: application/vnd.kubernetes.protobuf"), "{headers}");
    assert_eq!(k.ok(&["get", "configmap", "pb", "-o", "jsonpath={.data.a}"]).await, "b");
}

/// The create subcommands whose types this server does not serve fail as against a cluster
/// without them, and create nothing.
#[tokio::test]
async fn create_subcommands_of_types_not_served_fail_cleanly() {
    let server = TestApiServer::start().await;
    let k = server.kubectl();
    // ResourceQuota, PriorityClass and Ingress are served (as every built-in kind of 1.33).
    k.ok(&["create", "quota", "q1", "--hard=pods=2"]).await;
    k.ok(&["create", "priorityclass", "pc1", "--value=10"]).await;
    k.ok(&["create", "ingress", "ing1", "--rule=example.com/=svc:80"]).await;
    assert_eq!(k.ok(&["get", "pc", "pc1", "-o", "jsonpath={.preemptionPolicy}"]).await, "PreemptLowerPriority");
    // serviceaccounts/token (TokenRequest) is not served.
    let err = k.fail(&["create", "token", "default"]).await;
    assert!(err.contains("the server could not find the requested resource"), "{err}");
}
