//! The HTTP stack of jobwright's `kube::Client`s in clusters: kube's own layers (base URI, retry,
//! auth, extra headers) and TLS ([`ConfigExt`]), over HTTP/1 connections of hyper's
//! `client::conn::http1` kept in a small pool of our own instead of hyper-util's legacy client.
//!
//! Why: at a busy CronJob slot the legacy client's pool was a good part of the controller's CPU
//! per request (its checkout, and a task spawned for every request only to put the connection
//! back once the answer's body has been read), and so were the wake-ups between the request's
//! task and the connection's. Here a connection has no task of its own: the request's future
//! drives it until the answer's head has come, then the answer's body while it is read, and the
//! body puts it back in the pool when its end is read. A request takes the most recently
//! returned connection that is still open (driven once, it reads a close that came meanwhile)
//! or dials a new one. HTTP upgrades are not supported (the controllers make none). As the legacy
//! client: a request that a reused connection could not start (closed by the server meanwhile)
//! goes on another; a connection idle for 90 s is not reused (it is dropped when next looked at,
//! so until then a server's close waits unread); `Host` is set and the target sent in origin
//! form; the connector's timeouts are kube's (`connect_timeout`, `read_timeout`,
//! `write_timeout`). A configured proxy is refused, as kube's builder without its proxy features
//! refuses it. kube's per-request tracing span (debug level) and its error logs are left out.

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
    conn: Conn,
}

/// An HTTP/1 connection, driven by whoever uses it: the task awaiting an answer, then the one
/// reading its body (no task of its own, so no wake-ups between tasks per request).
struct Conn {
    sender: http1::SendRequest<Body>,
    driver: Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>,
}

impl Conn {
    /// Lets the connection do what it can (write the request, read what has arrived); true when it
    /// has ended (closed, or broken).
    fn poll_closed(&mut self, cx: &mut Context<'_>) -> bool {
        match self.driver.as_mut().poll(cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "HTTP connection broken");
                true
            }
            Poll::Pending => false,
        }
    }
}

/// The service a [`builder`] starts from (kube's `GenericService`).
pub type Stack = tower::util::BoxService<Request<Body>, Response<Box<DynBody>>, BoxError>;

/// A `kube::Client` builder as `ClientBuilder::try_from(config)`, over [`Http1`] connections.
pub fn builder(config: kube::Config) -> Result<ClientBuilder<Stack>, kube::Error> {
    // As kube's builder built without its proxy features (this project's): a proxy (the
    // kubeconfig's `proxy-url`, `HTTPS_PROXY`) is refused, never silently bypassed.
    if let Some(proxy_url) = &config.proxy_url {
        let protocol_feature = if proxy_url.scheme_str() == Some("socks5") { "kube/socks5" } else { "kube/http-proxy" };
        return Err(kube::Error::ProxyProtocolDisabled { proxy_url: Box::new(proxy_url.clone()), protocol_feature });
    }
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

/// The most recently returned connection to `key` that is still open and ready for a request.
async fn checkout(idle: &Idle, key: &Key) -> Option<Conn> {
    loop {
        let mut conn = {
            let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
            let at = idle.iter().rposition(|c| &c.key == key)?;
            let conn = idle.remove(at);
            if conn.since.elapsed() >= IDLE_TIMEOUT {
                // So are all those before it.
                idle.drain(..at);
                return None;
            }
            conn.conn
        };
        // Not driven while idle: this reads what came meanwhile (a close) and takes the
        // connection up for the next request.
        let closed = std::future::poll_fn(|cx| Poll::Ready(conn.poll_closed(cx))).await;
        if !closed && conn.sender.is_ready() {
            return Some(conn);
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
                let (conn, reused) = match checkout(&this.idle, &key).await {
                    Some(c) => (c, true),
                    None => (connect(this.connector.clone(), uri.clone()).await?, false),
                };
                match send(conn, req).await {
                    Ok((res, conn)) => {
                        let back = (conn, this.idle.clone(), key);
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

/// Sends `req` on `conn`, driving the connection until the answer's head has come.
async fn send(
    mut conn: Conn,
    req: Request<Body>,
) -> Result<(Response<Incoming>, Option<Conn>), hyper::client::conn::TrySendError<Request<Body>>> {
    let mut answer = std::pin::pin!(conn.sender.try_send_request(req));
    let mut conn = Some(conn);
    let res = std::future::poll_fn(|cx| {
        if let Some(c) = &mut conn
            && c.poll_closed(cx)
        {
            // Dropping it fails the request (with the request back if it was not started).
            conn = None;
        }
        answer.as_mut().poll(cx)
    })
    .await?;
    Ok((res, conn))
}

fn is_default_port(scheme: Option<&Scheme>, port: u16) -> bool {
    (scheme == Some(&Scheme::HTTP) && port == 80) || (scheme == Some(&Scheme::HTTPS) && port == 443)
}

/// Dials `uri`'s host and starts an HTTP/1 connection on it.
async fn connect<C>(connector: C, uri: Uri) -> Result<Conn, BoxError>
where
    C: Service<Uri> + Send + 'static,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
{
    let io = connector.oneshot(uri).await.map_err(Into::into)?;
    let (sender, driver) = http1::handshake(io).await?;
    Ok(Conn { sender, driver: Box::pin(driver) })
}

/// An answer's body. It drives its connection while it is read; when its end is read, the
/// connection goes back to the pool.
pub struct Returning {
    inner: Incoming,
    back: Option<(Conn, Idle, Key)>,
}

impl Returning {
    fn new(inner: Incoming, (conn, idle, key): (Option<Conn>, Idle, Key)) -> Self {
        let mut body = Self { inner, back: conn.map(|c| (c, idle, key)) };
        if http_body::Body::is_end_stream(&body.inner) {
            body.give_back();
        }
        body
    }

    fn give_back(&mut self) {
        if let Some((conn, idle, key)) = self.back.take() {
            let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(IdleConn { key, since: Instant::now(), conn });
            }
        }
    }

    /// Drives the connection (dropped once it has ended: its body then ends or fails).
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some((conn, _, _)) = &mut self.back
            && conn.poll_closed(cx)
        {
            self.back = None;
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
        let mut frame = Poll::Pending;
        // Twice at most: asking the body for more lets the connection read more.
        for _ in 0..2 {
            self.drive(cx);
            frame = Pin::new(&mut self.inner).poll_frame(cx);
            if frame.is_ready() {
                break;
            }
        }
        let frame = ready!(frame);
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
