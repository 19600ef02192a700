//! HTTP routing for the API server.
//!
//! One axum fallback handler parses Kubernetes paths itself (`/api/v1/...`, `/apis/G/V/...`,
//! `namespaces/NS/RESOURCE[/NAME[/SUB]]`, the legacy `/watch/` prefix), negotiates the response
//! shape from `Accept` (plain JSON, `as=Table`, `as=PartialObjectMetadata`, aggregated discovery),
//! and maps verbs onto [`Api`]. Watches stream newline-delimited JSON from a task per watch that
//! reads the store's per-watcher channel; events are pre-serialized once by the store, so fan-out
//! only concatenates bytes. Every error is a `Status` object.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use chrono::Utc;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::auth::{Auth, AuthorizationMode, StaticToken};
use super::errors::StatusError;
use super::listopts::{self, ListRequest};
use super::patch::PatchType;
use super::query::Query;
use super::rbac::UserInfo;
use super::registry::{Registry, ResourceInfo};
use super::rest::{Api, DeleteOptions, Outcome, WriteOptions, parse_propagation};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{EventType, Meta, Store, StoreConfig, WatchEvent, WatchFrom};
use super::table::{self, IncludeObject};
use super::validate::FieldValidation;
use super::{crd, discovery, events, gc};

/// Upstream's request body limit for JSON (etcd's 3 MiB value limit).
pub const BODY_LIMIT: usize = 3 * 1024 * 1024;

/// The content type of the protobuf `/openapi/v2` answer, as kube-openapi sends it.
const V2_PROTOBUF_RESPONSE_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The media type of aggregated discovery.
pub const AGGREGATED_DISCOVERY: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Tunables of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Store tunables (watch history size, per-watcher buffer).
    pub store: StoreConfig,
    /// How often a watch with `allowWatchBookmarks` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Watch duration when the client gives no `timeoutSeconds` (upstream: 30-60 minutes).
    pub watch_timeout: Duration,
    /// Largest request body accepted.
    pub body_limit: usize,
    /// Keep the state in this directory (snapshot + write-ahead log, see [`super::persist`]);
    /// `None` keeps it in memory only.
    pub data_dir: Option<std::path::PathBuf>,
    /// `--authorization-mode`: allow everything (default) or authenticate and enforce RBAC
    /// (see [`super::auth`]).
    pub authorization_mode: AuthorizationMode,
    /// Bearer tokens (`--token-auth-file`).
    pub tokens: Vec<StaticToken>,
    /// How many authorization decisions are kept in memory (RBAC mode).
    pub decision_log: usize,
    /// Connection and request bounds (timeouts, connection count, requests in flight).
    pub limits: super::conn::ConnLimits,
    /// `--service-cluster-ip-range` and `--service-node-port-range`.
    pub service_ranges: super::services::ServiceRanges,
    /// How long an Event lives after its last write (`--event-ttl`, see [`super::event_ttl`]).
    pub event_ttl: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            store: StoreConfig::default(),
            bookmark_interval: Duration::from_secs(10),
            watch_timeout: Duration::from_secs(1800),
            body_limit: BODY_LIMIT,
            data_dir: None,
            authorization_mode: AuthorizationMode::AlwaysAllow,
            tokens: vec![],
            decision_log: super::auth::DEFAULT_DECISION_LOG,
            limits: super::conn::ConnLimits::default(),
            service_ranges: super::services::ServiceRanges::default(),
            event_ttl: super::event_ttl::DEFAULT_EVENT_TTL,
        }
    }
}

/// Everything a request handler needs.
pub struct Server {
    /// The generic registry over the store.
    pub api: Api,
    /// Tunables.
    pub config: ServerConfig,
    /// Cancelled at shutdown: ends open watches so a graceful shutdown doesn't wait on them.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Authentication, authorization and the decision log.
    pub auth: Auth,
}

impl Server {
    /// A server with the built-in resources and namespaces.
    ///
    /// Panics if `config.data_dir` is set and cannot be loaded; use [`Server::open`] to get the error.
    pub fn new(config: ServerConfig) -> Arc<Self> {
        Self::open(config).unwrap_or_else(|e| panic!("cannot load the data directory: {e}"))
    }

    /// A server with the built-in resources and namespaces, plus, with `config.data_dir`, the
    /// objects recovered from it (CRDs registered again before their objects are indexed).
    pub fn open(config: ServerConfig) -> std::io::Result<Arc<Self>> {
        let store = Arc::new(Store::new(config.store.clone()));
        let registry = Registry::builtin();
        if let Some(dir) = &config.data_dir {
            load(&store, &registry, dir)?;
        }
        let api = Api::with_service_ranges(store, registry, config.service_ranges.clone());
        let auth = Auth::new(config.authorization_mode, &config.tokens, config.decision_log);
        Ok(Arc::new(Self { api, config, stopping: tokio_util::sync::CancellationToken::new(), auth }))
    }

    /// The store (white-box access for tests and benchmarks).
    pub fn store(&self) -> &Arc<Store> {
        &self.api.store
    }
}

/// Rebuild `store` from `dir` and attach its write-ahead log.
fn load(store: &Store, registry: &Registry, dir: &std::path::Path) -> std::io::Result<()> {
    let rec = super::persist::recover(dir)?;
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    // CRDs first: their resources must be served before their objects can be indexed.
    let crd_key = registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions").map(|i| i.storage_key);
    for ((key, _, _), (_, bytes)) in &rec.objects {
        if Some(key) == crd_key.as_ref() {
            let crd: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
            super::crd::register(registry, None, &crd);
        }
    }
    let all = registry.all();
    for ((key, ns, name), (rv, bytes)) in rec.objects {
        let info = all.iter().find(|r| r.storage_key == key).ok_or_else(|| {
            invalid(format!("{}: stored object {key}/{ns}/{name} of an unknown resource", dir.display()))
        })?;
        store.restore(info, &ns, &name, rv, Bytes::from(bytes)).map_err(invalid)?;
    }
    store.recovered(rec.rv, super::persist::Wal::open(dir)?);
    tracing::info!(dir = %dir.display(), objects = store.len(), rv = rec.rv, "state recovered");
    Ok(())
}

/// The axum router serving `server`.
pub fn router(server: Arc<Server>) -> Router {
    Router::new().fallback(handle).with_state(server)
}

/// A server running on a socket.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The server state.
    pub server: Arc<Server>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    gc: tokio::task::JoinHandle<()>,
}

impl Running {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT` when the port also speaks TLS (RBAC mode, see [`start_with`]).
    pub fn https_url(&self) -> Option<String> {
        self.server.auth.enforcing().then(|| format!("https://{}", self.addr))
    }

    /// The URL a kubeconfig should name: kubectl sends bearer tokens only over TLS, so
    /// [`Running::https_url`] in RBAC mode, else [`Running::url`].
    pub fn kubeconfig_url(&self) -> String {
        self.https_url().unwrap_or_else(|| self.url())
    }

    /// Stop accepting, end open watches, and wait for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.gc.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = &self.task {
            t.abort();
        }
        self.gc.abort();
    }
}

/// Bind `listen` and serve a fresh server (plus its garbage collector) in the background.
pub async fn start(listen: SocketAddr, config: ServerConfig) -> std::io::Result<Running> {
    let server = Server::open(config)?;
    start_with(listen, server).await
}

/// Bind `listen` and serve `server` (plus its garbage collector) in the background.
///
/// In RBAC mode the port speaks both plain HTTP and TLS (a connection whose first byte is a TLS
/// handshake record gets the built-in self-signed loopback certificate, see [`LOOPBACK_CERT`]):
/// `kube::Client` sends bearer tokens over plain HTTP, but kubectl only sends credentials over
/// TLS, so the kubeconfigs written for an RBAC server name `https://` and skip verification.
pub async fn start_with(listen: SocketAddr, server: Arc<Server>) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    super::services::ensure_kubernetes_service(&server.api, addr);
    let (tx, rx) = oneshot::channel::<()>();
    let (api, ttl) = (server.api.clone(), server.config.event_ttl);
    let gc = tokio::spawn(async move {
        tokio::join!(gc::run(api.clone()), super::event_ttl::run(api.clone(), ttl), super::crd::finalizer::run(api));
    });
    let app = router(server.clone());
    let stopping = server.stopping.clone();
    let shutdown = async move {
        let _ = rx.await;
        stopping.cancel();
    };
    let limits = server.config.limits.clone();
    let task = if server.auth.enforcing() {
        let listener = DualListener::new(listener, loopback_tls()?);
        tokio::spawn(super::conn::serve(listener, app, limits, shutdown))
    } else {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| no_delay(tcp));
        tokio::spawn(super::conn::serve(listener, app, limits, shutdown))
    };
    Ok(Running { addr, server, shutdown: Some(tx), task: Some(task), gc })
}

/// Every accepted connection sends without Nagle's delay, as Go's (kube-apiserver's) do: a watch
/// event written after the response head would otherwise wait for the client's delayed ACK (up
/// to ~40 ms on Linux), and a client that gives up on the watch meanwhile never sees it.
fn no_delay(tcp: &tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
}

/// The self-signed certificate (CN `jobwright-apiserver`, SANs `127.0.0.1` and `localhost`,
/// valid for 100 years) served on TLS connections in RBAC mode. Its key is public: it
/// authenticates nothing and only lets kubectl send a bearer token to a loopback test server.
pub const LOOPBACK_CERT: &str = include_str!("loopback_tls/cert.pem");
const LOOPBACK_KEY: &str = include_str!("loopback_tls/key.pem");

fn loopback_tls() -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use tokio_rustls::rustls::{self, pki_types::pem::PemObject};
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(LOOPBACK_CERT.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(LOOPBACK_KEY.as_bytes())
        .map_err(|e| invalid(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

type DualIo = tokio_util::either::Either<tokio::net::TcpStream, tokio_rustls::server::TlsStream<tokio::net::TcpStream>>;

/// A listener that hands axum plain and TLS connections from one port: a task accepts, and a
/// task per connection peeks at the first byte (0x16: a TLS handshake) and, for TLS, completes
/// the handshake (within 10 s) before the connection is queued.
struct DualListener {
    addr: SocketAddr,
    rx: mpsc::Receiver<(DualIo, SocketAddr)>,
    accept: tokio::task::JoinHandle<()>,
}

impl DualListener {
    fn new(listener: tokio::net::TcpListener, tls: tokio_rustls::TlsAcceptor) -> Self {
        let addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (tx, rx) = mpsc::channel(64);
        let accept = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                no_delay(&stream);
                let (tx, tls) = (tx.clone(), tls.clone());
                tokio::spawn(async move {
                    let sniff = async {
                        let mut first = [0u8; 1];
                        let n = stream.peek(&mut first).await?;
                        if n == 1 && first[0] == 0x16 {
                            Ok::<_, std::io::Error>(tokio_util::either::Either::Right(tls.accept(stream).await?))
                        } else {
                            Ok(tokio_util::either::Either::Left(stream))
                        }
                    };
                    match tokio::time::timeout(Duration::from_secs(10), sniff).await {
                        Ok(Ok(io)) => {
                            let _ = tx.send((io, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Self { addr, rx, accept }
    }
}

impl Drop for DualListener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl axum::serve::Listener for DualListener {
    type Io = DualIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

// ---------------------------------------------------------------------------------------------
// Responses

fn json_bytes(code: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    // A static value: no copy and no validation per response (every caller names a constant).
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json_value(code: StatusCode, v: &Value) -> Response {
    json_bytes(code, "application/json", Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
}

pub(crate) fn error_response(e: &StatusError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_bytes(code, "application/json", Bytes::from(e.to_wire()))
}

fn text(code: StatusCode, s: &'static str) -> Response {
    let mut r = Response::new(Body::from(s));
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn add_warnings(r: &mut Response, warnings: &[String]) {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            r.headers_mut().append("Warning", v);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request parsing

/// What the client asked the response to look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Object,
    Table(IncludeObject),
    PartialMetadata,
}

/// The shape `Accept` asks for, read as upstream's negotiation reads it
/// ([`super::negotiate::accept_ranges`]: the first `Accept` header, goautoneg's order): ranges of
/// media types the server cannot send are skipped, and the first range left decides: a
/// `meta.k8s.io/v1` transform it names (`as=Table`, `as=PartialObjectMetadata[List]`), or the
/// object itself when it names none. A range whose transform is unknown (another version,
/// another kind) is skipped, as a clause no serializer accepts.
fn accept_shape(headers: &HeaderMap, q: &Query) -> Shape {
    // What kube-rs, the in-process clients and kubectl's plain requests send: no transform.
    if !headers.get(header::ACCEPT).is_some_and(|v| v.as_bytes().windows(3).any(|w| w == b"as=")) {
        return Shape::Object;
    }
    let served = |m: &str| {
        matches!(
            m,
            "application/json" | "application/yaml" | "application/vnd.kubernetes.protobuf" | "application/*" | "*/*"
        )
    };
    let range = super::negotiate::accept_ranges(headers).into_iter().find(|r| served(&r.media) && r.known_transform());
    match range.and_then(|r| r.as_) {
        Some("Table") => Shape::Table(match q.get("includeObject") {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }),
        Some("PartialObjectMetadata" | "PartialObjectMetadataList") => Shape::PartialMetadata,
        _ => Shape::Object,
    }
}

/// A parsed resource path.
#[derive(Debug, Clone)]
struct Target {
    info: Arc<ResourceInfo>,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    watch_path: bool,
}

enum Route {
    Health,
    Version,
    CoreVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    OpenApiV2,
    OpenApiV3Index,
    OpenApiV3(String),
    Resource(Box<Target>),
}

fn route(reg: &Registry, path: &str) -> Result<Route, StatusError> {
    let nf = || StatusError::no_route(path);
    // Each segment is percent-decoded after splitting (as Go's net/http gives kube-apiserver a
    // decoded path), so names in messages are what the user typed and `%2F` stays in its segment.
    let decoded = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| urlencoding::decode(s).map_err(|_| nf()))
        .collect::<Result<Vec<_>, _>>()?;
    let segs: Vec<&str> = decoded.iter().map(|s| s.as_ref()).collect();
    match segs.as_slice() {
        ["healthz" | "readyz" | "livez", ..] => return Ok(Route::Health),
        ["version"] => return Ok(Route::Version),
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::GroupList),
        ["apis", g] => return Ok(Route::Group(g.to_string())),
        ["api", v] => return Ok(Route::ResourceList(String::new(), v.to_string())),
        ["apis", g, v] => return Ok(Route::ResourceList(g.to_string(), v.to_string())),
        ["openapi", "v2"] => return Ok(Route::OpenApiV2),
        ["openapi", "v3"] => return Ok(Route::OpenApiV3Index),
        ["openapi", "v3", rest @ ..] => return Ok(Route::OpenApiV3(rest.join("/"))),
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(nf()),
    };
    let (watch_path, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r @ ..] if !r.is_empty() && !reg.has_subresource("", "v1", "namespaces", r[0]) => {
            (Some(ns.to_string()), r)
        }
        r => (None, r),
    };
    let (resource, name, sub) = match rest {
        [res] => (*res, None, None),
        [res, name] => (*res, Some(name.to_string()), None),
        [res, name, sub] => (*res, Some(name.to_string()), Some(sub.to_string())),
        _ => return Err(nf()),
    };
    let info = reg.get_shared(group, version, resource).ok_or_else(nf)?;
    if let Some(s) = &sub
        && !info.has_subresource(s)
    {
        return Err(nf());
    }
    if info.namespaced && namespace.is_none() && name.is_some() {
        return Err(nf());
    }
    if !info.namespaced && namespace.is_some() {
        return Err(nf());
    }
    Ok(Route::Resource(Box::new(Target { info, namespace, name, sub, watch_path })))
}

fn write_options(q: &Query, headers: &HeaderMap) -> Result<WriteOptions, StatusError> {
    let dry_run = match q.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(StatusError::bad_request(format!(
                "Invalid dryRun parameter: {other:?}: supported values: \"All\""
            )));
        }
    };
    let field_validation = match q.get("fieldValidation") {
        None | Some("") => FieldValidation::default(),
        Some("Ignore") => FieldValidation::Ignore,
        Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some(other) => {
            return Err(StatusError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            )));
        }
    };
    Ok(WriteOptions {
        dry_run,
        field_manager: q.get("fieldManager").map(str::to_string),
        user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string),
        field_validation,
        force: q.flag("force"),
        admit: None,
    })
}

fn parse_json_body(body: &[u8], headers: &HeaderMap) -> Result<Value, StatusError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let media = ct.split(';').next().unwrap_or("").trim();
    match media {
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            if super::validate::limits::is_recursion_limit(&e) {
                super::validate::limits::body_too_deep()
            } else {
                StatusError::bad_request(format!("the object provided is unrecognized or malformed: {e}"))
            }
        }),
        "application/vnd.kubernetes.protobuf" => super::proto::decode(body),
        "application/yaml" => serde_saphyr::from_slice::<Value>(body)
            .map_err(|e| StatusError::bad_request(format!("the object provided is unrecognized or malformed: {e}"))),
        other => Err(StatusError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; got {other:?}"
            ),
        )),
    }
}

/// The body must be of the resource's kind and apiVersion (defaulted when absent).
fn check_type(info: &ResourceInfo, obj: &mut Value) -> Result<(), StatusError> {
    if !obj.is_object() {
        return Err(StatusError::bad_request(
            "the object provided is unrecognized or malformed: expected a JSON object",
        ));
    }
    match obj["apiVersion"].as_str() {
        None | Some("") => obj["apiVersion"] = json!(info.api_version()),
        Some(a) if !info.api_version_is(a) => {
            return Err(StatusError::bad_request(format!(
                "the API version in the data ({a}) does not match the expected API version ({})",
                info.api_version()
            )));
        }
        _ => {}
    }
    match obj["kind"].as_str() {
        None | Some("") => obj["kind"] = json!(info.kind),
        Some(k) if k != info.kind => {
            return Err(StatusError::bad_request(format!(
                "{k} in version \"{}\" cannot be handled as a {}: the kind in the data does not match the expected kind",
                info.version, info.kind
            )));
        }
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The handler

/// The warning on every response about core/v1 Endpoints (deprecated in 1.33).
pub const ENDPOINTS_DEPRECATED: &str = "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice";

async fn handle(State(s): State<Arc<Server>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // Protobuf answers for built-in types that prefer them (see `negotiate`).
    let (mut protobuf_watch, mut refuse) = (None, None);
    let pref = super::negotiate::preferred(&parts.headers);
    // The path is routed here only when the answer depends on it (protobuf, or a path that may
    // name core/v1 Endpoints); `handle_json` routes it again after the body is read.
    let early = (pref != super::negotiate::Preferred::Json || may_name_endpoints(parts.uri.path()))
        .then(|| route(&s.api.registry, parts.uri.path()));
    if pref != super::negotiate::Preferred::Json
        && let Some(Ok(Route::Resource(t))) = &early
    {
        if super::proto::supports(&t.info.api_version(), &t.info.kind) {
            protobuf_watch = Some(t.watch_path || Query::from_uri(&parts.uri).flag("watch"));
        } else if pref == super::negotiate::Preferred::OnlyProtobuf {
            refuse = Some(super::negotiate::not_acceptable());
        }
    }
    // Every request to core/v1 Endpoints carries the deprecation warning kube-apiserver 1.33 sends.
    let deprecated =
        matches!(&early, Some(Ok(Route::Resource(t))) if t.info.group.is_empty() && t.info.resource == "endpoints");
    drop(early);
    let mut r = handle_json(&s, parts, body, refuse).await;
    if deprecated {
        add_warnings(&mut r, &[ENDPOINTS_DEPRECATED.to_string()]);
    }
    match protobuf_watch {
        Some(watch) => super::negotiate::to_protobuf(r, watch).await,
        None => r,
    }
}

/// Whether `path` may route to core/v1 Endpoints: it names them, or has an escape that might.
fn may_name_endpoints(path: &str) -> bool {
    path.contains("endpoints") || path.contains('%')
}

/// Writes with bodies (and, for updates, stored objects) up to this size are served on the async
/// workers (see [`served_inline`]).
const INLINE_WRITE_BYTES: usize = 16 * 1024;

/// Whether a write is served on the async worker, without the blocking pool's thread hop (which
/// costs more than a small write itself when thousands come at once: a CronJob tick, a wide Job's
/// pod creates and status updates). Only writes whose cost is bounded by a small body and a small
/// stored object: creates, updates and patches of built-in core/batch/events kinds (not custom
/// resources, whose CEL rules may run up to their budget, nor CRDs, which compile rules), and
/// only when no write waits for an fsync (`--data-dir`). Everything else (a large body, a large
/// stored object, deletes that may cascade, collections) stays on the blocking pool, so a heavy
/// write never stalls other clients.
fn served_inline(s: &Server, parts: &http::request::Parts, body: &Bytes, routed: &Result<Route, StatusError>) -> bool {
    static BLOCKING: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *BLOCKING.get_or_init(|| std::env::var_os("JOBWRIGHT_BLOCKING_WRITES").is_some()) {
        return false;
    }
    let path = parts.uri.path();
    if s.config.data_dir.is_some()
        || body.len() > INLINE_WRITE_BYTES
        || !["/api/v1/", "/apis/batch/", "/apis/events.k8s.io/"].iter().any(|p| path.starts_with(p))
    {
        return false;
    }
    match parts.method {
        Method::POST => true,
        Method::PUT | Method::PATCH => match routed {
            Ok(Route::Resource(t)) => t.name.as_deref().is_some_and(|name| {
                let ns = t.namespace.as_deref().unwrap_or_default();
                let stored = s.api.get(&s.api.storage_info_shared(&t.info), ns, name);
                stored.is_ok_and(|e| e.json_len() <= INLINE_WRITE_BYTES)
            }),
            _ => false,
        },
        _ => false,
    }
}

/// The request answered in JSON; `refuse` is a negotiation error (406) that comes after
/// authentication and authorization, as upstream's handlers negotiate after the filters.
async fn handle_json(
    s: &Arc<Server>,
    parts: http::request::Parts,
    body: Body,
    refuse: Option<StatusError>,
) -> Response {
    // Authentication and authorization come first, as in kube-apiserver's filter chain.
    let mut user = match s.auth.authenticate(&parts.headers) {
        Ok(u) => u,
        Err(e) => return error_response(&e),
    };
    // The query is parsed once: the authorizer and the handler read the same values.
    let q = Query::from_uri(&parts.uri);
    if let Some(u) = &user {
        match s.auth.impersonate(&s.api, u, &parts.headers) {
            Ok(acting) => user = Some(acting),
            Err(e) => return error_response(&e),
        }
    }
    if let Some(user) = &user
        && s.auth.enforcing()
    {
        let attrs = super::auth::request_attributes(&parts.method, parts.uri.path(), &q);
        if let Err(e) = s.auth.check(&s.api, user, &attrs) {
            return error_response(&e);
        }
    }
    if let Some(e) = refuse {
        return error_response(&e);
    }
    // Streams (exec, attach, port-forward) are proxied to the node with their upgrade; metrics
    // are gathered from the nodes (see `streams`).
    if let Some((ns, name, sub)) = super::streams::stream_target(parts.uri.path()) {
        return super::streams::proxy(s, parts, &ns, &name, &sub, user.as_ref()).await;
    }
    if super::streams::is_metrics(parts.uri.path()) {
        return super::streams::metrics(s, &parts.method, &parts.uri).await;
    }
    let read = tokio::time::timeout(s.config.limits.body_read_timeout, axum::body::to_bytes(body, s.config.body_limit));
    let bytes = match read.await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return error_response(&StatusError::too_large(s.config.body_limit)),
        Err(_) => return error_response(&super::conn::timeout_error()),
    };
    let review_body = || parse_json_body(&bytes, &parts.headers);
    if let Some(r) = super::review::serve(&s.api, &s.auth, &parts.method, parts.uri.path(), user.as_ref(), review_body)
    {
        return r.map_or_else(|e| error_response(&e), |v| json_value(StatusCode::CREATED, &v));
    }
    // The path is routed once from here on (the registry as it is now, after the body was read).
    let routed = route(&s.api.registry, parts.uri.path());
    if matches!(parts.method, Method::GET | Method::HEAD) {
        return match dispatch(s, routed, &parts.method, &parts.uri, &q, &parts.headers, bytes, user.as_ref()).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
    }
    if served_inline(s, &parts, &bytes, &routed) {
        return match dispatch(s, routed, &parts.method, &parts.uri, &q, &parts.headers, bytes, user.as_ref()).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
    }
    // Writes are CPU work (decoding, patching, managedFields, validation): off the async
    // workers, so a heavy one never stalls other clients (watches, /healthz, reads).
    let rt = tokio::runtime::Handle::current();
    let s = s.clone();
    let run = move || {
        rt.block_on(async {
            match dispatch(&s, routed, &parts.method, &parts.uri, &q, &parts.headers, bytes, user.as_ref()).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            }
        })
    };
    tokio::task::spawn_blocking(run)
        .await
        .unwrap_or_else(|_| error_response(&StatusError::internal("the request handler panicked")))
}

fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=APIGroupDiscoveryList") && a.contains("g=apidiscovery.k8s.io"))
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    s: &Arc<Server>,
    routed: Result<Route, StatusError>,
    method: &Method,
    uri: &http::Uri,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
    user: Option<&UserInfo>,
) -> Result<Response, StatusError> {
    let reg = &s.api.registry;
    let route = routed?;
    let only_get = |r: Response| -> Result<Response, StatusError> {
        if method == Method::GET || method == Method::HEAD {
            Ok(r)
        } else {
            Err(StatusError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({})",
                uri.path()
            )))
        }
    };
    match route {
        Route::Health => only_get(text(StatusCode::OK, "ok")),
        Route::Version => only_get(json_value(StatusCode::OK, &discovery::version())),
        Route::CoreVersions | Route::GroupList => {
            let core = matches!(route, Route::CoreVersions);
            if wants_aggregated(headers)
                && let Some(doc) = discovery::aggregated_discovery(reg, core)
            {
                let b = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
                return only_get(json_bytes(StatusCode::OK, AGGREGATED_DISCOVERY, b));
            }
            let doc = if core { discovery::core_versions() } else { discovery::api_group_list(reg) };
            only_get(json_value(StatusCode::OK, &doc))
        }
        Route::Group(g) => {
            let doc = discovery::api_group(reg, &g).ok_or_else(|| StatusError::no_route(uri.path()))?;
            only_get(json_value(StatusCode::OK, &doc))
        }
        Route::ResourceList(g, v) => {
            let doc = discovery::api_resource_list(reg, &g, &v).ok_or_else(|| StatusError::no_route(uri.path()))?;
            only_get(json_value(StatusCode::OK, &doc))
        }
        Route::OpenApiV2 => {
            // client-go only reads the protobuf form of /openapi/v2.
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
            if accept.contains(super::openapi::V2_PROTOBUF_CONTENT_TYPE) {
                let b = Bytes::from(super::openapi::v2_document_protobuf());
                // kube-openapi answers the `@v1.0` Accept with a `.v1.0` content type: Go's mime parser
                // (client-go) rejects `@` in a media subtype.
                return only_get(json_bytes(StatusCode::OK, V2_PROTOBUF_RESPONSE_TYPE, b));
            }
            let doc = discovery::openapi_v2(reg).ok_or_else(|| StatusError::no_route(uri.path()))?;
            only_get(json_value(StatusCode::OK, &doc))
        }
        Route::OpenApiV3Index => only_get(json_value(StatusCode::OK, &discovery::openapi_v3_index(reg))),
        Route::OpenApiV3(p) => {
            let doc = discovery::openapi_v3_gv(reg, &p).ok_or_else(|| StatusError::no_route(uri.path()))?;
            only_get(json_value(StatusCode::OK, &doc))
        }
        Route::Resource(t) => resource(s, method, uri, headers, q, *t, body, user).await,
    }
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    s: &Arc<Server>,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    q: &Query,
    t: Target,
    body: Bytes,
    user: Option<&UserInfo>,
) -> Result<Response, StatusError> {
    let api = &s.api;
    // OwnerReferencesPermissionEnforcement, when RBAC is enforced.
    let admit = user.filter(|_| s.auth.enforcing()).map(|user| {
        let (server, user, ns) = (s.clone(), user.clone(), t.namespace.clone().unwrap_or_default());
        super::rest::AdmitHook(Arc::new(
            move |info: &ResourceInfo, sub: Option<&str>, old: Option<&Value>, new: &Value| {
                server.auth.admit(&server.api, &user, info, sub, &ns, old, new)
            },
        ))
    });
    let write_options = |q: &Query, headers: &HeaderMap| -> Result<WriteOptions, StatusError> {
        let mut opts = write_options(q, headers)?;
        opts.admit = admit.clone();
        Ok(opts)
    };
    let view = t.info.clone();
    let sinfo = api.storage_info_shared(&view);
    let ns = t.namespace.clone().unwrap_or_default();
    let shape = accept_shape(headers, q);
    let not_allowed = || {
        StatusError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            uri.path()
        ))
    };
    // Resources with fewer verbs than the usual eight (componentstatuses, bindings) answer 405.
    let watching = t.watch_path || listopts::go_bool(q.get("watch"));
    if t.sub.is_none() && !super::kinds::allows(&view, super::kinds::request_verb(method, t.name.is_some(), watching)) {
        return Err(not_allowed());
    }
    match (method.clone(), &t.name, t.sub.as_deref()) {
        // `POST .../bindings` binds the pod the Binding names, as `pods/NAME/binding` does.
        (Method::POST, None, None) if view.group.is_empty() && view.resource == "bindings" => {
            let obj = parse_json_body(&body, headers)?;
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
            bind(s, &ns, &name, &obj)
        }
        (Method::GET, None, None) => {
            if t.watch_path || listopts::go_bool(q.get("watch")) {
                watch(s, &view, &sinfo, t.namespace.as_deref(), None, q, shape)
            } else {
                list(s, &view, &sinfo, t.namespace.as_deref(), q, shape)
            }
        }
        (Method::GET, Some(name), None | Some("status")) => {
            if t.watch_path || listopts::go_bool(q.get("watch")) {
                return watch(s, &view, &sinfo, t.namespace.as_deref(), Some(name), q, shape);
            }
            let e = api.get(&sinfo, &ns, name).map_err(|_| StatusError::not_found(&view, name))?;
            Ok(object_response(&view, StatusCode::OK, e.bytes(), shape, &[]))
        }
        (Method::GET, Some(name), Some("log")) => log_proxy(s, &ns, name, q).await,
        (Method::POST, None, None) => {
            let mut obj = parse_json_body(&body, headers)?;
            check_type(&view, &mut obj)?;
            let obj = events::to_storage(&view, obj);
            let opts = write_options(q, headers)?;
            let out = api.create(&sinfo, &ns, obj, &opts).map_err(|e| rename(e, &view))?;
            Ok(outcome_response(&view, out, shape))
        }
        (Method::POST, Some(name), Some("binding")) => {
            let obj = parse_json_body(&body, headers)?;
            bind(s, &ns, name, &obj)
        }
        (Method::POST, Some(name), Some("eviction")) => {
            // An Eviction without disruption budgets to honour: delete the pod with its options.
            let ev = parse_json_body(&body, headers)?;
            let opts = match ev.get("deleteOptions") {
                Some(d) if d.is_object() => DeleteOptions::from_json(d)?,
                _ => DeleteOptions::default(),
            };
            api.delete(&sinfo, &ns, name, &opts)?;
            let st = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
            Ok(json_value(StatusCode::CREATED, &st))
        }
        (Method::PUT, Some(name), None | Some("status")) => {
            let mut obj = parse_json_body(&body, headers)?;
            check_type(&view, &mut obj)?;
            let obj = events::to_storage(&view, obj);
            let opts = write_options(q, headers)?;
            let out = api.update(&sinfo, &ns, name, t.sub.as_deref(), obj, &opts).map_err(|e| rename(e, &view))?;
            Ok(outcome_response(&view, out, shape))
        }
        (Method::PUT, Some(name), Some("finalize")) if view.resource == "namespaces" => {
            let obj = parse_json_body(&body, headers)?;
            let fins = obj["spec"]["finalizers"].clone();
            api.mutate(&sinfo, "", name, &|o| {
                if o["spec"]["finalizers"] == fins {
                    return false;
                }
                o["spec"]["finalizers"] = fins.clone();
                true
            })?;
            let e = api.get(&sinfo, "", name)?;
            Ok(object_response(&view, StatusCode::OK, e.bytes(), shape, &[]))
        }
        (Method::PATCH, Some(name), None | Some("status")) => {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let ptype = PatchType::from_content_type(ct).ok_or_else(|| StatusError::unsupported_media_type(ct))?;
            let opts = write_options(q, headers)?;
            super::patch::validate_patch_options(ptype, opts.field_manager.as_deref(), q.get("force").is_some())?;
            // Custom resources patch their stored object (apply keeps its field manager).
            let out = if events::converts(&view) && view.crd.is_none() {
                // A view whose shape differs from storage: patch the view, store the conversion.
                let cur = api.get(&sinfo, &ns, name).map_err(|_| StatusError::not_found(&view, name))?;
                let cur_view = events::to_view(&view, serde_json::from_slice(&cur.bytes()).unwrap_or(Value::Null));
                let patched = super::patch::apply_patch(&view, Some(&cur_view), ptype, &body, &Default::default())?;
                let obj = events::to_storage(&view, patched);
                api.update(&sinfo, &ns, name, t.sub.as_deref(), obj, &opts).map_err(|e| rename(e, &view))?
            } else {
                api.patch(&sinfo, &ns, name, t.sub.as_deref(), ptype, &body, &opts).map_err(|e| rename(e, &view))?
            };
            Ok(outcome_response(&view, out, shape))
        }
        (Method::DELETE, Some(name), None) => {
            let opts = delete_options(q, &body, headers)?;
            let d = api.delete(&sinfo, &ns, name, &opts).map_err(|e| rename(e, &view))?;
            if !d.gone || returns_deleted_object(&view) {
                let b = Bytes::from(serde_json::to_vec(&d.object).unwrap_or_default());
                return Ok(object_response(&view, StatusCode::OK, b, shape, &[]));
            }
            let st = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": view.group, "kind": view.resource,
                            "uid": d.object["metadata"]["uid"]},
            });
            Ok(json_value(StatusCode::OK, &st))
        }
        (Method::DELETE, None, None) => {
            let opts = delete_options(q, &body, headers)?;
            let (ls, fs) = selectors(&view, q)?;
            let page =
                api.store.list(&sinfo.storage_key, t.namespace.as_deref(), None, 0, &|m: &Meta| selected(&ls, &fs, m));
            let mut items = Vec::new();
            for e in page.items {
                let v: Value = serde_json::from_slice(&e.bytes()).unwrap_or(Value::Null);
                let ens = v["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
                let en = v["metadata"]["name"].as_str().unwrap_or_default().to_string();
                match api.delete(&sinfo, &ens, &en, &opts) {
                    Ok(d) => items.push(events::to_view(&view, d.object)),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let list = json!({"kind": format!("{}List", view.kind), "apiVersion": view.api_version(),
                              "metadata": {"resourceVersion": api.store.current_rv().to_string()}, "items": items});
            Ok(json_value(StatusCode::OK, &list))
        }
        (Method::GET | Method::PUT | Method::PATCH, Some(name), Some("scale"))
            if crd::scale::definition(&view).is_some() =>
        {
            let def = crd::scale::definition(&view).unwrap_or_default();
            let scale = if *method == Method::GET {
                crd::scale::get_scale(api, &sinfo, &def, &ns, name)?
            } else if *method == Method::PUT {
                let obj = parse_json_body(&body, headers)?;
                crd::scale::put_scale(api, &sinfo, &def, &ns, name, &obj, &write_options(q, headers)?)?
            } else {
                let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
                let ptype = PatchType::from_content_type(ct).ok_or_else(|| StatusError::unsupported_media_type(ct))?;
                crd::scale::patch_scale(api, &sinfo, &def, &ns, name, ptype, &body, &write_options(q, headers)?)?
            };
            Ok(json_value(StatusCode::OK, &scale))
        }
        _ => Err(not_allowed()),
    }
}

/// Errors about the storage shape name the requested view (events.k8s.io vs core).
fn rename(mut e: StatusError, view: &ResourceInfo) -> StatusError {
    if view.group == "events.k8s.io" {
        e.message = e.message.replacen("events \"", "events.events.k8s.io \"", 1);
    }
    e
}

/// Resources whose immediate DELETE answers with the deleted object rather than a Status,
/// as upstream's `ReturnDeletedObject`.
fn returns_deleted_object(info: &ResourceInfo) -> bool {
    info.group.is_empty() && matches!(info.resource.as_str(), "pods" | "services" | "namespaces" | "serviceaccounts")
}

fn delete_options(q: &Query, body: &[u8], headers: &HeaderMap) -> Result<DeleteOptions, StatusError> {
    let mut opts = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        // client-go sends DeleteOptions in the request's content type (protobuf for built-ins).
        DeleteOptions::from_json(&parse_json_body(body, headers)?)?
    };
    if let Some(p) = q.get("propagationPolicy") {
        opts.propagation = Some(parse_propagation(p)?);
    } else if let Some(o) = q.get("orphanDependents") {
        opts.propagation =
            Some(if o == "true" { super::rest::Propagation::Orphan } else { super::rest::Propagation::Background });
    }
    if let Some(g) = q.get("gracePeriodSeconds") {
        opts.grace_period_seconds =
            Some(g.parse().map_err(|_| StatusError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?);
    }
    if q.get("dryRun") == Some("All") {
        opts.dry_run = true;
    }
    Ok(opts)
}

/// Whether an indexed object passes both selectors (maps are only built for non-empty ones).
fn selected(ls: &LabelSelector, fs: &FieldSelector, m: &Meta) -> bool {
    (ls.is_empty() || m.labels_match(ls)) && (fs.is_empty() || m.fields_match(fs))
}

fn selectors(info: &ResourceInfo, q: &Query) -> Result<(LabelSelector, FieldSelector), StatusError> {
    let ls = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
    let fs = FieldSelector::parse(info, q.get("fieldSelector").unwrap_or(""))?;
    Ok((ls, fs))
}

/// Render one stored object in the requested view and shape.
fn object_response(view: &ResourceInfo, code: StatusCode, bytes: Bytes, shape: Shape, warnings: &[String]) -> Response {
    let mut r = match shape {
        Shape::Object if !events::converts(view) => json_bytes(code, "application/json", bytes),
        _ => {
            let v = events::to_view(view, serde_json::from_slice(&bytes).unwrap_or(Value::Null));
            json_value(code, &shape_one(view, v, shape))
        }
    };
    add_warnings(&mut r, warnings);
    r
}

fn outcome_response(view: &ResourceInfo, out: Outcome, shape: Shape) -> Response {
    let code = if out.created { StatusCode::CREATED } else { StatusCode::OK };
    if let (Some(b), Shape::Object, false) = (&out.bytes, shape, events::converts(view)) {
        let mut r = json_bytes(code, "application/json", b.clone());
        add_warnings(&mut r, &out.warnings);
        return r;
    }
    if let (Shape::Object, Some(b)) = (shape, events::view_json(view, &out.object)) {
        let mut r = json_bytes(code, "application/json", Bytes::from(b));
        add_warnings(&mut r, &out.warnings);
        return r;
    }
    let v = events::to_view(view, out.object);
    let mut r = json_value(code, &shape_one(view, v, shape));
    add_warnings(&mut r, &out.warnings);
    r
}

fn partial(v: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": v["metadata"].clone()})
}

fn shape_one(view: &ResourceInfo, v: Value, shape: Shape) -> Value {
    match shape {
        Shape::Object => v,
        Shape::PartialMetadata => partial(&v),
        Shape::Table(inc) => {
            let mut t = table::to_table(view, std::slice::from_ref(&v), inc, Utc::now());
            t["metadata"]["resourceVersion"] = v["metadata"]["resourceVersion"].clone();
            t
        }
    }
}

// ---------------------------------------------------------------------------------------------
// List

fn list(
    s: &Arc<Server>,
    view: &ResourceInfo,
    sinfo: &ResourceInfo,
    namespace: Option<&str>,
    q: &Query,
    shape: Shape,
) -> Result<Response, StatusError> {
    let (ls, fs) = selectors(view, q)?;
    let opts = ListRequest::parse(|k| q.get(k))?;
    opts.validate(false)?;
    let from = opts.resolve()?;
    let limit = usize::try_from(opts.limit).unwrap_or(0);
    let page = s
        .api
        .store
        .list_at(&sinfo.storage_key, namespace, from.start.clone(), limit, &|m: &Meta| selected(&ls, &fs, m), from.at)
        .map_err(|e| listopts::list_at_error(e, &from))?;
    if from.min > page.rv {
        return Err(listopts::too_large(from.min, page.rv));
    }
    let mut md = json!({"resourceVersion": page.rv.to_string()});
    if let Some((ns, name)) = &page.next {
        md["continue"] = json!(listopts::encode_continue(page.rv as i64, ns, name));
        // Upstream counts the rest only without selectors (etcd's count includes non-matches).
        if ls.is_empty() && fs.is_empty() {
            md["remainingItemCount"] = json!(page.remaining);
        }
    }
    match shape {
        Shape::Object if !events::converts(view) => {
            // Fast path: splice the stored bytes into the list without re-serializing them.
            let mut out = BytesMut::with_capacity(page.items.iter().map(|e| e.json_len() + 1).sum::<usize>() + 256);
            out.put_slice(
                format!("{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":", view.kind, view.api_version())
                    .as_bytes(),
            );
            out.put_slice(md.to_string().as_bytes());
            out.put_slice(b",\"items\":[");
            for (i, e) in page.items.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                out.put_slice(&e.bytes());
            }
            out.put_slice(b"]}");
            Ok(json_bytes(StatusCode::OK, "application/json", out.freeze()))
        }
        _ => {
            let items: Vec<Value> = page
                .items
                .iter()
                .map(|e| events::to_view(view, serde_json::from_slice(&e.bytes()).unwrap_or(Value::Null)))
                .collect();
            let doc = match shape {
                Shape::Table(inc) => {
                    let mut t = table::to_table(view, &items, inc, Utc::now());
                    t["metadata"] = md;
                    t
                }
                Shape::PartialMetadata => json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                    "metadata": md, "items": items.iter().map(partial).collect::<Vec<_>>()}),
                Shape::Object => json!({"kind": format!("{}List", view.kind), "apiVersion": view.api_version(),
                    "metadata": md, "items": items}),
            };
            Ok(json_value(StatusCode::OK, &doc))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Watch

/// One watch's filter and rendering.
struct WatchCtx {
    view: ResourceInfo,
    name: Option<String>,
    /// The selectors (label and field) as one predicate.
    filter: Box<dyn Fn(&Meta) -> bool + Send + Sync>,
    shape: Shape,
}

impl WatchCtx {
    fn passes(&self, ns_name: &str, m: &Meta) -> bool {
        self.name.as_deref().is_none_or(|n| n == ns_name) && (self.filter)(m)
    }

    fn line(&self, kind: &str, object: &[u8]) -> Bytes {
        match self.shape {
            Shape::Object if !events::converts(&self.view) => {
                let mut out = BytesMut::with_capacity(object.len() + 32);
                out.put_slice(b"{\"type\":\"");
                out.put_slice(kind.as_bytes());
                out.put_slice(b"\",\"object\":");
                out.put_slice(object);
                out.put_slice(b"}\n");
                out.freeze()
            }
            shape => {
                let v = events::to_view(&self.view, serde_json::from_slice(object).unwrap_or(Value::Null));
                let mut line = json!({"type": kind, "object": shape_one(&self.view, v, shape)}).to_string();
                line.push('\n');
                Bytes::from(line)
            }
        }
    }

    /// The line for a store event as this watcher sees it, if any: a MODIFIED that leaves the
    /// selector is a DELETED of the previous state, one that enters it an ADDED.
    fn translate(&self, e: &WatchEvent) -> Option<Bytes> {
        let cur = self.passes(e.name(), &e.meta);
        match e.kind {
            EventType::Added | EventType::Deleted => cur.then(|| self.line(e.kind.as_str(), &e.object)),
            EventType::Modified => {
                let old = e.prev.as_ref().is_some_and(|(_, m)| self.passes(e.name(), m));
                match (old, cur) {
                    (true, true) => Some(self.line("MODIFIED", &e.object)),
                    (false, true) => Some(self.line("ADDED", &e.object)),
                    (true, false) => {
                        let (prev, _) = e.prev.as_ref()?;
                        let mut v: Value = serde_json::from_slice(&prev.json()).ok()?;
                        v["metadata"]["resourceVersion"] = json!(e.rv.to_string());
                        Some(self.line("DELETED", &serde_json::to_vec(&v).ok()?))
                    }
                    (false, false) => None,
                }
            }
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut md = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (kind, av) = match self.shape {
            Shape::Table(_) => ("Table".to_string(), "meta.k8s.io/v1".to_string()),
            Shape::PartialMetadata => ("PartialObjectMetadata".to_string(), "meta.k8s.io/v1".to_string()),
            Shape::Object => (self.view.kind.clone(), self.view.api_version()),
        };
        let mut line =
            json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": av, "metadata": md}}).to_string();
        line.push('\n');
        Bytes::from(line)
    }
}

fn watch(
    s: &Arc<Server>,
    view: &ResourceInfo,
    sinfo: &ResourceInfo,
    namespace: Option<&str>,
    name: Option<&str>,
    q: &Query,
    shape: Shape,
) -> Result<Response, StatusError> {
    let (ls, fs) = selectors(view, q)?;
    let opts = ListRequest::parse(|k| q.get(k))?;
    opts.validate(true)?;
    let send_initial = opts.send_initial_events == Some(true);
    let bookmarks = opts.allow_watch_bookmarks;
    let from = match listopts::parse_resource_version(opts.resource_version.as_deref().unwrap_or(""))? {
        _ if send_initial => WatchFrom::Snapshot,
        0 => WatchFrom::Snapshot,
        rv => WatchFrom::Rv(rv),
    };
    // As upstream: 0 (or none) means the server's default; a negative timeout ends the watch at once.
    let timeout = match opts.timeout_seconds {
        None | Some(0) => s.config.watch_timeout,
        Some(t) => Duration::from_secs(u64::try_from(t).unwrap_or(0)),
    };
    let filter = Box::new(move |m: &Meta| selected(&ls, &fs, m));
    let ctx = WatchCtx { view: view.clone(), name: name.map(str::to_string), filter, shape };
    let body = match s.api.store.watch(&sinfo.storage_key, namespace, from) {
        Ok(start) => Body::new(WatchBody::new(
            ctx,
            start,
            s.api.store.clone(),
            timeout,
            bookmarks.then_some(s.config.bookmark_interval),
            send_initial,
            s.stopping.clone(),
        )),
        Err(e) => {
            // Upstream answers 200 and sends the 410 as an ERROR event (in a chunked stream).
            let mut line = json!({"type": "ERROR", "object": e.to_status()}).to_string();
            line.push('\n');
            Body::from_stream(futures::stream::once(async move { Ok::<_, Infallible>(Bytes::from(line)) }))
        }
    };
    let mut r = Response::new(body);
    // Upstream's watch handler (`serveWatchHandler`) answers with the stream serializer's media
    // type alone, whatever `as=` transform the events carry: `application/json` for a JSON watch
    // of objects, Tables or PartialObjectMetadata alike.
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    if shape != Shape::Object {
        // Its events are Tables or PartialObjectMetadata, which have no protobuf form here.
        r.extensions_mut().insert(super::negotiate::Transformed);
    }
    Ok(r)
}

/// The most a watch puts in one chunk of its response when events wait to be sent.
const WATCH_CHUNK: usize = 64 * 1024;

/// Watch event lines gathered into one chunk of the response body (whole lines only, in order).
#[derive(Default)]
struct Chunk {
    first: Option<Bytes>,
    more: BytesMut,
}

impl Chunk {
    /// Adds a line; gives the chunk back once it holds `WATCH_CHUNK` bytes or more.
    fn push(&mut self, line: Bytes) -> Option<Bytes> {
        match self.first.take() {
            // One line alone is sent as it is, without a copy.
            None if self.more.is_empty() => self.first = Some(line),
            Some(first) => {
                self.more.reserve(first.len() + line.len());
                self.more.extend_from_slice(&first);
                self.more.extend_from_slice(&line);
            }
            None => self.more.extend_from_slice(&line),
        }
        let len = self.first.as_ref().map_or(self.more.len(), Bytes::len);
        if len >= WATCH_CHUNK { self.take() } else { None }
    }

    /// What was gathered, if anything.
    fn take(&mut self) -> Option<Bytes> {
        self.first.take().or_else(|| (!self.more.is_empty()).then(|| self.more.split().freeze()))
    }
}

/// A watch's response body: the store's events for this watcher, rendered and gathered into
/// chunks as the connection asks for them (hyper polls it when it can write). The body reads the
/// store's per-watcher channel itself, so an event reaches the connection without a task and a
/// channel of its own in between (one wake-up per event instead of two); a watcher that stops
/// reading leaves its events in the store's queue, which closes the watch once it falls too far
/// behind. Ends at the watch's timeout, at the server's shutdown, or when the store closes it.
struct WatchBody {
    ctx: WatchCtx,
    /// The initial events not yet sent (`None` once all are).
    initial: Option<super::store::Initial>,
    /// The resourceVersion of the `initial-events-end` bookmark still to send after them.
    initial_end: Option<u64>,
    rx: mpsc::Receiver<Arc<WatchEvent>>,
    store: Arc<Store>,
    /// The resourceVersion this watcher has seen everything up to (for bookmarks).
    last_rv: u64,
    /// `allowWatchBookmarks`: the interval, and its timer once the initial events are out.
    bookmarks: Option<Duration>,
    tick: Option<tokio::time::Interval>,
    end: std::pin::Pin<Box<tokio::time::Sleep>>,
    stopping: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    done: bool,
}

impl WatchBody {
    fn new(
        ctx: WatchCtx,
        start: super::store::WatchStart,
        store: Arc<Store>,
        timeout: Duration,
        bookmarks: Option<Duration>,
        send_initial: bool,
        stopping: tokio_util::sync::CancellationToken,
    ) -> Self {
        let super::store::WatchStart { initial, rv: start_rv, rx } = start;
        let last_rv = start_rv.max(initial.last_rv().unwrap_or(0));
        Self {
            ctx,
            initial: Some(initial),
            initial_end: send_initial.then_some(start_rv),
            rx,
            store,
            last_rv,
            bookmarks,
            tick: None,
            end: Box::pin(tokio::time::sleep(timeout)),
            stopping: Box::pin(stopping.cancelled_owned()),
            done: false,
        }
    }

    fn frame(b: Bytes) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(b))))
    }
}

impl http_body::Body for WatchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.stopping.as_mut().poll(cx).is_ready() {
            this.done = true;
            return Poll::Ready(None);
        }
        // Each initial event is decompressed as it is sent and dropped once sent (in chunks of at
        // most `WATCH_CHUNK` bytes).
        if let Some(initial) = &mut this.initial {
            let mut chunk = Chunk::default();
            for e in initial.by_ref() {
                if let Some(line) = this.ctx.translate(&e)
                    && let Some(full) = chunk.push(line)
                {
                    return Self::frame(full);
                }
            }
            this.initial = None;
            if let Some(rest) = chunk.take() {
                return Self::frame(rest);
            }
        }
        if let Some(rv) = this.initial_end.take() {
            return Self::frame(this.ctx.bookmark(rv, true));
        }
        // The timeout ends the watch after its initial events, however short it is.
        if this.end.as_mut().poll(cx).is_ready() {
            this.done = true;
            return Poll::Ready(None);
        }
        if let Some(every) = this.bookmarks {
            let tick =
                this.tick.get_or_insert_with(|| tokio::time::interval_at(tokio::time::Instant::now() + every, every));
            if tick.poll_tick(cx).is_ready() {
                // Every event up to the current resourceVersion was queued under the store lock,
                // so an empty queue means this watcher has seen everything up to it; unless the
                // store closed the queue (this watcher fell too far behind and events were not
                // queued): then the bookmark stays at the last event sent.
                let rv = this.store.current_rv();
                if this.rx.is_empty() && !this.rx.is_closed() {
                    this.last_rv = this.last_rv.max(rv);
                }
                return Self::frame(this.ctx.bookmark(this.last_rv, false));
            }
        }
        loop {
            let e = match this.rx.poll_recv(cx) {
                Poll::Ready(Some(e)) => e,
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            };
            this.last_rv = this.last_rv.max(e.rv);
            let mut chunk = Chunk::default();
            let mut out = this.ctx.translate(&e).and_then(|line| chunk.push(line));
            // Events already waiting (a writer outpacing this watcher) go out with it as one
            // chunk: one body frame and one socket write instead of one each. A watcher that
            // keeps up gets each event alone.
            while out.is_none() {
                let Ok(e) = this.rx.try_recv() else { break };
                this.last_rv = this.last_rv.max(e.rv);
                out = this.ctx.translate(&e).and_then(|line| chunk.push(line));
            }
            // `push` empties the chunk when it hands it out, so at most one of the two is set.
            if let Some(b) = out.or_else(|| chunk.take()) {
                return Self::frame(b);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pods: binding and logs

fn bind(s: &Arc<Server>, ns: &str, name: &str, binding: &Value) -> Result<Response, StatusError> {
    let api = &s.api;
    let pods = api.info("", "pods");
    let node = binding["target"]["name"].as_str().unwrap_or_default().to_string();
    if node.is_empty() {
        return Err(StatusError::invalid(
            &ResourceInfo::new("", "v1", "bindings", "Binding", true, &[], &[], &[]),
            name,
            &[super::errors::FieldError::required("target.name", "")],
        ));
    }
    let conflict = |why: String| {
        StatusError::new(409, "Conflict", format!("Operation cannot be fulfilled on pods/binding \"{name}\": {why}"))
            .with_details(json!({"name": name, "kind": "pods/binding"}))
    };
    loop {
        let e = api.get(&pods, ns, name)?;
        let mut pod: Value = serde_json::from_slice(&e.bytes()).unwrap_or(Value::Null);
        if pod["metadata"]["deletionTimestamp"].is_string() {
            return Err(conflict(format!("pod {name} is being deleted, cannot be assigned to a host")));
        }
        if let Some(n) = pod["spec"]["nodeName"].as_str()
            && !n.is_empty()
        {
            return Err(conflict(format!("pod {name} is already assigned to node {n:?}")));
        }
        if let Some(uid) = binding["metadata"]["uid"].as_str()
            && !uid.is_empty()
            && Some(uid) != pod["metadata"]["uid"].as_str()
        {
            return Err(conflict(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                pod["metadata"]["uid"].as_str().unwrap_or_default()
            )));
        }
        pod["spec"]["nodeName"] = json!(node);
        if let Some(a) = binding["metadata"]["annotations"].as_object() {
            for (k, v) in a {
                pod["metadata"]["annotations"][k] = v.clone();
            }
        }
        let now = super::rest::timestamp(Utc::now());
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
        let conds = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
        conds.push(cond);
        pod["status"]["conditions"] = json!(conds);
        // A pod that decoded without skipping still does: a string node name, string
        // annotations and a condition of known fields were written.
        let known = e.meta.known
            && binding["metadata"]["annotations"].as_object().is_none_or(|a| a.values().all(Value::is_string));
        let op = if known {
            debug_assert!(super::validate::strict::decodes_known(&pods, &pod), "a bound pod decodes without skipping");
            super::store::Op::PutKnown(pod)
        } else {
            super::store::Op::Put(pod)
        };
        match s.api.store.write(&pods, ns, name, super::store::Expect::Rv(e.rv), op) {
            Ok(_) => break,
            Err(super::store::WriteError::NotFound) => return Err(StatusError::not_found(&pods, name)),
            Err(_) => continue,
        }
    }
    Ok(json_value(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

async fn log_proxy(s: &Arc<Server>, ns: &str, name: &str, q: &Query) -> Result<Response, StatusError> {
    let api = &s.api;
    let pods = api.info("", "pods");
    let pod = api.get_value(&pods, ns, name)?;
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let inits: Vec<String> = pod["spec"]["initContainers"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let container = match q.get("container").filter(|c| !c.is_empty()) {
        Some(c) => {
            if !containers.iter().chain(inits.iter()).any(|x| x == c) {
                return Err(StatusError::bad_request(format!("container {c} is not valid for pod {name}")));
            }
            c.to_string()
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            let mut msg =
                format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" "));
            if !inits.is_empty() {
                msg.push_str(&format!(" or one of the init containers: [{}]", inits.join(" ")));
            }
            return Err(StatusError::bad_request(msg));
        }
    };
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node.is_empty() {
        return Err(StatusError::bad_request(format!("pod {name} does not have a host assigned")));
    }
    let addr = super::streams::kubelet_address(s, node)?;
    let pass: Vec<(&str, &str)> = q.pairs().filter(|(k, _)| *k != "container").collect();
    let query = pass
        .iter()
        .map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let path = format!(
        "/containerLogs/{}/{}/{}{}",
        urlencoding::encode(ns),
        urlencoding::encode(name),
        urlencoding::encode(&container),
        if query.is_empty() { String::new() } else { format!("?{query}") }
    );
    let url: http::Uri =
        format!("http://{addr}").parse().map_err(|e: http::uri::InvalidUri| StatusError::internal(e.to_string()))?;
    let mut kcfg = kube::Config::new(url);
    // `follow` streams for as long as the container runs.
    kcfg.read_timeout = None;
    let client = kube::Client::try_from(kcfg).map_err(|e| StatusError::internal(e.to_string()))?;
    let req =
        http::Request::get(path).body(kube::client::Body::empty()).map_err(|e| StatusError::internal(e.to_string()))?;
    let resp = client.send(req).await.map_err(|e| StatusError::internal(e.to_string()))?;
    let (parts, body) = resp.into_parts();
    let mut r = Response::new(Body::new(body));
    *r.status_mut() = parts.status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        parts.headers.get(header::CONTENT_TYPE).cloned().unwrap_or(HeaderValue::from_static("text/plain")),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_is_the_first_acceptable_range_by_q_then_the_clients_order() {
        let shape = |accept: &[&str], query: &str| {
            let mut h = HeaderMap::new();
            for a in accept {
                h.append(header::ACCEPT, a.parse().unwrap());
            }
            accept_shape(&h, &Query::parse(Some(query)))
        };
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
        let partial = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        let meta = Shape::Table(IncludeObject::Metadata);
        // kubectl get's header: the Table first.
        assert_eq!(
            shape(&[&format!("{table},application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")], ""),
            meta
        );
        assert_eq!(shape(&[table], "includeObject=Object"), Shape::Table(IncludeObject::Object));
        assert_eq!(shape(&[], ""), Shape::Object);
        // Plain JSON first wins over a transform later in the list, unless `q` says otherwise.
        assert_eq!(shape(&[&format!("application/json, {table}")], ""), Shape::Object);
        assert_eq!(shape(&[&format!("application/json;q=0.5, {table}")], ""), meta);
        assert_eq!(shape(&[&format!("{table};q=0.2, {partial};q=0.9")], ""), Shape::PartialMetadata);
        // `q=0` is still tried, last (upstream's negotiation only orders by `q`); unknown or
        // unserved ranges are skipped; at equal `q` a concrete type comes before `*/*`.
        assert_eq!(shape(&[&format!("{table};q=0")], ""), meta);
        assert_eq!(shape(&[&format!("{table};q=0, application/json")], ""), Shape::Object);
        assert_eq!(shape(&[&format!("text/html, {table}")], ""), meta);
        assert_eq!(
            shape(&[&format!("application/json;as=Table;v=v1beta1;g=meta.k8s.io, {partial}")], ""),
            Shape::PartialMetadata
        );
        assert_eq!(shape(&[&format!("application/json;as=Widget;v=v1;g=meta.k8s.io, {table}")], ""), meta);
        assert_eq!(shape(&["*/*;as=Table;g=meta.k8s.io;v=v1, application/json"], ""), Shape::Object);
        // Only the first Accept header counts (Go's `Header.Get`).
        assert_eq!(shape(&["application/json", table], ""), Shape::Object);
        assert_eq!(shape(&[partial, "application/json"], ""), Shape::PartialMetadata);
        assert_eq!(shape(&["text/html", table], ""), Shape::Object);
        assert_eq!(shape(&[";;as=,,;q=x;as=Table", "*/*;as=Table;g=meta.k8s.io;v=v1;q=nan"], ""), Shape::Object);
    }

    #[test]
    fn paths_route_to_resources() {
        let reg = Registry::builtin();
        let Route::Resource(t) = route(&reg, "/api/v1/namespaces/ns1/pods/p/status").unwrap() else { panic!() };
        assert_eq!(
            (t.info.resource.as_str(), t.namespace.as_deref(), t.name.as_deref(), t.sub.as_deref()),
            ("pods", Some("ns1"), Some("p"), Some("status"))
        );
        let Route::Resource(t) = route(&reg, "/api/v1/namespaces/ns1/status").unwrap() else { panic!() };
        assert_eq!(
            (t.info.resource.as_str(), t.name.as_deref(), t.sub.as_deref()),
            ("namespaces", Some("ns1"), Some("status"))
        );
        let Route::Resource(t) = route(&reg, "/apis/batch/v1/watch/jobs").unwrap() else { panic!() };
        assert!(t.watch_path && t.namespace.is_none());
        assert!(route(&reg, "/apis/batch/v1/namespaces/x/widgets").is_err());
        assert!(route(&reg, "/api/v1/pods/p").is_err());
        assert!(route(&reg, "/api/v1/namespaces/x/pods/p/bogus").is_err());
    }

    // The early routing is skipped for JSON requests whose path cannot name core/v1 Endpoints:
    // every path that routes to them (escaped or not) must be seen as one that may.
    proptest::proptest! {
        #[test]
        fn every_path_routing_to_endpoints_is_routed_early(
            segs in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("api".to_string()),
                    proptest::strategy::Just("v1".to_string()),
                    proptest::strategy::Just("namespaces".to_string()),
                    proptest::strategy::Just("watch".to_string()),
                    proptest::strategy::Just("endpoints".to_string()),
                    proptest::strategy::Just("%65ndpoints".to_string()),
                    proptest::strategy::Just("endpoint%73".to_string()),
                    proptest::strategy::Just("pods".to_string()),
                    "[a-z%0-9]{0,6}",
                ],
                0..7,
            ),
            slashes in proptest::collection::vec(1usize..3, 7),
        ) {
            let reg = Registry::builtin();
            let mut path = String::new();
            for (s, n) in segs.iter().zip(&slashes) {
                path.push_str(&"/".repeat(*n));
                path.push_str(s);
            }
            let endpoints = matches!(route(&reg, &path), Ok(Route::Resource(t)) if t.info.group.is_empty() && t.info.resource == "endpoints");
            proptest::prop_assert!(!endpoints || may_name_endpoints(&path), "{path}");
        }
    }

    #[test]
    fn escaped_and_plain_paths_to_endpoints_are_routed_early() {
        let reg = Registry::builtin();
        for path in ["/api/v1/namespaces/d/endpoints", "/api/v1/namespaces/d/%65ndpoints/x", "/api/v1/watch/endpoints"]
        {
            assert!(matches!(route(&reg, path), Ok(Route::Resource(t)) if t.info.resource == "endpoints"), "{path}");
            assert!(may_name_endpoints(path), "{path}");
        }
        assert!(!may_name_endpoints("/api/v1/namespaces/d/pods/p/status"));
    }

    #[test]
    fn watchers_see_objects_enter_and_leave_their_selection() {
        use crate::store::{EventType, Meta, WatchEvent};
        let reg = Registry::builtin();
        let view = reg.get("", "v1", "configmaps").unwrap();
        let ctx = WatchCtx {
            view: view.clone(),
            name: None,
            filter: Box::new(|m: &Meta| m.labels.get("app") == Some("x")),
            shape: Shape::Object,
        };
        let obj = |app: &str, rv: u64| {
            let v = json!({"metadata": {"name": "c", "namespace": "d", "labels": {"app": app}, "resourceVersion": rv.to_string()}});
            (Bytes::from(v.to_string()), std::sync::Arc::new(Meta::of(&view, &v)))
        };
        let ev =
            |kind, cur: (Bytes, std::sync::Arc<Meta>), prev: Option<(Bytes, std::sync::Arc<Meta>)>, rv| WatchEvent {
                kind,
                key: "/configmaps".into(),
                id: crate::store::Id::new("d", "c"),
                rv,
                object: cur.0,
                meta: cur.1,
                prev: prev.map(|(b, m)| (crate::compress::Stored::Raw(b), m)),
                prev_rv: 0,
            };
        let line = |b: Option<Bytes>| b.map(|b| serde_json::from_slice::<Value>(&b).unwrap());
        // not matching, then matching: ADDED
        let l = line(ctx.translate(&ev(EventType::Modified, obj("x", 2), Some(obj("y", 1)), 2))).unwrap();
        assert_eq!(l["type"], "ADDED");
        // matching, then not: DELETED with the previous state at the new resourceVersion
        let l = line(ctx.translate(&ev(EventType::Modified, obj("y", 3), Some(obj("x", 2)), 3))).unwrap();
        assert_eq!(l["type"], "DELETED");
        assert_eq!(l["object"]["metadata"]["labels"]["app"], "x");
        assert_eq!(l["object"]["metadata"]["resourceVersion"], "3");
        // matching both: MODIFIED; neither: nothing
        assert_eq!(
            line(ctx.translate(&ev(EventType::Modified, obj("x", 4), Some(obj("x", 3)), 4))).unwrap()["type"],
            "MODIFIED"
        );
        assert!(ctx.translate(&ev(EventType::Modified, obj("y", 5), Some(obj("z", 4)), 5)).is_none());
        assert!(ctx.translate(&ev(EventType::Added, obj("y", 6), None, 6)).is_none());
        assert_eq!(line(ctx.translate(&ev(EventType::Deleted, obj("x", 7), None, 7))).unwrap()["type"], "DELETED");
    }

    #[test]
    fn chunks_keep_whole_lines_in_order_and_send_a_lone_line_uncopied() {
        let mut c = Chunk::default();
        assert_eq!(c.take(), None);
        let a = Bytes::from_static(b"a\n");
        assert_eq!(c.push(a.clone()), None);
        let alone = c.take().unwrap();
        assert_eq!(alone.as_ptr(), a.as_ptr(), "a lone line is not copied");
        assert_eq!(c.take(), None);
        for l in [&b"1\n"[..], b"22\n", b"333\n"] {
            assert_eq!(c.push(Bytes::copy_from_slice(l)), None);
        }
        assert_eq!(c.take().unwrap(), &b"1\n22\n333\n"[..]);
        // A chunk is given back once it reaches the limit, with whole lines only.
        let big = Bytes::from(vec![b'x'; WATCH_CHUNK / 2]);
        assert_eq!(c.push(big.clone()), None);
        let full = c.push(big.clone()).expect("full");
        assert_eq!(full.len(), WATCH_CHUNK);
        assert_eq!(c.take(), None);
        assert_eq!(c.push(Bytes::from(vec![b'y'; WATCH_CHUNK + 1])).map(|b| b.len()), Some(WATCH_CHUNK + 1));
    }

    /// A watch answers `Content-Type: application/json` whether its events carry the objects,
    /// Tables or PartialObjectMetadata (upstream's `serveWatchHandler` sets the stream
    /// serializer's media type only).
    #[tokio::test]
    async fn watches_answer_the_stream_media_type_whatever_their_transform() {
        use tokio_stream::StreamExt as _;
        use tower::ServiceExt as _;
        let s = Server::new(ServerConfig::default());
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        s.api.create(&s.api.info("", "configmaps"), "default", cm, &WriteOptions::default()).expect("create");
        let partial = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
        for (accept, kind) in [(partial, "PartialObjectMetadata"), (table, "Table"), ("application/json", "ConfigMap")]
        {
            let req = Request::get("/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1")
                .header(header::ACCEPT, accept)
                .body(Body::empty())
                .unwrap();
            let resp = router(s.clone()).oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{accept}");
            assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json", "{accept}");
            let frame = resp.into_body().into_data_stream().next().await.expect("an event").expect("a frame");
            let ev: Value = serde_json::from_slice(frame.strip_suffix(b"\n").expect("a line")).expect("JSON");
            assert_eq!((ev["type"].as_str(), ev["object"]["kind"].as_str()), (Some("ADDED"), Some(kind)), "{accept}");
        }
    }

    /// Events that wait for a watcher go out together (a few body frames, not one per event),
    /// every one of them, in order, each a whole line; a live event afterwards still goes alone.
    #[tokio::test]
    async fn a_watchers_backlog_goes_out_in_few_chunks_every_event_in_order() {
        use tokio_stream::StreamExt as _;
        use tower::ServiceExt as _;
        let s = Server::new(ServerConfig::default());
        let cms = s.api.info("", "configmaps");
        let create = |i: usize| {
            let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i:04}")},
                             "data": {"k": "v".repeat(i % 300)}});
            s.api.create(&cms, "default", obj, &WriteOptions::default()).expect("create");
        };
        let req = Request::get("/api/v1/namespaces/default/configmaps?watch=1").body(Body::empty()).unwrap();
        let resp = router(s.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        // The watch is registered; its events queue in the store's per-watcher channel (10,000
        // by default, above N) until the body is polled, so 2,000 wait there at once.
        const N: usize = 2_000;
        (0..N).for_each(create);
        let mut body = resp.into_body().into_data_stream();
        let (mut frames, mut buf, mut names) = (0, Vec::new(), Vec::new());
        while names.len() < N {
            let frame = body.next().await.expect("more").expect("a frame");
            frames += 1;
            buf.extend_from_slice(&frame);
            assert_eq!(buf.last(), Some(&b'\n'), "frames end at line ends");
            for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let ev: Value = serde_json::from_slice(line).expect("a whole JSON line");
                assert_eq!(ev["type"], "ADDED");
                names.push(ev["object"]["metadata"]["name"].as_str().unwrap().to_string());
            }
            buf.clear();
        }
        let want: Vec<String> = (0..N).map(|i| format!("cm-{i:04}")).collect();
        assert_eq!(names, want);
        assert!(frames < N / 10, "{frames} frames for {N} waiting events");
        create(N);
        let frame = body.next().await.expect("more").expect("a frame");
        let ev: Value = serde_json::from_slice(frame.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(ev["object"]["metadata"]["name"], format!("cm-{N:04}"));
    }
}
