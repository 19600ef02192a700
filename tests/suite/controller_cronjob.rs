//! The CronJob controller against the in-process API server, with the Job controller and a
//! scripted kubelet. The controller's clock is injected (real time + an offset the test moves), so
//! no test waits for a scheduled minute: moving the clock and touching the CronJob (any change
//! re-syncs it at once) plays the passing of time.

use crate::controller_support;

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use controller_support::*;
use jobwright::apiserver::testkit::TestApiServer;
use jobwright::cronjob::controller::{self as cron, Clock};
use jobwright::cronjob::schedule::Zone;
use jobwright::cronjob::sync::SCHEDULED_TIMESTAMP_ANNOTATION;
use jobwright::metrics::Metrics;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The controller's clock: real time plus an offset in seconds the test moves.
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn new(offset_secs: i64) -> (Self, Clock) {
        let offset = Arc::new(AtomicI64::new(offset_secs));
        let o = offset.clone();
        (Self(offset), Arc::new(move || Utc::now() + chrono::Duration::seconds(o.load(Ordering::SeqCst))))
    }

    fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

fn start_cron(client: Client, clock: Clock, metrics: Option<Metrics>) -> JoinHandle<()> {
    let opts = cron::Options { clock, local: Zone::Named(chrono_tz::UTC), workers: 2, metrics };
    tokio::spawn(cron::run(client, opts, pending()))
}

fn cronjob(name: &str, schedule: &str, extra: Value) -> CronJob {
    let mut v = json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {
                "metadata": {"labels": {"app": name}, "annotations": {"team": "batch"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox"}]}}}
            }
        }
    });
    json_patch::merge(&mut v["spec"], &extra);
    serde_json::from_value(v).unwrap()
}

async fn create(c: &Client, cj: &CronJob) -> CronJob {
    Api::<CronJob>::default_namespaced(c.clone()).create(&PostParams::default(), cj).await.unwrap()
}

/// Any change re-syncs the CronJob at once (the test's way to say "time passed").
async fn touch(c: &Client, name: &str) {
    let api: Api<CronJob> = Api::default_namespaced(c.clone());
    let patch = json!({"metadata": {"annotations": {"test/touched": Utc::now().to_rfc3339()}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
}

async fn wait_cj(c: &Client, name: &str, what: &str, cond: impl Fn(&CronJob) -> bool) -> CronJob {
    let api: Api<CronJob> = Api::default_namespaced(c.clone());
    let r =
        tokio::time::timeout(WAIT, await_condition(api.clone(), name, move |o: Option<&CronJob>| o.is_some_and(&cond)))
            .await;
    let now = api.get(name).await.ok();
    assert!(r.is_ok(), "CronJob {name}: {what} never held; status {:#?}", now.and_then(|c| c.status));
    r.unwrap().unwrap().unwrap()
}

fn active_names(cj: &CronJob) -> Vec<String> {
    cj.status.iter().flat_map(|s| s.active.iter().flatten()).filter_map(|r| r.name.clone()).collect()
}

fn last_schedule(cj: &CronJob) -> Option<DateTime<Utc>> {
    cj.status.as_ref()?.last_schedule_time.as_ref().map(jobwright::job::pods::to_chrono)
}

async fn owned_jobs(c: &Client, cj: &str) -> Vec<Job> {
    let api: Api<Job> = Api::default_namespaced(c.clone());
    let mut jobs: Vec<Job> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|j| j.owner_references().iter().any(|r| r.controller == Some(true) && r.name == cj))
        .collect();
    jobs.sort_by_key(|j| j.name_any());
    jobs
}

fn has(evs: &[Event], reason: &str, message: &str) -> bool {
    evs.iter().any(|e| e.reason.as_deref() == Some(reason) && e.message.as_deref() == Some(message))
}

fn counter(text: &str, prefix: &str) -> u64 {
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum()
}

/// The slot the controller must pick at `now` for `*/5 * * * *`.
fn five_minute_slot(now: DateTime<Utc>) -> DateTime<Utc> {
    let ts = now.timestamp();
    DateTime::from_timestamp(ts - ts.rem_euclid(300), 0).unwrap()
}

#[tokio::test]
async fn due_slot_creates_one_job_from_the_template_and_tracks_it_to_completion() {
    let s = TestApiServer::start().await;
    let c = s.client();
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let _jobs = start_controller(c.clone());
    let (_clock, clock) = TestClock::new(11 * 60);
    let metrics = Metrics::new();
    // Counting the controller's requests: one status write per sync that changes something.
    let counted = jobwright::metrics::instrumented_client(s.config_with_token(s.admin_token()), &metrics).unwrap();
    let _cron = start_cron(counted, clock.clone(), Some(metrics.clone()));
    let cj = create(&c, &cronjob("hello", "*/5 * * * *", json!({"timeZone": "Asia/Tokyo"}))).await;
    let slot_floor = five_minute_slot(clock());

    let created = wait_cj(&c, "hello", "a Job started", |cj| last_schedule(cj).is_some()).await;
    let slot = last_schedule(&created).unwrap();
    assert!(slot >= slot_floor && slot <= clock(), "the most recent missed slot: {slot} (clock {})", clock());
    let name = format!("hello-{}", slot.timestamp() / 60);
    assert_eq!(active_names(&created), vec![name.clone()]);
    let jobs = owned_jobs(&c, "hello").await;
    assert_eq!(jobs.len(), 1, "one Job per slot");
    let job = &jobs[0];
    assert_eq!(job.name_any(), name, "<cronjob>-<scheduled unix minutes>");
    assert_eq!(job.labels().get("app").map(String::as_str), Some("hello"));
    assert_eq!(job.annotations().get("team").map(String::as_str), Some("batch"));
    let stamp = slot.with_timezone(&chrono_tz::Asia::Tokyo).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(job.annotations().get(SCHEDULED_TIMESTAMP_ANNOTATION), Some(&stamp), "in the CronJob's zone");
    assert!(stamp.ends_with("+09:00"));
    let owner = &job.owner_references()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("CronJob", cj.uid().unwrap().as_str()));
    assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
    let r = &created.status.as_ref().unwrap().active.as_ref().unwrap()[0];
    assert_eq!(
        (r.kind.as_deref(), r.api_version.as_deref(), r.uid.as_ref()),
        (Some("Job"), Some("batch/v1"), job.uid().as_ref())
    );

    // The Job completes: it leaves `active`, lastSuccessfulTime is its completion time.
    let done = wait_cj(&c, "hello", "the Job seen completed", |cj| {
        active_names(cj).is_empty() && cj.status.as_ref().is_some_and(|s| s.last_successful_time.is_some())
    })
    .await;
    let job = Api::<Job>::default_namespaced(c.clone()).get(&name).await.unwrap();
    assert_eq!(done.status.clone().unwrap().last_successful_time, job.status.unwrap().completion_time);
    assert_eq!(last_schedule(&done), Some(slot), "the scheduled time, not the actual one");
    let evs = wait_events(&c, "hello", |evs| {
        has(evs, "SuccessfulCreate", &format!("Created job {name}"))
            && has(evs, "SawCompletedJob", &format!("Saw completed job: {name}, condition: Complete"))
    })
    .await;
    let from = evs[0].reporting_component.clone().or(evs[0].source.as_ref().and_then(|s| s.component.clone()));
    assert_eq!(from.as_deref(), Some("cronjob-controller"));
    // More syncs start nothing new for the same slot.
    touch(&c, "hello").await;
    touch(&c, "hello").await;
    wait_cj(&c, "hello", "touch seen", |cj| cj.annotations().contains_key("test/touched")).await;
    assert_eq!(owned_jobs(&c, "hello").await.len(), 1);
    let text = metrics.render();
    assert!(text.contains("jobwright_cronjob_job_creation_skew_seconds_count 1"), "{text}");
    // Two status writes in all: the start (active + lastScheduleTime) and the completion (active
    // emptied + lastSuccessfulTime), however many syncs ran; none refused.
    let updates: Vec<&str> =
        text.lines().filter(|l| l.starts_with("jobwright_api_requests_total{verb=\"update\"")).collect();
    assert_eq!(updates, ["jobwright_api_requests_total{verb=\"update\",code=\"200\"} 2"], "{text}");
    assert!(counter(&text, "jobwright_reconcile_total{") >= 3, "several syncs: {text}");
}

#[tokio::test]
async fn a_restart_with_the_status_write_lost_readopts_the_slots_job_instead_of_starting_it_twice() {
    let s = TestApiServer::start().await;
    let c = s.client();
    let (_clock, clock) = TestClock::new(6 * 60);
    let first = start_cron(c.clone(), clock.clone(), None);
    create(&c, &cronjob("again", "*/5 * * * *", json!({}))).await;
    let started = wait_cj(&c, "again", "a Job started", |cj| !active_names(cj).is_empty()).await;
    let name = active_names(&started)[0].clone();
    first.abort();
    let _ = first.await;
    // The status as if the write after the create had been lost.
    let api: Api<CronJob> = Api::default_namespaced(c.clone());
    let mut lost = api.get("again").await.unwrap();
    lost.status = Some(Default::default());
    api.replace_status("again", &PostParams::default(), &lost).await.unwrap();
    let _second = start_cron(c.clone(), clock, None);
    let readopted = wait_cj(&c, "again", "the Job re-adopted", |cj| !active_names(cj).is_empty()).await;
    assert_eq!(active_names(&readopted), vec![name.clone()], "AlreadyExists re-adopts the same Job");
    assert_eq!(last_schedule(&readopted), last_schedule(&started));
    assert_eq!(owned_jobs(&c, "again").await.len(), 1, "never two Jobs for one slot");
    let evs = wait_events(&c, "again", |evs| has(evs, "SuccessfulCreate", &format!("Created job {name}"))).await;
    assert_eq!(evs.iter().filter(|e| e.reason.as_deref() == Some("SuccessfulCreate")).map(event_count).sum::<i32>(), 1);
}

#[tokio::test]
async fn forbid_skips_a_slot_while_a_job_runs_and_replace_deletes_it_first() {
    let s = TestApiServer::start().await;
    let c = s.client();
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Run).await;
    let _jobs = start_controller(c.clone());
    let (time, clock) = TestClock::new(6 * 60);
    let _cron = start_cron(c.clone(), clock, None);
    create(&c, &cronjob("forbid", "*/5 * * * *", json!({"concurrencyPolicy": "Forbid"}))).await;
    create(&c, &cronjob("replace", "*/5 * * * *", json!({"concurrencyPolicy": "Replace"}))).await;
    let f1 = wait_cj(&c, "forbid", "first Job", |cj| !active_names(cj).is_empty()).await;
    let r1 = wait_cj(&c, "replace", "first Job", |cj| !active_names(cj).is_empty()).await;
    let old = active_names(&r1)[0].clone();

    time.advance(5 * 60);
    touch(&c, "forbid").await;
    touch(&c, "replace").await;
    wait_events(&c, "forbid", |evs| {
        has(
            evs,
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid",
        )
    })
    .await;
    assert_eq!(active_names(&wait_cj(&c, "forbid", "unchanged", |_| true).await), active_names(&f1));
    assert_eq!(owned_jobs(&c, "forbid").await.len(), 1, "Forbid started nothing");

    let r2 = wait_cj(&c, "replace", "the replacement", |cj| {
        let a = active_names(cj);
        a.len() == 1 && a[0] != old
    })
    .await;
    assert!(last_schedule(&r2) > last_schedule(&r1));
    wait_events(&c, "replace", |evs| has(evs, "SuccessfulDelete", &format!("Deleted job {old}"))).await;
    let api: Api<Job> = Api::default_namespaced(c.clone());
    let gone = api.get_opt(&old).await.unwrap();
    assert!(gone.is_none_or(|j| j.metadata.deletion_timestamp.is_some()), "the running Job was deleted");
}

#[tokio::test]
async fn history_limits_keep_the_newest_finished_jobs_and_leave_manual_jobs_alone() {
    let s = TestApiServer::start().await;
    let c = s.client();
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let _jobs = start_controller(c.clone());
    let (time, clock) = TestClock::new(6 * 60);
    let _cron = start_cron(c.clone(), clock, None);
    let spec = json!({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1});
    let cj = create(&c, &cronjob("hist", "*/5 * * * *", spec)).await;
    // A finished Job from the template that the CronJob does not control (an ownerReference
    // without `controller: true`): not counted, never deleted. (`kubectl create job --from` does
    // set `controller: true`; such a Job is the CronJob's for upstream, and here: UnexpectedJob
    // while it runs, counted in the history once finished.)
    let mut manual: Job = serde_json::from_value(json!({
        "metadata": {"name": "hist-manual", "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "hist",
                "uid": cj.uid().unwrap(), "controller": false}]},
        "spec": cj.spec.as_ref().unwrap().job_template.spec.clone()
    }))
    .unwrap();
    manual.metadata.namespace = Some("default".into());
    let jobs_api: Api<Job> = Api::default_namespaced(c.clone());
    jobs_api.create(&PostParams::default(), &manual).await.unwrap();
    wait_condition(&c, "hist-manual", "Complete").await;

    let mut names = vec![];
    for i in 0..3 {
        let cj = wait_cj(&c, "hist", "a finished slot", |cj| {
            active_names(cj).is_empty() && last_schedule(cj).is_some_and(|t| !names.contains(&t))
        })
        .await;
        names.push(last_schedule(&cj).unwrap());
        let name = format!("hist-{}", names[i].timestamp() / 60);
        wait_condition(&c, &name, "Complete").await;
        time.advance(5 * 60);
        touch(&c, "hist").await;
    }
    // After three successes with limit 1: the two oldest deleted, oldest first.
    let keep = format!("hist-{}", names[2].timestamp() / 60);
    let want: Vec<String> = names[..2].iter().map(|t| format!("Deleted job hist-{}", t.timestamp() / 60)).collect();
    wait_events(&c, "hist", |evs| want.iter().all(|m| has(evs, "SuccessfulDelete", m))).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left: Vec<String> = owned_jobs(&c, "hist").await.iter().map(|j| j.name_any()).collect();
        let live: Vec<String> = jobs_api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .map(|j| j.name_any())
            .collect();
        if left.iter().filter(|n| live.contains(n)).count() <= 2 && live.contains(&keep) {
            assert!(live.contains(&"hist-manual".to_string()), "the manual Job stays: {live:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "history not trimmed: {live:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn missing_jobs_suspend_and_too_many_missed_slots() {
    let s = TestApiServer::start().await;
    let c = s.client();
    // 200 minutes ahead with a schedule of every minute: more than 100 missed.
    let (time, clock) = TestClock::new(200 * 60);
    let _cron = start_cron(c.clone(), clock.clone(), None);
    create(&c, &cronjob("late", "*/1 * * * *", json!({}))).await;
    let started = wait_cj(&c, "late", "the latest slot started", |cj| !active_names(cj).is_empty()).await;
    let slot = last_schedule(&started).unwrap();
    assert!(clock() - slot < chrono::Duration::seconds(61), "the most recent slot, not the first missed");
    wait_events(&c, "late", |evs| {
        has(
            evs,
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
        )
    })
    .await;
    // The active Job is deleted behind the controller's back: MissingJob, dropped from active.
    let name = active_names(&started)[0].clone();
    let jobs: Api<Job> = Api::default_namespaced(c.clone());
    jobs.delete(&name, &Default::default()).await.unwrap();
    // Suspended now, so the sync that notices does not start the next slot.
    let api: Api<CronJob> = Api::default_namespaced(c.clone());
    api.patch("late", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": true}}))).await.unwrap();
    time.advance(5 * 60);
    touch(&c, "late").await;
    let emptied = wait_cj(&c, "late", "the missing Job dropped", |cj| active_names(cj).is_empty()).await;
    wait_events(&c, "late", |evs| has(evs, "MissingJob", &format!("Active job went missing: {name}"))).await;
    assert_eq!(last_schedule(&emptied), Some(slot), "suspended: no new slot");
    assert!(owned_jobs(&c, "late").await.iter().all(|j| j.metadata.deletion_timestamp.is_some()));
    // Resumed: the latest slot starts.
    api.patch("late", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": false}}))).await.unwrap();
    let resumed = wait_cj(&c, "late", "resumed", |cj| last_schedule(cj).is_some_and(|t| t > slot)).await;
    assert_eq!(active_names(&resumed).len(), 1);
}

#[tokio::test]
async fn the_controller_wakes_for_the_next_slot_without_polling_and_a_new_schedule_applies_at_once() {
    let s = TestApiServer::start().await;
    let c = s.client();
    let metrics = Metrics::new();
    let _cron = start_cron(c.clone(), Arc::new(Utc::now), Some(metrics.clone()));
    // A yearly schedule: nothing due; the controller syncs it once and waits.
    create(&c, &cronjob("wake", "0 0 1 1 *", json!({}))).await;
    let reconciles = || {
        let text = metrics.render();
        text.lines()
            .filter(|l| l.starts_with("jobwright_reconcile_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while reconciles() == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The schedule changes to every 2 seconds: the change re-syncs at once, and the sync's own
    // requeue brings the controller back for the slot with no other event.
    let api: Api<CronJob> = Api::default_namespaced(c.clone());
    let changed = Utc::now();
    api.patch("wake", &PatchParams::default(), &Patch::Merge(json!({"spec": {"schedule": "@every 2s"}})))
        .await
        .unwrap();
    let cj = wait_cj(&c, "wake", "a Job for the first 2 s slot", |cj| last_schedule(cj).is_some()).await;
    let slot = last_schedule(&cj).unwrap();
    assert!(slot >= changed - chrono::Duration::seconds(3), "a slot after the change ({slot})");
}

/// Waits (bounded) until the controller's sync count reaches `n`; returns it.
async fn await_syncs(metrics: &Metrics, n: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let syncs = counter(&metrics.render(), "jobwright_reconcile_total{");
        if syncs >= n || tokio::time::Instant::now() > deadline {
            return syncs;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_slot_costs_one_sync_per_cronjob_its_own_status_write_and_job_trigger_none() {
    // Upstream's handlers requeue on every CronJob update and Job event; the syncs that would only
    // see the controller's own status write or its own new (running, active) Job are skipped, so
    // 10,000 CronJobs on one slot cost 10,000 syncs, not 30,000.
    let s = TestApiServer::start().await;
    let c = s.client();
    let (_clock, clock) = TestClock::new(11 * 60);
    let metrics = Metrics::new();
    let _cron = start_cron(c.clone(), clock, Some(metrics.clone()));
    const N: usize = 12;
    for i in 0..N {
        create(&c, &cronjob(&format!("one-{i}"), "*/5 * * * *", json!({}))).await;
    }
    for i in 0..N {
        wait_cj(&c, &format!("one-{i}"), "a Job started", |cj| !active_names(cj).is_empty()).await;
    }
    assert_eq!(await_syncs(&metrics, N as u64).await, N as u64, "one sync each for the slot");
    // A barrier: a CronJob created after all those writes were acknowledged is synced after the
    // watch delivered them (one ordered stream), so any sync they triggered has been queued.
    create(&c, &cronjob("last", "*/5 * * * *", json!({}))).await;
    wait_cj(&c, "last", "a Job started", |cj| !active_names(cj).is_empty()).await;
    let syncs = await_syncs(&metrics, N as u64 + 1).await;
    let text = metrics.render();
    assert_eq!(syncs, N as u64 + 1, "no sync for our own writes: {text}");
    // Anyone else's change still syncs at once (here a touch; upstream requeues on any update).
    touch(&c, "one-0").await;
    assert_eq!(await_syncs(&metrics, N as u64 + 2).await, N as u64 + 2, "a touch syncs");
    // And a finished Job wakes its CronJob: the Job leaves `active`.
    let job = active_names(&Api::<CronJob>::default_namespaced(c.clone()).get("one-1").await.unwrap())[0].clone();
    let jobs: Api<Job> = Api::default_namespaced(c.clone());
    let done = json!({"status": {"conditions": [
        {"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}],
        "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:00:01Z", "succeeded": 1}});
    jobs.patch_status(&job, &PatchParams::default(), &Patch::Merge(done)).await.unwrap();
    wait_cj(&c, "one-1", "the finished Job left active", |cj| active_names(cj).is_empty()).await;
}

#[tokio::test]
async fn at_a_tick_every_due_job_is_created_before_any_status_write() {
    // 20 CronJobs on one slot, synced two at a time: the status writes (and events) wait until
    // every due sync has sent its create, so the slot's Jobs go out first.
    const N: usize = 20;
    const LEAD: i64 = 10;
    let s = TestApiServer::start().await;
    let c = s.client();
    // The slot is the next real minute after the CronJobs are created (creation must not straddle
    // it); the controller's clock reaches it LEAD seconds after it starts.
    if 60 - Utc::now().timestamp().rem_euclid(60) < 8 {
        tokio::time::sleep(std::time::Duration::from_secs(9)).await;
    }
    let now = Utc::now().timestamp();
    let slot = (now / 60 + 1) * 60;
    let (_clock, clock) = TestClock::new(slot - LEAD - now);
    let fake_now = clock.clone();
    let metrics = Metrics::new();
    let _cron = start_cron(c.clone(), clock, Some(metrics.clone()));
    for i in 0..N {
        create(&c, &cronjob(&format!("tick-{i}"), "*/1 * * * *", json!({}))).await;
    }
    assert_eq!(await_syncs(&metrics, N as u64).await, N as u64, "each CronJob synced once before the slot");
    assert!(
        fake_now().timestamp() < slot && Utc::now().timestamp() < slot,
        "the CronJobs were created and synced before their slot (a machine too slow for {LEAD} s)"
    );
    let slot_time = DateTime::from_timestamp(slot, 0).unwrap();
    for i in 0..N {
        wait_cj(&c, &format!("tick-{i}"), "the slot started", |cj| last_schedule(cj) == Some(slot_time)).await;
    }
    let rv = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.resource_version.as_deref().unwrap().parse::<u64>().unwrap()
    };
    let jobs = Api::<Job>::default_namespaced(c.clone()).list(&ListParams::default()).await.unwrap().items;
    assert_eq!(jobs.len(), N, "one Job per CronJob");
    let cronjobs = Api::<CronJob>::default_namespaced(c.clone()).list(&ListParams::default()).await.unwrap().items;
    let last_create = jobs.iter().map(|j| rv(&j.metadata)).max().unwrap();
    let first_status = cronjobs.iter().map(|cj| rv(&cj.metadata)).min().unwrap();
    assert!(
        last_create < first_status,
        "every Job (last created at rv {last_create}) before any status write (first at rv {first_status})"
    );
}
