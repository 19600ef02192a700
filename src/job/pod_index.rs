//! The Job controller's pod cache: every pod, by `(namespace, name)` and by the Job that controls
//! it, maintained from the pod watch events, so a sync reads its Job's pods without scanning every
//! pod and without a lookup per pod.
//!
//! One entry per pod: the [`CachedPod`] is held once (an `Arc`) and both maps point at it; the
//! keys share the pod's namespace and name (`Arc<str>`s) and the Job uid, so a pod costs its entry
//! plus a few words. (It replaced a kube-runtime reflector store, whose keys copied four strings
//! per pod, beside an index that copied the name and namespace twice more.)
//!
//! Grouping: the controller Job's uid for pods controlled by a Job of either kind
//! ([`super::kind`]), `orphan:<namespace>` for pods without a controller (adoption candidates);
//! other pods are kept by name only. A re-list (`Init` … `InitDone`) is built aside and swapped in
//! at `InitDone`, as kube-runtime's reflector store does. Callers re-check ownership: the grouping
//! only names candidates.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use kube::runtime::watcher;

use super::cached_pod::{CachedPod, PodFacts};

/// `(namespace, name)`.
pub type PodKey = (String, String);

type Key = (Arc<str>, Arc<str>);

#[derive(Default, Debug)]
struct Maps {
    /// Every pod, and the group it is in (if any).
    pods: HashMap<Key, (Arc<CachedPod>, Option<Arc<str>>)>,
    /// The pods of each group, by key (in key order, as the index before it listed them).
    groups: HashMap<Arc<str>, BTreeMap<Key, Arc<CachedPod>>>,
}

fn key_of(pod: &CachedPod) -> Key {
    let meta = pod.pod_meta();
    (
        super::intern::string(meta.namespace.as_deref().unwrap_or_default()),
        Arc::from(meta.name.as_deref().unwrap_or_default()),
    )
}

impl Maps {
    fn remove(&mut self, ns: &str, name: &str) -> Option<Arc<CachedPod>> {
        let k = (Arc::<str>::from(ns), Arc::<str>::from(name));
        let (pod, group) = self.pods.remove(&k)?;
        if let Some(g) = group
            && let Some(set) = self.groups.get_mut(&g)
        {
            set.remove(&k);
            if set.is_empty() {
                self.groups.remove(&g);
            }
        }
        Some(pod)
    }

    fn upsert(&mut self, pod: Arc<CachedPod>) {
        let meta = pod.pod_meta();
        let (ns, name) = (meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default());
        // The key Arcs of the old entry are reused (no allocation per update).
        let key = match self.pods.get_key_value(&(Arc::from(ns), Arc::from(name)) as &Key) {
            Some((k, _)) => k.clone(),
            None => key_of(&pod),
        };
        let group = index_key(&*pod).map(|g| super::intern::string(&g));
        let old_group = self.pods.insert(key.clone(), (pod.clone(), group.clone())).and_then(|(_, g)| g);
        if old_group != group
            && let Some(g) = old_group
            && let Some(set) = self.groups.get_mut(&g)
        {
            set.remove(&key);
            if set.is_empty() {
                self.groups.remove(&g);
            }
        }
        if let Some(g) = group {
            self.groups.entry(g).or_default().insert(key, pod);
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

/// Every pod, by name and by controller Job uid (and orphans by namespace).
#[derive(Default, Debug)]
pub struct PodIndex {
    live: RwLock<Maps>,
    building: Mutex<Option<Maps>>,
}

impl PodIndex {
    /// Applies one watch event; returns the event's pod (for `Apply` and `InitApply` the entry
    /// the cache now holds).
    pub fn apply(&self, ev: &watcher::Event<CachedPod>) -> Option<Arc<CachedPod>> {
        match ev {
            watcher::Event::Apply(p) => {
                let p = Arc::new(p.clone());
                self.live.write().unwrap_or_else(|e| e.into_inner()).upsert(p.clone());
                Some(p)
            }
            watcher::Event::Delete(p) => {
                let meta = p.pod_meta();
                let (ns, name) =
                    (meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default());
                self.live.write().unwrap_or_else(|e| e.into_inner()).remove(ns, name);
                Some(Arc::new(p.clone()))
            }
            watcher::Event::Init => {
                *self.building.lock().unwrap_or_else(|e| e.into_inner()) = Some(Maps::default());
                None
            }
            watcher::Event::InitApply(p) => {
                let p = Arc::new(p.clone());
                if let Some(m) = self.building.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    m.upsert(p.clone());
                }
                Some(p)
            }
            watcher::Event::InitDone => {
                if let Some(m) = self.building.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    *self.live.write().unwrap_or_else(|e| e.into_inner()) = m;
                }
                None
            }
        }
    }

    /// The keys of the pods under `key`.
    pub fn get(&self, key: &str) -> Vec<PodKey> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.groups
            .get(key)
            .map(|s| s.keys().map(|(ns, n)| (ns.to_string(), n.to_string())).collect())
            .unwrap_or_default()
    }

    /// The pods under `key` (a Job uid or an [`orphan_key`]), by namespace and name.
    pub fn pods(&self, key: &str) -> Vec<Arc<CachedPod>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.groups.get(key).map(|s| s.values().cloned().collect()).unwrap_or_default()
    }

    /// The pod `namespace/name`, if cached.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Arc<CachedPod>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.pods.get(&(Arc::from(namespace), Arc::from(name)) as &Key).map(|(p, _)| p.clone())
    }

    /// Every cached pod.
    pub fn state(&self) -> Vec<Arc<CachedPod>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.pods.values().map(|(p, _)| p.clone()).collect()
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
        let by_pods: Vec<String> = idx.pods(key).iter().map(|p| p.metadata.name.clone().unwrap()).collect();
        let by_keys: Vec<String> = idx.get(key).into_iter().map(|(_, n)| n).collect();
        assert_eq!(by_pods, by_keys);
        by_keys
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
        assert!(idx.pod("ns", "a").is_none());
        // a re-list is swapped in whole at InitDone
        idx.apply(&watcher::Event::Init);
        idx.apply(&watcher::Event::InitApply(pod("c", Some("u2"))));
        assert_eq!(names(&idx, "u1"), ["b"], "the old view stays until InitDone");
        assert!(idx.pod("ns", "b").is_some() && idx.pod("ns", "c").is_none());
        idx.apply(&watcher::Event::InitDone);
        assert!(idx.get("u1").is_empty());
        assert_eq!(names(&idx, "u2"), ["c"]);
        assert!(idx.pod("ns", "b").is_none());
        assert_eq!(idx.state().len(), 1);
    }

    #[test]
    fn one_entry_per_pod_shared_by_both_maps_and_updated_in_place() {
        let idx = PodIndex::default();
        let stored = idx.apply(&watcher::Event::Apply(pod("a", Some("u1")))).unwrap();
        let by_name = idx.pod("ns", "a").unwrap();
        let by_job = idx.pods("u1");
        assert!(Arc::ptr_eq(&stored, &by_name) && Arc::ptr_eq(&stored, &by_job[0]));
        let mut newer = pod("a", Some("u1"));
        newer.phase = Some("Succeeded".into());
        idx.apply(&watcher::Event::Apply(newer.clone()));
        assert_eq!(*idx.pod("ns", "a").unwrap(), newer);
        assert_eq!(*idx.pods("u1")[0], newer, "the group sees the update");
        // A pod whose controller is not a Job is kept by name only.
        let mut foreign = pod("f", None);
        foreign.owner_references =
            crate::job::cached_pod::Owners::new(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "rs".into(),
                uid: "rs-uid".into(),
                controller: Some(true),
                ..Default::default()
            }]);
        idx.apply(&watcher::Event::Apply(foreign));
        assert!(idx.pod("ns", "f").is_some());
        assert!(idx.get("rs-uid").is_empty() && idx.get(&orphan_key("ns")).is_empty());
        let deleted = idx.apply(&watcher::Event::Delete(newer.clone())).unwrap();
        assert_eq!(*deleted, newer);
        assert!(idx.pods("u1").is_empty() && idx.pod("ns", "a").is_none());
    }
}
