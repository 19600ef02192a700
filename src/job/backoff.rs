//! Pod re-creation delays after failures, as upstream's `backoff_utils.go` computes them.
//!
//! The delay before replacing failed pods is `base * 2^(n-1)` capped at `cap` (upstream: 10 s and
//! 10 min), where `n` is the number of consecutive failures since the last success, counted from the
//! moment of the last failure. Upstream keeps `n` in an in-memory record fed with newly finished
//! pods, lost on restart. Here it is derived from the pods themselves (failed pods stay around until
//! the Job is deleted): the failures finished after the latest success. Same delays while the pods
//! exist, and it survives controller restarts.
//!
//! With `backoffLimitPerIndex`, each index backs off on its own: `n` is the failure count recorded on
//! the index's last failed pod plus one, timed from that pod's finish.

use std::time::Duration;

use super::cached_pod::PodFacts;
use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;

use super::pods;
use super::settled::Settled;

/// Consecutive failures since the last success, and when the last one finished.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    /// Failed pods finished after the latest succeeded pod.
    pub failures_after_last_success: u32,
    /// Finish time of the latest of those failures.
    pub last_failure_time: Option<DateTime<Utc>>,
}

impl BackoffRecord {
    /// Builds the record from the Job's pods (all of them, counted or not).
    pub fn from_pods<P: PodFacts>(job: &Job, all: &[P]) -> Self {
        Self::from_live_and_settled(job, all, &Settled::default())
    }

    /// [`BackoffRecord::from_pods`] for the pods `live` and the settled pods summarised in
    /// `settled` (see [`super::settled`]): the same record as from all of them.
    pub fn from_live_and_settled<P: PodFacts>(job: &Job, live: &[P], settled: &Settled) -> Self {
        let live_success = live.iter().filter(|p| pods::phase(*p) == "Succeeded").map(|p| pods::finished_time(p)).max();
        let last_success = live_success.max(settled.last_success);
        let mut rec = BackoffRecord::default();
        let mut add = |t: DateTime<Utc>, n: u32| {
            if last_success.is_some_and(|s| t <= s) {
                return;
            }
            rec.failures_after_last_success += n;
            rec.last_failure_time = Some(rec.last_failure_time.map_or(t, |l: DateTime<Utc>| l.max(t)));
        };
        for p in live.iter().filter(|p| pods::is_pod_failed(*p, job)) {
            add(pods::finished_time(p), 1);
        }
        for (t, n) in &settled.failures_after {
            add(*t, *n);
        }
        rec
    }

    /// Time left before pods may be created again.
    pub fn remaining(&self, now: DateTime<Utc>, base: Duration, cap: Duration) -> Duration {
        remaining_for(self.failures_after_last_success, self.last_failure_time, now, base, cap)
    }
}

/// The delay after `failures` consecutive failures: `base * 2^(failures-1)`, capped; zero for none.
pub fn delay_for(failures: u32, base: Duration, cap: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let mut d = base;
    for _ in 1..failures {
        d = d.saturating_mul(2);
        if d >= cap {
            return cap;
        }
    }
    d.min(cap)
}

/// Time left of the delay for `failures` counted from `last_failure`.
pub fn remaining_for(
    failures: u32,
    last_failure: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    base: Duration,
    cap: Duration,
) -> Duration {
    let Some(last) = last_failure else { return Duration::ZERO };
    let delay = delay_for(failures, base, cap);
    let elapsed = (now - last).to_std().unwrap_or(Duration::ZERO);
    delay.saturating_sub(elapsed)
}

/// Time left before re-creating the pod of an index whose last failed pod is `last_failed`
/// (backoffLimitPerIndex).
pub fn remaining_for_index<P: PodFacts + ?Sized>(
    last_failed: Option<&P>,
    now: DateTime<Utc>,
    base: Duration,
    cap: Duration,
) -> Duration {
    let Some(p) = last_failed else { return Duration::ZERO };
    let failures = u32::try_from(pods::index_absolute_failure_count(p)).unwrap_or(0).saturating_add(1);
    remaining_for(failures, Some(pods::finished_time(p)), now, base, cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::testing::{JobBuilder, PodBuilder, t0};
    use k8s_openapi::api::core::v1::Pod;

    const BASE: Duration = Duration::from_secs(10);
    const CAP: Duration = Duration::from_secs(600);

    #[test]
    fn delay_doubles_from_ten_seconds_and_caps_at_ten_minutes() {
        let got: Vec<u64> = (0..9).map(|n| delay_for(n, BASE, CAP).as_secs()).collect();
        assert_eq!(got, vec![0, 10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(delay_for(u32::MAX, BASE, CAP), CAP);
    }

    #[test]
    fn record_counts_failures_after_the_last_success() {
        let job = JobBuilder::new("j").build();
        let s = |sec| PodBuilder::for_job(&job).succeeded().finished_at(t0() + chrono::Duration::seconds(sec)).build();
        let f = |sec| PodBuilder::for_job(&job).failed().finished_at(t0() + chrono::Duration::seconds(sec)).build();
        let cases: Vec<(&str, Vec<Pod>, u32, Option<i64>)> = vec![
            ("no pods", vec![], 0, None),
            ("two failures", vec![f(1), f(5)], 2, Some(5)),
            ("a success resets", vec![f(1), f(2), s(3)], 0, None),
            ("failures after the success count", vec![f(1), s(3), f(4), f(9)], 2, Some(9)),
        ];
        for (name, ps, n, last) in cases {
            let refs: Vec<&Pod> = ps.iter().collect();
            let rec = BackoffRecord::from_pods(&job, &refs);
            assert_eq!(rec.failures_after_last_success, n, "{name}");
            assert_eq!(rec.last_failure_time, last.map(|s| t0() + chrono::Duration::seconds(s)), "{name}");
        }
    }

    #[test]
    fn remaining_counts_down_from_the_last_failure() {
        let rec = BackoffRecord { failures_after_last_success: 2, last_failure_time: Some(t0()) };
        assert_eq!(rec.remaining(t0() + chrono::Duration::seconds(5), BASE, CAP), Duration::from_secs(15));
        assert_eq!(rec.remaining(t0() + chrono::Duration::seconds(25), BASE, CAP), Duration::ZERO);
    }

    #[test]
    fn per_index_remaining_uses_the_failure_count_annotation() {
        let job = JobBuilder::new("j").indexed().build();
        let p = PodBuilder::for_job(&job).index(0).failed().index_failure_count(2).finished_at(t0()).build();
        // Third failure of the index: 40 s.
        assert_eq!(remaining_for_index(Some(&p), t0(), BASE, CAP), Duration::from_secs(40));
        assert_eq!(remaining_for_index::<Pod>(None, t0(), BASE, CAP), Duration::ZERO);
    }
}
