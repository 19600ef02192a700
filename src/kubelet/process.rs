//! The process executor: runs a container's command line as a local process.
//!
//! The image is ignored; [`super::env`] computes argv and environment. Each process gets its own
//! process group ([`std::os::unix::process::CommandExt::process_group`]), so stopping a container
//! signals everything it forked, as a container runtime stopping a cgroup would. Stopping follows
//! the kubelet: `SIGTERM` to the group, then `SIGKILL` when the grace period runs out. stdout and
//! stderr are copied line by line into the run's [`LogFile`].
//!
//! Exit codes follow containerd: the process's code, or 128 + signal number when a signal killed
//! it (137 for `SIGKILL`, 143 for `SIGTERM`). A program that cannot be executed is reported like
//! containerd's `StartError` (exit code 128, the OCI error in the message).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::logs::{LogFile, Stream};

/// What to run for one container run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Program and arguments (non-empty).
    pub argv: Vec<String>,
    /// The full environment (the host's is not inherited, except `PATH` when not given).
    pub env: Vec<(String, String)>,
    /// The working directory; created if missing, like runc does.
    pub working_dir: PathBuf,
    /// The container's `stdin: true`: the process reads a pipe that `kubectl attach -i` writes
    /// (else `/dev/null`).
    pub stdin: bool,
    /// The pod's sandbox: the `jobwright pod-exec ... --` prefix that enters its namespaces
    /// ([`super::podnet::Sandbox::exec_prefix`]); `None`: the host's.
    pub sandbox: Option<Vec<String>>,
}

impl ProcessSpec {
    /// The command for `argv` (the container's, or an exec's) in this container's environment,
    /// working directory and sandbox. `argv` must not be empty.
    pub fn command(&self, argv: &[String]) -> Command {
        let full: Vec<&String> = self.sandbox.iter().flatten().chain(argv).collect();
        let mut cmd = Command::new(full[0]);
        cmd.args(&full[1..]).env_clear().current_dir(&self.working_dir);
        if !self.env.iter().any(|(k, _)| k == "PATH") {
            cmd.env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()));
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Whether `program` can be found and executed with this environment's `PATH` (a program
    /// run through the sandbox helper would otherwise fail only inside it).
    pub fn find_program(&self, program: &str) -> Result<(), std::io::ErrorKind> {
        use std::os::unix::fs::PermissionsExt;
        let check = |p: &std::path::Path| match std::fs::metadata(p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
            Ok(_) => Err(std::io::ErrorKind::PermissionDenied),
            Err(_) => Err(std::io::ErrorKind::NotFound),
        };
        if program.contains('/') {
            return check(&self.working_dir.join(program));
        }
        let path = self
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()));
        let mut denied = false;
        for dir in path.split(':').filter(|d| !d.is_empty()) {
            match check(&std::path::Path::new(dir).join(program)) {
                Ok(()) => return Ok(()),
                Err(std::io::ErrorKind::PermissionDenied) => denied = true,
                Err(_) => {}
            }
        }
        Err(if denied { std::io::ErrorKind::PermissionDenied } else { std::io::ErrorKind::NotFound })
    }
}

/// How a container run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit code as the container runtime reports it.
    pub exit_code: i32,
    /// `Completed`, `Error`, `StartError` or `OOMKilled`.
    pub reason: String,
    /// Details, e.g. the start error.
    pub message: Option<String>,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

impl ExitInfo {
    /// The exit of a run that ended by itself with `code` (reason `Completed` or `Error`).
    pub fn from_code(code: i32, started_at: DateTime<Utc>, finished_at: DateTime<Utc>) -> Self {
        let reason = if code == 0 { "Completed" } else { "Error" };
        Self { exit_code: code, reason: reason.into(), message: None, started_at, finished_at }
    }
}

/// A request to stop a run: SIGTERM now, SIGKILL after `grace`.
pub type StopRequest = Option<Duration>;

/// The process executor. Stateless: everything per run lives in [`RunningProcess`].
#[derive(Debug, Clone, Default)]
pub struct ProcessExecutor;

/// A started process.
#[derive(Debug)]
pub struct RunningProcess {
    child: Child,
    pgid: Option<Pid>,
    started_at: DateTime<Utc>,
    copiers: Vec<tokio::task::JoinHandle<()>>,
    log: Arc<LogFile>,
    stdin: Option<tokio::process::ChildStdin>,
}

impl ProcessExecutor {
    /// Spawn the process. A program that cannot be executed (not found, not executable, bad working
    /// directory) gives the `StartError` exit right away, and the log is closed.
    pub fn start(&self, spec: &ProcessSpec, log: Arc<LogFile>) -> Result<RunningProcess, ExitInfo> {
        let now = Utc::now();
        let start_error = |msg: String| {
            log.finish();
            ExitInfo {
                exit_code: 128,
                reason: "StartError".into(),
                message: Some(format!(
                    "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc \
                     create failed: unable to start container process: {msg}: unknown"
                )),
                started_at: now,
                finished_at: now,
            }
        };
        let Some(program) = spec.argv.first() else {
            return Err(start_error("no command specified".into()));
        };
        if let Err(e) = std::fs::create_dir_all(&spec.working_dir) {
            return Err(start_error(format!(
                "chdir to cwd (\"{}\") set in config.json failed: {e}",
                spec.working_dir.display()
            )));
        }
        let spawn_error = |kind: std::io::ErrorKind, e: String| match kind {
            std::io::ErrorKind::NotFound => format!("exec: \"{program}\": executable file not found in $PATH"),
            std::io::ErrorKind::PermissionDenied => format!("exec: \"{program}\": permission denied"),
            _ => format!("exec: \"{program}\": {e}"),
        };
        if spec.sandbox.is_some()
            && let Err(kind) = spec.find_program(program)
        {
            return Err(start_error(spawn_error(kind, String::new())));
        }
        let mut cmd = spec.command(&spec.argv);
        cmd.stdin(if spec.stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Err(start_error(spawn_error(e.kind(), e.to_string()))),
        };
        let pgid = child.id().map(|id| Pid::from_raw(id as i32));
        let mut copiers = Vec::new();
        if let Some(out) = child.stdout.take() {
            copiers.push(tokio::spawn(copy_lines(out, Stream::Stdout, log.clone())));
        }
        if let Some(err) = child.stderr.take() {
            copiers.push(tokio::spawn(copy_lines(err, Stream::Stderr, log.clone())));
        }
        let stdin = child.stdin.take();
        Ok(RunningProcess { child, pgid, started_at: now, copiers, log, stdin })
    }
}

/// Copy a pipe into the log, one line (or a trailing fragment, or a chunk of a very long line) at a
/// time.
async fn copy_lines(mut pipe: impl AsyncRead + Unpin, stream: Stream, log: Arc<LogFile>) {
    const MAX_LINE: usize = 16 * 1024;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = Utc::now();
        pending.extend_from_slice(&buf[..n]);
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            log.write_chunk(stream, &line, now);
        }
        if pending.len() >= MAX_LINE {
            log.write_chunk(stream, &std::mem::take(&mut pending), now);
        }
    }
    if !pending.is_empty() {
        log.write_chunk(stream, &pending, Utc::now());
    }
}

impl RunningProcess {
    /// The process group the container runs in.
    pub fn pgid(&self) -> Option<i32> {
        self.pgid.map(|p| p.as_raw())
    }

    /// When the process started.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    /// The write end of the process's stdin pipe (when its spec asked for one).
    pub fn take_stdin(&mut self) -> Option<tokio::process::ChildStdin> {
        self.stdin.take()
    }

    /// Wait for the process to exit. When `stop` turns to `Some(grace)`, send SIGTERM to its process
    /// group and SIGKILL after `grace` (a later, shorter grace shortens the wait). Always returns an
    /// exit, after the output is fully copied to the log.
    pub async fn wait(mut self, stop: &mut watch::Receiver<StopRequest>) -> ExitInfo {
        let mut kill_at: Option<tokio::time::Instant> = None;
        let mut stop_open = true;
        let status = loop {
            let current = *stop.borrow_and_update();
            if let Some(grace) = current {
                let deadline = tokio::time::Instant::now() + grace;
                if kill_at.is_none() {
                    self.signal(Signal::SIGTERM);
                }
                if kill_at.is_none_or(|k| deadline < k) {
                    kill_at = Some(deadline);
                }
            }
            let sleep_until = kill_at.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86400 * 365));
            tokio::select! {
                status = self.child.wait() => break status,
                changed = stop.changed(), if stop_open => {
                    if changed.is_err() {
                        stop_open = false;
                    }
                }
                _ = tokio::time::sleep_until(sleep_until), if kill_at.is_some() => {
                    self.signal(Signal::SIGKILL);
                    break self.child.wait().await;
                }
            }
        };
        // Whatever else is in the group (e.g. a backgrounded child) dies with the container.
        self.signal(Signal::SIGKILL);
        // A process that left the group (setsid) may keep the pipes open: do not wait for it.
        for mut c in self.copiers.drain(..) {
            if tokio::time::timeout(Duration::from_secs(2), &mut c).await.is_err() {
                c.abort();
            }
        }
        self.log.finish();
        let finished_at = Utc::now();
        let code = match status {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(128)
            }
            Err(_) => 128,
        };
        ExitInfo::from_code(code, self.started_at, finished_at)
    }

    fn signal(&self, sig: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH (group already gone) is fine.
            let _ = killpg(pgid, sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &std::path::Path, argv: &[&str]) -> ProcessSpec {
        ProcessSpec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("GREETING".into(), "hi there".into())],
            working_dir: dir.join("work"),
            stdin: false,
            sandbox: None,
        }
    }

    fn read_log(log: &LogFile) -> String {
        let data = std::fs::read(log.path()).unwrap();
        let lines: Vec<_> = data.split(|b| *b == b'\n').filter_map(super::super::logs::parse_line).collect();
        String::from_utf8(super::super::logs::render(&lines, &Default::default(), Utc::now())).unwrap()
    }

    async fn run(dir: &std::path::Path, argv: &[&str]) -> (ExitInfo, String) {
        let log = LogFile::create(dir.join("log")).unwrap();
        let (_tx, mut rx) = watch::channel(None);
        let exit = match ProcessExecutor.start(&spec(dir, argv), log.clone()) {
            Ok(p) => p.wait(&mut rx).await,
            Err(e) => e,
        };
        assert!(log.is_done());
        (exit, read_log(&log))
    }

    #[tokio::test]
    async fn echo_hello_world() {
        let dir = tempfile::tempdir().unwrap();
        let (exit, log) = run(dir.path(), &["echo", "Hello, World!"]).await;
        assert_eq!(exit.exit_code, 0);
        assert_eq!(exit.reason, "Completed");
        assert_eq!(log, "Hello, World!\n");
        assert!(exit.finished_at >= exit.started_at);
    }

    #[tokio::test]
    async fn exit_code_and_stderr_are_captured() {
        let dir = tempfile::tempdir().unwrap();
        let (exit, log) = run(dir.path(), &["sh", "-c", "echo out; echo err >&2; exit 3"]).await;
        assert_eq!(exit.exit_code, 3);
        assert_eq!(exit.reason, "Error");
        assert!(log.contains("out\n") && log.contains("err\n"), "{log:?}");
        let (_, log) = run(dir.path(), &["sh", "-c", "printf 'a\\nno newline'"]).await;
        assert_eq!(log, "a\nno newline", "a trailing fragment is kept without a newline");
    }

    #[tokio::test]
    async fn env_and_working_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (exit, log) = run(dir.path(), &["sh", "-c", "echo \"$GREETING\"; pwd; touch made-here"]).await;
        assert_eq!(exit.exit_code, 0);
        let work = dir.path().join("work");
        assert_eq!(log, format!("hi there\n{}\n", work.canonicalize().unwrap().display()));
        assert!(work.join("made-here").exists());
    }

    #[tokio::test]
    async fn host_environment_is_not_inherited() {
        let dir = tempfile::tempdir().unwrap();
        let (_, log) = run(dir.path(), &["sh", "-c", "echo \"[${CARGO_PKG_NAME:-}]\""]).await;
        assert_eq!(log, "[]\n");
    }

    #[tokio::test]
    async fn missing_binary_is_a_start_error() {
        let dir = tempfile::tempdir().unwrap();
        let (exit, log) = run(dir.path(), &["definitely-not-a-binary-jw"]).await;
        assert_eq!(exit.exit_code, 128);
        assert_eq!(exit.reason, "StartError");
        let msg = exit.message.unwrap();
        assert!(msg.contains("exec: \"definitely-not-a-binary-jw\": executable file not found in $PATH"), "{msg}");
        assert_eq!(log, "");
    }

    #[tokio::test]
    async fn sigterm_is_honoured_within_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::create(dir.path().join("log")).unwrap();
        let p = ProcessExecutor.start(&spec(dir.path(), &["sleep", "600"]), log.clone()).unwrap();
        let (tx, mut rx) = watch::channel(None);
        tx.send(Some(Duration::from_secs(60))).unwrap();
        let exit = p.wait(&mut rx).await;
        assert_eq!(exit.exit_code, 143);
        assert_eq!(exit.reason, "Error");
    }

    #[tokio::test]
    async fn a_process_ignoring_sigterm_is_killed_after_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::create(dir.path().join("log")).unwrap();
        // The shell traps TERM and keeps waiting; its sleep child is in the same group.
        let script = "trap 'echo got TERM' TERM; echo ready; while true; do sleep 1; done";
        let p = ProcessExecutor.start(&spec(dir.path(), &["sh", "-c", script]), log.clone()).unwrap();
        let mut progress = log.subscribe();
        progress.wait_for(|p| p.writes >= 1).await.unwrap();
        let (tx, mut rx) = watch::channel(None);
        tx.send(Some(Duration::from_millis(300))).unwrap();
        let exit = p.wait(&mut rx).await;
        assert_eq!(exit.exit_code, 137);
        let text = read_log(&log);
        assert!(text.starts_with("ready\n"), "{text:?}");
    }

    #[tokio::test]
    async fn the_whole_process_group_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::create(dir.path().join("log")).unwrap();
        let pidfile = dir.path().join("child.pid");
        let script = format!("sleep 600 & echo $! > {}; echo started; wait", pidfile.display());
        let p = ProcessExecutor.start(&spec(dir.path(), &["sh", "-c", &script]), log.clone()).unwrap();
        log.subscribe().wait_for(|p| p.writes >= 1).await.unwrap();
        let child_pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let (tx, mut rx) = watch::channel(None);
        tx.send(Some(Duration::from_secs(5))).unwrap();
        p.wait(&mut rx).await;
        // The backgrounded sleep got SIGKILL: it disappears (or turns zombie until init reaps it).
        let alive = || {
            std::fs::read_to_string(format!("/proc/{child_pid}/stat"))
                .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
                .unwrap_or(false)
        };
        let gone = tokio::time::timeout(Duration::from_secs(5), async {
            while alive() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(gone.is_ok(), "background child {child_pid} survived");
    }

    #[tokio::test]
    async fn a_process_escaping_the_group_does_not_hold_up_the_exit() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("escaped.pid");
        let script = format!("setsid sleep 60 & echo $! > {}; echo started", pidfile.display());
        let (exit, log) = run(dir.path(), &["sh", "-c", &script]).await;
        let escaped: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let _ = nix::sys::signal::kill(Pid::from_raw(escaped), Signal::SIGKILL);
        assert_eq!(exit.exit_code, 0);
        assert_eq!(log, "started\n");
    }
}
