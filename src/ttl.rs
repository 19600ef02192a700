//! The TTL-after-finished controller (upstream `pkg/controller/ttlafterfinished`).
//!
//! A finished Job (`Complete` or `Failed` condition true) with `spec.ttlSecondsAfterFinished`
//! expires at the terminal condition's `lastTransitionTime` + ttl. Until then the reconcile requeues
//! for the remaining time. At expiry it re-reads the Job live (the TTL may have changed since the
//! cached copy) and deletes it with `propagationPolicy: Background` and a `resourceVersion`
//! precondition, so a Job modified in between is re-examined instead of deleted. A TTL of 0 deletes
//! at once. Only Jobs this controller manages ([`Config::manages`]) are considered.
//!
//! Generic over the Job kind ([`JobKind`]): [`run_kind`] runs one controller per kind, deciding
//! on the batch view and deleting through the kind's own resource.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::{Client, ResourceExt};

use crate::job::informer::Subscription;
use crate::job::labels::condition;
use crate::job::pods::to_chrono;
use crate::job::{Config, JobKind};

/// Why a TTL check failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("API error: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        "kube"
    }
}

/// When the Job expires: its finish time plus `ttlSecondsAfterFinished`, if both exist.
pub fn expires_at(job: &Job) -> Option<DateTime<Utc>> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let finished = job
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == condition::COMPLETE || c.type_ == condition::FAILED) && c.status == "True")?;
    let at = finished.last_transition_time.as_ref().map(to_chrono)?;
    Some(at + chrono::Duration::seconds(i64::from(ttl.max(0))))
}

/// What to do with `job` at `now`: `None` = delete now; `Some(d)` = check again after `d`;
/// `Some(Duration::MAX)` = nothing to do until the Job changes.
pub fn time_left(job: &Job, now: DateTime<Utc>) -> Option<Duration> {
    if job.metadata.deletion_timestamp.is_some() {
        return Some(Duration::MAX);
    }
    let Some(at) = expires_at(job) else { return Some(Duration::MAX) };
    if at <= now { None } else { Some((at - now).to_std().unwrap_or(Duration::ZERO)) }
}

struct Ctx {
    client: Client,
    config: Config,
}

async fn reconcile<K: JobKind>(job: Arc<K>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let job = job.batch();
    let job: &Job = &job;
    if !ctx.config.manages(job) {
        return Ok(Action::await_change());
    }
    match time_left(job, Utc::now()) {
        Some(Duration::MAX) => return Ok(Action::await_change()),
        Some(d) => return Ok(Action::requeue(d)),
        None => {}
    }
    let ns = job.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(fresh) = api.get_opt(&job.name_any()).await? else { return Ok(Action::await_change()) };
    let fresh = fresh.batch();
    if fresh.metadata.uid != job.metadata.uid || !ctx.config.manages(&fresh) {
        return Ok(Action::await_change());
    }
    match time_left(&fresh, Utc::now()) {
        Some(Duration::MAX) => return Ok(Action::await_change()),
        Some(d) => return Ok(Action::requeue(d)),
        None => {}
    }
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions { uid: None, resource_version: fresh.metadata.resource_version.clone() }),
        ..DeleteParams::default()
    };
    match api.delete(&fresh.name_any(), &dp).await {
        Ok(_) => {
            tracing::info!(job = %format!("{ns}/{}", fresh.name_any()), "deleted finished Job after its TTL");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        // The Job changed since the fresh read: look again soon.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Action::requeue(Duration::from_millis(50))),
        Err(e) => Err(e.into()),
    }
}

fn error_policy<K: JobKind>(_job: Arc<K>, _err: &Error, _ctx: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_secs(1))
}

/// Runs the TTL-after-finished controller for batch/v1 Jobs until `shutdown` completes.
pub async fn run(client: Client, config: Config, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    run_kind::<Job>(client, config, shutdown).await
}

/// Runs the TTL-after-finished controller for Jobs of kind `K` until `shutdown` completes, with
/// a Job informer of its own.
pub async fn run_kind<K: JobKind>(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (jobs, _informer) = Subscription::<K>::standalone(&client);
    run_shared(client, config, jobs, shutdown).await
}

/// Runs the TTL-after-finished controller for Jobs of kind `K` over a shared Job informer's
/// subscription ([`crate::job::informer`]) until `shutdown` completes.
pub async fn run_shared<K: JobKind>(
    client: Client,
    config: Config,
    jobs: Subscription<K>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ctx = Arc::new(Ctx { client, config: K::config(&config) });
    Controller::for_shared_stream(Subscription::applied(jobs.events), jobs.store)
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|r| async move {
            if let Err(kube::runtime::controller::Error::ReconcilerFailed(e, obj)) = r {
                tracing::warn!(kind = %K::api_version(&()), job = %obj, error = %e, "TTL check failed");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::status::new_condition;
    use crate::job::testing::{JobBuilder, at};

    fn finished(ttl: Option<i32>, secs: i64) -> Job {
        let mut job = JobBuilder::new("j").build();
        job.spec.as_mut().unwrap().ttl_seconds_after_finished = ttl;
        let st = job.status.get_or_insert_with(Default::default);
        st.conditions = Some(vec![new_condition(condition::COMPLETE, "True", "", "", at(secs))]);
        job
    }

    #[test]
    fn expiry_is_finish_time_plus_ttl() {
        let job = finished(Some(30), 100);
        assert_eq!(expires_at(&job), Some(at(130)));
        assert_eq!(time_left(&job, at(110)), Some(Duration::from_secs(20)));
        assert_eq!(time_left(&job, at(130)), None);
        assert_eq!(time_left(&finished(Some(0), 100), at(100)), None, "0 = at once");
        assert_eq!(time_left(&finished(None, 100), at(1000)), Some(Duration::MAX), "no ttl");
        assert_eq!(time_left(&JobBuilder::new("u").build(), at(0)), Some(Duration::MAX), "unfinished");
    }
}
