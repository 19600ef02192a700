//! Prometheus metrics for the controller process, in OpenMetrics text.
//!
//! One [`Metrics`] value owns a `prometheus-client` [`Registry`] and every series the controller
//! exports. It is cheap to clone (every metric is an `Arc` inside) and is meant to be created once
//! per process and handed to the controller context, the API client stack and the admin server.
//!
//! # Series
//!
//! | series | type | labels | meaning |
//! |---|---|---|---|
//! | `jobwright_reconcile_total` | counter | `result` = `success`, `error`, `requeue`, `requeue_after` | reconciles finished, by outcome (controller-runtime's result names) |
//! | `jobwright_reconcile_errors_total` | counter | `error` = the controller error's `metric_label()` | reconciles that failed, by error kind |
//! | `jobwright_reconcile_duration_seconds` | histogram | | wall time of one reconcile |
//! | `jobwright_workqueue_depth` | gauge | | Jobs queued by a watch event and not yet being synced (a delayed requeue is not counted) |
//! | `jobwright_pods_created_total` | counter | | pods created by the controller |
//! | `jobwright_pods_deleted_total` | counter | | pods deleted by the controller |
//! | `jobwright_jobs_finished_total` | counter | `condition` (`Complete`/`Failed`), `reason` | Jobs the controller marked finished |
//! | `jobwright_api_requests_total` | counter | `verb` (Kubernetes verb), `code` (HTTP status or `error`) | requests made through the instrumented `kube::Client` |
//! | `jobwright_leader` | gauge | | 1 while this replica holds the leader lease, else 0 |
//! | `jobwright_cronjob_job_creation_skew_seconds` | histogram | | time from a CronJob's scheduled slot to its Job's `creationTimestamp` (upstream's `cronjob_controller_job_creation_skew_duration_seconds`, same buckets) |
//!
//! `jobwright_reconcile_total` has all four results from the start (at 0). The families whose label
//! values are open-ended (`reconcile_errors`, `jobs_finished`, `api_requests`) appear in the
//! exposition with their first sample: an empty family renders nothing, not even its `# TYPE`.
//!
//! API requests are counted by [`ApiMetricsLayer`], a `tower` layer for
//! [`kube::client::ClientBuilder::with_layer`]; [`instrumented_client`] builds such a client.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the reconcile duration histogram buckets.
pub const RECONCILE_DURATION_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0];

/// Upper bounds (seconds) of the CronJob creation-skew buckets: upstream's
/// `ExponentialBuckets(1, 2, 10)`.
pub const CRONJOB_SKEW_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// How a reconcile ended: the `result` label of `jobwright_reconcile_total`.
///
/// The names are controller-runtime's (`controller_runtime_reconcile_total`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReconcileResult {
    /// Done; nothing scheduled.
    Success,
    /// The reconcile returned an error.
    Error,
    /// Done, asked to run again as soon as possible.
    Requeue,
    /// Done, asked to run again after a delay.
    RequeueAfter,
}

impl ReconcileResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Requeue => "requeue",
            Self::RequeueAfter => "requeue_after",
        }
    }
}

impl EncodeLabelValue for ReconcileResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.as_str())
    }
}

/// Labels of `jobwright_reconcile_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// How the reconcile ended.
    pub result: ReconcileResult,
}

/// Labels of `jobwright_reconcile_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The controller error's `metric_label()`, free-form so any error enum can report.
    pub error: String,
}

/// Labels of `jobwright_jobs_finished_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FinishedLabels {
    /// The terminal condition type: `Complete` or `Failed`.
    pub condition: String,
    /// The condition's reason, e.g. `BackoffLimitExceeded`, `DeadlineExceeded`, `CompletionsReached`.
    pub reason: String,
}

/// Labels of `jobwright_api_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiRequestLabels {
    /// The Kubernetes verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or the lower-cased HTTP method for anything else.
    pub verb: String,
    /// The HTTP status code (`200`, `409`, ...) or `error` when no response came back.
    pub code: String,
}

/// Every series the controller process exports, and the registry that renders them.
///
/// Clone it freely: clones share the same series.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// `jobwright_reconcile_total{result}`: reconciles finished, by outcome.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// `jobwright_reconcile_errors_total{error}`: failed reconciles by error kind.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// `jobwright_reconcile_duration_seconds`: reconcile wall time.
    pub reconcile_duration: Histogram,
    /// `jobwright_workqueue_depth`: objects waiting to be reconciled.
    pub workqueue_depth: Gauge,
    /// `jobwright_pods_created_total`: pods created.
    pub pods_created: Counter,
    /// `jobwright_pods_deleted_total`: pods deleted.
    pub pods_deleted: Counter,
    /// `jobwright_jobs_finished_total{condition,reason}`: Jobs marked finished.
    pub jobs_finished: Family<FinishedLabels, Counter>,
    /// `jobwright_api_requests_total{verb,code}`: API requests through the instrumented client.
    pub api_requests: Family<ApiRequestLabels, Counter>,
    /// `jobwright_leader`: 1 while this replica is the leader.
    pub leader: Gauge,
    /// `jobwright_cronjob_job_creation_skew_seconds`: scheduled slot to Job creation.
    pub cronjob_creation_skew: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates every series, registered under the `jobwright` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("jobwright");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration = Histogram::new(RECONCILE_DURATION_BUCKETS);
        let workqueue_depth = Gauge::default();
        let pods_created = Counter::default();
        let pods_deleted = Counter::default();
        let jobs_finished = Family::<FinishedLabels, Counter>::default();
        let api_requests = Family::<ApiRequestLabels, Counter>::default();
        let leader = Gauge::default();
        let cronjob_creation_skew = Histogram::new(CRONJOB_SKEW_BUCKETS);

        // Every result exists from the start (at 0), so rates and ratios work before the first error.
        for result in
            [ReconcileResult::Success, ReconcileResult::Error, ReconcileResult::Requeue, ReconcileResult::RequeueAfter]
        {
            let _ = reconciles.get_or_create(&ReconcileLabels { result });
        }
        registry.register("reconcile", "Reconciles finished, by result", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that returned an error, by error kind",
            reconcile_errors.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Wall time of one reconcile",
            prometheus_client::registry::Unit::Seconds,
            reconcile_duration.clone(),
        );
        registry.register("workqueue_depth", "Objects waiting in the controller's queue", workqueue_depth.clone());
        registry.register("pods_created", "Pods created by the controller", pods_created.clone());
        registry.register("pods_deleted", "Pods deleted by the controller", pods_deleted.clone());
        registry.register(
            "jobs_finished",
            "Jobs marked finished, by terminal condition and reason",
            jobs_finished.clone(),
        );
        registry.register(
            "api_requests",
            "Kubernetes API requests, by verb and HTTP status code",
            api_requests.clone(),
        );
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        registry.register_with_unit(
            "cronjob_job_creation_skew",
            "Time between when a cronjob is scheduled to be run, and when the corresponding job is created",
            prometheus_client::registry::Unit::Seconds,
            cronjob_creation_skew.clone(),
        );

        Self {
            registry: Arc::new(registry),
            reconciles,
            reconcile_errors,
            reconcile_duration,
            workqueue_depth,
            pods_created,
            pods_deleted,
            jobs_finished,
            api_requests,
            leader,
            cronjob_creation_skew,
        }
    }

    /// Renders every series in OpenMetrics text (ends with `# EOF`); serve it with
    /// [`OPENMETRICS_CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records one finished reconcile: its outcome and how long it took.
    pub fn record_reconcile(&self, result: ReconcileResult, elapsed: Duration) {
        self.reconciles.get_or_create(&ReconcileLabels { result }).inc();
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }

    /// Records one failed reconcile by error kind (the controller error's `metric_label()`).
    /// Call it in addition to [`Metrics::record_reconcile`] with [`ReconcileResult::Error`].
    pub fn record_error(&self, kind: impl Into<String>) {
        self.reconcile_errors.get_or_create(&ErrorLabels { error: kind.into() }).inc();
    }

    /// Starts timing a reconcile; finish with [`ReconcileTimer::finish`].
    pub fn reconcile_timer(&self) -> ReconcileTimer {
        ReconcileTimer { metrics: self.clone(), start: Instant::now() }
    }

    /// Counts `n` pods created.
    pub fn pods_created(&self, n: u64) {
        self.pods_created.inc_by(n);
    }

    /// Counts `n` pods deleted.
    pub fn pods_deleted(&self, n: u64) {
        self.pods_deleted.inc_by(n);
    }

    /// Counts one Job marked finished with terminal `condition` (`Complete`/`Failed`) and `reason`.
    pub fn job_finished(&self, condition: &str, reason: &str) {
        self.jobs_finished
            .get_or_create(&FinishedLabels { condition: condition.to_string(), reason: reason.to_string() })
            .inc();
    }

    /// Sets the work-queue depth gauge.
    pub fn set_workqueue_depth(&self, depth: i64) {
        self.workqueue_depth.set(depth);
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// A `tower` layer that counts every request into `jobwright_api_requests_total`.
    pub fn api_layer(&self) -> ApiMetricsLayer {
        ResponseHookLayer::new(CountRequests { requests: self.api_requests.clone() })
    }
}

/// Times one reconcile; created by [`Metrics::reconcile_timer`].
#[derive(Debug)]
pub struct ReconcileTimer {
    metrics: Metrics,
    start: Instant,
}

impl ReconcileTimer {
    /// Records the reconcile with its outcome and elapsed time. For errors, also pass the
    /// error's `metric_label()` to [`Metrics::record_error`].
    pub fn finish(self, result: ReconcileResult) {
        self.metrics.record_reconcile(result, self.start.elapsed());
    }
}

/// Builds a `kube::Client` from `config` whose every request is counted in
/// `jobwright_api_requests_total`.
pub fn instrumented_client(config: kube::Config, metrics: &Metrics) -> Result<kube::Client, kube::Error> {
    let builder = crate::httpclient::builder(config)?;
    Ok(builder.with_layer(&metrics.api_layer()).build())
}

/// The Kubernetes verb of a request, from its method, path and query, like kube-apiserver's
/// `RequestInfo` resolver: `GET` on a collection is `list` (or `watch` with `watch=true|1`),
/// `DELETE` on a collection is `deletecollection`, `GET` on `.../watch/...` is `watch`.
pub fn request_verb(method: &http::Method, uri: &http::Uri) -> &'static str {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let watch_param = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| matches!(kv, "watch=true" | "watch=1" | "watch=True" | "watch")));
    // Strip the group/version prefix: /api/v1/... or /apis/{group}/{version}/...
    let rest: &[&str] = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    // After namespaces/{ns}, the resource follows; a bare namespaces/{ns} names a namespace.
    let has_name = match rest {
        ["namespaces", _ns] => true,
        ["namespaces", _ns, _resource, more @ ..] => !more.is_empty(),
        [_resource, more @ ..] => !more.is_empty(),
        [] => false,
    };
    match *method {
        http::Method::GET | http::Method::HEAD => {
            if legacy_watch || watch_param {
                "watch"
            } else if has_name || rest.is_empty() {
                "get"
            } else {
                "list"
            }
        }
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => {
            if has_name {
                "delete"
            } else {
                "deletecollection"
            }
        }
        http::Method::OPTIONS => "options",
        _ => "other",
    }
}

/// What a [`ResponseHookLayer`] does around each request of a client: it looks at the request as
/// it is sent, keeps what it needs of it, and is called again with the answer's status code.
pub trait ResponseHook: Clone {
    /// What is kept of a request until its answer.
    type Pending: Send + 'static;

    /// The request is being sent.
    fn request<B>(&self, req: &http::Request<B>) -> Self::Pending;

    /// Its answer came with `status`, or none came (`None`: the request failed).
    fn response(&self, pending: Self::Pending, status: Option<http::StatusCode>);
}

/// A `tower` layer calling a [`ResponseHook`] with each request and its answer's status: the
/// one shape of the client layers that observe requests ([`Metrics::api_layer`], benchmarks'
/// probes). The response future is the inner one plus the hook, not boxed.
#[derive(Clone, Debug)]
pub struct ResponseHookLayer<H> {
    hook: H,
}

impl<H> ResponseHookLayer<H> {
    /// A layer calling `hook`.
    pub fn new(hook: H) -> Self {
        Self { hook }
    }
}

impl<S, H: Clone> tower::Layer<S> for ResponseHookLayer<H> {
    type Service = ResponseHookService<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseHookService { inner, hook: self.hook.clone() }
    }
}

/// The service made by [`ResponseHookLayer`].
#[derive(Clone, Debug)]
pub struct ResponseHookService<S, H> {
    inner: S,
    hook: H,
}

impl<S, H, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for ResponseHookService<S, H>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    H: ResponseHook,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = HookedFuture<S::Future, H>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let pending = self.hook.request(&req);
        HookedFuture { inner: self.inner.call(req), hook: Some((self.hook.clone(), pending)) }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ResponseHookService`].
    pub struct HookedFuture<F, H: ResponseHook> {
        #[pin]
        inner: F,
        hook: Option<(H, H::Pending)>,
    }
}

impl<F, H, ResBody, E> Future for HookedFuture<F, H>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    H: ResponseHook,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Some((hook, pending)) = this.hook.take() {
            hook.response(pending, result.as_ref().ok().map(|r| r.status()));
        }
        Poll::Ready(result)
    }
}

/// The [`ResponseHook`] counting requests by verb and response code; see [`Metrics::api_layer`]
/// and [`instrumented_client`].
#[derive(Clone, Debug)]
pub struct CountRequests {
    requests: Family<ApiRequestLabels, Counter>,
}

impl ResponseHook for CountRequests {
    type Pending = &'static str;

    fn request<B>(&self, req: &http::Request<B>) -> &'static str {
        request_verb(req.method(), req.uri())
    }

    fn response(&self, verb: &'static str, status: Option<http::StatusCode>) {
        let code = status.map_or_else(|| "error".to_string(), |s| s.as_str().to_string());
        self.requests.get_or_create(&ApiRequestLabels { verb: verb.to_string(), code }).inc();
    }
}

/// The layer counting requests by verb and response code ([`Metrics::api_layer`]).
pub type ApiMetricsLayer = ResponseHookLayer<CountRequests>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Parses OpenMetrics text into `series{labels} -> value`, checking every line's shape.
    fn parse(text: &str) -> (HashMap<String, f64>, Vec<(String, String)>) {
        let mut samples = HashMap::new();
        let mut types = Vec::new();
        let mut saw_eof = false;
        for line in text.lines() {
            assert!(!saw_eof, "content after # EOF: {line}");
            if line == "# EOF" {
                saw_eof = true;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').expect("TYPE line has a type");
                types.push((name.to_string(), ty.to_string()));
            } else if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            } else {
                let (series, value) = line.rsplit_once(' ').expect("sample has a value");
                let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line}"));
                samples.insert(series.to_string(), value);
            }
        }
        assert!(saw_eof, "exposition must end with # EOF");
        (samples, types)
    }

    #[test]
    fn every_documented_series_is_rendered_with_its_type() {
        let m = Metrics::new();
        m.record_reconcile(ReconcileResult::Success, Duration::from_millis(20));
        m.record_reconcile(ReconcileResult::Error, Duration::from_millis(3));
        m.record_error("Kube");
        m.set_workqueue_depth(7);
        m.pods_created(3);
        m.pods_deleted(1);
        m.job_finished("Failed", "BackoffLimitExceeded");
        m.set_leader(true);
        m.api_requests.get_or_create(&ApiRequestLabels { verb: "list".into(), code: "200".into() }).inc();

        let (samples, types) = parse(&m.render());
        let expected_types = [
            ("jobwright_reconcile", "counter"),
            ("jobwright_reconcile_errors", "counter"),
            ("jobwright_reconcile_duration_seconds", "histogram"),
            ("jobwright_workqueue_depth", "gauge"),
            ("jobwright_pods_created", "counter"),
            ("jobwright_pods_deleted", "counter"),
            ("jobwright_jobs_finished", "counter"),
            ("jobwright_api_requests", "counter"),
            ("jobwright_leader", "gauge"),
        ];
        for (name, ty) in expected_types {
            assert!(types.iter().any(|(n, t)| n == name && t == ty), "missing # TYPE {name} {ty} in {types:?}");
        }
        let expect = |series: &str, value: f64| {
            assert_eq!(samples.get(series), Some(&value), "{series} in {samples:?}");
        };
        expect(r#"jobwright_reconcile_total{result="success"}"#, 1.0);
        expect(r#"jobwright_reconcile_total{result="error"}"#, 1.0);
        expect(r#"jobwright_reconcile_errors_total{error="Kube"}"#, 1.0);
        expect("jobwright_reconcile_duration_seconds_count", 2.0);
        expect(r#"jobwright_reconcile_duration_seconds_bucket{le="0.005"}"#, 1.0);
        expect(r#"jobwright_reconcile_duration_seconds_bucket{le="+Inf"}"#, 2.0);
        expect("jobwright_workqueue_depth", 7.0);
        expect("jobwright_pods_created_total", 3.0);
        expect("jobwright_pods_deleted_total", 1.0);
        expect(r#"jobwright_jobs_finished_total{condition="Failed",reason="BackoffLimitExceeded"}"#, 1.0);
        expect(r#"jobwright_api_requests_total{verb="list",code="200"}"#, 1.0);
        expect("jobwright_leader", 1.0);
    }

    #[test]
    fn timer_records_outcome() {
        let m = Metrics::new();
        m.reconcile_timer().finish(ReconcileResult::RequeueAfter);
        let (samples, _) = parse(&m.render());
        assert_eq!(samples.get(r#"jobwright_reconcile_total{result="requeue_after"}"#), Some(&1.0));
        assert_eq!(samples.get("jobwright_reconcile_duration_seconds_count"), Some(&1.0));
    }

    #[test]
    fn verbs_follow_kube_apiserver_request_info() {
        let cases = [
            ("GET", "/api/v1/namespaces/default/pods", "list"),
            ("GET", "/api/v1/namespaces/default/pods?watch=true&resourceVersion=1", "watch"),
            ("GET", "/api/v1/namespaces/default/pods?labelSelector=a%3Db&watch=1", "watch"),
            ("GET", "/api/v1/namespaces/default/pods/p1", "get"),
            ("GET", "/api/v1/namespaces/default/pods/p1/log", "get"),
            ("GET", "/api/v1/pods", "list"),
            ("GET", "/api/v1/namespaces", "list"),
            ("GET", "/api/v1/namespaces/default", "get"),
            ("GET", "/api/v1/watch/namespaces/default/pods", "watch"),
            ("GET", "/apis/batch/v1/namespaces/ns/jobs", "list"),
            ("GET", "/apis/batch/v1/jobs?watch=true", "watch"),
            ("GET", "/apis", "get"),
            ("GET", "/version", "get"),
            ("POST", "/api/v1/namespaces/default/pods", "create"),
            ("PUT", "/apis/batch/v1/namespaces/ns/jobs/j/status", "update"),
            ("PATCH", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l", "patch"),
            ("DELETE", "/api/v1/namespaces/default/pods/p1", "delete"),
            ("DELETE", "/api/v1/namespaces/default/pods", "deletecollection"),
        ];
        for (method, uri, verb) in cases {
            let method: http::Method = method.parse().unwrap();
            let uri: http::Uri = uri.parse().unwrap();
            assert_eq!(request_verb(&method, &uri), verb, "{method} {uri}");
        }
    }

    #[tokio::test]
    async fn layer_counts_every_kube_client_request_by_verb_and_code() {
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::{Api, ListParams};

        // A fake API server as a tower service: lists succeed, gets of unknown pods are 404.
        let service = tower::service_fn(|req: http::Request<kube::client::Body>| async move {
            let (status, body) = if req.uri().path().ends_with("/pods") {
                (200, r#"{"apiVersion":"v1","kind":"PodList","metadata":{},"items":[]}"#.to_string())
            } else {
                (
                    404,
                    r#"{"apiVersion":"v1","kind":"Status","status":"Failure","message":"pods \"x\" not found","reason":"NotFound","code":404}"#
                        .to_string(),
                )
            };
            let resp = http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(body.into_bytes()))
                .unwrap();
            Ok::<_, std::convert::Infallible>(resp)
        });
        let metrics = Metrics::new();
        let client = kube::client::ClientBuilder::new(service, "default").with_layer(&metrics.api_layer()).build();
        let pods: Api<Pod> = Api::namespaced(client, "default");
        pods.list(&ListParams::default()).await.unwrap();
        pods.list(&ListParams::default()).await.unwrap();
        assert!(pods.get("x").await.is_err());

        let (samples, _) = parse(&metrics.render());
        assert_eq!(samples.get(r#"jobwright_api_requests_total{verb="list",code="200"}"#), Some(&2.0));
        assert_eq!(samples.get(r#"jobwright_api_requests_total{verb="get",code="404"}"#), Some(&1.0));
    }

    #[tokio::test]
    async fn instrumented_client_counts_requests_over_real_http() {
        use axum::{Router, routing::get};
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::{Api, ListParams};

        let app = Router::new().route(
            "/api/v1/namespaces",
            get(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"apiVersion":"v1","kind":"NamespaceList","metadata":{},"items":[]}"#,
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let metrics = Metrics::new();
        let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
        let client = instrumented_client(config, &metrics).unwrap();
        let namespaces: Api<Namespace> = Api::all(client);
        namespaces.list(&ListParams::default()).await.unwrap();
        assert!(namespaces.get("missing").await.is_err(), "axum answers 404");
        server.abort();

        let (samples, _) = parse(&metrics.render());
        assert_eq!(samples.get(r#"jobwright_api_requests_total{verb="list",code="200"}"#), Some(&1.0));
        assert_eq!(samples.get(r#"jobwright_api_requests_total{verb="get",code="404"}"#), Some(&1.0));
    }
}
