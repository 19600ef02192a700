//! Resource usage of running process containers, read from `/proc`, served at `/stats/containers`
//! for the API server's `metrics.k8s.io` (which plays metrics-server: it asks each node simulator).
//!
//! A container's processes are its process group plus the groups of the processes exec started
//! in it. CPU is the rate of `utime + stime + cutime + cstime` between two requests (the first
//! request measures from the container's start), memory the resident set size, metrics-server's
//! `working_set` for a process without a cgroup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::streams::Containers;

/// Linux's user-visible clock tick (`USER_HZ`), the unit of `/proc/PID/stat` times.
const TICKS_PER_SECOND: u64 = 100;
/// The page size `rss` is counted in.
const PAGE_SIZE: u64 = 4096;

/// One process's figures from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Process group.
    pub pgrp: i32,
    /// `utime + stime + cutime + cstime`, in ticks.
    pub cpu_ticks: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

/// Parse `/proc/PID/stat` (the command name may contain spaces and parentheses).
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<i64>().ok());
    let ticks = [11, 12, 13, 14].iter().map(|&i| num(i).unwrap_or(0).max(0) as u64).sum();
    Some(ProcStat { pgrp: num(2)? as i32, cpu_ticks: ticks, rss_pages: num(21)?.max(0) as u64 })
}

/// Every process's figures, by process group.
fn by_group() -> HashMap<i32, (u64, u64)> {
    let mut out: HashMap<i32, (u64, u64)> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        if let Some(st) = parse_stat(&text) {
            let e = out.entry(st.pgrp).or_default();
            e.0 += st.cpu_ticks;
            e.1 += st.rss_pages;
        }
    }
    out
}

#[derive(Clone)]
struct StatsState {
    containers: Arc<Containers>,
    /// The previous sample per container (keyed by the handle's address, so a restart starts
    /// over): when, and the CPU ticks then.
    previous: Arc<Mutex<HashMap<usize, (Instant, u64)>>>,
}

/// The stats route, for the kubelet's HTTP server.
pub fn router(containers: Arc<Containers>) -> Router {
    let state = StatsState { containers, previous: Default::default() };
    Router::new().route("/stats/containers", get(stats)).with_state(state)
}

async fn stats(State(state): State<StatsState>) -> Response {
    let groups = tokio::task::spawn_blocking(by_group).await.unwrap_or_default();
    let now = Instant::now();
    let timestamp = crate::apiserver::rest::timestamp(chrono::Utc::now());
    let mut previous = state.previous.lock().unwrap_or_else(|e| e.into_inner());
    let mut seen = HashMap::new();
    let mut items = Vec::new();
    for ((namespace, pod, container), handle) in state.containers.all() {
        let mut pgids: Vec<i32> =
            handle.execs.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|p| *p as i32).collect();
        pgids.extend(handle.pgid);
        let (ticks, pages) = pgids.iter().filter_map(|g| groups.get(g)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        let id = Arc::as_ptr(&handle) as usize;
        let (since, before) = previous.get(&id).copied().unwrap_or((handle.started, 0));
        let window = now.saturating_duration_since(since);
        let used = ticks.saturating_sub(before) as f64 / TICKS_PER_SECOND as f64;
        let nano_cores = if window.as_secs_f64() > 0.0 { (used / window.as_secs_f64() * 1e9) as u64 } else { 0 };
        seen.insert(id, (now, ticks));
        items.push(json!({
            "namespace": namespace,
            "pod": pod,
            "uid": handle.uid,
            "container": container,
            "cpuNanoCores": nano_cores,
            "memoryWorkingSetBytes": pages * PAGE_SIZE,
            "windowSeconds": window.as_secs_f64(),
            "timestamp": timestamp,
        }));
    }
    // Keep only running containers' samples.
    *previous = seen;
    axum::Json(json!({"containers": items})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_command_names() {
        let line = "4242 (my (odd) cmd) S 1 4240 4240 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0 12345 1000000 300 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let st = parse_stat(line).unwrap();
        assert_eq!(st, ProcStat { pgrp: 4240, cpu_ticks: 310, rss_pages: 300 });
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn this_process_is_found_in_its_group() {
        let text = std::fs::read_to_string("/proc/self/stat").unwrap();
        let st = parse_stat(&text).unwrap();
        assert!(st.rss_pages > 0);
        assert!(by_group().contains_key(&st.pgrp));
    }
}
