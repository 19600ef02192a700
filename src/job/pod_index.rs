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
//!
//! A Job's *settled* pods (terminal, tracking finalizer gone: [`super::settled`]) are kept apart
//! from its live ones, in a compact entry (no conditions, containers or annotations; a `Failed`
//! pod keeps its whole entry, which a podFailurePolicy reads), with their finish times aggregated
//! per Job. [`PodIndex::job_pods`] hands a sync the live pods and the settled pods' [`Settled`]
//! summary: its cost follows the pods in flight, not every pod the Job ever had. Whether a settled
//! pod still matches its Job's selector is checked once per pod and selector, not per sync.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use kube::runtime::watcher;

use super::adopt::{Claim, claim, selector_matches_by};
use super::cached_pod::{CachedPod, Labels, Owners, PodFacts};
use super::pods;
use super::settled::{Settled, Times, is_settled, sort_by_name};

/// `(namespace, name)`.
pub type PodKey = (String, String);

type Key = (Arc<str>, Arc<str>);

/// A settled pod as the index keeps it: what the claim, the expectations, the backoff and a
/// re-list read of it.
#[derive(Debug)]
struct SettledPod {
    key: Key,
    uid: Arc<str>,
    resource_version: Option<Box<str>>,
    deletion_timestamp: Option<Time>,
    labels: SettledLabels,
    owners: Owners,
    /// [`pods::finished_time`].
    finished: DateTime<Utc>,
    /// `Failed` (else `Succeeded`).
    failed: bool,
    /// A `Failed` pod's whole entry (podFailurePolicy rules read its containers and conditions).
    full: Option<Arc<CachedPod>>,
}

/// A settled pod's labels: its own, or (an Indexed Job's pods differ in their completion index
/// only) its group's [`Group::base_labels`] but the value at [`Group::one_off_at`], without a
/// label list of its own. 24 bytes (the 16 of a [`Labels`] and a tag): only the differing value
/// is kept, a canonical decimal `u32` (a completion index) without its string.
#[derive(Debug)]
enum SettledLabels {
    /// The pod's own (interned) list (the base's itself when the labels are the same).
    Own(Labels),
    /// The base but the value at the group's position, which is this number in decimal.
    Index(u32),
    /// The base but the value at the group's position, which is this.
    Value(Arc<str>),
}

/// What a group's settled pods' labels are kept against: [`Group::base_labels`] and
/// [`Group::one_off_at`].
#[derive(Clone, Copy)]
struct LabelBase<'a> {
    labels: Option<&'a Labels>,
    at: Option<usize>,
}

impl SettledLabels {
    /// `labels` against the group's `base`: one value apart (the same keys, as shared), at the
    /// group's position if it has one, keeps only that value. Also the position it is kept at
    /// (for the group to keep, if it had none).
    fn new(labels: &Labels, base: LabelBase<'_>) -> (Self, Option<usize>) {
        let own = || (SettledLabels::Own(labels.clone()), None);
        let Some(base_labels) = base.labels else { return own() };
        let (mine, theirs) = (labels.as_slice(), base_labels.as_slice());
        if mine.len() != theirs.len() || mine.is_empty() {
            return own();
        }
        let mut differ = None;
        for (i, (m, t)) in mine.iter().zip(theirs).enumerate() {
            if m.0 != t.0 {
                return own();
            }
            if m.1 != t.1 {
                if differ.is_some() {
                    return own();
                }
                differ = Some(i);
            }
        }
        match differ {
            // The very same labels: the base itself.
            None => (SettledLabels::Own(base_labels.clone()), None),
            Some(at) if base.at.is_some_and(|a| a != at) => own(),
            Some(at) => {
                let value = &mine[at].1;
                let kept = match value.parse::<u32>() {
                    Ok(n) if n.to_string() == **value => SettledLabels::Index(n),
                    _ => SettledLabels::Value(value.clone()),
                };
                (kept, Some(at))
            }
        }
    }

    /// An `Index` value in decimal (empty for the others), for [`SettledLabels::get`].
    fn index_text(&self) -> String {
        match self {
            SettledLabels::Index(n) => n.to_string(),
            _ => String::new(),
        }
    }

    /// The value of label `key`; `index_text` is [`SettledLabels::index_text`].
    fn get<'a>(&'a self, key: &str, base: LabelBase<'a>, index_text: &'a str) -> Option<&'a str> {
        let value = match self {
            SettledLabels::Own(l) => return l.get(key),
            SettledLabels::Index(_) => index_text,
            SettledLabels::Value(v) => &**v,
        };
        let list = base.labels.map(Labels::as_slice).unwrap_or_default();
        let i = list.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        Some(if Some(i) == base.at { value } else { &list[i].1 })
    }

    /// The labels as a cache entry has them.
    fn to_labels(&self, base: LabelBase<'_>) -> Labels {
        let value: Arc<str> = match self {
            SettledLabels::Own(l) => return l.clone(),
            SettledLabels::Index(n) => Arc::from(n.to_string()),
            SettledLabels::Value(v) => v.clone(),
        };
        match (base.labels, base.at) {
            (Some(l), Some(at)) => l.with_value_at(at, &value),
            _ => Labels::default(),
        }
    }
}

impl SettledPod {
    /// The pod kept against its group's label base; also the position its labels are kept at
    /// ([`SettledLabels::new`]).
    fn new(key: Key, pod: &Arc<CachedPod>, base: LabelBase<'_>) -> (Self, Option<usize>) {
        let failed = pods::phase(&**pod) == "Failed";
        let meta = &pod.metadata;
        let (labels, at) = SettledLabels::new(&pod.labels, base);
        let settled = SettledPod {
            key,
            uid: Arc::from(pods::uid(&**pod)),
            resource_version: meta.resource_version.as_deref().map(Box::from),
            deletion_timestamp: meta.deletion_timestamp.clone(),
            labels,
            owners: pod.owner_references.clone(),
            finished: pods::finished_time(&**pod),
            failed,
            full: failed.then(|| pod.clone()),
        };
        (settled, at)
    }

    /// The pod as a cache entry (whole for a `Failed` pod; else name, namespace, uid,
    /// resourceVersion, deletionTimestamp, labels, ownerReferences and phase); `base` is its
    /// group's.
    fn to_cached(&self, base: LabelBase<'_>) -> Arc<CachedPod> {
        if let Some(full) = &self.full {
            return full.clone();
        }
        Arc::new(CachedPod {
            metadata: ObjectMeta {
                namespace: Some(self.key.0.to_string()),
                name: Some(self.key.1.to_string()),
                uid: Some(self.uid.to_string()),
                resource_version: self.resource_version.as_deref().map(str::to_string),
                deletion_timestamp: self.deletion_timestamp.clone(),
                ..ObjectMeta::default()
            },
            labels: self.labels.to_labels(base),
            owner_references: self.owners.clone(),
            phase: Some(if self.failed { "Failed".into() } else { "Succeeded".into() }),
            ..CachedPod::default()
        })
    }
}

#[derive(Debug, Clone)]
enum Entry {
    Live(Arc<CachedPod>),
    Settled(Arc<SettledPod>),
}

impl Entry {
    /// The pod as a cache entry; `group` is the one it is in.
    fn to_cached(&self, group: Option<&Group>) -> Arc<CachedPod> {
        match self {
            Entry::Live(p) => p.clone(),
            Entry::Settled(s) => s.to_cached(Group::label_base_of(group)),
        }
    }
}

/// The pods of one group.
#[derive(Default, Debug)]
struct Group {
    /// The live pods (every pod of an orphan group), by key.
    live: BTreeMap<Key, Arc<CachedPod>>,
    /// The settled pods, by uid.
    settled: HashMap<Arc<str>, Arc<SettledPod>>,
    /// Finish times of the settled `Succeeded` pods.
    succeeded: Times,
    /// Finish times of the settled `Failed` pods.
    failed: Times,
    /// The namespace and selector the settled pods were last checked against.
    checked_for: Option<Scope>,
    /// Settled pods not yet checked against [`Group::checked_for`].
    unchecked: Vec<Arc<str>>,
    /// Settled pods that did not match [`Group::checked_for`].
    mismatched: BTreeSet<Arc<str>>,
    /// The labels of the first settled pod, which the others' are kept against
    /// ([`SettledLabels`]); kept while the group is.
    base_labels: Option<Labels>,
    /// The position of the label the first settled pod one value apart from
    /// [`Group::base_labels`] differs in (an Indexed Job's completion index); kept while the group
    /// is.
    one_off_at: Option<usize>,
}

impl Group {
    fn label_base(&self) -> LabelBase<'_> {
        LabelBase { labels: self.base_labels.as_ref(), at: self.one_off_at }
    }

    fn label_base_of(group: Option<&Group>) -> LabelBase<'_> {
        group.map_or(LabelBase { labels: None, at: None }, Group::label_base)
    }

    fn is_empty(&self) -> bool {
        self.live.is_empty() && self.settled.is_empty()
    }

    fn insert(&mut self, key: Key, entry: &Entry) {
        match entry {
            Entry::Live(p) => {
                self.live.insert(key, p.clone());
            }
            Entry::Settled(s) => {
                if self.base_labels.is_none()
                    && let SettledLabels::Own(l) = &s.labels
                {
                    self.base_labels = Some(l.clone());
                }
                if s.failed {
                    self.failed.add(s.finished);
                } else {
                    self.succeeded.add(s.finished);
                }
                self.unchecked.push(s.uid.clone());
                self.settled.insert(s.uid.clone(), s.clone());
                if self.unchecked.len() > 2 * self.settled.len() + 64 {
                    // Not synced for a while (a Job of another controller): check all next time.
                    self.unchecked.clear();
                    self.checked_for = None;
                }
            }
        }
    }

    fn remove(&mut self, key: &Key, entry: &Entry) {
        match entry {
            Entry::Live(_) => {
                self.live.remove(key);
            }
            Entry::Settled(s) => {
                if self.settled.remove(&s.uid).is_some() {
                    if s.failed {
                        self.failed.remove(s.finished);
                    } else {
                        self.succeeded.remove(s.finished);
                    }
                }
                self.mismatched.remove(&s.uid);
            }
        }
    }

    /// Whether the settled pods were last checked against `job`'s namespace and selector.
    fn checked_against(&self, job: &Job) -> bool {
        let (ns, sel) = claim_scope(job);
        self.checked_for.as_ref().is_some_and(|scope| scope.is(ns, sel))
    }

    /// Whether the claim check of the settled pods is up to date for `job`: nothing for
    /// [`Group::check_claims`] to do.
    fn claims_checked(&self, job: &Job) -> bool {
        self.unchecked.is_empty() && self.checked_against(job)
    }

    /// Brings the claim check of the settled pods up to date for `job`'s selector and namespace.
    fn check_claims(&mut self, job: &Job) {
        let (ns, sel) = claim_scope(job);
        let base = LabelBase { labels: self.base_labels.as_ref(), at: self.one_off_at };
        let matches = |p: &SettledPod| {
            let text = p.labels.index_text();
            &*p.key.0 == ns && sel.is_some_and(|sel| selector_matches_by(sel, |k| p.labels.get(k, base, &text)))
        };
        let todo: Vec<Arc<str>> = if self.checked_against(job) {
            std::mem::take(&mut self.unchecked)
        } else {
            self.unchecked.clear();
            self.mismatched.clear();
            self.checked_for = Some(Scope::of(ns, sel));
            self.settled.keys().cloned().collect()
        };
        for uid in todo {
            if let Some(p) = self.settled.get(&uid) {
                if matches(p) {
                    self.mismatched.remove(&uid);
                } else {
                    self.mismatched.insert(uid);
                }
            }
        }
    }
}

/// A namespace and selector as [`Group::checked_for`] keeps them: the selector as its JSON, not a
/// copy (a `LabelSelector`'s `matchLabels` is a `BTreeMap`, whose leaf node alone is about half a
/// KiB, kept for every Job). k8s-openapi writes every field that is set, in a fixed order, and
/// `matchLabels` in key order, so two selectors are equal exactly when their JSON is.
#[derive(Debug)]
struct Scope {
    ns: Box<str>,
    selector: ScopeSelector,
}

#[derive(Debug)]
enum ScopeSelector {
    None,
    Json(Box<str>),
    /// Not serializable (never for a `LabelSelector`): equal to nothing, so the next sync checks
    /// every settled pod again.
    Unknown,
}

impl Scope {
    fn of(ns: &str, sel: Option<&LabelSelector>) -> Self {
        let selector = match sel {
            None => ScopeSelector::None,
            Some(sel) => serde_json::to_string(sel).map_or(ScopeSelector::Unknown, |j| ScopeSelector::Json(j.into())),
        };
        Self { ns: ns.into(), selector }
    }

    /// Whether this is `ns` and `sel` (compared without a copy of `sel`).
    fn is(&self, ns: &str, sel: Option<&LabelSelector>) -> bool {
        /// Accepts writes while they are the next bytes of `rest`.
        struct Prefix<'a> {
            rest: &'a [u8],
        }
        impl std::io::Write for Prefix<'_> {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                match self.rest.strip_prefix(buf) {
                    Some(rest) => {
                        self.rest = rest;
                        Ok(buf.len())
                    }
                    None => Err(std::io::Error::other("differs")),
                }
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        &*self.ns == ns
            && match (&self.selector, sel) {
                (ScopeSelector::None, None) => true,
                (ScopeSelector::Json(json), Some(sel)) => {
                    let mut w = Prefix { rest: json.as_bytes() };
                    serde_json::to_writer(&mut w, sel).is_ok() && w.rest.is_empty()
                }
                _ => false,
            }
    }
}

/// What the claim check of a Job's settled pods depends on: its namespace and selector.
fn claim_scope(job: &Job) -> (&str, Option<&LabelSelector>) {
    let ns = job.metadata.namespace.as_deref().unwrap_or_default();
    (ns, job.spec.as_ref().and_then(|s| s.selector.as_ref()))
}

#[derive(Default, Debug)]
struct Maps {
    /// Every pod, and the group it is in (if any).
    pods: HashMap<Key, (Entry, Option<Arc<str>>)>,
    /// The pods of each group.
    groups: HashMap<Arc<str>, Group>,
}

fn key_of(pod: &CachedPod) -> Key {
    let meta = pod.pod_meta();
    (
        super::intern::string(meta.namespace.as_deref().unwrap_or_default()),
        Arc::from(meta.name.as_deref().unwrap_or_default()),
    )
}

/// Whether pods of the group `g` may be kept settled (not orphans: any orphan may be adopted).
fn settles(g: &str) -> bool {
    !g.starts_with(ORPHAN_PREFIX)
}

impl Maps {
    fn remove(&mut self, ns: &str, name: &str) {
        let k = (Arc::<str>::from(ns), Arc::<str>::from(name));
        let Some((entry, group)) = self.pods.remove(&k) else { return };
        if let Some(g) = group
            && let Some(set) = self.groups.get_mut(&g)
        {
            set.remove(&k, &entry);
            if set.is_empty() {
                self.groups.remove(&g);
            }
        }
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
        // The old entry leaves its group first: the new one is kept against the label base of
        // the group as it will be in (which goes if the group empties).
        if let Some((old, old_group)) = self.pods.remove(&key)
            && let Some(g) = old_group
            && let Some(set) = self.groups.get_mut(&g)
        {
            set.remove(&key, &old);
            if set.is_empty() {
                self.groups.remove(&g);
            }
        }
        let (entry, at) = match &group {
            Some(g) if settles(g) && is_settled(&*pod) => {
                let (settled, at) = SettledPod::new(key.clone(), &pod, Group::label_base_of(self.groups.get(g)));
                (Entry::Settled(Arc::new(settled)), at)
            }
            _ => (Entry::Live(pod), None),
        };
        self.pods.insert(key.clone(), (entry.clone(), group.clone()));
        if let Some(g) = group {
            let set = self.groups.entry(g).or_default();
            if at.is_some() && set.one_off_at.is_none() {
                set.one_off_at = at;
            }
            set.insert(key, &entry);
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

const ORPHAN_PREFIX: &str = "orphan:";

/// The key of the pods without a controller in `namespace`.
pub fn orphan_key(namespace: &str) -> String {
    format!("{ORPHAN_PREFIX}{namespace}")
}

/// What a sync of one Job reads of its pods ([`PodIndex::job_pods`]).
#[derive(Debug, Default)]
pub struct JobPods {
    /// The live pods the Job controls and claims (controller ownerReference and selector), by name.
    pub live: Vec<Arc<CachedPod>>,
    /// The settled pods it controls and claims, summarised.
    pub settled: Settled,
    /// Of the uids asked about, those of settled pods it controls and claims, and whether each is
    /// being deleted.
    pub settled_uids: HashMap<String, bool>,
}

/// Every pod, by name and by controller Job uid (and orphans by namespace).
#[derive(Default, Debug)]
pub struct PodIndex {
    live: RwLock<Maps>,
    building: Mutex<Option<Maps>>,
}

impl PodIndex {
    /// Applies one watch event; returns the event's pod (for `Apply` and `InitApply` the entry
    /// the cache now holds, if it holds it whole).
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

    /// The keys of the live pods under `key` (every pod of an orphan group).
    pub fn get(&self, key: &str) -> Vec<PodKey> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.groups
            .get(key)
            .map(|s| s.live.keys().map(|(ns, n)| (ns.to_string(), n.to_string())).collect())
            .unwrap_or_default()
    }

    /// The live pods under `key` (a Job uid or an [`orphan_key`]; all of an orphan group), by
    /// namespace and name. A Job's settled pods are in [`PodIndex::job_pods`].
    pub fn pods(&self, key: &str) -> Vec<Arc<CachedPod>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.groups.get(key).map(|s| s.live.values().cloned().collect()).unwrap_or_default()
    }

    /// The pods under `key` that `job` claims (a Job uid; the live ones, and the settled ones
    /// summarised), and of the settled ones among `uids` whether each is being deleted: one
    /// snapshot. `with_failed`: list the settled failed pods too (a podFailurePolicy reads them).
    pub fn job_pods<'a>(
        &self,
        job: &Job,
        key: &str,
        uids: impl IntoIterator<Item = &'a str>,
        with_failed: bool,
    ) -> JobPods {
        self.with_checked_group(job, key, JobPods::default, |group| Self::job_pods_of(group, job, uids, with_failed))
    }

    /// Runs `f` on the group `key` with its settled pods' claim check up to date for `job`: under
    /// the read lock when it already is (a sync with no settled pod new since the last), else
    /// under the write lock after bringing it up to date. `none` when there is no such group.
    fn with_checked_group<T>(&self, job: &Job, key: &str, none: impl FnOnce() -> T, f: impl FnOnce(&Group) -> T) -> T {
        {
            let maps = self.live.read().unwrap_or_else(|e| e.into_inner());
            match maps.groups.get(key) {
                None => return none(),
                Some(group) if group.claims_checked(job) => return f(group),
                Some(_) => {}
            }
        }
        let mut maps = self.live.write().unwrap_or_else(|e| e.into_inner());
        let Some(group) = maps.groups.get_mut(key) else { return none() };
        if !group.claims_checked(job) {
            group.check_claims(job);
        }
        f(group)
    }

    fn job_pods_of<'a>(
        group: &Group,
        job: &Job,
        uids: impl IntoIterator<Item = &'a str>,
        with_failed: bool,
    ) -> JobPods {
        let live = group.live.values().filter(|p| claim(job, &***p) == Claim::Owned).cloned().collect();
        let claimed = |p: &SettledPod| !group.mismatched.contains(&p.uid);
        let settled = if group.mismatched.is_empty() {
            let last_success = group.succeeded.max();
            let mut failed: Vec<Arc<CachedPod>> = vec![];
            if with_failed {
                failed = group.settled.values().filter_map(|p| p.full.clone()).collect();
                sort_by_name(&mut failed);
            }
            Settled { last_success, failures_after: group.failed.after(last_success), failed }
        } else {
            // Some settled pods are not the Job's (labels changed): summarise the others.
            let (mut succ, mut fail) = (Times::default(), Times::default());
            let mut failed: Vec<Arc<CachedPod>> = vec![];
            for p in group.settled.values().filter(|p| claimed(p)) {
                if p.failed {
                    fail.add(p.finished);
                    failed.extend(p.full.clone().filter(|_| with_failed));
                } else {
                    succ.add(p.finished);
                }
            }
            sort_by_name(&mut failed);
            let last_success = succ.max();
            Settled { last_success, failures_after: fail.after(last_success), failed }
        };
        let settled_uids = uids
            .into_iter()
            .filter_map(|u| {
                group.settled.get(u).filter(|p| claimed(p)).map(|p| (u.to_string(), p.deletion_timestamp.is_some()))
            })
            .collect();
        JobPods { live, settled, settled_uids }
    }

    /// The pods under `key` (a Job uid) that `job` controls but no longer matches: to release
    /// (upstream's `ClaimPods`), live and settled.
    pub fn to_release(&self, job: &Job, key: &str) -> Vec<Arc<CachedPod>> {
        self.with_checked_group(job, key, Vec::new, |group| {
            let mut out: Vec<Arc<CachedPod>> =
                group.live.values().filter(|p| claim(job, &***p) == Claim::Release).cloned().collect();
            for uid in &group.mismatched {
                if let Some(p) = group.settled.get(uid) {
                    let p = p.to_cached(group.label_base());
                    if claim(job, &*p) == Claim::Release {
                        out.push(p);
                    }
                }
            }
            out
        })
    }

    /// The pod `namespace/name`, if cached (a settled pod as [`PodIndex::state`] gives it).
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Arc<CachedPod>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.pods
            .get(&(Arc::from(namespace), Arc::from(name)) as &Key)
            .map(|(p, g)| p.to_cached(g.as_ref().and_then(|g| live.groups.get(g))))
    }

    /// Every cached pod (a settled `Succeeded` pod rebuilt from its compact entry: metadata but
    /// timestamps other than deletion, labels, ownerReferences, phase).
    pub fn state(&self) -> Vec<Arc<CachedPod>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.pods.values().map(|(p, g)| p.to_cached(g.as_ref().and_then(|g| live.groups.get(g)))).collect()
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
        newer.phase = Some("Running".into());
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

    /// A pod of Job `u1` (selector `app=a`) for the settled-pod tests.
    fn job_pod(name: &str, phase: &str, finalizer: bool, app: &str, fin_at: i64, exit: i32) -> CachedPod {
        let mut v = json!({
            "metadata": {
                "name": name, "namespace": "ns", "uid": format!("uid-{name}"), "resourceVersion": "7",
                "labels": {"app": app},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u1", "controller": true}],
            },
            "status": {"phase": phase, "containerStatuses": [{"name": "main", "restartCount": 0,
                "state": {"terminated": {"exitCode": exit, "finishedAt": format!("2026-01-01T00:00:{:02}Z", fin_at % 60)}}}]},
        });
        if finalizer {
            v["metadata"]["finalizers"] = json!([crate::job::labels::JOB_TRACKING_FINALIZER]);
        }
        serde_json::from_value(v).unwrap()
    }

    fn job_u1() -> k8s_openapi::api::batch::v1::Job {
        serde_json::from_value(json!({
            "metadata": {"name": "j", "namespace": "ns", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {}},
        }))
        .unwrap()
    }

    /// What [`PodIndex::job_pods`] and [`PodIndex::to_release`] must give, from every pod.
    fn reference(
        pods: &BTreeMap<String, CachedPod>,
        job: &k8s_openapi::api::batch::v1::Job,
        uids: &[String],
    ) -> (Vec<String>, Settled, HashMap<String, bool>, Vec<String>) {
        let owned: Vec<&CachedPod> = pods.values().filter(|p| claim(job, *p) == Claim::Owned).collect();
        let (live, settled) = Settled::split(&owned, true);
        let live = live.iter().map(|p| pods::name(**p).to_string()).collect();
        let settled_uids = owned
            .iter()
            .filter(|p| is_settled(**p) && uids.iter().any(|u| u == pods::uid(**p)))
            .map(|p| (pods::uid(*p).to_string(), p.metadata.deletion_timestamp.is_some()))
            .collect();
        let release =
            pods.values().filter(|p| claim(job, *p) == Claim::Release).map(|p| pods::name(p).to_string()).collect();
        (live, settled, settled_uids, release)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

        /// Whatever happens to a Job's pods (finishing, losing or regaining the finalizer,
        /// relabelled away from the selector and back, deleted, a re-list in between), the live
        /// pods, the settled pods' summary, the settled uids and the pods to release are what
        /// they are computed from every pod.
        #[test]
        fn settled_pods_are_summarised_exactly(
            ops in proptest::collection::vec((0u8..8, 0u8..12, 0i64..50, 0i32..3), 1..60),
            relist_at in proptest::option::of(0usize..60),
        ) {
            let idx = PodIndex::default();
            let job = job_u1();
            let mut model: BTreeMap<String, CachedPod> = BTreeMap::new();
            let phases = ["Pending", "Running", "Succeeded", "Failed"];
            for (step, (op, n, t, exit)) in ops.into_iter().enumerate() {
                let name = format!("p{n:02}");
                let cur = model.get(&name).cloned();
                let next = match op {
                    // create or replace: any phase, with or without the finalizer
                    0..=2 => Some(job_pod(&name, phases[(t % 4) as usize], t % 3 != 0, "a", t, exit)),
                    // the finalizer removed
                    3 => cur.clone().map(|mut p| { p.metadata.finalizers = None; p }),
                    // relabelled (away from the selector or back)
                    4 => cur.clone().map(|p| job_pod(&name, p.phase(), pods::has_tracking_finalizer(&p), if t % 2 == 0 { "b" } else { "a" }, t, exit)),
                    // being deleted
                    5 => cur.clone().map(|mut p| { p.metadata.deletion_timestamp = Some(crate::job::pods::to_time(chrono::DateTime::UNIX_EPOCH)); p }),
                    _ => None,
                };
                match (op, next) {
                    (6 | 7, _) => {
                        if let Some(p) = model.remove(&name) {
                            idx.apply(&watcher::Event::Delete(p));
                        }
                    }
                    (_, Some(p)) => {
                        model.insert(name.clone(), p.clone());
                        idx.apply(&watcher::Event::Apply(p));
                    }
                    _ => {}
                }
                if relist_at == Some(step) {
                    idx.apply(&watcher::Event::Init);
                    for p in model.values() {
                        idx.apply(&watcher::Event::InitApply(p.clone()));
                    }
                    idx.apply(&watcher::Event::InitDone);
                }
                let uids: Vec<String> = (0..12).map(|i| format!("uid-p{i:02}")).collect();
                let (live, settled, settled_uids, release) = reference(&model, &job, &uids);
                let got = idx.job_pods(&job, "u1", uids.iter().map(String::as_str), true);
                let got_live: Vec<String> = got.live.iter().map(|p| pods::name(&**p).to_string()).collect();
                proptest::prop_assert_eq!(got_live, live);
                proptest::prop_assert_eq!(got.settled, settled);
                proptest::prop_assert_eq!(got.settled_uids, settled_uids);
                let mut got_release: Vec<String> = idx.to_release(&job, "u1").iter().map(|p| pods::name(&**p).to_string()).collect();
                got_release.sort();
                proptest::prop_assert_eq!(got_release, release);
                // Every pod is still found by name, with its uid, phase and owners.
                proptest::prop_assert_eq!(idx.state().len(), model.len());
                for p in model.values() {
                    let c = idx.pod("ns", pods::name(p)).unwrap();
                    proptest::prop_assert_eq!(pods::uid(&*c), pods::uid(p));
                    proptest::prop_assert_eq!(c.phase(), p.phase());
                    proptest::prop_assert_eq!(c.owner_references(), p.owner_references());
                    proptest::prop_assert_eq!(pods::has_tracking_finalizer(&*c), pods::has_tracking_finalizer(p));
                }
            }
        }
    }

    #[test]
    fn settled_pods_one_label_apart_keep_only_that_value_and_read_back_whole() {
        let idx = PodIndex::default();
        let labels = |app: &str, index: &str, z: &str| {
            Labels::new(
                [("app", app), (crate::job::labels::JOB_COMPLETION_INDEX, index), ("z", z)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let indexed = |i: usize, app: &str| {
            let mut p = job_pod(&format!("i{i}"), "Succeeded", false, app, i as i64, 0);
            p.labels = labels(app, &i.to_string(), "last");
            p
        };
        let mut odd = indexed(5, "a");
        odd.labels = labels("a", "05", "last");
        let mut elsewhere = indexed(6, "a");
        elsewhere.labels = labels("a", "0", "other");
        let pods: Vec<CachedPod> = (0..4).map(|i| indexed(i, "a")).chain([indexed(4, "b"), odd, elsewhere]).collect();
        for p in &pods {
            idx.apply(&watcher::Event::Apply(p.clone()));
        }
        {
            let maps = idx.live.read().unwrap();
            let kinds: Vec<&str> = (0..7)
                .map(|i| match &maps.pods[&(Arc::from("ns"), Arc::from(format!("i{i}").as_str())) as &Key].0 {
                    Entry::Settled(s) => match s.labels {
                        SettledLabels::Own(_) => "own",
                        SettledLabels::Index(_) => "index",
                        SettledLabels::Value(_) => "value",
                    },
                    Entry::Live(_) => panic!("i{i} is settled"),
                })
                .collect();
            // The first is the base; the next differ from it in the index only (a number, or a
            // value not in canonical decimal); i4 differs in two values, i6 in another one.
            assert_eq!(kinds, ["own", "index", "index", "index", "own", "value", "own"]);
        }
        for p in &pods {
            assert_eq!(idx.pod("ns", pods::name(p)).unwrap().labels, p.labels, "{}", pods::name(p));
        }
        // The claim check reads the values: the pod labelled `b` is released, the others claimed.
        let got = idx.job_pods(&job_u1(), "u1", ["uid-i0", "uid-i3", "uid-i4", "uid-i5"], false);
        assert_eq!(got.settled_uids.len(), 3);
        let release: Vec<String> =
            idx.to_release(&job_u1(), "u1").iter().map(|p| pods::name(&**p).to_string()).collect();
        assert_eq!(release, ["i4"]);
    }

    #[test]
    fn a_settled_pod_one_label_apart_is_no_bigger_than_with_a_label_list() {
        // A tagged 16-byte value: the base and the position are the group's. With them in every
        // pod (40 bytes) the pod is 152 bytes, 168 with its `Arc`'s counts: mimalloc's 192-byte
        // class instead of the 160 one it had with a 16-byte `Labels`.
        assert_eq!(std::mem::size_of::<SettledLabels>(), 24);
        assert!(std::mem::size_of::<SettledPod>() + 16 <= 160, "{}", std::mem::size_of::<SettledPod>());
    }

    #[test]
    fn a_settled_succeeded_pod_is_kept_compact_and_a_failed_one_whole() {
        let idx = PodIndex::default();
        let live = job_pod("live", "Succeeded", true, "a", 1, 0);
        let done = job_pod("done", "Succeeded", false, "a", 2, 0);
        let failed = job_pod("failed", "Failed", false, "a", 3, 1);
        for p in [&live, &done, &failed] {
            idx.apply(&watcher::Event::Apply(p.clone()));
        }
        let got = idx.job_pods(&job_u1(), "u1", ["uid-done", "uid-live"], true);
        assert_eq!(got.live.len(), 1, "only the pod holding the finalizer is live");
        assert_eq!(*got.live[0], live);
        assert_eq!(got.settled.failed.len(), 1);
        assert_eq!(*got.settled.failed[0], failed, "a failed pod keeps what a podFailurePolicy reads");
        assert_eq!(got.settled_uids, HashMap::from([("uid-done".to_string(), false)]));
        let compact = idx.pod("ns", "done").unwrap();
        assert!(compact.container_statuses.is_empty(), "the succeeded one is kept without its containers");
        assert_eq!(compact.metadata.resource_version.as_deref(), Some("7"));
        assert!(idx.pods("u1").iter().all(|p| pods::name(&**p) == "live"), "`pods` lists the live ones");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 500, ..Default::default() })]

        /// The kept scope (the selector as JSON) says "same" exactly when the namespace and the
        /// selector are equal, as the copy it replaces compared them.
        #[test]
        fn a_kept_scope_is_the_same_exactly_when_namespace_and_selector_are_equal(
            a in (0u8..2, proptest::option::of(selector())),
            b in (0u8..2, proptest::option::of(selector())),
        ) {
            use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
            let ns = |n: u8| ["ns", "n\"s"][n as usize];
            let (sa, sb): (Option<LabelSelector>, Option<LabelSelector>) = (a.1, b.1);
            let kept = super::Scope::of(ns(a.0), sa.as_ref());
            proptest::prop_assert_eq!(kept.is(ns(b.0), sb.as_ref()), ns(a.0) == ns(b.0) && sa == sb);
            proptest::prop_assert!(kept.is(ns(a.0), sa.as_ref()));
        }
    }

    /// Selectors from a small alphabet (so that equal ones come often), with the set-but-empty and
    /// unset variants of each field and strings that need escaping.
    fn selector()
    -> impl proptest::strategy::Strategy<Value = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector> {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
        use proptest::prelude::*;
        let word = || prop::sample::select(vec!["a", "b", "ab", "a\"b", ""]).prop_map(str::to_string);
        let labels = prop::option::of(prop::collection::btree_map(word(), word(), 0..3));
        let req = (
            word(),
            prop::sample::select(vec!["In", "NotIn", "Exists"]),
            prop::option::of(prop::collection::vec(word(), 0..3)),
        )
            .prop_map(|(key, op, values)| LabelSelectorRequirement { key, operator: op.to_string(), values });
        let exprs = prop::option::of(prop::collection::vec(req, 0..3));
        (labels, exprs).prop_map(|(match_labels, match_expressions)| LabelSelector { match_expressions, match_labels })
    }
}
