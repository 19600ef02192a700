//! Leader election on a `coordination.k8s.io/v1` Lease, so that with several replicas exactly one
//! reconciles.
//!
//! # Using it
//!
//! ```ignore
//! let elector = LeaderElector::start(client, cfg, readiness, metrics, shutdown.clone()).await?;
//! let mut state = elector.subscribe();
//! while let Some(term) = leader::next_term(&mut state).await {
//!     // Reconcile until the term ends; stop writing as soon as `term.ended()` fires.
//!     tokio::select! {
//!         _ = term.ended() => {}
//!         _ = run_controller() => {}
//!     }
//!     drop(term); // tells the elector this replica stopped writing
//! }
//! elector.join().await?; // the Lease has been released (graceful shutdown)
//! ```
//!
//! [`LeaderState`] moves `Unknown → Standby ⇄ Leading(term) → Stopping → Stopped`. Each
//! [`Term`] carries a `CancellationToken` that is cancelled **before** the state leaves
//! `Leading`, and a drop guard: on graceful shutdown the elector waits for every clone of the term
//! to be dropped (the controller has stopped writing) before it releases the Lease, so the next
//! leader can start at once without overlapping in-flight writes. If they are not dropped within
//! [`LeaderConfig::drain_timeout`], the Lease is left to expire instead of being released.
//! [`LeaderElector::disabled`] is the single-replica mode (`--leader-elect` off): one term from start
//! to shutdown. [`LeaderElector::abort`] simulates a crash for failover tests: the term ends, the
//! Lease is not released and expires.
//!
//! The release re-reads the Lease first and only clears it when it still names this replica
//! (kube-lease-manager's own `release()` trusts a cached holder and could clear a Lease another
//! replica holds by now). Lease writes use the field manager `jobwright-leader-<identity>`.
//!
//! # Mechanism and the timing argument
//!
//! [`kube_lease_manager`] does the Lease protocol: it creates the Lease if missing, acquires it when
//! free or expired (server-side apply, so two contenders conflict instead of both winning), and the
//! holder renews `renewTime` every `renew_interval` (its `duration − grace`). A contender considers
//! the Lease expired when its own clock passes `renewTime + lease_duration`.
//!
//! Its `changed()` reports acquisition and observed loss, but not a renewal that *fails or hangs*:
//! a leader that cannot reach the API server would never hear that its lease ran out. So this
//! module adds a **renewal watchdog**: while leading it reads the Lease (`GET`) every half renew
//! interval and keeps `valid_until = renewTime + renew_deadline`, where `renewTime` is the value this
//! replica itself wrote (its own clock, no skew). A local monotonic timer ends the term at
//! `valid_until` even if the `GET` itself hangs, and the term also ends as soon as the Lease shows
//! another holder or the manager reports a loss.
//!
//! With `renewTime = T` (leader's clock), skew `s` between the leader's and a contender's clocks,
//! and `L` the time the controller needs to stop after its token is cancelled:
//!
//! - the leader stops writing by `T + renew_deadline + L` (leader's clock);
//! - no contender acquires before `T + lease_duration − s` (leader's clock).
//!
//! So there is never more than one writer when `lease_duration − renew_deadline > s + L`. The
//! defaults (15 s and 10 s, as kube-controller-manager's) leave 5 s for clock skew and stopping.
//! Renewals start at `T + renew_interval` with `renew_interval = max(1 s, renew_deadline / 2)`, so
//! a leader retries for `renew_deadline − renew_interval` before stepping down. A leader that dies
//! is replaced within `lease_duration` of its last renewal (plus up to 1 s of the manager's random
//! back-off).
//!
//! # Flags
//!
//! [`LeaderElectionArgs`]: `--leader-elect`, `--leader-elect-resource-name`,
//! `--leader-elect-resource-namespace` (env `POD_NAMESPACE`), `--leader-elect-lease-duration`,
//! `--leader-elect-renew-deadline` (seconds), `--leader-elect-identity` (env `POD_NAME`, else
//! `hostname_<random>`).

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    admin::{Leadership, Readiness},
    metrics::Metrics,
};

/// Default Lease name.
pub const DEFAULT_LEASE_NAME: &str = "jobwright-controller";
/// Default Lease namespace when `POD_NAMESPACE` is not set.
pub const DEFAULT_LEASE_NAMESPACE: &str = "default";
/// Default lease duration (seconds), as kube-controller-manager's `--leader-elect-lease-duration`.
pub const DEFAULT_LEASE_DURATION_SECS: u64 = 15;
/// Default renew deadline (seconds), as kube-controller-manager's `--leader-elect-renew-deadline`.
pub const DEFAULT_RENEW_DEADLINE_SECS: f64 = 10.0;
/// Default bound on waiting for the controller to drop its term at shutdown.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Leader-election flags; flatten into a subcommand with `#[command(flatten)]`.
#[derive(clap::Args, Clone, Debug)]
pub struct LeaderElectionArgs {
    /// Elect a leader on a coordination.k8s.io/v1 Lease; only the leader reconciles. Off: this
    /// process always reconciles (single replica).
    #[arg(long, env = "JOBWRIGHT_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, default_value = DEFAULT_LEASE_NAME)]
    pub leader_elect_resource_name: String,
    /// Namespace of the Lease (in-cluster: the pod's namespace via the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = DEFAULT_LEASE_NAMESPACE)]
    pub leader_elect_resource_namespace: String,
    /// Seconds a contender waits after the holder's last renewal before taking the Lease.
    #[arg(long, default_value_t = DEFAULT_LEASE_DURATION_SECS)]
    pub leader_elect_lease_duration: u64,
    /// Seconds after its last successful renewal at which the leader stops reconciling; must be
    /// less than the lease duration (the difference covers clock skew and stopping time).
    #[arg(long, default_value_t = DEFAULT_RENEW_DEADLINE_SECS)]
    pub leader_elect_renew_deadline: f64,
    /// Holder identity (default: the pod name from POD_NAME, else `hostname_<random>`).
    #[arg(long, env = "POD_NAME")]
    pub leader_elect_identity: Option<String>,
}

impl LeaderElectionArgs {
    /// The election config these flags describe (validated).
    pub fn config(&self) -> Result<LeaderConfig, LeaderError> {
        let renew_deadline = Duration::try_from_secs_f64(self.leader_elect_renew_deadline)
            .map_err(|e| LeaderError::InvalidConfig(format!("--leader-elect-renew-deadline: {e}")))?;
        let cfg = LeaderConfig {
            lease_name: self.leader_elect_resource_name.clone(),
            namespace: self.leader_elect_resource_namespace.clone(),
            identity: self.leader_elect_identity.clone().unwrap_or_else(default_identity),
            lease_duration: Duration::from_secs(self.leader_elect_lease_duration),
            renew_deadline,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// `hostname_<random>`, like client-go's default identity.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "jobwright".to_string());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}_{}", &suffix[..12])
}

/// The server-side-apply field manager of this replica's Lease writes: unique per identity (the
/// crate's default would be derived from a random string), at most 128 bytes as the API requires.
pub fn field_manager(identity: &str) -> String {
    let mut m = format!("jobwright-leader-{identity}");
    while m.len() > 128 {
        m.pop();
    }
    m
}

/// Leader-election parameters.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Lease name.
    pub lease_name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's holder identity (unique among replicas).
    pub identity: String,
    /// How long after the last renewal a contender may take the Lease; whole seconds, ≥ 2 s.
    pub lease_duration: Duration,
    /// How long after its last renewal the leader stops; `1 s < renew_deadline < lease_duration`.
    pub renew_deadline: Duration,
    /// At graceful shutdown, how long to wait for the controller to drop its [`Term`] before giving
    /// up on releasing the Lease (it then expires by itself).
    pub drain_timeout: Duration,
}

impl LeaderConfig {
    /// A config with the default durations.
    pub fn new(lease_name: impl Into<String>, namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            lease_name: lease_name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(DEFAULT_LEASE_DURATION_SECS),
            renew_deadline: Duration::from_secs_f64(DEFAULT_RENEW_DEADLINE_SECS),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }

    /// Checks the durations and names; the error says which rule failed.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let bad = |m: String| Err(LeaderError::InvalidConfig(m));
        if self.lease_name.is_empty() || self.namespace.is_empty() || self.identity.is_empty() {
            return bad("lease name, namespace and identity must not be empty".into());
        }
        if self.lease_duration.subsec_nanos() != 0 || self.lease_duration < Duration::from_secs(2) {
            return bad(format!(
                "lease duration must be a whole number of seconds, at least 2, got {:?}",
                self.lease_duration
            ));
        }
        if self.renew_deadline <= Duration::from_secs(1) || self.renew_deadline >= self.lease_duration {
            return bad(format!(
                "renew deadline must be more than 1s and less than the lease duration ({:?}), got {:?}",
                self.lease_duration, self.renew_deadline
            ));
        }
        Ok(())
    }

    /// How often the holder renews: `max(1 s, renew_deadline / 2)` in whole seconds.
    pub fn renew_interval(&self) -> Duration {
        Duration::from_secs((self.renew_deadline.as_secs() / 2).max(1))
    }

    /// kube-lease-manager's `grace`: the holder renews `grace` before expiry.
    fn grace_secs(&self) -> u64 {
        self.lease_duration.as_secs() - self.renew_interval().as_secs()
    }
}

/// Why leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The durations or names are invalid.
    #[error("invalid leader election config: {0}")]
    InvalidConfig(String),
    /// The Lease could not be read or created.
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    /// The elector task panicked or was cancelled.
    #[error("leader election task failed: {0}")]
    Task(String),
}

/// One continuous period of leadership. Clones share the period.
///
/// Hold it while reconciling; stop writing as soon as [`Term::ended`] fires; drop it once stopped.
#[derive(Clone, Debug)]
pub struct Term {
    /// 1 for the first term of this process, then 2, ...
    pub number: u64,
    ended: CancellationToken,
    _guard: mpsc::Sender<()>,
}

impl Term {
    /// Resolves when the term ends (lease lost, renewal deadline passed, or shutdown).
    pub async fn ended(&self) {
        self.ended.cancelled().await
    }

    /// Whether the term has ended.
    pub fn is_ended(&self) -> bool {
        self.ended.is_cancelled()
    }

    /// A token cancelled when the term ends (for kube-runtime's graceful shutdown hooks).
    pub fn token(&self) -> CancellationToken {
        self.ended.clone()
    }
}

/// What this replica knows about leadership.
#[derive(Clone, Debug, Default)]
pub enum LeaderState {
    /// The Lease has not been reached yet.
    #[default]
    Unknown,
    /// Another replica holds the Lease, or nobody does yet; this one is waiting.
    Standby,
    /// This replica leads.
    Leading(Term),
    /// Shutting down: the term (if any) has ended, waiting for it to be dropped, then releasing.
    Stopping,
    /// Shut down; the Lease is released (or left to expire).
    Stopped,
}

impl LeaderState {
    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        matches!(self, Self::Leading(_))
    }

    /// The readiness view: `Leader`, `Standby`, or `Unknown` (also while stopping).
    pub fn leadership(&self) -> Leadership {
        match self {
            Self::Leading(_) => Leadership::Leader,
            Self::Standby => Leadership::Standby,
            Self::Unknown | Self::Stopping | Self::Stopped => Leadership::Unknown,
        }
    }
}

/// Waits for the next term; `None` once the elector is stopping or gone.
pub async fn next_term(rx: &mut watch::Receiver<LeaderState>) -> Option<Term> {
    loop {
        {
            let state = rx.borrow_and_update();
            match &*state {
                LeaderState::Leading(term) if !term.is_ended() => return Some(term.clone()),
                LeaderState::Stopping | LeaderState::Stopped => return None,
                _ => {}
            }
        }
        rx.changed().await.ok()?;
    }
}

/// A running leader elector. Dropping it does not stop it: cancel the shutdown token and
/// [`join`](LeaderElector::join).
#[derive(Debug)]
pub struct LeaderElector {
    state: watch::Receiver<LeaderState>,
    task: JoinHandle<Result<(), LeaderError>>,
}

/// Publishes state changes to the channel, readiness and metrics, in that order of truth.
struct Publisher {
    tx: watch::Sender<LeaderState>,
    readiness: Readiness,
    metrics: Metrics,
}

impl Publisher {
    fn publish(&self, state: LeaderState) {
        self.readiness.set_leadership(state.leadership());
        self.metrics.set_leader(state.is_leader());
        self.tx.send_replace(state);
    }
}

/// The live term held by the elector. Dropping it ends the term: an elector that is gone (task
/// aborted, runtime shutting down) can no longer vouch for the Lease.
struct Live {
    term: Option<Term>,
    ended: CancellationToken,
    drained: mpsc::Receiver<()>,
}

impl Live {
    fn begin(number: u64) -> Self {
        let (guard, drained) = mpsc::channel(1);
        let ended = CancellationToken::new();
        let term = Term { number, ended: ended.clone(), _guard: guard };
        Self { term: Some(term), ended, drained }
    }

    fn term(&self) -> Term {
        self.term.clone().expect("a live term until drained")
    }

    /// Ends the term and waits (bounded) until every clone of it is dropped. `true` if drained.
    async fn end_and_drain(mut self, publisher: &Publisher, timeout: Duration) -> bool {
        self.ended.cancel();
        publisher.publish(LeaderState::Stopping);
        self.term = None;
        tokio::time::timeout(timeout, self.drained.recv()).await.is_ok()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.ended.cancel();
    }
}

/// Aborts a helper task when dropped, so aborting the elector stops its renewals too.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl LeaderElector {
    /// Connects to the Lease (creating it if missing) and starts electing in the background.
    /// Updates `readiness` (leadership) and `metrics` (`jobwright_leader`) on every change.
    pub async fn start(
        client: Client,
        cfg: LeaderConfig,
        readiness: Readiness,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Result<Self, LeaderError> {
        cfg.validate()?;
        let manager = LeaseManagerBuilder::new(client.clone(), &cfg.lease_name)
            .with_namespace(&cfg.namespace)
            .with_identity(&cfg.identity)
            .with_field_manager(field_manager(&cfg.identity))
            .with_duration(cfg.lease_duration.as_secs())
            .with_grace(cfg.grace_secs())
            .build()
            .await?;
        let (tx, state) = watch::channel(LeaderState::Unknown);
        let publisher = Publisher { tx, readiness, metrics };
        publisher.publish(LeaderState::Standby);
        let leases: Api<Lease> = Api::namespaced(client, &cfg.namespace);
        let task = tokio::spawn(run(Arc::new(manager), leases, cfg, publisher, shutdown));
        Ok(Self { state, task })
    }

    /// No election: this replica leads from now until `shutdown` (one term).
    pub fn disabled(readiness: Readiness, metrics: Metrics, shutdown: CancellationToken) -> Self {
        let (tx, state) = watch::channel(LeaderState::Unknown);
        let publisher = Publisher { tx, readiness, metrics };
        let live = Live::begin(1);
        publisher.publish(LeaderState::Leading(live.term()));
        let task = tokio::spawn(async move {
            shutdown.cancelled().await;
            live.end_and_drain(&publisher, DEFAULT_DRAIN_TIMEOUT).await;
            publisher.publish(LeaderState::Stopped);
            Ok(())
        });
        Self { state, task }
    }

    /// A receiver of every state change.
    pub fn subscribe(&self) -> watch::Receiver<LeaderState> {
        self.state.clone()
    }

    /// The current state.
    pub fn state(&self) -> LeaderState {
        self.state.borrow().clone()
    }

    /// Simulates a crash (`kill -9`): renewals stop at once, the current term ends, the Lease is
    /// not released and expires by itself. For tests of failover.
    pub fn abort(self) {
        self.task.abort();
    }

    /// Waits until the elector has stopped (after the shutdown token is cancelled) and the Lease
    /// has been released.
    pub async fn join(self) -> Result<(), LeaderError> {
        self.task.await.map_err(|e| LeaderError::Task(e.to_string()))?
    }
}

/// What the renewal watchdog saw in the Lease.
#[derive(Debug)]
struct Observation {
    /// Until when (monotonic) our leadership is confirmed; `None`: not ours, or expired.
    valid_until: Option<Instant>,
}

/// How long after `renew_time` the lease is still ours, from our own clock.
fn validity(lease: &Lease, identity: &str, renew_deadline: Duration) -> Option<Instant> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed: SystemTime = spec.renew_time.as_ref()?.0.into();
    let remaining = (renewed + renew_deadline).duration_since(SystemTime::now()).ok()?;
    Some(Instant::now() + remaining)
}

async fn run(
    manager: Arc<LeaseManager>,
    leases: Api<Lease>,
    cfg: LeaderConfig,
    publisher: Publisher,
    shutdown: CancellationToken,
) -> Result<(), LeaderError> {
    // kube-lease-manager's `changed()` runs in its own task so that it is never cancelled halfway
    // through a renewal by our other select branches.
    let (changes_tx, mut changes) = mpsc::channel::<bool>(8);
    let mut changer = AbortOnDrop({
        let manager = manager.clone();
        let identity = cfg.identity.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match manager.changed().await {
                    Ok(leader) => {
                        backoff = Duration::from_millis(200);
                        if changes_tx.send(leader).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%identity, error = %e, "lease renewal or acquisition failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
        })
    });

    // The watchdog reads the Lease while the manager believes we lead.
    let (manager_leads_tx, mut manager_leads_rx) = watch::channel(false);
    let (obs_tx, mut observations) = mpsc::channel::<Observation>(8);
    let watchdog = AbortOnDrop({
        let leases = leases.clone();
        let identity = cfg.identity.clone();
        let name = cfg.lease_name.clone();
        let period = cfg.renew_interval() / 2;
        let deadline = cfg.renew_deadline;
        tokio::spawn(async move {
            loop {
                if !*manager_leads_rx.borrow_and_update() {
                    if manager_leads_rx.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                let valid_until = match leases.get(&name).await {
                    Ok(lease) => validity(&lease, &identity, deadline),
                    Err(e) => {
                        tracing::warn!(%identity, error = %e, "cannot read the lease to confirm renewal");
                        // No news: keep the last confirmed deadline (the main loop's timer ends it).
                        tokio::time::sleep(period).await;
                        continue;
                    }
                };
                if obs_tx.send(Observation { valid_until }).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = manager_leads_rx.changed() => {}
                }
            }
        })
    });

    let mut manager_leads = false;
    let mut valid_until: Option<Instant> = None;
    let mut live: Option<Live> = None;
    let mut terms = 0u64;
    let identity = cfg.identity.clone();

    loop {
        let leading = manager_leads && valid_until.is_some_and(|t| Instant::now() < t);
        match (leading, live.is_some()) {
            (true, false) => {
                terms += 1;
                let l = Live::begin(terms);
                tracing::info!(%identity, lease = %cfg.lease_name, term = terms, "became leader");
                publisher.publish(LeaderState::Leading(l.term()));
                live = Some(l);
            }
            (false, true) => {
                let l = live.take().expect("checked");
                // Cancel first, then publish: nobody sees Standby while the token is live.
                l.ended.cancel();
                tracing::warn!(%identity, lease = %cfg.lease_name, term = terms, "stopped leading");
                publisher.publish(LeaderState::Standby);
            }
            _ => {}
        }
        let deadline = valid_until.filter(|_| live.is_some());
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                tracing::warn!(%identity, "lease renewal not confirmed within the renew deadline");
                valid_until = None;
            }
            change = changes.recv() => {
                let Some(leader) = change else {
                    return Err(LeaderError::Task("lease manager task ended".into()));
                };
                manager_leads = leader;
                if !leader {
                    valid_until = None;
                }
                manager_leads_tx.send_replace(leader);
            }
            Some(obs) = observations.recv() => {
                valid_until = obs.valid_until;
            }
        }
    }

    // Graceful shutdown: end the term, wait for the controller to drop it (renewals continue
    // meanwhile), then stop renewing and release the Lease.
    let drained = match live.take() {
        Some(l) => l.end_and_drain(&publisher, cfg.drain_timeout).await,
        None => {
            publisher.publish(LeaderState::Stopping);
            true
        }
    };
    drop(watchdog);
    changer.0.abort();
    let _ = (&mut changer.0).await;
    // kube-lease-manager's release() trusts its cached holder until the cached expiry, so it would
    // clear a Lease someone else holds by now; release only what a fresh read shows is ours.
    let ours = match leases.get(&cfg.lease_name).await {
        Ok(lease) => lease.spec.and_then(|s| s.holder_identity).as_deref() == Some(identity.as_str()),
        Err(e) => {
            tracing::warn!(%identity, error = %e, "cannot read the lease before releasing it");
            false
        }
    };
    let result = if !ours {
        Ok(())
    } else if drained {
        // Run it in a task: the crate panics on an unexpected 409 from a release.
        let m = manager.clone();
        match tokio::spawn(async move { m.release().await }).await {
            Ok(Ok(())) => {
                tracing::info!(%identity, lease = %cfg.lease_name, "released the lease");
                Ok(())
            }
            Ok(Err(e)) => Err(LeaderError::Lease(e)),
            Err(e) => Err(LeaderError::Task(e.to_string())),
        }
    } else {
        tracing::warn!(%identity, "controller did not stop in time; leaving the lease to expire");
        Ok(())
    };
    publisher.publish(LeaderState::Stopped);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        le: LeaderElectionArgs,
    }

    #[test]
    fn flags_default_like_kube_controller_manager() {
        let cli = Cli::try_parse_from(["x", "--leader-elect-identity", "pod-a"]).unwrap();
        assert!(!cli.le.leader_elect);
        let cfg = cli.le.config().unwrap();
        assert_eq!(cfg.lease_name, DEFAULT_LEASE_NAME);
        assert_eq!(cfg.identity, "pod-a");
        assert_eq!(cfg.lease_duration, Duration::from_secs(15));
        assert_eq!(cfg.renew_deadline, Duration::from_secs(10));
        assert_eq!(cfg.renew_interval(), Duration::from_secs(5));
        assert_eq!(cfg.grace_secs(), 10);
    }

    #[test]
    fn invalid_durations_are_errors_not_panics() {
        let parse = |args: &[&str]| {
            let mut v = vec!["x", "--leader-elect-identity", "a"];
            v.extend_from_slice(args);
            Cli::try_parse_from(v).unwrap().le.config()
        };
        for args in [
            &["--leader-elect-renew-deadline", "15"][..],
            &["--leader-elect-renew-deadline", "20"],
            &["--leader-elect-renew-deadline", "1"],
            &["--leader-elect-renew-deadline=-3"],
            &["--leader-elect-lease-duration", "1", "--leader-elect-renew-deadline", "0.5"],
            &["--leader-elect-lease-duration", "0"],
        ] {
            let err = parse(args).unwrap_err();
            assert!(matches!(err, LeaderError::InvalidConfig(_)), "{args:?}: {err}");
        }
        assert!(parse(&["--leader-elect-lease-duration", "2", "--leader-elect-renew-deadline", "1.5"]).is_ok());
    }

    #[test]
    fn default_identity_is_host_and_random_suffix() {
        let a = default_identity();
        let b = default_identity();
        assert_ne!(a, b);
        let (host, suffix) = a.rsplit_once('_').unwrap();
        assert!(!host.is_empty() && suffix.len() == 12, "{a}");
    }

    #[test]
    fn validity_requires_our_identity_and_a_fresh_renewal() {
        use k8s_openapi::{api::coordination::v1::LeaseSpec, apimachinery::pkg::apis::meta::v1::MicroTime};
        let lease = |holder: &str, ago: Duration| Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime((SystemTime::now() - ago).try_into().unwrap())),
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = Duration::from_secs(10);
        let until = validity(&lease("me", Duration::from_secs(4)), "me", d).unwrap();
        let left = until - Instant::now();
        assert!(left <= Duration::from_secs(6) && left > Duration::from_secs(5), "{left:?}");
        assert!(validity(&lease("other", Duration::ZERO), "me", d).is_none());
        assert!(validity(&lease("me", Duration::from_secs(11)), "me", d).is_none());
        assert!(validity(&Lease::default(), "me", d).is_none());
    }

    #[tokio::test]
    async fn disabled_election_leads_until_shutdown_and_waits_for_the_term() {
        let readiness = Readiness::new();
        let metrics = Metrics::new();
        let shutdown = CancellationToken::new();
        let elector = LeaderElector::disabled(readiness.clone(), metrics.clone(), shutdown.clone());
        let mut rx = elector.subscribe();
        let term = next_term(&mut rx).await.expect("leads at once");
        assert_eq!(term.number, 1);
        assert_eq!(readiness.get().leadership, Leadership::Leader);
        assert!(metrics.render().lines().any(|l| l == "jobwright_leader 1"));

        shutdown.cancel();
        term.ended().await;
        rx.wait_for(|s| matches!(s, LeaderState::Stopping)).await.unwrap();
        // Still stopping while we hold the term.
        assert!(matches!(elector.state(), LeaderState::Stopping));
        drop(term);
        let mut rx2 = elector.subscribe();
        elector.join().await.unwrap();
        assert!(matches!(*rx2.borrow_and_update(), LeaderState::Stopped));
        assert!(next_term(&mut rx).await.is_none());
        assert_eq!(readiness.get().leadership, Leadership::Unknown);
        assert!(metrics.render().lines().any(|l| l == "jobwright_leader 0"));
    }

    /// An in-memory `coordination.k8s.io/v1` Lease API as a tower service: GET, POST, and PATCH
    /// (server-side apply with a holderIdentity conflict, strategic merge with null deletes),
    /// enough for kube-lease-manager. PATCHes from identities in `failing` get a 500.
    mod fake {
        use std::{
            collections::{BTreeMap, HashSet},
            sync::{Arc, Mutex},
        };

        use serde_json::{Value, json};

        #[derive(Default)]
        pub struct State {
            pub leases: BTreeMap<String, Value>,
            pub rv: u64,
            pub failing: HashSet<String>,
        }

        #[derive(Clone, Default)]
        pub struct FakeLeases(pub Arc<Mutex<State>>);

        fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
            (
                code,
                json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code}),
            )
        }

        impl FakeLeases {
            pub fn client(&self) -> kube::Client {
                let this = self.clone();
                let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
                    let this = this.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect_bytes().await.unwrap_or_default();
                        let (code, value) = this.handle(&parts, &body);
                        let resp = http::Response::builder()
                            .status(code)
                            .header("content-type", "application/json")
                            .body(kube::client::Body::from(serde_json::to_vec(&value).unwrap()))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                kube::client::ClientBuilder::new(svc, "default").build()
            }

            pub fn holder(&self, name: &str) -> Option<String> {
                let state = self.0.lock().unwrap();
                state.leases.get(name)?["spec"]["holderIdentity"].as_str().map(str::to_string)
            }

            pub fn fail_patches_from(&self, identity: &str) {
                self.0.lock().unwrap().failing.insert(identity.to_string());
            }

            /// Another party takes the lease behind the electors' backs (fresh renewTime).
            pub fn steal(&self, name: &str, holder: &str) {
                let mut state = self.0.lock().unwrap();
                state.rv += 1;
                let rv = state.rv.to_string();
                let lease = state.leases.get_mut(name).unwrap();
                let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
                lease["spec"]["holderIdentity"] = holder.into();
                lease["spec"]["renewTime"] = now.into();
                lease["metadata"]["resourceVersion"] = rv.into();
            }

            fn handle(&self, parts: &http::request::Parts, body: &[u8]) -> (u16, Value) {
                let path = parts.uri.path();
                let query = parts.uri.query().unwrap_or("");
                let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
                let (ns, name) = match segs.as_slice() {
                    ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases"] => (*ns, None),
                    ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases", name] => (*ns, Some(*name)),
                    _ => return status(404, "NotFound", "the server could not find the requested resource"),
                };
                let manager = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("fieldManager=jobwright-leader-"))
                    .unwrap_or("")
                    .to_string();
                let mut state = self.0.lock().unwrap();
                let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                match (parts.method.as_str(), name) {
                    ("GET", Some(name)) => match state.leases.get(name) {
                        Some(l) => (200, l.clone()),
                        None => status(404, "NotFound", &format!("leases.coordination.k8s.io \"{name}\" not found")),
                    },
                    ("POST", None) => {
                        let name = body["metadata"]["name"].as_str().unwrap_or_default().to_string();
                        if state.leases.contains_key(&name) {
                            return status(409, "AlreadyExists", "already exists");
                        }
                        state.rv += 1;
                        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                            "metadata": {"name": name, "namespace": ns, "resourceVersion": state.rv.to_string()},
                            "spec": {}});
                        state.leases.insert(name, lease.clone());
                        (201, lease)
                    }
                    ("PATCH", Some(name)) => {
                        if state.failing.contains(&manager) {
                            return status(500, "InternalError", "injected failure");
                        }
                        let apply = parts
                            .headers
                            .get("content-type")
                            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/apply-patch"));
                        state.rv += 1;
                        let rv = state.rv.to_string();
                        let Some(lease) = state.leases.get_mut(name) else {
                            return status(404, "NotFound", "not found");
                        };
                        let patch = body["spec"].as_object().cloned().unwrap_or_default();
                        if apply {
                            let current = lease["spec"]["holderIdentity"].as_str();
                            let wanted = patch.get("holderIdentity").and_then(|v| v.as_str());
                            if current.is_some() && wanted.is_some() && current != wanted {
                                return status(
                                    409,
                                    "Conflict",
                                    "Apply failed with 1 conflict: conflict with \"other\": .spec.holderIdentity",
                                );
                            }
                        }
                        let spec = lease["spec"].as_object_mut().unwrap();
                        for (k, v) in patch {
                            if v.is_null() {
                                spec.remove(&k);
                            } else {
                                spec.insert(k, v);
                            }
                        }
                        lease["metadata"]["resourceVersion"] = rv.into();
                        (200, lease.clone())
                    }
                    _ => status(405, "MethodNotAllowed", "method not allowed"),
                }
            }
        }
    }

    /// A failure bound, not a timing assertion: a broken elector fails the test instead of hanging it.
    async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(60), fut).await.expect("elector made no progress in 60s")
    }

    fn fast(identity: &str) -> LeaderConfig {
        LeaderConfig {
            // Short for quick takeovers; a renew deadline of 3 s so that a loaded test machine does not
            // make a leader step down mid-test.
            lease_duration: Duration::from_secs(5),
            renew_deadline: Duration::from_secs(3),
            drain_timeout: Duration::from_secs(5),
            ..LeaderConfig::new("jobwright-controller", "jobwright-system", identity)
        }
    }

    struct Replica {
        elector: LeaderElector,
        rx: watch::Receiver<LeaderState>,
        readiness: Readiness,
        shutdown: CancellationToken,
    }

    async fn replica(api: &fake::FakeLeases, identity: &str) -> Replica {
        let readiness = Readiness::new();
        let shutdown = CancellationToken::new();
        let elector =
            LeaderElector::start(api.client(), fast(identity), readiness.clone(), Metrics::new(), shutdown.clone())
                .await
                .unwrap();
        let rx = elector.subscribe();
        Replica { elector, rx, readiness, shutdown }
    }

    #[tokio::test]
    async fn fake_leases_standby_takes_over_after_graceful_release() {
        let api = fake::FakeLeases::default();
        let mut a = replica(&api, "a").await;
        let term_a = within(next_term(&mut a.rx)).await.expect("a leads");
        assert_eq!(api.holder("jobwright-controller").as_deref(), Some("a"));
        assert_eq!(a.readiness.get().leadership, Leadership::Leader);

        let mut b = replica(&api, "b").await;
        assert_eq!(b.readiness.get().leadership, Leadership::Standby, "b knows it is a standby");

        a.shutdown.cancel();
        within(term_a.ended()).await;
        drop(term_a);
        within(a.elector.join()).await.unwrap();
        assert_eq!(api.holder("jobwright-controller"), None, "released on shutdown");

        let term_b = within(next_term(&mut b.rx)).await.expect("b takes over");
        assert_eq!(term_b.number, 1);
        assert_eq!(api.holder("jobwright-controller").as_deref(), Some("b"));
        b.shutdown.cancel();
        drop(term_b);
        within(b.elector.join()).await.unwrap();
    }

    #[tokio::test]
    async fn fake_leases_leader_that_cannot_renew_stops_before_the_standby_starts() {
        let api = fake::FakeLeases::default();
        let mut a = replica(&api, "a").await;
        let term_a = within(next_term(&mut a.rx)).await.expect("a leads");
        let mut b = replica(&api, "b").await;

        api.fail_patches_from("a");
        let term_b = within(next_term(&mut b.rx)).await.expect("b takes over the expired lease");
        assert!(term_a.is_ended(), "a stopped (renew deadline) before b started (lease duration)");
        assert_eq!(api.holder("jobwright-controller").as_deref(), Some("b"));
        within(a.rx.wait_for(|s| matches!(s, LeaderState::Standby))).await.unwrap();
        assert_eq!(a.readiness.get().leadership, Leadership::Standby);

        for r in [a, b] {
            r.shutdown.cancel();
        }
        drop((term_a, term_b));
    }

    #[tokio::test]
    async fn fake_leases_aborted_leader_ends_its_term_and_the_standby_takes_over() {
        let api = fake::FakeLeases::default();
        let mut a = replica(&api, "a").await;
        let term_a = within(next_term(&mut a.rx)).await.expect("a leads");
        let mut b = replica(&api, "b").await;
        a.elector.abort();
        within(term_a.ended()).await;
        assert_eq!(api.holder("jobwright-controller").as_deref(), Some("a"), "a crash releases nothing");
        let term_b = within(next_term(&mut b.rx)).await.expect("b takes over once the lease expires");
        assert_eq!(api.holder("jobwright-controller").as_deref(), Some("b"));
        b.shutdown.cancel();
        drop((term_a, term_b));
    }

    #[tokio::test]
    async fn fake_leases_term_ends_when_another_holder_appears() {
        let api = fake::FakeLeases::default();
        let mut a = replica(&api, "a").await;
        let term_a = within(next_term(&mut a.rx)).await.expect("a leads");
        api.steal("jobwright-controller", "intruder");
        within(term_a.ended()).await;
        within(a.rx.wait_for(|s| matches!(s, LeaderState::Standby))).await.unwrap();
        a.shutdown.cancel();
        drop(term_a);
        within(a.elector.join()).await.unwrap();
        assert_eq!(
            api.holder("jobwright-controller").as_deref(),
            Some("intruder"),
            "a standby never releases someone else's lease"
        );
    }
}
