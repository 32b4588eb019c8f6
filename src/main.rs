//! `promptgate`: serve, check and evaluate policies.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};

use promptgate::decision::{self, BodyDecision, HeadersDecision, RequestHead};
use promptgate::policy::{LoadOptions, Policy};

const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

#[derive(Parser)]
#[command(
    name = "promptgate",
    version,
    about = "Policy brain for AI traffic: an Envoy ext_proc service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        /// The request body (JSON); `-` reads standard input.
        body: PathBuf,
    },
}

/// Lifecycle and reload flags of `serve`.
#[derive(clap::Args)]
struct OpsArgs {
    /// On SIGTERM, report NOT_SERVING this long before closing the listener,
    /// so the gateway's health checks move traffic away first.
    #[arg(long, default_value = "5s", value_parser = promptgate::lifecycle::parse_duration)]
    drain_grace: std::time::Duration,
    /// Upper bound of the whole drain after SIGTERM (grace included): streams
    /// still open then are cut and the process exits 0. Envoy keeps a request's
    /// ext_proc stream open until its response has ended, so this must cover
    /// the longest LLM response (default: Envoy's stream_idle_timeout in
    /// deploy/envoy). Keep Kubernetes' terminationGracePeriodSeconds above it.
    #[arg(long, default_value = "600s", value_parser = promptgate::lifecycle::parse_duration)]
    drain_timeout: std::time::Duration,
    /// Do not watch the policy and secrets folders (SIGHUP still reloads).
    #[arg(long)]
    no_watch: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            secrets_dir,
            listen,
            ops,
            admin_listen,
        } => serve(config, secrets_dir, listen, ops, admin_listen),
        Command::Check {
            config,
            secrets_dir,
        } => check(config, secrets_dir),
        Command::Eval {
            config,
            secrets_dir,
            path,
            backend,
            method,
            body,
        } => eval(
            config,
            secrets_dir,
            &path,
            backend.as_deref(),
            &method,
            body,
        ),
    }
}

fn load(config: Option<&PathBuf>, secrets_dir: Option<PathBuf>) -> Result<Policy, String> {
    let opts = LoadOptions { secrets_dir };
    match config {
        Some(path) => Policy::from_file(path, &opts),
        None => Policy::embedded_default(&opts),
    }
    .map_err(|e| e.to_string())
}

fn serve(
    config: Option<PathBuf>,
    secrets_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    ops: OpsArgs,
    admin_listen: Option<SocketAddr>,
) -> ExitCode {
    // Logs, and trace export when OTEL_EXPORTER_OTLP_ENDPOINT is set;
    // dropping the guard at the end of `serve` flushes buffered spans.
    let _telemetry = promptgate::telemetry::init();
    let source = promptgate::reload::PolicySource {
        config: config.clone(),
        options: LoadOptions {
            secrets_dir: secrets_dir.clone(),
        },
    };
    let loaded = load(config.as_ref(), secrets_dir);
    promptgate::telemetry::metrics().config_load(loaded.is_ok());
    let policy = match loaded {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "policy did not load");
            eprintln!("promptgate: {e}");
            return ExitCode::from(2);
        }
    };
    for w in &policy.warnings {
        tracing::warn!(warning = %w, "policy");
    }
    let addr = match listen {
        Some(a) => a,
        None => match policy.listen.as_deref().unwrap_or(DEFAULT_LISTEN).parse() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("promptgate: bad listen address: {e}");
                return ExitCode::from(2);
            }
        },
    };
    tracing::info!(origin = %policy.origin, backends = policy.backends.len(), "policy loaded");
    let policy = Arc::new(ArcSwap::from_pointee(policy));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("promptgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Admin port (metrics, health): --admin-listen, else the policy's admin.listen.
    let admin = match admin_listen {
        Some(a) => Some(a),
        None => policy
            .load()
            .admin_listen
            .as_deref()
            .and_then(|a| a.parse().ok()),
    };
    if let Some(admin) = admin {
        if let Err(e) = runtime.block_on(promptgate::telemetry::admin::start(admin)) {
            tracing::error!(error = %e, "admin port did not start");
            eprintln!("promptgate: {e}");
            return ExitCode::from(2);
        }
    }
    let result = runtime.block_on(serve_with_ops(addr, policy, source, ops));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            eprintln!("promptgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Hot reload (SIGHUP, file changes) and the graceful drain on SIGTERM.
async fn serve_with_ops(
    addr: SocketAddr,
    policy: Arc<ArcSwap<Policy>>,
    source: promptgate::reload::PolicySource,
    ops: OpsArgs,
) -> anyhow::Result<()> {
    use promptgate::{lifecycle, reload};
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let reloader = Arc::new(reload::Reloader::new(source, policy.clone()));
    let reload_opts = reload::ReloadOptions {
        watch: !ops.no_watch,
        ..reload::ReloadOptions::default()
    };
    tokio::spawn(reload::run(reloader, reload_opts));
    let drain = lifecycle::DrainOptions {
        grace: ops.drain_grace,
        timeout: ops.drain_timeout,
    };
    promptgate::server::serve_drained(
        listener,
        policy,
        drain,
        lifecycle::termination_signal(),
        lifecycle::termination_signal(),
    )
    .await
}

fn check(config: PathBuf, secrets_dir: Option<PathBuf>) -> ExitCode {
    match load(Some(&config), secrets_dir) {
        Ok(policy) => {
            for w in &policy.warnings {
                eprintln!("warning: {w}");
            }
            let names: Vec<&str> = policy.backends.iter().map(|b| b.name.as_str()).collect();
            println!(
                "{}: ok ({} backend(s): {})",
                config.display(),
                names.len(),
                names.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("promptgate check: {e}");
            ExitCode::from(1)
        }
    }
}

fn eval(
    config: PathBuf,
    secrets_dir: Option<PathBuf>,
    path: &str,
    backend: Option<&str>,
    method: &str,
    body_path: PathBuf,
) -> ExitCode {
    let policy = match load(Some(&config), secrets_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("promptgate eval: {e}");
            return ExitCode::from(2);
        }
    };
    let body = if body_path.as_os_str() == "-" {
        let mut buf = Vec::new();
        if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf) {
            eprintln!("promptgate eval: cannot read standard input: {e}");
            return ExitCode::from(2);
        }
        buf
    } else {
        match std::fs::read(&body_path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("promptgate eval: cannot read {}: {e}", body_path.display());
                return ExitCode::from(2);
            }
        }
    };
    let head = RequestHead {
        method,
        path,
        authority: "",
        content_encoding: None,
        has_anthropic_version: true,
        end_of_stream: body.is_empty(),
    };
    let (ctx, headers) = decision::request_headers(&policy, backend, &head);
    let report = match headers {
        HeadersDecision::Reply(reply) => reply_json(reply),
        HeadersDecision::Continue {
            changes,
            inspect_body,
            outcome,
        } => {
            let header_report = serde_json::json!({
                "set": changes.set.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                "remove": changes.remove,
            });
            match (inspect_body, ctx) {
                (true, Some(ctx)) => match eval_body(&policy, &ctx, &body) {
                    BodyDecision::Reply(reply) => reply_json(reply),
                    BodyDecision::Continue {
                        replacement,
                        outcome,
                    } => {
                        let forwarded = replacement.as_deref().unwrap_or(&body);
                        serde_json::json!({
                            "outcome": outcome,
                            "headers": header_report,
                            "forwarded_body": {
                                "changed": replacement.is_some(),
                                "length": forwarded.len(),
                                "preview": preview(forwarded),
                            },
                        })
                    }
                },
                _ => serde_json::json!({
                    "outcome": outcome,
                    "headers": header_report,
                    "forwarded_body": {"changed": false, "length": body.len(), "inspected": false},
                }),
            }
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("json values serialise")
    );
    ExitCode::SUCCESS
}

/// The same entry the server calls (decoding, local and external guards).
fn eval_body(policy: &Policy, ctx: &decision::RequestCtx, body: &[u8]) -> BodyDecision {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(decision::request_body(policy, ctx, body)),
        Err(e) => {
            eprintln!("promptgate eval: cannot start a runtime for external guards: {e}");
            std::process::exit(2);
        }
    }
}

fn reply_json(reply: decision::Reply) -> serde_json::Value {
    let body: serde_json::Value =
        serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "outcome": reply.outcome,
        "response": {"status": reply.status, "details": reply.details, "body": body},
    })
}

/// The first bytes of the forwarded body, so an author sees what changed
/// without dumping megabytes.
fn preview(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(160)]);
    s.into_owned()
}
