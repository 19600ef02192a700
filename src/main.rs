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
        /// Keep the state in this directory (crash-safe snapshot + write-ahead log); in memory without it.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run the node simulator (scheduler + kubelet for pods) against any API server.
    Kubelet(jobwright::kubelet::cli::KubeletArgs),
    /// Print the jobwright.dev/v1 Job CustomResourceDefinition as YAML.
    Crd,
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
        Command::Apiserver { listen, kubeconfig, watch_history, data_dir } => {
            let mut config = jobwright::apiserver::http::ServerConfig::default();
            config.store.history = watch_history;
            config.data_dir = data_dir;
            let opts = jobwright::apiserver::ServeOptions { listen, kubeconfig, config };
            jobwright::apiserver::serve(opts, shutdown_signal()).await
        }
        Command::Kubelet(args) => jobwright::kubelet::cli::run(args, shutdown_signal()).await,
        Command::Crd => {
            print!("{}", jobwright::crd::crd_yaml());
            Ok(())
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
