//! CustomResourceDefinitions: storing one serves its resources.
//!
//! When a CRD is written, each served version becomes a [`ResourceInfo`] in the [`Registry`]
//! (plural, kind, scope, short names, categories, the `status`/`scale` subresources of that
//! version); a CRD is accepted at once (`NamesAccepted` and `Established` conditions, as
//! upstream's controllers set them), and when it is deleted its resources stop being served and
//! its objects are removed.

use chrono::Utc;
use serde_json::{Value, json};

use super::registry::{Registry, ResourceInfo};

/// Whether `info` is the CustomResourceDefinition resource.
pub fn is_crd(info: &ResourceInfo) -> bool {
    info.group == "apiextensions.k8s.io" && info.resource == "customresourcedefinitions"
}

/// Whether `info` is a custom resource (not one of the built-in groups).
pub fn is_custom(info: &ResourceInfo) -> bool {
    !(info.group.is_empty()
        || matches!(info.group.as_str(), "batch" | "apps" | "policy")
        || info.group.ends_with(".k8s.io"))
}

/// The resources a CRD serves, one per served version.
pub fn resources(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return vec![];
    }
    let strs = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    spec["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["served"].as_bool().unwrap_or(true))
                .filter_map(|v| {
                    let version = v["name"].as_str()?;
                    let mut subs = Vec::new();
                    if v["subresources"]["status"].is_object() {
                        subs.push("status".to_string());
                    }
                    if v["subresources"]["scale"].is_object() {
                        subs.push("scale".to_string());
                    }
                    let mut info = ResourceInfo::new(group, version, plural, kind, namespaced, &[], &[], &[]);
                    info.short_names = strs(&names["shortNames"]);
                    info.categories = strs(&names["categories"]);
                    info.subresources = subs;
                    info.printer_columns = v["additionalPrinterColumns"].as_array().cloned().unwrap_or_default();
                    info.schema = v
                        .pointer("/schema/openAPIV3Schema")
                        .filter(|s| s.is_object())
                        .cloned()
                        .map(std::sync::Arc::new);
                    if let Some(s) = names["singular"].as_str() {
                        info.singular = s.to_string();
                    }
                    Some(info)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Mark a new CRD accepted and established, as upstream's naming and establishing controllers do.
pub fn accept(crd: &mut Value) {
    let now = super::rest::timestamp(Utc::now());
    crd["status"] = json!({
        "acceptedNames": crd["spec"]["names"].clone(),
        "storedVersions": crd["spec"]["versions"].as_array()
            .and_then(|vs| vs.iter().find(|v| v["storage"].as_bool() == Some(true)))
            .map(|v| vec![v["name"].clone()]).unwrap_or_default(),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
    });
}

/// Serve what `crd` defines now, replacing what an older version of it defined.
pub fn register(reg: &Registry, old: Option<&Value>, crd: &Value) {
    if let Some(old) = old {
        unregister(reg, old);
    }
    for info in resources(crd) {
        reg.add(info);
    }
}

/// Stop serving what `crd` defines.
pub fn unregister(reg: &Registry, crd: &Value) {
    for info in resources(crd) {
        reg.remove(&info.group, &info.version, &info.resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_versions_become_resources() {
        let crd = json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                         {"name": "v0", "served": false, "storage": false}]}});
        let r = resources(&crd);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].api_version().as_str(), r[0].kind.as_str()), ("example.com/v1", "Widget"));
        assert!(r[0].has_subresource("status") && r[0].namespaced);
        assert_eq!(r[0].short_names, ["wd"]);
        let reg = Registry::builtin();
        register(&reg, None, &crd);
        assert!(reg.get("example.com", "v1", "widgets").is_some());
        unregister(&reg, &crd);
        assert!(reg.get("example.com", "v1", "widgets").is_none());
    }
}
