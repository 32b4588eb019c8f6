//! The admin HTTP port: `/metrics` (Prometheus), `/healthz` (the process
//! answers), `/readyz` (the ext_proc server is listening and not shutting
//! down). HTTP/1.1, GET only; meant for loopback or a cluster network.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::metrics::metrics;

static READY: AtomicBool = AtomicBool::new(false);

/// Marks the service ready (the ext_proc listener is up) or not (shutting
/// down); `/readyz` answers 200 or 503 accordingly.
pub fn set_ready(ready: bool) {
    READY.store(ready, Ordering::SeqCst);
}

pub fn is_ready() -> bool {
    READY.load(Ordering::SeqCst)
}

/// Content type of prometheus-client's text exposition.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` and serves the admin endpoints on the current Tokio runtime
/// until it stops. Returns the bound address.
pub async fn start(addr: SocketAddr) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (admin): {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("admin listener: {e}"))?;
    tracing::info!(%local, "admin listening (/metrics, /healthz, /readyz)");
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(
                        |req| async move { Ok::<_, Infallible>(respond(&req)) },
                    );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

fn respond(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ct: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", ct)
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts are valid")
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => reply(StatusCode::OK, METRICS_CONTENT_TYPE, metrics().encode()),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" if is_ready() => reply(StatusCode::OK, "text/plain", "ready\n".into()),
        "/readyz" => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "promptgate admin: /metrics, /healthz, /readyz\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn endpoints() {
        let addr = start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        metrics().config_load(true);
        let m = get(addr, "/metrics").await;
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        assert!(m.contains("application/openmetrics-text"), "{m}");
        assert!(
            m.contains("promptgate_config_loads_total{outcome=\"success\"}"),
            "{m}"
        );
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        set_ready(false);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        set_ready(true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    }
}
