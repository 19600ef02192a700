//! An in-process API server for tests: `TestApiServer::start().await`, then `.client()`.
//!
//! Each server is isolated (its own store, its own port on 127.0.0.1), is ready as soon as
//! `start` returns, and shuts down when dropped.

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
