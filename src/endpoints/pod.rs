//! The pods the Endpoints and EndpointSlice controllers cache, decoded straight from the watch's
//! JSON into only what they read. Every pod in the cluster is cached (finished ones too), and a
//! k8s-openapi `Pod` costs kilobytes even trimmed (its structs keep room for every field), so a
//! cache of them held ~5.5 KiB per pod; this holds the metadata they match and key on, and the
//! few facts the decisions in [`super::desired`] use.

use std::collections::BTreeMap;

#[cfg(test)]
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Deserialize;

/// A pod as these controllers see it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "wire::Pod")]
pub struct EpPod {
    /// Name, namespace, uid, resourceVersion, labels, creation and deletion timestamps only.
    pub metadata: ObjectMeta,
    /// `spec.hostname`.
    pub hostname: Option<String>,
    /// `spec.subdomain`.
    pub subdomain: Option<String>,
    /// `spec.nodeName`.
    pub node_name: Option<String>,
    /// The named ports of the containers, then of the restartable init containers (sidecars), in
    /// spec order: what a named `targetPort` resolves against.
    pub named_ports: Vec<NamedPort>,
    /// `status.phase` is `Succeeded` or `Failed`.
    pub terminal: bool,
    /// The first IPv4 address of `status.podIP` and `status.podIPs` (the Service's family here).
    pub ip: Option<String>,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// The `Ready` condition's `lastTransitionTime`.
    pub ready_since: Option<Time>,
}

/// A named container port.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NamedPort {
    /// `name`.
    pub name: String,
    /// `protocol`, `TCP` when unset.
    pub protocol: String,
    /// `containerPort`.
    pub port: i32,
}

impl kube::Resource for EpPod {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
impl From<&Pod> for EpPod {
    /// What the watch would decode from this pod's JSON (tests build pods as `Pod`s).
    fn from(pod: &Pod) -> Self {
        serde_json::to_value(pod).and_then(serde_json::from_value).unwrap_or_default()
    }
}

/// The JSON shapes read, and nothing else (serde skips every other field without building it).
mod wire {
    use super::*;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct Pod {
        metadata: Meta,
        spec: Option<Spec>,
        status: Option<Status>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Meta {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
        labels: Option<BTreeMap<String, String>>,
        creation_timestamp: Option<Time>,
        deletion_timestamp: Option<Time>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Spec {
        hostname: Option<String>,
        subdomain: Option<String>,
        node_name: Option<String>,
        containers: Option<Vec<Container>>,
        init_containers: Option<Vec<Container>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Container {
        restart_policy: Option<String>,
        ports: Option<Vec<Port>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Port {
        name: Option<String>,
        protocol: Option<String>,
        container_port: i32,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Status {
        phase: Option<String>,
        #[serde(rename = "podIP")]
        pod_ip: Option<String>,
        #[serde(rename = "podIPs")]
        pod_ips: Option<Vec<Ip>>,
        conditions: Option<Vec<Condition>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Ip {
        ip: String,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Condition {
        #[serde(rename = "type")]
        type_: String,
        status: String,
        last_transition_time: Option<Time>,
    }

    impl From<Pod> for EpPod {
        fn from(p: Pod) -> Self {
            let m = p.metadata;
            let metadata = ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                uid: m.uid,
                resource_version: m.resource_version,
                labels: m.labels,
                creation_timestamp: m.creation_timestamp,
                deletion_timestamp: m.deletion_timestamp,
                ..Default::default()
            };
            let spec = p.spec.unwrap_or_default();
            let sidecars =
                spec.init_containers.into_iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
            let named_ports = spec
                .containers
                .into_iter()
                .flatten()
                .chain(sidecars)
                .flat_map(|c| c.ports.into_iter().flatten())
                .filter_map(|p| {
                    Some(NamedPort {
                        name: p.name.filter(|n| !n.is_empty())?,
                        protocol: p.protocol.unwrap_or_else(|| "TCP".into()),
                        port: p.container_port,
                    })
                })
                .collect();
            let status = p.status.unwrap_or_default();
            let ips = status.pod_ip.into_iter().chain(status.pod_ips.into_iter().flatten().map(|i| i.ip));
            let ip = ips.filter(|ip| !ip.is_empty()).find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok());
            let ready_cond = status.conditions.into_iter().flatten().find(|c| c.type_ == "Ready");
            EpPod {
                metadata,
                hostname: spec.hostname,
                subdomain: spec.subdomain,
                node_name: spec.node_name,
                named_ports,
                terminal: matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")),
                ip,
                ready: ready_cond.as_ref().is_some_and(|c| c.status == "True"),
                ready_since: ready_cond.and_then(|c| c.last_transition_time),
            }
        }
    }
}
