//! `jobwright local --executor simulate` benchmark (not a test): how long many single-pod Jobs,
//! then one large Indexed Job, take from creation through the API to `Complete`, and the peak
//! memory (`VmHWM`) of the `jobwright local` process (API server + node simulator + controllers).
//!
//! `cargo bench --bench local` runs 10,000 single-pod Jobs, then one Indexed Job of 100,000
//! completions at parallelism 1,000 on 20 simulated nodes (110 pods each); `JOBWRIGHT_BENCH_JOBS`
//! and `JOBWRIGHT_BENCH_INDEXED` override the number of single-pod Jobs and the Indexed Job's
//! completions. It also prints the process's memory per finished pod: VmRSS growth from idle
//! (nodes registered) divided by the pods finished and kept so far (nothing is deleted). Without `--bench` (as `cargo test --all-targets` runs
//! it) a smoke run of 50 Jobs and 200 completions checks every Job completes with exact counts.
//!
//! The real binary runs as a child process on a free loopback port with a temporary kubeconfig;
//! this process creates the Jobs with a `kube::Client` (32 requests in flight) and watches them.
//! Pods run for 0 s (`jobwright.dev/simulate-duration: "0"`).
//!
//! `JOBWRIGHT_BENCH_POD_EVENTS=0` runs `jobwright local --no-pod-events` (no scheduler/kubelet
//! events). Each phase also prints the API writes per pod: the growth of the server's global
//! resourceVersion (one per committed write, node heartbeats included) over the pods it ran,
//! and how many Events are stored.

mod common;

use std::time::{Duration, Instant};

use common::{ChildProc, mib};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::Client;
use kube::api::{Api, ListParams};

const NODES: usize = 20;

fn main() {
    let full = common::full_run();
    let (jobs, indexed, parallelism) = if full { (10_000, 100_000, 1_000) } else { (50, 200, 100) };
    let indexed: i32 = std::env::var("JOBWRIGHT_BENCH_INDEXED").ok().and_then(|v| v.parse().ok()).unwrap_or(indexed);
    let jobs: usize = std::env::var("JOBWRIGHT_BENCH_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(jobs);
    let timeout = Duration::from_secs(if full { 3_600 } else { 120 });

    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kubeconfig");
    let log = dir.path().join("local.log");
    let nodes = NODES.to_string();
    let pod_events = std::env::var("JOBWRIGHT_BENCH_POD_EVENTS").map_or(true, |v| v != "0");
    let mut args = vec!["local", "--executor", "simulate", "--listen", "127.0.0.1:0", "--nodes", &nodes];
    if !pod_events {
        args.push("--no-pod-events");
    }
    // `JOBWRIGHT_BENCH_TCP=1`: the in-process components talk to the API server over loopback TCP
    // (as before in-process clients), for comparison.
    let tcp = std::env::var("JOBWRIGHT_BENCH_TCP").is_ok_and(|v| v == "1");
    if tcp {
        args.push("--tcp-clients");
    }
    args.extend(["--kubeconfig", kc.to_str().expect("utf-8 path")]);
    // `JOBWRIGHT_BENCH_WRAP="heaptrack -o FILE"` runs the binary under a wrapper (a profiler);
    // the memory figures are then the wrapped `jobwright` process's (the wrapper's child).
    let wrap: Vec<String> =
        std::env::var("JOBWRIGHT_BENCH_WRAP").unwrap_or_default().split_whitespace().map(str::to_string).collect();
    let bin = common::jobwright_bin();
    let mut local = match wrap.split_first() {
        None => ChildProc::spawn("jobwright local", &bin, &args, Some(&log)),
        Some((program, rest)) => {
            let mut all: Vec<&str> = rest.iter().map(String::as_str).collect();
            all.push(bin.to_str().expect("utf-8 path"));
            all.extend(&args);
            ChildProc::spawn("jobwright local", std::path::Path::new(program), &all, Some(&log))
        }
    };
    let wrapped = !wrap.is_empty();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let cfg = common::wait_kubeconfig(&kc, &mut local).await;
        let pid = if wrapped { wrapped_pid(local.pid()) } else { local.pid() }.to_string();
        let client = Client::try_from(cfg).expect("client");
        // The nodes register before anything is timed.
        let nodes_api: Api<Node> = Api::all(client.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        while nodes_api.list(&ListParams::default()).await.map(|l| l.items.len()).unwrap_or(0) < NODES {
            assert!(Instant::now() < deadline, "nodes did not register");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (idle, idle_rss) = common::memory(&pid);
        let rv0 = current_rv(&client).await;
        let cpu0 = common::cpu_time(&pid);

        let watch = {
            let client = client.clone();
            tokio::spawn(async move { common::wait_complete(&client, jobs, timeout).await })
        };
        let start = Instant::now();
        let specs = (0..jobs).map(|i| common::job(&format!("single-{i}"), 1, 1, false)).collect();
        common::create_jobs(&client, specs, 32).await;
        let created = start.elapsed().as_secs_f64();
        let done = watch.await.expect("single-pod Jobs complete");
        let singles = start.elapsed().as_secs_f64();
        common::assert_counted(&done);
        let (hwm1, rss1) = common::memory(&pid);
        let cpu1 = common::cpu_time(&pid);
        let (rv1, events1) = (current_rv(&client).await, stored_events(&client).await);

        let watch = {
            let client = client.clone();
            tokio::spawn(async move { common::wait_complete(&client, jobs + 1, timeout).await })
        };
        let start = Instant::now();
        common::create_jobs(&client, vec![common::job("indexed", indexed, parallelism, true)], 1).await;
        let done = watch.await.expect("Indexed Job completes");
        let wide = start.elapsed().as_secs_f64();
        common::assert_counted(&done);
        let big = done.iter().find(|j| j.metadata.name.as_deref() == Some("indexed")).expect("indexed Job");
        let want = if indexed == 1 { "0".to_string() } else { format!("0-{}", indexed - 1) };
        assert_eq!(big.status.as_ref().and_then(|s| s.completed_indexes.clone()), Some(want));
        let (hwm2, rss2) = common::memory(&pid);
        let cpu2 = common::cpu_time(&pid);
        let (rv2, events2) = (current_rv(&client).await, stored_events(&client).await);

        let flag = format!("{}{}", if pod_events { "" } else { " --no-pod-events" }, if tcp { " --tcp-clients" } else { "" });
        println!("\n`jobwright local --executor simulate --nodes {NODES}{flag}` (110 pods per node), pods run 0 s.");
        println!("Memory = VmHWM/VmRSS of the `jobwright local` process (API server + simulator + controllers).\n");
        println!("{:<48} {:>9} {:>9} {:>10} {:>12} {:>12}", "phase", "secs", "pods/s", "Jobs/s", "VmHWM", "VmRSS");
        println!(
            "{:<48} {:>9.2} {:>9.0} {:>10.1} {:>8.1} MiB {:>8.1} MiB",
            format!("{jobs} single-pod Jobs (created in {created:.1}s)"),
            singles,
            jobs as f64 / singles,
            jobs as f64 / singles,
            mib(hwm1),
            mib(rss1)
        );
        println!(
            "{:<48} {:>9.2} {:>9.0} {:>10} {:>8.1} MiB {:>8.1} MiB",
            format!("1 Indexed Job x {indexed} (parallelism {parallelism})"),
            wide,
            indexed as f64 / wide,
            "-",
            mib(hwm2),
            mib(rss2)
        );
        println!("(idle after start: VmHWM {:.1} MiB, VmRSS {:.1} MiB)", mib(idle), mib(idle_rss));
        let per_pod = |rss: u64, pods: usize| rss.saturating_sub(idle_rss) as f64 / 1024.0 / pods as f64;
        println!(
            "memory per finished pod kept (VmRSS growth from idle / pods): {:.1} KiB after the single-pod Jobs, {:.1} KiB after the Indexed Job",
            per_pod(rss1, jobs),
            per_pod(rss2, jobs + indexed as usize)
        );
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "CPU time of the `jobwright local` process (utime+stime): {:.0} ms in the single-pod Jobs, {:.2} ms per Job; {:.0} ms in the Indexed Job, {:.2} ms per pod",
            ms(cpu1 - cpu0),
            ms(cpu1 - cpu0) / jobs as f64,
            ms(cpu2 - cpu1),
            ms(cpu2 - cpu1) / indexed as f64,
        );
        println!(
            "API writes per pod (resourceVersion growth / pods, heartbeats included): {:.2} in the single-pod Jobs, {:.2} in the Indexed Job; Events stored: {events1} after the single-pod Jobs, {events2} in all",
            (rv1 - rv0) as f64 / jobs as f64,
            (rv2 - rv1) as f64 / indexed as f64,
        );
        // What the server stores of each kind, in JSON bytes (a list is its items' stored JSON).
        let (mut stored, mut total) = (Vec::new(), 0);
        for (what, path) in [("pods", "/api/v1/pods"), ("Jobs", "/apis/batch/v1/jobs"), ("Events", "/api/v1/events")] {
            let req = http::Request::get(path).body(Vec::new()).expect("request");
            let len = client.request_text(req).await.expect("list").len() as u64;
            total += len;
            stored.push(format!("{what} {:.1} MiB", mib(len)));
        }
        println!(
            "stored JSON (list sizes): {}; {:.1} KiB per pod",
            stored.join(", "),
            total as f64 / 1024.0 / (jobs + indexed as usize) as f64
        );
        if wrapped {
            // Killed as it is, so a heap profiler reports what is live now as "leaked"; then the
            // wrapper finishes writing its output.
            let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
            let _ = local.child.wait();
        }
    });
}

/// The `jobwright` process a wrapper started: a descendant of `wrapper` named `jobwright`.
fn wrapped_pid(wrapper: u32) -> u32 {
    let parent_and_name = |pid: u32| -> Option<(u32, String)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        let ppid = stat[close + 2..].split_whitespace().nth(1)?.parse().ok()?;
        Some((ppid, stat[open + 1..close].to_string()))
    };
    let pids: Vec<u32> =
        std::fs::read_dir("/proc").expect("/proc").filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    let descends = |mut pid: u32| {
        while let Some((ppid, _)) = parent_and_name(pid) {
            if ppid == wrapper {
                return true;
            }
            if ppid <= 1 {
                break;
            }
            pid = ppid;
        }
        false
    };
    pids.into_iter()
        .find(|&p| parent_and_name(p).is_some_and(|(_, name)| name == "jobwright") && descends(p))
        .expect("the wrapped jobwright process")
}

/// The server's current resourceVersion (one per committed write), from a one-item list.
async fn current_rv(client: &Client) -> u64 {
    let list =
        Api::<Namespace>::all(client.clone()).list_metadata(&ListParams::default().limit(1)).await.expect("list");
    list.metadata.resource_version.and_then(|v| v.parse().ok()).expect("numeric resourceVersion")
}

/// How many Events the server stores (a one-item list and its remaining count).
async fn stored_events(client: &Client) -> u64 {
    let list = Api::<Event>::all(client.clone()).list_metadata(&ListParams::default().limit(1)).await.expect("list");
    list.items.len() as u64 + list.metadata.remaining_item_count.unwrap_or(0).max(0) as u64
}
