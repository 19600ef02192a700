//! What the controller has asked the API server to do and has not yet seen in its cache.
//!
//! Upstream keeps `ControllerExpectations` (counts of pod creations/deletions per Job key) and
//! `UIDTrackingControllerExpectations` (UIDs of pods whose tracking finalizer removal is in flight).
//! Counts need the add to be registered *before* the call and lowered on failure; here the shell
//! records the **UID** of every pod it created, deleted, or stripped of its finalizer once the call
//! returned, and an expectation is satisfied when either
//! - the pod watch hook reported it ([`Expectations::observe`], called for every pod event), or
//! - the reflector's store already shows it ([`Expectations::satisfied`] checks the store snapshot,
//!   which covers a watch event that arrived before the call returned).
//!
//! The Job's own status writes are expected too ([`Expectations::status_written`]): until the Job
//! cache shows the version this controller wrote, a sync of a superseded version would only plan
//! from stale counters and fail its status write with 409 Conflict, so the shell skips it
//! ([`Expectations::job_is_stale`]) and the watch event of the write triggers the next sync
//! (upstream avoids most of these conflicts by delaying pod-triggered syncs by 1 s).
//!
//! Every record expires after [`EXPECTATIONS_TTL`] (5 minutes, as upstream) so a lost event cannot
//! wedge a Job. All of it is in memory: after a restart everything is re-derived from the API
//! server (the tracking finalizer and `uncountedTerminatedPods` make that safe).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cached_pod::PodFacts;
use super::pods;

/// How long an unobserved expectation blocks a Job (upstream's `ExpectationsTimeout`).
pub const EXPECTATIONS_TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Default, Debug)]
struct Entry {
    /// Created pod UIDs not yet seen.
    creations: HashMap<String, Instant>,
    /// Deleted pod UIDs not yet seen gone or terminating.
    deletions: HashMap<String, Instant>,
    /// Pod UIDs whose finalizer removal was issued but not yet seen.
    finalizers: HashMap<String, Instant>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.creations.is_empty() && self.deletions.is_empty() && self.finalizers.is_empty()
    }

    fn expire(&mut self, now: Instant, ttl: Duration) {
        for m in [&mut self.creations, &mut self.deletions, &mut self.finalizers] {
            m.retain(|_, t| now.duration_since(*t) < ttl);
        }
    }

    /// How long until the oldest record expires.
    fn expires_in(&self, now: Instant, ttl: Duration) -> Option<Duration> {
        [&self.creations, &self.deletions, &self.finalizers]
            .into_iter()
            .flat_map(|m| m.values())
            .map(|t| ttl.saturating_sub(now.duration_since(*t)))
            .min()
    }
}

/// A Job's outstanding pod operations at one instant ([`Expectations::outstanding`]).
#[derive(Debug, Default, Clone)]
pub struct Outstanding {
    creations: BTreeSet<String>,
    deletions: BTreeSet<String>,
    finalizers: BTreeSet<String>,
    /// How long until the oldest of them expires (`None`: nothing outstanding).
    pub expires_in: Option<Duration>,
}

impl Outstanding {
    /// The uids of the pods concerned.
    pub fn uids(&self) -> impl Iterator<Item = &str> {
        self.creations.iter().chain(&self.deletions).chain(&self.finalizers).map(String::as_str)
    }
}

/// The versions of a Job this controller replaced with its own status writes.
#[derive(Debug)]
struct Written {
    /// The resourceVersion the last write returned.
    latest: String,
    /// Versions this controller's writes superseded since the cache last caught up.
    superseded: HashSet<String>,
    /// When the last write returned.
    at: Instant,
}

/// Per-Job (key `namespace/name`) outstanding pod operations.
#[derive(Debug)]
pub struct Expectations {
    ttl: Duration,
    inner: Mutex<HashMap<String, Entry>>,
    written: Mutex<HashMap<String, Written>>,
}

impl Default for Expectations {
    fn default() -> Self {
        Self::new(EXPECTATIONS_TTL)
    }
}

/// What a pod event says about a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodEvent {
    /// Added or modified: the pod exists in this state.
    Applied,
    /// Deleted from the API server.
    Deleted,
}

impl Expectations {
    /// Expectations whose records expire after `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, inner: Mutex::new(HashMap::new()), written: Mutex::new(HashMap::new()) }
    }

    fn with<R>(&self, key: &str, f: impl FnOnce(&mut Entry) -> R) -> R {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(key.to_string()).or_default();
        let r = f(entry);
        if entry.is_empty() {
            map.remove(key);
        }
        r
    }

    /// Records a pod this controller created.
    pub fn expect_creation(&self, key: &str, uid: &str) {
        self.with(key, |e| e.creations.insert(uid.to_string(), Instant::now()));
    }

    /// Records a pod this controller deleted.
    pub fn expect_deletion(&self, key: &str, uid: &str) {
        self.with(key, |e| e.deletions.insert(uid.to_string(), Instant::now()));
    }

    /// Records a pod whose tracking finalizer this controller removed.
    pub fn expect_finalizer_removal(&self, key: &str, uid: &str) {
        self.with(key, |e| e.finalizers.insert(uid.to_string(), Instant::now()));
    }

    /// Feeds one pod watch event for the Job `key` that controls the pod.
    pub fn observe<P: PodFacts + ?Sized>(&self, key: &str, pod: &P, event: PodEvent) {
        let uid = pods::uid(pod);
        let gone = event == PodEvent::Deleted;
        self.with(key, |e| {
            e.creations.remove(uid);
            if gone || pod.pod_meta().deletion_timestamp.is_some() {
                e.deletions.remove(uid);
            }
            if gone || !pods::has_tracking_finalizer(pod) {
                e.finalizers.remove(uid);
            }
        });
    }

    /// The Job's outstanding expectations (expired ones dropped), to be taken **before** the store
    /// snapshot of its pods is read and handed to [`Expectations::satisfied_after`].
    ///
    /// The pod hook updates the store first and clears the expectation second, so an expectation
    /// missing from this snapshot was observed before the pods are read: the pod snapshot shows it.
    /// Taken after the pod snapshot instead, an expectation cleared in between would count as seen
    /// while the snapshot does not show it: a created pod missing (one too many created) or a
    /// removed finalizer still present (the pod counted again although the Job status has it).
    pub fn outstanding(&self, key: &str) -> Outstanding {
        let now = Instant::now();
        let ttl = self.ttl;
        self.with(key, |e| {
            e.expire(now, ttl);
            Outstanding {
                creations: e.creations.keys().cloned().collect(),
                deletions: e.deletions.keys().cloned().collect(),
                finalizers: e.finalizers.keys().cloned().collect(),
                expires_in: e.expires_in(now, ttl),
            }
        })
    }

    /// Checks the Job's expectations against the store snapshot of its pods (`pods`: every pod of
    /// the store controlled by the Job): `before` is [`Expectations::outstanding`] taken before the
    /// snapshot was read. Drops the records the snapshot shows as done, and returns whether pod
    /// creations and deletions are all observed, and the finalizer removals still pending.
    pub fn satisfied_after<P: PodFacts>(
        &self,
        key: &str,
        before: &Outstanding,
        pods: &[P],
    ) -> (bool, BTreeSet<String>) {
        self.satisfied_after_with(key, before, pods, &HashMap::new())
    }

    /// [`Expectations::satisfied_after`] for a snapshot of the Job's live pods `pods` and, of its
    /// settled pods (terminal, no tracking finalizer: [`super::settled`]), those whose uids are
    /// among [`Outstanding::uids`], each with whether it is being deleted.
    pub fn satisfied_after_with<P: PodFacts>(
        &self,
        key: &str,
        before: &Outstanding,
        pods: &[P],
        settled: &HashMap<String, bool>,
    ) -> (bool, BTreeSet<String>) {
        let by_uid: HashMap<&str, &P> = pods.iter().map(|p| (pods::uid(p), p)).collect();
        let created = |uid: &str| by_uid.contains_key(uid) || settled.contains_key(uid);
        let deleted = |uid: &str| match by_uid.get(uid) {
            Some(p) => p.pod_meta().deletion_timestamp.is_some(),
            None => settled.get(uid).is_none_or(|deleting| *deleting),
        };
        let finalizer_gone = |uid: &str| by_uid.get(uid).is_none_or(|p| !pods::has_tracking_finalizer(p));
        let live = self.with(key, |e| {
            e.creations.retain(|uid, _| !created(uid));
            e.deletions.retain(|uid, _| !deleted(uid));
            e.finalizers.retain(|uid, _| !finalizer_gone(uid));
            (e.creations.is_empty() && e.deletions.is_empty(), e.finalizers.keys().cloned().collect::<BTreeSet<_>>())
        });
        let ok = live.0 && before.creations.iter().all(|u| created(u)) && before.deletions.iter().all(|u| deleted(u));
        let mut pending = live.1;
        pending.extend(before.finalizers.iter().filter(|u| !finalizer_gone(u)).cloned());
        (ok, pending)
    }

    /// [`Expectations::satisfied_after`] with the expectations as they are now: only correct when
    /// no pod event can be applied between reading `pods` and this call (tests, single-threaded use).
    pub fn satisfied<P: PodFacts>(&self, key: &str, pods: &[P]) -> (bool, BTreeSet<String>) {
        let before = self.outstanding(key);
        self.satisfied_after(key, &before, pods)
    }

    /// Records a status write of Job `key` that replaced version `old` with `new`.
    pub fn status_written(&self, key: &str, old: Option<&str>, new: Option<&str>) {
        let (Some(old), Some(new)) = (old, new) else { return };
        let mut map = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let w = map.entry(key.to_string()).or_insert_with(|| Written {
            latest: String::new(),
            superseded: HashSet::new(),
            at: Instant::now(),
        });
        w.superseded.insert(old.to_string());
        w.latest = new.to_string();
        w.at = Instant::now();
    }

    /// Whether `resource_version` of Job `key` (from the cache) is one this controller's own status
    /// writes superseded, i.e. the cache has not yet caught up with them. Any other version (the
    /// one last written, or a newer one from another writer) ends the expectation. Expires after
    /// the TTL like the pod records.
    pub fn job_is_stale(&self, key: &str, resource_version: Option<&str>) -> bool {
        let mut map = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = map.get(key) else { return false };
        let stale = resource_version.is_some_and(|rv| w.superseded.contains(rv)) && w.at.elapsed() < self.ttl;
        if !stale {
            map.remove(key);
        }
        stale
    }

    /// Forgets a Job (it was deleted).
    pub fn forget(&self, key: &str) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        self.written.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::labels::JOB_TRACKING_FINALIZER;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(uid: &str, finalizer: bool, deleting: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.uid = Some(uid.into());
        if finalizer {
            p.metadata.finalizers = Some(vec![JOB_TRACKING_FINALIZER.into()]);
        }
        if deleting {
            p.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        }
        p
    }

    #[test]
    fn creations_are_satisfied_by_event_or_store() {
        let e = Expectations::default();
        e.expect_creation("ns/j", "a");
        e.expect_creation("ns/j", "b");
        assert!(!e.satisfied::<Pod>("ns/j", &[]).0);
        e.observe("ns/j", &pod("a", true, false), PodEvent::Applied);
        assert!(!e.satisfied::<Pod>("ns/j", &[]).0, "b is still unseen");
        assert!(e.satisfied("ns/j", &[pod("b", true, false)]).0, "the store shows b");
        assert!(e.satisfied::<Pod>("ns/other", &[]).0);
    }

    #[test]
    fn deletions_need_the_pod_gone_or_terminating() {
        let e = Expectations::default();
        e.expect_deletion("k", "a");
        assert!(!e.satisfied("k", &[pod("a", true, false)]).0);
        e.observe("k", &pod("a", true, false), PodEvent::Applied);
        assert!(!e.satisfied("k", &[pod("a", true, false)]).0, "an update that is not the deletion");
        assert!(e.satisfied("k", &[pod("a", true, true)]).0);
        e.expect_deletion("k", "b");
        e.observe("k", &pod("b", true, false), PodEvent::Deleted);
        assert!(e.satisfied("k", &[pod("b", true, false)]).0, "the delete event was seen");
    }

    #[test]
    fn finalizer_removals_stay_pending_until_seen() {
        let e = Expectations::default();
        e.expect_finalizer_removal("k", "a");
        e.expect_finalizer_removal("k", "b");
        let (ok, pending) = e.satisfied("k", &[pod("a", true, false), pod("b", false, false)]);
        assert!(ok, "finalizer removals do not block pod management");
        assert_eq!(pending, BTreeSet::from(["a".to_string()]));
        e.observe("k", &pod("a", false, false), PodEvent::Applied);
        assert!(e.satisfied("k", &[pod("a", true, false)]).1.is_empty());
    }

    #[test]
    fn superseded_job_versions_are_stale_until_the_cache_catches_up() {
        let e = Expectations::default();
        assert!(!e.job_is_stale("k", Some("5")), "nothing written");
        e.status_written("k", Some("5"), Some("7"));
        e.status_written("k", Some("7"), Some("9"));
        assert!(e.job_is_stale("k", Some("5")));
        assert!(e.job_is_stale("k", Some("7")), "the first of two writes is superseded too");
        assert!(!e.job_is_stale("k", Some("9")), "the cache shows the last write");
        assert!(!e.job_is_stale("k", Some("5")), "caught up once: the record is gone");
        e.status_written("k", Some("9"), Some("11"));
        assert!(!e.job_is_stale("k", Some("12")), "another writer's newer version");
        assert!(!e.job_is_stale("k", Some("9")));
        e.status_written("k", Some("1"), Some("2"));
        e.forget("k");
        assert!(!e.job_is_stale("k", Some("1")), "forgotten with the Job");
        assert!(!e.job_is_stale("other", None));
    }

    #[test]
    fn superseded_job_versions_expire() {
        let e = Expectations::new(Duration::ZERO);
        e.status_written("k", Some("5"), Some("7"));
        assert!(!e.job_is_stale("k", Some("5")));
    }

    #[test]
    fn outstanding_records_say_when_the_oldest_expires() {
        let e = Expectations::new(Duration::from_secs(300));
        assert_eq!(e.outstanding("k").expires_in, None, "nothing outstanding: nothing to wait for");
        e.expect_creation("k", "a");
        let left = e.outstanding("k").expires_in.expect("a creation is outstanding");
        assert!(left <= Duration::from_secs(300) && left > Duration::from_secs(290), "{left:?}");
        e.observe("k", &pod("a", true, false), PodEvent::Applied);
        assert_eq!(e.outstanding("k").expires_in, None);
        e.expect_finalizer_removal("k", "b");
        assert!(e.outstanding("k").expires_in.is_some(), "finalizer removals expire too");
    }

    #[test]
    fn records_expire() {
        let e = Expectations::new(Duration::ZERO);
        e.expect_creation("k", "a");
        e.expect_finalizer_removal("k", "b");
        let (ok, pending) = e.satisfied("k", &[pod("b", true, false)]);
        assert!(ok && pending.is_empty());
    }

    /// The pod hook applies an event to the store, then clears the expectation. A sync that read
    /// its pod snapshot just before such an event must still see the operation as outstanding.
    #[test]
    fn expectations_cleared_after_the_pod_snapshot_still_count_as_outstanding() {
        let e = Expectations::default();
        e.expect_creation("k", "new");
        e.expect_finalizer_removal("k", "done");
        let before = e.outstanding("k");
        // The snapshot: `new` not in it yet, `done` still with its finalizer.
        let snapshot = [pod("done", true, false)];
        // Then the events arrive and clear both records.
        e.observe("k", &pod("new", true, false), PodEvent::Applied);
        e.observe("k", &pod("done", false, false), PodEvent::Applied);
        let (ok, pending) = e.satisfied_after("k", &before, &snapshot);
        assert!(!ok, "the created pod is not in the snapshot: creating again would over-create");
        assert_eq!(pending.into_iter().collect::<Vec<_>>(), ["done"], "counting `done` again would double-count it");
        // Judged against the live records only, both races go wrong.
        let (ok, pending) = e.satisfied("k", &snapshot);
        assert!(ok && pending.is_empty());
    }
}
