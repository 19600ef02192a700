//! Leader election against the envtest-style API server: two electors on one Lease.
//!
//! Waits are on the electors' state channels; `within` is only a failure bound so a broken
//! elector fails the test instead of hanging it.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use jobwright::{
    admin::{Leadership, Readiness},
    apiserver::testkit::TestApiServer,
    leader::{LeaderConfig, LeaderElector, LeaderState, next_term},
    metrics::Metrics,
};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Namespace};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const NS: &str = "jobwright-system";
const LEASE: &str = "jobwright-controller";

async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut).await.expect("no progress in 60s")
}

fn config(identity: &str) -> LeaderConfig {
    LeaderConfig {
        // Short for quick takeovers; a renew deadline of 3 s so that a loaded test machine does not
        // make a leader step down mid-test.
        lease_duration: Duration::from_secs(5),
        renew_deadline: Duration::from_secs(3),
        drain_timeout: Duration::from_secs(5),
        ..LeaderConfig::new(LEASE, NS, identity)
    }
}

struct Replica {
    elector: LeaderElector,
    rx: watch::Receiver<LeaderState>,
    readiness: Readiness,
    metrics: Metrics,
    shutdown: CancellationToken,
}

async fn replica(client: Client, identity: &str) -> Replica {
    let readiness = Readiness::new();
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let elector = LeaderElector::start(client, config(identity), readiness.clone(), metrics.clone(), shutdown.clone())
        .await
        .unwrap();
    let rx = elector.subscribe();
    Replica { elector, rx, readiness, metrics, shutdown }
}

async fn holder(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    leases.get(LEASE).await.unwrap().spec.and_then(|s| s.holder_identity)
}

async fn server() -> (TestApiServer, Client) {
    let server = TestApiServer::start().await;
    let client = server.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace { metadata: ObjectMeta { name: Some(NS.into()), ..Default::default() }, ..Default::default() };
    namespaces.create(&PostParams::default(), &ns).await.unwrap();
    (server, client)
}

#[tokio::test]
async fn standby_takes_over_when_the_leader_shuts_down() {
    let (_server, client) = server().await;
    let mut a = replica(client.clone(), "replica-a").await;
    let term_a = within(next_term(&mut a.rx)).await.expect("a leads");
    assert_eq!(holder(&client).await.as_deref(), Some("replica-a"));
    assert_eq!(a.readiness.get().leadership, Leadership::Leader);
    assert!(a.metrics.render().lines().any(|l| l == "jobwright_leader 1"));

    let mut b = replica(client.clone(), "replica-b").await;
    assert_eq!(b.readiness.get().leadership, Leadership::Standby);
    assert!(!b.rx.borrow().is_leader());

    // SIGTERM on a: its term ends first, the lease is released only after the term is dropped.
    a.shutdown.cancel();
    within(term_a.ended()).await;
    within(a.rx.wait_for(|s| matches!(s, LeaderState::Stopping))).await.unwrap();
    assert_eq!(holder(&client).await.as_deref(), Some("replica-a"), "not released while a drains");
    drop(term_a);
    within(a.elector.join()).await.unwrap();
    assert_eq!(holder(&client).await, None, "released on graceful shutdown");
    assert!(a.metrics.render().lines().any(|l| l == "jobwright_leader 0"));

    let term_b = within(next_term(&mut b.rx)).await.expect("b takes over");
    assert_eq!(holder(&client).await.as_deref(), Some("replica-b"));
    assert_eq!(b.readiness.get().leadership, Leadership::Leader);
    b.shutdown.cancel();
    drop(term_b);
    within(b.elector.join()).await.unwrap();
}

#[tokio::test]
async fn standby_takes_over_a_dead_leader_within_the_lease_duration() {
    let (_server, client) = server().await;
    let mut a = replica(client.clone(), "replica-a").await;
    let term_a = within(next_term(&mut a.rx)).await.expect("a leads");
    let mut b = replica(client.clone(), "replica-b").await;

    // a dies without releasing (kill -9): no renewals, no release; its term ends with it.
    a.elector.abort();
    within(term_a.ended()).await;
    assert_eq!(holder(&client).await.as_deref(), Some("replica-a"));
    let term_b = within(next_term(&mut b.rx)).await.expect("b takes over the expired lease");
    assert_eq!(holder(&client).await.as_deref(), Some("replica-b"));
    drop((term_a, term_b));
    b.shutdown.cancel();
}

/// Fails every PATCH while `on` is set: the leader's renewals (and only those) fail.
#[derive(Clone)]
struct FailPatches(Arc<AtomicBool>);

impl<S> tower::Layer<S> for FailPatches {
    type Service = FailPatchesService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        FailPatchesService { inner, on: self.0.clone() }
    }
}

#[derive(Clone)]
struct FailPatchesService<S> {
    inner: S,
    on: Arc<AtomicBool>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<http::Request<kube::client::Body>> for FailPatchesService<S>
where
    S: tower::Service<http::Request<kube::client::Body>, Response = http::Response<B>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        if self.on.load(Ordering::SeqCst) && req.method() == http::Method::PATCH {
            return Box::pin(async { Err::<S::Response, BoxError>("injected: API server unreachable".into()) });
        }
        Box::pin(self.inner.call(req))
    }
}

#[tokio::test]
async fn leader_that_cannot_renew_stops_before_the_standby_starts() {
    let (server, client) = server().await;
    let switch = Arc::new(AtomicBool::new(false));
    let config = kube::Config::new(server.url().parse().unwrap());
    let flaky = kube::client::ClientBuilder::try_from(config).unwrap().with_layer(&FailPatches(switch.clone())).build();
    let mut a = replica(flaky, "replica-a").await;
    let term_a = within(next_term(&mut a.rx)).await.expect("a leads");
    let mut b = replica(client.clone(), "replica-b").await;

    switch.store(true, Ordering::SeqCst);
    let term_b = within(next_term(&mut b.rx)).await.expect("b takes over");
    assert!(
        term_a.is_ended(),
        "a stopped at renewTime + renew deadline, before b could start at renewTime + lease duration"
    );
    within(a.rx.wait_for(|s| matches!(s, LeaderState::Standby))).await.unwrap();
    assert_eq!(a.readiness.get().leadership, Leadership::Standby);
    assert_eq!(holder(&client).await.as_deref(), Some("replica-b"));
    drop((term_a, term_b));
    a.shutdown.cancel();
    b.shutdown.cancel();
}

#[tokio::test]
async fn contenders_starting_together_elect_exactly_one() {
    let (_server, client) = server().await;
    let (mut a, mut b) = tokio::join!(replica(client.clone(), "replica-a"), replica(client.clone(), "replica-b"));
    let first = within(async {
        tokio::select! {
            t = next_term(&mut a.rx) => ("replica-a", t.unwrap()),
            t = next_term(&mut b.rx) => ("replica-b", t.unwrap()),
        }
    })
    .await;
    assert_eq!(holder(&client).await.as_deref(), Some(first.0));
    let other = if first.0 == "replica-a" { &b } else { &a };
    assert!(!other.rx.borrow().is_leader(), "only {} leads", first.0);
    drop(first);
    a.shutdown.cancel();
    b.shutdown.cancel();
}

/// The whole plumbing with `--leader-elect`: readiness follows caches and leadership, the
/// elector's own Lease calls go through the instrumented client, shutdown releases the Lease.
#[tokio::test]
async fn ops_with_leader_election_is_ready_as_leader_and_releases_on_shutdown() {
    use clap::Parser;
    use jobwright::ops::{Ops, OpsArgs};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ops: OpsArgs,
    }
    let (server, client) = server().await;
    let cli = Cli::try_parse_from([
        "jobwright",
        "--admin-listen=127.0.0.1:0",
        "--leader-elect",
        "--leader-elect-identity=pod-0",
        "--leader-elect-resource-namespace=jobwright-system",
        "--leader-elect-lease-duration=3",
        "--leader-elect-renew-deadline=1.5",
    ])
    .unwrap();
    let shutdown = CancellationToken::new();
    let ops = Ops::start_with_shutdown(&cli.ops, kube::Config::new(server.url().parse().unwrap()), shutdown.clone())
        .await
        .unwrap();
    let mut leader = ops.elector.subscribe();
    let term = within(next_term(&mut leader)).await.expect("leads");
    assert_eq!(ops.readiness.check(), Err("caches not synced"));
    ops.readiness.set_caches_synced(true);
    assert_eq!(ops.readiness.check(), Ok(()));

    let text = ops.metrics.render();
    for series in [
        r#"jobwright_api_requests_total{verb="get",code="404"}"#,
        r#"jobwright_api_requests_total{verb="create",code="201"}"#,
        r#"jobwright_api_requests_total{verb="patch",code="200"}"#,
    ] {
        assert!(text.lines().any(|l| l.starts_with(series)), "{series} missing in\n{text}");
    }
    assert!(text.lines().any(|l| l == "jobwright_leader 1"));

    shutdown.cancel();
    within(term.ended()).await;
    drop(term);
    within(ops.finish()).await.unwrap();
    assert_eq!(holder(&client).await, None);
}
