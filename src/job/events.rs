//! Events the controller records on a Job, with upstream's types, reasons and messages.

/// Event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventType {
    /// The API string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An event to record on the Job (`reportingController: job-controller` upstream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEvent {
    /// Normal or Warning.
    pub type_: EventType,
    /// Machine-readable reason, e.g. `SuccessfulCreate`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl JobEvent {
    /// A Normal event.
    pub fn normal(reason: &str, message: &str) -> Self {
        Self { type_: EventType::Normal, reason: reason.into(), message: message.into() }
    }

    /// A Warning event.
    pub fn warning(reason: &str, message: &str) -> Self {
        Self { type_: EventType::Warning, reason: reason.into(), message: message.into() }
    }
}

/// `Normal SuccessfulCreate "Created pod: <name>"`, after a pod creation.
pub fn created(pod_name: &str) -> JobEvent {
    JobEvent::normal("SuccessfulCreate", &format!("Created pod: {pod_name}"))
}

/// `Warning FailedCreate "Error creating: <error>"`, after a failed pod creation.
pub fn failed_create(error: &str) -> JobEvent {
    JobEvent::warning("FailedCreate", &format!("Error creating: {error}"))
}

/// `Normal SuccessfulDelete "Deleted pod: <name>"`, after a pod deletion.
pub fn deleted(pod_name: &str) -> JobEvent {
    JobEvent::normal("SuccessfulDelete", &format!("Deleted pod: {pod_name}"))
}

/// `Warning FailedDelete "Error deleting: <error>"`, after a failed pod deletion.
pub fn failed_delete(error: &str) -> JobEvent {
    JobEvent::warning("FailedDelete", &format!("Error deleting: {error}"))
}

/// A `jobwright.dev/v1` Job whose spec batch/v1 validation refuses (kube-apiserver would have
/// answered 422 for a batch/v1 Job): Warning `InvalidSpec`, the field errors as the message.
pub fn invalid_spec(problems: &str) -> JobEvent {
    JobEvent::warning("InvalidSpec", &format!("Job spec is invalid, not synced: {problems}"))
}
