//! Table-style tests of the pure decisions ([`super::desired`]).

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::desired::{self, ANNOTATION_OVER_CAPACITY, MAX_ENDPOINTS_PER_SLICE};
use super::pod::EpPod;

/// The pods as the controllers' cache holds them (decoded from their JSON).
fn cached(pods: &[Pod]) -> Vec<EpPod> {
    pods.iter().map(EpPod::from).collect()
}

fn service(spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid", "labels": {"team": "a"},
            "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,
    }))
    .unwrap()
}

fn web() -> Service {
    service(
        json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}], "clusterIP": "10.96.5.5"}),
    )
}

/// A running pod `name` with IP `ip`, ready or not, serving its `http` port on `port`.
fn pod(name: &str, ip: &str, ready: bool, port: i32) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": "web"},
            "creationTimestamp": "2026-01-01T00:00:01Z"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x",
            "ports": [{"name": "http", "containerPort": port}]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                "lastTransitionTime": "2026-01-01T00:00:05Z"}]},
    }))
    .unwrap()
}

fn ep_json(e: &Endpoints) -> Value {
    serde_json::to_value(e).unwrap()
}

#[test]
fn endpoints_list_ready_and_not_ready_addresses_with_resolved_ports() {
    let pods = [pod("a", "10.244.0.5", true, 8080), pod("b", "10.244.0.6", false, 8080)];
    let pods_cached = cached(&pods);
    let refs: Vec<&EpPod> = pods_cached.iter().collect();
    let ep = ep_json(&desired::endpoints(&web(), &refs, None).unwrap());
    assert_eq!(ep["metadata"]["labels"], json!({"team": "a"}));
    assert_eq!(
        ep["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"],
        "2026-01-01T00:00:05Z"
    );
    assert_eq!(
        ep["subsets"],
        json!([{
            "addresses": [{"ip": "10.244.0.5", "nodeName": "node-1",
                "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"}}],
            "notReadyAddresses": [{"ip": "10.244.0.6", "nodeName": "node-1",
                "targetRef": {"kind": "Pod", "namespace": "ns", "name": "b", "uid": "uid-b"}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }])
    );
}

#[test]
fn named_target_ports_resolve_per_pod_into_separate_subsets_and_slices() {
    let pods = [pod("a", "10.244.0.5", true, 8080), pod("b", "10.244.0.6", true, 9090)];
    let pods_cached = cached(&pods);
    let refs: Vec<&EpPod> = pods_cached.iter().collect();
    let ep = ep_json(&desired::endpoints(&web(), &refs, None).unwrap());
    let subsets = ep["subsets"].as_array().unwrap();
    assert_eq!(subsets.len(), 2);
    assert_eq!(subsets[0]["ports"][0]["port"], 8080);
    assert_eq!(subsets[1]["ports"][0]["port"], 9090);
    let plan = desired::slices(&web(), &refs, &[]);
    assert_eq!(plan.create.len(), 2, "one slice per port set");
    let ports: Vec<i32> = plan.create.iter().map(|s| s.ports.as_ref().unwrap()[0].port.unwrap()).collect();
    assert_eq!(ports, vec![8080, 9090]);
}

#[test]
fn pods_that_cannot_serve_are_left_out() {
    let mut no_ip = pod("noip", "", true, 8080);
    no_ip.status.as_mut().unwrap().pod_ip = None;
    no_ip.status.as_mut().unwrap().pod_ips = None;
    let mut done = pod("done", "10.244.0.7", false, 8080);
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let mut deleting = pod("deleting", "10.244.0.8", true, 8080);
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
    let mut no_port = pod("noport", "10.244.0.9", true, 8080);
    no_port.spec.as_mut().unwrap().containers[0].ports = None;
    let pods = [no_ip, done, deleting.clone(), no_port];
    let pods_cached = cached(&pods);
    let refs: Vec<&EpPod> = pods_cached.iter().collect();
    let ep = ep_json(&desired::endpoints(&web(), &refs, None).unwrap());
    assert!(ep.get("subsets").is_none(), "{ep}");
    // Slices keep a terminating pod (not ready; serving follows readiness), and a pod whose
    // named port does not resolve gets an endpoint in a slice without ports, as upstream.
    let plan = desired::slices(&web(), &refs, &[]);
    assert_eq!(plan.create.len(), 2);
    assert_eq!(plan.create[0].ports.as_deref(), Some(&[][..]));
    assert_eq!(plan.create[0].endpoints[0].target_ref.as_ref().unwrap().name.as_deref(), Some("noport"));
    let eps = &plan.create[1].endpoints;
    assert_eq!(eps.len(), 1);
    let c = eps[0].conditions.clone().unwrap();
    assert_eq!((c.ready, c.serving, c.terminating), (Some(false), Some(true), Some(true)));
}

#[test]
fn publish_not_ready_addresses_makes_every_address_ready() {
    let mut svc = web();
    svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    let pods = [pod("a", "10.244.0.5", false, 8080)];
    let pods_cached = cached(&pods);
    let refs: Vec<&EpPod> = pods_cached.iter().collect();
    let ep = ep_json(&desired::endpoints(&svc, &refs, None).unwrap());
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "10.244.0.5");
    assert!(ep["subsets"][0].get("notReadyAddresses").is_none());
    let plan = desired::slices(&svc, &refs, &[]);
    let c = plan.create[0].endpoints[0].conditions.clone().unwrap();
    assert_eq!((c.ready, c.serving, c.terminating), (Some(true), Some(false), Some(false)));
}

#[test]
fn hostname_is_set_only_when_the_subdomain_is_the_service() {
    let mut svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
    svc.metadata.name = Some("workers".into());
    let mut a = pod("collab-0", "10.244.0.5", true, 8080);
    a.spec.as_mut().unwrap().hostname = Some("collab-0".into());
    a.spec.as_mut().unwrap().subdomain = Some("workers".into());
    let mut b = pod("collab-1", "10.244.0.6", true, 8080);
    b.spec.as_mut().unwrap().hostname = Some("collab-1".into());
    b.spec.as_mut().unwrap().subdomain = Some("other".into());
    let pods = [a, b];
    let pods_cached = cached(&pods);
    let refs: Vec<&EpPod> = pods_cached.iter().collect();
    let ep = ep_json(&desired::endpoints(&svc, &refs, None).unwrap());
    // Headless without ports: addresses with no ports, and the headless label.
    assert_eq!(ep["metadata"]["labels"]["service.kubernetes.io/headless"], "");
    let addrs = ep["subsets"][0]["addresses"].as_array().unwrap();
    assert_eq!(addrs[0]["hostname"], "collab-0");
    assert!(addrs[1].get("hostname").is_none());
    assert!(ep["subsets"][0].get("ports").is_none());
    let plan = desired::slices(&svc, &refs, &[]);
    assert_eq!(plan.create[0].endpoints[0].hostname.as_deref(), Some("collab-0"));
    assert_eq!(plan.create[0].ports.as_deref(), Some(&[][..]));
}

#[test]
fn an_unchanged_endpoints_needs_no_write() {
    let pods = [pod("a", "10.244.0.5", true, 8080)];
    let pods_cached = cached(&pods);
    let refs: Vec<&EpPod> = pods_cached.iter().collect();
    let mut first = desired::endpoints(&web(), &refs, None).unwrap();
    first.metadata.resource_version = Some("7".into());
    assert!(desired::endpoints(&web(), &refs, Some(&first)).is_none());
    let unready = [pod("a", "10.244.0.5", false, 8080)];
    let unready_cached = cached(&unready);
    let refs: Vec<&EpPod> = unready_cached.iter().collect();
    let next = desired::endpoints(&web(), &refs, Some(&first)).unwrap();
    assert_eq!(next.metadata.resource_version.as_deref(), Some("7"), "a replace carries the resourceVersion");
}

fn many(n: usize, ready: impl Fn(usize) -> bool) -> Vec<Pod> {
    (0..n).map(|i| pod(&format!("p{i:05}"), &format!("10.244.{}.{}", i / 250, i % 250 + 1), ready(i), 8080)).collect()
}

#[test]
fn endpoints_are_truncated_at_1000_preferring_ready_addresses() {
    let pods = many(1200, |i| i % 2 == 0); // 600 ready, 600 not ready
    let pods_cached = cached(&pods);
    let refs: Vec<&EpPod> = pods_cached.iter().collect();
    let ep = ep_json(&desired::endpoints(&web(), &refs, None).unwrap());
    assert_eq!(ep["metadata"]["annotations"][ANNOTATION_OVER_CAPACITY], "truncated");
    let ss = &ep["subsets"][0];
    assert_eq!(ss["addresses"].as_array().unwrap().len(), 600);
    assert_eq!(ss["notReadyAddresses"].as_array().unwrap().len(), 400);
    let all_ready = many(1001, |_| true);
    let all_ready_cached = cached(&all_ready);
    let refs: Vec<&EpPod> = all_ready_cached.iter().collect();
    let ep = ep_json(&desired::endpoints(&web(), &refs, None).unwrap());
    assert_eq!(ep["subsets"][0]["addresses"].as_array().unwrap().len(), 1000);
    // Back under capacity: the annotation goes.
    let cur: Endpoints = serde_json::from_value(ep).unwrap();
    let fewer = many(10, |_| true);
    let fewer_cached = cached(&fewer);
    let refs: Vec<&EpPod> = fewer_cached.iter().collect();
    let ep = ep_json(&desired::endpoints(&web(), &refs, Some(&cur)).unwrap());
    assert!(ep["metadata"]["annotations"].get(ANNOTATION_OVER_CAPACITY).is_none());
}

fn stored(plan_create: Vec<EndpointSlice>) -> Vec<EndpointSlice> {
    plan_create
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            s.metadata.name = Some(format!("web-{i}"));
            s.metadata.resource_version = Some("1".into());
            s
        })
        .collect()
}

#[test]
fn slices_hold_at_most_100_and_moving_pods_touch_few_slices() {
    let pods = many(250, |_| true);
    let pods_cached = cached(&pods);
    let refs: Vec<&EpPod> = pods_cached.iter().collect();
    let plan = desired::slices(&web(), &refs, &[]);
    let sizes: Vec<usize> = plan.create.iter().map(|s| s.endpoints.len()).collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    let s = &plan.create[0];
    let labels = s.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["kubernetes.io/service-name"], "web");
    assert_eq!(labels["endpointslice.kubernetes.io/managed-by"], "endpointslice-controller.k8s.io");
    assert_eq!(labels["team"], "a");
    assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
    let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Service", "svc-uid", Some(true)));
    assert_eq!(s.address_type, "IPv4");
    let existing = stored(plan.create);
    // Steady state: nothing to do.
    assert!(desired::slices(&web(), &refs, &existing).is_empty());
    // One pod becomes unready: only its slice is rewritten.
    let mut changed = pods.clone();
    changed[5] = pod("p00005", "10.244.0.6", false, 8080);
    let changed_cached = cached(&changed);
    let refs: Vec<&EpPod> = changed_cached.iter().collect();
    let plan = desired::slices(&web(), &refs, &existing);
    assert_eq!((plan.create.len(), plan.update.len(), plan.delete.len()), (0, 1, 0));
    assert_eq!(plan.update[0].metadata.name.as_deref(), Some("web-0"));
    // Ten new pods fit into the slice with room instead of a new slice.
    let more = many(260, |_| true);
    let more_cached = cached(&more);
    let refs: Vec<&EpPod> = more_cached.iter().collect();
    let plan = desired::slices(&web(), &refs, &existing);
    assert_eq!((plan.create.len(), plan.update.len()), (0, 1), "{plan:?}");
    assert_eq!(plan.update[0].endpoints.len(), 60);
    // All pods gone: one empty placeholder slice stays, the rest go.
    let plan = desired::slices(&web(), &[], &existing);
    assert_eq!(plan.delete.len(), 2);
    assert_eq!(plan.update.len(), 1);
    assert!(plan.update[0].endpoints.is_empty());
    assert_eq!(plan.update[0].ports.as_deref(), Some(&[][..]));
}

#[test]
fn a_service_without_pods_gets_one_placeholder_slice() {
    let plan = desired::slices(&web(), &[], &[]);
    assert_eq!(plan.create.len(), 1);
    assert!(plan.create[0].endpoints.is_empty());
    let existing = stored(plan.create);
    assert!(desired::slices(&web(), &[], &existing).is_empty());
    let pods = [pod("a", "10.244.0.5", true, 8080)];
    let pods_cached = cached(&pods);
    let refs: Vec<&EpPod> = pods_cached.iter().collect();
    let plan = desired::slices(&web(), &refs, &existing);
    assert_eq!((plan.create.len(), plan.delete.len()), (1, 1), "the placeholder makes way: {plan:?}");
    assert_eq!(plan.create[0].endpoints.len(), MAX_ENDPOINTS_PER_SLICE.min(1));
}

#[test]
fn selectors_pick_pods_of_the_namespace_only() {
    let mut other = pod("x", "10.244.0.5", true, 8080);
    other.metadata.namespace = Some("elsewhere".into());
    let mut unlabelled = pod("y", "10.244.0.6", true, 8080);
    unlabelled.metadata.labels = None;
    let mine = pod("z", "10.244.0.7", true, 8080);
    let pods = [other, unlabelled, mine];
    let pods = cached(&pods);
    let picked: Vec<String> =
        desired::selected(&web(), pods.iter()).iter().map(|p| p.metadata.name.clone().unwrap()).collect();
    assert_eq!(picked, vec!["z"]);
    let selectorless = service(json!({"ports": [{"port": 80}]}));
    assert!(desired::selected(&selectorless, pods.iter()).is_empty());
    assert!(!desired::has_selector(&selectorless));
}

#[test]
fn the_cached_pod_keeps_what_endpoints_and_slices_read_and_little_else() {
    let full = json!({
        "metadata": {"name": "a", "namespace": "ns", "uid": "uid-a", "labels": {"app": "web"},
            "resourceVersion": "12", "creationTimestamp": "2026-01-01T00:00:01Z",
            "annotations": {"big": "x".repeat(4096)}, "finalizers": ["batch.kubernetes.io/job-tracking"],
            "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {}}}]},
        "spec": {"nodeName": "node-1", "hostname": "a", "subdomain": "web",
            "initContainers": [
                {"name": "init", "image": "x", "ports": [{"name": "metrics", "containerPort": 1111}]},
                {"name": "side", "image": "x", "restartPolicy": "Always",
                    "ports": [{"name": "metrics", "containerPort": 9090}, {"containerPort": 9091}]}],
            "containers": [{"name": "c", "image": "x", "command": ["sleep", "1000"],
                "env": [{"name": "E", "value": "v".repeat(1024)}],
                "ports": [{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]},
        "status": {"phase": "Running", "podIP": "fd00::5", "podIPs": [{"ip": "fd00::5"}, {"ip": "10.244.0.5"}],
            "hostIP": "10.0.0.1", "message": "m".repeat(512),
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:02Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"}],
            "containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": "2026-01-01T00:00:04Z"}}}]},
    });
    let pod: EpPod = serde_json::from_value(full.clone()).unwrap();
    // What is read survives: the first IPv4 address, readiness and its time, the node, hostname
    // and subdomain, the named ports of containers then sidecars (not of plain init containers).
    assert_eq!(pod.ip.as_deref(), Some("10.244.0.5"));
    assert!(pod.ready && !pod.terminal);
    assert_eq!(serde_json::to_value(&pod.ready_since).unwrap(), "2026-01-01T00:00:05Z");
    assert_eq!(
        (pod.node_name.as_deref(), pod.hostname.as_deref(), pod.subdomain.as_deref()),
        (Some("node-1"), Some("a"), Some("web"))
    );
    let ports: Vec<(&str, &str, i32)> =
        pod.named_ports.iter().map(|p| (p.name.as_str(), p.protocol.as_str(), p.port)).collect();
    assert_eq!(ports, [("http", "TCP", 8080), ("dns", "UDP", 53), ("metrics", "TCP", 9090)]);
    let m = &pod.metadata;
    assert_eq!(
        (m.name.as_deref(), m.namespace.as_deref(), m.uid.as_deref(), m.resource_version.as_deref()),
        (Some("a"), Some("ns"), Some("uid-a"), Some("12"))
    );
    assert_eq!(m.labels.as_ref().unwrap()["app"], "web");
    assert!(m.annotations.is_none() && m.managed_fields.is_none() && m.finalizers.is_none(), "{m:?}");
    // The same conversion from a typed Pod.
    let typed: Pod = serde_json::from_value(full).unwrap();
    assert_eq!(EpPod::from(&typed), pod);

    let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "10.96.5.5", "ports": [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"},
        {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "TCP"}]}));
    let ep = ep_json(&desired::endpoints(&svc, &[&pod], None).unwrap());
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "10.244.0.5");
    assert_eq!(ep["subsets"][0]["addresses"][0]["nodeName"], "node-1");
    let mut got: Vec<i64> =
        ep["subsets"][0]["ports"].as_array().unwrap().iter().map(|p| p["port"].as_i64().unwrap()).collect();
    got.sort();
    assert_eq!(got, [8080, 9090], "both TCP named ports resolved; `dns` is UDP in the pod: {ep}");
    assert_eq!(
        ep["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"],
        "2026-01-01T00:00:05Z"
    );
    let mut headless = svc.clone();
    headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    let ep = ep_json(&desired::endpoints(&headless, &[&pod], None).unwrap());
    assert_eq!(ep["subsets"][0]["addresses"][0]["hostname"], "a", "subdomain is the Service: {ep}");
    let plan = desired::slices(&svc, &[&pod], &[]);
    let e = &plan.create[0].endpoints[0];
    assert_eq!(e.addresses, ["10.244.0.5"]);
    assert_eq!(e.target_ref.as_ref().unwrap().uid.as_deref(), Some("uid-a"));

    // A finished pod is terminal and never an endpoint.
    let mut done: EpPod = pod.clone();
    done.terminal = true;
    let ep = ep_json(&desired::endpoints(&svc, &[&done], None).unwrap());
    assert!(ep.get("subsets").is_none(), "{ep}");
    for phase in ["Succeeded", "Failed"] {
        let p: EpPod = serde_json::from_value(json!({"metadata": {"name": "x"}, "status": {"phase": phase}})).unwrap();
        assert!(p.terminal, "{phase}");
    }
    // Nulls and absent fields decode as empty.
    let bare: EpPod = serde_json::from_value(json!({"metadata": {"name": "x", "labels": null}, "spec": null, "status": {"conditions": null, "podIPs": null}})).unwrap();
    assert!(bare.ip.is_none() && !bare.ready && bare.named_ports.is_empty());
}

#[test]
fn a_cached_pod_is_small() {
    // k8s-openapi's `Pod` is kilobytes before any field is set; the cached one is a few hundred
    // bytes plus its strings and labels.
    let (ours, theirs) = (std::mem::size_of::<EpPod>(), std::mem::size_of::<Pod>());
    assert!(ours * 4 < theirs && ours < 768, "EpPod {ours} bytes, Pod {theirs} bytes");
}

#[test]
fn finished_pods_reach_the_cache_as_deletions() {
    use kube::runtime::watcher::Event;
    let pod = |phase: &str| -> EpPod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "d"}, "status": {"phase": phase}}))
            .unwrap()
    };
    for phase in ["Succeeded", "Failed"] {
        assert!(matches!(super::finished_as_deleted(Event::Apply(pod(phase))), Event::Delete(p) if p.terminal));
        assert!(matches!(super::finished_as_deleted(Event::InitApply(pod(phase))), Event::Delete(p) if p.terminal));
        assert!(matches!(super::finished_as_deleted(Event::Delete(pod(phase))), Event::Delete(_)));
    }
    for phase in ["Pending", "Running", ""] {
        assert!(matches!(super::finished_as_deleted(Event::Apply(pod(phase))), Event::Apply(_)));
        assert!(matches!(super::finished_as_deleted(Event::InitApply(pod(phase))), Event::InitApply(_)));
    }
    assert!(matches!(super::finished_as_deleted(Event::Init), Event::Init));
    assert!(matches!(super::finished_as_deleted(Event::InitDone), Event::InitDone));
}
