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

/// The JSON of `to_view(view, stored)` for the events.k8s.io view, written straight from the
/// stored object (no converted copy built and dropped); `None` for other views and for a stored
/// value that is not an object.
pub fn view_json(view: &ResourceInfo, stored: &Value) -> Option<Vec<u8>> {
    if view.crd.is_some() || !converts(view) {
        return None;
    }
    let m = stored.as_object()?;
    serde_json::to_vec(&NewEvent(m)).ok()
}

/// A stored core/v1 Event serialised as [`rename`] to events.k8s.io/v1 would make it: the same
/// fields, `null`s dropped, keys in the map's (sorted) order.
struct NewEvent<'a>(&'a Map<String, Value>);

/// A value of [`NewEvent`]: a stored one, or a constant.
enum Field<'a> {
    Stored(&'a Value),
    Const(&'static str),
}

impl serde::Serialize for Field<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Stored(v) => v.serialize(s),
            Field::Const(c) => c.serialize(s),
        }
    }
}

impl serde::Serialize for NewEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut fields: Vec<(&str, Field<'_>)> = Vec::with_capacity(2 + SHARED.len() + RENAMED.len());
        fields.push(("apiVersion", Field::Const("events.k8s.io/v1")));
        fields.push(("kind", Field::Const("Event")));
        let present = |k: &str| self.0.get(k).filter(|v| !v.is_null());
        for k in SHARED {
            if let Some(v) = present(k) {
                fields.push((k, Field::Stored(v)));
            }
        }
        for (core, new) in RENAMED {
            if let Some(v) = present(core) {
                fields.push((new, Field::Stored(v)));
            }
        }
        fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = s.serialize_map(Some(fields.len()))?;
        for (k, v) in &fields {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
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
    use proptest::prelude::*;

    use super::*;
    use crate::registry::Registry;

    proptest! {
        /// The view written straight from the stored Event is the bytes of the converted copy.
        #[test]
        fn view_json_is_the_converted_copy(
            fields in prop::collection::btree_map(
                prop::sample::select(vec!["apiVersion", "kind", "metadata", "involvedObject", "message",
                    "source", "reportingComponent", "firstTimestamp", "lastTimestamp", "count", "reason",
                    "type", "action", "related", "eventTime", "series", "reportingInstance", "regarding",
                    "note", "deprecatedCount", "other", "zzz", "a"]),
                prop_oneof![
                    Just(Value::Null),
                    any::<i64>().prop_map(Value::from),
                    "[a-z\"\\\\\u{e9}]{0,6}".prop_map(Value::from),
                    Just(json!({"kind": "Pod", "name": "p", "x": null, "l": [1, "\u{1}"]})),
                ],
                0..22,
            ),
        ) {
            let reg = Registry::builtin();
            let new = reg.get("events.k8s.io", "v1", "events").unwrap();
            let stored = Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
            let reference = serde_json::to_vec(&to_view(&new, stored.clone())).unwrap();
            prop_assert_eq!(view_json(&new, &stored), Some(reference));
            let core = reg.get("", "v1", "events").unwrap();
            prop_assert_eq!(view_json(&core, &stored), None);
        }
    }

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
