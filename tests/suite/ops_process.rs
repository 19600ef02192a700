//! Issue 4's process-level proofs: real `jobwright controller` child processes against one API
//! server: failover of a SIGKILLed leader mid-Job, SIGTERM during a burst of Jobs, `/metrics`
//! parsed against the documented series, and `/readyz` flipping when the caches sync.
//!
//! Waits are on watches, on the controllers' own `/metrics` and `/readyz`, or on process exit;
//! `WAIT`-style bounds only turn a hang into a failure.

use crate::controller_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use controller_support::{Outcome, WAIT, create_job, has_condition, job, job_pods, kubelet, wait_job};
use futures::{StreamExt, TryStreamExt};
use jobwright::apiserver::testkit::TestApiServer;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

const LEASE: &str = "jobwright-controller";
/// Lease duration (s): short enough for a quick takeover, long enough that a leader stalled a few
/// seconds by a loaded machine keeps its lease (renew deadline below) and the standby checks hold.
const LEASE_DURATION: &str = "8";
/// Renew deadline (s).
const RENEW_DEADLINE: &str = "6";

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut).await.unwrap_or_else(|_| panic!("no progress in 60s: {what}"))
}

/// A `jobwright controller` child process (killed when dropped).
struct Controller {
    child: Child,
    admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    /// Copies stderr into `log`; ends at EOF (the process's exit).
    reader: Option<tokio::task::JoinHandle<()>>,
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
        let reader = tokio::spawn(async move {
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
        Self { child, admin, log, reader: Some(reader) }
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

    /// Waits for the process to exit and for its last log lines to be read.
    async fn wait_exit(&mut self) -> ExitStatus {
        let status = self.child.wait().await.expect("wait for controller");
        if let Some(reader) = self.reader.take() {
            within("the controller's stderr to end", reader).await.expect("log reader");
        }
        status
    }
}

/// Waits (bounded) until the controller's `/readyz` answers `200 ok`.
async fn wait_ready(c: &Controller) {
    wait_ready_after(c, |body| body.starts_with("not ready: ")).await;
}

/// Waits (bounded) until `/readyz` answers `200 ok`; until then each 503 body must pass `not_ready`.
async fn wait_ready_after(c: &Controller, not_ready: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(c.admin, "/readyz").await;
        if status == 200 {
            assert_eq!(body, "ok");
            return;
        }
        assert!(not_ready(&body), "{body}");
        assert!(Instant::now() < deadline, "never ready ({body}); log:\n{}", c.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
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
    controller_support::set_status(&Api::default_namespaced(client.clone()), pod, Outcome::Succeed).await;
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

fn replica_args(identity: &str) -> Vec<&str> {
    vec![
        "--leader-elect",
        "--leader-elect-identity",
        identity,
        "--leader-elect-resource-namespace",
        "default",
        "--leader-elect-lease-duration",
        LEASE_DURATION,
        "--leader-elect-renew-deadline",
        RENEW_DEADLINE,
    ]
}

/// Two replicas on one Lease; the leader is SIGKILLed mid-Job (12 pods created, 8 succeeded, 4
/// running); the standby takes over once the lease has expired and finishes the Indexed Job with
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
    // b reached the Lease and stands by: ready (a rollout counts it), leader gauge 0.
    wait_ready(&b).await;
    assert_eq!(b.metrics().await.get("jobwright_leader", &[]), Some(0.0), "b stands by");

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
    let a_metrics =
        a.metrics_until("a counted 12 pods", |m| m.get("jobwright_pods_created_total", &[]) == Some(12.0)).await;
    assert_eq!(a_metrics.get("jobwright_leader", &[]), Some(1.0));
    assert_eq!(http_get(a.admin, "/readyz").await, (200, "ok".to_string()), "leader with synced caches");
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

    // Every version of the Lease from before the kill until b holds it: a watch whose first item
    // (its initial list) is read before the kill, so none is missed.
    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    let mut versions = watcher(leases, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .try_filter(|l| std::future::ready(l.name_any() == LEASE))
        .map(|l| l.expect("lease watch").spec.unwrap_or_default())
        .boxed();
    let mut held = within("the Lease", versions.next()).await.expect("lease watch ended");
    assert_eq!(held.holder_identity.as_deref(), Some("replica-a"));

    // kill -9: the Lease names a until b takes it over after it expired (kube-lease-manager first
    // clears an expired Lease, a version without holder, then takes it).
    nix::sys::signal::kill(a.pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
    let killed_at = Instant::now();
    let status = within("a exits", a.wait_exit()).await;
    assert!(!status.success());
    let taken = within("b takes over", async {
        loop {
            let v = versions.next().await.expect("lease watch ended");
            match v.holder_identity.as_deref() {
                Some("replica-a") => held = v,
                Some("replica-b") => return v,
                None => {}
                Some(other) => panic!("the Lease was held by {other}: {v:?}"),
            }
        }
    })
    .await;
    // No overlap: b acquired only once a's last renewal had expired, per the Lease's own clock
    // fields (both replicas share this machine's clock). How soon is a figure, not a verdict.
    let a_renewed = held.renew_time.expect("a renewed").0;
    let b_acquired = taken.acquire_time.expect("b acquired").0;
    let expiry = a_renewed + std::time::Duration::from_secs(LEASE_DURATION.parse().unwrap());
    assert!(b_acquired >= expiry, "b acquired at {b_acquired}, before a's lease expired at {expiry}");
    eprintln!(
        "takeover {:?} after SIGKILL, {:?} after a's lease expired (lease duration {LEASE_DURATION}s)",
        killed_at.elapsed(),
        b_acquired.duration_since(expiry)
    );

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
    ledger.wait_total(20).await; // the ledger's own watch may lag the Job's status
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
    let b_final =
        b.metrics_until("b counted its pods", |m| m.get("jobwright_pods_created_total", &[]) == Some(8.0)).await;
    assert_eq!(b_final.get("jobwright_leader", &[]), Some(1.0));
    controller_support::wait_no_tracking_finalizer(&client).await;
    drop(b);
    let _ = a.log();
}

/// SIGTERM while a burst of Jobs is being created and run: the controller exits 0 well within
/// the 30 s termination grace period and releases the Lease; a controller started afterwards
/// finishes every Job with exact counts, no duplicate and no orphaned pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_exits_0_and_leaves_state_a_successor_finishes() {
    const JOBS: usize = 60;
    const COMPLETIONS: i32 = 3;
    let server = TestApiServer::start().await;
    let client = server.client();
    let mut ledger = PodLedger::start(&client).await;
    let _kubelet = kubelet(client.clone(), "default", |_, _| Outcome::Succeed).await;

    let mut first = Controller::start(server.kubeconfig_path(), &replica_args("replica-a")).await;
    wait_holder(&client, "a leads", |h| h == Some("replica-a")).await;
    let spec = json!({"completions": COMPLETIONS, "parallelism": COMPLETIONS, "backoffLimit": 0});
    let mut jobs = Vec::new();
    for i in 0..JOBS / 2 {
        jobs.push(create_job(&client, &job(&format!("burst-{i}"), spec.clone())).await);
    }
    // The controller is busy creating pods; the rest of the burst is created while SIGTERM lands.
    ledger.wait_total(15).await;
    let creator = {
        let client = client.clone();
        let spec = spec.clone();
        tokio::spawn(async move {
            let mut jobs = Vec::new();
            for i in JOBS / 2..JOBS {
                jobs.push(create_job(&client, &job(&format!("burst-{i}"), spec.clone())).await);
            }
            jobs
        })
    };
    let pods_at_term = ledger.total();
    nix::sys::signal::kill(first.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let sent = Instant::now();
    let status = within("controller exits after SIGTERM", first.wait_exit()).await;
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0), "exit status {status:?}; log:\n{}", first.log());
    assert!(took < Duration::from_secs(30), "exit took {took:?}, beyond the 30 s grace period");
    eprintln!("SIGTERM → exit 0 in {took:?} ({pods_at_term} of {} pods created when it landed)", JOBS * 3);
    assert_eq!(lease_holder(&client).await, None, "Lease released on SIGTERM; log:\n{}", first.log());
    let log = first.log();
    assert!(log.contains("released the lease"), "{log}");
    jobs.extend(creator.await.unwrap());
    assert!((ledger.total() as i32) < JOBS as i32 * COMPLETIONS, "the burst was over before SIGTERM; nothing to prove");

    // A successor (new identity) takes the released Lease at once and finishes everything.
    let second = Controller::start(server.kubeconfig_path(), &replica_args("replica-b")).await;
    wait_holder(&client, "b leads", |h| h == Some("replica-b")).await;
    let jobs_api: Api<Job> = Api::default_namespaced(client.clone());
    for j in &jobs {
        let done = controller_support::wait_condition(&client, &j.name_any(), "Complete").await;
        assert_eq!(done.status.as_ref().unwrap().succeeded, Some(COMPLETIONS), "{}", j.name_any());
    }
    controller_support::wait_no_tracking_finalizer(&client).await;
    ledger.wait_total(JOBS * COMPLETIONS as usize).await;
    for j in &jobs {
        assert_eq!(ledger.of(j), COMPLETIONS as usize, "pods ever created for {}", j.name_any());
    }
    assert_eq!(ledger.total(), JOBS * COMPLETIONS as usize, "no pod outside the Jobs");
    // Every pod is controlled by a live Job of the burst (nothing orphaned).
    let uids: HashSet<String> =
        jobs_api.list(&Default::default()).await.unwrap().items.iter().filter_map(|j| j.uid()).collect();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    for p in pods.list(&Default::default()).await.unwrap().items {
        let owner = p.owner_references().iter().find(|r| r.controller == Some(true)).map(|r| r.uid.clone());
        assert!(owner.is_some_and(|u| uids.contains(&u)), "orphaned pod {}", p.name_any());
    }
    drop(second);
}

/// A TCP proxy to `upstream` that holds every connection until the gate opens: an API server
/// that is not reachable yet.
async fn gated_proxy(upstream: SocketAddr) -> (SocketAddr, watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (gate, rx) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let mut rx = rx.clone();
            tokio::spawn(async move {
                if rx.wait_for(|open| *open).await.is_err() {
                    return;
                }
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, gate)
}

/// `/readyz` answers 503 while the API server cannot be reached (caches not synced) and 200 once
/// they sync; `/healthz` is 200 throughout; SIGTERM then exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_flips_when_the_caches_sync() {
    let server = TestApiServer::start().await;
    let upstream: SocketAddr = server.url().trim_start_matches("http://").parse().unwrap();
    let (proxy, gate) = gated_proxy(upstream).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    jobwright::apiserver::kubeconfig::write(&kc, &format!("http://{proxy}")).unwrap();

    let mut c = Controller::start(&kc, &[]).await;
    assert_eq!(http_get(c.admin, "/healthz").await, (200, "ok".to_string()));
    assert_eq!(http_get(c.admin, "/readyz").await, (503, "not ready: caches not synced".to_string()));
    // Without election the replica leads from the start (the gauge is set just after the admin
    // server starts), while its caches cannot sync.
    c.metrics_until("leader gauge", |m| m.get("jobwright_leader", &[]) == Some(1.0)).await;
    assert_eq!(http_get(c.admin, "/readyz").await, (503, "not ready: caches not synced".to_string()));

    gate.send_replace(true);
    wait_ready_after(&c, |body| body == "not ready: caches not synced").await;
    nix::sys::signal::kill(c.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = within("exit after SIGTERM", c.wait_exit()).await;
    assert_eq!(status.code(), Some(0), "{}", c.log());
}

/// The documented series of deploy/README.md's metrics table: (name, type).
fn documented_series() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/README.md")).unwrap();
    let section = readme.split("## Metrics").nth(1).expect("a Metrics section");
    let rows: Vec<(String, String)> = section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix("`jobwright_")?.strip_suffix('`')?;
            Some((format!("jobwright_{name}"), cells.get(2)?.to_string()))
        })
        .collect();
    assert!(rows.len() >= 9, "metrics table not found: {rows:?}");
    rows
}

/// One successful, one BackoffLimitExceeded and one refused Job (its pods are 422s) through a real
/// controller process, then
/// `/metrics` parsed: every documented series with its type, and values that match what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_match_what_happened() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let mut ledger = PodLedger::start(&client).await;
    let _kubelet = kubelet(client.clone(), "default", |pod, _| {
        if pod.labels().get(jobwright::job::labels::JOB_NAME).map(String::as_str) == Some("bad") {
            Outcome::Fail(1)
        } else {
            Outcome::Succeed
        }
    })
    .await;
    let c = Controller::start(server.kubeconfig_path(), &[]).await;
    create_job(&client, &job("ok", json!({"completions": 3, "parallelism": 3}))).await;
    create_job(&client, &job("bad", json!({"backoffLimit": 0}))).await;
    // A Job whose every pod the API server refuses (422: image with trailing whitespace, checked
    // for pods only): its syncs fail, so the error series has samples to check.
    let refused = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox "}]}});
    create_job(&client, &job("refused", json!({"template": refused}))).await;
    let ok = controller_support::wait_condition(&client, "ok", "Complete").await;
    let bad = controller_support::wait_condition(&client, "bad", "Failed").await;
    assert_eq!(controller_support::condition(&bad, "Failed").reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(controller_support::condition(&ok, "Complete").reason.as_deref(), Some("CompletionsReached"));
    controller_support::wait_no_tracking_finalizer(&client).await;

    let reconciles = |m: &Exposition| m.sum("jobwright_reconcile_total");
    let m = c
        .metrics_until("both Jobs counted, a refused sync, counters consistent, queue drained", |m| {
            // Counters of one reconcile are not updated at once, and the queue drains once the
            // last watch events (the final status write, the finalizer removals) are synced: a
            // scrape in between the updates is retried.
            let failed = m.get("jobwright_reconcile_total", &[("result", "error")]).unwrap_or(0.0)
                + m.get("jobwright_reconcile_total", &[("result", "requeue")]).unwrap_or(0.0);
            m.sum("jobwright_jobs_finished_total") >= 2.0
                && m.get("jobwright_reconcile_errors_total", &[("error", "pod_ops")]).is_some()
                && m.sum("jobwright_reconcile_errors_total") == failed
                && m.get("jobwright_reconcile_duration_seconds_count", &[]) == Some(reconciles(m))
                && m.get("jobwright_workqueue_depth", &[]) == Some(0.0)
        })
        .await;

    // Every documented series exists with its documented type (the errors series since the
    // refused Job's first failed sync).
    for (name, ty) in documented_series() {
        let family = if ty == "counter" { name.strip_suffix("_total").expect("counter ends in _total") } else { &name };
        let declared = m.types.get(family).map(String::as_str);
        assert_eq!(declared, Some(ty.as_str()), "# TYPE of {name} in\n{}", m.text);
        let sampled = m.samples.iter().any(|(n, _, _)| n == &name || n.starts_with(&format!("{name}_")));
        assert!(sampled, "no sample of {name} in\n{}", m.text);
    }
    for result in ["success", "error", "requeue", "requeue_after"] {
        assert!(m.get("jobwright_reconcile_total", &[("result", result)]).is_some(), "result {result} missing");
    }

    // Jobs finished by condition and reason: exactly what happened.
    let finished: BTreeMap<(String, String), f64> = m
        .all("jobwright_jobs_finished_total")
        .into_iter()
        .map(|(l, v)| ((l["condition"].clone(), l["reason"].clone()), v))
        .collect();
    let want: BTreeMap<(String, String), f64> = [
        (("Complete".to_string(), "CompletionsReached".to_string()), 1.0),
        (("Failed".to_string(), "BackoffLimitExceeded".to_string()), 1.0),
    ]
    .into();
    assert_eq!(finished, want);

    // Pods: created == observed through a watch; none deleted.
    ledger.wait_total(4).await;
    assert_eq!(ledger.total(), 4);
    assert_eq!(m.get("jobwright_pods_created_total", &[]), Some(4.0));
    assert_eq!(m.get("jobwright_pods_deleted_total", &[]), Some(0.0));

    // Reconciles: some succeeded, and the results are the documented ones (errors by kind add up
    // to the error and requeue results, the refused syncs as pod_ops: awaited above).
    assert!(m.get("jobwright_reconcile_total", &[("result", "success")]).unwrap_or(0.0) > 0.0, "{}", m.text);
    for (labels, _) in m.all("jobwright_reconcile_total") {
        assert!(matches!(labels["result"].as_str(), "success" | "error" | "requeue" | "requeue_after"), "{labels:?}");
    }

    // The duration histogram: cumulative buckets, the documented bounds, +Inf == count.
    let mut buckets: Vec<(f64, f64)> = m
        .all("jobwright_reconcile_duration_seconds_bucket")
        .into_iter()
        .map(|(l, v)| (if l["le"] == "+Inf" { f64::INFINITY } else { l["le"].parse().unwrap() }, v))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bounds: Vec<f64> = buckets.iter().map(|b| b.0).collect();
    let mut documented = jobwright::metrics::RECONCILE_DURATION_BUCKETS.to_vec();
    documented.push(f64::INFINITY);
    assert_eq!(bounds, documented);
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "buckets not cumulative: {buckets:?}");
    assert_eq!(buckets.last().unwrap().1, reconciles(&m));
    assert!(m.get("jobwright_reconcile_duration_seconds_sum", &[]).unwrap() > 0.0);

    // API requests by verb and code: the pod creations answered 201, informers listed and watched.
    let api = |verb: &str, code: &str| m.get("jobwright_api_requests_total", &[("verb", verb), ("code", code)]);
    assert!(api("create", "201").unwrap_or(0.0) >= 4.0, "{}", m.text);
    assert!(api("list", "200").unwrap_or(0.0) >= 2.0, "{}", m.text);
    assert!(api("watch", "200").unwrap_or(0.0) >= 2.0, "{}", m.text);
    assert!(api("patch", "200").unwrap_or(0.0) >= 2.0, "status and finalizer patches; {}", m.text);
    for (labels, _) in m.all("jobwright_api_requests_total") {
        let code = &labels["code"];
        assert!(code == "error" || code.parse::<u16>().is_ok_and(|c| (100..600).contains(&c)), "{labels:?}");
    }

    // A single replica leads.
    assert_eq!(m.get("jobwright_leader", &[]), Some(1.0));
}

/// `--kube-api-qps`/`--kube-api-burst` pace every request the controller process sends. The API
/// server counts them (its authorization log has a decision per request of the controller's
/// user); whenever the test looks (at every change of the Job or its pods), that count is at most
/// `burst + qps x time since before the process started`: a slow machine only makes the count
/// smaller or the time longer, so the bound cannot fail by slowness, and without the limit the
/// controller's start (lists, watches) and its eight pod creations overrun it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_api_qps_and_burst_bound_the_requests_the_server_receives() {
    use jobwright::apiserver::rbac::UserInfo;
    const USER: &str = "paced-controller";
    let (qps, burst) = (10.0, 3.0);
    let s = TestApiServer::start_rbac().await;
    let admin = s.client();
    let token =
        s.token_for(UserInfo { name: USER.into(), groups: vec!["system:masters".into()], ..UserInfo::default() });
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    jobwright::apiserver::kubeconfig::write_with_token(&kc, &s.kubeconfig_url(), Some(&token)).unwrap();
    let _k = kubelet(admin.clone(), "default", |_, _| Outcome::Succeed).await;
    // One decision per request, plus one `update jobs/finalizers` the server's ownerReference
    // admission adds to each pod creation (blockOwnerDeletion): those are not requests.
    let sent = || {
        s.authorization_decisions()
            .iter()
            .filter(|d| d.user == USER && d.attributes.subresource != "finalizers")
            .count()
    };
    let check = |start: tokio::time::Instant| {
        let n = sent();
        let allowed = burst + qps * start.elapsed().as_secs_f64();
        assert!(n as f64 <= allowed, "{n} requests after {:?}: more than {allowed:.1}", start.elapsed());
        n
    };
    let start = tokio::time::Instant::now();
    let c = Controller::start(&kc, &["--kube-api-qps", "10", "--kube-api-burst", "3", "--crd-jobs", "false"]).await;
    create_job(&admin, &job("paced", json!({"completions": 8, "parallelism": 8}))).await;
    let pods = watcher(Api::<Pod>::default_namespaced(admin.clone()), watcher::Config::default()).map_ok(|_| ());
    let jobs = watcher(Api::<Job>::default_namespaced(admin.clone()), watcher::Config::default());
    let mut changes = futures::stream::select(pods.boxed(), jobs.map_ok(|_| ()).boxed());
    let jobs_api: Api<Job> = Api::default_namespaced(admin.clone());
    within("the paced Job to complete", async {
        while changes.try_next().await.expect("watch").is_some() {
            check(start);
            if has_condition(jobs_api.get("paced").await.ok().as_ref(), "Complete") {
                break;
            }
        }
    })
    .await;
    let n = check(start);
    assert!(n as f64 > 2.0 * burst, "the controller made {n} requests: the bound was not tested");
    drop(c);
}
