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

struct Local {
    child: Child,
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
    _dir: Option<tempfile::TempDir>,
}

impl Local {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// A fresh instance in its own temporary directory, with `extra` flags.
    fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::launch(dir.path().join("jobwright.kubeconfig"), extra, Some(dir))
    }

    /// Start `jobwright local` writing `kubeconfig`; ready once it prints its line.
    fn launch(kubeconfig: PathBuf, extra: &[&str], dir: Option<tempfile::TempDir>) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jobwright"))
            .args(["local", "--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(["--pod-backoff-base", "200ms", "--restart-backoff-base", "200ms"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn jobwright local");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("jobwright local printed its line");
        assert!(line.starts_with("jobwright local: API server on http://127.0.0.1:"), "{line}");
        assert!(line.ends_with(&format!("export KUBECONFIG={}", kubeconfig.display())), "{line}");
        assert!(kubeconfig.exists());
        Local { child, kubeconfig, cache: tempfile::tempdir().unwrap(), _dir: dir }
    }

    fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("KUBECACHEDIR", self.cache.path())
            .output()
            .expect("run kubectl (required)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args);
        assert!(ok, "kubectl {args:?} failed: {out}{err}");
        out
    }

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

    fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        for _ in 0..600 {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("jobwright local did not exit within 30 s of SIGTERM");
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    assert_eq!(anywhere_running(&["sleep", "613"]), Vec::<u32>::new(), "a pod process survived SIGTERM");
}

/// `jobwright local --run FILE`, the README's first command: one process applies the example,
/// waits for it, prints the outcome and the logs, and exits with the result.
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
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
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

/// The one test that waits for wall-clock minutes: seed 003's CronJob (examples/cronjob.yaml, as
/// batch/v1) under `jobwright local` starts a Job at each of two consecutive minutes, and kubectl
/// sees it as on a cluster: `create job --from=cronjob/...`, `get cronjobs`, `describe cronjob`.
#[test]
fn seed_cronjob_runs_every_minute_and_kubectl_shows_it_as_a_cluster_does() {
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
