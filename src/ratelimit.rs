//! Client-side rate limiting of API requests, as client-go's `--kube-api-qps`/`--kube-api-burst`
//! (kube-controller-manager's flags, defaults 20 and 30): a token bucket holding up to `burst`
//! tokens, refilled at `qps` per second; every request the client sends (get, list, watch, create,
//! patch, delete...) takes one, waiting its turn when the bucket is empty.
//!
//! Waiting is first come, first served without a queue: a request reserves the next token (the
//! count may go below zero) and sleeps until that token would have been refilled, as
//! golang.org/x/time/rate's `Wait` (under client-go's `tokenBucketRateLimiter`) does. So a burst of
//! requests leaves at exactly `qps` per second once the first `burst` are through, whatever the
//! number waiting, and nothing holds a lock while it sleeps.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

/// kube-controller-manager's `--kube-api-qps` default.
pub const DEFAULT_QPS: f32 = 20.0;
/// kube-controller-manager's `--kube-api-burst` default.
pub const DEFAULT_BURST: u32 = 30;

/// The client flags of a controller process.
#[derive(clap::Args, Clone, Debug)]
pub struct ClientArgs {
    /// Requests per second the controller's API client may send on average (a token bucket, as
    /// kube-controller-manager's flag); a negative value turns the limit off.
    #[arg(long, default_value_t = DEFAULT_QPS, allow_negative_numbers = true, value_parser = parse_qps)]
    pub kube_api_qps: f32,
    /// Requests the controller's API client may send at once before `--kube-api-qps` paces them
    /// (the bucket's size).
    #[arg(long, default_value_t = DEFAULT_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    pub kube_api_burst: u32,
}

impl Default for ClientArgs {
    fn default() -> Self {
        Self { kube_api_qps: DEFAULT_QPS, kube_api_burst: DEFAULT_BURST }
    }
}

impl ClientArgs {
    /// The limiter these flags ask for (`None`: no limit).
    pub fn limiter(&self) -> Option<RateLimiter> {
        (self.kube_api_qps > 0.0).then(|| RateLimiter::new(f64::from(self.kube_api_qps), self.kube_api_burst))
    }
}

fn parse_qps(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !v.is_finite() || v == 0.0 {
        return Err(format!("{s:?}: must be a positive number of requests per second (negative: no limit)"));
    }
    Ok(v)
}

#[derive(Debug)]
struct Bucket {
    /// Tokens at `at`; below zero when requests are waiting for tokens not refilled yet.
    tokens: f64,
    at: Instant,
}

/// A token bucket shared by every clone (one per client, as client-go's per-`RESTClient` limiter).
#[derive(Clone, Debug)]
pub struct RateLimiter {
    qps: f64,
    burst: f64,
    bucket: Arc<Mutex<Bucket>>,
}

impl RateLimiter {
    /// A full bucket of `burst` tokens refilled at `qps` per second (`qps` > 0, `burst` ≥ 1).
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self { qps, burst, bucket: Arc::new(Mutex::new(Bucket { tokens: burst, at: Instant::now() })) }
    }

    /// Takes the next token: how long to wait for it from `now` (zero when one is there).
    fn reserve(&self, now: Instant) -> Duration {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.qps).min(self.burst);
        b.at = b.at.max(now);
        b.tokens -= 1.0;
        if b.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-b.tokens / self.qps) }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// A `tower` layer making every request wait for a token first.
    pub fn layer(&self) -> RateLimitLayer {
        RateLimitLayer { limiter: self.clone() }
    }
}

/// Applies a [`RateLimiter`] to every request of a service (e.g. a `kube::Client`'s stack).
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    limiter: RateLimiter,
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited { inner, limiter: self.limiter.clone(), wait: None, granted: false }
    }
}

/// The service made by [`RateLimitLayer`]: ready once it holds a token and the inner service is
/// ready; each call spends the token. A `kube::Client` drives it from one buffer worker, so
/// requests take their tokens in the order they were made, and a request waiting for a token
/// never delays the responses of those already sent (a long watch holds no token).
pub struct RateLimited<S> {
    inner: S,
    limiter: RateLimiter,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    granted: bool,
}

impl<S: std::fmt::Debug> std::fmt::Debug for RateLimited<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimited").field("inner", &self.inner).field("granted", &self.granted).finish()
    }
}

impl<S, Req> tower::Service<Req> for RateLimited<S>
where
    S: tower::Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.granted {
            if self.wait.is_none() {
                let wait = self.limiter.reserve(Instant::now());
                if wait.is_zero() {
                    self.granted = true;
                } else {
                    self.wait = Some(Box::pin(tokio::time::sleep(wait)));
                }
            }
            if let Some(sleep) = self.wait.as_mut() {
                std::task::ready!(sleep.as_mut().poll(cx));
                self.wait = None;
                self.granted = true;
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        debug_assert!(self.granted, "call without poll_ready");
        self.granted = false;
        self.inner.call(req)
    }
}

/// Builds a client whose requests are counted ([`crate::metrics::instrumented_client`]) and, with
/// a limiter, paced by it. Each call makes a separate bucket: kube-controller-manager also gives
/// leader election a client (and limiter) of its own, so lease renewals never wait behind a
/// backlog of pod creations.
pub fn limited_client(
    config: kube::Config,
    metrics: &crate::metrics::Metrics,
    args: &ClientArgs,
) -> Result<kube::Client, kube::Error> {
    let builder = crate::httpclient::builder(config)?.with_layer(&metrics.api_layer());
    Ok(match args.limiter() {
        Some(limiter) => builder.with_layer(&limiter.layer()).build(),
        None => builder.build(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer as _, Service as _};

    /// A limiter whose bucket was last filled at `at`.
    fn limiter_at(qps: f64, burst: u32, at: Instant) -> RateLimiter {
        let l = RateLimiter::new(qps, burst);
        l.bucket.lock().unwrap().at = at;
        l
    }

    #[test]
    fn a_burst_goes_at_once_then_requests_leave_at_qps_in_arrival_order() {
        let t0 = Instant::now();
        let l = limiter_at(10.0, 5, t0);
        // 25 requests at the same instant: when each may go.
        let at: Vec<Duration> = (0..25).map(|_| l.reserve(t0)).collect();
        assert!(at[..5].iter().all(|t| t.is_zero()), "the first `burst` at once: {at:?}");
        for (i, t) in at.iter().enumerate().skip(5) {
            // The (i+1)th waits for the (i-4)th refilled token: (i-4)/qps seconds.
            let want = Duration::from_millis(100 * (i as u64 - 4));
            assert!(t.abs_diff(want) < Duration::from_micros(10), "request {i} at {t:?}, want {want:?}");
        }
        // In every window, at most burst + qps * window requests.
        for i in 0..at.len() {
            for j in i..at.len() {
                let window = (at[j] - at[i]).as_secs_f64();
                assert!((j - i + 1) as f64 <= 5.0 + 10.0 * window + 1e-6, "{i}..{j} in {window}s");
            }
        }
        // The 20 tokens owed are refilled by 2.0 s; a request at 2.2 s finds one waiting.
        assert_eq!(l.reserve(t0 + Duration::from_millis(2200)), Duration::ZERO);
    }

    #[test]
    fn an_idle_bucket_refills_to_burst_and_no_more() {
        let t0 = Instant::now();
        let l = limiter_at(2.0, 3, t0);
        for _ in 0..3 {
            assert_eq!(l.reserve(t0), Duration::ZERO);
        }
        assert_eq!(l.reserve(t0), Duration::from_millis(500), "empty after the burst");
        // A minute idle refills 120 tokens' worth, capped at 3 (less the one owed).
        let t1 = t0 + Duration::from_secs(60);
        let waits: Vec<Duration> = (0..4).map(|_| l.reserve(t1)).collect();
        assert_eq!(waits[..3], [Duration::ZERO; 3]);
        assert_eq!(waits[3], Duration::from_millis(500));
    }

    #[tokio::test]
    async fn the_service_is_ready_only_with_a_token() {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let calls = Arc::new(Mutex::new(0));
        let inner = {
            let calls = calls.clone();
            tower::service_fn(move |_: ()| {
                *calls.lock().unwrap() += 1;
                std::future::ready(Ok::<_, std::convert::Infallible>(()))
            })
        };
        // One token, the next in 1,000 s.
        let mut svc = RateLimiter::new(0.001, 1).layer().layer(inner);
        assert!(svc.poll_ready(&mut cx).is_ready());
        drop(svc.call(()));
        assert!(svc.poll_ready(&mut cx).is_pending(), "no token left: not ready");
        assert!(svc.poll_ready(&mut cx).is_pending(), "still waiting for the same token");
        assert_eq!(*calls.lock().unwrap(), 1);
    }

    #[test]
    fn flags_parse_like_kube_controller_manager() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            client: ClientArgs,
        }
        let c = Cli::parse_from(["x"]).client;
        assert_eq!((c.kube_api_qps, c.kube_api_burst), (20.0, 30));
        assert!(c.limiter().is_some());
        let c = Cli::parse_from(["x", "--kube-api-qps", "5.5", "--kube-api-burst", "7"]).client;
        assert_eq!((c.kube_api_qps, c.kube_api_burst), (5.5, 7));
        let off = Cli::parse_from(["x", "--kube-api-qps", "-1"]).client;
        assert!(off.limiter().is_none(), "negative: no limit, as client-go");
        assert!(Cli::try_parse_from(["x", "--kube-api-qps", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--kube-api-qps", "fast"]).is_err());
        assert!(Cli::try_parse_from(["x", "--kube-api-burst", "0"]).is_err());
    }
}
