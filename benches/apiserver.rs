//! API server benchmark (not a test): prints throughput, watch fan-out latency and memory.
//!
//! `cargo bench --bench apiserver` for the full run, `cargo bench --bench apiserver -- --smoke`
//! for a quick one, `cargo bench --bench apiserver -- --wide 40000 200000` for ConfigMap creates
//! with that many keys and /healthz latency during two concurrent ~1.7 MB dry-run creates.
//! Numbers depend on the machine; nothing is asserted.
//!
//! Measured 2026-11-23 on the shared 2-core dev machine (load average ~7 from other builds):
//! 18,300 pod creates/s and 35,600 gets/s over HTTP from 64 concurrent `kube::Client` tasks;
//! watch fan-out to 100 watchers p50 0.8 ms, p99 36 ms; 100,000 stored pods use 1,092 B each
//! beyond their JSON (691 B), index and watch history included.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jobwright::apiserver::http::ServerConfig;
use jobwright::apiserver::rest::WriteOptions;
use jobwright::apiserver::testkit::TestApiServer;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde_json::json;

/// Counts live heap bytes, so the memory figure is exact rather than RSS with allocator slack.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator and only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn pod(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "batch.kubernetes.io/job-name": "bench"},
            "annotations": {"note": "a pod of about the size a Job controller makes"}},
        "spec": {"restartPolicy": "Never", "nodeName": "node-1",
            "containers": [{"name": "main", "image": "registry.example.com/team/worker:1.2.3",
                "command": ["/bin/worker", "--mode=batch", "--verbose"],
                "env": [{"name": "JOB_COMPLETION_INDEX", "value": "0"}, {"name": "LOG_LEVEL", "value": "info"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
        "status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.1.0.1"}})
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    pages * 4096
}

async fn creates_and_gets(s: &TestApiServer, n: usize, tasks: usize) {
    let clients: Vec<kube::Client> = (0..8).map(|_| s.client()).collect();
    let per = n / tasks;
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let pods: Api<Pod> = Api::default_namespaced(clients[t % clients.len()].clone());
        handles.push(tokio::spawn(async move {
            for i in 0..per {
                let p: Pod = serde_json::from_value(pod(&format!("p-{t}-{i}"))).unwrap();
                pods.create(&PostParams::default(), &p).await.expect("create");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "creates: {} pods in {secs:.2}s = {:.0}/s ({tasks} concurrent kube::Client tasks)",
        per * tasks,
        (per * tasks) as f64 / secs
    );

    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let pods: Api<Pod> = Api::default_namespaced(clients[t % clients.len()].clone());
        handles.push(tokio::spawn(async move {
            for i in 0..per {
                pods.get(&format!("p-{t}-{i}")).await.expect("get");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("gets:    {} pods in {secs:.2}s = {:.0}/s", per * tasks, (per * tasks) as f64 / secs);
}

async fn fan_out(s: &TestApiServer, watchers: usize, events: usize) {
    let origin = Arc::new(Instant::now());
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let mut handles = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(watchers);
    for _ in 0..watchers {
        let cms = cms.clone();
        let origin = origin.clone();
        let ready = ready_tx.clone();
        handles.push(tokio::spawn(async move {
            let rv = cms.list_metadata(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
            let mut w = cms.watch(&WatchParams::default().disable_bookmarks(), &rv).await.unwrap().boxed();
            ready.send(()).await.unwrap();
            let mut lat = Vec::with_capacity(events);
            while lat.len() < events {
                if let Some(Ok(WatchEvent::Added(c))) = w.next().await {
                    let sent: u128 = c.data.unwrap()["t"].parse().unwrap();
                    lat.push(origin.elapsed().as_nanos() - sent);
                }
            }
            lat
        }));
    }
    for _ in 0..watchers {
        ready_rx.recv().await.unwrap();
    }
    for i in 0..events {
        let c: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("fan-{i}")},
            "data": {"t": origin.elapsed().as_nanos().to_string()}}))
        .unwrap();
        cms.create(&PostParams::default(), &c).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut all: Vec<u128> = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1e6;
    println!(
        "watch fan-out: {watchers} watchers x {events} events: latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}

fn memory(n: usize) {
    let s = jobwright::apiserver::http::Server::new(ServerConfig::default());
    let pods = s.api.info("", "pods");
    let before = rss_bytes();
    let live_before = LIVE.load(Ordering::Relaxed);
    let json_before = s.store().json_bytes();
    for i in 0..n {
        s.api.create(&pods, "default", pod(&format!("m-{i}")), &WriteOptions::default()).expect("create");
    }
    let grown = rss_bytes().saturating_sub(before);
    let live = LIVE.load(Ordering::Relaxed).saturating_sub(live_before);
    let json = s.store().json_bytes() - json_before;
    let at_rest = s.store().stored_bytes();
    println!(
        "memory: {n} pods: heap +{:.1} MiB (RSS +{:.1} MiB), {:.0} B/pod; stored JSON {:.1} MiB ({} B/pod) kept in {} B/pod at rest; server memory beyond that {:.0} B/pod (index + watch history)",
        live as f64 / 1048576.0,
        grown as f64 / 1048576.0,
        live as f64 / n as f64,
        json as f64 / 1048576.0,
        json / n,
        at_rest / n,
        live.saturating_sub(at_rest) as f64 / n as f64
    );
    // CPU time (this thread's) to read every object back (decompress) and to pack them again.
    let page = s.store().list(&pods.storage_key, None, None, 0, &|_| true);
    let t = thread_cpu_ns();
    let jsons: Vec<bytes::Bytes> = page.items.iter().map(|e| e.bytes()).collect();
    let read = thread_cpu_ns() - t;
    let mut packer = jobwright::apiserver::compress::Packer::default();
    let mut codec = jobwright::apiserver::compress::Codec::default();
    let t = thread_cpu_ns();
    let packed: usize = jsons.iter().map(|j| packer.pack(&mut codec, j).size()).sum();
    let write = thread_cpu_ns() - t;
    println!(
        "objects at rest: {} objects, {:.1} us CPU to read one back, {:.1} us to pack one ({} B/object packed again)",
        jsons.len(),
        read as f64 / 1e3 / jsons.len() as f64,
        write as f64 / 1e3 / jsons.len() as f64,
        packed / jsons.len().max(1),
    );
}

/// CPU time of the calling thread, in nanoseconds (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    s.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// A ConfigMap create with `keys` data keys (managedFields and validation are linear-ish in it),
/// and /healthz latency while two ~1.7 MB dry-run creates run (they must not stall other clients).
async fn wide_objects(s: &TestApiServer, keys: &[usize], heavy_keys: usize) {
    let info = s.server().api.info("", "configmaps");
    for &n in keys {
        let data: serde_json::Map<String, serde_json::Value> =
            (0..n).map(|i| (format!("key-{i}"), json!("v"))).collect();
        let cm =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("wide-{n}")}, "data": data});
        let t = Instant::now();
        s.server().api.create(&info, "default", cm, &WriteOptions::default()).unwrap();
        println!("ConfigMap create with {n} keys: {:?}", t.elapsed());
    }
    let data: serde_json::Map<String, serde_json::Value> =
        (0..heavy_keys).map(|i| (format!("key-{i:08}"), json!("value-xx"))).collect();
    let body = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": data}),
    )
    .unwrap();
    println!("dry-run create body: {} bytes", body.len());
    let http = reqwest_free_post(s.url(), body);
    let heavy = tokio::spawn(async move { futures::future::join_all(http).await });
    let mut worst = Duration::ZERO;
    let client = s.client();
    while !heavy.is_finished() {
        let t = Instant::now();
        let req = http::Request::get("/healthz").body(Vec::new()).unwrap();
        let _ = client.request_text(req).await;
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("worst /healthz latency during two concurrent dry-run creates: {worst:?}");
}

/// Two concurrent dry-run POSTs of `body` over plain HTTP.
fn reqwest_free_post(url: String, body: Vec<u8>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..2)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            tokio::spawn(async move {
                let addr = url.trim_start_matches("http://").to_string();
                let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let head = format!(
                    "POST /api/v1/namespaces/default/configmaps?dryRun=All HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                sock.write_all(head.as_bytes()).await.unwrap();
                sock.write_all(&body).await.unwrap();
                let mut out = Vec::new();
                let _ = sock.read_to_end(&mut out).await;
            })
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, and
    // then only a smoke run is wanted.
    let args: Vec<String> = std::env::args().collect();
    // `--wide [KEYS...]`: only the wide-object figures (e.g. `-- --wide 40000 200000`).
    if let Some(i) = args.iter().position(|a| a == "--wide") {
        let keys: Vec<usize> = args[i + 1..].iter().filter_map(|k| k.parse().ok()).collect();
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let s = TestApiServer::start().await;
            wide_objects(&s, if keys.is_empty() { &[40_000, 200_000] } else { &keys }, 60_000).await;
        });
        return;
    }
    // `--memory [PODS]`: only the memory and objects-at-rest figures.
    if let Some(i) = args.iter().position(|a| a == "--memory") {
        memory(args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(100_000));
        return;
    }
    let smoke = args.iter().any(|a| a == "--smoke") || !args.iter().any(|a| a == "--bench");
    let (n, watchers, events, mem) = if smoke { (2_000, 20, 20, 10_000) } else { (50_000, 100, 200, 100_000) };
    memory(mem);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let s = TestApiServer::start().await;
        if smoke {
            wide_objects(&s, &[1_000], 2_000).await;
        } else {
            wide_objects(&s, &[40_000, 200_000], 60_000).await;
        }
        creates_and_gets(&s, n, 64).await;
        fan_out(&s, watchers, events).await;
        // The same creates with every write appended to the write-ahead log and fsynced first.
        let dir = tempfile::tempdir().unwrap();
        println!("with --data-dir (fsync per write):");
        let config = ServerConfig { data_dir: Some(dir.path().to_path_buf()), ..ServerConfig::default() };
        let s = TestApiServer::start_with(config).await;
        creates_and_gets(&s, n, 64).await;
    });
}
