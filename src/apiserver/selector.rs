//! Label and field selectors, parsed and matched as kube-apiserver does.
//!
//! STUB: owned by the kubectl-facing work item.

use std::collections::BTreeMap;

use serde_json::Value;

use super::errors::StatusError;
use super::registry::ResourceInfo;

/// A parsed `labelSelector`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    raw: String,
}

impl LabelSelector {
    /// Parse `a=b,c!=d,e in (f,g),!h`; a syntax error is a 400 with upstream's message.
    pub fn parse(s: &str) -> Result<Self, StatusError> {
        Ok(Self { raw: s.to_string() })
    }
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
    pub fn matches(&self, _labels: &BTreeMap<String, String>) -> bool {
        true
    }
}

/// A parsed `fieldSelector`, checked against the fields `info`'s kind supports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    raw: String,
}

impl FieldSelector {
    /// Parse and check support; an unsupported field is a 400 as upstream:
    /// `field label not supported: spec.foo`.
    pub fn parse(_info: &ResourceInfo, s: &str) -> Result<Self, StatusError> {
        Ok(Self { raw: s.to_string() })
    }
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
    /// `fields` holds the selectable field values of one object (see [`selectable_fields`]).
    pub fn matches(&self, _fields: &BTreeMap<String, String>) -> bool {
        true
    }
}

/// The selectable fields of `obj` with their values, as upstream's `GetAttrs`/`ToSelectableFields`.
pub fn selectable_fields(_info: &ResourceInfo, obj: &Value) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(n) = obj["metadata"]["name"].as_str() {
        m.insert("metadata.name".to_string(), n.to_string());
    }
    m
}
