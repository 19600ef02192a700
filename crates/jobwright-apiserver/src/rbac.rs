//! RBAC evaluation (rbac.authorization.k8s.io/v1), as pure functions over stored objects.
//!
//! This is the decision half of RBAC enforcement: given who is asking ([`UserInfo`]), what they
//! ask ([`Attributes`]) and the stored ClusterRoles, ClusterRoleBindings, Roles and RoleBindings,
//! [`authorize`] says whether some bound rule allows it, with upstream's matching rules:
//! `*` in verbs / apiGroups / resources, `resource/subresource` and `*/subresource` and
//! `resource/*` forms, `resourceNames` (which never match a request without a name), and
//! `nonResourceURLs` (exact, or a prefix ending in `*`). A RoleBinding grants only in its own
//! namespace. [`forbidden_message`] words a denial as kube-apiserver does.
//!
//! [`super::auth`] calls it for every request when the server runs with `--authorization-mode
//! RBAC`.

use serde_json::Value;

/// The authenticated user of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// `system:serviceaccount:NS:NAME` for a ServiceAccount.
    pub name: String,
    /// Groups, e.g. `system:serviceaccounts`, `system:authenticated`.
    pub groups: Vec<String>,
    /// The user's uid (RBAC does not use it).
    pub uid: String,
    /// Extra attributes (from `Impersonate-Extra-*`; RBAC does not use them).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
    /// The authenticated user acting as this one through impersonation headers, if any.
    pub impersonator: Option<String>,
}

impl UserInfo {
    /// The user a ServiceAccount token authenticates as, with the groups upstream gives it.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
            ..Self::default()
        }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// get, list, watch, create, update, patch, delete, deletecollection (lower case).
    pub verb: String,
    /// Whether this is a request on a resource (else on a path such as `/healthz`).
    pub resource_request: bool,
    /// API group, `""` for core.
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource, `""` for none.
    pub subresource: String,
    /// Namespace, `""` for cluster scope.
    pub namespace: String,
    /// Object name, `""` for list/create/deletecollection.
    pub name: String,
    /// The URL path, for non-resource requests.
    pub path: String,
}

impl Attributes {
    /// The attributes of a resource request.
    pub fn resource(verb: &str, group: &str, resource: &str, subresource: &str, namespace: &str, name: &str) -> Self {
        Self {
            verb: verb.into(),
            resource_request: true,
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            path: String::new(),
        }
    }
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// Whether one PolicyRule allows `a`.
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = strs(&rule["verbs"]);
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    if !a.resource_request {
        return strs(&rule["nonResourceURLs"]).iter().any(|u| {
            *u == "*" || *u == a.path || u.strip_suffix('*').is_some_and(|prefix| a.path.starts_with(prefix))
        });
    }
    if !strs(&rule["apiGroups"]).iter().any(|g| *g == "*" || *g == a.group) {
        return false;
    }
    let combined =
        if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
    let resource_ok = strs(&rule["resources"]).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!a.subresource.is_empty()
                && (*r == format!("*/{}", a.subresource) || *r == format!("{}/*", a.resource)))
    });
    if !resource_ok {
        return false;
    }
    let names = strs(&rule["resourceNames"]);
    names.is_empty() || names.contains(&a.name.as_str())
}

fn subject_matches(subject: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or_default();
    match subject["kind"].as_str().unwrap_or_default() {
        "User" => name == user.name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn named<'a>(objects: &'a [Value], namespace: Option<&str>, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| {
        o["metadata"]["name"].as_str() == Some(name)
            && namespace.is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
    })
}

/// The stored RBAC objects [`authorize`] evaluates.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// ClusterRole objects.
    pub cluster_roles: Vec<Value>,
    /// ClusterRoleBinding objects.
    pub cluster_role_bindings: Vec<Value>,
    /// Role objects (any namespace).
    pub roles: Vec<Value>,
    /// RoleBinding objects (any namespace).
    pub role_bindings: Vec<Value>,
}

/// Whether some rule bound to `user` allows `a`.
pub fn authorize(policy: &Policy, user: &UserInfo, a: &Attributes) -> bool {
    let rules_allow = |role: Option<&Value>| {
        role.is_some_and(|r| r["rules"].as_array().is_some_and(|rs| rs.iter().any(|x| rule_allows(x, a))))
    };
    let bound = |b: &Value, ns: &str| strs_subjects(b).iter().any(|s| subject_matches(s, user, ns));
    for b in &policy.cluster_role_bindings {
        if bound(b, "") && b["roleRef"]["kind"] == "ClusterRole" {
            let role = named(&policy.cluster_roles, None, b["roleRef"]["name"].as_str().unwrap_or_default());
            if rules_allow(role) {
                return true;
            }
        }
    }
    if a.namespace.is_empty() {
        return false;
    }
    for b in &policy.role_bindings {
        if b["metadata"]["namespace"].as_str() != Some(a.namespace.as_str()) || !bound(b, &a.namespace) {
            continue;
        }
        let ref_name = b["roleRef"]["name"].as_str().unwrap_or_default();
        let role = match b["roleRef"]["kind"].as_str() {
            Some("ClusterRole") => named(&policy.cluster_roles, None, ref_name),
            Some("Role") => named(&policy.roles, Some(&a.namespace), ref_name),
            _ => None,
        };
        if rules_allow(role) {
            return true;
        }
    }
    false
}

fn strs_subjects(b: &Value) -> Vec<&Value> {
    b["subjects"].as_array().map(|s| s.iter().collect()).unwrap_or_default()
}

/// kube-apiserver's denial message: `pods "x" is forbidden: User "u" cannot create resource
/// "pods" in API group "" in the namespace "default"`; `... at the cluster scope` without a
/// namespace; `User "u" cannot get path "/x"` for non-resource requests. `resource` and name
/// prefix: `pods "x"` with a name, `pods` without, `pods.batch`-style group resource otherwise.
pub fn forbidden_message(user: &UserInfo, a: &Attributes) -> String {
    let reason = if !a.resource_request {
        return format!("forbidden: User {:?} cannot {} path {:?}", user.name, a.verb, a.path);
    } else {
        let resource =
            if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
        if a.namespace.is_empty() {
            format!(
                "User {:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                user.name, a.verb, a.group
            )
        } else {
            format!(
                "User {:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                user.name, a.verb, a.group, a.namespace
            )
        }
    };
    let gr = if a.group.is_empty() { a.resource.clone() } else { format!("{}.{}", a.resource, a.group) };
    if a.name.is_empty() {
        format!("{gr} is forbidden: {reason}")
    } else {
        format!("{gr} {:?} is forbidden: {reason}", a.name)
    }
}

// ---------------------------------------------------------------------------------------------
// Escalation prevention (upstream's pkg/registry/rbac/validation and component-helpers' Covers)

/// The group of the RBAC kinds.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The rules upstream's bootstrap policy binds to `system:authenticated`: `system:discovery` and
/// `system:public-info-viewer` (get on the discovery, OpenAPI, version and health paths) and
/// `system:basic-user` (create SelfSubjectAccessReviews, SelfSubjectRulesReviews and
/// SelfSubjectReviews). jobwright builds them in rather than storing them as objects.
pub fn authenticated_rules() -> Vec<Value> {
    vec![
        serde_json::json!({"nonResourceURLs": DISCOVERY_PATHS, "verbs": ["get"]}),
        serde_json::json!({"apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]}),
        serde_json::json!({"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
            "verbs": ["create"]}),
    ]
}

/// The non-resource paths of [`authenticated_rules`] (a trailing `*` matches any suffix).
pub const DISCOVERY_PATHS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
];

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";

/// A referenced role that does not exist (`GetRoleReferenceRules`' not-found error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleNotFound {
    /// `roles` or `clusterroles`.
    pub resource: &'static str,
    /// The role's name.
    pub name: String,
}

/// The rules a binding's `roleRef` grants (`GetRoleReferenceRules`): a Role in the binding's
/// namespace, or a ClusterRole.
pub fn role_ref_rules(policy: &Policy, role_ref: &Value, binding_ns: &str) -> Result<Vec<Value>, RoleNotFound> {
    let name = role_ref["name"].as_str().unwrap_or_default();
    let (role, resource) = match role_ref["kind"].as_str() {
        Some("Role") => (named(&policy.roles, Some(binding_ns), name), "roles"),
        _ => (named(&policy.cluster_roles, None, name), "clusterroles"),
    };
    let role = role.ok_or_else(|| RoleNotFound { resource, name: name.to_string() })?;
    Ok(role["rules"].as_array().cloned().unwrap_or_default())
}

/// Every rule that applies to `user` in `namespace` (`RulesFor`): the built-in rules of
/// `system:authenticated`, the ClusterRoles bound by ClusterRoleBindings, and the roles bound by
/// RoleBindings in `namespace` (none for `""`).
pub fn rules_for(policy: &Policy, user: &UserInfo, namespace: &str) -> Vec<Value> {
    let mut out = vec![];
    if user.groups.iter().any(|g| g == AUTHENTICATED) {
        out.extend(authenticated_rules());
    }
    let bound = |b: &Value, ns: &str| strs_subjects(b).iter().any(|s| subject_matches(s, user, ns));
    for b in policy.cluster_role_bindings.iter().filter(|b| bound(b, "")) {
        if b["roleRef"]["kind"] == "ClusterRole" {
            out.extend(role_ref_rules(policy, &b["roleRef"], "").unwrap_or_default());
        }
    }
    if !namespace.is_empty() {
        for b in &policy.role_bindings {
            if b["metadata"]["namespace"].as_str() == Some(namespace) && bound(b, namespace) {
                out.extend(role_ref_rules(policy, &b["roleRef"], namespace).unwrap_or_default());
            }
        }
    }
    out
}

/// A PolicyRule as plain lists (absent fields empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// `verbs`.
    pub verbs: Vec<String>,
    /// `apiGroups`.
    pub api_groups: Vec<String>,
    /// `resources`.
    pub resources: Vec<String>,
    /// `resourceNames`.
    pub resource_names: Vec<String>,
    /// `nonResourceURLs`.
    pub non_resource_urls: Vec<String>,
}

impl Rule {
    /// Read a PolicyRule object.
    pub fn from_json(v: &Value) -> Self {
        let owned = |k: &str| strs(&v[k]).into_iter().map(str::to_string).collect::<Vec<_>>();
        Self {
            verbs: owned("verbs"),
            api_groups: owned("apiGroups"),
            resources: owned("resources"),
            resource_names: owned("resourceNames"),
            non_resource_urls: owned("nonResourceURLs"),
        }
    }

    /// Upstream's `CompactString`: `{APIGroups:["a"], Resources:["b"], Verbs:["get"]}`, empty
    /// fields left out.
    pub fn compact_string(&self) -> String {
        let parts: Vec<String> = [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}:{}", go_quoted_list(v)))
        .collect();
        format!("{{{}}}", parts.join(", "))
    }
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub fn go_quoted_list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", q.join(" "))
}

/// `BreakdownRule`: one rule per (group, resource, verb[, name]) and per (URL, verb).
fn breakdown(rule: &Rule) -> Vec<Rule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = vec![];
    for g in &rule.api_groups {
        for r in &rule.resources {
            for v in &rule.verbs {
                let base = Rule { api_groups: one(g), resources: one(r), verbs: one(v), ..Rule::default() };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for n in &rule.resource_names {
                        out.push(Rule { resource_names: one(n), ..base.clone() });
                    }
                }
            }
        }
    }
    for u in &rule.non_resource_urls {
        for v in &rule.verbs {
            out.push(Rule { non_resource_urls: one(u), verbs: one(v), ..Rule::default() });
        }
    }
    out
}

fn has(set: &[String], x: &str) -> bool {
    set.iter().any(|s| s == x)
}

fn has_all(set: &[String], xs: &[String]) -> bool {
    xs.iter().all(|x| has(set, x))
}

/// `ruleCovers`: whether `owner` allows everything the broken-down `sub` does.
fn rule_covers(owner: &Rule, sub: &Rule) -> bool {
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, "*") || has_all(&owner.api_groups, &sub.api_groups);
    let resources = has(&owner.resources, "*")
        || sub.resources.iter().all(|r| {
            has(&owner.resources, r)
                || r.split_once('/').is_some_and(|(_, subres)| has(&owner.resources, &format!("*/{subres}")))
        });
    let urls = sub.non_resource_urls.iter().all(|p| {
        owner.non_resource_urls.iter().any(|o| o == p || o.strip_suffix('*').is_some_and(|pre| p.starts_with(pre)))
    });
    let names = owner.resource_names.is_empty()
        || (!sub.resource_names.is_empty() && has_all(&owner.resource_names, &sub.resource_names));
    verbs && groups && resources && urls && names
}

/// `Covers`: the broken-down parts of `servant` that no rule of `owner` covers (empty: covered).
pub fn uncovered(owner: &[Rule], servant: &[Rule]) -> Vec<Rule> {
    servant.iter().flat_map(breakdown).filter(|sub| !owner.iter().any(|o| rule_covers(o, sub))).collect()
}

/// `CompactRules`: rules with one group and one resource and nothing else that differ only in
/// verbs become one rule (verbs in order of appearance).
pub fn compact(rules: Vec<Rule>) -> Vec<Rule> {
    let mut out: Vec<Rule> = vec![];
    let mut simple: Vec<Rule> = vec![];
    for r in rules {
        let is_simple = r.resource_names.is_empty()
            && r.non_resource_urls.is_empty()
            && r.api_groups.len() == 1
            && r.resources.len() == 1;
        if !is_simple {
            out.push(r);
        } else if let Some(s) = simple.iter_mut().find(|s| s.api_groups == r.api_groups && s.resources == r.resources) {
            s.verbs.extend(r.verbs);
        } else {
            simple.push(r);
        }
    }
    out.extend(simple);
    out
}

/// `ConfirmNoEscalation`: `Ok` when `owner` (the user's rules in the request's namespace) covers
/// every rule in `granted`, else upstream's message: `user "u" (groups=["g"]) is attempting to
/// grant RBAC permissions not currently held:` and one line per missing rule, sorted and
/// deduplicated.
pub fn confirm_no_escalation(owner: &[Value], granted: &[Value], user: &UserInfo) -> Result<(), String> {
    let owner: Vec<Rule> = owner.iter().map(Rule::from_json).collect();
    let granted: Vec<Rule> = granted.iter().map(Rule::from_json).collect();
    let missing = uncovered(&owner, &granted);
    if missing.is_empty() {
        return Ok(());
    }
    let lines: std::collections::BTreeSet<String> = compact(missing).iter().map(Rule::compact_string).collect();
    Err(format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        go_quoted_list(&user.groups),
        lines.into_iter().collect::<Vec<_>>().join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes::resource(verb, group, resource, sub, ns, name)
    }

    #[test]
    fn rule_shapes() {
        let r = json!({"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["patch", "update"]});
        assert!(rule_allows(&r, &attrs("patch", "batch", "jobs", "status", "d", "j")));
        assert!(!rule_allows(&r, &attrs("patch", "batch", "jobs", "", "d", "j")), "status only");
        assert!(!rule_allows(&r, &attrs("get", "batch", "jobs", "status", "d", "j")), "verb");
        assert!(!rule_allows(&r, &attrs("patch", "", "jobs", "status", "d", "j")), "group");
        let star = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        assert!(rule_allows(&star, &attrs("delete", "", "nodes", "", "", "n")));
        let subs = json!({"apiGroups": [""], "resources": ["*/status", "pods/*"], "verbs": ["get"]});
        assert!(rule_allows(&subs, &attrs("get", "", "nodes", "status", "", "n")));
        assert!(rule_allows(&subs, &attrs("get", "", "pods", "log", "d", "p")));
        assert!(!rule_allows(&subs, &attrs("get", "", "pods", "", "d", "p")));
        let names = json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create"],
            "resourceNames": ["lock"]});
        assert!(rule_allows(&names, &attrs("get", "coordination.k8s.io", "leases", "", "d", "lock")));
        assert!(!rule_allows(&names, &attrs("get", "coordination.k8s.io", "leases", "", "d", "other")));
        assert!(!rule_allows(&names, &attrs("create", "coordination.k8s.io", "leases", "", "d", "")), "no name");
        let urls = json!({"nonResourceURLs": ["/healthz", "/metrics/*"], "verbs": ["get"]});
        let path = |p: &str| Attributes { verb: "get".into(), path: p.into(), ..Default::default() };
        assert!(rule_allows(&urls, &path("/healthz")));
        assert!(rule_allows(&urls, &path("/metrics/x")));
        assert!(!rule_allows(&urls, &path("/version")));
    }

    #[test]
    fn bindings_grant_to_their_subjects_and_namespace() {
        let sa = UserInfo::service_account("ops", "ctl");
        let policy = Policy {
            cluster_roles: vec![
                json!({"metadata": {"name": "pods"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]}),
            ],
            cluster_role_bindings: vec![],
            roles: vec![
                json!({"metadata": {"name": "leases", "namespace": "ops"}, "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]}]}),
            ],
            role_bindings: vec![
                json!({"metadata": {"name": "b1", "namespace": "ops"}, "roleRef": {"kind": "Role", "name": "leases"},
                    "subjects": [{"kind": "ServiceAccount", "name": "ctl"}]}),
                json!({"metadata": {"name": "b2", "namespace": "default"}, "roleRef": {"kind": "ClusterRole", "name": "pods"},
                    "subjects": [{"kind": "Group", "name": "system:serviceaccounts:ops"}]}),
            ],
        };
        assert!(authorize(&policy, &sa, &attrs("get", "coordination.k8s.io", "leases", "", "ops", "l")));
        assert!(!authorize(&policy, &sa, &attrs("get", "coordination.k8s.io", "leases", "", "default", "l")));
        assert!(authorize(&policy, &sa, &attrs("create", "", "pods", "", "default", "")));
        assert!(!authorize(&policy, &sa, &attrs("create", "", "pods", "", "ops", "")));
        let other = UserInfo::service_account("default", "ctl");
        assert!(!authorize(&policy, &other, &attrs("get", "coordination.k8s.io", "leases", "", "ops", "l")));
        let mut p2 = policy.clone();
        p2.cluster_role_bindings
            .push(json!({"metadata": {"name": "c"}, "roleRef": {"kind": "ClusterRole", "name": "pods"},
            "subjects": [{"kind": "User", "name": "system:serviceaccount:default:ctl"}]}));
        assert!(authorize(&p2, &other, &attrs("create", "", "pods", "", "anywhere", "")));
    }

    #[test]
    fn denial_messages_match_upstream() {
        let sa = UserInfo::service_account("ns", "sa");
        assert_eq!(
            forbidden_message(&sa, &attrs("create", "", "pods", "", "default", "x")),
            r#"pods "x" is forbidden: User "system:serviceaccount:ns:sa" cannot create resource "pods" in API group "" in the namespace "default""#
        );
        assert_eq!(
            forbidden_message(&sa, &attrs("delete", "", "nodes", "", "", "n1")),
            r#"nodes "n1" is forbidden: User "system:serviceaccount:ns:sa" cannot delete resource "nodes" in API group "" at the cluster scope"#
        );
        assert_eq!(
            forbidden_message(&sa, &attrs("list", "batch", "jobs", "", "", "")),
            r#"jobs.batch is forbidden: User "system:serviceaccount:ns:sa" cannot list resource "jobs" in API group "batch" at the cluster scope"#
        );
        assert_eq!(
            forbidden_message(&sa, &attrs("patch", "batch", "jobs", "status", "d", "j")),
            r#"jobs.batch "j" is forbidden: User "system:serviceaccount:ns:sa" cannot patch resource "jobs/status" in API group "batch" in the namespace "d""#
        );
    }

    fn rules(v: Value) -> Vec<Value> {
        v.as_array().unwrap().clone()
    }

    #[test]
    fn covers_as_upstream_policy_comparator() {
        let user = UserInfo { name: "u".into(), groups: vec!["g1".into(), "g2".into()], ..UserInfo::default() };
        let check = |owner: Value, granted: Value| confirm_no_escalation(&rules(owner), &rules(granted), &user);
        // Exact, star and subset coverage.
        let owner = json!([{"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "list"]}]);
        assert!(check(owner.clone(), json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])).is_ok());
        assert!(check(json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            json!([{"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["patch"], "resourceNames": ["j"]}])).is_ok());
        // `*/status` covers any resource's status; `pods` does not cover `pods/log`.
        assert!(
            check(
                json!([{"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]}]),
                json!([{"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["get"]}])
            )
            .is_ok()
        );
        assert!(
            check(owner.clone(), json!([{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}])).is_err()
        );
        // resourceNames: an owner limited to names covers those names only, never "all names".
        let named =
            json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["a", "b"]}]);
        assert!(
            check(
                named.clone(),
                json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["a"]}])
            )
            .is_ok()
        );
        assert!(
            check(named.clone(), json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])).is_err()
        );
        // A `*` in the granted rule is only covered by a `*`.
        let err = check(owner.clone(), json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])).unwrap_err();
        assert_eq!(
            err,
            "user \"u\" (groups=[\"g1\" \"g2\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"
        );
        // Missing rules are broken down, verbs of one resource compacted, lines sorted.
        let err = check(
            owner,
            json!([{"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get", "delete", "watch"]},
            {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]),
        )
        .unwrap_err();
        assert_eq!(
            err.split_once('\n').unwrap().1,
            "{APIGroups:[\"\"], Resources:[\"configmaps\"], Verbs:[\"get\" \"delete\" \"watch\"]}\n\
             {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"delete\" \"watch\"]}\n\
             {NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}"
        );
        // Non-resource URLs: a prefix with `*` covers what it prefixes.
        assert!(
            check(
                json!([{"nonResourceURLs": ["/metrics*"], "verbs": ["get"]}]),
                json!([{"nonResourceURLs": ["/metrics/x"], "verbs": ["get"]}])
            )
            .is_ok()
        );
        // Nothing granted, nothing to hold.
        assert!(check(json!([]), json!([])).is_ok());
    }

    #[test]
    fn rules_for_collects_cluster_and_namespace_bindings() {
        let u = UserInfo { name: "alice".into(), groups: vec![AUTHENTICATED.into()], ..UserInfo::default() };
        let policy = Policy {
            cluster_roles: vec![
                json!({"metadata": {"name": "view"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
            ],
            cluster_role_bindings: vec![
                json!({"metadata": {"name": "c"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "alice"}]}),
            ],
            roles: vec![
                json!({"metadata": {"name": "r", "namespace": "a"}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
            ],
            role_bindings: vec![
                json!({"metadata": {"name": "b", "namespace": "a"}, "roleRef": {"kind": "Role", "name": "r"},
                "subjects": [{"kind": "User", "name": "alice"}]}),
            ],
        };
        let builtin = authenticated_rules().len();
        assert_eq!(rules_for(&policy, &u, "").len(), builtin + 1);
        assert_eq!(rules_for(&policy, &u, "a").len(), builtin + 2);
        assert_eq!(rules_for(&policy, &u, "b").len(), builtin + 1);
        let ref_role = json!({"kind": "Role", "name": "r"});
        assert_eq!(role_ref_rules(&policy, &ref_role, "a").unwrap().len(), 1);
        assert_eq!(
            role_ref_rules(&policy, &ref_role, "b").unwrap_err(),
            RoleNotFound { resource: "roles", name: "r".into() }
        );
        let missing = json!({"kind": "ClusterRole", "name": "cluster-admin"});
        assert_eq!(role_ref_rules(&policy, &missing, "").unwrap_err().resource, "clusterroles");
    }

    /// `deploy/rbac.yaml` lets the controller's ServiceAccount do its typical calls, and no more.
    #[test]
    fn deploy_rbac_allows_the_controllers_calls_only() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/rbac.yaml")).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        let mut policy = Policy::default();
        for d in docs.into_iter().filter(|d| !d.is_null()) {
            let list = match d["kind"].as_str() {
                Some("ClusterRole") => &mut policy.cluster_roles,
                Some("ClusterRoleBinding") => &mut policy.cluster_role_bindings,
                Some("Role") => &mut policy.roles,
                Some("RoleBinding") => &mut policy.role_bindings,
                _ => continue,
            };
            list.push(d);
        }
        assert!(!policy.cluster_roles.is_empty() && !policy.role_bindings.is_empty());
        let ns = policy.role_bindings[0]["metadata"]["namespace"].as_str().unwrap().to_string();
        let sa = UserInfo::service_account(&ns, "jobwright-controller");
        for (verb, group, resource, sub, namespace, name) in [
            ("create", "", "pods", "", "default", ""),
            ("update", "batch", "jobs", "status", "default", "j"),
            ("create", "events.k8s.io", "events", "", "default", ""),
            ("get", "coordination.k8s.io", "leases", "", ns.as_str(), "jobwright-controller"),
            ("create", "coordination.k8s.io", "leases", "", ns.as_str(), ""),
            ("patch", "coordination.k8s.io", "leases", "", ns.as_str(), "jobwright-controller"),
        ] {
            let a = attrs(verb, group, resource, sub, namespace, name);
            assert!(authorize(&policy, &sa, &a), "denied: {}", forbidden_message(&sa, &a));
        }
        for (verb, group, resource, namespace) in
            [("delete", "", "nodes", ""), ("create", "", "secrets", "default"), ("delete", "batch", "cronjobs", "d")]
        {
            assert!(!authorize(&policy, &sa, &attrs(verb, group, resource, "", namespace, "x")), "{verb} {resource}");
        }
        let other_lease = attrs("patch", "coordination.k8s.io", "leases", "", &ns, "someone-elses");
        assert!(!authorize(&policy, &sa, &other_lease), "leases are limited by resourceNames");
        let stranger = UserInfo::service_account("default", "default");
        assert!(!authorize(&policy, &stranger, &attrs("create", "", "pods", "", "default", "")));
    }
}
