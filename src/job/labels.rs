//! Well-known label, annotation, finalizer, condition and reason strings, as upstream spells them.

/// Finalizer the controller puts on every pod so a pod is never lost from the counts.
pub const JOB_TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Annotation and label carrying the completion index of a pod of an Indexed Job.
pub const JOB_COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Annotation counting the failures of the index so far (backoffLimitPerIndex).
pub const JOB_INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// Annotation counting the failures of the index that a podFailurePolicy `Ignore` rule matched.
pub const JOB_INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";
/// Label with the Job's UID.
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
/// Label with the Job's name.
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
/// Legacy label with the Job's UID.
pub const LEGACY_CONTROLLER_UID: &str = "controller-uid";
/// Legacy label with the Job's name.
pub const LEGACY_JOB_NAME: &str = "job-name";
/// Environment variable holding the completion index in every container of an Indexed Job.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// `spec.managedBy` value of the built-in Kubernetes Job controller.
pub const BUILTIN_CONTROLLER_NAME: &str = "kubernetes.io/job-controller";

/// Job condition types.
pub mod condition {
    /// The Job is suspended.
    pub const SUSPENDED: &str = "Suspended";
    /// The Job completed (terminal).
    pub const COMPLETE: &str = "Complete";
    /// The Job failed (terminal).
    pub const FAILED: &str = "Failed";
    /// The Job will fail once its pods are terminated.
    pub const FAILURE_TARGET: &str = "FailureTarget";
    /// The Job will complete once its pods are terminated.
    pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
}

/// Job condition reasons and their upstream messages.
pub mod reason {
    /// A podFailurePolicy `FailJob` rule matched.
    pub const POD_FAILURE_POLICY: &str = "PodFailurePolicy";
    /// More failures than `backoffLimit`.
    pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
    /// Message for [`BACKOFF_LIMIT_EXCEEDED`].
    pub const BACKOFF_LIMIT_EXCEEDED_MSG: &str = "Job has reached the specified backoff limit";
    /// Active longer than `activeDeadlineSeconds`.
    pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
    /// Message for [`DEADLINE_EXCEEDED`].
    pub const DEADLINE_EXCEEDED_MSG: &str = "Job was active longer than specified deadline";
    /// More failed indexes than `maxFailedIndexes`.
    pub const MAX_FAILED_INDEXES_EXCEEDED: &str = "MaxFailedIndexesExceeded";
    /// Message for [`MAX_FAILED_INDEXES_EXCEEDED`].
    pub const MAX_FAILED_INDEXES_EXCEEDED_MSG: &str = "Job has exceeded the specified maximal number of failed indexes";
    /// Every index finished and some failed.
    pub const FAILED_INDEXES: &str = "FailedIndexes";
    /// Message for [`FAILED_INDEXES`].
    pub const FAILED_INDEXES_MSG: &str = "Job has failed indexes";
    /// A successPolicy rule matched.
    pub const SUCCESS_POLICY: &str = "SuccessPolicy";
    /// `completions` pods succeeded.
    pub const COMPLETIONS_REACHED: &str = "CompletionsReached";
    /// Message for [`COMPLETIONS_REACHED`].
    pub const COMPLETIONS_REACHED_MSG: &str = "Reached expected number of succeeded pods";
    /// Suspended condition reason when suspended.
    pub const JOB_SUSPENDED: &str = "JobSuspended";
    /// Suspended condition reason when resumed.
    pub const JOB_RESUMED: &str = "JobResumed";
}
