//! Which pods belong to which Job, maintained from the pod watch events so a reconcile reads its
//! Job's pods from the store by key instead of scanning every pod.
//!
//! Keys: the controller Job's uid for pods controlled by a Job of either kind ([`super::kind`]), `orphan:<namespace>` for
//! pods without a controller (adoption candidates); other pods are not indexed. A re-list (`Init`
//! … `InitDone`) is built aside and swapped in at `InitDone`, as the reflector's store does. The
//! index only names candidates: callers read each pod from the store and re-check ownership.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use kube::ResourceExt;
use kube::runtime::watcher;

use super::cached_pod::{CachedPod, PodFacts};

/// `(namespace, name)`.
pub type PodKey = (String, String);

#[derive(Default, Debug)]
struct Maps {
    by_key: HashMap<String, BTreeSet<PodKey>>,
    key_of: HashMap<PodKey, String>,
}

impl Maps {
    fn remove(&mut self, pod: &PodKey) {
        if let Some(k) = self.key_of.remove(pod)
            && let Some(set) = self.by_key.get_mut(&k)
        {
            set.remove(pod);
            if set.is_empty() {
                self.by_key.remove(&k);
            }
        }
    }

    fn upsert(&mut self, pod: &CachedPod) {
        let pk = (pod.namespace().unwrap_or_default(), pod.name_any());
        self.remove(&pk);
        if let Some(k) = index_key(pod) {
            self.by_key.entry(k.clone()).or_default().insert(pk.clone());
            self.key_of.insert(pk, k);
        }
    }
}

/// The index key of a pod, if it is indexed.
pub fn index_key<P: PodFacts + ?Sized>(pod: &P) -> Option<String> {
    let meta = pod.pod_meta();
    match pod.owner_references().iter().find(|r| r.controller == Some(true)) {
        Some(r) if super::kind::owner_kind(r).is_some() => Some(r.uid.clone()),
        Some(_) => None,
        None => Some(orphan_key(meta.namespace.as_deref().unwrap_or_default())),
    }
}

/// The key of the pods without a controller in `namespace`.
pub fn orphan_key(namespace: &str) -> String {
    format!("orphan:{namespace}")
}

/// Pods by controller Job uid (and orphans by namespace).
#[derive(Default, Debug)]
pub struct PodIndex {
    live: Mutex<Maps>,
    building: Mutex<Option<Maps>>,
}

impl PodIndex {
    /// Applies one watch event.
    pub fn apply(&self, ev: &watcher::Event<CachedPod>) {
        match ev {
            watcher::Event::Apply(p) => self.live.lock().unwrap_or_else(|e| e.into_inner()).upsert(p),
            watcher::Event::Delete(p) => {
                let pk = (p.namespace().unwrap_or_default(), p.name_any());
                self.live.lock().unwrap_or_else(|e| e.into_inner()).remove(&pk);
            }
            watcher::Event::Init => *self.building.lock().unwrap_or_else(|e| e.into_inner()) = Some(Maps::default()),
            watcher::Event::InitApply(p) => {
                if let Some(m) = self.building.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    m.upsert(p);
                }
            }
            watcher::Event::InitDone => {
                if let Some(m) = self.building.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    *self.live.lock().unwrap_or_else(|e| e.into_inner()) = m;
                }
            }
        }
    }

    /// The pods under `key`.
    pub fn get(&self, key: &str) -> Vec<PodKey> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.by_key.get(key).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, owner: Option<&str>) -> CachedPod {
        let mut v = json!({"metadata": {"name": name, "namespace": "ns"}});
        if let Some(uid) = owner {
            v["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": uid, "controller": true}]);
        }
        serde_json::from_value(v).unwrap()
    }

    fn names(idx: &PodIndex, key: &str) -> Vec<String> {
        idx.get(key).into_iter().map(|(_, n)| n).collect()
    }

    #[test]
    fn tracks_owner_changes_deletions_and_relists() {
        let idx = PodIndex::default();
        idx.apply(&watcher::Event::Apply(pod("a", Some("u1"))));
        idx.apply(&watcher::Event::Apply(pod("b", None)));
        assert_eq!(names(&idx, "u1"), ["a"]);
        assert_eq!(names(&idx, &orphan_key("ns")), ["b"]);
        // adoption moves the pod
        idx.apply(&watcher::Event::Apply(pod("b", Some("u1"))));
        assert_eq!(names(&idx, "u1"), ["a", "b"]);
        assert!(idx.get(&orphan_key("ns")).is_empty());
        idx.apply(&watcher::Event::Delete(pod("a", Some("u1"))));
        assert_eq!(names(&idx, "u1"), ["b"]);
        // a re-list is swapped in whole at InitDone
        idx.apply(&watcher::Event::Init);
        idx.apply(&watcher::Event::InitApply(pod("c", Some("u2"))));
        assert_eq!(names(&idx, "u1"), ["b"], "the old view stays until InitDone");
        idx.apply(&watcher::Event::InitDone);
        assert!(idx.get("u1").is_empty());
        assert_eq!(names(&idx, "u2"), ["c"]);
    }
}
