//! An envtest-style Kubernetes API server.
//!
//! It serves the resources jobwright and `kubectl` use, with kube-apiserver's semantics:
//! one global resourceVersion, watches with bookmarks and 410s, optimistic concurrency, the status
//! subresource, patches of all four kinds, finalizers, garbage collection, defaulting and
//! validation. Tests start one in-process per test; `jobwright apiserver` serves one standalone;
//! `jobwright local` embeds one.
//!
//! - [`registry`]: which resources are served, shared by every other part.
//! - [`store`]: objects, resourceVersions, watch history.
//! - [`http`]: URL routing, content negotiation, the verbs.
//! - [`patch`], [`validate`], [`selector`], [`table`], [`discovery`], [`openapi`]: per-request pure helpers.
//! - [`errors`]: `Status` objects in upstream's shape.

pub mod discovery;
pub mod errors;
pub mod http;
pub mod openapi;
pub mod patch;
pub mod registry;
pub mod selector;
pub mod store;
pub mod table;
pub mod validate;
