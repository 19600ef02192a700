//! Shared pieces of the controller and local benchmarks: child processes of the real binary,
//! kubeconfig hand-off, Job fixtures, waiting for Jobs to complete, and `/proc` memory figures.
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

/// Whether this is a full run: `cargo bench` passes `--bench`; `cargo test --all-targets` runs the
/// binary without it, and then only a quick smoke run is wanted.
pub fn full_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--smoke")
}

/// The value after `--name` on the command line.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// A child process killed (by its own pid) and reaped when dropped.
pub struct ChildProc {
    /// The process.
    pub child: Child,
    /// What it is, for messages.
    pub what: String,
}

impl ChildProc {
    /// Starts `program args` with stdout/stderr to `log` (or inherited when `None`).
    pub fn spawn(what: &str, program: &Path, args: &[&str], log: Option<&Path>) -> Self {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null());
        if let Some(log) = log {
            let f = std::fs::File::create(log).expect("create log file");
            cmd.stdout(f.try_clone().expect("clone log handle")).stderr(f);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {what}: {e}"));
        Self { child, what: what.to_string() }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early: {status}", self.what);
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `jobwright` binary cargo built for this bench.
pub fn jobwright_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_jobwright"))
}

/// Waits until `path` holds a kubeconfig kube-rs can load, and returns a client config for it.
pub async fn wait_kubeconfig(path: &Path, proc: &mut ChildProc) -> kube::Config {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        proc.assert_running();
        if let Ok(kc) = kube::config::Kubeconfig::read_from(path)
            && let Ok(mut cfg) =
                kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await
        {
            cfg.read_timeout = None;
            let client = Client::try_from(cfg.clone()).expect("client");
            if client.apiserver_version().await.is_ok() {
                return cfg;
            }
        }
        assert!(Instant::now() < deadline, "{} did not come up", proc.what);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Loads the kubeconfig at `path` (already written).
pub async fn load_kubeconfig(path: &Path) -> kube::Config {
    let kc = kube::config::Kubeconfig::read_from(path).expect("read kubeconfig");
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("load kubeconfig");
    cfg.read_timeout = None;
    cfg
}

/// A Job of `completions` pods, `parallelism` at once, whose pods end at once with exit code 0
/// (under the simulate executor; the controller bench's finisher ignores the annotation).
pub fn job(name: &str, completions: i32, parallelism: i32, indexed: bool) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
        "spec": {"completions": completions, "parallelism": parallelism,
            "completionMode": if indexed { "Indexed" } else { "NonIndexed" },
            "backoffLimit": 6,
            "template": {"metadata": {"annotations": {"jobwright.dev/simulate-duration": "0"}},
                "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}
    }))
    .expect("job fixture")
}

/// Creates `jobs` with `tasks` concurrent requests.
pub async fn create_jobs(client: &Client, jobs: Vec<Job>, tasks: usize) {
    let api: Api<Job> = Api::namespaced(client.clone(), "default");
    futures::stream::iter(jobs)
        .map(|j| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &j).await.expect("create Job") }
        })
        .buffer_unordered(tasks)
        .for_each(|_| async {})
        .await;
}

fn finished(job: &Job) -> Option<&'static str> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    for c in conds {
        if c.status == "True" && c.type_ == "Complete" {
            return Some("Complete");
        }
        if c.status == "True" && c.type_ == "Failed" {
            return Some("Failed");
        }
    }
    None
}

/// Watches Jobs in `default` until `n` have a `Complete` condition; panics after `timeout` or if
/// any Job fails. Returns the completed Jobs.
pub async fn wait_complete(client: &Client, n: usize, timeout: Duration) -> Vec<Job> {
    let api: Api<Job> = Api::namespaced(client.clone(), "default");
    let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut done: HashSet<String> = HashSet::new();
    let mut jobs = Vec::new();
    let mut last_unfinished: Option<Job> = None;
    let deadline = tokio::time::Instant::now() + timeout;
    while done.len() < n {
        let Ok(ev) = tokio::time::timeout_at(deadline, stream.next()).await else {
            let status = last_unfinished.and_then(|j| j.status);
            panic!("only {} of {n} Jobs completed within {timeout:?}; last unfinished status: {status:?}", done.len());
        };
        let job = match ev {
            Some(Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j))) => j,
            Some(_) => continue,
            None => panic!("Job watch ended"),
        };
        match finished(&job) {
            Some("Complete") => {
                if done.insert(job.name_any()) {
                    jobs.push(job);
                }
            }
            Some(other) => panic!("Job {} ended {other}: {:?}", job.name_any(), job.status),
            None => last_unfinished = Some(job),
        }
    }
    jobs
}

/// Asserts each Job counted exactly its completions as succeeded and nothing as failed or active.
pub fn assert_counted(jobs: &[Job]) {
    for j in jobs {
        let want = j.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
        let st = j.status.clone().unwrap_or_default();
        assert_eq!(st.succeeded.unwrap_or(0), want, "succeeded of {}: {st:?}", j.name_any());
        assert_eq!(st.failed.unwrap_or(0), 0, "failed of {}", j.name_any());
        assert_eq!(st.active.unwrap_or(0), 0, "active of {}", j.name_any());
        let uncounted = st.uncounted_terminated_pods.unwrap_or_default();
        assert!(
            uncounted.succeeded.unwrap_or_default().is_empty() && uncounted.failed.unwrap_or_default().is_empty(),
            "uncounted pods left on {}",
            j.name_any()
        );
    }
}

/// `VmHWM` and `VmRSS` of `/proc/{pid}/status` (`self` for this process), in bytes.
pub fn memory(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU time the process `pid` has used so far (user + system, all threads), from
/// `/proc/PID/stat` (`utime` + `stime`, in clock ticks of 1/100 s, Linux's `USER_HZ`).
pub fn cpu_time(pid: &str) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (in parentheses, which may hold spaces): state is 3rd.
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let field = |n: usize| rest.split_whitespace().nth(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    std::time::Duration::from_millis((field(14) + field(15)) * 10)
}

/// [`cpu_time`] in seconds.
pub fn cpu_seconds(pid: &str) -> f64 {
    cpu_time(pid).as_secs_f64()
}

/// Bytes as MiB.
pub fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

/// The `jobwright_api_requests_total{...} N` lines of a rendered metrics registry, without the
/// metric name: the requests by resource, verb and code that the benches print.
pub fn api_request_lines(rendered: &str) -> Vec<String> {
    rendered
        .lines()
        .filter(|l| l.starts_with("jobwright_api_requests_total{"))
        .map(|l| l.trim_start_matches("jobwright_api_requests_total").to_string())
        .collect()
}
