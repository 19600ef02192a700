//! Authentication and authorization: static bearer tokens, RBAC enforcement, the
//! OwnerReferencesPermissionEnforcement admission check, and a log of every decision.
//!
//! Off by default: with [`AuthorizationMode::AlwaysAllow`] every request is served as before and
//! tokens are optional. With [`AuthorizationMode::Rbac`] the server behaves as a kube-apiserver
//! started with `--authorization-mode=RBAC --token-auth-file=FILE --anonymous-auth=false`:
//!
//! - **Authentication.** `Authorization: Bearer TOKEN` must name a token from the token file
//!   ([`parse_token_file`], upstream's CSV format) or one added at run time ([`Auth::add_token`],
//!   how the testkit mints ServiceAccount tokens). No token or an unknown one: 401 `Unauthorized`.
//!   Every authenticated user is also in `system:authenticated`. The server makes one admin token
//!   (user `kubernetes-admin`, group `system:masters`) for the kubeconfig it writes.
//! - **Authorization.** Each request's attributes are derived from its method, path and query as
//!   kube-apiserver's `RequestInfoFactory` does ([`request_attributes`]); `system:masters` is
//!   allowed everything (upstream's privileged-group authorizer); otherwise the ClusterRoles,
//!   ClusterRoleBindings, Roles and RoleBindings in the store decide ([`super::rbac::authorize`]).
//!   A denial is a 403 `Forbidden` Status with upstream's message.
//! - **Bootstrap policy.** Upstream binds `system:discovery` and `system:public-info-viewer` to
//!   `system:authenticated`, so every authenticated user may `get` the discovery, OpenAPI, version
//!   and health paths ([`DISCOVERY_URLS`]). Here that grant is built in rather than stored as
//!   objects: `kubectl get clusterroles` lists only what was created.
//! - **Admission.** Creating or updating an object whose `ownerReferences` gain a
//!   `blockOwnerDeletion: true` reference requires `update` on the owner's `finalizers`
//!   subresource, and changing the ownerReferences of an existing object requires `delete` on it
//!   ([`Auth::admit_owner_references`], upstream's OwnerReferencesPermissionEnforcement).
//! - **Transport.** In RBAC mode the port also speaks TLS with a public self-signed loopback
//!   certificate ([`super::http::LOOPBACK_CERT`]): kubectl sends credentials only over TLS.
//! - **Decision log.** Every authorization decision (user, attributes, allowed) is kept in memory
//!   (the last [`DEFAULT_DECISION_LOG`] by default, [`Auth::decisions`]) and logged at debug level.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use http::{HeaderMap, Method, header};
use serde_json::{Value, json};

use super::errors::StatusError;
use super::rbac::{self, Attributes, Policy, UserInfo};
use super::registry::ResourceInfo;
use super::rest::Api;

/// The group whose members every request is allowed for (upstream's `system:masters`).
pub const MASTERS_GROUP: &str = "system:masters";
/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The user of the admin token the server writes into its kubeconfig.
pub const ADMIN_USER: &str = "kubernetes-admin";
/// How many decisions [`Auth::decisions`] keeps by default.
pub const DEFAULT_DECISION_LOG: usize = 100_000;

/// The non-resource paths upstream's `system:discovery` and `system:public-info-viewer`
/// ClusterRoles let every authenticated user `get` (a trailing `*` matches any suffix).
pub const DISCOVERY_URLS: &[&str] = &[
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

/// `--authorization-mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthorizationMode {
    /// Allow every request; bearer tokens are optional (the default).
    #[default]
    #[value(name = "AlwaysAllow")]
    AlwaysAllow,
    /// Require a known bearer token and enforce RBAC.
    #[value(name = "RBAC")]
    Rbac,
}

/// One line of a token file (its `Debug` leaves the token out).
#[derive(Clone, PartialEq, Eq)]
pub struct StaticToken {
    /// The bearer token.
    pub token: String,
    /// Who it authenticates as (without `system:authenticated`, which is added on use).
    pub user: UserInfo,
    /// The user's uid (kept for completeness; RBAC does not use it).
    pub uid: String,
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticToken").field("user", &self.user).field("uid", &self.uid).finish_non_exhaustive()
    }
}

/// Split one CSV record (RFC 4180 quoting: `"a,b"` and `""` for a quote).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = vec![];
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                    if chars.peek().is_some_and(|n| *n != ',') {
                        return Err("extraneous or missing \" in quoted-field".into());
                    }
                }
            }
            '"' if at_start => quoted = true,
            '"' => return Err("bare \" in non-quoted-field".into()),
            ',' if !quoted => {
                fields.push(std::mem::take(&mut cur));
                at_start = true;
                continue;
            }
            c => cur.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err("extraneous or missing \" in quoted-field".into());
    }
    fields.push(cur);
    Ok(fields)
}

/// Parse kube-apiserver's `--token-auth-file` format: one `token,user,uid[,"group1,group2"]` per
/// line. Blank lines are skipped; a record with an empty token is skipped (upstream warns); a
/// later duplicate token wins. Multi-line quoted fields are not supported.
pub fn parse_token_file(text: &str) -> Result<Vec<StaticToken>, String> {
    let mut out: Vec<StaticToken> = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let f = csv_fields(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        if f.len() < 3 {
            return Err(format!(
                "token file must have at least 3 columns (token, user name, user uid), found {} on line {}",
                f.len(),
                i + 1
            ));
        }
        if f[0].is_empty() {
            tracing::warn!(line = i + 1, "empty token in the token file");
            continue;
        }
        let groups = f.get(3).map(|g| g.split(',').map(str::to_string).collect()).unwrap_or_default();
        out.retain(|t| t.token != f[0]);
        out.push(StaticToken { token: f[0].clone(), user: UserInfo { name: f[1].clone(), groups }, uid: f[2].clone() });
    }
    Ok(out)
}

/// Query parameters as `url.Values.Get` reads them (first value wins).
fn query_get(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| urlencoding::decode(&s.replace('+', " ")).map(|c| c.into_owned()).ok();
        (decode(k)? == key).then(|| decode(v)).flatten()
    })
}

/// The name a `metadata.name=NAME` (or `==`) term of a field selector requires.
fn selector_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let v = term.trim().strip_prefix("metadata.name")?;
        let v = v.strip_prefix("==").or_else(|| v.strip_prefix('='))?;
        Some(v.trim().to_string())
    })
}

/// Whether `name` may be a path segment (upstream's `path.IsValidPathSegmentName`).
fn valid_path_segment(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// The attributes kube-apiserver's `RequestInfoFactory` derives from a request: `/api/v1/...`
/// and `/apis/GROUP/VERSION/...` are resource requests (verb from the method: get, create,
/// update, patch, delete; a GET without a name is list, or watch with `?watch=true` or the
/// `/watch/` prefix; a DELETE without a name is deletecollection; a `metadata.name=` field
/// selector names the object); anything else is a non-resource request whose verb is the
/// lower-case method.
pub fn request_attributes(method: &Method, path: &str, query: Option<&str>) -> Attributes {
    let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let non_resource = || Attributes {
        verb: method.as_str().to_lowercase(),
        resource_request: false,
        path: path.to_string(),
        ..Attributes::default()
    };
    if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
        return non_resource();
    }
    let mut a = Attributes { resource_request: true, path: path.to_string(), ..Attributes::default() };
    let mut rest: &[&str] = &parts[1..];
    if parts[0] == "apis" {
        if rest.len() < 3 {
            return non_resource();
        }
        a.group = rest[0].to_string();
        rest = &rest[1..];
    }
    rest = &rest[1..]; // the version
    if rest.first() == Some(&"watch") || rest.first() == Some(&"proxy") {
        if rest.len() < 2 {
            // Upstream fails the request ("unable to determine kind and namespace"); treat it as
            // a non-resource request, which is denied unless allowed by path.
            return non_resource();
        }
        a.verb = rest[0].to_string();
        rest = &rest[1..];
    } else {
        a.verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_string();
    }
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        a.namespace = rest[1].to_string();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    if rest.len() >= 3 && a.verb != "proxy" {
        a.subresource = rest[2].to_string();
    }
    if rest.len() >= 2 {
        a.name = rest[1].to_string();
    }
    if let Some(r) = rest.first() {
        a.resource = r.to_string();
    }
    if a.name.is_empty() && a.verb == "get" {
        let watch = query_get(query, "watch").is_some_and(|w| !w.is_empty() && !matches!(w.as_str(), "false" | "0"));
        a.verb = if watch { "watch" } else { "list" }.to_string();
        if let Some(name) = query_get(query, "fieldSelector").as_deref().and_then(selector_name)
            && valid_path_segment(&name)
        {
            a.name = name;
        }
    }
    if a.name.is_empty() && a.verb == "delete" {
        a.verb = "deletecollection".to_string();
    }
    a
}

/// One authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The user's name.
    pub user: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// What was asked.
    pub attributes: Attributes,
    /// Whether it was allowed.
    pub allowed: bool,
    /// What decided: `system:masters`, `bootstrap` (the built-in discovery grant), `RBAC`, or
    /// `denied`.
    pub by: &'static str,
}

/// The authentication and authorization state of a server.
pub struct Auth {
    mode: AuthorizationMode,
    tokens: RwLock<HashMap<String, UserInfo>>,
    admin_token: Option<String>,
    decisions: Mutex<VecDeque<Decision>>,
    capacity: usize,
    /// The RBAC objects as of a store resourceVersion.
    policy: Mutex<Option<(u64, Arc<Policy>)>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl Auth {
    /// Authentication and authorization in `mode`, with `tokens`, keeping the last `capacity`
    /// decisions. In RBAC mode an admin token is made (see [`Auth::admin_token`]).
    pub fn new(mode: AuthorizationMode, tokens: &[StaticToken], capacity: usize) -> Self {
        let mut map: HashMap<String, UserInfo> = tokens.iter().map(|t| (t.token.clone(), t.user.clone())).collect();
        let admin_token = (mode == AuthorizationMode::Rbac).then(|| {
            let token = format!("admin-{}", uuid::Uuid::new_v4().simple());
            map.insert(token.clone(), UserInfo { name: ADMIN_USER.into(), groups: vec![MASTERS_GROUP.into()] });
            token
        });
        Self {
            mode,
            tokens: RwLock::new(map),
            admin_token,
            decisions: Mutex::new(VecDeque::new()),
            capacity,
            policy: Mutex::new(None),
        }
    }

    /// Whether requests are authenticated and authorized (RBAC mode).
    pub fn enforcing(&self) -> bool {
        self.mode == AuthorizationMode::Rbac
    }

    /// The token of `kubernetes-admin` (group `system:masters`), in RBAC mode.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Accept `token` as `user` from now on.
    pub fn add_token(&self, token: &str, user: UserInfo) {
        self.tokens.write().unwrap_or_else(|e| e.into_inner()).insert(token.to_string(), user);
    }

    /// Who sent the request: `Ok(None)` for no token outside RBAC mode, a 401 for no or an
    /// unknown token in RBAC mode.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<UserInfo>, StatusError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty());
        let known = token.and_then(|t| self.tokens.read().unwrap_or_else(|e| e.into_inner()).get(t).cloned());
        match known {
            Some(mut user) => {
                if !user.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
                    user.groups.push(AUTHENTICATED_GROUP.into());
                }
                Ok(Some(user))
            }
            None if self.enforcing() => Err(StatusError::unauthorized()),
            None => Ok(None),
        }
    }

    /// Every decision kept, oldest first.
    pub fn decisions(&self) -> Vec<Decision> {
        self.decisions.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    fn policy(&self, api: &Api) -> Arc<Policy> {
        let rv = api.store.current_rv();
        let mut cached = self.policy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, p)) = cached.as_ref()
            && *at == rv
        {
            return p.clone();
        }
        let load = |resource: &str| -> Vec<Value> {
            let info = api.info("rbac.authorization.k8s.io", resource);
            api.store
                .list(&info.storage_key, None, None, 0, &|_| true)
                .items
                .iter()
                .filter_map(|e| serde_json::from_slice(&e.bytes).ok())
                .collect()
        };
        let p = Arc::new(Policy {
            cluster_roles: load("clusterroles"),
            cluster_role_bindings: load("clusterrolebindings"),
            roles: load("roles"),
            role_bindings: load("rolebindings"),
        });
        *cached = Some((rv, p.clone()));
        p
    }

    /// Decide `a` for `user`, and record the decision.
    pub fn authorize(&self, api: &Api, user: &UserInfo, a: &Attributes) -> bool {
        let by = if user.groups.iter().any(|g| g == MASTERS_GROUP) {
            "system:masters"
        } else if !a.resource_request
            && a.verb == "get"
            && user.groups.iter().any(|g| g == AUTHENTICATED_GROUP)
            && rbac::rule_allows(&json!({"nonResourceURLs": DISCOVERY_URLS, "verbs": ["get"]}), a)
        {
            "bootstrap"
        } else if rbac::authorize(&self.policy(api), user, a) {
            "RBAC"
        } else {
            "denied"
        };
        let allowed = by != "denied";
        tracing::debug!(
            user = %user.name, verb = %a.verb, group = %a.group, resource = %a.resource,
            subresource = %a.subresource, namespace = %a.namespace, name = %a.name, path = %a.path,
            allowed, by, "authorization decision"
        );
        let mut log = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
        if self.capacity > 0 {
            if log.len() >= self.capacity {
                log.pop_front();
            }
            log.push_back(Decision {
                user: user.name.clone(),
                groups: user.groups.clone(),
                attributes: a.clone(),
                allowed,
                by,
            });
        }
        allowed
    }

    /// [`Auth::authorize`], a denial as kube-apiserver's 403.
    pub fn check(&self, api: &Api, user: &UserInfo, a: &Attributes) -> Result<(), StatusError> {
        if self.authorize(api, user, a) {
            return Ok(());
        }
        let mut details = json!({});
        if !a.name.is_empty() {
            details["name"] = json!(a.name);
        }
        if !a.group.is_empty() {
            details["group"] = json!(a.group);
        }
        if !a.resource.is_empty() {
            details["kind"] = json!(a.resource);
        }
        Err(StatusError::forbidden(rbac::forbidden_message(user, a)).with_details(details))
    }

    /// OwnerReferencesPermissionEnforcement, for a create (`old` = None) or update of `new` on
    /// `info` (subresource `sub`) in `namespace`: changing an existing object's ownerReferences
    /// needs `delete` on it; each reference newly blocking owner deletion needs `update` on the
    /// owner's `finalizers`. `pods/status` is exempt, as upstream.
    #[allow(clippy::too_many_arguments)]
    pub fn admit_owner_references(
        &self,
        api: &Api,
        user: &UserInfo,
        info: &ResourceInfo,
        sub: Option<&str>,
        namespace: &str,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<(), StatusError> {
        if info.group.is_empty() && info.resource == "pods" && sub == Some("status") {
            return Ok(());
        }
        let refs = |o: &Value| o["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
        let new_refs = refs(new);
        let changing = match old {
            None => !new_refs.is_empty(),
            Some(o) => refs(o) != new_refs,
        };
        if !changing {
            return Ok(());
        }
        let name = new["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let forbidden = |why: String| {
            let gr =
                if info.group.is_empty() { info.resource.clone() } else { format!("{}.{}", info.resource, info.group) };
            let message = if name.is_empty() {
                format!("{gr} is forbidden: {why}")
            } else {
                format!("{gr} {name:?} is forbidden: {why}")
            };
            let mut details = json!({"kind": info.resource});
            if !name.is_empty() {
                details["name"] = json!(name);
            }
            if !info.group.is_empty() {
                details["group"] = json!(info.group);
            }
            StatusError::forbidden(message).with_details(details)
        };
        let attrs = Attributes::resource;
        if old.is_some() {
            let a = attrs("delete", &info.group, &info.resource, sub.unwrap_or(""), namespace, &name);
            if !self.authorize(api, user, &a) {
                return Err(forbidden("cannot set an ownerRef on a resource you can't delete: , <nil>".into()));
            }
        }
        let blocking = |r: &Value| r["blockOwnerDeletion"].as_bool() == Some(true);
        let old_refs = old.map(refs).unwrap_or_default();
        for r in new_refs.iter().filter(|r| blocking(r)) {
            let was_blocking = old_refs.iter().any(|o| o["uid"] == r["uid"] && blocking(o));
            if was_blocking {
                continue;
            }
            let av = r["apiVersion"].as_str().unwrap_or_default();
            let kind = r["kind"].as_str().unwrap_or_default();
            let Some(owner) = api.registry.by_kind(av, kind) else {
                return Err(forbidden(format!(
                    "cannot set blockOwnerDeletion in this case because cannot find RESTMapping for APIVersion {av} Kind {kind}: no matches for kind {kind:?} in version {av:?}"
                )));
            };
            let ns = if owner.namespaced { namespace } else { "" };
            let a = attrs(
                "update",
                &owner.group,
                &owner.resource,
                "finalizers",
                ns,
                r["name"].as_str().unwrap_or_default(),
            );
            if !self.authorize(api, user, &a) {
                return Err(forbidden(
                    "cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on: , <nil>"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(m: Method, uri: &str) -> (String, String, String, String, String, String) {
        let (path, query) = uri.split_once('?').map_or((uri, None), |(p, q)| (p, Some(q)));
        let a = request_attributes(&m, path, query);
        let kind = if a.resource_request { "resource" } else { "path" };
        (kind.into(), a.verb, a.group, format!("{}/{}", a.resource, a.subresource), a.namespace, a.name)
    }

    #[test]
    fn request_attributes_match_upstream_request_info() {
        let t = |m: Method, uri: &str, want: (&str, &str, &str, &str, &str, &str)| {
            let got = attrs(m, uri);
            let want = (
                want.0.to_string(),
                want.1.to_string(),
                want.2.to_string(),
                want.3.to_string(),
                want.4.to_string(),
                want.5.to_string(),
            );
            assert_eq!(got, want, "{uri}");
        };
        t(Method::GET, "/api/v1/namespaces/d/pods", ("resource", "list", "", "pods/", "d", ""));
        t(Method::GET, "/api/v1/pods?watch=true", ("resource", "watch", "", "pods/", "", ""));
        t(Method::GET, "/api/v1/pods?watch=1&x=y", ("resource", "watch", "", "pods/", "", ""));
        t(Method::GET, "/api/v1/pods?watch=false", ("resource", "list", "", "pods/", "", ""));
        t(Method::GET, "/api/v1/watch/namespaces/d/pods", ("resource", "watch", "", "pods/", "d", ""));
        t(Method::GET, "/api/v1/namespaces/d/pods/p", ("resource", "get", "", "pods/", "d", "p"));
        t(Method::GET, "/api/v1/namespaces/d/pods/p/log", ("resource", "get", "", "pods/log", "d", "p"));
        t(
            Method::GET,
            "/apis/coordination.k8s.io/v1/namespaces/s/leases?fieldSelector=metadata.name%3Dl&watch=true",
            ("resource", "watch", "coordination.k8s.io", "leases/", "s", "l"),
        );
        t(Method::POST, "/apis/batch/v1/namespaces/d/jobs", ("resource", "create", "batch", "jobs/", "d", ""));
        t(
            Method::PUT,
            "/apis/batch/v1/namespaces/d/jobs/j/status",
            ("resource", "update", "batch", "jobs/status", "d", "j"),
        );
        t(Method::PATCH, "/apis/batch/v1/namespaces/d/jobs/j", ("resource", "patch", "batch", "jobs/", "d", "j"));
        t(Method::DELETE, "/api/v1/namespaces/d/pods/p", ("resource", "delete", "", "pods/", "d", "p"));
        t(Method::DELETE, "/api/v1/namespaces/d/pods", ("resource", "deletecollection", "", "pods/", "d", ""));
        t(Method::GET, "/api/v1/namespaces/d", ("resource", "get", "", "namespaces/", "d", "d"));
        t(Method::GET, "/api/v1/namespaces", ("resource", "list", "", "namespaces/", "", ""));
        t(Method::PUT, "/api/v1/namespaces/d/finalize", ("resource", "update", "", "namespaces/finalize", "d", "d"));
        t(Method::GET, "/api/v1/nodes/n", ("resource", "get", "", "nodes/", "", "n"));
        t(Method::GET, "/apis/batch/v1", ("path", "get", "", "/", "", ""));
        t(Method::GET, "/apis/batch", ("path", "get", "", "/", "", ""));
        t(Method::GET, "/api/v1", ("path", "get", "", "/", "", ""));
        t(Method::GET, "/version", ("path", "get", "", "/", "", ""));
        t(Method::POST, "/healthz", ("path", "post", "", "/", "", ""));
    }

    #[test]
    fn token_files_parse_as_upstream_csv() {
        let text = "t1,alice,1,\"g1,g2\"\n\nt2,bob,2\n,nobody,3\nt1,alice2,4\n";
        let tokens = parse_token_file(text).unwrap();
        assert_eq!(tokens.len(), 2);
        let bob = tokens.iter().find(|t| t.token == "t2").unwrap();
        assert_eq!((bob.user.name.as_str(), bob.uid.as_str(), bob.user.groups.len()), ("bob", "2", 0));
        let alice = tokens.iter().find(|t| t.token == "t1").unwrap();
        assert_eq!(alice.user.name, "alice2", "a later duplicate wins");
        let t = parse_token_file("x,carol,5,\"system:masters,a \"\"b\"\"\"").unwrap();
        assert_eq!(t[0].user.groups, vec!["system:masters".to_string(), "a \"b\"".to_string()]);
        assert!(parse_token_file("only,two").unwrap_err().contains("at least 3 columns"));
        assert!(parse_token_file("a,\"b,c").is_err());
        assert!(parse_token_file("a,b\"c,d").is_err());
    }

    #[test]
    fn authentication_in_each_mode() {
        let tokens = parse_token_file("tok,alice,1,devs").unwrap();
        let bearer = |t: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, format!("Bearer {t}").parse().unwrap());
            h
        };
        let rbac = Auth::new(AuthorizationMode::Rbac, &tokens, 10);
        let alice = rbac.authenticate(&bearer("tok")).unwrap().unwrap();
        assert_eq!(alice.groups, vec!["devs".to_string(), AUTHENTICATED_GROUP.to_string()]);
        assert_eq!(rbac.authenticate(&bearer("nope")).unwrap_err().code, 401);
        assert_eq!(rbac.authenticate(&HeaderMap::new()).unwrap_err().code, 401);
        let admin = rbac.authenticate(&bearer(rbac.admin_token().unwrap())).unwrap().unwrap();
        assert!(admin.groups.iter().any(|g| g == MASTERS_GROUP));
        let open = Auth::new(AuthorizationMode::AlwaysAllow, &tokens, 10);
        assert!(open.admin_token().is_none());
        assert_eq!(open.authenticate(&HeaderMap::new()).unwrap(), None);
        assert_eq!(open.authenticate(&bearer("nope")).unwrap(), None);
        assert_eq!(open.authenticate(&bearer("tok")).unwrap().unwrap().name, "alice");
    }
}
