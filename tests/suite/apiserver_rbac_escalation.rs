//! RBAC escalation prevention, impersonation, the shared query parse and the access reviews,
//! against `TestApiServer::start_rbac()`, as kube-apiserver with `--authorization-mode=RBAC`.
//!
//! The matrix: each case gives a fresh user some permissions (bound by the admin), has that user
//! make one write to the RBAC kinds, and states upstream's answer: allowed, or 403 with upstream's
//! "attempting to grant RBAC permissions not currently held" message (or 404 for a binding to a
//! role that does not exist).

use jobwright::apiserver::rbac::UserInfo;
use jobwright::apiserver::testkit::{Kubectl, TestApiServer};
use kube::Client;
use serde_json::{Value, json};

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";

/// A raw call: `Ok(body)` on success, `Err((code, reason, message))` for an error Status.
async fn call(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Result<Value, (u16, String, String)> {
    let ct = if method == "PATCH" { "application/merge-patch+json" } else { "application/json" };
    let mut b = http::Request::builder().method(method).uri(path).header("content-type", ct);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(body.map(|v| serde_json::to_vec(&v).unwrap()).unwrap_or_default()).unwrap();
    match client.request_text(req).await {
        Ok(text) => Ok(serde_json::from_str(&text).unwrap_or(Value::Null)),
        Err(kube::Error::Api(s)) => Err((s.code, s.reason.clone(), s.message.clone())),
        Err(other) => panic!("{method} {path}: {other:?}"),
    }
}

async fn admin_ok(admin: &Client, method: &str, path: &str, body: Value) {
    if let Err(e) = call(admin, method, path, Some(body), &[]).await {
        panic!("admin {method} {path}: {e:?}");
    }
}

fn role(kind: &str, name: &str, ns: Option<&str>, rules: Value) -> Value {
    let mut md = json!({"name": name});
    if let Some(ns) = ns {
        md["namespace"] = json!(ns);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": md, "rules": rules})
}

fn binding(kind: &str, name: &str, ns: Option<&str>, ref_kind: &str, ref_name: &str, user: &str) -> Value {
    let mut md = json!({"name": name});
    if let Some(ns) = ns {
        md["namespace"] = json!(ns);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": md,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": ref_name},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}]})
}

fn path(resource: &str, ns: Option<&str>) -> String {
    match ns {
        Some(ns) => format!("{RBAC}/namespaces/{ns}/{resource}"),
        None => format!("{RBAC}/{resource}"),
    }
}

/// The server, its admin, and the roles every case can refer to.
async fn setup() -> (TestApiServer, Client) {
    let server = TestApiServer::start_rbac().await;
    let admin = server.client();
    admin_ok(&admin, "POST", "/api/v1/namespaces", json!({"metadata": {"name": "team"}})).await;
    // The bootstrap cluster-admin is stored at startup, with upstream's rules.
    let stored =
        call(&admin, "GET", &format!("{}/cluster-admin", path("clusterroles", None)), None, &[]).await.unwrap();
    assert_eq!(
        stored["rules"],
        json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}])
    );
    let reader = role(
        "ClusterRole",
        "secret-reader",
        None,
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]),
    );
    admin_ok(&admin, "POST", &path("clusterroles", None), reader).await;
    (server, admin)
}

/// Give `user` `cluster_rules` everywhere (a ClusterRole and ClusterRoleBinding) and `team_rules`
/// in namespace `team` (a Role and RoleBinding).
async fn grant(admin: &Client, user: &str, cluster_rules: Value, team_rules: Value) {
    if cluster_rules.as_array().is_some_and(|a| !a.is_empty()) {
        admin_ok(
            admin,
            "POST",
            &path("clusterroles", None),
            role("ClusterRole", &format!("{user}-c"), None, cluster_rules),
        )
        .await;
        let b = binding("ClusterRoleBinding", &format!("{user}-c"), None, "ClusterRole", &format!("{user}-c"), user);
        admin_ok(admin, "POST", &path("clusterrolebindings", None), b).await;
    }
    if team_rules.as_array().is_some_and(|a| !a.is_empty()) {
        let ns = Some("team");
        admin_ok(admin, "POST", &path("roles", ns), role("Role", &format!("{user}-t"), ns, team_rules)).await;
        let b = binding("RoleBinding", &format!("{user}-t"), ns, "Role", &format!("{user}-t"), user);
        admin_ok(admin, "POST", &path("rolebindings", ns), b).await;
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn named_rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs, "resourceNames": names})
}

/// The rules of `cluster-admin`, as a refusal to grant them lists them.
const CLUSTER_ADMIN: &str =
    "{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}";

/// What a case expects.
enum Want {
    Allowed,
    /// Upstream's 403 for a write of the object named (`{user}` is the case's user) granting the
    /// permissions listed (one compact rule a line), which the user does not hold.
    Escalation(&'static str, &'static str),
    /// Any error with this code whose message contains this.
    Error(u16, &'static str),
}

struct Case {
    name: &'static str,
    cluster: Value,
    team: Value,
    method: &'static str,
    /// (resource, namespace); the object name is `{user}-obj` unless `target` names one.
    resource: (&'static str, Option<&'static str>),
    target: Option<&'static str>,
    body: fn(&str) -> Value,
    want: Want,
}

const GROUPS: &str = r#"["system:authenticated"]"#;

#[tokio::test]
async fn escalation_matrix() {
    let (server, admin) = setup().await;
    // A binding the admin made, for the update cases.
    admin_ok(
        &admin,
        "POST",
        &path("rolebindings", Some("team")),
        binding("RoleBinding", "existing", Some("team"), "ClusterRole", "cluster-admin", "nobody"),
    )
    .await;
    let cases = vec![
        Case {
            name: "rolebinding to cluster-admin with only create rolebindings",
            cluster: json!([]),
            team: json!([rule(&["rbac.authorization.k8s.io"], &["rolebindings"], &["create"])]),
            method: "POST",
            resource: ("rolebindings", Some("team")),
            target: None,
            body: |u| binding("RoleBinding", &format!("{u}-obj"), Some("team"), "ClusterRole", "cluster-admin", u),
            want: Want::Escalation("{user}-obj", CLUSTER_ADMIN),
        },
        Case {
            name: "clusterrolebinding to cluster-admin with only create clusterrolebindings",
            cluster: json!([rule(&["rbac.authorization.k8s.io"], &["clusterrolebindings"], &["create"])]),
            team: json!([]),
            method: "POST",
            resource: ("clusterrolebindings", None),
            target: None,
            body: |u| binding("ClusterRoleBinding", &format!("{u}-obj"), None, "ClusterRole", "cluster-admin", u),
            want: Want::Escalation("{user}-obj", CLUSTER_ADMIN),
        },
        Case {
            name: "a Role with * on * with only create roles",
            cluster: json!([]),
            team: json!([rule(&["rbac.authorization.k8s.io"], &["roles"], &["create"])]),
            method: "POST",
            resource: ("roles", Some("team")),
            target: None,
            body: |u| role("Role", &format!("{u}-obj"), Some("team"), json!([rule(&["*"], &["*"], &["*"])])),
            want: Want::Escalation("{user}-obj", "{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"),
        },
        Case {
            name: "patching one's own Role to add secrets",
            cluster: json!([]),
            team: json!([rule(&["rbac.authorization.k8s.io"], &["roles"], &["get", "patch"])]),
            method: "PATCH",
            resource: ("roles", Some("team")),
            target: Some("{user}-t"),
            body: |_| json!({"rules": [rule(&["rbac.authorization.k8s.io"], &["roles"], &["get", "patch"]), rule(&[""], &["secrets"], &["get", "list"])]}),
            want: Want::Escalation("{user}-t", "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}"),
        },
        Case {
            name: "a ClusterRole beyond the cluster-wide rules (namespace rules do not count)",
            cluster: json!([rule(&["rbac.authorization.k8s.io"], &["clusterroles"], &["create"])]),
            team: json!([rule(&["*"], &["*"], &["*"])]),
            method: "POST",
            resource: ("clusterroles", None),
            target: None,
            body: |u| role("ClusterRole", &format!("{u}-obj"), None, json!([rule(&[""], &["pods"], &["get"])])),
            want: Want::Escalation("{user}-obj", "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"get\"]}"),
        },
        Case {
            name: "bind limited by resourceNames to another role",
            cluster: json!([]),
            team: json!([
                rule(&["rbac.authorization.k8s.io"], &["rolebindings"], &["create"]),
                named_rule(&["rbac.authorization.k8s.io"], &["clusterroles"], &["bind"], &["secret-reader"])
            ]),
            method: "POST",
            resource: ("rolebindings", Some("team")),
            target: None,
            body: |u| binding("RoleBinding", &format!("{u}-obj"), Some("team"), "ClusterRole", "cluster-admin", u),
            want: Want::Escalation("{user}-obj", CLUSTER_ADMIN),
        },
        Case {
            name: "a label change on someone else's binding to cluster-admin",
            cluster: json!([]),
            team: json!([rule(&["rbac.authorization.k8s.io"], &["rolebindings"], &["patch"])]),
            method: "PATCH",
            resource: ("rolebindings", Some("team")),
            target: Some("existing"),
            body: |_| json!({"metadata": {"labels": {"x": "y"}}}),
            want: Want::Escalation("existing", CLUSTER_ADMIN),
        },
        Case {
            name: "a binding to a role that does not exist",
            cluster: json!([]),
            team: json!([rule(&["rbac.authorization.k8s.io"], &["rolebindings"], &["create"])]),
            method: "POST",
            resource: ("rolebindings", Some("team")),
            target: None,
            body: |u| binding("RoleBinding", &format!("{u}-obj"), Some("team"), "Role", "no-such-role", u),
            want: Want::Error(404, "roles.rbac.authorization.k8s.io \"no-such-role\" not found"),
        },
        Case {
            name: "changing a binding's roleRef",
            cluster: json!([]),
            team: json!([rule(&["*"], &["*"], &["*"])]),
            method: "PATCH",
            resource: ("rolebindings", Some("team")),
            target: Some("{user}-t"),
            body: |_| json!({"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}}),
            want: Want::Error(422, "cannot change roleRef"),
        },
        Case {
            name: "an aggregationRule without every permission",
            cluster: json!([
                rule(&["rbac.authorization.k8s.io"], &["clusterroles"], &["create"]),
                rule(&[""], &["pods"], &["get"])
            ]),
            team: json!([]),
            method: "POST",
            resource: ("clusterroles", None),
            target: None,
            body: |u| {
                let mut r = role("ClusterRole", &format!("{u}-obj"), None, json!([rule(&[""], &["pods"], &["get"])]));
                r["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {"aggregate": "yes"}}]});
                r
            },
            want: Want::Error(
                403,
                "-obj\" is forbidden: must have cluster-admin privileges to use the aggregationRule",
            ),
        },
        // Allowed cases.
        Case {
            name: "a Role within the permissions held",
            cluster: json!([]),
            team: json!([
                rule(&["rbac.authorization.k8s.io"], &["roles"], &["create"]),
                rule(&[""], &["secrets", "pods"], &["get", "list"])
            ]),
            method: "POST",
            resource: ("roles", Some("team")),
            target: None,
            body: |u| role("Role", &format!("{u}-obj"), Some("team"), json!([rule(&[""], &["secrets"], &["get"])])),
            want: Want::Allowed,
        },
        Case {
            name: "a Role with * on * given escalate on roles",
            cluster: json!([]),
            team: json!([rule(&["rbac.authorization.k8s.io"], &["roles"], &["create", "escalate"])]),
            method: "POST",
            resource: ("roles", Some("team")),
            target: None,
            body: |u| role("Role", &format!("{u}-obj"), Some("team"), json!([rule(&["*"], &["*"], &["*"])])),
            want: Want::Allowed,
        },
        Case {
            name: "patching one's own Role given escalate on it by name",
            cluster: json!([]),
            team: json!([
                rule(&["rbac.authorization.k8s.io"], &["roles"], &["get", "patch"]),
                named_rule(&["rbac.authorization.k8s.io"], &["roles"], &["escalate"], &["{user}-t"])
            ]),
            method: "PATCH",
            resource: ("roles", Some("team")),
            target: Some("{user}-t"),
            body: |_| json!({"metadata": {"labels": {"a": "b"}}, "rules": [rule(&["*"], &["*"], &["*"])]}),
            want: Want::Allowed,
        },
        Case {
            name: "a rolebinding to cluster-admin given bind on it by name",
            cluster: json!([]),
            team: json!([
                rule(&["rbac.authorization.k8s.io"], &["rolebindings"], &["create"]),
                named_rule(&["rbac.authorization.k8s.io"], &["clusterroles"], &["bind"], &["cluster-admin"])
            ]),
            method: "POST",
            resource: ("rolebindings", Some("team")),
            target: None,
            body: |u| binding("RoleBinding", &format!("{u}-obj"), Some("team"), "ClusterRole", "cluster-admin", u),
            want: Want::Allowed,
        },
        Case {
            name: "a clusterrolebinding given bind on clusterroles",
            cluster: json!([
                rule(&["rbac.authorization.k8s.io"], &["clusterrolebindings"], &["create"]),
                rule(&["rbac.authorization.k8s.io"], &["clusterroles"], &["bind"])
            ]),
            team: json!([]),
            method: "POST",
            resource: ("clusterrolebindings", None),
            target: None,
            body: |u| binding("ClusterRoleBinding", &format!("{u}-obj"), None, "ClusterRole", "cluster-admin", u),
            want: Want::Allowed,
        },
        Case {
            name: "a rolebinding to a role whose permissions are held",
            cluster: json!([]),
            team: json!([
                rule(&["rbac.authorization.k8s.io"], &["rolebindings"], &["create"]),
                rule(&[""], &["secrets"], &["*"])
            ]),
            method: "POST",
            resource: ("rolebindings", Some("team")),
            target: None,
            body: |u| binding("RoleBinding", &format!("{u}-obj"), Some("team"), "ClusterRole", "secret-reader", u),
            want: Want::Allowed,
        },
        Case {
            name: "a ClusterRole covered by a cluster-wide * rule",
            cluster: json!([rule(&["*"], &["*"], &["*"])]),
            team: json!([]),
            method: "POST",
            resource: ("clusterroles", None),
            target: None,
            body: |u| {
                role(
                    "ClusterRole",
                    &format!("{u}-obj"),
                    None,
                    json!([named_rule(&["batch"], &["jobs/status"], &["patch"], &["j"])]),
                )
            },
            want: Want::Allowed,
        },
        Case {
            name: "a finalizer change only on someone else's binding to cluster-admin",
            cluster: json!([]),
            team: json!([rule(&["rbac.authorization.k8s.io"], &["rolebindings"], &["patch"])]),
            method: "PATCH",
            resource: ("rolebindings", Some("team")),
            target: Some("existing"),
            body: |_| json!({"metadata": {"finalizers": ["example.com/hold"]}}),
            want: Want::Allowed,
        },
    ];
    let mut failures = vec![];
    for (i, c) in cases.iter().enumerate() {
        let user = format!("u{i}");
        let for_user = |v: &Value| serde_json::from_str(&v.to_string().replace("{user}", &user)).unwrap();
        grant(&admin, &user, for_user(&c.cluster), for_user(&c.team)).await;
        let client =
            server.client_with_token(Some(&server.token_for(UserInfo { name: user.clone(), ..UserInfo::default() })));
        let target = c.target.map(|t| t.replace("{user}", &user));
        let mut p = path(c.resource.0, c.resource.1);
        if let Some(t) = &target {
            p = format!("{p}/{t}");
        }
        let got = call(&client, c.method, &p, Some((c.body)(&user)), &[]).await;
        let ok = match (&c.want, &got) {
            (Want::Allowed, Ok(_)) => true,
            (Want::Escalation(object, missing), Err((403, reason, m))) => {
                let want = format!(
                    "{}.rbac.authorization.k8s.io {:?} is forbidden: user {user:?} (groups={GROUPS}) is attempting to grant RBAC permissions not currently held:\n{missing}",
                    c.resource.0,
                    object.replace("{user}", &user)
                );
                reason == "Forbidden" && *m == want
            }
            (Want::Error(code, msg), Err((c2, _, m))) => code == c2 && m.contains(msg),
            _ => false,
        };
        if !ok {
            failures.push(format!("{}: got {got:?}", c.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases wrong:\n{}", failures.len(), cases.len(), failures.join("\n"));

    // The refused bindings granted nothing: u0 still cannot read Secrets.
    let u0 = server.client_with_token(Some(&server.token_for(UserInfo { name: "u0".into(), ..UserInfo::default() })));
    let (code, _, _) = call(&u0, "GET", "/api/v1/namespaces/team/secrets", None, &[]).await.unwrap_err();
    assert_eq!(code, 403);
    // The refused patch left u3's role as it was.
    let r = call(&admin, "GET", &format!("{}/u3-t", path("roles", Some("team"))), None, &[]).await.unwrap();
    assert_eq!(r["rules"].as_array().unwrap().len(), 1, "{r}");
    // system:masters may grant anything.
    let b = binding("ClusterRoleBinding", "by-admin", None, "ClusterRole", "cluster-admin", "someone");
    admin_ok(&admin, "POST", &path("clusterrolebindings", None), b).await;
}

#[tokio::test]
async fn one_query_parse_for_the_authorizer_and_the_handler() {
    let (server, admin) = setup().await;
    for name in ["app-config", "db-password", "tls-key"] {
        let s = json!({"metadata": {"name": name}, "stringData": {"k": name}});
        admin_ok(&admin, "POST", "/api/v1/namespaces/team/secrets", s).await;
    }
    grant(&admin, "limited", json!([]), json!([named_rule(&[""], &["secrets"], &["get", "list"], &["app-config"])]))
        .await;
    let client =
        server.client_with_token(Some(&server.token_for(UserInfo { name: "limited".into(), ..UserInfo::default() })));
    let list = |q: &'static str| {
        let client = client.clone();
        async move { call(&client, "GET", &format!("/api/v1/namespaces/team/secrets?{q}"), None, &[]).await }
    };
    let names = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
    };
    // Allowed: the one name.
    assert_eq!(names(&list("fieldSelector=metadata.name%3Dapp-config").await.unwrap()), ["app-config"]);
    // A first value that is not UTF-8 once decoded is still the first value, for both.
    for q in [
        "fieldSelector=%FF&fieldSelector=metadata.name%3Dapp-config",
        "fieldSelector=metadata.name%3D%FF&fieldSelector=metadata.name%3Dapp-config",
        "fieldSelector=metadata.name%21%3D%FF&fieldSelector=metadata.name%3Dapp-config",
        "fieldSelector=&fieldSelector=metadata.name%3Dapp-config",
    ] {
        let (code, _, msg) = list(q).await.expect_err(q);
        assert_eq!(code, 403, "{q}: {msg}");
    }
    // A pair Go drops (a malformed escape) is dropped for both: the second value rules.
    assert_eq!(
        names(&list("fieldSelector=%zz&fieldSelector=metadata.name%3Dapp-config").await.unwrap()),
        ["app-config"]
    );
    // Plain listing is refused; an unlimited reader sees all three.
    assert_eq!(list("").await.unwrap_err().0, 403);
    assert_eq!(names(&call(&admin, "GET", "/api/v1/namespaces/team/secrets", None, &[]).await.unwrap()).len(), 3);
}

#[tokio::test]
async fn impersonation_is_authorized_by_the_impersonate_verb() {
    let (server, admin) = setup().await;
    let weak =
        server.client_with_token(Some(&server.token_for(UserInfo { name: "weak".into(), ..UserInfo::default() })));
    let secrets = "/api/v1/namespaces/team/secrets";
    // A weak user may not impersonate anyone: upstream's 403 for the impersonate check.
    let (code, reason, msg) =
        call(&weak, "GET", secrets, None, &[("Impersonate-User", "kubernetes-admin")]).await.unwrap_err();
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        r#"users "kubernetes-admin" is forbidden: User "weak" cannot impersonate resource "users" in API group "" at the cluster scope"#
    );
    let (code, _, msg) =
        call(&weak, "GET", secrets, None, &[("Impersonate-User", "weak"), ("Impersonate-Group", "system:masters")])
            .await
            .unwrap_err();
    assert_eq!(code, 403);
    assert!(msg.starts_with(r#"users "weak" is forbidden: User "weak" cannot impersonate"#), "{msg}");
    // The admin impersonating bob runs as bob (not as admin): bob may not read secrets.
    let (code, _, msg) = call(&admin, "GET", secrets, None, &[("Impersonate-User", "bob")]).await.unwrap_err();
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        r#"secrets is forbidden: User "bob" cannot list resource "secrets" in API group "" in the namespace "team""#
    );
    // ... and with a group bound to a reader, bob reads.
    let b = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "readers", "namespace": "team"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "secret-reader"},
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "readers"}]});
    admin_ok(&admin, "POST", &path("rolebindings", Some("team")), b).await;
    call(&admin, "GET", secrets, None, &[("Impersonate-User", "bob"), ("Impersonate-Group", "readers")]).await.unwrap();
    // Granted impersonate on users/bob and groups/readers only.
    grant(
        &admin,
        "weak",
        json!([
            named_rule(&[""], &["users"], &["impersonate"], &["bob"]),
            named_rule(&[""], &["groups"], &["impersonate"], &["readers"]),
            named_rule(&["authentication.k8s.io"], &["userextras/scopes"], &["impersonate"], &["view"])
        ]),
        json!([]),
    )
    .await;
    call(
        &weak,
        "GET",
        secrets,
        None,
        &[("Impersonate-User", "bob"), ("Impersonate-Group", "readers"), ("Impersonate-Extra-Scopes", "view")],
    )
    .await
    .unwrap();
    let (code, _, msg) =
        call(&weak, "GET", secrets, None, &[("Impersonate-User", "bob"), ("Impersonate-Group", "system:masters")])
            .await
            .unwrap_err();
    assert_eq!(
        (code, msg.as_str()),
        (
            403,
            r#"groups "system:masters" is forbidden: User "weak" cannot impersonate resource "groups" in API group "" at the cluster scope"#
        )
    );
    let (code, _, msg) = call(&weak, "GET", secrets, None, &[("Impersonate-User", "bob"), ("Impersonate-Uid", "1234")])
        .await
        .unwrap_err();
    assert_eq!(
        (code, msg.as_str()),
        (
            403,
            r#"uids.authentication.k8s.io "1234" is forbidden: User "weak" cannot impersonate resource "uids" in API group "authentication.k8s.io" at the cluster scope"#
        )
    );
    let (code, _, msg) =
        call(&weak, "GET", secrets, None, &[("Impersonate-User", "bob"), ("Impersonate-Extra-Scopes", "admin")])
            .await
            .unwrap_err();
    assert_eq!(code, 403);
    assert!(
        msg.contains(r#"cannot impersonate resource "userextras/scopes" in API group "authentication.k8s.io""#),
        "{msg}"
    );
    // A ServiceAccount user is checked as serviceaccounts in its namespace.
    let (code, _, msg) =
        call(&weak, "GET", secrets, None, &[("Impersonate-User", "system:serviceaccount:team:runner")])
            .await
            .unwrap_err();
    assert_eq!(
        (code, msg.as_str()),
        (
            403,
            r#"serviceaccounts "runner" is forbidden: User "weak" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "team""#
        )
    );
    // Groups without a user: upstream's internal error.
    let (code, reason, msg) =
        call(&admin, "GET", secrets, None, &[("Impersonate-Group", "readers")]).await.unwrap_err();
    assert_eq!((code, reason.as_str()), (500, "InternalError"));
    assert_eq!(msg, "Internal error occurred: requested [{Group  readers    }] without impersonating a user");

    // The decision log names both the impersonated and the real user.
    let d = server.authorization_decisions();
    assert!(d.iter().any(|d| d.user == "bob"
        && d.impersonator.as_deref() == Some("weak")
        && d.allowed
        && d.attributes.resource == "secrets"));
    assert!(d.iter().any(|d| d.user == "bob" && d.impersonator.as_deref() == Some("kubernetes-admin") && !d.allowed));
    assert!(d.iter().any(|d| d.user == "weak" && d.attributes.verb == "impersonate" && d.impersonator.is_none()));

    // Through the real kubectl: --as / --as-group, and whoami reports the impersonated user.
    let kubectl = server.kubectl();
    let err = kubectl.fail(&["get", "secrets", "-n", "team", "--as", "bob"]).await;
    assert!(err.contains(r#"User "bob" cannot list resource "secrets""#), "{err}");
    kubectl.ok(&["get", "secrets", "-n", "team", "--as", "bob", "--as-group", "readers"]).await;
    let who = kubectl.ok(&["auth", "whoami", "--as", "bob", "--as-group", "readers", "-o", "json"]).await;
    let who: Value = serde_json::from_str(&who).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "bob");
    assert_eq!(who["status"]["userInfo"]["groups"], json!(["readers", "system:authenticated"]));
}

#[tokio::test]
async fn kubectl_auth_can_i() {
    let (server, admin) = setup().await;
    let kubectl = server.service_account_kubectl("team", "runner");
    let can = |args: &'static [&'static str]| {
        let k = &kubectl;
        async move {
            let out = k.run(args).await;
            (out.success, out.stdout.trim().to_string())
        }
    };
    assert_eq!(can(&["auth", "can-i", "list", "pods", "-n", "team"]).await, (false, "no".to_string()));
    let b = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "runner", "namespace": "team"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "secret-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "team"}]});
    admin_ok(&admin, "POST", &path("rolebindings", Some("team")), b).await;
    assert_eq!(can(&["auth", "can-i", "list", "secrets", "-n", "team"]).await, (true, "yes".to_string()));
    assert_eq!(can(&["auth", "can-i", "delete", "secrets", "-n", "team"]).await, (false, "no".to_string()));
    assert_eq!(can(&["auth", "can-i", "list", "secrets", "-n", "default"]).await, (false, "no".to_string()));
    assert_eq!(can(&["auth", "can-i", "get", "/healthz"]).await, (true, "yes".to_string()));
    let list = kubectl.ok(&["auth", "can-i", "--list", "-n", "team"]).await;
    let secrets_row = list.lines().find(|l| l.starts_with("secrets ")).unwrap_or_else(|| panic!("{list}"));
    assert!(secrets_row.contains("[get list]"), "{list}");
    // The admin may do anything, and may ask about others (SubjectAccessReview).
    assert_eq!(server.kubectl().ok(&["auth", "can-i", "*", "*"]).await.trim(), "yes");
    let out = server
        .kubectl()
        .ok(&["auth", "can-i", "list", "secrets", "-n", "team", "--as", "system:serviceaccount:team:runner"])
        .await;
    assert_eq!(out.trim(), "yes");
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "system:serviceaccount:team:runner", "resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": "team"}}});
    let r = call(&admin, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", Some(sar.clone()), &[])
        .await
        .unwrap();
    assert_eq!(r["status"]["allowed"], true);
    // Asking about others needs create on subjectaccessreviews.
    let runner = server.service_account_client("team", "runner");
    let (code, _, _) =
        call(&runner, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", Some(sar), &[]).await.unwrap_err();
    assert_eq!(code, 403);
    // A review with neither attribute set is invalid, as upstream.
    let bad = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}});
    let (code, _, msg) =
        call(&runner, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", Some(bad), &[])
            .await
            .unwrap_err();
    assert_eq!(code, 422);
    assert_eq!(
        msg,
        r#"SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified"#
    );
}

#[tokio::test]
async fn secrets_keep_string_data_out_of_storage() {
    let server = TestApiServer::start_rbac().await;
    let kubectl: Kubectl = server.kubectl();
    let manifest = r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret, user: admin}
data: {user: b2xk}
"#;
    let out = kubectl.run_stdin(&["create", "-f", "-"], manifest).await;
    assert!(out.success, "{}", out.stderr);
    let got: Value = serde_json::from_str(&kubectl.ok(&["get", "secret", "creds", "-o", "json"]).await).unwrap();
    assert_eq!(got["type"], "Opaque");
    assert_eq!(got["data"], json!({"password": "czNjcmV0", "user": "YWRtaW4="}));
    assert!(got.get("stringData").is_none(), "{got}");
    // A patch with stringData merges too.
    kubectl.ok(&["patch", "secret", "creds", "--type", "merge", "-p", r#"{"stringData": {"token": "t"}}"#]).await;
    let got: Value = serde_json::from_str(&kubectl.ok(&["get", "secret", "creds", "-o", "json"]).await).unwrap();
    assert_eq!(got["data"]["token"], "dA==");
    assert!(got.get("stringData").is_none());
    // The stored bytes hold no stringData either.
    let stored = server.store().get("/secrets", "default", "creds").unwrap();
    assert!(!String::from_utf8_lossy(&stored.bytes()).contains("stringData"));
}

#[tokio::test]
async fn kubectl_create_rbac_objects_and_see_the_refusal() {
    let (server, admin) = setup().await;
    let kubectl = server.kubectl();
    kubectl.ok(&["create", "role", "pod-reader", "-n", "team", "--verb=get,list", "--resource=pods"]).await;
    kubectl.ok(&["create", "clusterrole", "node-reader", "--verb=get", "--resource=nodes"]).await;
    kubectl
        .ok(&["create", "rolebinding", "rb", "-n", "team", "--role=pod-reader", "--serviceaccount=team:runner"])
        .await;
    kubectl
        .ok(&["create", "clusterrolebinding", "crb", "--clusterrole=node-reader", "--user=alice", "--group=devs"])
        .await;
    let rb = call(&admin, "GET", &format!("{}/rb", path("rolebindings", Some("team"))), None, &[]).await.unwrap();
    assert_eq!(rb["roleRef"], json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"}));
    assert_eq!(rb["subjects"], json!([{"kind": "ServiceAccount", "name": "runner", "namespace": "team"}]));
    let crb = call(&admin, "GET", &format!("{}/crb", path("clusterrolebindings", None)), None, &[]).await.unwrap();
    assert_eq!(crb["subjects"].as_array().unwrap().len(), 2, "{crb}");
    let role = call(&admin, "GET", &format!("{}/pod-reader", path("roles", Some("team"))), None, &[]).await.unwrap();
    assert_eq!(role["rules"], json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]));
    // A user allowed to create clusterrolebindings but holding nothing else is refused by kubectl too.
    grant(
        &admin,
        "mallory",
        json!([rule(&["rbac.authorization.k8s.io"], &["clusterrolebindings"], &["create"])]),
        json!([]),
    )
    .await;
    let token = server.token_for(UserInfo { name: "mallory".into(), ..UserInfo::default() });
    let mallory = Kubectl::with_token(&server.kubeconfig_url(), Some(&token));
    let err =
        mallory.fail(&["create", "clusterrolebinding", "own", "--clusterrole=cluster-admin", "--user=mallory"]).await;
    assert!(
        err.contains(r#"clusterrolebindings.rbac.authorization.k8s.io "own" is forbidden: user "mallory" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#),
        "{err}"
    );
}
