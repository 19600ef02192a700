//! Graceful shutdown on SIGTERM (what the kubelet sends) or SIGINT (Ctrl-C).
//!
//! [`on_signals`] returns one `CancellationToken` for the whole process. The controller process is
//! expected to shut down in this order, each step a building block of this crate:
//!
//! 1. the token is cancelled by the signal;
//! 2. the [`LeaderElector`](crate::leader::LeaderElector) ends the current [`Term`](crate::leader::Term)
//!    and publishes `Stopping` (`/readyz` turns 503, so no new traffic);
//! 3. the controller stops taking work, lets in-flight reconciles finish (or abandons them at a
//!    safe point), then drops its `Term`;
//! 4. the elector releases the Lease, so a standby takes over at once instead of after the lease
//!    duration, and publishes `Stopped`;
//! 5. the [`AdminServer`](crate::admin::AdminServer) stops (it shares the token) and the process
//!    exits 0, well within `terminationGracePeriodSeconds` (30 s in deploy/; the elector waits at
//!    most [`DEFAULT_DRAIN_TIMEOUT`](crate::leader::DEFAULT_DRAIN_TIMEOUT) = 20 s for step 3).
//!
//! A second signal while shutting down exits at once with status 130 (like an impatient Ctrl-C).

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or SIGINT; the second one exits the process (130).
///
/// The handlers are installed before this returns, so a signal sent right after is not lost.
/// Must be called inside a tokio runtime.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
        cancel.cancel();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sigterm_cancels_the_token() {
        let token = on_signals().unwrap();
        assert!(!token.is_cancelled());
        let status =
            std::process::Command::new("kill").args(["-TERM", &std::process::id().to_string()]).status().unwrap();
        assert!(status.success());
        tokio::time::timeout(std::time::Duration::from_secs(30), token.cancelled())
            .await
            .expect("SIGTERM cancels the token");
    }
}
