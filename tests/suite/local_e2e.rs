//! End-to-end tests of `jobwright local`: the real binary, driven by the real `kubectl`.
//!
//! One `jobwright local` instance runs all of `examples/` at once (fast backoffs so the failing
//! examples end quickly); a second instance checks that SIGTERM stops every pod process and exits 0;
//! a third (`--nodes 3`) fails a node and deletes another through kubectl and watches the Jobs
//! replace their lost pods; a fourth is stopped mid-Job and started again on its `--data-dir`.
//! Readiness is the printed `export KUBECONFIG=` line, never a sleep.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common;

use common::local::Local;

/// What these tests add to the shared harness.
impl Local {
    fn apply(&self, example: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(example);
        self.ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    fn wait(&self, job: &str, cond: &str) {
        self.ok(&["wait", &format!("--for=condition={cond}"), &format!("job/{job}"), "--timeout=90s"]);
    }

    fn jsonpath(&self, job: &str, path: &str) -> String {
        self.ok(&["get", "job", job, "-o", &format!("jsonpath={path}")])
    }
}

/// Processes whose command line is exactly `argv` and whose parent is `ppid`.
fn children_running(ppid: u32, argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain(std::iter::once(0))).collect();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let parent = status.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|p| p.trim().parse::<u32>().ok());
        if cmd == want && parent == Some(ppid) {
            found.push(pid);
        }
    }
    found
}

/// Processes anywhere whose command line is exactly `argv` (orphans included).
fn anywhere_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain(std::iter::once(0))).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).map(|c| c == want).unwrap_or(false))
        .collect()
}

/// Waits (bounded) until `kubectl describe KIND NAME` lists events of every reason in `reasons`:
/// the events of a finish are written after the condition a `kubectl wait` saw.
fn describe_has_events(local: &Local, kind: &str, name: &str, reasons: &[&str]) {
    poll(&format!("events {reasons:?} in `kubectl describe {kind} {name}`"), || {
        let d = local.ok(&["describe", kind, name]);
        let events = d.split("Events:").nth(1).unwrap_or_else(|| panic!("no Events section:\n{d}"));
        reasons.iter().all(|r| events.contains(r)).then_some(())
    });
}

/// Waits (bounded) until a pod matching `selector` exists, then until it is Running
/// (`kubectl wait` with a selector fails at once when nothing matches yet).
fn wait_pod_running(local: &Local, selector: &str) {
    poll(&format!("a pod matching {selector}"), || {
        (!local.ok(&["get", "pods", "-l", selector, "-o", "name"]).is_empty()).then_some(())
    });
    local.ok(&["wait", "--for=jsonpath={.status.phase}=Running", "pod", "-l", selector, "--timeout=60s"]);
}

#[test]
fn examples_reach_their_documented_end() {
    let local = Local::start();
    for ex in [
        "hello-world.yaml",
        "parallel-file-processing.yaml",
        "indexed.yaml",
        "backoff-limit.yaml",
        "deadline.yaml",
        "pi.yaml",
        "suspend.yaml",
        "ttl.yaml",
        "pod-failure-policy.yaml",
        "success-policy.yaml",
        "backoff-limit-per-index.yaml",
        "work-queue.yaml",
        "backup.yaml",
        "example-job.yaml",
        "pi-2000.yaml",
        "pi-with-timeout.yaml",
        "wjob-hello-world.yaml",
    ] {
        local.apply(ex);
    }

    local.wait("hello-world-job", "complete");
    assert_eq!(local.ok(&["logs", "job/hello-world-job"]).trim(), "Hello, World!");
    describe_has_events(&local, "job", "hello-world-job", &["SuccessfulCreate", "Completed"]);
    // Field managers as a cluster names them: the controller's writes under its agent's program
    // (`jobwright`), the node's under `kubelet`, kubectl's own.
    let managers = |kind: &str, name: &str| -> Vec<(String, String, String)> {
        let obj: serde_json::Value =
            serde_json::from_str(&local.ok(&["get", kind, name, "-o", "json", "--show-managed-fields"])).unwrap();
        let entries = obj["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
        let field = |e: &serde_json::Value, k: &str| e[k].as_str().unwrap_or_default().to_string();
        entries.iter().map(|e| (field(e, "manager"), field(e, "operation"), field(e, "subresource"))).collect()
    };
    let job = managers("job", "hello-world-job");
    let entry = |m: &str, sub: &str| (m.to_string(), "Update".to_string(), sub.to_string());
    assert!(job.contains(&entry("kubectl-client-side-apply", "")), "{job:?}");
    assert!(job.contains(&entry("jobwright", "status")), "{job:?}");
    let pod = local.ok(&["get", "pods", "-l", "job-name=hello-world-job", "-o", "jsonpath={.items[0].metadata.name}"]);
    let pod = managers("pod", &pod);
    assert!(pod.contains(&entry("jobwright", "")), "{pod:?}");
    assert!(pod.contains(&entry("kubelet", "status")), "{pod:?}");
    assert!(pod.iter().chain(&job).all(|(m, _, _)| !m.is_empty()), "an entry without a manager: {pod:?} {job:?}");

    // The same hello-world as a jobwright.dev/v1 Job (the CRD `jobwright local` installs).
    local.ok(&["wait", "--for=condition=Complete", "wjob/hello-world-wjob", "--timeout=90s"]);
    assert_eq!(local.ok(&["get", "wjob", "hello-world-wjob", "-o", "jsonpath={.status.succeeded}"]), "1");
    assert_eq!(local.ok(&["logs", "-l", "batch.kubernetes.io/job-name=hello-world-wjob"]).trim(), "Hello, World!");
    describe_has_events(&local, "wjob", "hello-world-wjob", &["SuccessfulCreate", "Completed"]);

    local.wait("parallel-file-processing-job", "complete");
    assert_eq!(local.jsonpath("parallel-file-processing-job", "{.status.succeeded}"), "3");

    local.wait("indexed", "complete");
    assert_eq!(local.jsonpath("indexed", "{.status.completedIndexes}"), "0-4");
    let pods = local.ok(&["get", "pods", "-l", "job-name=indexed", "-o", "name"]);
    let mut all_logs = String::new();
    for pod in pods.lines() {
        all_logs += &local.ok(&["logs", pod]);
    }
    for i in 0..5 {
        assert!(all_logs.contains(&i.to_string()), "index {i} missing from logs: {all_logs}");
    }

    local.wait("always-fails", "failed");
    assert_eq!(
        local.jsonpath("always-fails", "{.status.conditions[?(@.type==\"Failed\")].reason}"),
        "BackoffLimitExceeded"
    );
    assert_eq!(local.jsonpath("always-fails", "{.status.failed}"), "3");

    local.wait("deadline", "failed");
    assert_eq!(local.jsonpath("deadline", "{.status.conditions[?(@.type==\"Failed\")].reason}"), "DeadlineExceeded");
    describe_has_events(&local, "job", "deadline", &["SuccessfulCreate", "DeadlineExceeded"]);

    local.wait("pi", "complete");
    assert!(local.ok(&["logs", "job/pi"]).starts_with("3.14159"));

    assert_eq!(local.jsonpath("suspended", "{.status.conditions[?(@.type==\"Suspended\")].reason}"), "JobSuspended");
    assert_eq!(local.ok(&["get", "pods", "-l", "job-name=suspended", "-o", "name"]).trim(), "");
    local.ok(&["patch", "job", "suspended", "--type=merge", "-p", r#"{"spec":{"suspend":false}}"#]);
    local.wait("suspended", "complete");
    assert_eq!(local.ok(&["logs", "job/suspended"]).trim(), "resumed and done");

    local.ok(&["wait", "--for=delete", "job/ttl", "--timeout=60s"]);
    let (found, _, err) = local.kubectl(&["get", "job", "ttl"]);
    assert!(!found && err.contains("NotFound"), "{err}");

    local.wait("pod-failure-policy", "failed");
    assert_eq!(
        local.jsonpath("pod-failure-policy", "{.status.conditions[?(@.type==\"Failed\")].reason}"),
        "PodFailurePolicy"
    );
    // Both parallel pods exit 42 at once; FailJob stops there instead of retrying up to backoffLimit (6).
    let failed: u32 = local.jsonpath("pod-failure-policy", "{.status.failed}").parse().unwrap();
    assert!((1..=2).contains(&failed), "failed = {failed}");

    local.wait("success-policy", "complete");
    assert_eq!(
        local.jsonpath("success-policy", "{.status.conditions[?(@.type==\"SuccessCriteriaMet\")].reason}"),
        "SuccessPolicy"
    );

    local.wait("backoff-limit-per-index", "failed");
    assert_eq!(
        local.jsonpath("backoff-limit-per-index", "{.status.conditions[?(@.type==\"Failed\")].reason}"),
        "FailedIndexes"
    );
    assert_eq!(local.jsonpath("backoff-limit-per-index", "{.status.failedIndexes}"), "2");
    // Upstream writes two consecutive indexes as "0,1" (orderedIntervals.String), not "0-1".
    assert_eq!(local.jsonpath("backoff-limit-per-index", "{.status.completedIndexes}"), "0,1,3");

    for job in ["work-queue", "backup-job", "example-job", "pi-with-timeout"] {
        local.wait(job, "complete");
    }
    assert!(!local.ok(&["logs", "job/backup-job"]).trim().is_empty());

    local.wait("pi-2000", "failed");
    assert_eq!(local.jsonpath("pi-2000", "{.status.conditions[?(@.type==\"Failed\")].reason}"), "BackoffLimitExceeded");
    let pod = local.ok(&["get", "pods", "-l", "job-name=pi-2000", "-o", "jsonpath={.items[0].metadata.name}"]);
    let code =
        local.ok(&["get", "pod", &pod, "-o", "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}"]);
    assert_eq!(code, "255");
    let logs = local.ok(&["logs", &format!("pod/{pod}")]);
    assert!(logs.contains("Can't use an undefined value"), "perl's error missing: {logs}");

    // The deadline killed its `sleep 600`: no such child of jobwright remains.
    assert_eq!(children_running(local.child.id(), &["sleep", "600"]), Vec::<u32>::new());
}

#[test]
fn sigterm_stops_pods_and_exits_zero() {
    let mut local = Local::start();
    // An unusual duration, so that no other process on the machine has this command line.
    local.ok(&["create", "job", "sleeper", "--image=busybox", "--", "sleep", "613"]);
    wait_pod_running(&local, "job-name=sleeper");
    let pid = local.child.id();
    assert_eq!(children_running(pid, &["sleep", "613"]).len(), 1, "the sleep process runs before SIGTERM");
    let status = local.sigterm();
    assert_eq!(status.code(), Some(0));
    assert!(!local.kubeconfig.exists(), "the kubeconfig of a stopped server is removed");
    assert_eq!(anywhere_running(&["sleep", "613"]), Vec::<u32>::new(), "a pod process survived SIGTERM");
}

/// `jobwright local --run FILE`, the README's first command: one process applies the example,
/// waits for it, prints the outcome and the logs, and exits with the result.
/// It leaves no kubeconfig behind (its server is gone) and promises no server to come back to.
fn run_example(file: &str, extra: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(file);
    let out = Command::new(env!("CARGO_BIN_EXE_jobwright"))
        .args(["local", "--listen", "127.0.0.1:0", "--run-timeout", "90s", "--run"])
        .arg(&example)
        .args(extra)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run jobwright local");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "--run leaves nothing in the working directory: {left:?}");
    assert!(!stdout.contains("export KUBECONFIG") && !stderr.contains("Ctrl-C"), "{stdout}{stderr}");
    (out.status.code(), stdout)
}

#[test]
fn run_flag_checks_the_file_before_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: batch/v1\nkind: Job\nmetadata: {name: [unclosed\n").unwrap();
    for (file, want) in [(&bad, "not a Kubernetes manifest"), (&dir.path().join("missing.yaml"), "cannot read")] {
        let out = Command::new(env!("CARGO_BIN_EXE_jobwright"))
            .args(["local", "--listen", "127.0.0.1:0", "--run"])
            .arg(file)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(stderr.contains(want), "{stderr}");
        assert!(stdout.is_empty() && !stderr.contains("API server"), "nothing started: {stdout}{stderr}");
        assert!(!dir.path().join("jobwright.kubeconfig").exists());
    }
}

#[test]
fn run_flag_completes_the_hello_world_example_in_one_command() {
    let (code, stdout) = run_example("hello-world.yaml", &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("job/hello-world-job: Complete (CompletionsReached) succeeded=1 failed=0"), "{stdout}");
    assert!(stdout.contains(": Hello, World!"), "{stdout}");
}

#[test]
fn run_flag_exits_one_when_a_job_fails() {
    let (code, stdout) = run_example("backoff-limit.yaml", &["--pod-backoff-base", "100ms"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("job/always-fails: Failed (BackoffLimitExceeded) succeeded=0 failed=3"), "{stdout}");
}

/// Poll `probe` every 100 ms until it returns `Some`, for at most 60 s (a bounded deadline, not a
/// sleep standing in for synchronisation).
fn poll<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kubectl get pods -l SELECTOR --watch -o json`: every version of the matching pods, as a user
/// watching would see them (the watch starts at the list's resourceVersion, so nothing after the
/// first printed object is missed).
struct PodWatch {
    child: Child,
    rx: mpsc::Receiver<serde_json::Value>,
}

impl PodWatch {
    fn start(local: &Local, selector: &str) -> Self {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&local.kubeconfig)
            .args(["get", "pods", "-l", selector, "--watch", "-o", "json"])
            .env("KUBECACHEDIR", local.cache.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run kubectl (required)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for v in serde_json::Deserializer::from_reader(stdout).into_iter::<serde_json::Value>() {
                let Ok(v) = v else { break };
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        PodWatch { child, rx }
    }

    /// The first version (from now on) for which `pred` holds.
    fn until(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(e) => panic!("watching pods: no {what} ({e})"),
            }
        }
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn disruption_target(pod: &serde_json::Value) -> Option<&serde_json::Value> {
    pod["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "DisruptionTarget")
}

/// A Job whose first pod sleeps (the unusual `sleep SECS`, so the test can find its process) and
/// whose later pods exit 0 at once: it completes only if a lost first pod is replaced.
fn first_pod_sleeps_job(dir: &Path, name: &str, secs: u32, ignore_disruption: bool) -> PathBuf {
    let marker = dir.join(name);
    let policy = if ignore_disruption {
        "  podFailurePolicy:\n    rules:\n    - action: Ignore\n      onPodConditions:\n      - type: DisruptionTarget\n"
    } else {
        ""
    };
    let script = format!("test -f {m} && exit 0; touch {m}; exec sleep {secs}", m = marker.display());
    let yaml = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{policy}  template:\n    spec:\n      \
         restartPolicy: Never\n      containers:\n      - name: main\n        image: busybox\n        \
         command: [\"sh\", \"-c\", {script:?}]\n"
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Lose the running pod of `job` with `lose(node)`; returns (the lost pod as last seen, its node).
fn lose_running_pod(local: &Local, job: &str, sleep: &[&str], lose: impl FnOnce(&str)) -> (serde_json::Value, String) {
    let selector = format!("job-name={job}");
    wait_pod_running(local, &selector);
    let pid = local.child.id();
    let before = poll("the pod's sleep process", || Some(children_running(pid, sleep)).filter(|p| p.len() == 1));
    let name = local.ok(&["get", "pods", "-l", &selector, "-o", "jsonpath={.items[0].metadata.name}"]);
    let node = local.ok(&["get", "pod", &name, "-o", "jsonpath={.spec.nodeName}"]);
    let watch = PodWatch::start(local, &selector);
    watch.until("initial list", |p| p["metadata"]["name"] == name.as_str());
    lose(&node);
    let lost = watch.until("DisruptionTarget on the lost pod", |p| {
        p["metadata"]["name"] == name.as_str() && disruption_target(p).is_some_and(|c| c["status"] == "True")
    });
    // The kubelet kills the processes before it writes the loss.
    assert!(!Path::new(&format!("/proc/{}", before[0])).exists(), "the lost pod's process {} survived", before[0]);
    assert_eq!(anywhere_running(sleep), Vec::<u32>::new(), "the lost pod's process survived");
    (lost, node)
}

/// The nodes of `job`'s pods, one entry per pod.
fn pod_nodes(local: &Local, job: &str) -> Vec<String> {
    let out = local.ok(&["get", "pods", "-l", &format!("job-name={job}"), "-o", "jsonpath={.items[*].spec.nodeName}"]);
    out.split_whitespace().map(str::to_string).collect()
}

#[test]
fn failed_or_deleted_nodes_lose_their_pods_and_jobs_replace_them() {
    let local = Local::start_with(&["--nodes", "3"]);
    let dir = tempfile::tempdir().unwrap();

    // 1. `kubectl annotate node`: the taint manager's eviction; the lost pod counts as failed.
    let manifest = first_pod_sleeps_job(dir.path(), "node-failure", 617, false);
    local.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let (lost, failed_node) = lose_running_pod(&local, "node-failure", &["sleep", "617"], |node| {
        local.ok(&["annotate", "node", node, "jobwright.dev/fail-node=true"]);
    });
    let cond = disruption_target(&lost).unwrap();
    assert_eq!(cond["reason"], "DeletionByTaintManager", "{lost}");
    assert_eq!(cond["message"], "Taint manager: deleting due to NoExecute taint", "{lost}");
    assert_eq!(lost["status"]["phase"], "Failed", "{lost}");
    local.wait("node-failure", "complete");
    assert_eq!(local.jsonpath("node-failure", "{.status.succeeded} {.status.failed}"), "1 1");
    let replacement = pod_nodes(&local, "node-failure");
    assert!(replacement.len() == 1 && replacement[0] != failed_node, "one replacement elsewhere: {replacement:?}");
    let lost_name = lost["metadata"]["name"].as_str().unwrap();
    let (found, _, err) = local.kubectl(&["get", "pod", lost_name]);
    assert!(!found && err.contains("NotFound"), "the lost pod is deleted: {err}");
    let events = local.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=TaintManagerEviction",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains(&format!("Marking for deletion Pod default/{lost_name}")), "{events}");
    let ready =
        local.ok(&["get", "node", &failed_node, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
    assert_eq!(ready, "Unknown");
    let taints = local.ok(&["get", "node", &failed_node, "-o", "jsonpath={.spec.taints[*].key}"]);
    assert!(taints.contains("node.kubernetes.io/unreachable"), "{taints}");

    // 2. `kubectl delete node`: pod GC's orphan cleanup; podFailurePolicy Ignore on DisruptionTarget
    // keeps `failed` at 0, and the Job still gets its replacement.
    let manifest = first_pod_sleeps_job(dir.path(), "node-deleted", 618, true);
    local.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let (lost, deleted_node) = lose_running_pod(&local, "node-deleted", &["sleep", "618"], |node| {
        local.ok(&["delete", "node", node]);
    });
    assert_ne!(deleted_node, failed_node, "the scheduler avoids the NotReady node");
    let cond = disruption_target(&lost).unwrap();
    assert_eq!(cond["reason"], "DeletionByPodGC", "{lost}");
    assert_eq!(cond["message"], "PodGC: node no longer exists", "{lost}");
    local.wait("node-deleted", "complete");
    assert_eq!(local.jsonpath("node-deleted", "{.status.succeeded}"), "1");
    let failed = local.jsonpath("node-deleted", "{.status.failed}");
    assert!(matches!(failed.as_str(), "" | "0"), "an ignored failure is not counted: failed = {failed}");
    let replacement = pod_nodes(&local, "node-deleted");
    assert!(
        replacement.len() == 1 && replacement[0] != failed_node && replacement[0] != deleted_node,
        "one replacement on the healthy node: {replacement:?}"
    );
    // Like a running kubelet upstream (kubernetes#71398), the deleted Node stays deleted until the
    // next start of `jobwright local`.
    let (found, _, err) = local.kubectl(&["get", "node", &deleted_node]);
    assert!(!found && err.contains("NotFound"), "{err}");

    // 3. Removing the annotation brings the failed node back.
    local.ok(&["annotate", "node", &failed_node, "jobwright.dev/fail-node-"]);
    local.ok(&["wait", "--for=condition=Ready", &format!("node/{failed_node}"), "--timeout=60s"]);
    let taints = local.ok(&["get", "node", &failed_node, "-o", "jsonpath={.spec.taints[*].key}"]);
    assert!(!taints.contains("node.kubernetes.io/unreachable"), "{taints}");
}

fn write_manifest(dir: &Path, name: &str, yaml: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

/// Names of `job`'s pods in `phase`.
fn pods_in_phase(local: &Local, job: &str, phase: &str) -> Vec<String> {
    let jsonpath =
        format!("jsonpath={{range .items[?(@.status.phase==\"{phase}\")]}}{{.metadata.name}}{{\"\\n\"}}{{end}}");
    let out = local.ok(&["get", "pods", "-l", &format!("job-name={job}"), "-o", &jsonpath]);
    let mut names: Vec<String> = out.lines().map(str::to_string).collect();
    names.sort();
    names
}

fn job_event_uids(local: &Local, job: &str) -> Vec<String> {
    let selector = format!("involvedObject.kind=Job,involvedObject.name={job}");
    let out = local.ok(&["get", "events", "--field-selector", &selector, "-o", "jsonpath={.items[*].metadata.uid}"]);
    out.split_whitespace().map(str::to_string).collect()
}

/// `--data-dir`: stop `jobwright local` (SIGTERM) in the middle of two Jobs, start it again on the
/// same directory, and both finish with exact counts. Pods that were running when it stopped lost
/// their processes; the restarted kubelet fails them (`ContainerStatusUnknown`, 137) as a kubelet
/// does after a node reboot, and the controller replaces each exactly once.
#[test]
fn data_dir_restart_mid_job_finishes_with_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let kubeconfig = dir.path().join("jobwright.kubeconfig");
    let (d, release) = (dir.path().display().to_string(), dir.path().join("release"));
    // Before the release file exists, exactly two pods of each Job succeed (mkdir is atomic; for the
    // Indexed Job, indexes 0 and 1); every other pod sleeps until it is killed.
    let plain = format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: resume
spec:
  completions: 6
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "test -f {d}/release && {{ echo released; exit 0; }}; mkdir {d}/one 2>/dev/null && {{ echo early; exit 0; }}; mkdir {d}/two 2>/dev/null && {{ echo early; exit 0; }}; exec sleep 621"]
"#
    );
    let indexed = format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: resume-indexed
spec:
  completions: 4
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "echo index $JOB_COMPLETION_INDEX; test -f {d}/release && exit 0; test $JOB_COMPLETION_INDEX -lt 2 && exit 0; exec sleep 622"]
"#
    );
    let data_flag = ["--data-dir", data.to_str().unwrap()];
    let mut local = Local::launch(kubeconfig.clone(), &data_flag, None);
    local.ok(&["apply", "-f", &write_manifest(dir.path(), "resume", &plain)]);
    local.ok(&["apply", "-f", &write_manifest(dir.path(), "resume-indexed", &indexed)]);

    // Mid-Job: two completions recorded per Job and two pods of each sleeping.
    let pid = local.child.id();
    poll("two completions and two sleeping pods per Job", || {
        let counts = ["resume", "resume-indexed"].map(|j| local.jsonpath(j, "{.status.succeeded}/{.status.ready}"));
        let sleeping = [["sleep", "621"], ["sleep", "622"]].map(|argv| children_running(pid, &argv).len());
        (counts == ["2/2", "2/2"] && sleeping == [2, 2]).then_some(())
    });
    let uids = ["resume", "resume-indexed"].map(|j| local.jsonpath(j, "{.metadata.uid}"));
    let running = ["resume", "resume-indexed"].map(|j| pods_in_phase(&local, j, "Running"));
    let early = pods_in_phase(&local, "resume", "Succeeded");
    assert_eq!((running[0].len(), running[1].len(), early.len()), (2, 2, 2));
    let events_before = job_event_uids(&local, "resume");
    assert!(!events_before.is_empty(), "the controller recorded events before the restart");

    assert_eq!(local.sigterm().code(), Some(0));
    for secs in ["621", "622"] {
        assert_eq!(anywhere_running(&["sleep", secs]), Vec::<u32>::new(), "a pod process survived SIGTERM");
    }
    std::fs::write(&release, "").unwrap();
    drop(local);

    let mut local = Local::launch(kubeconfig.clone(), &data_flag, None);
    local.wait("resume", "complete");
    local.wait("resume-indexed", "complete");

    // The same Jobs, not re-created.
    assert_eq!(["resume", "resume-indexed"].map(|j| local.jsonpath(j, "{.metadata.uid}")), uids);
    // Exact counts: each lost pod is one failure and one replacement, nothing more.
    assert_eq!(local.jsonpath("resume", "{.status.succeeded} {.status.failed}"), "6 2");
    assert_eq!(local.jsonpath("resume-indexed", "{.status.succeeded} {.status.failed}"), "4 2");
    assert_eq!(local.jsonpath("resume-indexed", "{.status.completedIndexes}"), "0-3");
    for (job, succeeded) in [("resume", 6), ("resume-indexed", 4)] {
        let all = local.ok(&["get", "pods", "-l", &format!("job-name={job}"), "-o", "name"]);
        assert_eq!(all.lines().count(), succeeded + 2, "{job}: no more pods than completions + losses:\n{all}");
        assert_eq!(pods_in_phase(&local, job, "Succeeded").len(), succeeded, "{job}");
    }
    let indexes = local.ok(&[
        "get",
        "pods",
        "-l",
        "job-name=resume-indexed",
        "-o",
        "jsonpath={range .items[?(@.status.phase==\"Succeeded\")]}{.metadata.annotations.batch\\.kubernetes\\.io/job-completion-index}{\"\\n\"}{end}",
    ]);
    let mut indexes: Vec<&str> = indexes.lines().collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2", "3"], "each completion index succeeded exactly once");

    // The pods that were running when the process stopped: failed as after a node reboot.
    for (job, names) in ["resume", "resume-indexed"].iter().zip(&running) {
        assert_eq!(&pods_in_phase(&local, job, "Failed"), names, "{job}");
        for name in names {
            let state = local.ok(&[
                "get",
                "pod",
                name,
                "-o",
                "jsonpath={.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}",
            ]);
            assert_eq!(state, "ContainerStatusUnknown 137", "{name}");
        }
    }
    // Logs and events from before the restart are still there.
    for name in &early {
        assert_eq!(local.ok(&["logs", name]).trim(), "early", "{name}");
    }
    let events_after = job_event_uids(&local, "resume");
    for uid in &events_before {
        assert!(events_after.contains(uid), "event {uid} lost over the restart: {events_after:?}");
    }
    describe_has_events(&local, "job", "resume", &["SuccessfulCreate", "Completed"]);

    // A Node deleted while running stays deleted; the next start registers it again, Ready.
    local.ok(&["delete", "node", "jobwright-node-0"]);
    assert_eq!(local.sigterm().code(), Some(0));
    drop(local);
    let local = Local::launch(kubeconfig, &data_flag, None);
    local.ok(&["wait", "--for=condition=Ready", "node/jobwright-node-0", "--timeout=60s"]);
    assert_eq!(local.jsonpath("resume", "{.metadata.uid}"), uids[0]);
}

impl Local {
    /// `kubectl ARGS` with `stdin` fed to it: (exit code, stdout, stderr).
    fn kubectl_stdin(&self, args: &[&str], stdin: &[u8]) -> (Option<i32>, Vec<u8>, String) {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("KUBECACHEDIR", self.cache.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl (required)");
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        (out.status.code(), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// `kubectl ARGS` on a pseudo-terminal of `rows` x `cols`, typing `input`: (exit code, what
    /// the terminal showed).
    fn kubectl_tty(&self, args: &[&str], rows: u16, cols: u16, input: &[u8]) -> (Option<i32>, String) {
        use std::io::{Read, Write};
        let (mut pty, pts) = pty_process::blocking::open().unwrap();
        pty.resize(pty_process::Size::new(rows, cols)).unwrap();
        let mut child = pty_process::blocking::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("KUBECACHEDIR", self.cache.path())
            .spawn(pts)
            .expect("run kubectl on a pty");
        pty.write_all(input).unwrap();
        let mut shown = Vec::new();
        let mut buf = [0u8; 4096];
        // The terminal reads EIO once kubectl, its only user, has exited.
        while let Ok(n) = pty.read(&mut buf) {
            if n == 0 {
                break;
            }
            shown.extend_from_slice(&buf[..n]);
        }
        let status = child.wait().unwrap();
        (status.code(), String::from_utf8_lossy(&shown).into_owned())
    }
}

/// A running `kubectl port-forward`, killed when dropped.
struct Forward(std::process::Child);

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Local {
    /// `kubectl port-forward pod/POD :PORT`: the process and the local port it chose.
    fn port_forward(&self, pod: &str, port: u16, websockets: &str) -> (Forward, u16) {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["port-forward", &format!("pod/{pod}"), &format!(":{port}"), "--address", "127.0.0.1"])
            .env("KUBECACHEDIR", self.cache.path())
            .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl port-forward");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().expect("a line from kubectl port-forward").unwrap();
        // kubectl goes on printing a line per connection: keep its stdout open and drained.
        std::thread::spawn(move || lines.for_each(drop));
        // "Forwarding from 127.0.0.1:41234 -> 8080"
        let local_port = line
            .split_whitespace()
            .nth(2)
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        (Forward(child), local_port)
    }
}

/// `GET path` over HTTP/1.0 on `127.0.0.1:port`: the body of a 200 answer.
fn http_get(port: u16, path: &str) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).ok()?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).ok()?;
    let split = all.windows(4).position(|w| w == b"\r\n\r\n")?;
    all.starts_with(b"HTTP/1.0 200").then(|| all[split + 4..].to_vec())
}

/// `kubectl exec` (plain, `-i`, `-it`), `cp` both ways, `attach`, `port-forward` and `top` against
/// pods of the process executor, and their errors, all through the real kubectl (which speaks WebSocket v5 to
/// the API server, proxied to the node simulator).
#[test]
fn exec_attach_cp_port_forward_and_top_reach_pod_processes() {
    let local = Local::start();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let manifest = write_manifest(
        dir.path(),
        "pods",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: shell}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3607"]
    workingDir: {work}
    env: [{{name: GREETING, value: "hello from the pod"}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: busy, labels: {{app: busy}}}}
spec:
  restartPolicy: Never
  containers:
  - name: spin
    image: busybox
    command: ["sh", "-c", "while :; do :; done"]
---
apiVersion: v1
kind: Pod
metadata: {{name: unscheduled}}
spec:
  schedulerName: nobody
  containers: [{{name: c, image: busybox, command: ["true"]}}]
"#,
            work = work.display()
        ),
    );
    local.ok(&["apply", "-f", &manifest]);
    for pod in ["shell", "busy"] {
        local.ok(&["wait", "--for=condition=Ready", &format!("pod/{pod}"), "--timeout=60s"]);
    }

    // The container's environment and working directory; stdout and stderr apart; the exit code.
    let (code, out, err) = local
        .kubectl_stdin(&["exec", "shell", "--", "sh", "-c", "echo \"$GREETING\"; pwd; echo oops >&2; exit 3"], b"");
    assert_eq!(code, Some(3), "{err}");
    let canonical = work.canonicalize().unwrap();
    assert_eq!(String::from_utf8_lossy(&out), format!("hello from the pod\n{}\n", canonical.display()));
    assert!(err.contains("oops\n") && err.contains("command terminated with exit code 3"), "{err}");

    // stdin, 300 KiB of it (many WebSocket frames), and its end (v5's close signal).
    let payload: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    let (code, out, err) = local.kubectl_stdin(&["exec", "-i", "shell", "--", "sh", "-c", "cat; echo end"], &payload);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(&out[..payload.len()], &payload[..]);
    assert_eq!(&out[payload.len()..], b"end\n");

    // kubectl cp runs tar through exec, both ways.
    let src = dir.path().join("in.txt");
    std::fs::write(&src, "copied in\n").unwrap();
    local.ok(&["cp", src.to_str().unwrap(), "shell:copied.txt", "-c", "main"]);
    assert_eq!(std::fs::read_to_string(work.join("copied.txt")).unwrap(), "copied in\n");
    std::fs::write(work.join("out.txt"), "copied out\n").unwrap();
    let back = dir.path().join("back.txt");
    local.ok(&["cp", &format!("shell:{}", work.join("out.txt").display()), back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "copied out\n");

    // -it: a terminal of the client's size, its resize applied, the exit code kept.
    let (code, shown) =
        local.kubectl_tty(&["exec", "-it", "shell", "--", "sh"], 33, 101, b"stty size; tty; echo $((6*7)); exit 5\n");
    assert_eq!(code, Some(5), "{shown}");
    assert!(shown.contains("33 101"), "the pod's terminal has the client's size: {shown}");
    assert!(shown.contains("/dev/pts/"), "{shown}");
    assert!(shown.contains("42"), "{shown}");

    // Errors, as kube-apiserver and the kubelet word them.
    let (code, _, err) = local.kubectl_stdin(&["exec", "shell", "-c", "nope", "--", "true"], b"");
    assert_eq!(code, Some(1));
    assert!(err.contains("container nope is not valid for pod shell"), "{err}");
    let (code, _, err) = local.kubectl_stdin(&["exec", "unscheduled", "--", "true"], b"");
    assert_eq!(code, Some(1));
    assert!(err.contains("pod unscheduled does not have a host assigned"), "{err}");
    let (_, _, err) = local.kubectl_stdin(&["exec", "shell", "--", "no-such-binary-jw"], b"");
    assert!(err.contains("exec: \"no-such-binary-jw\": executable file not found in $PATH"), "{err}");
    let (_, _, err) = local.kubectl_stdin(&["exec", "[POD_NAME]", "--", "true"], b"");
    assert!(err.contains("pods \"[POD_NAME]\" not found"), "the name as typed, not percent-encoded: {err}");
    let (_, _, err) = local.kubectl_stdin(&["get", "pod", "[POD_NAME]"], b"");
    assert!(err.contains("pods \"[POD_NAME]\" not found"), "the name as typed, not percent-encoded: {err}");

    // attach: what the container prints from now on, until it exits.
    let printer = write_manifest(
        dir.path(),
        "printer",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: printer}\nspec:\n  restartPolicy: Never\n  containers:\n  \
         - {name: p, image: busybox, command: [sh, -c, 'for i in $(seq 1 10); do echo tick $i; sleep 0.5; done']}\n",
    );
    local.ok(&["apply", "-f", &printer]);
    local.ok(&["wait", "--for=condition=Ready", "pod/printer", "--timeout=60s"]);
    let (code, out, err) = local.kubectl_stdin(&["attach", "printer"], b"");
    assert_eq!(code, Some(0), "{err}");
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("tick 10\n"), "attach follows the output to the end: {out}");

    // attach -i: a container with `stdin: true` reads what the client sends; with `stdinOnce`
    // its stdin closes when the client's does, so `cat` ends and so does the container.
    let reader = write_manifest(
        dir.path(),
        "reader",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: reader}\nspec:\n  restartPolicy: Never\n  containers:\n  \
         - {name: r, image: busybox, stdin: true, stdinOnce: true, command: [sh, -c, 'read line; echo \"got $line\"; cat; echo done']}\n",
    );
    local.ok(&["apply", "-f", &reader]);
    local.ok(&["wait", "--for=condition=Ready", "pod/reader", "--timeout=60s"]);
    let (code, out, err) = local.kubectl_stdin(&["attach", "-i", "reader"], b"hello\nworld\n");
    assert_eq!(code, Some(0), "{err}");
    let out = String::from_utf8_lossy(&out);
    assert_eq!(out, "got hello\nworld\ndone\n", "stdin reached the container and closed after it: {err}");
    local.ok(&["wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/reader", "--timeout=60s"]);

    // port-forward: over SPDY in a WebSocket (kubectl's default) and over plain SPDY.
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(served.join("blob"), &body).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let web = write_manifest(
        dir.path(),
        "web",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  containers:\n  - name: http\n    image: \
             python\n    workingDir: {}\n    command: [python3, -m, http.server, '{port}', --bind, 127.0.0.1]\n",
            served.display()
        ),
    );
    local.ok(&["apply", "-f", &web]);
    local.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);
    // Its server listens on the pod's loopback once ready (a forwarded connection to a port nobody
    // listens on ends kubectl's port-forward); asked from inside the pod, whose network is its own
    // when `local` runs as root.
    let probe = format!("import socket; socket.create_connection(('127.0.0.1', {port}))");
    poll("the pod's server listening", || {
        local.kubectl(&["exec", "web", "--", "python3", "-c", &probe]).0.then_some(())
    });
    for websockets in ["true", "false"] {
        let (forward, local_port) = local.port_forward("web", port, websockets);
        let got = http_get(local_port, "/blob").expect("the pod's server answers through port-forward");
        assert_eq!(got.len(), body.len(), "KUBECTL_PORT_FORWARD_WEBSOCKETS={websockets}");
        assert!(got == body, "the bytes arrive unchanged (KUBECTL_PORT_FORWARD_WEBSOCKETS={websockets})");
        drop(forward);
    }
    // Nothing listens on the pod's port: kubectl reports the kubelet's error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (mut forward, local_port) = local.port_forward("web", closed, "true");
    assert!(http_get(local_port, "/").is_none());
    let status = forward.0.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(forward.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains(&format!("error forwarding port {closed} to pod web")) && err.contains("connection refused"),
        "{err}"
    );

    // top: the spinning pod uses CPU, every pod some memory; the node sums its pods.
    let metrics =
        |path: &str| -> serde_json::Value { serde_json::from_str(&local.ok(&["get", "--raw", path])).unwrap() };
    let busy_cpu = poll("a CPU figure for the busy pod", || {
        let m = metrics("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/busy");
        let cpu = m["containers"][0]["usage"]["cpu"].as_str()?.strip_suffix('n')?.parse::<u64>().ok()?;
        (cpu > 0).then_some(cpu)
    });
    let shell = metrics("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/shell");
    let shell_cpu: u64 =
        shell["containers"][0]["usage"]["cpu"].as_str().unwrap().trim_end_matches('n').parse().unwrap();
    assert!(busy_cpu > shell_cpu, "a busy loop uses more CPU than sleep: {busy_cpu} vs {shell_cpu}");
    assert_eq!(shell["kind"], "PodMetrics");
    assert!(shell["containers"][0]["usage"]["memory"].as_str().unwrap().ends_with("Ki"), "{shell}");
    let top = local.ok(&["top", "pods", "-l", "app=busy"]);
    assert!(top.starts_with("NAME") && top.contains("busy") && !top.contains("shell"), "{top}");
    let top = local.ok(&["top", "nodes"]);
    assert!(top.contains("jobwright-node-0"), "{top}");
    let nodes = metrics("/apis/metrics.k8s.io/v1beta1/nodes");
    assert_eq!(nodes["kind"], "NodeMetricsList");
    assert!(nodes["items"][0]["usage"]["cpu"].as_str().unwrap().trim_end_matches('n').parse::<u64>().unwrap() > 0);
}

/// The one test that waits for wall-clock minutes: seed 003's CronJob (examples/cronjob.yaml, as
/// batch/v1) under `jobwright local` starts a Job at each of two consecutive minutes, and kubectl
/// sees it as on a cluster: `create job --from=cronjob/...`, `get cronjobs`, `describe cronjob`.
/// (Named to sort first: libtest starts tests in name order, so its 1-2 minutes of waiting overlap
/// the other tests instead of running alone at the end.)
#[test]
fn cronjob_seed_runs_every_minute_and_kubectl_shows_it_as_a_cluster_does() {
    let local = Local::start();
    local.apply("cronjob.yaml");
    let out = local.ok(&["get", "cronjobs"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..8], ["hello", "*/1", "*", "*", "*", "*", "<none>", "False"], "{out}");

    // Run it now, as seed 004 does.
    local.ok(&["create", "job", "hello-now", "--from=cronjob/hello"]);
    local.wait("hello-now", "complete");
    assert!(local.ok(&["logs", "job/hello-now"]).contains("Hello, World!"));
    assert_eq!(
        local.ok(&[
            "get",
            "job",
            "hello-now",
            "-o",
            "jsonpath={.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate}"
        ]),
        "manual"
    );

    // Two scheduled runs, one minute apart, named by their scheduled minute.
    let scheduled = |local: &Local| -> Vec<u64> {
        let names = local.ok(&["get", "jobs", "-o", "jsonpath={.items[*].metadata.name}"]);
        let mut minutes: Vec<u64> =
            names.split_whitespace().filter_map(|n| n.strip_prefix("hello-")?.parse().ok()).collect();
        minutes.sort();
        minutes
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    let minutes = loop {
        let m = scheduled(&local);
        if m.len() >= 2 {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "two scheduled Jobs within 150 s: {m:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(minutes[1], minutes[0] + 1, "one Job per minute: {minutes:?}");
    let second = format!("hello-{}", minutes[1]);
    local.wait(&second, "complete");
    let logs = local.ok(&["logs", &format!("job/{second}")]);
    assert!(logs.contains("Hello, World!"), "{logs}");
    let stamp = local.ok(&[
        "get",
        "job",
        &second,
        "-o",
        "jsonpath={.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
    ]);
    let at = chrono::DateTime::parse_from_rfc3339(&stamp).unwrap_or_else(|e| panic!("{stamp}: {e}"));
    assert_eq!(at.timestamp() as u64, minutes[1] * 60);
    let last = local.ok(&["get", "cronjob", "hello", "-o", "jsonpath={.status.lastScheduleTime}"]);
    assert!(
        chrono::DateTime::parse_from_rfc3339(&last).unwrap().timestamp() as u64 >= minutes[1] * 60,
        "lastScheduleTime {last}"
    );

    // `kubectl describe cronjob` reads like a cluster's: the schedule, the last schedule time and
    // the controller's events (the manual Job is one it did not create: UnexpectedJob, as upstream).
    describe_has_events(&local, "cronjob", "hello", &["SuccessfulCreate", "SawCompletedJob", "UnexpectedJob"]);
    let d = local.ok(&["describe", "cronjob", "hello"]);
    for line in
        ["Schedule:", "*/1 * * * *", "Concurrency Policy:", "Allow", "Last Schedule Time:", "cronjob-controller"]
    {
        assert!(d.contains(line), "{line:?} missing from:\n{d}");
    }
    assert!(d.contains(&format!("Created job {second}")), "{d}");
    assert!(d.contains(&format!("Saw completed job: {second}, condition: Complete")), "{d}");
    let out = local.ok(&["get", "cronjobs", "--no-headers"]);
    let row: Vec<&str> = out.split_whitespace().collect();
    assert_ne!(row[9], "<none>", "LAST SCHEDULE filled in: {out}");
}
