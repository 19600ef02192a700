//! The review resources, create-only and never stored: what `kubectl auth can-i` and
//! `kubectl auth whoami` send.
//!
//! - `authorization.k8s.io/v1` `SelfSubjectAccessReview`: may the requesting user do this?
//! - `authorization.k8s.io/v1` `SubjectAccessReview`: may `spec.user`/`spec.groups` do this?
//!   (needs `create` on `subjectaccessreviews`, as upstream).
//! - `authorization.k8s.io/v1` `LocalSubjectAccessReview`: the same, in the URL's namespace
//!   (needs `create` on `localsubjectaccessreviews` there; bootstrap `admin` grants it).
//! - `authorization.k8s.io/v1` `SelfSubjectRulesReview`: every rule of the requesting user in
//!   `spec.namespace` (`kubectl auth can-i --list`).
//! - `authentication.k8s.io/v1` `SelfSubjectReview`: who the server thinks the user is
//!   (impersonation included).
//! - `authentication.k8s.io/v1` `TokenReview`: whom `spec.token` authenticates (delegated
//!   authentication: kube-rbac-proxy, controller-runtime's secured metrics; needs `create` on
//!   `tokenreviews`, which `system:auth-delegator` grants), for the audiences asked
//!   (`spec.audiences`) if they include the server's ([`API_AUDIENCE`]).
//!
//! Decisions come from the same evaluator that authorizes requests ([`Auth::evaluate`]), without
//! being recorded as decisions of this request. Every authenticated user may create the self
//! reviews (upstream's `system:basic-user`, built in: [`super::rbac::authenticated_rules`]).
//! Differences from upstream: an allowed review carries no `reason` (upstream names the binding);
//! the resources are served but not listed in discovery.

use http::Method;
use serde_json::{Value, json};

use super::auth::{Auth, MASTERS_GROUP};
use super::errors::{FieldError, StatusError};
use super::rbac::{self, Attributes, UserInfo};
use super::registry::ResourceInfo;
use super::rest::Api;

const AUTHZ: &str = "authorization.k8s.io";
const AUTHN: &str = "authentication.k8s.io";

/// The audience the server's tokens are for (kube-apiserver's `--api-audiences`, which default
/// to its service account issuer: this value on kind and kubeadm clusters).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

fn info(group: &str, resource: &str, kind: &str) -> ResourceInfo {
    ResourceInfo::new(group, "v1", resource, kind, false, &[], &[], &[])
}

/// Serve `method path` when it names a review resource: `None` when it does not, else the
/// response object (201) or an error. `body` parses the request body.
pub fn serve(
    api: &Api,
    auth: &Auth,
    method: &Method,
    path: &str,
    user: Option<&UserInfo>,
    body: impl FnOnce() -> Result<Value, StatusError>,
) -> Option<Result<Value, StatusError>> {
    let path = path.trim_end_matches('/');
    // The namespaced one: /apis/authorization.k8s.io/v1/namespaces/{ns}/localsubjectaccessreviews.
    let local_ns = path
        .strip_prefix("/apis/authorization.k8s.io/v1/namespaces/")
        .and_then(|rest| rest.strip_suffix("/localsubjectaccessreviews"))
        .filter(|ns| !ns.is_empty() && !ns.contains('/'));
    let kind = match path {
        _ if local_ns.is_some() => "LocalSubjectAccessReview",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" => "SelfSubjectAccessReview",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews" => "SubjectAccessReview",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews" => "SelfSubjectRulesReview",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews" => "SelfSubjectReview",
        "/apis/authentication.k8s.io/v1/tokenreviews" => "TokenReview",
        _ => return None,
    };
    if method != Method::POST {
        return Some(Err(StatusError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({path})"
        ))));
    }
    // Without authentication (AlwaysAllow and no token) the requester is anonymous.
    let anonymous = UserInfo {
        name: super::auth::ANONYMOUS_USER.into(),
        groups: vec![super::auth::UNAUTHENTICATED_GROUP.into()],
        ..UserInfo::default()
    };
    let user = user.unwrap_or(&anonymous);
    Some(body().and_then(|mut obj| {
        if let Some(ns) = local_ns {
            local_namespace(&mut obj, ns)?;
        }
        review(api, auth, kind, user, obj)
    }))
}

/// A LocalSubjectAccessReview's namespace: the URL's, which `metadata.namespace` may only repeat,
/// and which `spec.resourceAttributes.namespace` must equal; non-resource attributes are refused
/// (upstream's create handler and `ValidateLocalSubjectAccessReview`).
fn local_namespace(obj: &mut Value, ns: &str) -> Result<(), StatusError> {
    if !obj.is_object() {
        return Ok(()); // review() answers the malformed body
    }
    match obj["metadata"]["namespace"].as_str() {
        None | Some("") => {
            if !obj["metadata"].is_object() {
                obj["metadata"] = json!({});
            }
            obj["metadata"]["namespace"] = json!(ns);
        }
        Some(n) if n == ns => {}
        Some(_) => {
            return Err(StatusError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let info = info(AUTHZ, "localsubjectaccessreviews", "LocalSubjectAccessReview");
    let spec = &obj["spec"];
    if spec.get("nonResourceAttributes").is_some_and(|v| !v.is_null()) {
        let e = FieldError::invalid(
            "spec.nonResourceAttributes",
            spec["nonResourceAttributes"].clone(),
            "disallowed on this kind of request",
        );
        return Err(StatusError::invalid(&info, "", &[e]));
    }
    let attr_ns = &spec["resourceAttributes"]["namespace"];
    if spec.get("resourceAttributes").is_some_and(|v| !v.is_null()) && attr_ns.as_str().unwrap_or_default() != ns {
        let e = FieldError::invalid(
            "spec.resourceAttributes.namespace",
            if attr_ns.is_null() { json!("") } else { attr_ns.clone() },
            "must match metadata.namespace",
        );
        return Err(StatusError::invalid(&info, "", &[e]));
    }
    Ok(())
}

fn review(api: &Api, auth: &Auth, kind: &str, user: &UserInfo, mut obj: Value) -> Result<Value, StatusError> {
    if !obj.is_object() {
        return Err(StatusError::bad_request(
            "the object provided is unrecognized or malformed: expected a JSON object",
        ));
    }
    let group = if matches!(kind, "SelfSubjectReview" | "TokenReview") { AUTHN } else { AUTHZ };
    let api_version = format!("{group}/v1");
    match obj["kind"].as_str() {
        None | Some("") => {}
        Some(k) if k == kind => {}
        Some(k) => {
            return Err(StatusError::bad_request(format!(
                "{k} in version \"v1\" cannot be handled as a {kind}: the kind in the data does not match the expected kind"
            )));
        }
    }
    obj["kind"] = json!(kind);
    obj["apiVersion"] = json!(api_version);
    let mut metadata = obj.get("metadata").filter(|m| m.is_object()).cloned().unwrap_or(json!({}));
    metadata["creationTimestamp"] = Value::Null;
    // A cluster-scoped create drops a namespace in the body (upstream's
    // `EnsureObjectNamespaceMatchesRequestNamespace`); the local review's is the URL's.
    if kind != "LocalSubjectAccessReview"
        && let Some(m) = metadata.as_object_mut()
    {
        m.remove("namespace");
    }
    obj["metadata"] = metadata;
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let resource = format!("{}s", kind.to_lowercase());
    let status = match kind {
        "SelfSubjectAccessReview" | "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            let subject = if kind != "SelfSubjectAccessReview" {
                let u = subject_of(&spec);
                if u.name.is_empty() && u.groups.is_empty() {
                    let errs = [FieldError::invalid(
                        "spec.user",
                        json!(""),
                        "at least one of user or group must be specified",
                    )];
                    return Err(StatusError::invalid(&info(AUTHZ, &resource, kind), "", &errs));
                }
                u
            } else {
                user.clone()
            };
            let attrs = attributes(&spec).map_err(|e| StatusError::invalid(&info(AUTHZ, &resource, kind), "", &[e]))?;
            let allowed = auth.evaluate(api, &subject, &attrs);
            json!({"allowed": allowed})
        }
        "SelfSubjectRulesReview" => {
            let ns = spec["namespace"].as_str().unwrap_or_default();
            rules_review(api, auth, user, ns)
        }
        "TokenReview" => token_review(auth, &spec)?,
        _ => {
            let mut info = json!({"username": user.name, "groups": user.groups});
            if !user.uid.is_empty() {
                info["uid"] = json!(user.uid);
            }
            if !user.extra.is_empty() {
                info["extra"] = json!(user.extra);
            }
            json!({"userInfo": info})
        }
    };
    obj["status"] = status;
    Ok(obj)
}

/// A TokenReview's status, as upstream's `tokenreview` storage answers: no token is a 400; a
/// token nobody has, or asked for audiences that do not include the server's (its tokens are
/// audience-agnostic), is `authenticated` false with the bearer authenticator's error;
/// otherwise the user, with the audiences it is authenticated for. (A namespace in the body is
/// dropped before, as for any cluster-scoped create.)
fn token_review(auth: &Auth, spec: &Value) -> Result<Value, StatusError> {
    let token = spec["token"].as_str().unwrap_or_default();
    if token.is_empty() {
        return Err(StatusError::bad_request("token is required for TokenReview in authentication"));
    }
    let asked: Vec<&str> =
        spec["audiences"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let user = auth.user_of(token).filter(|_| asked.is_empty() || asked.contains(&API_AUDIENCE));
    let Some(user) = user else {
        return Ok(json!({"user": {}, "error": "invalid bearer token"}));
    };
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    Ok(json!({"authenticated": true, "user": info, "audiences": [API_AUDIENCE]}))
}

/// The user a SubjectAccessReview asks about.
fn subject_of(spec: &Value) -> UserInfo {
    let strs = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default()
    };
    UserInfo {
        name: spec["user"].as_str().unwrap_or_default().to_string(),
        groups: strs(&spec["groups"]),
        uid: spec["uid"].as_str().unwrap_or_default().to_string(),
        extra: spec["extra"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), strs(v))).collect())
            .unwrap_or_default(),
        impersonator: None,
    }
}

/// The attributes of a review's spec: exactly one of `resourceAttributes` and
/// `nonResourceAttributes`, as upstream's validation.
fn attributes(spec: &Value) -> Result<Attributes, FieldError> {
    let present = |k: &str| spec.get(k).is_some_and(|v| !v.is_null());
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    match (present("resourceAttributes"), present("nonResourceAttributes")) {
        (true, true) => Err(FieldError::invalid(
            "spec.nonResourceAttributes",
            spec["nonResourceAttributes"].clone(),
            "cannot be specified in combination with resourceAttributes",
        )),
        (false, false) => Err(FieldError::required(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        (true, false) => {
            let r = &spec["resourceAttributes"];
            Ok(Attributes::resource(
                &s(r, "verb"),
                &s(r, "group"),
                &s(r, "resource"),
                &s(r, "subresource"),
                &s(r, "namespace"),
                &s(r, "name"),
            ))
        }
        (false, true) => {
            let n = &spec["nonResourceAttributes"];
            Ok(Attributes { verb: s(n, "verb"), path: s(n, "path"), resource_request: false, ..Attributes::default() })
        }
    }
}

/// A SelfSubjectRulesReview's status: the user's rules in `ns` split into resource and
/// non-resource rules (`system:masters` holds every permission, as upstream's bootstrap binding
/// of `cluster-admin` to it grants).
fn rules_review(api: &Api, auth: &Auth, user: &UserInfo, ns: &str) -> Value {
    let mut rules = rbac::rules_for(&auth.policy_snapshot(api), user, ns);
    if user.groups.iter().any(|g| g == MASTERS_GROUP) {
        rules.insert(0, json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}));
        rules.insert(1, json!({"nonResourceURLs": ["*"], "verbs": ["*"]}));
    }
    let mut resource_rules = vec![];
    let mut non_resource_rules = vec![];
    for r in rules.iter().map(rbac::Rule::from_json) {
        if !r.non_resource_urls.is_empty() {
            non_resource_rules.push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
        }
        if !r.resources.is_empty() {
            let mut o = json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if !r.resource_names.is_empty() {
                o["resourceNames"] = json!(r.resource_names);
            }
            resource_rules.push(o);
        }
    }
    json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false})
}
