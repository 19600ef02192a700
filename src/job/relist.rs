//! Objects a re-list dropped without a `Delete` event.
//!
//! kube-runtime's watcher lists again after a 410 (its watch fell behind the API server's history,
//! or the server dropped it and the history moved on); its reflector swaps the new list into the
//! store at `InitDone`. An object deleted while the watch was down gets no `Delete` event: it is
//! only missing from the new list. The Job controller needs those deletions - a pod deleted in the
//! gap satisfies a deletion expectation and its Job may need a replacement (nothing else would
//! sync that Job), and a Job deleted in the gap leaves pods holding the tracking finalizer - so
//! [`Vanished`] remembers the store at `Init` and hands back, at `InitDone`, what the new list no
//! longer has (by uid: a same-name object with another uid is a new object, the old one is gone).

use std::hash::Hash;
use std::sync::Arc;

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

/// Tracks one reflector's re-lists; feed it every event after the reflector applied it.
pub struct Vanished<K: Resource> {
    before: Option<Vec<Arc<K>>>,
}

impl<K: Resource> Default for Vanished<K> {
    fn default() -> Self {
        Self { before: None }
    }
}

impl<K> Vanished<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    /// One event, seen after the reflector applied it to `store`: at `InitDone`, the objects the
    /// store held when the re-list began that it no longer holds.
    pub fn observe(&mut self, ev: &watcher::Event<K>, store: &Store<K>) -> Vec<Arc<K>> {
        self.observe_in(ev, || store.state(), |old| store.get(&ObjectRef::from_obj(old)))
    }

    /// [`Vanished::observe`] for a cache other than a reflector store: `state` lists it, `get`
    /// finds an object's current version by name.
    pub fn observe_in(
        &mut self,
        ev: &watcher::Event<K>,
        state: impl FnOnce() -> Vec<Arc<K>>,
        get: impl Fn(&K) -> Option<Arc<K>>,
    ) -> Vec<Arc<K>> {
        match ev {
            // The reflector buffers the new list aside: the store still holds the old one.
            watcher::Event::Init => {
                self.before = Some(state());
                vec![]
            }
            watcher::Event::InitDone => {
                let before = self.before.take().unwrap_or_default();
                before
                    .into_iter()
                    .filter(|old| get(old.as_ref()).is_none_or(|n| n.meta().uid != old.meta().uid))
                    .collect()
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::reflector;

    fn pod(name: &str, uid: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("ns".into());
        p.metadata.uid = Some(uid.into());
        p
    }

    /// Feeds `events` through a reflector writer and the tracker, as the controller's hook sees
    /// them; returns the names of what vanished at each `InitDone`.
    fn run(events: Vec<watcher::Event<Pod>>) -> Vec<Vec<String>> {
        let (store, mut writer) = reflector::store::<Pod>();
        let mut v = Vanished::default();
        let mut out = vec![];
        for ev in events {
            writer.apply_watcher_event(&ev);
            let gone = v.observe(&ev, &store);
            if matches!(ev, watcher::Event::InitDone) {
                out.push(gone.iter().map(|p| p.metadata.name.clone().unwrap()).collect());
            }
        }
        out
    }

    #[test]
    fn a_relist_reports_what_it_dropped() {
        use watcher::Event::*;
        type Case = (&'static str, Vec<watcher::Event<Pod>>, Vec<Vec<&'static str>>);
        let cases: Vec<Case> = vec![
            ("first list: nothing was there", vec![Init, InitApply(pod("a", "1")), InitDone], vec![vec![]]),
            (
                "deleted while the watch was down",
                vec![
                    Init,
                    InitApply(pod("a", "1")),
                    InitApply(pod("b", "2")),
                    InitDone,
                    Init,
                    InitApply(pod("b", "2")),
                    InitDone,
                ],
                vec![vec![], vec!["a"]],
            ),
            (
                "recreated under the same name: the old one is gone",
                vec![Init, InitApply(pod("a", "1")), InitDone, Init, InitApply(pod("a", "9")), InitDone],
                vec![vec![], vec!["a"]],
            ),
            (
                "seen deleted by the watch before the relist: not reported again",
                vec![Init, InitApply(pod("a", "1")), InitDone, Delete(pod("a", "1")), Init, InitDone],
                vec![vec![], vec![]],
            ),
            (
                "created by the watch and dropped by the relist",
                vec![Init, InitDone, Apply(pod("c", "3")), Init, InitDone],
                vec![vec![], vec!["c"]],
            ),
        ];
        for (name, events, want) in cases {
            let want: Vec<Vec<String>> = want.into_iter().map(|v| v.into_iter().map(String::from).collect()).collect();
            assert_eq!(run(events), want, "{name}");
        }
    }
}
