//! An in-process API server for tests: `TestApiServer::start().await`, then `.client()`.
//!
//! Each server is isolated (its own store, its own port on 127.0.0.1), is ready as soon as
//! `start` returns, and shuts down when dropped.
//!
//! [`Kubectl`] drives the real `kubectl` binary against one server, each instance in a fresh
//! directory of its own (kubeconfig + `KUBECACHEDIR`), so tests never share discovery caches or
//! read the user's `~/.kube`. Get one with [`TestApiServer::kubectl`].
//!
//! [`TestApiServer::start_rbac`] starts a server that authenticates and enforces RBAC (see
//! [`super::auth`]): [`TestApiServer::client`] and [`TestApiServer::kubectl`] then act as an admin
//! (`system:masters`), [`TestApiServer::service_account_client`] and
//! [`TestApiServer::service_account_kubectl`] as a ServiceAccount with exactly the permissions
//! bound to it, and [`TestApiServer::authorization_decisions`] tells what was asked and decided.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::auth::{AuthorizationMode, Decision};
use super::http::{self, Running, Server, ServerConfig};
use super::kubeconfig;
use super::rbac::UserInfo;
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

    /// Start a server that authenticates every request and enforces RBAC (test-friendly
    /// bookmarks too). [`Self::client`] and [`Self::kubectl`] use the admin token.
    pub async fn start_rbac() -> Self {
        Self::start_with(ServerConfig {
            bookmark_interval: Duration::from_secs(1),
            authorization_mode: AuthorizationMode::Rbac,
            ..ServerConfig::default()
        })
        .await
    }

    /// Start a server with the given settings.
    pub async fn start_with(config: ServerConfig) -> Self {
        let running = http::start(([127, 0, 0, 1], 0).into(), config).await.expect("bind 127.0.0.1:0");
        let kubeconfig = std::env::temp_dir().join(format!("jobwright-kubeconfig-{}.yaml", uuid::Uuid::new_v4()));
        kubeconfig::write_with_token(&kubeconfig, &running.kubeconfig_url(), running.server.auth.admin_token())
            .expect("write kubeconfig");
        Self { running, kubeconfig }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.running.url()
    }

    /// The URL kubeconfigs name: `https://127.0.0.1:PORT` with RBAC (kubectl sends tokens only
    /// over TLS; the same port speaks both), else [`Self::url`].
    pub fn kubeconfig_url(&self) -> String {
        self.running.kubeconfig_url()
    }

    /// A `kube::Client` for this server, default namespace `default` (the admin, with RBAC).
    pub fn client(&self) -> kube::Client {
        self.client_with_token(self.admin_token())
    }

    /// A `kube::Client` that authenticates with `token` (none: anonymous), default namespace
    /// `default`.
    pub fn client_with_token(&self, token: Option<&str>) -> kube::Client {
        kube::Client::try_from(self.config_with_token(token)).expect("kube client")
    }

    /// The `kube::Config` behind [`Self::client_with_token`], e.g. for `jobwright::ops::Ops`.
    pub fn config_with_token(&self, token: Option<&str>) -> kube::Config {
        let mut config = kube::Config::new(self.url().parse().expect("valid url"));
        config.default_namespace = "default".into();
        config.read_timeout = None;
        config.auth_info.token = token.map(|t| t.to_string().into());
        config
    }

    /// The admin token (user `kubernetes-admin`, group `system:masters`), with RBAC.
    pub fn admin_token(&self) -> Option<&str> {
        self.running.server.auth.admin_token()
    }

    /// Mint a token for `user` (groups as given; `system:authenticated` is added on use).
    pub fn token_for(&self, user: UserInfo) -> String {
        let token = format!("test-{}", uuid::Uuid::new_v4().simple());
        self.running.server.auth.add_token(&token, user);
        token
    }

    /// Mint a token for the ServiceAccount `namespace/name`: user
    /// `system:serviceaccount:NAMESPACE:NAME`, groups `system:serviceaccounts`,
    /// `system:serviceaccounts:NAMESPACE`, `system:authenticated`.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        self.token_for(UserInfo::service_account(namespace, name))
    }

    /// A `kube::Client` authenticated as the ServiceAccount `namespace/name`.
    pub fn service_account_client(&self, namespace: &str, name: &str) -> kube::Client {
        self.client_with_token(Some(&self.service_account_token(namespace, name)))
    }

    /// A [`Kubectl`] authenticated as the ServiceAccount `namespace/name`.
    pub fn service_account_kubectl(&self, namespace: &str, name: &str) -> Kubectl {
        Kubectl::with_token(&self.running.kubeconfig_url(), Some(&self.service_account_token(namespace, name)))
    }

    /// Every authorization decision so far, oldest first (RBAC mode; see [`super::auth`]).
    pub fn authorization_decisions(&self) -> Vec<Decision> {
        self.running.server.auth.decisions()
    }

    /// A kubeconfig file for this server (removed when the server is dropped).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Write a kubeconfig for this server to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        kubeconfig::write_with_token(path, &self.running.kubeconfig_url(), self.admin_token())
    }

    /// A [`Kubectl`] for this server, namespace `default` (the admin, with RBAC).
    pub fn kubectl(&self) -> Kubectl {
        Kubectl::with_token(&self.running.kubeconfig_url(), self.admin_token())
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
        Self::with_token(server, None)
    }

    /// A kubectl for `server` that authenticates with a bearer `token`.
    pub fn with_token(server: &str, token: Option<&str>) -> Self {
        let dir = std::env::temp_dir().join(format!("jobwright-kubectl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("cache")).expect("create kubectl directory");
        kubeconfig::write_with_token(&dir.join("kubeconfig"), server, token).expect("write kubeconfig");
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
