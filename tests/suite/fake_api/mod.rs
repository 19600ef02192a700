//! A deliberately small in-memory Kubernetes API, just enough for the node simulator's calls
//! (list/watch, get, create, replace, `/status`, `/binding`, graceful `DELETE` with a uid
//! precondition). It lets the kubelet be tested on its own, independent of jobwright's real API
//! server; it is not a conformance target.

#![allow(dead_code)] // each test crate uses a different part of the fake

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;

type Key = (String, String, String); // resource, namespace, name

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<(u64, String, &'static str, Value)>,
}

/// The fake server's state.
#[derive(Clone)]
pub struct FakeApi {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<(u64, String, &'static str, Value)>,
    /// Refuse every pod status write with 500 (a failing API server; kube-rs does not retry 500 itself) while set.
    refuse_status_writes: Arc<std::sync::atomic::AtomicBool>,
    /// Status writes refused so far, and a notification per refusal.
    status_refusals: Arc<(std::sync::atomic::AtomicUsize, tokio::sync::Notify)>,
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

fn kind_of(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "pods" => ("v1", "Pod"),
        "nodes" => ("v1", "Node"),
        "namespaces" => ("v1", "Namespace"),
        "configmaps" => ("v1", "ConfigMap"),
        "secrets" => ("v1", "Secret"),
        "leases" => ("coordination.k8s.io/v1", "Lease"),
        "events" => ("events.k8s.io/v1", "Event"),
        _ => ("v1", "Unknown"),
    }
}

impl FakeApi {
    /// Start on 127.0.0.1:0; returns the state and a client for it.
    pub async fn start() -> (Self, kube::Client) {
        let (api, client, _) = Self::start_with_url().await;
        (api, client)
    }

    /// Like [`start`](Self::start), also returning the server's URL.
    pub async fn start_with_url() -> (Self, kube::Client, String) {
        let api = Self {
            inner: Arc::default(),
            events: broadcast::channel(100_000).0,
            refuse_status_writes: Arc::default(),
            status_refusals: Arc::default(),
        };
        let app = Router::new().fallback(handle).with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let url = format!("http://{addr}");
        let config = kube::Config::new(url.parse().unwrap());
        (api, kube::Client::try_from(config).unwrap(), url)
    }

    fn commit(&self, inner: &mut Inner, key: Key, mut obj: Value, kind: &'static str) -> Value {
        inner.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        if kind == "DELETED" {
            inner.objects.remove(&key);
        } else {
            inner.objects.insert(key.clone(), obj.clone());
        }
        inner.history.push((inner.rv, key.0.clone(), kind, obj.clone()));
        let _ = self.events.send((inner.rv, key.0, kind, obj.clone()));
        obj
    }

    /// Create an object directly (as a test would through the API).
    pub fn create(&self, resource: &str, ns: &str, mut obj: Value) -> Value {
        let mut inner = self.inner.lock().unwrap();
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let (api_version, kind) = kind_of(resource);
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(kind);
        if !ns.is_empty() {
            obj["metadata"]["namespace"] = json!(ns);
        }
        obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        obj["metadata"]["creationTimestamp"] =
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        if resource == "pods" {
            let spec = &mut obj["spec"];
            if spec.get("restartPolicy").is_none() {
                spec["restartPolicy"] = json!("Always");
            }
        }
        self.commit(&mut inner, (resource.into(), ns.into(), name), obj, "ADDED")
    }

    /// Refuse every pod status write with 500 InternalError (`true`) or serve them again.
    pub fn refuse_status_writes(&self, on: bool) {
        self.refuse_status_writes.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Waits until `n` status writes have been refused in all (30 s at most).
    pub async fn wait_status_refusals(&self, n: usize) {
        let (count, notify) = &*self.status_refusals;
        let refused = || count.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::timeout(std::time::Duration::from_secs(30), async {
            loop {
                let notified = notify.notified();
                if refused() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{} status writes refused, not {n}", refused()));
    }

    /// Read an object.
    pub fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.inner.lock().unwrap().objects.get(&(resource.into(), ns.into(), name.into())).cloned()
    }

    /// Wait until `pred` holds for the object (or its absence), watching the change feed.
    pub async fn wait_for(
        &self,
        resource: &str,
        ns: &str,
        name: &str,
        pred: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let mut rx = self.events.subscribe();
        loop {
            let current = self.get(resource, ns, name);
            if pred(current.as_ref()) {
                return current;
            }
            tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting on {resource} {ns}/{name}; last: {current:#?}"))
                .unwrap();
        }
    }

    /// Every version of an object, oldest first (including the deletion).
    pub fn versions(&self, resource: &str, ns: &str, name: &str) -> Vec<Value> {
        let inner = self.inner.lock().unwrap();
        inner
            .history
            .iter()
            .filter(|(_, r, _, o)| {
                r == resource && o["metadata"]["name"] == name && (ns.is_empty() || o["metadata"]["namespace"] == ns)
            })
            .map(|(.., o)| o.clone())
            .collect()
    }

    /// The whole change history: (resource, event type, object).
    pub fn history(&self) -> Vec<(String, &'static str, Value)> {
        self.inner.lock().unwrap().history.iter().map(|(_, r, t, o)| (r.clone(), *t, o.clone())).collect()
    }

    /// All objects of a resource.
    pub fn list(&self, resource: &str) -> Vec<Value> {
        let inner = self.inner.lock().unwrap();
        inner.objects.iter().filter(|((r, ..), _)| r == resource).map(|(_, v)| v.clone()).collect()
    }

    /// Wait until `pred` holds for the store, watching the change feed.
    pub async fn wait_until(&self, what: &str, pred: impl Fn(&Self) -> bool) {
        let mut rx = self.events.subscribe();
        while !pred(self) {
            tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .unwrap();
        }
    }

    /// Mark a pod for graceful deletion, as kube-apiserver does for a scheduled, unfinished pod.
    pub fn delete_gracefully(&self, ns: &str, name: &str, grace: i64) {
        let mut inner = self.inner.lock().unwrap();
        let key: Key = ("pods".into(), ns.into(), name.into());
        let mut obj = inner.objects.get(&key).cloned().unwrap();
        obj["metadata"]["deletionTimestamp"] =
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        self.commit(&mut inner, key, obj, "MODIFIED");
    }

    /// Replace an object (no resourceVersion check).
    pub fn replace(&self, resource: &str, ns: &str, name: &str, obj: Value) {
        let mut inner = self.inner.lock().unwrap();
        self.commit(&mut inner, (resource.into(), ns.into(), name.into()), obj, "MODIFIED");
    }

    /// Delete an object outright.
    pub fn delete_now(&self, resource: &str, ns: &str, name: &str) {
        let mut inner = self.inner.lock().unwrap();
        let key: Key = (resource.into(), ns.into(), name.into());
        if let Some(obj) = inner.objects.get(&key).cloned() {
            self.commit(&mut inner, key, obj, "DELETED");
        }
    }
}

async fn handle(
    State(api): State<FakeApi>,
    method: Method,
    uri: Uri,
    Query(q): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let rest = if let Some(r) = path.strip_prefix("/api/v1/") {
        r
    } else if let Some(r) = path.strip_prefix("/apis/") {
        match r.splitn(3, '/').nth(2) {
            Some(r) => r,
            None => return status(404, "NotFound", "no such group"),
        }
    } else {
        return status(404, "NotFound", "not found");
    };
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (ns, segs): (String, Vec<&str>) = if segs.first() == Some(&"namespaces") && segs.len() >= 3 {
        (segs[1].to_string(), segs[2..].to_vec())
    } else {
        (String::new(), segs)
    };
    let resource = segs.first().copied().unwrap_or_default().to_string();
    let name = segs.get(1).map(|s| s.to_string());
    let sub = segs.get(2).copied();
    let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    match (method, name, sub) {
        (Method::GET, None, _) => {
            if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                let from: u64 = q.get("resourceVersion").and_then(|r| r.parse().ok()).unwrap_or(0);
                return watch(&api, &resource, &ns, from);
            }
            let inner = api.inner.lock().unwrap();
            let items: Vec<Value> = inner
                .objects
                .iter()
                .filter(|((r, n, _), _)| *r == resource && (ns.is_empty() || *n == ns))
                .map(|(_, v)| v.clone())
                .collect();
            let (api_version, kind) = kind_of(&resource);
            axum::Json(json!({"apiVersion": api_version, "kind": format!("{kind}List"),
                "metadata": {"resourceVersion": inner.rv.to_string()}, "items": items}))
            .into_response()
        }
        (Method::GET, Some(name), None) => match api.get(&resource, &ns, &name) {
            Some(o) => axum::Json(o).into_response(),
            None => status(404, "NotFound", &format!("{resource} \"{name}\" not found")),
        },
        (Method::POST, None, _) => {
            if api.get(&resource, &ns, body["metadata"]["name"].as_str().unwrap_or_default()).is_some() {
                return status(409, "AlreadyExists", "already exists");
            }
            (StatusCode::CREATED, axum::Json(api.create(&resource, &ns, body))).into_response()
        }
        (Method::POST, Some(name), Some("binding")) => {
            let mut inner = api.inner.lock().unwrap();
            let key: Key = ("pods".into(), ns.clone(), name.clone());
            let Some(mut pod) = inner.objects.get(&key).cloned() else {
                return status(404, "NotFound", "pod not found");
            };
            if pod["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()) {
                return status(409, "Conflict", "pod is already assigned to a node");
            }
            pod["spec"]["nodeName"] = body["target"]["name"].clone();
            let conds = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
            conds.push(json!({"type": "PodScheduled", "status": "True",
                "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}));
            pod["status"]["conditions"] = json!(conds);
            api.commit(&mut inner, key, pod, "MODIFIED");
            (StatusCode::CREATED, axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})))
                .into_response()
        }
        (Method::PUT, Some(name), sub) => {
            if resource == "pods"
                && sub == Some("status")
                && api.refuse_status_writes.load(std::sync::atomic::Ordering::SeqCst)
            {
                let (count, notify) = &*api.status_refusals;
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                notify.notify_waiters();
                return status(500, "InternalError", "refused by the fake (injected)");
            }
            let mut inner = api.inner.lock().unwrap();
            let key: Key = (resource.clone(), ns.clone(), name.clone());
            let Some(current) = inner.objects.get(&key).cloned() else {
                return status(404, "NotFound", "not found");
            };
            let sent_rv = body["metadata"]["resourceVersion"].as_str().unwrap_or_default();
            if !sent_rv.is_empty() && sent_rv != current["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
                return status(
                    409,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version and try again",
                );
            }
            let mut next = current.clone();
            if sub == Some("status") {
                next["status"] = body["status"].clone();
            } else {
                next = body;
                next["metadata"]["uid"] = current["metadata"]["uid"].clone();
                next["status"] = current["status"].clone();
            }
            (StatusCode::OK, axum::Json(api.commit(&mut inner, key, next, "MODIFIED"))).into_response()
        }
        (Method::DELETE, Some(name), None) => {
            let mut inner = api.inner.lock().unwrap();
            let key: Key = (resource.clone(), ns.clone(), name.clone());
            let Some(current) = inner.objects.get(&key).cloned() else {
                return status(404, "NotFound", "not found");
            };
            if let Some(uid) = body["preconditions"]["uid"].as_str()
                && Some(uid) != current["metadata"]["uid"].as_str()
            {
                return status(409, "Conflict", "Precondition failed: UID in precondition");
            }
            let grace = body["gracePeriodSeconds"].as_i64().unwrap_or(30);
            let scheduled = current["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
            let finished = matches!(current["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
            if resource == "pods" && grace > 0 && scheduled && !finished {
                let mut next = current.clone();
                next["metadata"]["deletionTimestamp"] =
                    json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                next["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                return axum::Json(api.commit(&mut inner, key, next, "MODIFIED")).into_response();
            }
            axum::Json(api.commit(&mut inner, key, current, "DELETED")).into_response()
        }
        _ => status(405, "MethodNotAllowed", "not supported by the fake"),
    }
}

fn watch(api: &FakeApi, resource: &str, ns: &str, from: u64) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1024);
    let (backlog, mut live) = {
        let inner = api.inner.lock().unwrap();
        let backlog: Vec<_> = inner.history.iter().filter(|(rv, ..)| *rv > from).cloned().collect();
        (backlog, api.events.subscribe())
    };
    let (resource, ns) = (resource.to_string(), ns.to_string());
    tokio::spawn(async move {
        let matches =
            |r: &str, o: &Value| r == resource && (ns.is_empty() || o["metadata"]["namespace"] == ns.as_str());
        for (_, r, t, o) in backlog {
            if matches(&r, &o) {
                let line = format!("{}\n", json!({"type": t, "object": o}));
                if tx.send(Ok(Bytes::from(line))).await.is_err() {
                    return;
                }
            }
        }
        while let Ok((rv, r, t, o)) = live.recv().await {
            if rv > from && matches(&r, &o) {
                let line = format!("{}\n", json!({"type": t, "object": o}));
                if tx.send(Ok(Bytes::from(line))).await.is_err() {
                    return;
                }
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    ([("content-type", "application/json")], body).into_response()
}
