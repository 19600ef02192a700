//! End-to-end tests of `jobwright local`: the real binary, driven by the real `kubectl`.
//!
//! One `jobwright local` instance runs all of `examples/` at once (fast backoffs so the failing
//! examples end quickly); a second instance checks that SIGTERM stops every pod process and exits 0.
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
    _dir: tempfile::TempDir,
}

impl Local {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("jobwright.kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_jobwright"))
            .args(["local", "--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(["--pod-backoff-base", "200ms", "--restart-backoff-base", "200ms"])
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

fn describe_has_events(local: &Local, job: &str, reasons: &[&str]) {
    let d = local.ok(&["describe", "job", job]);
    let events = d.split("Events:").nth(1).unwrap_or_else(|| panic!("no Events section:\n{d}"));
    for r in reasons {
        assert!(events.contains(r), "event {r} missing for {job}:\n{events}");
    }
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
    ] {
        local.apply(ex);
    }

    local.wait("hello-world-job", "complete");
    assert_eq!(local.ok(&["logs", "job/hello-world-job"]).trim(), "Hello, World!");
    describe_has_events(&local, "hello-world-job", &["SuccessfulCreate", "Completed"]);

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
    describe_has_events(&local, "deadline", &["SuccessfulCreate", "DeadlineExceeded"]);

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
    local.ok(&["wait", "--for=jsonpath={.status.phase}=Running", "pod", "-l", "job-name=sleeper", "--timeout=60s"]);
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
