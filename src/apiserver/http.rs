//! HTTP routing for the API server.
//!
//! STUB: owned by the API-server-core work item.
