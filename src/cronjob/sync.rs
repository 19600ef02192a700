//! The CronJob controller's pure core: upstream's `syncCronJob`, `cleanupFinishedJobs` and the
//! helpers of `utils.go` (`mostRecentScheduleTime`, `nextScheduleTime`,
//! `nextScheduleTimeDuration`, `getJobFromTemplate2`), as functions of the CronJob, its Jobs and
//! an injected `now`. The shell ([`super::controller`]) performs the API calls these decisions
//! name, in upstream's order, and writes the status once.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, CronJobStatus, Job, JobSpec};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::schedule::{Schedule, Zone, parse_standard};
use crate::job::events::JobEvent;
use crate::job::pods::to_chrono;

/// The annotation with the Job's scheduled time, RFC 3339 in the CronJob's zone.
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// More missed slots than this is "too many" (a warning; the latest still starts).
pub const MAX_MISSED: i64 = 100;

/// How many slots were missed since the last schedule time (upstream's `missedSchedulesType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    /// None.
    None,
    /// Some, up to [`MAX_MISSED`].
    Few,
    /// More than [`MAX_MISSED`].
    Many,
}

/// Result of [`most_recent_schedule_time`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MostRecent {
    /// `lastScheduleTime`, or the creation time, or the starting deadline if later.
    pub earliest: DateTime<Utc>,
    /// The latest slot not after `now`, if any slot since `earliest` is due.
    pub time: Option<DateTime<Utc>>,
    /// How many were missed.
    pub missed: Missed,
    /// The first slot after [`MostRecent::time`], when the walk to it found one (so a requeue
    /// after starting that slot needs no new walk).
    pub next: Option<DateTime<Utc>>,
}

fn go_zero() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(-62_135_596_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `mostRecentScheduleTime`: the slot to consider at `now`. `Err` is upstream's "time difference
/// between two schedules is less than 1 second" (a schedule that never fires, `0 0 31 2 *`).
pub fn most_recent_schedule_time(
    cj: &CronJob,
    now: DateTime<Utc>,
    sched: &Schedule,
    include_starting_deadline: bool,
) -> Result<MostRecent, (MostRecent, String)> {
    most_recent_with(cj, cj.status.as_ref(), now, &mut &*sched, include_starting_deadline)
}

/// A schedule's `next`, walked afresh ([`Schedule`]) or remembered ([`Memoized`]).
trait Walk {
    fn next(&mut self, t: DateTime<Utc>) -> Option<DateTime<Utc>>;
}

impl Walk for &Schedule {
    fn next(&mut self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        Schedule::next(self, t)
    }
}

/// What the syncs of one CronJob can reuse from its previous sync (the shell keeps one per
/// CronJob): the schedule as parsed, and the last two `next` walks of it. A slot's sync then
/// parses and walks nothing when the CronJob's sync before the slot did it: that sync's
/// [`most_recent_schedule_time`] walked `next(earliest)` (the slot) and `next(slot)`, which are
/// the two walks the slot's sync needs. A memo only ever answers what the walk would (the
/// schedule and zone it was parsed from must be equal); [`decide_memo`] with any memo is
/// [`decide_with`] (pinned by a test).
#[derive(Clone, Debug, Default)]
pub struct Memo {
    /// `spec.schedule`, `spec.timeZone`, the controller's zone, and the schedule they parse to.
    parsed: Option<(String, Option<String>, Zone, Schedule)>,
    /// `next(from)` of the parsed schedule, the latest walk last.
    walked: [Option<Walked>; 2],
}

impl Memo {
    /// [`parse_schedule`], remembered while the schedule, the zone and `local` stay the same.
    fn parse(&mut self, cj: &CronJob, local: Zone) -> Result<Schedule, String> {
        let spec = cj.spec.as_ref();
        let text = spec.map(|s| s.schedule.as_str()).unwrap_or_default();
        let tz = spec.and_then(|s| s.time_zone.as_deref());
        if let Some((t, z, l, parsed)) = &self.parsed
            && t == text
            && z.as_deref() == tz
            && *l == local
        {
            return Ok(parsed.clone());
        }
        self.parsed = None;
        self.walked = [None, None];
        let parsed = parse_schedule(cj, local)?;
        self.parsed = Some((text.to_string(), tz.map(str::to_string), local, parsed.clone()));
        Ok(parsed)
    }
}

impl Memo {
    /// Walks `next(from)` of the remembered schedule now, for a later sync (nothing if no
    /// schedule was parsed yet).
    pub fn walk_from(&mut self, from: DateTime<Utc>) {
        if let Some((.., sched)) = &self.parsed {
            let sched = sched.clone();
            Memoized { sched: &sched, memo: self }.next(from);
        }
    }
}

/// One remembered walk: `next(from)` is `.1` for `from` = `.0`.
type Walked = (DateTime<Utc>, Option<DateTime<Utc>>);

/// `sched` (as [`Memo::parse`] returned it) walked through the memo's remembered walks.
struct Memoized<'a> {
    sched: &'a Schedule,
    memo: &'a mut Memo,
}

impl Walk for Memoized<'_> {
    fn next(&mut self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Some((_, next)) = self.memo.walked.iter().flatten().find(|(from, _)| *from == t) {
            return *next;
        }
        let next = self.sched.next(t);
        self.memo.walked = [self.memo.walked[1], Some((t, next))];
        next
    }
}

/// [`most_recent_schedule_time`] of `cj` with `status` in place of its own, walking `sched`.
fn most_recent_with(
    cj: &CronJob,
    status: Option<&CronJobStatus>,
    now: DateTime<Utc>,
    sched: &mut impl Walk,
    include_starting_deadline: bool,
) -> Result<MostRecent, (MostRecent, String)> {
    let mut earliest = cj.metadata.creation_timestamp.as_ref().map(to_chrono).unwrap_or_else(go_zero);
    if let Some(last) = status.and_then(|s| s.last_schedule_time.as_ref()) {
        earliest = to_chrono(last);
    }
    let sds = cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds);
    if include_starting_deadline && let Some(sds) = sds {
        let deadline = now - chrono::Duration::seconds(sds);
        if deadline > earliest {
            earliest = deadline;
        }
    }
    let t1 = sched.next(earliest).unwrap_or_else(go_zero);
    let after_t1 = sched.next(t1);
    let t2 = after_t1.unwrap_or_else(go_zero);
    let none = MostRecent { earliest, time: None, missed: Missed::None, next: None };
    if now < t1 {
        return Ok(none);
    }
    if now < t2 {
        return Ok(MostRecent { time: Some(t1), next: after_t1, ..none });
    }
    let between = (t2 - t1).num_milliseconds().saturating_add(500).div_euclid(1000);
    if between < 1 {
        return Err((none, "time difference between two schedules is less than 1 second".into()));
    }
    let elapsed = (now - t1).num_seconds();
    let missed_count = elapsed / between + 1;
    // Start two intervals before the estimated last slot and walk forward to it (exact for
    // irregular schedules such as `30 6-16/4 * * 1-5` too).
    let potential = t1 + chrono::Duration::seconds((missed_count - 2).saturating_mul(between));
    let mut most_recent = None;
    let mut t = sched.next(potential);
    while let Some(slot) = t.filter(|s| *s <= now) {
        most_recent = Some(slot);
        t = sched.next(slot);
    }
    let missed = if missed_count > MAX_MISSED { Missed::Many } else { Missed::Few };
    // The walk stopped at the first slot after the most recent one (or found none).
    let next = most_recent.and(t);
    Ok(MostRecent { earliest, time: most_recent, missed, next })
}

/// `nextScheduleTimeDuration`: how long until the sync after `now`, which is the next slot itself;
/// `None` if the schedule never fires again.
///
/// Upstream adds `nextScheduleDelta` (100 ms) so that a timer firing a little before the wall
/// clock reaches the slot does not find it not yet due. Here the requeue is the slot itself: a
/// sync that wakes early finds the slot not yet due ([`decide_with`] never starts a slot after
/// `now`) and asks again for the remainder, and one on time starts it without the 100 ms.
pub fn requeue_after(cj: &CronJob, now: DateTime<Utc>, sched: &Schedule) -> Option<Duration> {
    requeue_after_with(cj, cj.status.as_ref(), now, sched)
}

/// [`requeue_after`] of `cj` with `status` in place of its own.
pub fn requeue_after_with(
    cj: &CronJob,
    status: Option<&CronJobStatus>,
    now: DateTime<Utc>,
    sched: &Schedule,
) -> Option<Duration> {
    requeue_walked(cj, status, now, &mut &*sched)
}

fn requeue_walked(
    cj: &CronJob,
    status: Option<&CronJobStatus>,
    now: DateTime<Utc>,
    sched: &mut impl Walk,
) -> Option<Duration> {
    let from = match most_recent_with(cj, status, now, sched, false) {
        Err(_) => now,
        Ok(MostRecent { time: Some(t), .. }) => t,
        Ok(MostRecent { time: None, missed: Missed::None, earliest, .. }) => earliest,
        Ok(MostRecent { time: None, .. }) => now,
    };
    let next = sched.next(from)?;
    Some((next - now).to_std().unwrap_or(Duration::ZERO))
}

/// [`requeue_after_with`] right after the slot `scheduled` was started (`status` records it as
/// `lastScheduleTime`), `next` being the slot after it as [`Action::Start`] names it: when `now`
/// is before `next`, the requeue is `next - now` without walking the schedule again
/// (what [`requeue_after_with`] finds too: its earliest time is `scheduled`, whose next slot is
/// `next`); otherwise (a sync late by a whole period, or no next slot known) the full walk.
pub fn requeue_after_start(
    cj: &CronJob,
    status: &CronJobStatus,
    now: DateTime<Utc>,
    sched: &Schedule,
    next: Option<DateTime<Utc>>,
) -> Option<Duration> {
    match next {
        Some(next) if now < next => Some((next - now).to_std().unwrap_or(Duration::ZERO)),
        _ => requeue_after_with(cj, Some(status), now, sched),
    }
}

/// The zone a CronJob's schedule runs in and the schedule, as upstream's `formatSchedule` +
/// `cron.ParseStandard` give them: a `TZ=`/`CRON_TZ=` in the schedule wins, then `spec.timeZone`,
/// then `local` (the controller's zone).
pub fn parse_schedule(cj: &CronJob, local: Zone) -> Result<Schedule, String> {
    let spec = cj.spec.as_ref().map(|s| s.schedule.as_str()).unwrap_or_default();
    let tz = cj.spec.as_ref().and_then(|s| s.time_zone.as_deref());
    let zone = match tz {
        Some(name) if !spec.contains("TZ") => Zone::load(name).unwrap_or(local),
        _ => local,
    };
    parse_standard(spec, zone)
}

/// What the sync does after looking at the Jobs.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Nothing until the CronJob changes (being deleted, suspended, unusable schedule or zone).
    AwaitChange,
    /// Nothing now; sync again after this long.
    Requeue(Duration),
    /// Start the Job of this slot (after deleting the active Jobs if `replace`).
    Start {
        /// The slot.
        scheduled: DateTime<Utc>,
        /// `concurrencyPolicy: Replace` with Jobs active: delete them first.
        replace: bool,
        /// The parsed schedule (for the requeue after the start).
        schedule: Schedule,
        /// The slot after `scheduled`, if the decision found it ([`requeue_after_start`]).
        next: Option<DateTime<Utc>>,
    },
}

/// The decision of one sync at `now`, after the Jobs were reconciled into `cj`'s status.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Events to record first, in order.
    pub events: Vec<JobEvent>,
    /// What to do.
    pub action: Action,
}

/// `syncCronJob` from the deletion check to the decision to create a Job.
pub fn decide(cj: &CronJob, now: DateTime<Utc>, local: Zone) -> Decision {
    decide_with(cj, cj.status.as_ref(), now, local)
}

/// [`decide`] for `cj` with `status` in place of its own (the status as the sync reconciled it so
/// far), without a copy of the CronJob.
pub fn decide_with(cj: &CronJob, status: Option<&CronJobStatus>, now: DateTime<Utc>, local: Zone) -> Decision {
    decide_memo(cj, status, now, local, &mut Memo::default())
}

/// [`decide_with`], parsing and walking the schedule through `memo` (the CronJob's, from its
/// previous syncs; updated).
pub fn decide_memo(
    cj: &CronJob,
    status: Option<&CronJobStatus>,
    now: DateTime<Utc>,
    local: Zone,
    memo: &mut Memo,
) -> Decision {
    let mut events = vec![];
    let done = |events, action| Decision { events, action };
    if cj.metadata.deletion_timestamp.is_some() {
        return done(events, Action::AwaitChange);
    }
    // Borrowed, not cloned: a sync per CronJob per slot, and the spec holds the whole pod template.
    let no_spec = CronJobSpec::default();
    let spec = cj.spec.as_ref().unwrap_or(&no_spec);
    if let Some(tz) = &spec.time_zone
        && Zone::load(tz).is_none()
    {
        events.push(JobEvent::warning("UnknownTimeZone", &format!("invalid timeZone: {tz:?}: unknown time zone {tz}")));
        return done(events, Action::AwaitChange);
    }
    if spec.suspend == Some(true) {
        return done(events, Action::AwaitChange);
    }
    if spec.schedule.contains("TZ") {
        events.push(JobEvent::warning(
            "UnsupportedSchedule",
            &format!(
                "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                spec.schedule
            ),
        ));
    }
    let sched = match memo.parse(cj, local) {
        Ok(s) => s,
        Err(e) => {
            events.push(JobEvent::warning(
                "UnparseableSchedule",
                &format!("unparseable schedule: {:?} : {e}", spec.schedule),
            ));
            return done(events, Action::AwaitChange);
        }
    };
    let mut walk = Memoized { sched: &sched, memo };
    // nextScheduleTime
    let recent = match most_recent_with(cj, status, now, &mut walk, true) {
        Ok(r) => r,
        Err((_, e)) => {
            events.push(JobEvent::warning("InvalidSchedule", &format!("invalid schedule: {} : {e}", spec.schedule)));
            return done(events, Action::AwaitChange);
        }
    };
    let mut requeue = || requeue_walked(cj, status, now, &mut walk).map_or(Action::AwaitChange, Action::Requeue);
    let Some(scheduled) = recent.time.filter(|t| *t <= now) else {
        return done(events, requeue());
    };
    if recent.missed == Missed::Many {
        events.push(JobEvent::warning(
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
        ));
    }
    if let Some(sds) = spec.starting_deadline_seconds
        && scheduled + chrono::Duration::seconds(sds) < now
    {
        events.push(miss_schedule(scheduled));
        return done(events, requeue());
    }
    let name = job_name(cj, scheduled);
    let active = status.and_then(|s| s.active.as_deref()).unwrap_or_default();
    let ns = cj.metadata.namespace.as_deref();
    if active.iter().any(|r| r.name.as_deref() == Some(&name) && r.namespace.as_deref() == ns)
        || status.and_then(|s| s.last_schedule_time.as_ref()).map(to_chrono) == Some(scheduled)
    {
        return done(events, requeue());
    }
    let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
    if policy == "Forbid" && !active.is_empty() {
        events.push(JobEvent::normal(
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid",
        ));
        return done(events, requeue());
    }
    let replace = policy == "Replace" && !active.is_empty();
    done(events, Action::Start { scheduled, replace, schedule: sched, next: recent.next })
}

/// `Warning MissSchedule` for a slot past `startingDeadlineSeconds` (RFC 1123 with a numeric zone,
/// in UTC). Upstream's branch for it cannot be reached (the deadline already moved the earliest
/// time past such a slot); kept with it.
pub fn miss_schedule(scheduled: DateTime<Utc>) -> JobEvent {
    JobEvent::warning(
        "MissSchedule",
        &format!("Missed scheduled time to start a job: {}", scheduled.format("%a, %d %b %Y %H:%M:%S %z")),
    )
}

/// `getJobName`: `<cronjob>-<scheduled time in minutes since the epoch>`.
pub fn job_name(cj: &CronJob, scheduled: DateTime<Utc>) -> String {
    format!("{}-{}", cj.metadata.name.as_deref().unwrap_or_default(), scheduled.timestamp() / 60)
}

/// The controller ownerReference a CronJob's Jobs carry (`metav1.NewControllerRef`).
pub fn controller_ref(cj: &CronJob) -> OwnerReference {
    OwnerReference {
        api_version: "batch/v1".into(),
        kind: "CronJob".into(),
        name: cj.metadata.name.clone().unwrap_or_default(),
        uid: cj.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `getJobFromTemplate2`: the Job of the slot `scheduled`: the template's labels, annotations
/// and spec, the deterministic name, the controller reference, and the scheduled time in the
/// CronJob's `timeZone` (UTC without one, as Go's `time.LoadLocation("")`).
pub fn job_from_template(cj: &CronJob, scheduled: DateTime<Utc>) -> Job {
    Job { metadata: job_metadata(cj, scheduled), spec: job_spec(cj).cloned(), status: None }
}

/// The metadata of the Job [`job_from_template`] makes for the slot `scheduled`.
pub fn job_metadata(cj: &CronJob, scheduled: DateTime<Utc>) -> ObjectMeta {
    let tmeta = cj.spec.as_ref().and_then(|s| s.job_template.metadata.as_ref());
    let mut annotations: BTreeMap<String, String> = tmeta.and_then(|m| m.annotations.clone()).unwrap_or_default();
    let stamp = match cj.spec.as_ref().and_then(|s| s.time_zone.as_deref()).and_then(Zone::load) {
        Some(Zone::Named(tz)) => scheduled.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true),
        _ => scheduled.to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    annotations.insert(SCHEDULED_TIMESTAMP_ANNOTATION.into(), stamp);
    ObjectMeta {
        name: Some(job_name(cj, scheduled)),
        namespace: cj.metadata.namespace.clone(),
        labels: Some(tmeta.and_then(|m| m.labels.clone()).unwrap_or_default()),
        annotations: Some(annotations),
        owner_references: Some(vec![controller_ref(cj)]),
        ..Default::default()
    }
}

/// The spec of the Jobs the CronJob starts (`spec.jobTemplate.spec`).
pub fn job_spec(cj: &CronJob) -> Option<&JobSpec> {
    cj.spec.as_ref()?.job_template.spec.as_ref()
}

/// The reference `status.active` keeps for a Job (`ref.GetReference`).
pub fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// The Job's terminal condition type (`Complete` or `Failed`, status True), if finished.
pub fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

/// Whether `status.active` names the Job's uid.
pub fn in_active(status: &CronJobStatus, uid: &str) -> bool {
    status.active.iter().flatten().any(|r| r.uid.as_deref() == Some(uid))
}

/// Drops the Job with `uid` from `status.active`.
pub fn remove_active(status: &mut CronJobStatus, uid: &str) {
    if let Some(active) = status.active.as_mut() {
        active.retain(|r| r.uid.as_deref() != Some(uid));
    }
}

/// What the Jobs say about the CronJob (the first loop of `syncCronJob`).
#[derive(Debug, Default, PartialEq)]
pub struct Observed {
    /// Unfinished Jobs the CronJob controls that `status.active` lacks: the shell re-reads the
    /// CronJob and warns `UnexpectedJob` if its fresh status lacks them too.
    pub unexpected: Vec<(String, String)>,
    /// Events for the finished Jobs dropped from `status.active`.
    pub events: Vec<JobEvent>,
    /// Whether the status changed.
    pub changed: bool,
    /// Entries of `status.active` not among the Jobs: the shell GETs each, and drops it with a
    /// `MissingJob` event on 404.
    pub missing: Vec<ObjectReference>,
}

/// Reconciles `status` with the CronJob's `jobs`: finished active Jobs leave `active` (with a
/// `SawCompletedJob` event), `lastSuccessfulTime` follows the latest completion.
pub fn observe_jobs(status: &mut CronJobStatus, jobs: &[&Job]) -> Observed {
    let mut out = Observed::default();
    for j in jobs {
        let uid = j.metadata.uid.clone().unwrap_or_default();
        let name = j.metadata.name.clone().unwrap_or_default();
        let found = in_active(status, &uid);
        match finished(j) {
            None if !found => out.unexpected.push((name, uid)),
            None => {}
            Some(cond) => {
                if found {
                    remove_active(status, &uid);
                    out.events.push(JobEvent::normal(
                        "SawCompletedJob",
                        &format!("Saw completed job: {name}, condition: {cond}"),
                    ));
                    out.changed = true;
                }
                if cond == "Complete"
                    && let Some(done) = j.status.as_ref().and_then(|s| s.completion_time.as_ref())
                {
                    let later = status.last_successful_time.as_ref().is_none_or(|t| to_chrono(done) > to_chrono(t));
                    if later {
                        status.last_successful_time = Some(done.clone());
                        out.changed = true;
                    }
                }
            }
        }
    }
    for r in status.active.iter().flatten() {
        if !jobs.iter().any(|j| j.metadata.uid == r.uid) {
            out.missing.push(r.clone());
        }
    }
    out
}

/// `cleanupFinishedJobs`: the finished Jobs over `successfulJobsHistoryLimit` /
/// `failedJobsHistoryLimit`, oldest start time first (Jobs without one last, then by name), to
/// delete. Nothing when neither limit is set.
pub fn history_to_delete<'a>(cj: &CronJob, jobs: &[&'a Job]) -> Vec<&'a Job> {
    let spec = cj.spec.as_ref();
    let succeeded = spec.and_then(|s| s.successful_jobs_history_limit);
    let failed = spec.and_then(|s| s.failed_jobs_history_limit);
    if succeeded.is_none() && failed.is_none() {
        return vec![];
    }
    let mut out = vec![];
    for (cond, limit) in [("Complete", succeeded), ("Failed", failed)] {
        let Some(limit) = limit else { continue };
        let mut js: Vec<&Job> = jobs.iter().copied().filter(|j| finished(j) == Some(cond)).collect();
        let excess = js.len().saturating_sub(usize::try_from(limit).unwrap_or(0));
        if excess == 0 {
            continue;
        }
        js.sort_by(|a, b| {
            let start = |j: &Job| j.status.as_ref().and_then(|s| s.start_time.as_ref()).map(to_chrono);
            match (start(a), start(b)) {
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (x, y) if x == y => a.metadata.name.cmp(&b.metadata.name),
                (x, y) => x.cmp(&y),
            }
        });
        out.extend(js.into_iter().take(excess));
    }
    out
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
