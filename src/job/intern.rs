//! Interned pod metadata for the Job controller's pod cache ([`super::cached_pod`]): one copy of
//! each label map, label string and ownerReference list however many cached pods carry it.
//!
//! Every pod of a Job has the same ownerReferences and the same labels but for the completion
//! index of an Indexed Job, so a 10,000-pod Job's pods share one ownerReference list and one label
//! map (NonIndexed) or one copy of each label key and value but the index (Indexed), instead of
//! 10,000 `BTreeMap`s of owned strings (about 1 KiB each). The pools are process-wide; an entry
//! no cached pod holds any more is dropped by a sweep that runs whenever a pool has doubled since
//! the last one (amortised O(1) per intern), so the pools stay proportional to the live cache.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// A set of shared values that forgets those only it still holds.
struct Pool<T: ?Sized> {
    set: HashSet<Arc<T>>,
    swept_at: usize,
}

impl<T: ?Sized + Hash + Eq> Pool<T> {
    fn new() -> Self {
        Self { set: HashSet::new(), swept_at: 0 }
    }

    fn get<Q: ?Sized + Hash + Eq>(&mut self, key: &Q, make: impl FnOnce() -> Arc<T>) -> Arc<T>
    where
        Arc<T>: Borrow<Q>,
    {
        if let Some(v) = self.set.get(key) {
            return v.clone();
        }
        if self.set.len() >= 2 * self.swept_at.max(512) {
            self.set.retain(|v| Arc::strong_count(v) > 1);
            self.swept_at = self.set.len();
        }
        let v = make();
        self.set.insert(v.clone());
        v
    }
}

/// One label: key and value.
pub type Label = (Arc<str>, Arc<str>);

/// A list of ownerReferences as the pool keys it (`OwnerReference` has no `Hash`).
#[derive(Debug, PartialEq)]
pub struct OwnerList(pub Box<[OwnerReference]>);

impl Eq for OwnerList {}

impl Hash for OwnerList {
    fn hash<H: Hasher>(&self, h: &mut H) {
        for r in self.0.iter() {
            (&r.api_version, &r.kind, &r.name, &r.uid, r.controller, r.block_owner_deletion).hash(h);
        }
    }
}

struct Pools {
    strings: Pool<str>,
    labels: Pool<[Label]>,
    owners: Pool<OwnerList>,
}

static POOLS: LazyLock<Mutex<Pools>> =
    LazyLock::new(|| Mutex::new(Pools { strings: Pool::new(), labels: Pool::new(), owners: Pool::new() }));

fn pools() -> std::sync::MutexGuard<'static, Pools> {
    POOLS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shared copy of `s`.
pub fn string(s: &str) -> Arc<str> {
    pools().strings.get(s, || Arc::from(s))
}

/// The shared copy of a label map (keys and values shared too); `None` when it is empty.
pub fn labels(map: BTreeMap<String, String>) -> Option<Arc<[Label]>> {
    if map.is_empty() {
        return None;
    }
    let mut p = pools();
    let list: Vec<Label> = map
        .iter()
        .map(|(k, v)| {
            let k = p.strings.get(k.as_str(), || Arc::from(k.as_str()));
            let v = p.strings.get(v.as_str(), || Arc::from(v.as_str()));
            (k, v)
        })
        .collect();
    Some(p.labels.get(list.as_slice(), || Arc::from(list.as_slice())))
}

/// The shared copy of an ownerReference list; `None` when it is empty.
pub fn owners(list: Vec<OwnerReference>) -> Option<Arc<OwnerList>> {
    if list.is_empty() {
        return None;
    }
    let key = OwnerList(list.into_boxed_slice());
    Some(pools().owners.get(&key, || Arc::new(OwnerList(key.0.clone()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: "j".into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn equal_values_share_one_copy_and_different_ones_do_not() {
        let a = labels([("job-name".to_string(), "intern-test-a".to_string())].into()).unwrap();
        let b = labels([("job-name".to_string(), "intern-test-a".to_string())].into()).unwrap();
        let c = labels([("job-name".to_string(), "intern-test-c".to_string())].into()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(Arc::ptr_eq(&a[0].0, &c[0].0), "keys are shared across maps");
        assert_eq!(labels(BTreeMap::new()), None);

        let o1 = owners(vec![owner("intern-test-u1")]).unwrap();
        let o2 = owners(vec![owner("intern-test-u1")]).unwrap();
        let mut not_controller = owner("intern-test-u1");
        not_controller.controller = None;
        let o3 = owners(vec![not_controller.clone()]).unwrap();
        assert!(Arc::ptr_eq(&o1, &o2));
        assert!(!Arc::ptr_eq(&o1, &o3), "every field tells lists apart");
        assert_eq!(o3.0[0], not_controller);
        assert_eq!(owners(vec![]), None);
    }

    #[test]
    fn values_nobody_holds_are_swept() {
        let mut pool: Pool<str> = Pool::new();
        let kept = pool.get("kept", || Arc::from("kept"));
        for i in 0..10_000 {
            let s = format!("gone-{i}");
            drop(pool.get(s.as_str(), || Arc::from(s.as_str())));
        }
        assert!(pool.set.len() <= 2 * 512 + 1, "{} entries left", pool.set.len());
        assert!(Arc::ptr_eq(&kept, &pool.get("kept", || Arc::from("kept"))), "a held value stays shared");
    }
}
