//! Chaos harness (issue 10): kill -9 at random points, then prove every Job still finishes exactly.
//!
//! Two modes, each run by `cargo bench --bench chaos` (release build) and, reduced, by
//! `cargo test --all-targets` (which runs this binary without `--bench`):
//!
//! - **controller**: separate processes for `jobwright apiserver --data-dir`, `jobwright kubelet
//!   --executor simulate` and `jobwright controller`. Many large Jobs (full run: 10 Indexed x 2,000
//!   completions and 6 NonIndexed x 1,000) run at once; the controller is killed with SIGKILL
//!   `--kills` times, each when the Jobs' total progress crosses a random fraction, and started
//!   again after a random pause.
//! - **local**: `jobwright local --executor simulate --data-dir D` killed with SIGKILL at a random
//!   moment of each of `--rounds` rounds while this process streams Job creates at it. After each
//!   restart every Job acknowledged before the kill must be there (same uid).
//!
//! After the last restart both wait until every Job is finished or has made no progress (its
//! status unchanged) for 60 s, and report:
//! - **lost**: acknowledged Jobs missing (or with another uid);
//! - **stuck**: Jobs unfinished with no progress for 60 s after the last restart;
//! - **wrong**: finished Jobs whose counts are off: a `Failed` condition, `succeeded` !=
//!   completions, `active` != 0, more Succeeded pods than completions (NonIndexed), pods still
//!   holding the `batch.kubernetes.io/job-tracking` finalizer;
//! - **duplicate**: indexes of Indexed Jobs with two or more Succeeded pods.
//!
//! Options (after `--`): `--mode controller|local|both` (default both), `--seed N` (default: random
//! in a full run, fixed in the reduced run; always printed), `--kills N`, `--rounds N`,
//! `--indexed N`, `--nonindexed N`, `--completions-indexed N`, `--completions-nonindexed N`,
//! `--keep` (keep the process logs and data directories; they are kept anyway on a failure).
//! `JOBWRIGHT_CHAOS_BIN=PATH` runs another `jobwright` binary than the one cargo built.
//! Any figure other than 0 makes the run fail.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ChildProc, arg};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// `jobwright local --pod-backoff-base` in local mode.
const LOCAL_POD_BACKOFF: Duration = Duration::from_millis(100);
/// `jobwright controller`'s pod back-off base (upstream's 10 s; its pods never fail in this run).
const CONTROLLER_POD_BACKOFF: Duration = Duration::from_secs(10);

/// No status change for this long after the last restart (and beyond the pod back-off the Job
/// may be waiting out) makes an unfinished Job stuck.
const STUCK_AFTER: Duration = Duration::from_secs(60);
const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";

/// The figures of one run.
#[derive(Debug, Default)]
struct Figures {
    jobs: usize,
    acknowledged: usize,
    lost: Vec<String>,
    stuck: Vec<String>,
    wrong: Vec<String>,
    duplicate: Vec<String>,
    kills: usize,
    /// The fewest kills any Job was unfinished through (controller mode).
    min_kills_per_job: Option<usize>,
    pods: usize,
}

impl Figures {
    fn clean(&self) -> bool {
        self.lost.is_empty() && self.stuck.is_empty() && self.wrong.is_empty() && self.duplicate.is_empty()
    }

    fn print(&self, title: &str, wall: Duration) {
        println!("\n{title}");
        println!(
            "{:>6} {:>13} {:>7} {:>6} {:>6} {:>6} {:>10} {:>6} {:>14} {:>9}",
            "Jobs", "acknowledged", "pods", "lost", "stuck", "wrong", "duplicate", "kills", "min kills/Job", "wall s"
        );
        println!(
            "{:>6} {:>13} {:>7} {:>6} {:>6} {:>6} {:>10} {:>6} {:>14} {:>9.1}",
            self.jobs,
            self.acknowledged,
            self.pods,
            self.lost.len(),
            self.stuck.len(),
            self.wrong.len(),
            self.duplicate.len(),
            self.kills,
            self.min_kills_per_job.map_or_else(|| "-".to_string(), |n| n.to_string()),
            wall.as_secs_f64()
        );
        for (what, list) in
            [("lost", &self.lost), ("stuck", &self.stuck), ("wrong", &self.wrong), ("duplicate", &self.duplicate)]
        {
            for line in list.iter().take(20) {
                println!("  {what}: {line}");
            }
            if list.len() > 20 {
                println!("  {what}: ... {} more", list.len() - 20);
            }
        }
    }
}

fn num(name: &str, default: usize) -> usize {
    arg(name).map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number: {v}"))).unwrap_or(default)
}

fn main() {
    let full = common::full_run();
    let seed: u64 = arg("--seed")
        .map(|s| s.parse().expect("--seed: a number"))
        .unwrap_or_else(|| if full { rand::random::<u32>() as u64 } else { 10 });
    let mode = arg("--mode").unwrap_or_else(|| "both".into());
    let keep = std::env::args().any(|a| a == "--keep");
    println!("chaos: seed {seed} (rerun with -- --seed {seed}), {} run", if full { "full" } else { "reduced" });
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut failed = Vec::new();
    if mode == "controller" || mode == "both" {
        let cfg = ControllerChaos {
            indexed: num("--indexed", if full { 10 } else { 2 }),
            nonindexed: num("--nonindexed", if full { 6 } else { 2 }),
            completions_indexed: num("--completions-indexed", if full { 2_000 } else { 120 }) as i32,
            completions_nonindexed: num("--completions-nonindexed", if full { 1_000 } else { 80 }) as i32,
            kills: num("--kills", 3),
            nodes: if full { 25 } else { 4 },
        };
        let dir = workdir("controller");
        let start = Instant::now();
        let figures = rt.block_on(controller_chaos(&cfg, seed, dir.path()));
        figures.print(
            &format!(
                "mode controller: {} Indexed x {} + {} NonIndexed x {}, controller kill -9 x {} (seed {seed})",
                cfg.indexed, cfg.completions_indexed, cfg.nonindexed, cfg.completions_nonindexed, cfg.kills
            ),
            start.elapsed(),
        );
        finish_dir(dir, keep || !figures.clean(), &mut failed, "controller", figures.clean());
    }
    if mode == "local" || mode == "both" {
        let cfg = LocalChaos { rounds: num("--rounds", if full { 20 } else { 3 }), full };
        let dir = workdir("local");
        let start = Instant::now();
        let figures = rt.block_on(local_chaos(&cfg, seed, dir.path()));
        figures.print(
            &format!(
                "mode local: `jobwright local --data-dir` kill -9 x {} during Job creates (seed {seed})",
                cfg.rounds
            ),
            start.elapsed(),
        );
        finish_dir(dir, keep || !figures.clean(), &mut failed, "local", figures.clean());
    }
    assert!(failed.is_empty(), "chaos found lost/stuck/wrong/duplicate Jobs in mode(s) {failed:?} (seed {seed})");
}

/// The `jobwright` binary cargo built for this run, or `JOBWRIGHT_CHAOS_BIN` (another build).
fn jobwright_bin() -> std::path::PathBuf {
    std::env::var_os("JOBWRIGHT_CHAOS_BIN").map(Into::into).unwrap_or_else(common::jobwright_bin)
}

fn workdir(what: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("jobwright-chaos-{what}-")).tempdir().expect("tempdir")
}

fn finish_dir(dir: tempfile::TempDir, keep: bool, failed: &mut Vec<&'static str>, what: &'static str, clean: bool) {
    if keep {
        let path = dir.keep();
        println!("  logs and data kept in {}", path.display());
    }
    if !clean {
        failed.push(what);
    }
}

/// A Job whose pods run `duration` (simulate executor) and exit 0.
fn job(name: &str, completions: i32, parallelism: i32, indexed: bool, duration: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
        "spec": {"completions": completions, "parallelism": parallelism,
            "completionMode": if indexed { "Indexed" } else { "NonIndexed" },
            // Pods running when `jobwright local` is killed end Failed (137) on its restart.
            "backoffLimit": 1000,
            "template": {"metadata": {"annotations": {"jobwright.dev/simulate-duration": duration}},
                "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}
    }))
    .expect("job fixture")
}

fn finished(job: &Job) -> Option<&'static str> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    conds.iter().filter(|c| c.status == "True").find_map(|c| match c.type_.as_str() {
        "Complete" => Some("Complete"),
        "Failed" => Some("Failed"),
        _ => None,
    })
}

fn progress_key(job: &Job) -> String {
    serde_json::to_string(&job.status).unwrap_or_default()
}

/// Status changes of every Job, as the harness last saw them.
#[derive(Default)]
struct Tracker {
    /// name -> (status as JSON, when it last changed).
    seen: HashMap<String, (String, Instant)>,
}

impl Tracker {
    fn observe(&mut self, jobs: &[Job]) {
        let now = Instant::now();
        for j in jobs {
            let key = progress_key(j);
            match self.seen.get_mut(&j.name_any()) {
                Some((old, at)) if *old != key => {
                    *old = key;
                    *at = now;
                }
                Some(_) => {}
                None => {
                    self.seen.insert(j.name_any(), (key, now));
                }
            }
        }
    }
}

/// Lists every object of a kind in `default` in one request (no `limit`: one consistent list),
/// retrying transient errors for up to a minute.
async fn list_all<K>(client: &Client) -> Vec<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), "default");
    for _ in 0..600 {
        match api.list(&ListParams::default()).await {
            Ok(l) => return l.items,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("listing {} failed for a minute", K::plural(&()));
}

async fn list_jobs(client: &Client) -> Vec<Job> {
    list_all(client).await
}

async fn list_pods(client: &Client) -> Vec<Pod> {
    list_all(client).await
}

/// Acknowledged Jobs (name -> uid) missing from `jobs` or there with another uid.
fn lost(acked: &BTreeMap<String, String>, jobs: &[Job]) -> Vec<String> {
    let have: HashMap<String, String> = jobs.iter().map(|j| (j.name_any(), j.uid().unwrap_or_default())).collect();
    acked
        .iter()
        .filter_map(|(name, uid)| match have.get(name) {
            Some(u) if u == uid => None,
            Some(u) => Some(format!("{name}: uid {uid} acknowledged, {u} found")),
            None => Some(format!("{name} (uid {uid}) acknowledged, not found")),
        })
        .collect()
}

/// How long a Job may rightly wait for its next pod: with no pod active after `failed` pod
/// failures, the Job controller's pod back-off (`base` doubled per failure after the first,
/// at most 10 min, as upstream). `failed` counts every failure, so this is never less than the
/// back-off upstream computes from the failures since the last success.
fn backoff_allowance(job: &Job, base: Duration) -> Duration {
    let status = job.status.as_ref();
    let failed = status.and_then(|s| s.failed).unwrap_or(0);
    if failed <= 0 || status.and_then(|s| s.active).unwrap_or(0) > 0 {
        return Duration::ZERO;
    }
    base.saturating_mul(1u32 << (failed - 1).min(20) as u32).min(Duration::from_secs(600))
}

/// Waits, polling every `poll`, until every Job is finished or stuck; `restarted` is the last
/// restart. A Job is stuck when its status has not changed for [`STUCK_AFTER`] beyond the pod
/// back-off it may be waiting out ([`backoff_allowance`] with `pod_backoff_base`). Returns the
/// last list and the stuck Jobs' names with their status.
async fn wait_settled(
    client: &Client,
    tracker: &mut Tracker,
    restarted: Instant,
    poll: Duration,
    pod_backoff_base: Duration,
) -> (Vec<Job>, Vec<String>) {
    loop {
        let jobs = list_jobs(client).await;
        tracker.observe(&jobs);
        let now = Instant::now();
        let unfinished: Vec<&Job> = jobs.iter().filter(|j| finished(j).is_none()).collect();
        if unfinished.is_empty() {
            return (jobs, Vec::new());
        }
        let quiet = |j: &&Job| {
            let (_, at) = &tracker.seen[&j.name_any()];
            now.duration_since((*at).max(restarted)) >= STUCK_AFTER + backoff_allowance(j, pod_backoff_base)
        };
        if unfinished.iter().all(quiet) {
            let stuck = unfinished.iter().map(|j| format!("{}: {}", j.name_any(), progress_key(j))).collect();
            return (jobs, stuck);
        }
        tokio::time::sleep(poll).await;
    }
}

/// The wrong counts and duplicate indexes of the finished Jobs, from their pods.
fn check_counts(jobs: &[Job], pods: &[Pod]) -> (Vec<String>, Vec<String>) {
    let mut by_uid: HashMap<String, Vec<&Pod>> = HashMap::new();
    for p in pods {
        if let Some(uid) = p.labels().get(CONTROLLER_UID) {
            by_uid.entry(uid.clone()).or_default().push(p);
        }
    }
    let mut wrong = Vec::new();
    let mut duplicate = Vec::new();
    for j in jobs {
        let name = j.name_any();
        let Some(state) = finished(j) else { continue };
        let spec = j.spec.clone().unwrap_or_default();
        let completions = spec.completions.unwrap_or(1);
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        let st = j.status.clone().unwrap_or_default();
        let mine = by_uid.get(&j.uid().unwrap_or_default()).cloned().unwrap_or_default();
        let succeeded: Vec<&&Pod> =
            mine.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")).collect();
        let mut problems = Vec::new();
        if state != "Complete" {
            problems.push(format!("ended {state}"));
        }
        if st.succeeded.unwrap_or(0) != completions {
            problems.push(format!("succeeded {} of {completions}", st.succeeded.unwrap_or(0)));
        }
        if st.active.unwrap_or(0) != 0 {
            problems.push(format!("active {}", st.active.unwrap_or(0)));
        }
        let uncounted = st.uncounted_terminated_pods.clone().unwrap_or_default();
        if !uncounted.succeeded.unwrap_or_default().is_empty() || !uncounted.failed.unwrap_or_default().is_empty() {
            problems.push("uncountedTerminatedPods left".into());
        }
        let held = mine.iter().filter(|p| p.finalizers().iter().any(|f| f == TRACKING_FINALIZER)).count();
        if held > 0 {
            problems.push(format!("{held} pods still hold the tracking finalizer"));
        }
        if indexed {
            let mut per_index: BTreeMap<String, usize> = BTreeMap::new();
            for p in &succeeded {
                let idx = p.annotations().get(COMPLETION_INDEX).cloned().unwrap_or_else(|| "?".into());
                *per_index.entry(idx).or_default() += 1;
            }
            for (idx, n) in per_index.iter().filter(|(_, n)| **n > 1) {
                duplicate.push(format!("{name} index {idx}: {n} Succeeded pods"));
            }
            if state == "Complete" && per_index.len() as i32 != completions {
                problems.push(format!("{} indexes with a Succeeded pod of {completions}", per_index.len()));
            }
        } else if succeeded.len() as i32 != completions && state == "Complete" {
            problems.push(format!("{} Succeeded pods for {completions} completions", succeeded.len()));
        }
        if !problems.is_empty() {
            wrong.push(format!("{name}: {}", problems.join(", ")));
        }
    }
    (wrong, duplicate)
}

// ---------------------------------------------------------------------------------------------
// Mode controller

struct ControllerChaos {
    indexed: usize,
    nonindexed: usize,
    completions_indexed: i32,
    completions_nonindexed: i32,
    kills: usize,
    nodes: usize,
}

fn spawn_controller(kc: &Path, dir: &Path, n: usize) -> ChildProc {
    let log = dir.join(format!("controller-{n}.log"));
    ChildProc::spawn(
        "jobwright controller",
        &jobwright_bin(),
        &[
            "controller",
            "--kubeconfig",
            kc.to_str().expect("utf-8 path"),
            "--manage-all-jobs",
            "--no-ttl-controller",
            "--crd-jobs",
            "false",
            "--admin-listen",
            "127.0.0.1:0",
            // Unlimited, so that progress is bounded by the processes, not by kube-controller-manager's
            // default 20 requests/s (at which the full run's 26,000 pods take ~45 min and a Job can
            // go a minute without a status change, which the run would call stuck).
            "--kube-api-qps",
            "-1",
        ],
        Some(&log),
    )
}

async fn controller_chaos(cfg: &ControllerChaos, seed: u64, dir: &Path) -> Figures {
    let mut rng = StdRng::seed_from_u64(seed);
    let kc = dir.join("kubeconfig");
    let kc_s = kc.to_str().expect("utf-8 path").to_string();
    let data = dir.join("apiserver-data");
    let mut apiserver = ChildProc::spawn(
        "jobwright apiserver",
        &jobwright_bin(),
        &[
            "apiserver",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig",
            &kc_s,
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--watch-history",
            "100000",
        ],
        Some(&dir.join("apiserver.log")),
    );
    let client = Client::try_from(common::wait_kubeconfig(&kc, &mut apiserver).await).expect("client");
    let nodes = cfg.nodes.to_string();
    let mut kubelet = ChildProc::spawn(
        "jobwright kubelet",
        &jobwright_bin(),
        &["kubelet", "--kubeconfig", &kc_s, "--executor", "simulate", "--nodes", &nodes, "--no-events"],
        Some(&dir.join("kubelet.log")),
    );
    let nodes_api: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while nodes_api.list(&ListParams::default()).await.map(|l| l.items.len()).unwrap_or(0) < cfg.nodes {
        kubelet.assert_running();
        assert!(Instant::now() < deadline, "nodes did not register");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut starts = 0;
    let mut controller = spawn_controller(&kc, dir, starts);

    // Parallelism: a tenth of the completions, so every Job runs through the whole run.
    let mut specs = Vec::new();
    for i in 0..cfg.indexed {
        let d = format!("{}ms", rng.random_range(100..1500));
        specs.push(job(
            &format!("indexed-{i}"),
            cfg.completions_indexed,
            (cfg.completions_indexed / 10).max(1),
            true,
            &d,
        ));
    }
    for i in 0..cfg.nonindexed {
        let d = format!("{}ms", rng.random_range(100..1500));
        let c = cfg.completions_nonindexed;
        specs.push(job(&format!("nonindexed-{i}"), c, (c / 10).max(1), false, &d));
    }
    let total: i64 = specs.iter().map(|j| j.spec.as_ref().and_then(|s| s.completions).unwrap_or(1) as i64).sum();
    let api: Api<Job> = Api::namespaced(client.clone(), "default");
    let mut acked = BTreeMap::new();
    for j in &specs {
        let created = api.create(&PostParams::default(), j).await.expect("create Job");
        acked.insert(created.name_any(), created.uid().unwrap_or_default());
    }

    // Kill points: random fractions of the total completions, in order.
    let mut points: Vec<f64> = (0..cfg.kills).map(|_| rng.random_range(0.05..0.9)).collect();
    points.sort_by(f64::total_cmp);
    let mut tracker = Tracker::default();
    let mut kills_seen: HashMap<String, usize> = HashMap::new();
    let mut restarted = Instant::now();
    for (k, point) in points.iter().enumerate() {
        let target = (point * total as f64) as i64;
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            apiserver.assert_running();
            kubelet.assert_running();
            let jobs = list_jobs(&client).await;
            tracker.observe(&jobs);
            let done: i64 = jobs.iter().map(|j| j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) as i64).sum();
            if done >= target || jobs.iter().all(|j| finished(j).is_some()) {
                for j in jobs.iter().filter(|j| finished(j).is_none()) {
                    *kills_seen.entry(j.name_any()).or_default() += 1;
                }
                break;
            }
            let quiet =
                tracker.seen.values().all(|(_, at)| at.elapsed() >= STUCK_AFTER && restarted.elapsed() >= STUCK_AFTER);
            if quiet || Instant::now() > deadline {
                // Stuck before the kill point: the settle below reports it.
                break;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..200))).await;
        }
        // SIGKILL (std's Child::kill), at whatever point the controller is.
        controller.child.kill().expect("kill controller");
        let _ = controller.child.wait();
        println!("  kill {} of {}: at {:.0}% of {total} completions", k + 1, cfg.kills, point * 100.0);
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..2000))).await;
        starts += 1;
        controller = spawn_controller(&kc, dir, starts);
        restarted = Instant::now();
    }
    let (jobs, stuck) =
        wait_settled(&client, &mut tracker, restarted, Duration::from_millis(500), CONTROLLER_POD_BACKOFF).await;
    controller.assert_running();
    let pods = list_pods(&client).await;
    let (wrong, duplicate) = check_counts(&jobs, &pods);
    Figures {
        jobs: jobs.len(),
        acknowledged: acked.len(),
        lost: lost(&acked, &jobs),
        stuck,
        wrong,
        duplicate,
        kills: cfg.kills,
        min_kills_per_job: acked.keys().map(|n| kills_seen.get(n).copied().unwrap_or(0)).min(),
        pods: pods.len(),
    }
}

// ---------------------------------------------------------------------------------------------
// Mode local

struct LocalChaos {
    rounds: usize,
    full: bool,
}

fn spawn_local(kc: &Path, data: &Path, dir: &Path, n: usize) -> ChildProc {
    let _ = std::fs::remove_file(kc);
    ChildProc::spawn(
        "jobwright local",
        &jobwright_bin(),
        &[
            "local",
            "--executor",
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--nodes",
            "4",
            "--kubeconfig",
            kc.to_str().expect("utf-8 path"),
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            // Pods running at a kill end Failed on the restart; their Job waits out the pod
            // back-off (doubling per failure) before replacing them, which the stuck check
            // allows for. From 100 ms instead of 10 s, so that a Job whose pods (up to 4 at once)
            // several kills failed finishes within the run (9 failures: 25.6 s, not 256 s).
            "--pod-backoff-base",
            "100ms",
        ],
        Some(&dir.join(format!("local-{n}.log"))),
    )
}

async fn local_chaos(cfg: &LocalChaos, seed: u64, dir: &Path) -> Figures {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x10ca1);
    let kc = dir.join("kubeconfig");
    let data = dir.join("data");
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let mut lost_total = Vec::new();
    let mut tracker = Tracker::default();
    let mut next = 0usize;
    for round in 0..cfg.rounds {
        let mut local = spawn_local(&kc, &data, dir, round);
        let client = Client::try_from(common::wait_kubeconfig(&kc, &mut local).await).expect("client");
        // Every Job acknowledged before the last kill is there.
        let jobs = list_jobs(&client).await;
        tracker.observe(&jobs);
        let before = acked.lock().unwrap().clone();
        for l in lost(&before, &jobs) {
            lost_total.push(format!("round {round}: {l}"));
        }
        // Stream creates for a random time, then kill -9.
        let seeds: Vec<u64> = (0..2).map(|_| rng.random()).collect();
        let base = next;
        next += 100_000;
        let creators: Vec<_> = seeds
            .into_iter()
            .enumerate()
            .map(|(t, s)| {
                let (client, acked) = (client.clone(), acked.clone());
                let longest = if cfg.full { 3_000 } else { 1_000 };
                tokio::spawn(async move {
                    let mut rng = StdRng::seed_from_u64(s);
                    let api: Api<Job> = Api::namespaced(client, "default");
                    for i in 0.. {
                        let name = format!("r{round}-{t}-{}", base + i);
                        let completions = rng.random_range(1..=4);
                        let indexed = rng.random_bool(0.5);
                        let d = format!("{}ms", rng.random_range(0..longest));
                        let j = job(&name, completions, rng.random_range(1..=completions), indexed, &d);
                        if let Ok(created) = api.create(&PostParams::default(), &j).await {
                            acked.lock().unwrap().insert(name, created.uid().unwrap_or_default());
                        }
                        tokio::time::sleep(Duration::from_millis(rng.random_range(20..150))).await;
                    }
                })
            })
            .collect();
        let run_for = Duration::from_millis(rng.random_range(if cfg.full { 2_000..8_000 } else { 1_500..4_000 }));
        tokio::time::sleep(run_for).await;
        local.assert_running();
        local.child.kill().expect("kill jobwright local");
        let _ = local.child.wait();
        for c in creators {
            c.abort();
        }
        println!(
            "  round {} of {}: killed after {:.1}s, {} Jobs acknowledged so far",
            round + 1,
            cfg.rounds,
            run_for.as_secs_f64(),
            acked.lock().unwrap().len()
        );
    }
    // The last start: no more kills.
    let mut local = spawn_local(&kc, &data, dir, cfg.rounds);
    let client = Client::try_from(common::wait_kubeconfig(&kc, &mut local).await).expect("client");
    let restarted = Instant::now();
    let (jobs, stuck) = wait_settled(&client, &mut tracker, restarted, Duration::from_secs(1), LOCAL_POD_BACKOFF).await;
    local.assert_running();
    let acked = acked.lock().unwrap().clone();
    for l in lost(&acked, &jobs) {
        lost_total.push(format!("at the end: {l}"));
    }
    let pods = list_pods(&client).await;
    let (wrong, duplicate) = check_counts(&jobs, &pods);
    Figures {
        jobs: jobs.len(),
        acknowledged: acked.len(),
        lost: lost_total,
        stuck,
        wrong,
        duplicate,
        kills: cfg.rounds,
        min_kills_per_job: None,
        pods: pods.len(),
    }
}
