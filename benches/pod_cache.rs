//! The Job controller's pod cache, per pod: live heap bytes and decode CPU time of one finished
//! pod in a kube-runtime reflector store, as the controller caches it ([`CachedPod`], decoded
//! straight from the JSON) against what it cached before (a whole k8s-openapi `Pod`, decoded whole,
//! then trimmed: no `managedFields`, of the spec only the node name and container names).
//!
//! `cargo bench --bench pod_cache` stores 10,000 pods (`JOBWRIGHT_BENCH_PODS` overrides); without
//! `--bench` (as `cargo test --all-targets` runs it) a smoke run of 200 checks the compact entry is
//! the smaller one. The pod is `benches/fixtures/finished_pod.json`: a finished pod of an Indexed
//! Job as `jobwright local` serves it (`kubectl get pod -o json`, so without `managedFields`), with
//! a unique name and uid per copy. Bytes are counted by a counting global allocator (exact, whatever
//! the machine's load); CPU time is the process's utime+stime over 10 decodes of every pod.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use jobwright::job::cached_pod::CachedPod;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::runtime::{reflector, watcher};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts the bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What the controller's cache did to a decoded pod before `CachedPod` (`pods::trim_for_cache`).
fn trim_as_before(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    if let Some(spec) = pod.spec.take() {
        let name_only =
            |c: Container| Container { name: c.name, restart_policy: c.restart_policy, ..Default::default() };
        pod.spec = Some(PodSpec {
            containers: spec.containers.into_iter().map(name_only).collect(),
            init_containers: spec.init_containers.map(|cs| cs.into_iter().map(name_only).collect()),
            node_name: spec.node_name,
            ..Default::default()
        });
    }
}

/// Live bytes per pod of a reflector store holding every pod of `jsons` decoded by `decode`,
/// and CPU milliseconds per decode.
fn measure<K>(jsons: &[Vec<u8>], decode: impl Fn(&[u8]) -> K) -> (f64, f64)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let n = jsons.len() as f64;
    let before = LIVE.load(Ordering::Relaxed);
    let (store, mut writer) = reflector::store::<K>();
    for j in jsons {
        writer.apply_watcher_event(&watcher::Event::Apply(decode(j)));
    }
    let bytes = (LIVE.load(Ordering::Relaxed) - before) as f64 / n;
    assert_eq!(store.state().len(), jsons.len());
    drop((store, writer));
    let rounds = 10;
    let cpu0 = common::cpu_seconds("self");
    for _ in 0..rounds {
        for j in jsons {
            std::hint::black_box(decode(j));
        }
    }
    let cpu_ms = (common::cpu_seconds("self") - cpu0) * 1000.0 / (n * rounds as f64);
    (bytes, cpu_ms)
}

fn main() {
    let n: usize = std::env::var("JOBWRIGHT_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if common::full_run() { 10_000 } else { 200 });
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/finished_pod.json")).expect("fixture is JSON");
    let jsons: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut v = fixture.clone();
            v["metadata"]["name"] = format!("pi-{i}-cxgsp").into();
            v["metadata"]["uid"] = format!("348870b2-b303-4df2-b50d-{i:012}").into();
            // Each pod its own completion index, as the pods of an Indexed Job.
            v["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] = i.to_string().into();
            v["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] = i.to_string().into();
            serde_json::to_vec(&v).expect("encode")
        })
        .collect();
    let json_bytes = jsons.iter().map(Vec::len).sum::<usize>() as f64 / n as f64;
    let (whole_b, whole_cpu) = measure(&jsons, |j| {
        let mut p: Pod = serde_json::from_slice(j).expect("Pod");
        trim_as_before(&mut p);
        p
    });
    let (cached_b, cached_cpu) = measure(&jsons, |j| serde_json::from_slice::<CachedPod>(j).expect("CachedPod"));
    // What the controller holds now: each pod once in its own cache (by name and by Job).
    let index_b = {
        let before = LIVE.load(Ordering::Relaxed);
        let index = jobwright::job::pod_index::PodIndex::default();
        for j in &jsons {
            index.apply(&watcher::Event::Apply(serde_json::from_slice::<CachedPod>(j).expect("CachedPod")));
        }
        let b = (LIVE.load(Ordering::Relaxed) - before) as f64 / n as f64;
        assert_eq!(index.state().len(), n);
        b
    };
    println!("Job controller pod cache, {n} finished pods of {json_bytes:.0} B of JSON each, in a reflector store:");
    println!("  {:<52} {:>10} {:>14}", "cache entry", "B per pod", "ms CPU/decode");
    println!("  {:<52} {:>10.0} {:>14.4}", "k8s-openapi Pod, decoded whole then trimmed (before)", whole_b, whole_cpu);
    println!("  {:<52} {:>10.0} {:>14.4}", "CachedPod, decoded straight from the JSON", cached_b, cached_cpu);
    println!("  {:<52} {:>10.0} {:>14}", "CachedPod in the controller's PodIndex (now)", index_b, "same");
    println!(
        "  size_of: Pod {} B, CachedPod {} B (the Arc allocation; strings and maps on top)",
        std::mem::size_of::<Pod>(),
        std::mem::size_of::<CachedPod>()
    );
    assert!(cached_b < whole_b, "the compact entry is smaller: {cached_b} vs {whole_b}");
    assert!(index_b < cached_b, "the controller's cache holds less than a reflector store: {index_b} vs {cached_b}");
}
