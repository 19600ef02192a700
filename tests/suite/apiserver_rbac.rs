//! The API server with `--authorization-mode RBAC`: 401 without a known token, 403 with
//! kube-apiserver's message for what no binding grants, access once a RoleBinding grants it,
//! `system:masters` allowed everything, the built-in discovery grant, the OwnerReferencesPermission
//! enforcement admission check, and the decision log. Through `kube::Client` and the real kubectl.

use crate::common;

use std::process::Command;

use jobwright::apiserver::rbac::UserInfo;
use jobwright::apiserver::testkit::{Kubectl, TestApiServer};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const SA_USER: &str = "system:serviceaccount:team:runner";

fn api_error(r: Result<impl std::fmt::Debug, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn apply(client: &Client, obj: Value) {
    let gvk = kube::core::GroupVersionKind::try_from(&kube::core::TypeMeta {
        api_version: obj["apiVersion"].as_str().unwrap().into(),
        kind: obj["kind"].as_str().unwrap().into(),
    })
    .unwrap();
    let (ar, caps) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
    let api: Api<kube::api::DynamicObject> = match obj["metadata"]["namespace"].as_str() {
        Some(ns) if caps.scope == kube::discovery::Scope::Namespaced => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    };
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    api.patch(&name, &PatchParams::apply("test").force(), &Patch::Apply(&obj)).await.unwrap();
}

async fn namespace(client: &Client, name: &str) {
    apply(client, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})).await;
}

fn pod(name: &str, owner: Option<Value>) -> Pod {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    if let Some(o) = owner {
        p["metadata"]["ownerReferences"] = json!([o]);
    }
    serde_json::from_value(p).unwrap()
}

#[tokio::test]
async fn requests_without_a_known_token_are_unauthorized() {
    let server = TestApiServer::start_rbac().await;
    for client in [server.client_with_token(None), server.client_with_token(Some("not-a-token"))] {
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let s = api_error(pods.list(&ListParams::default()).await);
        assert_eq!((s.code, s.reason.as_str(), s.message.as_str()), (401, "Unauthorized", "Unauthorized"));
        // Anonymous requests are off (as --anonymous-auth=false): even /version needs a token.
        let req = http::Request::get("/version").body(vec![]).unwrap();
        assert_eq!(api_error(client.request_text(req).await).code, 401);
    }
    // (Without any credentials over https kubectl would prompt for a username instead.)
    let out = Kubectl::with_token(&server.kubeconfig_url(), Some("not-a-token")).fail(&["get", "pods"]).await;
    assert!(out.contains("error: You must be logged in to the server"), "{out}");
    // The admin token (in the kubeconfig the testkit writes) is system:masters.
    assert_eq!(server.kubectl().ok(&["get", "ns", "default", "-o", "name"]).await.trim(), "namespace/default");
    let decisions = server.authorization_decisions();
    assert!(!decisions.is_empty(), "the admin's request was authorized");
    assert!(decisions.iter().all(|d| d.user == "kubernetes-admin"), "401s are not decisions");
}

#[tokio::test]
async fn a_service_account_gets_exactly_what_its_bindings_grant() {
    let server = TestApiServer::start_rbac().await;
    let admin = server.client();
    namespace(&admin, "team").await;
    let sa = server.service_account_client("team", "runner");

    // Nothing bound yet: 403 with kube-apiserver's message and details.
    let all: Api<Pod> = Api::all(sa.clone());
    let s = api_error(all.list(&ListParams::default()).await);
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        format!(
            r#"pods is forbidden: User "{SA_USER}" cannot list resource "pods" in API group "" at the cluster scope"#
        )
    );
    let team: Api<Pod> = Api::namespaced(sa.clone(), "team");
    let s = api_error(team.get("p").await);
    assert_eq!(
        s.message,
        format!(
            r#"pods "p" is forbidden: User "{SA_USER}" cannot get resource "pods" in API group "" in the namespace "team""#
        )
    );
    let details = s.details.unwrap();
    assert_eq!((details.name.as_str(), details.kind.as_str(), details.group.as_str()), ("p", "pods", ""));
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(sa.clone(), "team");
    let s = api_error(jobs.get_status("j").await);
    assert_eq!(
        s.message,
        format!(
            r#"jobs.batch "j" is forbidden: User "{SA_USER}" cannot get resource "jobs/status" in API group "batch" in the namespace "team""#
        )
    );

    // The same through the real kubectl: discovery is allowed (system:discovery), the list is not.
    let kubectl = server.service_account_kubectl("team", "runner");
    let err = kubectl.fail(&["get", "pods", "-A"]).await;
    assert!(
        err.contains(&format!(
            r#"Error from server (Forbidden): pods is forbidden: User "{SA_USER}" cannot list resource "pods" in API group "" at the cluster scope"#
        )),
        "{err}"
    );

    // A Role + RoleBinding in "team" grants list and get there, and nowhere else; not watch.
    apply(
        &admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": "team"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
    )
    .await;
    apply(
        &admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "runner-reads-pods", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "team"}]}),
    )
    .await;
    assert!(team.list(&ListParams::default()).await.unwrap().items.is_empty());
    assert_eq!(kubectl.ok(&["get", "pods", "-n", "team", "-o", "name"]).await, "");
    let default: Api<Pod> = Api::namespaced(sa.clone(), "default");
    let s = api_error(default.list(&ListParams::default()).await);
    assert!(s.message.ends_with(r#"cannot list resource "pods" in API group "" in the namespace "default""#), "{s:?}");
    let req = http::Request::get("/api/v1/namespaces/team/pods?watch=true").body(vec![]).unwrap();
    let s = api_error(sa.request_text(req).await);
    assert!(s.message.contains(r#"cannot watch resource "pods""#), "{s:?}");
    let s = api_error(team.create(&PostParams::default(), &pod("p", None)).await);
    assert!(s.message.contains(r#"cannot create resource "pods""#), "{s:?}");

    // Non-resource paths: discovery, version and health for any authenticated user; others not.
    for path in ["/version", "/apis", "/api/v1", "/apis/batch/v1", "/healthz", "/openapi/v3"] {
        let req = http::Request::get(path).body(vec![]).unwrap();
        assert!(sa.request_text(req).await.is_ok(), "{path}");
    }
    let req = http::Request::get("/logs").body(vec![]).unwrap();
    let s = api_error(sa.request_text(req).await);
    assert_eq!(
        (s.code, s.message.as_str()),
        (403, format!(r#"forbidden: User "{SA_USER}" cannot get path "/logs""#).as_str())
    );

    // The decision log saw both outcomes for this user, with the request's attributes.
    let decisions: Vec<_> = server.authorization_decisions().into_iter().filter(|d| d.user == SA_USER).collect();
    let find = |verb: &str, ns: &str, allowed: bool| {
        decisions.iter().any(|d| {
            d.attributes.verb == verb
                && d.attributes.resource == "pods"
                && d.attributes.namespace == ns
                && d.allowed == allowed
        })
    };
    assert!(find("list", "team", true) && find("list", "default", false) && find("list", "", false));
    assert!(find("watch", "team", false) && find("create", "team", false));
    assert!(decisions.iter().all(|d| d.groups.contains(&"system:serviceaccounts:team".to_string())));
}

#[tokio::test]
async fn system_masters_may_do_anything() {
    let server = TestApiServer::start_rbac().await;
    let root = server.token_for(UserInfo {
        name: "root".into(),
        groups: vec!["system:masters".into()],
        ..UserInfo::default()
    });
    let client = server.client_with_token(Some(&root));
    let nodes: Api<Node> = Api::all(client);
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    nodes.delete("n1", &Default::default()).await.unwrap();
    let d = server.authorization_decisions();
    assert!(
        d.iter().any(|d| d.user == "root" && d.attributes.verb == "delete" && d.allowed && d.by == "system:masters")
    );
    assert_eq!(server.kubectl().ok(&["get", "ns", "default", "-o", "name"]).await.trim(), "namespace/default");
}

#[tokio::test]
async fn blocking_owner_deletion_needs_update_on_the_owners_finalizers() {
    let server = TestApiServer::start_rbac().await;
    let admin = server.client();
    namespace(&admin, "team").await;
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let job = Api::namespaced(admin.clone(), "team").create(&PostParams::default(), &job).await.unwrap();
    let owner = |block: bool| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": job.uid().unwrap(),
            "controller": true, "blockOwnerDeletion": block})
    };
    let rules = |extra: Value| {
        let mut rules = vec![json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "patch"]})];
        if !extra.is_null() {
            rules.push(extra);
        }
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "pod-maker"}, "rules": rules})
    };
    apply(&admin, rules(Value::Null)).await;
    apply(
        &admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "pod-maker"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-maker"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "team"}]}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(server.service_account_client("team", "runner"), "team");
    let pp = PostParams::default();

    // An ownerReference that does not block: no finalizers permission needed.
    pods.create(&pp, &pod("free", Some(owner(false)))).await.unwrap();
    // A blocking one: 403 with the admission plugin's message.
    let s = api_error(pods.create(&pp, &pod("blocking", Some(owner(true)))).await);
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        r#"pods "blocking" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on: , <nil>"#
    );
    let denied = server.authorization_decisions().into_iter().find(|d| !d.allowed).unwrap();
    assert_eq!(
        (
            denied.attributes.verb.as_str(),
            denied.attributes.group.as_str(),
            denied.attributes.resource.as_str(),
            denied.attributes.subresource.as_str(),
            denied.attributes.namespace.as_str(),
            denied.attributes.name.as_str()
        ),
        ("update", "batch", "jobs", "finalizers", "team", "j")
    );
    // Changing the ownerReferences of an existing pod also needs delete on the pod.
    let patch = json!({"metadata": {"ownerReferences": [owner(false), {"apiVersion": "v1", "kind": "ConfigMap",
        "name": "cm", "uid": "u-cm"}]}});
    let s = api_error(pods.patch("free", &PatchParams::default(), &Patch::Merge(&patch)).await);
    assert_eq!(
        s.message,
        r#"pods "free" is forbidden: cannot set an ownerRef on a resource you can't delete: , <nil>"#
    );

    // Granted: update on jobs/finalizers (and delete on pods) make both writes pass.
    apply(&admin, rules(json!({"apiGroups": ["batch"], "resources": ["jobs/finalizers"], "verbs": ["update"]}))).await;
    pods.create(&pp, &pod("blocking", Some(owner(true)))).await.unwrap();
    let mut with_delete = rules(json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}));
    with_delete["rules"]
        .as_array_mut()
        .unwrap()
        .push(json!({"apiGroups": ["batch"], "resources": ["jobs/finalizers"], "verbs": ["update"]}));
    apply(&admin, with_delete).await;
    pods.patch("free", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    // An owner kind the server does not serve.
    let unknown = json!({"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "u-w",
        "blockOwnerDeletion": true});
    let s = api_error(pods.create(&pp, &pod("odd", Some(unknown))).await);
    assert_eq!(
        s.message,
        r#"pods "odd" is forbidden: cannot set blockOwnerDeletion in this case because cannot find RESTMapping for APIVersion example.com/v1 Kind Widget: no matches for kind "Widget" in version "example.com/v1""#
    );
}

#[tokio::test]
async fn apiserver_subcommand_enforces_rbac_with_a_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "alice-token,alice,1001,\"devs,qa\"\n").unwrap();
    let (child, line) = common::spawn_jobwright([
        "apiserver",
        "--listen",
        "127.0.0.1:0",
        "--authorization-mode",
        "RBAC",
        "--token-auth-file",
        tokens.to_str().unwrap(),
        "--kubeconfig",
        kc.to_str().unwrap(),
    ]);
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().trim_end_matches(';');
    // kubectl sends tokens over TLS only; the RBAC server's port speaks both.
    let url = url.replacen("http://", "https://", 1);

    // The written kubeconfig carries the admin (system:masters) token, so only its owner may read it.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777, 0o600);
    let admin = Kubectl::from_kubeconfig(&kc).unwrap();
    assert_eq!(admin.ok(&["get", "ns", "default", "-o", "name"]).await.trim(), "namespace/default");
    let alice = Kubectl::with_token(&url, Some("alice-token"));
    let err = alice.fail(&["get", "ns"]).await;
    assert!(
        err.contains(r#"namespaces is forbidden: User "alice" cannot list resource "namespaces" in API group "" at the cluster scope"#),
        "{err}"
    );
    // A binding to one of alice's groups from the file.
    let grant = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ns-reader}
rules: [{apiGroups: [""], resources: [namespaces], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: qa-reads-ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ns-reader}
subjects: [{kind: Group, name: qa}]
"#;
    let out = admin.run_stdin(&["apply", "-f", "-"], grant).await;
    assert!(out.success, "{}", out.stderr);
    assert!(alice.ok(&["get", "ns", "-o", "name"]).await.contains("namespace/default"));
    let err = Kubectl::with_token(&url, Some("mallory")).fail(&["get", "ns"]).await;
    assert!(err.contains("error: You must be logged in to the server"), "{err}");

    common::terminate_cleanly(child).await;
}

#[test]
fn apiserver_subcommand_rejects_a_bad_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "just,two\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jobwright"))
        .args(["apiserver", "--authorization-mode", "RBAC", "--token-auth-file"])
        .arg(&tokens)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token-auth-file") && err.contains("at least 3 columns"), "{err}");
}

/// `subject` may `verb` `resource` (group `group`) in `ns`, as the authorizer decides
/// (a SubjectAccessReview, as `kubectl auth can-i --as` asks).
async fn can(admin: &Client, user: &str, verb: &str, group: &str, resource: &str, ns: &str) -> bool {
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
            "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "namespace": ns}}});
    let req = http::Request::post("/apis/authorization.k8s.io/v1/subjectaccessreviews")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&review).unwrap())
        .unwrap();
    let out: Value = admin.request(req).await.unwrap();
    out["status"]["allowed"].as_bool().unwrap_or(false)
}

/// The bootstrap ClusterRoles and bindings exist as on a cluster (labelled rbac-defaults), a
/// RoleBinding to `view`/`edit`/`admin` grants what it grants upstream, and a ClusterRole labelled
/// `aggregate-to-view` is folded into `view` (and through `edit` into `admin`) and taken out again.
#[tokio::test]
async fn bootstrap_roles_bind_as_on_a_cluster_and_aggregate() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    use kube::runtime::wait::await_condition;
    let server = TestApiServer::start_rbac().await;
    let admin = server.client();
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    for name in ["cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user"] {
        let r = roles.get(name).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.labels().get("kubernetes.io/bootstrapping").map(String::as_str), Some("rbac-defaults"), "{name}");
        assert_eq!(
            r.annotations().get("rbac.authorization.kubernetes.io/autoupdate").map(String::as_str),
            Some("true")
        );
    }
    let crb: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let masters = crb.get("cluster-admin").await.unwrap();
    assert_eq!(masters.subjects.unwrap()[0].name, "system:masters");
    assert_eq!(masters.role_ref.name, "cluster-admin");

    namespace(&admin, "team").await;
    let bind = |role: &str, sa: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": format!("{sa}-{role}"), "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "team"}]})
    };
    for (role, sa) in [("view", "viewer"), ("edit", "editor"), ("admin", "boss")] {
        apply(&admin, bind(role, sa)).await;
    }
    let user = |sa: &str| format!("system:serviceaccount:team:{sa}");
    // Aggregation runs in the server's background task: wait for `admin` to hold its rules.
    let has_rules = |min: usize| {
        move |r: Option<&ClusterRole>| r.and_then(|r| r.rules.as_ref()).is_some_and(|rules| rules.len() >= min)
    };
    tokio::time::timeout(common::WAIT, await_condition(roles.clone(), "admin", has_rules(20))).await.unwrap().unwrap();
    let cases = [
        ("viewer", "list", "", "pods", true),
        ("viewer", "create", "", "pods", false),
        ("viewer", "get", "", "secrets", false),
        ("viewer", "get", "batch", "jobs", true),
        ("editor", "create", "batch", "jobs", true),
        ("editor", "get", "", "secrets", true),
        ("editor", "create", "rbac.authorization.k8s.io", "rolebindings", false),
        ("boss", "create", "rbac.authorization.k8s.io", "rolebindings", true),
        ("boss", "create", "authorization.k8s.io", "localsubjectaccessreviews", true),
        ("boss", "create", "", "nodes", false),
    ];
    for (sa, verb, group, resource, want) in cases {
        assert_eq!(can(&admin, &user(sa), verb, group, resource, "team").await, want, "{sa} {verb} {group}/{resource}");
    }
    // The aggregation mechanism: a new role labelled aggregate-to-view reaches view, edit and admin.
    apply(
        &admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]}),
    )
    .await;
    let grants_widgets = |want: bool| {
        move |r: Option<&ClusterRole>| {
            r.and_then(|r| r.rules.as_ref())
                .is_some_and(|rules| rules.iter().any(|x| x.resources == Some(vec!["widgets".into()])) == want)
        }
    };
    for role in ["view", "edit", "admin"] {
        tokio::time::timeout(common::WAIT, await_condition(roles.clone(), role, grants_widgets(true)))
            .await
            .unwrap_or_else(|_| panic!("{role} never aggregated widgets-view"))
            .unwrap();
    }
    assert!(can(&admin, &user("boss"), "get", "example.com", "widgets", "team").await);
    assert!(!can(&admin, &user("boss"), "list", "example.com", "widgets", "team").await);
    // Unlabelled, it leaves them again.
    let p = json!({"metadata": {"labels": {"rbac.authorization.k8s.io/aggregate-to-view": null}}});
    roles.patch("widgets-view", &PatchParams::default(), &Patch::Merge(&p)).await.unwrap();
    for role in ["view", "edit", "admin"] {
        tokio::time::timeout(common::WAIT, await_condition(roles.clone(), role, grants_widgets(false)))
            .await
            .unwrap_or_else(|_| panic!("{role} kept widgets-view"))
            .unwrap();
    }
    assert!(!can(&admin, &user("viewer"), "get", "example.com", "widgets", "team").await);
}

/// LocalSubjectAccessReview: served in a namespace, to whoever may create it there (bootstrap
/// `admin` grants it), answering for that namespace only, with upstream's errors.
#[tokio::test]
async fn local_subject_access_review_answers_within_its_namespace() {
    let server = TestApiServer::start_rbac().await;
    let admin = server.client();
    namespace(&admin, "team").await;
    namespace(&admin, "other").await;
    apply(
        &admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "lead-admin", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "lead", "namespace": "team"}]}),
    )
    .await;
    let lead = server.service_account_client("team", "lead");
    let post = |ns: &str, body: Value| {
        http::Request::post(format!("/apis/authorization.k8s.io/v1/namespaces/{ns}/localsubjectaccessreviews"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap()
    };
    let review = |ns: &str, verb: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
            "spec": {"user": "system:serviceaccount:team:lead",
                "resourceAttributes": {"namespace": ns, "verb": verb, "resource": "pods"}}})
    };
    // Allowed to ask in team; the answer is about team.
    let out: Value = lead.request(post("team", review("team", "delete"))).await.unwrap();
    assert_eq!(out["kind"], "LocalSubjectAccessReview");
    assert_eq!(out["metadata"]["namespace"], "team");
    assert_eq!(out["status"]["allowed"], true);
    // Not allowed to ask in other (admin is bound in team only).
    let s = api_error(lead.request::<Value>(post("other", review("other", "get"))).await);
    assert_eq!(s.code, 403, "{s:?}");
    assert!(s.message.contains("cannot create resource \"localsubjectaccessreviews\""), "{}", s.message);
    // The attributes' namespace must be the URL's.
    let s = api_error(lead.request::<Value>(post("team", review("other", "get"))).await);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(
        s.message
            .contains("spec.resourceAttributes.namespace: Invalid value: \"other\": must match metadata.namespace"),
        "{}",
        s.message
    );
    let mut body = review("team", "get");
    body["metadata"] = json!({"namespace": "other"});
    let s = api_error(lead.request::<Value>(post("team", body)).await);
    assert_eq!(s.code, 400);
    assert_eq!(s.message, "the namespace of the provided object does not match the namespace sent on the request");
    let body = json!({"kind": "LocalSubjectAccessReview", "spec": {"user": "u", "nonResourceAttributes": {"path": "/x", "verb": "get"}}});
    let s = api_error(admin.request::<Value>(post("team", body)).await);
    assert_eq!(s.code, 422);
    assert!(s.message.contains("spec.nonResourceAttributes: Invalid value"), "{}", s.message);
    assert!(s.message.contains("disallowed on this kind of request"), "{}", s.message);
}

/// TokenReview (delegated authentication, as kube-rbac-proxy and controller-runtime's secured
/// metrics send it): whom a token authenticates, for the server's audience; upstream's 400 for no
/// token; `create` on `tokenreviews` needed, as `system:auth-delegator` grants.
#[tokio::test]
async fn token_reviews_say_whom_a_token_authenticates() {
    use jobwright::apiserver::review::API_AUDIENCE;
    let server = TestApiServer::start_rbac().await;
    let admin = server.client();
    let review = |client: Client, body: Value| async move {
        let req = http::Request::post("/apis/authentication.k8s.io/v1/tokenreviews")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap();
        client.request::<Value>(req).await
    };
    let spec = |token: &str, audiences: Value| {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences}})
    };
    let runner = server.service_account_token("team", "runner");
    let out = review(admin.clone(), spec(&runner, json!(null))).await.unwrap();
    assert_eq!(out["kind"], "TokenReview");
    assert_eq!(out["status"]["authenticated"], true, "{out}");
    assert_eq!(out["status"]["user"]["username"], SA_USER, "{out}");
    let groups: Vec<&str> =
        out["status"]["user"]["groups"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(groups.contains(&"system:serviceaccounts:team") && groups.contains(&"system:authenticated"), "{out}");
    assert_eq!(out["status"]["audiences"], json!([API_AUDIENCE]));
    // Asked for the server's audience among others: the server's.
    let out = review(admin.clone(), spec(&runner, json!(["other", API_AUDIENCE]))).await.unwrap();
    assert_eq!((&out["status"]["authenticated"], &out["status"]["audiences"]), (&json!(true), &json!([API_AUDIENCE])));
    // Only another audience: not authenticated (its tokens are for the server's audience).
    let out = review(admin.clone(), spec(&runner, json!(["https://other.example"]))).await.unwrap();
    assert_eq!(out["status"], json!({"user": {}, "error": "invalid bearer token"}), "{out}");
    // A token nobody has.
    let out = review(admin.clone(), spec("not-a-token", json!(null))).await.unwrap();
    assert_eq!(out["status"], json!({"user": {}, "error": "invalid bearer token"}), "{out}");
    // Upstream's 400 for no token; a namespace in the body is dropped, as for any cluster-scoped
    // create.
    let e = api_error(review(admin.clone(), spec("", json!(null))).await);
    assert_eq!((e.code, e.message.as_str()), (400, "token is required for TokenReview in authentication"));
    let mut namespaced = spec(&runner, json!(null));
    namespaced["metadata"] = json!({"namespace": "team", "name": "r"});
    let out = review(admin.clone(), namespaced).await.unwrap();
    assert_eq!(out["metadata"], json!({"name": "r", "creationTimestamp": null}));
    assert_eq!(out["status"]["authenticated"], true);
    // `create` on tokenreviews is needed: the runner has none until bound to system:auth-delegator.
    let as_runner = server.client_with_token(Some(&runner));
    let e = api_error(review(as_runner.clone(), spec(&runner, json!(null))).await);
    assert_eq!(e.code, 403, "{e:?}");
    assert!(
        e.message.contains("cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\""),
        "{}",
        e.message
    );
    apply(
        &admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "runner-delegator"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "team"}]}),
    )
    .await;
    let out = review(as_runner, spec(&runner, json!(null))).await.unwrap();
    assert_eq!(out["status"]["user"]["username"], SA_USER, "{out}");
}
