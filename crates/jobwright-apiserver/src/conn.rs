//! The connection layer: timeouts, a bound on open connections, upstream's max-requests-inflight
//! filter, and Status bodies on the errors hyper answers by itself.
//!
//! What kube-apiserver gets from Go's `http.Server` and its filter chain, and what jobwright does:
//!
//! | upstream | jobwright |
//! |---|---|
//! | `ReadHeaderTimeout` 32 s, `IdleTimeout` 90 s | [`ConnLimits::header_read_timeout`] (32 s): hyper's header timer also runs while a kept-alive connection waits for its next request, so an idle connection is closed after it too |
//! | request timeout 60 s (504 `Timeout`) | [`ConnLimits::body_read_timeout`] (60 s) to read a request body, then the same 504 |
//! | `MaxHeaderBytes` 1 MiB (431) | [`ConnLimits::max_header_bytes`] (1 MiB) and 100 header fields (hyper's default; see [`MAX_HEADER_FIELDS`]); URIs up to 65,534 bytes (hyper's limit, 414); both answered with a `Status` body |
//! | `--max-requests-inflight` 400, `--max-mutating-requests-inflight` 200: 429 with `Retry-After: 1` (watches exempt) | the same limits and answer, as a `Status` (reason `TooManyRequests`) where upstream writes plain text |
//! | no connection limit (the process's file descriptors) | [`ConnLimits::max_connections`] (4,096): at the bound the connection idle the longest is closed to admit the new one; if none is idle the new one waits in the listen backlog |
//!
//! Slowloris clients therefore hold a connection for at most 32 s (header) or 60 s (body), and
//! ~20k idle connections cannot exhaust descriptors or lock other clients out: idle connections
//! are the first to go.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use http::{Method, Request, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::errors::StatusError;

/// Bounds on connections and requests (see the module docs for upstream's values).
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Longest wait for a request's headers, counted from when the connection is ready for one
    /// (so also the idle timeout of a kept-alive connection).
    pub header_read_timeout: Duration,
    /// Longest wait for a request's body once its headers are in.
    pub body_read_timeout: Duration,
    /// Largest request head (request line and headers).
    pub max_header_bytes: usize,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most read-only requests in flight (watches and log streams not counted).
    pub max_requests_in_flight: usize,
    /// Most mutating requests in flight.
    pub max_mutating_requests_in_flight: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(32),
            body_read_timeout: Duration::from_secs(60),
            max_header_bytes: 1 << 20,
            max_connections: 4096,
            max_requests_in_flight: 400,
            max_mutating_requests_in_flight: 200,
        }
    }
}

/// Most header fields in one request: hyper's default, which it parses into arrays on the stack.
/// Any other bound makes hyper allocate and fill two arrays of that many entries for every
/// request (at 1,024: 64 KiB per request, a few per cent of the server's CPU per write); clients
/// send about ten.
pub const MAX_HEADER_FIELDS: usize = 100;

/// Upstream's 504 for a request that did not complete in time.
pub fn timeout_error() -> StatusError {
    StatusError::new(
        504,
        "Timeout",
        "Timeout: request did not complete within requested timeout - context deadline exceeded",
    )
    .with_details(serde_json::json!({}))
}

fn status_response(e: &StatusError) -> Response {
    let mut r = Response::new(Body::from(e.to_wire()));
    *r.status_mut() = StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST);
    r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// The 429 of upstream's max-inflight filter.
fn too_many_requests() -> Response {
    let e = StatusError::new(429, "TooManyRequests", "Too many requests, please try again later.")
        .with_details(serde_json::json!({"retryAfterSeconds": 1}));
    let mut r = status_response(&e);
    r.headers_mut().insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    r
}

/// The 431 for a request head over `max` bytes.
fn header_too_large(max: usize) -> StatusError {
    StatusError::new(
        431,
        "",
        format!(
            "Request Header Fields Too Large: a request head may have at most {max} bytes and {MAX_HEADER_FIELDS} header fields"
        ),
    )
}

/// The size of a request head as Go's `MaxHeaderBytes` counts it (request line and headers).
fn head_size<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len() + uri_len(req.uri()) + 12;
    line + req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>()
}

/// The length of `uri` as written (its `Display`), without writing it.
fn uri_len(uri: &http::Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path().len()
        + uri.query().map_or(0, |q| q.len() + 1)
}

/// Watches and followed logs run as long as the client wants: upstream's long-running requests,
/// which the in-flight limits do not count.
fn long_running<B>(req: &Request<B>) -> bool {
    let q = req.uri().query().unwrap_or("");
    let flag = |k: &str| {
        q.split('&')
            .any(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')).is_some_and(|v| v == "true" || v == "1"))
    };
    req.uri().path().contains("/watch/") || flag("watch") || (req.uri().path().ends_with("/log") && flag("follow"))
}

/// Book-keeping of one open connection.
struct ConnState {
    /// Requests being served (their responses not finished).
    active: AtomicUsize,
    /// When the connection last finished a response (or opened), as ms since `epoch`.
    idle_since_ms: AtomicU64,
    /// Cancelled to close the connection (gracefully: an idle HTTP/1 connection closes at once).
    close: CancellationToken,
}

/// All open connections.
struct Conns {
    epoch: Instant,
    open: Mutex<Vec<Arc<ConnState>>>,
    /// Woken when a connection closes.
    closed: tokio::sync::Notify,
}

impl Conns {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Close the connection idle the longest; false when none is idle.
    fn evict_idle(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let victim = open
            .iter()
            .filter(|c| c.active.load(Ordering::Acquire) == 0 && !c.close.is_cancelled())
            .min_by_key(|c| c.idle_since_ms.load(Ordering::Acquire));
        match victim {
            Some(c) => {
                c.close.cancel();
                true
            }
            None => false,
        }
    }
}

/// Decrements a connection's active count when a response body is done (or dropped).
struct ActiveGuard {
    conn: Arc<ConnState>,
    conns: Arc<Conns>,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.conn.idle_since_ms.store(self.conns.now_ms(), Ordering::Release);
        self.conn.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds an [`ActiveGuard`] until it ends.
struct GuardedBody {
    inner: Body,
    _guard: ActiveGuard,
}

impl http_body::Body for GuardedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serve `app` on `listener` with `limits` until `shutdown` resolves, then close every
/// connection gracefully (open watches are ended by the server's own stop signal) and return.
pub async fn serve<L>(mut listener: L, app: Router, limits: ConnLimits, shutdown: impl Future<Output = ()>)
where
    L: axum::serve::Listener,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conns =
        Arc::new(Conns { epoch: Instant::now(), open: Mutex::new(Vec::new()), closed: tokio::sync::Notify::new() });
    let stop = CancellationToken::new();
    let reads = Arc::new(Semaphore::new(limits.max_requests_in_flight));
    let writes = Arc::new(Semaphore::new(limits.max_mutating_requests_in_flight));
    let tasks = tokio_util::task::TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // At the bound, make room by closing the longest-idle connection, or wait for one to go.
        loop {
            let n = conns.open.lock().unwrap_or_else(|e| e.into_inner()).len();
            if n < limits.max_connections {
                break;
            }
            let closed = conns.closed.notified();
            if !conns.evict_idle() {
                tracing::debug!(open = n, "connection limit reached and none idle: waiting");
            }
            tokio::select! {
                _ = closed => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = &mut shutdown => { stop.cancel(); break; }
            }
        }
        if stop.is_cancelled() {
            break;
        }
        let (io, _peer) = tokio::select! {
            c = listener.accept() => c,
            _ = &mut shutdown => { stop.cancel(); break; }
        };
        let state = Arc::new(ConnState {
            active: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(conns.now_ms()),
            close: stop.child_token(),
        });
        conns.open.lock().unwrap_or_else(|e| e.into_inner()).push(state.clone());
        let (app, conns, limits, reads, writes) =
            (app.clone(), conns.clone(), limits.clone(), reads.clone(), writes.clone());
        tasks.spawn(async move {
            let max_header_bytes = limits.max_header_bytes;
            let svc_state = state.clone();
            let svc_conns = conns.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (app, state, conns) = (app.clone(), svc_state.clone(), svc_conns.clone());
                let (reads, writes) = (reads.clone(), writes.clone());
                async move {
                    state.active.fetch_add(1, Ordering::AcqRel);
                    let guard = ActiveGuard { conn: state, conns };
                    if head_size(&req) > max_header_bytes {
                        let r = status_response(&header_too_large(max_header_bytes));
                        return Ok(r.map(|b| Body::new(GuardedBody { inner: b, _guard: guard })));
                    }
                    let permit = if long_running(&req) {
                        None
                    } else {
                        let sem = if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
                            reads
                        } else {
                            writes
                        };
                        match sem.try_acquire_owned() {
                            Ok(p) => Some(p),
                            Err(_) => {
                                let r = too_many_requests();
                                return Ok::<_, Infallible>(
                                    r.map(|b| Body::new(GuardedBody { inner: b, _guard: guard })),
                                );
                            }
                        }
                    };
                    let resp = app.oneshot(req.map(Body::new)).await.unwrap_or_else(|e| match e {});
                    drop(permit);
                    Ok(resp.map(|b| Body::new(GuardedBody { inner: b, _guard: guard })))
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_header_bytes.saturating_mul(2).max(8192))
                .writev(false);
            let io = TokioIo::new(StatusBodies::new(io, limits.max_header_bytes));
            // Upgrades (exec, attach, port-forward) hand the connection to the stream proxy.
            let conn = builder.serve_connection(io, service).with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => { if let Err(e) = r { tracing::debug!(error = %e, "connection ended"); } }
                _ = state.close.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
            let mut open = conns.open.lock().unwrap_or_else(|e| e.into_inner());
            open.retain(|c| !Arc::ptr_eq(c, &state));
            drop(open);
            conns.closed.notify_waiters();
        });
    }
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

/// Wraps a connection so the error responses hyper writes by itself (400 for an unparsable
/// request, 414 for a URI over 65,534 bytes, 431 for a head over the limit), which carry no
/// body, go out with a `Status` body like every other error. Our own error responses always
/// have a body, so only hyper's empty ones match.
struct StatusBodies<T> {
    inner: T,
    max_header_bytes: usize,
    /// A rewritten response still being written, and the length of the write it replaces.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<T> StatusBodies<T> {
    fn new(inner: T, max_header_bytes: usize) -> Self {
        Self { inner, max_header_bytes, pending: None }
    }

    /// The replacement for `buf` when it is one of hyper's empty error responses.
    fn rewrite(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let code = [(b"HTTP/1.1 400 ", 400u16), (b"HTTP/1.1 414 ", 414), (b"HTTP/1.1 431 ", 431)]
            .into_iter()
            .find(|(p, _)| buf.starts_with(*p))?
            .1;
        let text = std::str::from_utf8(buf).ok()?;
        let (head, rest) = text.split_once("\r\n\r\n")?;
        if !rest.is_empty() || !head.to_ascii_lowercase().contains("\r\ncontent-length: 0") {
            return None;
        }
        let e = match code {
            400 => StatusError::bad_request("the request could not be parsed as HTTP/1.1"),
            414 => StatusError::new(414, "", "URI Too Long: the request URI may have at most 65534 bytes"),
            _ => header_too_large(self.max_header_bytes),
        };
        let body = serde_json::to_vec(&e.to_status()).ok()?;
        let mut out = String::new();
        for line in head.split("\r\n") {
            if line.to_ascii_lowercase().starts_with("content-length:") {
                out.push_str(&format!("content-length: {}\r\ncontent-type: application/json\r\n", body.len()));
            } else {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&body);
        Some(bytes)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StatusBodies<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StatusBodies<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.pending.is_none()
            && let Some(r) = self.rewrite(buf)
        {
            self.pending = Some((r, 0, buf.len()));
        }
        let this = &mut *self;
        if let Some((bytes, done, replaces)) = &mut this.pending {
            while *done < bytes.len() {
                match Pin::new(&mut this.inner).poll_write(cx, &bytes[*done..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => *done += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let n = *replaces;
            this.pending = None;
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_error_heads_get_a_status_body() {
        let w = StatusBodies::new((), 1 << 20);
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(w.rewrite(head).unwrap()).unwrap();
        let (h, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(h.contains(&format!("content-length: {}", body.len())), "{h}");
        assert!(h.contains("content-type: application/json"));
        let st: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(st["kind"], "Status");
        assert_eq!(st["code"], 431);
        assert!(st["message"].as_str().unwrap().contains("1048576 bytes"));
        // Our own responses (with a body) are left alone.
        assert!(w.rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n{\"kind\":1}").is_none());
        assert!(w.rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }

    /// The server side of every accepted connection to `addr` from `peer`, found among this
    /// process's file descriptors (the test server runs in the test's process): whether it has
    /// `TCP_NODELAY`.
    fn server_side_nodelay(addr: std::net::SocketAddr, peer: std::net::SocketAddr) -> Vec<bool> {
        use std::os::fd::FromRawFd;
        let mut found = vec![];
        for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            if !std::fs::read_link(entry.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")) {
                continue;
            }
            // SAFETY: the descriptor is a socket of this process, only inspected (getsockname,
            // getpeername, getsockopt), and never closed (ManuallyDrop).
            let s = std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
            if s.local_addr().ok() == Some(addr) && s.peer_addr().ok() == Some(peer) {
                found.push(s.nodelay().unwrap());
            }
        }
        found
    }

    /// Regression: a watch event written after the response head waited for the client's delayed
    /// ACK (Nagle's algorithm; ~40 ms on Linux): a client giving up on the watch meanwhile (a
    /// re-list, tests/controller_relist) never saw it, and its Job waited for the expectation's
    /// 5 minutes. Accepted connections send at once, as Go's do (plain and RBAC listeners).
    #[tokio::test]
    async fn accepted_connections_send_without_nagle_delay() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for rbac in [false, true] {
            let s = if rbac {
                crate::testkit::TestApiServer::start_rbac().await
            } else {
                crate::testkit::TestApiServer::start().await
            };
            let addr: std::net::SocketAddr = s.url().trim_start_matches("http://").parse().unwrap();
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            // A full exchange: the server has accepted (and, for RBAC, sniffed) the connection.
            c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
            let mut buf = [0u8; 12];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf[..9], b"HTTP/1.1 ", "rbac={rbac}");
            let seen = server_side_nodelay(addr, c.local_addr().unwrap());
            assert_eq!(seen, vec![true], "rbac={rbac}: the accepted socket has TCP_NODELAY");
        }
    }

    /// Up to `MAX_HEADER_FIELDS` header fields are served; one more is a 431 with a `Status` body.
    #[tokio::test]
    async fn header_fields_are_bounded_with_a_status_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let s = crate::testkit::TestApiServer::start().await;
        let addr: std::net::SocketAddr = s.url().trim_start_matches("http://").parse().unwrap();
        for (fields, code) in [(MAX_HEADER_FIELDS, "200"), (MAX_HEADER_FIELDS + 1, "431")] {
            // `Host` and `Connection` plus the extra fields.
            let extra: String = (0..fields - 2).map(|i| format!("x-h{i}: v\r\n")).collect();
            let req = format!("GET /version HTTP/1.1\r\nhost: x\r\n{extra}connection: close\r\n\r\n");
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(req.as_bytes()).await.unwrap();
            let mut out = Vec::new();
            c.read_to_end(&mut out).await.unwrap();
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with(&format!("HTTP/1.1 {code} ")), "{fields} fields: {text}");
            if code == "431" {
                let body = text.split_once("\r\n\r\n").unwrap().1;
                let st: serde_json::Value = serde_json::from_str(body).unwrap();
                assert_eq!((st["kind"].as_str(), st["code"].as_u64()), (Some("Status"), Some(431)));
                assert!(st["message"].as_str().unwrap().contains("100 header fields"), "{st}");
            }
        }
    }

    #[test]
    fn uri_len_is_the_written_length() {
        for u in ["/api/v1/pods", "/api/v1/pods?watch=1&x=%20y", "http://h:8/a/b?c", "h:443", "/", "*"] {
            let uri: http::Uri = u.parse().unwrap();
            assert_eq!(uri_len(&uri), uri.to_string().len(), "{u}");
        }
    }

    #[test]
    fn watches_and_followed_logs_are_long_running() {
        let req = |u: &str| Request::get(u).body(()).unwrap();
        assert!(long_running(&req("/api/v1/pods?watch=true")));
        assert!(long_running(&req("/api/v1/pods?watch=1&labelSelector=a")));
        assert!(long_running(&req("/api/v1/watch/pods")));
        assert!(long_running(&req("/api/v1/namespaces/d/pods/p/log?follow=true")));
        assert!(!long_running(&req("/api/v1/pods?limit=5")));
        assert!(!long_running(&req("/api/v1/namespaces/d/pods/p/log")));
        assert!(!long_running(&req("/api/v1/pods?watch=false&xwatch=true&watch=truex")));
        assert!(long_running(&req("/api/v1/pods?a=b&watch=true")));
    }
}
