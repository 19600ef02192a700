//! The common case of [`super::strict::check`] without its typed round trip: decode the object
//! into its k8s-openapi type through a transparent wrapper that notes whether the type skipped
//! any value that is not `null` (k8s-openapi's deserializers skip an unknown key's value with
//! `IgnoredAny`, that is `deserialize_ignored_any`). When the decode succeeds and nothing was
//! skipped, every key of the object is a field the type knows, so the round trip would find no
//! unknown field and the object needs no change: the typed value is dropped without being
//! serialized back and walked. Anything else (a decode error, a skipped value, an enum, which
//! the wrapper does not look into) goes the slow way, which words the error or the warnings.
//!
//! The wrapper forwards every call unchanged to the wrapped deserializer and visitor, so the
//! decode accepts and refuses exactly what the unwrapped one does.

use std::cell::Cell;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;

/// Whether `v` decodes as `T` with every non-null value landing in a field `T` knows.
/// (`false` means "not shown", not "has unknown fields".)
pub fn decodes_without_skipping<T: DeserializeOwned>(v: &Value) -> bool {
    let skipped = Cell::new(false);
    T::deserialize(Track { inner: v, skipped: &skipped }).is_ok() && !skipped.get()
}

/// A deserializer that forwards to `inner`, wrapping what it hands out.
struct Track<'f, D> {
    inner: D,
    skipped: &'f Cell<bool>,
}

/// A visitor that forwards to `inner`, wrapping the deserializers and accessors it is given.
struct TrackVisitor<'f, V> {
    inner: V,
    skipped: &'f Cell<bool>,
}

struct TrackSeed<'f, S> {
    inner: S,
    skipped: &'f Cell<bool>,
}

struct TrackSeq<'f, A> {
    inner: A,
    skipped: &'f Cell<bool>,
}

struct TrackMap<'f, A> {
    inner: A,
    skipped: &'f Cell<bool>,
}

/// Whether a skipped value is `null` (consumes it whatever it is).
struct IsNull;

impl<'de> Visitor<'de> for IsNull {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        IgnoredAny::deserialize(d).map(|_| false)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        IgnoredAny::deserialize(d).map(|_| false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<bool, A::Error> {
        IgnoredAny.visit_enum(data).map(|_| false)
    }
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
                self.inner.$method($($arg,)* TrackVisitor { inner: visitor, skipped: self.skipped })
            }
        )*
    };
}

impl<'de, 'f, D: Deserializer<'de>> Deserializer<'de> for Track<'f, D> {
    type Error = D::Error;

    forward! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if !self.inner.deserialize_any(IsNull)? {
            self.skipped.set(true);
        }
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! visit {
    ($($method:ident($ty:ty);)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, 'f, V: Visitor<'de>> Visitor<'de> for TrackVisitor<'f, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.expecting(f)
    }

    visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Track { inner: d, skipped: self.skipped })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(Track { inner: d, skipped: self.skipped })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(TrackSeq { inner: seq, skipped: self.skipped })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(TrackMap { inner: map, skipped: self.skipped })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        // Not looked into: counts as skipped, so the slow way decides.
        self.skipped.set(true);
        self.inner.visit_enum(data)
    }
}

impl<'de, 'f, S: DeserializeSeed<'de>> DeserializeSeed<'de> for TrackSeed<'f, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.deserialize(Track { inner: d, skipped: self.skipped })
    }
}

impl<'de, 'f, A: SeqAccess<'de>> SeqAccess<'de> for TrackSeq<'f, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Self::Error> {
        self.inner.next_element_seed(TrackSeed { inner: seed, skipped: self.skipped })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, 'f, A: MapAccess<'de>> MapAccess<'de> for TrackMap<'f, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        self.inner.next_key_seed(TrackSeed { inner: seed, skipped: self.skipped })
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Self::Error> {
        self.inner.next_value_seed(TrackSeed { inner: seed, skipped: self.skipped })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Pod;

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "p", "labels": {"anything": "goes"}, "annotations": {"x.y/z": "1"},
                            "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1",
                                               "fieldsV1": {"f:spec": {"f:unknownToTheType": {}}}}]},
               "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}],
                                        "resources": {"limits": {"cpu": "1"}}}],
                        "restartPolicy": "Never", "nodeSelector": {"a": "b"}},
               "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null}]}})
    }

    #[test]
    fn known_fields_everywhere_decode_without_skipping() {
        assert!(decodes_without_skipping::<Pod>(&pod()));
        // Free-form maps and FieldsV1 are values of the type, not fields: nothing is skipped.
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                         "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert!(decodes_without_skipping::<Job>(&job));
    }

    #[test]
    fn an_unknown_key_at_any_depth_is_noticed() {
        for path in [&["spec"][..], &["spec", "containers", "0"], &["metadata"], &["status", "conditions", "0"], &[]] {
            let with = |value: Value| {
                let mut v = pod();
                let mut at = &mut v;
                for seg in path {
                    at = match seg.parse::<usize>() {
                        Ok(i) => &mut at[i],
                        Err(_) => &mut at[*seg],
                    };
                }
                at["bogus"] = value;
                v
            };
            assert!(!decodes_without_skipping::<Pod>(&with(json!({"deep": [1, 2]}))), "{path:?}");
            assert!(!decodes_without_skipping::<Pod>(&with(json!(5))), "{path:?}");
            // An unknown key whose value is null is not reported by the round trip either.
            assert!(decodes_without_skipping::<Pod>(&with(Value::Null)), "{path:?}");
        }
    }

    #[test]
    fn a_wrong_type_is_left_to_the_slow_way() {
        let mut v = pod();
        v["spec"]["containers"] = json!("nope");
        assert!(!decodes_without_skipping::<Pod>(&v));
        let mut v = pod();
        v["kind"] = json!("Job");
        assert!(!decodes_without_skipping::<Pod>(&v));
    }
}
