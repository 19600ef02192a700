//! Issue 4's process-level proofs: real `jobwright controller` child processes against one API
//! server: failover of a SIGKILLed leader mid-Job, SIGTERM during a burst of Jobs, `/metrics`
//! parsed against the documented series, and `/readyz` flipping when the caches sync.
//!
//! Waits are on watches, on the controllers' own `/metrics` and `/readyz`, or on process exit;
//! `WAIT`-style bounds only turn a hang into a failure.

mod controller_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use controller_support::{Outcome, WAIT, create_job, has_condition, job, job_pods, kubelet, wait_job};
use futures::StreamExt;
use jobwright::apiserver::testkit::TestApiServer;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

const LEASE: &str = "jobwright-controller";
const LEASE_DURATION: u64 = 3;

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut).await.unwrap_or_else(|_| panic!("no progress in 60s: {what}"))
}

/// A `jobwright controller` child process (killed when dropped).
struct Controller {
    child: Child,
    admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Controller {
    /// Starts `jobwright controller --kubeconfig KC --manage-all-jobs --admin-listen 127.0.0.1:0
    /// --log-format json EXTRA...` and waits for its admin server's address in the log.
    async fn start(kubeconfig: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jobwright"))
            .arg("controller")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--manage-all-jobs", "--admin-listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--log-level", "info,kube=warn,kube_runtime=warn,hyper=warn"])
            .args(extra)
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn jobwright controller");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let stderr = child.stderr.take().unwrap();
        let log2 = log.clone();
        tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["fields"]["message"] == "admin server listening"
                    && let Some(addr) = v["fields"]["local_addr"].as_str().and_then(|a| a.parse().ok())
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(addr);
                }
                log2.lock().unwrap().push(line);
            }
        });
        let admin = match tokio::time::timeout(WAIT, addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => panic!("controller did not report its admin address; log:\n{}", log.lock().unwrap().join("\n")),
        };
        Self { child, admin, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id().expect("running") as i32)
    }

    async fn metrics(&self) -> Exposition {
        let (status, body) = http_get(self.admin, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        Exposition::parse(&body)
    }

    /// Waits (bounded) until `cond` holds for this process's `/metrics`, re-reading after each change
    /// it could see: the controller updates its counters right after the API calls the test observes.
    async fn metrics_until(&self, what: &str, cond: impl Fn(&Exposition) -> bool) -> Exposition {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.metrics().await;
            if cond(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; /metrics:\n{}", m.text);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        self.child.wait().await.expect("wait for controller")
    }
}

/// One HTTP/1.1 GET over TCP: (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the admin server");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("end of headers");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    (status, body.to_string())
}

/// A parsed Prometheus/OpenMetrics text exposition.
#[derive(Debug)]
struct Exposition {
    text: String,
    /// Metric family name → type, from `# TYPE` lines.
    types: HashMap<String, String>,
    /// (sample name, sorted labels) → value.
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Exposition {
    /// Parses the text format strictly: every line is a comment (`# TYPE`/`# HELP`/`# UNIT`/`# EOF`)
    /// or `name{k="v",...} value`; anything else fails the test.
    fn parse(text: &str) -> Self {
        let mut types = HashMap::new();
        let mut samples = Vec::new();
        let mut eof = false;
        for line in text.lines() {
            assert!(!eof, "content after # EOF: {line:?}");
            if line == "# EOF" {
                eof = true;
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').unwrap_or_else(|| panic!("bad TYPE line {line:?}"));
                assert!(types.insert(name.to_string(), ty.to_string()).is_none(), "TYPE twice for {name}");
                continue;
            }
            if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
                continue;
            }
            assert!(!line.starts_with('#'), "unknown comment {line:?}");
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                    (name, parse_labels(body, line))
                }
                None => (series, BTreeMap::new()),
            };
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name in {line:?}"
            );
            samples.push((name.to_string(), labels, value));
        }
        assert!(eof, "no # EOF at the end");
        Self { text: text.to_string(), types, samples }
    }

    /// The value of the sample `name` with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.iter().find(|(n, l, _)| n == name && *l == want).map(|(_, _, v)| *v)
    }

    /// The sum over every sample called `name` (any labels).
    fn sum(&self, name: &str) -> f64 {
        self.samples.iter().filter(|(n, _, _)| n == name).map(|(_, _, v)| v).sum()
    }

    /// Every sample called `name`.
    fn all(&self, name: &str) -> Vec<(&BTreeMap<String, String>, f64)> {
        self.samples.iter().filter(|(n, _, _)| n == name).map(|(_, l, v)| (l, *v)).collect()
    }
}

fn parse_labels(mut body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !body.is_empty() {
        let (key, rest) = body.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line:?}"));
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("bad escape in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        assert!(labels.insert(key.to_string(), value).is_none(), "label {key} twice in {line:?}");
        body = rest[end + 1..].strip_prefix(',').unwrap_or(&rest[end + 1..]);
    }
    labels
}

async fn lease_holder(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    leases.get_opt(LEASE).await.unwrap().and_then(|l| l.spec).and_then(|s| s.holder_identity)
}

/// Waits until the Lease's holder satisfies `cond`; returns it.
async fn wait_holder(client: &Client, what: &str, cond: impl Fn(Option<&str>) -> bool) -> Option<String> {
    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    let mut stream = watcher(leases, watcher::Config::default()).default_backoff().boxed();
    within(what, async {
        loop {
            let holder = lease_holder(client).await;
            if cond(holder.as_deref()) {
                return holder;
            }
            stream.next().await.expect("lease watch ended").expect("lease watch");
        }
    })
    .await
}

/// Every pod UID ever created in `default`, by the owning Job's controller-uid label, counted
/// from a watch started before any Job exists. `changed` fires on every new pod.
struct PodLedger {
    created: Arc<Mutex<HashMap<String, HashSet<String>>>>,
    count: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PodLedger {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodLedger {
    async fn start(client: &Client) -> Self {
        let api: Api<Pod> = Api::default_namespaced(client.clone());
        let created: Arc<Mutex<HashMap<String, HashSet<String>>>> = Arc::default();
        let (tx, count) = watch::channel(0usize);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let c2 = created.clone();
        let task = tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                        let owner = p.labels().get(jobwright::job::labels::CONTROLLER_UID).cloned().unwrap_or_default();
                        let mut map = c2.lock().unwrap();
                        if map.entry(owner).or_default().insert(p.uid().unwrap_or_default()) {
                            tx.send_replace(map.values().map(HashSet::len).sum());
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(t) = ready_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    _ => {}
                }
            }
        });
        within("pod ledger watch", ready_rx).await.unwrap();
        Self { created, count, task }
    }

    fn total(&self) -> usize {
        *self.count.borrow()
    }

    fn of(&self, job: &Job) -> usize {
        self.created.lock().unwrap().get(&job.uid().unwrap()).map_or(0, HashSet::len)
    }

    async fn wait_total(&mut self, at_least: usize) {
        within("pods created", self.count.wait_for(|n| *n >= at_least)).await.unwrap();
    }
}

fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Marks the pod Succeeded (exit 0) through the status subresource, as the kubelet would.
async fn succeed(client: &Client, pod: &Pod) {
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let status = json!({"status": {"phase": "Succeeded",
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
        "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "", "ready": false,
            "restartCount": 0, "started": false,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}}]}});
    api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(status)).await.expect("pod status");
}

fn succeeded(j: Option<&Job>) -> i32 {
    j.and_then(|j| j.status.as_ref()).and_then(|s| s.succeeded).unwrap_or(0)
}

fn active(j: Option<&Job>) -> i32 {
    j.and_then(|j| j.status.as_ref()).and_then(|s| s.active).unwrap_or(0)
}

/// Finishes one Running pod of the Job (the oldest by name) and waits until the Job counts it.
async fn finish_one(client: &Client, job: &Job, done: i32) {
    let pods: Vec<Pod> = job_pods(client, job).await;
    let mut running: Vec<&Pod> =
        pods.iter().filter(|p| phase(p) == "Running" && p.metadata.deletion_timestamp.is_none()).collect();
    running.sort_by_key(|p| p.name_any());
    let pod = running.first().unwrap_or_else(|| panic!("no running pod with {done} succeeded: {pods:#?}"));
    succeed(client, pod).await;
    let name = job.name_any();
    wait_job(client, &name, "the succeeded pod counted", move |j: Option<&Job>| succeeded(j) > done).await;
}

/// Waits until the Job has `n` active pods, all Running.
async fn wait_running(client: &Client, job: &Job, n: i32) {
    let name = job.name_any();
    wait_job(client, &name, "active pods", move |j: Option<&Job>| active(j) == n).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let running = job_pods(client, job).await.iter().filter(|p| phase(p) == "Running").count();
        if running as i32 >= n {
            return;
        }
        assert!(Instant::now() < deadline, "pods not running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn replica_args<'a>(identity: &'a str) -> Vec<&'a str> {
    vec![
        "--leader-elect",
        "--leader-elect-identity",
        identity,
        "--leader-elect-resource-namespace",
        "default",
        "--leader-elect-lease-duration",
        "3",
        "--leader-elect-renew-deadline",
        "2",
    ]
}

/// Two replicas on one Lease; the leader is SIGKILLed mid-Job (12 pods created, 8 succeeded, 4
/// running); the standby takes over within the lease duration and finishes the Indexed Job with
/// exactly 20 pods ever created, every index succeeded once, and no pod write before it led.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_finishes_the_job_of_a_killed_leader_without_duplicates() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let mut ledger = PodLedger::start(&client).await;
    let _kubelet = kubelet(client.clone(), "default", |_, _| Outcome::Run).await;

    let mut a = Controller::start(server.kubeconfig_path(), &replica_args("replica-a")).await;
    wait_holder(&client, "a leads", |h| h == Some("replica-a")).await;
    let b = Controller::start(server.kubeconfig_path(), &replica_args("replica-b")).await;
    // b reached the Lease and stands by (its /readyz is served; leader gauge 0).
    b.metrics_until("b standing by", |m| m.get("jobwright_leader", &[]) == Some(0.0)).await;

    let j = create_job(
        &client,
        &job("failover", json!({"completions": 20, "parallelism": 4, "completionMode": "Indexed", "backoffLimit": 0})),
    )
    .await;
    for done in 0..8 {
        wait_running(&client, &j, 4).await;
        finish_one(&client, &j, done).await;
    }
    wait_running(&client, &j, 4).await;
    ledger.wait_total(12).await;
    let a_metrics = a.metrics_until("a counted 12 pods", |m| m.get("jobwright_pods_created_total", &[]) == Some(12.0)).await;
    assert_eq!(a_metrics.get("jobwright_leader", &[]), Some(1.0));
    let b_metrics = b.metrics().await;
    assert_eq!(b_metrics.get("jobwright_leader", &[]), Some(0.0), "b stands by");
    assert_eq!(b_metrics.get("jobwright_pods_created_total", &[]), Some(0.0), "standby created no pod");
    assert_eq!(b_metrics.sum("jobwright_reconcile_total"), 0.0, "standby reconciled nothing");
    let b_writes: f64 = b_metrics
        .all("jobwright_api_requests_total")
        .iter()
        .filter(|(l, _)| matches!(l["verb"].as_str(), "create" | "update" | "delete" | "deletecollection"))
        .map(|(_, v)| v)
        .sum();
    // The standby's only writes are on its Lease: one create attempt (409 once a created it).
    assert!(b_writes <= 1.0, "standby wrote:\n{}", b_metrics.text);
    assert_eq!(ledger.total(), 12);

    // kill -9: no release; the Lease still names a until it expires.
    nix::sys::signal::kill(a.pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
    let killed_at = Instant::now();
    let status = within("a exits", a.wait_exit()).await;
    assert!(!status.success());
    assert_eq!(lease_holder(&client).await.as_deref(), Some("replica-a"), "a kill releases nothing");
    wait_holder(&client, "b takes over", |h| h == Some("replica-b")).await;
    let takeover = killed_at.elapsed();
    // The standby acquires at renewTime + lease duration (+ up to its 1 s retry jitter and one
    // poll period); a is killed at most one renew interval after its last renewal.
    assert!(takeover < Duration::from_secs(LEASE_DURATION + 3), "takeover took {takeover:?}");
    eprintln!("takeover {takeover:?} after SIGKILL (lease duration {LEASE_DURATION}s)");

    for done in 8..20 {
        if done <= 16 {
            wait_running(&client, &j, 4).await;
        }
        finish_one(&client, &j, done).await;
    }
    let finished = controller_support::wait_condition(&client, "failover", "Complete").await;
    let st = finished.status.as_ref().unwrap();
    assert_eq!(st.succeeded, Some(20));
    assert_eq!(st.failed.unwrap_or(0), 0);
    assert_eq!(st.completed_indexes.as_deref(), Some("0-19"));
    assert!(has_condition(Some(&finished), "Complete"));

    // Exactly 20 pods ever created, one success per index.
    assert_eq!(ledger.of(&j), 20, "pods ever created");
    assert_eq!(ledger.total(), 20);
    let pods = job_pods(&client, &j).await;
    let mut per_index: BTreeMap<String, usize> = BTreeMap::new();
    for p in pods.iter().filter(|p| phase(p) == "Succeeded") {
        let idx = p.annotations().get(jobwright::job::labels::JOB_COMPLETION_INDEX).cloned().unwrap();
        *per_index.entry(idx).or_default() += 1;
    }
    assert_eq!(per_index.len(), 20, "{per_index:?}");
    assert!(per_index.values().all(|n| *n == 1), "an index succeeded twice: {per_index:?}");
    let b_final = b.metrics_until("b counted its pods", |m| m.get("jobwright_pods_created_total", &[]) == Some(8.0)).await;
    assert_eq!(b_final.get("jobwright_leader", &[]), Some(1.0));
    controller_support::wait_no_tracking_finalizer(&client).await;
    drop(b);
    let _ = a.log();
}
