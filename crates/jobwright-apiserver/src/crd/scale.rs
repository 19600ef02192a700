//! The `scale` subresource of a custom resource, as an `autoscaling/v1` `Scale`
//! (apiextensions-apiserver `pkg/registry/customresource`): `spec.replicas` is read from and
//! written to the CRD's `specReplicasPath`, `status.replicas` read from `statusReplicasPath` and
//! `status.selector` from `labelSelectorPath`. A write of the Scale is an update of the custom
//! resource (its `metadata.resourceVersion`, when given, a precondition); a patch applies to the
//! Scale as it is now.
//!
//! The built-in kinds with a `scale` subresource (Deployments, ReplicaSets, StatefulSets,
//! ReplicationControllers) are served the same way over `.spec.replicas`, `.status.replicas` and
//! their `.spec.selector` ([`definition`]), as kube-apiserver's `ScaleREST`s do: the selector is
//! a `LabelSelector` (a plain label map for ReplicationControllers) printed as a string.

use serde_json::{Value, json};

use crate::errors::{FieldError, StatusError};
use crate::patch::{self, PatchType};
use crate::registry::ResourceInfo;
use crate::rest::{Api, Outcome, WriteOptions};

/// The steps of a `.spec.replicas` style path.
fn steps(path: &str) -> Vec<&str> {
    path.trim_start_matches('.').split('.').filter(|s| !s.is_empty()).collect()
}

fn get<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    steps(path).iter().try_fold(obj, |v, k| v.get(*k))
}

fn set(obj: &mut Value, path: &str, value: Value) {
    let st = steps(path);
    let Some((last, init)) = st.split_last() else { return };
    let mut cur = obj;
    for k in init {
        if !cur[*k].is_object() {
            cur[*k] = json!({});
        }
        cur = &mut cur[*k];
    }
    cur[*last] = value;
}

fn scale_info() -> ResourceInfo {
    ResourceInfo::new("autoscaling", "v1", "scale", "Scale", true, &[], &[], &[])
}

/// The `scale` subresource definition of `info`: its CRD's, or the built-in kinds' paths.
pub fn definition(info: &ResourceInfo) -> Option<Value> {
    if let Some(c) = &info.crd {
        return c.scale.clone();
    }
    let selector = match (info.group.as_str(), info.resource.as_str()) {
        ("apps", "deployments" | "replicasets" | "statefulsets") => "labelSelector",
        ("", "replicationcontrollers") => "set",
        _ => return None,
    };
    Some(json!({"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".spec.selector", "selectorType": selector}))
}

/// The Scale of `obj` under the CRD's `scale` subresource definition.
pub fn to_scale(def: &Value, obj: &Value) -> Value {
    let md = &obj["metadata"];
    let mut meta = json!({});
    for k in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = md.get(k).filter(|v| !v.is_null()) {
            meta[k] = v.clone();
        }
    }
    let path = |k: &str| def.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let spec_replicas = get(obj, &path("specReplicasPath")).and_then(Value::as_i64).unwrap_or(0);
    let status_replicas = get(obj, &path("statusReplicasPath")).and_then(Value::as_i64).unwrap_or(0);
    let mut status = json!({"replicas": status_replicas});
    let sel = path("labelSelectorPath");
    let selector = match (def.get("selectorType").and_then(Value::as_str), get(obj, &sel)) {
        _ if sel.is_empty() => None,
        (None, Some(s)) => s.as_str().map(str::to_string),
        (Some(kind), Some(s)) if s.is_object() => {
            let s = if kind == "set" { json!({"matchLabels": s}) } else { s.clone() };
            crate::selector::LabelSelector::from_label_selector(&s).ok().map(|s| s.to_string())
        }
        _ => None,
    };
    if let Some(s) = selector.filter(|s| !s.is_empty()) {
        status["selector"] = json!(s);
    }
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": meta,
           "spec": {"replicas": spec_replicas}, "status": status})
}

/// GET of `.../name/scale`.
pub fn get_scale(api: &Api, info: &ResourceInfo, def: &Value, ns: &str, name: &str) -> Result<Value, StatusError> {
    let obj = api.get_value(info, ns, name)?;
    Ok(to_scale(def, &obj))
}

/// PUT of `.../name/scale` with `scale` as the body.
pub fn put_scale(
    api: &Api,
    info: &ResourceInfo,
    def: &Value,
    ns: &str,
    name: &str,
    scale: &Value,
    opts: &WriteOptions,
) -> Result<Value, StatusError> {
    if let Some(n) = scale["metadata"]["name"].as_str()
        && n != name
    {
        return Err(StatusError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().ok_or_else(|| {
            StatusError::bad_request(format!(
                "Scale in version \"v1\" cannot be handled as a Scale: json: cannot unmarshal {} into Go struct field ScaleSpec.spec.replicas of type int32",
                crate::crd::validate::type_of(v)
            ))
        })?,
    };
    if replicas < 0 {
        return Err(StatusError::invalid(
            &scale_info(),
            name,
            &[FieldError::invalid("spec.replicas", json!(replicas), "must be greater than or equal to 0")],
        ));
    }
    let mut obj = api.get_value(info, ns, name)?;
    if let Some(rv) = scale["metadata"]["resourceVersion"].as_str().filter(|r| !r.is_empty()) {
        obj["metadata"]["resourceVersion"] = json!(rv);
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let path = def.get("specReplicasPath").and_then(Value::as_str).unwrap_or(".spec.replicas");
    set(&mut obj, path, json!(replicas));
    let out: Outcome = api.update(info, ns, name, None, obj, opts)?;
    Ok(to_scale(def, &out.object))
}

/// PATCH of `.../name/scale`.
#[allow(clippy::too_many_arguments)]
pub fn patch_scale(
    api: &Api,
    info: &ResourceInfo,
    def: &Value,
    ns: &str,
    name: &str,
    ptype: PatchType,
    body: &[u8],
    opts: &WriteOptions,
) -> Result<Value, StatusError> {
    let cur = get_scale(api, info, def, ns, name)?;
    let patched = patch::apply_patch(&scale_info(), Some(&cur), ptype, body, &Default::default())?;
    let mut patched = patched;
    if patched["metadata"]["resourceVersion"].is_null() {
        patched["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
    }
    put_scale(api, info, def, ns, name, &patched, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_reads_the_crd_paths() {
        let def = json!({"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size", "labelSelectorPath": ".status.sel"});
        let obj = json!({"metadata": {"name": "a", "namespace": "n", "resourceVersion": "5", "labels": {"x": "y"}},
                         "spec": {"size": 3}, "status": {"size": 2, "sel": "app=a"}});
        let s = to_scale(&def, &obj);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"], json!({"replicas": 2, "selector": "app=a"}));
        assert_eq!(s["metadata"], json!({"name": "a", "namespace": "n", "resourceVersion": "5"}));
        let deploy = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [{"key": "t", "operator": "In", "values": ["x", "y"]}]}}, "status": {"replicas": 1}});
        let info = crate::registry::Registry::builtin().get("apps", "v1", "deployments").unwrap();
        let s = to_scale(&definition(&info).unwrap(), &deploy);
        assert_eq!(s["status"], json!({"replicas": 1, "selector": "a=1,b=2,t in (x,y)"}));
        let rc = json!({"metadata": {"name": "r"}, "spec": {"replicas": 2, "selector": {"z": "1", "app": "r"}}});
        let info = crate::registry::Registry::builtin().get("", "v1", "replicationcontrollers").unwrap();
        let s = to_scale(&definition(&info).unwrap(), &rc);
        assert_eq!(
            (s["spec"]["replicas"].clone(), s["status"].clone()),
            (json!(2), json!({"replicas": 0, "selector": "app=r,z=1"}))
        );
        let jobs = crate::registry::Registry::builtin().get("batch", "v1", "jobs").unwrap();
        assert!(definition(&jobs).is_none());
        let mut o = json!({});
        set(&mut o, ".spec.size", json!(4));
        assert_eq!(o, json!({"spec": {"size": 4}}));
    }
}
