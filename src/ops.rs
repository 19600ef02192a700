//! The in-cluster process plumbing in one call: signals, metrics, an instrumented API client, the
//! admin server, and leader election.
//!
//! A controller subcommand flattens [`OpsArgs`] into its flags, installs logging with
//! [`telemetry::init`](crate::telemetry::init) (global, so done once by `main`), then:
//!
//! ```ignore
//! let ops = Ops::start(&args.ops, kube::Config::infer().await?).await?;
//! let mut leader = ops.elector.subscribe();
//! // start informers with ops.client; when they have synced: ops.readiness.set_caches_synced(true)
//! while let Some(term) = jobwright::leader::next_term(&mut leader).await {
//!     tokio::select! { _ = term.ended() => {}, _ = reconcile_forever(&ops.client, &ops.metrics) => {} }
//!     drop(term);
//! }
//! ops.finish().await?; // lease released, admin server stopped: exit 0
//! ```
//!
//! [`Ops::shutdown`] is cancelled by SIGTERM/SIGINT (see [`crate::shutdown`]); tests cancel it
//! themselves ([`Ops::start_with_shutdown`]).

use tokio_util::sync::CancellationToken;

use crate::{
    admin::{AdminArgs, AdminServer, Readiness},
    leader::{LeaderElectionArgs, LeaderElector, LeaderError},
    metrics::Metrics,
    ratelimit::{ClientArgs, limited_client},
    telemetry::TelemetryArgs,
};

/// How long in-flight reconciles may take to finish after SIGTERM before they are abandoned: below
/// the elector's 20 s drain timeout, so the Lease is still released, and the 30 s grace period.
pub const SHUTDOWN_STOP_BOUND: std::time::Duration = std::time::Duration::from_secs(15);

/// Every process-level flag: logging, admin server, leader election.
#[derive(clap::Args, Clone, Debug)]
pub struct OpsArgs {
    /// Logging flags.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Admin server flags.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Leader election flags.
    #[command(flatten)]
    pub leader: LeaderElectionArgs,
    /// API client flags (`--kube-api-qps`, `--kube-api-burst`).
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Why the process plumbing failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Signal handlers or the admin listener could not be set up.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The API client could not be built.
    #[error("kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    /// Leader election failed.
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// The running plumbing; its fields are the handles the controller uses.
pub struct Ops {
    /// Cancelled on SIGTERM/SIGINT (or by a test).
    pub shutdown: CancellationToken,
    /// Every series of `/metrics`.
    pub metrics: Metrics,
    /// `/readyz` state: the controller sets caches-synced, the elector sets leadership.
    pub readiness: Readiness,
    /// An API client whose requests are counted in `jobwright_api_requests_total` and paced by
    /// `--kube-api-qps`/`--kube-api-burst`.
    pub client: kube::Client,
    /// The leader elector (or a single-term elector without `--leader-elect`).
    pub elector: LeaderElector,
    admin: AdminServer,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("admin_addr", &self.admin.local_addr())
            .field("leader", &self.elector.state())
            .finish_non_exhaustive()
    }
}

impl Ops {
    /// Starts everything, with a shutdown token cancelled by SIGTERM/SIGINT.
    pub async fn start(args: &OpsArgs, config: kube::Config) -> Result<Self, OpsError> {
        let shutdown = crate::shutdown::on_signals()?;
        Self::start_with_shutdown(args, config, shutdown).await
    }

    /// Starts everything with the given shutdown token.
    pub async fn start_with_shutdown(
        args: &OpsArgs,
        config: kube::Config,
        shutdown: CancellationToken,
    ) -> Result<Self, OpsError> {
        // Validate the election flags before anything starts.
        let election = if args.leader.leader_elect { Some(args.leader.config()?) } else { None };
        let metrics = Metrics::new();
        let readiness = Readiness::new();
        let client = limited_client(config.clone(), &metrics, &args.client)?;
        // Leader election gets a bucket of its own (as kube-controller-manager's separate
        // leader-election client): a lease renewal never waits behind a backlog of pod writes.
        let election_client = limited_client(config, &metrics, &args.client)?;
        let admin =
            AdminServer::start(args.admin.admin_listen, metrics.clone(), readiness.clone(), shutdown.clone()).await?;
        let elector = match election {
            Some(cfg) => {
                match LeaderElector::start(election_client, cfg, readiness.clone(), metrics.clone(), shutdown.clone())
                    .await
                {
                    Ok(elector) => elector,
                    Err(e) => {
                        shutdown.cancel();
                        let _ = admin.join().await;
                        return Err(e.into());
                    }
                }
            }
            None => LeaderElector::disabled(readiness.clone(), metrics.clone(), shutdown.clone()),
        };
        Ok(Self { shutdown, metrics, readiness, client, elector, admin })
    }

    /// The admin server's address (useful with port 0).
    pub fn admin_addr(&self) -> std::net::SocketAddr {
        self.admin.local_addr()
    }

    /// What `jobwright controller` runs: for every leadership term, the Job controller (and, with
    /// `controller.ttl_controller`, the TTL-after-finished controller) with `controller`'s settings
    /// (its `metrics` and `caches_synced` are this process's), readiness following their caches;
    /// then, after shutdown, [`Ops::finish`]. `args` are the flags `self` was
    /// started with (the lost-lease bound comes from the election timing).
    pub async fn run_controllers(
        self,
        args: &OpsArgs,
        controller: crate::job::controller::Options,
    ) -> Result<(), OpsError> {
        let lost_lease_bound = if args.leader.leader_elect {
            let lease = std::time::Duration::from_secs(args.leader.leader_elect_lease_duration);
            let deadline =
                std::time::Duration::try_from_secs_f64(args.leader.leader_elect_renew_deadline).unwrap_or_default();
            lease.saturating_sub(deadline) / 2
        } else {
            SHUTDOWN_STOP_BOUND
        };
        let mut leader = self.elector.subscribe();
        while let Some(term) = crate::leader::next_term(&mut leader).await {
            let (synced_tx, mut synced_rx) = tokio::sync::watch::channel(false);
            let readiness = self.readiness.clone();
            let forward = tokio::spawn(async move {
                if synced_rx.wait_for(|s| *s).await.is_ok() {
                    readiness.set_caches_synced(true);
                }
            });
            let opts = crate::job::controller::Options {
                metrics: Some(self.metrics.clone()),
                caches_synced: Some(std::sync::Arc::new(synced_tx)),
                ..controller.clone()
            };
            // The term ends on SIGTERM as well as on a lost lease: the controller then stops taking
            // work and in-flight reconciles may finish, within a bound. On a lost lease the bound is
            // half the margin between the renew deadline and the lease duration, so this replica has
            // stopped writing before another can acquire; on SIGTERM the elector keeps renewing until
            // the term is dropped, so reconciles get longer (still within the drain timeout).
            let stop = term.token().cancelled_owned();
            let run = crate::job::controller::run(self.client.clone(), opts, stop);
            tokio::pin!(run);
            let abandon = async {
                term.ended().await;
                let bound = if self.shutdown.is_cancelled() { SHUTDOWN_STOP_BOUND } else { lost_lease_bound };
                tokio::time::sleep(bound).await;
            };
            tokio::select! {
                _ = &mut run => {}
                _ = abandon => tracing::warn!(term = term.number, "in-flight reconciles did not finish in time; abandoned"),
            }
            forward.abort();
            self.readiness.set_caches_synced(false);
            drop(term);
        }
        self.finish().await
    }

    /// After shutdown: waits for the elector to release the Lease and the admin server to stop.
    pub async fn finish(self) -> Result<(), OpsError> {
        self.shutdown.cancel();
        let elected = self.elector.join().await;
        self.admin.join().await?;
        Ok(elected?)
    }
}

/// Raises the soft limit on open files to the hard limit, as Go's runtime does at the start of
/// every Go program (kube-apiserver's and kube-controller-manager's included, Go 1.19+): a busy
/// API server, `jobwright local`'s pod processes' pipes and the Service proxy's 4,096 connections
/// need more than the 1,024 a login shell or systemd unit often gives. Returns the limits before
/// (soft, hard) when it raised them (the caller logs, once logging is set up). Processes started
/// from ours (pods in `jobwright local`) inherit the raised limit, as containers get a high one
/// from their runtime in clusters.
pub fn raise_open_files_limit() -> nix::Result<Option<(u64, u64)>> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= hard {
        return Ok(None);
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(Some((soft, hard)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ops: OpsArgs,
    }

    async fn status(addr: std::net::SocketAddr, path: &str) -> u16 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out.split(' ').nth(1).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn single_replica_mode_is_ready_once_caches_sync_and_finishes_cleanly() {
        let cli = Cli::try_parse_from(["x", "--admin-listen", "127.0.0.1:0"]).unwrap();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let shutdown = CancellationToken::new();
        let ops = Ops::start_with_shutdown(&cli.ops, config, shutdown.clone()).await.unwrap();
        let addr = ops.admin_addr();
        assert_eq!(status(addr, "/healthz").await, 200);
        assert_eq!(status(addr, "/readyz").await, 503, "caches not synced yet");
        let mut leader = ops.elector.subscribe();
        let term = crate::leader::next_term(&mut leader).await.expect("leads without election");
        ops.readiness.set_caches_synced(true);
        assert_eq!(status(addr, "/readyz").await, 200);

        shutdown.cancel();
        term.ended().await;
        drop(term);
        ops.finish().await.unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "admin server stopped");
    }

    #[tokio::test]
    async fn invalid_election_flags_fail_start_with_a_clear_error() {
        let cli = Cli::try_parse_from([
            "x",
            "--admin-listen",
            "127.0.0.1:0",
            "--leader-elect",
            "--leader-elect-identity",
            "a",
            "--leader-elect-renew-deadline",
            "30",
        ])
        .unwrap();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let err = Ops::start_with_shutdown(&cli.ops, config, CancellationToken::new()).await.unwrap_err();
        assert!(err.to_string().contains("renew deadline"), "{err}");
    }
}
