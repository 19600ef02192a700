//! The HTTP stack of jobwright's `kube::Client`s in clusters: kube's own layers (base URI, retry,
//! auth, extra headers) and TLS ([`ConfigExt`]), over HTTP/1 connections of hyper's
//! `client::conn::http1` kept in a small pool of our own instead of hyper-util's legacy client.
//!
//! Why: at a busy CronJob slot the legacy client's pool was a good part of the controller's CPU
//! per request (its checkout, and a task spawned for every request only to put the connection
//! back once the answer's body has been read). Here a connection goes back to the pool from the
//! body itself when its end is read; a request takes the most recently returned connection that
//! is still open (waiting, if need be, for hyper to take it up for the next request) or dials a
//! new one. As the legacy client: a request that a reused connection could not start (closed by
//! the server meanwhile) goes on another; idle connections close after 90 s; `Host` is set and the target sent in
//! origin form; the connector's timeouts are kube's (`connect_timeout`, `read_timeout`,
//! `write_timeout`). kube's per-request tracing span (debug level) is left out.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use kube::client::{Body, ClientBuilder, ConfigExt, DynBody};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

/// At most this many idle connections are kept (more than the controllers' concurrent requests).
pub const MAX_IDLE: usize = 256;

/// An idle connection is closed after this long unused (the legacy client's default): a
/// connection that a load balancer dropped silently is not tried.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

type Key = (Option<Scheme>, Authority);
/// Idle connections, the longest idle first.
type Idle = Arc<Mutex<Vec<IdleConn>>>;

struct IdleConn {
    key: Key,
    since: Instant,
    sender: http1::SendRequest<Body>,
}

/// The service a [`builder`] starts from (kube's `GenericService`).
pub type Stack = tower::util::BoxService<Request<Body>, Response<Box<DynBody>>, BoxError>;

/// A `kube::Client` builder as `ClientBuilder::try_from(config)`, over [`Http1`] connections.
pub fn builder(config: kube::Config) -> Result<ClientBuilder<Stack>, kube::Error> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let https = config.rustls_https_connector_with_connector(http)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let retry =
        config.default_retry.then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .service(Http1::new(connector))
        .map_response(|res: Response<Returning>| res.map(|b| Box::new(b) as Box<DynBody>))
        .map_err(BoxError::from)
        .boxed();
    Ok(ClientBuilder::new(service, config.default_namespace))
}

/// HTTP/1 requests over pooled connections made by `connector` (a `Service<Uri>`).
pub struct Http1<C> {
    connector: C,
    idle: Idle,
}

impl<C: Clone> Clone for Http1<C> {
    fn clone(&self) -> Self {
        Self { connector: self.connector.clone(), idle: self.idle.clone() }
    }
}

impl<C> Http1<C> {
    /// A client with no connection yet.
    pub fn new(connector: C) -> Self {
        Self { connector, idle: Arc::default() }
    }

    /// How many connections are idle in the pool (for tests).
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The most recently returned open connection to `key`, ready for a request.
async fn checkout(idle: &Idle, key: &Key) -> Option<http1::SendRequest<Body>> {
    loop {
        let mut sender = {
            let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
            let at = idle.iter().rposition(|c| &c.key == key)?;
            let conn = idle.remove(at);
            if conn.since.elapsed() >= IDLE_TIMEOUT {
                // So are all those before it.
                idle.drain(..at);
                return None;
            }
            conn.sender
        };
        if sender.is_closed() {
            continue;
        }
        // Returned when its last answer's end was read: hyper takes the connection up for the next
        // request as soon as its task runs again (or finds it closed).
        if sender.is_ready() || sender.ready().await.is_ok() {
            return Some(sender);
        }
    }
}

impl<C> Service<Request<Body>> for Http1<C>
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
{
    type Response = Response<Returning>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<Returning>, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let uri = req.uri().clone();
            let authority = uri.authority().cloned().ok_or("request URI has no host")?;
            if !req.headers().contains_key(HOST) {
                let host = match authority.port() {
                    Some(port) if !is_default_port(uri.scheme(), port.as_u16()) => {
                        HeaderValue::from_str(&format!("{}:{port}", authority.host()))?
                    }
                    _ => HeaderValue::from_str(authority.host())?,
                };
                req.headers_mut().insert(HOST, host);
            }
            *req.uri_mut() = Uri::from(uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")));
            let key = (uri.scheme().cloned(), authority);
            loop {
                let (mut sender, reused) = match checkout(&this.idle, &key).await {
                    Some(s) => (s, true),
                    None => (connect(this.connector.clone(), uri.clone()).await?, false),
                };
                match sender.try_send_request(req).await {
                    Ok(res) => {
                        let back = Some((sender, this.idle.clone(), key));
                        return Ok(res.map(|inner| Returning::new(inner, back)));
                    }
                    Err(mut e) => match e.take_message() {
                        // Not started on a connection that had served before: try another.
                        Some(r) if reused => req = r,
                        _ => return Err(e.into_error().into()),
                    },
                }
            }
        })
    }
}

fn is_default_port(scheme: Option<&Scheme>, port: u16) -> bool {
    (scheme == Some(&Scheme::HTTP) && port == 80) || (scheme == Some(&Scheme::HTTPS) && port == 443)
}

/// Dials `uri`'s host and starts an HTTP/1 connection on it (its task runs until it closes).
async fn connect<C>(connector: C, uri: Uri) -> Result<http1::SendRequest<Body>, BoxError>
where
    C: Service<Uri> + Send + 'static,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
{
    let io = connector.oneshot(uri).await.map_err(Into::into)?;
    let (sender, conn) = http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "HTTP connection closed");
        }
    });
    Ok(sender)
}

/// An answer's body; when its end is read, its connection goes back to the pool.
pub struct Returning {
    inner: Incoming,
    back: Option<(http1::SendRequest<Body>, Idle, Key)>,
}

impl Returning {
    fn new(inner: Incoming, back: Option<(http1::SendRequest<Body>, Idle, Key)>) -> Self {
        let mut body = Self { inner, back };
        if http_body::Body::is_end_stream(&body.inner) {
            body.give_back();
        }
        body
    }

    fn give_back(&mut self) {
        if let Some((sender, idle, key)) = self.back.take() {
            let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(IdleConn { key, since: Instant::now(), sender });
            }
        }
    }
}

impl http_body::Body for Returning {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            None => self.give_back(),
            Some(Ok(_)) if http_body::Body::is_end_stream(&self.inner) => self.give_back(),
            // A broken connection is not reused.
            Some(Err(_)) => self.back = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame.map(|f| f.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}
