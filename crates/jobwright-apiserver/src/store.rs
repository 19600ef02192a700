//! Object storage: one global resourceVersion, ordered buckets, a bounded watch history.
//!
//! # Design
//!
//! Objects are kept as their serialized JSON, zstd-compressed at rest with a dictionary per
//! resource ([`super::compress`]; every read decompresses to the exact bytes written), next to a
//! small [`Meta`] index entry (labels, selectable fields, uid, owner references, resourceVersion).
//! Watchers get the uncompressed JSON of each change; the watch history keeps each change as
//! kept at rest (the blob the store holds, compressed; bounded in bytes and events) and
//! decompresses it for a watch that replays it. Buckets are keyed by
//! [`ResourceInfo::storage_key`] and hold a `BTreeMap<(namespace, name), Entry>`, so lists come out
//! sorted by namespace then name, as etcd's key order does.
//!
//! Every mutation goes through one function, [`Store::write`]: it checks the caller's expectation
//! (absent / at a resourceVersion / anything), stamps the next global resourceVersion into the
//! object, serializes it once, updates the index, appends the change to the history ring and
//! hands the same `Arc<WatchEvent>` to every watcher of that bucket. With `--data-dir` it first appends
//! the change to the write-ahead log ([`super::persist`]) and fsyncs it, before changing anything in
//! memory; a store rebuilt from a data directory starts with an empty watch history.
//!
//! Watchers get a bounded channel each; a watcher that falls behind by more than its buffer is
//! dropped (its channel closes and the HTTP watch ends, as kube-apiserver closes slow watchers)
//! instead of ever blocking a writer. A watch from a resourceVersion older than the kept history
//! is refused with upstream's 410 `too old resource version` Status.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::compress::{Codec, Packer, Stored};
use super::errors::StatusError;
use super::persist::{Record, Wal};
use super::registry::ResourceInfo;
use super::selector;

/// [`StoreConfig::history_bytes`] by default: 64 MiB.
pub const DEFAULT_HISTORY_BYTES: usize = 64 << 20;

/// Tunables of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How many events the watch history keeps (all resources together).
    pub history: usize,
    /// How many bytes of objects the watch history keeps (each event's object and the state it
    /// replaced, as kept at rest: compressed); the oldest events go first, the latest one always stays. Watches and lists
    /// from a version no longer kept get 410 `Expired`, as from a history full of events.
    pub history_bytes: usize,
    /// How many undelivered events one watcher may have before it is closed.
    pub watcher_buffer: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { history: 10_000, history_bytes: DEFAULT_HISTORY_BYTES, watcher_buffer: 10_000 }
    }
}

/// One owner reference, as indexed for the garbage collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    /// `uid` of the owner (shared with the owner's own index entry when the store holds it).
    pub uid: Arc<str>,
    /// `blockOwnerDeletion: true`.
    pub block: bool,
}

/// String pairs sorted by key, kept in one allocation: `key NUL value NUL key NUL value`
/// (a `(String, String)` per pair costs two allocations and 48 bytes of slot; an object's
/// selectable fields are a dozen pairs). Pairs where a string holds a NUL itself are kept as
/// owned pairs instead, so any string round-trips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pairs {
    /// Packed, NUL-separated (an empty string for no pairs).
    Packed(Box<str>),
    /// Owned pairs (a string contains a NUL).
    Owned(Box<[(String, String)]>),
}

impl Default for Pairs {
    fn default() -> Self {
        Self::Packed(Box::from(""))
    }
}

impl Pairs {
    /// From pairs sorted by key.
    pub fn from_sorted<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let pairs: Vec<(K, V)> = pairs.into_iter().collect();
        if pairs.iter().any(|(k, v)| k.as_ref().contains('\0') || v.as_ref().contains('\0')) {
            return Self::Owned(pairs.iter().map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string())).collect());
        }
        let len = pairs.iter().map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2).sum::<usize>();
        let mut buf = String::with_capacity(len);
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                buf.push('\0');
            }
            buf.push_str(k.as_ref());
            buf.push('\0');
            buf.push_str(v.as_ref());
        }
        Self::Packed(buf.into_boxed_str())
    }

    /// The pairs, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let (packed, owned) = match self {
            Self::Packed(s) if s.is_empty() => (None, None),
            Self::Packed(s) => (Some(s.split('\0')), None),
            Self::Owned(p) => (None, Some(p.iter())),
        };
        let mut packed = packed;
        let mut owned = owned;
        std::iter::from_fn(move || {
            if let Some(it) = packed.as_mut() {
                return Some((it.next()?, it.next()?));
            }
            owned.as_mut()?.next().map(|(k, v)| (k.as_str(), v.as_str()))
        })
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Packed(s) => s.is_empty(),
            Self::Owned(p) => p.is_empty(),
        }
    }
}

/// Selectable field values (see [`selector::selectable_fields`]). Every object of a resource has
/// the same field names, so they are kept once per set of names (interned for the process) and
/// each object keeps only its values, in one allocation: `value NUL value` (an Event's names
/// are 230 bytes of its 400). Values holding a NUL themselves are kept as owned pairs instead.
///
/// A value is written as itself, or as a short reference when that is smaller (an Event's values
/// were about 190 bytes, most of them repeated by every Event of the cluster):
/// - the value of a field that takes few distinct values (kind, reason, type, source,
///   namespace, phase, node... see [`interned_field`]) as `\u{1}` and its number in a
///   process-wide table of such values (bounded: [`MAX_VALUES`], then values are kept as
///   themselves);
/// - a value that is the start of another field's value (an Event's `involvedObject.name`, the
///   start of its own name) as `\u{2}`, that field's position and the length.
///
/// Numbers are written as one `char` each, offset by [`REF_BASE`] (never NUL). A value starting
/// with `\u{1}` or `\u{2}` itself makes the set owned pairs, as a NUL does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// The names (sorted, interned) and the values in their order, NUL-separated.
    Packed {
        /// The field names.
        names: &'static [Box<str>],
        /// The values.
        values: Box<str>,
    },
    /// Owned pairs (a value contains a NUL, or too many distinct name sets to intern).
    Owned(Box<[(String, String)]>),
}

impl Default for Fields {
    fn default() -> Self {
        Self::Owned(Box::default())
    }
}

/// Distinct name sets [`Fields`] interns at most (the built-in resources have a dozen; the
/// bound only guards against a bug making them unbounded).
const MAX_NAME_SETS: usize = 256;

/// The interned `names`, if there is room for them.
fn intern_names(names: &[&str]) -> Option<&'static [Box<str>]> {
    static SETS: Mutex<Vec<&'static [Box<str>]>> = Mutex::new(Vec::new());
    let mut sets = SETS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(set) = sets.iter().find(|set| set.iter().map(|n| &**n).eq(names.iter().copied())) {
        return Some(set);
    }
    if sets.len() >= MAX_NAME_SETS {
        return None;
    }
    let set: &'static [Box<str>] = Box::leak(names.iter().map(|n| Box::from(*n)).collect());
    sets.push(set);
    Some(set)
}

/// Distinct field values [`Fields`] interns at most, for the process (each at most
/// [`MAX_VALUE_LEN`] bytes: 256 KiB in all at most); later values are kept as themselves. Values
/// are never un-interned, so clients writing many distinct namespaces, node names or reasons fill
/// the table for good: answers stay the same, only the saving is lost (accepted).
const MAX_VALUES: usize = 4096;
/// Longest value interned.
const MAX_VALUE_LEN: usize = 63;
/// Added to a number written as a `char` in [`Fields`]' values (so it is never NUL, and one byte
/// up to 95).
const REF_BASE: u32 = 0x20;
/// Marks an interned value.
const INTERNED: char = '\u{1}';
/// Marks the start of another field's value.
const PREFIX: char = '\u{2}';

/// The process's interned values.
static VALUES: Interner<MAX_VALUES> = Interner::new();

// Every number of an interned value is one `char` of [`Fields`]' values (below the surrogates).
const _: () = assert!(REF_BASE as usize + MAX_VALUES < 0xD800);

/// At most `N` distinct values, each at most [`MAX_VALUE_LEN`] bytes, kept for the process and
/// numbered in the order they came: written once each, read by number without a lock.
struct Interner<const N: usize> {
    values: [std::sync::OnceLock<&'static str>; N],
    index: Mutex<Option<HashMap<&'static str, usize>>>,
}

impl<const N: usize> Interner<N> {
    const fn new() -> Self {
        Self { values: [const { std::sync::OnceLock::new() }; N], index: Mutex::new(None) }
    }

    /// The number of `value`, interning it if there is room (`None`: too long, or the table is
    /// full and `value` not in it).
    fn intern(&self, value: &str) -> Option<usize> {
        if value.len() > MAX_VALUE_LEN {
            return None;
        }
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let index = index.get_or_insert_with(HashMap::new);
        if let Some(&n) = index.get(value) {
            return Some(n);
        }
        let n = index.len();
        if n >= N {
            return None;
        }
        let kept: &'static str = Box::leak(Box::from(value));
        // Set before it is handed out; `n` is new, so the cell is empty.
        let _ = self.values[n].set(kept);
        index.insert(kept, n);
        Some(n)
    }

    /// The value numbered `n`, if one is.
    fn get(&self, n: usize) -> Option<&'static str> {
        self.values.get(n)?.get().copied()
    }
}

/// Whether a selectable field takes few distinct values in a cluster, so its values are
/// interned: not names, uids, resourceVersions, addresses or counts.
fn interned_field(name: &str) -> bool {
    matches!(
        name,
        "metadata.namespace"
            | "involvedObject.kind"
            | "involvedObject.namespace"
            | "involvedObject.apiVersion"
            | "involvedObject.fieldPath"
            | "reason"
            | "reportingComponent"
            | "source"
            | "type"
            | "spec.nodeName"
            | "spec.restartPolicy"
            | "spec.schedulerName"
            | "spec.serviceAccountName"
            | "spec.hostNetwork"
            | "spec.unschedulable"
            | "spec.type"
            | "status.phase"
            | "status.nominatedNodeName"
    )
}

/// `n` as one `char` of [`Fields`]' values.
fn ref_char(n: usize) -> Option<char> {
    u32::try_from(n).ok().and_then(|n| n.checked_add(REF_BASE)).filter(|c| *c < 0xD800).and_then(char::from_u32)
}

/// The number a `char` of [`Fields`]' values stands for.
fn ref_num(c: char) -> usize {
    (c as u32).saturating_sub(REF_BASE) as usize
}

impl Fields {
    /// From pairs sorted by name.
    pub fn from_sorted<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let pairs: Vec<(K, V)> = pairs.into_iter().collect();
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_ref()).collect();
        let plain = |v: &str| !v.contains('\0') && !v.starts_with([INTERNED, PREFIX]);
        let interned = if pairs.iter().all(|(_, v)| plain(v.as_ref())) { intern_names(&names) } else { None };
        let Some(names) = interned else {
            return Self::Owned(pairs.iter().map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string())).collect());
        };
        let values: Vec<&str> = pairs.iter().map(|(_, v)| v.as_ref()).collect();
        // Interned values first; what is left is written as itself or as the start of another
        // value written as itself.
        let tokens: Vec<Option<char>> = values
            .iter()
            .zip(names.iter())
            .map(|(v, n)| if v.len() > 2 && interned_field(n) { VALUES.intern(v).and_then(ref_char) } else { None })
            .collect();
        let literal = |j: usize| tokens[j].is_none();
        let mut out = String::with_capacity(values.iter().map(|v| v.len() + 1).sum());
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.push('\0');
            }
            if let Some(c) = tokens[i] {
                out.push(INTERNED);
                out.push(c);
                continue;
            }
            // The start of a longer value (or of an equal one written earlier): the longest such,
            // the first of equals, which is itself written as itself.
            let target = (v.len() > 4)
                .then(|| {
                    (0..values.len())
                        .filter(|&j| j != i && literal(j) && values[j].starts_with(v))
                        .filter(|&j| values[j].len() > v.len() || j < i)
                        .max_by(|&a, &b| values[a].len().cmp(&values[b].len()).then(b.cmp(&a)))
                })
                .flatten();
            match target.and_then(|j| Some((ref_char(j)?, ref_char(v.len())?))) {
                Some((j, len)) => {
                    out.push(PREFIX);
                    out.push(j);
                    out.push(len);
                }
                None => out.push_str(v),
            }
        }
        Self::Packed { names, values: out.into_boxed_str() }
    }

    /// The value of the `i`th token of packed `values`, resolved.
    fn resolve<'a>(values: &'a str, token: &'a str) -> &'a str {
        let mut chars = token.chars();
        match chars.next() {
            Some(INTERNED) => chars.next().and_then(|c| VALUES.get(ref_num(c))).unwrap_or_default(),
            Some(PREFIX) => {
                let (Some(j), Some(len)) = (chars.next(), chars.next()) else { return "" };
                // A target is always written as itself (made by `from_sorted`).
                values.split('\0').nth(ref_num(j)).and_then(|t| t.get(..ref_num(len))).unwrap_or_default()
            }
            _ => token,
        }
    }

    /// The pairs, in name order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&str, &str)> + '_> {
        match self {
            Self::Packed { names: [], .. } => Box::new(std::iter::empty()),
            Self::Packed { names, values } => {
                Box::new(names.iter().map(|n| &**n).zip(values.split('\0').map(|t| Self::resolve(values, t))))
            }
            Self::Owned(p) => Box::new(p.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        match self {
            Self::Packed { names, values } => {
                let i = names.iter().position(|n| &**n == name)?;
                values.split('\0').nth(i).map(|t| Self::resolve(values, t))
            }
            Self::Owned(p) => p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()),
        }
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Packed { names, .. } => names.is_empty(),
            Self::Owned(p) => p.is_empty(),
        }
    }
}

/// The index entry of one stored object: what lists, watches and the garbage collector filter on
/// without parsing the JSON.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// `metadata.labels`, sorted by key.
    pub labels: Pairs,
    /// Selectable fields (see [`selector::selectable_fields`]), sorted by name.
    pub fields: Fields,
    /// `metadata.uid` (shared with the store's uid index).
    pub uid: Arc<str>,
    /// `metadata.ownerReferences`.
    pub owners: Box<[OwnerRef]>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// Whether the object was shown, when written, to decode as its k8s-openapi type with no
    /// field skipped ([`Op::PutKnown`]): an update of it then decodes only what it changes
    /// ([`crate::validate::strict::check_known`]). `false` when not shown.
    pub known: bool,
}

impl Meta {
    /// Whether the labels pass `sel`.
    pub fn labels_match(&self, sel: &selector::LabelSelector) -> bool {
        sel.matches_lookup(&|k| self.labels.get(k))
    }

    /// Whether the selectable fields pass `sel`.
    pub fn fields_match(&self, sel: &selector::FieldSelector) -> bool {
        sel.matches_lookup(&|k| self.fields.get(k))
    }

    /// Index `obj` of resource `info`.
    pub fn of(info: &ResourceInfo, obj: &Value) -> Self {
        let md = &obj["metadata"];
        let mut labels: Vec<(&str, &str)> = md["labels"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())).collect())
            .unwrap_or_default();
        labels.sort();
        let owners = md["ownerReferences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| {
                        Some(OwnerRef {
                            uid: Arc::from(r["uid"].as_str()?),
                            block: r["blockOwnerDeletion"].as_bool().unwrap_or(false),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            labels: Pairs::from_sorted(labels),
            fields: Fields::from_sorted(selector::selectable_field_pairs(info, obj)),
            uid: Arc::from(md["uid"].as_str().unwrap_or_default()),
            owners,
            deleting: !md["deletionTimestamp"].is_null(),
            known: false,
        }
    }
}

/// `v` serialized, in an allocation of exactly its length: `Bytes::from(Vec)` keeps the vector's
/// spare capacity (up to half of it after amortized growth) for as long as the object is stored,
/// and `shrink_to_fit` may keep the block (mimalloc does when at least half of it is used).
///
/// Serialized into a buffer the thread keeps (no regrowth from 128 bytes per write, under the
/// store's lock), then copied out once.
fn json_bytes(v: &Value) -> Bytes {
    /// Largest buffer a thread keeps between writes (larger objects get a fresh one each time).
    const KEEP: usize = 64 * 1024;
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        buf.clear();
        let out = match serde_json::to_writer(&mut *buf, v) {
            Ok(()) => Bytes::copy_from_slice(&buf),
            Err(_) => Bytes::new(),
        };
        if buf.capacity() > KEEP {
            *buf = Vec::new();
        }
        out
    })
}

/// One stored object.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The object's JSON, with `metadata.resourceVersion` = `rv`, as kept at rest (compressed).
    stored: Stored,
    /// The resourceVersion of the last write.
    pub rv: u64,
    /// Index data.
    pub meta: Arc<Meta>,
}

impl Entry {
    /// The object's JSON (decompressed on each call: call it once per read).
    pub fn bytes(&self) -> Bytes {
        self.stored.json()
    }

    /// The length of [`Entry::bytes`], without decompressing.
    pub fn json_len(&self) -> usize {
        self.stored.json_len()
    }
}

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The wire name: `ADDED`, `MODIFIED`, `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, shared by every watcher.
#[derive(Debug)]
pub struct WatchEvent {
    /// What happened.
    pub kind: EventType,
    /// The bucket (storage key).
    pub key: Arc<str>,
    /// Namespace and name: the store's own key of the object (shared, not a copy per event).
    pub id: Id,
    /// The resourceVersion of this change.
    pub rv: u64,
    /// The object after the change (the last state for DELETED), serialized.
    pub object: Bytes,
    /// Index data of `object`.
    pub meta: Arc<Meta>,
    /// The stored state this change replaced (MODIFIED and DELETED), as kept at rest (read it
    /// with [`Stored::json`]), with its index data: for selector transitions, and to rebuild a
    /// list as it was before this change.
    pub prev: Option<(Stored, Arc<Meta>)>,
    /// The resourceVersion of `prev` (0 without one).
    pub prev_rv: u64,
}

impl WatchEvent {
    /// Namespace, `""` for cluster-scoped objects.
    pub fn namespace(&self) -> &str {
        self.id.ns()
    }

    /// Name.
    pub fn name(&self) -> &str {
        self.id.name()
    }
}

/// One change as the watch history keeps it: [`WatchEvent`] with the object as kept at rest (for
/// a put, the very blob the store holds, so the history keeps little of its own). A watch that
/// replays the history gets it decompressed ([`Change::event`]).
#[derive(Debug, Clone)]
struct Change {
    kind: EventType,
    key: Arc<str>,
    id: Id,
    rv: u64,
    object: Stored,
    meta: Arc<Meta>,
    prev: Option<(Stored, Arc<Meta>)>,
    prev_rv: u64,
}

impl Change {
    /// The object bytes this change is counted for: the object and the state it replaced, as
    /// kept at rest.
    fn size(&self) -> usize {
        self.object.size() + self.prev.as_ref().map_or(0, |(stored, _)| stored.size())
    }

    /// The watch event, its object decompressed.
    fn event(self) -> WatchEvent {
        WatchEvent {
            kind: self.kind,
            key: self.key,
            id: self.id,
            rv: self.rv,
            object: self.object.json(),
            meta: self.meta,
            prev: self.prev,
            prev_rv: self.prev_rv,
        }
    }
}

/// What [`Store::write`] expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing stored under that name (a create).
    Absent,
    /// An object at exactly this resourceVersion (an update or delete after a read).
    Rv(u64),
    /// An object at any version.
    Exists,
}

/// What [`Store::write`] does.
#[derive(Debug, Clone)]
pub enum Op {
    /// Store this object (create or replace).
    Put(Value),
    /// [`Op::Put`] of an object shown to decode as its k8s-openapi type with no field skipped
    /// (recorded as [`Meta::known`]).
    PutKnown(Value),
    /// Remove the object; watchers get its last stored state.
    Delete,
    /// Remove the object; watchers get this final state (an update that completes a deletion,
    /// e.g. the last finalizer removed).
    DeleteAs(Value),
}

/// Why [`Store::write`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Expected absent, found an object.
    AlreadyExists,
    /// Expected an object, found none.
    NotFound,
    /// Found another resourceVersion (the current one).
    Conflict(u64),
}

/// A committed write.
#[derive(Debug, Clone)]
pub struct Written {
    /// The new resourceVersion.
    pub rv: u64,
    /// The stored bytes (for a delete: the final object).
    pub bytes: Bytes,
    /// The stored object as a value, for a put (saves callers a parse).
    pub object: Option<Value>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFrom {
    /// Synthetic ADDED events for the current objects, then changes (resourceVersion "" or "0",
    /// or `sendInitialEvents=true`).
    Snapshot,
    /// Changes after this resourceVersion, replayed from the history.
    Rv(u64),
    /// Changes from now on.
    Now,
}

/// A registered watch: the initial events and the live channel.
pub struct WatchStart {
    /// Initial events (synthetic ADDEDs or replayed history), filtered to the bucket/namespace.
    pub initial: Initial,
    /// The resourceVersion the initial events bring the watcher to.
    pub rv: u64,
    /// Live events; closes when the watcher falls behind.
    pub rx: mpsc::Receiver<Arc<WatchEvent>>,
}

/// A watch's initial events, each decompressed only when it is taken: a replay of the whole
/// history, or the snapshot of a large bucket, is never held uncompressed at once (the history is
/// bounded in stored, compressed bytes), and what was sent can be freed as the watch goes on.
#[derive(Clone)]
pub struct Initial {
    replay: std::vec::IntoIter<Change>,
    snapshot: std::vec::IntoIter<(Id, Entry)>,
    key: Arc<str>,
    last_rv: Option<u64>,
}

impl Initial {
    /// The resourceVersion of the last initial event, if there is one.
    pub fn last_rv(&self) -> Option<u64> {
        self.last_rv
    }
}

impl Iterator for Initial {
    type Item = Arc<WatchEvent>;

    fn next(&mut self) -> Option<Arc<WatchEvent>> {
        if let Some(c) = self.replay.next() {
            return Some(Arc::new(c.event()));
        }
        let (id, e) = self.snapshot.next()?;
        Some(Arc::new(WatchEvent {
            kind: EventType::Added,
            key: self.key.clone(),
            id,
            rv: e.rv,
            object: e.bytes(),
            meta: e.meta,
            prev: None,
            prev_rv: 0,
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.replay.len() + self.snapshot.len();
        (n, Some(n))
    }
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// Matching objects, sorted by namespace/name.
    pub items: Vec<Entry>,
    /// The store's resourceVersion when listed.
    pub rv: u64,
    /// `(namespace, name)` of the last item returned when more remain.
    pub next: Option<(String, String)>,
    /// How many more matching items remain after this page.
    pub remaining: usize,
}

/// Why [`Store::list_at`] cannot serve a resourceVersion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListAtError {
    /// Older than the kept history (the highest version no longer in it).
    Compacted { compacted: u64 },
    /// Newer than the store (its current version).
    Future { current: u64 },
}

struct Watcher {
    namespace: Option<String>,
    tx: mpsc::Sender<Arc<WatchEvent>>,
}

/// An object's `(namespace, name)` in one shared allocation (the two strings back to back, after
/// the namespace's length), held by its bucket's map, the uid and owner indexes, the history, the
/// watch events and their readers (the Event TTL queue) without a copy each. Two words: the
/// length is the allocation's first character, not a field of its own, since every object is
/// named by several of these (a `usize` beside the pointer was 8 bytes each, about 35 per object).
/// Compares, orders and hashes as the pair, so lists come out by namespace, then name.
#[derive(Clone)]
pub struct Id {
    /// The namespace's length as one `char` (below U+D800; a longer namespace, which validation
    /// never lets through but a request may name: [`LONG_NS`], then the length in decimal and
    /// `:`), then the namespace, then the name.
    joined: Arc<str>,
}

/// [`Id`]'s marker of a namespace length written in decimal.
const LONG_NS: char = '\u{E000}';

impl Id {
    /// A new id (its own allocation; the store's ids come with its watch events).
    pub fn new(namespace: &str, name: &str) -> Self {
        let len = namespace.len();
        let mut s = String::with_capacity(len + name.len() + 4);
        match u32::try_from(len).ok().filter(|n| *n < 0xD800).and_then(char::from_u32) {
            Some(c) => s.push(c),
            None => {
                s.push(LONG_NS);
                s.push_str(&len.to_string());
                s.push(':');
            }
        }
        s.push_str(namespace);
        s.push_str(name);
        Self { joined: Arc::from(s) }
    }

    /// Namespace, `""` for cluster-scoped objects.
    pub fn ns(&self) -> &str {
        self.pair().0
    }

    /// Name.
    pub fn name(&self) -> &str {
        self.pair().1
    }

    /// Whether both are the same allocation (a clone of one another), not only equal.
    pub fn shares(&self, other: &Id) -> bool {
        Arc::ptr_eq(&self.joined, &other.joined)
    }

    fn pair(&self) -> (&str, &str) {
        let mut chars = self.joined.chars();
        let first = chars.next().unwrap_or_default();
        let rest = chars.as_str();
        let (len, rest) = if first == LONG_NS {
            let (digits, rest) = rest.split_once(':').unwrap_or_default();
            (digits.parse().unwrap_or_default(), rest)
        } else {
            (first as usize, rest)
        };
        // Made by `new`: `len` is a char boundary of `rest`.
        match (rest.get(..len), rest.get(len..)) {
            (Some(ns), Some(name)) => (ns, name),
            _ => ("", rest),
        }
    }

    fn owned(&self) -> (String, String) {
        (self.ns().to_string(), self.name().to_string())
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        // The same length prefix and the same bytes: the same pair.
        self.joined == other.joined
    }
}

impl Eq for Id {}

impl PartialOrd for Id {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Id {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.pair().cmp(&other.pair())
    }
}

impl std::hash::Hash for Id {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.joined.hash(state)
    }
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.pair().fmt(f)
    }
}

/// Made by [`bucket_mut`] only (it sets the key).
#[derive(Default)]
struct Bucket {
    /// The storage key, shared by every index and history entry of the bucket's objects.
    key: Arc<str>,
    objects: BTreeMap<Id, Entry>,
    watchers: Vec<Watcher>,
    /// How this resource's objects are compressed at rest.
    codec: Codec,
    /// How many writes (puts, deletes, restores) the bucket has had: any change moves it.
    writes: u64,
}

struct Inner {
    rv: u64,
    buckets: HashMap<String, Bucket>,
    history: VecDeque<Change>,
    /// The bytes the history's objects take at rest ([`Change::size`] summed).
    history_size: usize,
    /// The highest resourceVersion no longer in the history.
    compacted: u64,
    /// uid (shared with the object's [`Meta`]) -> (storage key, namespace/name)
    uids: HashMap<Arc<str>, (Arc<str>, Id)>,
    /// owner uid -> dependents (storage key, namespace/name)
    dependents: HashMap<Arc<str>, HashSet<(Arc<str>, Id)>>,
    /// Listeners told about every committed write (the garbage collector).
    listeners: Vec<mpsc::UnboundedSender<Arc<WatchEvent>>>,
    /// The write-ahead log, with `--data-dir`.
    wal: Option<Wal>,
    /// Compresses objects at rest (writes hold the lock).
    packer: Packer,
}

/// The object store. Cheap to share behind an `Arc`.
pub struct Store {
    inner: Mutex<Inner>,
    config: StoreConfig,
}

impl Store {
    /// An empty store.
    pub fn new(config: StoreConfig) -> Self {
        Self {
            inner: Mutex::new(Inner {
                rv: 0,
                buckets: HashMap::new(),
                history: VecDeque::with_capacity(config.history.min(100_000)),
                history_size: 0,
                compacted: 0,
                uids: HashMap::new(),
                dependents: HashMap::new(),
                listeners: Vec::new(),
                wal: None,
                packer: Packer::default(),
            }),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current (latest) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub fn get(&self, key: &str, namespace: &str, name: &str) -> Option<Entry> {
        let inner = self.lock();
        inner.buckets.get(key)?.objects.get(&Id::new(namespace, name)).cloned()
    }

    /// Where an object with this uid lives: `(storage key, namespace, name)`.
    pub fn locate_uid(&self, uid: &str) -> Option<(String, String, String)> {
        let inner = self.lock();
        inner.uids.get(uid).map(|(k, id)| (k.to_string(), id.ns().to_string(), id.name().to_string()))
    }

    /// The objects whose ownerReferences name `owner_uid`: `(storage key, namespace, name)`.
    pub fn dependents_of(&self, owner_uid: &str) -> Vec<(String, String, String)> {
        let inner = self.lock();
        let mut out: Vec<_> = inner
            .dependents
            .get(owner_uid)
            .map(|s| s.iter().map(|(k, id)| (k.to_string(), id.ns().to_string(), id.name().to_string())).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Every `(namespace, name)` in a bucket, optionally in one namespace.
    pub fn keys(&self, key: &str, namespace: Option<&str>) -> Vec<(String, String)> {
        let inner = self.lock();
        let Some(b) = inner.buckets.get(key) else { return vec![] };
        b.objects.keys().filter(|id| namespace.is_none_or(|n| n == id.ns())).map(Id::owned).collect()
    }

    /// How many writes each bucket has had ([`Store::write`]s, failed ones not counted, and
    /// restores), read at once: equal counts mean no change to any of them in between.
    pub fn writes_of<const N: usize>(&self, keys: [&str; N]) -> [u64; N] {
        let inner = self.lock();
        keys.map(|k| inner.buckets.get(k).map_or(0, |b| b.writes))
    }

    /// Every bucket key that has objects.
    pub fn bucket_keys(&self) -> Vec<String> {
        let inner = self.lock();
        inner.buckets.iter().filter(|(_, b)| !b.objects.is_empty()).map(|(k, _)| k.clone()).collect()
    }

    /// List a bucket, optionally one namespace, after `start` (exclusive), keeping objects that
    /// pass `filter`, at most `limit` of them (0 = all), at the current resourceVersion.
    pub fn list(
        &self,
        key: &str,
        namespace: Option<&str>,
        start: Option<(String, String)>,
        limit: usize,
        filter: &dyn Fn(&Meta) -> bool,
    ) -> ListPage {
        match self.list_at(key, namespace, start, limit, filter, None) {
            Ok(page) => page,
            Err(_) => unreachable!("a list at the current resourceVersion is always available"),
        }
    }

    /// [`Store::list`] as the bucket was at resourceVersion `at` (`None`: now).
    ///
    /// An older state is rebuilt from the watch history: every change after `at` is undone with
    /// the state it replaced (`WatchEvent::prev`; an ADDED means absent). So a paginated list is
    /// one snapshot (every page at the first page's resourceVersion, as kube-apiserver serves
    /// them from etcd's MVCC) without keeping anything beyond the bounded history. A version
    /// older than the history is [`ListAtError::Compacted`], a future one [`ListAtError::Future`].
    pub fn list_at(
        &self,
        key: &str,
        namespace: Option<&str>,
        start: Option<(String, String)>,
        limit: usize,
        filter: &dyn Fn(&Meta) -> bool,
        at: Option<u64>,
    ) -> Result<ListPage, ListAtError> {
        let inner = self.lock();
        let rv = at.unwrap_or(inner.rv);
        if rv > inner.rv {
            return Err(ListAtError::Future { current: inner.rv });
        }
        if rv < inner.compacted {
            return Err(ListAtError::Compacted { compacted: inner.compacted });
        }
        let in_ns = |ns: &str| namespace.is_none_or(|n| n == ns);
        let start = start.map(|(ns, name)| Id::new(&ns, &name));
        let after_start = |id: &Id| start.as_ref().is_none_or(|s| id > s);
        // The state at `rv` of every object changed since: the state the first later change
        // replaced.
        let mut undo: BTreeMap<Id, Option<Entry>> = BTreeMap::new();
        let first_later = inner.history.partition_point(|e| e.rv <= rv);
        for e in inner.history.range(first_later..) {
            if &*e.key != key || !in_ns(e.id.ns()) {
                continue;
            }
            let id = e.id.clone();
            if !after_start(&id) || undo.contains_key(&id) {
                continue;
            }
            let before = match e.kind {
                EventType::Added => None,
                EventType::Modified | EventType::Deleted => e.prev.as_ref().map(|(stored, meta)| Entry {
                    stored: stored.clone(),
                    rv: e.prev_rv,
                    meta: meta.clone(),
                }),
            };
            undo.insert(id, before);
        }
        let empty = BTreeMap::new();
        let objects = inner.buckets.get(key).map_or(&empty, |b| &b.objects);
        let lower = match (&start, namespace) {
            (Some(s), _) => Bound::Excluded(s.clone()),
            (None, Some(ns)) => Bound::Included(Id::new(ns, "")),
            (None, None) => Bound::Unbounded,
        };
        // Current objects untouched since `rv`, merged in key order with the undone ones.
        let mut current = objects.range((lower, Bound::Unbounded)).filter(|(id, _)| !undo.contains_key(*id)).peekable();
        let mut restored = undo.iter().filter_map(|(id, e)| e.as_ref().map(|e| (id, e))).peekable();
        let merged = std::iter::from_fn(|| match (current.peek(), restored.peek()) {
            (Some(c), Some(r)) if r.0 < c.0 => restored.next(),
            (Some(_), _) => current.next(),
            (None, _) => restored.next(),
        });
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0;
        for (id, e) in merged {
            if !in_ns(id.ns()) {
                break;
            }
            if !filter(&e.meta) {
                continue;
            }
            if limit > 0 && items.len() >= limit {
                remaining += 1;
                continue;
            }
            items.push(e.clone());
            if limit > 0 && items.len() == limit {
                next = Some(id.owned());
            }
        }
        if remaining == 0 {
            next = None;
        }
        Ok(ListPage { items, rv, next, remaining })
    }

    /// The one mutation function. Applies `op` to `(key, namespace, name)` if `expect` holds,
    /// stamping the next resourceVersion into the object, and notifies watchers.
    pub fn write(
        &self,
        info: &ResourceInfo,
        namespace: &str,
        name: &str,
        expect: Expect,
        op: Op,
    ) -> Result<Written, WriteError> {
        let key = info.storage_key.as_str();
        let mut inner = self.lock();
        let probe = Id::new(namespace, name);
        // The stored key when there is one: the indexes share its allocation.
        let (id, current) = match inner.buckets.get(key).and_then(|b| b.objects.get_key_value(&probe)) {
            Some((id, e)) => (id.clone(), Some(e.clone())),
            None => (probe, None),
        };
        match (expect, &current) {
            (Expect::Absent, Some(_)) => return Err(WriteError::AlreadyExists),
            (Expect::Rv(_) | Expect::Exists, None) => return Err(WriteError::NotFound),
            (Expect::Rv(want), Some(cur)) if cur.rv != want => return Err(WriteError::Conflict(cur.rv)),
            _ => {}
        }
        if !matches!(op, Op::Put(_) | Op::PutKnown(_)) && current.is_none() {
            return Err(WriteError::NotFound);
        }
        let rv = inner.rv + 1;
        let bucket = bucket_mut(&mut inner.buckets, key);
        bucket.writes += 1;
        let key_arc = bucket.key.clone();
        let mut stored_value = None;
        // The object as kept at rest, for the history.
        let at_rest;
        let known = matches!(op, Op::PutKnown(_));
        let event = match op {
            Op::Put(mut obj) | Op::PutKnown(mut obj) => {
                obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                let bytes = json_bytes(&obj);
                let mut meta = Meta::of(info, &obj);
                meta.known = known;
                if let Some(cur) = current.as_ref().filter(|c| c.meta.uid == meta.uid) {
                    // One allocation for the uid, however often the object is written.
                    meta.uid = cur.meta.uid.clone();
                }
                share_owner_uids(&inner, &mut meta, current.as_ref().map(|c| &*c.meta));
                let meta = Arc::new(meta);
                log(&mut inner, || Record::Put {
                    key: key.to_string(),
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    rv,
                    object: bytes.to_vec(),
                });
                if let Some(cur) = &current {
                    unindex(&mut inner, &key_arc, &id, &cur.meta);
                }
                index(&mut inner, &key_arc, &id, &meta);
                let Inner { buckets, packer, .. } = &mut *inner;
                let bucket = bucket_mut(buckets, key);
                let stored = packer.pack(&mut bucket.codec, &bytes);
                at_rest = stored.clone();
                bucket.objects.insert(id.clone(), Entry { stored, rv, meta: meta.clone() });
                stored_value = Some(obj);
                WatchEvent {
                    kind: if current.is_some() { EventType::Modified } else { EventType::Added },
                    key: key_arc,
                    id: id.clone(),
                    rv,
                    object: bytes,
                    meta,
                    prev_rv: current.as_ref().map_or(0, |c| c.rv),
                    prev: current.map(|c| (c.stored, c.meta)),
                }
            }
            Op::Delete | Op::DeleteAs(_) => {
                let cur = current.expect("checked above");
                log(&mut inner, || Record::Delete {
                    key: key.to_string(),
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    rv,
                });
                unindex(&mut inner, &key_arc, &id, &cur.meta);
                if let Some(b) = inner.buckets.get_mut(key) {
                    b.objects.remove(&id);
                }
                // The final state carries the deletion's resourceVersion, as upstream.
                let mut last: Value = match op {
                    Op::DeleteAs(v) => v,
                    _ => serde_json::from_slice(&cur.bytes()).unwrap_or(Value::Null),
                };
                last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                let bytes = json_bytes(&last);
                let Inner { buckets, packer, .. } = &mut *inner;
                let bucket = bucket_mut(buckets, key);
                at_rest = packer.pack(&mut bucket.codec, &bytes);
                WatchEvent {
                    kind: EventType::Deleted,
                    key: key_arc,
                    id: id.clone(),
                    rv,
                    object: bytes,
                    meta: cur.meta.clone(),
                    prev: Some((cur.stored, cur.meta)),
                    prev_rv: cur.rv,
                }
            }
        };
        inner.rv = rv;
        let event = Arc::new(event);
        let written = Written { rv, bytes: event.object.clone(), object: stored_value };
        if self.config.history > 0 {
            let change = Change {
                kind: event.kind,
                key: event.key.clone(),
                id,
                rv,
                object: at_rest,
                meta: event.meta.clone(),
                prev: event.prev.clone(),
                prev_rv: event.prev_rv,
            };
            let size = change.size();
            while inner.history.len() >= self.config.history
                || (!inner.history.is_empty() && inner.history_size + size > self.config.history_bytes)
            {
                if let Some(old) = inner.history.pop_front() {
                    inner.history_size -= old.size();
                    inner.compacted = old.rv;
                }
            }
            inner.history_size += size;
            inner.history.push_back(change);
        } else {
            inner.compacted = rv;
        }
        if let Some(b) = inner.buckets.get_mut(key) {
            b.watchers.retain(|w| {
                if w.namespace.as_deref().is_some_and(|ns| ns != event.namespace()) {
                    return !w.tx.is_closed();
                }
                // A full buffer drops the watcher: writers never wait for readers.
                w.tx.try_send(event.clone()).is_ok()
            });
        }
        inner.listeners.retain(|l| l.send(event.clone()).is_ok());
        compact_if_due(&mut inner);
        Ok(written)
    }

    /// Put back an object recovered from a data directory, as stored at `rv` (no watch event, no
    /// log record). Call [`Store::recovered`] when done.
    pub fn restore(
        &self,
        info: &ResourceInfo,
        namespace: &str,
        name: &str,
        rv: u64,
        bytes: Bytes,
    ) -> Result<(), String> {
        let obj: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}/{namespace}/{name}: stored object is not JSON: {e}", info.storage_key))?;
        let mut meta = Meta::of(info, &obj);
        let id = Id::new(namespace, name);
        let mut inner = self.lock();
        share_owner_uids(&inner, &mut meta, None);
        let meta = Arc::new(meta);
        let bucket = bucket_mut(&mut inner.buckets, &info.storage_key);
        bucket.writes += 1;
        let key_arc = bucket.key.clone();
        index(&mut inner, &key_arc, &id, &meta);
        let Inner { buckets, packer, .. } = &mut *inner;
        let bucket = bucket_mut(buckets, &info.storage_key);
        let stored = packer.pack(&mut bucket.codec, &bytes);
        bucket.objects.insert(id, Entry { stored, rv, meta });
        Ok(())
    }

    /// Finish a recovery: resourceVersions continue after `rv` (watches from older ones get a 410),
    /// and every write from now on goes to `wal` first.
    pub fn recovered(&self, rv: u64, wal: Wal) {
        let mut inner = self.lock();
        inner.rv = inner.rv.max(rv);
        inner.compacted = inner.rv;
        inner.wal = Some(wal);
    }

    /// Register a watch on a bucket (optionally one namespace) starting at `from`.
    ///
    /// A resourceVersion older than the history is a 410 `Expired` Status, worded as upstream's
    /// watch cache.
    pub fn watch(&self, key: &str, namespace: Option<&str>, from: WatchFrom) -> Result<WatchStart, StatusError> {
        let mut inner = self.lock();
        let rv = inner.rv;
        let in_ns = |ns: &str| namespace.is_none_or(|n| n == ns);
        let mut snapshot: Vec<(Id, Entry)> = vec![];
        let replay: Vec<Change> = match from {
            WatchFrom::Now => vec![],
            WatchFrom::Rv(from) => {
                if from < inner.compacted {
                    return Err(StatusError::expired(format!(
                        "too old resource version: {from} ({})",
                        inner.compacted
                    )));
                }
                inner.history.iter().filter(|e| e.rv > from && &*e.key == key && in_ns(e.id.ns())).cloned().collect()
            }
            WatchFrom::Snapshot => {
                snapshot = inner
                    .buckets
                    .get(key)
                    .map(|b| {
                        b.objects
                            .iter()
                            .filter(|(id, _)| in_ns(id.ns()))
                            .map(|(id, e)| (id.clone(), e.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                vec![]
            }
        };
        let (tx, rx) = mpsc::channel(self.config.watcher_buffer.max(1));
        bucket_mut(&mut inner.buckets, key).watchers.push(Watcher { namespace: namespace.map(str::to_string), tx });
        drop(inner);
        // Decompressed after the lock is released, one event at a time as the watch sends them:
        // a large snapshot or replay neither stalls writers nor sits in memory uncompressed.
        let last_rv = snapshot.last().map(|(_, e)| e.rv).or(replay.last().map(|c| c.rv));
        let initial =
            Initial { replay: replay.into_iter(), snapshot: snapshot.into_iter(), key: Arc::from(key), last_rv };
        Ok(WatchStart { initial, rv, rx })
    }

    /// Be told about every committed write (used by the garbage collector).
    pub fn subscribe_all(&self) -> mpsc::UnboundedReceiver<Arc<WatchEvent>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().listeners.push(tx);
        rx
    }

    /// Number of stored objects (all buckets).
    pub fn len(&self) -> usize {
        self.lock().buckets.values().map(|b| b.objects.len()).sum()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total size of the stored JSON, in bytes (for the memory benchmark).
    pub fn json_bytes(&self) -> usize {
        self.lock().buckets.values().flat_map(|b| b.objects.values()).map(|e| e.stored.json_len()).sum()
    }

    /// Total size of the stored objects as kept at rest (compressed), in bytes.
    pub fn stored_bytes(&self) -> usize {
        self.lock().buckets.values().flat_map(|b| b.objects.values()).map(|e| e.stored.size()).sum()
    }
}

/// Append a record to the log, if any, before the change is applied. A log that cannot be written
/// stops the process (as etcd does on a WAL write failure): acknowledging a write that is not
/// durable, or diverging memory from disk, would break the crash-safety promise.
fn log(inner: &mut Inner, rec: impl FnOnce() -> Record) {
    if let Some(wal) = inner.wal.as_mut()
        && let Err(e) = wal.append(&rec())
    {
        tracing::error!(error = %e, "cannot write the write-ahead log; stopping");
        eprintln!("jobwright: cannot write the write-ahead log: {e}");
        std::process::exit(70);
    }
}

/// Snapshot the live set and reset the log when it has grown too large.
fn compact_if_due(inner: &mut Inner) {
    let Inner { wal, buckets, rv, .. } = inner;
    let Some(wal) = wal.as_mut().filter(|w| w.wants_compaction()) else { return };
    let live = buckets
        .iter()
        .flat_map(|(key, b)| b.objects.iter().map(move |(id, e)| (key.as_str(), id.ns(), id.name(), e.rv, e.bytes())));
    if let Err(e) = wal.compact(*rv, live) {
        // The old snapshot and the full log are still intact: keep going, retry later.
        tracing::error!(error = %e, "log compaction failed");
    }
}

/// The bucket of `key`, made (with its shared key) if missing.
fn bucket_mut<'a>(buckets: &'a mut HashMap<String, Bucket>, key: &str) -> &'a mut Bucket {
    if !buckets.contains_key(key) {
        buckets.insert(key.to_string(), Bucket { key: Arc::from(key), ..Bucket::default() });
    }
    buckets.get_mut(key).expect("just made")
}

/// Each owner reference's uid as one shared allocation: the owner's own when the store holds
/// it (a wide Job's pods all name one Job), else the one the object's previous state holds.
fn share_owner_uids(inner: &Inner, meta: &mut Meta, prev: Option<&Meta>) {
    for o in meta.owners.iter_mut() {
        let shared = inner
            .uids
            .get_key_value(&*o.uid)
            .map(|(uid, _)| uid.clone())
            .or_else(|| prev.and_then(|p| p.owners.iter().find(|p| p.uid == o.uid).map(|p| p.uid.clone())));
        if let Some(uid) = shared {
            o.uid = uid;
        }
    }
}

fn index(inner: &mut Inner, key: &Arc<str>, id: &Id, meta: &Meta) {
    if !meta.uid.is_empty() {
        inner.uids.insert(meta.uid.clone(), (key.clone(), id.clone()));
    }
    for o in &meta.owners {
        inner.dependents.entry(o.uid.clone()).or_default().insert((key.clone(), id.clone()));
    }
}

fn unindex(inner: &mut Inner, key: &Arc<str>, id: &Id, meta: &Meta) {
    if !meta.uid.is_empty() {
        inner.uids.remove(&meta.uid);
    }
    for o in &meta.owners {
        if let Some(set) = inner.dependents.get_mut(&o.uid) {
            set.remove(&(key.clone(), id.clone()));
            if set.is_empty() {
                inner.dependents.remove(&o.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default", "uid": name}})
    }

    #[test]
    fn resource_versions_increase_globally_and_conflicts_are_detected() {
        let reg = Registry::builtin();
        let info = reg.get("", "v1", "configmaps").unwrap();
        let s = Store::new(StoreConfig::default());
        let a = s.write(&info, "default", "a", Expect::Absent, Op::Put(cm("a"))).unwrap();
        let b = s.write(&info, "default", "b", Expect::Absent, Op::Put(cm("b"))).unwrap();
        assert!(b.rv > a.rv);
        assert_eq!(
            s.write(&info, "default", "a", Expect::Absent, Op::Put(cm("a"))).unwrap_err(),
            WriteError::AlreadyExists
        );
        assert_eq!(
            s.write(&info, "default", "a", Expect::Rv(a.rv + 100), Op::Put(cm("a"))).unwrap_err(),
            WriteError::Conflict(a.rv)
        );
        let stored: Value = serde_json::from_slice(&s.get(&info.storage_key, "default", "a").unwrap().bytes()).unwrap();
        assert_eq!(stored["metadata"]["resourceVersion"], a.rv.to_string());
    }

    #[test]
    fn lists_are_sorted_and_paginate() {
        let reg = Registry::builtin();
        let info = reg.get("", "v1", "configmaps").unwrap();
        let s = Store::new(StoreConfig::default());
        for n in ["c", "a", "b"] {
            s.write(&info, "default", n, Expect::Absent, Op::Put(cm(n))).unwrap();
        }
        let p = s.list(&info.storage_key, Some("default"), None, 2, &|_| true);
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.remaining, 1);
        assert_eq!(p.next, Some(("default".into(), "b".into())));
        let p2 = s.list(&info.storage_key, Some("default"), p.next, 2, &|_| true);
        assert_eq!(p2.items.len(), 1);
        assert!(p2.next.is_none());
        assert!(s.list(&info.storage_key, Some("other"), None, 0, &|_| true).items.is_empty());
    }

    fn cm_data(name: &str, v: &str) -> Value {
        let mut o = cm(name);
        o["data"] = json!({"v": v});
        o
    }

    fn listed(s: &Store, info: &ResourceInfo, at: Option<u64>) -> Vec<(String, String)> {
        let page = s.list_at(&info.storage_key, Some("default"), None, 0, &|_| true, at).unwrap();
        page.items
            .iter()
            .map(|e| {
                let v: Value = serde_json::from_slice(&e.bytes()).unwrap();
                assert_eq!(v["metadata"]["resourceVersion"], e.rv.to_string(), "an entry's rv is its bytes' rv");
                (v["metadata"]["name"].as_str().unwrap().to_string(), v["data"]["v"].as_str().unwrap_or("").to_string())
            })
            .collect()
    }

    #[test]
    fn lists_at_an_older_resource_version_undo_later_changes() {
        let reg = Registry::builtin();
        let info = reg.get("", "v1", "configmaps").unwrap();
        let s = Store::new(StoreConfig::default());
        for n in ["a", "b", "c"] {
            s.write(&info, "default", n, Expect::Absent, Op::Put(cm_data(n, "1"))).unwrap();
        }
        let other = reg.get("", "v1", "secrets").unwrap();
        s.write(&other, "default", "a", Expect::Absent, Op::Put(cm("a"))).unwrap();
        let at = s.current_rv();
        let then = listed(&s, &info, Some(at));
        // Every kind of change after `at`: modify (twice), delete, create, and a delete+recreate.
        s.write(&info, "default", "a", Expect::Exists, Op::Put(cm_data("a", "2"))).unwrap();
        s.write(&info, "default", "a", Expect::Exists, Op::Put(cm_data("a", "3"))).unwrap();
        s.write(&info, "default", "b", Expect::Exists, Op::Delete).unwrap();
        s.write(&info, "default", "d", Expect::Absent, Op::Put(cm_data("d", "1"))).unwrap();
        s.write(&info, "default", "c", Expect::Exists, Op::DeleteAs(cm_data("c", "x"))).unwrap();
        s.write(&info, "default", "c", Expect::Absent, Op::Put(cm_data("c", "9"))).unwrap();
        s.write(&info, "other", "e", Expect::Absent, Op::Put(cm_data("e", "1"))).unwrap();
        let want: Vec<(String, String)> =
            [("a", "1"), ("b", "1"), ("c", "1")].iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        assert_eq!(then, want);
        assert_eq!(listed(&s, &info, Some(at)), want, "the list at `at` is unchanged by later writes");
        let now: Vec<(String, String)> =
            [("a", "3"), ("c", "9"), ("d", "1")].iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        assert_eq!(listed(&s, &info, None), now);
        // Pages at `at` from any start key, with a limit.
        let p1 = s.list_at(&info.storage_key, None, None, 2, &|_| true, Some(at)).unwrap();
        assert_eq!((p1.rv, p1.items.len(), p1.remaining), (at, 2, 1));
        let p2 = s.list_at(&info.storage_key, None, p1.next, 2, &|_| true, Some(at)).unwrap();
        assert_eq!(p2.items.len(), 1);
        assert_eq!(p2.items[0].rv, 3, "b as it was at `at`");
        assert!(p2.next.is_none());
        assert_eq!(
            s.list_at(&info.storage_key, None, None, 0, &|_| true, Some(s.current_rv() + 1)).unwrap_err(),
            ListAtError::Future { current: s.current_rv() }
        );
    }

    #[test]
    fn lists_older_than_the_history_are_refused() {
        let reg = Registry::builtin();
        let info = reg.get("", "v1", "configmaps").unwrap();
        let s = Store::new(StoreConfig { history: 3, watcher_buffer: 10, ..Default::default() });
        for n in ["a", "b", "c", "d", "e"] {
            s.write(&info, "default", n, Expect::Absent, Op::Put(cm(n))).unwrap();
        }
        assert_eq!(
            s.list_at(&info.storage_key, None, None, 0, &|_| true, Some(1)).unwrap_err(),
            ListAtError::Compacted { compacted: 2 }
        );
        let at2 = s.list_at(&info.storage_key, None, None, 0, &|_| true, Some(2)).unwrap();
        assert_eq!(at2.items.len(), 2, "rv 2 is the oldest version the history can rebuild");
    }

    #[test]
    fn watch_from_compacted_history_is_expired() {
        let reg = Registry::builtin();
        let info = reg.get("", "v1", "configmaps").unwrap();
        let s = Store::new(StoreConfig { history: 2, watcher_buffer: 10, ..Default::default() });
        for n in ["a", "b", "c", "d"] {
            s.write(&info, "default", n, Expect::Absent, Op::Put(cm(n))).unwrap();
        }
        let err = s.watch(&info.storage_key, None, WatchFrom::Rv(1)).err().unwrap();
        assert_eq!(err.code, 410);
        assert_eq!(err.message, "too old resource version: 1 (2)");
        let w = s.watch(&info.storage_key, None, WatchFrom::Rv(2)).unwrap();
        assert_eq!(w.initial.clone().map(|e| e.name().to_string()).collect::<Vec<_>>(), ["c", "d"]);
    }

    #[test]
    fn the_history_is_bounded_in_bytes_too() {
        let reg = Registry::builtin();
        let info = reg.get("", "v1", "configmaps").unwrap();
        // 1,000 characters that do not compress (the stored state a change replaced counts at its
        // compressed size).
        let noise = |seed: u64| -> String {
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            (0..1000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b'!' + (x % 90) as u8)
                })
                .collect()
        };
        let big = |n: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}, "data": {"k": noise(n.as_bytes()[0] as u64)}});
        // Room for about three 1 KB objects, far fewer than the 100 events the count allows.
        let s = Store::new(StoreConfig { history: 100, history_bytes: 3_500, watcher_buffer: 10 });
        for n in ["a", "b", "c", "d", "e"] {
            s.write(&info, "default", n, Expect::Absent, Op::Put(big(n))).unwrap();
        }
        let err = s.watch(&info.storage_key, None, WatchFrom::Rv(1)).err().unwrap();
        assert_eq!((err.code, err.message.as_str()), (410, "too old resource version: 1 (2)"));
        let w = s.watch(&info.storage_key, None, WatchFrom::Rv(2)).unwrap();
        assert_eq!(w.initial.clone().map(|e| e.name().to_string()).collect::<Vec<_>>(), ["c", "d", "e"]);
        assert_eq!(
            s.list_at(&info.storage_key, None, None, 0, &|_| true, Some(1)).unwrap_err(),
            ListAtError::Compacted { compacted: 2 }
        );
        // An update keeps the replaced state alive too: it counts twice.
        let mut e2 = big("e");
        e2["data"]["k"] = json!(noise(99));
        s.write(&info, "default", "e", Expect::Exists, Op::Put(e2)).unwrap();
        let w = s.watch(&info.storage_key, None, WatchFrom::Rv(4)).unwrap();
        assert_eq!(w.initial.clone().map(|e| e.rv).collect::<Vec<_>>(), [5, 6]);
        assert!(s.watch(&info.storage_key, None, WatchFrom::Rv(3)).is_err());
        // One event larger than the bound is still kept: the latest change is always watchable.
        let s = Store::new(StoreConfig { history: 100, history_bytes: 10, watcher_buffer: 10 });
        s.write(&info, "default", "a", Expect::Absent, Op::Put(big("a"))).unwrap();
        s.write(&info, "default", "b", Expect::Absent, Op::Put(big("b"))).unwrap();
        let w = s.watch(&info.storage_key, None, WatchFrom::Rv(1)).unwrap();
        assert_eq!(w.initial.clone().map(|e| e.name().to_string()).collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn every_read_gives_back_the_written_bytes_before_and_after_the_dictionary() {
        let reg = Registry::builtin();
        let info = reg.get("", "v1", "configmaps").unwrap();
        let s = Store::new(StoreConfig::default());
        let obj = |i: usize, v: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{i:04}"), "namespace": "default", "uid": format!("uid-{i}"),
                    "labels": {"app": "x", "i": i.to_string()}},
                "data": {"v": v, "long": format!("{}-{i}", "some text that repeats ".repeat(8))}})
        };
        // Past the dictionary's training (64 objects), so blobs of all three kinds are stored.
        let mut written = BTreeMap::new();
        for i in 0..300 {
            let w = s.write(&info, "default", &format!("cm-{i:04}"), Expect::Absent, Op::Put(obj(i, "1"))).unwrap();
            written.insert(format!("cm-{i:04}"), w.bytes);
        }
        let at = s.current_rv();
        let before = written.clone();
        let mut changes = Vec::new();
        for i in (0..300).step_by(3) {
            let w = s.write(&info, "default", &format!("cm-{i:04}"), Expect::Exists, Op::Put(obj(i, "2"))).unwrap();
            changes.push((EventType::Modified, w.bytes.clone()));
            written.insert(format!("cm-{i:04}"), w.bytes);
        }
        assert!(s.stored_bytes() < s.json_bytes() / 2, "objects are compressed at rest");
        for (name, bytes) in &written {
            let e = s.get(&info.storage_key, "default", name).unwrap();
            assert_eq!(&e.bytes(), bytes, "get {name}");
            assert_eq!(e.json_len(), bytes.len());
        }
        let page = s.list(&info.storage_key, None, None, 0, &|_| true);
        assert_eq!(
            page.items.iter().map(|e| e.bytes()).collect::<Vec<_>>(),
            written.values().cloned().collect::<Vec<_>>()
        );
        let old = s.list_at(&info.storage_key, None, None, 0, &|_| true, Some(at)).unwrap();
        assert_eq!(
            old.items.iter().map(|e| e.bytes()).collect::<Vec<_>>(),
            before.values().cloned().collect::<Vec<_>>()
        );
        let w = s.watch(&info.storage_key, None, WatchFrom::Snapshot).unwrap();
        assert_eq!(
            w.initial.clone().map(|e| e.object.clone()).collect::<Vec<_>>(),
            written.values().cloned().collect::<Vec<_>>()
        );
        let d = s.write(&info, "default", "cm-0001", Expect::Exists, Op::Delete).unwrap();
        let mut last: Value = serde_json::from_slice(&written["cm-0001"]).unwrap();
        last["metadata"]["resourceVersion"] = json!(d.rv.to_string());
        assert_eq!(serde_json::from_slice::<Value>(&d.bytes).unwrap(), last, "a delete reads the last state back");
        changes.push((EventType::Deleted, d.bytes.clone()));
        let d = s.write(&info, "default", "cm-0002", Expect::Exists, Op::DeleteAs(obj(2, "gone"))).unwrap();
        changes.push((EventType::Deleted, d.bytes.clone()));
        // A watch replaying the history (kept compressed) gets every change's bytes as sent live.
        let w = s.watch(&info.storage_key, None, WatchFrom::Rv(at)).unwrap();
        assert_eq!(w.initial.clone().map(|e| (e.kind, e.object.clone())).collect::<Vec<_>>(), changes);
        assert!(w.initial.clone().all(|e| e.prev.is_some() && e.prev_rv > 0 && e.prev_rv < e.rv));
    }

    #[test]
    fn pairs_round_trip_any_strings() {
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("", "")],
            vec![("a", ""), ("b", "")],
            vec![("", "v"), ("k", "v2")],
            vec![("app", "x"), ("tier", "a=b,c")],
            vec![("a", "nul\0inside"), ("b", "2")],
            vec![("k\0", "")],
        ];
        for pairs in cases {
            let p = Pairs::from_sorted(pairs.iter().copied());
            assert_eq!(p.iter().collect::<Vec<_>>(), pairs, "{p:?}");
            assert_eq!(p.is_empty(), pairs.is_empty());
            for (k, v) in &pairs {
                assert_eq!(p.get(k), Some(*v));
            }
            assert_eq!(p.get("absent"), None);
        }
    }

    #[test]
    fn ids_are_pairs_even_when_the_strings_run_together() {
        let reg = Registry::builtin();
        let info = reg.get("", "v1", "configmaps").unwrap();
        let s = Store::new(StoreConfig::default());
        let obj = |ns: &str, n: &str| json!({"metadata": {"name": n, "namespace": ns, "uid": format!("{ns}/{n}")}});
        // "a"+"bc" and "ab"+"c" are the same bytes back to back; "a" is a prefix of "a-b" and "ab".
        let ids = [("ab", "c"), ("a", "bc"), ("a-b", "a"), ("a", "z"), ("", "x"), ("a", "")];
        for (ns, n) in ids {
            s.write(&info, ns, n, Expect::Absent, Op::Put(obj(ns, n))).unwrap();
        }
        let mut want: Vec<(String, String)> = ids.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        want.sort();
        let names = |p: &ListPage| -> Vec<(String, String)> {
            p.items
                .iter()
                .map(|e| {
                    let v: Value = serde_json::from_slice(&e.bytes()).unwrap();
                    (
                        v["metadata"]["namespace"].as_str().unwrap().to_string(),
                        v["metadata"]["name"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        assert_eq!(names(&s.list(&info.storage_key, None, None, 0, &|_| true)), want);
        assert_eq!(s.keys(&info.storage_key, None), want);
        let in_a: Vec<_> = want.iter().filter(|(ns, _)| ns == "a").cloned().collect();
        assert_eq!(names(&s.list(&info.storage_key, Some("a"), None, 0, &|_| true)), in_a);
        assert_eq!(s.keys(&info.storage_key, Some("a")), in_a);
        // Pages of one, across namespaces, give the same order.
        let (mut paged, mut start) = (Vec::new(), None);
        loop {
            let p = s.list(&info.storage_key, None, start, 1, &|_| true);
            paged.extend(names(&p));
            match p.next {
                Some(n) => start = Some(n),
                None => break,
            }
        }
        assert_eq!(paged, want);
        for (ns, n) in ids {
            let v: Value = serde_json::from_slice(&s.get(&info.storage_key, ns, n).unwrap().bytes()).unwrap();
            assert_eq!((v["metadata"]["namespace"].as_str(), v["metadata"]["name"].as_str()), (Some(ns), Some(n)));
            assert_eq!(
                s.locate_uid(&format!("{ns}/{n}")),
                Some((info.storage_key.clone(), ns.to_string(), n.to_string()))
            );
        }
        s.write(&info, "a", "bc", Expect::Exists, Op::Delete).unwrap();
        assert!(s.get(&info.storage_key, "a", "bc").is_none());
        assert!(s.get(&info.storage_key, "ab", "c").is_some(), "only the pair deleted goes");
        assert_eq!(s.locate_uid("a/bc"), None);
    }

    #[test]
    fn ids_are_two_words_and_give_back_any_namespace_and_name() {
        assert_eq!(std::mem::size_of::<Id>(), 16, "a pointer and a length, no third word");
        let long = "n".repeat(0xD800 + 3);
        let cases: Vec<(String, String)> = [
            ("", ""),
            ("", "node-1"),
            ("default", "p"),
            ("a", "bc"),
            ("ab", "c"),
            ("\u{e000}12:x", ":y"),
            ("é\0", "ü"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .chain([(long.clone(), "x".to_string()), ("x".to_string(), long.clone()), (long.clone(), long.clone())])
        .collect();
        for (ns, name) in &cases {
            let id = Id::new(ns, name);
            assert_eq!((id.ns(), id.name()), (ns.as_str(), name.as_str()));
            assert_eq!(id.owned(), (ns.clone(), name.clone()));
        }
        for (a, b) in cases.iter().flat_map(|a| cases.iter().map(move |b| (a, b))) {
            let (x, y) = (Id::new(&a.0, &a.1), Id::new(&b.0, &b.1));
            assert_eq!(x == y, a == b, "{a:?} {b:?}");
            assert_eq!(x.cmp(&y), (a.0.as_str(), a.1.as_str()).cmp(&(b.0.as_str(), b.1.as_str())), "{a:?} {b:?}");
        }
    }

    #[test]
    fn watch_events_carry_the_stored_id_not_a_copy() {
        let reg = Registry::builtin();
        let info = reg.get("", "v1", "configmaps").unwrap();
        let s = Store::new(StoreConfig::default());
        let mut all = s.subscribe_all();
        let live = s.watch(&info.storage_key, None, WatchFrom::Now).unwrap();
        let mut rx = live.rx;
        // "a"+"bc" and "ab"+"c" run together; "" is a cluster-scoped object's namespace.
        let ids = [("ab", "c"), ("a", "bc"), ("", "x")];
        let mut written = Vec::new();
        for (ns, n) in ids {
            let obj = json!({"metadata": {"name": n, "namespace": ns, "uid": format!("{ns}/{n}")}});
            written.push(s.write(&info, ns, n, Expect::Absent, Op::Put(obj.clone())).unwrap().rv);
            written.push(s.write(&info, ns, n, Expect::Exists, Op::Put(obj)).unwrap().rv);
        }
        written.push(s.write(&info, "a", "bc", Expect::Exists, Op::Delete).unwrap().rv);
        let mut got = Vec::new();
        for _ in 0..written.len() {
            let (a, w) = (all.try_recv().unwrap(), rx.try_recv().unwrap());
            assert!(Arc::ptr_eq(&a, &w), "one event for every reader");
            got.push(a);
        }
        let seen: Vec<(&str, &str, EventType, u64)> =
            got.iter().map(|e| (e.namespace(), e.name(), e.kind, e.rv)).collect();
        use EventType::*;
        let want = [
            ("ab", "c", Added),
            ("ab", "c", Modified),
            ("a", "bc", Added),
            ("a", "bc", Modified),
            ("", "x", Added),
            ("", "x", Modified),
            ("a", "bc", Deleted),
        ];
        let want: Vec<_> = want.iter().zip(&written).map(|((ns, n, k), rv)| (*ns, *n, *k, *rv)).collect();
        assert_eq!(seen, want);
        // Every event of an object holds the allocation its bucket holds (a deleted one's, while
        // anything holds it): no namespace or name copied per event.
        let inner = s.lock();
        let bucket = &inner.buckets[&info.storage_key];
        for e in &got {
            if let Some((stored, _)) = bucket.objects.get_key_value(&e.id) {
                assert!(stored.shares(&e.id), "{e:?} copies its id");
            }
        }
        assert!(got[2].id.shares(&got[3].id) && got[3].id.shares(&got[6].id), "a's events share one id");
        // And one storage key for the bucket, made before any object by the watch.
        assert!(got.iter().all(|e| *e.key == *info.storage_key && Arc::ptr_eq(&e.key, &bucket.key)));
        drop(inner);
        // The history's replay and a snapshot give the same names and share the stored ids too.
        let replay: Vec<Arc<WatchEvent>> =
            s.watch(&info.storage_key, None, WatchFrom::Rv(0)).unwrap().initial.collect();
        let replayed: Vec<_> = replay.iter().map(|e| (e.namespace(), e.name(), e.kind, e.rv)).collect();
        assert_eq!(replayed, want);
        assert!(replay.iter().zip(&got).all(|(r, e)| r.id.shares(&e.id)));
        let snap: Vec<Arc<WatchEvent>> =
            s.watch(&info.storage_key, None, WatchFrom::Snapshot).unwrap().initial.collect();
        let snapped: Vec<_> = snap.iter().map(|e| (e.namespace(), e.name())).collect();
        assert_eq!(snapped, [("", "x"), ("ab", "c")]);
        assert!(snap[0].id.shares(&got[4].id) && snap[1].id.shares(&got[0].id));
    }

    #[test]
    fn owner_uids_are_shared_with_the_owner_and_still_index_dependents() {
        let reg = Registry::builtin();
        let (jobs, pods) = (reg.get("batch", "v1", "jobs").unwrap(), reg.get("", "v1", "pods").unwrap());
        let s = Store::new(StoreConfig::default());
        let pod = |name: &str, owner: &str| {
            json!({"metadata": {"name": name, "namespace": "d", "uid": format!("pod-{name}"),
                "ownerReferences": [{"uid": owner, "blockOwnerDeletion": true}]}})
        };
        // A dependent written before its owner exists keeps its own copy.
        s.write(&pods, "d", "early", Expect::Absent, Op::Put(pod("early", "job-1"))).unwrap();
        let job = json!({"metadata": {"name": "j", "namespace": "d", "uid": "job-1"}});
        s.write(&jobs, "d", "j", Expect::Absent, Op::Put(job)).unwrap();
        for n in ["a", "b"] {
            s.write(&pods, "d", n, Expect::Absent, Op::Put(pod(n, "job-1"))).unwrap();
        }
        // Rewritten, the early one shares the owner's too (through the index); an owner nobody
        // stores stays a copy.
        s.write(&pods, "d", "early", Expect::Exists, Op::Put(pod("early", "job-1"))).unwrap();
        s.write(&pods, "d", "orphan", Expect::Absent, Op::Put(pod("orphan", "gone"))).unwrap();
        let owner_uid = s.get(&jobs.storage_key, "d", "j").unwrap().meta.uid.clone();
        for n in ["a", "b", "early"] {
            let meta = s.get(&pods.storage_key, "d", n).unwrap().meta;
            assert_eq!(meta.owners.len(), 1);
            assert!(Arc::ptr_eq(&meta.owners[0].uid, &owner_uid), "{n} copies its owner's uid");
            assert!(meta.owners[0].block);
        }
        assert_eq!(&*s.get(&pods.storage_key, "d", "orphan").unwrap().meta.owners[0].uid, "gone");
        let deps = |uid: &str| -> Vec<String> { s.dependents_of(uid).into_iter().map(|(_, _, n)| n).collect() };
        assert_eq!(deps("job-1"), ["a", "b", "early"]);
        assert_eq!(deps("gone"), ["orphan"]);
        s.write(&pods, "d", "a", Expect::Exists, Op::Delete).unwrap();
        assert_eq!(deps("job-1"), ["b", "early"]);
    }

    #[test]
    fn fields_round_trip_any_values_and_share_their_names() {
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("metadata.name", "")],
            vec![("a", ""), ("b", "")],
            vec![("metadata.name", "p"), ("metadata.namespace", "d"), ("status.phase", "")],
            vec![("a", "x,y=z"), ("b", "")],
            vec![("a", "nul\0inside"), ("b", "2")],
            vec![("a", ""), ("b", "\0")],
        ];
        for pairs in cases {
            let f = Fields::from_sorted(pairs.iter().copied());
            assert_eq!(f.iter().collect::<Vec<_>>(), pairs, "{f:?}");
            assert_eq!(f.is_empty(), pairs.is_empty());
            for (k, v) in &pairs {
                assert_eq!(f.get(k), Some(*v), "{k} in {f:?}");
            }
            assert_eq!(f.get("absent"), None);
            let nul = pairs.iter().any(|(_, v)| v.contains('\0'));
            assert_eq!(matches!(f, Fields::Owned(_)), nul, "packed unless a value holds a NUL: {f:?}");
        }
        // Two objects of one resource share one interned set of names.
        let a = Fields::from_sorted([("metadata.name", "a"), ("spec.x", "1")]);
        let b = Fields::from_sorted([("metadata.name", "b"), ("spec.x", "2")]);
        match (&a, &b) {
            (Fields::Packed { names: na, values: va }, Fields::Packed { names: nb, .. }) => {
                assert!(std::ptr::eq(*na, *nb), "the names are kept once");
                assert_eq!(&**va, "a\u{0}1");
            }
            _ => panic!("packed: {a:?} {b:?}"),
        }
    }

    proptest::proptest! {
        /// Whatever the values (repeated, the start of one another, interned or not, starting
        /// with the markers), every field reads back as given.
        #[test]
        fn packed_fields_read_back_as_given(
            picks in proptest::collection::btree_map(0usize..12, (0usize..8, 0usize..40), 0..12),
        ) {
            const NAMES: [&str; 12] = [
                "involvedObject.kind", "involvedObject.name", "involvedObject.namespace", "involvedObject.uid",
                "metadata.name", "metadata.namespace", "reason", "source", "spec.nodeName", "status.phase",
                "status.podIP", "type",
            ];
            const STEMS: [&str; 8] = [
                "", "job-12345-abcde.187f3a2b1c4d5e6f", "default", "\u{1}x", "a\u{2}b", "Pod", "ü-ß-ç-node", "\0",
            ];
            let pairs: Vec<(&str, String)> = picks
                .iter()
                .map(|(&n, &(stem, cut))| {
                    let s = STEMS[stem];
                    // Cut on a char boundary at or below `cut`: prefixes of one another.
                    let cut = (0..=cut.min(s.len())).rev().find(|&c| s.is_char_boundary(c)).unwrap_or(0);
                    (NAMES[n], s[..cut].to_string())
                })
                .collect();
            let f = Fields::from_sorted(pairs.iter().map(|(k, v)| (*k, v.as_str())));
            let back: Vec<(&str, &str)> = f.iter().collect();
            let want: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            proptest::prop_assert_eq!(&back, &want);
            for (k, v) in &want {
                proptest::prop_assert_eq!(f.get(k), Some(*v));
            }
            let special = pairs.iter().any(|(_, v)| v.contains('\0') || v.starts_with(['\u{1}', '\u{2}']));
            proptest::prop_assert_eq!(matches!(f, Fields::Owned(_)), special);
        }
    }

    /// A full table interns nothing new and keeps what it has: a value it refuses is written as
    /// itself by `Fields` (the literal path the property test above reads back), so a cluster
    /// with more distinct values than the table loses only the saving.
    #[test]
    fn a_full_intern_table_refuses_new_values_and_keeps_its_own() {
        static SMALL: Interner<3> = Interner::new();
        assert_eq!(SMALL.intern(&"x".repeat(MAX_VALUE_LEN + 1)), None, "too long to intern");
        let kept: Vec<usize> = ["Pod", "default", "kubelet"].iter().map(|v| SMALL.intern(v).unwrap()).collect();
        assert_eq!(kept, [0, 1, 2]);
        assert_eq!(SMALL.intern("node-1"), None, "full");
        assert_eq!(SMALL.intern("default"), Some(1), "a value it has is still found");
        assert_eq!((SMALL.get(0), SMALL.get(2), SMALL.get(3)), (Some("Pod"), Some("kubelet"), None));
        assert_eq!(ref_char(MAX_VALUES - 1).map(ref_num), Some(MAX_VALUES - 1), "the last number is one char");
    }

    /// An Event's values are kept in about half the bytes: what repeats across Events (kind,
    /// reason, source, type, namespaces, fieldPath) is interned, its object's name is the start
    /// of its own.
    #[test]
    fn an_events_values_keep_only_what_is_its_own() {
        let reg = Registry::builtin();
        let events = reg.get("", "v1", "events").unwrap();
        let ev = json!({"metadata": {"name": "job-12345-abcde.187f3a2b1c4d5e6f", "namespace": "default"},
            "reason": "Started", "type": "Normal", "reportingComponent": "kubelet",
            "involvedObject": {"kind": "Pod", "name": "job-12345-abcde", "namespace": "default",
                "uid": "0b9d7c66-6c0e-4a53-9d8e-2f5b4c3a2b1c", "apiVersion": "v1", "resourceVersion": "123456",
                "fieldPath": "spec.containers{main}"},
            "source": {"component": "kubelet", "host": "node-1"}});
        let meta = Meta::of(&events, &ev);
        let Fields::Packed { values, .. } = &meta.fields else { panic!("packed: {:?}", meta.fields) };
        let plain: usize = selector::selectable_field_pairs(&events, &ev).iter().map(|(_, v)| v.len() + 1).sum();
        // The name (32), the uid (36), the resourceVersion (6) and the 12 separators stay; the
        // rest are references of 2 or 3 bytes.
        assert!(values.len() <= 110 && plain >= 165, "{} bytes packed against {plain}: {values:?}", values.len());
        let fields = selector::selectable_fields(&events, &ev);
        assert_eq!(meta.fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(), fields);
    }

    #[test]
    fn index_entries_answer_selectors_as_the_maps_did() {
        let reg = Registry::builtin();
        let info = reg.get("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "d", "labels": {"app": "x", "n": "5", "empty": ""}},
            "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}});
        let meta = Meta::of(&info, &pod);
        let labels = selector::labels_of(&pod);
        let fields = selector::selectable_fields(&info, &pod);
        for sel in [
            "app=x",
            "app!=x",
            "app in (x,y)",
            "app notin (x)",
            "n>4",
            "n<5",
            "empty",
            "!empty",
            "empty=",
            "missing",
            "!missing",
            "app=x,n=5",
        ] {
            let s = selector::LabelSelector::parse(sel).unwrap();
            assert_eq!(meta.labels_match(&s), s.matches(&labels), "{sel}");
        }
        for sel in [
            "spec.nodeName=node-1",
            "spec.nodeName!=node-1",
            "status.phase=Running,metadata.name=p",
            "spec.nodeName=",
            "status.podIP=",
        ] {
            let s = selector::FieldSelector::parse(&info, sel).unwrap();
            assert_eq!(meta.fields_match(&s), s.matches(&fields), "{sel}");
        }
        assert!(meta.fields_match(&selector::FieldSelector::parse(&info, "spec.nodeName=node-1").unwrap()));
        let events = reg.get("", "v1", "events").unwrap();
        let ev = json!({"metadata": {"name": "e", "namespace": "d"}, "reason": "Started", "type": "Normal",
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "d", "uid": "u1"}, "source": {"component": "kubelet"}});
        let meta = Meta::of(&events, &ev);
        let fields = selector::selectable_fields(&events, &ev);
        assert_eq!(meta.fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(), fields);
        for sel in [
            "involvedObject.name=p",
            "involvedObject.kind=Pod,involvedObject.uid=u1",
            "involvedObject.fieldPath=",
            "reason!=Started",
            "source=kubelet,type=Normal,metadata.namespace=d",
        ] {
            let s = selector::FieldSelector::parse(&events, sel).unwrap();
            assert_eq!(meta.fields_match(&s), s.matches(&fields), "{sel}");
        }
        assert!(!meta.labels_match(&selector::LabelSelector::parse("app=y").unwrap()));
    }

    #[test]
    fn slow_watchers_are_dropped_not_waited_for() {
        let reg = Registry::builtin();
        let info = reg.get("", "v1", "configmaps").unwrap();
        let s = Store::new(StoreConfig { history: 100, watcher_buffer: 1, ..Default::default() });
        let mut w = s.watch(&info.storage_key, None, WatchFrom::Now).unwrap();
        for n in ["a", "b", "c"] {
            s.write(&info, "default", n, Expect::Absent, Op::Put(cm(n))).unwrap();
        }
        assert_eq!(w.rx.try_recv().unwrap().name(), "a");
        assert!(matches!(w.rx.try_recv(), Err(mpsc::error::TryRecvError::Disconnected)));
    }

    /// Every committed write of a bucket moves its count (the RBAC policy cache's key); refused
    /// writes and other buckets' writes do not.
    #[test]
    fn write_counts_move_with_every_change_of_their_bucket_only() {
        let reg = Registry::builtin();
        let (cms, secrets) = (reg.get("", "v1", "configmaps").unwrap(), reg.get("", "v1", "secrets").unwrap());
        let s = Store::new(StoreConfig::default());
        let keys = [cms.storage_key.as_str(), secrets.storage_key.as_str()];
        assert_eq!(s.writes_of(keys), [0, 0]);
        let a = s.write(&cms, "default", "a", Expect::Absent, Op::Put(cm("a"))).unwrap();
        assert_eq!(s.writes_of(keys), [1, 0]);
        assert!(s.write(&cms, "default", "a", Expect::Absent, Op::Put(cm("a"))).is_err());
        assert!(s.write(&cms, "default", "a", Expect::Rv(a.rv + 1), Op::Put(cm("a"))).is_err());
        assert!(s.write(&cms, "default", "zz", Expect::Exists, Op::Delete).is_err());
        assert_eq!(s.writes_of(keys), [1, 0], "refused writes change nothing");
        s.write(&cms, "default", "a", Expect::Rv(a.rv), Op::Put(cm("a"))).unwrap();
        assert_eq!(s.writes_of(keys), [2, 0]);
        s.write(&secrets, "default", "s", Expect::Absent, Op::Put(cm("s"))).unwrap();
        assert_eq!(s.writes_of(keys), [2, 1]);
        s.write(&cms, "default", "a", Expect::Exists, Op::Delete).unwrap();
        assert_eq!(s.writes_of(keys), [3, 1], "a delete counts");
        s.restore(&cms, "default", "b", 9, Bytes::from(cm("b").to_string())).unwrap();
        assert_eq!(s.writes_of(keys), [4, 1], "a restore counts");
    }
}
