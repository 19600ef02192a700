//! An envtest-style Kubernetes API server.
//!
//! It serves the resources jobwright and `kubectl` use, with kube-apiserver's semantics:
//! one global resourceVersion, watches with bookmarks and 410s, optimistic concurrency, the status
//! subresource, patches of all four kinds, finalizers, garbage collection, defaulting and
//! validation. Tests start one in-process per test; `jobwright apiserver` serves one standalone;
//! `jobwright local` embeds one.
//!
//! - [`auth`]: bearer-token authentication, impersonation, RBAC enforcement (with [`rbac`]'s
//!   evaluation and escalation prevention), the ownerReference admission check and the decision
//!   log; off unless asked for. [`review`]: the access reviews `kubectl auth can-i` sends.
//! - [`bootstrap`]: the RBAC bootstrap roles and bindings, and ClusterRole aggregation.
//! - [`query`]: the query string, parsed once for the authorizer and the handler.
//! - [`registry`]: which resources are served, shared by every other part.
//! - [`store`]: objects, resourceVersions, watch history.
//! - [`persist`]: the snapshot + write-ahead log behind `--data-dir`.
//! - [`rest`]: the verbs with the generic registry's semantics (status split, finalizers, graceful
//!   deletion, preconditions).
//! - [`gc`]: the garbage collector and namespace lifecycle, a task inside the server.
//! - [`conn`]: the connection layer: timeouts, connection and in-flight bounds, Status bodies
//!   on hyper's own errors.
//! - [`http`]: URL routing, content negotiation, watch streaming, binding and log proxying.
//! - [`crd`]: CustomResourceDefinitions register their resources when stored.
//! - [`events`]: the core/v1 ⇄ events.k8s.io/v1 views of one Event store.
//! - [`patch`], [`validate`], [`selector`], [`table`], [`discovery`], [`openapi`]: per-request pure
//!   helpers.
//! - [`proto`]: the subset of protobuf request bodies `kubectl create` sends.
//! - [`errors`]: `Status` objects in upstream's shape.
//! - [`testkit`], [`kubeconfig`]: an in-process server for tests and the kubeconfig it writes.

pub mod auth;
pub mod bootstrap;
pub mod compress;
pub mod conn;
pub mod crd;
pub mod discovery;
pub mod duration;
pub mod errors;
pub mod event_ttl;
pub mod events;
pub mod gc;
pub mod http;
pub mod kinds;
pub mod kubeconfig;
pub mod listopts;
pub mod negotiate;
pub mod openapi;
pub mod patch;
pub mod persist;
pub mod proto;
mod proto_schema;
pub mod query;
pub mod rbac;
pub mod registry;
pub mod rest;
pub mod review;
pub mod schedule;
pub mod selector;
pub mod services;
pub mod store;
pub mod streams;
pub mod table;
pub mod testkit;
pub mod validate;

/// Print a line to stdout; a closed stdout (`| head -1`) is not an error worth stopping for.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Options of `jobwright apiserver`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Where to write a kubeconfig for the server, if anywhere.
    pub kubeconfig: Option<PathBuf>,
    /// Server tunables.
    pub config: http::ServerConfig,
}

/// Serve until `shutdown` resolves: bind, write the kubeconfig, print the address, then stop
/// gracefully and remove the kubeconfig (a kubeconfig naming a dead port helps nobody).
pub async fn serve(opts: ServeOptions, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let running = http::start(opts.listen, opts.config).await?;
    let url = running.url();
    match &opts.kubeconfig {
        Some(path) => {
            kubeconfig::write_with_token(path, &running.kubeconfig_url(), running.server.auth.admin_token())?;
            say!("jobwright apiserver listening on {url}; kubeconfig written to {}", path.display());
        }
        None => say!("jobwright apiserver listening on {url}"),
    }
    tracing::info!(%url, "apiserver started");
    shutdown.await;
    tracing::info!("apiserver shutting down");
    let kubeconfig_url = running.kubeconfig_url();
    running.shutdown().await;
    if let Some(path) = &opts.kubeconfig {
        kubeconfig::remove_if_ours(path, &kubeconfig_url);
    }
    Ok(())
}
