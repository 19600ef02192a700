//! The generated CRD installed in the API server: `jobwright.dev/v1` Jobs work through kube's
//! typed API exactly like batch/v1 Jobs (spec round trip, status subresource, short name).

use jobwright::{apiserver::testkit::TestApiServer, crd};
use k8s_openapi::{
    api::batch::v1::{JobCondition, JobStatus},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

fn manifest() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "jobwright.dev/v1",
        "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default"},
        "spec": {
            "completions": 3,
            "parallelism": 2,
            "completionMode": "Indexed",
            "backoffLimitPerIndex": 1,
            "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]},
            "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "pi", "image": "perl:5.34.0", "command": ["perl", "-e", "print 1"],
                 "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}
            ]}}
        }
    })
}

#[tokio::test]
async fn custom_jobs_round_trip_spec_and_status_through_the_api_server() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd::crd()).await.unwrap();

    let jobs: Api<crd::Job> = Api::namespaced(client.clone(), "default");
    let job: crd::Job = serde_json::from_value(manifest()).unwrap();
    let created = jobs.create(&PostParams::default(), &job).await.unwrap();
    assert_eq!(created.spec, job.spec, "the server kept every spec field");
    assert!(created.metadata.uid.is_some());

    // Status goes through the status subresource, as the controller will write it.
    let status = JobStatus {
        active: Some(2),
        ready: Some(1),
        terminating: Some(0),
        conditions: Some(vec![JobCondition {
            type_: "Suspended".into(),
            status: "False".into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let patch = serde_json::json!({"status": status});
    let patched = jobs.patch_status("pi", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    assert_eq!(patched.status.as_ref().unwrap().active, Some(2));
    assert_eq!(patched.spec, job.spec, "a status write leaves the spec alone");

    let listed = jobs.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].status, patched.status);

    // The batch/v1 view of the same object is what the shared controller code sees.
    let batch = listed.items[0].to_batch();
    assert_eq!(batch.spec.as_ref().unwrap().completions, Some(3));
    assert_eq!(batch.status.as_ref().unwrap().ready, Some(1));
}
