//! The CronJob controller (upstream `pkg/controller/cronjob`, the v2 controller of
//! kube-controller-manager 1.32-1.35): Jobs created from a CronJob's template on its schedule.
//!
//! - [`schedule`] (pure): robfig/cron's standard parser and next-time walk, time zones included.
//! - [`sync`] (pure): every decision of upstream's `syncCronJob` and `cleanupFinishedJobs`, from
//!   the CronJob, its Jobs and an injected `now`: the slot to start, the events, the Jobs to
//!   delete, the status, when to look again.
//! - [`controller`] (shell): the kube-runtime wiring, the API calls and the events.

pub mod controller;
pub mod deferred;
pub use jobwright_apiserver::schedule;
pub mod sync;
pub mod triggers;
