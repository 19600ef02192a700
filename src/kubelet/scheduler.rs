//! The scheduler half: which node gets a pending pod, and the binding call.
//!
//! Only pods with no `spec.nodeName`, for the default scheduler (`schedulerName` unset or
//! `default-scheduler`), not being deleted and not finished, are ours to place. The choice is the
//! least-loaded healthy node below its pod capacity, ties broken round-robin so equal nodes fill
//! evenly; with no room anywhere the pod waits until a pod on some node ends. Binding is
//! `POST pods/{name}/binding` with a `v1 Binding` targeting the node; the server sets `nodeName`
//! and the `PodScheduled` condition.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

/// The scheduler name this simulator answers for.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// Whether a pod waits for this scheduler.
pub fn wants_scheduling(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return false };
    let unbound = spec.node_name.as_deref().is_none_or(str::is_empty);
    let ours = spec.scheduler_name.as_deref().is_none_or(|s| s.is_empty() || s == DEFAULT_SCHEDULER);
    let finished =
        pod.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|p| p == "Succeeded" || p == "Failed");
    unbound && ours && !finished && pod.metadata.deletion_timestamp.is_none()
}

/// One node as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Node name.
    pub name: String,
    /// Pods bound there and not finished.
    pub load: usize,
    /// Pod capacity.
    pub capacity: usize,
    /// Ready for pods (not failed).
    pub healthy: bool,
}

/// Pick the least-loaded healthy node with room; among equals, the first at or after `cursor`
/// (round-robin). Returns the index into `nodes`.
pub fn pick(nodes: &[Candidate], cursor: usize) -> Option<usize> {
    let n = nodes.len();
    (0..n)
        .map(|i| (cursor + i) % n.max(1))
        .filter(|&i| nodes[i].healthy && nodes[i].load < nodes[i].capacity)
        // `min_by_key` keeps the first of equal minima: the first at or after the cursor.
        .min_by_key(|&i| nodes[i].load)
}

/// The scheduler's message for a pod no node can take, in upstream's format, e.g.
/// `0/2 nodes are available: 1 Too many pods, 1 node(s) had untolerated taint {...}. preemption: ...`.
pub fn unschedulable_message(nodes: &[Candidate]) -> String {
    let n = nodes.len();
    let tainted = nodes.iter().filter(|c| !c.healthy).count();
    let full = nodes.iter().filter(|c| c.healthy && c.load >= c.capacity).count();
    let mut parts = Vec::new();
    if tainted > 0 {
        parts.push(format!("{tainted} node(s) had untolerated taint {{node.kubernetes.io/unreachable: }}"));
    }
    if full > 0 {
        parts.push(format!("{full} Too many pods"));
    }
    parts.sort();
    if n == 0 {
        return "no nodes available to schedule pods".into();
    }
    let preemption = if full > 0 {
        let mut p = vec![format!("{full} No preemption victims found for incoming pod")];
        if tainted > 0 {
            p.push(format!("{tainted} Preemption is not helpful for scheduling"));
        }
        p.sort();
        p.join(", ")
    } else {
        format!("{n} Preemption is not helpful for scheduling")
    };
    format!("0/{n} nodes are available: {}. preemption: 0/{n} nodes are available: {preemption}.", parts.join(", "))
}

/// Record on a pending pod that it cannot be scheduled (`PodScheduled=False`, `Unschedulable`),
/// as kube-scheduler does; a pod already marked with the same message is left alone.
pub async fn mark_unschedulable(client: &kube::Client, namespace: &str, name: &str, uid: &str, message: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for _ in 0..3 {
        let Ok(Some(mut pod)) = api.get_opt(name).await else { return };
        if pod.metadata.uid.as_deref() != Some(uid) || !wants_scheduling(&pod) {
            return;
        }
        let status = pod.status.get_or_insert_with(Default::default);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        if conditions.iter().any(|c| c.type_ == "PodScheduled" && c.message.as_deref() == Some(message)) {
            return;
        }
        conditions.retain(|c| c.type_ != "PodScheduled");
        conditions.push(PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some(message.to_string()),
            last_transition_time: Some(super::status::time(chrono::Utc::now())),
            ..Default::default()
        });
        match api.replace_status(name, &PostParams::default(), &pod).await {
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            _ => return,
        }
    }
}

/// Bind a pod to a node.
pub async fn bind(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
    node: &str,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            uid: Some(uid.to_string()),
            ..Default::default()
        },
        target: ObjectReference { kind: Some("Node".into()), name: Some(node.to_string()), ..Default::default() },
    };
    // The answer (a `Status`) is read past, not built.
    let _: serde::de::IgnoredAny = api.create_subresource("binding", name, &PostParams::default(), &binding).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(name: &str, load: usize, capacity: usize, healthy: bool) -> Candidate {
        Candidate { name: name.into(), load, capacity, healthy }
    }

    #[test]
    fn least_loaded_then_round_robin() {
        let nodes = vec![c("a", 1, 2, true), c("b", 0, 2, true), c("c", 0, 2, true)];
        assert_eq!(pick(&nodes, 0), Some(1));
        assert_eq!(pick(&nodes, 2), Some(2), "ties go to the first at or after the cursor");
        assert_eq!(pick(&nodes, 0).map(|i| nodes[i].name.as_str()), Some("b"));
    }

    #[test]
    fn full_and_failed_nodes_are_skipped() {
        let nodes = vec![c("a", 2, 2, true), c("b", 0, 2, false), c("c", 1, 2, true)];
        assert_eq!(pick(&nodes, 0), Some(2));
        let full = vec![c("a", 2, 2, true), c("b", 0, 5, false)];
        assert_eq!(pick(&full, 0), None);
        assert_eq!(pick(&[], 3), None);
    }

    #[test]
    fn unschedulable_messages_follow_upstream() {
        assert_eq!(
            unschedulable_message(&[c("a", 2, 2, true)]),
            "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
        assert_eq!(
            unschedulable_message(&[c("a", 2, 2, true), c("b", 0, 2, false)]),
            "0/2 nodes are available: 1 Too many pods, 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. \
             preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn which_pods_are_ours() {
        let pod = |v: serde_json::Value| -> Pod { serde_json::from_value(v).unwrap() };
        assert!(wants_scheduling(&pod(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}))));
        assert!(wants_scheduling(&pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "schedulerName": "default-scheduler"}})
        )));
        assert!(!wants_scheduling(&pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "schedulerName": "other"}})
        )));
        assert!(!wants_scheduling(&pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "nodeName": "n"}})
        )));
        assert!(!wants_scheduling(&pod(
            json!({"metadata": {"name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z"}, "spec": {"containers": []}})
        )));
        assert!(!wants_scheduling(&pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": []}, "status": {"phase": "Failed"}})
        )));
    }
}
