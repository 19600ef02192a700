//! `jobwright local` as a child process driven by the real `kubectl` (tests/local_e2e.rs,
//! tests/suite/local_network.rs). Readiness is the printed `export KUBECONFIG=` line, never a sleep.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `jobwright local` (fast backoffs, a free loopback port), stopped with SIGTERM when
/// dropped.
pub struct Local {
    /// The process.
    pub child: Child,
    /// The kubeconfig it wrote.
    pub kubeconfig: PathBuf,
    /// kubectl's `KUBECACHEDIR`, fresh per instance.
    pub cache: tempfile::TempDir,
    /// Scratch space for manifests, and its log (`jobwright.log`).
    pub scratch: tempfile::TempDir,
    /// The directory holding the kubeconfig, when this instance owns it.
    _dir: Option<tempfile::TempDir>,
    /// Lines printed after the first one.
    lines: mpsc::Receiver<String>,
}

impl Local {
    /// A fresh instance in its own temporary directory.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A fresh instance in its own temporary directory, with `extra` flags.
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::launch(dir.path().join("jobwright.kubeconfig"), extra, Some(dir))
    }

    /// Start `jobwright local` writing `kubeconfig`; ready once it prints its line.
    pub fn launch(kubeconfig: PathBuf, extra: &[&str], dir: Option<tempfile::TempDir>) -> Self {
        let scratch = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(scratch.path().join("jobwright.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_jobwright"))
            .args(["local", "--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(["--pod-backoff-base", "200ms", "--restart-backoff-base", "200ms"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn jobwright local");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let line = lines.recv_timeout(Duration::from_secs(60)).expect("jobwright local printed its line");
        assert!(line.starts_with("jobwright local: API server on http://127.0.0.1:"), "{line}");
        assert!(line.ends_with(&format!("export KUBECONFIG={}", kubeconfig.display())), "{line}");
        assert!(kubeconfig.exists());
        Local { child, kubeconfig, cache: tempfile::tempdir().unwrap(), scratch, _dir: dir, lines }
    }

    /// The next line printed on stdout (within 60 s).
    pub fn next_line(&self) -> String {
        self.lines.recv_timeout(Duration::from_secs(60)).expect("jobwright local printed another line")
    }

    /// Run kubectl against this instance: (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
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

    /// kubectl's stdout, asserting success.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args);
        assert!(ok, "kubectl {args:?} failed: {out}{err}");
        out
    }

    /// Send `sig` and wait (at most 30 s) for the process to exit.
    pub fn signal(&mut self, sig: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
        for _ in 0..600 {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("jobwright local did not exit within 30 s of {sig}; its log:\n{}", self.log());
    }

    /// What it logged (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path().join("jobwright.log")).unwrap_or_default()
    }

    /// SIGTERM and wait for the exit.
    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM)
    }
}

impl Drop for Local {
    /// SIGTERM first, so `local` stops its pod processes and removes its pod network (a SIGKILLed
    /// `local` would leave them, e.g. a busy-loop pod spinning a core for the rest of the suite);
    /// SIGKILL after 30 s.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            for _ in 0..600 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
