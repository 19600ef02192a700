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
//! - **Impersonation.** `Impersonate-User`, `-Group`, `-Uid` and `-Extra-KEY` headers make the
//!   request act as another user once the caller is allowed the `impersonate` verb on each
//!   ([`Auth::impersonate`], upstream's impersonation filter); decisions then name both users.
//! - **Authorization.** Each request's attributes are derived from its method, path and query as
//!   kube-apiserver's `RequestInfoFactory` does ([`request_attributes`], reading the same parsed
//!   [`Query`] the handler serves the request with); `system:masters` is
//!   allowed everything (upstream's privileged-group authorizer); otherwise the ClusterRoles,
//!   ClusterRoleBindings, Roles and RoleBindings in the store decide ([`super::rbac::authorize`]).
//!   A denial is a 403 `Forbidden` Status with upstream's message.
//! - **Bootstrap policy.** Upstream binds `system:discovery`, `system:public-info-viewer` and
//!   `system:basic-user` to `system:authenticated`, so every authenticated user may `get` the
//!   discovery, OpenAPI, version and health paths ([`DISCOVERY_URLS`]) and create the self access
//!   reviews. Here that grant is built in ([`rbac::authenticated_rules`]) rather than stored as
//!   objects: `kubectl get clusterroles` lists only what was created.
//! - **Escalation prevention.** Writes to Roles, ClusterRoles and their bindings must not grant
//!   more than the writer holds, unless the writer may `escalate` the role or `bind` the
//!   referenced one ([`Auth::admit_rbac_escalation`], upstream's `policybased` storage).
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
use super::query::Query;
use super::rbac::{self, Attributes, Policy, UserInfo};
use super::registry::ResourceInfo;
use super::rest::Api;

/// The group whose members every request is allowed for (upstream's `system:masters`).
pub const MASTERS_GROUP: &str = "system:masters";
/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = rbac::AUTHENTICATED;
/// The user of the admin token the server writes into its kubeconfig.
pub const ADMIN_USER: &str = "kubernetes-admin";
/// How many decisions [`Auth::decisions`] keeps by default.
pub const DEFAULT_DECISION_LOG: usize = 100_000;

/// The non-resource paths upstream's `system:discovery` and `system:public-info-viewer`
/// ClusterRoles let every authenticated user `get` (a trailing `*` matches any suffix).
pub const DISCOVERY_URLS: &[&str] = rbac::DISCOVERY_PATHS;

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
        let user = UserInfo { name: f[1].clone(), groups, uid: f[2].clone(), ..UserInfo::default() };
        out.push(StaticToken { token: f[0].clone(), user, uid: f[2].clone() });
    }
    Ok(out)
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
/// lower-case method. `query` is the one parse the handler serves the request with.
pub fn request_attributes(method: &Method, path: &str, query: &Query) -> Attributes {
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
        let watch = query.get("watch").is_some_and(|w| !w.is_empty() && !matches!(w, "false" | "0"));
        a.verb = if watch { "watch" } else { "list" }.to_string();
        if let Some(name) = query.get("fieldSelector").and_then(selector_name)
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
    /// What decided: `system:masters`, `bootstrap` (the built-in grants to
    /// `system:authenticated`), `RBAC`, or `denied`.
    pub by: &'static str,
    /// The authenticated user when `user` is impersonated (`Impersonate-User`), else `None`.
    pub impersonator: Option<String>,
}

/// What identifies the RBAC objects' state without listing them: the store's write count of
/// each of the four buckets (ClusterRoles, ClusterRoleBindings, Roles, RoleBindings). Any
/// change to one of them (create, update, delete) moves its count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PolicyKey([u64; 4]);

/// The RBAC resources, in [`PolicyKey`]'s order.
const RBAC_RESOURCES: [&str; 4] = ["clusterroles", "clusterrolebindings", "roles", "rolebindings"];

/// The authentication and authorization state of a server.
pub struct Auth {
    mode: AuthorizationMode,
    tokens: RwLock<HashMap<String, UserInfo>>,
    admin_token: Option<String>,
    decisions: Mutex<VecDeque<Decision>>,
    capacity: usize,
    /// The RBAC objects as of a store resourceVersion, with the [`PolicyKey`] they were read at.
    policy: Mutex<Option<(u64, PolicyKey, Arc<Policy>)>>,
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
            let admin = UserInfo { name: ADMIN_USER.into(), groups: vec![MASTERS_GROUP.into()], ..UserInfo::default() };
            map.insert(token.clone(), admin);
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
        match token.and_then(|t| self.user_of(t)) {
            Some(user) => Ok(Some(user)),
            None if self.enforcing() => Err(StatusError::unauthorized()),
            None => Ok(None),
        }
    }

    /// The user `token` authenticates (with `system:authenticated` added, as upstream's
    /// authenticator chain adds it), if any: a request's bearer token or a TokenReview's.
    pub fn user_of(&self, token: &str) -> Option<UserInfo> {
        let mut user = self.tokens.read().unwrap_or_else(|e| e.into_inner()).get(token).cloned()?;
        if !user.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            user.groups.push(AUTHENTICATED_GROUP.into());
        }
        Some(user)
    }

    /// Every decision kept, oldest first.
    pub fn decisions(&self) -> Vec<Decision> {
        self.decisions.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// The RBAC objects now. Decoded again only when one of them changed: not at every write of
    /// any object (a busy server changes its resourceVersion between nearly every two requests),
    /// but when the [`PolicyKey`] of the four RBAC buckets differs from the one decoded last.
    fn policy(&self, api: &Api) -> Arc<Policy> {
        let rv = api.store.current_rv();
        let mut cached = self.policy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, _, p)) = cached.as_ref()
            && *at == rv
        {
            return p.clone();
        }
        let infos = RBAC_RESOURCES.map(|r| api.info("rbac.authorization.k8s.io", r));
        // Counted before listing: a write in between makes the next decision decode again.
        let key = PolicyKey(api.store.writes_of(infos.each_ref().map(|i| i.storage_key.as_str())));
        if let Some((at, k, p)) = cached.as_mut()
            && *k == key
        {
            *at = rv;
            return p.clone();
        }
        let decode = |info: &super::registry::ResourceInfo| -> Vec<Value> {
            let items = api.store.list(&info.storage_key, None, None, 0, &|_| true).items;
            items.iter().filter_map(|e| serde_json::from_slice(&e.bytes()).ok()).collect()
        };
        let [cr, crb, r, rb] = &infos;
        let p = Arc::new(Policy {
            cluster_roles: decode(cr),
            cluster_role_bindings: decode(crb),
            roles: decode(r),
            role_bindings: decode(rb),
        });
        *cached = Some((rv, key, p.clone()));
        p
    }

    /// Whether `user` may do `a` (always, outside RBAC mode), without recording a decision: the
    /// access reviews' evaluator ([`super::review`]).
    pub fn evaluate(&self, api: &Api, user: &UserInfo, a: &Attributes) -> bool {
        !self.enforcing() || self.decide(api, user, a) != "denied"
    }

    fn decide(&self, api: &Api, user: &UserInfo, a: &Attributes) -> &'static str {
        if user.groups.iter().any(|g| g == MASTERS_GROUP) {
            "system:masters"
        } else if user.groups.iter().any(|g| g == AUTHENTICATED_GROUP)
            && rbac::authenticated_rules().iter().any(|r| rbac::rule_allows(r, a))
        {
            "bootstrap"
        } else if rbac::authorize(&self.policy(api), user, a) {
            "RBAC"
        } else {
            "denied"
        }
    }

    /// Decide `a` for `user`, and record the decision.
    pub fn authorize(&self, api: &Api, user: &UserInfo, a: &Attributes) -> bool {
        let by = self.decide(api, user, a);
        let allowed = by != "denied";
        tracing::debug!(
            user = %user.name, impersonator = ?user.impersonator, verb = %a.verb, group = %a.group, resource = %a.resource,
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
                impersonator: user.impersonator.clone(),
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

    /// Who the request acts as: `requestor` itself, or the user its `Impersonate-User`,
    /// `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-KEY` headers name, as
    /// kube-apiserver's impersonation filter does. Each impersonated attribute needs the
    /// `impersonate` verb (in RBAC mode): `users` (or `serviceaccounts` in the account's
    /// namespace, for a `system:serviceaccount:NS:NAME` user), `groups`, `uids` and
    /// `userextras/KEY` (group `authentication.k8s.io` for the last two); a denial is upstream's 403
    /// for that check. Groups, a uid or extras without a user are upstream's 500 ("requested [...]
    /// without impersonating a user"). An impersonated ServiceAccount without groups gets its
    /// ServiceAccount groups; every impersonated user but `system:anonymous` is also in
    /// `system:authenticated`. The result records the requestor in
    /// [`UserInfo::impersonator`], so every decision on it names both.
    pub fn impersonate(&self, api: &Api, requestor: &UserInfo, headers: &HeaderMap) -> Result<UserInfo, StatusError> {
        let all = |name: &str| -> Vec<String> {
            headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
        };
        let first = |name: &str| all(name).into_iter().next().filter(|v| !v.is_empty());
        let mut requests: Vec<Impersonation> = vec![];
        let user = first("impersonate-user");
        if let Some(u) = &user {
            requests.push(match split_service_account(u) {
                Some((ns, name)) => Impersonation::ServiceAccount(ns, name),
                None => Impersonation::User(u.clone()),
            });
        }
        let groups = all("impersonate-group");
        requests.extend(groups.iter().cloned().map(Impersonation::Group));
        let mut extra_keys: Vec<&str> = headers
            .keys()
            .filter_map(|k| k.as_str().strip_prefix("impersonate-extra-"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        extra_keys.sort_unstable();
        for k in extra_keys {
            let key = urlencoding::decode(k).map(|d| d.into_owned()).unwrap_or_else(|_| k.to_string());
            for v in all(&format!("impersonate-extra-{k}")) {
                requests.push(Impersonation::Extra(key.clone(), v));
            }
        }
        let uid = first("impersonate-uid");
        if let Some(u) = &uid {
            requests.push(Impersonation::Uid(u.clone()));
        }
        if requests.is_empty() {
            return Ok(requestor.clone());
        }
        if user.is_none() {
            let described: Vec<String> = requests.iter().map(Impersonation::go_reference).collect();
            return Err(StatusError::internal(format!(
                "requested [{}] without impersonating a user",
                described.join(" ")
            )));
        }
        let mut out = UserInfo { impersonator: Some(requestor.name.clone()), ..UserInfo::default() };
        for r in &requests {
            let (group, resource, sub, ns, name) = match r {
                Impersonation::ServiceAccount(ns, name) => {
                    out.name = format!("system:serviceaccount:{ns}:{name}");
                    if groups.is_empty() {
                        out.groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")];
                    }
                    ("", "serviceaccounts", "", ns.as_str(), name.as_str())
                }
                Impersonation::User(name) => {
                    out.name = name.clone();
                    ("", "users", "", "", name.as_str())
                }
                Impersonation::Group(g) => {
                    out.groups.push(g.clone());
                    ("", "groups", "", "", g.as_str())
                }
                Impersonation::Extra(k, v) => {
                    out.extra.entry(k.clone()).or_default().push(v.clone());
                    ("authentication.k8s.io", "userextras", k.as_str(), "", v.as_str())
                }
                Impersonation::Uid(u) => {
                    out.uid = u.clone();
                    ("authentication.k8s.io", "uids", "", "", u.as_str())
                }
            };
            if self.enforcing() {
                self.check(api, requestor, &Attributes::resource("impersonate", group, resource, sub, ns, name))?;
            }
        }
        if out.name == ANONYMOUS_USER {
            if !out.groups.iter().any(|g| g == UNAUTHENTICATED_GROUP) {
                out.groups.push(UNAUTHENTICATED_GROUP.into());
            }
        } else if !out.groups.iter().any(|g| g == AUTHENTICATED_GROUP || g == UNAUTHENTICATED_GROUP) {
            out.groups.push(AUTHENTICATED_GROUP.into());
        }
        tracing::debug!(user = %requestor.name, acting_as = %out.name, groups = ?out.groups, "impersonation");
        Ok(out)
    }

    /// The RBAC objects as of now (cached per store resourceVersion).
    pub fn policy_snapshot(&self, api: &Api) -> Arc<Policy> {
        self.policy(api)
    }

    /// The admission checks of a create (`old` = None) or update of `new` in RBAC mode:
    /// escalation prevention on the RBAC kinds ([`Auth::admit_rbac_escalation`]), then
    /// OwnerReferencesPermissionEnforcement ([`Auth::admit_owner_references`]).
    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &self,
        api: &Api,
        user: &UserInfo,
        info: &ResourceInfo,
        sub: Option<&str>,
        namespace: &str,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<(), StatusError> {
        self.admit_rbac_escalation(api, user, info, namespace, old, new)?;
        self.admit_owner_references(api, user, info, sub, namespace, old, new)
    }

    /// Upstream's RBAC storage guards (`pkg/registry/rbac/*/policybased`), for a create or update
    /// by `user` of `new` (after validation):
    ///
    /// - `system:masters` may write anything (`EscalationAllowed`);
    /// - an update that changes only ownerReferences or finalizers passes (`IsOnlyMutatingGCFields`);
    /// - a Role or ClusterRole passes when the user may `escalate` it, or already holds every
    ///   permission it grants in the request's namespace (`ConfirmNoEscalation`); an
    ///   `aggregationRule` (new or changed) needs every permission (`*` on `*.*` and on `*` URLs);
    /// - a RoleBinding or ClusterRoleBinding passes when the user may `bind` the referenced role
    ///   (verb `bind` on `roles`/`clusterroles` named as the roleRef, in the binding's namespace),
    ///   or already holds every permission the role grants; a missing role is a 404 for it.
    ///
    /// A refusal is a 403: `<resource> "<name>" is forbidden: user "u" (groups=[...]) is attempting
    /// to grant RBAC permissions not currently held:` followed by one line per missing rule.
    pub fn admit_rbac_escalation(
        &self,
        api: &Api,
        user: &UserInfo,
        info: &ResourceInfo,
        namespace: &str,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<(), StatusError> {
        let is_role = matches!(info.resource.as_str(), "roles" | "clusterroles");
        let is_binding = matches!(info.resource.as_str(), "rolebindings" | "clusterrolebindings");
        if info.group != rbac::RBAC_GROUP || !(is_role || is_binding) || user.groups.iter().any(|g| g == MASTERS_GROUP)
        {
            return Ok(());
        }
        if let Some(old) = old
            && only_gc_fields_change(old, new)
        {
            return Ok(());
        }
        let name = new["metadata"]["name"].as_str().unwrap_or_default();
        let ns = if info.namespaced { namespace } else { "" };
        let forbidden = |why: String| forbidden_for(info, name, &why);
        if is_role {
            // RoleEscalationAuthorized: the request's own attributes with verb escalate (a create
            // has no name in its request).
            let request_name = if old.is_some() { name } else { "" };
            let escalate = Attributes::resource("escalate", &info.group, &info.resource, "", ns, request_name);
            if self.authorize(api, user, &escalate) {
                return Ok(());
            }
            let owner = rbac::rules_for(&self.policy(api), user, ns);
            let rules = new["rules"].as_array().cloned().unwrap_or_default();
            rbac::confirm_no_escalation(&owner, &rules, user).map_err(forbidden)?;
            let aggregation = |o: &Value| o.get("aggregationRule").filter(|a| !a.is_null()).cloned();
            if info.resource == "clusterroles"
                && aggregation(new).is_some()
                && old.is_none_or(|o| aggregation(o) != aggregation(new))
            {
                let full = [
                    json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}),
                    json!({"nonResourceURLs": ["*"], "verbs": ["*"]}),
                ];
                rbac::confirm_no_escalation(&owner, &full, user)
                    .map_err(|_| forbidden("must have cluster-admin privileges to use the aggregationRule".into()))?;
            }
            return Ok(());
        }
        let role_ref = &new["roleRef"];
        let role_resource = match role_ref["kind"].as_str() {
            Some("ClusterRole") => Some("clusterroles"),
            Some("Role") => Some("roles"),
            _ => None,
        };
        if let Some(resource) = role_resource {
            let group = role_ref["apiGroup"].as_str().unwrap_or_default();
            let role_name = role_ref["name"].as_str().unwrap_or_default();
            if self.authorize(api, user, &Attributes::resource("bind", group, resource, "", ns, role_name)) {
                return Ok(());
            }
        }
        let policy = self.policy(api);
        let rules = rbac::role_ref_rules(&policy, role_ref, ns)
            .map_err(|e| StatusError::not_found(&api.info(rbac::RBAC_GROUP, e.resource), &e.name))?;
        let owner = rbac::rules_for(&policy, user, ns);
        rbac::confirm_no_escalation(&owner, &rules, user).map_err(forbidden)
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
        let forbidden = |why: String| forbidden_for(info, &name, &why);
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

/// The user name of anonymous requests.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of anonymous requests.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// One thing an impersonating request asks to act as.
enum Impersonation {
    ServiceAccount(String, String),
    User(String),
    Group(String),
    Extra(String, String),
    Uid(String),
}

impl Impersonation {
    /// Go's `%v` of the `ObjectReference` upstream builds for it (its error message lists them).
    fn go_reference(&self) -> String {
        const AUTHN: &str = "authentication.k8s.io/v1";
        // Kind Namespace Name UID APIVersion ResourceVersion FieldPath
        let fields: [&str; 7] = match self {
            Impersonation::ServiceAccount(ns, name) => ["ServiceAccount", ns, name, "", "", "", ""],
            Impersonation::User(name) => ["User", "", name, "", "", "", ""],
            Impersonation::Group(name) => ["Group", "", name, "", "", "", ""],
            Impersonation::Extra(key, value) => ["UserExtra", "", value, "", AUTHN, "", key],
            Impersonation::Uid(uid) => ["UID", "", uid, "", AUTHN, "", ""],
        };
        format!("{{{}}}", fields.join(" "))
    }
}

/// `serviceaccount.SplitUsername`: `(namespace, name)` of `system:serviceaccount:NS:NAME` with a
/// valid namespace (DNS label) and name (DNS subdomain).
fn split_service_account(user: &str) -> Option<(String, String)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let parts: Vec<&str> = rest.split(':').collect();
    let [ns, name] = parts.as_slice() else { return None };
    let ok = super::validate::meta::name_is_dns_label(ns, false).is_empty()
        && super::validate::meta::name_is_dns_subdomain(name, false).is_empty();
    ok.then(|| (ns.to_string(), name.to_string()))
}

/// `IsOnlyMutatingGCFields`: `new` equals `old` but for ownerReferences, finalizers, selfLink and
/// managedFields (and the resourceVersion the write carries).
fn only_gc_fields_change(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in ["ownerReferences", "finalizers", "selfLink", "managedFields", "resourceVersion"] {
                md.remove(k);
            }
        }
        v
    };
    strip(old) == strip(new)
}

/// `errors.NewForbidden(resource, name, why)`: `roles.rbac.authorization.k8s.io "x" is forbidden: why`.
fn forbidden_for(info: &ResourceInfo, name: &str, why: &str) -> StatusError {
    let gr = info.group_resource();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(m: Method, uri: &str) -> (String, String, String, String, String, String) {
        let (path, query) = uri.split_once('?').map_or((uri, None), |(p, q)| (p, Some(q)));
        let a = request_attributes(&m, path, &Query::parse(query));
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

    /// The decoded RBAC policy is reused across writes of other objects, and a change to any
    /// Role, RoleBinding, ClusterRole or ClusterRoleBinding (create, update, delete) is seen by
    /// the very next decision.
    #[test]
    fn the_cached_policy_follows_every_rbac_change() {
        use crate::rest::{DeleteOptions, WriteOptions};
        let s = crate::http::Server::new(crate::http::ServerConfig {
            authorization_mode: AuthorizationMode::Rbac,
            ..Default::default()
        });
        let (api, auth) = (&s.api, &s.auth);
        let alice = UserInfo { name: "alice".into(), ..UserInfo::default() };
        let get_cm = Attributes::resource("get", "", "configmaps", "", "default", "c");
        let list_pods = Attributes::resource("list", "", "pods", "", "default", "");
        let rbac = |r: &str| api.info("rbac.authorization.k8s.io", r);
        let opts = WriteOptions::default();
        let other_write = |i: usize| {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("x{i}")}});
            api.create(&api.info("", "configmaps"), "default", cm, &opts).unwrap();
        };
        let role = |verbs: &[&str]| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
                   "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}]})
        };
        assert!(!auth.evaluate(api, &alice, &get_cm));
        other_write(0);
        assert!(!auth.evaluate(api, &alice, &get_cm), "other writes change nothing");
        api.create(&rbac("roles"), "default", role(&["get"]), &opts).unwrap();
        assert!(!auth.evaluate(api, &alice, &get_cm), "a Role alone grants nothing");
        let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]});
        api.create(&rbac("rolebindings"), "default", binding, &opts).unwrap();
        assert!(auth.evaluate(api, &alice, &get_cm), "a RoleBinding created: allowed");
        other_write(1);
        assert!(auth.evaluate(api, &alice, &get_cm), "the policy reused after another write");
        // An update of the Role (its rules no longer allow get).
        let mut r = role(&["list"]);
        r["metadata"]["resourceVersion"] = json!(api.get(&rbac("roles"), "default", "r").unwrap().rv.to_string());
        api.update(&rbac("roles"), "default", "r", None, r, &opts).unwrap();
        assert!(!auth.evaluate(api, &alice, &get_cm), "a Role updated: denied");
        // A ClusterRole and its ClusterRoleBinding, then the binding deleted.
        let cr = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "pods-reader"},
                        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]});
        api.create(&rbac("clusterroles"), "", cr, &opts).unwrap();
        let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "alice-pods"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pods-reader"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]});
        api.create(&rbac("clusterrolebindings"), "", crb, &opts).unwrap();
        assert!(auth.evaluate(api, &alice, &list_pods));
        other_write(2);
        api.delete(&rbac("clusterrolebindings"), "", "alice-pods", &DeleteOptions::default()).unwrap();
        assert!(!auth.evaluate(api, &alice, &list_pods), "a ClusterRoleBinding deleted: denied");
        // A delete alone (no write after it) is seen too.
        let list_cm = Attributes::resource("list", "", "configmaps", "", "default", "");
        assert!(auth.evaluate(api, &alice, &list_cm), "the updated Role allows list");
        api.delete(&rbac("rolebindings"), "default", "b", &DeleteOptions::default()).unwrap();
        assert!(!auth.evaluate(api, &alice, &list_cm), "the RoleBinding deleted: denied");
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
