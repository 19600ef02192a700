//! The node simulator: plays scheduler and kubelet for pods.
//!
//! STUB: owned by the node-simulator work item.
