//! An in-process API server for tests: `TestApiServer::start().await`, then `.client()`.
//!
//! Each server is isolated (its own store, its own port on 127.0.0.1), is ready as soon as
//! `start` returns, and shuts down when dropped.
//!
//! [`Kubectl`] drives the real `kubectl` binary against one server, each instance in a fresh
//! directory of its own (kubeconfig + `KUBECACHEDIR`), so tests never share discovery caches or
//! read the user's `~/.kube`. Get one with [`TestApiServer::kubectl`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::http::{self, Running, Server, ServerConfig};
use super::kubeconfig;
use super::store::Store;

/// A running in-process API server.
pub struct TestApiServer {
    running: Running,
    kubeconfig: PathBuf,
}

impl TestApiServer {
    /// Start a server with test-friendly settings (bookmarks every second).
    pub async fn start() -> Self {
        Self::start_with(ServerConfig { bookmark_interval: Duration::from_secs(1), ..ServerConfig::default() }).await
    }

    /// Start a server with the given settings.
    pub async fn start_with(config: ServerConfig) -> Self {
        let running = http::start(([127, 0, 0, 1], 0).into(), config).await.expect("bind 127.0.0.1:0");
        let kubeconfig = std::env::temp_dir().join(format!("jobwright-kubeconfig-{}.yaml", uuid::Uuid::new_v4()));
        kubeconfig::write(&kubeconfig, &running.url()).expect("write kubeconfig");
        Self { running, kubeconfig }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.running.url()
    }

    /// A `kube::Client` for this server, default namespace `default`.
    pub fn client(&self) -> kube::Client {
        let mut config = kube::Config::new(self.url().parse().expect("valid url"));
        config.default_namespace = "default".into();
        config.read_timeout = None;
        kube::Client::try_from(config).expect("kube client")
    }

    /// A kubeconfig file for this server (removed when the server is dropped).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Write a kubeconfig for this server to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        kubeconfig::write(path, &self.url())
    }

    /// A [`Kubectl`] for this server, namespace `default`.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(&self.url())
    }

    /// The server state (white-box access).
    pub fn server(&self) -> &Arc<Server> {
        &self.running.server
    }

    /// The object store (white-box access).
    pub fn store(&self) -> &Arc<Store> {
        self.running.server.store()
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// The real `kubectl` bound to one server, with its own kubeconfig and `KUBECACHEDIR` in a fresh
/// directory (removed on drop). `KUBECONFIG` from the environment is ignored.
pub struct Kubectl {
    dir: PathBuf,
}

/// What one `kubectl` run produced.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Kubectl {
    /// A kubectl for `server` (an `http://` URL), namespace `default`.
    pub fn new(server: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("jobwright-kubectl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("cache")).expect("create kubectl directory");
        kubeconfig::write(&dir.join("kubeconfig"), server).expect("write kubeconfig");
        Self { dir }
    }

    /// A kubectl using a copy of an existing kubeconfig file.
    pub fn from_kubeconfig(kubeconfig: &Path) -> std::io::Result<Self> {
        let k = Self::new("http://127.0.0.1:0");
        std::fs::copy(kubeconfig, k.kubeconfig_path())?;
        Ok(k)
    }

    /// The kubeconfig this kubectl uses.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The directory (kubeconfig, cache) this kubectl owns; a place for manifest files too.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The command for `kubectl args` (kubeconfig and cache set, stdin null), for callers that
    /// spawn it themselves, e.g. to read `kubectl get -w` as it streams.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig_path())
            .args(args)
            .env("KUBECACHEDIR", self.dir.join("cache"))
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::null());
        cmd
    }

    fn output(out: std::process::Output) -> KubectlOutput {
        KubectlOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run kubectl with `args`. Panics only when the binary cannot be started.
    pub async fn run(&self, args: &[&str]) -> KubectlOutput {
        Self::output(self.command(args).output().await.expect("kubectl on PATH"))
    }

    /// Run kubectl with `stdin` piped in.
    pub async fn run_stdin(&self, args: &[&str], stdin: &str) -> KubectlOutput {
        use tokio::io::AsyncWriteExt;
        let mut cmd = self.command(args);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl on PATH");
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).await.expect("write kubectl stdin");
        }
        Self::output(child.wait_with_output().await.expect("kubectl output"))
    }

    /// Run kubectl and require success; its stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.success, "kubectl {args:?} failed:\n{}\n{}", out.stdout, out.stderr);
        out.stdout
    }

    /// Run kubectl and require failure; its stderr.
    pub async fn fail(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(!out.success, "kubectl {args:?} should have failed:\n{}", out.stdout);
        out.stderr
    }

    /// Split table output into rows of whitespace-separated words.
    pub fn rows(out: &str) -> Vec<Vec<String>> {
        out.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
