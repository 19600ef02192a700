//! Discovery documents (legacy and aggregated), `/version`, and OpenAPI documents.
//!
//! STUB: owned by the kubectl-facing work item.

use serde_json::{Value, json};

use super::registry::Registry;

/// `GET /version`.
pub fn version() -> Value {
    json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-jobwright", "platform": "linux/amd64"})
}

/// `GET /api` (legacy).
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

/// `GET /apis` (legacy).
pub fn api_group_list(_reg: &Registry) -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
}

/// `GET /api/v1` or `/apis/G/V` (legacy): `None` when the group version is not served.
pub fn api_resource_list(_reg: &Registry, _group: &str, _version: &str) -> Option<Value> {
    None
}
