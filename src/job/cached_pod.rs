//! The Job controller's pod cache entry: only what the controller reads of a pod.
//!
//! The pod informer decodes watch events and list pages straight into [`CachedPod`] (serde skips
//! every other field of the JSON without building it), so the store holds a few hundred bytes per
//! pod instead of a whole `k8s_openapi` `Pod` (whose empty spec and status structs alone are
//! kilobytes once containers and their statuses are inlined).
//!
//! What is kept, and who reads it:
//!
//! | kept | read by |
//! |---|---|
//! | name, namespace, uid, resourceVersion | store keys, plan (names, uids), adopt/release patches (uid and resourceVersion preconditions) |
//! | creationTimestamp, deletionTimestamp, deletionGracePeriodSeconds | active/terminating, removal order, finish time |
//! | labels (all) | selector matching (claim, adoption candidates) |
//! | annotations `batch.kubernetes.io/job-completion-index`, `…/job-index-failure-count`, `…/job-index-ignored-failure-count` (only these) | completion index, backoffLimitPerIndex |
//! | finalizers, ownerReferences (all) | tracking finalizer, controller ref, adopt/release JSON patches (list positions) |
//! | `spec.nodeName` | removal order (unscheduled first) |
//! | names of the init containers with `restartPolicy: Always` (sidecars) | finish time |
//! | `status.phase` | everything |
//! | `status.conditions`: type, status, lastTransitionTime | Ready, podFailurePolicy `onPodConditions`, finish time, removal order |
//! | container and init container statuses: name, restartCount, terminated exitCode and finishedAt | podFailurePolicy `onExitCodes`, backoffLimit with `restartPolicy: OnFailure`, finish time, removal order |
//!
//! Everything else (managedFields, other annotations, the pod spec but for the above, other status
//! fields) is never decoded. The controller never writes a pod back from its cache (finalizer
//! removal, adoption and release are patches), so nothing is lost.
//!
//! [`PodFacts`] is the accessor layer the controller's logic reads pods through; it is
//! implemented for [`CachedPod`] and for `k8s_openapi`'s `Pod` (tests and tools build `Pod`s), and
//! `CachedPod::from(pod)` keeps exactly what decoding the pod's JSON keeps.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use super::intern;
use super::labels::{JOB_COMPLETION_INDEX, JOB_INDEX_FAILURE_COUNT, JOB_INDEX_IGNORED_FAILURE_COUNT};

/// The only annotations the controller reads.
pub const KEPT_ANNOTATIONS: [&str; 3] =
    [JOB_COMPLETION_INDEX, JOB_INDEX_FAILURE_COUNT, JOB_INDEX_IGNORED_FAILURE_COUNT];

/// A string that is one of a few well-known values (phases, condition types and statuses) costs no
/// allocation.
pub type Word = Cow<'static, str>;

const WORDS: [&str; 14] = [
    "True",
    "False",
    "Unknown",
    "Ready",
    "ContainersReady",
    "Initialized",
    "PodScheduled",
    "PodReadyToStartContainers",
    "DisruptionTarget",
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
    "main",
];

fn word(s: String) -> Word {
    match WORDS.iter().find(|w| **w == s) {
        Some(w) => Cow::Borrowed(w),
        None => Cow::Owned(s),
    }
}

/// One pod as the Job controller caches it (see the module docs for what is kept).
///
/// Labels, the kept annotations and ownerReferences are not in [`CachedPod::metadata`] (whose
/// maps would cost about 2 KiB per pod) but interned beside it ([`super::intern`]): every pod of
/// a Job has the same ownerReferences and nearly the same labels, so they share one copy. Read
/// them through [`PodFacts`] ([`PodFacts::label`], [`PodFacts::annotation`],
/// [`PodFacts::owner_references`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CachedPod {
    /// name, namespace, uid, resourceVersion, creation and deletion timestamps, deletion grace
    /// period and finalizers; nothing else (labels, annotations and ownerReferences are `None`).
    pub metadata: ObjectMeta,
    /// `metadata.labels` (all of them), sorted by key.
    pub labels: Labels,
    /// The [`KEPT_ANNOTATIONS`] the pod has, in [`KEPT_ANNOTATIONS`] order.
    pub annotations: Annotations,
    /// `metadata.ownerReferences` (all of them), in order.
    pub owner_references: Owners,
    /// `spec.nodeName` (shared: [`super::intern`]).
    pub node_name: Option<Arc<str>>,
    /// The names of the init containers with `restartPolicy: Always` (sidecars).
    pub sidecars: Vec<String>,
    /// `status.phase`.
    pub phase: Option<Word>,
    /// `status.conditions`.
    pub conditions: Vec<Condition>,
    /// `status.containerStatuses`.
    pub container_statuses: Vec<ContainerFacts>,
    /// `status.initContainerStatuses`.
    pub init_container_statuses: Vec<ContainerFacts>,
}

/// A pod's labels, sorted by key, shared with the pods that have the same ([`super::intern`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Labels(Option<Arc<[intern::Label]>>);

impl Labels {
    /// The shared copy of `map`.
    pub fn new(map: BTreeMap<String, String>) -> Self {
        Self(intern::labels(map))
    }

    /// The value of label `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let list = self.0.as_deref()?;
        list.binary_search_by(|(k, _)| (**k).cmp(key)).ok().map(|i| &*list[i].1)
    }

    /// Every label, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().flat_map(|l| l.iter()).map(|(k, v)| (&**k, &**v))
    }

    /// Every label, by key, as shared.
    pub fn as_slice(&self) -> &[intern::Label] {
        self.0.as_deref().unwrap_or_default()
    }

    /// These labels but the value at position `at`, which is `value` (not interned: for a
    /// short-lived copy).
    pub fn with_value_at(&self, at: usize, value: &Arc<str>) -> Self {
        let mut list = self.as_slice().to_vec();
        if let Some(slot) = list.get_mut(at) {
            slot.1 = value.clone();
        }
        Self((!list.is_empty()).then(|| Arc::from(list)))
    }

    /// The labels as the API has them (`None` when there are none).
    pub fn to_map(&self) -> Option<BTreeMap<String, String>> {
        self.0.as_ref().map(|_| self.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }
}

/// The [`KEPT_ANNOTATIONS`] a pod has, values shared ([`super::intern`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotations(Box<[(&'static str, Arc<str>)]>);

impl Annotations {
    fn new<'a>(kept: impl Iterator<Item = (&'static str, &'a str)>) -> Self {
        Self(kept.map(|(k, v)| (k, intern::string(v))).collect())
    }

    /// The value of annotation `key` (one of the [`KEPT_ANNOTATIONS`]).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| &**v)
    }
}

/// A pod's ownerReferences, shared with the pods that have the same ([`super::intern`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Owners(Option<Arc<intern::OwnerList>>);

impl Owners {
    /// The shared copy of `list`.
    pub fn new(list: Vec<OwnerReference>) -> Self {
        Self(intern::owners(list))
    }

    /// The references, in order.
    pub fn as_slice(&self) -> &[OwnerReference] {
        self.0.as_ref().map_or(&[], |l| &l.0)
    }
}

/// One pod condition: type, status and when it last changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// `type`.
    pub type_: Word,
    /// `status`: `True`, `False` or `Unknown`.
    pub status: Word,
    /// `lastTransitionTime`.
    pub last_transition_time: Option<Time>,
}

/// What the controller reads of one container status.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerFacts {
    /// The container's name.
    pub name: Word,
    /// `restartCount`.
    pub restart_count: i32,
    /// `state.terminated`, if the container terminated.
    pub terminated: Option<Terminated>,
}

/// `state.terminated` of a container status: its exit code and when it finished.
#[derive(Clone, Debug, PartialEq)]
pub struct Terminated {
    /// `exitCode`.
    pub exit_code: i32,
    /// `finishedAt`.
    pub finished_at: Option<Time>,
}

impl kube::Resource for CachedPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Pod")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("pods")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The metadata kept in [`CachedPod::metadata`] (the same as decoding keeps).
fn slim_meta(meta: &mut ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: meta.uid.take(),
        resource_version: meta.resource_version.take(),
        creation_timestamp: meta.creation_timestamp.take(),
        deletion_timestamp: meta.deletion_timestamp.take(),
        deletion_grace_period_seconds: meta.deletion_grace_period_seconds.take(),
        finalizers: meta.finalizers.take(),
        ..ObjectMeta::default()
    }
}

impl From<Pod> for CachedPod {
    fn from(pod: Pod) -> Self {
        use k8s_openapi::api::core::v1::ContainerStatus;
        let facts = |cs: Vec<ContainerStatus>| -> Vec<ContainerFacts> {
            cs.into_iter()
                .map(|c| ContainerFacts {
                    name: word(c.name),
                    restart_count: c.restart_count,
                    terminated: c
                        .state
                        .and_then(|s| s.terminated)
                        .map(|t| Terminated { exit_code: t.exit_code, finished_at: t.finished_at }),
                })
                .collect()
        };
        let spec = pod.spec.unwrap_or_default();
        let status = pod.status.unwrap_or_default();
        let mut meta = pod.metadata;
        let annotations = meta.annotations.take().unwrap_or_default();
        CachedPod {
            metadata: slim_meta(&mut meta),
            labels: Labels::new(meta.labels.take().unwrap_or_default()),
            annotations: Annotations::new(
                KEPT_ANNOTATIONS.iter().filter_map(|k| annotations.get(*k).map(|v| (*k, v.as_str()))),
            ),
            owner_references: Owners::new(meta.owner_references.take().unwrap_or_default()),
            node_name: spec.node_name.as_deref().map(intern::string),
            sidecars: spec
                .init_containers
                .into_iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"))
                .map(|c| c.name)
                .collect(),
            phase: status.phase.map(word),
            conditions: status
                .conditions
                .into_iter()
                .flatten()
                .map(|c| Condition {
                    type_: word(c.type_),
                    status: word(c.status),
                    last_transition_time: c.last_transition_time,
                })
                .collect(),
            container_statuses: facts(status.container_statuses.unwrap_or_default()),
            init_container_statuses: facts(status.init_container_statuses.unwrap_or_default()),
        }
    }
}

impl From<&Pod> for CachedPod {
    fn from(pod: &Pod) -> Self {
        pod.clone().into()
    }
}

// ---- decoding: the pod's JSON straight into a `CachedPod` ----

#[derive(Deserialize)]
struct WirePod {
    #[serde(default)]
    metadata: Option<WireMeta>,
    #[serde(default)]
    spec: Option<WireSpec>,
    #[serde(default)]
    status: Option<WireStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    creation_timestamp: Option<Time>,
    #[serde(default)]
    deletion_timestamp: Option<Time>,
    #[serde(default)]
    deletion_grace_period_seconds: Option<i64>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "kept_annotations")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    finalizers: Option<Vec<String>>,
    #[serde(default)]
    owner_references: Option<Vec<OwnerReference>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSpec {
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    init_containers: Option<Vec<WireInitContainer>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireInitContainer {
    name: String,
    #[serde(default)]
    restart_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStatus {
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    conditions: Option<Vec<WireCondition>>,
    #[serde(default)]
    container_statuses: Option<Vec<WireContainerStatus>>,
    #[serde(default)]
    init_container_statuses: Option<Vec<WireContainerStatus>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    #[serde(default)]
    last_transition_time: Option<Time>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireContainerStatus {
    name: String,
    restart_count: i32,
    #[serde(default)]
    state: Option<WireState>,
}

#[derive(Deserialize)]
struct WireState {
    #[serde(default)]
    terminated: Option<WireTerminated>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTerminated {
    exit_code: i32,
    #[serde(default)]
    finished_at: Option<Time>,
}

/// Only the [`KEPT_ANNOTATIONS`] of `metadata.annotations` (others' values are skipped unbuilt);
/// `None` when none of them is there.
fn kept_annotations<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct Kept;
    impl<'de> Visitor<'de> for Kept {
        type Value = Option<BTreeMap<String, String>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of annotations")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                match KEPT_ANNOTATIONS.iter().find(|k| **k == key) {
                    Some(k) => {
                        out.insert((*k).to_string(), map.next_value::<String>()?);
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok((!out.is_empty()).then_some(out))
        }
    }
    d.deserialize_option(Kept)
}

impl<'de> Deserialize<'de> for CachedPod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = WirePod::deserialize(d)?;
        let (meta, labels, annotations, owners) = match wire.metadata {
            None => (ObjectMeta::default(), Labels::default(), Annotations::default(), Owners::default()),
            Some(m) => (
                ObjectMeta {
                    name: m.name,
                    namespace: m.namespace,
                    uid: m.uid,
                    resource_version: m.resource_version,
                    creation_timestamp: m.creation_timestamp,
                    deletion_timestamp: m.deletion_timestamp,
                    deletion_grace_period_seconds: m.deletion_grace_period_seconds,
                    finalizers: m.finalizers,
                    ..ObjectMeta::default()
                },
                Labels::new(m.labels.unwrap_or_default()),
                Annotations::new(
                    KEPT_ANNOTATIONS.iter().filter_map(|k| Some((*k, m.annotations.as_ref()?.get(*k)?.as_str()))),
                ),
                Owners::new(m.owner_references.unwrap_or_default()),
            ),
        };
        let facts = |cs: Option<Vec<WireContainerStatus>>| -> Vec<ContainerFacts> {
            cs.into_iter()
                .flatten()
                .map(|c| ContainerFacts {
                    name: word(c.name),
                    restart_count: c.restart_count,
                    terminated: c
                        .state
                        .and_then(|s| s.terminated)
                        .map(|t| Terminated { exit_code: t.exit_code, finished_at: t.finished_at }),
                })
                .collect()
        };
        let (node_name, init) = wire.spec.map_or((None, None), |s| (s.node_name, s.init_containers));
        let sidecars = init
            .into_iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"))
            .map(|c| c.name)
            .collect();
        let (phase, conditions, containers, inits) = match wire.status {
            Some(s) => (s.phase, s.conditions, s.container_statuses, s.init_container_statuses),
            None => (None, None, None, None),
        };
        Ok(CachedPod {
            metadata: meta,
            labels,
            annotations,
            owner_references: owners,
            node_name: node_name.as_deref().map(intern::string),
            sidecars,
            phase: phase.map(word),
            conditions: conditions
                .into_iter()
                .flatten()
                .map(|c| Condition {
                    type_: word(c.type_),
                    status: word(c.status),
                    last_transition_time: c.last_transition_time,
                })
                .collect(),
            container_statuses: facts(containers),
            init_container_statuses: facts(inits),
        })
    }
}

// ---- the accessor layer ----

/// One condition as [`PodFacts`] shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConditionRef<'a> {
    /// `type`.
    pub type_: &'a str,
    /// `status`.
    pub status: &'a str,
    /// `lastTransitionTime`.
    pub last_transition_time: Option<&'a Time>,
}

/// One container status as [`PodFacts`] shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContainerRef<'a> {
    /// The container's name.
    pub name: &'a str,
    /// `restartCount`.
    pub restart_count: i32,
    /// `state.terminated`: exit code and `finishedAt`, if the container terminated.
    pub terminated: Option<(i32, Option<&'a Time>)>,
}

/// What the Job controller reads of a pod, for a [`CachedPod`] and for a whole `Pod` alike.
pub trait PodFacts {
    /// The pod's metadata: name, namespace, uid, resourceVersion, timestamps, deletion grace
    /// period and finalizers (labels, annotations and ownerReferences through the methods below:
    /// a [`CachedPod`] does not keep them here).
    fn pod_meta(&self) -> &ObjectMeta;
    /// The value of label `key`.
    fn label(&self, key: &str) -> Option<&str>;
    /// The value of annotation `key`, one of the [`KEPT_ANNOTATIONS`] (others are not cached).
    fn annotation(&self, key: &str) -> Option<&str>;
    /// `metadata.ownerReferences`, in order.
    fn owner_references(&self) -> &[OwnerReference];
    /// `status.phase`, or `""`.
    fn phase(&self) -> &str;
    /// `spec.nodeName`, or `""`.
    fn node_name(&self) -> &str;
    /// Whether `name` is an init container with `restartPolicy: Always` (a sidecar).
    fn is_sidecar(&self, name: &str) -> bool;
    /// `status.conditions`, in order.
    fn conditions(&self) -> impl Iterator<Item = ConditionRef<'_>>;
    /// `status.containerStatuses`, in order.
    fn container_statuses(&self) -> impl Iterator<Item = ContainerRef<'_>>;
    /// `status.initContainerStatuses`, in order.
    fn init_container_statuses(&self) -> impl Iterator<Item = ContainerRef<'_>>;
}

fn container_ref(c: &ContainerFacts) -> ContainerRef<'_> {
    ContainerRef {
        name: &c.name,
        restart_count: c.restart_count,
        terminated: c.terminated.as_ref().map(|t| (t.exit_code, t.finished_at.as_ref())),
    }
}

impl PodFacts for CachedPod {
    fn pod_meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key)
    }
    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key)
    }
    fn owner_references(&self) -> &[OwnerReference] {
        self.owner_references.as_slice()
    }
    fn phase(&self) -> &str {
        self.phase.as_deref().unwrap_or("")
    }
    fn node_name(&self) -> &str {
        self.node_name.as_deref().unwrap_or("")
    }
    fn is_sidecar(&self, name: &str) -> bool {
        self.sidecars.iter().any(|s| s == name)
    }
    fn conditions(&self) -> impl Iterator<Item = ConditionRef<'_>> {
        self.conditions.iter().map(|c| ConditionRef {
            type_: &c.type_,
            status: &c.status,
            last_transition_time: c.last_transition_time.as_ref(),
        })
    }
    fn container_statuses(&self) -> impl Iterator<Item = ContainerRef<'_>> {
        self.container_statuses.iter().map(container_ref)
    }
    fn init_container_statuses(&self) -> impl Iterator<Item = ContainerRef<'_>> {
        self.init_container_statuses.iter().map(container_ref)
    }
}

fn pod_container_ref(c: &k8s_openapi::api::core::v1::ContainerStatus) -> ContainerRef<'_> {
    ContainerRef {
        name: &c.name,
        restart_count: c.restart_count,
        terminated: c.state.as_ref().and_then(|s| s.terminated.as_ref()).map(|t| (t.exit_code, t.finished_at.as_ref())),
    }
}

impl PodFacts for Pod {
    fn pod_meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn label(&self, key: &str) -> Option<&str> {
        self.metadata.labels.as_ref()?.get(key).map(String::as_str)
    }
    fn annotation(&self, key: &str) -> Option<&str> {
        KEPT_ANNOTATIONS.contains(&key).then_some(())?;
        self.metadata.annotations.as_ref()?.get(key).map(String::as_str)
    }
    fn owner_references(&self) -> &[OwnerReference] {
        self.metadata.owner_references.as_deref().unwrap_or(&[])
    }
    fn phase(&self) -> &str {
        self.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
    }
    fn node_name(&self) -> &str {
        self.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
    }
    fn is_sidecar(&self, name: &str) -> bool {
        let inits = self.spec.as_ref().and_then(|s| s.init_containers.as_deref()).unwrap_or(&[]);
        inits.iter().any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
    }
    fn conditions(&self) -> impl Iterator<Item = ConditionRef<'_>> {
        let cs = self.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
        cs.iter().map(|c| ConditionRef {
            type_: &c.type_,
            status: &c.status,
            last_transition_time: c.last_transition_time.as_ref(),
        })
    }
    fn container_statuses(&self) -> impl Iterator<Item = ContainerRef<'_>> {
        let cs = self.status.as_ref().and_then(|s| s.container_statuses.as_deref()).unwrap_or(&[]);
        cs.iter().map(pod_container_ref)
    }
    fn init_container_statuses(&self) -> impl Iterator<Item = ContainerRef<'_>> {
        let cs = self.status.as_ref().and_then(|s| s.init_container_statuses.as_deref()).unwrap_or(&[]);
        cs.iter().map(pod_container_ref)
    }
}

macro_rules! forward_pod_facts {
    ($($ty:ty),*) => {$(
        impl<T: PodFacts + ?Sized> PodFacts for $ty {
            fn pod_meta(&self) -> &ObjectMeta {
                (**self).pod_meta()
            }
            fn label(&self, key: &str) -> Option<&str> {
                (**self).label(key)
            }
            fn annotation(&self, key: &str) -> Option<&str> {
                (**self).annotation(key)
            }
            fn owner_references(&self) -> &[OwnerReference] {
                (**self).owner_references()
            }
            fn phase(&self) -> &str {
                (**self).phase()
            }
            fn node_name(&self) -> &str {
                (**self).node_name()
            }
            fn is_sidecar(&self, name: &str) -> bool {
                (**self).is_sidecar(name)
            }
            fn conditions(&self) -> impl Iterator<Item = ConditionRef<'_>> {
                (**self).conditions()
            }
            fn container_statuses(&self) -> impl Iterator<Item = ContainerRef<'_>> {
                (**self).container_statuses()
            }
            fn init_container_statuses(&self) -> impl Iterator<Item = ContainerRef<'_>> {
                (**self).init_container_statuses()
            }
        }
    )*};
}
forward_pod_facts!(&T, Arc<T>);

/// Pods the pure core accepts: cached pods as they are, whole `Pod`s (tests) converted.
pub trait ToCached {
    /// This pod as a [`CachedPod`].
    fn to_cached(&self) -> Cow<'_, CachedPod>;
}

impl ToCached for CachedPod {
    fn to_cached(&self) -> Cow<'_, CachedPod> {
        Cow::Borrowed(self)
    }
}

impl ToCached for Pod {
    fn to_cached(&self) -> Cow<'_, CachedPod> {
        Cow::Owned(self.into())
    }
}

impl<T: ToCached + ?Sized> ToCached for &T {
    fn to_cached(&self) -> Cow<'_, CachedPod> {
        (**self).to_cached()
    }
}

impl<T: ToCached + ?Sized> ToCached for Arc<T> {
    fn to_cached(&self) -> Cow<'_, CachedPod> {
        (**self).to_cached()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::adopt::claim;
    use crate::job::kind::{controller_of, job_controller_uid};
    use crate::job::pod_index::index_key;
    use crate::job::pods;
    use crate::job::policy::match_pod_failure_policy;
    use crate::job::testing::JobBuilder;
    use k8s_openapi::api::batch::v1::PodFailurePolicy;
    use serde_json::json;

    /// A pod of an Indexed Job as kube-apiserver serves it, with everything the controller never
    /// reads (managedFields, foreign annotations, a full spec, container details) around what it does.
    fn real_pod_json() -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "pi-2-x7k2p",
                "generateName": "pi-2-",
                "namespace": "default",
                "uid": "0c5d5a70-2b27-4c8e-9d4b-2f1f8d7f4e11",
                "resourceVersion": "4242",
                "generation": 1,
                "creationTimestamp": "2024-05-01T10:00:00Z",
                "deletionTimestamp": "2024-05-01T10:05:30Z",
                "deletionGracePeriodSeconds": 30,
                "labels": {
                    "batch.kubernetes.io/controller-uid": "uid-pi",
                    "batch.kubernetes.io/job-name": "pi",
                    "controller-uid": "uid-pi",
                    "job-name": "pi",
                    "batch.kubernetes.io/job-completion-index": "7"
                },
                "annotations": {
                    "batch.kubernetes.io/job-completion-index": "2",
                    "batch.kubernetes.io/job-index-failure-count": "3",
                    "batch.kubernetes.io/job-index-ignored-failure-count": "1",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"big\": \"blob\"}",
                    "example.com/nested-looking": "{\"a\": [1, 2, {\"b\": null}]}"
                },
                "finalizers": ["example.com/keep", "batch.kubernetes.io/job-tracking"],
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "uid-cm"},
                    {"apiVersion": "batch/v1", "kind": "Job", "name": "pi", "uid": "uid-pi",
                     "controller": true, "blockOwnerDeletion": true}
                ],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                    "apiVersion": "v1", "time": "2024-05-01T10:00:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}]
            },
            "spec": {
                "nodeName": "node-3",
                "restartPolicy": "Never",
                "initContainers": [
                    {"name": "setup", "image": "busybox", "command": ["true"]},
                    {"name": "logger", "image": "busybox", "restartPolicy": "Always",
                     "readinessProbe": {"exec": {"command": ["true"]}}}
                ],
                "containers": [{"name": "main", "image": "perl", "command": ["perl", "-e", "print 1"],
                    "env": [{"name": "A", "value": "b"}], "resources": {"limits": {"cpu": "1"}},
                    "securityContext": {"runAsNonRoot": true}}],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "tolerations": [{"key": "k", "operator": "Exists"}]
            },
            "status": {
                "phase": "Failed",
                "hostIP": "10.0.0.3",
                "podIP": "10.1.0.9",
                "startTime": "2024-05-01T10:00:01Z",
                "conditions": [
                    {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                     "lastTransitionTime": "2024-05-01T10:04:00Z"},
                    {"type": "Ready", "status": "False", "reason": "PodFailed",
                     "lastTransitionTime": "2024-05-01T10:04:30Z"},
                    {"type": "example.com/Custom", "status": "True"}
                ],
                "initContainerStatuses": [
                    {"name": "setup", "image": "busybox", "imageID": "sha", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                        "startedAt": "2024-05-01T10:00:02Z", "finishedAt": "2024-05-01T10:00:03Z"}}},
                    {"name": "logger", "image": "busybox", "imageID": "sha", "ready": false, "restartCount": 2,
                     "state": {"terminated": {"exitCode": 137, "reason": "Error",
                        "startedAt": "2024-05-01T10:00:03Z", "finishedAt": "2024-05-01T10:04:20Z"}}}
                ],
                "containerStatuses": [
                    {"name": "main", "image": "perl", "imageID": "sha", "ready": false, "restartCount": 1,
                     "lastState": {"terminated": {"exitCode": 5, "finishedAt": "2024-05-01T10:01:00Z"}},
                     "state": {"terminated": {"exitCode": 42, "reason": "Error", "message": "boom",
                        "startedAt": "2024-05-01T10:01:01Z", "finishedAt": "2024-05-01T10:04:10Z"}}}
                ]
            }
        })
    }

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn rule(action: &str, on: serde_json::Value) -> serde_json::Value {
        let mut r = json!({"action": action});
        r.as_object_mut().unwrap().extend(on.as_object().unwrap().clone());
        r
    }

    /// Failure policies that tell every podFailurePolicy input apart: exit codes of regular and
    /// init containers, by name or not, In and NotIn, and pod conditions.
    fn policies() -> Vec<PodFailurePolicy> {
        let exit = |op: &str, values: &[i32], name: Option<&str>| json!({"onExitCodes": {"operator": op, "values": values, "containerName": name}});
        let conds = |t: &str, s: &str| json!({"onPodConditions": [{"type": t, "status": s}]});
        [
            vec![rule("FailJob", exit("In", &[42], None))],
            vec![rule("FailJob", exit("In", &[137], Some("logger")))],
            vec![rule("Ignore", exit("NotIn", &[42, 137], None))],
            vec![rule("FailIndex", exit("In", &[5], None))],
            vec![rule("Count", conds("DisruptionTarget", "True"))],
            vec![rule("FailJob", conds("example.com/Custom", "True"))],
            vec![rule("Ignore", conds("Ready", "True")), rule("FailJob", exit("NotIn", &[1], Some("main")))],
        ]
        .into_iter()
        .map(|rules| serde_json::from_value(json!({"rules": rules})).unwrap())
        .collect()
    }

    /// Every fact the controller reads, through the accessor layer.
    fn facts<P: PodFacts>(p: &P) -> String {
        let job = JobBuilder::new("pi").pod_failure_policy(vec![]).build();
        let plain_job = JobBuilder::new("pi").build();
        let policy: Vec<_> = policies().iter().map(|pol| match_pod_failure_policy(Some(pol), p)).collect();
        format!(
            "{:?}",
            (
                (pods::name(p), pods::uid(p), pods::phase(p), pods::is_terminal(p), pods::is_active(p)),
                (pods::is_terminating(p), pods::has_tracking_finalizer(p), pods::is_ready(p)),
                (pods::completion_index(p), pods::index_failure_count(p), pods::index_ignored_failure_count(p)),
                (pods::restart_count(p), pods::finished_time(p), pods::is_pod_failed(p, &job)),
                (pods::is_pod_failed(p, &plain_job), claim(&plain_job, p), controller_of(p), job_controller_uid(p)),
                (index_key(p), p.node_name(), p.pod_meta().resource_version.as_deref(), policy),
                (p.label("job-name"), p.label("batch.kubernetes.io/job-completion-index"), p.label("absent")),
                (p.owner_references(), p.annotation(JOB_COMPLETION_INDEX), p.annotation("other")),
            )
        )
    }

    #[test]
    fn decoding_real_pod_json_keeps_every_fact_the_controller_reads() {
        let value = real_pod_json();
        let pod: Pod = serde_json::from_value(value.clone()).unwrap();
        let decoded: CachedPod = serde_json::from_value(value).unwrap();
        assert_eq!(decoded, CachedPod::from(pod.clone()), "decode and conversion keep the same");
        assert_eq!(facts(&decoded), facts(&pod));

        // What is kept, field by field.
        let m = &decoded.metadata;
        assert_eq!((m.name.as_deref(), m.namespace.as_deref()), (Some("pi-2-x7k2p"), Some("default")));
        assert_eq!(m.resource_version.as_deref(), Some("4242"));
        assert_eq!(m.creation_timestamp, Some(time("2024-05-01T10:00:00Z")));
        assert_eq!(
            (m.deletion_timestamp.clone(), m.deletion_grace_period_seconds),
            (Some(time("2024-05-01T10:05:30Z")), Some(30))
        );
        assert_eq!(decoded.labels.to_map(), pod.metadata.labels, "every label: selectors may name any of them");
        assert_eq!(decoded.label("job-name"), Some("pi"));
        assert_eq!((m.labels.as_ref(), m.annotations.as_ref(), m.owner_references.as_ref()), (None, None, None));
        let annotations: Vec<_> = decoded.annotations.0.iter().map(|(k, v)| (*k, &**v)).collect();
        assert_eq!(
            annotations,
            [
                ("batch.kubernetes.io/job-completion-index", "2"),
                ("batch.kubernetes.io/job-index-failure-count", "3"),
                ("batch.kubernetes.io/job-index-ignored-failure-count", "1"),
            ]
        );
        assert_eq!(m.finalizers, pod.metadata.finalizers, "all finalizers: adoption patches append to them");
        assert_eq!(
            Some(decoded.owner_references().to_vec()),
            pod.metadata.owner_references,
            "all owners: release patches index them"
        );
        assert_eq!(decoded.annotation("kubectl.kubernetes.io/last-applied-configuration"), None);
        assert_eq!(pod.annotation("kubectl.kubernetes.io/last-applied-configuration"), None, "as the cache");
        assert_eq!((m.managed_fields.as_ref(), m.generate_name.as_ref(), m.generation), (None, None, None));
        assert_eq!(decoded.node_name.as_deref(), Some("node-3"));
        assert_eq!(decoded.sidecars, ["logger"], "the init container with restartPolicy Always only");
        assert_eq!(decoded.phase.as_deref(), Some("Failed"));
        let conds: Vec<_> = decoded.conditions.iter().map(|c| (&*c.type_, &*c.status)).collect();
        assert_eq!(conds, [("DisruptionTarget", "True"), ("Ready", "False"), ("example.com/Custom", "True")]);
        assert_eq!(decoded.conditions[1].last_transition_time, Some(time("2024-05-01T10:04:30Z")));
        let main = &decoded.container_statuses[0];
        assert_eq!((&*main.name, main.restart_count), ("main", 1));
        assert_eq!(
            main.terminated,
            Some(Terminated { exit_code: 42, finished_at: Some(time("2024-05-01T10:04:10Z")) })
        );
        let inits: Vec<_> = decoded
            .init_container_statuses
            .iter()
            .map(|c| (&*c.name, c.restart_count, c.terminated.as_ref().map(|t| t.exit_code)))
            .collect();
        assert_eq!(inits, [("setup", 0, Some(0)), ("logger", 2, Some(137))]);

        // The facts themselves, as upstream defines them.
        assert_eq!(pods::completion_index(&decoded), Some(2), "from the annotation, not the label (7)");
        assert_eq!(pods::index_absolute_failure_count(&decoded), 4);
        assert_eq!(pods::restart_count(&decoded), 3);
        assert_eq!(
            pods::finished_time(&decoded),
            pods::to_chrono(&time("2024-05-01T10:04:20Z")),
            "every container terminated: the latest finish, the sidecar's"
        );
        assert!(
            pods::is_terminal(&decoded) && !pods::is_terminating(&decoded) && pods::has_tracking_finalizer(&decoded)
        );
        let fail_job_on_sidecar = &policies()[1];
        let m = match_pod_failure_policy(Some(fail_job_on_sidecar), &decoded);
        assert_eq!(
            m.fail_job_message.as_deref(),
            Some(
                "Container logger for pod default/pi-2-x7k2p failed with exit code 137 matching FailJob rule at index 0"
            )
        );
    }

    #[test]
    fn pods_missing_pieces_decode_as_the_whole_pod_reads_them() {
        let base = real_pod_json();
        let mut variants = vec![];
        let mut v = base.clone();
        v["metadata"]["annotations"] = json!({"other": "x"});
        variants.push(("foreign annotations only", v));
        let mut v = base.clone();
        v["metadata"]["annotations"] = serde_json::Value::Null;
        v["metadata"]["labels"] = serde_json::Value::Null;
        variants.push(("null maps", v));
        let mut v = base.clone();
        v["metadata"]["annotations"].as_object_mut().unwrap().remove("batch.kubernetes.io/job-completion-index");
        variants.push(("completion index as a label only", v));
        let mut v = base.clone();
        v["status"]["containerStatuses"][0]["state"] = json!({"running": {"startedAt": "2024-05-01T10:01:01Z"}});
        variants.push(("main still running: finish time from Ready=False", v));
        let mut v = base.clone();
        v["status"]["conditions"] = json!([]);
        v["status"]["containerStatuses"] = serde_json::Value::Null;
        v["status"]["initContainerStatuses"] = serde_json::Value::Null;
        variants.push(("no statuses: deletionTimestamp minus grace period", v));
        let mut v = base.clone();
        v["metadata"].as_object_mut().unwrap().remove("deletionTimestamp");
        v["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True",
            "lastTransitionTime": "2024-05-01T10:00:09Z"}]});
        variants.push(("running and ready", v));
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove("spec");
        v.as_object_mut().unwrap().remove("status");
        variants.push(("no spec nor status: the sidecar is unknown", v));
        let mut v = base.clone();
        v["metadata"]["ownerReferences"] = json!([]);
        v["metadata"]["finalizers"] = serde_json::Value::Null;
        variants.push(("orphan without finalizers", v));
        for (name, v) in variants {
            let pod: Pod = serde_json::from_value(v.clone()).unwrap();
            let decoded: CachedPod = serde_json::from_value(v).unwrap();
            assert_eq!(decoded, CachedPod::from(pod.clone()), "{name}");
            assert_eq!(facts(&decoded), facts(&pod), "{name}");
        }
        let mut v = base.clone();
        v["metadata"]["annotations"].as_object_mut().unwrap().remove("batch.kubernetes.io/job-completion-index");
        assert_eq!(pods::completion_index(&serde_json::from_value::<CachedPod>(v).unwrap()), None);
    }

    #[test]
    fn removal_order_is_the_same_on_cached_pods() {
        use crate::job::testing::{PodBuilder, at};
        let job = JobBuilder::new("j").build();
        let all = [
            PodBuilder::for_job(&job).running().ready().node("n").build(),
            PodBuilder::for_job(&job).pending().build(),
            PodBuilder::for_job(&job).running().node("n").restarts(3).build(),
            PodBuilder::for_job(&job).running().node("n").created_at(at(5)).build(),
            PodBuilder::for_job(&job).running().ready().node("n").condition_at("Ready", "True", at(9)).build(),
        ];
        let mut whole: Vec<&Pod> = all.iter().collect();
        whole.sort_by(|a, b| pods::removal_order(*a, *b));
        let decoded: Vec<CachedPod> =
            all.iter().map(|p| serde_json::from_value(serde_json::to_value(p).unwrap()).unwrap()).collect();
        let mut cached: Vec<&CachedPod> = decoded.iter().collect();
        cached.sort_by(|a, b| pods::removal_order(*a, *b));
        assert_eq!(
            cached.iter().map(|p| pods::name(*p)).collect::<Vec<_>>(),
            whole.iter().map(|p| pods::name(*p)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_cached_pod_is_a_fraction_of_a_pod() {
        // The inline size of the cache entry (its Arc allocation); heap strings come on top.
        assert!(
            std::mem::size_of::<CachedPod>() * 3 < std::mem::size_of::<Pod>(),
            "{} vs {}",
            std::mem::size_of::<CachedPod>(),
            std::mem::size_of::<Pod>()
        );
    }

    #[test]
    fn hostile_annotation_values_are_skipped_unbuilt_or_rejected_as_the_pod_is() {
        let mut v = real_pod_json();
        let deep = (0..100).fold(json!(1), |acc, _| json!([acc]));
        v["metadata"]["annotations"]["deep"] = deep;
        // kube-apiserver never serves a non-string annotation; a whole Pod refuses it, the cache
        // entry skips what it never reads.
        assert!(serde_json::from_value::<Pod>(v.clone()).is_err());
        let decoded: CachedPod = serde_json::from_value(v).unwrap();
        assert_eq!(pods::completion_index(&decoded), Some(2));
        let mut v = real_pod_json();
        v["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] = json!(2);
        assert!(serde_json::from_value::<CachedPod>(v).is_err(), "a kept annotation must be a string");
    }
}
