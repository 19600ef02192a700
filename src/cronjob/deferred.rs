//! Job creates first: at a tick, a sync's status write and events wait until the tick's Job
//! creates are sent.
//!
//! When thousands of CronJobs share a slot, each sync makes three writes (the Job, the CronJob's
//! status, an event) and the API server's CPU is the bottleneck; only the creates are measured
//! against the slot. So a sync creates its Job, hands its status write and events to
//! [`Deferred`], and returns; the writes go out as soon as the [`Gate`] is open: no Job create in
//! flight, and no CronJob whose requeue came due (by the wall clock, as kube-runtime's timers) still
//! waiting for its sync. What still holds, as upstream:
//!
//! - one status write per sync, and it happens before the next sync of that CronJob starts: a
//!   sync first [`Deferred::flush`]es its CronJob's pending write itself (whatever the gate says);
//! - a write never waits longer than [`MAX_DEFER`] for the gate;
//! - a write that fails re-syncs the CronJob (with upstream's per-item backoff), as a failed
//!   status write in the sync did;
//! - a write lost in a crash starts nothing twice: the next sync sees the slot as not yet started,
//!   its create finds the Job (named after the slot) AlreadyExists and adopts it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

/// The namespace and name of a CronJob.
pub type Key = (String, String);

/// The longest a status write waits for the gate.
pub const MAX_DEFER: Duration = Duration::from_secs(10);

/// How many deferred writes are sent at once once the gate is open.
pub const WRITERS: usize = 32;

/// Open when no Job create is in flight and no CronJob is due (its requeue time passed) but not
/// yet synced.
#[derive(Default)]
pub struct Gate {
    state: Mutex<GateState>,
    opened: Notify,
}

#[derive(Default)]
struct GateState {
    /// By CronJob: when its requeue comes due.
    due_at: HashMap<Key, Instant>,
    /// How many CronJobs come due at each instant.
    by_time: BTreeMap<Instant, usize>,
    /// Job creates in flight.
    creating: usize,
}

impl GateState {
    fn remove(&mut self, key: &Key) {
        if let Some(at) = self.due_at.remove(key)
            && let Some(n) = self.by_time.get_mut(&at)
        {
            *n -= 1;
            if *n == 0 {
                self.by_time.remove(&at);
            }
        }
    }

    fn open(&self, now: Instant) -> bool {
        self.creating == 0 && self.by_time.first_key_value().is_none_or(|(at, _)| *at > now)
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self, st: &GateState) {
        if st.open(Instant::now()) {
            self.opened.notify_waiters();
        }
    }

    /// The CronJob's sync asked to run again at `at`.
    pub fn expect(&self, key: Key, at: Instant) {
        let mut st = self.lock();
        st.remove(&key);
        *st.by_time.entry(at).or_default() += 1;
        st.due_at.insert(key, at);
    }

    /// A sync of the CronJob started (or the CronJob is gone): it is no longer waited for.
    pub fn started(&self, key: &Key) {
        let mut st = self.lock();
        st.remove(key);
        self.changed(&st);
    }

    /// A Job create is being sent until the guard drops.
    pub fn creating(self: &Arc<Self>) -> CreateGuard {
        self.lock().creating += 1;
        CreateGuard(self.clone())
    }

    /// Whether the gate is open now.
    pub fn is_open(&self) -> bool {
        self.lock().open(Instant::now())
    }

    /// Waits until the gate is open, or `deadline`.
    pub async fn wait(&self, deadline: Instant) {
        loop {
            let opened = self.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            {
                let st = self.lock();
                let now = Instant::now();
                if st.open(now) || now >= deadline {
                    return;
                }
            }
            // Closed by a create in flight or an overdue sync: either ends with a notify.
            tokio::select! {
                _ = &mut opened => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// Holds a create open in the [`Gate`].
pub struct CreateGuard(Arc<Gate>);

impl Drop for CreateGuard {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.creating -= 1;
        self.0.changed(&st);
    }
}

/// A deferred write of one CronJob: queued (since when), or being performed (done when the
/// channel says so).
enum Slot<W> {
    Queued(W, Instant),
    Writing(watch::Sender<bool>),
}

/// The deferred writes by CronJob, and the queue the writer task drains.
pub struct Deferred<W> {
    slots: Mutex<HashMap<Key, Slot<W>>>,
    tx: mpsc::UnboundedSender<Key>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Key>>>,
}

impl<W: Send + 'static> Default for Deferred<W> {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self { slots: Mutex::default(), tx, rx: Mutex::new(Some(rx)) }
    }
}

impl<W: Send + 'static> Deferred<W> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Slot<W>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues the write `w` of CronJob `key`; the caller flushed any earlier one of `key` (a
    /// queued one is replaced).
    pub fn defer(&self, key: Key, w: W) {
        self.lock().insert(key.clone(), Slot::Queued(w, Instant::now()));
        let _ = self.tx.send(key);
    }

    /// Takes the queued write of `key` for the caller to perform now (done when the [`Taken`]
    /// drops), or waits until the one being performed is done.
    pub async fn take(&self, key: &Key) -> Option<Taken<'_, W>> {
        let mut rx = {
            let mut slots = self.lock();
            match slots.get(key) {
                None => return None,
                Some(Slot::Writing(tx)) => tx.subscribe(),
                Some(Slot::Queued(..)) => {
                    let Some(Slot::Queued(w, _)) = slots.insert(key.clone(), Slot::Writing(watch::channel(false).0))
                    else {
                        unreachable!("checked above")
                    };
                    return Some(Taken { deferred: self, key: key.clone(), write: Some(w) });
                }
            }
        };
        // Being performed by someone else: wait until it is done.
        let _ = rx.wait_for(|done| *done).await;
        None
    }

    /// The receiving end of the queue (once).
    pub fn receiver(&self) -> Option<mpsc::UnboundedReceiver<Key>> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The CronJobs with a write queued or being performed.
    pub fn keys(&self) -> Vec<Key> {
        self.lock().keys().cloned().collect()
    }

    /// When the write of `key` was queued, if it is still queued.
    pub fn queued_at(&self, key: &Key) -> Option<Instant> {
        match self.lock().get(key) {
            Some(Slot::Queued(_, at)) => Some(*at),
            _ => None,
        }
    }
}

/// A write taken for performing; whoever waits for it goes on when this drops (performed, or
/// abandoned at shutdown).
pub struct Taken<'a, W> {
    deferred: &'a Deferred<W>,
    key: Key,
    write: Option<W>,
}

impl<W> Taken<'_, W> {
    /// The write (once).
    pub fn write(&mut self) -> Option<W> {
        self.write.take()
    }
}

impl<W> Drop for Taken<'_, W> {
    fn drop(&mut self) {
        let mut slots = self.deferred.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Slot::Writing(tx)) = slots.remove(&self.key) {
            let _ = tx.send(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> Key {
        ("ns".into(), n.into())
    }

    #[tokio::test]
    async fn the_gate_waits_for_creates_in_flight_and_for_due_syncs_not_yet_started() {
        let gate = Arc::new(Gate::default());
        assert!(gate.is_open(), "nothing due, nothing in flight");
        let now = Instant::now();
        gate.expect(key("a"), now);
        gate.expect(key("b"), now);
        gate.expect(key("later"), now + Duration::from_secs(3600));
        assert!(!gate.is_open(), "two syncs due and not started (the later one does not count)");
        gate.started(&key("a"));
        let create = gate.creating();
        gate.started(&key("b"));
        assert!(!gate.is_open(), "a create in flight");
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.wait(Instant::now() + Duration::from_secs(3600)).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(create);
        tokio::time::timeout(Duration::from_secs(60), waiter).await.expect("woken when it opened").unwrap();
        // A sync asked for again replaces its earlier due time.
        gate.expect(key("a"), Instant::now());
        assert!(!gate.is_open());
        gate.expect(key("a"), Instant::now() + Duration::from_secs(3600));
        assert!(gate.is_open());
    }

    #[tokio::test]
    async fn a_gate_that_stays_closed_is_waited_for_until_the_deadline_only() {
        let gate = Gate::default();
        gate.expect(key("stale"), Instant::now());
        let deadline = Instant::now() + Duration::from_millis(50);
        gate.wait(deadline).await;
        assert!(Instant::now() >= deadline);
        assert!(!gate.is_open());
        gate.started(&key("stale"));
        assert!(gate.is_open(), "a deleted CronJob is no longer waited for");
    }

    #[tokio::test]
    async fn a_write_is_taken_once_and_a_second_taker_waits_until_it_is_done() {
        let d: Arc<Deferred<u32>> = Arc::new(Deferred::default());
        let mut queue = d.receiver().expect("receiver");
        assert!(d.receiver().is_none(), "one receiver");
        d.defer(key("a"), 1);
        assert_eq!(queue.recv().await, Some(key("a")));
        assert!(d.queued_at(&key("a")).is_some());
        let mut taken = d.take(&key("a")).await.expect("queued");
        assert_eq!(taken.write(), Some(1));
        assert!(d.queued_at(&key("a")).is_none(), "being written");
        let (d2, k) = (d.clone(), key("a"));
        let second = tokio::spawn(async move { d2.take(&k).await.is_none() });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "waits for the write in progress");
        drop(taken);
        assert!(second.await.unwrap(), "nothing left to write");
        assert!(d.take(&key("a")).await.is_none());
        assert!(d.keys().is_empty());
    }
}
