//! The `jobwright` command line: subcommands only, no logic.

use clap::{Parser, Subcommand};

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
    /// Run the envtest-style API server alone.
    Apiserver,
    /// Run the node simulator (scheduler + kubelet for pods) against any API server.
    Kubelet(jobwright::kubelet::cli::KubeletArgs),
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Apiserver => {}
        Command::Kubelet(args) => std::process::exit(jobwright::kubelet::cli::main(args)),
    }
}
