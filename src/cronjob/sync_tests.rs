//! Table tests of the CronJob sync decisions with an injected clock (upstream's
//! `TestControllerV2SyncCronJob` / `TestMostRecentScheduleTime` cases, as far as they are decisions
//! of the pure core).

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, CronJobStatus, Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::ObjectReference;

use super::*;
use crate::job::pods::to_time;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const UTC: Zone = Zone::Named(chrono_tz::UTC);

/// A CronJob created at `created` with `schedule`.
fn cj(schedule: &str, created: &str) -> CronJob {
    let mut c = CronJob {
        spec: Some(CronJobSpec { schedule: schedule.into(), ..Default::default() }),
        status: Some(CronJobStatus::default()),
        ..Default::default()
    };
    c.metadata.name = Some("hello".into());
    c.metadata.namespace = Some("default".into());
    c.metadata.uid = Some("cj-uid".into());
    c.metadata.creation_timestamp = Some(to_time(t(created)));
    c
}

fn with(mut c: CronJob, f: impl FnOnce(&mut CronJobSpec, &mut CronJobStatus)) -> CronJob {
    f(c.spec.as_mut().unwrap(), c.status.as_mut().unwrap());
    c
}

fn active(name: &str, uid: &str) -> ObjectReference {
    ObjectReference {
        name: Some(name.into()),
        namespace: Some("default".into()),
        uid: Some(uid.into()),
        ..Default::default()
    }
}

fn reasons(d: &Decision) -> Vec<&str> {
    d.events.iter().map(|e| e.reason.as_str()).collect()
}

fn start(at: &str) -> Action {
    Action::Start { scheduled: t(at), replace: false, schedule: Schedule::Every(1), next: None }
}

/// The action with the schedule and the next slot blanked (compared by slot and replace only).
fn action(d: &Decision) -> Action {
    match &d.action {
        Action::Start { scheduled, replace, .. } => {
            Action::Start { scheduled: *scheduled, replace: *replace, schedule: Schedule::Every(1), next: None }
        }
        a => a.clone(),
    }
}

fn ms(d: u64) -> Action {
    Action::Requeue(Duration::from_millis(d))
}

#[test]
fn sync_decisions() {
    let hourly = "0 * * * *";
    let created = "2024-01-01T09:30:00Z";
    // (name, cronjob, now, expected action, expected event reasons)
    let cases: Vec<(&str, CronJob, &str, Action, Vec<&str>)> = vec![
        ("not yet due: requeue at the next slot", cj(hourly, created), "2024-01-01T09:45:00Z", ms(15 * 60_000), vec![]),
        ("due: start the slot", cj(hourly, created), "2024-01-01T10:00:05Z", start("2024-01-01T10:00:00Z"), vec![]),
        (
            "several missed: the most recent starts",
            cj(hourly, created),
            "2024-01-01T13:20:00Z",
            start("2024-01-01T13:00:00Z"),
            vec![],
        ),
        (
            "more than 100 missed: warning, the latest still starts",
            cj(hourly, created),
            "2024-01-07T09:00:30Z",
            start("2024-01-07T09:00:00Z"),
            vec!["TooManyMissedTimes"],
        ),
        (
            "starting deadline bounds the missed count: no warning",
            with(cj(hourly, created), |s, _| s.starting_deadline_seconds = Some(3600)),
            "2024-01-07T09:00:30Z",
            start("2024-01-07T09:00:00Z"),
            vec![],
        ),
        (
            // Upstream applies the deadline before it picks the slot (mostRecentScheduleTime with
            // includeStartingDeadlineSeconds), so a slot past it is skipped without an event: its
            // MissSchedule branch cannot fire, here as there.
            "past the starting deadline: skipped, requeue for the next slot",
            with(cj(hourly, created), |s, _| s.starting_deadline_seconds = Some(10)),
            "2024-01-01T10:00:30Z",
            ms(59 * 60_000 + 30_000),
            vec![],
        ),
        (
            "within the starting deadline: start",
            with(cj(hourly, created), |s, _| s.starting_deadline_seconds = Some(60)),
            "2024-01-01T10:00:30Z",
            start("2024-01-01T10:00:00Z"),
            vec![],
        ),
        (
            "slot already processed (lastScheduleTime): requeue",
            with(cj(hourly, created), |_, st| st.last_schedule_time = Some(to_time(t("2024-01-01T10:00:00Z")))),
            "2024-01-01T10:00:30Z",
            ms(59 * 60_000 + 30_000),
            vec![],
        ),
        (
            "slot's Job already active by name: requeue",
            with(cj(hourly, created), |_, st| st.active = Some(vec![active("hello-28401720", "u1")])),
            "2024-01-01T10:00:30Z",
            ms(59 * 60_000 + 30_000),
            vec![],
        ),
        (
            "Forbid with an active Job: JobAlreadyActive",
            with(cj(hourly, created), |s, st| {
                s.concurrency_policy = Some("Forbid".into());
                st.active = Some(vec![active("hello-1", "u1")]);
            }),
            "2024-01-01T10:00:30Z",
            ms(59 * 60_000 + 30_000),
            vec!["JobAlreadyActive"],
        ),
        (
            "Forbid with nothing active: start",
            with(cj(hourly, created), |s, _| s.concurrency_policy = Some("Forbid".into())),
            "2024-01-01T10:00:30Z",
            start("2024-01-01T10:00:00Z"),
            vec![],
        ),
        (
            "Allow with an active Job: start alongside",
            with(cj(hourly, created), |s, st| {
                s.concurrency_policy = Some("Allow".into());
                st.active = Some(vec![active("hello-1", "u1")]);
            }),
            "2024-01-01T10:00:30Z",
            start("2024-01-01T10:00:00Z"),
            vec![],
        ),
        (
            "Replace with an active Job: replace",
            with(cj(hourly, created), |s, st| {
                s.concurrency_policy = Some("Replace".into());
                st.active = Some(vec![active("hello-1", "u1")]);
            }),
            "2024-01-01T10:00:30Z",
            Action::Start {
                scheduled: t("2024-01-01T10:00:00Z"),
                replace: true,
                schedule: Schedule::Every(1),
                next: None,
            },
            vec![],
        ),
        (
            "suspended: nothing",
            with(cj(hourly, created), |s, _| s.suspend = Some(true)),
            "2024-01-01T10:00:30Z",
            Action::AwaitChange,
            vec![],
        ),
        (
            "unknown time zone: warning, nothing",
            with(cj(hourly, created), |s, _| s.time_zone = Some("Mars/Olympus".into())),
            "2024-01-01T10:00:30Z",
            Action::AwaitChange,
            vec!["UnknownTimeZone"],
        ),
        (
            "unparseable schedule",
            cj("61 * * * *", created),
            "2024-01-01T10:00:30Z",
            Action::AwaitChange,
            vec!["UnparseableSchedule"],
        ),
        (
            "schedule that never fires: InvalidSchedule",
            cj("0 0 31 2 *", created),
            "2024-01-01T10:00:30Z",
            Action::AwaitChange,
            vec!["InvalidSchedule"],
        ),
        (
            "TZ in the schedule: UnsupportedSchedule, still runs",
            cj("TZ=UTC 0 * * * *", created),
            "2024-01-01T10:00:30Z",
            start("2024-01-01T10:00:00Z"),
            vec!["UnsupportedSchedule"],
        ),
        (
            "timeZone shifts the slots: 10:00 in Tokyo is 01:00Z",
            with(cj("0 10 * * *", "2024-01-01T00:00:00Z"), |s, _| s.time_zone = Some("Asia/Tokyo".into())),
            "2024-01-01T01:00:01Z",
            start("2024-01-01T01:00:00Z"),
            vec![],
        ),
        (
            "being deleted: nothing",
            {
                let mut c = cj(hourly, created);
                c.metadata.deletion_timestamp = Some(to_time(t("2024-01-01T10:00:00Z")));
                c
            },
            "2024-01-01T10:00:30Z",
            Action::AwaitChange,
            vec![],
        ),
        (
            "@every counts from creation",
            cj("@every 90s", "2024-01-01T10:00:00Z"),
            "2024-01-01T10:01:31Z",
            start("2024-01-01T10:01:30Z"),
            vec![],
        ),
    ];
    let mut failures = vec![];
    for (name, c, now, want, want_events) in cases {
        let d = decide(&c, t(now), UTC);
        if action(&d) != want || reasons(&d) != want_events {
            failures.push(format!("{name}: want {want:?} {want_events:?}, got {:?} {:?}", action(&d), reasons(&d)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn event_messages_are_upstreams() {
    assert_eq!(
        miss_schedule(t("2024-01-01T10:00:00Z")).message,
        "Missed scheduled time to start a job: Mon, 01 Jan 2024 10:00:00 +0000"
    );
    let c = with(cj("0 * * * *", "2024-01-01T09:30:00Z"), |s, _| s.time_zone = Some("Nowhere".into()));
    assert_eq!(
        decide(&c, t("2024-01-01T10:00:30Z"), UTC).events[0].message,
        "invalid timeZone: \"Nowhere\": unknown time zone Nowhere"
    );
    let d = decide(&cj("0 0 31 2 *", "2024-01-01T09:30:00Z"), t("2024-01-01T10:00:30Z"), UTC);
    assert_eq!(
        d.events[0].message,
        "invalid schedule: 0 0 31 2 * : time difference between two schedules is less than 1 second"
    );
    let d = decide(&cj("* * * * 8", "2024-01-01T09:30:00Z"), t("2024-01-01T10:00:30Z"), UTC);
    assert_eq!(d.events[0].message, "unparseable schedule: \"* * * * 8\" : end of range (8) above maximum (6): 8");
}

#[test]
fn most_recent_counts_missed_slots() {
    let c = cj("*/1 * * * *", "2024-01-01T10:00:00Z");
    let s = parse_schedule(&c, UTC).unwrap();
    let r = most_recent_schedule_time(&c, t("2024-01-01T10:00:30Z"), &s, false).unwrap();
    assert_eq!((r.time, r.missed), (None, Missed::None));
    let r = most_recent_schedule_time(&c, t("2024-01-01T10:01:00Z"), &s, false).unwrap();
    assert_eq!((r.time, r.missed), (Some(t("2024-01-01T10:01:00Z")), Missed::None), "exactly one due");
    let r = most_recent_schedule_time(&c, t("2024-01-01T11:40:59Z"), &s, false).unwrap();
    assert_eq!((r.time, r.missed), (Some(t("2024-01-01T11:40:00Z")), Missed::Few), "100 missed is still few");
    let r = most_recent_schedule_time(&c, t("2024-01-01T11:41:00Z"), &s, false).unwrap();
    assert_eq!((r.time, r.missed), (Some(t("2024-01-01T11:41:00Z")), Missed::Many), "101 is many");
    // An irregular schedule: the estimate walks forward to the exact last slot.
    let c = cj("30 6-16/4 * * 1-5", "2024-01-01T00:00:00Z");
    let s = parse_schedule(&c, UTC).unwrap();
    let r = most_recent_schedule_time(&c, t("2024-01-10T12:00:00Z"), &s, false).unwrap();
    assert_eq!(r.time, Some(t("2024-01-10T10:30:00Z")));
}

#[test]
fn requeue_follows_the_last_schedule_time() {
    let c = with(cj("*/5 * * * *", "2024-01-01T10:00:00Z"), |_, st| {
        st.last_schedule_time = Some(to_time(t("2024-01-01T10:05:00Z")))
    });
    let s = parse_schedule(&c, UTC).unwrap();
    assert_eq!(requeue_after(&c, t("2024-01-01T10:05:01Z"), &s), Some(Duration::from_millis(299_000)));
    // Slots missed since: from now.
    assert_eq!(requeue_after(&c, t("2024-01-01T10:21:00Z"), &s), Some(Duration::from_millis(4 * 60_000)));
}

#[test]
fn the_job_of_a_slot() {
    let mut c = with(cj("0 10 * * *", "2024-01-01T00:00:00Z"), |s, _| s.time_zone = Some("Asia/Tokyo".into()));
    let tmpl = &mut c.spec.as_mut().unwrap().job_template;
    tmpl.metadata = Some(ObjectMeta {
        labels: Some([("app".to_string(), "x".to_string())].into()),
        annotations: Some([("note".to_string(), "y".to_string())].into()),
        name: Some("ignored".into()),
        ..Default::default()
    });
    tmpl.spec = Some(Default::default());
    let job = job_from_template(&c, t("2024-01-01T01:00:00Z"));
    assert_eq!(job.metadata.name.as_deref(), Some("hello-28401180"), "unix minutes");
    assert_eq!(job.metadata.labels.as_ref().unwrap()["app"], "x");
    let ann = job.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann["note"], "y");
    assert_eq!(ann[SCHEDULED_TIMESTAMP_ANNOTATION], "2024-01-01T10:00:00+09:00");
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("CronJob", "cj-uid", Some(true)));
    assert_eq!(owner.block_owner_deletion, Some(true));
    // Without a zone: UTC (Go's LoadLocation("")), not the controller's zone.
    let c = cj("0 10 * * *", "2024-01-01T00:00:00Z");
    let job = job_from_template(&c, t("2024-01-01T10:00:00Z"));
    assert_eq!(job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP_ANNOTATION], "2024-01-01T10:00:00Z");
}

fn job(name: &str, cond: Option<&str>, start: Option<&str>, done: Option<&str>) -> Job {
    let mut j = Job::default();
    j.metadata.name = Some(name.into());
    j.metadata.uid = Some(format!("{name}-uid"));
    j.status = Some(JobStatus {
        start_time: start.map(|s| to_time(t(s))),
        completion_time: done.map(|s| to_time(t(s))),
        conditions: cond.map(|c| vec![JobCondition { type_: c.into(), status: "True".into(), ..Default::default() }]),
        ..Default::default()
    });
    j
}

#[test]
fn observing_jobs_updates_active_and_last_successful_time() {
    let running = job("run", None, Some("2024-01-01T10:00:00Z"), None);
    let done = job("done", Some("Complete"), Some("2024-01-01T09:00:00Z"), Some("2024-01-01T09:05:00Z"));
    let failed = job("failed", Some("Failed"), Some("2024-01-01T08:00:00Z"), None);
    let stray = job("stray", None, None, None);
    let mut st = CronJobStatus {
        active: Some(vec![
            active("run", "run-uid"),
            active("done", "done-uid"),
            active("failed", "failed-uid"),
            active("gone", "gone-uid"),
        ]),
        ..Default::default()
    };
    let o = observe_jobs(&mut st, &[&running, &done, &failed, &stray]);
    let names: Vec<_> = st.active.iter().flatten().map(|r| r.name.clone().unwrap()).collect();
    assert_eq!(names, ["run", "gone"], "finished ones leave active; the missing one is for the shell");
    assert_eq!(o.unexpected, vec![("stray".to_string(), "stray-uid".to_string())]);
    assert_eq!(o.missing.iter().map(|r| r.name.clone().unwrap()).collect::<Vec<_>>(), ["gone"]);
    let msgs: Vec<_> = o.events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(msgs, ["Saw completed job: done, condition: Complete", "Saw completed job: failed, condition: Failed"]);
    assert_eq!(st.last_successful_time.as_ref().map(to_chrono), Some(t("2024-01-01T09:05:00Z")));
    assert!(o.changed);
    // A later completion moves it; an earlier one does not; nothing new = no change.
    let later = job("later", Some("Complete"), None, Some("2024-01-01T11:00:00Z"));
    let earlier = job("earlier", Some("Complete"), None, Some("2024-01-01T07:00:00Z"));
    let o = observe_jobs(&mut st, &[&earlier, &later]);
    assert_eq!(st.last_successful_time.as_ref().map(to_chrono), Some(t("2024-01-01T11:00:00Z")));
    assert!(o.changed && o.events.is_empty());
    let mut st2 = st.clone();
    st2.active = None;
    assert!(!observe_jobs(&mut st2, &[&earlier, &later]).changed);
}

#[test]
fn history_limits_delete_the_oldest_finished_jobs() {
    let ok = |n: &str, s: Option<&str>| job(n, Some("Complete"), s, None);
    let bad = |n: &str, s: Option<&str>| job(n, Some("Failed"), s, None);
    let jobs = [
        ok("s1", Some("2024-01-01T01:00:00Z")),
        ok("s2", Some("2024-01-01T02:00:00Z")),
        ok("s0", Some("2024-01-01T00:00:00Z")),
        ok("snone", None),
        ok("s2b", Some("2024-01-01T02:00:00Z")),
        bad("f1", Some("2024-01-01T01:00:00Z")),
        bad("f0", Some("2024-01-01T00:00:00Z")),
        job("running", None, Some("2023-01-01T00:00:00Z"), None),
    ];
    let refs: Vec<&Job> = jobs.iter().collect();
    let names =
        |c: &CronJob| history_to_delete(c, &refs).iter().map(|j| j.metadata.name.clone().unwrap()).collect::<Vec<_>>();
    let c = |s: Option<i32>, f: Option<i32>| {
        with(cj("* * * * *", "2024-01-01T00:00:00Z"), |sp, _| {
            sp.successful_jobs_history_limit = s;
            sp.failed_jobs_history_limit = f;
        })
    };
    // Defaults 3 and 1: the two oldest successes (start time, ties by name, no start time last) and the older failure.
    assert_eq!(names(&c(Some(3), Some(1))), ["s0", "s1", "f0"]);
    assert_eq!(names(&c(Some(0), Some(0))), ["s0", "s1", "s2", "s2b", "snone", "f0", "f1"]);
    assert_eq!(names(&c(None, Some(0))), ["f0", "f1"]);
    assert!(names(&c(None, None)).is_empty(), "no limits: nothing");
    assert!(names(&c(Some(10), Some(10))).is_empty());
}

/// Schedules, zones and sync times (on time, late, far behind, across a DST change) for the
/// checks below.
fn timing_cases() -> Vec<CronJob> {
    let mut out = vec![];
    for schedule in ["*/1 * * * *", "*/5 * * * *", "30 6-16/4 * * 1-5", "0 2 * * *", "@every 90s", "0 0 1 * *"] {
        for zone in [None, Some("Europe/Paris"), Some("America/New_York")] {
            for created in ["2024-03-30T22:00:00Z", "2024-03-31T00:59:30Z", "2024-11-03T05:00:10Z"] {
                out.push(with(cj(schedule, created), |s, _| s.time_zone = zone.map(str::to_string)));
            }
        }
    }
    out
}

fn offsets() -> Vec<chrono::Duration> {
    [0, 1, 29, 59, 60, 61, 89, 90, 300, 3_599, 3_600, 7_200, 86_400, 6_000_000]
        .into_iter()
        .map(chrono::Duration::seconds)
        .chain([chrono::Duration::milliseconds(100), chrono::Duration::milliseconds(59_900)])
        .collect()
}

#[test]
fn the_requeue_after_a_start_is_the_full_walks() {
    let mut checked = 0;
    for c in timing_cases() {
        let created = to_chrono(c.metadata.creation_timestamp.as_ref().unwrap());
        for decided_after in offsets() {
            let decided = created + decided_after;
            let Action::Start { scheduled, schedule, next, .. } = decide(&c, decided, UTC).action else { continue };
            // The next slot named is the schedule's.
            assert_eq!(next, schedule.next(scheduled), "{:?} at {decided}", c.spec);
            let status = CronJobStatus { last_schedule_time: Some(to_time(scheduled)), ..Default::default() };
            let mut recorded = c.clone();
            recorded.status = Some(status.clone());
            // The requeue is taken after the create, which may take a while.
            for create_took in [0, 1, 30, 59, 60, 61, 600, 90_000].map(chrono::Duration::seconds) {
                let now = decided + create_took;
                assert_eq!(
                    requeue_after_start(&c, &status, now, &schedule, next),
                    requeue_after(&recorded, now, &schedule),
                    "{:?} created {created}, decided {decided}, requeued at {now}",
                    c.spec
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 1_000, "only {checked} cases started a Job");
}

#[test]
fn a_decision_on_a_status_aside_is_the_decision_on_the_copy() {
    let mut checked = 0;
    for c in timing_cases() {
        let created = to_chrono(c.metadata.creation_timestamp.as_ref().unwrap());
        for last in [None, Some(created + chrono::Duration::seconds(60)), Some(created + chrono::Duration::hours(3))] {
            for policy in ["Allow", "Forbid", "Replace"] {
                let status = CronJobStatus {
                    last_schedule_time: last.map(to_time),
                    active: Some(vec![active("hello-1", "u1")]),
                    ..Default::default()
                };
                // The cached CronJob's own status differs from the one reconciled aside.
                let read = with(c.clone(), |s, st| {
                    s.concurrency_policy = Some(policy.into());
                    st.last_schedule_time = Some(to_time(created));
                });
                let mut copy = read.clone();
                copy.status = Some(status.clone());
                for after in offsets() {
                    let now = created + after;
                    assert_eq!(
                        decide_with(&read, Some(&status), now, UTC),
                        decide(&copy, now, UTC),
                        "{:?} {status:?} at {now}",
                        read.spec
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 1_000);
}

/// What the shell does over time with a timer that fires exactly when asked: from a first sync
/// at `from`, each sync decides at the time its requeue named; a start records the slot (as the
/// status write does) and requeues as the shell does after a create. Returns, for each sync,
/// when it ran and the slot it started, if any.
fn follow(c: &CronJob, from: DateTime<Utc>, syncs: usize) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let mut status = c.status.clone().unwrap_or_default();
    let mut now = from;
    let mut out = vec![];
    for _ in 0..syncs {
        let d = decide_with(c, Some(&status), now, UTC);
        let after = match d.action {
            Action::Requeue(after) => {
                out.push((now, None));
                after
            }
            Action::Start { scheduled, schedule, next, .. } => {
                out.push((now, Some(scheduled)));
                status.last_schedule_time = Some(to_time(scheduled));
                requeue_after_start(c, &status, now, &schedule, next).unwrap()
            }
            a => panic!("{a:?} at {now}"),
        };
        now += chrono::Duration::from_std(after).unwrap();
    }
    out
}

/// The starts of [`follow`]: (when the sync ran, the slot it started).
fn starts(syncs: &[(DateTime<Utc>, Option<DateTime<Utc>>)]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    syncs.iter().filter_map(|(at, slot)| slot.map(|s| (*at, s))).collect()
}

#[test]
fn a_requeue_wakes_at_the_slot_itself() {
    // Created mid-minute: the first sync finds nothing due and asks to wake at the next slot; from
    // then on every sync is a start, at its slot to the nanosecond (upstream: 100 ms after it).
    let c = cj("*/1 * * * *", "2024-01-01T10:00:30.250Z");
    let syncs = follow(&c, t("2024-01-01T10:00:30.250Z"), 4);
    assert_eq!(syncs[0], (t("2024-01-01T10:00:30.250Z"), None));
    let want: Vec<_> = ["2024-01-01T10:01:00Z", "2024-01-01T10:02:00Z", "2024-01-01T10:03:00Z"]
        .into_iter()
        .map(|s| (t(s), t(s)))
        .collect();
    assert_eq!(starts(&syncs), want, "{syncs:?}");
    assert_eq!(syncs.len(), 1 + want.len(), "one sync per slot, none in between: {syncs:?}");
    // The first requeue is the time to the slot, nothing added.
    assert_eq!(decide(&c, t("2024-01-01T10:00:30.250Z"), UTC).action, ms(29_750));
}

#[test]
fn an_early_wake_asks_again_for_the_remainder_and_never_starts_early() {
    // The timer fired, but the wall clock reads before the slot (it was stepped back, or the
    // timer's clock runs ahead of it): not due, requeue for exactly what is left.
    let c = cj("*/1 * * * *", "2024-01-01T10:00:30Z");
    let slot = t("2024-01-01T10:01:00Z");
    for early in [1, 2, 100, 999, 30_000] {
        let now = slot - chrono::Duration::milliseconds(early);
        let d = decide(&c, now, UTC);
        assert_eq!((d.action, d.events), (ms(early as u64), vec![]), "{early} ms early");
        // When the clock reaches the slot, the slot starts.
        assert_eq!(action(&decide(&c, slot, UTC)), start("2024-01-01T10:01:00Z"));
    }
    let early = slot - chrono::Duration::nanoseconds(1);
    assert_eq!(decide(&c, early, UTC).action, Action::Requeue(Duration::from_nanos(1)), "a nanosecond early");
}

#[test]
fn a_late_wake_starts_the_slot_and_requeues_for_the_next_slot_itself() {
    let c = cj("*/1 * * * *", "2024-01-01T10:00:30Z");
    for late in [0, 1, 350, 59_999] {
        let now = t("2024-01-01T10:01:00Z") + chrono::Duration::milliseconds(late);
        let Action::Start { scheduled, schedule, next, .. } = decide(&c, now, UTC).action else { panic!("{late}") };
        assert_eq!(scheduled, t("2024-01-01T10:01:00Z"), "{late} ms late");
        let status = CronJobStatus { last_schedule_time: Some(to_time(scheduled)), ..Default::default() };
        // The next wake is 10:02:00 exactly, however late this one was.
        assert_eq!(
            requeue_after_start(&c, &status, now, &schedule, next),
            Some(Duration::from_millis(60_000 - late as u64))
        );
        let mut recorded = c.clone();
        recorded.status = Some(status);
        assert_eq!(requeue_after(&recorded, now, &schedule), Some(Duration::from_millis(60_000 - late as u64)));
    }
}

#[test]
fn across_dst_changes_the_wake_is_the_zones_slot_itself() {
    // Paris springs forward on 2024-03-31 at 02:00 (to 03:00): 02:30 does not exist that day and
    // is skipped (robfig), so after 2024-03-30 02:30 CET (01:30Z) the next wake is 2024-04-01
    // 02:30 CEST (00:30Z).
    let paris = with(cj("30 2 * * *", "2024-03-29T12:00:00Z"), |s, _| s.time_zone = Some("Europe/Paris".into()));
    let syncs = follow(&paris, t("2024-03-29T12:00:00Z"), 4);
    let want = ["2024-03-30T01:30:00Z", "2024-04-01T00:30:00Z", "2024-04-02T00:30:00Z"];
    assert_eq!(starts(&syncs), want.map(|s| (t(s), t(s))), "{syncs:?}");
    // New York falls back on 2024-11-03 at 02:00 EDT (to 01:00 EST): 01:30 comes twice, at 05:30Z
    // and 06:30Z, and both run; the wake after the first is an hour later exactly.
    let ny = with(cj("30 1 * * *", "2024-11-02T12:00:00Z"), |s, _| s.time_zone = Some("America/New_York".into()));
    let syncs = follow(&ny, t("2024-11-02T12:00:00Z"), 4);
    let want = ["2024-11-03T05:30:00Z", "2024-11-03T06:30:00Z", "2024-11-04T06:30:00Z"];
    // Created after the 2024-11-02 slot: the first sync waits for 2024-11-03 01:30 EDT.
    assert_eq!(starts(&syncs), want.iter().map(|s| (t(s), t(s))).collect::<Vec<_>>(), "{syncs:?}");
    assert_eq!(syncs.len(), 4, "{syncs:?}");
}

#[test]
fn a_decision_through_a_memo_is_the_decision_without_one() {
    // One memo carried through every case in turn: syncs of one CronJob at later and earlier
    // times, after a start (lastScheduleTime moves), a prepared walk past the next slot, and
    // across schedule and zone changes (the next case), as the shell's memo of a CronJob sees.
    let mut memo = Memo::default();
    let mut checked = 0;
    for c in timing_cases() {
        let created = to_chrono(c.metadata.creation_timestamp.as_ref().unwrap());
        for local in [UTC, Zone::Named(chrono_tz::Europe::Paris)] {
            let mut status = c.status.clone().unwrap_or_default();
            for after in offsets().into_iter().chain(offsets().into_iter().rev()) {
                let now = created + after;
                let got = decide_memo(&c, Some(&status), now, local, &mut memo);
                assert_eq!(got, decide_with(&c, Some(&status), now, local), "{:?} at {now}", c.spec);
                if let Action::Start { scheduled, next, .. } = got.action {
                    status.last_schedule_time = Some(to_time(scheduled));
                    if let Some(next) = next {
                        memo.walk_from(next);
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 1_000);
}

#[test]
fn the_slots_sync_walks_nothing_after_the_sync_before_the_slot() {
    let c = cj("*/1 * * * *", "2024-01-01T10:00:30Z");
    let mut memo = Memo::default();
    assert_eq!(decide_memo(&c, c.status.as_ref(), t("2024-01-01T10:00:30Z"), UTC, &mut memo).action, ms(30_000));
    let (slot, next) = (t("2024-01-01T10:01:00Z"), t("2024-01-01T10:02:00Z"));
    assert_eq!(memo.walked, [Some((t("2024-01-01T10:00:30Z"), Some(slot))), Some((slot, Some(next)))]);
    // What the slot's sync needs is remembered: with the walk after the slot falsified in the
    // memo, the decision names the falsified slot, so it was not walked again.
    let fake = t("2024-01-01T10:07:00Z");
    memo.walked[1] = Some((slot, Some(fake)));
    let d = decide_memo(&c, c.status.as_ref(), slot, UTC, &mut memo);
    assert!(
        matches!(d.action, Action::Start { scheduled, next: Some(n), .. } if scheduled == slot && n == fake),
        "{d:?}"
    );
}
