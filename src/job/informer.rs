//! One watch and one cache of a Job kind for every controller of the process that reads Jobs (the
//! Job, TTL-after-finished and CronJob controllers), as kube-controller-manager's
//! `SharedInformerFactory` gives its controllers one Job informer: each Job is decoded once and
//! held once, instead of once per controller.
//!
//! The driver applies each watch event to the shared [`Store`] first, then hands it to every
//! subscriber in order, as an `Arc` of the stored object (no copy per subscriber). A re-list
//! (after a 410 or a broken watch) ends with a `Delete` for each object the store held before it
//! and no longer holds, just before its `InitDone` (client-go's `DeltaFIFO.Replace`): a subscriber learns of deletions it
//! missed without having to compare snapshots itself, which it could not do reliably since the
//! store it reads has already moved on by the time it sees an event.
//!
//! The cache keeps what the union of its readers read: the whole Job but `managedFields` (the Job
//! controller needs the pod template until the Job has finished; the TTL and CronJob controllers
//! read a subset of the rest).

use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt};
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::kind::JobKind;
use super::relist::Vanished;
use crate::lean::{Lean, WithoutSpec, unlean};

/// A subscriber's view: the shared cache and the events, each already applied to the cache.
pub struct Subscription<K: JobKind> {
    /// The cache every subscriber reads.
    pub store: Store<K>,
    /// The watch events in order (re-list deletions as `Delete`s just before `InitDone`).
    pub events: UnboundedReceiverStream<watcher::Event<Arc<K>>>,
}

impl<K: JobKind> Subscription<K> {
    /// A Job kind's informer with this one subscriber, driven on a task of its own (aborted when
    /// the handle is dropped): for a controller run on its own.
    pub fn standalone(client: &Client) -> (Self, Running) {
        let mut informer = JobInformer::<K>::new();
        let sub = informer.subscribe();
        (sub, informer.spawn(client))
    }

    /// As [`Self::standalone`], for a controller that reads only the Jobs' metadata and status
    /// (the CronJob controller run on its own): the cache holds each Job without its `spec`
    /// ([`WithoutSpec`]: not decoded, not copied into the cache, not kept).
    pub fn standalone_without_spec(client: &Client) -> (Self, Running) {
        let mut informer = JobInformer::<K>::new();
        let sub = informer.subscribe();
        (sub, informer.spawn_without_spec(client))
    }

    /// The objects applied (`Apply`, `InitApply`): what a kube-runtime `Controller` is triggered by.
    pub fn applied(
        events: impl Stream<Item = watcher::Event<Arc<K>>> + Send + 'static,
    ) -> impl Stream<Item = Arc<K>> + Send + 'static {
        events.filter_map(|ev| {
            futures::future::ready(match ev {
                watcher::Event::Apply(j) | watcher::Event::InitApply(j) => Some(j),
                _ => None,
            })
        })
    }
}

/// The shared informer of Job kind `K`, before it runs: subscribe, then [`JobInformer::spawn`].
pub struct JobInformer<K: JobKind> {
    store: Store<K>,
    writer: Writer<K>,
    subscribers: Vec<mpsc::UnboundedSender<watcher::Event<Arc<K>>>>,
}

impl<K: JobKind> Default for JobInformer<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// Aborts the informer's task when dropped.
pub struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the shared cache keeps of a Job: all but `managedFields`, which no reader reads, and a
/// finished Job's pod template ([`JobKind::drop_finished_template`]: read only to create pods, and
/// a finished Job creates none). A later version that is not finished comes whole, as every
/// watch event carries the whole object.
fn trim<K: JobKind>(job: &mut K) {
    job.meta_mut().managed_fields = None;
    job.drop_finished_template();
}

impl<K: JobKind> JobInformer<K> {
    /// An informer with no subscribers yet.
    pub fn new() -> Self {
        let (store, writer) = reflector::store::<K>();
        Self { store, writer, subscribers: Vec::new() }
    }

    /// A new subscriber (before the informer runs; it sees every event from the first list on).
    pub fn subscribe(&mut self) -> Subscription<K> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.push(tx);
        Subscription { store: self.store.clone(), events: UnboundedReceiverStream::new(rx) }
    }

    /// Watches every Job of kind `K` through `client` on a new task, until the handle is dropped.
    pub fn spawn(self, client: &Client) -> Running {
        // Decoded without managedFields (the cache drops them anyway).
        let api: Api<Lean<K>> = Api::all(client.clone());
        let events = watcher(api, watcher::Config::default()).default_backoff().map_ok(unlean);
        Running(tokio::spawn(self.drive(events)))
    }

    /// As [`Self::spawn`], each Job decoded without its `spec` ([`WithoutSpec`]): only for
    /// subscribers that never read a Job's spec.
    pub fn spawn_without_spec(self, client: &Client) -> Running {
        let api: Api<WithoutSpec<K>> = Api::all(client.clone());
        let events = watcher(api, watcher::Config::default()).default_backoff().map_ok(unlean);
        Running(tokio::spawn(self.drive(events)))
    }

    /// Applies each event of `events` to the cache and hands it to every subscriber; watch errors
    /// are logged (the watcher retries with backoff). Ends when `events` ends or no subscriber
    /// is left.
    pub async fn drive(mut self, events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send) {
        let mut vanished = Vanished::default();
        let mut events = std::pin::pin!(events);
        while let Some(ev) = events.next().await {
            let mut ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(kind = %K::api_version(&()), error = %e, "Job watch error");
                    continue;
                }
            };
            if let watcher::Event::Apply(j) | watcher::Event::InitApply(j) | watcher::Event::Delete(j) = &mut ev {
                trim(j);
            }
            self.writer.apply_watcher_event(&ev);
            let gone = vanished.observe(&ev, &self.store);
            // Before the `InitDone` they follow from, so a subscriber that rebuilds an index of
            // its own at `InitDone` (keyed by name) does not lose the name's new object.
            for j in gone {
                self.send(watcher::Event::Delete(j));
            }
            let shared = match ev {
                // The stored object itself: one copy for the cache and every subscriber.
                watcher::Event::Apply(j) => {
                    let stored = self.store.get(&ObjectRef::from_obj(&j));
                    watcher::Event::Apply(stored.unwrap_or_else(|| Arc::new(j)))
                }
                watcher::Event::Delete(j) => watcher::Event::Delete(Arc::new(j)),
                watcher::Event::Init => watcher::Event::Init,
                watcher::Event::InitApply(j) => watcher::Event::InitApply(Arc::new(j)),
                watcher::Event::InitDone => watcher::Event::InitDone,
            };
            self.send(shared);
            if self.subscribers.is_empty() {
                return;
            }
        }
    }

    fn send(&mut self, ev: watcher::Event<Arc<K>>) {
        self.subscribers.retain(|tx| tx.send(ev.clone()).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    fn job(name: &str, uid: &str) -> Job {
        let mut j = Job::default();
        j.metadata.name = Some(name.into());
        j.metadata.namespace = Some("ns".into());
        j.metadata.uid = Some(uid.into());
        j.metadata.managed_fields = Some(vec![ManagedFieldsEntry { manager: Some("m".into()), ..Default::default() }]);
        j
    }

    fn describe(ev: &watcher::Event<Arc<Job>>) -> String {
        let name = |j: &Arc<Job>| j.metadata.name.clone().unwrap_or_default();
        match ev {
            watcher::Event::Apply(j) => format!("apply {}", name(j)),
            watcher::Event::Delete(j) => format!("delete {}", name(j)),
            watcher::Event::Init => "init".into(),
            watcher::Event::InitApply(j) => format!("initapply {}", name(j)),
            watcher::Event::InitDone => "initdone".into(),
        }
    }

    async fn drain(sub: Subscription<Job>) -> Vec<String> {
        sub.events.map(|ev| describe(&ev)).collect().await
    }

    #[tokio::test]
    async fn every_subscriber_sees_every_event_in_order_and_shares_the_stored_copy() {
        let mut informer = JobInformer::<Job>::new();
        let (a, b) = (informer.subscribe(), informer.subscribe());
        let store = a.store.clone();
        let events = futures::stream::iter(vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(job("x", "1"))),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(job("y", "2"))),
            Ok(watcher::Event::Delete(job("x", "1"))),
        ]);
        let mut b_events = b.events;
        informer.drive(events).await;
        let want = ["init", "initapply x", "initdone", "apply y", "delete x"];
        let mut seen_b = Vec::new();
        while let Some(ev) = b_events.next().await {
            if let watcher::Event::Apply(j) = &ev {
                let stored = store.get(&ObjectRef::from_obj(j.as_ref())).expect("y is cached");
                assert!(Arc::ptr_eq(j, &stored), "the event carries the cached object, not a copy");
                assert!(j.metadata.managed_fields.is_none(), "managedFields are not cached");
            }
            seen_b.push(describe(&ev));
        }
        assert_eq!(seen_b, want);
        assert_eq!(drain(a).await, want);
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn a_relist_ends_with_a_delete_for_each_job_that_vanished() {
        let mut informer = JobInformer::<Job>::new();
        let sub = informer.subscribe();
        let store = sub.store.clone();
        let events = futures::stream::iter(vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(job("kept", "1"))),
            Ok(watcher::Event::InitApply(job("gone", "2"))),
            Ok(watcher::Event::InitApply(job("replaced", "3"))),
            Ok(watcher::Event::InitDone),
            // The watch broke; the re-list misses "gone" and has "replaced" with a new uid.
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(job("kept", "1"))),
            Ok(watcher::Event::InitApply(job("replaced", "4"))),
            Ok(watcher::Event::InitDone),
        ]);
        informer.drive(events).await;
        let seen = drain(sub).await;
        assert_eq!(seen.len(), 11, "{seen:?}");
        let mut deleted: Vec<&str> = seen[8..10].iter().filter_map(|s| s.strip_prefix("delete ")).collect();
        deleted.sort();
        assert_eq!(deleted, ["gone", "replaced"], "{seen:?}");
        assert_eq!(seen[10], "initdone", "the deletions come before the re-list's InitDone");
        assert_eq!(store.len(), 2);
    }

    /// Finished Jobs of every shape the readers distinguish, and unfinished ones.
    fn shapes() -> Vec<(Job, bool)> {
        use crate::job::testing::{JobBuilder, at, t0};
        let complete = |b: JobBuilder| b.condition("Complete", "True", "", "").start_time(t0());
        let failed = |b: JobBuilder| {
            b.condition("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        };
        let mut ttl = complete(JobBuilder::new("ttl")).succeeded(1).build();
        ttl.spec.as_mut().unwrap().ttl_seconds_after_finished = Some(30);
        let mut completed_at = complete(JobBuilder::new("done-at")).succeeded(1).build();
        completed_at.status.as_mut().unwrap().completion_time = Some(crate::job::pods::to_time(at(5)));
        vec![
            (complete(JobBuilder::new("done")).succeeded(1).build(), true),
            (complete(JobBuilder::new("done-onfailure").restart_policy("OnFailure").backoff_limit(0)).build(), true),
            (
                failed(JobBuilder::new("failed").indexed().completions(4).backoff_limit_per_index(1)).failed(2).build(),
                true,
            ),
            (failed(JobBuilder::new("failed-deleting")).deleting().build(), true),
            (complete(JobBuilder::new("done-elsewhere")).managed_by("example.com/other").build(), true),
            (complete(JobBuilder::new("done-manual").manual_selector()).build(), true),
            (ttl, true),
            (completed_at, true),
            // Not finished: the template stays.
            (JobBuilder::new("running").restart_policy("OnFailure").backoff_limit(1).build(), false),
            (JobBuilder::new("failing").condition("FailureTarget", "True", "BackoffLimitExceeded", "m").build(), false),
            (
                JobBuilder::new("succeeding")
                    .condition("SuccessCriteriaMet", "True", "CompletionsReached", "m")
                    .build(),
                false,
            ),
            (JobBuilder::new("not-complete").condition("Complete", "False", "", "").build(), false),
        ]
    }

    /// Pods of `job` in every state a decision looks at.
    fn pods_of(job: &Job) -> Vec<k8s_openapi::api::core::v1::Pod> {
        use crate::job::testing::{PodBuilder, at};
        let other = crate::job::testing::JobBuilder::new("other").build();
        vec![
            PodBuilder::for_job(job).succeeded().finished_at(at(3)).build(),
            PodBuilder::for_job(job).failed().exit_code("main", 3).finished_at(at(4)).build(),
            PodBuilder::for_job(job).running().ready().restarts(2).build(),
            PodBuilder::for_job(job).pending().build(),
            PodBuilder::for_job(job).succeeded().no_finalizer().build(),
            PodBuilder::for_job(job).running().deleting().build(),
            PodBuilder::for_job(job).index(1).failed().build(),
            PodBuilder::for_job(job).orphan().build(),
            PodBuilder::for_job(job).orphan().no_finalizer().build(),
            PodBuilder::for_job(&other).build(),
        ]
    }

    #[test]
    fn a_finished_jobs_template_is_dropped_and_no_decision_changes() {
        use crate::job::testing::{at, test_config};
        use crate::job::{SyncContext, adopt, plan};
        use k8s_openapi::api::batch::v1::CronJobStatus;
        let configs = [test_config(), crate::job::Config::default()];
        for (full, finished) in shapes() {
            let name = full.metadata.name.clone().unwrap();
            let mut trimmed = full.clone();
            trim(&mut trimmed);
            let mut want = full.clone();
            want.metadata.managed_fields = None;
            if finished {
                want.spec.as_mut().unwrap().template = Default::default();
                assert_ne!(full.spec.as_ref().unwrap().template, want.spec.as_ref().unwrap().template);
            }
            assert_eq!(trimmed, want, "{name}: only the finished Job's template goes");
            let pods = pods_of(&full);
            let uids: Vec<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
            // All of them, none (pods to create), the restarted one (`restartPolicy: OnFailure`).
            let pod_sets = [pods.clone(), vec![], vec![pods[2].clone()]];
            let contexts = [
                SyncContext::default(),
                SyncContext { pending_finalizer_removals: [uids[0].clone()].into(), ..Default::default() },
                SyncContext {
                    expectations_satisfied: false,
                    expectations_expire_in: Some(std::time::Duration::from_secs(3)),
                    ..Default::default()
                },
            ];
            // The Job controller: the plan (pods created, deleted, finalizers removed, status,
            // events, requeue), the claim of each pod, the orphan handling.
            for config in &configs {
                for (sctx, pods) in contexts.iter().flat_map(|c| pod_sets.iter().map(move |p| (c, p))) {
                    for now in [at(0), at(10), at(100_000)] {
                        assert_eq!(
                            plan::plan_with(&trimmed, pods, now, config, sctx),
                            plan::plan_with(&full, pods, now, config, sctx),
                            "{name}"
                        );
                    }
                }
                for pod in &pods {
                    assert_eq!(
                        plan::orphan_needs_finalizer_removal(pod, Some(&trimmed), config),
                        plan::orphan_needs_finalizer_removal(pod, Some(&full), config),
                        "{name}"
                    );
                }
            }
            for pod in &pods {
                assert_eq!(adopt::claim(&trimmed, pod), adopt::claim(&full, pod), "{name}");
            }
            assert_eq!(<Job as JobKind>::selector(&trimmed), <Job as JobKind>::selector(&full));
            // The TTL controller.
            for now in [at(0), at(29), at(31), at(100_000)] {
                assert_eq!(crate::ttl::time_left(&trimmed, now), crate::ttl::time_left(&full, now), "{name}");
            }
            // The CronJob controller: finished, active list, history.
            use crate::cronjob::sync;
            assert_eq!(sync::finished(&trimmed), sync::finished(&full));
            let active = CronJobStatus { active: Some(vec![sync::job_ref(&full)]), ..Default::default() };
            let (mut a, mut b) = (active.clone(), active);
            let (oa, ob) = (sync::observe_jobs(&mut a, &[&trimmed]), sync::observe_jobs(&mut b, &[&full]));
            assert_eq!((a, format!("{oa:?}")), (b, format!("{ob:?}")), "{name}");
            let cj = k8s_openapi::api::batch::v1::CronJob {
                spec: Some(k8s_openapi::api::batch::v1::CronJobSpec {
                    successful_jobs_history_limit: Some(0),
                    failed_jobs_history_limit: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let names = |js: Vec<&Job>| js.iter().map(|j| j.metadata.name.clone()).collect::<Vec<_>>();
            assert_eq!(names(sync::history_to_delete(&cj, &[&trimmed])), names(sync::history_to_delete(&cj, &[&full])));
        }
    }

    #[test]
    fn a_custom_resource_job_keeps_its_template() {
        let (full, _) = shapes().swap_remove(0);
        let crd = <crate::crd::Job as JobKind>::from_batch(full);
        let mut trimmed = crd.clone();
        trim(&mut trimmed);
        assert_eq!(trimmed.spec, crd.spec, "its spec is validated whole on every sync");
    }

    #[tokio::test]
    async fn the_cache_holds_the_template_exactly_while_the_job_is_not_finished() {
        let (done, _) = shapes().swap_remove(0);
        let mut running = done.clone();
        running.status = None;
        let mut informer = JobInformer::<Job>::new();
        let sub = informer.subscribe();
        let store = sub.store.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = tokio::spawn(informer.drive(UnboundedReceiverStream::new(rx)));
        let mut events = sub.events;
        let key = ObjectRef::from_obj(&done);
        // Running, finished, then (a status writer took the condition back) running again.
        for (job, has_template) in [(&running, true), (&done, false), (&running, true)] {
            tx.send(Ok(watcher::Event::Apply(job.clone()))).unwrap();
            let Some(watcher::Event::Apply(seen)) = events.next().await else { panic!("an Apply") };
            let template = &seen.spec.as_ref().unwrap().template;
            assert_eq!(template.spec.is_some(), has_template, "the event");
            let want = if has_template { running.spec.as_ref().unwrap().template.clone() } else { Default::default() };
            assert_eq!(*template, want);
            let cached = store.get(&key).expect("cached");
            assert!(Arc::ptr_eq(&cached, &seen), "the event is the cached object");
        }
        drop(tx);
        driver.await.unwrap();
    }

    #[tokio::test]
    async fn it_stops_when_no_subscriber_is_left() {
        let mut informer = JobInformer::<Job>::new();
        drop(informer.subscribe());
        let forever = futures::stream::repeat_with(|| Ok(watcher::Event::Apply(job("x", "1"))));
        tokio::time::timeout(std::time::Duration::from_secs(30), informer.drive(forever))
            .await
            .expect("the driver ends once its subscribers are gone");
    }
}
