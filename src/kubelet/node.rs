//! Node registration and heartbeat, as a kubelet does them.
//!
//! Each simulated node is a `v1 Node` with capacity (`pods` = the per-node pod capacity), the four
//! kubelet conditions with upstream's reasons and messages, `addresses` (InternalIP 127.0.0.1 and
//! Hostname) and `daemonEndpoints.kubeletEndpoint.Port` = the log server's port, which the API server
//! uses to proxy `pods/log`. Liveness is a `coordination.k8s.io/v1` Lease named after the node in
//! `kube-node-lease`, renewed every heartbeat, plus the Ready condition's `lastHeartbeatTime`.
//!
//! [`mark_unreachable`] plays the node lifecycle controller for a failed node: conditions `Unknown`
//! with `NodeStatusUnknown` / "Kubelet stopped posting node status.", and the `unreachable` taints.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Namespace, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::status::{LOCAL_IP, time};

/// Namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Annotation that fails a node on demand: `kubectl annotate node NAME jobwright.dev/fail-node=true`.
/// Cleared when the node registers again.
pub const FAIL_ANNOTATION: &str = "jobwright.dev/fail-node";
/// Taint key the node lifecycle controller puts on unreachable nodes.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// Per-node settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name.
    pub name: String,
    /// `status.capacity.pods`.
    pub pods: usize,
    /// The kubelet (log) endpoint port.
    pub port: u16,
    /// Lease duration in seconds.
    pub lease_duration_seconds: i32,
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> NodeCondition {
    let now = time(Utc::now());
    NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// The conditions of a healthy node.
pub fn healthy_conditions() -> Vec<NodeCondition> {
    vec![
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
}

/// Carry over `lastTransitionTime` from `old` conditions whose status did not change.
fn keep_transitions(new: &mut [NodeCondition], old: &[NodeCondition]) {
    for c in new.iter_mut() {
        if let Some(o) = old.iter().find(|o| o.type_ == c.type_ && o.status == c.status) {
            c.last_transition_time = o.last_transition_time.clone();
        }
    }
}

/// The full status of a healthy node.
pub fn node_status(cfg: &NodeConfig) -> NodeStatus {
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", "8".to_string()),
        ("memory", "32Gi".to_string()),
        ("ephemeral-storage", "100Gi".to_string()),
        ("pods", cfg.pods.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect();
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(healthy_conditions()),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: LOCAL_IP.into() },
            NodeAddress { type_: "Hostname".into(), address: cfg.name.clone() },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: cfg.port as i32 }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            boot_id: String::new(),
            container_runtime_version: format!("jobwright://{}", env!("CARGO_PKG_VERSION")),
            kernel_version: String::new(),
            kube_proxy_version: String::new(),
            kubelet_version: format!("v1.33.0-jobwright.{}", env!("CARGO_PKG_VERSION")),
            machine_id: String::new(),
            operating_system: std::env::consts::OS.into(),
            os_image: "jobwright node simulator".into(),
            system_uuid: String::new(),
            swap: None,
        }),
        ..Default::default()
    }
}

/// The Node object to create.
pub fn node_object(cfg: &NodeConfig) -> Node {
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", cfg.name.clone()),
        ("kubernetes.io/os", std::env::consts::OS.to_string()),
        ("kubernetes.io/arch", std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")),
        ("beta.kubernetes.io/os", std::env::consts::OS.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Node {
        metadata: ObjectMeta { name: Some(cfg.name.clone()), labels: Some(labels), ..Default::default() },
        spec: Some(NodeSpec::default()),
        status: Some(node_status(cfg)),
    }
}

fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Create `kube-node-lease` if missing.
pub async fn ensure_lease_namespace(client: &kube::Client) -> Result<(), kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(LEASE_NAMESPACE).await?.is_none() {
        let ns = Namespace {
            metadata: ObjectMeta { name: Some(LEASE_NAMESPACE.into()), ..Default::default() },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(e) if is_code(&e, 409) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Register (or take over) the node: create it, clear taints left by an earlier failure, write a
/// healthy status, and create its lease.
pub async fn register(client: &kube::Client, cfg: &NodeConfig) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let mut node = match api.get_opt(&cfg.name).await? {
        Some(n) => n,
        None => match api.create(&PostParams::default(), &node_object(cfg)).await {
            Ok(n) => n,
            Err(e) if is_code(&e, 409) => api.get(&cfg.name).await?,
            Err(e) => return Err(e),
        },
    };
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let failed = node.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(FAIL_ANNOTATION));
    if failed || taints.iter().any(|t| t.key == UNREACHABLE_TAINT) {
        let spec = node.spec.get_or_insert_with(Default::default);
        spec.taints = Some(taints.into_iter().filter(|t| t.key != UNREACHABLE_TAINT).collect());
        if let Some(a) = node.metadata.annotations.as_mut() {
            a.remove(FAIL_ANNOTATION);
        }
        node = api.replace(&cfg.name, &PostParams::default(), &node).await?;
    }
    let mut status = node_status(cfg);
    let old = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    if let Some(c) = status.conditions.as_mut() {
        keep_transitions(c, &old);
    }
    node.status = Some(status);
    api.replace_status(&cfg.name, &PostParams::default(), &node).await?;
    renew_lease(client, cfg).await
}

/// Renew (or create) the node's lease.
pub async fn renew_lease(client: &kube::Client, cfg: &NodeConfig) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = MicroTime(time(Utc::now()).0);
    match api.get_opt(&cfg.name).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.renew_time = Some(now);
            spec.holder_identity = Some(cfg.name.clone());
            spec.lease_duration_seconds = Some(cfg.lease_duration_seconds);
            api.replace(&cfg.name, &PostParams::default(), &lease).await?;
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.name.clone()),
                    lease_duration_seconds: Some(cfg.lease_duration_seconds),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

/// One heartbeat: renew the lease and refresh the conditions' `lastHeartbeatTime`. Returns false
/// when the Node object is gone.
pub async fn heartbeat_once(client: &kube::Client, cfg: &NodeConfig) -> Result<bool, kube::Error> {
    renew_lease(client, cfg).await?;
    let api: Api<Node> = Api::all(client.clone());
    let Some(mut node) = api.get_opt(&cfg.name).await? else { return Ok(false) };
    let old = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let mut conditions = healthy_conditions();
    keep_transitions(&mut conditions, &old);
    let status = node.status.get_or_insert_with(Default::default);
    status.conditions = Some(conditions);
    status.daemon_endpoints =
        Some(NodeDaemonEndpoints { kubelet_endpoint: Some(DaemonEndpoint { port: cfg.port as i32 }) });
    match api.replace_status(&cfg.name, &PostParams::default(), &node).await {
        Ok(_) => Ok(true),
        Err(e) if is_code(&e, 409) => Ok(true),
        Err(e) if is_code(&e, 404) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Heartbeat every `interval` until `stop`.
pub async fn heartbeat_loop(client: kube::Client, cfg: NodeConfig, interval: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                match heartbeat_once(&client, &cfg).await {
                    Ok(true) => {}
                    Ok(false) => {
                        debug!(node = %cfg.name, "node object gone, heartbeat stops");
                        return;
                    }
                    Err(e) => warn!(node = %cfg.name, error = %e, "node heartbeat failed"),
                }
            }
        }
    }
}

/// Mark a node unreachable as the node lifecycle controller does when its kubelet stops posting
/// status: every condition `Unknown`, and the `unreachable` NoSchedule and NoExecute taints.
pub async fn mark_unreachable(client: &kube::Client, name: &str) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    for _ in 0..5 {
        let Some(mut node) = api.get_opt(name).await? else { return Ok(()) };
        let now = time(Utc::now());
        let spec = node.spec.get_or_insert_with(Default::default);
        let mut taints: Vec<Taint> =
            spec.taints.clone().unwrap_or_default().into_iter().filter(|t| t.key != UNREACHABLE_TAINT).collect();
        taints.push(Taint { key: UNREACHABLE_TAINT.into(), effect: "NoSchedule".into(), ..Default::default() });
        taints.push(Taint {
            key: UNREACHABLE_TAINT.into(),
            effect: "NoExecute".into(),
            time_added: Some(now.clone()),
            ..Default::default()
        });
        spec.taints = Some(taints);
        let node = match api.replace(name, &PostParams::default(), &node).await {
            Ok(n) => n,
            Err(e) if is_code(&e, 409) => continue,
            Err(e) if is_code(&e, 404) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut node = node;
        if let Some(conds) = node.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            for c in conds.iter_mut() {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(now.clone());
            }
        }
        match api.replace_status(name, &PostParams::default(), &node).await {
            Ok(_) => return Ok(()),
            Err(e) if is_code(&e, 409) => continue,
            Err(e) if is_code(&e, 404) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_object_publishes_capacity_addresses_and_port() {
        let cfg = NodeConfig { name: "n0".into(), pods: 7, port: 4321, lease_duration_seconds: 40 };
        let node = node_object(&cfg);
        let status = node.status.unwrap();
        assert_eq!(status.capacity.unwrap()["pods"].0, "7");
        assert_eq!(status.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port, 4321);
        let addrs = status.addresses.unwrap();
        assert_eq!((addrs[0].type_.as_str(), addrs[0].address.as_str()), ("InternalIP", "127.0.0.1"));
        assert_eq!((addrs[1].type_.as_str(), addrs[1].address.as_str()), ("Hostname", "n0"));
        let ready = status.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
        assert_eq!(node.metadata.labels.unwrap()["kubernetes.io/hostname"], "n0");
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let mut old = healthy_conditions();
        old[3].last_transition_time = Some(time(chrono::DateTime::from_timestamp(1000, 0).unwrap()));
        old[0].status = "True".into();
        let mut new = healthy_conditions();
        keep_transitions(&mut new, &old);
        assert_eq!(new[3].last_transition_time, old[3].last_transition_time);
        assert_ne!(new[0].last_transition_time, Some(time(chrono::DateTime::from_timestamp(1000, 0).unwrap())));
    }
}
