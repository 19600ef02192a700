//! Events expire: each Event is deleted `--event-ttl` after its last write (kube-apiserver's
//! `--event-ttl`, default 1 h).
//!
//! Upstream attaches an etcd lease of that length to every Event write, so an Event nobody
//! updates for an hour is gone, and one that keeps being updated (a growing `count`) lives on.
//! Here one task keeps a queue of `(deadline, namespace, name, resourceVersion)` in write order,
//! fed by [`Store::subscribe_all`](super::store::Store::subscribe_all); deadlines only grow
//! along the queue (one TTL for all), so the task sleeps until the front one. An entry deletes
//! the Event only if it is still at that resourceVersion: a later write queued a later deadline.
//! As with a lease, finalizers do not hold an expired Event back. Events found at start (a
//! restart over `--data-dir`) get the full TTL from then.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::rest::Api;
use super::store::{EventType, Expect, Id, Op};

/// kube-apiserver's default `--event-ttl`.
pub const DEFAULT_EVENT_TTL: Duration = Duration::from_secs(3600);

/// One queued write: the Event's store [`Id`] (a clone of the store's own key, so an entry per
/// Event write, a hundred thousand of them for a wide Job's pods within the hour, holds no string
/// of its own).
#[derive(Debug)]
struct Due {
    deadline: Instant,
    rv: u64,
    id: Id,
}

/// The expiry queue: `(deadline, namespace/name, resourceVersion)` in write order.
#[derive(Debug, Default)]
struct Expiry {
    queue: VecDeque<Due>,
}

impl Expiry {
    /// An Event was written at `rv`: it expires at `deadline` unless written again.
    fn written(&mut self, deadline: Instant, id: Id, rv: u64) {
        self.queue.push_back(Due { deadline, rv, id });
    }

    /// The earliest deadline queued.
    fn next(&self) -> Option<Instant> {
        self.queue.front().map(|q| q.deadline)
    }

    /// The writes whose deadline has passed at `now`, oldest first.
    fn due(&mut self, now: Instant) -> Vec<(Id, u64)> {
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|q| q.deadline <= now) {
            if let Some(q) = self.queue.pop_front() {
                out.push((q.id, q.rv));
            }
        }
        out
    }
}

/// Delete every Event `ttl` after its last write, until the store goes away.
pub async fn run(api: Api, ttl: Duration) {
    let info = api.info("", "events");
    let key = info.storage_key.clone();
    // Subscribe before reading what is stored, so nothing written in between is missed (an Event
    // in both is queued twice, harmlessly: the second deadline finds it gone or rewritten).
    let mut rx = api.store.subscribe_all();
    let mut expiry = Expiry::default();
    let first = Instant::now() + ttl;
    for (ns, name) in api.store.keys(&key, None) {
        if let Some(e) = api.store.get(&key, &ns, &name) {
            expiry.written(first, Id::new(&ns, &name), e.rv);
        }
    }
    loop {
        let next = expiry.next();
        tokio::select! {
            ev = rx.recv() => match ev {
                None => return,
                Some(e) if *e.key == *key && e.kind != EventType::Deleted => {
                    expiry.written(Instant::now() + ttl, e.id.clone(), e.rv);
                }
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                for (id, rv) in expiry.due(Instant::now()) {
                    // Only if still at that version: a later write queued a later deadline.
                    let _ = api.store.write(&info, id.ns(), id.name(), Expect::Rv(rv), Op::Delete);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::registry::Registry;
    use crate::rest::WriteOptions;
    use crate::store::{Store, StoreConfig};

    #[test]
    fn writes_fall_due_in_order_and_each_write_has_its_own_deadline() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut e = Expiry::default();
        assert_eq!(e.next(), None);
        let w = |e: &mut Expiry, t, ns: &str, name: &str, rv| e.written(t, Id::new(ns, name), rv);
        let strings = |due: Vec<(Id, u64)>| -> Vec<(String, String, u64)> {
            due.into_iter().map(|(id, rv)| (id.ns().to_string(), id.name().to_string(), rv)).collect()
        };
        w(&mut e, t0 + s(3600), "default", "a", 5);
        w(&mut e, t0 + s(3600), "default", "b", 6);
        w(&mut e, t0 + s(5400), "default", "b", 9);
        // Namespace and name are kept apart though stored back to back.
        w(&mut e, t0 + s(7200), "ab", "c", 10);
        w(&mut e, t0 + s(7200), "a", "bc", 11);
        w(&mut e, t0 + s(7200), "", "x", 12);
        assert_eq!(e.next(), Some(t0 + s(3600)));
        assert!(e.due(t0 + s(3599)).is_empty());
        let due = strings(e.due(t0 + s(3600)));
        assert_eq!(due, [("default".into(), "a".into(), 5), ("default".into(), "b".into(), 6)]);
        assert_eq!(e.next(), Some(t0 + s(5400)));
        assert_eq!(strings(e.due(t0 + s(5400))), [("default".into(), "b".into(), 9)]);
        assert_eq!(
            strings(e.due(t0 + s(9999))),
            [("ab".into(), "c".into(), 10), ("a".into(), "bc".into(), 11), ("".into(), "x".into(), 12)]
        );
        assert_eq!(e.next(), None);
    }

    fn event(name: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "reason": "Started",
            "message": "m", "type": "Normal"})
    }

    #[tokio::test]
    async fn stored_and_new_events_expire_other_kinds_do_not() {
        let api = Api::new(Arc::new(Store::new(StoreConfig::default())), Registry::builtin());
        let info = api.info("", "events");
        let cm = api.info("", "configmaps");
        let opts = WriteOptions::default();
        api.create(&info, "default", event("stored"), &opts).unwrap();
        let task = tokio::spawn(run(api.clone(), Duration::from_millis(50)));
        api.create(&info, "default", event("new"), &opts).unwrap();
        let not_an_event = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}});
        api.create(&cm, "default", not_an_event, &opts).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !api.store.keys(&info.storage_key, None).is_empty() {
            assert!(std::time::Instant::now() < deadline, "events still stored after 30 s with a 50 ms TTL");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(api.get(&cm, "default", "new").is_ok(), "other kinds never expire");
        task.abort();
    }

    #[test]
    fn a_rewritten_event_outlives_the_deadline_of_its_earlier_write() {
        // What `run` relies on: the delete of an earlier write's entry is refused.
        let api = Api::new(Arc::new(Store::new(StoreConfig::default())), Registry::builtin());
        let info = api.info("", "events");
        let opts = WriteOptions::default();
        let first = api.create(&info, "default", event("e"), &opts).unwrap();
        let rv: u64 = first.object["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
        let mut e = api.get_value(&info, "default", "e").unwrap();
        e["count"] = json!(2);
        api.update(&info, "default", "e", None, e, &opts).unwrap();
        assert!(api.store.write(&info, "default", "e", Expect::Rv(rv), Op::Delete).is_err());
        assert!(api.get(&info, "default", "e").is_ok());
    }
}
