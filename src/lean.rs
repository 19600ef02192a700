//! Decoding API objects without `metadata.managedFields`.
//!
//! Every object the API server sends carries its `managedFields`, and k8s-openapi decodes each
//! entry's `fieldsV1` into a `serde_json::Value` tree (a map per level): for a Job that is a
//! good part of the decode's time and allocations, and most informers throw it away right after
//! (client-go's informers do the same with a transform). [`Lean<K>`] decodes `K` with the
//! `managedFields` of its top-level `metadata` skipped in the parser (read past, never built),
//! so nothing is allocated for them. Everything else decodes exactly as `K`'s own `Deserialize`
//! does, errors included; `Api<Lean<K>>` is usable wherever `Api<K>` is (the same URLs).

use std::borrow::Cow;
use std::fmt;

use kube::Resource;
use kube::api::ObjectMeta;
use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// `K`, decoded without `metadata.managedFields` (see the module docs); with `SPEC` false, also
/// without its top-level `spec` ([`WithoutSpec`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Lean<K, const SPEC: bool = true>(pub K);

/// `K` decoded without `metadata.managedFields` and without its `spec` (read past, never built:
/// `spec` is `None`), for a cache whose readers read only an object's metadata and status (the
/// CronJob controller's Jobs when it runs with a Job informer of its own).
pub type WithoutSpec<K> = Lean<K, false>;

impl<'de, K: Deserialize<'de>, const SPEC: bool> Deserialize<'de> for Lean<K, SPEC> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let level = if SPEC { Level::Top } else { Level::TopWithoutSpec };
        K::deserialize(Strip { d, level }).map(Lean)
    }
}

impl<K: Resource, const SPEC: bool> Resource for Lean<K, SPEC> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}

/// A watch event of `Lean<K>` as one of `K`.
pub fn unlean<K, const SPEC: bool>(
    ev: kube::runtime::watcher::Event<Lean<K, SPEC>>,
) -> kube::runtime::watcher::Event<K> {
    use kube::runtime::watcher::Event;
    match ev {
        Event::Apply(Lean(k)) => Event::Apply(k),
        Event::Delete(Lean(k)) => Event::Delete(k),
        Event::Init => Event::Init,
        Event::InitApply(Lean(k)) => Event::InitApply(k),
        Event::InitDone => Event::InitDone,
    }
}

/// Where in the object a value is: the object itself (whose `spec` is kept or read past), or
/// its `metadata`.
#[derive(Clone, Copy)]
enum Level {
    Top,
    TopWithoutSpec,
    Meta,
}

/// A deserializer that hands maps at its level to [`StripMap`] and everything else through.
struct Strip<D> {
    d: D,
    level: Level,
}

macro_rules! forward {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
            self.d.$method(v)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strip<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.d.deserialize_any(StripVisitor { v, level: self.level })
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.d.deserialize_option(StripVisitor { v, level: self.level })
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.d.deserialize_map(StripVisitor { v, level: self.level })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.d.deserialize_struct(name, fields, StripVisitor { v, level: self.level })
    }

    forward! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_unit deserialize_seq
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, v: V) -> Result<V::Value, Self::Error> {
        self.d.deserialize_unit_struct(name, v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, v: V) -> Result<V::Value, Self::Error> {
        self.d.deserialize_newtype_struct(name, v)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, Self::Error> {
        self.d.deserialize_tuple(len, v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.d.deserialize_tuple_struct(name, len, v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.d.deserialize_enum(name, variants, v)
    }

    fn is_human_readable(&self) -> bool {
        self.d.is_human_readable()
    }
}

/// The visitor of a [`Strip`]ped value: a map goes through [`StripMap`], an `Option`'s content
/// through another [`Strip`] of the same level, anything else to `K`'s own visitor.
struct StripVisitor<V> {
    v: V,
    level: Level,
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, x: $ty) -> Result<Self::Value, E> {
            self.v.$method(x)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for StripVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.v.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.v.visit_map(StripMap { map, level: self.level, metadata_next: false })
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.v.visit_some(Strip { d, level: self.level })
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.v.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.v.visit_unit()
    }

    forward_visit! {
        visit_bool(bool) visit_i64(i64) visit_i128(i128) visit_u64(u64) visit_u128(u128)
        visit_f64(f64) visit_char(char) visit_str(&str) visit_borrowed_str(&'de str)
        visit_string(String) visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.v.visit_seq(seq)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.v.visit_newtype_struct(d)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.v.visit_enum(data)
    }
}

/// The object's map: its `metadata` value decodes at [`Level::Meta`], where `managedFields` is
/// read past without being built.
struct StripMap<A> {
    map: A,
    level: Level,
    /// The key just read was the object's `metadata`.
    metadata_next: bool,
}

/// A map key, borrowed from the input where the parser allows it.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(s))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(s))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for StripMap<A> {
    type Error = A::Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, A::Error> {
        loop {
            let Some(key) = self.map.next_key::<Key<'de>>()? else { return Ok(None) };
            match self.level {
                Level::Meta if key.as_str() == "managedFields" => {
                    self.map.next_value::<IgnoredAny>()?;
                    continue;
                }
                Level::Meta => {}
                Level::TopWithoutSpec if key.as_str() == "spec" => {
                    self.map.next_value::<IgnoredAny>()?;
                    continue;
                }
                Level::Top | Level::TopWithoutSpec => self.metadata_next = key.as_str() == "metadata",
            }
            return match key {
                Key::Borrowed(s) => seed.deserialize(BorrowedStrDeserializer::new(s)),
                Key::Owned(s) => seed.deserialize(StringDeserializer::new(s)),
            }
            .map(Some);
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        if std::mem::take(&mut self.metadata_next) {
            self.map.next_value_seed(MetaSeed(seed))
        } else {
            self.map.next_value_seed(seed)
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// Decodes the `metadata` value at [`Level::Meta`].
struct MetaSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for MetaSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Strip { d, level: Level::Meta })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::WatchEvent;
    use serde_json::json;

    /// What `K` decodes to with its `managedFields` cleared afterwards: what `Lean<K>` must give.
    fn expected<K: serde::de::DeserializeOwned + Resource>(text: &str) -> Result<K, String> {
        let mut k: K = serde_json::from_str(text).map_err(|e| e.to_string())?;
        k.meta_mut().managed_fields = None;
        Ok(k)
    }

    fn lean<K: serde::de::DeserializeOwned>(text: &str) -> Result<K, String> {
        serde_json::from_str::<Lean<K>>(text).map(|l| l.0).map_err(|e| e.to_string())
    }

    fn job_json() -> serde_json::Value {
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": "j", "namespace": "ns", "uid": "u-1", "resourceVersion": "7",
                "labels": {"managedFields": "a label that must stay", "app": "x"},
                "annotations": {"a": "b"},
                "managedFields": [{
                    "manager": "kubectl", "operation": "Update", "apiVersion": "batch/v1",
                    "time": "2026-12-07T00:00:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}}}}}}}
                }],
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "cj", "uid": "u-0", "controller": true}],
                "creationTimestamp": "2026-12-07T00:00:00Z"
            },
            "spec": {"parallelism": 2, "template": {
                "metadata": {"labels": {"x": "y"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}},
            "status": {"active": 1, "startTime": "2026-12-07T00:00:01Z"}
        })
    }

    #[test]
    fn a_job_decodes_as_with_managed_fields_cleared_afterwards() {
        let text = job_json().to_string();
        let got: Job = lean(&text).expect("decodes");
        assert_eq!(Ok(got.clone()), expected::<Job>(&text));
        assert!(got.metadata.managed_fields.is_none());
        // Everything else is there, a label named like the skipped key included.
        assert_eq!(got.metadata.labels.as_ref().unwrap()["managedFields"], "a label that must stay");
        assert_eq!(got.spec.as_ref().unwrap().parallelism, Some(2));
        assert_eq!(got.status.as_ref().unwrap().active, Some(1));
        assert_eq!(got.metadata.owner_references.as_ref().unwrap()[0].name, "cj");
    }

    #[test]
    fn without_spec_a_job_decodes_as_with_its_spec_and_managed_fields_cleared_afterwards() {
        let mut v = job_json();
        // A `spec` key anywhere but at the top stays.
        v["metadata"]["annotations"]["spec"] = json!("not a top-level spec");
        let text = v.to_string();
        let got = serde_json::from_str::<WithoutSpec<Job>>(&text).map(|l| l.0).expect("decodes");
        let mut want = expected::<Job>(&text).expect("decodes");
        want.spec = None;
        assert_eq!(got, want);
        assert_eq!(got.metadata.owner_references.as_ref().unwrap()[0].name, "cj");
        assert_eq!(got.status.as_ref().unwrap().active, Some(1));
        assert_eq!(got.metadata.annotations.as_ref().unwrap()["spec"], "not a top-level spec");
        // Spec first or last, escaped, null or malformed in type: read past all the same.
        for text in [
            r#"{"spec": {"parallelism": "two"}, "metadata": {"name": "a"}}"#,
            r#"{"metadata": {"name": "a"}, "sp\u0065c": 5}"#,
            r#"{"metadata": {"name": "a"}, "spec": null}"#,
        ] {
            let got = serde_json::from_str::<WithoutSpec<Job>>(text).map(|l| l.0).expect(text);
            assert_eq!(got.metadata.name.as_deref(), Some("a"));
            assert!(got.spec.is_none(), "{text}");
        }
        // Still JSON: a broken spec is an error.
        assert!(serde_json::from_str::<WithoutSpec<Job>>(r#"{"spec": {"a": }"#).is_err());
    }

    #[test]
    fn key_order_escapes_and_nesting_do_not_matter() {
        let mut v = job_json();
        // metadata last, managedFields first in it.
        let meta = v.as_object_mut().unwrap().remove("metadata").unwrap();
        let mut reordered = serde_json::Map::new();
        reordered.insert("managedFields".into(), meta["managedFields"].clone());
        for (k, x) in meta.as_object().unwrap() {
            reordered.entry(k.clone()).or_insert_with(|| x.clone());
        }
        v.as_object_mut().unwrap().insert("metadata".into(), reordered.into());
        let text = v.to_string();
        assert_eq!(lean::<Job>(&text), expected::<Job>(&text));
        // Keys spelled with escapes are the same keys.
        let escaped = text
            .replace("\"managedFields\":[", "\"managed\\u0046ields\":[")
            .replace("\"metadata\"", "\"meta\\u0064ata\"");
        assert!(escaped.contains("\\u0046") && escaped.contains("\\u0064"));
        let got: Job = lean(&escaped).expect("decodes");
        assert!(got.metadata.managed_fields.is_none());
        assert_eq!(Ok(got), expected::<Job>(&escaped));
        // A `managedFields` anywhere but the object's own metadata is not touched (the pod
        // template's metadata is a different level: k8s-openapi decodes it there as usual).
        let mut nested = job_json();
        nested["spec"]["template"]["metadata"]["managedFields"] = nested["metadata"]["managedFields"].clone();
        let text = nested.to_string();
        let got: Job = lean(&text).expect("decodes");
        assert!(got.spec.unwrap().template.metadata.unwrap().managed_fields.is_some());
    }

    #[test]
    fn absent_null_and_empty_metadata_decode_as_before() {
        for text in [
            r#"{"spec": {"template": {}}}"#,
            r#"{"metadata": null}"#,
            r#"{"metadata": {}}"#,
            r#"{"metadata": {"managedFields": null, "name": "a"}}"#,
            r#"{"metadata": {"managedFields": [], "name": "a"}}"#,
        ] {
            assert_eq!(lean::<Job>(text), expected::<Job>(text), "{text}");
        }
    }

    #[test]
    fn bad_input_fails_as_it_would_have() {
        for text in [
            r#"{"metadata": "a string"}"#,
            r#"{"metadata": {"name": 5}}"#,
            r#"{"metadata": {"managedFields": [1, 2"#,
            r#"{"metadata": {"managedFields": [{"manager": "x"}], "name": 5}}"#,
            r#"["not", "an", "object"]"#,
            r#"{"spec": {"parallelism": "two"}}"#,
            "",
        ] {
            let (got, want) = (lean::<Job>(text), expected::<Job>(text));
            assert!(got.is_err(), "{text} must fail");
            // The managedFields of the third and fourth are skipped, so only the kind of
            // failure is compared there; elsewhere the error is the same.
            if !text.contains("managedFields") {
                assert_eq!(got, want, "{text}");
            }
        }
        // A malformed managedFields is still malformed JSON, but a well-formed one of the wrong
        // shape is never looked at (it is not kept either).
        assert!(lean::<Job>(r#"{"metadata": {"managedFields": "not a list", "name": "a"}}"#).is_ok());
    }

    #[test]
    fn watch_events_and_lists_decode_through_it() {
        let ev = json!({"type": "ADDED", "object": job_json()}).to_string();
        let got: WatchEvent<Lean<Job>> = serde_json::from_str(&ev).expect("event");
        let WatchEvent::Added(Lean(job)) = got else { panic!("added") };
        assert!(job.metadata.managed_fields.is_none());
        assert_eq!(job.metadata.name.as_deref(), Some("j"));
        // The object before the type (buffered by serde's adjacently tagged decoding).
        let ev = format!(r#"{{"object": {}, "type": "MODIFIED"}}"#, job_json());
        let got: WatchEvent<Lean<Job>> = serde_json::from_str(&ev).expect("event");
        let WatchEvent::Modified(Lean(job)) = got else { panic!("modified") };
        assert_eq!(Ok(job), expected::<Job>(&job_json().to_string()));
        let cj = json!({"metadata": {"name": "c", "managedFields": [{"manager": "m"}]},
                        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {}}}}});
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "9"}, "items": [cj.clone(), cj]});
        let got: kube::core::ObjectList<Lean<CronJob>> = serde_json::from_value(list).expect("list");
        assert_eq!(got.items.len(), 2);
        assert!(got.items.iter().all(|c| c.0.metadata.managed_fields.is_none() && c.0.spec.is_some()));
    }

    /// Every field of a pod as the API server serves it survives but `managedFields` (the node
    /// simulator reads its pods through `Lean<Pod>`).
    #[test]
    fn a_pod_keeps_every_field_but_managed_fields() {
        let doc = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "ns", "uid": "u-1", "resourceVersion": "42", "generation": 3,
                "generateName": "p-", "selfLink": "/api/v1/namespaces/ns/pods/p",
                "creationTimestamp": "2026-12-07T00:00:00Z", "deletionTimestamp": "2026-12-07T00:01:00Z",
                "deletionGracePeriodSeconds": 30,
                "labels": {"a": "b"}, "annotations": {"jobwright.dev/simulate-duration": "0"},
                "finalizers": ["batch.kubernetes.io/job-tracking"],
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u-0", "controller": true}],
                "managedFields": [{"manager": "m", "operation": "Update", "apiVersion": "v1",
                                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:containers": {}}}}]
            },
            "spec": {"containers": [{"name": "c", "image": "busybox", "args": ["true"]}], "nodeName": "n-0",
                     "restartPolicy": "Never"},
            "status": {"phase": "Succeeded", "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": false,
                                              "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}]}
        })
        .to_string();
        let want = expected::<Pod>(&doc).expect("decodes");
        assert_eq!(lean::<Pod>(&doc), Ok(want.clone()));
        assert_eq!(want.metadata.finalizers.as_ref().map(Vec::len), Some(1));
        let bare = r#"{"metadata": {"labels": null, "managedFields": null}, "spec": null}"#;
        assert_eq!(lean::<Pod>(bare), Ok(Pod::default()));
        assert_eq!(lean::<Pod>("{}"), Ok(Pod::default()));
    }

    /// Arbitrary JSON: scalars (strings with quotes and backslashes), lists and maps whose keys
    /// include the ones `Lean` looks at.
    fn arb_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            "[a-z\\\\\"é]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-zA-Z]{0,5}|managedFields|metadata|name|labels", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Where the arbitrary value goes in a Job.
    const PATHS: &[&[&str]] = &[
        &["metadata", "managedFields"],
        &["metadata", "managedFields", "0"],
        &["metadata", "managedFields", "0", "fieldsV1"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "labels"],
        &["metadata", "unknownKey"],
        &["metadata", "ownerReferences"],
        &["spec"],
        &["spec", "template", "metadata"],
        &["spec", "template", "metadata", "managedFields"],
        &["status"],
        &["kind"],
        &["junk"],
    ];

    fn set(doc: &mut serde_json::Value, path: &[&str], v: serde_json::Value) {
        let mut at = doc;
        for (i, key) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            at = match at {
                serde_json::Value::Array(items) => {
                    let slot = &mut items[key.parse::<usize>().expect("index")];
                    if last {
                        *slot = v;
                        return;
                    }
                    slot
                }
                serde_json::Value::Object(m) if last => {
                    m.insert((*key).to_owned(), v);
                    return;
                }
                serde_json::Value::Object(m) => m.entry(*key).or_insert_with(|| json!({})),
                _ => return,
            };
        }
    }

    proptest::proptest! {
        /// Whatever a (buggy or hostile) server sends, `Lean<Job>` gives what `Job` gives for
        /// the same document without its top-level `metadata.managedFields`: the same object, or
        /// an error where that fails (the same error when the document had no such key).
        #[test]
        fn arbitrary_documents_decode_as_without_managed_fields(
            path in 0..PATHS.len(),
            v in arb_json(),
        ) {
            let mut doc = job_json();
            set(&mut doc, PATHS[path], v);
            let mut reference = doc.clone();
            let had = reference
                .get_mut("metadata")
                .and_then(|m| m.as_object_mut())
                .and_then(|m| m.remove("managedFields"))
                .is_some();
            let (got, want) = (lean::<Job>(&doc.to_string()), expected::<Job>(&reference.to_string()));
            match (&got, &want) {
                (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a, b),
                (Err(a), Err(b)) if !had => proptest::prop_assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                _ => proptest::prop_assert!(false, "lean {:?} against {:?} for {}", got, want, doc),
            }
        }
    }

    /// Deep nesting: inside the skipped `managedFields` it is read past without recursion (no
    /// stack overflow, nothing kept, so the object decodes); anywhere else it decodes or fails
    /// exactly as for `Job` itself.
    #[test]
    fn deep_nesting_neither_crashes_nor_differs_where_kept() {
        let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
        let skipped = format!(r#"{{"metadata": {{"name": "a", "managedFields": {deep}}}}}"#);
        let got: Job = lean(&skipped).expect("read past");
        assert_eq!(got.metadata.name.as_deref(), Some("a"));
        assert!(serde_json::from_str::<Job>(&skipped).is_err(), "plain decoding hits the recursion limit");
        for kept in [
            format!(r#"{{"metadata": {{"name": "a", "labels": {{"x": {deep}}}}}}}"#),
            format!(r#"{{"spec": {{"template": {{"metadata": {{"managedFields": {deep}}}}}}}}}"#),
            format!(r#"{{"junk": {deep}, "metadata": {{"name": "a"}}}}"#),
        ] {
            assert_eq!(lean::<Job>(&kept), expected::<Job>(&kept));
        }
    }

    #[test]
    fn the_resource_is_the_same() {
        assert_eq!(Lean::<Job>::url_path(&(), Some("ns")), Job::url_path(&(), Some("ns")));
        assert_eq!(Lean::<CronJob>::kind(&()), "CronJob");
        assert_eq!(Lean::<CronJob>::api_version(&()), "batch/v1");
    }
}
