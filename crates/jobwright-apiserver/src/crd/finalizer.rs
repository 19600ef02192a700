//! Deleting a CustomResourceDefinition, as apiextensions-apiserver does it.
//!
//! The first DELETE of a CRD does not remove it: it gets a `deletionTimestamp`, the
//! [`CLEANUP_FINALIZER`] and the `Terminating` condition (`InstanceDeletionPending`), and stays
//! visible (a MODIFIED watch event). Creating instances is then refused ([`forbid_create`]), while
//! reading, updating and deleting them still works. This task, upstream's `CRDFinalizer`, sees
//! the terminating CRD, sets `Terminating` to `InstanceDeletionInProgress`, deletes every instance
//! through the normal delete path (so their own finalizers hold them), and once none is left sets
//! `InstanceDeletionCompleted` (or `NeverEstablished`) and removes its finalizer, which deletes
//! the CRD (the DELETED event) and stops serving its resources. It starts [`SETTLE`] after the
//! DELETE, as upstream's takes a moment to get there.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use chrono::Utc;
use serde_json::{Value, json};

use super::super::errors::StatusError;
use super::super::registry::ResourceInfo;
use super::super::rest::{Api, DeleteOptions, Propagation};
use super::super::store::EventType;

/// The finalizer a deleted CRD carries until its instances are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

const GROUP: &str = "apiextensions.k8s.io";
const RESOURCE: &str = "customresourcedefinitions";

/// Set `type` in a CRD's `status.conditions` as upstream's `SetCRDCondition` does: the
/// transition time changes only with the status. Returns whether anything changed.
pub fn set_condition(crd: &mut Value, type_: &str, status: &str, reason: &str, message: &str) -> bool {
    if !crd["status"].is_object() {
        crd["status"] = json!({});
    }
    if !crd["status"]["conditions"].is_array() {
        crd["status"]["conditions"] = json!([]);
    }
    let now = super::super::rest::timestamp(Utc::now());
    let conds = crd["status"]["conditions"].as_array_mut().expect("array");
    let new = json!({"type": type_, "status": status, "lastTransitionTime": now, "reason": reason, "message": message});
    match conds.iter_mut().find(|c| c["type"] == type_) {
        Some(c) => {
            if c["status"] == status && c["reason"] == reason && c["message"] == message {
                return false;
            }
            let keep_time = c["status"] == status;
            let time = c["lastTransitionTime"].clone();
            *c = new;
            if keep_time {
                c["lastTransitionTime"] = time;
            }
        }
        None => conds.push(new),
    }
    true
}

/// What the first DELETE of a CRD writes instead of removing it (upstream's CRD `REST.Delete`).
pub fn mark_for_deletion(crd: &mut Value) {
    set_condition(
        crd,
        "Terminating",
        "True",
        "InstanceDeletionPending",
        "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
    );
}

fn condition_true(crd: &Value, type_: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == type_ && c["status"] == "True"))
}

fn has_finalizer(crd: &Value) -> bool {
    crd["metadata"]["finalizers"].as_array().is_some_and(|a| a.iter().any(|f| f == CLEANUP_FINALIZER))
}

/// Upstream's `forbidCreateAdmission`: no new instances of a terminating CRD (403).
pub fn forbid_create(api: &Api, info: &ResourceInfo, name: &str) -> Result<(), StatusError> {
    if info.crd.is_none() {
        return Ok(());
    }
    let crds = api.info(GROUP, RESOURCE);
    let Some(e) = api.store.get(&crds.storage_key, "", &format!("{}.{}", info.resource, info.group)) else {
        return Ok(());
    };
    // `Terminating` is only ever set on a CRD being deleted, so the index answers without
    // decoding the CRD (whose schema can be large) on every create.
    if !e.meta.deleting {
        return Ok(());
    }
    Err(StatusError::forbidden(format!(
        "{} \"{name}\" is forbidden: create not allowed while custom resource definition is terminating",
        info.group_resource()
    ))
    .with_details(json!({"name": name, "group": info.group, "kind": info.resource})))
}

/// How long after a CRD starts terminating the finalizer starts on it. Upstream's finalizer is
/// reached through an informer and a workqueue and works through API round trips to etcd, so a
/// client that deletes a CRD and then watches it (kube-rs's `crd_derive_schema` watches from
/// `"0"` for the DELETED event) sees it still terminating; acting within microseconds here would
/// let the CRD vanish before such a watch starts. Much longer, and a client that deletes a CRD
/// and at once re-creates it and its objects (kube-rs's `crd_api` then `crd_apply`) meets the
/// old one still terminating (403 on create), as it only would on a slow real server.
pub const SETTLE: Duration = Duration::from_millis(50);

/// Run the finalizer until the store goes away.
pub async fn run(api: Api) {
    let mut rx = api.store.subscribe_all();
    let crds = api.info(GROUP, RESOURCE);
    // CRDs left terminating (a restart from persisted state).
    let mut pending: BTreeSet<String> = api
        .store
        .keys(&crds.storage_key, None)
        .into_iter()
        .filter(|(_, n)| api.store.get(&crds.storage_key, "", n).is_some_and(|e| e.meta.deleting))
        .map(|(_, n)| n)
        .collect();
    // When each pending CRD is next looked at.
    let mut due: BTreeMap<String, Instant> = pending.iter().map(|n| (n.clone(), Instant::now())).collect();
    loop {
        let now = Instant::now();
        let ready: Vec<String> = due.iter().filter(|(_, t)| **t <= now).map(|(n, _)| n.clone()).collect();
        for name in ready {
            due.remove(&name);
            if sync(&api, &crds, &name) {
                pending.remove(&name);
            }
        }
        let next = due.values().min().copied();
        let first = tokio::select! {
            e = rx.recv() => match e { Some(e) => e, None => return },
            _ = sleep_until_opt(next) => continue,
        };
        let mut events = vec![first];
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        for e in events {
            if *e.key == *crds.storage_key {
                if e.kind != EventType::Deleted && e.meta.deleting && pending.insert(e.name().to_string()) {
                    due.insert(e.name().to_string(), Instant::now() + SETTLE);
                }
            } else if e.kind == EventType::Deleted {
                // An instance of a terminating CRD went: look at its CRD again.
                for name in &pending {
                    if name.split_once('.').is_some_and(|(plural, group)| *e.key == *format!("{group}/{plural}")) {
                        due.entry(name.clone()).or_insert_with(Instant::now);
                    }
                }
            }
        }
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// One pass of upstream's `CRDFinalizer.sync`; true when there is nothing left to do for `name`.
fn sync(api: &Api, crds: &ResourceInfo, name: &str) -> bool {
    let Some(e) = api.store.get(&crds.storage_key, "", name) else { return true };
    let crd: Value = serde_json::from_slice(&e.bytes()).unwrap_or(Value::Null);
    if !e.meta.deleting || !has_finalizer(&crd) {
        return true;
    }
    let _ = api.mutate(crds, "", name, &|o| {
        set_condition(o, "Terminating", "True", "InstanceDeletionInProgress", "CustomResource deletion is in progress")
    });
    let established = condition_true(&crd, "Established");
    if established {
        let mut left = 0;
        // Every served version shares one storage: one of them reaches all instances.
        for info in super::resources(&crd).into_iter().take(1) {
            for (ns, oname) in api.store.keys(&info.storage_key, None) {
                if api.store.get(&info.storage_key, &ns, &oname).is_some_and(|o| !o.meta.deleting) {
                    let opts = DeleteOptions { propagation: Some(Propagation::Background), ..Default::default() };
                    let _ = api.delete(&info, &ns, &oname, &opts);
                }
            }
            left = api.store.keys(&info.storage_key, None).len();
        }
        if left > 0 {
            // Held by their own finalizers: their deletion brings us back here.
            return false;
        }
    }
    let _ = api.mutate(crds, "", name, &|o| {
        if established {
            set_condition(o, "Terminating", "False", "InstanceDeletionCompleted", "removed all instances");
        } else {
            set_condition(o, "Terminating", "False", "NeverEstablished", "resource was never established");
        }
        if let Some(f) = o["metadata"]["finalizers"].as_array_mut() {
            f.retain(|x| x != CLEANUP_FINALIZER);
        }
        true
    });
    true
}
