//! The Job kinds the controller reconciles: batch/v1 `Job` and `jobwright.dev/v1` `Job`
//! ([`crate::crd::Job`]), through one generic code path.
//!
//! Both kinds have batch/v1 Job's spec and status, so the pure core ([`super::plan_with`],
//! [`super::adopt::claim`], the TTL arithmetic) works on the batch view ([`JobKind::batch`]) and
//! only the shell knows the kind: which resource it watches, reads live and writes the status of,
//! the `apiVersion` of the pods' controller ownerReference and of the Events' `regarding`.
//!
//! | | batch/v1 | jobwright.dev/v1 |
//! |---|---|---|
//! | built-in controller | kube-controller-manager's, unless `spec.managedBy` hands the Job over | none |
//! | Jobs managed by default | `spec.managedBy: jobwright.dev/job-controller` (all with `manage_all`) | every Job except those whose `spec.managedBy` names another controller |
//!
//! Pods are shared: one pod reflector, index and expectations serve every kind (Job uids are
//! unique across kinds); a pod's controller ownerReference says which kind owns it
//! ([`owner_kind`]).

use std::borrow::Cow;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::batch::v1::Job as BatchJob;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Config;
use super::adopt::selector_matches_by;
use super::cached_pod::PodFacts;

/// Which Job kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KindId {
    /// batch/v1 `Job`.
    Batch,
    /// `jobwright.dev/v1` `Job`.
    Crd,
}

/// A Job kind the controller reconciles.
pub trait JobKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// Which kind this is.
    const ID: KindId;
    /// Whether a built-in controller owns Jobs of this kind that don't name another one in
    /// `spec.managedBy` (then only `manage_all` makes them ours).
    const HAS_BUILTIN_CONTROLLER: bool;

    /// The batch/v1 view (same metadata, spec and status) the pure core works on. For a custom
    /// resource it carries the defaults and generated selector kube-apiserver gives every batch/v1
    /// Job ([`crate::crd::Job::reconciled_batch`]).
    fn batch(&self) -> Cow<'_, BatchJob>;

    /// The object of this kind with the batch view's metadata, spec and status.
    fn from_batch(job: BatchJob) -> Self;

    /// The batch view's `spec.selector`, without building the whole view.
    fn selector(&self) -> Option<LabelSelector>;

    /// The Jobs to sync for a pod event (upstream's pod handlers): the pod's controller if it is a
    /// Job of this kind in the cache with the UID the reference names (`resolveControllerRef`: the
    /// pod of a deleted Job, or of an older Job of the same name, triggers nothing); for a pod
    /// without a controller (an adoption candidate, not being deleted), every Job of this kind in
    /// its namespace whose selector matches it (`getPodJobs`).
    fn triggered_by<P: PodFacts + ?Sized>(pod: &P, jobs: &Store<Self>) -> Vec<ObjectRef<Self>> {
        let meta = pod.pod_meta();
        let ns = meta.namespace.as_deref().unwrap_or_default();
        match controller_of(pod) {
            Some(r) if Self::owns(r) => {
                let job = ObjectRef::new(&r.name).within(ns);
                match jobs.get(&job) {
                    Some(j) if j.meta().uid.as_deref() == Some(r.uid.as_str()) => vec![job],
                    _ => vec![],
                }
            }
            Some(_) => vec![],
            None if meta.deletion_timestamp.is_some() => vec![],
            None => jobs
                .state()
                .iter()
                .filter(|j| j.meta().namespace.as_deref() == Some(ns))
                .filter(|j| j.selector().is_some_and(|s| selector_matches_by(&s, |k| pod.label(k))))
                .map(|j| ObjectRef::from_obj(&**j))
                .collect(),
        }
    }

    /// The controller settings for Jobs of this kind: without a built-in controller, Jobs with no
    /// `spec.managedBy` (or the built-in controller's value) are ours as with `manage_all`.
    fn config(config: &Config) -> Config {
        if Self::HAS_BUILTIN_CONTROLLER { config.clone() } else { Config { manage_all: true, ..config.clone() } }
    }

    /// The controller ownerReference of the Job's pods.
    fn controller_ref(job: &BatchJob) -> OwnerReference {
        OwnerReference {
            api_version: Self::api_version(&()).into_owned(),
            kind: Self::kind(&()).into_owned(),
            name: job.metadata.name.clone().unwrap_or_default(),
            uid: job.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// The reference Events about the Job carry (`regarding` / `involvedObject`), without the
    /// Job's resourceVersion (upstream's carries it): an event is the same event across the Job's
    /// status writes.
    fn event_ref(job: &BatchJob) -> ObjectReference {
        ObjectReference {
            api_version: Some(Self::api_version(&()).into_owned()),
            kind: Some(Self::kind(&()).into_owned()),
            name: job.metadata.name.clone(),
            namespace: job.metadata.namespace.clone(),
            uid: job.metadata.uid.clone(),
            resource_version: None,
            field_path: None,
        }
    }

    /// Whether `r` names a Job of this kind.
    fn owns(r: &OwnerReference) -> bool {
        r.api_version == Self::api_version(&()) && r.kind == Self::kind(&())
    }

    /// Drops from a finished Job what no reader of the shared Job cache ([`super::informer`])
    /// reads once the Job has finished: its pod template. None by default: a `jobwright.dev/v1`
    /// Job's whole spec is validated before each sync (nothing else validates it), finished or not.
    fn drop_finished_template(&mut self) {}
}

impl JobKind for BatchJob {
    const ID: KindId = KindId::Batch;
    const HAS_BUILTIN_CONTROLLER: bool = true;

    fn batch(&self) -> Cow<'_, BatchJob> {
        Cow::Borrowed(self)
    }

    fn from_batch(job: BatchJob) -> Self {
        job
    }

    fn selector(&self) -> Option<LabelSelector> {
        self.spec.as_ref()?.selector.clone()
    }

    /// A finished batch/v1 Job's template: only [`super::template`] (pod creation) and
    /// `restartPolicy` (the backoff count of running pods) read it, both for unfinished Jobs only
    /// (the plan of a finished Job removes finalizers, nothing else); kube-apiserver validated it.
    fn drop_finished_template(&mut self) {
        if super::status::is_finished(self)
            && let Some(spec) = self.spec.as_mut()
        {
            spec.template = Default::default();
        }
    }
}

impl JobKind for crate::crd::Job {
    const ID: KindId = KindId::Crd;
    const HAS_BUILTIN_CONTROLLER: bool = false;

    fn batch(&self) -> Cow<'_, BatchJob> {
        Cow::Owned(self.reconciled_batch())
    }

    fn from_batch(job: BatchJob) -> Self {
        crate::crd::Job::from_batch(job)
    }

    fn selector(&self) -> Option<LabelSelector> {
        if self.spec.manual_selector == Some(true) {
            self.spec.selector.clone()
        } else {
            Some(crate::crd::generated_selector(self.metadata.uid.as_deref().unwrap_or_default()))
        }
    }
}

/// The Job kind an ownerReference names, if it names one.
pub fn owner_kind(r: &OwnerReference) -> Option<KindId> {
    if BatchJob::owns(r) {
        Some(KindId::Batch)
    } else if crate::crd::Job::owns(r) {
        Some(KindId::Crd)
    } else {
        None
    }
}

/// The pod's controller ownerReference, if any.
pub fn controller_of<P: PodFacts + ?Sized>(pod: &P) -> Option<&OwnerReference> {
    pod.owner_references().iter().find(|r| r.controller == Some(true))
}

/// The uid of the pod's controller if it is a Job of any kind.
pub fn job_controller_uid<P: PodFacts + ?Sized>(pod: &P) -> Option<&str> {
    controller_of(pod).filter(|r| owner_kind(r).is_some()).map(|r| r.uid.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::testing::JobBuilder;

    #[test]
    fn references_name_the_kind() {
        let job = JobBuilder::new("pi").build();
        let b = <BatchJob as JobKind>::controller_ref(&job);
        let c = <crate::crd::Job as JobKind>::controller_ref(&job);
        assert_eq!((b.api_version.as_str(), b.kind.as_str()), ("batch/v1", "Job"));
        assert_eq!((c.api_version.as_str(), c.kind.as_str()), ("jobwright.dev/v1", "Job"));
        assert_eq!((c.name.as_str(), c.uid.as_str(), c.controller), ("pi", "uid-pi", Some(true)));
        assert_eq!(owner_kind(&b), Some(KindId::Batch));
        assert_eq!(owner_kind(&c), Some(KindId::Crd));
        let rs = OwnerReference { api_version: "apps/v1".into(), kind: "ReplicaSet".into(), ..b.clone() };
        assert_eq!(owner_kind(&rs), None);
        let r = <crate::crd::Job as JobKind>::event_ref(&job);
        assert_eq!(r.api_version.as_deref(), Some("jobwright.dev/v1"));
        assert_eq!((r.name.as_deref(), r.namespace.as_deref()), (Some("pi"), Some("default")));
    }

    #[test]
    fn a_pod_triggers_its_controller_only_while_that_job_is_cached() {
        use kube::runtime::{reflector, watcher};
        let job = JobBuilder::new("pi").build();
        let pod = crate::job::testing::PodBuilder::for_job(&job).build();
        let (store, mut writer) = reflector::store::<BatchJob>();
        assert!(BatchJob::triggered_by(&pod, &store).is_empty(), "Job not (or no longer) cached");
        writer.apply_watcher_event(&watcher::Event::Apply(job.clone()));
        assert_eq!(BatchJob::triggered_by(&pod, &store), vec![ObjectRef::from_obj(&job)]);
        let mut newer = job.clone();
        newer.metadata.uid = Some("uid-pi-2".into());
        writer.apply_watcher_event(&watcher::Event::Apply(newer));
        assert!(BatchJob::triggered_by(&pod, &store).is_empty(), "the pod belongs to the older Job of that name");
    }

    #[test]
    fn a_kind_without_builtin_controller_manages_unset_managed_by() {
        let unset = JobBuilder::new("c").build();
        let other = JobBuilder::new("d").managed_by("example.com/other").build();
        let cluster = Config::default();
        assert!(!<BatchJob as JobKind>::config(&cluster).manages(&unset));
        let crd = <crate::crd::Job as JobKind>::config(&cluster);
        assert!(crd.manages(&unset) && !crd.manages(&other));
    }

    #[test]
    fn batch_view_round_trips() {
        let job = JobBuilder::new("x").build();
        let crd = <crate::crd::Job as JobKind>::from_batch(job.clone());
        assert_eq!(crd.to_batch(), job);
        assert!(matches!(job.batch(), Cow::Borrowed(_)));
    }
}
