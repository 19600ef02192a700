//! `jobwright local`: the API server, the node simulator and the Job (+TTL, +CronJob) controllers in one
//! process, so a user's own Job manifests run for real on one machine and `kubectl` works against it.
//!
//! Design: the three parts talk to each other only through the API server's HTTP API, exactly as
//! they would in a cluster: the controllers and the kubelet hold ordinary `kube::Client`s, whose
//! requests go through the same axum router (the same handler chain) as kubectl's, but are handed
//! to it in process instead of over TCP and HTTP/1 ([`in_process_client`]; `--tcp-clients` for
//! loopback TCP, as before). The controller manages ALL Jobs (`manage_all`),
//! since there is no built-in controller to share them with, and installs the `jobwright.dev/v1`
//! Job CRD at start so both kinds run (`kubectl get wjob`). Shutdown order on SIGINT/SIGTERM: the
//! controller first (no new pods), then the kubelet (kills every process it started), then the
//! server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::apiserver::{http, kubeconfig};
use crate::kubelet::{Backoff, ExecutorKind, Kubelet, KubeletConfig};

/// The port `jobwright local` prefers (kube-apiserver's secure port), when it is free.
pub const DEFAULT_PORT: u16 = 6443;

/// How long the controllers may take to finish their in-flight reconciles on shutdown.
const CONTROLLER_DRAIN: Duration = Duration::from_secs(10);

/// Arguments of `jobwright local`.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// Address to listen on (default 127.0.0.1:6443, or a free port if 6443 is taken; port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Where to write the kubeconfig for kubectl.
    #[arg(long, default_value = "jobwright.kubeconfig")]
    pub kubeconfig: PathBuf,
    /// How containers run: local processes, or simulated from pod annotations.
    #[arg(long, value_enum, default_value_t = ExecutorKind::Process)]
    pub executor: ExecutorKind,
    /// Number of simulated nodes.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Keep the API server's state in this directory (a crash-safe log + snapshot) and the
    /// container logs under `DATA_DIR/kubelet`; without it, state is in memory only. A restart is a
    /// node reboot: pods that were running lose their containers (exit 137), and Jobs replace them.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Apply this manifest once everything is up, wait for its Jobs to finish, print how each
    /// ended with its pods' logs, then stop (exit 0 if every Job completed, 1 otherwise).
    #[arg(long, value_name = "FILE")]
    pub run: Option<PathBuf>,
    /// With `--run`: how long to wait for the Jobs.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub run_timeout: Duration,
    /// First pod re-creation delay after a pod failure (upstream default 10s), e.g. `10s`, `200ms`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub pod_backoff_base: Duration,
    /// First container restart delay of the kubelet (upstream default 10s), e.g. `10s`, `200ms`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub restart_backoff_base: Duration,
    /// Service address ranges.
    #[command(flatten)]
    pub service_ranges: ServiceRangeArgs,
    /// The pod address range (kind's default): with the process executor and root, each
    /// `jobwright local` takes a free /24 of it, each pod its own address, network namespace and
    /// hostname, and an embedded cluster DNS server answers Service names.
    #[arg(long, default_value = crate::kubelet::podnet::DEFAULT_POD_CIDR)]
    pub pod_cidr: crate::kubelet::podnet::Ipv4Net,
    /// Run pods on the host's network even as root (as without root: one address, shared ports,
    /// no cluster DNS).
    #[arg(long)]
    pub host_network: bool,
    /// Do not write the node simulator's per-pod events (the scheduler's `Scheduled`, the
    /// kubelet's `Pulled`, `Created`, `Started`, ...): about half of the API writes of a scale run
    /// with `--executor simulate`. The Job controller's events are written either way.
    #[arg(long)]
    pub no_pod_events: bool,
    /// How long an Event is kept after its last write (kube-apiserver's `--event-ttl`).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub event_ttl: Duration,
    /// Logging (`--log-level`, `--log-format`), as `jobwright controller` takes them.
    #[command(flatten)]
    pub telemetry: crate::telemetry::TelemetryArgs,
    /// The in-process components (controllers, node simulator, `--run`) talk to the API server
    /// over loopback TCP and HTTP/1, as kubectl does, instead of in process (for comparison
    /// benchmarks).
    #[arg(long, hide = true)]
    pub tcp_clients: bool,
}

/// kube-apiserver's `--service-cluster-ip-range` and `--service-node-port-range`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceRangeArgs {
    /// The IPv4 range Service cluster IPs are allocated from (its first address is the
    /// `kubernetes` Service's), as kube-apiserver's flag; kind's default.
    #[arg(long, default_value = "10.96.0.0/16", value_parser = parse_cidr)]
    pub service_cluster_ip_range: String,
    /// The node ports NodePort and LoadBalancer Services are given, as kube-apiserver's flag.
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    pub service_node_port_range: String,
}

impl ServiceRangeArgs {
    /// The ranges for the server's configuration.
    pub fn ranges(&self) -> jobwright_apiserver::services::ServiceRanges {
        jobwright_apiserver::services::ServiceRanges::parse(
            &self.service_cluster_ip_range,
            &self.service_node_port_range,
        )
        .unwrap_or_default()
    }
}

fn parse_cidr(s: &str) -> Result<String, String> {
    jobwright_apiserver::services::ServiceRanges::parse_cidr(s).map(|_| s.to_string())
}

fn parse_port_range(s: &str) -> Result<String, String> {
    jobwright_apiserver::services::ServiceRanges::parse_port_range(s).map(|_| s.to_string())
}

/// The log filter of `jobwright local` when neither `--log-level` nor `RUST_LOG` is set: quiet
/// enough that a user sees the important lines.
pub const DEFAULT_LOG_FILTER: &str = "info,kube=warn,kube_runtime=warn,hyper=warn,tower=warn";

pub(crate) use jobwright_apiserver::say;

/// Parse `300ms`, `10s`, `2m`, `1h`, or a bare number of seconds, for clap.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse_duration(s)
        .ok_or_else(|| format!("invalid duration {s:?}: expected e.g. 10s, 500ms, 2m (units ns, us, ms, s, m, h)"))
}

/// Creates (or, with `--data-dir` state from an older version, replaces) the `jobwright.dev/v1`
/// Job CRD in the embedded API server.
pub async fn install_crd(client: &kube::Client) -> Result<(), kube::Error> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let crd = crate::crd::crd();
    let params = kube::api::PatchParams::apply("jobwright").force();
    let name = crd.metadata.name.clone().unwrap_or_default();
    api.patch(&name, &params, &kube::api::Patch::Apply(&crd)).await?;
    Ok(())
}

/// Run everything until `shutdown` resolves; then stop the controller, every pod process, and the
/// server, in that order.
pub async fn run(
    args: LocalArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error>> {
    // `--run FILE`: a file that cannot be read or parsed fails before anything starts.
    if let Some(file) = &args.run {
        crate::run::check_file(&file.display().to_string())?;
    }
    let config = http::ServerConfig {
        data_dir: args.data_dir.clone(),
        service_ranges: args.service_ranges.ranges(),
        event_ttl: args.event_ttl,
        ..Default::default()
    };
    let running = match args.listen {
        Some(addr) => http::start(addr, config).await?,
        None => match http::start(([127, 0, 0, 1], DEFAULT_PORT).into(), config.clone()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(port = DEFAULT_PORT, error = %e, "default port unavailable, using a free port");
                http::start(([127, 0, 0, 1], 0).into(), config).await?
            }
        },
    };
    let url = running.url();
    // The parts in this process use the server directly; the kubeconfig is for the user, written
    // only when the server outlives this call (not with `--run`), and removed when it stops.
    let kubeconfig_path = match args.run {
        None => {
            let path = std::path::absolute(&args.kubeconfig)?;
            kubeconfig::write(&path, &url)?;
            Some(path)
        }
        Some(_) => None,
    };
    // The controllers and the node simulator identify themselves as in a cluster (the field
    // managers of their writes; see `crate::agent`).
    let (client, kubelet_client) = if args.tcp_clients {
        let tcp = |ua| -> Result<kube::Client, Box<dyn std::error::Error>> {
            let mut cfg = kube::Config::new(url.parse()?);
            crate::agent::set(&mut cfg, ua);
            Ok(kube::Client::try_from(cfg)?)
        };
        (tcp(crate::agent::controllers())?, tcp(crate::agent::kubelet())?)
    } else {
        (
            in_process_client(running.server.clone(), crate::agent::controllers()),
            in_process_client(running.server.clone(), crate::agent::kubelet()),
        )
    };
    let (network, network_note) = start_pod_network(&args, &client).await;
    let kubelet_config = KubeletConfig {
        nodes: args.nodes,
        executor: args.executor,
        backoff: Backoff {
            base: args.restart_backoff_base,
            max: Duration::from_secs(300).max(args.restart_backoff_base),
        },
        data_dir: args.data_dir.as_ref().map(|d| d.join("kubelet")),
        network: network.as_ref().map(|(n, _)| n.clone()),
        events: !args.no_pod_events,
        ..Default::default()
    };
    let kubelet = Kubelet::start(kubelet_client, kubelet_config).await?;

    let job_config = crate::job::Config {
        manage_all: true,
        backoff_base: args.pod_backoff_base,
        backoff_cap: Duration::from_secs(600).max(args.pod_backoff_base),
        ..Default::default()
    };
    // The jobwright.dev/v1 Job CRD, so `kubectl apply` of a manifest with that apiVersion runs too.
    install_crd(&client).await?;
    let opts = crate::job::controller::Options {
        config: job_config,
        ttl_controller: true,
        cronjob_controller: true,
        metrics: None,
        caches_synced: None,
        crd_jobs: crate::job::controller::CrdJobs::Enabled,
        ..Default::default()
    };
    let stop_controller = tokio_util::sync::CancellationToken::new();
    let controller =
        tokio::spawn(crate::job::controller::run(client.clone(), opts, stop_controller.clone().cancelled_owned()));
    // The Endpoints and EndpointSlice controllers (kube-controller-manager's, which a cluster runs).
    let endpoints = tokio::spawn(crate::endpoints::run(client.clone(), stop_controller.clone().cancelled_owned()));

    match (&kubeconfig_path, &args.run) {
        (Some(path), _) => {
            say!("jobwright local: API server on {url} — export KUBECONFIG={}", path.display());
            if let Some(note) = &network_note {
                say!("jobwright local: {note}");
            }
            tracing::info!(%url, nodes = args.nodes, executor = ?args.executor, "ready; Ctrl-C to stop");
        }
        (None, Some(file)) => {
            say!("jobwright local: running {} (API server on {url} until its Jobs finish)", file.display());
            if let Some(note) = &network_note {
                say!("jobwright local: {note}");
            }
            tracing::info!(%url, nodes = args.nodes, executor = ?args.executor, "ready");
        }
        (None, None) => {}
    }

    let outcome = match &args.run {
        None => {
            shutdown.await;
            Ok(())
        }
        Some(file) => {
            let path = file.display().to_string();
            tokio::select! {
                r = crate::run::apply_and_wait(&client, &path, args.run_timeout) => match r {
                    Ok(outcomes) if outcomes.iter().all(|o| o.complete()) => Ok(()),
                    Ok(outcomes) => Err(format!(
                        "{} of {} Jobs did not complete",
                        outcomes.iter().filter(|o| !o.complete()).count(),
                        outcomes.len()
                    )
                    .into()),
                    Err(e) => Err(e.into()),
                },
                _ = shutdown => Ok(()),
            }
        }
    };
    tracing::info!("shutting down: stopping the controller, the pods, then the API server");
    stop_controller.cancel();
    // Bounded: kube-runtime 5's Controller never finishes a graceful shutdown that starts before
    // its store's first list arrived (its runner waits for the store forever), e.g. a SIGTERM
    // right after start. Its reconciles are safe to cut (expectations and finalizers).
    let abort = controller.abort_handle();
    if tokio::time::timeout(CONTROLLER_DRAIN, controller).await.is_err() {
        tracing::warn!("the controllers did not stop within {CONTROLLER_DRAIN:?}; stopping them now");
        abort.abort();
    }
    let _ = endpoints.await;
    kubelet.shutdown().await;
    if let Some((net, dns)) = network {
        dns.cancel();
        net.shutdown();
    }
    running.shutdown().await;
    if let Some(path) = &kubeconfig_path {
        kubeconfig::remove_if_ours(path, &url);
    }
    tracing::info!("stopped");
    outcome
}

/// How long an in-process request may take until its response head, as a TCP client's read
/// timeout would bound it (the server ends watches and followed logs itself, well before).
const IN_PROCESS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(295);

/// A `kube::Client` whose requests `server`'s router ([`http::router`], the handler chain TCP
/// requests go through too) serves in this process, without TCP, HTTP/1 framing or a connection
/// pool. Each request is served on its own task, as a connection's would be, and the client
/// retries 429/503/504 as a `kube::Client` from a `Config` does.
///
/// What the connection layer (`apiserver::conn`) does for a TCP client and this does not: the
/// header-size and header-read/body-read timeouts (requests built in this process are complete
/// and bounded by their builder), the connection bound, and the `--max-requests-inflight` limits:
/// the in-process components are exempt from those, as kube-apiserver's own loopback clients
/// are (API Priority and Fairness's `exempt` level); each bounds its own concurrency (the
/// controllers' worker counts, the kubelet's workers).
///
/// Every request carries `user_agent`, as a TCP client's `kube::Config` headers would.
pub fn in_process_client(server: std::sync::Arc<http::Server>, user_agent: ::http::HeaderValue) -> kube::Client {
    use tower::ServiceExt as _;
    let router = http::router(server);
    let serve = tower::service_fn(move |mut req: ::http::Request<kube::client::Body>| {
        req.headers_mut().insert(::http::header::USER_AGENT, user_agent.clone());
        let task = tokio::spawn(router.clone().oneshot(req));
        async move {
            match tokio::time::timeout(IN_PROCESS_RESPONSE_TIMEOUT, task).await {
                Ok(Ok(Ok(resp))) => Ok(resp),
                Ok(Ok(Err(never))) => match never {},
                Ok(Err(e)) => Err(tower::BoxError::from(format!("in-process request failed: {e}"))),
                Err(_) => Err(tower::BoxError::from("in-process request timed out before a response")),
            }
        }
    });
    let retry = tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry());
    kube::Client::new(tower::ServiceBuilder::new().layer(retry).service(serve), "default")
}

/// The pod network and its DNS server (stopped by the token) with the process executor and root;
/// otherwise, or when it cannot be set up, pods share the host network. The note (printed after
/// the API server's line) says which.
async fn start_pod_network(
    args: &LocalArgs,
    client: &kube::Client,
) -> (Option<(std::sync::Arc<crate::kubelet::podnet::PodNetwork>, tokio_util::sync::CancellationToken)>, Option<String>)
{
    use crate::kubelet::{dns, podnet};
    if args.executor != ExecutorKind::Process || args.host_network {
        return (None, None);
    }
    let host_mode = "pods share the host network (one address, no cluster DNS)";
    if let Err(why) = podnet::available() {
        return (None, Some(format!("{why}: {host_mode}; run as root for pod networking")));
    }
    let cidr = args.pod_cidr;
    let net = match tokio::task::spawn_blocking(move || podnet::PodNetwork::start(cidr)).await {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => return (None, Some(format!("cannot set up the pod network ({e}): {host_mode}"))),
        Err(e) => return (None, Some(format!("cannot set up the pod network ({e}): {host_mode}"))),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let addr = std::net::SocketAddr::new(net.host_ip().into(), 53);
    let upstreams = dns::upstreams(net.host_resolv());
    let dns_note = match dns::serve(client.clone(), addr, upstreams, stop.clone()).await {
        Ok(_) => format!("cluster DNS on {}", net.host_ip()),
        Err(e) => format!("no cluster DNS: cannot serve on {addr}: {e}"),
    };
    // ClusterIP and NodePort Services, proxied in userspace (kube-proxy's former userspace mode).
    crate::kubelet::proxy::spawn(client.clone(), net.bridge().to_string(), net.host_ip(), stop.clone());
    let note = format!("pod network {} on bridge {} ({dns_note}; Service proxy)", net.subnet(), net.bridge());
    (Some((net, stop)), Some(note))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams, WatchEvent, WatchParams};

    fn config_map(name: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        cm.data = Some([("k".to_string(), "v".to_string())].into());
        cm
    }

    /// The in-process client gets what a TCP client gets: objects, `Status` errors, watch events;
    /// and its watches end when the server stops, as a TCP connection's do.
    #[tokio::test]
    async fn in_process_client_reads_writes_watches_and_its_watches_end_at_shutdown() {
        let server = http::Server::new(http::ServerConfig::default());
        let client = in_process_client(server.clone(), crate::agent::controllers());
        let cms: Api<ConfigMap> = Api::namespaced(client, "default");
        let mut watch = cms.watch(&WatchParams::default(), "0").await.expect("watch").boxed();
        let created = cms.create(&PostParams::default(), &config_map("a")).await.expect("create");
        assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
        // The client's agent names the write's field manager, as over TCP.
        let managers: Vec<_> = created.metadata.managed_fields.iter().flatten().map(|e| e.manager.clone()).collect();
        assert_eq!(managers, [Some("jobwright".to_string())]);
        let first = tokio::time::timeout(Duration::from_secs(30), watch.try_next()).await.expect("an event in time");
        match first.expect("no watch error") {
            Some(WatchEvent::Added(cm)) => assert_eq!(cm.metadata.name.as_deref(), Some("a")),
            other => panic!("expected Added a, got {other:?}"),
        }
        match cms.create(&PostParams::default(), &config_map("a")).await {
            Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists")),
            other => panic!("expected a 409 AlreadyExists Status, got {other:?}"),
        }
        server.stopping.cancel();
        let ended =
            tokio::time::timeout(Duration::from_secs(30), async { while let Ok(Some(_)) = watch.try_next().await {} })
                .await;
        assert!(ended.is_ok(), "the watch did not end when the server stopped");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
