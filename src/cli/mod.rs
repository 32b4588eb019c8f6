//! The `promptgate` command line: `serve`, `check`, `eval`, `audit` and `budgets`, each in its
//! own file; all of them call the same library entries as the server.

mod audit;
mod budgets;
mod check;
mod eval;
mod eval_baseline;
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
        #[command(flatten)]
        tls: TlsArgs,
        /// Admin HTTP address (/metrics, /healthz, /readyz); overrides the
        /// policy's `admin.listen`. Without either, no admin port.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// Threads that answer Envoy (the async runtime's workers). One is
        /// the default: a 76 KB decision takes ~30 µs, so one thread
        /// decides thousands of LLM requests a second, and a second worker
        /// cost ~20 % more CPU per request in wake-ups (README,
        /// Performance). Bodies over 1 MiB are decided on other threads
        /// (tokio's blocking pool) whatever this says.
        #[arg(long, env = "PROMPTGATE_WORKERS", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: u16,
    },
    /// Validate a policy file.
    Check {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        secrets_dir: Option<PathBuf>,
    },
    /// Run the decision core on a recorded request body and print the decision as JSON;
    /// with --baseline, compare two policies over a recorded set.
    Eval {
        /// The policy to evaluate (with --baseline: the new one).
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        secrets_dir: Option<PathBuf>,
        /// Request path, e.g. /v1/messages (with --baseline: of every
        /// request that names none; default /v1/messages).
        #[arg(long, required_unless_present_any = ["baseline"])]
        path: Option<String>,
        /// Backend name (what Envoy sends as x-promptgate-backend).
        #[arg(long)]
        backend: Option<String>,
        /// HTTP method.
        #[arg(long, default_value = "POST")]
        method: String,
        /// A request header, NAME:VALUE (repeatable): what `when:`
        /// conditions read as request.headers.
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
        /// The verified claims of the caller (a JSON file holding the JWT
        /// payload), read through the policy's `identity` as the server
        /// reads Envoy's metadata.
        #[arg(long, value_name = "FILE")]
        claims: Option<PathBuf>,
        /// The policy in force: every request of the set (a folder of
        /// bodies or a JSONL file of {"path","headers","claims","body"})
        /// is decided by both; the requests whose decision differs are
        /// listed. Exit status 1 when any differ, 2 on bad input.
        #[arg(long, value_name = "OLD")]
        baseline: Option<PathBuf>,
        /// A recorded response (JSON body or SSE stream): prints what the
        /// response guards and tool guards decide on it.
        #[arg(long, conflicts_with = "baseline")]
        response: Option<PathBuf>,
        /// The request body (JSON); `-` reads standard input. Optional with
        /// `--response`. With --baseline: the folder or JSONL file.
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

/// TLS of the ext_proc port: all three or none; they override the
/// policy's `tls`.
#[derive(clap::Args)]
pub struct TlsArgs {
    /// Serve ext_proc and health over TLS with this certificate chain (PEM);
    /// needs --tls-key and --client-ca.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "client_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "client_ca"])]
    pub tls_key: Option<PathBuf>,
    /// Only clients with a certificate signed by this CA (PEM) get an
    /// answer (mutual TLS).
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    pub client_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The files, when the flags were given (clap saw to all three).
    pub fn files(self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            cert: self.tls_cert?,
            key: self.tls_key?,
            client_ca: self.client_ca?,
        })
    }
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
            tls,
            admin_listen,
            workers,
        } => serve::serve(serve::ServeArgs {
            config,
            secrets_dir,
            listen,
            ops,
            tls: tls.files(),
            admin_listen,
            workers: workers.into(),
        }),
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
            headers,
            claims,
            baseline,
            response,
            body,
        } => eval::eval(eval::EvalArgs {
            config,
            secrets_dir,
            path,
            backend,
            method,
            headers,
            claims,
            baseline,
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
