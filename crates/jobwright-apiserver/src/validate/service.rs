//! Service defaulting and validation, as kube-apiserver's (`SetDefaults_Service` in
//! `pkg/apis/core/v1/defaults.go`, the IP-family part of `initIPFamilyFields` and
//! `patchAllocatedValues` in `pkg/registry/core/service/storage`, `ValidateService` /
//! `ValidateServiceUpdate` in `pkg/apis/core/validation`).
//!
//! Allocation (clusterIP from the service range, nodePorts) needs the cluster's state and is done
//! by [`crate::services`] after these pure rules have passed.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::json::{arr_of, str_of};
use super::meta;
use super::{ErrorList, Operation};
use crate::errors::FieldError;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const AFFINITIES: &[&str] = &["ClientIP", "None"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const FAMILIES: &[&str] = &["IPv4", "IPv6"];
const FAMILY_POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
/// `ports.KubeletPort`, refused on LoadBalancer Services.
const KUBELET_PORT: i64 = 10250;
/// `IsValidIP`'s message.
const INVALID_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

fn ty(svc: &Value) -> &str {
    svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("")
}

fn cluster_ip(svc: &Value) -> &str {
    svc.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or("")
}

fn cluster_ips(svc: &Value) -> Vec<&str> {
    svc.pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn has_selector(svc: &Value) -> bool {
    svc.pointer("/spec/selector").and_then(Value::as_object).is_some_and(|m| !m.is_empty())
}

/// Create/update of a Service: defaults, the carried-over allocations, validation.
pub fn admit(op: Operation, obj: &mut Value, old: Option<&Value>) -> Result<Vec<String>, ErrorList> {
    if op == Operation::UpdateStatus {
        return Ok(vec![]);
    }
    default_service(obj);
    if let (Operation::Update, Some(old)) = (op, old) {
        patch_allocated_values(obj, old);
        drop_type_dependent_fields(obj, old);
    }
    default_ip_families(obj, old.filter(|_| op == Operation::Update));
    let mut errs = match (op, old) {
        (Operation::Update, Some(old)) => validate_service_update(obj, old),
        _ => vec![],
    };
    errs.extend(validate_service(obj));
    if errs.is_empty() { Ok(vec![]) } else { Err(errs) }
}

/// `SetDefaults_Service` (plus the `clusterIP`/`clusterIPs` sync of the v1 conversion).
pub fn default_service(obj: &mut Value) {
    let Some(spec) = obj.as_object_mut().map(|m| m.entry("spec").or_insert_with(|| json!({}))) else { return };
    if !spec.is_object() {
        return;
    }
    let s = spec.as_object_mut().expect("object");
    let empty = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v.as_str() == Some(""));
    if empty(s.get("sessionAffinity")) {
        s.insert("sessionAffinity".into(), json!("None"));
    }
    if s.get("sessionAffinity").and_then(Value::as_str) == Some("None") {
        s.remove("sessionAffinityConfig");
    }
    if s.get("sessionAffinity").and_then(Value::as_str) == Some("ClientIP") {
        let cfg = s.entry("sessionAffinityConfig").or_insert_with(|| json!({}));
        if cfg.is_null() {
            *cfg = json!({});
        }
        if let Some(cfg) = cfg.as_object_mut() {
            let ip = cfg.entry("clientIP").or_insert_with(|| json!({}));
            if ip.is_null() {
                *ip = json!({});
            }
            if let Some(ip) = ip.as_object_mut()
                && ip.get("timeoutSeconds").is_none_or(Value::is_null)
            {
                ip.insert("timeoutSeconds".into(), json!(10800));
            }
        }
    }
    if empty(s.get("type")) {
        s.insert("type".into(), json!("ClusterIP"));
    }
    let t = s.get("type").and_then(Value::as_str).unwrap_or("").to_string();
    if let Some(ports) = s.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            if empty(p.get("protocol")) {
                p.insert("protocol".into(), json!("TCP"));
            }
            let unset = match p.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                Some(Value::String(s)) => s.is_empty(),
                _ => false,
            };
            if unset && let Some(port) = p.get("port").cloned() {
                p.insert("targetPort".into(), port);
            }
        }
    }
    if (t == "NodePort" || t == "LoadBalancer") && empty(s.get("externalTrafficPolicy")) {
        s.insert("externalTrafficPolicy".into(), json!("Cluster"));
    }
    if t != "ExternalName" && empty(s.get("internalTrafficPolicy")) {
        s.insert("internalTrafficPolicy".into(), json!("Cluster"));
    }
    if t == "LoadBalancer" && s.get("allocateLoadBalancerNodePorts").is_none_or(Value::is_null) {
        s.insert("allocateLoadBalancerNodePorts".into(), json!(true));
    }
    // clusterIP and clusterIPs[0] are one value; clients may set either.
    let ip = s.get("clusterIP").and_then(Value::as_str).unwrap_or("").to_string();
    let ips_empty = s.get("clusterIPs").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if !ip.is_empty() && ips_empty {
        s.insert("clusterIPs".into(), json!([ip]));
    } else if ip.is_empty()
        && let Some(first) = s.get("clusterIPs").and_then(|a| a.get(0)).and_then(Value::as_str).map(str::to_string)
    {
        s.insert("clusterIP".into(), json!(first));
    }
}

/// `patchAllocatedValues`: a write that leaves out what the server allocated (clusterIP(s),
/// nodePorts, healthCheckNodePort), as `kubectl replace` of a hand-written manifest does, keeps
/// the allocated values.
pub fn patch_allocated_values(obj: &mut Value, old: &Value) {
    let (new_ty, old_ty) = (ty(obj).to_string(), ty(old));
    let needs_ip = |t: &str| t != "ExternalName";
    if needs_ip(&new_ty) && needs_ip(old_ty) && cluster_ip(obj).is_empty() && cluster_ips(obj).is_empty() {
        if let Some(v) = old.pointer("/spec/clusterIP") {
            obj["spec"]["clusterIP"] = v.clone();
        }
        if let Some(v) = old.pointer("/spec/clusterIPs") {
            obj["spec"]["clusterIPs"] = v.clone();
        }
    }
    let node_ports = |t: &str| t == "NodePort" || t == "LoadBalancer";
    if node_ports(&new_ty) && node_ports(old_ty) {
        let old_ports = arr_of(&old["spec"], "ports").to_vec();
        if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut() {
                if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    continue;
                }
                let found = old_ports.iter().find(|o| o.get("port") == p.get("port")).and_then(|o| o.get("nodePort"));
                if let (Some(np), Some(m)) = (found.cloned(), p.as_object_mut()) {
                    m.insert("nodePort".into(), np);
                }
            }
        }
    }
    if obj.pointer("/spec/healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0) == 0
        && obj.pointer("/spec/externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
        && new_ty == "LoadBalancer"
        && let Some(v) = old.pointer("/spec/healthCheckNodePort").filter(|v| v.as_i64().unwrap_or(0) != 0)
    {
        obj["spec"]["healthCheckNodePort"] = v.clone();
    }
}

/// `dropTypeDependentFields`: an update to a type that no longer uses a field the server set
/// (cluster IPs and families for ExternalName, node ports, the health check node port,
/// `allocateLoadBalancerNodePorts`, `externalTrafficPolicy`) drops it when the client left it
/// as it was; a changed value is left for validation to refuse.
pub fn drop_type_dependent_fields(obj: &mut Value, old: &Value) {
    if !obj["spec"].is_object() {
        return;
    }
    let same =
        |obj: &Value, p: &str| obj.pointer(p).filter(|v| !v.is_null()) == old.pointer(p).filter(|v| !v.is_null());
    let (new_ty, old_ty) = (ty(obj).to_string(), ty(old).to_string());
    let node_ports = |t: &str| t == "NodePort" || t == "LoadBalancer";
    if old_ty != "ExternalName" && new_ty == "ExternalName" {
        if same(obj, "/spec/clusterIP") && same(obj, "/spec/clusterIPs") {
            let spec = obj["spec"].as_object_mut().expect("object");
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        for f in ["ipFamilies", "ipFamilyPolicy"] {
            if same(obj, &format!("/spec/{f}")) {
                obj["spec"].as_object_mut().expect("object").remove(f);
            }
        }
    }
    let node_port_list = |v: &Value| -> Vec<i64> {
        arr_of(&v["spec"], "ports").iter().map(|p| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0)).collect()
    };
    if node_ports(&old_ty)
        && !node_ports(&new_ty)
        && node_port_list(obj) == node_port_list(old)
        && let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut)
    {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.remove("nodePort");
        }
    }
    let needs_hc = |v: &Value| {
        ty(v) == "LoadBalancer" && v.pointer("/spec/externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
    };
    if needs_hc(old) && !needs_hc(obj) && same(obj, "/spec/healthCheckNodePort") {
        obj["spec"].as_object_mut().expect("object").remove("healthCheckNodePort");
    }
    if old_ty == "LoadBalancer" && new_ty != "LoadBalancer" && same(obj, "/spec/allocateLoadBalancerNodePorts") {
        obj["spec"].as_object_mut().expect("object").remove("allocateLoadBalancerNodePorts");
    }
    let external =
        |v: &Value| node_ports(ty(v)) || (ty(v) == "ClusterIP" && !arr_of(&v["spec"], "externalIPs").is_empty());
    if external(old) && !external(obj) && same(obj, "/spec/externalTrafficPolicy") {
        obj["spec"].as_object_mut().expect("object").remove("externalTrafficPolicy");
    }
    if new_ty != "LoadBalancer"
        && let Some(st) = obj.get_mut("status").and_then(Value::as_object_mut)
    {
        st.remove("loadBalancer");
    }
}

/// The IP-family defaults of `initIPFamilyFields` for a single-stack IPv4 cluster: no policy
/// means the old object's policy on updates, else `RequireDualStack` for a headless Service
/// without selector, else `SingleStack`; families inferred from the cluster IPs, else `IPv4`
/// (plus `IPv6` for the headless selectorless dual-stack case, which upstream allows on a
/// single-stack cluster).
pub fn default_ip_families(obj: &mut Value, old: Option<&Value>) {
    if ty(obj) == "ExternalName" || !obj["spec"].is_object() {
        return;
    }
    let headless_selectorless = cluster_ip(obj) == "None" && !has_selector(obj);
    if obj.pointer("/spec/ipFamilyPolicy").is_none_or(Value::is_null) {
        let policy = match old.and_then(|o| o.pointer("/spec/ipFamilyPolicy")).filter(|v| !v.is_null()) {
            Some(p) => p.clone(),
            None if headless_selectorless => json!("RequireDualStack"),
            None => json!("SingleStack"),
        };
        obj["spec"]["ipFamilyPolicy"] = policy;
    }
    let mut families: Vec<String> =
        arr_of(&obj["spec"], "ipFamilies").iter().filter_map(|v| v.as_str().map(String::from)).collect();
    let ips: Vec<String> = cluster_ips(obj).into_iter().map(String::from).collect();
    for (i, ip) in ips.iter().enumerate() {
        if ip == "None" {
            break;
        }
        if i >= families.len() {
            match ip.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(_)) => families.push("IPv4".into()),
                Ok(std::net::IpAddr::V6(_)) => families.push("IPv6".into()),
                Err(_) => return, // validation reports the address
            }
        }
    }
    if families.is_empty() {
        families.push("IPv4".into());
    }
    let policy = obj.pointer("/spec/ipFamilyPolicy").and_then(Value::as_str).unwrap_or("");
    if headless_selectorless && families.len() < 2 && policy != "SingleStack" {
        let alt = if families[0] == "IPv4" { "IPv6" } else { "IPv4" };
        families.push(alt.into());
    }
    obj["spec"]["ipFamilies"] = json!(families);
}

fn ip_ok(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>().is_ok()
}

/// `ValidateService`.
pub fn validate_service(svc: &Value) -> ErrorList {
    let mut errs = vec![];
    let spec = &svc["spec"];
    let t = ty(svc);
    let headless = cluster_ip(svc) == "None";
    let ports = arr_of(spec, "ports");
    let ips = cluster_ips(svc);
    if ports.is_empty() && !headless && t != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match t {
        "LoadBalancer" => {
            if headless {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    json!(ips.first().copied().unwrap_or("None")),
                    "may not be set to 'None' for LoadBalancer services",
                ));
            }
            for (i, p) in ports.iter().enumerate() {
                if p.get("port").and_then(Value::as_i64) == Some(KUBELET_PORT) {
                    errs.push(FieldError::invalid(
                        format!("spec.ports[{i}]"),
                        json!(KUBELET_PORT),
                        format!("may not expose port {KUBELET_PORT} externally since it is used by kubelet"),
                    ));
                }
            }
        }
        "NodePort" if headless => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            json!(ips.first().copied().unwrap_or("None")),
            "may not be set to 'None' for NodePort services",
        )),
        "ExternalName" => {
            if !ips.is_empty() {
                errs.push(FieldError::forbidden("spec.clusterIPs", "may not be set for ExternalName services"));
            }
            if !arr_of(spec, "ipFamilies").is_empty() {
                errs.push(FieldError::forbidden("spec.ipFamilies", "may not be set for ExternalName services"));
            }
            if spec.get("ipFamilyPolicy").is_some_and(|v| !v.is_null()) {
                errs.push(FieldError::forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"));
            }
            let cname = str_of(spec, "externalName").unwrap_or("");
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                errs.extend(
                    meta::is_dns1123_subdomain(cname)
                        .into_iter()
                        .map(|m| FieldError::invalid("spec.externalName", json!(cname), m)),
                );
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        errs.extend(validate_service_port(p, ports.len() > 1, &mut names, &format!("spec.ports[{i}]")));
    }
    if let Some(sel) = spec.get("selector").filter(|v| !v.is_null()) {
        errs.extend(meta::validate_labels(Some(sel), "spec.selector"));
    }
    match str_of(spec, "sessionAffinity").unwrap_or("") {
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        "ClientIP" => {
            let timeout = spec.pointer("/sessionAffinityConfig/clientIP/timeoutSeconds").and_then(Value::as_i64);
            match timeout {
                None => errs.push(FieldError::required(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    "when session affinity type is ClientIP",
                )),
                Some(n) if !(1..=86400).contains(&n) => errs.push(FieldError::invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    json!(n),
                    "must be greater than 0 and less than 86400",
                )),
                _ => {}
            }
        }
        "None" => {
            if spec.get("sessionAffinityConfig").is_some_and(|v| !v.is_null()) {
                errs.push(FieldError::forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => errs.push(FieldError::not_supported("spec.sessionAffinity", json!(other), AFFINITIES)),
    }
    for (i, ip) in arr_of(spec, "externalIPs").iter().enumerate() {
        let s = ip.as_str().unwrap_or("");
        if !ip_ok(s) {
            errs.push(FieldError::invalid(format!("spec.externalIPs[{i}]"), json!(s), INVALID_IP));
        }
    }
    match t {
        "" => errs.push(FieldError::required("spec.type", "")),
        t if !TYPES.contains(&t) => errs.push(FieldError::not_supported("spec.type", json!(t), TYPES)),
        _ => {}
    }
    if t == "ClusterIP" {
        for (i, p) in ports.iter().enumerate() {
            if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("").to_string();
        let np = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if np != 0 && !node_ports.insert((proto.clone(), np)) {
            errs.push(FieldError::duplicate(format!("spec.ports[{i}].nodePort"), json!(np)));
        }
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !seen.insert((proto.clone(), port)) {
            errs.push(FieldError::duplicate(format!("spec.ports[{i}]"), json!({"port": port, "protocol": proto})));
        }
    }
    if t != "LoadBalancer" && !arr_of(spec, "loadBalancerSourceRanges").is_empty() {
        errs.push(FieldError::forbidden(
            "spec.loadBalancerSourceRanges",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    // validateServiceExternalTrafficFields
    let etp = str_of(spec, "externalTrafficPolicy").unwrap_or("");
    if t == "NodePort" || t == "LoadBalancer" {
        if etp.is_empty() {
            errs.push(FieldError::required("spec.externalTrafficPolicy", ""));
        } else if !TRAFFIC_POLICIES.contains(&etp) {
            errs.push(FieldError::not_supported("spec.externalTrafficPolicy", json!(etp), TRAFFIC_POLICIES));
        }
    } else if !etp.is_empty() {
        errs.push(FieldError::invalid(
            "spec.externalTrafficPolicy",
            json!(etp),
            "may only be set for externally-accessible services",
        ));
    }
    let itp = str_of(spec, "internalTrafficPolicy").unwrap_or("");
    if t != "ExternalName" {
        if itp.is_empty() {
            errs.push(FieldError::required("spec.internalTrafficPolicy", ""));
        } else if !TRAFFIC_POLICIES.contains(&itp) {
            errs.push(FieldError::not_supported("spec.internalTrafficPolicy", json!(itp), TRAFFIC_POLICIES));
        }
    }
    errs.extend(validate_cluster_ips_related(svc));
    errs
}

/// `validateServicePort`.
fn validate_service_port(p: &Value, require_name: bool, names: &mut BTreeSet<String>, path: &str) -> ErrorList {
    let mut errs = vec![];
    let name = str_of(p, "name").unwrap_or("");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !name.is_empty() {
        errs.extend(
            meta::is_dns1123_label(name)
                .into_iter()
                .map(|m| FieldError::invalid(format!("{path}.name"), json!(name), m)),
        );
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), json!(name)));
        }
    }
    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::invalid(format!("{path}.port"), json!(port), meta::inclusive_range_error(1, 65535)));
    }
    match str_of(p, "protocol").unwrap_or("") {
        "" => errs.push(FieldError::required(format!("{path}.protocol"), "")),
        pr if !PROTOCOLS.contains(&pr) => {
            errs.push(FieldError::not_supported(format!("{path}.protocol"), json!(pr), PROTOCOLS))
        }
        _ => {}
    }
    match p.get("targetPort") {
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&n) {
                errs.push(FieldError::invalid(
                    format!("{path}.targetPort"),
                    json!(n),
                    meta::inclusive_range_error(1, 65535),
                ));
            }
        }
        Some(Value::String(s)) => {
            for m in crate::validate::pod::is_valid_port_name(s) {
                errs.push(FieldError::invalid(format!("{path}.targetPort"), json!(s), m));
            }
        }
        _ => {}
    }
    if let Some(ap) = str_of(p, "appProtocol").filter(|s| !s.is_empty()) {
        errs.extend(
            meta::is_qualified_name(ap)
                .into_iter()
                .map(|m| FieldError::invalid(format!("{path}.appProtocol"), json!(ap), m)),
        );
    }
    errs
}

/// `ValidateServiceClusterIPsRelatedFields` (single-stack cluster).
fn validate_cluster_ips_related(svc: &Value) -> ErrorList {
    let mut errs = vec![];
    if ty(svc) == "ExternalName" {
        return errs;
    }
    let spec = &svc["spec"];
    let ip = cluster_ip(svc);
    let ips = cluster_ips(svc);
    let ips_json = spec.get("clusterIPs").cloned().unwrap_or(json!([]));
    if !ip.is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required("spec.clusterIPs", ""));
        } else if ips[0] != ip {
            errs.push(FieldError::invalid("spec.clusterIPs", ips_json.clone(), "first value must match `clusterIP`"));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            ips_json.clone(),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, f) in arr_of(spec, "ipFamilies").iter().enumerate() {
        let f = f.as_str().unwrap_or("");
        if !FAMILIES.contains(&f) {
            errs.push(FieldError::not_supported(format!("spec.ipFamilies[{i}]"), json!(f), FAMILIES));
        }
        if !seen.insert(f.to_string()) {
            errs.push(FieldError::duplicate(format!("spec.ipFamilies[{i}]"), json!(f)));
        }
    }
    if let Some(p) = spec.get("ipFamilyPolicy").filter(|v| !v.is_null()) {
        let p = p.as_str().unwrap_or("");
        if !FAMILY_POLICIES.contains(&p) {
            errs.push(FieldError::not_supported("spec.ipFamilyPolicy", json!(p), FAMILY_POLICIES));
        }
    }
    for (i, one) in ips.iter().enumerate() {
        if i == 0 && *one == "None" {
            if ips.len() > 1 {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs",
                    ips_json.clone(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if !ip_ok(one) {
            errs.push(FieldError::invalid(format!("spec.clusterIPs[{i}]"), json!(one), INVALID_IP));
        }
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid("spec.clusterIPs", ips_json, "may only hold up to 2 values"));
    }
    errs
}

/// `ValidateServiceUpdate`'s own rules: the primary cluster IP and IP family may not change
/// (except to, from or on ExternalName).
fn validate_service_update(svc: &Value, old: &Value) -> ErrorList {
    let mut errs = vec![];
    if ty(svc) == "ExternalName" || ty(old) == "ExternalName" {
        return errs;
    }
    let (new_ips, old_ips) = (cluster_ips(svc), cluster_ips(old));
    if let Some(first) = old_ips.first()
        && new_ips.first() != Some(first)
    {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            svc.pointer("/spec/clusterIPs").cloned().unwrap_or(json!([])),
            "may not change once set",
        ));
    }
    let fam = |v: &Value| v.pointer("/spec/ipFamilies/0").and_then(Value::as_str).map(str::to_string);
    if let Some(f) = fam(old)
        && fam(svc).as_ref() != Some(&f)
    {
        errs.push(FieldError::invalid(
            "spec.ipFamilies[0]",
            svc.pointer("/spec/ipFamilies/0").cloned().unwrap_or(Value::Null),
            "may not change once set",
        ));
    }
    errs
}
