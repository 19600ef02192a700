//! `jobwright kubelet`: the node simulator alone, against any API server.
//!
//! `main.rs` only parses [`KubeletArgs`] and calls [`run`].

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::{Backoff, ExecutorKind, Kubelet, KubeletConfig};

/// Arguments of `jobwright kubelet`.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeletArgs {
    /// Kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Number of nodes to simulate.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// How containers run: local processes, or simulated from pod annotations.
    #[arg(long, value_enum, default_value_t = ExecutorKind::Process)]
    pub executor: ExecutorKind,
    /// Pod capacity of each node.
    #[arg(long, default_value_t = 110)]
    pub pods_per_node: usize,
    /// Node names are PREFIX-0, PREFIX-1, ...
    #[arg(long, default_value = "jobwright-node")]
    pub node_prefix: String,
    /// Directory for pods' working directories and logs (default: a temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// First container restart delay (upstream default 10s; doubles up to 5m), e.g. `10s`, `200ms`.
    /// (`--backoff-seconds` is an older name for it.)
    #[arg(long, alias = "backoff-seconds", default_value = "10s", value_parser = crate::local::parse_duration)]
    pub restart_backoff_base: Duration,
    /// Do not emit kubelet/scheduler events (fewer API writes for scale runs).
    #[arg(long)]
    pub no_events: bool,
    /// Logging.
    #[command(flatten)]
    pub telemetry: crate::telemetry::TelemetryArgs,
}

impl KubeletArgs {
    /// The simulator configuration these arguments describe.
    pub fn config(&self) -> KubeletConfig {
        let base = self.restart_backoff_base;
        KubeletConfig {
            nodes: self.nodes,
            node_prefix: self.node_prefix.clone(),
            pods_per_node: self.pods_per_node,
            executor: self.executor,
            data_dir: self.data_dir.clone(),
            backoff: Backoff { base, max: Duration::from_secs(300).max(base) },
            events: !self.no_events,
            ..Default::default()
        }
    }
}

/// A client for the kubeconfig at `path`, or the default kube-rs inference when `None`.
pub async fn client(path: Option<&std::path::Path>) -> Result<kube::Client, String> {
    let config = match path {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| format!("loading {}: {e}", p.display()))?
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string())?,
    };
    let mut config = config;
    crate::agent::set(&mut config, crate::agent::kubelet());
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

/// Run the node simulator until `shutdown` resolves, then stop every process it started.
pub async fn run(args: KubeletArgs, shutdown: impl std::future::Future<Output = ()>) -> std::io::Result<()> {
    let client = client(args.kubeconfig.as_deref()).await.map_err(std::io::Error::other)?;
    let kubelet = Kubelet::start(client, args.config()).await.map_err(std::io::Error::other)?;
    // A closed stderr is no reason to stop.
    let _ = writeln!(
        std::io::stderr(),
        "jobwright kubelet: {} node(s) {:?}, logs, exec, attach and stats on 127.0.0.1:{}; Ctrl-C to stop",
        kubelet.node_names().len(),
        kubelet.node_names(),
        kubelet.log_port()
    );
    shutdown.await;
    kubelet.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: KubeletArgs,
    }

    #[test]
    fn restart_backoff_takes_durations_and_the_old_flag_name() {
        let base = |argv: &[&str]| Cli::parse_from(argv).args.restart_backoff_base;
        assert_eq!(base(&["x"]), Duration::from_secs(10));
        assert_eq!(base(&["x", "--restart-backoff-base", "200ms"]), Duration::from_millis(200));
        assert_eq!(base(&["x", "--backoff-seconds", "0.5"]), Duration::from_millis(500));
    }
}
