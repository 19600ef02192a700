//! Object storage: one global resourceVersion, watch history, finalizers.
//!
//! STUB: owned by the API-server-core work item.
