//! The `promptgate` command line: `serve`, `check`, `eval`, `audit` and `budgets`, each in its
//! own file; all of them call the same library entries as the server.

mod audit;
mod budgets;
mod check;
mod eval;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::policy::{LoadOptions, Policy};

pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

#[derive(Parser)]
#[command(
    name = "promptgate",
    version,
    about = "Policy brain for AI traffic: an Envoy ext_proc service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve ext_proc (and grpc.health.v1) for Envoy.
    Serve {
        /// Policy file; without it the embedded default policy is served.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Folder of mounted secrets (`<dir>/<name>/Authorization`); overrides `secretsDir`.
        #[arg(long)]
        secrets_dir: Option<PathBuf>,
        /// Listen address; overrides the policy's `listen` (default 127.0.0.1:50051).
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        ops: OpsArgs,
        /// Admin HTTP address (/metrics, /healthz, /readyz); overrides the
        /// policy's `admin.listen`. Without either, no admin port.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
    },
    /// Validate a policy file.
    Check {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        secrets_dir: Option<PathBuf>,
    },
    /// Run the decision core on a recorded request body and print the decision as JSON.
    Eval {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        secrets_dir: Option<PathBuf>,
        /// Request path, e.g. /v1/messages.
        #[arg(long)]
        path: String,
        /// Backend name (what Envoy sends as x-promptgate-backend).
        #[arg(long)]
        backend: Option<String>,
        /// HTTP method.
        #[arg(long, default_value = "POST")]
        method: String,
        /// A recorded response (JSON body or SSE stream): prints what the
        /// response guards and tool guards decide on it.
        #[arg(long)]
        response: Option<PathBuf>,
        /// The request body (JSON); `-` reads standard input. Optional with
        /// `--response`.
        #[arg(required_unless_present = "response")]
        body: Option<PathBuf>,
    },
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Budgets held in the policy's store.
    #[command(subcommand)]
    Budgets(BudgetsCommand),
}

#[derive(Subcommand)]
pub enum BudgetsCommand {
    /// Print a bucket's usage in every limit of the policy, read from its
    /// Redis store.
    Show {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        secrets_dir: Option<PathBuf>,
        /// The bucket, as the limits' `key:` gives it (e.g. the user `alice`).
        #[arg(long)]
        key: String,
        /// Only this backend's budgets.
        #[arg(long)]
        backend: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify a hash-chained audit log and name the first line that fails.
    Verify {
        /// The files, oldest first; one file stands for itself and its
        /// rotated files (`FILE.N` … `FILE.1`, `FILE`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The last published chain head (`audit_head` of the log line
        /// "audit chain head"): the chain must reach it.
        #[arg(long)]
        head: Option<String>,
    },
}

/// Lifecycle and reload flags of `serve`.
#[derive(clap::Args)]
pub struct OpsArgs {
    /// On SIGTERM, report NOT_SERVING this long before closing the listener,
    /// so the gateway's health checks move traffic away first.
    #[arg(long, default_value = "5s", value_parser = crate::lifecycle::parse_duration)]
    pub drain_grace: std::time::Duration,
    /// Upper bound of the whole drain after SIGTERM (grace included): streams
    /// still open then are cut and the process exits 0. Envoy keeps a request's
    /// ext_proc stream open until its response has ended, so this must cover
    /// the longest LLM response (default: Envoy's stream_idle_timeout in
    /// deploy/envoy). Keep Kubernetes' terminationGracePeriodSeconds above it.
    #[arg(long, default_value = "600s", value_parser = crate::lifecycle::parse_duration)]
    pub drain_timeout: std::time::Duration,
    /// Do not watch the policy and secrets folders (SIGHUP still reloads).
    #[arg(long)]
    pub no_watch: bool,
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            secrets_dir,
            listen,
            ops,
            admin_listen,
        } => serve::serve(config, secrets_dir, listen, ops, admin_listen),
        Command::Check {
            config,
            secrets_dir,
        } => check::check(config, secrets_dir),
        Command::Eval {
            config,
            secrets_dir,
            path,
            backend,
            method,
            response,
            body,
        } => eval::eval(eval::EvalArgs {
            config,
            secrets_dir,
            path,
            backend,
            method,
            body,
            response,
        }),
        Command::Audit(AuditCommand::Verify { files, head }) => audit::verify(files, head),
        Command::Budgets(BudgetsCommand::Show {
            config,
            secrets_dir,
            key,
            backend,
        }) => budgets::show(budgets::ShowArgs {
            config,
            secrets_dir,
            key,
            backend,
        }),
    }
}

pub(crate) fn load(
    config: Option<&PathBuf>,
    secrets_dir: Option<PathBuf>,
) -> Result<Policy, String> {
    let opts = LoadOptions { secrets_dir };
    match config {
        Some(path) => Policy::from_file(path, &opts),
        None => Policy::embedded_default(&opts),
    }
    .map_err(|e| e.to_string())
}
