//! The merge schema of the built-in kinds we serve: which lists are merged by key, which are sets
//! of primitives, which structs and maps are atomic.
//!
//! Upstream derives this from Go struct tags. Strategic merge patch reads `patchStrategy` and
//! `patchMergeKey`; server-side apply reads `+listType`, `+listMapKey`, `+mapType` and
//! `+structType` (published as `x-kubernetes-*` OpenAPI extensions). The two usually agree, but
//! not always: container `ports` merge by `containerPort` in a strategic merge patch and by
//! `containerPort`+`protocol` in server-side apply, so each list records both.
//!
//! Anything not listed is deduced from the value, as upstream does for schemaless custom
//! resources: objects are merged field by field, lists are atomic, scalars are leaves.
//!
//! A custom resource's shape is built from its CRD's `openAPIV3Schema` ([`from_openapi`]), as
//! structured-merge-diff does for custom resources: `x-kubernetes-list-type` (`atomic` by
//! default, `set`, `map` with `x-kubernetes-list-map-keys`) and `x-kubernetes-map-type`
//! (`granular` by default, `atomic`).

use super::super::registry::ResourceInfo;

/// The shape of one node of an object.
#[derive(Debug, PartialEq, Eq)]
pub enum Shape {
    /// A struct with these known fields; any other field is [`Shape::Any`].
    Struct(&'static [(&'static str, Shape)]),
    /// A map with free-form keys whose values all have the given shape (`labels`, `limits`).
    Map(&'static Shape),
    /// A struct or map that server-side apply owns as a whole (`+structType=atomic`,
    /// `+mapType=atomic`), e.g. a `LabelSelector`. Strategic merge patch still merges it.
    AtomicMap,
    /// A list.
    List(&'static ListShape),
    /// Unknown: deduced from the value.
    Any,
    /// A struct built at run time from a schema's `properties` (other fields are [`Shape::Any`]).
    Fields(std::collections::BTreeMap<String, Shape>),
    /// A map built at run time from a schema's `additionalProperties`.
    Values(Box<Shape>),
    /// A list built at run time from a schema's `items` and list type.
    Items(Box<ListShape>),
}

/// How a list merges.
#[derive(Debug, PartialEq, Eq)]
pub struct ListShape {
    /// Strategic merge patch strategy (`patchStrategy`/`patchMergeKey`).
    pub smp: Smp,
    /// Server-side apply list type (`+listType`/`+listMapKey`).
    pub ssa: Ssa,
    /// Shape of the items.
    pub item: Shape,
}

/// Strategic merge patch strategy of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Smp {
    /// No strategy: the patch replaces the list.
    Replace,
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: items are maps merged by this key.
    Merge(&'static str),
    /// `patchStrategy:"merge"` on a list of primitives: a set.
    MergeScalars,
}

/// Server-side apply list type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ssa {
    /// `+listType=atomic` (the default).
    Atomic,
    /// `+listType=set`.
    Set,
    /// `+listType=map` with these key fields and their defaults.
    Map(&'static [(&'static str, Option<&'static str>)]),
    /// `x-kubernetes-list-type: map` of a custom resource: `x-kubernetes-list-map-keys` and the
    /// keys' schema defaults.
    Keys(Vec<(String, Option<serde_json::Value>)>),
}

impl Ssa {
    /// The key fields of an associative list (with their defaults), `None` for other lists.
    pub fn map_keys(&self) -> Option<Vec<(&str, Option<serde_json::Value>)>> {
        match self {
            Ssa::Map(keys) => {
                Some(keys.iter().map(|(k, d)| (*k, d.map(|d| serde_json::Value::String(d.into())))).collect())
            }
            Ssa::Keys(keys) => Some(keys.iter().map(|(k, d)| (k.as_str(), d.clone())).collect()),
            _ => None,
        }
    }
}

/// The shape used for anything unknown.
pub static ANY: Shape = Shape::Any;

/// An atomic list, for fields that need to be named to document them.
static ATOMIC_LIST: ListShape = ListShape { smp: Smp::Replace, ssa: Ssa::Atomic, item: Shape::Any };

impl Shape {
    /// The shape of field `name` of an object of this shape.
    pub fn field(&self, name: &str) -> &Shape {
        match self {
            Shape::Struct(fields) => fields.iter().find(|(n, _)| *n == name).map(|(_, s)| s).unwrap_or(&ANY),
            Shape::Map(elem) => elem,
            Shape::Fields(fields) => fields.get(name).unwrap_or(&ANY),
            Shape::Values(elem) => elem,
            _ => &ANY,
        }
    }

    /// The list shape of this node (an atomic, replace-on-patch list when unknown).
    pub fn list(&self) -> &ListShape {
        match self {
            Shape::List(l) => l,
            Shape::Items(l) => l,
            _ => &ATOMIC_LIST,
        }
    }

    /// Whether server-side apply treats an object of this shape as one value.
    pub fn is_atomic_map(&self) -> bool {
        matches!(self, Shape::AtomicMap)
    }

    /// Whether this is a map with free-form keys (whose entries are owned one by one).
    pub fn is_map(&self) -> bool {
        matches!(self, Shape::Map(_) | Shape::Values(_))
    }
}

/// The shape of a custom resource from its CRD version's `openAPIV3Schema`; `metadata` is
/// always `ObjectMeta`'s.
pub fn from_openapi(schema: &serde_json::Value) -> Shape {
    let mut fields = std::collections::BTreeMap::new();
    if let Some(props) = schema.get("properties").and_then(serde_json::Value::as_object) {
        fields.extend(props.iter().map(|(k, v)| (k.clone(), node(v, 0))));
    }
    fields.insert("metadata".to_string(), OBJECT_META);
    Shape::Fields(fields)
}

/// Schemas nest at most this deep here (deeper nodes are deduced from the value); the CRD's
/// own depth limit is far below it.
const MAX_SCHEMA_DEPTH: usize = 64;

fn node(schema: &serde_json::Value, depth: usize) -> Shape {
    use serde_json::Value;
    if depth > MAX_SCHEMA_DEPTH || !schema.is_object() {
        return Shape::Any;
    }
    let ext = |k: &str| schema.get(k).and_then(Value::as_str);
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            if ext("x-kubernetes-map-type") == Some("atomic") {
                return Shape::AtomicMap;
            }
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                return Shape::Fields(props.iter().map(|(k, v)| (k.clone(), node(v, depth + 1))).collect());
            }
            match schema.get("additionalProperties") {
                Some(ap) if ap.is_object() => Shape::Values(Box::new(node(ap, depth + 1))),
                _ => Shape::Any,
            }
        }
        Some("array") => {
            let item = schema.get("items").map(|i| node(i, depth + 1)).unwrap_or(Shape::Any);
            let ssa = match ext("x-kubernetes-list-type") {
                Some("set") => Ssa::Set,
                Some("map") => {
                    let props = schema.pointer("/items/properties");
                    let keys = schema.get("x-kubernetes-list-map-keys").and_then(Value::as_array);
                    let keys: Vec<(String, Option<Value>)> = keys
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(|k| (k.to_string(), props.and_then(|p| p.get(k)).and_then(|p| p.get("default")).cloned()))
                        .collect();
                    if keys.is_empty() { Ssa::Atomic } else { Ssa::Keys(keys) }
                }
                _ => Ssa::Atomic,
            };
            Shape::Items(Box::new(ListShape { smp: Smp::Replace, ssa, item }))
        }
        _ => Shape::Any,
    }
}

macro_rules! keyed {
    ($key:literal, $item:expr) => {
        Shape::List(&ListShape { smp: Smp::Merge($key), ssa: Ssa::Map(&[($key, None)]), item: $item })
    };
}

const LABELS: Shape = Shape::Map(&Shape::Any);

const OWNER_REFERENCES: Shape = keyed!("uid", Shape::Any);

const OBJECT_META: Shape = Shape::Struct(&[
    ("labels", LABELS),
    ("annotations", LABELS),
    ("finalizers", Shape::List(&ListShape { smp: Smp::MergeScalars, ssa: Ssa::Set, item: Shape::Any })),
    ("ownerReferences", OWNER_REFERENCES),
    ("managedFields", Shape::List(&ATOMIC_LIST)),
]);

const CONDITIONS: Shape = keyed!("type", Shape::Any);

const ENV_VAR: Shape = Shape::Struct(&[(
    "valueFrom",
    Shape::Struct(&[
        ("configMapKeyRef", Shape::AtomicMap),
        ("secretKeyRef", Shape::AtomicMap),
        ("fieldRef", Shape::AtomicMap),
        ("resourceFieldRef", Shape::AtomicMap),
    ]),
)]);

const RESOURCES: Shape = Shape::Struct(&[
    ("limits", LABELS),
    ("requests", LABELS),
    ("claims", Shape::List(&ListShape { smp: Smp::Replace, ssa: Ssa::Map(&[("name", None)]), item: Shape::Any })),
]);

const CONTAINER: Shape = Shape::Struct(&[
    (
        "ports",
        Shape::List(&ListShape {
            smp: Smp::Merge("containerPort"),
            ssa: Ssa::Map(&[("containerPort", None), ("protocol", Some("TCP"))]),
            item: Shape::Any,
        }),
    ),
    ("env", keyed!("name", ENV_VAR)),
    ("volumeMounts", keyed!("mountPath", Shape::Any)),
    ("volumeDevices", keyed!("devicePath", Shape::Any)),
    ("resources", RESOURCES),
]);

const POD_SPEC: Shape = Shape::Struct(&[
    ("containers", keyed!("name", CONTAINER)),
    ("initContainers", keyed!("name", CONTAINER)),
    ("ephemeralContainers", keyed!("name", CONTAINER)),
    ("volumes", keyed!("name", Shape::Any)),
    ("imagePullSecrets", keyed!("name", Shape::Any)),
    ("hostAliases", keyed!("ip", Shape::Any)),
    (
        "topologySpreadConstraints",
        Shape::List(&ListShape {
            smp: Smp::Merge("topologyKey"),
            ssa: Ssa::Map(&[("topologyKey", None), ("whenUnsatisfiable", None)]),
            item: Shape::Struct(&[("labelSelector", Shape::AtomicMap)]),
        }),
    ),
    ("resourceClaims", keyed!("name", Shape::Any)),
    ("schedulingGates", keyed!("name", Shape::Any)),
    ("nodeSelector", Shape::AtomicMap),
    ("overhead", LABELS),
    (
        "affinity",
        Shape::Struct(&[(
            "nodeAffinity",
            Shape::Struct(&[("requiredDuringSchedulingIgnoredDuringExecution", Shape::AtomicMap)]),
        )]),
    ),
]);

const POD_STATUS: Shape = Shape::Struct(&[
    ("conditions", CONDITIONS),
    ("podIPs", keyed!("ip", Shape::Any)),
    ("hostIPs", keyed!("ip", Shape::Any)),
    ("resourceClaimStatuses", keyed!("name", Shape::Any)),
]);

const POD_TEMPLATE_SPEC: Shape = Shape::Struct(&[("metadata", OBJECT_META), ("spec", POD_SPEC)]);

const JOB_SPEC: Shape = Shape::Struct(&[("selector", Shape::AtomicMap), ("template", POD_TEMPLATE_SPEC)]);

const STATUS_WITH_CONDITIONS: Shape = Shape::Struct(&[("conditions", CONDITIONS)]);

static POD: Shape = Shape::Struct(&[("metadata", OBJECT_META), ("spec", POD_SPEC), ("status", POD_STATUS)]);

static JOB: Shape = Shape::Struct(&[("metadata", OBJECT_META), ("spec", JOB_SPEC), ("status", STATUS_WITH_CONDITIONS)]);

static CRONJOB: Shape = Shape::Struct(&[
    ("metadata", OBJECT_META),
    ("spec", Shape::Struct(&[("jobTemplate", Shape::Struct(&[("metadata", OBJECT_META), ("spec", JOB_SPEC)]))])),
]);

static DEPLOYMENT: Shape = Shape::Struct(&[
    ("metadata", OBJECT_META),
    ("spec", Shape::Struct(&[("selector", Shape::AtomicMap), ("template", POD_TEMPLATE_SPEC)])),
    ("status", STATUS_WITH_CONDITIONS),
]);

static NODE: Shape = Shape::Struct(&[
    ("metadata", OBJECT_META),
    (
        "spec",
        Shape::Struct(&[(
            "podCIDRs",
            Shape::List(&ListShape { smp: Smp::MergeScalars, ssa: Ssa::Set, item: Shape::Any }),
        )]),
    ),
    (
        "status",
        Shape::Struct(&[
            ("conditions", CONDITIONS),
            ("addresses", keyed!("type", Shape::Any)),
            ("capacity", LABELS),
            ("allocatable", LABELS),
        ]),
    ),
]);

static NAMESPACE: Shape = Shape::Struct(&[("metadata", OBJECT_META), ("status", STATUS_WITH_CONDITIONS)]);

static SERVICE: Shape = Shape::Struct(&[
    ("metadata", OBJECT_META),
    (
        "spec",
        Shape::Struct(&[
            (
                "ports",
                Shape::List(&ListShape {
                    smp: Smp::Merge("port"),
                    ssa: Ssa::Map(&[("port", None), ("protocol", Some("TCP"))]),
                    item: Shape::Any,
                }),
            ),
            ("selector", Shape::AtomicMap),
        ]),
    ),
    ("status", STATUS_WITH_CONDITIONS),
]);

static PDB: Shape = Shape::Struct(&[
    ("metadata", OBJECT_META),
    ("spec", Shape::Struct(&[("selector", Shape::AtomicMap)])),
    ("status", STATUS_WITH_CONDITIONS),
]);

static OBJECT: Shape = Shape::Struct(&[("metadata", OBJECT_META)]);

/// API groups whose kinds are compiled into kube-apiserver (so they take strategic merge patches).
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "policy",
    "coordination.k8s.io",
    "events.k8s.io",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "autoscaling",
    "networking.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "discovery.k8s.io",
    "node.k8s.io",
    "certificates.k8s.io",
    "admissionregistration.k8s.io",
    "apiregistration.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "resource.k8s.io",
];

/// Whether the resource is a built-in kind (custom resources do not accept strategic merge patches).
pub fn is_builtin(info: &ResourceInfo) -> bool {
    BUILTIN_GROUPS.contains(&info.group.as_str())
}

/// The schema server-side apply merges a served kind by: a custom resource's from its CRD's
/// schema, else [`root_for`].
pub fn shape_for(info: &ResourceInfo) -> &Shape {
    match info.crd.as_ref().and_then(|c| c.merge_shape.as_deref()) {
        Some(shape) => shape,
        None => root_for(info),
    }
}

/// The schema of a built-in kind we know, or plain object metadata plus deduction.
pub fn root_for(info: &ResourceInfo) -> &'static Shape {
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => &POD,
        ("", "Node") => &NODE,
        ("", "Namespace") => &NAMESPACE,
        ("", "Service") => &SERVICE,
        ("batch", "Job") => &JOB,
        ("batch", "CronJob") => &CRONJOB,
        ("apps", "Deployment") => &DEPLOYMENT,
        ("policy", "PodDisruptionBudget") => &PDB,
        _ => &OBJECT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn keys_of(shape: &Shape, path: &[&str]) -> (Smp, Ssa) {
        let s = path.iter().fold(shape, |s, p| s.field(p));
        (s.list().smp, s.list().ssa.clone())
    }

    #[test]
    fn merge_keys_match_upstream_tags() {
        let reg = Registry::builtin();
        let pod = root_for(&reg.get("", "v1", "pods").unwrap());
        let job = root_for(&reg.get("batch", "v1", "jobs").unwrap());
        let node = root_for(&reg.get("", "v1", "nodes").unwrap());
        let svc = root_for(&reg.get("", "v1", "services").unwrap());
        let cases: &[(&Shape, &[&str], Smp)] = &[
            (pod, &["spec", "containers"], Smp::Merge("name")),
            (pod, &["spec", "initContainers"], Smp::Merge("name")),
            (pod, &["spec", "ephemeralContainers"], Smp::Merge("name")),
            (pod, &["spec", "volumes"], Smp::Merge("name")),
            (pod, &["spec", "imagePullSecrets"], Smp::Merge("name")),
            (pod, &["spec", "hostAliases"], Smp::Merge("ip")),
            (pod, &["spec", "topologySpreadConstraints"], Smp::Merge("topologyKey")),
            (pod, &["spec", "resourceClaims"], Smp::Merge("name")),
            (pod, &["spec", "schedulingGates"], Smp::Merge("name")),
            (pod, &["spec", "tolerations"], Smp::Replace),
            (pod, &["status", "conditions"], Smp::Merge("type")),
            (pod, &["status", "containerStatuses"], Smp::Replace),
            (pod, &["metadata", "finalizers"], Smp::MergeScalars),
            (pod, &["metadata", "ownerReferences"], Smp::Merge("uid")),
            (job, &["status", "conditions"], Smp::Merge("type")),
            (node, &["status", "addresses"], Smp::Merge("type")),
            (node, &["status", "conditions"], Smp::Merge("type")),
            (svc, &["spec", "ports"], Smp::Merge("port")),
        ];
        for (root, path, want) in cases {
            assert_eq!(keys_of(root, path).0, *want, "{path:?}");
        }
        let job_containers = job.field("spec").field("template").field("spec").field("containers").list();
        assert_eq!(job_containers.smp, Smp::Merge("name"));
        let c = &job_containers.item;
        assert_eq!(c.field("env").list().smp, Smp::Merge("name"));
        assert_eq!(c.field("ports").list().smp, Smp::Merge("containerPort"));
        assert_eq!(c.field("ports").list().ssa, Ssa::Map(&[("containerPort", None), ("protocol", Some("TCP"))]));
        assert_eq!(c.field("volumeMounts").list().smp, Smp::Merge("mountPath"));
        assert_eq!(c.field("volumeDevices").list().smp, Smp::Merge("devicePath"));
        assert_eq!(c.field("command").list().ssa, Ssa::Atomic);
        assert!(job.field("spec").field("selector").is_atomic_map());
    }

    #[test]
    fn custom_resource_shapes_follow_the_schema_extensions() {
        let schema = serde_json::json!({"type": "object", "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "integer"}},
                "plain": {"type": "array", "items": {"type": "string"}},
                "map": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "port"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer", "default": 80}}}},
                "atomic": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {"a": {"type": "string"}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}});
        let root = from_openapi(&schema);
        let spec = root.field("spec");
        assert_eq!(spec.field("set").list().ssa, Ssa::Set);
        assert_eq!(spec.field("plain").list().ssa, Ssa::Atomic);
        assert_eq!(
            spec.field("map").list().ssa,
            Ssa::Keys(vec![("name".into(), None), ("port".into(), Some(serde_json::json!(80)))])
        );
        assert!(spec.field("atomic").is_atomic_map());
        assert!(spec.field("labels").is_map() && !spec.field("free").is_map());
        assert_eq!(root.field("metadata").field("finalizers").list().ssa, Ssa::Set, "metadata is ObjectMeta's");
    }

    #[test]
    fn custom_resources_are_not_builtin() {
        let reg = Registry::builtin();
        assert!(is_builtin(&reg.get("batch", "v1", "jobs").unwrap()));
        let cr = ResourceInfo::new("example.com", "v1", "widgets", "Widget", true, &[], &[], &[]);
        assert!(!is_builtin(&cr));
        assert!(matches!(root_for(&cr).field("spec"), Shape::Any));
    }
}
