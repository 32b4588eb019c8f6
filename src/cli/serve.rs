//! `promptgate serve`: the ext_proc server with its admin port, hot reload
//! and graceful drain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{load, OpsArgs, DEFAULT_LISTEN};
use crate::policy::{LoadOptions, Policy};

/// What `serve` was given on the command line.
pub(super) struct ServeArgs {
    pub config: Option<PathBuf>,
    pub secrets_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub ops: OpsArgs,
    /// `--tls-cert`, `--tls-key`, `--client-ca` (all or none).
    pub tls: Option<crate::tls::TlsFiles>,
    pub admin_listen: Option<SocketAddr>,
    /// `--workers`: the async runtime's worker threads.
    pub workers: usize,
}

/// At most two glibc malloc arenas, unless `MALLOC_ARENA_MAX` says
/// otherwise. A body over 1 MiB is decided on tokio's blocking pool, and by
/// default every such thread gets an arena of its own: the memory freed in
/// one is not reused by another, so resident memory grows with the threads
/// that have run. Measured (`./scripts/bench-memory.sh`, 8 requests of 4.1
/// MiB at once): peak per in-flight request 2.26–2.49 bodies by default,
/// 1.90–2.25 with two arenas, 2.00 with one; under 16 clients through Envoy the CPU
/// per request did not move (236 vs 232 µs, same run). Small allocations
/// stay in each thread's cache (tcache), which takes no arena lock.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called
        // before the runtime's threads start.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

pub(super) fn serve(args: ServeArgs) -> ExitCode {
    let ServeArgs {
        config,
        secrets_dir,
        listen,
        ops,
        tls,
        admin_listen,
        workers,
    } = args;
    limit_malloc_arenas();
    // Logs, and trace export when OTEL_EXPORTER_OTLP_ENDPOINT is set;
    // dropping the guard at the end of `serve` flushes buffered spans.
    let _telemetry = crate::telemetry::init();
    let source = crate::reload::PolicySource {
        config: config.clone(),
        options: LoadOptions {
            secrets_dir: secrets_dir.clone(),
        },
    };
    let loaded = load(config.as_ref(), secrets_dir);
    crate::telemetry::metrics().config_load(loaded.is_ok());
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
    // The decision log is opened once; a reload that changes `audit` is
    // noted and takes effect on restart.
    if let Some(settings) = &policy.audit {
        match crate::audit::AuditLog::open(settings.clone()) {
            Ok(log) => {
                let head = log.head();
                tracing::info!(path = %settings.path.display(), audit_lines = head.seq, audit_head = %head.hash, "audit log open");
                let _ = crate::audit::install(log);
            }
            Err(e) => {
                tracing::error!(error = %e, "audit log did not open");
                eprintln!("promptgate: {e}");
                return ExitCode::from(2);
            }
        }
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
    // TLS of the ext_proc port: the flags, else the policy's `tls`. The
    // files are read now: a bad one stops the start (exit 2).
    let tls_files = tls.or_else(|| policy.tls.clone());
    let tls = match &tls_files {
        Some(files) => match crate::tls::load(files) {
            Ok(config) => Some(Arc::new(ArcSwap::new(config))),
            Err(e) => {
                tracing::error!(error = %e, "TLS did not load");
                eprintln!("promptgate: {e}");
                return ExitCode::from(2);
            }
        },
        None => {
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    %addr,
                    "ext_proc is served without TLS on a non-loopback address: whoever reaches \
                     the port receives the provider keys in its answers; serve it over mutual TLS \
                     (`tls`, or --tls-cert/--tls-key/--client-ca) unless a mesh's mutual TLS \
                     guards it"
                );
            }
            None
        }
    };
    tracing::info!(origin = %policy.origin, backends = policy.backends.len(), "policy loaded");
    let policy = Arc::new(ArcSwap::from_pointee(policy));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
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
        if let Err(e) = runtime.block_on(crate::telemetry::admin::start(admin)) {
            tracing::error!(error = %e, "admin port did not start");
            eprintln!("promptgate: {e}");
            return ExitCode::from(2);
        }
    }
    let tls = tls.zip(tls_files);
    let result = runtime.block_on(serve_with_ops(addr, policy, tls, source, ops));
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
    tls: Option<(Arc<ArcSwap<rustls::ServerConfig>>, crate::tls::TlsFiles)>,
    source: crate::reload::PolicySource,
    ops: OpsArgs,
) -> anyhow::Result<()> {
    use crate::{lifecycle, reload};
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let reloader = Arc::new(reload::Reloader::new(source, policy.clone()));
    let reload_opts = reload::ReloadOptions {
        watch: !ops.no_watch,
        ..reload::ReloadOptions::default()
    };
    tokio::spawn(reload::run(reloader, reload_opts));
    // Certificates reload on their own (file changes, SIGHUP); the files
    // are the ones named at start: other paths in a reloaded policy's
    // `tls` take a restart.
    let tls = tls.map(|(config, files)| {
        tokio::spawn(crate::tls::reload::run(
            files,
            config.clone(),
            !ops.no_watch,
        ));
        config
    });
    let drain = lifecycle::DrainOptions {
        grace: ops.drain_grace,
        timeout: ops.drain_timeout,
    };
    crate::server::serve_drained(
        listener,
        policy,
        tls,
        drain,
        lifecycle::termination_signal(),
        lifecycle::termination_signal(),
    )
    .await
}
