//! `meta.k8s.io/v1` Table responses, with the columns `kubectl get` shows against a real cluster.
//!
//! STUB: owned by the kubectl-facing work item.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::registry::ResourceInfo;

/// `?includeObject=` of a Table request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

/// Render `objects` (full objects of `info`'s kind) as a Table. The caller fills
/// `metadata.resourceVersion`/`continue`.
pub fn to_table(_info: &ResourceInfo, objects: &[Value], _include: IncludeObject, _now: DateTime<Utc>) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| json!({"cells": [o["metadata"]["name"].clone()], "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone()}}))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [{"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}],
        "rows": rows,
    })
}
