//! Which watch events start a CronJob sync: upstream's event handlers (`updateCronJob`,
//! `addJob`, `updateJob`, `deleteJob` of `cronjob_controllerv2.go`) without the syncs that provably
//! change nothing because they only see the controller's own writes.
//!
//! - A CronJob event syncs unless the CronJob (all but `resourceVersion` and `managedFields`)
//!   equals what the controller already synced or wrote itself ([`Triggers::cronjob_changed`],
//!   [`Triggers::writing`]). So the watch event of our own status write syncs nothing (upstream's
//!   handler requeues on every update; there that sync is a no-op), while any other change (spec,
//!   metadata, deletion, anyone else's status edit) syncs at once, as upstream.
//! - A Job event syncs its CronJob unless the Job is unfinished, not being deleted, and either in
//!   the CronJob's known `status.active` or being created by the controller right now
//!   ([`Triggers::job_changed`]): for such a Job a sync has nothing to do (it is neither
//!   unexpected, nor finished, nor missing, nor history). A Job's deletion always syncs.
//!
//! Nothing here decides what a sync does; a skipped event only saves a sync whose outcome would
//! have been "nothing to do, requeue at the next slot", which the CronJob already has.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use std::hash::{Hash, Hasher};

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, CronJobStatus, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::sync::{finished, in_active};

/// A CronJob as a sync sees it: everything but `resourceVersion` and `managedFields` (which every
/// write changes), with an empty `status.active` the same as none (the API server may drop it).
/// A 64-bit hash rather than a copy: 10,000 CronJobs cost 80 KB, not megabytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint(u64);

impl Fingerprint {
    fn of(cj: &CronJob, status: Option<&CronJobStatus>) -> Self {
        /// The CronJob as hashed: the spec and status borrowed, not copied.
        #[derive(serde::Serialize)]
        struct Hashed<'a> {
            metadata: ObjectMeta,
            spec: Option<&'a CronJobSpec>,
            status: Option<std::borrow::Cow<'a, CronJobStatus>>,
        }
        let metadata = ObjectMeta { resource_version: None, managed_fields: None, ..cj.metadata.clone() };
        let status = status.map(|s| {
            if s.active.as_ref().is_some_and(Vec::is_empty) {
                std::borrow::Cow::Owned(CronJobStatus { active: None, ..s.clone() })
            } else {
                std::borrow::Cow::Borrowed(s)
            }
        });
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_vec(&Hashed { metadata, spec: cj.spec.as_ref(), status }).unwrap_or_default().hash(&mut h);
        Self(h.finish())
    }
}

/// The namespace and name of a Job or CronJob.
type Key = (String, String);

/// The controller's event filter (shared by the watch streams and the syncs).
#[derive(Default)]
pub struct Triggers {
    /// By CronJob uid: what the last event that synced it, or our own write, left it as.
    seen: Mutex<HashMap<String, Fingerprint>>,
    /// By CronJob (namespace, name): the Jobs a sync is creating right now.
    creating: Mutex<HashMap<Key, HashSet<String>>>,
    /// While a relist is under way: the uids it has shown (the rest are gone).
    relisted: Mutex<Option<HashSet<String>>>,
}

impl Triggers {
    /// Whether this watch event of `cj` (applied or relisted) needs a sync, and records it.
    pub fn cronjob_changed(&self, cj: &CronJob) -> bool {
        let Some(uid) = cj.metadata.uid.as_deref() else { return true };
        if let Some(r) = self.relisted.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            r.insert(uid.to_string());
        }
        let fp = Fingerprint::of(cj, cj.status.as_ref());
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get(uid) {
            Some(old) if *old == fp => false,
            _ => {
                seen.insert(uid.to_string(), fp);
                true
            }
        }
    }

    /// A CronJob is gone: forget it.
    pub fn cronjob_deleted(&self, cj: &CronJob) {
        if let Some(uid) = cj.metadata.uid.as_deref() {
            self.seen.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
        }
        let key = (cj.metadata.namespace.clone().unwrap_or_default(), cj.metadata.name.clone().unwrap_or_default());
        self.creating.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
    }

    /// A relist of the CronJobs begins.
    pub fn relist_begin(&self) {
        *self.relisted.lock().unwrap_or_else(|e| e.into_inner()) = Some(HashSet::new());
    }

    /// The relist is complete: forget the CronJobs it did not show (deleted while unwatched).
    pub fn relist_done(&self) {
        let Some(shown) = self.relisted.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).retain(|uid, _| shown.contains(uid));
    }

    /// A sync of `cj` (as it read it) is about to write `status`: the watch event of that write is
    /// ours and syncs nothing. Recorded before the write, so that it holds however soon the event
    /// arrives; if the write fails the sync is retried anyway, and any other change still differs.
    pub fn writing(&self, cj: &CronJob, status: &CronJobStatus) {
        let Some(uid) = cj.metadata.uid.as_deref() else { return };
        let fp = Fingerprint::of(cj, Some(status));
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).insert(uid.to_string(), fp);
    }

    /// A sync of the CronJob `owner` (namespace, name) is creating the Job `job` (until
    /// [`Self::done_creating`]).
    pub fn creating(&self, owner: &Key, job: &str) {
        let mut c = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        c.entry(owner.clone()).or_default().insert(job.to_string());
    }

    /// The sync of `owner` is over (its status write, if any, lists what it created).
    pub fn done_creating(&self, owner: &Key) {
        self.creating.lock().unwrap_or_else(|e| e.into_inner()).remove(owner);
    }

    /// Whether an applied (not deleted) `job`, controlled by the CronJob `owner` (namespace, name)
    /// whose freshest known status is `known`, needs a sync of that CronJob.
    pub fn job_changed(&self, owner: &Key, job: &Job, known: Option<&CronJobStatus>) -> bool {
        if job.metadata.deletion_timestamp.is_some() || finished(job).is_some() {
            return true;
        }
        let uid = job.metadata.uid.as_deref().unwrap_or_default();
        if known.is_some_and(|s| in_active(s, uid)) {
            return false;
        }
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let c = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        !c.get(owner).is_some_and(|jobs| jobs.contains(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::CronJobSpec;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn cj(generation: i64, active: &[&str]) -> CronJob {
        let mut c = CronJob::default();
        c.metadata.uid = Some("cj-uid".into());
        c.metadata.name = Some("cj".into());
        c.metadata.namespace = Some("ns".into());
        c.metadata.generation = Some(generation);
        c.spec = Some(CronJobSpec { schedule: "* * * * *".into(), ..Default::default() });
        c.status = Some(status(active));
        c
    }

    fn status(active: &[&str]) -> CronJobStatus {
        CronJobStatus {
            active: Some(
                active.iter().map(|u| ObjectReference { uid: Some(u.to_string()), ..Default::default() }).collect(),
            ),
            ..Default::default()
        }
    }

    fn job(name: &str, uid: &str) -> Job {
        let mut j = Job::default();
        j.metadata.name = Some(name.into());
        j.metadata.uid = Some(uid.into());
        j
    }

    fn owner() -> Key {
        ("ns".into(), "cj".into())
    }

    #[test]
    fn our_own_status_write_syncs_nothing_but_every_other_change_does() {
        let t = Triggers::default();
        assert!(t.cronjob_changed(&cj(1, &[])), "first sight (start, relist)");
        assert!(!t.cronjob_changed(&cj(1, &[])), "the same again (a relist, a no-op write)");
        // Our sync writes a status with Job j1 active: its watch event is ours.
        t.writing(&cj(1, &[]), &status(&["j1"]));
        assert!(!t.cronjob_changed(&cj(1, &["j1"])));
        // A spec change (generation), someone else's status edit, a deletion: each syncs once.
        assert!(t.cronjob_changed(&cj(2, &["j1"])));
        assert!(!t.cronjob_changed(&cj(2, &["j1"])));
        assert!(t.cronjob_changed(&cj(2, &[])), "a user cleared status.active");
        let mut deleting = cj(2, &[]);
        deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert!(t.cronjob_changed(&deleting));
        // Our write raced with a spec change: the event of the spec change differs from what we
        // wrote, so it syncs.
        t.writing(&cj(2, &[]), &status(&["j2"]));
        assert!(t.cronjob_changed(&cj(3, &["j2"])));
        // Forgotten on deletion: a CronJob of the same uid seen again syncs.
        t.cronjob_deleted(&cj(3, &["j2"]));
        assert!(t.cronjob_changed(&cj(3, &["j2"])));
        // A relist: what it shows unchanged syncs nothing; what it does not show is forgotten.
        let mut other = cj(1, &[]);
        other.metadata.uid = Some("other".into());
        assert!(t.cronjob_changed(&other));
        t.relist_begin();
        assert!(!t.cronjob_changed(&cj(3, &["j2"])));
        t.relist_done();
        assert!(!t.cronjob_changed(&cj(3, &["j2"])));
        assert!(t.cronjob_changed(&other), "deleted while unwatched, then seen again");
    }

    #[test]
    fn metadata_and_spec_changes_sync_resource_versions_and_managed_fields_do_not() {
        let t = Triggers::default();
        let mut c = cj(1, &[]);
        c.metadata.resource_version = Some("5".into());
        assert!(t.cronjob_changed(&c));
        c.metadata.resource_version = Some("6".into());
        c.metadata.managed_fields = Some(vec![Default::default()]);
        assert!(!t.cronjob_changed(&c), "a no-op write");
        c.metadata.annotations = Some([("touched".to_string(), "1".to_string())].into());
        assert!(t.cronjob_changed(&c), "an annotation (upstream requeues on any update)");
        c.spec.as_mut().unwrap().suspend = Some(true);
        assert!(t.cronjob_changed(&c), "the spec, even without a generation bump");
        // Our write emptied status.active; the API server returned it without the field.
        t.writing(&c, &status(&[]));
        c.status = Some(CronJobStatus::default());
        assert!(!t.cronjob_changed(&c));
    }

    #[test]
    fn job_events_sync_unless_the_job_is_a_known_or_in_flight_active_one() {
        let t = Triggers::default();
        let known = status(&["u1"]);
        // Unknown, unfinished: unexpected (or ours, not yet written): sync.
        assert!(t.job_changed(&owner(), &job("cj-2", "u2"), Some(&known)));
        assert!(t.job_changed(&owner(), &job("cj-2", "u2"), None));
        // Listed in status.active and running: nothing for a sync to do.
        assert!(!t.job_changed(&owner(), &job("cj-1", "u1"), Some(&known)));
        // Being created by a sync of this CronJob right now: its status write will list it.
        t.creating(&owner(), "cj-2");
        assert!(!t.job_changed(&owner(), &job("cj-2", "u2"), Some(&known)));
        assert!(t.job_changed(&("ns".into(), "other".into()), &job("cj-2", "u2"), None), "another CronJob's");
        t.done_creating(&owner());
        assert!(t.job_changed(&owner(), &job("cj-2", "u2"), Some(&known)));
        // Finished or being deleted: always.
        let mut done = job("cj-1", "u1");
        done.status = Some(k8s_openapi::api::batch::v1::JobStatus {
            conditions: Some(vec![k8s_openapi::api::batch::v1::JobCondition {
                type_: "Complete".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert!(t.job_changed(&owner(), &done, Some(&known)));
        let mut deleting = job("cj-1", "u1");
        deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert!(t.job_changed(&owner(), &deleting, Some(&known)));
    }
}
