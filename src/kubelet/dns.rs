//! The cluster DNS server of `jobwright local`: CoreDNS's `kubernetes` plugin for the names pods
//! look up, reading Services and EndpointSlices through the API as CoreDNS does.
//!
//! Zone `cluster.local` (authoritative, TTL 5 s):
//! - `<service>.<ns>.svc.cluster.local`: the clusterIP for a ClusterIP Service; for a headless
//!   Service (`clusterIP: None`) one A record per ready endpoint of its EndpointSlices (label
//!   `kubernetes.io/service-name`), with not-ready ones too when the Service sets
//!   `publishNotReadyAddresses`;
//! - `<hostname>.<service>.<ns>.svc.cluster.local`: the endpoints whose `hostname` is that name
//!   (the EndpointSlice controller sets it for pods with `spec.hostname` and `spec.subdomain` equal
//!   to the Service's name);
//! - `<a-b-c-d>.<ns>.pod.cluster.local`: `a.b.c.d` (CoreDNS's `pods insecure`, kind's setting);
//! - any other name in the zone: NXDOMAIN; an existing name asked for another type: no data.
//!
//! Every other name is forwarded, query bytes unchanged, to the host's nameservers
//! (`/etc/resolv.conf`), as CoreDNS's `forward . /etc/resolv.conf`. Served on UDP and TCP port 53
//! of the node's address on the pod network. The resolution itself ([`resolve`]) is pure.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::podnet::CLUSTER_DOMAIN;

/// TTL of the records we serve (CoreDNS's default).
pub const TTL: u32 = 5;

/// The label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What a name in the cluster zone resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name exists with these addresses (possibly none: no data for A).
    Addresses(Vec<Ipv4Addr>),
    /// The name does not exist.
    NxDomain,
    /// Not in the cluster zone: ask the host's resolver.
    Forward,
}

fn ready(ep: &k8s_openapi::api::discovery::v1::Endpoint, publish_not_ready: bool) -> bool {
    publish_not_ready || ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
}

/// Resolve `name` (any case, with or without the final dot) against Services and EndpointSlices.
pub fn resolve(name: &str, services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Lookup {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let Some(rest) = name.strip_suffix(CLUSTER_DOMAIN) else { return Lookup::Forward };
    if !(rest.is_empty() || rest.ends_with('.')) {
        return Lookup::Forward;
    }
    let labels: Vec<&str> = rest.trim_end_matches('.').split('.').filter(|l| !l.is_empty()).collect();
    match labels.as_slice() {
        [] | ["svc"] | ["pod"] | [_, "svc"] | [_, "pod"] => Lookup::Addresses(vec![]),
        [ip, _ns, "pod"] => match ip.replace('-', ".").parse::<Ipv4Addr>() {
            Ok(a) => Lookup::Addresses(vec![a]),
            Err(_) => Lookup::NxDomain,
        },
        [svc, ns, "svc"] => {
            let Some(service) = find_service(services, ns, svc) else { return Lookup::NxDomain };
            let spec = service.spec.clone().unwrap_or_default();
            match spec.cluster_ip.as_deref() {
                Some(ip) if ip != "None" && !ip.is_empty() => match ip.parse() {
                    Ok(a) => Lookup::Addresses(vec![a]),
                    Err(_) => Lookup::Addresses(vec![]),
                },
                _ => {
                    let addrs = endpoints(slices, ns, svc, spec.publish_not_ready_addresses.unwrap_or(false), None);
                    if addrs.is_empty() { Lookup::NxDomain } else { Lookup::Addresses(addrs) }
                }
            }
        }
        [host, svc, ns, "svc"] => {
            let Some(service) = find_service(services, ns, svc) else { return Lookup::NxDomain };
            let pnr = service.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
            let addrs = endpoints(slices, ns, svc, pnr, Some(host));
            if addrs.is_empty() { Lookup::NxDomain } else { Lookup::Addresses(addrs) }
        }
        _ => Lookup::NxDomain,
    }
}

fn find_service<'a>(services: &'a [Arc<Service>], ns: &str, name: &str) -> Option<&'a Arc<Service>> {
    services.iter().find(|s| s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name))
}

/// The IPv4 addresses of a Service's endpoints (only those named `hostname` when given), sorted and
/// without duplicates (several slices may list one pod).
fn endpoints(
    slices: &[Arc<EndpointSlice>],
    ns: &str,
    svc: &str,
    publish_not_ready: bool,
    hostname: Option<&str>,
) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = slices
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
        .filter(|s| s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)).map(String::as_str) == Some(svc))
        .filter(|s| s.address_type == "IPv4")
        .flat_map(|s| s.endpoints.iter())
        .filter(|ep| ready(ep, publish_not_ready))
        .filter(|ep| hostname.is_none_or(|h| ep.hostname.as_deref().map(str::to_ascii_lowercase).as_deref() == Some(h)))
        .flat_map(|ep| ep.addresses.iter().filter_map(|a| a.parse().ok()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The answer to one query message (`None`: forward it unchanged).
pub fn answer(query: &Message, services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Option<Message> {
    let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
    resp.metadata.recursion_desired = query.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    let [q] = query.queries.as_slice() else {
        resp.metadata.response_code = ResponseCode::FormErr;
        return Some(resp);
    };
    if query.metadata.op_code != OpCode::Query || query.metadata.message_type != MessageType::Query {
        resp.metadata.response_code = ResponseCode::NotImp;
        return Some(resp);
    }
    let lookup = resolve(&q.name().to_ascii(), services, slices);
    resp.add_query(q.clone());
    resp.metadata.authoritative = true;
    match lookup {
        Lookup::Forward => return None,
        Lookup::NxDomain => {
            resp.metadata.response_code = ResponseCode::NXDomain;
            resp.add_authority(soa());
        }
        Lookup::Addresses(addrs) => {
            if matches!(q.query_type(), RecordType::A | RecordType::ANY) && !addrs.is_empty() {
                for a in addrs {
                    resp.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(a))));
                }
            } else {
                resp.add_authority(soa());
            }
        }
    }
    Some(resp)
}

fn soa() -> Record {
    let zone = Name::from_ascii(format!("{CLUSTER_DOMAIN}.")).expect("valid zone name");
    let mname = Name::from_ascii(format!("ns.dns.{CLUSTER_DOMAIN}.")).expect("valid name");
    let rname = Name::from_ascii(format!("hostmaster.{CLUSTER_DOMAIN}.")).expect("valid name");
    let serial = (chrono::Utc::now().timestamp() as u64 & 0xffff_ffff) as u32;
    Record::from_rdata(zone, TTL, RData::SOA(SOA::new(mname, rname, serial, 7200, 1800, 86400, TTL)))
}

/// The server's view of the cluster.
#[derive(Clone)]
struct View {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    upstreams: Arc<Vec<SocketAddr>>,
}

impl View {
    async fn handle(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let query = match Message::from_vec(packet) {
            Ok(q) => q,
            Err(e) => {
                debug!(error = %e, "undecodable DNS query");
                return None;
            }
        };
        match answer(&query, &self.services.state(), &self.slices.state()) {
            Some(resp) => resp.to_vec().ok(),
            None => match forward(&self.upstreams, packet).await {
                Some(r) => Some(r),
                None => {
                    let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
                    resp.metadata.response_code = ResponseCode::ServFail;
                    resp.add_queries(query.queries.iter().cloned());
                    resp.to_vec().ok()
                }
            },
        }
    }
}

/// Send the query to each upstream in turn (2 s each) and return the first reply with its id.
async fn forward(upstreams: &[SocketAddr], packet: &[u8]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { "[::]:0".parse().ok()? };
        let Ok(sock) = UdpSocket::bind(bind).await else { continue };
        if sock.send_to(packet, up).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        let got = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                let (n, from) = sock.recv_from(&mut buf).await.ok()?;
                if from == *up && n >= 2 && buf[..2] == packet[..2] {
                    return Some(buf[..n].to_vec());
                }
            }
        })
        .await;
        if let Ok(Some(r)) = got {
            return Some(r);
        }
    }
    None
}

/// Serve cluster DNS on `addr` (UDP and TCP) until `stop`; Services and EndpointSlices are
/// watched through `client`; other names go to `upstreams`.
pub async fn serve(
    client: kube::Client,
    addr: SocketAddr,
    upstreams: Vec<SocketAddr>,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let udp = Arc::new(UdpSocket::bind(addr).await?);
    let tcp = TcpListener::bind(addr).await?;
    let (services, svc_writer) = reflector::store::<Service>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let view = View { services, slices, upstreams: Arc::new(upstreams) };
    let svc_api: kube::Api<Service> = kube::Api::all(client.clone());
    let slice_api: kube::Api<EndpointSlice> = kube::Api::all(client);
    let svc_watch = watcher(svc_api, watcher::Config::default())
        .default_backoff()
        .reflect(svc_writer)
        .for_each(|_| futures::future::ready(()));
    let slice_watch = watcher(slice_api, watcher::Config::default())
        .default_backoff()
        .reflect(slice_writer)
        .for_each(|_| futures::future::ready(()));
    Ok(tokio::spawn(async move {
        let udp_loop = {
            let view = view.clone();
            async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let Ok((n, from)) = udp.recv_from(&mut buf).await else { continue };
                    let packet = buf[..n].to_vec();
                    let (view, udp) = (view.clone(), udp.clone());
                    tokio::spawn(async move {
                        if let Some(resp) = view.handle(&packet).await {
                            let _ = udp.send_to(&resp, from).await;
                        }
                    });
                }
            }
        };
        let tcp_loop = async move {
            loop {
                let Ok((mut conn, _)) = tcp.accept().await else { continue };
                let view = view.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(10), async {
                        loop {
                            let len = conn.read_u16().await? as usize;
                            let mut packet = vec![0u8; len];
                            conn.read_exact(&mut packet).await?;
                            let Some(resp) = view.handle(&packet).await else { return Ok::<_, std::io::Error>(()) };
                            conn.write_u16(resp.len() as u16).await?;
                            conn.write_all(&resp).await?;
                        }
                    })
                    .await;
                });
            }
        };
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = svc_watch => warn!("the DNS server's Service watch ended"),
            _ = slice_watch => warn!("the DNS server's EndpointSlice watch ended"),
            _ = udp_loop => {}
            _ = tcp_loop => {}
        }
    }))
}

/// The host's nameservers as socket addresses (port 53).
pub fn upstreams(host: &super::podnet::HostResolv) -> Vec<SocketAddr> {
    host.nameservers
        .iter()
        .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, cluster_ip: &str, pnr: bool) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
                "spec": {"clusterIP": cluster_ip, "publishNotReadyAddresses": pnr}}))
            .unwrap(),
        )
    }

    fn slice(ns: &str, svc: &str, eps: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": format!("{svc}-x"), "namespace": ns,
                "labels": {"kubernetes.io/service-name": svc}}, "addressType": "IPv4", "endpoints": eps}))
            .unwrap(),
        )
    }

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn names_resolve_like_coredns() {
        let services = vec![svc("default", "workers", "None", false), svc("default", "api", "10.96.0.10", false)];
        let slices = vec![slice(
            "default",
            "workers",
            json!([
                {"addresses": ["10.244.0.3"], "hostname": "collab-0", "conditions": {"ready": true}},
                {"addresses": ["10.244.0.4"], "hostname": "collab-1"},
                {"addresses": ["10.244.0.5"], "hostname": "collab-2", "conditions": {"ready": false}},
            ]),
        )];
        let r = |n: &str| resolve(n, &services, &slices);
        assert_eq!(r("collab-0.workers.default.svc.cluster.local."), Lookup::Addresses(vec![a("10.244.0.3")]));
        assert_eq!(r("COLLAB-1.Workers.default.svc.cluster.local"), Lookup::Addresses(vec![a("10.244.0.4")]));
        assert_eq!(r("collab-2.workers.default.svc.cluster.local"), Lookup::NxDomain, "not ready");
        assert_eq!(r("workers.default.svc.cluster.local"), Lookup::Addresses(vec![a("10.244.0.3"), a("10.244.0.4")]));
        assert_eq!(r("api.default.svc.cluster.local"), Lookup::Addresses(vec![a("10.96.0.10")]));
        assert_eq!(r("api.other.svc.cluster.local"), Lookup::NxDomain);
        assert_eq!(r("collab-0.workers.svc.cluster.local"), Lookup::NxDomain, "a search-path miss");
        assert_eq!(r("10-244-0-9.default.pod.cluster.local"), Lookup::Addresses(vec![a("10.244.0.9")]));
        assert_eq!(r("default.svc.cluster.local"), Lookup::Addresses(vec![]));
        assert_eq!(r("example.com"), Lookup::Forward);
        assert_eq!(r("notcluster.local"), Lookup::Forward);
        assert_eq!(r("a.b.c.d.e.svc.cluster.local"), Lookup::NxDomain);
    }

    #[test]
    fn publish_not_ready_addresses_is_honoured() {
        let services = vec![svc("default", "workers", "None", true)];
        let slices = vec![slice(
            "default",
            "workers",
            json!([{"addresses": ["10.244.0.5"], "hostname": "w-2",
            "conditions": {"ready": false}}]),
        )];
        assert_eq!(
            resolve("w-2.workers.default.svc.cluster.local", &services, &slices),
            Lookup::Addresses(vec![a("10.244.0.5")])
        );
    }

    #[test]
    fn duplicate_slices_give_one_record_and_a_headless_service_without_endpoints_is_nxdomain() {
        let services = vec![svc("default", "workers", "None", false)];
        let eps = json!([{"addresses": ["10.244.0.3"], "hostname": "w-0"}]);
        let slices = vec![slice("default", "workers", eps.clone()), slice("default", "workers", eps)];
        assert_eq!(
            resolve("workers.default.svc.cluster.local", &services, &slices),
            Lookup::Addresses(vec![a("10.244.0.3")])
        );
        assert_eq!(resolve("workers.default.svc.cluster.local", &services, &[]), Lookup::NxDomain);
    }

    #[test]
    fn messages_answer_a_and_no_data_for_aaaa() {
        use hickory_proto::op::Query;
        let services = vec![svc("default", "api", "10.96.0.10", false)];
        let ask = |name: &str, t: RecordType| {
            let mut m = Message::query();
            m.metadata.id = 77;
            m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
            let bytes = m.to_vec().unwrap();
            answer(&Message::from_vec(&bytes).unwrap(), &services, &[])
        };
        let r = ask("api.default.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(r.metadata.id, 77);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].data, RData::A(A(a("10.96.0.10"))));
        let r = ask("api.default.svc.cluster.local.", RecordType::AAAA).unwrap();
        assert_eq!((r.metadata.response_code, r.answers.len()), (ResponseCode::NoError, 0));
        let r = ask("nope.default.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert!(ask("example.com.", RecordType::A).is_none(), "forwarded");
    }
}
