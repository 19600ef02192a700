//! The integration tests, as one test binary: each module below was its own binary once, and each
//! linked the whole of jobwright (~45 binaries of 100-300 MB ran CI out of disk, and linking them
//! took minutes). Run one module with `cargo test --test suite MODULE::`, e.g.
//! `cargo test --test suite local_e2e::`.

mod common;
#[macro_use]
mod controller_support;
mod fake_api;

mod apiserver_cli;
mod apiserver_client;
mod apiserver_hostile;
mod apiserver_kinds;
mod apiserver_kubectl;
mod apiserver_persist;
mod apiserver_rbac;
mod apiserver_rbac_escalation;
mod builtin_scale;
mod cli;
mod controller_crd_kubectl;
mod controller_cronjob;
mod controller_jobs;
mod controller_lifecycle;
mod controller_relist;
mod controller_settled;
mod crd_api;
mod crd_apply;
mod crd_delete;
mod crd_rules;
mod deploy_manifests;
mod endpoints;
mod httpclient;
mod kubectl_create;
mod kubectl_discovery;
mod kubectl_output;
mod kubelet;
mod kubelet_cli;
mod kubelet_fake;
mod leader_election;
mod list_consistency;
mod local_e2e;
mod local_network;
mod ops_process;
mod protobuf_api;
mod rbac_deploy;
