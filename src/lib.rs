//! jobwright: a Kubernetes Job controller, an envtest-style API server to test it against, and a
//! node simulator that runs pods as local processes, all in one crate.
//!
//! See `README.md` for how the pieces fit and `DESIGN.md` in the shared folder for the principles.

#![forbid(unsafe_code)]

pub mod apiserver;
pub mod job;
pub mod kubelet;
pub mod ttl;
