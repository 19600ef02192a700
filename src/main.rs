//! The `jobwright` command line: subcommands only, no logic.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "jobwright",
    version,
    about = "A Kubernetes Job controller, with an envtest-style API server and a local node simulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the envtest-style API server alone (plain HTTP on loopback).
    Apiserver {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Write a kubeconfig for the server to this path.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// How many events the watch history keeps.
        #[arg(long, default_value_t = 10_000)]
        watch_history: usize,
    },
    /// Run the Job controller (and the TTL-after-finished controller) against a cluster.
    Controller {
        /// Kubeconfig to use; otherwise KUBECONFIG, ~/.kube/config or the in-cluster service account.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Manage Jobs without `spec.managedBy` (or with the built-in controller's value) too.
        #[arg(long)]
        manage_all_jobs: bool,
        /// How many Jobs are synced at once.
        #[arg(long, default_value_t = 5)]
        workers: usize,
        /// Do not run the TTL-after-finished controller.
        #[arg(long)]
        no_ttl_controller: bool,
    },
}

async fn controller_client(kubeconfig: Option<PathBuf>) -> Result<kube::Client, Box<dyn std::error::Error>> {
    let client = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)?;
            let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
            kube::Client::try_from(cfg)?
        }
        None => kube::Client::try_default().await?,
    };
    Ok(client)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Apiserver { listen, kubeconfig, watch_history } => {
            let mut config = jobwright::apiserver::http::ServerConfig::default();
            config.store.history = watch_history;
            let opts = jobwright::apiserver::ServeOptions { listen, kubeconfig, config };
            jobwright::apiserver::serve(opts, shutdown_signal()).await
        }
        Command::Controller { kubeconfig, manage_all_jobs, workers, no_ttl_controller } => {
            match controller_client(kubeconfig).await {
                Ok(client) => {
                    let config = jobwright::job::Config { manage_all: manage_all_jobs, workers, ..Default::default() };
                    let opts = jobwright::job::controller::Options { config, ttl_controller: !no_ttl_controller };
                    jobwright::job::controller::run(client, opts, shutdown_signal()).await;
                    Ok(())
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
