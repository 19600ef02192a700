//! The Job controller's event recorder (events.k8s.io/v1), deduplicating and aggregating as
//! client-go's `EventCorrelator` does for upstream's Job controller:
//! - an event with the same Job, type, reason and message as one already written is that event
//!   again: its `series` count grows (a merge patch), its message unchanged;
//! - similar events (same Job, type and reason, another message) stay separate events until the
//!   [`MAX_SIMILAR`](super::events::MAX_SIMILAR)th different message in the window, from which on
//!   they are one "(combined from similar events): ..." event whose count grows and whose message
//!   is the latest, as upstream patches it in.
//!
//! Before all that, client-go's spam filter ([`SpamFilter`]) drops what a Job's budget has no
//! token for: 25 pod events per Job, then one per five minutes, so a 10,000-pod Job makes about 25
//! event writes, not 10,000; its lifecycle events (`Completed`, `Suspended`...) have a budget of
//! their own.
//!
//! Writes of one event are serialised (a per-event async lock), so two syncs publishing the same
//! event at once make one event with count 2, never two events. Publishing never fails a sync:
//! errors are logged at debug level.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Patch, PatchParams, PostParams};

use super::events::{Correlated, EventType, JobEvent, Similar, SpamFilter};

/// events.k8s.io/v1 refuses a `note` over 1 KiB.
const MAX_NOTE: usize = 1024;

/// Which event a [`JobEvent`] is, within one Job: type, reason and message (the combined message
/// of a group is one event whatever pod it names last).
type Key = (EventType, String, Option<String>);

/// An event this recorder wrote.
#[derive(Debug)]
struct Written {
    name: String,
    count: i32,
}

type Slot = Arc<tokio::sync::Mutex<Option<Written>>>;

/// How many Jobs the recorder keeps state for: client-go's correlator keeps its spam filter's
/// buckets, its aggregation groups and its written events in LRU caches of 4,096 entries
/// (`maxLruCacheEntries`), whatever their age. Here the least recently published-about Jobs are
/// dropped in batches, so between this many and a quarter more are kept.
pub const MAX_JOBS: usize = 4096;

#[derive(Default)]
struct State {
    spam: SpamFilter,
    similar: Similar,
    /// By Job uid: its events (dropped with the Job's groups in `similar`).
    written: HashMap<String, HashMap<Key, Slot>>,
    /// By Job uid: when it was last published about (a counter), for the LRU bound.
    used: HashMap<String, u64>,
    /// The counter.
    tick: u64,
}

impl State {
    /// `job_uid` is being published about: it becomes the most recently used Job, and once more
    /// than [`MAX_JOBS`] and a quarter are kept, the least recently used ones are forgotten (as
    /// client-go's LRU caches evict: a Job seen again starts afresh, with a full spam budget).
    fn touch(&mut self, job_uid: &str) {
        self.tick += 1;
        match self.used.get_mut(job_uid) {
            Some(t) => *t = self.tick,
            None => {
                self.used.insert(job_uid.to_string(), self.tick);
            }
        }
        if self.used.len() <= MAX_JOBS + MAX_JOBS / 4 {
            return;
        }
        let mut ticks: Vec<u64> = self.used.values().copied().collect();
        let cut = ticks.len() - MAX_JOBS;
        let (_, oldest_kept, _) = ticks.select_nth_unstable(cut);
        let oldest_kept = *oldest_kept;
        let mut evicted = Vec::with_capacity(cut);
        self.used.retain(|uid, t| {
            let keep = *t >= oldest_kept;
            if !keep {
                evicted.push(uid.clone());
            }
            keep
        });
        for uid in evicted {
            self.forget(&uid);
        }
    }

    /// Drops everything kept about `job_uid`.
    fn forget(&mut self, job_uid: &str) {
        self.spam.forget(job_uid);
        self.similar.forget(job_uid);
        self.written.remove(job_uid);
        self.used.remove(job_uid);
    }
}

/// The controller's event recorder; cheap to clone.
#[derive(Clone)]
pub struct EventSink {
    client: Client,
    controller: String,
    state: Arc<Mutex<State>>,
    seq: Arc<AtomicU64>,
    /// At most this many event writes in flight, if limited ([`Self::with_max_in_flight`]).
    in_flight: Option<Arc<Queue>>,
}

/// The publishes waiting for one of at most `max` writer tasks. Only the events' data waits
/// here: a task spawned per publish to wait for a permit held the whole write's future (kube's
/// request futures included) from the start, tens of KiB each, so a 10,000-CronJob slot grew the
/// process by hundreds of MiB and spent a quarter of its CPU faulting those pages in.
///
/// The queue is bounded ([`MAX_QUEUED`] publishes): beyond it a publish is dropped and counted,
/// as client-go's broadcaster drops events once its queue of 1,000 is full
/// (`DropIfChannelFull`): events are best effort, and an API server that stopped answering must
/// not make the controller grow without bound.
struct Queue {
    items: Mutex<VecDeque<(ObjectReference, Vec<Pending>)>>,
    writers: AtomicUsize,
    max: usize,
    max_queued: AtomicUsize,
    dropped: AtomicU64,
}

/// Publishes waiting at most, by default: all of a 10,000-CronJob slot's `SuccessfulCreate`s
/// and more (a few hundred bytes each), where upstream's broadcaster keeps 1,000.
pub const MAX_QUEUED: usize = 16_384;

impl Queue {
    /// Counts one more writer if fewer than `max` run.
    fn try_start(&self) -> bool {
        self.writers.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1)).is_ok()
    }

    fn full(&self) -> bool {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).len() >= self.max_queued.load(Ordering::Relaxed)
    }

    fn pop(&self) -> Option<(ObjectReference, Vec<Pending>)> {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }
}

/// One event to write.
struct Pending {
    slot: Slot,
    type_: EventType,
    reason: String,
    note: String,
    related: Option<ObjectReference>,
}

impl EventSink {
    /// Events reported as `controller` (`reportingController`; also the instance, as upstream's
    /// recorder leaves no host name there).
    pub fn new(client: Client, controller: &str) -> Self {
        Self { client, controller: controller.into(), state: Arc::default(), seq: Arc::default(), in_flight: None }
    }

    /// At most `n` event writes at once (the rest wait their turn, in order), so that a burst of
    /// events (10,000 CronJobs starting their Jobs on one slot) does not compete with the writes
    /// that matter for the API server's time. client-go's broadcaster writes one at a time.
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.in_flight = Some(Arc::new(Queue {
            items: Mutex::default(),
            writers: AtomicUsize::new(0),
            max: n.max(1),
            max_queued: AtomicUsize::new(MAX_QUEUED),
            dropped: AtomicU64::new(0),
        }));
        self
    }

    /// At most `n` publishes wait for a writer (after [`Self::with_max_in_flight`]; the default
    /// is [`MAX_QUEUED`]); more are dropped.
    pub fn with_max_queued(self, n: usize) -> Self {
        if let Some(q) = &self.in_flight {
            q.max_queued.store(n, Ordering::Relaxed);
        }
        self
    }

    /// Publishes dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.in_flight.as_ref().map_or(0, |q| q.dropped.load(Ordering::Relaxed))
    }

    /// Forgets what was recorded about a deleted Job.
    pub fn forget(&self, job_uid: &str) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).forget(job_uid);
    }

    /// Publishes `evs` about the object `regarding` (the Job, uid `job_uid`) in the background.
    pub fn publish(&self, regarding: ObjectReference, job_uid: &str, evs: Vec<JobEvent>) {
        if evs.is_empty() {
            return;
        }
        // Past the queue's bound the publish is dropped before anything is charged for it (its
        // Job's spam budget, the correlator), as client-go drops before its correlator runs.
        if let Some(queue) = &self.in_flight
            && queue.full()
        {
            let n = queue.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    queued = queue.max_queued.load(Ordering::Relaxed),
                    "event queue full: events dropped (the API server is not keeping up)"
                );
            }
            return;
        }
        let now = Instant::now();
        let pending: Vec<Pending> = {
            let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let st = &mut *guard;
            for uid in st.similar.prune(now) {
                st.written.remove(&uid);
            }
            st.spam.prune(now);
            st.touch(job_uid);
            let before = evs.len();
            let evs: Vec<JobEvent> = evs.into_iter().filter(|ev| st.spam.allow(job_uid, ev, now)).collect();
            if evs.len() < before {
                tracing::trace!(job_uid, dropped = before - evs.len(), "events over the Job's budget dropped");
            }
            if evs.is_empty() {
                return;
            }
            let slots = st.written.entry(job_uid.to_string()).or_default();
            evs.into_iter()
                .map(|ev| {
                    let (note, related, message_key) = match st.similar.correlate(job_uid, &ev, now) {
                        Correlated::Distinct => {
                            let pod = ev.pod.as_ref().map(|name| ObjectReference {
                                api_version: Some("v1".into()),
                                kind: Some("Pod".into()),
                                name: Some(name.clone()),
                                namespace: regarding.namespace.clone(),
                                uid: ev.pod_uid.clone(),
                                ..Default::default()
                            });
                            (ev.message.clone(), pod, Some(ev.message))
                        }
                        Correlated::Combined(message) => (message, None, None),
                    };
                    let slot = slots.entry((ev.type_, ev.reason.clone(), message_key)).or_default().clone();
                    Pending { slot, type_: ev.type_, reason: ev.reason, note: truncate_note(note), related }
                })
                .collect()
        };
        let sink = self.clone();
        match &self.in_flight {
            None => {
                tokio::spawn(async move { sink.write_all(&regarding, pending).await });
            }
            Some(queue) => {
                // Publishes racing past the check above may take the queue a few over its bound.
                queue.items.lock().unwrap_or_else(|e| e.into_inner()).push_back((regarding, pending));
                if queue.try_start() {
                    tokio::spawn(async move { sink.drain().await });
                }
            }
        }
    }

    /// A writer: writes queued publishes, in order, until the queue is empty.
    async fn drain(self) {
        let Some(queue) = self.in_flight.clone() else { return };
        loop {
            if let Some((regarding, pending)) = queue.pop() {
                self.write_all(&regarding, pending).await;
                continue;
            }
            queue.writers.fetch_sub(1, Ordering::AcqRel);
            // A publish that queued after the pop above but saw every writer still counted
            // started none: take it over unless another writer has.
            let waiting = !queue.items.lock().unwrap_or_else(|e| e.into_inner()).is_empty();
            if !waiting || !queue.try_start() {
                return;
            }
        }
    }

    async fn write_all(&self, regarding: &ObjectReference, pending: Vec<Pending>) {
        for p in pending {
            if let Err(e) = self.write(regarding, p).await {
                tracing::debug!(error = %e, "publishing an event failed");
            }
        }
    }

    async fn write(&self, regarding: &ObjectReference, p: Pending) -> Result<(), kube::Error> {
        use kube::Resource;
        let ns = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let request = kube::core::Request::new(Event::url_path(&(), Some(&ns)));
        let mut slot = p.slot.lock().await;
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        if let Some(w) = slot.as_mut() {
            let count = w.count + 1;
            let patch = serde_json::json!({
                "series": EventSeries { count, last_observed_time: now.clone() },
                "note": p.note,
            });
            let req = request.patch(&w.name, &PatchParams::default(), &Patch::Merge(&patch));
            // The answer (the whole Event, `managedFields` included) is read past, not built.
            match self.send::<serde::de::IgnoredAny>(req, "patch").await {
                Ok(_) => {
                    w.count = count;
                    return Ok(());
                }
                // Deleted meanwhile (events expire): write it anew.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let base = regarding.name.clone().unwrap_or_else(|| self.controller.clone());
        let mut ev = Event {
            metadata: ObjectMeta { namespace: Some(ns), ..Default::default() },
            action: Some(p.reason.clone()),
            reason: Some(p.reason),
            type_: Some(p.type_.as_str().into()),
            note: Some(p.note),
            event_time: Some(now.clone()),
            regarding: Some(regarding.clone()),
            related: p.related,
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.controller.clone()),
            ..Default::default()
        };
        // Upstream names events `<object>.<unix nanos in hex>`; a sequence number keeps two events
        // of one instant apart.
        let nanos = now.0.as_nanosecond() as u128 + u128::from(self.seq.fetch_add(1, Ordering::Relaxed));
        ev.metadata.name = Some(format!("{base}.{nanos:x}"));
        let body = serde_json::to_vec(&ev).map_err(kube::Error::SerdeError)?;
        let req = request.create(&PostParams::default(), body);
        // Only the created Event's name is read from the answer (serde skips the rest unbuilt).
        let created = self.send::<CreatedEvent>(req, "create").await?;
        *slot = Some(Written { name: created.metadata.name.unwrap_or_default(), count: 1 });
        Ok(())
    }

    /// Sends an event write built by `kube::core::Request` (named `verb` for the client's
    /// metrics and traces, as `Api` names its requests), reading the answer as `T`.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
        verb: &'static str,
    ) -> Result<T, kube::Error> {
        let mut req = req.map_err(kube::Error::BuildRequest)?;
        req.extensions_mut().insert(verb);
        self.client.request::<T>(req).await
    }
}

/// What an Event create's answer is read for: the created Event's name.
#[derive(serde::Deserialize)]
struct CreatedEvent {
    metadata: CreatedEventMeta,
}

#[derive(serde::Deserialize)]
struct CreatedEventMeta {
    name: Option<String>,
}

/// A `note` cut to the events API's limit at a character boundary, with an ellipsis, rather than an
/// event refused (an admission error quoting a whole object, say).
fn truncate_note(mut note: String) -> String {
    if note.len() > MAX_NOTE {
        let mut end = MAX_NOTE - '…'.len_utf8();
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push('…');
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::events::{SPAM_BURST, created};

    const REPORTING: &str = "job-controller";

    /// The answers to the recorder's writes are read for the created Event's name only: an answer
    /// whose other fields a whole `Event` decode refuses (here a `managedFields` entry with a bad
    /// time) still counts as written, so the same event published again is a `series` patch of it
    /// (with a whole decode, the create "failed" and every publish created a new Event).
    #[tokio::test]
    async fn event_writes_read_only_the_created_name_from_the_answer() {
        let seen: Arc<Mutex<Vec<(String, String, serde_json::Value)>>> = Arc::default();
        let done = Arc::new(tokio::sync::Notify::new());
        let svc = {
            let (seen, done) = (seen.clone(), done.clone());
            tower::service_fn(move |req: http::Request<kube::client::Body>| {
                let (seen, done) = (seen.clone(), done.clone());
                async move {
                    let (method, path) = (req.method().to_string(), req.uri().path().to_string());
                    let body = req.into_body().collect_bytes().await.expect("body");
                    let sent: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
                    let name = path.rsplit('/').next().filter(|_| method == "PATCH").map(str::to_string);
                    let mut answer = sent.clone();
                    answer["metadata"]["name"] = name.map_or_else(|| sent["metadata"]["name"].clone(), Into::into);
                    answer["metadata"]["managedFields"] =
                        serde_json::json!([{"manager": "x", "operation": "Update", "time": "not a time"}]);
                    seen.lock().unwrap().push((method, path, sent));
                    done.notify_one();
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .status(201)
                            .body(kube::client::Body::from(answer.to_string().into_bytes()))
                            .expect("response"),
                    )
                }
            })
        };
        let sink = EventSink::new(Client::new(svc, "default"), REPORTING);
        let regarding = ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            namespace: Some("ns".into()),
            name: Some("j".into()),
            uid: Some("job-uid".into()),
            ..Default::default()
        };
        for n in 1..=3 {
            sink.publish(regarding.clone(), "job-uid", vec![created("p", None)]);
            tokio::time::timeout(std::time::Duration::from_secs(60), async {
                while seen.lock().unwrap().len() < n {
                    done.notified().await;
                }
            })
            .await
            .expect("the write in time");
        }
        let seen = seen.lock().unwrap().clone();
        let name = seen[0].2["metadata"]["name"].as_str().expect("a created name").to_string();
        assert_eq!((seen[0].0.as_str(), seen[0].1.as_str()), ("POST", "/apis/events.k8s.io/v1/namespaces/ns/events"));
        assert_eq!(seen[0].2["reason"], "SuccessfulCreate");
        for (i, (method, path, body)) in seen.iter().enumerate().skip(1) {
            assert_eq!(method, "PATCH", "publish {} of the same event", i + 1);
            assert_eq!(path, &format!("/apis/events.k8s.io/v1/namespaces/ns/events/{name}"));
            assert_eq!(body["series"]["count"], i as i64 + 1);
        }
    }

    #[test]
    fn the_least_recently_published_jobs_are_forgotten_beyond_the_bound() {
        let mut st = State::default();
        let now = Instant::now();
        let ev = created("p", None);
        // job-0 and job-1 spend their pod-event budget and have a written event each.
        for job in ["job-0", "job-1"] {
            st.touch(job);
            for _ in 0..SPAM_BURST {
                assert!(st.spam.allow(job, &ev, now));
            }
            assert!(!st.spam.allow(job, &ev, now), "{job}'s budget is spent");
            st.written.entry(job.to_string()).or_default().insert((ev.type_, ev.reason.clone(), None), Slot::default());
            st.similar.correlate(job, &ev, now);
        }
        let bound = MAX_JOBS + MAX_JOBS / 4;
        for i in 2..bound {
            st.touch(&format!("job-{i}"));
            if i == bound / 2 {
                st.touch("job-1"); // used again: now more recent than half of the others
            }
        }
        assert_eq!(st.used.len(), bound);
        assert!(!st.spam.allow("job-0", &ev, now), "nothing is forgotten up to the bound");
        // One more Job: the least recently used go, down to MAX_JOBS.
        st.touch("new");
        assert_eq!(st.used.len(), MAX_JOBS);
        assert!(st.used.contains_key("new") && st.used.contains_key("job-1"));
        assert!(!st.used.contains_key("job-0") && !st.used.contains_key("job-2"));
        // The oldest bound + 1 - MAX_JOBS went: job-0, then job-2 on (job-1 was used again).
        let last_gone = bound + 1 - MAX_JOBS;
        assert!(!st.used.contains_key(&format!("job-{last_gone}")));
        assert!(st.used.contains_key(&format!("job-{}", last_gone + 1)));
        assert!(!st.written.contains_key("job-0") && st.written.contains_key("job-1"));
        // An evicted Job starts afresh, as after client-go's LRU evicts it: a full budget.
        assert!(st.spam.allow("job-0", &ev, now), "job-0 forgotten: a full budget again");
        assert!(!st.spam.allow("job-1", &ev, now), "job-1 kept: its budget still spent");
    }

    /// A `SuccessfulCreate` about CronJob `cj-{i}` (uid `uid-{i}`).
    fn publish_about_cronjob(sink: &EventSink, i: usize) {
        let regarding = ObjectReference {
            kind: Some("CronJob".into()),
            namespace: Some("default".into()),
            name: Some(format!("cj-{i}")),
            ..Default::default()
        };
        sink.publish(regarding, &format!("uid-{i}"), vec![created("p", None)]);
    }

    /// Publishes over the in-flight bound wait as data, not as tasks: with the API server stalled,
    /// 50 publishes leave at most the bound's writer tasks alive (a task per publish waiting for a
    /// permit held its whole write future), and once it answers every event is written.
    #[tokio::test(flavor = "current_thread")]
    async fn publishes_over_the_bound_wait_as_data_and_are_all_written() {
        use std::sync::atomic::AtomicUsize;
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (in_flight, most, written) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let done = Arc::new(tokio::sync::Notify::new());
        let svc = {
            let (gate, in_flight, most, written, done) =
                (gate.clone(), in_flight.clone(), most.clone(), written.clone(), done.clone());
            tower::service_fn(move |req: http::Request<kube::client::Body>| {
                let (gate, in_flight, most, written, done) =
                    (gate.clone(), in_flight.clone(), most.clone(), written.clone(), done.clone());
                async move {
                    let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    let _pass = gate.acquire().await.expect("gate open");
                    let body = req.into_body().collect_bytes().await.expect("body");
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    written.fetch_add(1, Ordering::SeqCst);
                    done.notify_one();
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .status(201)
                            .body(kube::client::Body::from(body.to_vec()))
                            .expect("response"),
                    )
                }
            })
        };
        let client = Client::new(svc, "default");
        let sink = EventSink::new(client, "cronjob-controller").with_max_in_flight(2);
        let metrics = tokio::runtime::Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        for i in 0..50 {
            publish_about_cronjob(&sink, i);
        }
        // Let the writers reach the stalled server.
        while in_flight.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        let alive = metrics.num_alive_tasks() - before;
        assert!(alive <= 3, "{alive} tasks alive for 50 waiting publishes (writers: 2, the client's buffer: 1)");
        gate.add_permits(1_000);
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while written.load(Ordering::SeqCst) < 50 {
                done.notified().await;
            }
        })
        .await
        .expect("every event written");
        assert_eq!(written.load(Ordering::SeqCst), 50);
        assert!(most.load(Ordering::SeqCst) <= 2, "at most 2 writes in flight, saw {}", most.load(Ordering::SeqCst));
    }

    /// With the API server stalled, the publishes past the queue's bound are dropped and counted,
    /// not kept: the process does not grow with an API server that stopped answering.
    #[tokio::test(flavor = "current_thread")]
    async fn publishes_past_the_queue_bound_are_dropped_and_counted() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let written = Arc::new(AtomicUsize::new(0));
        let svc = {
            let (gate, written) = (gate.clone(), written.clone());
            tower::service_fn(move |req: http::Request<kube::client::Body>| {
                let (gate, written) = (gate.clone(), written.clone());
                async move {
                    let _pass = gate.acquire().await.expect("gate open");
                    let body = req.into_body().collect_bytes().await.expect("body");
                    written.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .status(201)
                            .body(kube::client::Body::from(body.to_vec()))
                            .expect("response"),
                    )
                }
            })
        };
        let sink =
            EventSink::new(Client::new(svc, "default"), "cronjob-controller").with_max_in_flight(1).with_max_queued(10);
        let publish = |i: usize| publish_about_cronjob(&sink, i);
        // The writer takes the first publish only once it runs: on this one thread, after a
        // yield. Until then the first ten wait in the queue and the rest are dropped.
        for i in 0..25 {
            publish(i);
        }
        assert_eq!(sink.dropped(), 15, "10 queued, the rest dropped");
        {
            let state = sink.state.lock().unwrap();
            assert!(!state.used.contains_key("uid-10"), "a dropped publish is not charged to its Job");
            assert!(state.used.contains_key("uid-9"));
        }
        let queued = sink.in_flight.as_ref().map(|q| q.items.lock().unwrap().len());
        assert_eq!(queued, Some(10));
        gate.add_permits(1_000);
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while written.load(Ordering::SeqCst) < 10 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the queued events written");
        // Room again: a later publish is written, not dropped.
        publish(99);
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while written.load(Ordering::SeqCst) < 11 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("a publish after the queue drained is written");
        assert_eq!(sink.dropped(), 15);
    }

    #[test]
    fn notes_fit_the_events_api_limit() {
        assert_eq!(truncate_note("short".into()), "short");
        let exact = "x".repeat(1024);
        assert_eq!(truncate_note(exact.clone()), exact);
        let long = "é".repeat(700); // 1,400 bytes of 2-byte characters
        let cut = truncate_note(long);
        assert!(cut.len() <= 1024 && cut.ends_with('…'), "{}", cut.len());
        assert!(cut.trim_end_matches('…').chars().all(|c| c == 'é'));
    }
}
