//! `pods/exec`, `pods/attach` and `pods/portforward`: checked here, then proxied to the pod's node
//! simulator as kube-apiserver proxies them to the kubelet (its upgrade-aware proxy): the
//! upgrade request goes to the node's kubelet endpoint, and once that answers `101 Switching
//! Protocols` the two connections are spliced; any other answer is passed back as it is. The
//! checks and their messages are kube-apiserver's (`streamLocation`): the pod exists, the
//! container is named (or the pod has one), the pod has a node.
//!
//! Also `metrics.k8s.io/v1beta1` (`kubectl top`), answered as metrics-server would, from the node
//! simulators' `/stats/containers`.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::errors::StatusError;
use super::http::Server;

/// Whether `path` is a pod streaming subresource; returns (namespace, pod, subresource).
pub fn stream_target(path: &str) -> Option<(String, String, String)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, sub @ ("exec" | "attach" | "portforward")] => {
            let d = |s: &str| urlencoding::decode(s).map(|c| c.into_owned()).ok();
            Some((d(ns)?, d(name)?, sub.to_string()))
        }
        _ => None,
    }
}

/// The container a request names, or kube-apiserver's error.
fn container_of(pod: &Value, name: &str, requested: Option<&str>) -> Result<String, StatusError> {
    let names = |key: &str| -> Vec<String> {
        pod["spec"][key]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let (containers, inits) = (names("containers"), names("initContainers"));
    match requested.filter(|c| !c.is_empty()) {
        Some(c) => {
            let ephemeral = names("ephemeralContainers");
            if !containers.iter().chain(&inits).chain(&ephemeral).any(|x| x == c) {
                return Err(StatusError::bad_request(format!("container {c} is not valid for pod {name}")));
            }
            Ok(c.to_string())
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None if containers.is_empty() => {
            Err(StatusError::bad_request(format!("a container name must be specified for pod {name}")))
        }
        None => {
            let mut msg =
                format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" "));
            if !inits.is_empty() {
                msg.push_str(&format!(" or one of the init containers: [{}]", inits.join(" ")));
            }
            Err(StatusError::bad_request(msg))
        }
    }
}

/// `host:port` of a node's kubelet endpoint.
pub(crate) fn kubelet_address(s: &Server, node: &str) -> Result<String, StatusError> {
    let api = &s.api;
    let node_obj = api.get_value(&api.info("", "nodes"), "", node)?;
    let port = node_obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64().unwrap_or(0);
    if port == 0 {
        return Err(StatusError::internal(format!("node {node} has no kubelet endpoint")));
    }
    let host = node_obj["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
        .and_then(|x| x["address"].as_str())
        .unwrap_or("127.0.0.1")
        .to_string();
    Ok(format!("{host}:{port}"))
}

fn query_param<'a>(query: &'a str, key: &str) -> Vec<std::borrow::Cow<'a, str>> {
    query
        .split('&')
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| urlencoding::decode(v).unwrap_or(std::borrow::Cow::Borrowed(v)))
        .collect()
}

/// Check an exec/attach/portforward request and proxy it to the pod's node.
pub async fn proxy(
    s: &Arc<Server>,
    parts: http::request::Parts,
    ns: &str,
    name: &str,
    sub: &str,
    user: Option<&super::rbac::UserInfo>,
) -> Response {
    // kube-apiserver 1.31+ (AuthorizePodWebsocketUpgradeCreatePermission) also asks for `create`
    // on the subresource when a WebSocket upgrade arrives as a GET.
    if let Some(user) = user
        && s.auth.enforcing()
        && parts.method == Method::GET
    {
        let attrs = super::auth::request_attributes(
            &Method::POST,
            parts.uri.path(),
            &super::query::Query::from_uri(&parts.uri),
        );
        if let Err(e) = s.auth.check(&s.api, user, &attrs) {
            return super::http::error_response(&e);
        }
    }
    match try_proxy(s, parts, ns, name, sub).await {
        Ok(r) => r,
        Err(e) => super::http::error_response(&e),
    }
}

async fn try_proxy(
    s: &Arc<Server>,
    mut parts: http::request::Parts,
    ns: &str,
    name: &str,
    sub: &str,
) -> Result<Response, StatusError> {
    if parts.method != Method::GET && parts.method != Method::POST {
        return Err(StatusError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            parts.uri.path()
        )));
    }
    let api = &s.api;
    let pods = api.info("", "pods");
    let pod = api.get_value(&pods, ns, name).map_err(|_| StatusError::not_found(&pods, name))?;
    let query = parts.uri.query().unwrap_or_default().to_string();
    let path = if sub == "portforward" {
        format!("/portForward/{}/{}", urlencoding::encode(ns), urlencoding::encode(name))
    } else {
        let requested = query_param(&query, "container").into_iter().next().map(|c| c.into_owned());
        let container = container_of(&pod, name, requested.as_deref())?;
        if sub == "exec" && query_param(&query, "command").is_empty() {
            return Err(StatusError::bad_request("you must specify at least 1 command"));
        }
        format!("/{sub}/{}/{}/{}", urlencoding::encode(ns), urlencoding::encode(name), urlencoding::encode(&container))
    };
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node.is_empty() {
        return Err(StatusError::bad_request(format!("pod {name} does not have a host assigned")));
    }
    let addr = kubelet_address(s, node)?;
    let target = if query.is_empty() { path } else { format!("{path}?{query}") };

    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| StatusError::internal(format!("error dialing backend: dial tcp {addr}: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(tcp))
        .await
        .map_err(|e| StatusError::internal(format!("error dialing backend: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut req = http::Request::builder().method(parts.method.clone()).uri(target);
    for (k, v) in parts.headers.iter() {
        // Credentials stay here; everything the upgrade needs (Connection, Upgrade,
        // Sec-WebSocket-*, X-Stream-Protocol-Version) goes on.
        if k != header::AUTHORIZATION && k != header::HOST {
            req = req.header(k, v);
        }
    }
    req = req.header(header::HOST, addr.as_str());
    let req = req.body(Body::empty()).map_err(|e| StatusError::internal(e.to_string()))?;
    let mut resp = sender.send_request(req).await.map_err(|e| StatusError::internal(format!("error proxying: {e}")))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (rparts, body) = resp.into_parts();
        let mut r = Response::new(Body::new(body));
        *r.status_mut() = rparts.status;
        if let Some(ct) = rparts.headers.get(header::CONTENT_TYPE) {
            r.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
        }
        return Ok(r);
    }
    let backend = hyper::upgrade::on(&mut resp);
    let client = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let Some(client) = client else {
        return Err(StatusError::internal("the connection cannot be upgraded"));
    };
    tokio::spawn(async move {
        let (Ok(a), Ok(b)) = tokio::join!(client, backend) else { return };
        let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(a), &mut TokioIo::new(b)).await;
    });
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (k, v) in resp.headers() {
        r.headers_mut().append(k, v.clone());
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// metrics.k8s.io

/// Whether `path` is under `/apis/metrics.k8s.io/v1beta1/` (a resource, not the discovery document).
pub fn is_metrics(path: &str) -> bool {
    path.trim_end_matches('/').strip_prefix("/apis/metrics.k8s.io/v1beta1/").is_some_and(|r| !r.is_empty())
}

/// Every stored core/v1 object of `resource`, optionally in one namespace.
fn list_values(s: &Server, resource: &str, namespace: Option<&str>) -> Vec<Value> {
    let info = s.api.storage_info(&s.api.info("", resource));
    let page = s.api.store.list(&info.storage_key, namespace, None, 0, &|_| true);
    page.items.iter().filter_map(|e| serde_json::from_slice(&e.bytes()).ok()).collect()
}

/// Every running container's usage, from every node simulator that runs pods of this server.
async fn scrape(s: &Server) -> Vec<Value> {
    let nodes: Vec<Value> = list_values(s, "nodes", None);
    let mut addrs: Vec<String> = nodes
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .filter_map(|n| kubelet_address(s, n).ok())
        .collect();
    addrs.sort();
    addrs.dedup();
    let mut out = Vec::new();
    for addr in addrs {
        let Ok(url) = format!("http://{addr}").parse::<http::Uri>() else { continue };
        let Ok(client) = kube::Client::try_from(kube::Config::new(url)) else { continue };
        let Ok(req) = http::Request::get("/stats/containers").body(Vec::new()) else { continue };
        let Ok(v) = tokio::time::timeout(std::time::Duration::from_secs(10), client.request::<Value>(req)).await else {
            continue;
        };
        if let Ok(v) = v {
            out.extend(v["containers"].as_array().cloned().unwrap_or_default());
        }
    }
    out
}

fn cpu(nano: u64) -> String {
    format!("{nano}n")
}

fn memory(bytes: u64) -> String {
    if bytes.is_multiple_of(1024) { format!("{}Ki", bytes / 1024) } else { bytes.to_string() }
}

fn window(seconds: f64) -> String {
    format!("{}s", seconds.max(0.0).round() as u64)
}

/// Serve `GET` on `metrics.k8s.io/v1beta1` pods and nodes (lists and single objects, with
/// `labelSelector` on lists).
pub async fn metrics(s: &Arc<Server>, method: &Method, uri: &http::Uri) -> Response {
    match try_metrics(s, method, uri).await {
        Ok(v) => {
            let mut r = Response::new(Body::from(v.to_string()));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => super::http::error_response(&e),
    }
}

async fn try_metrics(s: &Arc<Server>, method: &Method, uri: &http::Uri) -> Result<Value, StatusError> {
    let path = uri.path().trim_end_matches('/');
    let rest = path.strip_prefix("/apis/metrics.k8s.io/v1beta1/").unwrap_or_default();
    let segs: Vec<String> =
        rest.split('/').map(|x| urlencoding::decode(x).map(|c| c.into_owned()).unwrap_or_default()).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (kind, ns, name) = match segs.as_slice() {
        ["pods"] => ("pods", None, None),
        ["namespaces", ns, "pods"] => ("pods", Some(*ns), None),
        ["namespaces", ns, "pods", n] => ("pods", Some(*ns), Some(*n)),
        ["nodes"] => ("nodes", None, None),
        ["nodes", n] => ("nodes", None, Some(*n)),
        _ => return Err(StatusError::no_route(uri.path())),
    };
    if method != Method::GET {
        return Err(StatusError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            uri.path()
        )));
    }
    let selector = uri
        .query()
        .map(|q| query_param(q, "labelSelector").into_iter().next().map(|c| c.into_owned()).unwrap_or_default())
        .unwrap_or_default();
    let selector = super::selector::LabelSelector::parse(&selector)?;
    let containers = scrape(s).await;
    let now = super::rest::timestamp(chrono::Utc::now());
    let info = |resource: &str, kind: &str, namespaced: bool| {
        super::registry::ResourceInfo::new("metrics.k8s.io", "v1beta1", resource, kind, namespaced, &[], &[], &[])
    };
    let mut items = Vec::new();
    if kind == "pods" {
        let pods = list_values(s, "pods", ns);
        for pod in pods {
            let (pns, pname) = (
                pod["metadata"]["namespace"].as_str().unwrap_or_default(),
                pod["metadata"]["name"].as_str().unwrap_or_default(),
            );
            if name.is_some_and(|n| n != pname) || !selector.matches_object(&pod) {
                continue;
            }
            let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
            let mine: Vec<&Value> =
                containers.iter().filter(|c| c["namespace"] == pns && c["pod"] == pname && c["uid"] == uid).collect();
            if mine.is_empty() {
                continue;
            }
            let win = mine.iter().filter_map(|c| c["windowSeconds"].as_f64()).fold(0.0, f64::max);
            let stamp = mine[0]["timestamp"].as_str().unwrap_or(&now).to_string();
            items.push(json!({
                "metadata": {"name": pname, "namespace": pns, "creationTimestamp": now,
                             "labels": pod["metadata"]["labels"].clone()},
                "timestamp": stamp,
                "window": window(win),
                "containers": mine.iter().map(|c| json!({
                    "name": c["container"],
                    "usage": {
                        "cpu": cpu(c["cpuNanoCores"].as_u64().unwrap_or(0)),
                        "memory": memory(c["memoryWorkingSetBytes"].as_u64().unwrap_or(0)),
                    }
                })).collect::<Vec<_>>(),
            }));
        }
        if let Some(n) = name {
            return items
                .into_iter()
                .next()
                .ok_or_else(|| StatusError::not_found(&info("pods", "PodMetrics", true), n))
                .map(|mut v| {
                    v["kind"] = json!("PodMetrics");
                    v["apiVersion"] = json!("metrics.k8s.io/v1beta1");
                    v
                });
        }
        return Ok(
            json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}),
        );
    }
    let nodes = list_values(s, "nodes", None);
    let pods = list_values(s, "pods", None);
    for node in nodes {
        let nname = node["metadata"]["name"].as_str().unwrap_or_default();
        if name.is_some_and(|n| n != nname) || !selector.matches_object(&node) {
            continue;
        }
        let (mut cpu_total, mut mem_total, mut win) = (0u64, 0u64, 0f64);
        for c in &containers {
            let on_node = pods.iter().any(|p| {
                p["spec"]["nodeName"] == nname && p["metadata"]["uid"] == c["uid"] && p["metadata"]["name"] == c["pod"]
            });
            if on_node {
                cpu_total += c["cpuNanoCores"].as_u64().unwrap_or(0);
                mem_total += c["memoryWorkingSetBytes"].as_u64().unwrap_or(0);
                win = win.max(c["windowSeconds"].as_f64().unwrap_or(0.0));
            }
        }
        items.push(json!({
            "metadata": {"name": nname, "creationTimestamp": now, "labels": node["metadata"]["labels"].clone()},
            "timestamp": now,
            "window": window(win),
            "usage": {"cpu": cpu(cpu_total), "memory": memory(mem_total)},
        }));
    }
    if let Some(n) = name {
        return items
            .into_iter()
            .next()
            .ok_or_else(|| StatusError::not_found(&info("nodes", "NodeMetrics", false), n))
            .map(|mut v| {
                v["kind"] = json!("NodeMetrics");
                v["apiVersion"] = json!("metrics.k8s.io/v1beta1");
                v
            });
    }
    Ok(json!({"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}))
}
