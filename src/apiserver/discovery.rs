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

/// `GET /apis/{group}` (legacy): the `APIGroup` document, `None` when the group is not served.
pub fn api_group(_reg: &Registry, _group: &str) -> Option<Value> {
    None
}

/// Aggregated discovery (`Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`)
/// for `/api` (`core = true`) or `/apis`: an `APIGroupDiscoveryList`. `None` makes the server answer
/// with the legacy document instead (clients then fall back to legacy discovery).
pub fn aggregated_discovery(_reg: &Registry, _core: bool) -> Option<Value> {
    None
}

/// `GET /openapi/v2`, `None` → 404.
pub fn openapi_v2(_reg: &Registry) -> Option<Value> {
    None
}

/// `GET /openapi/v3`: the index `{"paths": {"api/v1": {"serverRelativeURL": ...}, ...}}`.
pub fn openapi_v3_index(_reg: &Registry) -> Value {
    json!({"paths": {}})
}

/// `GET /openapi/v3/{path}` (e.g. `api/v1`, `apis/batch/v1`), `None` → 404.
pub fn openapi_v3_gv(_reg: &Registry, _path: &str) -> Option<Value> {
    None
}
