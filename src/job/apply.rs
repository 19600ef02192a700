//! Executes a [`Plan`] against the API server, in the order its module docs prescribe:
//! deletions → creations (slow start) → status (with the snapshot's resourceVersion) → finalizer
//! removals → the second status write ([`Plan::after_finalizers`]) → events.
//!
//! Failed pod creations or deletions are accounted in the status ([`Plan::account_pod_ops`]) and
//! reported as `FailedCreate` / `FailedDelete` events, then the sync returns an error so the Job is
//! retried with backoff (as upstream's `manageJob`). A failed status write stops the sync before any
//! finalizer is removed.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use super::cached_pod::CachedPod;
use super::controller::{Context, Error, remove_finalizer};
use super::events::{self, JobEvent};
use super::kind::JobKind;
use super::plan::{DeletionReason, Plan, PodCreation, slow_start_batches};
use super::recorder::EventSink;

/// When to look again at a Job whose cached version our own status write superseded (normally
/// the write's watch event comes first).
const STALE_REQUEUE: Duration = Duration::from_secs(1);

/// How many finalizer removals run at once.
const FINALIZER_CONCURRENCY: usize = 50;

/// How many pod creations of a slow-start batch are in flight at once (the batch still ends before
/// the next starts, and its results are taken in order). Upstream starts a whole batch (up to 500)
/// at once, but over one HTTP/2 connection and behind its client's rate limit; over kube-rs's
/// HTTP/1 each request in flight holds a pooled connection of its own with its buffers, and 500
/// of them were a third of the controller's heap at its peak (heaptrack, 1 Job x 10,000 pods).
pub const CREATE_CONCURRENCY: usize = 50;

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Publishes the Job's events in the background (an event is best effort and must not slow or
/// fail a sync), deduplicated and aggregated as upstream's (see [`EventSink`]).
pub(super) fn publish<K: JobKind>(sink: &EventSink, job: &Job, evs: Vec<JobEvent>) {
    sink.publish(K::event_ref(job), job.metadata.uid.as_deref().unwrap_or_default(), evs);
}

/// What a status write's response is read for: the Job's new resourceVersion (serde skips the
/// rest of the JSON unbuilt).
#[derive(serde::Deserialize)]
struct Written {
    metadata: WrittenMeta,
}

#[derive(serde::Deserialize)]
struct WrittenMeta {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
}

/// Writes `status` with a full-object PUT on the status subresource (of the Job's kind) carrying
/// `resource_version`; returns the new resourceVersion.
async fn write_status<K: JobKind>(
    client: &kube::Client,
    job: &Job,
    resource_version: Option<String>,
    status: &JobStatus,
) -> Result<Option<String>, Error> {
    let mut obj = job.clone();
    obj.metadata.resource_version = resource_version;
    obj.status = Some(status.clone());
    let name = job.name_any();
    let ns = job.namespace().unwrap_or_default();
    let key = format!("{ns}/{name}");
    let body = serde_json::to_vec(&K::from_batch(obj))?;
    let mut req = kube::core::Request::new(K::url_path(&(), Some(&ns)))
        .replace_subresource("status", &name, &PostParams::default(), body)
        .map_err(|e| Error::Kube(kube::Error::BuildRequest(e)))?;
    req.extensions_mut().insert("replace_status");
    match client.request::<Written>(req).await {
        Ok(w) => Ok(w.metadata.resource_version),
        Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::Conflict(key)),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(Error::JobGone(key)),
        Err(kube::Error::Api(s)) if s.code == 422 => {
            tracing::error!(job = %key, message = %s.message, "the API server rejected the Job status");
            Err(Error::StatusRejected { job: key, message: s.message })
        }
        Err(e) => Err(e.into()),
    }
}

/// What a pod create's response is read for: the created pod's name and uid (serde skips the
/// rest of the JSON unbuilt).
#[derive(serde::Deserialize)]
struct Created {
    metadata: CreatedMeta,
}

#[derive(serde::Deserialize)]
struct CreatedMeta {
    name: Option<String>,
    uid: Option<String>,
}

/// Creates the pod of `creation`, controlled by `owner`, as `Api::<Pod>::create` does, reading
/// only the created pod's name and uid from the response (a whole `Pod` with its managedFields
/// costs far more to decode). The pod is built from `job`'s template when the future first runs
/// and lives only in [`create_body`]'s frame, so a waiting creation holds neither the pod nor
/// room for one in its future.
async fn create_pod(
    client: &kube::Client,
    ns: &str,
    pp: &PostParams,
    job: &Job,
    creation: PodCreation,
    owner: &OwnerReference,
) -> Result<Created, kube::Error> {
    use kube::Resource;
    let body = create_body(job, creation, owner)?;
    let mut req =
        kube::core::Request::new(Pod::url_path(&(), Some(ns))).create(pp, body).map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("create");
    client.request::<Created>(req).await
}

/// The JSON body creating `creation`'s pod of `job`, controlled by `owner`.
fn create_body(job: &Job, creation: PodCreation, owner: &OwnerReference) -> Result<Vec<u8>, kube::Error> {
    let mut pod = creation.pod(job);
    pod.metadata.owner_references = Some(vec![owner.clone()]);
    serde_json::to_vec(&pod).map_err(kube::Error::SerdeError)
}

/// Executes `plan` for `job` (the batch view of a Job of kind `K`, whose controlled pods in the
/// snapshot are `pods`); returns when to sync again. Created pods get `K`'s controller
/// ownerReference, the status goes to `K`'s status subresource, events regard the `K` object.
pub async fn apply<K: JobKind>(
    ctx: &Context<K>,
    job: &Job,
    pods: &[impl Borrow<CachedPod>],
    mut plan: Plan,
) -> Result<Option<Duration>, Error> {
    let ns = job.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let name = job.name_any();
    let key = format!("{ns}/{name}");
    let uid = job.metadata.uid.clone().ok_or(Error::MissingMetadata("uid"))?;
    // A version our own status write superseded: the plan is from stale counters and its status
    // write would only fail with 409. The write's watch event triggers the next sync; the requeue
    // is a safety net.
    if ctx.expectations.job_is_stale(&uid, job.metadata.resource_version.as_deref()) {
        tracing::debug!(job = %key, "Job cache behind this controller's status write; waiting for it");
        return Ok(Some(STALE_REQUEUE));
    }
    tracing::debug!(
        job = %key,
        pods = pods.len(),
        deletions = plan.deletions.len(),
        creations = plan.creations.len(),
        finalizer_removals = plan.finalizer_removals.len(),
        status_changed = plan.status_changed,
        requeue = ?plan.requeue_after,
        "applying plan"
    );
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    // Creations decode their responses into the cache's compact entry (only the name and uid are
    // read); finalizer removals skip theirs.
    let mut evs: Vec<JobEvent> = vec![];
    let mut errors: Vec<String> = vec![];

    // 1. Deletions.
    let mut not_deleted = BTreeSet::new();
    let results = futures::future::join_all(plan.deletions.iter().map(|d| {
        let api = pod_api.clone();
        let (client, ns) = (&ctx.client, &ns);
        let holds = pods
            .iter()
            .map(Borrow::borrow)
            .any(|p| p.metadata.uid.as_deref() == Some(d.uid.as_str()) && super::pods::has_tracking_finalizer(p));
        async move {
            if d.remove_finalizer_first && holds {
                remove_finalizer(client, ns, &d.name).await?;
            }
            let dp = DeleteParams {
                preconditions: Some(Preconditions { uid: Some(d.uid.clone()), resource_version: None }),
                ..DeleteParams::default()
            };
            match api.delete(&d.name, &dp).await {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(e),
            }
        }
    }))
    .await;
    let mut finishing_failed = None;
    for (d, r) in plan.deletions.iter().zip(results) {
        match r {
            Ok(()) => {
                ctx.expectations.expect_deletion(&uid, &d.uid);
                if d.remove_finalizer_first {
                    ctx.expectations.expect_finalizer_removal(&uid, &d.uid);
                }
                evs.push(events::deleted(&d.name, Some(&d.uid)));
            }
            Err(e) => {
                let msg = api_message(&e);
                evs.push(events::failed_delete(&msg));
                not_deleted.insert(d.uid.clone());
                if d.reason == DeletionReason::JobFinishing {
                    finishing_failed = Some(msg.clone());
                }
                errors.push(format!("delete {}: {msg}", d.name));
            }
        }
    }
    if let Some(msg) = finishing_failed {
        publish::<K>(&ctx.recorder, job, evs);
        return Err(Error::FinishingDelete(key, msg));
    }

    // 2. Creations, in slow-start batches; stop at the first batch with an error.
    let owner = K::controller_ref(job);
    let total = plan.creations.len();
    let mut created = 0usize;
    let mut offset = 0usize;
    for size in slow_start_batches(total) {
        let batch = &plan.creations[offset..offset + size];
        offset += size;
        let pp = PostParams::default();
        // The futures collected first: a `map` closure in the stream would make the sync's future
        // not `Send` for every lifetime (rustc's higher-ranked check).
        let futs: Vec<_> = batch.iter().map(|c| create_pod(&ctx.client, &ns, &pp, job, *c, &owner)).collect();
        let results: Vec<_> = futures::stream::iter(futs).buffered(CREATE_CONCURRENCY).collect().await;
        let mut failed = false;
        for r in results {
            match r {
                Ok(p) => {
                    created += 1;
                    ctx.expectations.expect_creation(&uid, p.metadata.uid.as_deref().unwrap_or_default());
                    evs.push(events::created(
                        p.metadata.name.as_deref().unwrap_or_default(),
                        p.metadata.uid.as_deref(),
                    ));
                }
                Err(e) => {
                    failed = true;
                    let msg = api_message(&e);
                    tracing::warn!(job = %key, error = %msg, "creating a pod failed");
                    evs.push(events::failed_create(&msg));
                    errors.push(format!("create: {msg}"));
                }
            }
        }
        if failed {
            break;
        }
    }
    if let Some(m) = &ctx.metrics {
        m.pods_created(created as u64);
        m.pods_deleted((plan.deletions.len() - not_deleted.len()) as u64);
    }
    if created < total || !not_deleted.is_empty() {
        plan.account_pod_ops(total - created, &not_deleted);
    }

    // 3. First status write, with the snapshot's resourceVersion.
    let mut rv = job.metadata.resource_version.clone();
    if plan.status_changed {
        match write_status::<K>(&ctx.client, job, rv.clone(), &plan.status).await {
            Ok(new_rv) => {
                ctx.expectations.status_written(&uid, rv.as_deref(), new_rv.as_deref());
                rv = new_rv;
            }
            Err(e) => {
                publish::<K>(&ctx.recorder, job, evs);
                return Err(e);
            }
        }
    }

    // 4. Finalizer removals.
    let mut removed = BTreeSet::new();
    let futs: Vec<_> = plan
        .finalizer_removals
        .iter()
        .map(|f| {
            let (client, ns) = (&ctx.client, &ns);
            let (name, pod_uid) = (f.name.clone(), f.uid.clone());
            async move {
                let r = remove_finalizer(client, ns, &name).await;
                (name, pod_uid, r)
            }
        })
        .collect();
    let results: Vec<_> = futures::stream::iter(futs).buffer_unordered(FINALIZER_CONCURRENCY).collect().await;
    for (pod_name, pod_uid, r) in results {
        match r {
            Ok(()) => {
                ctx.expectations.expect_finalizer_removal(&uid, &pod_uid);
                removed.insert(pod_uid);
            }
            Err(e) => errors.push(format!("remove finalizer of {pod_name}: {}", api_message(&e))),
        }
    }

    // 5. Second status write.
    if let Some(fw) = plan.after_finalizers(&removed) {
        match write_status::<K>(&ctx.client, job, rv.clone(), &fw.status).await {
            Ok(new_rv) => ctx.expectations.status_written(&uid, rv.as_deref(), new_rv.as_deref()),
            Err(e) => {
                publish::<K>(&ctx.recorder, job, evs);
                return Err(e);
            }
        }
        if let (Some(m), Some(fin)) = (&ctx.metrics, plan.pending_finish())
            && fw.status.conditions.iter().flatten().any(|c| c.type_ == fin.type_ && c.status == "True")
        {
            m.job_finished(&fin.type_, fin.reason.as_deref().unwrap_or(""));
        }
        evs.extend(fw.events);
    }

    // 6. Events and requeue.
    evs.extend(plan.events.iter().cloned());
    publish::<K>(&ctx.recorder, job, evs);
    if !errors.is_empty() {
        return Err(Error::PodOps(key, errors.join("; ")));
    }
    Ok(plan.requeue_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A creation waiting its turn (a wide Job collects a batch's futures before they run) holds
    /// no room for a pod in its future: the pod lives only while its body is written (a `Pod` is
    /// 2,176 bytes inline; a local moved out of in the future's own frame keeps its slot).
    #[tokio::test]
    async fn a_waiting_pod_creation_holds_no_room_for_a_pod() {
        let svc = tower::service_fn(|_: http::Request<kube::client::Body>| async {
            Err::<http::Response<kube::client::Body>, _>(std::io::Error::other("unused"))
        });
        let client = kube::Client::new(svc, "default");
        let (job, pp, owner) = (Job::default(), PostParams::default(), OwnerReference::default());
        let creation = PodCreation { index: Some(3), failure_counts: None };
        let fut = create_pod(&client, "default", &pp, &job, creation, &owner);
        let size = std::mem::size_of_val(&fut);
        assert!(size < std::mem::size_of::<Pod>(), "a creation's future is {size} bytes");
    }
}
