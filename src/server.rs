//! The gRPC server: ext_proc and grpc.health.v1 on one port, h2c or (with
//! [`crate::tls`]) HTTP/2 over mutual TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_stream::StreamExt;
use tonic::transport::Server;

use crate::extproc::{grpc::SERVICE_NAME, ExtProcServer, ExtProcService};
use crate::lifecycle::DrainOptions;
use crate::policy::Policy;

/// gRPC message limit: a 32 MB body plus headroom.
pub const MAX_MESSAGE_BYTES: usize = 40 << 20;

/// Serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    policy: Arc<ArcSwap<Policy>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    serve_on(listener, policy, shutdown).await
}

/// Serves on a bound listener until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    policy: Arc<ArcSwap<Policy>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_drained(
        listener,
        policy,
        None,
        DrainOptions::immediate(),
        shutdown,
        std::future::pending(),
    )
    .await
}

/// Serves on a bound listener; when `signal` resolves, drains as
/// [`crate::lifecycle::drain`] describes (NOT_SERVING, grace, GOAWAY,
/// in-flight streams until the deadline). `second_signal` cuts the drain.
/// With `tls`, every connection is a TLS handshake with the configuration
/// current when it connects (client certificate required), else h2c.
pub async fn serve_drained(
    listener: tokio::net::TcpListener,
    policy: Arc<ArcSwap<Policy>>,
    tls: Option<Arc<ArcSwap<rustls::ServerConfig>>>,
    drain: DrainOptions,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
    second_signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status(SERVICE_NAME, tonic_health::ServingStatus::Serving)
        .await;
    // The empty service name stands for the whole server.
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    // Stays SERVING while draining: a liveness probe must not kill a drain.
    health_reporter
        .set_service_status(
            crate::lifecycle::LIVENESS_SERVICE,
            tonic_health::ServingStatus::Serving,
        )
        .await;

    let policy_for_log = Arc::clone(&policy);
    let extproc = ExtProcServer::new(ExtProcService::new(policy), MAX_MESSAGE_BYTES);

    let transport = if tls.is_some() { "mutual TLS" } else { "h2c" };
    tracing::info!(%local, transport, "promptgate listening (ext_proc + access-log usage reports + grpc.health.v1)");
    // /readyz on the admin port follows the listener: ready now, not ready
    // once the drain begins.
    crate::telemetry::set_ready(true);
    let not_serving = || async move {
        // /readyz on the admin port turns with the health service.
        crate::telemetry::set_ready(false);
        health_reporter
            .set_service_status(SERVICE_NAME, tonic_health::ServingStatus::NotServing)
            .await;
        health_reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    };
    crate::lifecycle::drain(
        drain,
        signal,
        second_signal,
        not_serving,
        |stop| async move {
            let router = Server::builder()
                .http2_keepalive_interval(Some(Duration::from_secs(30)))
                // Large windows: a 32 MB body should not crawl through 64 KB windows.
                .initial_stream_window_size(Some(8 << 20))
                .initial_connection_window_size(Some(16 << 20))
                .add_service(health_service)
                .add_service(extproc)
                .add_service(crate::accesslog::server(policy_for_log, MAX_MESSAGE_BYTES));
            match tls {
                None => {
                    let incoming =
                        tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
                            conn.inspect(|tcp| {
                                let _ = tcp.set_nodelay(true);
                            })
                        });
                    router.serve_with_incoming_shutdown(incoming, stop).await?
                }
                Some(config) => {
                    let incoming =
                        crate::tls::incoming(listener, config, crate::tls::HANDSHAKE_TIMEOUT);
                    router.serve_with_incoming_shutdown(incoming, stop).await?
                }
            }
            Ok(())
        },
    )
    .await
}
