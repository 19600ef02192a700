//! PURE: what the Endpoints and EndpointSlices of one Service should hold, from the Service, the
//! Pods its selector picks, and (for slices) the slices that exist. No I/O.
//!
//! The rules are kube-controller-manager's: `pkg/controller/endpoint` (`syncService`,
//! `addEndpointSubset`, `RepackSubsets`, `truncateEndpoints`) and `pkg/controller/endpointslice`
//! with `staging/src/k8s.io/endpointslice` (`podToEndpoint`, `getEndpointPorts`, the reconciler's
//! placement of endpoints into slices of at most 100).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Service, ServicePort,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use super::pod::EpPod;

/// `kubernetes.io/service-name`: the Service an EndpointSlice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// `endpointslice.kubernetes.io/managed-by`.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// The EndpointSlice controller's value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// `service.kubernetes.io/headless`, set (empty) on the Endpoints and slices of headless Services.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// `endpoints.kubernetes.io/last-change-trigger-time`.
pub const ANNOTATION_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// `endpoints.kubernetes.io/over-capacity`, `truncated` when an Endpoints was cut to [`MAX_ENDPOINTS`].
pub const ANNOTATION_OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// The most addresses an Endpoints object holds (upstream's `maxCapacity`).
pub const MAX_ENDPOINTS: usize = 1000;
/// The most endpoints per EndpointSlice (`--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

fn labels_match(selector: &BTreeMap<String, String>, pod: &EpPod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The Pods of `service`'s namespace its selector picks (a Service without a selector picks none:
/// its endpoints are someone else's).
pub fn selected<'a>(service: &Service, pods: impl IntoIterator<Item = &'a EpPod>) -> Vec<&'a EpPod> {
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else { return vec![] };
    let ns = service.metadata.namespace.as_deref();
    let mut out: Vec<&EpPod> =
        pods.into_iter().filter(|p| p.metadata.namespace.as_deref() == ns && labels_match(selector, p)).collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

/// Whether `service` has a selector (only those get Endpoints and slices from the controllers).
pub fn has_selector(service: &Service) -> bool {
    service.spec.as_ref().is_some_and(|s| s.selector.is_some())
}

fn pod_ip(pod: &EpPod) -> Option<String> {
    pod.ip.clone()
}

/// `podutil.IsPodReady`.
pub fn is_ready(pod: &EpPod) -> bool {
    pod.ready
}

fn is_terminal(pod: &EpPod) -> bool {
    pod.terminal
}

/// `ShouldPodBeInEndpoints`: an address, not finished, and (unless `include_terminating`) not
/// being deleted.
fn should_be_in_endpoints(pod: &EpPod, include_terminating: bool) -> bool {
    if pod_ip(pod).is_none() || is_terminal(pod) {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// `ShouldSetHostname`: the pod's `hostname` when its `subdomain` is this Service.
fn hostname(pod: &EpPod, service: &Service) -> Option<String> {
    let h = pod.hostname.as_ref().filter(|h| !h.is_empty())?;
    (pod.subdomain.as_deref() == service.metadata.name.as_deref()
        && pod.metadata.namespace == service.metadata.namespace)
        .then(|| h.clone())
}

fn target_ref(pod: &EpPod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// `podutil.FindPort`: a numeric targetPort as is; a named one resolved against the pod's
/// containers (and restartable init containers) with the Service port's protocol.
pub fn find_port(pod: &EpPod, sp: &ServicePort) -> Option<i32> {
    let proto = sp.protocol.as_deref().unwrap_or("TCP");
    match sp.target_port.as_ref() {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            pod.named_ports.iter().find(|p| p.name == *name && p.protocol == proto).map(|p| p.port)
        }
    }
}

/// The latest change the Endpoints reflect: the Service's creation or a selected pod's
/// readiness change (its creation when it has no Ready condition yet).
fn trigger_time(service: &Service, pods: &[&EpPod]) -> Option<Time> {
    let mut t = service.metadata.creation_timestamp.clone();
    for p in pods {
        let ready = p.ready_since.clone();
        let pt = ready.or_else(|| p.metadata.creation_timestamp.clone());
        if pt.as_ref().map(|x| x.0) > t.as_ref().map(|x| x.0) {
            t = pt;
        }
    }
    t
}

fn format_time(t: &Time) -> String {
    t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

fn publish_not_ready(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false)
}

fn service_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if headless(service) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    labels
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

/// One address with its readiness and the ports it serves (before repacking).
struct Offer {
    address: EndpointAddress,
    ready: bool,
    port: Option<EndpointPort>,
}

/// The Endpoints `service` should have given the `pods` it selects; `current` is the stored one
/// (its other annotations and labels are kept). Returns `None` when `current` already says the
/// same (no write needed).
pub fn endpoints(service: &Service, pods: &[&EpPod], current: Option<&Endpoints>) -> Option<Endpoints> {
    let tolerate = publish_not_ready(service);
    let ports = service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let mut offers = Vec::new();
    for pod in pods {
        if !should_be_in_endpoints(pod, tolerate) {
            continue;
        }
        let Some(ip) = pod_ip(pod) else { continue };
        let address = EndpointAddress {
            ip,
            hostname: hostname(pod, service),
            node_name: pod.node_name.clone(),
            target_ref: Some(target_ref(pod)),
        };
        let ready = tolerate || is_ready(pod);
        if ports.is_empty() {
            if headless(service) {
                offers.push(Offer { address, ready, port: None });
            }
            continue;
        }
        for sp in &ports {
            let Some(n) = find_port(pod, sp) else { continue };
            let port = EndpointPort {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port: n,
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            };
            offers.push(Offer { address: address.clone(), ready, port: Some(port) });
        }
    }
    let mut subsets = repack(offers);
    let truncated = truncate(&mut subsets);

    let name = service.metadata.name.clone();
    let mut annotations = current.and_then(|c| c.metadata.annotations.clone()).unwrap_or_default();
    if truncated {
        annotations.insert(ANNOTATION_OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(ANNOTATION_OVER_CAPACITY);
    }
    let labels = service_labels(service);
    if let Some(cur) = current {
        let same_subsets = cur.subsets.clone().unwrap_or_default() == subsets;
        let same_labels = cur.metadata.labels.clone().unwrap_or_default() == labels;
        let same_capacity = cur.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_OVER_CAPACITY))
            == annotations.get(ANNOTATION_OVER_CAPACITY);
        if same_subsets && same_labels && same_capacity {
            return None;
        }
    }
    if let Some(t) = trigger_time(service, pods) {
        annotations.insert(ANNOTATION_TRIGGER_TIME.into(), format_time(&t));
    }
    Some(Endpoints {
        metadata: ObjectMeta {
            name,
            namespace: service.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            resource_version: current.and_then(|c| c.metadata.resource_version.clone()),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    })
}

/// Addresses sort by IP (numerically, as upstream compares parsed IPs), then pod uid.
type AddrKey = (Option<std::net::IpAddr>, String, String);

fn addr_key(a: &EndpointAddress) -> AddrKey {
    (a.ip.parse().ok(), a.ip.clone(), a.target_ref.as_ref().and_then(|r| r.uid.clone()).unwrap_or_default())
}

/// A port's identity: name, number, protocol, appProtocol.
type PortKey = (String, i32, String, String);

/// Addresses serving one set of ports: the ports, the ready and the not-ready addresses.
type Group = (Vec<EndpointPort>, Vec<EndpointAddress>, Vec<EndpointAddress>);

fn port_key(p: &EndpointPort) -> PortKey {
    (
        p.name.clone().unwrap_or_default(),
        p.port,
        p.protocol.clone().unwrap_or_default(),
        p.app_protocol.clone().unwrap_or_default(),
    )
}

/// `RepackSubsets`: addresses that serve the same set of ports share a subset. Addresses are
/// sorted by IP then pod uid, ports by name and number, subsets by their first address.
fn repack(offers: Vec<Offer>) -> Vec<EndpointSubset> {
    let mut addrs: BTreeMap<AddrKey, (EndpointAddress, bool)> = BTreeMap::new();
    let mut ports_of: BTreeMap<AddrKey, BTreeMap<PortKey, EndpointPort>> = BTreeMap::new();
    for o in offers {
        let k = addr_key(&o.address);
        let entry = ports_of.entry(k.clone()).or_default();
        if let Some(p) = o.port {
            entry.insert(port_key(&p), p);
        }
        // An address ready for one port is ready (readiness is per pod).
        let e = addrs.entry(k).or_insert((o.address, o.ready));
        e.1 |= o.ready;
    }
    let mut groups: BTreeMap<Vec<PortKey>, Group> = BTreeMap::new();
    for (k, (addr, ready)) in addrs {
        let ports = ports_of.remove(&k).unwrap_or_default();
        let g = groups
            .entry(ports.keys().cloned().collect())
            .or_insert_with(|| (ports.into_values().collect(), vec![], vec![]));
        if ready { g.1.push(addr) } else { g.2.push(addr) }
    }
    let mut subsets: Vec<EndpointSubset> = groups
        .into_values()
        .map(|(ports, ready, not_ready)| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then_some(ports),
        })
        .collect();
    let first = |s: &EndpointSubset| {
        s.addresses.iter().chain(s.not_ready_addresses.iter()).flatten().next().map(addr_key).unwrap_or_default()
    };
    subsets.sort_by_key(first);
    subsets
}

/// `truncateEndpoints`: past [`MAX_ENDPOINTS`] addresses, not-ready addresses go first (each
/// subset keeping its share, rounded up); if the ready ones alone are too many, they are cut the
/// same way and every not-ready address goes.
fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let count = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if ready + not_ready <= MAX_ENDPOINTS {
        return false;
    }
    let truncate_ready = ready > MAX_ENDPOINTS;
    let (max, total) = if truncate_ready { (MAX_ENDPOINTS, ready) } else { (MAX_ENDPOINTS - ready, not_ready) };
    let mut room = max;
    for s in subsets.iter_mut() {
        if truncate_ready {
            s.not_ready_addresses = None;
        }
        let list = if truncate_ready { &mut s.addresses } else { &mut s.not_ready_addresses };
        let n = count(list);
        let share = ((n as f64 / total as f64) * max as f64).ceil() as usize;
        let keep = share.min(room);
        if let Some(l) = list.as_mut() {
            l.truncate(keep);
        }
        room -= count(list);
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// EndpointSlices
// ---------------------------------------------------------------------------------------------

/// What the slice controller will write for one Service.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SlicePlan {
    /// New slices (named by `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Changed slices (carrying their resourceVersion).
    pub update: Vec<EndpointSlice>,
    /// Names of slices to delete.
    pub delete: Vec<String>,
}

impl SlicePlan {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

type PortSet = Vec<(String, i32, String)>;

fn slice_port_key(ports: &[SlicePort]) -> PortSet {
    let mut k: PortSet = ports
        .iter()
        .map(|p| (p.name.clone().unwrap_or_default(), p.port.unwrap_or(0), p.protocol.clone().unwrap_or_default()))
        .collect();
    k.sort();
    k
}

/// The endpoint a pod contributes (`podToEndpoint`), or `None` if it contributes none.
fn pod_endpoint(service: &Service, pod: &EpPod) -> Option<Endpoint> {
    if !should_be_in_endpoints(pod, true) {
        return None;
    }
    let ip = pod_ip(pod)?;
    let publish = publish_not_ready(service);
    let serving = is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    // Never ready while terminating, unless not-ready addresses are published.
    let ready = publish || (serving && !terminating);
    Some(Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: hostname(pod, service),
        node_name: pod.node_name.clone(),
        target_ref: Some(target_ref(pod)),
        ..Default::default()
    })
}

/// `getEndpointPorts`: the Service's ports as this pod serves them (named targetPorts resolved).
fn pod_ports(service: &Service, pod: &EpPod) -> Vec<SlicePort> {
    let ports = service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    ports
        .iter()
        .filter_map(|sp| {
            let n = find_port(pod, sp)?;
            Some(SlicePort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(n),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

fn endpoint_key(e: &Endpoint) -> String {
    e.target_ref.as_ref().and_then(|r| r.uid.clone()).unwrap_or_else(|| e.addresses.join(","))
}

/// The slice name prefix: `<service>-`, cut so generated names stay within 63 characters.
fn slice_prefix(service: &str) -> String {
    let mut p = format!("{service}-");
    if p.len() > 58 {
        p.truncate(58);
    }
    p
}

/// What to write so the managed slices of `service` hold exactly the endpoints of `pods`,
/// moving as few endpoints as possible (`existing` are the Service's managed slices).
pub fn slices(service: &Service, pods: &[&EpPod], existing: &[EndpointSlice]) -> SlicePlan {
    let svc_name = service.metadata.name.clone().unwrap_or_default();
    // Desired endpoints grouped by the ports their pods serve.
    let mut desired: BTreeMap<PortSet, (Vec<SlicePort>, Vec<Endpoint>)> = BTreeMap::new();
    for pod in pods {
        let Some(ep) = pod_endpoint(service, pod) else { continue };
        let ports = pod_ports(service, pod);
        desired.entry(slice_port_key(&ports)).or_insert_with(|| (ports, vec![])).1.push(ep);
    }
    let mut labels = service_labels(service);
    labels.insert(LABEL_SERVICE_NAME.into(), svc_name.clone());
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    let trigger = trigger_time(service, pods).map(|t| format_time(&t));
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc_name.clone(),
        uid: service.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let stamp = |slice: &mut EndpointSlice| {
        slice.metadata.labels = Some(labels.clone());
        let ann = slice.metadata.annotations.get_or_insert_with(BTreeMap::new);
        if let Some(t) = &trigger {
            ann.insert(ANNOTATION_TRIGGER_TIME.into(), t.clone());
        }
        slice.metadata.owner_references = Some(vec![owner.clone()]);
    };

    let mut plan = SlicePlan::default();
    if desired.is_empty() {
        // No endpoints: one empty placeholder slice (upstream's), so a reader can tell "no
        // endpoints" from "not handled yet"; an existing slice is reused for it.
        let keep = existing.iter().find(|s| s.endpoints.is_empty()).or(existing.first());
        for s in existing {
            if !keep.is_some_and(|k| std::ptr::eq(k, s)) {
                plan.delete.extend(s.metadata.name.clone());
            }
        }
        let mut placeholder = keep.cloned().unwrap_or_else(|| EndpointSlice {
            metadata: ObjectMeta {
                generate_name: Some(slice_prefix(&svc_name)),
                namespace: service.metadata.namespace.clone(),
                ..Default::default()
            },
            ..Default::default()
        });
        placeholder.endpoints = vec![];
        placeholder.ports = Some(vec![]);
        placeholder.address_type = "IPv4".into();
        stamp(&mut placeholder);
        match keep {
            None => plan.create.push(placeholder),
            Some(k) if *k != placeholder => plan.update.push(placeholder),
            Some(_) => {}
        }
        return plan;
    }
    let mut by_ports: BTreeMap<PortSet, Vec<&EndpointSlice>> = BTreeMap::new();
    for s in existing {
        by_ports.entry(slice_port_key(s.ports.as_deref().unwrap_or_default())).or_default().push(s);
    }
    // Slices whose port set no longer exists go.
    for (k, list) in &by_ports {
        if !desired.contains_key(k) {
            plan.delete.extend(list.iter().filter_map(|s| s.metadata.name.clone()));
        }
    }
    for (k, (ports, eps)) in desired {
        let mut want: BTreeMap<String, Endpoint> = eps.into_iter().map(|e| (endpoint_key(&e), e)).collect();
        let mut order: Vec<String> = want.keys().cloned().collect();
        order.sort();
        // Keep each existing endpoint where it is (updated if it changed).
        let mut touched: Vec<(EndpointSlice, bool)> = Vec::new();
        for s in by_ports.get(&k).into_iter().flatten() {
            let mut kept = Vec::new();
            let mut changed = false;
            for e in &s.endpoints {
                match want.remove(&endpoint_key(e)) {
                    Some(d) => {
                        changed |= d != *e;
                        kept.push(d);
                    }
                    None => changed = true,
                }
            }
            let mut next = (*s).clone();
            next.endpoints = kept;
            let meta_changed = next.metadata.labels.as_ref() != Some(&labels)
                || s.address_type != "IPv4"
                || s.ports.as_deref().unwrap_or_default() != ports.as_slice();
            touched.push((next, changed || meta_changed));
        }
        let mut remaining: Vec<Endpoint> = order.iter().filter_map(|k| want.remove(k)).collect();
        // New endpoints go first into slices that change anyway, then into new slices of 100;
        // a last partial batch goes into an unchanged slice with room rather than a new slice.
        for (s, _) in touched.iter_mut().filter(|(_, c)| *c) {
            let room = MAX_ENDPOINTS_PER_SLICE.saturating_sub(s.endpoints.len());
            let take = room.min(remaining.len());
            s.endpoints.extend(remaining.drain(..take));
        }
        let partial = remaining.len() % MAX_ENDPOINTS_PER_SLICE;
        if partial > 0 {
            let fit = touched
                .iter_mut()
                .filter(|(s, c)| !*c && s.endpoints.len() + partial <= MAX_ENDPOINTS_PER_SLICE)
                .max_by_key(|(s, _)| s.endpoints.len());
            if let Some((s, c)) = fit {
                s.endpoints.extend(remaining.drain(remaining.len() - partial..));
                *c = true;
            }
        }
        for (mut s, changed) in touched {
            if !changed {
                continue;
            }
            if s.endpoints.is_empty() {
                plan.delete.extend(s.metadata.name.clone());
                continue;
            }
            s.address_type = "IPv4".into();
            s.ports = Some(ports.clone());
            stamp(&mut s);
            plan.update.push(s);
        }
        while !remaining.is_empty() {
            let take = remaining.len().min(MAX_ENDPOINTS_PER_SLICE);
            let mut s = EndpointSlice {
                metadata: ObjectMeta {
                    generate_name: Some(slice_prefix(&svc_name)),
                    namespace: service.metadata.namespace.clone(),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: remaining.drain(..take).collect(),
                ports: Some(ports.clone()),
            };
            stamp(&mut s);
            plan.create.push(s);
        }
    }
    plan
}

/// The set of `(namespace, service)` a pod's slices mention, for mapping a pod event to the
/// Services that held it.
pub fn services_holding(slices: &[std::sync::Arc<EndpointSlice>], pod: &EpPod) -> BTreeSet<String> {
    let (ns, name) = (pod.metadata.namespace.as_deref(), pod.metadata.name.as_deref());
    slices
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == ns)
        .filter(|s| s.endpoints.iter().any(|e| e.target_ref.as_ref().is_some_and(|r| r.name.as_deref() == name)))
        .filter_map(|s| s.metadata.labels.as_ref()?.get(LABEL_SERVICE_NAME).cloned())
        .collect()
}
