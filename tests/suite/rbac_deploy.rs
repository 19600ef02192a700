//! The proof that `deploy/rbac.yaml` is sufficient and minimal.
//!
//! An API server enforcing RBAC gets deploy/'s Namespace, ServiceAccount and RBAC objects (applied
//! by an admin with kubectl). The controller then runs exactly as deployed
//! ([`Ops::run_controllers`], what `jobwright controller` runs: leader election on, Job controller,
//! TTL controller, deploy/deployment.yaml's flags, the default [`Options`], so `--crd-jobs auto`
//! with the CRD installed, plus `--cronjob-controller` for deploy/'s CronJob role) with a client authenticated as the deploy ServiceAccount, while a
//! scripted kubelet (admin) plays the pods. Jobs that together take every path needing a
//! permission run to their expected conditions, each as a batch/v1 Job and as a `jobwright.dev/v1`
//! Job (name ending `-wjob`):
//!
//! | Job | path | permissions it needs |
//! |---|---|---|
//! | `many-pods` | 11 pods created, finished, counted | pods create (+ jobs/finalizers update: `blockOwnerDeletion`), pods patch (tracking finalizer), jobs/status update, events create, events patch (from the tenth similar SuccessfulCreate on, one combined event: the eleventh is a series update) |
//! | `deadline` | activeDeadlineSeconds on running pods | pods delete |
//! | `ttl` | ttlSecondsAfterFinished | jobs get (live re-read), jobs delete |
//! | `gone` | Job deleted under a running pod | jobs get (live check the owner is gone), pods patch |
//! | `tick` (CronJob, `@every 1s`, history limit 0, its Jobs `managedBy` jobwright) | a Job started, completed, deleted as history; a stray Job it controls | cronjobs list + watch, jobs create (+ cronjobs/finalizers update), cronjobs/status update, jobs delete, cronjobs get (live re-read before `UnexpectedJob`) |
//! | all | informers; leader election | jobs/pods list + watch; leases create, get, patch |
//!
//! Sufficiency: every Job reaches its condition and the decision log holds no denial for the
//! ServiceAccount. Minimality: every (apiGroup, resource, verb, resourceName) deploy/ grants is
//! used by at least one allowed request of the ServiceAccount.

use crate::controller_support;

use clap::Parser;
use controller_support::{
    COMBINED_CREATED, Jobs, Kind, Outcome, WAIT, condition, event_count, has_condition, job, kubelet, wait_events,
};
use jobwright::apiserver::auth::Decision;
use jobwright::apiserver::rbac::{self, Attributes};
use jobwright::apiserver::testkit::TestApiServer;
use jobwright::job::controller::Options;
use jobwright::ops::{Ops, OpsArgs};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde_json::{Value, json};

/// The deploy ServiceAccount's user.
const CONTROLLER_USER: &str = "system:serviceaccount:jobwright-system:jobwright-controller";

#[derive(Parser)]
struct ControllerFlags {
    #[command(flatten)]
    ops: OpsArgs,
}

/// One granted permission: a single verb on a single resource (and name, if limited).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    kind: String,
    group: String,
    resource: String,
    verb: String,
    resource_name: String,
}

impl Grant {
    fn allows(&self, a: &Attributes) -> bool {
        let mut rule = json!({"apiGroups": [self.group], "resources": [self.resource], "verbs": [self.verb]});
        if !self.resource_name.is_empty() {
            rule["resourceNames"] = json!([self.resource_name]);
        }
        rbac::rule_allows(&rule, a)
    }
}

/// Every grant of deploy/rbac.yaml's ClusterRole and Role, one per verb × resource × name.
fn deploy_grants() -> Vec<Grant> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rbac.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let mut out = vec![];
    for d in docs.iter().filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role") {
        for rule in d["rules"].as_array().unwrap() {
            let list = |k: &str| -> Vec<String> {
                rule[k]
                    .as_array()
                    .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default()
            };
            let names = if list("resourceNames").is_empty() { vec![String::new()] } else { list("resourceNames") };
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        for name in &names {
                            out.push(Grant {
                                kind: d["kind"].as_str().unwrap().into(),
                                group: group.clone(),
                                resource: resource.clone(),
                                verb: verb.clone(),
                                resource_name: name.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

fn managed(name: &str, mut spec: Value) -> Job {
    spec["managedBy"] = json!(jobwright::job::config::MANAGED_BY);
    job(name, spec)
}

fn describe(a: &Attributes) -> String {
    let res = if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
    format!("{} {}:{} ns={:?} name={:?}", a.verb, a.group, res, a.namespace, a.name)
}

#[tokio::test]
async fn deploy_rbac_is_sufficient_and_minimal() {
    let server = TestApiServer::start_rbac().await;
    let admin = server.client();

    // 1. deploy/'s namespace, ServiceAccount and RBAC, applied by an admin.
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    let kubectl = server.kubectl();
    let out = kubectl
        .ok(&[
            "apply",
            "-f",
            &format!("{deploy}/namespace.yaml"),
            "-f",
            &format!("{deploy}/serviceaccount.yaml"),
            "-f",
            &format!("{deploy}/rbac.yaml"),
        ])
        .await;
    assert!(out.contains("clusterrole.rbac.authorization.k8s.io/jobwright-controller created"), "{out}");

    // 2. The controller as deployed, as the deploy ServiceAccount.
    let token = server.service_account_token("jobwright-system", "jobwright-controller");
    let flags = ControllerFlags::parse_from([
        "controller",
        "--leader-elect",
        "--leader-elect-resource-name=jobwright-controller",
        "--leader-elect-resource-namespace=jobwright-system",
        "--leader-elect-identity=jobwright-controller-0",
        "--leader-elect-lease-duration=15",
        "--leader-elect-renew-deadline=10",
        "--admin-listen=127.0.0.1:0",
    ]);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let ops = Ops::start_with_shutdown(&flags.ops, server.config_with_token(Some(&token)), shutdown.clone())
        .await
        .expect("ops start (leader election) as the ServiceAccount");
    // The CRD is installed before the controller starts (`--crd-jobs auto` finds it in discovery).
    let batch_jobs = Jobs::new(&admin, Kind::Batch).await;
    let crd_jobs = Jobs::new(&admin, Kind::Crd).await;
    let opts = Options { cronjob_controller: true, ..Options::default() };
    let controller = tokio::spawn(async move { ops.run_controllers(&flags.ops, opts).await });

    // 3. The kubelet (admin): pods of `deadline` and `gone` run until killed, the others succeed.
    let _kubelet = kubelet(admin.clone(), "default", |pod: &Pod, _| {
        match pod.labels().get("batch.kubernetes.io/job-name").map(String::as_str) {
            Some("deadline" | "gone" | "deadline-wjob" | "gone-wjob") => Outcome::Run,
            _ => Outcome::Succeed,
        }
    })
    .await;
    // The scenario runs in a task so that, if it fails, the denials that caused it are shown.
    let scenario = tokio::spawn({
        let admin = admin.clone();
        async move {
            futures::join!(
                scenario(admin.clone(), batch_jobs, ""),
                scenario(admin.clone(), crd_jobs, "-wjob"),
                cronjob_scenario(admin.clone())
            );
            controller_support::wait_no_tracking_finalizer(&admin).await;
        }
    });
    if let Err(e) = scenario.await {
        let denied: Vec<String> = server
            .authorization_decisions()
            .iter()
            .filter(|d| d.user == CONTROLLER_USER && !d.allowed)
            .map(|d| describe(&d.attributes))
            .collect();
        eprintln!("the controller's denied requests: {denied:#?}");
        let mut asked: Vec<String> = server
            .authorization_decisions()
            .iter()
            .filter(|d| d.user == CONTROLLER_USER)
            .map(|d| describe(&d.attributes))
            .collect();
        asked.dedup();
        eprintln!("all the controller's requests: {asked:#?}");
        std::panic::resume_unwind(e.into_panic());
    }

    // 4. Stop: the elector releases the Lease (a patch) and everything exits cleanly.
    shutdown.cancel();
    tokio::time::timeout(WAIT, controller).await.expect("controller stops").unwrap().expect("clean exit");

    let decisions: Vec<Decision> =
        server.authorization_decisions().into_iter().filter(|d| d.user == CONTROLLER_USER).collect();

    // Sufficiency: nothing the controller asked was denied.
    let denied: Vec<String> = decisions.iter().filter(|d| !d.allowed).map(|d| describe(&d.attributes)).collect();
    assert!(denied.is_empty(), "deploy/rbac.yaml is not sufficient; denied: {denied:#?}");
    assert!(decisions.iter().all(|d| d.by != "system:masters"));

    // Minimality: every grant was used by an allowed resource request.
    let grants = deploy_grants();
    assert!(grants.len() > 10, "{grants:?}");
    let unused: Vec<&Grant> = grants
        .iter()
        .filter(|g| !decisions.iter().any(|d| d.allowed && d.by == "RBAC" && g.allows(&d.attributes)))
        .collect();
    assert!(unused.is_empty(), "deploy/rbac.yaml is not minimal; never used: {unused:#?}");
    // And nothing outside the grants was allowed to it, discovery paths aside.
    let outside: Vec<String> = decisions
        .iter()
        .filter(|d| d.by == "RBAC" && !grants.iter().any(|g| g.allows(&d.attributes)))
        .map(|d| describe(&d.attributes))
        .collect();
    assert!(outside.is_empty(), "{outside:#?}");
}

/// The Jobs of one kind, each waited for to its expected condition (see the module docs); names
/// end in `suffix` so both kinds run side by side.
async fn scenario(admin: kube::Client, jobs: Jobs, suffix: &'static str) {
    let n = |base: &str| format!("{base}{suffix}");
    // 11 pods, all succeed
    jobs.create(&managed(&n("many-pods"), json!({"parallelism": 11, "completions": 11}))).await;
    // running pods past the deadline are deleted
    jobs.create(&managed(&n("deadline"), json!({"parallelism": 2, "activeDeadlineSeconds": 1}))).await;
    // deleted by the TTL controller one second after it completes
    let ttl = jobs.create(&managed(&n("ttl"), json!({"ttlSecondsAfterFinished": 1}))).await;
    // deleted under its running pod
    let gone = jobs.create(&managed(&n("gone"), json!({}))).await;

    // `ttl` first: it is gone one second after it completes.
    let finished = jobs.wait_condition(&n("ttl"), "Complete").await;
    assert_eq!(finished.spec.as_ref().unwrap().ttl_seconds_after_finished, Some(1));
    jobs.wait_deleted(&n("ttl"), &ttl.uid().unwrap()).await;
    let done = jobs.wait_condition(&n("many-pods"), "Complete").await;
    assert_eq!(done.status.as_ref().unwrap().succeeded, Some(11));
    // The 11th creation event joins the combined one, with an events patch (the grant the
    // minimality check needs); events are written after the status, so await it.
    wait_events(&admin, &n("many-pods"), |evs| {
        evs.iter().any(|e| e.message.as_deref().is_some_and(|m| m.starts_with(COMBINED_CREATED)) && event_count(e) >= 2)
    })
    .await;
    let failed = jobs.wait_condition(&n("deadline"), "Failed").await;
    assert_eq!(condition(&failed, "Failed").reason.as_deref(), Some("DeadlineExceeded"));

    let running = jobs
        .wait(&n("gone"), "an active, ready pod", |j: Option<&Job>| {
            j.and_then(|j| j.status.as_ref()).is_some_and(|s| s.ready == Some(1))
        })
        .await;
    assert!(!has_condition(Some(&running), "Complete"));
    let pod = controller_support::job_pods(&admin, &gone).await.pop().expect("the pod of `gone`");
    assert!(jobwright::job::pods::has_tracking_finalizer(&pod));
    assert_eq!(pod.owner_references()[0].api_version, jobs.kind.api_version());
    jobs.delete(&n("gone"), kube::api::PropagationPolicy::Background).await;
    controller_support::wait_no_tracking_finalizer_on(&admin, &pod.name_any()).await;
}

/// A CronJob every second with no history kept: its first Job is created, completes and is deleted
/// as history; a Job the admin creates under it (controller reference, not in `status.active`) is
/// re-checked live before the `UnexpectedJob` warning.
async fn cronjob_scenario(admin: kube::Client) {
    use k8s_openapi::api::batch::v1::CronJob;
    use kube::api::{Api, PostParams};
    let api: Api<CronJob> = Api::default_namespaced(admin.clone());
    let cj: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "tick"},
        "spec": {"schedule": "@every 1s", "successfulJobsHistoryLimit": 0,
            "jobTemplate": {"spec": {"managedBy": jobwright::job::config::MANAGED_BY,
                "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox"}]}}}}}
    }))
    .unwrap();
    let cj = api.create(&PostParams::default(), &cj).await.unwrap();
    let mut stray = job("tick-stray", json!({}));
    stray.metadata.owner_references = Some(vec![jobwright::cronjob::sync::controller_ref(&cj)]);
    Api::<Job>::default_namespaced(admin.clone()).create(&PostParams::default(), &stray).await.unwrap();
    let reason =
        |evs: &[k8s_openapi::api::core::v1::Event], r: &str| evs.iter().any(|e| e.reason.as_deref() == Some(r));
    wait_events(&admin, "tick", |evs| {
        reason(evs, "SuccessfulCreate") && reason(evs, "SuccessfulDelete") && reason(evs, "UnexpectedJob")
    })
    .await;
}
