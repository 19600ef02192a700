//! The table of resources the API server serves.
//!
//! One [`ResourceInfo`] per group/version/resource drives routing, discovery, OpenAPI, tables,
//! defaulting and validation. Built-in resources are listed in [`Registry::builtin`]; custom
//! resources are added at run time when a CustomResourceDefinition is stored.

use std::sync::{Arc, RwLock};

/// What the server knows about one served resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group, `""` for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name used in URLs, e.g. `jobs`.
    pub resource: String,
    /// Kind, e.g. `Job`.
    pub kind: String,
    /// Singular name, e.g. `job`.
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// `kubectl` short names, e.g. `po`.
    pub short_names: Vec<String>,
    /// Categories, e.g. `all`.
    pub categories: Vec<String>,
    /// Subresources served, e.g. `status`, `log`, `binding`.
    pub subresources: Vec<String>,
    /// Which store the objects live in, when two resources share one (core/v1 and
    /// events.k8s.io/v1 events). Defaults to `group/resource`.
    pub storage_key: String,
    /// A custom resource's `additionalPrinterColumns` (empty for built-ins), for tables.
    pub printer_columns: Vec<serde_json::Value>,
    /// A custom resource's `openAPIV3Schema`, used for unknown-field checks (`None` for built-ins);
    /// shared, since a `ResourceInfo` is cloned per request and a schema can be hundreds of KiB.
    pub schema: Option<std::sync::Arc<serde_json::Value>>,
    /// What a custom resource's CRD says beyond the above (storage version, scale paths...),
    /// `None` for built-ins.
    pub crd: Option<std::sync::Arc<crate::crd::CrdVersion>>,
}

/// The verbs every served resource supports.
pub const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// The verbs of `metrics.k8s.io` (metrics-server's).
pub const METRICS_VERBS: &[&str] = &["get", "list"];

impl ResourceInfo {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        group: &str,
        version: &str,
        resource: &str,
        kind: &str,
        namespaced: bool,
        short_names: &[&str],
        categories: &[&str],
        subresources: &[&str],
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            kind: kind.into(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: short_names.iter().map(|s| s.to_string()).collect(),
            categories: categories.iter().map(|s| s.to_string()).collect(),
            subresources: subresources.iter().map(|s| s.to_string()).collect(),
            storage_key: format!("{group}/{resource}"),
            printer_columns: Vec::new(),
            schema: None,
            crd: None,
        }
    }

    /// `apiVersion` as written in objects: `v1` or `batch/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// Whether `s` is [`Self::api_version`], without building it.
    pub fn api_version_is(&self, s: &str) -> bool {
        if self.group.is_empty() {
            s == self.version
        } else {
            s.strip_prefix(self.group.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|v| v == self.version)
        }
    }

    /// `jobs.batch` or `pods`, as upstream prints a GroupResource.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() { self.resource.clone() } else { format!("{}.{}", self.resource, self.group) }
    }

    /// `Job.batch` or `Pod`, as upstream prints a GroupKind.
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() { self.kind.clone() } else { format!("{}.{}", self.kind, self.group) }
    }

    /// The verbs discovery lists for this resource.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.group == "metrics.k8s.io" {
            return METRICS_VERBS;
        }
        super::kinds::verbs(&self.group, &self.resource).unwrap_or(VERBS)
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.iter().any(|s| s == sub)
    }

    /// URL prefix of the group version: `/api/v1` or `/apis/batch/v1`.
    pub fn gv_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

/// All served resources. Cheap to clone; shared between the HTTP layer and the controllers that
/// add custom resources.
#[derive(Debug, Clone)]
pub struct Registry {
    /// Each entry shared, so a request's lookup ([`Registry::get_shared`]) copies a pointer, not
    /// the entry's dozen strings.
    inner: Arc<RwLock<Vec<Arc<ResourceInfo>>>>,
}

impl Registry {
    /// The built-in resources of jobwright's API server.
    pub fn builtin() -> Self {
        let r = ResourceInfo::new;
        let mut events_new = r("events.k8s.io", "v1", "events", "Event", true, &["ev"], &[], &[]);
        events_new.storage_key = "/events".into();
        let list = vec![
            r("", "v1", "namespaces", "Namespace", false, &["ns"], &[], &["status", "finalize"]),
            r("", "v1", "nodes", "Node", false, &["no"], &[], &["status"]),
            r(
                "",
                "v1",
                "pods",
                "Pod",
                true,
                &["po"],
                &["all"],
                &["status", "log", "binding", "eviction", "exec", "attach", "portforward"],
            ),
            r("", "v1", "events", "Event", true, &["ev"], &[], &[]),
            r("", "v1", "services", "Service", true, &["svc"], &["all"], &["status"]),
            r("", "v1", "configmaps", "ConfigMap", true, &["cm"], &[], &[]),
            r("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"], &[], &[]),
            r("", "v1", "secrets", "Secret", true, &[], &[], &[]),
            r("batch", "v1", "jobs", "Job", true, &[], &["all"], &["status"]),
            r("batch", "v1", "cronjobs", "CronJob", true, &["cj"], &["all"], &["status"]),
            r("coordination.k8s.io", "v1", "leases", "Lease", true, &[], &[], &[]),
            events_new,
            r("apps", "v1", "deployments", "Deployment", true, &["deploy"], &["all"], &["status", "scale"]),
            r("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"], &[], &["status"]),
            r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[], &[], &[]),
            r("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[], &[], &[]),
            r("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[], &[], &[]),
            r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[], &[], &[]),
            r(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
                &["crd", "crds"],
                &[],
                &["status"],
            ),
            // Served from the node simulators' figures, as metrics-server serves them (read-only).
            r("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", true, &[], &[], &[]),
            r("metrics.k8s.io", "v1beta1", "nodes", "NodeMetrics", false, &[], &[], &[]),
        ];
        let list = list.into_iter().chain(super::kinds::resources()).map(Arc::new).collect();
        Self { inner: Arc::new(RwLock::new(list)) }
    }

    /// Look up a resource by group, version and plural name.
    pub fn get(&self, group: &str, version: &str, resource: &str) -> Option<ResourceInfo> {
        self.get_shared(group, version, resource).map(|r| (*r).clone())
    }

    /// [`Registry::get`] without copying the entry (what a request's routing uses).
    pub fn get_shared(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceInfo>> {
        self.read().iter().find(|r| r.group == group && r.version == version && r.resource == resource).cloned()
    }

    /// [`Registry::find`] without copying the entry.
    pub fn find_shared(&self, pred: impl Fn(&ResourceInfo) -> bool) -> Option<Arc<ResourceInfo>> {
        self.read().iter().find(|r| pred(r)).cloned()
    }

    /// Whether the resource is served with that subresource (without copying its entry).
    pub fn has_subresource(&self, group: &str, version: &str, resource: &str, sub: &str) -> bool {
        self.get_shared(group, version, resource).is_some_and(|r| r.has_subresource(sub))
    }

    /// Look up a resource by `apiVersion` and kind, as written in an object.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<ResourceInfo> {
        self.read().iter().find(|r| r.kind == kind && r.api_version_is(api_version)).map(|r| (**r).clone())
    }

    /// Every served resource, in registration order.
    pub fn all(&self) -> Vec<ResourceInfo> {
        self.read().iter().map(|r| (**r).clone()).collect()
    }

    /// The first served resource (in registration order) that `pred` accepts, without copying
    /// the others.
    pub fn find(&self, pred: impl Fn(&ResourceInfo) -> bool) -> Option<ResourceInfo> {
        self.find_shared(pred).map(|r| (*r).clone())
    }

    /// Every served group version, as `(group, version)`, core first, in registration order.
    pub fn group_versions(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for r in self.read().iter() {
            let gv = (r.group.clone(), r.version.clone());
            if !out.contains(&gv) {
                out.push(gv);
            }
        }
        out
    }

    /// Serve a new resource (a custom resource); replaces one with the same group/version/resource.
    pub fn add(&self, info: ResourceInfo) {
        let mut list = self.inner.write().unwrap_or_else(|e| e.into_inner());
        list.retain(|r| !(r.group == info.group && r.version == info.version && r.resource == info.resource));
        list.push(Arc::new(info));
    }

    /// Stop serving a resource.
    pub fn remove(&self, group: &str, version: &str, resource: &str) {
        let mut list = self.inner.write().unwrap_or_else(|e| e.into_inner());
        list.retain(|r| !(r.group == group && r.version == version && r.resource == resource));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<ResourceInfo>>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_share_one_store_across_groups() {
        let reg = Registry::builtin();
        let core = reg.get("", "v1", "events").unwrap();
        let new = reg.get("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(core.storage_key, new.storage_key);
        assert_eq!(reg.get("batch", "v1", "jobs").unwrap().group_resource(), "jobs.batch");
        assert_eq!(reg.by_kind("batch/v1", "Job").unwrap().resource, "jobs");
        assert!(reg.get("batch", "v1", "nope").is_none());
    }

    proptest::proptest! {
        /// `api_version_is` says what comparing with the built `api_version` says, for any
        /// group, version and candidate (slashes, prefixes and empty strings included).
        #[test]
        fn api_version_is_the_built_api_version(
            group in "(|batch|apps|a/b|x\\.io|/)",
            version in "(|v1|v1beta1|/|v1/x)",
            candidate in "(|v1|batch|batch/|batch/v1|/v1|a/b/v1|x\\.io/v1beta1|apps/v1/|//|/)",
        ) {
            let mut info = Registry::builtin().get("batch", "v1", "jobs").unwrap();
            info.group = group;
            info.version = version;
            proptest::prop_assert_eq!(info.api_version_is(&candidate), candidate == info.api_version());
            proptest::prop_assert!(info.api_version_is(&info.api_version()));
        }
    }
}
