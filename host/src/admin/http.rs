//! Serving an HTTP app (the admin API, the metrics endpoint) on a listener with a connection
//! cap and a header read timeout, so hostile or broken clients cannot hold descriptors: before
//! this, 1,100 half-sent requests held their descriptors forever and starved the policy port.
//!
//! Each connection is served by hyper's HTTP/1 connection builder with `header_read_timeout`
//! (which also bounds a kept-alive connection's wait for its next request). Connections past
//! the cap are closed as soon as they are accepted rather than left in the accept backlog:
//! a flood then costs an accept and a close per connection, never a descriptor held, the
//! backlog stays free for the kernel to take new connections, and a legitimate client gets an
//! immediate error it can retry instead of a hang. Closed connections are counted
//! (`quench_http_refused_connections_total`) and logged (the 1st, 2nd, 4th, 8th...).

use crate::metrics::Metrics;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower_service::Service;

/// A listener's limits.
#[derive(Clone)]
pub struct HttpLimits {
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Reads the header timeout for each new connection (so a reload changes it).
    pub header_timeout: Arc<dyn Fn() -> Duration + Send + Sync>,
}

/// Most bytes buffered while reading a request's headers; more is refused (431). hyper's
/// default is about 400 KB; the longest real request line is an address of a few hundred
/// bytes, so 64 KiB is ample and bounds what a capped connection can make quench hold (64
/// admin connections: 4 MiB).
const MAX_HEADER_BUFFER: usize = 64 * 1024;

/// How long connections get to finish their request at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serve `app` on `listener` under `limits` until `stop` changes; `what` names the listener
/// in logs and metrics (`admin`, `metrics`).
pub async fn serve_http(
    what: &'static str,
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refused = AtomicU64::new(0);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors and the like: back off, keep serving.
                        tracing::warn!(listener = what, %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    drop(stream);
                    metrics.http_refused(what);
                    let n = refused.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(
                            listener = what, %peer, max = limits.max_connections, refused_so_far = n,
                            "connection limit reached; closing new connections"
                        );
                    }
                    continue;
                };
                let app = app.clone();
                let header_timeout = (limits.header_timeout)();
                let mut stop = stop.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(
                        move |mut request: hyper::Request<hyper::body::Incoming>| {
                            request.extensions_mut().insert(ConnectInfo(peer));
                            let mut app = app.clone();
                            async move { app.call(request).await }
                        },
                    );
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_timeout)
                        .max_buf_size(MAX_HEADER_BUFFER)
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        served = connection.as_mut() => {
                            if let Err(error) = served {
                                tracing::debug!(listener = what, %peer, %error, "connection closed");
                            }
                        }
                        _ = stop.changed() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
                        }
                    }
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE * 2, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        connections.abort_all();
    }
}
