//! Discovery documents (legacy and aggregated) and `/version`.
//!
//! Everything is derived from the [`Registry`], so a CRD's resource shows up in discovery the
//! moment the registry serves it.
//!
//! # What the HTTP layer must do
//! - `GET /version` → [`version`].
//! - `GET /api` and `GET /apis`: look at `Accept`. If [`wants_aggregated`] is true (client-go
//!   1.30+ and kubectl 1.32 send
//!   `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...`), answer
//!   [`aggregated_core`] / [`aggregated_apis`] with `Content-Type: ` [`AGGREGATED_CONTENT_TYPE`]
//!   exactly (client-go checks the `g`, `v` and `as` parameters of the response's content type and
//!   otherwise falls back to legacy discovery), plus `Vary: Accept`. Otherwise answer the legacy
//!   [`core_versions`] / [`api_group_list`] with `application/json`.
//! - `GET /api/v1`, `GET /apis/{g}/{v}` → [`api_resource_list`] (404 when `None`).
//! - `GET /apis/{g}` → [`api_group`] (404 when `None`).

use serde_json::{Value, json};

use super::registry::{Registry, ResourceInfo};

/// The `Content-Type` of an aggregated discovery response (apidiscovery.k8s.io/v2).
pub const AGGREGATED_CONTENT_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The Kubernetes version we present: kube-apiserver 1.33 (kubectl 1.32 is within the skew).
pub const GIT_VERSION: &str = "v1.33.0+jobwright";

/// Whether an `Accept` header asks for aggregated discovery v2 (in any position of the list;
/// kube-apiserver serves the first acceptable type, and clients that list it put it first).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("");
        if media != "application/json" {
            return false;
        }
        let (mut g, mut v, mut as_) = (false, false, false);
        for p in params {
            match p.split_once('=') {
                Some(("g", "apidiscovery.k8s.io")) => g = true,
                Some(("v", "v2")) => v = true,
                Some(("as", "APIGroupDiscoveryList")) => as_ = true,
                _ => {}
            }
        }
        g && v && as_
    })
}

/// `GET /version`.
pub fn version() -> Value {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": format!("{}/{arch}", std::env::consts::OS),
    })
}

/// `GET /api` (legacy).
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

fn group_versions_of(reg: &Registry, group: &str) -> Vec<String> {
    reg.group_versions().into_iter().filter(|(g, _)| g == group).map(|(_, v)| v).collect()
}

fn gv_string(group: &str, version: &str) -> String {
    if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }
}

fn api_group_entry(reg: &Registry, group: &str) -> Option<Value> {
    let versions = group_versions_of(reg, group);
    let preferred = versions.first()?;
    let vs: Vec<Value> = versions.iter().map(|v| json!({"groupVersion": gv_string(group, v), "version": v})).collect();
    Some(json!({
        "name": group,
        "versions": vs,
        "preferredVersion": {"groupVersion": gv_string(group, preferred), "version": preferred},
    }))
}

/// The named groups, in registration order.
fn named_groups(reg: &Registry) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (g, _) in reg.group_versions() {
        if !g.is_empty() && !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

/// `GET /apis` (legacy): an `APIGroupList` with every named group and its preferred version.
pub fn api_group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = named_groups(reg).iter().filter_map(|g| api_group_entry(reg, g)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}` (legacy): an `APIGroup`, `None` when the group is not served.
pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let mut g = api_group_entry(reg, group)?;
    let obj = g.as_object_mut()?;
    obj.insert("kind".into(), json!("APIGroup"));
    obj.insert("apiVersion".into(), json!("v1"));
    Some(g)
}

/// What a subresource answers with and allows: `(group, version, kind, verbs)`; group and
/// version are empty when they are the parent's. Mirrors kube-apiserver's discovery entries.
pub fn subresource_details(info: &ResourceInfo, sub: &str) -> (String, String, String, Vec<&'static str>) {
    let same = |kind: &str, verbs: &[&'static str]| (String::new(), String::new(), kind.to_string(), verbs.to_vec());
    match sub {
        "status" => same(&info.kind, &["get", "patch", "update"]),
        "log" => same("Pod", &["get"]),
        "binding" => same("Binding", &["create"]),
        "eviction" => ("policy".into(), "v1".into(), "Eviction".into(), vec!["create"]),
        "scale" => ("autoscaling".into(), "v1".into(), "Scale".into(), vec!["get", "patch", "update"]),
        "finalize" => same("Namespace", &["update"]),
        "ephemeralcontainers" | "resize" => same(&info.kind, &["get", "patch", "update"]),
        "exec" | "attach" | "portforward" | "proxy" => same(
            match sub {
                "exec" => "PodExecOptions",
                "attach" => "PodAttachOptions",
                "portforward" => "PodPortForwardOptions",
                _ => "PodProxyOptions",
            },
            &["create", "get"],
        ),
        _ => same(&info.kind, &["get", "patch", "update"]),
    }
}

fn resources_of(reg: &Registry, group: &str, version: &str) -> Vec<ResourceInfo> {
    reg.all().into_iter().filter(|r| r.group == group && r.version == version).collect()
}

/// `GET /api/v1` or `/apis/G/V` (legacy): `None` when the group version is not served.
pub fn api_resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let infos = resources_of(reg, group, version);
    if infos.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in &infos {
        let mut e = json!({
            "name": r.resource,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        resources.push(e);
        for sub in &r.subresources {
            let (g, v, kind, verbs) = subresource_details(r, sub);
            let mut e = json!({
                "name": format!("{}/{sub}", r.resource),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if !g.is_empty() || !v.is_empty() {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            resources.push(e);
        }
    }
    let mut list =
        json!({"kind": "APIResourceList", "groupVersion": gv_string(group, version), "resources": resources});
    if !group.is_empty() {
        list["apiVersion"] = json!("v1");
    }
    Some(list)
}

fn discovery_version(reg: &Registry, group: &str, version: &str) -> Value {
    let resources: Vec<Value> = resources_of(reg, group, version)
        .iter()
        .map(|r| {
            let mut e = json!({
                "resource": r.resource,
                "responseKind": {"group": "", "version": "", "kind": r.kind},
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": r.verbs(),
            });
            if !r.short_names.is_empty() {
                e["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                e["categories"] = json!(r.categories);
            }
            if !r.subresources.is_empty() {
                let subs: Vec<Value> = r
                    .subresources
                    .iter()
                    .map(|sub| {
                        let (g, v, kind, verbs) = subresource_details(r, sub);
                        json!({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": kind}, "verbs": verbs})
                    })
                    .collect();
                e["subresources"] = json!(subs);
            }
            e
        })
        .collect();
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

fn discovery_list(items: Vec<Value>) -> Value {
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// `GET /api` with aggregated discovery: one `APIGroupDiscovery` for the core group (no name).
pub fn aggregated_core(reg: &Registry) -> Value {
    let versions: Vec<Value> = group_versions_of(reg, "").iter().map(|v| discovery_version(reg, "", v)).collect();
    discovery_list(vec![json!({"metadata": {"creationTimestamp": null}, "versions": versions})])
}

/// `GET /apis` with aggregated discovery: one `APIGroupDiscovery` per named group, versions in
/// preference order, each with its resources and their subresources.
pub fn aggregated_apis(reg: &Registry) -> Value {
    let items: Vec<Value> = named_groups(reg)
        .iter()
        .map(|g| {
            let versions: Vec<Value> = group_versions_of(reg, g).iter().map(|v| discovery_version(reg, g, v)).collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    discovery_list(items)
}

/// Aggregated discovery for `/api` (`core = true`) or `/apis`: [`aggregated_core`] or
/// [`aggregated_apis`]. Always `Some`; the caller answers with [`AGGREGATED_CONTENT_TYPE`].
pub fn aggregated_discovery(reg: &Registry, core: bool) -> Option<Value> {
    Some(if core { aggregated_core(reg) } else { aggregated_apis(reg) })
}

/// `GET /openapi/v2` as JSON ([`super::openapi::v2_document_json`]); client-go asks for protobuf,
/// which the HTTP layer answers with [`super::openapi::v2_document_protobuf`].
pub fn openapi_v2(_reg: &Registry) -> Option<Value> {
    Some(super::openapi::v2_document_json())
}

/// `GET /openapi/v3`: the index `{"paths": {"api/v1": {"serverRelativeURL": ...}, ...}}`.
/// Custom resources are published with their CRD's `openAPIV3Schema`.
pub fn openapi_v3_index(reg: &Registry) -> Value {
    super::openapi::v3_index(reg, &custom_schemas(reg))
}

/// `GET /openapi/v3/{path}` (e.g. `api/v1`, `apis/batch/v1`), `None` → 404.
pub fn openapi_v3_gv(reg: &Registry, path: &str) -> Option<Value> {
    super::openapi::v3_document_for_path(reg, path, &custom_schemas(reg)).map(|(d, _)| d)
}

/// The schemas of the served custom resources (from their CRDs, see [`super::crd::resources`]).
fn custom_schemas(reg: &Registry) -> super::openapi::CustomSchemas {
    reg.all()
        .into_iter()
        .filter_map(|i| {
            let s = (*i.schema?).clone();
            Some(((i.group, i.version, i.kind), s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::VERBS;

    #[test]
    fn aggregated_accept_detection() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(wants_aggregated(
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList, application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList"
        ));
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"));
        assert!(!wants_aggregated(""));
    }

    #[test]
    fn version_is_1_33() {
        let v = version();
        assert_eq!((v["major"].as_str(), v["minor"].as_str()), (Some("1"), Some("33")));
        assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.33."));
        assert!(v["platform"].as_str().unwrap().contains('/'));
    }

    #[test]
    fn legacy_group_list_and_group() {
        let reg = Registry::builtin();
        let l = api_group_list(&reg);
        let names: Vec<&str> = l["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"batch") && names.contains(&"events.k8s.io") && !names.contains(&""));
        let batch = l["groups"].as_array().unwrap().iter().find(|g| g["name"] == "batch").unwrap();
        assert_eq!(batch["preferredVersion"], json!({"groupVersion": "batch/v1", "version": "v1"}));
        assert_eq!(batch["versions"], json!([{"groupVersion": "batch/v1", "version": "v1"}]));
        assert_eq!(api_group(&reg, "batch").unwrap()["kind"], "APIGroup");
        assert!(api_group(&reg, "nope.example.com").is_none());
        assert!(api_group(&reg, "").is_none());
    }

    #[test]
    fn legacy_resource_lists_carry_subresources() {
        let reg = Registry::builtin();
        let core = api_resource_list(&reg, "", "v1").unwrap();
        assert_eq!(core["groupVersion"], "v1");
        assert!(core.get("apiVersion").is_none());
        let rs = core["resources"].as_array().unwrap();
        let find = |n: &str| rs.iter().find(|r| r["name"] == n).unwrap_or_else(|| panic!("{n}")).clone();
        let pods = find("pods");
        assert_eq!(pods["singularName"], "pod");
        assert_eq!(pods["namespaced"], true);
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["verbs"], json!(VERBS));
        assert_eq!(find("pods/log")["verbs"], json!(["get"]));
        assert_eq!(find("pods/binding")["kind"], "Binding");
        let ev = find("pods/eviction");
        assert_eq!(
            (ev["group"].as_str(), ev["version"].as_str(), ev["kind"].as_str()),
            (Some("policy"), Some("v1"), Some("Eviction"))
        );
        assert_eq!(find("namespaces")["namespaced"], false);
        assert!(find("secrets").get("shortNames").is_none());
        let batch = api_resource_list(&reg, "batch", "v1").unwrap();
        assert_eq!((batch["apiVersion"].as_str(), batch["groupVersion"].as_str()), (Some("v1"), Some("batch/v1")));
        let st = batch["resources"].as_array().unwrap().iter().find(|r| r["name"] == "jobs/status").unwrap().clone();
        assert_eq!(st["kind"], "Job");
        assert_eq!(st["verbs"], json!(["get", "patch", "update"]));
        assert!(api_resource_list(&reg, "batch", "v2").is_none());
    }

    #[test]
    fn aggregated_documents_have_upstream_shape() {
        let reg = Registry::builtin();
        let core = aggregated_core(&reg);
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = core["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"].get("name").is_none());
        let v1 = &items[0]["versions"][0];
        assert_eq!((v1["version"].as_str(), v1["freshness"].as_str()), (Some("v1"), Some("Current")));
        let pods = v1["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "pods").unwrap().clone();
        assert_eq!(pods["responseKind"], json!({"group": "", "version": "", "kind": "Pod"}));
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["singularResource"], "pod");
        let subs = pods["subresources"].as_array().unwrap();
        let eviction = subs.iter().find(|s| s["subresource"] == "eviction").unwrap();
        assert_eq!(eviction["responseKind"], json!({"group": "policy", "version": "v1", "kind": "Eviction"}));
        assert_eq!(eviction["verbs"], json!(["create"]));
        let nodes = v1["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "nodes").unwrap().clone();
        assert_eq!(nodes["scope"], "Cluster");

        let apis = aggregated_apis(&reg);
        let groups: Vec<&str> =
            apis["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
        assert!(groups.contains(&"batch") && groups.contains(&"apiextensions.k8s.io"));
        let batch = apis["items"].as_array().unwrap().iter().find(|i| i["metadata"]["name"] == "batch").unwrap();
        let jobs =
            batch["versions"][0]["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "jobs").unwrap();
        assert_eq!(jobs["categories"], json!(["all"]));
        assert_eq!(
            jobs["subresources"][0],
            json!({"subresource": "status", "responseKind": {"group": "", "version": "", "kind": "Job"}, "verbs": ["get", "patch", "update"]})
        );
    }

    #[test]
    fn custom_resources_appear_once_registered() {
        let reg = Registry::builtin();
        reg.add(ResourceInfo::new("example.com", "v1", "foos", "Foo", true, &["fo"], &["all"], &["status"]));
        assert!(api_group_list(&reg)["groups"].as_array().unwrap().iter().any(|g| g["name"] == "example.com"));
        let l = api_resource_list(&reg, "example.com", "v1").unwrap();
        assert_eq!(l["resources"][0]["name"], "foos");
        assert_eq!(l["resources"][1]["name"], "foos/status");
        let agg = aggregated_apis(&reg);
        assert!(agg["items"].as_array().unwrap().iter().any(|i| i["metadata"]["name"] == "example.com"));
    }
}
