//! `meta.k8s.io/v1` Table responses, with the columns `kubectl get` shows against a real cluster.
//!
//! kube-apiserver renders Tables with the printers of `pkg/printers/internalversion/printers.go`;
//! this module reproduces them for the kinds we serve: the same column definitions (name, type,
//! format, priority — priority 1 columns only appear with `-o wide` — and description, taken from
//! the same API documentation strings upstream's `SwaggerDoc()` returns, here read from
//! k8s-openapi's schemas), and the same cells, including the full `printPod` status logic
//! (`Init:0/1`, `CrashLoopBackOff`, `Completed`, `Terminating`, `Unknown` for lost nodes...),
//! `printJob`'s Status/Completions/Duration, and `duration.HumanDuration` ages.
//!
//! Kinds without a printer get the default convertor's `Name`/`Created At` columns
//! (`k8s.io/apiserver/pkg/registry/rest/table.go`); custom resources get `Name` plus the CRD's
//! `additionalPrinterColumns` (or `Age` when it has none), evaluated with simple JSONPath as
//! `apiextensions-apiserver/pkg/registry/customresource/tableconvertor` does.
//!
//! Everything here is pure: objects and `now` in, a Table `Value` out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Value, json};

use super::registry::ResourceInfo;
use super::selector::LabelSelector;

mod kinds;
/// `?includeObject=` of a Table request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// `None`: rows carry `"object": null`.
    None,
    /// `Metadata` (the default): rows carry a `meta.k8s.io/v1` `PartialObjectMetadata`.
    #[default]
    Metadata,
    /// `Object`: rows carry the full object.
    Object,
}

impl IncludeObject {
    /// Parse the query parameter (`""` is the default, `Metadata`); anything else is `None`
    /// (the caller answers 400 as upstream: `includeObject` only accepts these values).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "Metadata" => Some(Self::Metadata),
            "None" => Some(Self::None),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// What a client asked to receive instead of the objects themselves, from `Accept`
/// (`application/json;as=Table;v=v1;g=meta.k8s.io`, kube-rs' metadata API's
/// `application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsTransform {
    /// `as=Table`: answer [`to_table`] (with `apiVersion` `meta.k8s.io/{version}`).
    Table {
        /// `v1` or `v1beta1`.
        version: String,
    },
    /// `as=PartialObjectMetadata`: a single object's metadata ([`partial_object_metadata`]).
    PartialObjectMetadata {
        /// `v1` or `v1beta1`.
        version: String,
    },
    /// `as=PartialObjectMetadataList`: a list of metadata ([`partial_object_metadata_list`]).
    PartialObjectMetadataList {
        /// `v1` or `v1beta1`.
        version: String,
    },
}

impl AsTransform {
    /// The `Content-Type` of the transformed response, e.g.
    /// `application/json;as=Table;v=v1;g=meta.k8s.io`.
    pub fn content_type(&self) -> String {
        let (kind, v) = match self {
            Self::Table { version } => ("Table", version),
            Self::PartialObjectMetadata { version } => ("PartialObjectMetadata", version),
            Self::PartialObjectMetadataList { version } => ("PartialObjectMetadataList", version),
        };
        format!("application/json;as={kind};v={v};g=meta.k8s.io")
    }
}

/// Negotiate `Accept` as kube-apiserver does: the first clause it can serve wins. A plain
/// `application/json` (or `*/*`) clause before any `as=` clause means "the objects themselves"
/// (`None`); clauses it cannot serve (protobuf, unknown `as`/`g`/`v`) are skipped.
pub fn negotiate_as(accept: &str) -> Option<AsTransform> {
    for clause in accept.split(',') {
        let mut parts = clause.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if !matches!(media, "application/json" | "*/*" | "application/*" | "application/yaml") {
            continue;
        }
        let (mut as_, mut g, mut v) = (None, None, None);
        for p in parts {
            match p.split_once('=') {
                Some(("as", x)) => as_ = Some(x),
                Some(("g", x)) => g = Some(x),
                Some(("v", x)) => v = Some(x),
                _ => {}
            }
        }
        // A plain clause first: the objects themselves.
        let as_ = as_?;
        if g != Some("meta.k8s.io") || !matches!(v, Some("v1" | "v1beta1")) {
            continue;
        }
        let version = v.unwrap_or("v1").to_string();
        match as_ {
            "Table" => return Some(AsTransform::Table { version }),
            "PartialObjectMetadata" => return Some(AsTransform::PartialObjectMetadata { version }),
            "PartialObjectMetadataList" => return Some(AsTransform::PartialObjectMetadataList { version }),
            _ => continue,
        }
    }
    None
}

/// `meta.k8s.io/v1` `PartialObjectMetadata` of an object.
pub fn partial_object_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// `meta.k8s.io/v1` `PartialObjectMetadataList` of objects; the caller fills
/// `metadata.resourceVersion`/`continue`.
pub fn partial_object_metadata_list(objects: &[Value]) -> Value {
    let items: Vec<Value> = objects.iter().map(partial_object_metadata).collect();
    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "items": items})
}

/// Render `objects` (full objects of `info`'s kind) as a Table. The caller fills
/// `metadata.resourceVersion`/`continue`.
pub fn to_table(info: &ResourceInfo, objects: &[Value], include: IncludeObject, now: DateTime<Utc>) -> Value {
    to_table_with_columns(info, objects, include, now, Some(&info.printer_columns))
}

/// [`to_table`] for a custom resource: `printer_columns` are the CRD version's
/// `additionalPrinterColumns` (`name`, `type`, `format`, `description`, `priority`, `jsonPath`).
/// `None` or an empty list gives the CRD default `Age` column. For built-in kinds the argument is
/// ignored.
pub fn to_table_with_columns(
    info: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    now: DateTime<Utc>,
    printer_columns: Option<&[Value]>,
) -> Value {
    if let Some(p) = kinds::printer(&info.group, &info.kind) {
        let rows: Vec<Value> = objects
            .iter()
            .map(|o| json!({"cells": kinds::row(&p, o, now), "object": row_object(o, include)}))
            .collect();
        return json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
            "columnDefinitions": kinds::columns(&p), "rows": rows});
    }
    let printer = Printer::for_info(info);
    let columns = match &printer {
        Printer::Custom => custom_columns(printer_columns),
        p => column_definitions(*p).to_vec(),
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let (cells, conditions) = match printer {
                Printer::Custom => (custom_cells(o, printer_columns, now), None),
                p => row_cells(p, o, now),
            };
            let mut row = json!({"cells": cells, "object": row_object(o, include)});
            if let Some(c) = conditions {
                row["conditions"] = c;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The `additionalPrinterColumns` of version `version` of a CRD object, for
/// [`to_table_with_columns`] (empty when it has none, which gives the default `Age` column).
pub fn crd_printer_columns(crd: &Value, version: &str) -> Vec<Value> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v.get("name").and_then(Value::as_str) == Some(version)))
        .and_then(|v| v.get("additionalPrinterColumns"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The column definitions a Table of `info`'s kind carries (the CRD default for custom resources).
pub fn columns_for(info: &ResourceInfo) -> Vec<Value> {
    if let Some(p) = kinds::printer(&info.group, &info.kind) {
        return kinds::columns(&p);
    }
    match Printer::for_info(info) {
        Printer::Custom => custom_columns(None),
        p => column_definitions(p).to_vec(),
    }
}

fn row_object(o: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => o.clone(),
        IncludeObject::Metadata => partial_object_metadata(o),
    }
}

// ---------------------------------------------------------------------------------------------
// Column definitions
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Printer {
    Pod,
    Job,
    CronJob,
    Event,
    Node,
    Namespace,
    Lease,
    Service,
    Endpoints,
    EndpointSlice,
    ConfigMap,
    Secret,
    ServiceAccount,
    Deployment,
    PodDisruptionBudget,
    RoleBinding,
    ClusterRoleBinding,
    /// Built-in kind without a printer: `Name`, `Created At`.
    Default,
    /// A custom resource.
    Custom,
}

/// Groups whose kinds are built in; anything else is a custom resource.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "policy",
    "events.k8s.io",
    "coordination.k8s.io",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "networking.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "discovery.k8s.io",
    "autoscaling",
    "certificates.k8s.io",
    "admissionregistration.k8s.io",
    "node.k8s.io",
    "flowcontrol.apiserver.k8s.io",
];

impl Printer {
    fn for_info(info: &ResourceInfo) -> Self {
        match (info.group.as_str(), info.kind.as_str()) {
            ("", "Pod") => Self::Pod,
            ("batch", "Job") => Self::Job,
            ("batch", "CronJob") => Self::CronJob,
            ("" | "events.k8s.io", "Event") => Self::Event,
            ("", "Node") => Self::Node,
            ("", "Namespace") => Self::Namespace,
            ("coordination.k8s.io", "Lease") => Self::Lease,
            ("", "Service") => Self::Service,
            ("", "Endpoints") => Self::Endpoints,
            ("discovery.k8s.io", "EndpointSlice") => Self::EndpointSlice,
            ("", "ConfigMap") => Self::ConfigMap,
            ("", "Secret") => Self::Secret,
            ("", "ServiceAccount") => Self::ServiceAccount,
            ("apps", "Deployment") => Self::Deployment,
            ("policy", "PodDisruptionBudget") => Self::PodDisruptionBudget,
            ("rbac.authorization.k8s.io", "RoleBinding") => Self::RoleBinding,
            ("rbac.authorization.k8s.io", "ClusterRoleBinding") => Self::ClusterRoleBinding,
            (g, _) if BUILTIN_GROUPS.contains(&g) => Self::Default,
            _ => Self::Custom,
        }
    }
}

/// The description of property `prop` of `T`'s schema: upstream's `T{}.SwaggerDoc()[prop]`.
fn doc<T: JsonSchema>(prop: &str) -> String {
    let schema = SchemaGenerator::default().into_root_schema_for::<T>();
    schema
        .as_value()
        .pointer(&format!("/properties/{prop}/description"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn col(name: &str, ty: &str, format: &str, priority: i64, description: String) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn name_col() -> Value {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    col("Name", "string", "name", 0, doc::<ObjectMeta>("name"))
}

fn age_col() -> Value {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    col("Age", "string", "", 0, doc::<ObjectMeta>("creationTimestamp"))
}

fn container_cols(selector_doc: String) -> Vec<Value> {
    vec![
        col("Containers", "string", "", 1, "Names of each container in the template.".into()),
        col("Images", "string", "", 1, "Images referenced by each container in the template.".into()),
        col("Selector", "string", "", 1, selector_doc),
    ]
}

fn build_columns(p: Printer) -> Vec<Value> {
    use k8s_openapi::api::apps::v1 as apps;
    use k8s_openapi::api::batch::v1 as batch;
    use k8s_openapi::api::coordination::v1 as coordination;
    use k8s_openapi::api::core::v1 as core;
    use k8s_openapi::api::rbac::v1 as rbac;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let s = |name: &str, d: &str| col(name, "string", "", 0, d.to_string());
    let mut cols = vec![name_col()];
    match p {
        Printer::Pod => cols.extend([
            s("Ready", "The aggregate readiness state of this pod for accepting traffic."),
            s("Status", "The aggregate status of the containers in this pod."),
            s(
                "Restarts",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age_col(),
            col("IP", "string", "", 1, doc::<core::PodStatus>("podIP")),
            col("Node", "string", "", 1, doc::<core::PodSpec>("nodeName")),
            col("Nominated Node", "string", "", 1, doc::<core::PodStatus>("nominatedNodeName")),
            col("Readiness Gates", "string", "", 1, doc::<core::PodSpec>("readinessGates")),
        ]),
        Printer::Job => {
            cols.extend([
                s("Status", "Status of the job."),
                col("Completions", "string", "", 0, doc::<batch::JobStatus>("succeeded")),
                s("Duration", "Time required to complete the job."),
                age_col(),
            ]);
            cols.extend(container_cols(doc::<batch::JobSpec>("selector")));
        }
        Printer::CronJob => {
            cols.extend([
                col("Schedule", "string", "", 0, doc::<batch::CronJobSpec>("schedule")),
                col("Timezone", "string", "", 0, doc::<batch::CronJobSpec>("timeZone")),
                col("Suspend", "boolean", "", 0, doc::<batch::CronJobSpec>("suspend")),
                col("Active", "integer", "", 0, doc::<batch::CronJobStatus>("active")),
                col("Last Schedule", "string", "", 0, doc::<batch::CronJobStatus>("lastScheduleTime")),
                age_col(),
            ]);
            cols.extend(container_cols(doc::<batch::JobSpec>("selector")));
        }
        Printer::Event => {
            // Events lead with Last Seen; Name is a wide column.
            cols = vec![
                col("Last Seen", "string", "", 0, doc::<core::Event>("lastTimestamp")),
                col("Type", "string", "", 0, doc::<core::Event>("type")),
                col("Reason", "string", "", 0, doc::<core::Event>("reason")),
                col("Object", "string", "", 0, doc::<core::Event>("involvedObject")),
                col("Subobject", "string", "", 1, doc::<core::ObjectReference>("fieldPath")),
                col("Source", "string", "", 1, doc::<core::Event>("source")),
                col("Message", "string", "", 0, doc::<core::Event>("message")),
                col("First Seen", "string", "", 1, doc::<core::Event>("firstTimestamp")),
                col("Count", "string", "", 1, doc::<core::Event>("count")),
                col("Name", "string", "name", 1, doc::<ObjectMeta>("name")),
            ];
        }
        Printer::Node => cols.extend([
            s("Status", "The status of the node"),
            s("Roles", "The roles of the node"),
            age_col(),
            col("Version", "string", "", 0, doc::<core::NodeSystemInfo>("kubeletVersion")),
            col("Internal-IP", "string", "", 1, doc::<core::NodeStatus>("addresses")),
            col("External-IP", "string", "", 1, doc::<core::NodeStatus>("addresses")),
            col("OS-Image", "string", "", 1, doc::<core::NodeSystemInfo>("osImage")),
            col("Kernel-Version", "string", "", 1, doc::<core::NodeSystemInfo>("kernelVersion")),
            col("Container-Runtime", "string", "", 1, doc::<core::NodeSystemInfo>("containerRuntimeVersion")),
        ]),
        Printer::Namespace => cols.extend([s("Status", "The status of the namespace"), age_col()]),
        Printer::Lease => {
            cols.extend([col("Holder", "string", "", 0, doc::<coordination::LeaseSpec>("holderIdentity")), age_col()])
        }
        Printer::Service => cols.extend([
            col("Type", "string", "", 0, doc::<core::ServiceSpec>("type")),
            col("Cluster-IP", "string", "", 0, doc::<core::ServiceSpec>("clusterIP")),
            col("External-IP", "string", "", 0, doc::<core::ServiceSpec>("externalIPs")),
            col("Port(s)", "string", "", 0, doc::<core::ServiceSpec>("ports")),
            age_col(),
            col("Selector", "string", "", 1, doc::<core::ServiceSpec>("selector")),
        ]),
        Printer::Endpoints => cols.extend([col("Endpoints", "string", "", 0, doc::<core::Endpoints>("subsets")), age_col()]),
        Printer::EndpointSlice => {
            use k8s_openapi::api::discovery::v1 as discovery;
            cols.extend([
                col("AddressType", "string", "", 0, doc::<discovery::EndpointSlice>("addressType")),
                col("Ports", "string", "", 0, doc::<discovery::EndpointSlice>("ports")),
                col("Endpoints", "string", "", 0, doc::<discovery::EndpointSlice>("endpoints")),
                age_col(),
            ])
        }
        Printer::ConfigMap => cols.extend([col("Data", "string", "", 0, doc::<core::ConfigMap>("data")), age_col()]),
        Printer::Secret => cols.extend([
            col("Type", "string", "", 0, doc::<core::Secret>("type")),
            col("Data", "string", "", 0, doc::<core::Secret>("data")),
            age_col(),
        ]),
        Printer::ServiceAccount => {
            cols.extend([col("Secrets", "string", "", 0, doc::<core::ServiceAccount>("secrets")), age_col()])
        }
        Printer::Deployment => {
            cols.extend([
                s("Ready", "Number of the pod with ready state"),
                col("Up-to-date", "string", "", 0, doc::<apps::DeploymentStatus>("updatedReplicas")),
                col("Available", "string", "", 0, doc::<apps::DeploymentStatus>("availableReplicas")),
                age_col(),
            ]);
            cols.extend(container_cols(doc::<apps::DeploymentSpec>("selector")));
        }
        Printer::PodDisruptionBudget => cols.extend([
            s("Min Available", "The minimum number of pods that must be available."),
            s("Max Unavailable", "The maximum number of pods that may be unavailable."),
            col("Allowed Disruptions", "integer", "", 0, "Calculated number of pods that may be disrupted at this time.".into()),
            age_col(),
        ]),
        Printer::RoleBinding | Printer::ClusterRoleBinding => {
            let what = if p == Printer::RoleBinding { "roleBinding" } else { "clusterRoleBinding" };
            let role_doc = if p == Printer::RoleBinding {
                doc::<rbac::RoleBinding>("roleRef")
            } else {
                doc::<rbac::ClusterRoleBinding>("roleRef")
            };
            cols.extend([
                col("Role", "string", "", 0, role_doc),
                age_col(),
                col("Users", "string", "", 1, format!("Users in the {what}")),
                col("Groups", "string", "", 1, format!("Groups in the {what}")),
                col("ServiceAccounts", "string", "", 1, format!("ServiceAccounts in the {what}")),
            ]);
        }
        Printer::Default => cols.push(col("Created At", "date", "", 0, doc::<ObjectMeta>("creationTimestamp"))),
        Printer::Custom => {}
    }
    cols
}

fn column_definitions(p: Printer) -> &'static [Value] {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<Printer, &'static [Value]>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(p).or_insert_with(|| Box::leak(build_columns(p).into_boxed_slice()))
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn s<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn int(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(o: &'a Value, ptr: &str) -> &'a [Value] {
    o.pointer(ptr).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn time(o: &Value, ptr: &str) -> Option<DateTime<Utc>> {
    o.pointer(ptr)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Upstream's `duration.HumanDuration`: `5s`, `119s`, `2m5s`, `15m`, `3h10m`, `12h`, `2d5h`,
/// `30d`, `2y45d`, `9y`.
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when missing.
pub fn since(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        None => "<unknown>".into(),
        Some(t) => human_duration(now - t),
    }
}

fn age(o: &Value, now: DateTime<Utc>) -> String {
    since(time(o, "/metadata/creationTimestamp"), now)
}

/// `layoutContainerCells`: container names and images, comma-joined.
fn containers(spec: &Value) -> (String, String) {
    let cs = spec.get("containers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn condition_true(o: &Value, ptr: &str, ty: &str) -> bool {
    arr(o, ptr).iter().find(|c| s(c, "/type") == ty).is_some_and(|c| s(c, "/status") == "True")
}

fn name(o: &Value) -> Value {
    Value::String(s(o, "/metadata/name").to_string())
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
fn format_labels(m: Option<&Value>) -> String {
    let map: BTreeMap<&str, &str> = m
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    if map.is_empty() {
        return "<none>".into();
    }
    map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn int_or_string(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "N/A".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

fn row_cells(p: Printer, o: &Value, now: DateTime<Utc>) -> (Vec<Value>, Option<Value>) {
    let cells = match p {
        Printer::Pod => return pod_row(o, now),
        Printer::Job => job_cells(o, now),
        Printer::CronJob => {
            let last = match time(o, "/status/lastScheduleTime") {
                Some(t) => since(Some(t), now),
                None => "<none>".into(),
            };
            let tz = o.pointer("/spec/timeZone").and_then(Value::as_str).unwrap_or("<none>");
            let suspend = match o.pointer("/spec/suspend").and_then(Value::as_bool) {
                Some(true) => "True",
                Some(false) => "False",
                None => "<unset>",
            };
            let (names, images) = containers(o.pointer("/spec/jobTemplate/spec/template/spec").unwrap_or(&Value::Null));
            vec![
                name(o),
                json!(s(o, "/spec/schedule")),
                json!(tz),
                json!(suspend),
                json!(arr(o, "/status/active").len()),
                json!(last),
                json!(age(o, now)),
                json!(names),
                json!(images),
                json!(LabelSelector::format_label_selector(
                    o.pointer("/spec/jobTemplate/spec/selector").unwrap_or(&Value::Null)
                )),
            ]
        }
        Printer::Event => event_cells(o, now),
        Printer::Node => node_cells(o, now),
        Printer::Namespace => vec![name(o), json!(s(o, "/status/phase")), json!(age(o, now))],
        Printer::Lease => {
            let holder = o.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or("<unknown>");
            vec![name(o), json!(holder), json!(age(o, now))]
        }
        Printer::Service => service_cells(o, now),
        Printer::Endpoints => vec![name(o), json!(endpoints_cell(o)), json!(age(o, now))],
        Printer::EndpointSlice => {
            let ports: Vec<String> = arr(o, "/ports")
                .iter()
                .map(|p| match (p.get("port").and_then(Value::as_i64), p.get("name").and_then(Value::as_str)) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(n)) => n.to_string(),
                    (None, None) => "*".to_string(),
                })
                .collect();
            let eps = arr(o, "/endpoints");
            let addrs: Vec<String> = eps
                .iter()
                .flat_map(|e| arr(e, "/addresses").iter().filter_map(Value::as_str).map(String::from))
                .collect();
            let endpoints = if eps.is_empty() { "<unset>".to_string() } else { list_with_more(&addrs, 3) };
            vec![
                name(o),
                json!(s(o, "/addressType")),
                json!(list_with_more(&ports, 3)),
                json!(endpoints),
                json!(age(o, now)),
            ]
        }
        Printer::ConfigMap => {
            let n = o.get("data").and_then(Value::as_object).map_or(0, |m| m.len())
                + o.get("binaryData").and_then(Value::as_object).map_or(0, |m| m.len());
            vec![name(o), json!(n), json!(age(o, now))]
        }
        Printer::Secret => {
            let n = o.get("data").and_then(Value::as_object).map_or(0, |m| m.len());
            vec![name(o), json!(s(o, "/type")), json!(n), json!(age(o, now))]
        }
        Printer::ServiceAccount => vec![name(o), json!(arr(o, "/secrets").len()), json!(age(o, now))],
        Printer::Deployment => {
            let selector = match LabelSelector::from_label_selector(o.pointer("/spec/selector").unwrap_or(&Value::Null))
            {
                Ok(sel) => sel.to_string(),
                Err(_) => "<invalid>".into(),
            };
            let (names, images) = containers(o.pointer("/spec/template/spec").unwrap_or(&Value::Null));
            vec![
                name(o),
                json!(format!("{}/{}", int(o, "/status/readyReplicas"), int(o, "/spec/replicas"))),
                json!(int(o, "/status/updatedReplicas")),
                json!(int(o, "/status/availableReplicas")),
                json!(age(o, now)),
                json!(names),
                json!(images),
                json!(selector),
            ]
        }
        Printer::PodDisruptionBudget => vec![
            name(o),
            json!(int_or_string(o.pointer("/spec/minAvailable"))),
            json!(int_or_string(o.pointer("/spec/maxUnavailable"))),
            json!(int(o, "/status/disruptionsAllowed")),
            json!(age(o, now)),
        ],
        Printer::RoleBinding | Printer::ClusterRoleBinding => {
            let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
            for sub in arr(o, "/subjects") {
                match s(sub, "/kind") {
                    "User" => users.push(s(sub, "/name").to_string()),
                    "Group" => groups.push(s(sub, "/name").to_string()),
                    "ServiceAccount" => sas.push(format!("{}/{}", s(sub, "/namespace"), s(sub, "/name"))),
                    _ => {}
                }
            }
            vec![
                name(o),
                json!(format!("{}/{}", s(o, "/roleRef/kind"), s(o, "/roleRef/name"))),
                json!(age(o, now)),
                json!(users.join(", ")),
                json!(groups.join(", ")),
                json!(sas.join(", ")),
            ]
        }
        Printer::Default => {
            // The default convertor prints the creation time, RFC 3339, not an age.
            let created = time(o, "/metadata/creationTimestamp")
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
            vec![name(o), json!(created)]
        }
        Printer::Custom => Vec::new(),
    };
    (cells, None)
}

fn job_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let succeeded = int(o, "/status/succeeded");
    let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = int(o, "/spec/parallelism");
            if parallelism > 1 { format!("{succeeded}/1 of {parallelism}") } else { format!("{succeeded}/1") }
        }
    };
    let duration = match (time(o, "/status/startTime"), time(o, "/status/completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let is = |t: &str| condition_true(o, "/status/conditions", t);
    let status = if is("Complete") {
        "Complete"
    } else if is("Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()) {
        "Terminating"
    } else if is("Suspended") {
        "Suspended"
    } else if is("FailureTarget") {
        "FailureTarget"
    } else if is("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let (names, images) = containers(o.pointer("/spec/template/spec").unwrap_or(&Value::Null));
    vec![
        name(o),
        json!(status),
        json!(completions),
        json!(duration),
        json!(age(o, now)),
        json!(names),
        json!(images),
        json!(LabelSelector::format_label_selector(o.pointer("/spec/selector").unwrap_or(&Value::Null))),
    ]
}

/// `printPod`: the cells and, for finished pods, the `Completed` row condition.
fn pod_row(pod: &Value, now: DateTime<Utc>) -> (Vec<Value>, Option<Value>) {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let status = pod.get("status").unwrap_or(&Value::Null);
    let init_specs = arr(spec, "/initContainers");
    let restartable =
        |name: &str| init_specs.iter().any(|c| s(c, "/name") == name && s(c, "/restartPolicy") == "Always");
    let mut restarts: i64 = 0;
    let mut restartable_restarts: i64 = 0;
    let total =
        arr(spec, "/containers").len() + init_specs.iter().filter(|c| s(c, "/restartPolicy") == "Always").count();
    let mut ready = 0usize;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_restartable_restart: Option<DateTime<Utc>> = None;
    let phase = s(status, "/phase");
    let mut reason = phase.to_string();
    if !s(status, "/reason").is_empty() {
        reason = s(status, "/reason").to_string();
    }
    for c in arr(status, "/conditions") {
        if s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated" {
            reason = "SchedulingGated".into();
        }
    }
    let conditions = match phase {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => {
            Some(json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]))
        }
        _ => None,
    };
    let later = |cur: Option<DateTime<Utc>>, t: Option<DateTime<Utc>>| match (cur, t) {
        (Some(a), Some(b)) if b > a => Some(b),
        (None, Some(b)) => Some(b),
        (a, _) => a,
    };

    let mut initializing = false;
    let init_statuses = arr(status, "/initContainerStatuses");
    for (i, c) in init_statuses.iter().enumerate() {
        let rc = int(c, "/restartCount");
        restarts += rc;
        let finished = time(c, "/lastState/terminated/finishedAt");
        if c.pointer("/lastState/terminated").is_some() {
            last_restart = later(last_restart, finished);
        }
        let cname = s(c, "/name");
        if restartable(cname) {
            restartable_restarts += rc;
            if c.pointer("/lastState/terminated").is_some() {
                last_restartable_restart = later(last_restartable_restart, finished);
            }
        }
        let terminated = c.pointer("/state/terminated");
        let waiting_reason = s(c, "/state/waiting/reason");
        if terminated.is_some() && int(c, "/state/terminated/exitCode") == 0 {
            continue;
        }
        if restartable(cname) && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if terminated.is_some() {
            let r = s(c, "/state/terminated/reason");
            reason = if r.is_empty() {
                let sig = int(c, "/state/terminated/signal");
                if sig != 0 {
                    format!("Init:Signal:{sig}")
                } else {
                    format!("Init:ExitCode:{}", int(c, "/state/terminated/exitCode"))
                }
            } else {
                format!("Init:{r}")
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(status, "/conditions", "Initialized") {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for c in arr(status, "/containerStatuses").iter().rev() {
            restarts += int(c, "/restartCount");
            if c.pointer("/lastState/terminated").is_some() {
                last_restart = later(last_restart, time(c, "/lastState/terminated/finishedAt"));
            }
            let waiting = s(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated").is_some();
            let term_reason = s(c, "/state/terminated/reason");
            if c.pointer("/state/waiting").is_some() && !waiting.is_empty() {
                reason = waiting.to_string();
            } else if terminated && !term_reason.is_empty() {
                reason = term_reason.to_string();
            } else if terminated {
                let sig = int(c, "/state/terminated/signal");
                reason = if sig != 0 {
                    format!("Signal:{sig}")
                } else {
                    format!("ExitCode:{}", int(c, "/state/terminated/exitCode"))
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true) && c.pointer("/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(status, "/conditions", "Ready") { "Running".into() } else { "NotReady".into() };
        }
    }

    let deleting = pod.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
    if deleting && s(status, "/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };
    // v1 `status.podIP` without `podIPs` converts to `podIPs[0]` upstream.
    let ip = status
        .pointer("/podIPs/0/ip")
        .and_then(Value::as_str)
        .or_else(|| status.get("podIP").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    let node = Some(s(spec, "/nodeName")).filter(|s| !s.is_empty()).unwrap_or("<none>");
    let nominated = Some(s(status, "/nominatedNodeName")).filter(|s| !s.is_empty()).unwrap_or("<none>");
    let gates = arr(spec, "/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conds = arr(status, "/conditions");
        let n = gates
            .iter()
            .filter(|g| {
                conds
                    .iter()
                    .find(|c| s(c, "/type") == s(g, "/conditionType"))
                    .is_some_and(|c| s(c, "/status") == "True")
            })
            .count();
        format!("{n}/{}", gates.len())
    };
    let cells = vec![
        name(pod),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_str),
        json!(age(pod, now)),
        json!(ip),
        json!(node),
        json!(nominated),
        json!(readiness_gates),
    ];
    (cells, conditions)
}

/// `printEvent`, for an event stored in either the core/v1 or the events.k8s.io/v1 shape.
fn event_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let core = o.get("involvedObject").is_some() || o.get("regarding").is_none();
    let pick = |core_ptr: &str, new_ptr: &str| if core { core_ptr.to_string() } else { new_ptr.to_string() };
    let first_ts = time(o, &pick("/firstTimestamp", "/deprecatedFirstTimestamp"));
    let first = match first_ts {
        Some(t) => since(Some(t), now),
        None => since(time(o, "/eventTime"), now),
    };
    let last = match time(o, &pick("/lastTimestamp", "/deprecatedLastTimestamp")) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int(o, &pick("/count", "/deprecatedCount"));
    let mut last = last;
    if let Some(series) = o.get("series").filter(|v| !v.is_null()) {
        last = since(time(series, "/lastObservedTime"), now);
        count = int(series, "/count");
    } else if count == 0 {
        count = 1;
    }
    let reference = if core { "/involvedObject" } else { "/regarding" };
    let kind = s(o, &format!("{reference}/kind")).to_lowercase();
    let obj_name = s(o, &format!("{reference}/name"));
    let target = if obj_name.is_empty() { kind } else { format!("{kind}/{obj_name}") };
    let source = pick("/source", "/deprecatedSource");
    let controller = if core { s(o, "/reportingComponent") } else { s(o, "/reportingController") };
    let component = Some(s(o, &format!("{source}/component"))).filter(|c| !c.is_empty()).unwrap_or(controller);
    let host = Some(s(o, &format!("{source}/host"))).filter(|c| !c.is_empty()).unwrap_or(s(o, "/reportingInstance"));
    let source_str = if host.is_empty() { component.to_string() } else { format!("{component}, {host}") };
    let message = if core { s(o, "/message") } else { s(o, "/note") };
    vec![
        json!(last),
        json!(s(o, "/type")),
        json!(s(o, "/reason")),
        json!(target),
        json!(s(o, &format!("{reference}/fieldPath"))),
        json!(source_str),
        json!(message.trim()),
        json!(first),
        json!(count),
        name(o),
    ]
}

fn node_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    if let Some(c) = arr(o, "/status/conditions").iter().rev().find(|c| s(c, "/type") == "Ready") {
        status.push(if s(c, "/status") == "True" { "Ready".into() } else { "NotReady".into() });
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles = BTreeSet::new();
    for (k, v) in o.pointer("/metadata/labels").and_then(Value::as_object).into_iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == "kubernetes.io/role" && v.as_str().is_some_and(|v| !v.is_empty()) {
            roles.insert(v.as_str().unwrap_or_default().to_string());
        }
    }
    let roles = if roles.is_empty() { "<none>".to_string() } else { roles.into_iter().collect::<Vec<_>>().join(",") };
    let address = |ty: &str| {
        arr(o, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == ty)
            .map(|a| s(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let or_unknown = |v: &str| if v.is_empty() { "<unknown>".to_string() } else { v.to_string() };
    vec![
        name(o),
        json!(status.join(",")),
        json!(roles),
        json!(age(o, now)),
        json!(s(o, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(or_unknown(s(o, "/status/nodeInfo/osImage"))),
        json!(or_unknown(s(o, "/status/nodeInfo/kernelVersion"))),
        json!(or_unknown(s(o, "/status/nodeInfo/containerRuntimeVersion"))),
    ]
}

/// Upstream's `listWithMoreString`: the first `max` items, then ` + N more...`.
fn list_with_more(items: &[String], max: usize) -> String {
    let shown = items.iter().take(max).cloned().collect::<Vec<_>>().join(",");
    if items.len() > max { format!("{shown} + {} more...", items.len() - max) } else { shown }
}

/// Upstream's `formatEndpoints`: `ip:port` for every ready address and port, at most three.
fn endpoints_cell(o: &Value) -> String {
    let subsets = arr(o, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    for ss in subsets {
        let addrs: Vec<&str> = arr(ss, "/addresses").iter().map(|a| s(a, "/ip")).collect();
        let ports = arr(ss, "/ports");
        if ports.is_empty() {
            list.extend(addrs.iter().map(|a| a.to_string()));
            continue;
        }
        for p in ports {
            let port = int(p, "/port");
            for a in &addrs {
                list.push(if a.contains(':') { format!("[{a}]:{port}") } else { format!("{a}:{port}") });
            }
        }
    }
    list_with_more(&list, 3)
}

fn service_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ty = s(o, "/spec/type");
    let cluster_ip = o.pointer("/spec/clusterIPs/0").and_then(Value::as_str).unwrap_or("<none>");
    let external_ips: Vec<&str> = arr(o, "/spec/externalIPs").iter().filter_map(Value::as_str).collect();
    let external = match ty {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let mut lb: Vec<String> = Vec::new();
            for ing in arr(o, "/status/loadBalancer/ingress") {
                let v = if !s(ing, "/ip").is_empty() { s(ing, "/ip") } else { s(ing, "/hostname") };
                if !v.is_empty() && !lb.iter().any(|x| x == v) {
                    lb.push(v.to_string());
                }
            }
            lb.extend(external_ips.iter().map(|s| s.to_string()));
            if lb.is_empty() { "<pending>".to_string() } else { lb.join(",") }
        }
        "ExternalName" => s(o, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = arr(o, "/spec/ports")
        .iter()
        .map(|p| {
            let (port, proto, node_port) = (int(p, "/port"), s(p, "/protocol"), int(p, "/nodePort"));
            if node_port > 0 { format!("{port}:{node_port}/{proto}") } else { format!("{port}/{proto}") }
        })
        .collect();
    let ports = if ports.is_empty() { "<none>".to_string() } else { ports.join(",") };
    vec![
        name(o),
        json!(ty),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        json!(age(o, now)),
        json!(format_labels(o.pointer("/spec/selector"))),
    ]
}

// ---------------------------------------------------------------------------------------------
// Custom resources
// ---------------------------------------------------------------------------------------------

fn custom_columns(printer_columns: Option<&[Value]>) -> Vec<Value> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let mut cols = vec![name_col()];
    match printer_columns {
        Some(pc) if !pc.is_empty() => {
            for c in pc {
                let path = s(c, "/jsonPath");
                let description = Some(s(c, "/description"))
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("Custom resource definition column (in JSONPath format): {path}"));
                cols.push(col(s(c, "/name"), s(c, "/type"), s(c, "/format"), int(c, "/priority"), description));
            }
        }
        _ => cols.push(col("Age", "date", "", 0, doc::<ObjectMeta>("creationTimestamp"))),
    }
    cols
}

fn custom_cells(o: &Value, printer_columns: Option<&[Value]>, now: DateTime<Utc>) -> Vec<Value> {
    let default_age = [json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})];
    let pc = match printer_columns {
        Some(pc) if !pc.is_empty() => pc,
        _ => &default_age[..],
    };
    let mut cells = vec![name(o)];
    for c in pc {
        let v = simple_jsonpath(o, s(c, "/jsonPath"));
        cells.push(match v {
            None | Some(Value::Null) => Value::Null,
            Some(v) => cell_for_json_value(s(c, "/type"), v, now),
        });
    }
    cells
}

/// `cellForJSONValue` (plus the `string` case, printed as the JSONPath printer would).
fn cell_for_json_value(ty: &str, v: &Value, now: DateTime<Utc>) -> Value {
    match ty {
        "string" => match v {
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        },
        "integer" => v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)).map_or(Value::Null, |i| json!(i)),
        "number" => v.as_f64().map_or(Value::Null, |f| json!(f)),
        "boolean" => v.as_bool().map_or(Value::Null, |b| json!(b)),
        "date" => match v.as_str() {
            Some(t) => match DateTime::parse_from_rfc3339(t) {
                Ok(t) => json!(since(Some(t.with_timezone(&Utc)), now)),
                Err(_) => json!("<invalid>"),
            },
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// Evaluate the simple JSONPaths CRDs allow: `.a.b`, `.a[0].b`, `.a['x.y']`, `.a.b\.c`, and slices
/// `.a[-1:].b` (the first element of the slice, as a printer column shows the first match).
pub fn simple_jsonpath<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = obj;
    let chars: Vec<char> = path.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '$' => i += 1,
            '.' => {
                i += 1;
                let mut key = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    key.push(chars[i]);
                    i += 1;
                }
                if key.is_empty() {
                    continue;
                }
                cur = cur.get(&key)?;
            }
            '[' => {
                let end = chars[i..].iter().position(|&c| c == ']')? + i;
                let inner: String = chars[i + 1..end].iter().collect();
                let inner = inner.trim();
                cur = if let Some(q) = inner.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
                    cur.get(q)?
                } else if let Some((from, to)) = inner.split_once(':') {
                    // A slice `[start:end(:step)]`: its first element (a column shows the first match).
                    let a = cur.as_array()?;
                    let n = a.len() as i64;
                    let bound = |s: &str, default: i64| -> Option<i64> {
                        let s = s.trim();
                        if s.is_empty() {
                            return Some(default);
                        }
                        let v: i64 = s.parse().ok()?;
                        Some(if v < 0 { (n + v).max(0) } else { v.min(n) })
                    };
                    let start = bound(from, 0)?;
                    let end = bound(to.split(':').next().unwrap_or(""), n)?;
                    if start >= end {
                        return None;
                    }
                    a.get(usize::try_from(start).ok()?)?
                } else {
                    let idx: i64 = inner.parse().ok()?;
                    let a = cur.as_array()?;
                    let idx = if idx < 0 { a.len() as i64 + idx } else { idx };
                    a.get(usize::try_from(idx).ok()?)?
                };
                i = end + 1;
            }
            _ => return None,
        }
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_slices_give_their_first_element() {
        let o = json!({"c": [{"t": "a"}, {"t": "b"}, {"t": "c"}]});
        assert_eq!(simple_jsonpath(&o, ".c[-1:].t"), Some(&json!("c")));
        assert_eq!(simple_jsonpath(&o, ".c[1:].t"), Some(&json!("b")));
        assert_eq!(simple_jsonpath(&o, ".c[:2].t"), Some(&json!("a")));
        assert_eq!(simple_jsonpath(&o, ".c[-10:1].t"), Some(&json!("a")));
        assert_eq!(simple_jsonpath(&o, ".c[5:].t"), None);
        assert_eq!(simple_jsonpath(&json!({"c": []}), ".c[-1:].t"), None);
        assert_eq!(simple_jsonpath(&o, ".c[x:].t"), None);
    }
    use crate::registry::{Registry, ResourceInfo};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap()
    }

    fn ago(secs: i64) -> String {
        (now() - chrono::Duration::seconds(secs)).format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    fn info(g: &str, r: &str) -> ResourceInfo {
        Registry::builtin().get(g, "v1", r).unwrap()
    }

    fn table(g: &str, r: &str, o: Value) -> Value {
        to_table(&info(g, r), &[o], IncludeObject::Metadata, now())
    }

    fn col_names(t: &Value) -> Vec<(String, i64)> {
        t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap().to_string(), c["priority"].as_i64().unwrap()))
            .collect()
    }

    #[test]
    fn human_duration_matches_upstream_table() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 600, "3h10m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (53 * 3600, "2d5h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (2 * 365 * 86400, "2y"),
            (2 * 365 * 86400 + 45 * 86400, "2y45d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(chrono::Duration::seconds(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn pod_columns_and_descriptions_match_upstream() {
        let t = table("", "pods", json!({"metadata": {"name": "p"}}));
        assert_eq!(
            col_names(&t),
            [
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1)
            ]
            .map(|(n, p)| (n.to_string(), p))
        );
        let cols = &t["columnDefinitions"];
        assert_eq!(cols[0]["format"], "name");
        assert!(cols[0]["description"].as_str().unwrap().starts_with("Name must be unique within a namespace."));
        assert!(cols[4]["description"].as_str().unwrap().starts_with("CreationTimestamp is a timestamp"));
        assert!(cols[5]["description"].as_str().unwrap().contains("podIP address allocated to the pod"), "{}", cols[5]);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    fn pod(status: Value) -> Value {
        json!({"metadata": {"name": "p", "creationTimestamp": ago(300)},
               "spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i1"}, {"name": "i2"}], "nodeName": "n1"},
               "status": status})
    }

    fn pod_cells(p: Value) -> Vec<Value> {
        table("", "pods", p)["rows"][0]["cells"].as_array().unwrap().clone()
    }

    #[test]
    fn pod_status_logic_table() {
        let running = json!({"running": {}});
        let cases: Vec<(&str, Value, &str, &str)> = vec![
            ("pending, nothing reported", json!({"phase": "Pending"}), "0/2", "Pending"),
            (
                "first init container running",
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "i1", "state": {"running": {}}}, {"name": "i2", "state": {"waiting": {"reason": "PodInitializing"}}}]}),
                "0/2",
                "Init:0/2",
            ),
            (
                "second init container running",
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "i1", "state": {"terminated": {"exitCode": 0}}}, {"name": "i2", "state": {"running": {}}}]}),
                "0/2",
                "Init:1/2",
            ),
            (
                "init container crash looping",
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "i1", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                "0/2",
                "Init:CrashLoopBackOff",
            ),
            (
                "init container failed with reason",
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
                "0/2",
                "Init:Error",
            ),
            (
                "init container failed without reason",
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "i1", "state": {"terminated": {"exitCode": 2}}}]}),
                "0/2",
                "Init:ExitCode:2",
            ),
            (
                "init container killed by signal",
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "i1", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
                "0/2",
                "Init:Signal:9",
            ),
            (
                "containers creating",
                json!({"phase": "Pending", "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}}, {"name": "b", "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
                "0/2",
                "ContainerCreating",
            ),
            (
                "all running and ready",
                json!({"phase": "Running", "containerStatuses": [{"name": "a", "ready": true, "state": running}, {"name": "b", "ready": true, "state": running}]}),
                "2/2",
                "Running",
            ),
            (
                "one crash looping",
                json!({"phase": "Running", "containerStatuses": [{"name": "a", "ready": true, "state": running}, {"name": "b", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                "1/2",
                "CrashLoopBackOff",
            ),
            (
                "succeeded",
                json!({"phase": "Succeeded", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}, {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                "0/2",
                "Completed",
            ),
            (
                "failed with error",
                json!({"phase": "Failed", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
                "0/2",
                "Error",
            ),
            (
                "terminated without reason",
                json!({"phase": "Failed", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 3}}}]}),
                "0/2",
                "ExitCode:3",
            ),
            (
                "completed but one still running and pod ready",
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}, {"name": "b", "ready": true, "state": running}]}),
                "1/2",
                "Running",
            ),
            (
                "completed but one still running, pod not ready",
                json!({"phase": "Running", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}, {"name": "b", "ready": true, "state": running}]}),
                "1/2",
                "NotReady",
            ),
            ("evicted", json!({"phase": "Failed", "reason": "Evicted"}), "0/2", "Evicted"),
            (
                "scheduling gated",
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
                "0/2",
                "SchedulingGated",
            ),
        ];
        for (case, status, ready, want) in cases {
            let cells = pod_cells(pod(status));
            assert_eq!(cells[1], ready, "{case}");
            assert_eq!(cells[2], want, "{case}");
        }
    }

    #[test]
    fn pod_terminating_unknown_restarts_and_wide_cells() {
        let mut p = pod(json!({"phase": "Running", "podIPs": [{"ip": "10.1.0.5"}],
            "containerStatuses": [{"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(125)}}}]}));
        let cells = pod_cells(p.clone());
        assert_eq!(cells[3], "2 (2m5s ago)");
        assert_eq!(cells[4], "5m");
        assert_eq!(cells[5], "10.1.0.5");
        assert_eq!(cells[6], "n1");
        assert_eq!(cells[7], "<none>");
        assert_eq!(cells[8], "<none>");
        p["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(pod_cells(p.clone())[2], "Terminating");
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(pod_cells(p.clone())[2], "Unknown");
        let mut done = pod(json!({"phase": "Succeeded"}));
        done["metadata"]["deletionTimestamp"] = json!(ago(1));
        let t = table("", "pods", done);
        assert_eq!(t["rows"][0]["cells"][2], "Succeeded", "terminal pods are never Terminating");
        assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
        let mut gated = pod(json!({"phase": "Running", "conditions": [{"type": "example.com/ok", "status": "True"}]}));
        gated["spec"]["readinessGates"] = json!([{"conditionType": "example.com/ok"}, {"conditionType": "other"}]);
        assert_eq!(pod_cells(gated)[8], "1/2");
    }

    #[test]
    fn sidecar_init_containers_count_as_containers() {
        let mut p = pod(json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [{"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "started": true, "ready": true, "restartCount": 1, "state": {"running": {}}}],
            "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}, {"name": "b", "ready": true, "state": {"running": {}}}]}));
        p["spec"]["initContainers"][1]["restartPolicy"] = json!("Always");
        let cells = pod_cells(p);
        assert_eq!(cells[1], "3/3");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], "1");
    }

    fn job(spec: Value, status: Value) -> Value {
        let mut spec = spec;
        spec["template"] =
            json!({"spec": {"containers": [{"name": "c", "image": "busybox"}, {"name": "d", "image": "alpine"}]}});
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}});
        json!({"metadata": {"name": "j", "creationTimestamp": ago(3600)}, "spec": spec, "status": status})
    }

    #[test]
    fn job_columns_and_cells() {
        let t = table("batch", "jobs", job(json!({"completions": 1}), json!({})));
        assert_eq!(
            col_names(&t),
            [
                ("Name", 0),
                ("Status", 0),
                ("Completions", 0),
                ("Duration", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ]
            .map(|(n, p)| (n.to_string(), p))
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["j", "Running", "0/1", "", "60m", "c,d", "busybox,alpine", "batch.kubernetes.io/controller-uid=u1"])
        );
        let cells = |spec: Value, status: Value| table("batch", "jobs", job(spec, status))["rows"][0]["cells"].clone();
        let c = cells(
            json!({"completions": 3}),
            json!({"succeeded": 3, "startTime": ago(600), "completionTime": ago(475),
            "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}),
        );
        assert_eq!((c[1].as_str(), c[2].as_str(), c[3].as_str()), (Some("Complete"), Some("3/3"), Some("2m5s")));
        let c = cells(json!({"parallelism": 3}), json!({"succeeded": 1, "startTime": ago(30)}));
        assert_eq!((c[2].as_str(), c[3].as_str()), (Some("1/1 of 3"), Some("30s")));
        let c = cells(json!({"parallelism": 1}), json!({}));
        assert_eq!(c[2], "0/1");
        let status_of = |conds: Value| cells(json!({}), json!({"conditions": conds}))[1].clone();
        assert_eq!(status_of(json!([{"type": "Failed", "status": "True"}])), "Failed");
        assert_eq!(status_of(json!([{"type": "Suspended", "status": "True"}])), "Suspended");
        assert_eq!(status_of(json!([{"type": "Suspended", "status": "False"}])), "Running");
        assert_eq!(status_of(json!([{"type": "FailureTarget", "status": "True"}])), "FailureTarget");
        assert_eq!(status_of(json!([{"type": "SuccessCriteriaMet", "status": "True"}])), "SuccessCriteriaMet");
        let mut deleting = job(json!({}), json!({"conditions": [{"type": "Suspended", "status": "True"}]}));
        deleting["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(table("batch", "jobs", deleting)["rows"][0]["cells"][1], "Terminating");
    }

    #[test]
    fn cronjob_node_namespace_lease_configmap_cells() {
        let cj = json!({"metadata": {"name": "cj", "creationTimestamp": ago(86400 * 3)},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}},
            "status": {"active": [{"name": "x"}], "lastScheduleTime": ago(90)}});
        let t = table("batch", "cronjobs", cj);
        assert_eq!(
            col_names(&t).iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
            [
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(t["columnDefinitions"][3]["type"], "boolean");
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["cj", "*/5 * * * *", "<none>", "<unset>", 1, "90s", "3d", "c", "i", "<none>"])
        );

        let node = json!({"metadata": {"name": "n1", "creationTimestamp": ago(60), "labels": {"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "False"}], "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0"}}});
        assert_eq!(
            table("", "nodes", node)["rows"][0]["cells"],
            json!([
                "n1",
                "NotReady,SchedulingDisabled",
                "control-plane,worker",
                "60s",
                "v1.33.0",
                "127.0.0.1",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ])
        );
        let bare = table("", "nodes", json!({"metadata": {"name": "n2"}}));
        assert_eq!(bare["rows"][0]["cells"][1], "Unknown");
        assert_eq!(bare["rows"][0]["cells"][2], "<none>");
        assert_eq!(bare["rows"][0]["cells"][3], "<unknown>");

        let ns = json!({"metadata": {"name": "default", "creationTimestamp": ago(10)}, "status": {"phase": "Active"}});
        assert_eq!(table("", "namespaces", ns)["rows"][0]["cells"], json!(["default", "Active", "10s"]));
        let lease = json!({"metadata": {"name": "l", "creationTimestamp": ago(10)}, "spec": {"holderIdentity": "me"}});
        assert_eq!(table("coordination.k8s.io", "leases", lease)["rows"][0]["cells"], json!(["l", "me", "10s"]));
        let cm = json!({"metadata": {"name": "c", "creationTimestamp": ago(10)}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
        let t = table("", "configmaps", cm);
        assert_eq!(t["rows"][0]["cells"], json!(["c", 3, "10s"]));
        assert_eq!(col_names(&t).len(), 3);
        let sa = json!({"metadata": {"name": "default", "creationTimestamp": ago(10)}});
        assert_eq!(table("", "serviceaccounts", sa)["rows"][0]["cells"], json!(["default", 0, "10s"]));
        let secret =
            json!({"metadata": {"name": "s", "creationTimestamp": ago(10)}, "type": "Opaque", "data": {"k": "dg=="}});
        assert_eq!(table("", "secrets", secret)["rows"][0]["cells"], json!(["s", "Opaque", 1, "10s"]));
    }

    #[test]
    fn events_print_the_same_in_both_groups() {
        let core = json!({"metadata": {"name": "j.1", "namespace": "ns"}, "involvedObject": {"kind": "Job", "name": "j"},
            "reason": "Completed", "message": "Job completed ", "type": "Normal", "source": {"component": "job-controller"},
            "firstTimestamp": ago(120), "lastTimestamp": ago(60), "count": 2});
        let t = table("", "events", core);
        assert_eq!(
            col_names(&t),
            [
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1)
            ]
            .map(|(n, p)| (n.to_string(), p))
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["60s", "Normal", "Completed", "job/j", "", "job-controller", "Job completed", "2m", 2, "j.1"])
        );
        let new = json!({"metadata": {"name": "p.2", "namespace": "ns"}, "regarding": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{c}"},
            "reason": "Started", "note": "Started container c", "type": "Normal", "reportingController": "kubelet", "reportingInstance": "n1",
            "eventTime": ago(30)});
        let t = to_table(&info("events.k8s.io", "events"), &[new], IncludeObject::None, now());
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "30s",
                "Normal",
                "Started",
                "pod/p",
                "spec.containers{c}",
                "kubelet, n1",
                "Started container c",
                "30s",
                1,
                "p.2"
            ])
        );
        assert_eq!(t["rows"][0]["object"], Value::Null);
        let series = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Node"}, "eventTime": ago(600),
            "series": {"count": 7, "lastObservedTime": ago(5)}});
        let c = table("", "events", series)["rows"][0]["cells"].clone();
        assert_eq!((c[0].as_str(), c[3].as_str(), c[8].as_i64()), (Some("5s"), Some("node"), Some(7)));
    }

    #[test]
    fn service_deployment_pdb_rolebinding_cells() {
        let svc = json!({"metadata": {"name": "s", "creationTimestamp": ago(10)},
            "spec": {"type": "NodePort", "clusterIPs": ["10.0.0.1"], "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}], "selector": {"b": "2", "a": "1"}}});
        assert_eq!(
            table("", "services", svc)["rows"][0]["cells"],
            json!(["s", "NodePort", "10.0.0.1", "<none>", "80:30080/TCP,53/UDP", "10s", "a=1,b=2"])
        );
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}});
        assert_eq!(table("", "services", lb)["rows"][0]["cells"][3], "<pending>");
        let d = json!({"metadata": {"name": "d", "creationTimestamp": ago(10)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}}, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            table("apps", "deployments", d)["rows"][0]["cells"],
            json!(["d", "2/3", 3, 2, "10s", "c", "i", "app=x"])
        );
        let pdb = json!({"metadata": {"name": "p", "creationTimestamp": ago(10)}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            table("policy", "poddisruptionbudgets", pdb)["rows"][0]["cells"],
            json!(["p", "50%", "N/A", 1, "10s"])
        );
        let rb = json!({"metadata": {"name": "rb", "creationTimestamp": ago(10)}, "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "namespace": "ns", "name": "sa"}]});
        assert_eq!(
            table("rbac.authorization.k8s.io", "rolebindings", rb)["rows"][0]["cells"],
            json!(["rb", "Role/r", "10s", "alice", "", "ns/sa"])
        );
    }

    #[test]
    fn default_and_custom_resource_tables() {
        let crd = json!({"metadata": {"name": "foos.example.com", "creationTimestamp": "2024-05-01T10:00:00Z"}});
        let t = table("apiextensions.k8s.io", "customresourcedefinitions", crd);
        assert_eq!(col_names(&t), vec![("Name".to_string(), 0), ("Created At".to_string(), 0)]);
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
        assert_eq!(t["rows"][0]["cells"], json!(["foos.example.com", "2024-05-01T10:00:00Z"]));
        let role = table("rbac.authorization.k8s.io", "roles", json!({"metadata": {"name": "r"}}));
        assert_eq!(role["columnDefinitions"][1]["name"], "Created At");

        let foo = ResourceInfo::new("example.com", "v1", "foos", "Foo", true, &[], &[], &[]);
        let obj = json!({"metadata": {"name": "f", "creationTimestamp": ago(70)}, "spec": {"size": 3, "tags": ["a", "b"], "ok": true},
            "status": {"phase": "Ready"}});
        let t = to_table(&foo, std::slice::from_ref(&obj), IncludeObject::Object, now());
        assert_eq!(col_names(&t), vec![("Name".to_string(), 0), ("Age".to_string(), 0)]);
        assert_eq!(t["rows"][0]["cells"], json!(["f", "70s"]));
        assert_eq!(t["rows"][0]["object"], obj);
        let pc = [
            json!({"name": "Size", "type": "integer", "jsonPath": ".spec.size"}),
            json!({"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "the phase"}),
            json!({"name": "First", "type": "string", "jsonPath": ".spec.tags[0]", "priority": 1}),
            json!({"name": "OK", "type": "boolean", "jsonPath": ".spec.ok"}),
            json!({"name": "Missing", "type": "string", "jsonPath": ".status.nope"}),
            json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
        ];
        let t = to_table_with_columns(&foo, &[obj], IncludeObject::Metadata, now(), Some(&pc));
        assert_eq!(t["rows"][0]["cells"], json!(["f", 3, "Ready", "a", true, null, "70s"]));
        assert_eq!(
            t["columnDefinitions"][1]["description"],
            "Custom resource definition column (in JSONPath format): .spec.size"
        );
        assert_eq!(t["columnDefinitions"][2]["description"], "the phase");
        assert_eq!(t["columnDefinitions"][3]["priority"], 1);
    }

    #[test]
    fn accept_negotiation() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate_as(kubectl), Some(AsTransform::Table { version: "v1".into() }));
        assert_eq!(negotiate_as(kubectl).unwrap().content_type(), "application/json;as=Table;v=v1;g=meta.k8s.io");
        assert_eq!(
            negotiate_as("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
            Some(AsTransform::PartialObjectMetadataList { version: "v1".into() })
        );
        assert_eq!(
            negotiate_as(
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json; as=Table; v=v1beta1; g=meta.k8s.io"
            ),
            Some(AsTransform::Table { version: "v1beta1".into() })
        );
        assert_eq!(negotiate_as("application/json"), None);
        assert_eq!(negotiate_as("application/json, application/json;as=Table;v=v1;g=meta.k8s.io"), None);
        assert_eq!(negotiate_as("application/json;as=Table;v=v9;g=meta.k8s.io"), None);
        assert_eq!(negotiate_as(""), None);
        let l = partial_object_metadata_list(&[json!({"kind": "Pod", "metadata": {"name": "a"}, "spec": {}})]);
        assert_eq!(
            l["items"][0],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "a"}})
        );
    }

    #[test]
    fn crd_printer_columns_by_version() {
        let crd = json!({"spec": {"versions": [
            {"name": "v1", "additionalPrinterColumns": [{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}]},
            {"name": "v2"}]}});
        assert_eq!(crd_printer_columns(&crd, "v1")[0]["name"], "Phase");
        assert!(crd_printer_columns(&crd, "v2").is_empty());
        assert!(crd_printer_columns(&crd, "v3").is_empty());
    }

    #[test]
    fn include_object_parsing() {
        assert_eq!(IncludeObject::parse(""), Some(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
        assert_eq!(IncludeObject::parse("None"), Some(IncludeObject::None));
        assert_eq!(IncludeObject::parse("All"), None);
    }
}
