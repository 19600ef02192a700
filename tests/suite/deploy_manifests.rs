//! deploy/ and crds/ parse into the k8s-openapi types without losing a field, and say what the
//! README and the controller rely on: least-privilege RBAC, a hardened 2-replica Deployment whose
//! flags the binary accepts, probes on the admin port, a PDB and a metrics Service.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use clap::Parser;
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Container, Namespace, Service, ServiceAccount},
        policy::v1::PodDisruptionBudget,
        rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::util::intstr::IntOrString,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

const NAMESPACE: &str = "jobwright-system";
const SERVICE_ACCOUNT: &str = "jobwright-controller";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every document of a YAML file, as JSON values (comments and empty documents dropped).
fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Deserializes into the typed object and checks that serializing it back gives the same JSON:
/// a misspelt or misplaced field would be dropped by the typed round trip and fail here.
fn typed<T: DeserializeOwned + serde::Serialize>(doc: &Value, file: &str) -> T {
    let obj: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let back = serde_json::to_value(&obj).unwrap();
    assert_eq!(&back, doc, "{file}: a field was not understood by the typed round trip");
    obj
}

/// All objects of deploy/ (via its kustomization) keyed by (kind, name).
struct Manifests {
    objects: BTreeMap<(String, String), Value>,
}

impl Manifests {
    fn load() -> Self {
        let deploy = root().join("deploy");
        let kustomization = &docs(&deploy.join("kustomization.yaml"))[0];
        let mut objects = BTreeMap::new();
        for resource in kustomization["resources"].as_array().unwrap() {
            let resource = resource.as_str().unwrap();
            let path = deploy.join(resource);
            let files: Vec<PathBuf> = if path.is_dir() {
                let k = &docs(&path.join("kustomization.yaml"))[0];
                k["resources"].as_array().unwrap().iter().map(|r| path.join(r.as_str().unwrap())).collect()
            } else {
                vec![path]
            };
            for file in files {
                for doc in docs(&file) {
                    let key = (
                        doc["kind"].as_str().unwrap().to_string(),
                        doc["metadata"]["name"].as_str().unwrap().to_string(),
                    );
                    assert!(objects.insert(key.clone(), doc).is_none(), "duplicate {key:?}");
                }
            }
        }
        Self { objects }
    }

    fn get<T: DeserializeOwned + serde::Serialize>(&self, kind: &str, name: &str) -> T {
        let doc = self
            .objects
            .get(&(kind.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("no {kind} {name} in deploy/"));
        typed(doc, &format!("{kind}/{name}"))
    }
}

#[test]
fn kustomization_lists_every_manifest_file() {
    let deploy = root().join("deploy");
    let listed: BTreeSet<String> = docs(&deploy.join("kustomization.yaml"))[0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let mut on_disk: BTreeSet<String> = std::fs::read_dir(&deploy)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    on_disk.insert("../crds".to_string());
    assert_eq!(listed, on_disk);
    let crds: BTreeSet<String> = docs(&root().join("crds/kustomization.yaml"))[0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert_eq!(crds, BTreeSet::from([jobwright::crd::CRD_PATH.trim_start_matches("crds/").to_string()]));
}

#[test]
fn every_object_parses_into_its_typed_kind_losslessly() {
    let m = Manifests::load();
    let kinds: BTreeSet<&str> = m.objects.keys().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "Namespace",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ])
    );
    for ((kind, name), doc) in &m.objects {
        let file = format!("{kind}/{name}");
        match kind.as_str() {
            "ClusterRole" => drop(typed::<ClusterRole>(doc, &file)),
            "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(doc, &file)),
            "CustomResourceDefinition" => drop(typed::<CustomResourceDefinition>(doc, &file)),
            "Deployment" => drop(typed::<Deployment>(doc, &file)),
            "Namespace" => drop(typed::<Namespace>(doc, &file)),
            "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(doc, &file)),
            "Role" => drop(typed::<Role>(doc, &file)),
            "RoleBinding" => drop(typed::<RoleBinding>(doc, &file)),
            "Service" => drop(typed::<Service>(doc, &file)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(doc, &file)),
            other => panic!("unexpected kind {other}"),
        }
        let namespaced =
            !matches!(kind.as_str(), "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition" | "Namespace");
        let ns = doc["metadata"]["namespace"].as_str();
        if namespaced {
            assert_eq!(ns, Some(NAMESPACE), "{file} namespace");
        } else {
            assert_eq!(ns, None, "{file} is cluster-scoped");
        }
    }
    let crd: CustomResourceDefinition = m.get("CustomResourceDefinition", "jobs.jobwright.dev");
    assert_eq!(crd, jobwright::crd::crd());
}

fn rules(rules: &[PolicyRule]) -> BTreeSet<(String, String, String, Vec<String>)> {
    let mut out = BTreeSet::new();
    for r in rules {
        let names = r.resource_names.clone().unwrap_or_default();
        for g in r.api_groups.as_deref().unwrap_or_default() {
            for res in r.resources.as_deref().unwrap_or_default() {
                for v in &r.verbs {
                    out.insert((g.clone(), res.clone(), v.clone(), names.clone()));
                }
            }
        }
    }
    out
}

fn expected(table: &[(&str, &str, &[&str])], names: &[&str]) -> BTreeSet<(String, String, String, Vec<String>)> {
    table
        .iter()
        .flat_map(|(g, r, verbs)| {
            verbs.iter().map(move |v| {
                (g.to_string(), r.to_string(), v.to_string(), names.iter().map(|n| n.to_string()).collect())
            })
        })
        .collect()
}

/// The exact grants: changing them must be a conscious edit of this table and rbac.yaml's comments
/// (tests/suite/rbac_deploy.rs proves against an RBAC-enforcing server that they are sufficient and minimal).
#[test]
fn rbac_is_exactly_the_least_privilege_set() {
    let m = Manifests::load();
    let cluster: ClusterRole = m.get("ClusterRole", "jobwright-controller");
    let want = expected(
        &[
            ("batch", "jobs", &["get", "list", "watch", "delete"]),
            ("batch", "jobs/status", &["update"]),
            ("batch", "jobs/finalizers", &["update"]),
            ("jobwright.dev", "jobs", &["get", "list", "watch", "delete"]),
            ("jobwright.dev", "jobs/status", &["update"]),
            ("jobwright.dev", "jobs/finalizers", &["update"]),
            ("", "pods", &["list", "watch", "create", "delete", "patch"]),
            ("events.k8s.io", "events", &["create", "patch"]),
        ],
        &[],
    );
    assert_eq!(rules(cluster.rules.as_deref().unwrap()), want);
    for r in cluster.rules.as_deref().unwrap() {
        for field in [&r.api_groups, &r.resources] {
            assert!(!field.as_deref().unwrap().iter().any(|s| s == "*"), "no wildcards: {r:?}");
        }
        assert!(!r.verbs.iter().any(|v| v == "*"), "no wildcard verbs: {r:?}");
    }

    let cron: ClusterRole = m.get("ClusterRole", "jobwright-cronjob-controller");
    let want = expected(
        &[
            ("batch", "cronjobs", &["get", "list", "watch"]),
            ("batch", "cronjobs/status", &["update"]),
            ("batch", "cronjobs/finalizers", &["update"]),
            ("batch", "jobs", &["create"]),
        ],
        &[],
    );
    assert_eq!(rules(cron.rules.as_deref().unwrap()), want);
    let crb: ClusterRoleBinding = m.get("ClusterRoleBinding", "jobwright-cronjob-controller");
    assert_eq!(crb.role_ref.name, "jobwright-cronjob-controller");
    assert_eq!(crb.subjects.unwrap()[0].name, SERVICE_ACCOUNT);

    let role: Role = m.get("Role", "jobwright-leader-election");
    let mut want = expected(&[("coordination.k8s.io", "leases", &["create"])], &[]);
    want.extend(expected(
        &[("coordination.k8s.io", "leases", &["get", "patch"])],
        &[jobwright::leader::DEFAULT_LEASE_NAME],
    ));
    assert_eq!(rules(role.rules.as_deref().unwrap()), want);

    let crb: ClusterRoleBinding = m.get("ClusterRoleBinding", "jobwright-controller");
    assert_eq!((crb.role_ref.kind.as_str(), crb.role_ref.name.as_str()), ("ClusterRole", "jobwright-controller"));
    let rb: RoleBinding = m.get("RoleBinding", "jobwright-leader-election");
    assert_eq!((rb.role_ref.kind.as_str(), rb.role_ref.name.as_str()), ("Role", "jobwright-leader-election"));
    for subjects in [crb.subjects.unwrap(), rb.subjects.unwrap()] {
        assert_eq!(subjects.len(), 1);
        let s = &subjects[0];
        assert_eq!(
            (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()),
            ("ServiceAccount", SERVICE_ACCOUNT, Some(NAMESPACE))
        );
    }
    let _: ServiceAccount = m.get("ServiceAccount", SERVICE_ACCOUNT);
}

/// The flags the controller subcommand is expected to flatten.
#[derive(Parser, Debug)]
struct ControllerFlags {
    #[command(flatten)]
    ops: jobwright::ops::OpsArgs,
}

fn controller(deployment: &Deployment) -> Container {
    let pod = deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.containers.len(), 1);
    pod.containers[0].clone()
}

#[test]
fn deployment_is_two_hardened_replicas_with_probes_on_the_admin_port() {
    let m = Manifests::load();
    let d: Deployment = m.get("Deployment", "jobwright-controller");
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod_labels = spec.template.metadata.as_ref().unwrap().labels.clone().unwrap();
    let selector = spec.selector.match_labels.clone().unwrap();
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)), "selector matches the template");
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(SERVICE_ACCOUNT));
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");

    let c = controller(&d);
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");

    let res = c.resources.as_ref().unwrap();
    for key in ["cpu", "memory"] {
        assert!(res.requests.as_ref().unwrap().contains_key(key), "request {key}");
        assert!(res.limits.as_ref().unwrap().contains_key(key), "limit {key}");
    }

    // Args: the `controller` subcommand and flags the library's arg groups accept.
    let args = c.args.clone().unwrap();
    assert_eq!(args[0], "controller");
    let flags =
        ControllerFlags::try_parse_from(std::iter::once("jobwright").chain(args[1..].iter().map(String::as_str)))
            .unwrap_or_else(|e| panic!("deployment args do not parse: {e}"));
    let flags = flags.ops;
    assert!(flags.leader.leader_elect);
    assert_eq!(flags.leader.leader_elect_resource_name, jobwright::leader::DEFAULT_LEASE_NAME);
    flags.leader.config().expect("valid election timing");
    assert_eq!(flags.telemetry.log_format, jobwright::telemetry::LogFormat::Json);
    let admin_port = flags.admin.admin_listen.port();

    // Downward API: identity and lease namespace.
    let env = c.env.clone().unwrap();
    for (name, path) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let var = env.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("env {name}"));
        let field = var.value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
        assert_eq!(field.field_path, path);
    }

    // Probes hit the admin server's endpoints on the named admin port.
    let ports = c.ports.clone().unwrap();
    let admin = ports.iter().find(|p| p.name.as_deref() == Some("admin")).expect("admin port");
    assert_eq!(admin.container_port, i32::from(admin_port));
    for (probe, path) in [(&c.liveness_probe, "/healthz"), (&c.readiness_probe, "/readyz")] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::String("admin".into()));
    }

    // The PDB and the metrics Service select these pods; the Service targets the admin port.
    let pdb: PodDisruptionBudget = m.get("PodDisruptionBudget", "jobwright-controller");
    let pdb_spec = pdb.spec.unwrap();
    assert_eq!(pdb_spec.min_available, Some(IntOrString::Int(1)));
    assert_eq!(pdb_spec.selector.unwrap().match_labels.unwrap(), selector);
    let svc: Service = m.get("Service", "jobwright-metrics");
    let svc_spec = svc.spec.unwrap();
    assert!(svc_spec.selector.unwrap().iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    let port = &svc_spec.ports.unwrap()[0];
    assert_eq!(port.name.as_deref(), Some("metrics"));
    assert_eq!(port.target_port, Some(IntOrString::String("admin".into())));
}

#[test]
fn dockerfile_runs_the_binary_as_nonroot() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let from: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "multi-stage: {from:?}");
    assert!(from[1].contains("gcr.io/distroless/cc-debian12:nonroot"), "{from:?}");
    assert!(text.lines().any(|l| l.trim() == "USER nonroot:nonroot" || l.trim() == "USER nonroot"));
    assert!(text.contains(r#"ENTRYPOINT ["/jobwright"]"#));
    assert!(text.contains(r#"CMD ["controller"]"#));
    assert!(root().join(".dockerignore").exists());
    // Every workspace member's sources and manifest reach the build stage.
    let manifest: toml_members::Members = toml_members::read(&root().join("Cargo.toml"));
    for member in manifest.0.iter().filter(|m| m.as_str() != ".") {
        assert!(text.contains(&format!("COPY {member}/Cargo.toml {member}/")), "{member}'s manifest is not copied");
        let top = member.split('/').next().unwrap();
        assert!(text.lines().any(|l| l.trim() == format!("COPY {top} ./{top}")), "{member}'s sources are not copied");
        assert!(text.contains(&format!("{member}/src/lib.rs")), "{member} is not stubbed");
    }
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(!ignore.lines().any(|l| l.trim_end_matches('/') == "crates"), "crates/ must reach the image");
}

/// The `[workspace] members` of a Cargo.toml (a line-level read: the list is one line).
mod toml_members {
    pub struct Members(pub Vec<String>);
    pub fn read(path: &std::path::Path) -> Members {
        let text = std::fs::read_to_string(path).unwrap();
        let line = text.lines().find(|l| l.starts_with("members")).expect("a [workspace] members line");
        let list = line.split_once('[').unwrap().1.split_once(']').unwrap().0;
        Members(list.split(',').map(|m| m.trim().trim_matches('"').to_string()).filter(|m| !m.is_empty()).collect())
    }
}

/// Runs the real kubectl against `server`; returns (success, stdout+stderr).
async fn kubectl(server: &jobwright::apiserver::testkit::TestApiServer, args: &[&str]) -> (bool, String) {
    let out = server.kubectl().run(args).await;
    (out.success, format!("{}{}", out.stdout, out.stderr))
}

/// `kubectl apply -k deploy/` creates every object, after which a server-side dry run succeeds.
/// (A dry run on an empty cluster fails on the namespaced objects with `namespaces
/// "jobwright-system" not found`, exactly as against kube-apiserver, because the Namespace is
/// only dry-run created.) Client-side validation is on, as users run it.
#[tokio::test]
async fn kubectl_applies_deploy_and_server_dry_run_succeeds() {
    let server = jobwright::apiserver::testkit::TestApiServer::start().await;
    let deploy = root().join("deploy");
    let deploy = deploy.to_str().unwrap();
    let (ok, out) = kubectl(&server, &["apply", "-k", deploy]).await;
    assert!(ok, "{out}");
    for line in [
        "namespace/jobwright-system created",
        "customresourcedefinition.apiextensions.k8s.io/jobs.jobwright.dev created",
        "deployment.apps/jobwright-controller created",
        "poddisruptionbudget.policy/jobwright-controller created",
        "clusterrole.rbac.authorization.k8s.io/jobwright-controller created",
        "role.rbac.authorization.k8s.io/jobwright-leader-election created",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in:\n{out}");
    }
    let (ok, out) = kubectl(&server, &["apply", "--dry-run=server", "-k", deploy]).await;
    assert!(ok, "{out}");
    assert!(out.contains("(server dry run)"), "{out}");

    let (ok, out) = kubectl(
        &server,
        &["get", "deployment", "-n", "jobwright-system", "jobwright-controller", "-o", "jsonpath={.spec.replicas}"],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "2");
}

/// `jobwright crd` prints exactly what crds/ holds.
#[test]
fn crd_subcommand_prints_the_crds_file() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jobwright")).arg("crd").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let on_disk = std::fs::read_to_string(root().join(jobwright::crd::CRD_PATH)).unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == on_disk,
        "{} is stale; regenerate it with `{}`",
        jobwright::crd::CRD_PATH,
        jobwright::crd::REGENERATE_COMMAND
    );
}
