//! The objects written last, kept decoded, so that a read-modify-write right after a write (a
//! pod's finalizer patch after its create, its status patch, a Job's status PUT after the
//! previous one) skips decompressing and parsing the stored JSON.
//!
//! An entry is the very `Value` whose serialization the store keeps at `rv`, and is used only for
//! that `rv` (the store's resourceVersion is global and only grows, so an object rewritten by
//! anyone, recreated or deleted never matches a stale entry). It is kept only when parsing its
//! serialization gives it back exactly: no floating-point number (serde_json's default float
//! parser is not exact for every shortest representation) and nesting within
//! [`MAX_OBJECT_DEPTH`] (serde_json stops at 128 levels). So a hit is the value the reference
//! path, `serde_json::from_slice(entry.bytes())`, would have built; `tests` pins it.
//!
//! Bounded by count and by the JSON length of what it holds (a parsed object takes a few times
//! its JSON): the oldest written go first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::validate::limits::MAX_OBJECT_DEPTH;

/// Most objects kept.
pub const MAX_ENTRIES: usize = 1024;
/// Most JSON bytes (of the serialized objects) kept.
pub const MAX_JSON_BYTES: usize = 4 * 1024 * 1024;

#[derive(Default)]
struct Inner {
    /// key -> (resourceVersion, object, its JSON length, insertion stamp)
    map: HashMap<Box<str>, (u64, Arc<Value>, usize, u64)>,
    /// Insertion order: (key, stamp); an entry whose stamp is not the map's is stale.
    order: VecDeque<(Box<str>, u64)>,
    bytes: usize,
    stamp: u64,
}

/// Recently written objects, decoded (see the module docs).
#[derive(Default)]
pub struct HotObjects {
    inner: Mutex<Inner>,
}

/// One unambiguous key per (storage key, namespace, name): lengths first.
fn key(storage: &str, ns: &str, name: &str) -> Box<str> {
    format!("{}:{}:{storage}{ns}{name}", storage.len(), ns.len()).into_boxed_str()
}

/// Whether parsing `v`'s serialization gives `v` back exactly (see the module docs).
pub fn reparses_exactly(v: &Value) -> bool {
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Number(n) if n.is_f64() => return false,
            Value::Array(a) => {
                if d + 1 > MAX_OBJECT_DEPTH {
                    return false;
                }
                stack.extend(a.iter().map(|x| (x, d + 1)));
            }
            Value::Object(m) => {
                if d + 1 > MAX_OBJECT_DEPTH {
                    return false;
                }
                stack.extend(m.values().map(|x| (x, d + 1)));
            }
            _ => {}
        }
    }
    true
}

impl HotObjects {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The object stored at `rv`, if kept.
    pub fn get(&self, storage: &str, ns: &str, name: &str, rv: u64) -> Option<Arc<Value>> {
        let k = key(storage, ns, name);
        let inner = self.lock();
        inner.map.get(&k).filter(|e| e.0 == rv).map(|e| e.1.clone())
    }

    /// Keep `obj`, just stored at `rv` with a serialization of `json_len` bytes (unless it would
    /// not reparse exactly, or is too large to keep).
    pub fn put(&self, storage: &str, ns: &str, name: &str, rv: u64, obj: &Arc<Value>, json_len: usize) {
        if json_len > MAX_JSON_BYTES / 16 || !reparses_exactly(obj) {
            self.forget(storage, ns, name);
            return;
        }
        let k = key(storage, ns, name);
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.stamp += 1;
        let stamp = inner.stamp;
        if let Some(old) = inner.map.insert(k.clone(), (rv, obj.clone(), json_len, stamp)) {
            inner.bytes -= old.2;
        }
        inner.bytes += json_len;
        inner.order.push_back((k, stamp));
        while inner.map.len() > MAX_ENTRIES || inner.bytes > MAX_JSON_BYTES || inner.order.len() > 2 * MAX_ENTRIES {
            let Some((k, s)) = inner.order.pop_front() else { break };
            if inner.map.get(&k).is_some_and(|e| e.3 == s)
                && let Some(e) = inner.map.remove(&k)
            {
                inner.bytes -= e.2;
            }
        }
    }

    /// Drop what is kept of an object (its next version is not kept).
    pub fn forget(&self, storage: &str, ns: &str, name: &str) {
        let k = key(storage, ns, name);
        let mut inner = self.lock();
        if let Some(e) = inner.map.remove(&k) {
            inner.bytes -= e.2;
        }
    }

    /// How many objects are kept, and their JSON bytes.
    #[cfg(test)]
    pub fn len_and_bytes(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.map.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Any JSON value: floats, big and negative integers, escapes, nesting.
    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            (-1000i32..1000, 1u32..1000).prop_map(|(a, b)| json!(f64::from(a) / f64::from(b))),
            "\\PC{0,12}".prop_map(Value::String),
            "[a-z\"\\\\\u{0}-\u{1f}\u{7f}-\u{10ffff}]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("\\PC{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn reparsed(v: &Value) -> Value {
        serde_json::from_slice(&serde_json::to_vec(v).unwrap()).unwrap_or(Value::Null)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// What is kept is exactly what parsing its serialization (the reference path) gives.
        #[test]
        fn kept_values_are_their_reparsed_serialization(v in any_value()) {
            if reparses_exactly(&v) {
                let r = reparsed(&v);
                prop_assert_eq!(&r, &v);
                // And the serializations agree byte for byte.
                prop_assert_eq!(serde_json::to_vec(&r).unwrap(), serde_json::to_vec(&v).unwrap());
            }
        }
    }

    #[test]
    fn floats_and_deep_values_are_not_kept() {
        assert!(!reparses_exactly(&json!({"a": [1, 2.5]})));
        assert!(reparses_exactly(&json!({"a": [1, -2, u64::MAX], "b": "x"})));
        let mut deep = json!(1);
        for _ in 0..MAX_OBJECT_DEPTH {
            deep = json!([deep]);
        }
        assert!(reparses_exactly(&deep));
        assert!(!reparses_exactly(&json!([deep])));
        let hot = HotObjects::default();
        hot.put("pods", "ns", "a", 5, &Arc::new(json!({"x": 0.1})), 9);
        assert!(hot.get("pods", "ns", "a", 5).is_none());
    }

    #[test]
    fn an_entry_serves_only_its_resource_version_and_key() {
        let hot = HotObjects::default();
        let v = Arc::new(json!({"metadata": {"name": "a"}}));
        hot.put("pods", "ns", "a", 5, &v, 26);
        assert!(Arc::ptr_eq(&hot.get("pods", "ns", "a", 5).unwrap(), &v));
        assert!(hot.get("pods", "ns", "a", 6).is_none());
        // Keys whose parts run together stay apart.
        assert!(hot.get("pods", "nsa", "", 5).is_none());
        assert!(hot.get("pod", "sns", "a", 5).is_none());
        hot.forget("pods", "ns", "a");
        assert!(hot.get("pods", "ns", "a", 5).is_none());
    }

    #[test]
    fn bounded_by_count_and_bytes_oldest_first() {
        let hot = HotObjects::default();
        let v = Arc::new(json!({}));
        for i in 0..MAX_ENTRIES + 10 {
            hot.put("p", "", &i.to_string(), 1, &v, 2);
        }
        assert_eq!(hot.len_and_bytes(), (MAX_ENTRIES, 2 * MAX_ENTRIES));
        assert!(hot.get("p", "", "0", 1).is_none());
        assert!(hot.get("p", "", &(MAX_ENTRIES + 9).to_string(), 1).is_some());
        // One object rewritten again and again: one entry, a bounded order queue.
        let hot = HotObjects::default();
        for rv in 0..10 * MAX_ENTRIES as u64 {
            hot.put("p", "", "a", rv, &v, 2);
        }
        assert_eq!(hot.len_and_bytes(), (1, 2));
        assert!(hot.lock().order.len() <= 2 * MAX_ENTRIES);
        let big = MAX_JSON_BYTES / 16;
        let hot = HotObjects::default();
        for i in 0..20 {
            hot.put("p", "", &i.to_string(), 1, &v, big);
        }
        assert!(hot.len_and_bytes().1 <= MAX_JSON_BYTES);
        assert_eq!(hot.len_and_bytes().0, 16);
    }
}
