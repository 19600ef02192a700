//! The `jobwright` command line: subcommands only, no logic.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: many short-lived allocations across the runtime's threads
/// fragment glibc's per-thread arenas, and its resident memory grows well past the live heap.
/// The `system-alloc` feature keeps glibc's, for heaptrack (it intercepts malloc).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run the envtest-style API server alone (HTTP; with RBAC, HTTP and TLS on one port).
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
        /// How long an Event is kept after its last write (kube-apiserver's default 1h).
        #[arg(long, default_value = "1h", value_parser = jobwright::local::parse_duration)]
        event_ttl: std::time::Duration,
        /// Keep the state in this directory (crash-safe snapshot + write-ahead log); in memory without it.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// AlwaysAllow: serve every request (tokens optional). RBAC: require a bearer token from
        /// --token-auth-file (or the admin token written into --kubeconfig, group system:masters)
        /// and enforce the stored Roles/ClusterRoles and their bindings.
        #[arg(long, value_enum, default_value = "AlwaysAllow")]
        authorization_mode: jobwright::apiserver::auth::AuthorizationMode,
        /// Static bearer tokens, kube-apiserver's CSV format: token,user,uid,"group1,group2".
        #[arg(long)]
        token_auth_file: Option<PathBuf>,
        /// Service address ranges.
        #[command(flatten)]
        service_ranges: jobwright::local::ServiceRangeArgs,
        /// Logging.
        #[command(flatten)]
        telemetry: jobwright::telemetry::TelemetryArgs,
    },
    /// Run the node simulator (scheduler + kubelet for pods) against any API server.
    Kubelet(jobwright::kubelet::cli::KubeletArgs),
    /// Run the Job controller (batch/v1 and jobwright.dev/v1 Jobs) and the TTL-after-finished
    /// controller against a cluster.
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
        /// Also run the CronJob controller (off by default: a cluster runs its own in
        /// kube-controller-manager; see the README for handing its Jobs to jobwright instead).
        #[arg(long)]
        cronjob_controller: bool,
        /// How many CronJobs the CronJob controller syncs at once (kube-controller-manager's flag
        /// and default).
        #[arg(long, default_value_t = 5)]
        concurrent_cron_job_syncs: usize,
        /// Also reconcile jobwright.dev/v1 Jobs (the CRD, `kubectl get wjob`): auto = once the API
        /// server serves them (discovery, asked again every 30 s while not), true = always,
        /// false = never.
        #[arg(long, value_enum, default_value_t = jobwright::job::controller::CrdJobs::Auto)]
        crd_jobs: jobwright::job::controller::CrdJobs,
        /// Logging, admin server (metrics, health) and leader election.
        #[command(flatten)]
        ops: jobwright::ops::OpsArgs,
    },
    /// Run the API server, a node simulator and the Job and TTL controllers in one process, for kubectl.
    Local(jobwright::local::LocalArgs),
    /// Print the jobwright.dev/v1 Job CustomResourceDefinition as YAML.
    Crd,
}

/// The controller subcommand's flags.
struct ControllerArgs {
    kubeconfig: Option<PathBuf>,
    manage_all_jobs: bool,
    workers: usize,
    no_ttl_controller: bool,
    cronjob_controller: bool,
    concurrent_cron_job_syncs: usize,
    crd_jobs: jobwright::job::controller::CrdJobs,
    ops: jobwright::ops::OpsArgs,
}

/// Runs the Job (and TTL, and with `--cronjob-controller` CronJob) controllers for every leadership term until SIGTERM/SIGINT
/// ([`jobwright::ops::Ops::run_controllers`], which the RBAC proof test runs too).
async fn run_controller(args: ControllerArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = match args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    jobwright::agent::set(&mut cfg, jobwright::agent::controllers());
    let ops = jobwright::ops::Ops::start(&args.ops, cfg).await?;
    let config =
        jobwright::job::Config { manage_all: args.manage_all_jobs, workers: args.workers, ..Default::default() };
    let opts = jobwright::job::controller::Options {
        config,
        ttl_controller: !args.no_ttl_controller,
        cronjob_controller: args.cronjob_controller,
        cronjob_workers: args.concurrent_cron_job_syncs,
        crd_jobs: args.crd_jobs,
        ..Default::default()
    };
    ops.run_controllers(&args.ops, opts).await?;
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now and returns a future that resolves on the first
/// of them. Installing them before anything starts matters: a signal sent as soon as the process
/// says it is ready (a test, a service manager) would otherwise find the default action and kill
/// the process with nothing cleaned up (the pod network's bridge, the kubeconfig). Must be called
/// inside the runtime.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}

/// Write `text` to stdout; a reader that went away (`jobwright crd | head -1`) ends the output
/// quietly, as Unix tools do.
fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Write an error line to stderr, ignoring a closed stderr.
fn print_err(e: &dyn std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "error: {e}");
}

fn main() -> std::process::ExitCode {
    // `jobwright pod-exec` (how a container enters its pod's namespaces) must stay single-threaded
    // until it execs, so it runs before the runtime starts.
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == jobwright::kubelet::podnet::POD_EXEC) {
        return jobwright::kubelet::podnet::pod_exec_main(args.collect());
    }
    let nofile = jobwright::ops::raise_open_files_limit();
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(async_main(nofile)),
        Err(e) => {
            print_err(&format!("cannot start the async runtime: {e}"));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn async_main(nofile: nix::Result<Option<(u64, u64)>>) -> std::process::ExitCode {
    let cli = Cli::parse();
    // One logging setup for every command: `--log-level`/`--log-format` where the command takes
    // them, colours only when stderr is a terminal (and NO_COLOR is unset).
    let none = jobwright::telemetry::TelemetryArgs::default();
    let (telemetry, default_filter) = match &cli.command {
        Command::Controller { ops, .. } => (&ops.telemetry, jobwright::telemetry::DEFAULT_FILTER),
        Command::Local(args) => (&args.telemetry, jobwright::local::DEFAULT_LOG_FILTER),
        Command::Apiserver { telemetry, .. } => (telemetry, jobwright::telemetry::DEFAULT_FILTER),
        Command::Kubelet(args) => (&args.telemetry, jobwright::telemetry::DEFAULT_FILTER),
        Command::Crd => (&none, jobwright::telemetry::DEFAULT_FILTER),
    };
    if let Err(e) = jobwright::telemetry::init_with_default(telemetry, default_filter) {
        print_err(&e);
        return std::process::ExitCode::FAILURE;
    }
    match nofile {
        Ok(Some((soft, hard))) => tracing::debug!(from = soft, to = hard, "open files soft limit raised"),
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "could not raise the open files soft limit"),
    }
    let result = match cli.command {
        Command::Apiserver {
            listen,
            kubeconfig,
            watch_history,
            event_ttl,
            data_dir,
            authorization_mode,
            token_auth_file,
            service_ranges,
            ..
        } => {
            let mut config = jobwright::apiserver::http::ServerConfig {
                service_ranges: service_ranges.ranges(),
                ..Default::default()
            };
            config.store.history = watch_history;
            config.event_ttl = event_ttl;
            config.data_dir = data_dir;
            config.authorization_mode = authorization_mode;
            if let Some(path) = token_auth_file {
                let parsed = std::fs::read_to_string(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|text| jobwright::apiserver::auth::parse_token_file(&text));
                match parsed {
                    Ok(tokens) => config.tokens = tokens,
                    Err(e) => {
                        print_err(&format!("--token-auth-file {}: {e}", path.display()));
                        return std::process::ExitCode::FAILURE;
                    }
                }
            }
            let opts = jobwright::apiserver::ServeOptions { listen, kubeconfig, config };
            jobwright::apiserver::serve(opts, shutdown_signal()).await
        }
        Command::Kubelet(args) => jobwright::kubelet::cli::run(args, shutdown_signal()).await,
        Command::Controller {
            kubeconfig,
            manage_all_jobs,
            workers,
            no_ttl_controller,
            cronjob_controller,
            concurrent_cron_job_syncs,
            crd_jobs,
            ops,
        } => {
            let args = ControllerArgs {
                kubeconfig,
                manage_all_jobs,
                workers,
                no_ttl_controller,
                cronjob_controller,
                concurrent_cron_job_syncs,
                crd_jobs,
                ops,
            };
            if let Err(e) = run_controller(args).await {
                print_err(&e);
                return std::process::ExitCode::FAILURE;
            }
            Ok(())
        }
        Command::Local(args) => {
            if let Err(e) = jobwright::local::run(args, shutdown_signal()).await {
                print_err(&e);
                return std::process::ExitCode::FAILURE;
            }
            Ok(())
        }
        Command::Crd => {
            print_out(&jobwright::crd::crd_yaml());
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            print_err(&e);
            std::process::ExitCode::FAILURE
        }
    }
}
