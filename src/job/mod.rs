//! The Job controller.
//!
//! STUB: owned by the Job-controller work item. The pure core (plan, status, policy, indexes,
//! backoff) decides; the shell (apply, controller) observes and executes.
