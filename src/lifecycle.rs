//! Graceful shutdown: SIGTERM → NOT_SERVING → grace → stop accepting →
//! in-flight streams finish → exit, bounded by a deadline.
//!
//! Envoy keeps long-lived HTTP/2 connections to promptgate and only stops
//! choosing an instance once its active gRPC health check fails (or, on
//! Kubernetes, once the endpoint leaves the EndpointSlice). So the order is:
//!
//! 1. health (`grpc.health.v1`, the whole server `""` and the ext_proc
//!    service) turns NOT_SERVING; streams keep being served;
//! 2. after `grace`, the listener closes and every connection gets an
//!    HTTP/2 GOAWAY (tonic's graceful shutdown): Envoy opens no new stream
//!    on it, streams already open run to their end;
//! 3. when the last connection has closed — or at `timeout` after the
//!    signal, whichever comes first — the server returns and the process
//!    exits 0.
//!
//! A second SIGTERM/SIGINT during the drain skips what is left of it.
//!
//! Streams that never end by themselves (the gateway's access-log stream)
//! end at step 2: they watch [`listener_closed`].

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

fn closed_flag() -> &'static watch::Sender<bool> {
    static CLOSED: OnceLock<watch::Sender<bool>> = OnceLock::new();
    CLOSED.get_or_init(|| watch::channel(false).0)
}

/// Turns `true` when the drain closes the listener: a stream that would
/// otherwise stay open for ever ends then, so the drain does not wait for
/// it until its deadline.
pub fn listener_closed() -> watch::Receiver<bool> {
    closed_flag().subscribe()
}

/// `grpc.health.v1` service name that answers SERVING for as long as the
/// process runs, draining included: for liveness probes. Readiness (and
/// Envoy's health check) use the whole-server name `""`, which turns
/// NOT_SERVING at the start of the drain.
pub const LIVENESS_SERVICE: &str = "liveness";

/// Timings of the drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOptions {
    /// NOT_SERVING is reported this long before the listener closes, so the
    /// gateway's health checks move traffic away first.
    pub grace: Duration,
    /// Upper bound of the whole drain, counted from the signal (grace
    /// included). Kubernetes' `terminationGracePeriodSeconds` must exceed it.
    pub timeout: Duration,
}

impl DrainOptions {
    /// No grace, no bound: stop accepting at once and wait for streams
    /// (what tests and embedders that manage health themselves want).
    pub fn immediate() -> Self {
        DrainOptions {
            grace: Duration::ZERO,
            timeout: Duration::MAX,
        }
    }
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            grace: Duration::from_secs(5),
            timeout: Duration::from_secs(600),
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
            _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutdown requested"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!(signal = "ctrl-c", "shutdown requested");
    }
}

/// Runs a server with the drain sequence.
///
/// `serve` gets the future that tells it to stop accepting (tonic's
/// `serve_with_incoming_shutdown` signal) and returns when its connections
/// are closed. `not_serving` is called once, when `signal` resolves.
/// `second_signal` resolving during the drain ends it at once.
pub async fn drain<S, Fut, N, NFut>(
    opts: DrainOptions,
    signal: impl Future<Output = ()>,
    second_signal: impl Future<Output = ()>,
    not_serving: N,
    serve: S,
) -> anyhow::Result<()>
where
    S: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
    N: FnOnce() -> NFut,
    NFut: Future<Output = ()>,
{
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = Box::pin(async move {
        let _ = stop_rx.await;
    });
    let server = serve(stop);
    tokio::pin!(server);
    tokio::pin!(signal);

    // Phase 0: serving.
    tokio::select! {
        r = &mut server => return r,
        _ = &mut signal => {}
    }
    let started = Instant::now();
    let deadline = if opts.timeout == Duration::MAX {
        None
    } else {
        Some(started + opts.timeout)
    };
    not_serving().await;
    tracing::info!(
        grace_ms = opts.grace.as_millis() as u64,
        timeout_ms = deadline.map(|_| opts.timeout.as_millis() as u64),
        "draining: health is NOT_SERVING; the listener closes after the grace"
    );

    tokio::pin!(second_signal);
    let grace_end = started + opts.grace.min(opts.timeout);
    // Phase 1: grace — still serving new streams while the gateway notices.
    tokio::select! {
        r = &mut server => return r,
        _ = tokio::time::sleep_until(grace_end) => {}
        _ = &mut second_signal => {
            tracing::warn!("second signal: stopping without the rest of the drain");
            return Ok(());
        }
    }

    // Phase 2: stop accepting, GOAWAY, wait for in-flight streams.
    let _ = stop_tx.send(());
    closed_flag().send_replace(true);
    tracing::info!("listener closed; waiting for in-flight streams");
    let until_deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = &mut server => {
            tracing::info!(drain_ms = started.elapsed().as_millis() as u64, "drained; exiting");
            r
        }
        _ = until_deadline => {
            tracing::warn!(
                drain_ms = started.elapsed().as_millis() as u64,
                "drain deadline reached with streams still open; exiting"
            );
            Ok(())
        }
        _ = &mut second_signal => {
            tracing::warn!("second signal: stopping without the rest of the drain");
            Ok(())
        }
    }
}

/// Parses `25s`, `500ms`, `2m` or a plain number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 25s, 500ms or 2m"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("`{s}` is not a non-negative duration"));
    }
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: unit must be ms, s or m")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("25s").unwrap(), Duration::from_secs(25));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    type Stop = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
    type Served = std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>>>>;

    /// A fake server that stops `linger` after it is told to.
    fn fake_server(
        linger: Duration,
        stopped_at: Arc<std::sync::Mutex<Option<Instant>>>,
    ) -> impl FnOnce(Stop) -> Served {
        move |stop| {
            Box::pin(async move {
                stop.await;
                *stopped_at.lock().unwrap() = Some(Instant::now());
                tokio::time::sleep(linger).await;
                Ok(())
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn grace_then_stop_then_wait_for_streams() {
        let stopped = Arc::new(std::sync::Mutex::new(None));
        let flagged = Arc::new(AtomicBool::new(false));
        let f = flagged.clone();
        let t0 = Instant::now();
        drain(
            DrainOptions {
                grace: Duration::from_secs(2),
                timeout: Duration::from_secs(10),
            },
            tokio::time::sleep(Duration::from_secs(1)),
            std::future::pending(),
            || async move { f.store(true, Ordering::SeqCst) },
            fake_server(Duration::from_secs(3), stopped.clone()),
        )
        .await
        .unwrap();
        assert!(flagged.load(Ordering::SeqCst));
        let stop = stopped.lock().unwrap().unwrap();
        assert_eq!(stop - t0, Duration::from_secs(3)); // signal at 1 s + 2 s grace
        assert_eq!(t0.elapsed(), Duration::from_secs(6)); // + 3 s of streams
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_bounds_the_drain() {
        let stopped = Arc::new(std::sync::Mutex::new(None));
        let t0 = Instant::now();
        drain(
            DrainOptions {
                grace: Duration::from_secs(1),
                timeout: Duration::from_secs(4),
            },
            std::future::ready(()),
            std::future::pending(),
            || async {},
            fake_server(Duration::from_secs(60), stopped),
        )
        .await
        .unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn second_signal_cuts_the_grace() {
        let stopped = Arc::new(std::sync::Mutex::new(None));
        let t0 = Instant::now();
        drain(
            DrainOptions::default(),
            std::future::ready(()),
            tokio::time::sleep(Duration::from_millis(300)),
            || async {},
            fake_server(Duration::from_secs(60), stopped),
        )
        .await
        .unwrap();
        assert_eq!(t0.elapsed(), Duration::from_millis(300));
    }
}
