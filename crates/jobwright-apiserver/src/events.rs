//! One store, two views of Events: core/v1 `Event` and events.k8s.io/v1 `Event`.
//!
//! Events are stored in the core/v1 shape (registry `storage_key` `/events`). A request through
//! the events.k8s.io/v1 resource is converted on the way in ([`to_storage`]) and out
//! ([`to_view`]), with upstream's field mapping (`pkg/apis/events/v1/conversion.go`):
//! `involvedObject`↔`regarding`, `message`↔`note`, `source`↔`deprecatedSource`,
//! `reportingComponent`↔`reportingController`, `firstTimestamp`↔`deprecatedFirstTimestamp`,
//! `lastTimestamp`↔`deprecatedLastTimestamp`, `count`↔`deprecatedCount`; `reason`, `type`,
//! `action`, `related`, `eventTime`, `series` and `reportingInstance` keep their names.

use serde_json::{Map, Value, json};

use super::registry::ResourceInfo;

/// `(core/v1 name, events.k8s.io/v1 name)` of the renamed fields.
const RENAMED: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("reportingComponent", "reportingController"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Fields with the same name in both shapes.
const SHARED: &[&str] =
    &["metadata", "reason", "type", "action", "related", "eventTime", "series", "reportingInstance"];

/// Whether requests through `view` need converting (the events.k8s.io view).
pub fn converts(view: &ResourceInfo) -> bool {
    (view.group == "events.k8s.io" && view.resource == "events") || crate::crd::converts(view)
}

fn rename(obj: Value, api_version: &str, to_new: bool) -> Value {
    // The fields are moved, not copied (the names of `SHARED` and `RENAMED` are all distinct).
    let mut src = match obj {
        Value::Object(m) => m,
        other => return other,
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    for k in SHARED {
        if let Some(v) = src.remove(*k)
            && !v.is_null()
        {
            out.insert((*k).to_string(), v);
        }
    }
    for (core, new) in RENAMED {
        let (from, to) = if to_new { (core, new) } else { (new, core) };
        if let Some(v) = src.remove(*from)
            && !v.is_null()
        {
            out.insert((*to).to_string(), v);
        }
    }
    Value::Object(out)
}

/// A stored (core/v1) object as `view` shows it.
pub fn to_view(view: &ResourceInfo, stored: Value) -> Value {
    if view.crd.is_some() {
        return crate::crd::to_view(view, stored);
    }
    if converts(view) { rename(stored, "events.k8s.io/v1", true) } else { stored }
}

/// An object written through `view`, in the storage (core/v1) shape.
pub fn to_storage(view: &ResourceInfo, obj: Value) -> Value {
    if view.crd.is_some() {
        return crate::crd::to_storage(view, obj);
    }
    if converts(view) { rename(obj, "v1", false) } else { obj }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn events_round_trip_between_views() {
        let reg = Registry::builtin();
        let new = reg.get("events.k8s.io", "v1", "events").unwrap();
        let written = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Job", "name": "j"}, "note": "hello", "reason": "Created", "type": "Normal",
            "reportingController": "jobwright", "reportingInstance": "i", "action": "Create",
            "eventTime": "2024-01-01T00:00:00.000000Z", "deprecatedCount": 2});
        let core = to_storage(&new, written.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "j");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "jobwright");
        assert_eq!(core["count"], 2);
        assert_eq!(to_view(&new, core), written);
        let core_info = reg.get("", "v1", "events").unwrap();
        assert!(!converts(&core_info));
    }
}
