//! The node simulator: plays scheduler and kubelet for pods, against any API server.

pub mod env;
pub mod logs;
pub mod process;
pub mod simulate;
pub mod status;
