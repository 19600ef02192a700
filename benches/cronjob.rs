//! CronJob controller benchmark (not a test): N CronJobs on `*/1 * * * *`, one tick.
//!
//! `cargo bench --bench cronjob` runs 10,000 CronJobs; without `--bench` (as `cargo test
//! --all-targets` runs it) a smoke run of 200 checks the same things quickly. Options (after
//! `--`): `--cronjobs N`, `--workers N` (CronJobs synced at once, default 64).
//!
//! `jobwright apiserver` (the real binary) holds the objects; this process creates the CronJobs,
//! then runs the CronJob controller in-process with its instrumented client and watches the Jobs.
//! So that no run waits for a wall-clock minute, the controller's clock is the real one shifted by
//! less than a minute: the first slot after the CronJobs exist comes `lead` seconds after the
//! controller starts (creation never straddles a minute, so each CronJob's first slot is that one).
//!
//! Figures:
//! - skew, created: when the API server acknowledged each of the controller's Job creates (its
//!   `201 Created` reached the controller; the Job was stored before that, so an upper bound of its
//!   creation), minus the slot, on the controller's clock: max, p50, p99 and how many within one
//!   second;
//! - skew, seen: the same for when each slot's Job is seen by a watch in this process;
//! - the tick: time until every CronJob's status shows the slot;
//! - idle: the controller's syncs, API requests and CPU time (this process) in a quiet window after
//!   the tick, before the next slot, which should all be (near) zero: the controller sleeps until
//!   the next slot instead of polling;
//! - memory: this process's VmHWM/VmRSS (the controller, its caches and the watch).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::ChildProc;
use futures::{StreamExt, TryStreamExt};
use jobwright::cronjob::controller as cron;
use jobwright::cronjob::schedule::Zone;
use jobwright::metrics::{Metrics, ResponseHook, ResponseHookLayer};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

fn cronjob(i: usize) -> CronJob {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": format!("cj-{i}"), "namespace": "default"},
        "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}}}}
    }))
    .expect("cronjob")
}

/// User + system CPU time of process `pid` (`self` for this one), in seconds.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

/// The controller's writes (POST, PUT, PATCH, DELETE requests) so far.
fn writes(metrics: &Metrics) -> u64 {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("jobwright_api_requests_total{"))
        .filter(|l| ["\"create\"", "\"update\"", "\"patch\"", "\"delete\""].iter().any(|v| l.contains(v)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn counter_sum(metrics: &Metrics, prefix: &str) -> u64 {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Records when each `201 Created` answer to a Job create arrives, on the controller's clock (a
/// [`ResponseHook`] of the controller's client).
#[derive(Clone)]
struct Acks {
    at: Arc<Mutex<Vec<i64>>>,
    /// When the first Job create was sent (microseconds, the controller's clock).
    first_sent_us: Arc<AtomicI64>,
    /// When the first status write or event write was sent (microseconds, the controller's
    /// clock): what the tick defers until its Job creates are acknowledged.
    first_deferred_us: Arc<AtomicI64>,
    offset_ms: i64,
}

impl ResponseHook for Acks {
    /// Whether the request creates a Job.
    type Pending = bool;

    fn request<B>(&self, req: &http::Request<B>) -> bool {
        let create = req.method() == http::Method::POST && req.uri().path().ends_with("/jobs");
        let path = req.uri().path();
        let deferred = (req.method() == http::Method::PUT && path.contains("/cronjobs/") && path.ends_with("/status"))
            || (req.method() == http::Method::POST && path.ends_with("/events"));
        if create || deferred {
            let at = Utc::now().timestamp_micros() + self.offset_ms * 1000;
            let first = if create { &self.first_sent_us } else { &self.first_deferred_us };
            first.fetch_min(at, Ordering::Relaxed);
        }
        create
    }

    fn response(&self, create: bool, status: Option<http::StatusCode>) {
        if create && status == Some(http::StatusCode::CREATED) {
            let at = Utc::now().timestamp_millis() + self.offset_ms;
            self.at.lock().expect("acks").push(at);
        }
    }
}

/// The allocator of the `jobwright` binary (`src/main.rs`), so that the controller in this
/// process allocates as it does in `jobwright controller` (glibc's malloc costs it more).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Job as the bench's watch decodes it: the name, namespace and resourceVersion of its
/// metadata, the rest of the event read past.
#[derive(Clone, Debug, serde::Deserialize)]
struct SeenJob {
    #[serde(deserialize_with = "names_only")]
    metadata: kube::api::ObjectMeta,
}

fn names_only<'de, D: serde::Deserializer<'de>>(d: D) -> Result<kube::api::ObjectMeta, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Names {
        name: Option<String>,
        namespace: Option<String>,
        resource_version: Option<String>,
    }
    let n = <Names as serde::Deserialize>::deserialize(d)?;
    Ok(kube::api::ObjectMeta {
        name: n.name,
        namespace: n.namespace,
        resource_version: n.resource_version,
        ..Default::default()
    })
}

impl kube::Resource for SeenJob {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        Job::kind(&())
    }

    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        Job::group(&())
    }

    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        Job::version(&())
    }

    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        Job::plural(&())
    }

    fn meta(&self) -> &kube::api::ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut kube::api::ObjectMeta {
        &mut self.metadata
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(client_cfg: kube::Config, n: usize, lead: i64, idle: Duration, apiserver: &str) {
    let client = Client::try_from(client_cfg.clone()).expect("client");
    let api: Api<CronJob> = Api::default_namespaced(client.clone());
    // Creation must not straddle a minute: wait for a fresh minute if this one is nearly over.
    let budget = (5 + (n as i64) / 200).min(58);
    let secs_left = 60 - Utc::now().timestamp().rem_euclid(60);
    if secs_left < budget {
        tokio::time::sleep(Duration::from_secs(secs_left as u64) + Duration::from_millis(200)).await;
    }
    let minute = Utc::now().timestamp() / 60;
    let t = Instant::now();
    let server_cpu0 = cpu_secs(apiserver);
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &cronjob(i)).await.map(|_| ()) }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await
        .expect("create CronJobs");
    let created_in = t.elapsed();
    let server_cpu1 = cpu_secs(apiserver);
    assert_eq!(Utc::now().timestamp() / 60, minute, "creation straddled a minute; rerun");
    // The slot: the next real minute after creation, reached on the controller's clock `lead`
    // seconds after now.
    let slot = (minute + 1) * 60;
    let now = Utc::now();
    let offset_ms = slot * 1000 - (now.timestamp_millis() + lead * 1000);
    let offset = Arc::new(AtomicI64::new(offset_ms));
    let clock: cron::Clock = {
        let o = offset.clone();
        Arc::new(move || Utc::now() + chrono::Duration::milliseconds(o.load(Ordering::SeqCst)))
    };
    let fake_now = || Utc::now().timestamp_millis() + offset_ms;

    // The watch of the Jobs: when each slot's Job arrives, on the controller's clock. It decodes
    // only the names (the server sends each event whole, as to the controller's own informer).
    let jobs_api: Api<SeenJob> = Api::default_namespaced(client.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, i64)>();
    let watch = tokio::spawn(async move {
        let mut s = watcher(jobs_api, watcher::Config::default()).default_backoff().applied_objects().boxed();
        while let Some(Ok(job)) = s.next().await {
            let _ = tx.send((job.name_any(), Utc::now().timestamp_millis() + offset_ms));
        }
    });

    let metrics = Metrics::new();
    let acks = Acks {
        at: Arc::default(),
        first_sent_us: Arc::new(AtomicI64::new(i64::MAX)),
        first_deferred_us: Arc::new(AtomicI64::new(i64::MAX)),
        offset_ms,
    };
    // The client stack of `jobwright controller` ([`jobwright::httpclient`]).
    let ctl_client = jobwright::httpclient::builder(client_cfg)
        .expect("client")
        .with_layer(&metrics.api_layer())
        .with_layer(&ResponseHookLayer::new(acks.clone()))
        .build();
    let start_cpu = (cpu_secs("self"), cpu_secs(apiserver));
    // Both processes' CPU time at the slot: what the tick itself costs is measured from here.
    let slot_real_ms = slot * 1000 - offset_ms;
    let at_slot = tokio::spawn({
        let apiserver = apiserver.to_string();
        async move {
            let wait = slot_real_ms - Utc::now().timestamp_millis();
            tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
            (cpu_secs("self"), cpu_secs(&apiserver))
        }
    });
    println!("  the slot comes at unix time {:.3} (real clock)", slot_real_ms as f64 / 1000.0);
    let workers = common::arg("--workers").and_then(|w| w.parse().ok()).unwrap_or(cron::DEFAULT_WORKERS);
    let opts = cron::Options { clock, local: Zone::Named(chrono_tz::UTC), metrics: Some(metrics.clone()), workers };
    let stop = tokio_util::sync::CancellationToken::new();
    let controller = tokio::spawn(cron::run(ctl_client, opts, stop.clone().cancelled_owned()));

    let suffix = format!("-{}", slot / 60);
    let mut seen: HashMap<String, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(lead as u64 + 120);
    while seen.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((name, at))) if name.ends_with(&suffix) => {
                seen.entry(name).or_insert(at);
            }
            Ok(Some((name, _))) => panic!("a Job for another slot: {name}"),
            _ => panic!("only {} of {n} Jobs within {}s of the slot", seen.len(), lead + 120),
        }
    }
    let mut skews: Vec<f64> = seen.values().map(|at| (at - slot * 1000) as f64 / 1000.0).collect();
    skews.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let within_1s = skews.iter().filter(|s| **s <= 1.0).count();
    let tick_cpu1 = (cpu_secs("self"), cpu_secs(apiserver));
    let tick_cpu0 = at_slot.await.expect("cpu at the slot");
    // Every status written: lastScheduleTime is the slot.
    let done_at = loop {
        let list = api.list(&Default::default()).await.expect("list");
        let done = list.items.iter().filter(|c| {
            c.status.as_ref().and_then(|s| s.last_schedule_time.as_ref()).map(|t| t.0.as_second()) == Some(slot)
        });
        if done.count() == n {
            break (fake_now() - slot * 1000) as f64 / 1000.0;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Read only now: a watch may see a Job before its create's answer reaches the controller, but
    // a status naming the slot is written after it.
    let mut acked: Vec<f64> =
        acks.at.lock().expect("acks").iter().map(|at| (at - slot * 1000) as f64 / 1000.0).collect();
    acked.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let acked_1s = acked.iter().filter(|s| **s <= 1.0).count();
    // Let the syncs our own writes trigger (status, Job created) drain: the sync count holds still
    // for a second.
    let mut last = counter_sum(&metrics, "jobwright_reconcile_total{");
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = counter_sum(&metrics, "jobwright_reconcile_total{");
        if now == last {
            break;
        }
        last = now;
    }
    let (syncs0, reqs0, cpu0) = (
        counter_sum(&metrics, "jobwright_reconcile_total{"),
        counter_sum(&metrics, "jobwright_api_requests_total{"),
        cpu_secs("self"),
    );
    let (server_cpu2, tick_writes) = (cpu_secs(apiserver), writes(&metrics));
    let window_end = slot * 1000 + 57_000;
    let wait_ms = (window_end - fake_now()).clamp(0, idle.as_millis() as i64);
    tokio::time::sleep(Duration::from_millis(wait_ms as u64)).await;
    let (syncs1, reqs1, cpu1) = (
        counter_sum(&metrics, "jobwright_reconcile_total{"),
        counter_sum(&metrics, "jobwright_api_requests_total{"),
        cpu_secs("self"),
    );
    let (hwm, rss) = common::memory("self");
    stop.cancel();
    let _ = controller.await;
    watch.abort();

    println!(
        "cronjob bench: {n} CronJobs '*/1 * * * *' (created in {:.1}s), one slot, {workers} workers",
        created_in.as_secs_f64()
    );
    println!(
        "  Job created (201 reached the controller) after its slot: min {:.3}s, max {:.3}s, p50 {:.3}s, p99 {:.3}s; within 1 s: {acked_1s} of {}",
        acked.first().copied().unwrap_or(f64::NAN),
        acked.last().copied().unwrap_or(f64::NAN),
        pct(&acked, 0.5),
        pct(&acked, 0.99),
        acked.len()
    );
    println!(
        "  first Job create sent {:.1} ms after the slot",
        (acks.first_sent_us.load(Ordering::Relaxed) - slot * 1_000_000) as f64 / 1000.0
    );
    println!(
        "  Job seen by a watch after its slot: max {:.3}s, p50 {:.3}s, p99 {:.3}s; within 1 s: {within_1s} of {n}",
        skews.last().copied().unwrap_or(f64::NAN),
        pct(&skews, 0.5),
        pct(&skews, 0.99)
    );
    let first_deferred = match acks.first_deferred_us.load(Ordering::Relaxed) {
        i64::MAX => "n/a".to_string(),
        at => format!("{:.3}s", (at - slot * 1_000_000) as f64 / 1e6),
    };
    println!(
        "  first CronJob status or event write sent {first_deferred} after the slot (the last Job create acknowledged {:.3}s after it); every status written {done_at:.2}s after the slot",
        acked.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "  CPU from the controller's start until the slot: this process (controller + watch) {:.2}s, jobwright apiserver {:.2}s",
        tick_cpu0.0 - start_cpu.0,
        tick_cpu0.1 - start_cpu.1
    );
    println!(
        "  CPU from the slot until every Job was seen: this process (controller + watch) {:.2}s ({:.0} us per Job), jobwright apiserver {:.2}s ({:.0} us per Job)",
        tick_cpu1.0 - tick_cpu0.0,
        (tick_cpu1.0 - tick_cpu0.0) * 1e6 / n as f64,
        tick_cpu1.1 - tick_cpu0.1,
        (tick_cpu1.1 - tick_cpu0.1) * 1e6 / n as f64
    );
    let per_write = |cpu: f64, writes: u64| cpu * 1e6 / writes.max(1) as f64;
    println!(
        "  jobwright apiserver CPU: {n} CronJob creates {:.2}s ({:.0} us per create); start-up and the tick {:.2}s for {tick_writes} controller writes ({:.0} us per write, reads and watches included)",
        server_cpu1 - server_cpu0,
        per_write(server_cpu1 - server_cpu0, n as u64),
        server_cpu2 - server_cpu1,
        per_write(server_cpu2 - server_cpu1, tick_writes),
    );
    let by_verb = common::api_request_lines(&metrics.render());
    println!(
        "  syncs in all (start-up + the slot): {syncs0} for {n} CronJobs; API requests {reqs0}: {}",
        by_verb.join(", ")
    );
    println!(
        "  idle {:.1}s before the next slot: {} syncs, {} API requests, {:.2}s CPU",
        wait_ms as f64 / 1000.0,
        syncs1 - syncs0,
        reqs1 - reqs0,
        cpu1 - cpu0
    );
    println!(
        "  this process (controller + watch): VmHWM {:.0} MiB, VmRSS {:.0} MiB",
        common::mib(hwm),
        common::mib(rss)
    );
    assert_eq!(seen.len(), n, "one Job per CronJob for the slot");
    assert!(skews[0] >= 0.0, "no Job before its slot: {}", skews[0]);
    assert_eq!(acked.len(), n, "one acknowledged create per CronJob");
    assert!(acked[0] >= 0.0, "no Job created before its slot: {}", acked[0]);
    assert_eq!(syncs1 - syncs0, 0, "the controller polled between slots");
}

fn main() {
    let (n, lead, idle) =
        if common::full_run() { (10_000, 15, Duration::from_secs(40)) } else { (200, 3, Duration::from_secs(3)) };
    let n = common::arg("--cronjobs").and_then(|v| v.parse().ok()).unwrap_or(n);
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kubeconfig");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut apiserver = ChildProc::spawn(
        "jobwright apiserver",
        &common::jobwright_bin(),
        &["apiserver", "--listen", "127.0.0.1:0", "--kubeconfig", kc.to_str().expect("utf-8")],
        Some(&dir.path().join("apiserver.log")),
    );
    let cfg = rt.block_on(common::wait_kubeconfig(&kc, &mut apiserver));
    rt.block_on(run(cfg, n, lead, idle, &apiserver.pid().to_string()));
    let (hwm, _) = common::memory(&apiserver.pid().to_string());
    println!("  jobwright apiserver: VmHWM {:.0} MiB", common::mib(hwm));
}
