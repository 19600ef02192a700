//! Job controller benchmark (not a test): Jobs completed and pods created per second, the
//! controller's API requests per completed Job (by resource and verb) and the controller's memory.
//!
//! `cargo bench --bench controller` runs 1,000 Jobs x 1 pod and 1 Job x 10,000 completions
//! (parallelism 500); without `--bench` (as `cargo test --all-targets` runs it) a smoke run of
//! 30 Jobs and 1 Job x 300 completions checks the figures are sane. `JOBWRIGHT_BENCH_JOBS` and
//! `JOBWRIGHT_BENCH_WIDE` override the two sizes; `JOBWRIGHT_BENCH_KUBE_API_QPS=N` (and
//! `JOBWRIGHT_BENCH_KUBE_API_BURST=M`, default 30) put the controller's client behind the rate
//! limit `jobwright controller --kube-api-qps N --kube-api-burst M` applies (none by default here).
//!
//! Processes, so each figure belongs to one thing:
//! - `jobwright apiserver` (the real binary) holds the objects;
//! - a *finisher* (this binary, `--role finisher`) marks each new pod `Succeeded` through the status
//!   subresource as soon as it appears: pods finish instantly, no scheduler or kubelet;
//! - the *scenario* process (this binary, `--role scenario`) runs the Job controller in-process with
//!   its request-counting client ([`jobwright::metrics::instrumented_client`]), creates the Jobs with
//!   a separate client and waits for them to complete. Its `VmHWM`/`VmRSS` (from
//!   `/proc/self/status`) are the controller's memory (plus a watch of the Jobs and the small
//!   driver), one fresh process per scenario.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ChildProc, arg, mib};
use futures::StreamExt;
use jobwright::job::Config;
use jobwright::job::cached_pod::CachedPod;
use jobwright::job::controller::{self, Options};
use jobwright::metrics::{Metrics, request_verb};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// Requests by `(resource[/subresource], verb)`.
type Counts = Arc<Mutex<BTreeMap<(String, String), u64>>>;

/// `pods`, `pods/status`, `jobs/status`, `events`... from a request path.
fn resource_of(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match segs.as_slice() {
        ["api", _v, rest @ ..] => rest,
        ["apis", _g, _v, rest @ ..] => rest,
        _ => return path.to_string(),
    };
    let rest = match rest {
        ["watch", rest @ ..] => rest,
        r => r,
    };
    let rest = match rest {
        ["namespaces", _ns, r @ ..] if !r.is_empty() => r,
        r => r,
    };
    match rest {
        [res, _name, sub, ..] => format!("{res}/{sub}"),
        [res, ..] => res.to_string(),
        [] => "-".into(),
    }
}

/// The rate limit asked for by `JOBWRIGHT_BENCH_KUBE_API_QPS`/`_BURST`, if any.
fn bench_limit() -> Option<(f64, u32)> {
    let qps: f64 = std::env::var("JOBWRIGHT_BENCH_KUBE_API_QPS").ok()?.parse().ok()?;
    let burst = std::env::var("JOBWRIGHT_BENCH_KUBE_API_BURST").ok().and_then(|b| b.parse().ok());
    Some((qps, burst.unwrap_or(jobwright::ratelimit::DEFAULT_BURST)))
}

fn counting_client(cfg: kube::Config, metrics: &Metrics, counts: Counts) -> Client {
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        let key = (resource_of(req.uri().path()), request_verb(req.method(), req.uri()).to_string());
        *counts.lock().unwrap().entry(key).or_insert(0) += 1;
        req
    });
    let builder = kube::client::ClientBuilder::try_from(cfg)
        .expect("client builder")
        .with_layer(&metrics.api_layer())
        .with_layer(&layer);
    match bench_limit() {
        Some((qps, burst)) => builder.with_layer(&jobwright::ratelimit::RateLimiter::new(qps, burst).layer()).build(),
        None => builder.build(),
    }
}

/// `--role finisher`: marks every new pod Succeeded (exit code 0) through the status subresource.
/// It reads pods as the Job controller caches them ([`CachedPod`]: name, namespace, uid, phase,
/// deletionTimestamp are all it needs), so decoding whole `Pod`s does not cost the shared machine
/// CPU the scenario then lacks; the writes are the same.
async fn finisher(client: Client) {
    let api: Api<CachedPod> = Api::all(client);
    let mut seen = std::collections::HashSet::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(64));
    let mut stream = watcher(api.clone(), watcher::Config::default()).default_backoff().boxed();
    while let Some(ev) = stream.next().await {
        let pod = match ev {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
            _ => continue,
        };
        if matches!(pod.phase.as_deref(), Some("Succeeded" | "Failed")) || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if !seen.insert(pod.uid().unwrap_or_default()) {
            continue;
        }
        let permit = permits.clone().acquire_owned().await.expect("semaphore");
        let api: Api<CachedPod> = Api::namespaced(api.clone().into_client(), &pod.namespace().unwrap_or_default());
        tokio::spawn(async move {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let status = json!({"status": {"phase": "Succeeded",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
                "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "", "ready": false,
                    "restartCount": 0, "started": false,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}}]}});
            if let Err(e) = api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(status)).await {
                eprintln!("finisher: {}: {e}", pod.name_any());
            }
            drop(permit);
        });
    }
}

/// `--role scenario`: the controller plus the driver; prints one `RESULT {json}` line.
async fn scenario(cfg: kube::Config, jobs: usize, completions: i32, parallelism: i32, timeout: Duration) {
    let metrics = Metrics::new();
    let counts: Counts = Arc::default();
    let ctl_client = counting_client(cfg.clone(), &metrics, counts.clone());
    let driver = Client::try_from(cfg).expect("client");
    let (synced_tx, mut synced) = tokio::sync::watch::channel(false);
    let opts = Options {
        config: Config { manage_all: true, ..Config::default() },
        ttl_controller: false,
        metrics: Some(metrics.clone()),
        caches_synced: Some(Arc::new(synced_tx)),
        crd_jobs: controller::CrdJobs::Disabled,
        ..Options::default()
    };
    tokio::spawn(controller::run(ctl_client, opts, std::future::pending()));
    synced.wait_for(|s| *s).await.expect("caches synced");
    let (hwm_idle, _) = common::memory("self");
    let cpu_idle = common::cpu_seconds("self");

    let watch = {
        let driver = driver.clone();
        tokio::spawn(async move { common::wait_complete(&driver, jobs, timeout).await })
    };
    let start = Instant::now();
    let specs = (0..jobs).map(|i| common::job(&format!("bench-{i}"), completions, parallelism, false)).collect();
    common::create_jobs(&driver, specs, 16).await;
    let done = watch.await.expect("all Jobs complete");
    let elapsed = start.elapsed().as_secs_f64();
    // The process's CPU time from caches synced to the last Job Complete: the controller's work
    // (plus the driver's Job creates and watch), a figure the machine's load barely changes.
    let cpu = common::cpu_seconds("self") - cpu_idle;
    common::assert_counted(&done);
    // Requests still in flight when the last Job turned Complete (events are published in the
    // background) land in the counts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (hwm, rss) = common::memory("self");
    let by_resource: Vec<Value> =
        counts.lock().unwrap().iter().map(|((res, verb), n)| json!({"resource": res, "verb": verb, "n": n})).collect();
    let codes = common::api_request_lines(&metrics.render());
    println!(
        "RESULT {}",
        json!({"elapsed": elapsed, "jobs": jobs, "completions": completions, "by_resource": by_resource,
            "codes": codes, "hwm": hwm, "rss": rss, "hwm_idle": hwm_idle, "cpu": cpu})
    );
}

struct Run {
    name: String,
    result: Value,
    apiserver_hwm: u64,
    /// CPU seconds of the API server and the finisher over the whole scenario process (caches
    /// syncing and the Job creates included).
    apiserver_cpu: f64,
    finisher_cpu: f64,
}

/// One scenario: a fresh API server, finisher and controller process.
fn run_scenario(name: &str, jobs: usize, completions: i32, parallelism: i32, timeout: Duration) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kubeconfig");
    let kc_s = kc.to_str().expect("utf-8 path");
    let me = std::env::current_exe().expect("current exe");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut apiserver = ChildProc::spawn(
        "jobwright apiserver",
        &common::jobwright_bin(),
        &["apiserver", "--listen", "127.0.0.1:0", "--kubeconfig", kc_s],
        Some(&dir.path().join("apiserver.log")),
    );
    rt.block_on(common::wait_kubeconfig(&kc, &mut apiserver));
    let finisher = ChildProc::spawn(
        "finisher",
        &me,
        &["--role", "finisher", "--kubeconfig", kc_s],
        Some(&dir.path().join("finisher.log")),
    );
    let (api_pid, fin_pid) = (apiserver.pid().to_string(), finisher.pid().to_string());
    let (api_cpu0, fin_cpu0) = (common::cpu_seconds(&api_pid), common::cpu_seconds(&fin_pid));
    let out = std::process::Command::new(&me)
        .args(["--role", "scenario", "--kubeconfig", kc_s])
        .args(["--jobs", &jobs.to_string(), "--completions", &completions.to_string()])
        .args(["--parallelism", &parallelism.to_string(), "--timeout", &timeout.as_secs().to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run scenario");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("RESULT "));
    let (apiserver_hwm, _) = common::memory(&api_pid);
    let apiserver_cpu = common::cpu_seconds(&api_pid) - api_cpu0;
    let finisher_cpu = common::cpu_seconds(&fin_pid) - fin_cpu0;
    if !out.status.success() || line.is_none() {
        let log = std::fs::read_to_string(dir.path().join("finisher.log")).unwrap_or_default();
        panic!("scenario {name} failed ({}):\n{stdout}\nfinisher log:\n{log}", out.status);
    }
    let result: Value = serde_json::from_str(line.expect("checked")).expect("RESULT json");
    Run { name: name.to_string(), result, apiserver_hwm, apiserver_cpu, finisher_cpu }
}

fn count(r: &Value, pred: impl Fn(&str, &str) -> bool) -> u64 {
    r["by_resource"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| pred(e["resource"].as_str().unwrap_or(""), e["verb"].as_str().unwrap_or("")))
        .map(|e| e["n"].as_u64().unwrap_or(0))
        .sum()
}

fn report(runs: &[Run]) {
    println!(
        "\nController: pods finished instantly by a finisher process; API server = `jobwright apiserver` process."
    );
    println!("Memory = VmHWM/VmRSS of the process running only the controller (+ the bench's Job watch).");
    match bench_limit() {
        Some((qps, burst)) => {
            println!("Controller client rate limit: --kube-api-qps {qps} --kube-api-burst {burst}.\n")
        }
        None => println!("Controller client rate limit: none.\n"),
    }
    println!(
        "{:<34} {:>8} {:>8} {:>7} {:>8} {:>8} {:>9} {:>9} {:>11} {:>10} {:>10} {:>9}",
        "scenario",
        "pods",
        "secs",
        "jobs/s",
        "pods/s",
        "req/job",
        "writes/job",
        "writes/pod",
        "ctl VmHWM",
        "ctl VmRSS",
        "api VmHWM",
        "KiB/pod"
    );
    for run in runs {
        let r = &run.result;
        let jobs = r["jobs"].as_u64().unwrap_or(1) as f64;
        let pods = jobs * r["completions"].as_u64().unwrap_or(1) as f64;
        let secs = r["elapsed"].as_f64().unwrap_or(0.0);
        let all = count(r, |_, v| v != "watch" && v != "list") as f64;
        let writes = count(r, |res, v| !matches!(v, "watch" | "list" | "get") && res != "events") as f64;
        println!(
            "{:<34} {:>8} {:>8.2} {:>7.1} {:>8.0} {:>8.2} {:>9.2} {:>9.3} {:>8.1} MiB {:>6.1} MiB {:>6.1} MiB {:>9.1}",
            run.name,
            pods,
            secs,
            jobs / secs,
            count(r, |res, v| res == "pods" && v == "create") as f64 / secs,
            all / jobs,
            writes / jobs,
            writes / pods,
            mib(r["hwm"].as_u64().unwrap_or(0)),
            mib(r["rss"].as_u64().unwrap_or(0)),
            mib(run.apiserver_hwm),
            r["hwm"].as_u64().unwrap_or(0).saturating_sub(r["hwm_idle"].as_u64().unwrap_or(0)) as f64 / 1024.0 / pods,
        );
    }
    println!("\nreq/job: every controller request but list/watch; writes: without gets and events.");
    println!("KiB/pod: the controller's VmHWM growth from idle (caches synced) to the end, per pod.");
    println!(
        "\nController process CPU time (utime+stime, /proc/self/stat) from caches synced to the last Job Complete:"
    );
    for run in runs {
        let r = &run.result;
        let jobs = r["jobs"].as_u64().unwrap_or(1) as f64;
        let pods = jobs * r["completions"].as_u64().unwrap_or(1) as f64;
        let cpu = r["cpu"].as_f64().unwrap_or(0.0);
        println!(
            "  {:<34} {:>7.2} s CPU  {:>7.3} ms/pod  {:>7.0} pods per CPU-second",
            run.name,
            cpu,
            cpu * 1000.0 / pods,
            pods / cpu.max(1e-9)
        );
    }
    println!("API server and finisher process CPU time over the whole scenario (controller start to exit):");
    for run in runs {
        let r = &run.result;
        let pods = r["jobs"].as_u64().unwrap_or(1) as f64 * r["completions"].as_u64().unwrap_or(1) as f64;
        println!(
            "  {:<34} apiserver {:>7.2} s CPU {:>7.3} ms/pod   finisher {:>7.2} s CPU {:>7.3} ms/pod",
            run.name,
            run.apiserver_cpu,
            run.apiserver_cpu * 1000.0 / pods,
            run.finisher_cpu,
            run.finisher_cpu * 1000.0 / pods
        );
    }
    for run in runs {
        println!(
            "\n{}: controller requests by resource and verb (controller idle VmHWM {:.1} MiB)",
            run.name,
            mib(run.result["hwm_idle"].as_u64().unwrap_or(0))
        );
        let jobs = run.result["jobs"].as_u64().unwrap_or(1) as f64;
        for e in run.result["by_resource"].as_array().into_iter().flatten() {
            let n = e["n"].as_u64().unwrap_or(0);
            println!(
                "  {:<14} {:<7} {:>8}  ({:.3} per Job)",
                e["resource"].as_str().unwrap_or(""),
                e["verb"].as_str().unwrap_or(""),
                n,
                n as f64 / jobs
            );
        }
        println!(
            "  by verb and code: {}",
            run.result["codes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

fn main() {
    let rt = || tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    match arg("--role").as_deref() {
        Some("finisher") => {
            let kc = arg("--kubeconfig").expect("--kubeconfig");
            rt().block_on(async {
                let cfg = common::load_kubeconfig(Path::new(&kc)).await;
                finisher(Client::try_from(cfg).expect("client")).await
            });
            return;
        }
        Some("scenario") => {
            if std::env::var_os("RUST_LOG").is_some() {
                tracing_subscriber::fmt()
                    .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                    .with_writer(std::io::stderr)
                    .init();
            }
            let num = |n: &str| arg(n).and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{n}"));
            let kc = arg("--kubeconfig").expect("--kubeconfig");
            rt().block_on(async {
                let cfg = common::load_kubeconfig(Path::new(&kc)).await;
                let timeout = Duration::from_secs(num("--timeout"));
                scenario(cfg, num("--jobs") as usize, num("--completions") as i32, num("--parallelism") as i32, timeout)
                    .await
            });
            // Skip the controller's graceful shutdown.
            std::process::exit(0);
        }
        _ => {}
    }
    let full = common::full_run();
    let (jobs, wide, par, timeout) = if full { (1_000, 10_000, 500, 900) } else { (30, 300, 50, 60) };
    let env = |n: &str, d: usize| std::env::var(n).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (jobs, wide) = (env("JOBWRIGHT_BENCH_JOBS", jobs), env("JOBWRIGHT_BENCH_WIDE", wide as usize) as i32);
    let timeout = if bench_limit().is_some() { timeout * 10 } else { timeout };
    let timeout = Duration::from_secs(timeout);
    let runs = vec![
        run_scenario(&format!("{jobs} Jobs x 1 pod"), jobs, 1, 1, timeout),
        run_scenario(&format!("1 Job x {wide} (parallelism {par})"), 1, wide, par, timeout),
    ];
    report(&runs);
    // Sanity: exactly one pod created per completion (expectations hold against the lagging cache),
    // and a bounded number of requests per Job.
    for run in &runs {
        let r = &run.result;
        let pods = r["jobs"].as_u64().unwrap_or(0) * r["completions"].as_u64().unwrap_or(0);
        assert_eq!(count(r, |res, v| res == "pods" && v == "create"), pods, "{}: pod creates", run.name);
        let per_job = count(r, |_, v| v != "watch" && v != "list") as f64 / r["jobs"].as_f64().unwrap_or(1.0);
        assert!(per_job > 0.0 && per_job < 50.0 * r["completions"].as_f64().unwrap_or(1.0), "{}", run.name);
    }
}
