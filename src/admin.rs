//! The admin HTTP server: `/metrics`, `/healthz`, `/readyz`.
//!
//! - `/metrics` renders [`Metrics`] in OpenMetrics text.
//! - `/healthz` answers `200 ok` while the process serves HTTP at all (liveness).
//! - `/readyz` answers `200 ok` when the shared [`Readiness`] says this replica leads and its
//!   informer caches have synced, or when it is a standby (it reached the Lease and runs no
//!   informers until it leads); otherwise `503` with a one-line reason. A standby is ready on
//!   purpose: it is healthy and able to take over, a Deployment's rollout counts it available and
//!   so does a PodDisruptionBudget.
//!
//! [`Readiness`] is a cloneable handle on a `tokio::sync::watch` channel: the controller flips
//! [`Readiness::set_caches_synced`], the leader elector [`Readiness::set_leadership`], and anyone
//! may [`Readiness::subscribe`] to wait for a state.
//!
//! The server binds `--admin-listen` (default `0.0.0.0:8080` in-cluster; tests use `127.0.0.1:0`)
//! and stops when its `CancellationToken` is cancelled.

use std::{future::IntoFuture, net::SocketAddr, sync::Arc};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};

/// Default `--admin-listen` address.
pub const DEFAULT_ADMIN_LISTEN: &str = "0.0.0.0:8080";

/// Admin server flags; flatten into a subcommand with `#[command(flatten)]`.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminArgs {
    /// Address of the admin HTTP server serving /metrics, /healthz and /readyz.
    #[arg(long, default_value = DEFAULT_ADMIN_LISTEN, env = "JOBWRIGHT_ADMIN_LISTEN")]
    pub admin_listen: SocketAddr,
}

/// What this replica knows about leadership.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Leadership {
    /// Not known yet (the elector has not reached the API server).
    #[default]
    Unknown,
    /// This replica holds the lease and reconciles.
    Leader,
    /// Another replica may hold the lease; this one waits to take over.
    Standby,
}

/// The facts `/readyz` is computed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadinessState {
    /// The controller's informer caches have synced.
    pub caches_synced: bool,
    /// The leadership state.
    pub leadership: Leadership,
}

impl ReadinessState {
    /// `Ok` when ready, else the reason `/readyz` reports.
    pub fn check(&self) -> Result<(), &'static str> {
        match (self.caches_synced, self.leadership) {
            // A standby runs no informers: there is nothing to sync until it leads.
            (_, Leadership::Standby) => Ok(()),
            (false, _) => Err("caches not synced"),
            (true, Leadership::Unknown) => Err("leadership unknown"),
            (true, Leadership::Leader) => Ok(()),
        }
    }
}

/// Shared, cloneable readiness state; clones flip the same state.
#[derive(Clone, Debug)]
pub struct Readiness {
    tx: Arc<watch::Sender<ReadinessState>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// Not ready: caches not synced, leadership unknown.
    pub fn new() -> Self {
        Self { tx: Arc::new(watch::Sender::new(ReadinessState::default())) }
    }

    /// Records whether the informer caches have synced.
    pub fn set_caches_synced(&self, synced: bool) {
        self.tx.send_if_modified(|s| std::mem::replace(&mut s.caches_synced, synced) != synced);
    }

    /// Records the leadership state.
    pub fn set_leadership(&self, leadership: Leadership) {
        self.tx.send_if_modified(|s| std::mem::replace(&mut s.leadership, leadership) != leadership);
    }

    /// The current state.
    pub fn get(&self) -> ReadinessState {
        *self.tx.borrow()
    }

    /// `Ok` when ready, else the reason.
    pub fn check(&self) -> Result<(), &'static str> {
        self.get().check()
    }

    /// A receiver notified on every change.
    pub fn subscribe(&self) -> watch::Receiver<ReadinessState> {
        self.tx.subscribe()
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    readiness: Readiness,
}

/// The admin routes, for embedding in another server or testing with `tower::ServiceExt`.
pub fn router(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AdminState { metrics, readiness })
}

async fn metrics_handler(State(state): State<AdminState>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], state.metrics.render())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AdminState>) -> (StatusCode, String) {
    match state.readiness.check() {
        Ok(()) => (StatusCode::OK, "ok".to_string()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}")),
    }
}

/// A running admin server.
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

impl AdminServer {
    /// Binds `addr` and serves the admin routes until `shutdown` is cancelled.
    pub async fn start(
        addr: SocketAddr,
        metrics: Metrics,
        readiness: Readiness,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let app = router(metrics, readiness);
        let task = tokio::spawn(
            axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).into_future(),
        );
        tracing::info!(%local_addr, "admin server listening");
        Ok(Self { local_addr, task })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the server to stop (after its shutdown token is cancelled).
    pub async fn join(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A real HTTP/1.1 request over TCP; returns (status, content-type, body).
    async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("headers end");
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-type").then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        (status, content_type, body.to_string())
    }

    async fn start() -> (AdminServer, Metrics, Readiness, CancellationToken) {
        let metrics = Metrics::new();
        let readiness = Readiness::new();
        let shutdown = CancellationToken::new();
        let server =
            AdminServer::start("127.0.0.1:0".parse().unwrap(), metrics.clone(), readiness.clone(), shutdown.clone())
                .await
                .unwrap();
        (server, metrics, readiness, shutdown)
    }

    #[tokio::test]
    async fn healthz_and_metrics_over_http() {
        let (server, metrics, _readiness, shutdown) = start().await;
        let addr = server.local_addr();
        assert_eq!(http_get(addr, "/healthz").await, (200, "text/plain; charset=utf-8".into(), "ok".into()));

        metrics.pods_created(2);
        let (status, ct, body) = http_get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(ct, OPENMETRICS_CONTENT_TYPE);
        assert!(body.lines().any(|l| l == "jobwright_pods_created_total 2"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");

        assert_eq!(http_get(addr, "/nope").await.0, 404);

        shutdown.cancel();
        server.join().await.unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "stopped after shutdown");
    }

    #[tokio::test]
    async fn readyz_flips_with_caches_and_leadership() {
        let (server, _metrics, readiness, shutdown) = start().await;
        let addr = server.local_addr();
        let get = |p| http_get(addr, p);

        let (status, _, body) = get("/readyz").await;
        assert_eq!((status, body.as_str()), (503, "not ready: caches not synced"));

        readiness.set_caches_synced(true);
        let (status, _, body) = get("/readyz").await;
        assert_eq!((status, body.as_str()), (503, "not ready: leadership unknown"));

        readiness.set_leadership(Leadership::Standby);
        assert_eq!(get("/readyz").await.0, 200);
        readiness.set_caches_synced(false);
        assert_eq!(get("/readyz").await.0, 200, "a standby has no caches to sync");
        readiness.set_leadership(Leadership::Leader);
        let (status, _, body) = get("/readyz").await;
        assert_eq!((status, body.as_str()), (503, "not ready: caches not synced"), "a leader needs synced caches");
        readiness.set_caches_synced(true);
        readiness.set_leadership(Leadership::Leader);
        let (status, _, body) = get("/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ok"));

        readiness.set_caches_synced(false);
        assert_eq!(get("/readyz").await.0, 503);
        // Liveness does not depend on readiness.
        assert_eq!(get("/healthz").await.0, 200);
        shutdown.cancel();
        server.join().await.unwrap();
    }

    #[tokio::test]
    async fn readiness_subscribers_see_changes_once() {
        let readiness = Readiness::new();
        let mut rx = readiness.subscribe();
        let clone = readiness.clone();
        clone.set_caches_synced(true);
        assert!(rx.has_changed().unwrap());
        assert!(rx.borrow_and_update().caches_synced);
        clone.set_caches_synced(true); // no change, no notification
        assert!(!rx.has_changed().unwrap());
        clone.set_leadership(Leadership::Leader);
        rx.changed().await.unwrap();
        assert_eq!(readiness.check(), Ok(()));
    }
}
