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
    /// Print the jobwright.dev/v1 Job CustomResourceDefinition as YAML.
    Crd,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Apiserver => {}
        Command::Crd => print!("{}", jobwright::crd::crd_yaml()),
    }
}
