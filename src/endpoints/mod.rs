//! The Endpoints controller and the EndpointSlice controller (kube-controller-manager's
//! `pkg/controller/endpoint` and `pkg/controller/endpointslice`), for `jobwright local`.
//!
//! # Design
//!
//! The decisions are pure ([`desired`]): from one Service, the Pods its selector picks and the
//! slices that exist, what its Endpoints and EndpointSlices should be. The shell here keeps four
//! reflector caches (Services, Pods, Endpoints, EndpointSlices), turns every event into the keys
//! of the Services it concerns (a pod event concerns the Services whose selector matches it now
//! and those whose slices still hold it, so a label change or a deletion is seen by both), and
//! one worker reconciles each dirty key from the caches: write the Endpoints (create, replace,
//! or delete when the Service is gone), then the slices (create/replace/delete per the plan).
//! A failed or conflicting write puts the key back after a delay. A Service without a selector
//! is left alone: its endpoints are someone else's (the `kubernetes` Service's are the API
//! server's). Deleted Services lose their Endpoints here and their slices through their owner
//! reference (the garbage collector), with a delete here as well.
//!
//! Run by `jobwright local` only: against a real cluster, kube-controller-manager does this.

pub mod desired;
pub mod pod;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;

use desired::{LABEL_MANAGED_BY, LABEL_SERVICE_NAME, MANAGED_BY};
use pod::EpPod;

/// The annotation of an Endpoints used as a leader-election lock (left alone).
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// A Service, as `(namespace, name)`.
type Key = (String, String);

/// The caches the worker reads.
#[derive(Clone)]
struct Caches {
    services: Store<Service>,
    pods: Store<EpPod>,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
}

impl Caches {
    fn service(&self, (ns, name): &Key) -> Option<Arc<Service>> {
        self.services.get(&ObjectRef::new(name).within(ns))
    }

    /// Keys of the Services a pod event concerns.
    fn services_of_pod(&self, pod: &EpPod) -> BTreeSet<Key> {
        let ns = pod.namespace().unwrap_or_default();
        let mut keys: BTreeSet<Key> = self
            .services
            .state()
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
            .filter(|s| !desired::selected(s, [pod]).is_empty())
            .map(|s| (ns.clone(), s.name_any()))
            .collect();
        keys.extend(desired::services_holding(&self.slices.state(), pod).into_iter().map(|n| (ns.clone(), n)));
        keys
    }

    fn managed_slices(&self, (ns, name): &Key) -> Vec<EndpointSlice> {
        self.slices
            .state()
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
            .filter(|s| {
                let l = s.labels();
                l.get(LABEL_SERVICE_NAME) == Some(name)
                    && l.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY)
            })
            .map(|s| (**s).clone())
            .collect()
    }
}

/// Run both controllers until `shutdown` resolves.
pub async fn run(client: Client, shutdown: impl std::future::Future<Output = ()>) {
    let (svc_reader, svc_writer) = reflector::store::<Service>();
    let (pod_reader, pod_writer) = reflector::store::<EpPod>();
    let (ep_reader, ep_writer) = reflector::store::<Endpoints>();
    let (slice_reader, slice_writer) = reflector::store::<EndpointSlice>();
    let caches = Caches { services: svc_reader, pods: pod_reader, endpoints: ep_reader, slices: slice_reader };
    let (tx, rx) = mpsc::unbounded_channel::<Key>();
    let cfg = watcher::Config::default;

    let services =
        drive(Api::<Service>::all(client.clone()), cfg(), keep, svc_writer, tx.clone(), false, own_key::<Service>);
    let pod_caches = caches.clone();
    let pods =
        drive(Api::<EpPod>::all(client.clone()), cfg(), finished_as_deleted, pod_writer, tx.clone(), false, move |p| {
            pod_caches.services_of_pod(p).into_iter().collect()
        });
    let endpoints =
        drive(Api::<Endpoints>::all(client.clone()), cfg(), keep, ep_writer, tx.clone(), true, own_key::<Endpoints>);
    let slice_cfg = cfg().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"));
    let slices =
        drive(Api::<EndpointSlice>::all(client.clone()), slice_cfg, keep, slice_writer, tx.clone(), false, |s| {
            s.labels()
                .get(LABEL_SERVICE_NAME)
                .map(|svc| (s.namespace().unwrap_or_default(), svc.clone()))
                .into_iter()
                .collect()
        });
    let worker = worker(client, caches, tx, rx);
    tokio::select! {
        _ = shutdown => {}
        _ = services => {}
        _ = pods => {}
        _ = endpoints => {}
        _ = slices => {}
        _ = worker => {}
    }
}

/// The key of a Service or of its same-named Endpoints.
fn own_key<K: kube::Resource>(o: &K) -> Vec<Key> {
    vec![(o.namespace().unwrap_or_default(), o.name_any())]
}

/// A watch event as it comes.
fn keep<K>(ev: watcher::Event<K>) -> watcher::Event<K> {
    ev
}

/// A finished pod (`Succeeded` or `Failed`, which it never leaves) is never an endpoint, so the
/// cache does not keep it: its event reaches the cache as a deletion (the same Services are
/// told, those whose slices still hold it among them), and a finished pod costs the cache
/// nothing however many are kept.
fn finished_as_deleted(ev: watcher::Event<EpPod>) -> watcher::Event<EpPod> {
    match ev {
        watcher::Event::Apply(p) | watcher::Event::InitApply(p) if p.terminal => watcher::Event::Delete(p),
        ev => ev,
    }
}

/// Keep `writer`'s cache of `api` up to date, each event passed through `map` first, and send
/// the keys `keys` gives for every object an event touches (deleted ones included), or with
/// `deletes_only` for deleted objects only.
async fn drive<K>(
    api: Api<K>,
    cfg: watcher::Config,
    map: impl FnMut(watcher::Event<K>) -> watcher::Event<K> + Send + 'static,
    writer: reflector::store::Writer<K>,
    tx: mpsc::UnboundedSender<Key>,
    deletes_only: bool,
    keys: impl Fn(&K) -> Vec<Key>,
) where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    reflector::reflector(writer, watcher(api, cfg).default_backoff().map_ok(map))
        .for_each(|ev| {
            if let Ok(ev) = ev.as_ref()
                && (!deletes_only || matches!(ev, watcher::Event::Delete(_)))
            {
                for o in event_objects(ev) {
                    for k in keys(o) {
                        let _ = tx.send(k);
                    }
                }
            }
            futures::future::ready(())
        })
        .await
}

fn event_objects<K>(ev: &watcher::Event<K>) -> Vec<&K> {
    match ev {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) => vec![o],
        watcher::Event::Init | watcher::Event::InitDone => vec![],
    }
}

/// Reconcile dirty keys, batching whatever is queued; a failed key is retried after a delay.
async fn worker(client: Client, caches: Caches, tx: mpsc::UnboundedSender<Key>, mut rx: mpsc::UnboundedReceiver<Key>) {
    // Nothing is decided before every cache has its first full list.
    let _ = tokio::join!(
        caches.services.wait_until_ready(),
        caches.pods.wait_until_ready(),
        caches.endpoints.wait_until_ready(),
        caches.slices.wait_until_ready()
    );
    // Every Service, and (upstream's `checkLeftoverEndpoints`) the Endpoints whose Service went
    // while no controller ran, except leader-election records. Later, an Endpoints event matters
    // only when one is deleted (a user may write Endpoints before their selectorless Service).
    for s in caches.services.state() {
        let _ = tx.send((s.namespace().unwrap_or_default(), s.name_any()));
    }
    for e in caches.endpoints.state() {
        if !e.annotations().contains_key(LEADER_ANNOTATION) {
            let _ = tx.send((e.namespace().unwrap_or_default(), e.name_any()));
        }
    }
    while let Some(first) = rx.recv().await {
        let mut batch = BTreeSet::from([first]);
        while let Ok(k) = rx.try_recv() {
            batch.insert(k);
        }
        for key in batch {
            if let Err(e) = reconcile(&client, &caches, &key).await {
                tracing::debug!(namespace = %key.0, service = %key.1, error = %e, "endpoints: retrying");
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let _ = tx.send(key);
                });
            }
        }
    }
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

async fn reconcile(client: &Client, caches: &Caches, key: &Key) -> Result<(), kube::Error> {
    let (ns, name) = key;
    let ep_api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    let slice_api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let current = caches.endpoints.get(&ObjectRef::new(name).within(ns));
    let service = caches.service(key);
    let Some(service) = service.filter(|s| desired::has_selector(s)) else {
        // Gone (or selectorless): the Endpoints of a deleted Service go; a selectorless one's
        // Endpoints belong to whoever writes them.
        if caches.service(key).is_none() {
            if current.is_some() {
                match ep_api.delete(name, &DeleteParams::default()).await {
                    Err(e) if !not_found(&e) => return Err(e),
                    _ => {}
                }
            }
            for s in caches.managed_slices(key) {
                match slice_api.delete(&s.name_any(), &DeleteParams::default()).await {
                    Err(e) if !not_found(&e) => return Err(e),
                    _ => {}
                }
            }
        }
        return Ok(());
    };
    let all_pods = caches.pods.state();
    let pods = desired::selected(&service, all_pods.iter().map(|p| p.as_ref()));

    if let Some(ep) = desired::endpoints(&service, &pods, current.as_deref()) {
        let result = if current.is_some() {
            ep_api.replace(name, &PostParams::default(), &ep).await.map(|_| ())
        } else {
            ep_api.create(&PostParams::default(), &ep).await.map(|_| ())
        };
        match result {
            Err(kube::Error::Api(s)) if s.code == 409 && current.is_none() => {
                // Created by someone meanwhile: the watch brings it, and this key again.
            }
            other => other?,
        }
    }

    if service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return Ok(());
    }
    let existing = caches.managed_slices(key);
    let plan = desired::slices(&service, &pods, &existing);
    for name in &plan.delete {
        match slice_api.delete(name, &DeleteParams::default()).await {
            Err(e) if !not_found(&e) => return Err(e),
            _ => {}
        }
    }
    for s in &plan.update {
        slice_api.replace(&s.name_any(), &PostParams::default(), s).await?;
    }
    for s in &plan.create {
        slice_api.create(&PostParams::default(), s).await?;
    }
    if !plan.is_empty() {
        // The next reconcile must see our own writes: wait until the slice cache has them, so
        // a lagging cache never makes this create a second copy of a slice.
        wait_for_slices(caches, key, &slice_api, &plan).await;
    }
    Ok(())
}

/// Wait (bounded) until the slice cache reflects `plan`: as many managed slices as the server
/// lists for the Service.
async fn wait_for_slices(caches: &Caches, key: &Key, api: &Api<EndpointSlice>, _plan: &desired::SlicePlan) {
    let lp = ListParams::default().labels(&format!("{LABEL_SERVICE_NAME}={},{LABEL_MANAGED_BY}={MANAGED_BY}", key.1));
    let Ok(list) = api.list(&lp).await else { return };
    let want: BTreeSet<(String, String)> =
        list.items.iter().map(|s| (s.name_any(), s.resource_version().unwrap_or_default())).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let have: BTreeSet<(String, String)> = caches
            .managed_slices(key)
            .iter()
            .map(|s| (s.name_any(), s.resource_version().unwrap_or_default()))
            .collect();
        if have == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests;
