//! Events the controller records on a Job, with upstream's types, reasons and messages, and
//! upstream's aggregation of similar events ([`Similar`]).

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
