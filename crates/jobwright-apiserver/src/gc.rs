//! The garbage collector and namespace lifecycle, as kube-controller-manager runs them, as a task
//! inside the server.
//!
//! It listens to every committed write ([`Store::subscribe_all`](super::store::Store::subscribe_all))
//! and reacts, using the store's owner-uid index instead of informers:
//!
//! - an object is deleted → its dependents whose owners are all gone are deleted (Background), and
//!   owners waiting in foreground deletion are re-checked;
//! - an object is created or changes its ownerReferences → references to owners that don't exist
//!   (by uid) are dropped, and it is deleted if none is left;
//! - an object carries `deletionTimestamp` and the `orphan` finalizer → the ownerReferences to it
//!   are stripped from its dependents, then the finalizer removed;
//! - an object carries `deletionTimestamp` and `foregroundDeletion` → its dependents are deleted
//!   (in foreground themselves), and the finalizer is removed once no dependent with
//!   `blockOwnerDeletion: true` is left;
//! - a namespace is being deleted → its contents are deleted, then its `kubernetes` spec finalizer
//!   is removed and it goes;
//! - a ClusterRole is written → the aggregated ClusterRoles are recomputed
//!   ([`bootstrap::aggregate`](super::bootstrap::aggregate), the clusterrole-aggregation controller).

use serde_json::{Value, json};
use std::collections::BTreeSet;

use super::registry::ResourceInfo;
use super::rest::{Api, DeleteOptions, FOREGROUND_FINALIZER, ORPHAN_FINALIZER, Propagation};
use super::store::{EventType, WatchEvent};

/// The namespace finalizer the namespace controller owns.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// Pending work, deduplicated per batch.
#[derive(Default)]
struct Work {
    /// uids of deleted objects whose dependents must be looked at.
    gone: BTreeSet<String>,
    /// `(key, ns, name)` of objects whose owners must be checked.
    dependents: BTreeSet<(String, String, String)>,
    /// uids of objects that may be waiting on dependents (foreground) or orphaning.
    owners: BTreeSet<String>,
    /// `(key, ns, name)` of objects being deleted with GC finalizers.
    deleting: BTreeSet<(String, String, String)>,
    /// namespaces being deleted.
    namespaces: BTreeSet<String>,
}

impl Work {
    fn is_empty(&self) -> bool {
        self.gone.is_empty()
            && self.dependents.is_empty()
            && self.owners.is_empty()
            && self.deleting.is_empty()
            && self.namespaces.is_empty()
    }

    fn note(&mut self, api: &Api, ns_key: &str, e: &WatchEvent) {
        // Built only when queued (most writes queue nothing).
        let id = || (e.key.to_string(), e.namespace().to_string(), e.name().to_string());
        match e.kind {
            EventType::Deleted => {
                if !e.meta.uid.is_empty() {
                    self.gone.insert(e.meta.uid.to_string());
                }
                for o in &e.meta.owners {
                    self.owners.insert(o.uid.to_string());
                }
                if !e.namespace().is_empty()
                    && api.store.get(ns_key, "", e.namespace()).is_some_and(|n| n.meta.deleting)
                {
                    self.namespaces.insert(e.namespace().to_string());
                }
            }
            EventType::Added | EventType::Modified => {
                let owners_changed = e.prev.as_ref().is_none_or(|(_, m)| m.owners != e.meta.owners);
                if !e.meta.owners.is_empty() && owners_changed {
                    self.dependents.insert(id());
                }
                if let Some((_, prev)) = &e.prev {
                    // A dependent that stopped blocking (or lost its reference) may unblock owners.
                    for o in &prev.owners {
                        if !e.meta.owners.contains(o) {
                            self.owners.insert(o.uid.to_string());
                        }
                    }
                }
                if e.meta.deleting {
                    if *e.key == *ns_key {
                        self.namespaces.insert(e.name().to_string());
                    }
                    self.deleting.insert(id());
                }
            }
        }
    }
}

fn info_for_key(api: &Api, key: &str) -> Option<ResourceInfo> {
    api.registry.find(|r| r.storage_key == key)
}

fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or(Value::Null)
}

fn has_finalizer(obj: &Value, f: &str) -> bool {
    obj["metadata"]["finalizers"].as_array().is_some_and(|a| a.iter().any(|x| x == f))
}

/// Run the collector until the store goes away.
pub async fn run(api: Api) {
    let mut rx = api.store.subscribe_all();
    let ns_key = api.info("", "namespaces").storage_key;
    let roles_key = api.info(super::rbac::RBAC_GROUP, "clusterroles").storage_key;
    while let Some(first) = rx.recv().await {
        let mut work = Work::default();
        let mut roles_changed = *first.key == *roles_key;
        work.note(&api, &ns_key, &first);
        while let Ok(e) = rx.try_recv() {
            roles_changed |= *e.key == *roles_key;
            work.note(&api, &ns_key, &e);
        }
        if !work.is_empty() {
            process(&api, &ns_key, work);
        }
        if roles_changed {
            super::bootstrap::aggregate(&api);
        }
        tokio::task::yield_now().await;
    }
}

fn process(api: &Api, ns_key: &str, work: Work) {
    for uid in &work.gone {
        for dep in api.store.dependents_of(uid) {
            attempt_to_delete(api, &dep);
        }
    }
    for dep in &work.dependents {
        attempt_to_delete(api, dep);
    }
    for uid in &work.owners {
        if let Some(id) = api.store.locate_uid(uid) {
            process_deleting(api, &id);
        }
    }
    for id in &work.deleting {
        process_deleting(api, id);
    }
    for ns in &work.namespaces {
        process_namespace(api, ns_key, ns);
    }
}

/// Upstream's `attemptToDeleteItem`: look at a dependent's owners.
fn attempt_to_delete(api: &Api, id: &(String, String, String)) {
    let (key, ns, name) = id;
    let Some(entry) = api.store.get(key, ns, name) else { return };
    if entry.meta.owners.is_empty() {
        return;
    }
    let mut absent = Vec::new();
    let mut waiting = 0;
    let mut solid = 0;
    for o in &entry.meta.owners {
        match api.store.locate_uid(&o.uid) {
            None => absent.push(o.uid.to_string()),
            Some((okey, ons, oname)) => {
                // Only an owner being deleted is read whole (its finalizers): the store's index
                // says which (`deleting`: a deletionTimestamp), so a new dependent of a live owner
                // (every Job a CronJob creates) costs no decode of the owner.
                let owner = api
                    .store
                    .get(&okey, &ons, &oname)
                    .filter(|e| e.meta.deleting)
                    .map(|e| parse(&e.bytes()))
                    .unwrap_or(Value::Null);
                if owner["metadata"]["deletionTimestamp"].is_string() && has_finalizer(&owner, FOREGROUND_FINALIZER) {
                    waiting += 1;
                } else {
                    solid += 1;
                }
            }
        }
    }
    if solid > 0 && absent.is_empty() {
        return;
    }
    let Some(info) = info_for_key(api, key) else { return };
    if solid > 0 {
        if !absent.is_empty() {
            let _ = api.mutate(&info, ns, name, &|o| strip_owner_refs(o, &absent));
        }
        return;
    }
    if entry.meta.deleting {
        return;
    }
    let propagation = if waiting > 0 { Propagation::Foreground } else { Propagation::Background };
    let opts = DeleteOptions { propagation: Some(propagation), ..Default::default() };
    if let Err(e) = api.delete(&info, ns, name, &opts)
        && e.code != 404
    {
        tracing::warn!(%key, %ns, %name, error = %e, "garbage collector could not delete a dependent");
    }
}

fn strip_owner_refs(obj: &mut Value, uids: &[String]) -> bool {
    let Some(refs) = obj["metadata"]["ownerReferences"].as_array() else { return false };
    let kept: Vec<Value> = refs.iter().filter(|r| !uids.iter().any(|u| r["uid"] == u.as_str())).cloned().collect();
    if kept.len() == refs.len() {
        return false;
    }
    if kept.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("ownerReferences");
        }
    } else {
        obj["metadata"]["ownerReferences"] = json!(kept);
    }
    true
}

/// An owner being deleted with the `orphan` or `foregroundDeletion` finalizer.
fn process_deleting(api: &Api, id: &(String, String, String)) {
    let (key, ns, name) = id;
    let Some(info) = info_for_key(api, key) else { return };
    let Some(entry) = api.store.get(key, ns, name) else { return };
    if !entry.meta.deleting {
        return;
    }
    let obj = parse(&entry.bytes());
    let uid = entry.meta.uid.to_string();
    if has_finalizer(&obj, ORPHAN_FINALIZER) {
        for (dkey, dns, dname) in api.store.dependents_of(&uid) {
            if let Some(dinfo) = info_for_key(api, &dkey) {
                let uids = [uid.clone()];
                let _ = api.mutate(&dinfo, &dns, &dname, &|o| strip_owner_refs(o, &uids));
            }
        }
        let _ = api.remove_finalizer(&info, ns, name, ORPHAN_FINALIZER);
        return;
    }
    if has_finalizer(&obj, FOREGROUND_FINALIZER) {
        let mut blocking = 0;
        for (dkey, dns, dname) in api.store.dependents_of(&uid) {
            let Some(dentry) = api.store.get(&dkey, &dns, &dname) else { continue };
            if dentry.meta.owners.iter().any(|o| *o.uid == *uid && o.block) {
                blocking += 1;
            }
            if !dentry.meta.deleting
                && let Some(dinfo) = info_for_key(api, &dkey)
            {
                let opts = DeleteOptions { propagation: Some(Propagation::Foreground), ..Default::default() };
                let _ = api.delete(&dinfo, &dns, &dname, &opts);
            }
        }
        if blocking == 0 {
            let _ = api.remove_finalizer(&info, ns, name, FOREGROUND_FINALIZER);
        }
    }
}

/// Delete a terminating namespace's contents, then let it go.
fn process_namespace(api: &Api, ns_key: &str, ns: &str) {
    let Some(entry) = api.store.get(ns_key, "", ns) else { return };
    if !entry.meta.deleting {
        return;
    }
    let mut left = 0;
    for key in api.store.bucket_keys() {
        let Some(info) = info_for_key(api, &key) else { continue };
        if !info.namespaced {
            continue;
        }
        for (ons, oname) in api.store.keys(&key, Some(ns)) {
            left += 1;
            if api.store.get(&key, &ons, &oname).is_some_and(|e| !e.meta.deleting) {
                let opts = DeleteOptions { propagation: Some(Propagation::Background), ..Default::default() };
                let _ = api.delete(&info, &ons, &oname, &opts);
            }
        }
    }
    if left > 0 {
        // Deleted contents come back through the write listener; what is still held (finalizers,
        // graceful pods) re-triggers this when it goes.
        let still: usize = api
            .store
            .bucket_keys()
            .iter()
            .filter(|k| info_for_key(api, k).is_some_and(|i| i.namespaced))
            .map(|k| api.store.keys(k, Some(ns)).len())
            .sum();
        if still > 0 {
            return;
        }
    }
    let nsinfo = api.info("", "namespaces");
    let _ = api.mutate(&nsinfo, "", ns, &|o| {
        let Some(f) = o["spec"]["finalizers"].as_array() else { return false };
        let kept: Vec<Value> = f.iter().filter(|x| *x != NAMESPACE_FINALIZER).cloned().collect();
        if kept.len() == f.len() {
            return false;
        }
        o["spec"]["finalizers"] = json!(kept);
        true
    });
}
