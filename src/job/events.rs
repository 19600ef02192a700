//! Events the controller records on a Job, with upstream's types, reasons and messages,
//! upstream's aggregation of similar events ([`Similar`]) and client-go's spam filter
//! ([`SpamFilter`]), with a budget of its own for a Job's lifecycle events.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventType {
    /// The API string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An event to record on the Job (`reportingController: job-controller` upstream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEvent {
    /// Normal or Warning.
    pub type_: EventType,
    /// Machine-readable reason, e.g. `SuccessfulCreate`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// The pod the event is about, if any (the event's `related` object).
    pub pod: Option<String>,
    /// That pod's uid, when known.
    pub pod_uid: Option<String>,
}

impl JobEvent {
    /// Which budget of [`SpamFilter`] the event draws on.
    pub fn budget(&self) -> Budget {
        match self.reason.as_str() {
            "SuccessfulCreate" | "SuccessfulDelete" | "FailedCreate" | "FailedDelete" => Budget::Pods,
            _ => Budget::Lifecycle,
        }
    }

    /// A Normal event.
    pub fn normal(reason: &str, message: &str) -> Self {
        Self { type_: EventType::Normal, reason: reason.into(), message: message.into(), pod: None, pod_uid: None }
    }

    /// A Warning event.
    pub fn warning(reason: &str, message: &str) -> Self {
        Self { type_: EventType::Warning, reason: reason.into(), message: message.into(), pod: None, pod_uid: None }
    }
}

/// `Normal SuccessfulCreate "Created pod: <name>"`, after a pod creation.
pub fn created(pod_name: &str, pod_uid: Option<&str>) -> JobEvent {
    JobEvent {
        pod: Some(pod_name.into()),
        pod_uid: pod_uid.map(str::to_string),
        ..JobEvent::normal("SuccessfulCreate", &format!("Created pod: {pod_name}"))
    }
}

/// `Warning FailedCreate "Error creating: <error>"`, after a failed pod creation.
pub fn failed_create(error: &str) -> JobEvent {
    JobEvent::warning("FailedCreate", &format!("Error creating: {error}"))
}

/// `Normal SuccessfulDelete "Deleted pod: <name>"`, after a pod deletion.
pub fn deleted(pod_name: &str, pod_uid: Option<&str>) -> JobEvent {
    JobEvent {
        pod: Some(pod_name.into()),
        pod_uid: pod_uid.map(str::to_string),
        ..JobEvent::normal("SuccessfulDelete", &format!("Deleted pod: {pod_name}"))
    }
}

/// `Warning FailedDelete "Error deleting: <error>"`, after a failed pod deletion.
pub fn failed_delete(error: &str) -> JobEvent {
    JobEvent::warning("FailedDelete", &format!("Error deleting: {error}"))
}

/// A `jobwright.dev/v1` Job whose spec batch/v1 validation refuses (kube-apiserver would have
/// answered 422 for a batch/v1 Job): Warning `InvalidSpec`, the field errors as the message.
pub fn invalid_spec(problems: &str) -> JobEvent {
    JobEvent::warning("InvalidSpec", &format!("Job spec is invalid, not synced: {problems}"))
}

/// client-go's spam filter (`EventSourceObjectSpamFilter`): how many events one source may record
/// about one object at once (`defaultSpamBurst`)...
pub const SPAM_BURST: u32 = 25;
/// ...and how often it gets one more (`defaultSpamQPS` = 1/300).
pub const SPAM_REFILL: Duration = Duration::from_secs(300);

/// The two budgets a Job's events draw on in [`SpamFilter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// One event per pod created or deleted (and their failures): `SuccessfulCreate`,
    /// `SuccessfulDelete`, `FailedCreate`, `FailedDelete`. A wide Job empties this one at once.
    Pods,
    /// Everything about the Job itself: `Completed`, the `Failed` condition's reasons
    /// (`BackoffLimitExceeded`, `DeadlineExceeded`, `PodFailurePolicy`, ...), `Suspended`,
    /// `Resumed`, `InvalidJobSpec`... Upstream has one bucket for both, so a 300-pod Job loses its
    /// `Completed` event; here per-pod noise never starves these.
    Lifecycle,
}

/// A token bucket as golang.org/x/time/rate's: starts full, refills continuously.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(now: Instant) -> Self {
        Self { tokens: f64::from(SPAM_BURST), at: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed / SPAM_REFILL.as_secs_f64()).min(f64::from(SPAM_BURST));
        self.at = self.at.max(now);
    }

    fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// client-go's spam filter for one controller: per Job, a token bucket of [`SPAM_BURST`] events
/// refilled by one every [`SPAM_REFILL`]; an event finding it empty is dropped before it is
/// correlated or written (as upstream's `EventCorrelator` filters first). Unlike upstream, a Job
/// has two buckets, one per [`Budget`]: a 10,000-pod Job records 25 pod events (then one per five
/// minutes) and still its `Completed`.
#[derive(Debug, Default)]
pub struct SpamFilter {
    /// By Job uid: the [`Budget::Pods`] and [`Budget::Lifecycle`] buckets.
    jobs: HashMap<String, [Bucket; 2]>,
    /// When full buckets were last dropped.
    pruned: Option<Instant>,
}

impl SpamFilter {
    /// Whether `ev` about the Job with uid `job` may be recorded at `now` (taking a token if so).
    pub fn allow(&mut self, job: &str, ev: &JobEvent, now: Instant) -> bool {
        let buckets = match self.jobs.get_mut(job) {
            Some(b) => b,
            None => self.jobs.entry(job.to_string()).or_insert([Bucket::full(now); 2]),
        };
        buckets[ev.budget() as usize].try_take(now)
    }

    /// Drops the Jobs whose buckets have refilled (a full bucket is what a new one is), once there
    /// are more than 4,096 and at most once a minute (a deleted Job goes at once, through
    /// [`SpamFilter::forget`]).
    pub fn prune(&mut self, now: Instant) {
        if self.jobs.len() <= 4096 || self.pruned.is_some_and(|t| now.duration_since(t) < Duration::from_secs(60)) {
            return;
        }
        self.pruned = Some(now);
        self.jobs.retain(|_, buckets| {
            buckets.iter_mut().any(|b| {
                b.refill(now);
                b.tokens < f64::from(SPAM_BURST)
            })
        });
    }

    /// Drops the buckets of the Job with uid `job` (it was deleted).
    pub fn forget(&mut self, job: &str) {
        self.jobs.remove(job);
    }
}

/// How many different messages one Job's events of one type and reason keep apart within
/// [`SIMILAR_WINDOW`]; from this one on they are combined (client-go's EventCorrelator default).
pub const MAX_SIMILAR: usize = 10;
/// The aggregation window: a group idle this long starts over (client-go: 600 s).
pub const SIMILAR_WINDOW: Duration = Duration::from_secs(600);
/// The prefix of a combined event's message, as client-go's.
pub const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// client-go's event aggregation for one controller: events on the same Job with the same type and
/// reason but different messages stay separate events (`kubectl describe job` lists each "Created
/// pod: ..."), until the [`MAX_SIMILAR`]th different message within [`SIMILAR_WINDOW`]; that one and
/// later ones are recorded as one combined event whose count grows.
#[derive(Debug, Default)]
pub struct Similar {
    /// By Job uid, then by (type, reason).
    groups: HashMap<String, HashMap<(EventType, String), Group>>,
    /// When idle groups were last dropped.
    pruned: Option<Instant>,
}

#[derive(Debug)]
struct Group {
    messages: HashSet<String>,
    last: Instant,
}

/// What [`Similar::correlate`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Correlated {
    /// Record the event as it is.
    Distinct,
    /// Record it as the group's combined event, with this message.
    Combined(String),
}

impl Similar {
    /// Drops the Jobs idle for [`SIMILAR_WINDOW`], once there are more than 4,096 and at most once a
    /// minute (a deleted Job goes at once, through [`Similar::forget`]); returns their uids.
    pub fn prune(&mut self, now: Instant) -> Vec<String> {
        if self.groups.len() <= 4096 || self.pruned.is_some_and(|t| now.duration_since(t) < Duration::from_secs(60)) {
            return vec![];
        }
        self.pruned = Some(now);
        let mut dropped = vec![];
        self.groups.retain(|uid, job| {
            job.retain(|_, g| now.duration_since(g.last) < SIMILAR_WINDOW);
            if job.is_empty() {
                dropped.push(uid.clone());
            }
            !job.is_empty()
        });
        dropped
    }

    /// Decides how `ev` on the Job with uid `job` is recorded at `now`.
    pub fn correlate(&mut self, job: &str, ev: &JobEvent, now: Instant) -> Correlated {
        let group = self
            .groups
            .entry(job.to_string())
            .or_default()
            .entry((ev.type_, ev.reason.clone()))
            .or_insert_with(|| Group { messages: HashSet::new(), last: now });
        if now.duration_since(group.last) >= SIMILAR_WINDOW {
            group.messages.clear();
        }
        group.last = now;
        if group.messages.contains(&ev.message) {
            return Correlated::Distinct;
        }
        if group.messages.len() + 1 < MAX_SIMILAR {
            group.messages.insert(ev.message.clone());
            return Correlated::Distinct;
        }
        Correlated::Combined(format!("{COMBINED_PREFIX}{}", ev.message))
    }

    /// Drops what is kept for the Job with uid `job` (it was deleted).
    pub fn forget(&mut self, job: &str) {
        self.groups.remove(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_events_stay_apart_until_the_tenth_message_as_client_go() {
        let mut s = Similar::default();
        let t0 = Instant::now();
        let first: Vec<Correlated> =
            (0..12).map(|i| s.correlate("uid-a", &created(&format!("p{i}"), None), t0)).collect();
        assert!(first[..9].iter().all(|c| *c == Correlated::Distinct), "{first:?}");
        assert_eq!(first[9], Correlated::Combined("(combined from similar events): Created pod: p9".into()));
        assert_eq!(first[11], Correlated::Combined("(combined from similar events): Created pod: p11".into()));
        // A message already seen is the same event again (its series), not a new similar one.
        assert_eq!(s.correlate("uid-a", &created("p3", None), t0), Correlated::Distinct);
        // Other reasons, types and Jobs are other groups.
        assert_eq!(s.correlate("uid-a", &deleted("p0", None), t0), Correlated::Distinct);
        assert_eq!(s.correlate("uid-a", &failed_create("quota"), t0), Correlated::Distinct);
        assert_eq!(s.correlate("uid-b", &created("q", None), t0), Correlated::Distinct);
        // A group idle for the whole window starts over.
        let later = t0 + SIMILAR_WINDOW;
        assert_eq!(s.correlate("uid-a", &created("p99", None), later), Correlated::Distinct);
        s.forget("uid-a");
        assert_eq!(s.groups.keys().collect::<Vec<_>>(), ["uid-b"]);
    }

    #[test]
    fn a_job_records_25_pod_events_then_one_per_five_minutes_as_client_go() {
        let mut f = SpamFilter::default();
        let t0 = Instant::now();
        let allowed = (0..10_000).filter(|i| f.allow("uid-a", &created(&format!("p{i}"), None), t0)).count();
        assert_eq!(allowed, 25, "the burst, then nothing within the same instant");
        assert!(!f.allow("uid-a", &deleted("p0", None), t0), "deletions share the pods' bucket");
        assert!(!f.allow("uid-a", &failed_create("quota"), t0), "so do failures to create");
        let almost = t0 + SPAM_REFILL - Duration::from_secs(1);
        assert!(!f.allow("uid-a", &created("late", None), almost));
        let refilled = t0 + SPAM_REFILL;
        assert!(f.allow("uid-a", &created("late", None), refilled), "one token per five minutes");
        assert!(!f.allow("uid-a", &created("later", None), refilled));
        // Another Job has its own buckets.
        assert!(f.allow("uid-b", &created("q", None), t0));
    }

    #[test]
    fn lifecycle_events_have_their_own_budget() {
        let mut f = SpamFilter::default();
        let t0 = Instant::now();
        while f.allow("uid-a", &created("p", None), t0) {}
        for ev in [
            JobEvent::normal("Suspended", "Job suspended"),
            JobEvent::normal("Resumed", "Job resumed"),
            JobEvent::normal("Completed", "Job completed"),
            JobEvent::warning("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
            JobEvent::warning("DeadlineExceeded", "Job was active longer than specified deadline"),
            JobEvent::warning("PodFailurePolicy", "Container main for pod default/p failed"),
        ] {
            assert_eq!(ev.budget(), Budget::Lifecycle);
            assert!(f.allow("uid-a", &ev, t0), "{} after the pods' budget is gone", ev.reason);
        }
        // The lifecycle bucket is bounded too: a Job suspended and resumed in a loop.
        let allowed =
            (0..100).filter(|_| f.allow("uid-a", &JobEvent::normal("Suspended", "Job suspended"), t0)).count();
        assert_eq!(allowed, 25 - 6);
    }

    #[test]
    fn refilled_buckets_are_dropped_once_there_are_many() {
        let mut f = SpamFilter::default();
        let t0 = Instant::now();
        for i in 0..5000 {
            f.allow(&format!("uid-{i}"), &created("p", None), t0);
        }
        f.allow("uid-0", &created("q", None), t0);
        f.prune(t0);
        assert_eq!(f.jobs.len(), 5000, "a bucket with a token taken is kept");
        let later = t0 + SPAM_REFILL;
        f.prune(later - Duration::from_secs(30));
        assert_eq!(f.jobs.len(), 5000, "not refilled yet");
        f.prune(later);
        assert_eq!(f.jobs.len(), 5000, "at most once a minute");
        f.prune(later + Duration::from_secs(30));
        assert_eq!(f.jobs.keys().collect::<Vec<_>>(), ["uid-0"], "only the bucket still short of a token is kept");
        f.forget("uid-0");
        assert!(f.jobs.is_empty());
    }

    #[test]
    fn idle_groups_are_dropped_once_there_are_many() {
        let mut s = Similar::default();
        let t0 = Instant::now();
        for i in 0..5000 {
            s.correlate(&format!("uid-{i}"), &created("p", None), t0);
        }
        assert!(s.prune(t0).is_empty());
        assert_eq!(s.groups.len(), 5000, "within the window nothing is dropped");
        let later = t0 + SIMILAR_WINDOW;
        assert_eq!(s.prune(later).len(), 5000, "idle for the whole window: dropped, uids returned");
        s.correlate("late", &created("p", None), later);
        assert_eq!(s.groups.len(), 1, "only the group just used is left");
    }
}
