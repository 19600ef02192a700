//! The node simulator's event writer: the kubelet's and the scheduler's events
//! (events.k8s.io/v1), written as kube-runtime's `Recorder` writes them, without decoding the
//! server's answer.
//!
//! Same objects and aggregation as `kube::runtime::events::Recorder`, which this replaced: an
//! event is created named `<regarding name>.<nanoseconds, hex>` with `eventTime` now, the reporter
//! as `reportingController`/`reportingInstance` (the controller when there is no instance), the
//! `regarding` reference, `action`, `reason`, `note` and `type`; an event with the same type,
//! action, reason, regarding and related object as one this writer wrote in the last six minutes
//! is that event again: its `series` (count 2, 3, ...; `lastObservedTime` now) is merged in with a
//! merge patch of the whole event. The `Recorder` also decoded every created Event into a
//! k8s-openapi `Event` (its `managedFields` included) that nothing read: with four events per
//! pod, a measurable part of a scale run. A writer is cheap to clone; clones share the cache.

use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

/// How long a written event is the one a repeat of it adds to (kube-runtime's).
const CACHE_TTL: SignedDuration = SignedDuration::from_mins(6);

/// What makes two events the same one.
#[derive(Clone, Debug, PartialEq)]
struct Key {
    type_: EventType,
    action: String,
    reason: String,
    regarding: ObjectReference,
    related: Option<ObjectReference>,
}

/// Writes one reporter's events.
#[derive(Clone)]
pub struct EventWriter {
    client: kube::Client,
    reporter: Reporter,
    /// The events written in the last [`CACHE_TTL`], as last written (a pod's few).
    written: Arc<Mutex<Vec<(Key, K8sEvent)>>>,
}

impl EventWriter {
    /// A writer for `reporter`'s events.
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self { client, reporter, written: Arc::default() }
    }

    /// Write `ev` about `regarding` (in its namespace, `default` for a cluster-scoped object).
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = Key {
            type_: ev.type_,
            action: ev.action.clone(),
            reason: ev.reason.clone(),
            regarding: regarding.clone(),
            related: ev.secondary.clone(),
        };
        let again = {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            written.retain(|(_, e)| last_seen(e).is_none_or(|t| t + CACHE_TTL > now));
            written.iter().find(|(k, _)| *k == key).map(|(_, e)| e.clone())
        };
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let url = format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events");
        let request = kube::core::Request::new(url);
        let (event, req) = match again {
            Some(mut event) => {
                let count = event.series.as_ref().map_or(2, |s| s.count + 1);
                event.series = Some(EventSeries { count, last_observed_time: MicroTime(now) });
                let name = event.metadata.name.clone().unwrap_or_default();
                let req = request.patch(&name, &PatchParams::default(), &Patch::Merge(&event));
                (event, req)
            }
            None => {
                let event = self.new_event(ev, regarding, now);
                let body = serde_json::to_vec(&event).map_err(kube::Error::SerdeError)?;
                (event, request.create(&PostParams::default(), body))
            }
        };
        let req = req.map_err(kube::Error::BuildRequest)?;
        // The answer is the event as stored; nothing here reads it.
        self.client.request_text(req).await?;
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        match written.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = event,
            None => written.push((key, event)),
        }
        Ok(())
    }

    fn new_event(&self, ev: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let controller = &self.reporter.controller;
        let name = regarding.name.as_deref().unwrap_or(controller);
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                ..Default::default()
            },
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(self.reporter.instance.clone().unwrap_or_else(|| controller.clone())),
            type_: Some(match ev.type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            related: ev.secondary.clone(),
            ..Default::default()
        }
    }
}

/// When an event was last seen: its series' last observation, else its time.
fn last_seen(e: &K8sEvent) -> Option<Timestamp> {
    match &e.series {
        Some(s) => Some(s.last_observed_time.0),
        None => e.event_time.as_ref().map(|t| t.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::http;
    use kube::Api;

    fn pod_ref(field_path: Option<&str>) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some("p-1".into()),
            namespace: Some("default".into()),
            uid: Some("u-1".into()),
            field_path: field_path.map(str::to_string),
            ..Default::default()
        }
    }

    fn ev(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: reason.into(),
            secondary: None,
        }
    }

    /// The events written are the `Recorder`'s: fields, name, and a repeat within the window is
    /// the same event with a growing series; another reason or another container is its own.
    #[tokio::test]
    async fn writes_events_as_the_kube_runtime_recorder_and_aggregates_repeats() {
        let server = http::Server::new(http::ServerConfig::default());
        let client = crate::local::in_process_client(server.clone(), crate::agent::kubelet());
        let reporter = Reporter { controller: "kubelet".into(), instance: Some("node-0".into()) };
        let w = EventWriter::new(client.clone(), reporter);
        let c = pod_ref(Some("spec.containers{c}"));
        w.publish(&ev("Pulled", "Container image \"busybox\" already present on machine"), &c).await.unwrap();
        w.publish(&ev("Started", "Started container c"), &c).await.unwrap();
        w.clone().publish(&ev("Started", "Started container c"), &c).await.unwrap();
        w.publish(&ev("Started", "Started container c"), &c).await.unwrap();
        w.publish(&ev("Started", "Started container d"), &pod_ref(Some("spec.containers{d}"))).await.unwrap();
        let scheduler =
            EventWriter::new(client.clone(), Reporter { controller: "default-scheduler".into(), instance: None });
        scheduler
            .publish(&ev("Scheduled", "Successfully assigned default/p-1 to node-0"), &pod_ref(None))
            .await
            .unwrap();

        let events: Vec<K8sEvent> =
            Api::<K8sEvent>::namespaced(client, "default").list(&Default::default()).await.unwrap().items;
        assert_eq!(events.len(), 4, "{events:#?}");
        let find = |reason: &str, path: Option<&str>| {
            events
                .iter()
                .find(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.regarding.as_ref().and_then(|r| r.field_path.as_deref()) == path
                })
                .unwrap_or_else(|| panic!("no {reason} event for {path:?}"))
        };
        let started = find("Started", Some("spec.containers{c}"));
        assert_eq!(started.series.as_ref().map(|s| s.count), Some(3), "written three times");
        assert_eq!(started.note.as_deref(), Some("Started container c"));
        assert_eq!(started.action.as_deref(), Some("Started"));
        assert_eq!(started.type_.as_deref(), Some("Normal"));
        assert_eq!(started.reporting_controller.as_deref(), Some("kubelet"));
        assert_eq!(started.reporting_instance.as_deref(), Some("node-0"));
        assert_eq!(started.regarding, Some(pod_ref(Some("spec.containers{c}"))));
        assert!(started.metadata.name.as_deref().is_some_and(|n| n.starts_with("p-1.")));
        assert!(started.event_time.is_some());
        assert!(find("Pulled", Some("spec.containers{c}")).series.is_none(), "written once");
        assert!(find("Started", Some("spec.containers{d}")).series.is_none(), "another container");
        let scheduled = find("Scheduled", None);
        assert_eq!(scheduled.reporting_controller.as_deref(), Some("default-scheduler"));
        assert_eq!(scheduled.reporting_instance.as_deref(), Some("default-scheduler"), "no instance: the controller");
        assert_eq!(scheduled.note.as_deref(), Some("Successfully assigned default/p-1 to node-0"));
    }

    /// A refused event is an error, and is not remembered as written.
    #[tokio::test]
    async fn a_refused_event_is_an_error_and_not_cached() {
        let server = http::Server::new(http::ServerConfig::default());
        let client = crate::local::in_process_client(server.clone(), crate::agent::kubelet());
        let w = EventWriter::new(client, Reporter { controller: "kubelet".into(), instance: None });
        let mut missing_ns = pod_ref(None);
        missing_ns.namespace = Some("no-such-namespace".into());
        let e = ev("Started", "Started container c");
        assert!(w.publish(&e, &missing_ns).await.is_err());
        assert!(w.written.lock().unwrap().is_empty());
    }
}
