//! A `jobwright.dev/v1` Job through the real kubectl: a seed-like manifest applied with only the
//! `apiVersion` changed runs to completion, `kubectl wait` and `kubectl get wjob` (the CRD's
//! printer columns) and `kubectl describe` (the controller's events) work on it.

use crate::controller_support;

use controller_support::*;
use jobwright::apiserver::testkit::{Kubectl, TestApiServer};

/// Each row of a kubectl table as `(header, cell)` pairs, cut at the header columns' offsets (so
/// an empty cell stays empty).
fn columns(table: &str) -> Vec<Vec<(String, String)>> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|&(i, c)| c != ' ' && (i == 0 || header.as_bytes()[i - 1] == b' '))
        .map(|(i, _)| i)
        .collect();
    let cut = |line: &str| -> Vec<(String, String)> {
        starts
            .iter()
            .enumerate()
            .map(|(n, &st)| {
                let end = starts.get(n + 1).copied().unwrap_or(usize::MAX);
                let cell = |l: &str| l.get(st..end.min(l.len())).unwrap_or("").trim().to_string();
                (cell(header), cell(line))
            })
            .collect()
    };
    std::iter::once(cut(header)).chain(lines.map(cut)).collect()
}

#[tokio::test]
async fn kubectl_runs_a_wjob_from_a_seed_manifest() {
    let s = TestApiServer::start().await;
    let c = s.client();
    // As `jobwright local` does at start.
    jobwright::local::install_crd(&c).await.expect("install the CRD");
    let _k = kubelet(c.clone(), "default", |_, _| Outcome::Succeed).await;
    let _ctl = start_controller(c.clone());
    let kubectl = s.kubectl();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/wjob-hello-world.yaml");
    let out = kubectl.ok(&["apply", "-f", example.to_str().unwrap()]).await;
    assert_eq!(out.trim(), "job.jobwright.dev/hello-world-wjob created");
    kubectl.ok(&["wait", "--for=condition=Complete", "wjob/hello-world-wjob", "--timeout=30s"]).await;

    let table = kubectl.ok(&["get", "wjob"]).await;
    let rows = columns(&table);
    assert_eq!(rows.len(), 2, "{table}");
    let row = |name: &str| rows[1].iter().find(|(h, _)| h == name).map(|(_, v)| v.as_str()).unwrap();
    let headers: Vec<_> = rows[1].iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(headers, ["NAME", "STATUS", "COMPLETIONS", "SUCCEEDED", "STARTED", "AGE"], "{table}");
    assert_eq!((row("NAME"), row("STATUS"), row("SUCCEEDED")), ("hello-world-wjob", "Complete", "1"), "{table}");
    // `.spec.completions` as written: the manifest leaves it unset (no API server defaults a CR).
    assert_eq!(row("COMPLETIONS"), "", "{table}");
    assert!(row("STARTED").ends_with('s') && row("AGE").ends_with('s'), "{table}");
    let wide = Kubectl::rows(&kubectl.ok(&["get", "wjob", "-o", "wide"]).await);
    assert_eq!(wide[0][6..], ["FINISHED", "ACTIVE", "FAILED"]);
    // `kubectl get jobs` is batch/v1 only; the short name and the category find ours.
    assert!(kubectl.ok(&["get", "jobs.batch"]).await.trim().is_empty());
    let all = kubectl.ok(&["get", "jobwright", "-o", "name"]).await;
    assert_eq!(all.trim(), "job.jobwright.dev/hello-world-wjob");

    // The pod's controller is the jobwright.dev/v1 Job.
    let owner = kubectl
        .ok(&[
            "get",
            "pods",
            "-l",
            "batch.kubernetes.io/job-name=hello-world-wjob",
            "-o",
            "jsonpath={.items[0].metadata.ownerReferences[0].apiVersion}",
        ])
        .await;
    assert_eq!(owner, "jobwright.dev/v1");

    // Events are published in the background: poll describe until both are listed.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let d = kubectl.ok(&["describe", "wjob", "hello-world-wjob"]).await;
        let events = d.split("Events:").nth(1).unwrap_or("").to_string();
        if events.contains("SuccessfulCreate") && events.contains("Completed") {
            assert!(events.contains("job-controller"), "{events}");
            assert!(d.contains("API Version:  jobwright.dev/v1"), "{d}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "events missing from describe:\n{d}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await; // polling kubectl, not synchronising
    }
}
