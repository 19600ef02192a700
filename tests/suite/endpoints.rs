//! Services, Endpoints and EndpointSlices end to end: the API server's Service allocation and the
//! `kubernetes` Service, the Endpoints and EndpointSlice controllers of `jobwright local`
//! (`jobwright::endpoints`) following pods, all read through `kube::Client` and the real kubectl.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jobwright::apiserver::rest::WriteOptions;
use jobwright::apiserver::testkit::{Kubectl, TestApiServer};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How long any awaited state may take before the test fails (a loaded 2-core machine).
const WAIT: Duration = Duration::from_secs(90);

struct Cluster {
    api: TestApiServer,
    stop: CancellationToken,
}

impl Cluster {
    async fn start() -> Self {
        let api = TestApiServer::start().await;
        let stop = CancellationToken::new();
        tokio::spawn(jobwright::endpoints::run(api.client(), stop.clone().cancelled_owned()));
        Self { api, stop }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Wait until `pred` holds for the objects of `api` (a reflector over a watch: no polling).
async fn until<K>(api: Api<K>, what: &str, pred: impl Fn(&[Arc<K>]) -> bool) -> Vec<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let mut stream = reflector::reflector(writer, watcher(api, watcher::Config::default())).boxed();
    let r = tokio::time::timeout(WAIT, async {
        while let Some(ev) = stream.next().await {
            if matches!(ev, Ok(watcher::Event::Init | watcher::Event::InitApply(_))) {
                continue;
            }
            let state = reader.state();
            if pred(&state) {
                return state;
            }
        }
        unreachable!("watch ended")
    })
    .await;
    r.unwrap_or_else(|_| panic!("timed out waiting for {what}; last state: {:#?}", reader.state()))
}

fn svc(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn pod_json(name: &str, app: &str, port: i32) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"name": "http", "containerPort": port}]}]}})
}

fn status(ip: &str, ready: bool) -> Value {
    json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
}

async fn make_pod(pods: &Api<Pod>, name: &str, app: &str, ip: &str, ready: bool) {
    let p: Pod = serde_json::from_value(pod_json(name, app, 8080)).unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    set_ready(pods, name, ip, ready).await;
}

async fn set_ready(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status(ip, ready))).await.unwrap();
}

fn addresses(e: &Endpoints, ready: bool) -> Vec<String> {
    let mut v: Vec<String> = e
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| if ready { s.addresses.clone() } else { s.not_ready_addresses.clone() }.unwrap_or_default())
        .map(|a| a.target_ref.and_then(|r| r.name).unwrap_or_default())
        .collect();
    v.sort();
    v
}

fn slice_pods(slices: &[Arc<EndpointSlice>], svc: &str) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = slices
        .iter()
        .filter(|s| {
            s.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name")).map(String::as_str)
                == Some(svc)
        })
        .flat_map(|s| s.endpoints.clone())
        .map(|e| {
            let name = e.target_ref.and_then(|r| r.name).unwrap_or_default();
            (name, e.conditions.and_then(|c| c.ready).unwrap_or(false))
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn endpoints_and_slices_follow_pods_selectors_and_the_service() {
    let c = Cluster::start().await;
    let client = c.api.client();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");

    // Endpoints a user writes (before their selectorless Service) are theirs: left alone.
    let manual: Endpoints = serde_json::from_value(json!({"metadata": {"name": "manual"},
        "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 5432}]}]}))
    .unwrap();
    let manual = eps.create(&PostParams::default(), &manual).await.unwrap();
    services.create(&PostParams::default(), &svc("manual", json!({"ports": [{"port": 5432}]}))).await.unwrap();
    make_pod(&pods, "a", "web", "10.244.0.5", true).await;
    make_pod(&pods, "b", "web", "10.244.0.6", false).await;
    make_pod(&pods, "other", "db", "10.244.0.7", true).await;
    let s =
        svc("web", json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}));
    let s = services.create(&PostParams::default(), &s).await.unwrap();
    let uid = s.metadata.uid.clone().unwrap();

    // The controller may write before its pod cache holds every pod: await the converged state.
    let e = until(eps.clone(), "web's Endpoints with a ready and b not ready", |l| {
        l.iter().any(|e| {
            e.metadata.name.as_deref() == Some("web") && addresses(e, true) == ["a"] && addresses(e, false) == ["b"]
        })
    })
    .await;
    let e = e.iter().find(|e| e.metadata.name.as_deref() == Some("web")).unwrap();
    assert_eq!(addresses(e, true), ["a"]);
    assert_eq!(addresses(e, false), ["b"]);
    let ss = &e.subsets.as_ref().unwrap()[0];
    assert_eq!(ss.ports.as_ref().unwrap()[0].port, 8080, "the named targetPort resolves to the pod's port");
    assert!(e.metadata.annotations.as_ref().unwrap().contains_key("endpoints.kubernetes.io/last-change-trigger-time"));

    let l = until(slices.clone(), "web's slice", |l| slice_pods(l, "web").len() == 2).await;
    assert_eq!(slice_pods(&l, "web"), [("a".to_string(), true), ("b".to_string(), false)]);
    let slice = l
        .iter()
        .find(|s| {
            s.metadata.labels.as_ref().and_then(|x| x.get("kubernetes.io/service-name")).map(String::as_str)
                == Some("web")
        })
        .unwrap();
    let labels = slice.metadata.labels.clone().unwrap();
    assert_eq!(labels["endpointslice.kubernetes.io/managed-by"], "endpointslice-controller.k8s.io");
    assert_eq!(slice.metadata.owner_references.as_ref().unwrap()[0].uid, uid);
    assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(8080));
    assert_eq!(slice.ports.as_ref().unwrap()[0].name.as_deref(), Some("http"));

    // b becomes ready, a unready.
    set_ready(&pods, "b", "10.244.0.6", true).await;
    set_ready(&pods, "a", "10.244.0.5", false).await;
    until(eps.clone(), "b ready, a not", |l| {
        l.iter().any(|e| {
            e.metadata.name.as_deref() == Some("web") && addresses(e, true) == ["b"] && addresses(e, false) == ["a"]
        })
    })
    .await;
    until(slices.clone(), "slice readiness", |l| slice_pods(l, "web") == [("a".into(), false), ("b".into(), true)])
        .await;

    // a is deleted.
    pods.delete("a", &DeleteParams::default().grace_period(0)).await.unwrap();
    until(eps.clone(), "a gone", |l| {
        l.iter().any(|e| {
            e.metadata.name.as_deref() == Some("web") && addresses(e, true) == ["b"] && addresses(e, false).is_empty()
        })
    })
    .await;
    until(slices.clone(), "a gone from the slice", |l| slice_pods(l, "web") == [("b".into(), true)]).await;

    // b finishes (kept, not deleted): a finished pod is no endpoint, so it leaves both.
    pods.patch_status("b", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Succeeded"}})))
        .await
        .unwrap();
    until(eps.clone(), "b finished", |l| {
        l.iter().any(|e| {
            e.metadata.name.as_deref() == Some("web") && addresses(e, true).is_empty() && addresses(e, false).is_empty()
        })
    })
    .await;
    until(slices.clone(), "b finished, gone from the slice", |l| slice_pods(l, "web").is_empty()).await;

    // The selector moves to the db pod: b leaves, other joins.
    services
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"selector": {"app": "db"}}})))
        .await
        .unwrap();
    until(eps.clone(), "selector change", |l| {
        l.iter().any(|e| e.metadata.name.as_deref() == Some("web") && addresses(e, true) == ["other"])
    })
    .await;
    until(slices.clone(), "selector change in slices", |l| slice_pods(l, "web") == [("other".into(), true)]).await;

    // The Service goes: so do its Endpoints and slices.
    services.delete("web", &DeleteParams::default()).await.unwrap();
    until(eps.clone(), "Endpoints gone", |l| l.iter().all(|e| e.metadata.name.as_deref() != Some("web"))).await;
    until(slices.clone(), "slices gone", |l| {
        l.iter().all(|s| {
            s.metadata.labels.as_ref().and_then(|x| x.get("kubernetes.io/service-name")).map(String::as_str)
                != Some("web")
        })
    })
    .await;
    let still = eps.get("manual").await.unwrap();
    assert_eq!(still.metadata.resource_version, manual.metadata.resource_version, "a user's Endpoints were rewritten");
    // The kubernetes Service's objects (no selector) were never touched by the controllers.
    let k = eps.get("kubernetes").await.unwrap();
    assert_eq!(k.subsets.unwrap()[0].addresses.as_ref().unwrap()[0].ip, "127.0.0.1");
}

#[tokio::test]
async fn more_than_a_thousand_endpoints_split_and_truncate_as_upstream() {
    const N: usize = 1050;
    let c = Cluster::start().await;
    let client = c.api.client();
    // The pods are written in-process (the HTTP layer is not what this test is about).
    let api = &c.api.server().api;
    let pod_info = api.info("", "pods");
    for i in 0..N {
        let name = format!("p{i:04}");
        api.create(&pod_info, "default", pod_json(&name, "big", 8080), &WriteOptions::default()).unwrap();
        let ip = format!("10.244.{}.{}", i / 200, i % 200 + 1);
        let mut p = api.get_value(&pod_info, "default", &name).unwrap();
        p["status"] = status(&ip, true)["status"].clone();
        api.update(&pod_info, "default", &name, Some("status"), p, &WriteOptions::default()).unwrap();
    }
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let s = svc("big", json!({"clusterIP": "None", "selector": {"app": "big"}, "ports": [{"port": 8080}]}));
    services.create(&PostParams::default(), &s).await.unwrap();

    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let l = until(eps, "1000 addresses", |l| {
        l.iter().any(|e| e.metadata.name.as_deref() == Some("big") && addresses(e, true).len() == 1000)
    })
    .await;
    let e = l.iter().find(|e| e.metadata.name.as_deref() == Some("big")).unwrap();
    let ann = e.metadata.annotations.clone().unwrap();
    assert_eq!(ann["endpoints.kubernetes.io/over-capacity"], "truncated");
    assert_eq!(e.metadata.labels.as_ref().unwrap()["service.kubernetes.io/headless"], "");

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let l = until(slices, "1050 endpoints in slices", |l| slice_pods(l, "big").len() == N).await;
    let mut sizes: Vec<usize> = l
        .iter()
        .filter(|s| {
            s.metadata.labels.as_ref().and_then(|x| x.get("kubernetes.io/service-name")).map(String::as_str)
                == Some("big")
        })
        .map(|s| s.endpoints.len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100]);

    // kubectl prints them as a cluster does.
    let k = Kubectl::new(&c.api.url());
    let out = k.ok(&["get", "endpoints", "big"]).await;
    let rows = Kubectl::rows(&out);
    assert_eq!(rows[0], ["NAME", "ENDPOINTS", "AGE"]);
    assert_eq!(rows[1][1..5], ["10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080", "+", "997", "more..."], "{out}");
}

#[tokio::test]
async fn kubectl_reads_and_creates_services_as_on_a_cluster() {
    let api = TestApiServer::start().await;
    let k = Kubectl::new(&api.url());
    let port = api.url().rsplit(':').next().unwrap().to_string();

    let rows = Kubectl::rows(&k.ok(&["get", "svc"]).await);
    assert_eq!(rows[0], ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]);
    assert_eq!(rows[1][..5], ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]);
    let rows = Kubectl::rows(&k.ok(&["get", "endpoints"]).await);
    assert_eq!(rows[1][..2], ["kubernetes".to_string(), format!("127.0.0.1:{port}")]);
    let rows = Kubectl::rows(&k.ok(&["get", "endpointslices"]).await);
    assert_eq!(rows[0], ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]);
    assert_eq!(rows[1][..4], ["kubernetes".to_string(), "IPv4".into(), port.clone(), "127.0.0.1".into()]);

    assert_eq!(k.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]).await.trim(), "service/web created");
    let web: Value = serde_json::from_str(&k.ok(&["get", "svc", "web", "-o", "json"]).await).unwrap();
    let ip = web["spec"]["clusterIP"].as_str().unwrap();
    assert!(ip.starts_with("10.96.") && ip != "10.96.0.1", "{ip}");
    assert_eq!(web["spec"]["ports"][0], json!({"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}));
    assert_eq!(web["spec"]["sessionAffinity"], "None");
    assert_eq!(web["spec"]["internalTrafficPolicy"], "Cluster");

    k.ok(&["create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"]).await;
    let rows = Kubectl::rows(&k.ok(&["get", "svc", "np"]).await);
    assert_eq!(rows[1][1], "NodePort");
    assert_eq!(rows[1][4], "80:30080/TCP");
    let err = k.fail(&["create", "service", "nodeport", "np2", "--tcp=80:8080", "--node-port=30080"]).await;
    assert!(err.contains("spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"), "{err}");

    k.ok(&["create", "service", "clusterip", "headless", "--clusterip=None"]).await;
    let rows = Kubectl::rows(&k.ok(&["get", "svc", "headless"]).await);
    assert_eq!(rows[1][2], "None");
    assert_eq!(rows[1][4], "<none>");

    let err = k.fail(&["create", "service", "clusterip", "taken", "--clusterip=10.96.0.1", "--tcp=80"]).await;
    assert!(
        err.contains("Service \"taken\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.1\"}: failed to allocate IP 10.96.0.1: provided IP is already allocated"),
        "{err}"
    );
    let err = k.fail(&["create", "service", "clusterip", "far", "--clusterip=192.168.0.1", "--tcp=80"]).await;
    assert!(err.contains("provided IP 192.168.0.1 is not in the valid range"), "{err}");

    // The cluster IP is immutable.
    let err = k
        .fail(&[
            "patch",
            "svc",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"clusterIP":"10.96.9.9","clusterIPs":["10.96.9.9"]}}"#,
        ])
        .await;
    assert!(
        err.contains("spec.clusterIPs[0]: Invalid value: []string{\"10.96.9.9\"}: may not change once set"),
        "{err}"
    );

    // expose: a Service from a pod's labels.
    k.ok(&["run", "p", "--image=nginx", "--port=80", "--labels=app=p"]).await;
    assert_eq!(
        k.ok(&["expose", "pod", "p", "--port=8080", "--target-port=80", "--name=exposed"]).await.trim(),
        "service/exposed exposed"
    );
    let rows = Kubectl::rows(&k.ok(&["get", "svc", "exposed", "-o", "wide"]).await);
    assert_eq!(rows[1][4], "8080/TCP");
    assert_eq!(rows[1][6], "app=p");

    let all = k.ok(&["get", "all"]).await;
    assert!(all.contains("service/kubernetes") && all.contains("service/exposed") && all.contains("pod/p"), "{all}");
}
