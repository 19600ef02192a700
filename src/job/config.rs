//! Controller settings that shape decisions of the pure core and the shell.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;

use super::labels::BUILTIN_CONTROLLER_NAME;

/// `spec.managedBy` value that hands a Job to jobwright on a cluster with the built-in controller.
pub const MANAGED_BY: &str = "jobwright.dev/job-controller";

/// Settings of the Job controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The `spec.managedBy` value of Jobs this controller owns.
    pub managed_by: String,
    /// Also manage Jobs with no `spec.managedBy` or the built-in controller's value (for clusters
    /// without a built-in Job controller, and `jobwright local`). Jobs handed to any other external
    /// controller are still left alone.
    pub manage_all: bool,
    /// How many Jobs the shell reconciles concurrently.
    pub workers: usize,
    /// Most pod creations, and most deletions, planned in one sync (upstream: 500).
    pub max_batch: usize,
    /// Most pods added to `status.uncountedTerminatedPods` / finalizer removals in one sync
    /// (upstream: 500, keeps the status under ~20 KB).
    pub max_uncounted: usize,
    /// First pod re-creation delay after a failure (upstream: 10 s).
    pub backoff_base: Duration,
    /// Longest pod re-creation delay (upstream: 10 min).
    pub backoff_cap: Duration,
    /// Smallest requeue delay the plan asks for, batching pod events (upstream: 1 s).
    pub min_requeue: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            managed_by: MANAGED_BY.to_string(),
            manage_all: false,
            workers: 5,
            max_batch: 500,
            max_uncounted: 500,
            backoff_base: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(600),
            min_requeue: Duration::from_secs(1),
        }
    }
}

impl Config {
    /// Whether this controller should act on the Job.
    pub fn manages(&self, job: &Job) -> bool {
        match job.spec.as_ref().and_then(|s| s.managed_by.as_deref()) {
            Some(m) if m == self.managed_by => true,
            None => self.manage_all,
            Some(m) if m == BUILTIN_CONTROLLER_NAME => self.manage_all,
            Some(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::testing::JobBuilder;

    #[test]
    fn which_jobs_are_managed() {
        let ours = JobBuilder::new("a").managed_by(MANAGED_BY).build();
        let builtin = JobBuilder::new("b").managed_by(BUILTIN_CONTROLLER_NAME).build();
        let unset = JobBuilder::new("c").build();
        let other = JobBuilder::new("d").managed_by("kueue.x-k8s.io/multikueue").build();
        let cluster = Config::default();
        let local = Config { manage_all: true, ..Config::default() };
        assert!(cluster.manages(&ours) && !cluster.manages(&builtin) && !cluster.manages(&unset));
        assert!(!cluster.manages(&other));
        assert!(local.manages(&ours) && local.manages(&builtin) && local.manages(&unset));
        assert!(!local.manages(&other));
    }
}
