//! jobwright: a Kubernetes Job controller, an envtest-style API server to test it against, and a
//! node simulator that runs pods as local processes, all in one crate.
//!
//! See `README.md` for how the pieces fit and `DESIGN.md` in the shared folder for the principles.

#![forbid(unsafe_code)]

pub mod admin;
pub mod agent;
pub use jobwright_apiserver as apiserver;
pub mod crd;
pub mod cronjob;
pub mod endpoints;
pub mod httpclient;
pub use jobwright_apiserver::duration;
pub mod job;
pub mod kubelet;
pub mod leader;
pub mod lean;
pub mod local;
pub mod metrics;
pub mod ops;
pub mod ratelimit;
pub mod run;
pub mod shutdown;
pub mod telemetry;
pub mod ttl;
