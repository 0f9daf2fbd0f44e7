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
    /// Serve TLS with this acceptor (the admin listener with `[admin] tls_cert`); the TLS
    /// handshake must finish within the header timeout.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A TLS acceptor for `cert` (PEM chain) and `key` (PEM private key), rustls with the ring
/// provider, TLS 1.2 and 1.3, HTTP/1.1 by ALPN.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use anyhow::Context;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("admin.tls_cert: reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "admin.tls_cert: {} is not a PEM certificate chain",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!("admin.tls_cert: {} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "admin.tls_key: reading a PEM private key from {}",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("admin.tls_cert and admin.tls_key do not make a usable certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
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
                let stop = stop.clone();
                let tls = limits.tls.clone();
                connections.spawn(async move {
                    match tls {
                        None => serve_connection(what, stream, peer, app, header_timeout, stop).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => {
                                    serve_connection(what, stream, peer, app, header_timeout, stop).await;
                                }
                                Ok(Err(error)) => {
                                    tracing::debug!(listener = what, %peer, %error, "TLS handshake failed");
                                }
                                Err(_) => {
                                    tracing::debug!(listener = what, %peer, "TLS handshake timed out");
                                }
                            }
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

/// Serve one connection (plain or TLS) until it closes or `stop` changes.
async fn serve_connection<S>(
    what: &'static str,
    stream: S,
    peer: std::net::SocketAddr,
    app: axum::Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move { app.call(request).await }
        });
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
}
