//! The Service proxy of `jobwright local`'s pod network: kube-proxy's former userspace mode, so
//! Services are reachable from pods with no iptables, nftables or IPVS (no such binaries or kernel
//! modules are needed).
//!
//! - Every ClusterIP of a Service (`spec.clusterIP`, IPv4) is put on the instance's bridge as a
//!   /32, so a pod's packets to it go to the host through its default route (the bridge address).
//! - For every Service port (TCP or UDP) with at least one ready endpoint, a listener on
//!   `clusterIP:port`, bound to the bridge device (`SO_BINDTODEVICE`): parallel instances that
//!   allocate the same ClusterIP each serve their own pods. A connection goes to the next
//!   endpoint (round robin; on a failed dial, the next one): `podIP:port` of the EndpointSlices
//!   that the EndpointSlice controller writes, the port being the slice's port with the Service
//!   port's name and protocol (so named `targetPort`s resolve per pod, as upstream). A port with
//!   no ready endpoint has no listener: a connection is refused, as kube-proxy's REJECT rule does.
//! - UDP is forwarded per client address, as conntrack tracks a flow: a client's first datagram
//!   picks the next endpoint, its later ones go to the same endpoint, and the endpoint's replies
//!   come back from the Service's address, until the flow has been idle for conntrack's timeout
//!   ([`UdpIdle`]: 30 s unanswered, 120 s once answered) or its endpoint is gone.
//! - NodePort (and LoadBalancer) Services also listen on `hostIP:nodePort` (the node's address on
//!   the pod network), reachable from the host and from pods.
//!
//! Differences from kube-proxy in iptables/nftables mode: the backend sees the connection come
//! from the node's address (a proxied connection, no NAT, so not the client pod's address);
//! `sessionAffinity`, traffic policies and topology hints are not applied; SCTP ports are not
//! proxied; nodePorts are not served on 127.0.0.1 or other host addresses.
//!
//! Services and EndpointSlices are watched (reflectors, as the DNS server does); each change
//! triggers a reconcile of the addresses and listeners. The addresses go with the bridge, so a
//! crashed instance's are removed with its bridge by the next start's sweep; the pure part,
//! [`frontends`], maps the watched objects to listeners and endpoints.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::dns::SERVICE_NAME_LABEL;

/// How long a dial to an endpoint may take before the next one is tried.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections proxied and UDP flows kept at once, over all Services (more connections wait in
/// the listen backlog; a new UDP client's datagrams are dropped).
pub const MAX_CONNECTIONS: usize = 4096;

/// The protocol of a Service port the proxy serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (the default of a Service port).
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    fn of(name: Option<&str>) -> Option<Self> {
        match name.unwrap_or("TCP") {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
        }
    }
}

/// Where a proxy listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Frontend {
    /// `clusterIP:port`, on the bridge device.
    ClusterIp(SocketAddrV4, Protocol),
    /// `nodePort` on the node's address.
    NodePort(u16, Protocol),
}

/// The ClusterIP addresses of `services` (headless and ExternalName Services have none).
pub fn cluster_ips(services: &[Arc<Service>]) -> BTreeSet<Ipv4Addr> {
    services.iter().filter_map(|s| cluster_ip(s)).collect()
}

fn cluster_ip(service: &Service) -> Option<Ipv4Addr> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.cluster_ip.as_deref()?.parse().ok()
}

/// Every frontend with its ready endpoints (sorted, no duplicates; only frontends that have at
/// least one). TCP and UDP ports (not SCTP); an endpoint is ready unless its `ready` condition is
/// false (nil means ready, as the API documents).
pub fn frontends(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> BTreeMap<Frontend, Vec<SocketAddrV4>> {
    let mut out: BTreeMap<Frontend, Vec<SocketAddrV4>> = BTreeMap::new();
    for service in services {
        let Some(ip) = cluster_ip(service) else { continue };
        let (Some(ns), Some(name)) = (service.metadata.namespace.as_deref(), service.metadata.name.as_deref()) else {
            continue;
        };
        let spec = service.spec.as_ref().expect("cluster_ip found a spec");
        for sp in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::of(sp.protocol.as_deref()) else { continue };
            let Ok(port) = u16::try_from(sp.port) else { continue };
            let port_name = sp.name.as_deref().unwrap_or_default();
            let mut backends: Vec<SocketAddrV4> = slices
                .iter()
                .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
                .filter(|s| {
                    s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)).map(String::as_str) == Some(name)
                })
                .filter(|s| s.address_type == "IPv4")
                .flat_map(|s| {
                    let target = s
                        .ports
                        .iter()
                        .flatten()
                        .find(|p| {
                            p.name.as_deref().unwrap_or_default() == port_name
                                && p.protocol.as_deref().unwrap_or("TCP") == protocol.as_str()
                        })
                        .and_then(|p| p.port)
                        .and_then(|p| u16::try_from(p).ok());
                    s.endpoints
                        .iter()
                        .filter(|ep| ep.conditions.as_ref().and_then(|c| c.ready) != Some(false))
                        .flat_map(|ep| ep.addresses.iter())
                        .filter_map(move |a| Some(SocketAddrV4::new(a.parse().ok()?, target?)))
                })
                .collect();
            backends.sort();
            backends.dedup();
            if backends.is_empty() {
                continue;
            }
            out.insert(Frontend::ClusterIp(SocketAddrV4::new(ip, port), protocol), backends.clone());
            if let Some(np) = sp.node_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0) {
                out.insert(Frontend::NodePort(np, protocol), backends);
            }
        }
    }
    out
}

/// The endpoints of one frontend, replaced as they change, and the round-robin position.
#[derive(Debug, Default)]
pub struct Backends {
    list: std::sync::RwLock<Arc<Vec<SocketAddrV4>>>,
    next: AtomicUsize,
}

impl Backends {
    /// Endpoints to start with.
    pub fn new(list: Vec<SocketAddrV4>) -> Arc<Self> {
        Arc::new(Self { list: std::sync::RwLock::new(Arc::new(list)), next: AtomicUsize::new(0) })
    }

    /// Replace the endpoints.
    pub fn set(&self, list: Vec<SocketAddrV4>) {
        let mut cur = self.list.write().unwrap_or_else(|e| e.into_inner());
        if **cur != list {
            *cur = Arc::new(list);
        }
    }

    /// Whether `backend` is one of the endpoints now.
    fn contains(&self, backend: SocketAddrV4) -> bool {
        self.list.read().unwrap_or_else(|e| e.into_inner()).contains(&backend)
    }

    /// The endpoints to try for one connection: all of them, starting at the next in turn.
    fn order(&self) -> Vec<SocketAddrV4> {
        let list = self.list.read().unwrap_or_else(|e| e.into_inner()).clone();
        if list.is_empty() {
            return vec![];
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % list.len();
        list[start..].iter().chain(&list[..start]).copied().collect()
    }
}

/// Accept connections on `listener` until `stop`, each proxied to an endpoint of `backends`
/// until either side closes or `shutdown` (the whole proxy stopping).
pub fn spawn_listener(
    listener: TcpListener,
    backends: Arc<Backends>,
    limit: Arc<Semaphore>,
    stop: CancellationToken,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                _ = stop.cancelled() => return,
                p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            };
            let conn = tokio::select! {
                _ = stop.cancelled() => return,
                c = listener.accept() => c,
            };
            let Ok((conn, _)) = conn else {
                // EMFILE and the like: back off a little rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let (backends, shutdown) = (backends.clone(), shutdown.clone());
            tokio::spawn(async move {
                let _permit = permit;
                proxy_connection(conn, &backends, shutdown).await;
            });
        }
    })
}

async fn proxy_connection(mut conn: TcpStream, backends: &Backends, shutdown: CancellationToken) {
    let _ = conn.set_nodelay(true);
    for backend in backends.order() {
        match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(backend)).await {
            Ok(Ok(mut upstream)) => {
                let _ = upstream.set_nodelay(true);
                tokio::select! {
                    r = tokio::io::copy_bidirectional(&mut conn, &mut upstream) => {
                        if let Err(e) = r {
                            debug!(%backend, error = %e, "proxied connection ended with an error");
                        }
                    }
                    _ = shutdown.cancelled() => {}
                }
                return;
            }
            Ok(Err(e)) => debug!(%backend, error = %e, "endpoint refused; trying the next"),
            Err(_) => debug!(%backend, "endpoint dial timed out; trying the next"),
        }
    }
    // No endpoint answered: the client sees the connection reset.
    let _ = conn.set_zero_linger();
}

/// How long conntrack keeps a UDP flow without a datagram: 30 s while only the client has sent
/// (`nf_conntrack_udp_timeout`), 120 s once the endpoint has answered
/// (`nf_conntrack_udp_timeout_stream`).
#[derive(Debug, Clone, Copy)]
pub struct UdpIdle {
    /// Before the endpoint's first reply.
    pub unreplied: Duration,
    /// After it.
    pub replied: Duration,
}

impl Default for UdpIdle {
    fn default() -> Self {
        Self { unreplied: Duration::from_secs(30), replied: Duration::from_secs(120) }
    }
}

/// One UDP flow, as the forwarder keeps it: where its datagrams go (its task, which owns the
/// socket connected to the endpoint and ends when this sender is dropped), the endpoint, and
/// when it last carried a datagram either way (ms since the forwarder started; `u64::MAX`
/// bit set once the endpoint has replied).
struct Flow {
    datagrams: mpsc::Sender<Bytes>,
    backend: SocketAddrV4,
    last: Arc<AtomicU64>,
}

/// Set in [`Flow::last`] once the endpoint has replied.
const REPLIED: u64 = 1 << 63;

/// Forward the datagrams `socket` (a UDP frontend) receives until `stop` or `shutdown`: each
/// client address is a flow to one endpoint of `backends` (the next in turn when the flow
/// starts), whose replies are sent back to the client from `socket`. A flow ends when it has
/// been idle for `idle` (conntrack's timeouts) or its endpoint is no longer in `backends` (as
/// kube-proxy clears a removed endpoint's conntrack entries); the client's next datagram then
/// starts a new one. Each flow holds a permit of `limit` (the proxy's bound on connections and
/// flows together): without one, or without an endpoint, a new client's datagrams are dropped
/// (UDP has no refusal to give).
pub fn spawn_udp(
    socket: UdpSocket,
    backends: Arc<Backends>,
    idle: UdpIdle,
    limit: Arc<Semaphore>,
    stop: CancellationToken,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let socket = Arc::new(socket);
        let start = std::time::Instant::now();
        let now_ms = move || u64::try_from(start.elapsed().as_millis()).unwrap_or(REPLIED - 1);
        let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
        let mut buf = vec![0u8; 65_536];
        let period = (idle.unreplied.min(idle.replied).min(Duration::from_secs(1)) / 2).max(Duration::from_millis(10));
        let mut sweep = tokio::time::interval(period);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let received = tokio::select! {
                _ = stop.cancelled() => break,
                _ = shutdown.cancelled() => break,
                _ = sweep.tick() => {
                    // The only place a flow expires: a datagram the loop hands a flow is never
                    // lost to its expiry.
                    let now = now_ms();
                    flows.retain(|_, f| {
                        let last = f.last.load(Ordering::Acquire);
                        let timeout = if last & REPLIED != 0 { idle.replied } else { idle.unreplied };
                        now.saturating_sub(last & !REPLIED) < u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
                    });
                    continue;
                }
                r = socket.recv_from(&mut buf) => r,
            };
            // A send of ours that the kernel answered with an ICMP error surfaces here: not fatal.
            let Ok((n, client)) = received else { continue };
            let datagram = Bytes::copy_from_slice(&buf[..n]);
            // A flow whose endpoint went (or whose task ended) is over.
            if flows.get(&client).is_some_and(|f| f.datagrams.is_closed() || !backends.contains(f.backend)) {
                flows.remove(&client);
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = flows.entry(client) {
                let Ok(permit) = limit.clone().try_acquire_owned() else { continue };
                let Some(backend) = backends.order().first().copied() else { continue };
                let upstream = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await {
                    Ok(u) if u.connect(backend).await.is_ok() => u,
                    _ => continue,
                };
                let (tx, rx) = mpsc::channel(64);
                let last = Arc::new(AtomicU64::new(now_ms()));
                tokio::spawn(run_flow(upstream, rx, socket.clone(), client, last.clone(), now_ms, permit));
                debug!(%client, %backend, "UDP flow started");
                slot.insert(Flow { datagrams: tx, backend, last });
            }
            if let Some(flow) = flows.get(&client) {
                flow.last.fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| Some(now_ms() | (l & REPLIED))).ok();
                // A full queue drops the datagram, as a full socket buffer would.
                let _ = flow.datagrams.try_send(datagram);
            }
        }
    })
}

/// One flow's task: the client's datagrams to the endpoint, the endpoint's back to the client
/// from the frontend socket, until the forwarder drops the flow (or stops).
async fn run_flow(
    upstream: UdpSocket,
    mut datagrams: mpsc::Receiver<Bytes>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    last: Arc<AtomicU64>,
    now_ms: impl Fn() -> u64,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    loop {
        tokio::select! {
            d = datagrams.recv() => match d {
                Some(d) => {
                    let _ = upstream.send(&d).await;
                }
                None => return,
            },
            r = upstream.readable() => {
                if r.is_err() {
                    return;
                }
                // On the stack, not in the task: no buffer is held between datagrams.
                let mut buf = [0u8; 65_536];
                // An error is an ICMP error for an earlier datagram (nothing listens there): the
                // flow stays, as conntrack keeps it.
                if let Ok(n) = upstream.try_recv(&mut buf) {
                    last.store(now_ms() | REPLIED, Ordering::Release);
                    // A full socket buffer drops the reply, as UDP may.
                    let _ = front.try_send_to(&buf[..n], client);
                }
            }
        }
    }
}

/// A UDP socket on `addr`, bound to `device` when given.
fn bind_udp(addr: SocketAddrV4, device: Option<&str>) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    if let Some(dev) = device {
        socket.bind_device(Some(dev.as_bytes()))?;
    }
    socket.bind(&SocketAddr::V4(addr).into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Bind a listener on `addr`, bound to `device` when given.
fn bind(addr: SocketAddrV4, device: Option<&str>) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    if let Some(dev) = device {
        socket.bind_device(Some(dev.as_bytes()))?;
    }
    socket.bind(SocketAddr::V4(addr))?;
    socket.listen(1024)
}

struct Listening {
    backends: Arc<Backends>,
    stop: CancellationToken,
}

/// The imperative shell: addresses on the bridge and listeners, reconciled to [`frontends`].
struct Proxy {
    bridge: String,
    node_ip: Ipv4Addr,
    addresses: BTreeSet<Ipv4Addr>,
    listening: BTreeMap<Frontend, Listening>,
    limit: Arc<Semaphore>,
    shutdown: CancellationToken,
}

/// `ip addr add|del ADDR/32 dev BRIDGE` on the blocking pool.
async fn address(op: &'static str, ip: Ipv4Addr, bridge: &str) -> Result<(), String> {
    let (cidr, bridge) = (format!("{ip}/32"), bridge.to_string());
    tokio::task::spawn_blocking(move || super::podnet::ip(&["addr", op, &cidr, "dev", &bridge]).map(|_| ()))
        .await
        .map_err(|e| e.to_string())?
}

impl Proxy {
    /// Bring addresses and listeners to what `services` and `slices` say. Returns whether
    /// something failed (to be retried).
    async fn reconcile(&mut self, services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> bool {
        let mut failed = false;
        let want_ips = cluster_ips(services);
        for ip in want_ips.difference(&self.addresses.clone()) {
            match address("add", *ip, &self.bridge).await {
                Ok(()) => {}
                Err(e) if e.contains("File exists") => {}
                Err(e) => {
                    warn!(%ip, error = %e, "cannot put the ClusterIP on the bridge");
                    failed = true;
                    continue;
                }
            }
            self.addresses.insert(*ip);
        }
        let want = frontends(services, slices);
        self.listening.retain(|f, l| {
            let keep = want.contains_key(f);
            if !keep {
                l.stop.cancel();
                debug!(frontend = ?f, "proxy listener closed");
            }
            keep
        });
        for (frontend, backends) in want {
            if let Some(l) = self.listening.get(&frontend) {
                l.backends.set(backends);
                continue;
            }
            let (addr, device, protocol) = match frontend {
                Frontend::ClusterIp(addr, p) if self.addresses.contains(addr.ip()) => (addr, Some(&*self.bridge), p),
                Frontend::ClusterIp(..) => continue,
                Frontend::NodePort(port, p) => (SocketAddrV4::new(self.node_ip, port), None, p),
            };
            let backends = Backends::new(backends);
            let stop = CancellationToken::new();
            let bound = match protocol {
                Protocol::Tcp => bind(addr, device).map(|listener| {
                    spawn_listener(listener, backends.clone(), self.limit.clone(), stop.clone(), self.shutdown.clone());
                }),
                Protocol::Udp => bind_udp(addr, device).map(|socket| {
                    let idle = UdpIdle::default();
                    spawn_udp(socket, backends.clone(), idle, self.limit.clone(), stop.clone(), self.shutdown.clone());
                }),
            };
            match bound {
                Ok(()) => {
                    debug!(?frontend, "proxy listener open");
                    self.listening.insert(frontend, Listening { backends, stop });
                }
                Err(e) => {
                    warn!(?frontend, error = %e, "cannot listen for a Service port");
                    failed = true;
                }
            }
        }
        for ip in self.addresses.difference(&want_ips).copied().collect::<Vec<_>>() {
            if let Err(e) = address("del", ip, &self.bridge).await {
                debug!(%ip, error = %e, "the ClusterIP was already gone from the bridge");
            }
            self.addresses.remove(&ip);
        }
        failed
    }

    fn stop(&mut self) {
        for l in self.listening.values() {
            l.stop.cancel();
        }
        self.listening.clear();
        self.shutdown.cancel();
    }
}

/// Keep `writer`'s cache of `api` current, notifying `changed` on every event.
async fn watch<K>(api: kube::Api<K>, writer: reflector::store::Writer<K>, changed: Arc<Notify>)
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .for_each(|_| {
            changed.notify_one();
            futures::future::ready(())
        })
        .await
}

/// Run the Service proxy for the pods on `bridge` (whose address is `node_ip`) until `stop`.
/// Services and EndpointSlices are watched through `client`. The addresses it adds stay until
/// the bridge goes (they are removed as Services go while it runs).
pub fn spawn(
    client: kube::Client,
    bridge: String,
    node_ip: Ipv4Addr,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (services, svc_writer) = reflector::store::<Service>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let changed = Arc::new(Notify::new());
    let svc_watch = watch(kube::Api::<Service>::all(client.clone()), svc_writer, changed.clone());
    let slice_watch = watch(kube::Api::<EndpointSlice>::all(client), slice_writer, changed.clone());
    let mut proxy = Proxy {
        bridge,
        node_ip,
        addresses: BTreeSet::new(),
        listening: BTreeMap::new(),
        limit: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        shutdown: CancellationToken::new(),
    };
    tokio::spawn(async move {
        {
            let reconcile = async {
                let mut retry = false;
                loop {
                    tokio::select! {
                        _ = changed.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(2)), if retry => {}
                    }
                    retry = proxy.reconcile(&services.state(), &slices.state()).await;
                }
            };
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = svc_watch => warn!("the Service proxy's Service watch ended"),
                _ = slice_watch => warn!("the Service proxy's EndpointSlice watch ended"),
                _ = reconcile => {}
            }
        }
        proxy.stop();
        info!("service proxy stopped");
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn svc(v: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn slice(ns: &str, svc: &str, ports: serde_json::Value, eps: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": format!("{svc}-x"), "namespace": ns,
                "labels": {"kubernetes.io/service-name": svc}}, "addressType": "IPv4", "ports": ports,
                "endpoints": eps}))
            .unwrap(),
        )
    }

    fn sa(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn frontends_follow_the_endpoint_slices_ports_by_name_and_only_ready_endpoints() {
        let services = vec![
            svc(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.20",
                "type": "NodePort", "ports": [
                    {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                    {"name": "metrics", "port": 9090, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "sig", "port": 9999, "protocol": "SCTP"}]}})),
            svc(json!({"metadata": {"name": "headless", "namespace": "default"},
                "spec": {"clusterIP": "None", "ports": [{"port": 80}]}})),
            svc(json!({"metadata": {"name": "empty", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.21", "ports": [{"port": 80}]}})),
            svc(json!({"metadata": {"name": "web", "namespace": "other"},
                "spec": {"clusterIP": "10.96.0.22", "ports": [{"port": 80}]}})),
        ];
        let slices = vec![
            // Two pods serve the named port on different container ports (a named targetPort).
            slice(
                "default",
                "web",
                json!([{"name": "http", "port": 8080}, {"name": "metrics", "port": 9100},
                       {"name": "dns", "port": 5353, "protocol": "UDP"}, {"name": "dns", "port": 5300},
                       {"name": "sig", "port": 9999, "protocol": "SCTP"}]),
                json!([{"addresses": ["10.244.0.3"], "conditions": {"ready": true}},
                       {"addresses": ["10.244.0.4"]},
                       {"addresses": ["10.244.0.5"], "conditions": {"ready": false}}]),
            ),
            slice(
                "default",
                "web",
                json!([{"name": "http", "port": 8081}]),
                json!([{"addresses": ["10.244.0.6"], "conditions": {"ready": true}}]),
            ),
            slice("default", "headless", json!([{"name": "", "port": 80}]), json!([{"addresses": ["10.244.0.7"]}])),
            // Another namespace's slice for a Service of the same name.
            slice("other", "web", json!([{"name": "", "port": 7000}]), json!([{"addresses": ["10.244.0.8"]}])),
        ];
        let got = frontends(&services, &slices);
        let http = vec![sa("10.244.0.3:8080"), sa("10.244.0.4:8080"), sa("10.244.0.6:8081")];
        let (tcp, udp) = (Protocol::Tcp, Protocol::Udp);
        let want: BTreeMap<Frontend, Vec<SocketAddrV4>> = [
            (Frontend::ClusterIp(sa("10.96.0.20:80"), tcp), http.clone()),
            (Frontend::NodePort(30080, tcp), http),
            (Frontend::ClusterIp(sa("10.96.0.20:9090"), tcp), vec![sa("10.244.0.3:9100"), sa("10.244.0.4:9100")]),
            // The slice's port of the same name and protocol (not the TCP `dns` one).
            (Frontend::ClusterIp(sa("10.96.0.20:53"), udp), vec![sa("10.244.0.3:5353"), sa("10.244.0.4:5353")]),
            (Frontend::ClusterIp(sa("10.96.0.22:80"), tcp), vec![sa("10.244.0.8:7000")]),
        ]
        .into();
        assert_eq!(got, want, "no SCTP, no headless, no port without ready endpoints");
        let ips: Vec<Ipv4Addr> = cluster_ips(&services).into_iter().collect();
        assert_eq!(ips, ["10.96.0.20", "10.96.0.21", "10.96.0.22"].map(|s| s.parse::<Ipv4Addr>().unwrap()));
    }

    /// A backend that answers each connection with its name and the line it read.
    async fn backend(name: &'static str) -> SocketAddrV4 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(addr) = l.local_addr().unwrap() else { unreachable!() };
        tokio::spawn(async move {
            loop {
                let (mut c, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64];
                    let n = c.read(&mut buf).await.unwrap();
                    let reply = format!("{name}:{}", String::from_utf8_lossy(&buf[..n]));
                    c.write_all(reply.as_bytes()).await.unwrap();
                });
            }
        });
        addr
    }

    async fn ask(proxy: SocketAddr, msg: &str) -> std::io::Result<String> {
        let mut c = TcpStream::connect(proxy).await?;
        c.write_all(msg.as_bytes()).await?;
        c.shutdown().await?;
        let mut out = String::new();
        c.read_to_string(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn connections_go_round_robin_skip_a_dead_endpoint_and_follow_updates() {
        let (a, b) = (backend("a").await, backend("b").await);
        // A port nothing listens on: its dial is refused and the next endpoint is used.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let SocketAddr::V4(addr) = l.local_addr().unwrap() else { unreachable!() };
            addr
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = listener.local_addr().unwrap();
        let backends = Backends::new(vec![a, b]);
        let (stop, shutdown) = (CancellationToken::new(), CancellationToken::new());
        let task =
            spawn_listener(listener, backends.clone(), Arc::new(Semaphore::new(8)), stop.clone(), shutdown.clone());
        let mut seen = vec![];
        for i in 0..4 {
            seen.push(ask(front, &format!("m{i}")).await.unwrap());
        }
        assert_eq!(seen, ["a:m0", "b:m1", "a:m2", "b:m3"]);
        backends.set(vec![dead, b]);
        for i in 0..3 {
            assert_eq!(ask(front, &format!("n{i}")).await.unwrap(), format!("b:n{i}"));
        }
        // Every endpoint refusing: the client's connection is reset, with nothing read.
        backends.set(vec![dead]);
        let r = ask(front, "x").await;
        assert!(r.as_ref().map_or(true, |s| s.is_empty()), "{r:?}");
        stop.cancel();
        task.await.unwrap();
        assert!(TcpStream::connect(front).await.is_err(), "the listener is closed once stopped");
    }
    /// A UDP echo backend that answers each datagram with its name and the datagram.
    async fn udp_backend(name: &'static str) -> SocketAddrV4 {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(addr) = s.local_addr().unwrap() else { unreachable!() };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let (n, peer) = s.recv_from(&mut buf).await.unwrap();
                let reply = format!("{name}:{}", String::from_utf8_lossy(&buf[..n]));
                s.send_to(reply.as_bytes(), peer).await.unwrap();
            }
        });
        addr
    }

    /// Sends `msg` from `client` to `front`; the reply and where it came from.
    async fn udp_ask(client: &UdpSocket, front: SocketAddr, msg: &str) -> (String, SocketAddr) {
        client.send_to(msg.as_bytes(), front).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let (n, from) =
            tokio::time::timeout(Duration::from_secs(30), client.recv_from(&mut buf)).await.expect("a reply").unwrap();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
    }

    /// A forwarder on a fresh frontend socket: its address and handles.
    fn udp_front(backends: &Arc<Backends>, idle: UdpIdle, limit: usize) -> (SocketAddr, CancellationToken) {
        let socket = bind_udp(sa("127.0.0.1:0"), None).unwrap();
        let front = socket.local_addr().unwrap();
        let stop = CancellationToken::new();
        spawn_udp(
            socket,
            backends.clone(),
            idle,
            Arc::new(Semaphore::new(limit)),
            stop.clone(),
            CancellationToken::new(),
        );
        (front, stop)
    }

    async fn client() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.unwrap()
    }

    #[tokio::test]
    async fn udp_flows_keep_their_endpoint_while_it_serves_and_answer_from_the_service_address() {
        let (a, b, c) = (udp_backend("a").await, udp_backend("b").await, udp_backend("c").await);
        let backends = Backends::new(vec![a, b]);
        let hour = Duration::from_secs(3600);
        let (front, stop) = udp_front(&backends, UdpIdle { unreplied: hour, replied: hour }, 8);
        let (one, two) = (client().await, client().await);
        // Each client is a flow to one endpoint, in turn; replies come from the Service's address.
        assert_eq!(udp_ask(&one, front, "x1").await, ("a:x1".to_string(), front));
        assert_eq!(udp_ask(&two, front, "y1").await, ("b:y1".to_string(), front));
        for i in 2..5 {
            assert_eq!(udp_ask(&one, front, &format!("x{i}")).await.0, format!("a:x{i}"));
            assert_eq!(udp_ask(&two, front, &format!("y{i}")).await.0, format!("b:y{i}"));
        }
        // `b` goes, `c` comes: the flow to `a` stays, the flow to `b` moves on to a serving one.
        backends.set(vec![a, c]);
        assert_eq!(udp_ask(&one, front, "x5").await.0, "a:x5");
        let moved = udp_ask(&two, front, "y5").await.0;
        assert!(moved == "a:y5" || moved == "c:y5", "{moved}");
        assert_eq!(udp_ask(&two, front, "y6").await.0, format!("{}:y6", &moved[..1]), "and stays there");
        stop.cancel();
    }

    #[tokio::test]
    async fn an_idle_udp_flow_ends_and_the_clients_next_datagram_starts_another() {
        let (a, b) = (udp_backend("a").await, udp_backend("b").await);
        let backends = Backends::new(vec![a, b]);
        let short = Duration::from_millis(100);
        let (front, stop) = udp_front(&backends, UdpIdle { unreplied: short, replied: short }, 8);
        let one = client().await;
        assert_eq!(udp_ask(&one, front, "x1").await.0, "a:x1");
        // After an idle spell the next datagram is a new flow: the next endpoint in turn.
        let restarted = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                tokio::time::sleep(short * 4).await;
                if udp_ask(&one, front, "x2").await.0 == "b:x2" {
                    return;
                }
            }
        })
        .await;
        assert!(restarted.is_ok(), "an idle flow is forgotten");
        stop.cancel();
    }

    /// Flows hold permits of the proxy's bound: with none left, a new client's datagrams are
    /// dropped while existing flows go on; an ended flow gives its permit back.
    #[tokio::test]
    async fn udp_flows_are_bounded_by_the_proxys_permits() {
        let a = udp_backend("a").await;
        let backends = Backends::new(vec![a]);
        let short = Duration::from_millis(100);
        let limit = Arc::new(Semaphore::new(1));
        let socket = bind_udp(sa("127.0.0.1:0"), None).unwrap();
        let front = socket.local_addr().unwrap();
        let stop = CancellationToken::new();
        spawn_udp(
            socket,
            backends,
            UdpIdle { unreplied: short, replied: short },
            limit.clone(),
            stop.clone(),
            CancellationToken::new(),
        );
        let (one, two) = (client().await, client().await);
        assert_eq!(udp_ask(&one, front, "x1").await.0, "a:x1");
        assert_eq!(limit.available_permits(), 0, "the flow holds the permit");
        two.send_to(b"dropped", front).await.unwrap();
        let mut buf = [0u8; 64];
        // The flow's end gives the permit back (awaited, with the flow idle).
        tokio::time::timeout(Duration::from_secs(60), async {
            while limit.available_permits() == 0 {
                tokio::time::sleep(short).await;
            }
        })
        .await
        .expect("the idle flow's permit comes back");
        assert!(two.try_recv(&mut buf).is_err(), "nothing came back for the datagram without a permit");
        assert_eq!(udp_ask(&two, front, "y1").await.0, "a:y1");
        stop.cancel();
    }
}
