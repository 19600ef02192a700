//! Service cluster IPs and node ports, allocated as kube-apiserver's service REST does
//! (`pkg/registry/core/service/storage/alloc.go`, `ipallocator`, `portallocator`).
//!
//! # Design
//!
//! One [`Allocators`] per API server holds the set of cluster IPs and node ports in use. It is
//! built lazily from the stored Services on first use (so a server recovered from its data
//! directory knows what is taken), then kept exact by the generic registry: [`Allocators::allocate`]
//! reserves what a create or update needs before the write (a [`Reservation`] gives it back when
//! the write does not happen), and [`Allocators::committed`] releases what a stored write or a
//! delete no longer uses. A Service type change, a removed port or a deleted Service thus frees
//! its addresses, as upstream's transactions do.
//!
//! Like upstream, the next free address is chosen at random from the upper part of the range
//! (the lower part, 1/16 of it between 16 and 256 addresses, is kept for explicit requests such
//! as kind's DNS Service `10.96.0.10`, and used only when the rest is full); node ports likewise
//! (1/32, between 16 and 128 ports). The first address of the range is the `kubernetes` Service's.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;

use rand::Rng;
use serde_json::{Value, json};

use crate::errors::{FieldError, StatusError};
use crate::registry::ResourceInfo;
use crate::store::Store;

/// `--service-cluster-ip-range` and `--service-node-port-range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRanges {
    /// The first address of the cluster IP range (its network address).
    pub network: Ipv4Addr,
    /// The prefix length of the cluster IP range.
    pub prefix: u8,
    /// The first node port.
    pub node_port_base: u16,
    /// How many node ports.
    pub node_port_size: u16,
}

impl Default for ServiceRanges {
    /// kind's ranges: `10.96.0.0/16` and `30000-32767`.
    fn default() -> Self {
        Self { network: Ipv4Addr::new(10, 96, 0, 0), prefix: 16, node_port_base: 30000, node_port_size: 2768 }
    }
}

impl ServiceRanges {
    /// Parse an IPv4 CIDR such as `10.96.0.0/16` (prefix 8 to 30, as upstream requires at least
    /// a few usable addresses and we keep the bitmap bounded).
    pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
        let (ip, len) = s.split_once('/').ok_or_else(|| format!("{s:?} is not a CIDR (e.g. 10.96.0.0/16)"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address"))?;
        let len: u8 = len.parse().map_err(|_| format!("{s:?}: {len:?} is not a prefix length"))?;
        if !(8..=30).contains(&len) {
            return Err(format!("{s:?}: the prefix length must be between 8 and 30"));
        }
        let mask = u32::MAX << (32 - len);
        Ok((Ipv4Addr::from(u32::from(ip) & mask), len))
    }

    /// Parse a port range such as `30000-32767` (upstream's `net.ParsePortRange`).
    pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u16 = a.trim().parse().map_err(|_| format!("{s:?} is not a port range (e.g. 30000-32767)"))?;
        let b: u16 = b.trim().parse().map_err(|_| format!("{s:?} is not a port range (e.g. 30000-32767)"))?;
        if a == 0 || b < a {
            return Err(format!("{s:?} is not a port range (e.g. 30000-32767)"));
        }
        Ok((a, b - a + 1))
    }

    /// Ranges from the two flags' values.
    pub fn parse(cidr: &str, ports: &str) -> Result<Self, String> {
        let (network, prefix) = Self::parse_cidr(cidr)?;
        let (node_port_base, node_port_size) = Self::parse_port_range(ports)?;
        Ok(Self { network, prefix, node_port_base, node_port_size })
    }

    /// `10.96.0.0/16`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }

    /// `30000-32767`.
    pub fn port_range(&self) -> String {
        format!("{}-{}", self.node_port_base, u32::from(self.node_port_base) + u32::from(self.node_port_size) - 1)
    }

    /// The `kubernetes` Service's address: the first of the range.
    pub fn kubernetes_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Usable addresses: the range without its network and broadcast addresses.
    fn ip_bounds(&self) -> (u32, u32) {
        let base = u32::from(self.network);
        let size = 1u32 << (32 - self.prefix);
        (base + 1, base + size - 2)
    }

    fn contains_ip(&self, ip: u32) -> bool {
        let (lo, hi) = self.ip_bounds();
        (lo..=hi).contains(&ip)
    }

    fn contains_port(&self, p: i64) -> bool {
        let lo = i64::from(self.node_port_base);
        (lo..lo + i64::from(self.node_port_size)).contains(&p)
    }
}

#[derive(Debug, Default)]
struct InUse {
    ips: HashSet<u32>,
    ports: HashSet<u16>,
}

/// The cluster IP and node port allocators of one API server.
#[derive(Debug)]
pub struct Allocators {
    ranges: ServiceRanges,
    state: Mutex<Option<InUse>>,
}

/// What one write reserved; given back on drop unless [`Reservation::keep`] was called.
#[must_use]
pub struct Reservation<'a> {
    alloc: &'a Allocators,
    ips: Vec<u32>,
    ports: Vec<u16>,
}

impl Reservation<'_> {
    /// The write happened: what was reserved stays in use.
    pub fn keep(mut self) {
        self.ips.clear();
        self.ports.clear();
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.ips.is_empty() && self.ports.is_empty() {
            return;
        }
        let mut g = self.alloc.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = g.as_mut() {
            for ip in &self.ips {
                s.ips.remove(ip);
            }
            for p in &self.ports {
                s.ports.remove(p);
            }
        }
    }
}

/// Whether `info` is core/v1 services.
pub fn is_services(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.resource == "services"
}

fn svc_type(svc: &Value) -> &str {
    svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP")
}

fn uses_node_ports(svc: &Value) -> bool {
    matches!(svc_type(svc), "NodePort" | "LoadBalancer")
}

/// The cluster IPs (in any range) and node ports a stored Service holds.
fn held(svc: &Value) -> (Vec<u32>, Vec<u16>) {
    let mut ips = vec![];
    if svc_type(svc) != "ExternalName" {
        for ip in svc.pointer("/spec/clusterIPs").and_then(Value::as_array).into_iter().flatten() {
            if let Some(Ok(a)) = ip.as_str().map(str::parse::<Ipv4Addr>) {
                ips.push(u32::from(a));
            }
        }
    }
    let mut ports = vec![];
    for p in svc.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
        if let Some(n) = p.get("nodePort").and_then(Value::as_u64).filter(|n| *n > 0 && *n <= 65535) {
            ports.push(n as u16);
        }
    }
    if let Some(n) = svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_u64).filter(|n| *n > 0 && *n <= 65535)
    {
        ports.push(n as u16);
    }
    (ips, ports)
}

fn invalid(name: &str, errs: Vec<FieldError>) -> StatusError {
    let info = ResourceInfo::new("", "v1", "services", "Service", true, &[], &[], &[]);
    StatusError::invalid(&info, name, &errs)
}

fn internal(msg: String) -> StatusError {
    StatusError::new(500, "InternalError", format!("Internal error occurred: {msg}"))
        .with_details(json!({"causes": [{"message": msg}]}))
}

impl Allocators {
    /// Allocators over `ranges`, empty until first used.
    pub fn new(ranges: ServiceRanges) -> Self {
        Self { ranges, state: Mutex::new(None) }
    }

    /// The configured ranges.
    pub fn ranges(&self) -> &ServiceRanges {
        &self.ranges
    }

    fn lock<'a>(&'a self, store: &Store, info: &ResourceInfo) -> std::sync::MutexGuard<'a, Option<InUse>> {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            let mut s = InUse::default();
            for (ns, name) in store.keys(&info.storage_key, None) {
                let Some(e) = store.get(&info.storage_key, &ns, &name) else { continue };
                let Ok(v) = serde_json::from_slice::<Value>(&e.bytes()) else { continue };
                let (ips, ports) = held(&v);
                s.ips.extend(ips);
                s.ports.extend(ports);
            }
            *g = Some(s);
        }
        g
    }

    /// Reserve what `svc` (being created, or updated from `old`) needs, filling in
    /// `spec.clusterIP(s)` and `spec.ports[*].nodePort` / `spec.healthCheckNodePort`; refuse an
    /// address in use or out of range with upstream's 422. On a dry run nothing is kept.
    pub fn allocate<'a>(
        &'a self,
        store: &Store,
        info: &ResourceInfo,
        svc: &mut Value,
        old: Option<&Value>,
        dry_run: bool,
    ) -> Result<Reservation<'a>, StatusError> {
        let mut resv = Reservation { alloc: self, ips: vec![], ports: vec![] };
        if !svc["spec"].is_object() {
            return Ok(resv);
        }
        let mut guard = self.lock(store, info);
        let state = guard.as_mut().expect("initialised");
        let mut rng = rand::rng();
        let name = svc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
        // The families this (single-stack IPv4) cluster serves, as `initIPFamilyFields` checks
        // them; a headless Service without selector may name both.
        let headless_selectorless = svc.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None")
            && svc.pointer("/spec/selector").and_then(Value::as_object).is_none_or(|m| m.is_empty());
        if svc_type(svc) != "ExternalName" && !headless_selectorless {
            let mut errs = vec![];
            let policy = svc.pointer("/spec/ipFamilyPolicy").and_then(Value::as_str).unwrap_or("");
            if policy == "RequireDualStack" {
                errs.push(FieldError::invalid(
                    "spec.ipFamilyPolicy",
                    json!(policy),
                    "this cluster is not configured for dual-stack services",
                ));
            }
            for (i, f) in svc.pointer("/spec/ipFamilies").and_then(Value::as_array).into_iter().flatten().enumerate() {
                if f.as_str() != Some("IPv4") {
                    errs.push(FieldError::invalid(
                        format!("spec.ipFamilies[{i}]"),
                        f.clone(),
                        "not configured on this cluster",
                    ));
                }
            }
            if !errs.is_empty() {
                return Err(invalid(&name, errs));
            }
        }
        // Cluster IPs.
        let (old_ips, old_ports) = old.map(held).unwrap_or_default();
        let ty = svc_type(svc).to_string();
        let first = svc.pointer("/spec/clusterIPs/0").and_then(Value::as_str).unwrap_or("").to_string();
        if ty != "ExternalName" && first != "None" {
            if first.is_empty() {
                let (lo, hi) = self.ranges.ip_bounds();
                let size = hi - lo + 1;
                let reserved = (size / 16).clamp(16, 256).min(size);
                let pick = next_free(&mut rng, lo, size, reserved, |c| state.ips.contains(&c))
                    .ok_or_else(|| internal("failed to allocate a serviceIP: range is full".into()))?;
                if !dry_run {
                    state.ips.insert(pick);
                    resv.ips.push(pick);
                }
                let ip = Ipv4Addr::from(pick).to_string();
                svc["spec"]["clusterIP"] = json!(ip);
                svc["spec"]["clusterIPs"] = json!([ip]);
            } else if let Ok(a) = first.parse::<Ipv4Addr>() {
                let a = u32::from(a);
                if !old_ips.contains(&a) {
                    let why = if !self.ranges.contains_ip(a) {
                        Some(format!("provided IP {first} is not in the valid range"))
                    } else if state.ips.contains(&a) {
                        Some("provided IP is already allocated".to_string())
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        let ips = svc.pointer("/spec/clusterIPs").cloned().unwrap_or(json!([]));
                        let msg = format!("failed to allocate IP {first}: {why}");
                        return Err(invalid(&name, vec![FieldError::invalid("spec.clusterIPs", ips, msg)]));
                    }
                    if !dry_run {
                        state.ips.insert(a);
                        resv.ips.push(a);
                    }
                }
            }
        }
        // Node ports.
        let old_ports: HashSet<u16> =
            old.filter(|o| uses_node_ports(o)).map(|_| old_ports.into_iter().collect()).unwrap_or_default();
        let range = self.ranges.port_range();
        let mut take =
            |state: &mut InUse, resv: &mut Reservation, want: i64, path: String| -> Result<u16, StatusError> {
                if want != 0 {
                    let p = u16::try_from(want).ok().filter(|p| old_ports.contains(p) || resv.ports.contains(p));
                    if let Some(p) = p {
                        return Ok(p);
                    }
                    let why = if !self.ranges.contains_port(want) {
                        format!("provided port is not in the valid range. The range of valid ports is {range}")
                    } else if state.ports.contains(&(want as u16)) {
                        "provided port is already allocated".to_string()
                    } else {
                        if !dry_run {
                            state.ports.insert(want as u16);
                            resv.ports.push(want as u16);
                        }
                        return Ok(want as u16);
                    };
                    return Err(invalid(&name, vec![FieldError::invalid(path, json!(want), why)]));
                }
                let base = u32::from(self.ranges.node_port_base);
                let size = u32::from(self.ranges.node_port_size);
                let reserved = (size / 32).clamp(16, 128).min(size);
                let pick = next_free(&mut rng, base, size, reserved, |c| {
                    state.ports.contains(&(c as u16)) || resv.ports.contains(&(c as u16))
                })
                .ok_or_else(|| internal("failed to allocate a nodePort: range is full".into()))?
                    as u16;
                if !dry_run {
                    state.ports.insert(pick);
                }
                resv.ports.push(pick);
                Ok(pick)
            };
        if uses_node_ports(svc) {
            let allocate_all = ty == "NodePort"
                || svc.pointer("/spec/allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false);
            let mut by_port: BTreeMap<i64, u16> = BTreeMap::new();
            let n = svc.pointer("/spec/ports").and_then(Value::as_array).map_or(0, Vec::len);
            for i in 0..n {
                let p = &svc["spec"]["ports"][i];
                let want = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                if want == 0 && !allocate_all {
                    continue;
                }
                let got = match (want, by_port.get(&port)) {
                    (0, Some(&shared)) => shared,
                    _ => take(state, &mut resv, want, format!("spec.ports[{i}].nodePort"))?,
                };
                by_port.entry(port).or_insert(got);
                svc["spec"]["ports"][i]["nodePort"] = json!(got);
            }
        }
        if ty == "LoadBalancer" && svc.pointer("/spec/externalTrafficPolicy").and_then(Value::as_str) == Some("Local") {
            let want = svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0);
            let got = take(state, &mut resv, want, "spec.healthCheckNodePort".into())?;
            svc["spec"]["healthCheckNodePort"] = json!(got);
        }
        if dry_run {
            resv.ports.clear();
        }
        Ok(resv)
    }

    /// A Service write was stored (`new`, `None` when it was deleted) over `old`: release what
    /// `old` held that `new` no longer does.
    pub fn committed(&self, store: &Store, info: &ResourceInfo, old: Option<&Value>, new: Option<&Value>) {
        let Some(old) = old else { return };
        let mut guard = self.lock(store, info);
        let state = guard.as_mut().expect("initialised");
        let (old_ips, old_ports) = held(old);
        let (new_ips, new_ports) = new.map(held).unwrap_or_default();
        for ip in old_ips.iter().filter(|ip| !new_ips.contains(ip)) {
            state.ips.remove(ip);
        }
        for p in old_ports.iter().filter(|p| !new_ports.contains(p)) {
            state.ports.remove(p);
        }
    }

    /// How many cluster IPs and node ports are in use (for tests).
    pub fn in_use(&self, store: &Store, info: &ResourceInfo) -> (usize, usize) {
        let g = self.lock(store, info);
        let s = g.as_ref().expect("initialised");
        (s.ips.len(), s.ports.len())
    }
}

/// A free value in `[base, base+size)`: a random one at or above `base+reserved` (scanning up
/// and wrapping), else the first free one below it.
fn next_free(rng: &mut impl Rng, base: u32, size: u32, reserved: u32, taken: impl Fn(u32) -> bool) -> Option<u32> {
    let upper = size - reserved;
    if upper > 0 {
        let start = rng.random_range(0..upper);
        for k in 0..upper {
            let c = base + reserved + (start + k) % upper;
            if !taken(c) {
                return Some(c);
            }
        }
    }
    (0..reserved).map(|k| base + k).find(|c| !taken(*c))
}

/// The `kubernetes` Service in `default` and its Endpoints and EndpointSlice, pointing at the API
/// server on `addr`, as kube-apiserver's endpoint reconciler keeps them: Service port `https` 443
/// to the server's port, the first address of the service range, labels `component: apiserver`
/// and `provider: kubernetes`. Called when the server starts listening (the port changes between
/// runs of a persistent server, so existing objects are brought up to date).
pub fn ensure_kubernetes_service(api: &crate::rest::Api, addr: std::net::SocketAddr) {
    use crate::rest::WriteOptions;
    let opts = WriteOptions { field_manager: Some("kube-apiserver".into()), ..Default::default() };
    let port = addr.port();
    let ip = addr.ip().to_string();
    let svc_info = api.info("", "services");
    let kubernetes_ip = api.services.ranges().kubernetes_ip().to_string();
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": kubernetes_ip, "type": "ClusterIP", "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    });
    upsert(api, &svc_info, svc, &opts, |old, new| {
        old.pointer("/spec/ports") == new.pointer("/spec/ports")
            && old.pointer("/metadata/labels") == new.pointer("/metadata/labels")
    });
    let ep_info = api.info("", "endpoints");
    let ep = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    upsert(api, &ep_info, ep, &opts, |old, new| old.get("subsets") == new.get("subsets"));
    if let Some(slice_info) = api.registry.get("discovery.k8s.io", "v1", "endpointslices") {
        let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": family,
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        });
        upsert(api, &slice_info, slice, &opts, |old, new| {
            old.get("endpoints") == new.get("endpoints") && old.get("ports") == new.get("ports")
        });
    }
}

/// Create `obj`, or replace the stored one when `same` says it differs (keeping what the server
/// allocated). Failures are logged: a missing `kubernetes` Service must not stop the server.
fn upsert(
    api: &crate::rest::Api,
    info: &ResourceInfo,
    obj: Value,
    opts: &crate::rest::WriteOptions,
    same: impl Fn(&Value, &Value) -> bool,
) {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let result = match api.get_value(info, "default", &name) {
        Ok(old) if same(&old, &obj) => return,
        Ok(old) => {
            let mut new = obj;
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
            api.update(info, "default", &name, None, new, opts).map(|_| ())
        }
        Err(_) => api.create(info, "default", obj, opts).map(|_| ()),
    };
    if let Err(e) = result {
        tracing::warn!(resource = %info.resource, error = %e.message, "cannot write the kubernetes Service's objects");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::Registry;
    use crate::rest::{Api, DeleteOptions, WriteOptions};
    use crate::store::StoreConfig;

    fn api() -> Api {
        Api::new(Arc::new(Store::new(StoreConfig::default())), Registry::builtin())
    }

    fn create(api: &Api, svc: Value) -> Result<Value, StatusError> {
        let info = api.info("", "services");
        api.create(&info, "default", svc, &WriteOptions::default()).map(|o| o.object)
    }

    fn svc(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
    }

    fn web(name: &str) -> Value {
        svc(name, json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}))
    }

    fn update(api: &Api, name: &str, f: impl FnOnce(&mut Value)) -> Result<Value, StatusError> {
        let info = api.info("", "services");
        let mut v = api.get_value(&info, "default", name).unwrap();
        f(&mut v);
        api.update(&info, "default", name, None, v, &WriteOptions::default()).map(|o| o.object)
    }

    fn delete(api: &Api, name: &str) {
        let info = api.info("", "services");
        api.delete(&info, "default", name, &DeleteOptions::default()).unwrap();
    }

    #[test]
    fn a_plain_service_is_defaulted_and_gets_an_address_from_the_range() {
        let api = api();
        let s = create(&api, web("web")).unwrap();
        let spec = &s["spec"];
        assert_eq!(spec["type"], "ClusterIP");
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
        let ip: Ipv4Addr = spec["clusterIP"].as_str().unwrap().parse().unwrap();
        assert_eq!(spec["clusterIPs"], json!([ip.to_string()]));
        let o = ip.octets();
        assert_eq!((o[0], o[1]), (10, 96), "{ip} is not in 10.96.0.0/16");
        // The lower band (10.96.0.0 - 10.96.0.255) is kept for explicit requests.
        assert!(o[2] >= 1, "{ip} was taken from the static band");
        assert!(spec.get("externalTrafficPolicy").is_none());
        assert!(spec["ports"][0].get("nodePort").is_none());
    }

    #[test]
    fn headless_services_keep_none_and_get_upstreams_families() {
        let api = api();
        let with = create(&api, svc("h", json!({"clusterIP": "None", "selector": {"a": "b"}}))).unwrap();
        assert_eq!(with["spec"]["clusterIP"], "None");
        assert_eq!(with["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(with["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(with["spec"]["ipFamilies"], json!(["IPv4"]));
        let without = create(&api, svc("h2", json!({"clusterIP": "None"}))).unwrap();
        assert_eq!(without["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(without["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        assert_eq!(api.services.in_use(&api.store, &api.info("", "services")), (0, 0));
    }

    #[test]
    fn a_requested_address_is_honoured_once_and_released_on_delete() {
        let api = api();
        let mut a = web("dns");
        a["spec"]["clusterIP"] = json!("10.96.0.10");
        assert_eq!(create(&api, a.clone()).unwrap()["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        a["metadata"]["name"] = json!("dns2");
        let e = create(&api, a.clone()).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Service \"dns2\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.10\"}: failed to allocate IP 10.96.0.10: provided IP is already allocated"
        );
        assert_eq!(e.details.as_ref().unwrap()["causes"][0]["field"], "spec.clusterIPs");
        let mut out = web("out");
        out["spec"]["clusterIPs"] = json!(["10.0.0.5"]);
        let e = create(&api, out).unwrap_err();
        assert!(
            e.message.ends_with("failed to allocate IP 10.0.0.5: provided IP 10.0.0.5 is not in the valid range"),
            "{}",
            e.message
        );
        delete(&api, "dns");
        create(&api, a).unwrap();
    }

    #[test]
    fn the_kubernetes_service_holds_the_first_address() {
        let api = api();
        ensure_kubernetes_service(&api, "127.0.0.1:6443".parse().unwrap());
        let info = api.info("", "services");
        let k = api.get_value(&info, "default", "kubernetes").unwrap();
        assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(k["spec"]["ports"][0], json!({"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}));
        let ep = api.get_value(&api.info("", "endpoints"), "default", "kubernetes").unwrap();
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "127.0.0.1");
        let slice = api.get_value(&api.info("discovery.k8s.io", "endpointslices"), "default", "kubernetes").unwrap();
        assert_eq!(slice["ports"][0]["port"], 6443);
        let rv = k["metadata"]["resourceVersion"].clone();
        // Started again on the same port: nothing is rewritten; on another: the port follows.
        ensure_kubernetes_service(&api, "127.0.0.1:6443".parse().unwrap());
        assert_eq!(api.get_value(&info, "default", "kubernetes").unwrap()["metadata"]["resourceVersion"], rv);
        ensure_kubernetes_service(&api, "127.0.0.1:7000".parse().unwrap());
        let k = api.get_value(&info, "default", "kubernetes").unwrap();
        assert_eq!(k["spec"]["ports"][0]["targetPort"], 7000);
        assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
        let mut other = web("other");
        other["spec"]["clusterIP"] = json!("10.96.0.1");
        assert!(create(&api, other).unwrap_err().message.contains("provided IP is already allocated"));
    }

    #[test]
    fn the_cluster_ip_cannot_change_but_a_replace_without_it_keeps_it() {
        let api = api();
        let ip = create(&api, web("web")).unwrap()["spec"]["clusterIP"].clone();
        let e = update(&api, "web", |v| {
            v["spec"]["clusterIP"] = json!("10.96.0.99");
            v["spec"]["clusterIPs"] = json!(["10.96.0.99"]);
        })
        .unwrap_err();
        assert!(
            e.message.contains("spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.99\"}: may not change once set"),
            "{}",
            e.message
        );
        let kept = update(&api, "web", |v| {
            let spec = v["spec"].as_object_mut().unwrap();
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        })
        .unwrap();
        assert_eq!(kept["spec"]["clusterIP"], ip);
        assert_eq!(api.services.in_use(&api.store, &api.info("", "services")).0, 1);
    }

    #[test]
    fn node_ports_are_allocated_checked_and_released() {
        let api = api();
        let s = create(&api, svc("np", json!({"type": "NodePort", "selector": {"a": "b"}, "ports": [{"port": 80}, {"name": "x", "port": 81, "nodePort": 30080}]}))).unwrap_err();
        assert!(s.message.contains("spec.ports[0].name: Required value"), "{}", s.message);
        let s = create(&api, svc("np", json!({"type": "NodePort", "selector": {"a": "b"}, "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30080}]}))).unwrap();
        assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
        let np = s["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
        assert!((30000..=32767).contains(&np), "{np}");
        assert_eq!(s["spec"]["ports"][1]["nodePort"], 30080);
        let taken = create(&api, svc("np2", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]})))
            .unwrap_err();
        assert_eq!(
            taken.message,
            "Service \"np2\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        );
        let out = create(&api, svc("np3", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]})))
            .unwrap_err();
        assert!(out.message.ends_with("spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"), "{}", out.message);
        let info = api.info("", "services");
        assert_eq!(api.services.in_use(&api.store, &info), (1, 2));
        // Back to ClusterIP: the node ports (unchanged by the client) are dropped and freed.
        let c = update(&api, "np", |v| v["spec"]["type"] = json!("ClusterIP")).unwrap();
        assert!(c["spec"]["ports"][0].get("nodePort").is_none());
        assert!(c["spec"].get("externalTrafficPolicy").is_none());
        assert_eq!(api.services.in_use(&api.store, &info), (1, 0));
        create(&api, svc("np4", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}))).unwrap();
        delete(&api, "np4");
        delete(&api, "np");
        assert_eq!(api.services.in_use(&api.store, &info), (0, 0));
    }

    #[test]
    fn invalid_services_name_the_field() {
        let api = api();
        let msg = |spec: Value| create(&api, svc("bad", spec)).unwrap_err().message;
        assert!(msg(json!({})).ends_with("spec.ports: Required value"));
        assert!(
            msg(json!({"ports": [{"port": 70000}]}))
                .contains("spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive")
        );
        assert!(msg(json!({"ports": [{"port": 80, "protocol": "HTTP"}]})).contains(
            "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
        ));
        assert!(
            msg(json!({"ports": [{"port": 80, "name": "Web"}]}))
                .contains("spec.ports[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label")
        );
        assert!(
            msg(json!({"type": "Cluster", "ports": [{"port": 80}]}))
                .contains("spec.type: Unsupported value: \"Cluster\"")
        );
        assert!(
            msg(json!({"ports": [{"port": 80, "nodePort": 30001}]}))
                .contains("spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'")
        );
        assert!(
            msg(json!({"clusterIP": "10.96.0.300", "ports": [{"port": 80}]}))
                .contains("spec.clusterIPs[0]: Invalid value: \"10.96.0.300\": must be a valid IP address")
        );
        assert!(
            msg(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}))
                .contains("may not be set to 'None' for NodePort services")
        );
        assert!(msg(json!({"type": "ExternalName"})).contains("spec.externalName: Required value"));
        assert!(
            msg(json!({"ports": [{"port": 80, "targetPort": "no_such"}]}))
                .contains("spec.ports[0].targetPort: Invalid value: \"no_such\"")
        );
        // Nothing was reserved by the refused writes.
        assert_eq!(api.services.in_use(&api.store, &api.info("", "services")), (0, 0));
    }

    #[test]
    fn dual_stack_is_refused_on_this_single_stack_cluster() {
        let api = api();
        let mut dual = web("dual");
        dual["spec"]["ipFamilyPolicy"] = json!("RequireDualStack");
        let e = create(&api, dual).unwrap_err();
        assert!(e.message.contains("spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"), "{}", e.message);
        let mut v6 = web("v6");
        v6["spec"]["ipFamilies"] = json!(["IPv6"]);
        let e = create(&api, v6).unwrap_err();
        assert!(
            e.message.contains("spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"),
            "{}",
            e.message
        );
        let mut prefer = web("prefer");
        prefer["spec"]["ipFamilyPolicy"] = json!("PreferDualStack");
        let p = create(&api, prefer).unwrap();
        assert_eq!(p["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(p["spec"]["clusterIPs"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_dry_run_shows_an_address_but_keeps_none() {
        let api = api();
        let info = api.info("", "services");
        let opts = WriteOptions { dry_run: true, ..Default::default() };
        let o = api.create(&info, "default", web("web"), &opts).unwrap();
        assert!(o.object["spec"]["clusterIP"].as_str().unwrap().starts_with("10.96."));
        assert_eq!(api.services.in_use(&api.store, &info), (0, 0));
    }

    #[test]
    fn ranges_parse_as_the_flags() {
        let r = ServiceRanges::parse("10.96.7.9/16", "30000-32767").unwrap();
        assert_eq!(r, ServiceRanges::default());
        assert_eq!(r.cidr(), "10.96.0.0/16");
        assert_eq!(r.port_range(), "30000-32767");
        assert_eq!(r.kubernetes_ip(), Ipv4Addr::new(10, 96, 0, 1));
        assert!(ServiceRanges::parse_cidr("10.96.0.0").is_err());
        assert!(ServiceRanges::parse_cidr("10.96.0.0/31").is_err());
        assert!(ServiceRanges::parse_port_range("32767-30000").is_err());
        assert_eq!(ServiceRanges::parse_port_range("80").unwrap(), (80, 1));
    }

    #[test]
    fn next_free_prefers_the_upper_band_then_fills_the_lower() {
        let mut rng = rand::rng();
        let taken: HashSet<u32> = (20..100).collect();
        assert_eq!(next_free(&mut rng, 0, 100, 20, |c| taken.contains(&c)), Some(0));
        let v = next_free(&mut rng, 0, 100, 20, |_| false).unwrap();
        assert!((20..100).contains(&v));
        assert_eq!(next_free(&mut rng, 0, 100, 20, |_| true), None);
    }
}
