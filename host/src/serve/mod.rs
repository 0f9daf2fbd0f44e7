//! `quench serve`: the Postfix SMTP access policy delegation service, beside the metrics
//! endpoint and the periodic flush of lazy writes. Shuts down gracefully: stop accepting,
//! let in-flight requests finish (bounded), flush the store.

mod connection;
pub mod mapping;

use crate::admin::{AdminApi, HttpLimits, serve_http};
use crate::config::ServeConfig;
use crate::metrics::{KindLabel, Metrics};
use crate::reload::{Live, LiveAlerts, Reloader};
use crate::retention;
use crate::sandbox::SandboxError;
use crate::service::Service;
use anyhow::{Context, Result};
use quench_postfix_policy::Limits;
use quench_store::ResilientStore;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// What every connection task shares.
pub(crate) struct Shared {
    pub(crate) service: Arc<Service>,
    pub(crate) alerts: Arc<LiveAlerts>,
    /// The settings a reload changes (timeouts are read from here, per request).
    pub(crate) live: Arc<Live>,
    pub(crate) offload_decisions: bool,
    pub(crate) metrics: Arc<Metrics>,
    /// NDRs to restricted users, when `[ndr] relay` is set.
    pub(crate) ndr: Option<Arc<crate::ndr::NdrSender>>,
    /// The `[serve]` settings at start (the keys a reload changes are read from `live`).
    #[allow(dead_code)]
    pub(crate) config: ServeConfig,
    pub(crate) limits: Limits,
}

/// The label a policy fault is counted under.
pub(crate) fn fault_kind(fault: &SandboxError) -> &'static str {
    match fault {
        SandboxError::Config(_) => "config",
        SandboxError::Deadline(_) => "deadline",
        SandboxError::Trap(_) => "trap",
        SandboxError::InvalidOutput(_) => "invalid_output",
        SandboxError::NoInstance(_) => "no_instance",
    }
}

/// Bound listeners, ready to serve.
pub struct Listeners {
    /// The policy service.
    pub policy: TcpListener,
    /// The metrics endpoint, if enabled.
    pub metrics: Option<TcpListener>,
    /// The admin API, if enabled.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Bind the listeners `config` names; errors say which address failed.
    pub async fn bind(config: &ServeConfig) -> Result<Self> {
        let policy = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding the policy service to {}", config.listen))?;
        let metrics = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics endpoint to {addr}"))?,
            ),
            None => None,
        };
        let admin = match config.admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the admin API to {addr}"))?,
            ),
            None => None,
        };
        Ok(Listeners {
            policy,
            metrics,
            admin,
        })
    }
}

/// Everything a running server is made of, besides its listeners.
pub struct Parts {
    /// The decision service (policy and store).
    pub service: Arc<Service>,
    /// Metrics, served on the metrics listener.
    pub metrics: Arc<Metrics>,
    /// The `[serve]` settings at start.
    pub config: ServeConfig,
    /// What a reload changes: the config in force, admin tokens, alert delivery.
    pub live: Arc<Live>,
    /// Reloads the policy on SIGHUP and `POST /v1/policy/reload`; `None` disables reloads.
    pub reloader: Option<Arc<Reloader>>,
    /// Decide on tokio's blocking pool instead of the connection's worker thread. Set for
    /// network stores (Redis): a round trip, or a timeout while Redis is down, must not hold
    /// up the other connections on that worker. Local stores decide in microseconds, where
    /// the hand-off would cost more than the decision.
    pub offload_decisions: bool,
    /// The store as a [`ResilientStore`], when it is one: watched after every flush for
    /// degraded mode (gauge, alert, log) and asked at shutdown what could not be saved.
    pub resilient: Option<Arc<ResilientStore>>,
}

/// Serve until `shutdown` completes, then drain and flush.
pub async fn run(
    listeners: Listeners,
    parts: Parts,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let Parts {
        service,
        metrics,
        config,
        live,
        reloader,
        offload_decisions,
        resilient,
    } = parts;
    let alerts = live.alerts().clone();
    let ndr = crate::ndr::NdrSender::start(
        &live.config().ndr,
        service.clone(),
        metrics.ndr.clone(),
        &tokio::runtime::Handle::current(),
    )
    .context("starting NDR delivery ([ndr])")?
    .map(Arc::new);
    let shared = Arc::new(Shared {
        ndr,
        service: service.clone(),
        alerts: alerts.clone(),
        live: live.clone(),
        offload_decisions,
        metrics: metrics.clone(),
        config: config.clone(),
        limits: Limits::default(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = JoinSet::new();
    if let Some(listener) = listeners.metrics {
        background.spawn(serve_metrics(
            listener,
            metrics.clone(),
            live.clone(),
            stop_rx.clone(),
        ));
    }
    if let Some(listener) = listeners.admin {
        let api = AdminApi::new(
            service.clone(),
            live.clone(),
            reloader.clone(),
            metrics.clone(),
        );
        let header_live = live.clone();
        let admin_config = live.config().admin.clone();
        let tls = match (&admin_config.tls_cert, &admin_config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::admin::http::tls_acceptor(cert, key)?),
            (None, None) => None,
            _ => anyhow::bail!("admin.tls_cert and admin.tls_key go together: set both or neither"),
        };
        let limits = HttpLimits {
            max_connections: admin_config.max_connections,
            header_timeout: Arc::new(move || {
                Duration::from_secs(header_live.config().admin.header_timeout_secs)
            }),
            tls,
        };
        background.spawn(serve_http(
            "admin",
            listener,
            api.router(),
            limits,
            metrics.clone(),
            stop_rx.clone(),
        ));
        let stop = stop_rx.clone();
        background.spawn(async move { api.flush_sampled(stop).await });
    }
    background.spawn(flush_periodically(
        service.clone(),
        StoreWatch {
            resilient: resilient.clone(),
            metrics: metrics.clone(),
            live: live.clone(),
            degraded: false,
        },
        Duration::from_millis(config.flush_interval_ms.max(1)),
        stop_rx.clone(),
    ));

    if config.sweep_interval_secs > 0 {
        background.spawn(sweep_periodically(
            service.clone(),
            metrics.clone(),
            live.clone(),
            Duration::from_secs(config.sweep_interval_secs),
            config.sweep_page_size.max(1),
            stop_rx.clone(),
        ));
    }

    if let Some(reloader) = reloader {
        background.spawn(reload_on_sighup(reloader, stop_rx.clone()));
    }

    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    let listen = listeners.policy.local_addr()?;
    tracing::info!(%listen, "policy service ready");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listeners.policy.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, max = config.max_connections, "connection limit reached; closing");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let stop = stop_rx.clone();
                let metrics = metrics.clone();
                connections.spawn(async move {
                    metrics.connections.inc();
                    connection::serve(stream, peer, shared, stop).await;
                    metrics.connections.dec();
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    tracing::info!(
        in_flight = connections.len(),
        "shutting down: no new connections"
    );
    drop(listeners.policy);
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(live.config().serve.shutdown_grace_secs);
    if tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!(
            left = connections.len(),
            "grace period over; closing the rest"
        );
        connections.abort_all();
    }
    while background.join_next().await.is_some() {}
    if !alerts.shutdown(grace).await {
        tracing::warn!("some alerts were not delivered before shutdown");
    }
    let store = service.store().clone();
    let flushed = tokio::task::spawn_blocking(move || store.flush())
        .await
        .context("flush task")?;
    match (&resilient, flushed) {
        // Degraded: the flush already retried the store; say what dies with the process
        // instead of failing the exit (there is nothing left to do about it).
        (Some(resilient), _) if resilient.degraded() => {
            let unsaved = resilient.unsaved();
            tracing::error!(
                states = unsaved.states,
                restrictions = unsaved.restrictions,
                unblocks = unsaved.unblocks,
                audit_records = unsaved.audit_records,
                dropped_states = unsaved.dropped_states,
                dropped_audit_records = unsaved.dropped_audit_records,
                "stopped with the store still not taking writes: these were held only in memory \
                 and are lost (restricted entities that were already stored stay restricted)"
            );
        }
        (_, flushed) => flushed.context("flushing the store at shutdown")?,
    }
    tracing::info!("stopped");
    Ok(())
}

/// What the flush loop watches besides flushing: a [`ResilientStore`]'s degraded mode.
struct StoreWatch {
    resilient: Option<Arc<ResilientStore>>,
    metrics: Arc<Metrics>,
    live: Arc<Live>,
    /// Degraded at the last check.
    degraded: bool,
}

impl StoreWatch {
    /// After a flush: show degraded mode on `quench_store_unavailable` and
    /// `quench_store_unsaved`, and log and alert when it starts and ends.
    fn check(&mut self, service: &Service) {
        let Some(resilient) = &self.resilient else {
            return;
        };
        let now_degraded = resilient.degraded();
        // Also an outage that began and ended between two checks: the alert must not be lost.
        let seen = service.take_degraded_seen() || now_degraded;
        let unsaved = resilient.unsaved();
        for (kind, n) in [
            ("states", unsaved.states),
            ("restrictions", unsaved.restrictions),
            ("unblocks", unsaved.unblocks),
            ("audit_records", unsaved.audit_records),
        ] {
            self.metrics
                .store_unsaved
                .get_or_create(&KindLabel { kind })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        // Decisions set it at once when they find the store degraded; this also sets it back.
        self.metrics
            .store_unavailable
            .set(i64::from(now_degraded || service.store_unavailable()));
        if !self.degraded && seen {
            {
                tracing::error!(
                    states = unsaved.states,
                    audit_records = unsaved.audit_records,
                    "the store stopped taking writes; enforcing from memory (restricted entities \
                     stay refused, counting goes on in memory) and retrying the store with backoff"
                );
                let alert =
                    crate::alerts::operational::store_unavailable(crate::time::now(), &unsaved);
                self.live.alerts().submit(&alert);
            }
            self.degraded = true;
        }
        if self.degraded && !now_degraded {
            tracing::info!("the store takes writes again; what was kept in memory is written");
            self.degraded = false;
        }
    }
}

/// A ticker for periodic background work: the first tick at once, and a late tick delays
/// the next ones rather than bunching them.
fn ticker(every: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// Wait for `ticker`'s next tick; `false` when `stop` says shut down first.
async fn next_tick(ticker: &mut tokio::time::Interval, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = ticker.tick() => true,
        _ = stop.changed() => false,
    }
}

async fn flush_periodically(
    service: Arc<Service>,
    mut watch: StoreWatch,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = ticker(every);
    while next_tick(&mut ticker, &mut stop).await {
        let store = service.store().clone();
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "periodic flush failed"),
            Err(error) => tracing::warn!(%error, "periodic flush task failed"),
        }
        watch.check(&service);
    }
}

/// Pause between pages of a retention sweep. A page takes a few milliseconds of one core;
/// pausing as long again keeps the sweep to a fraction of a core, and a store of a million
/// entities (about 4,000 pages) is still swept within a minute or two.
const SWEEP_PAUSE: Duration = Duration::from_millis(5);

/// Run the retention sweep (`crate::retention`) at start and every `every` on the blocking
/// pool, counting each page in the metrics and pausing between pages, until `stop`.
async fn sweep_periodically(
    service: Arc<Service>,
    metrics: Arc<Metrics>,
    live: Arc<Live>,
    every: Duration,
    page_size: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = ticker(every);
    while next_tick(&mut ticker, &mut stop).await {
        let (service, metrics, stop) = (service.clone(), metrics.clone(), stop.clone());
        let keep_days = live.config().audit.keep_days;
        let swept = tokio::task::spawn_blocking(move || {
            let prune_stop = stop.clone();
            let keep_going = || {
                std::thread::sleep(SWEEP_PAUSE);
                !*prune_stop.borrow()
            };
            match retention::prune_audit(&service, keep_days, crate::time::now(), keep_going) {
                Ok(0) => {}
                Ok(pruned) => {
                    metrics.audit_pruned.inc_by(pruned);
                    tracing::info!(pruned, keep_days, "audit retention");
                }
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "audit retention failed")
                }
            }
            let swept = retention::sweep(&service, page_size, crate::time::now(), |page| {
                for (kind, n) in [
                    ("examined", page.examined),
                    ("removed", page.removed),
                    ("faults", page.faults),
                ] {
                    metrics
                        .retention
                        .get_or_create(&KindLabel { kind })
                        .inc_by(n);
                }
                std::thread::sleep(SWEEP_PAUSE);
                !*stop.borrow()
            });
            if let Ok(count) = service.store().entity_count() {
                metrics
                    .entities
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
            swept
        })
        .await;
        match swept {
            Ok(Ok(total)) => tracing::info!(
                examined = total.examined,
                removed = total.removed,
                faults = total.faults,
                "retention sweep"
            ),
            Ok(Err(error)) => {
                tracing::warn!(error = %format!("{error:#}"), "retention sweep stopped")
            }
            Err(error) => tracing::warn!(%error, "retention sweep task failed"),
        }
    }
}

async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    live: Arc<Live>,
    stop: watch::Receiver<bool>,
) {
    let alerts = live.alerts().clone();
    let served = metrics.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = served.clone();
            let alerts = alerts.clone();
            async move {
                metrics.record_alerts(&alerts.stats());
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    let limits = HttpLimits {
        max_connections: live.config().metrics.max_connections,
        header_timeout: Arc::new(move || {
            Duration::from_secs(live.config().metrics.header_timeout_secs)
        }),
        tls: None,
    };
    serve_http("metrics", listener, app, limits, metrics, stop).await;
}

/// Reload the policy on every SIGHUP until shutdown; a refused reload is logged and the
/// running policy keeps serving.
async fn reload_on_sighup(reloader: Arc<Reloader>, mut stop: watch::Receiver<bool>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload through the admin API");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = hangups.recv() => {}
            _ = stop.changed() => return,
        }
        tracing::info!("SIGHUP received: reloading the config and the policy");
        let reloader = reloader.clone();
        match tokio::task::spawn_blocking(move || reloader.reload(false)).await {
            Ok(Ok(swapped)) => tracing::info!(settings = ?swapped.settings, "reload done"),
            Ok(Err(error)) => tracing::error!(error = %format!("{error:#}"), "reload refused"),
            Err(error) => tracing::error!(%error, "reload task failed"),
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
