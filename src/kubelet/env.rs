//! PURE: a container's environment and command line, as the kubelet computes them.
//!
//! - [`referenced_sources`] lists the ConfigMaps and Secrets a container's `env`/`envFrom` read, so
//!   the runtime can fetch them first; [`container_env`] then builds the environment from the pod,
//!   the container and those fetched [`EnvSources`], with upstream's order (`envFrom` first, then
//!   `env`, later entries overriding) and `$(VAR)` expansion of values.
//! - [`expand`] is the kubelet's `$(VAR)` syntax: `$$` escapes, unknown references stay verbatim.
//! - [`command_line`] picks what to run: `command` + `args`, or for known base images whose
//!   entrypoint is empty, `args` or the image's default CMD.
//!
//! No I/O here: everything is table-tested.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, Pod};

/// Which kind of object a reference points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// A ConfigMap (`data`, plus `binaryData` decoded as UTF-8).
    ConfigMap,
    /// A Secret (`data`, base64-decoded, plus `stringData`).
    Secret,
}

impl SourceKind {
    fn display(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "configmap",
            SourceKind::Secret => "secret",
        }
    }
}

/// Fetched ConfigMaps and Secrets of the pod's namespace: `None` when the object does not exist.
pub type EnvSources = HashMap<(SourceKind, String), Option<BTreeMap<String, String>>>;

/// Why a container's environment cannot be built; the kubelet reports it as the waiting reason
/// `CreateContainerConfigError` with this message and retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A referenced, non-optional object is missing.
    #[error("{} \"{name}\" not found", kind.display())]
    NotFound {
        /// ConfigMap or Secret.
        kind: SourceKind,
        /// Its name.
        name: String,
    },
    /// A referenced, non-optional key is missing.
    #[error("couldn't find key {key} in {} {namespace}/{name}", match kind { SourceKind::ConfigMap => "ConfigMap", SourceKind::Secret => "Secret" })]
    KeyNotFound {
        /// ConfigMap or Secret.
        kind: SourceKind,
        /// Namespace.
        namespace: String,
        /// Object name.
        name: String,
        /// Missing key.
        key: String,
    },
    /// A `fieldRef` this kubelet does not know.
    #[error("unsupported fieldPath: {0}")]
    UnsupportedField(String),
}

/// The ConfigMaps and Secrets a container's environment reads.
pub fn referenced_sources(container: &Container) -> Vec<(SourceKind, String)> {
    let mut out = Vec::new();
    for from in container.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            out.push((SourceKind::ConfigMap, r.name.clone()));
        }
        if let Some(r) = &from.secret_ref {
            out.push((SourceKind::Secret, r.name.clone()));
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(vf) = &var.value_from {
            if let Some(r) = &vf.config_map_key_ref {
                out.push((SourceKind::ConfigMap, r.name.clone()));
            }
            if let Some(r) = &vf.secret_key_ref {
                out.push((SourceKind::Secret, r.name.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The value of a downward-API `fieldRef` path for `pod`.
pub fn field_ref(pod: &Pod, path: &str) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_prefix('[')?.strip_suffix(']')?;
        let key = rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\''));
        let key = key.or_else(|| rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')))?;
        Some(key.to_string())
    };
    let format_map = |m: Option<&BTreeMap<String, String>>| -> String {
        m.map(|m| m.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join("\n")).unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.hostIPs" => status
            .and_then(|s| s.host_ips.as_ref())
            .map(|ips| ips.iter().map(|i| i.ip.clone()).collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
        "status.podIPs" => status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().map(|i| i.ip.clone()).collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
        _ => {
            if let Some(k) = subscript("metadata.labels") {
                meta.labels.as_ref().and_then(|l| l.get(&k).cloned()).unwrap_or_default()
            } else if let Some(k) = subscript("metadata.annotations") {
                meta.annotations.as_ref().and_then(|l| l.get(&k).cloned()).unwrap_or_default()
            } else {
                return Err(EnvError::UnsupportedField(path.to_string()));
            }
        }
    })
}

fn is_valid_env_name(name: &str) -> bool {
    // Upstream (since 1.30 relaxed) accepts any printable ASCII except '='.
    !name.is_empty() && name.bytes().all(|b| (32..=126).contains(&b) && b != b'=')
}

/// The container's environment: `envFrom` entries first, then `env`, each `$(VAR)` in a value
/// expanded against the variables defined before it. Later entries override earlier ones, in place.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    sources: &EnvSources,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(slot) = out.iter_mut().find(|(n, _)| *n == k) {
            slot.1 = v;
        } else {
            out.push((k, v));
        }
    };
    let lookup =
        |kind: SourceKind, name: &str, optional: bool| -> Result<Option<&BTreeMap<String, String>>, EnvError> {
            match sources.get(&(kind, name.to_string())) {
                Some(Some(data)) => Ok(Some(data)),
                _ if optional => Ok(None),
                _ => Err(EnvError::NotFound { kind, name: name.to_string() }),
            }
        };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let mut apply = |kind, name: &str, optional: Option<bool>| -> Result<(), EnvError> {
            if let Some(data) = lookup(kind, name, optional.unwrap_or(false))? {
                for (k, v) in data {
                    let key = format!("{prefix}{k}");
                    if is_valid_env_name(&key) {
                        set(&mut out, key, v.clone());
                    }
                }
            }
            Ok(())
        };
        if let Some(r) = &from.config_map_ref {
            apply(SourceKind::ConfigMap, &r.name, r.optional)?;
        }
        if let Some(r) = &from.secret_ref {
            apply(SourceKind::Secret, &r.name, r.optional)?;
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(vf) = &var.value_from {
            if let Some(f) = &vf.field_ref {
                Some(field_ref(pod, &f.field_path)?)
            } else if let Some(r) = &vf.config_map_key_ref {
                key_ref(SourceKind::ConfigMap, &namespace, &r.name, &r.key, r.optional.unwrap_or(false), &lookup)?
            } else if let Some(r) = &vf.secret_key_ref {
                key_ref(SourceKind::Secret, &namespace, &r.name, &r.key, r.optional.unwrap_or(false), &lookup)?
            } else if let Some(r) = &vf.resource_field_ref {
                Some(resource_field(container, &r.resource))
            } else {
                Some(String::new())
            }
        } else {
            let mapping: HashMap<&str, &str> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Some(expand(var.value.as_deref().unwrap_or_default(), &mapping))
        };
        if let Some(v) = value {
            set(&mut out, var.name.clone(), v);
        }
    }
    Ok(out)
}

type SourceLookup<'a> = dyn Fn(SourceKind, &str, bool) -> Result<Option<&'a BTreeMap<String, String>>, EnvError> + 'a;

fn key_ref<'a>(
    kind: SourceKind,
    namespace: &str,
    name: &str,
    key: &str,
    optional: bool,
    lookup: &SourceLookup<'a>,
) -> Result<Option<String>, EnvError> {
    match lookup(kind, name, optional)? {
        Some(data) => match data.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(EnvError::KeyNotFound {
                kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
                key: key.to_string(),
            }),
        },
        None => Ok(None),
    }
}

/// `resourceFieldRef`: the container's limit (or request), whole cores rounded up for CPU and bytes
/// for memory; with nothing set, the node's allocatable stand-in (1 CPU, 1 Gi).
fn resource_field(container: &Container, resource: &str) -> String {
    let res = container.resources.as_ref();
    let (map, key) = match resource.split_once('.') {
        Some(("limits", k)) => (res.and_then(|r| r.limits.as_ref()), k),
        Some(("requests", k)) => (res.and_then(|r| r.requests.as_ref()), k),
        _ => (None, resource),
    };
    let q = map.and_then(|m| m.get(key)).map(|q| q.0.clone());
    match key {
        "cpu" => {
            q.and_then(|q| parse_cpu(&q)).map(|m| m.div_ceil(1000).max(1).to_string()).unwrap_or_else(|| "1".into())
        }
        _ => q.unwrap_or_else(|| (1u64 << 30).to_string()),
    }
}

fn parse_cpu(q: &str) -> Option<u64> {
    if let Some(m) = q.strip_suffix('m') {
        m.parse().ok()
    } else {
        q.parse::<f64>().ok().map(|c| (c * 1000.0).ceil() as u64)
    }
}

/// The kubelet's `$(VAR)` expansion: `$(NAME)` becomes the value of NAME when defined and stays
/// verbatim otherwise; `$$` is an escaped `$`; any other `$` is kept.
pub fn expand(input: &str, mapping: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match mapping.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Why the process executor cannot derive a command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the process executor cannot run image \"{image}\": its entrypoint is unknown here (the image is not pulled); \
     set the container's `command`"
)]
pub struct UnknownEntrypoint {
    /// The container's image.
    pub image: String,
}

/// The default CMD of well-known base images whose ENTRYPOINT is empty.
fn default_cmd(image: &str) -> Option<Vec<&'static str>> {
    // Strip registry, tag and digest: "docker.io/library/perl:5.34.0" -> "perl".
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    let repo = last.split(':').next().unwrap_or(last);
    Some(match repo {
        "busybox" | "alpine" => vec!["sh"],
        "ubuntu" | "debian" | "bash" | "fedora" | "centos" | "rockylinux" | "almalinux" | "amazonlinux" => vec!["bash"],
        "perl" => vec!["perl", "-de0"],
        "python" => vec!["python3"],
        "node" => vec!["node"],
        "ruby" => vec!["irb"],
        "golang" => vec!["bash"],
        _ => return None,
    })
}

/// The argv to run, with `$(VAR)` expanded against the container's environment: `command` +
/// `args`; with no `command`, a known base image's empty entrypoint lets `args` (or its default CMD)
/// run; any other image is an error.
pub fn command_line(container: &Container, env: &[(String, String)]) -> Result<Vec<String>, UnknownEntrypoint> {
    let mapping: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    let argv: Vec<String> = if !command.is_empty() {
        command.into_iter().chain(args).collect()
    } else {
        let image = container.image.clone().unwrap_or_default();
        let cmd = default_cmd(&image).ok_or(UnknownEntrypoint { image })?;
        if args.is_empty() { cmd.into_iter().map(String::from).collect() } else { args }
    };
    Ok(argv.iter().map(|a| expand(a, &mapping)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "pi-0", "namespace": "default", "uid": "u-1",
                "labels": {"app": "pi"},
                "annotations": {"batch.kubernetes.io/job-completion-index": "3"}},
            "spec": {"nodeName": "node-0", "serviceAccountName": "default", "containers": []},
            "status": {"hostIP": "127.0.0.1", "podIP": "127.0.0.1"}
        }))
        .unwrap()
    }

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn expansion_follows_kubelet_rules() {
        let m: HashMap<&str, &str> = [("A", "1"), ("B", "two")].into_iter().collect();
        let cases = [
            ("$(A)", "1"),
            ("x$(A)y$(B)z", "x1ytwoz"),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$$(A)", "$(A)"),
            ("$$", "$"),
            ("$A", "$A"),
            ("$(A", "$(A"),
            ("cost: $5", "cost: $5"),
            ("", ""),
            ("$", "$"),
            ("$()", "$()"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &m), want, "input {input:?}");
        }
    }

    #[test]
    fn downward_api_fields() {
        let p = pod();
        let cases = [
            ("metadata.name", "pi-0"),
            ("metadata.namespace", "default"),
            ("metadata.uid", "u-1"),
            ("metadata.labels['app']", "pi"),
            ("metadata.annotations['batch.kubernetes.io/job-completion-index']", "3"),
            ("metadata.labels['missing']", ""),
            ("spec.nodeName", "node-0"),
            ("spec.serviceAccountName", "default"),
            ("status.podIP", "127.0.0.1"),
            ("status.hostIP", "127.0.0.1"),
            ("metadata.labels", "app=\"pi\""),
        ];
        for (path, want) in cases {
            assert_eq!(field_ref(&p, path).unwrap(), want, "path {path}");
        }
        assert_eq!(field_ref(&p, "spec.bogus"), Err(EnvError::UnsupportedField("spec.bogus".into())));
    }

    #[test]
    fn env_order_override_and_expansion() {
        let c = container(json!({
            "name": "c",
            "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
            "env": [
                {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
                {"name": "GREETING", "value": "hello $(CM_who) #$(JOB_COMPLETION_INDEX) $(LATER)"},
                {"name": "CM_who", "value": "override"},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                {"name": "LATER", "value": "x"},
            ]
        }));
        let mut sources = EnvSources::new();
        sources.insert((SourceKind::ConfigMap, "cm".into()), Some([("who".to_string(), "world".to_string())].into()));
        sources.insert((SourceKind::Secret, "s".into()), Some([("pw".to_string(), "hunter2".to_string())].into()));
        assert_eq!(
            referenced_sources(&c),
            vec![(SourceKind::ConfigMap, "cm".into()), (SourceKind::Secret, "s".into())]
        );
        let env = container_env(&pod(), &c, &sources).unwrap();
        let want: Vec<(String, String)> = [
            ("CM_who", "override"),
            ("JOB_COMPLETION_INDEX", "3"),
            ("GREETING", "hello world #3 $(LATER)"),
            ("PASSWORD", "hunter2"),
            ("LATER", "x"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(env, want);
    }

    #[test]
    fn missing_sources_fail_unless_optional() {
        let required = container(json!({"name": "c", "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}));
        let optional = container(json!({"name": "c", "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": true}}}],
            "envFrom": [{"secretRef": {"name": "nope", "optional": true}}]}));
        let mut sources = EnvSources::new();
        sources.insert((SourceKind::ConfigMap, "cm".into()), None);
        let err = container_env(&pod(), &required, &sources).unwrap_err();
        assert_eq!(err.to_string(), "configmap \"cm\" not found");
        assert_eq!(container_env(&pod(), &optional, &sources).unwrap(), vec![]);
        sources.insert((SourceKind::ConfigMap, "cm".into()), Some(BTreeMap::new()));
        let err = container_env(&pod(), &required, &sources).unwrap_err();
        assert_eq!(err.to_string(), "couldn't find key k in ConfigMap default/cm");
        assert_eq!(container_env(&pod(), &optional, &sources).unwrap(), vec![]);
    }

    #[test]
    fn command_line_resolution() {
        let env = vec![("N".to_string(), "500".to_string())];
        let cases: Vec<(serde_json::Value, Result<Vec<&str>, ()>)> = vec![
            (
                json!({"name": "c", "image": "nginx", "command": ["echo"], "args": ["Hello, World!"]}),
                Ok(vec!["echo", "Hello, World!"]),
            ),
            (
                json!({"name": "c", "image": "perl:5.34.0", "command": ["perl", "-Mbignum=bpi", "-wle", "print bpi($(N))"]}),
                Ok(vec!["perl", "-Mbignum=bpi", "-wle", "print bpi(500)"]),
            ),
            (json!({"name": "c", "image": "busybox:1.36", "args": ["echo", "$(N)"]}), Ok(vec!["echo", "500"])),
            (json!({"name": "c", "image": "docker.io/library/ubuntu:24.04"}), Ok(vec!["bash"])),
            (json!({"name": "c", "image": "alpine@sha256:abc"}), Ok(vec!["sh"])),
            (json!({"name": "c", "image": "registry.example.com:5000/team/busybox"}), Ok(vec!["sh"])),
            (json!({"name": "c", "image": "nginx:1.27"}), Err(())),
            (json!({"name": "c", "image": "myapp", "args": ["--flag"]}), Err(())),
            (json!({"name": "c"}), Err(())),
        ];
        for (c, want) in cases {
            let got = command_line(&container(c.clone()), &env);
            match want {
                Ok(argv) => assert_eq!(got.unwrap(), argv, "{c}"),
                Err(()) => {
                    let e = got.unwrap_err();
                    assert!(e.to_string().contains("set the container's `command`"), "{c}: {e}");
                }
            }
        }
    }
}
