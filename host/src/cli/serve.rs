//! `quench serve`: the Postfix policy service on the durable embedded store, or on a Redis
//! shared by a fleet of hosts (`[store] backend = "redis"`).

use crate::alerts::AlertDispatcher;
use crate::config::{QuenchConfig, StoreBackend};
use crate::metrics::Metrics;
use crate::reload::{Live, PolicyLoader, Reloader, ServeOverrides};
use crate::serve::{Listeners, Parts, run, shutdown_signal};
use crate::service::Service;
use anyhow::{Context, Result};
use clap::Args;
use quench_store::{EmbeddedStore, RedisOptions, RedisStore, ResilientStore, StateStore};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Flags of `quench serve`; each overrides the config file.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// quench config file (TOML); defaults apply without one.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Policy service address [default: 127.0.0.1:10040].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory for the embedded store (unless [store] says Redis) and the code cache
    /// [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Policy component to run instead of the embedded default.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Admin API address [default: 127.0.0.1:10041].
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Prometheus metrics address [default: 127.0.0.1:10042].
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
}

impl ServeArgs {
    /// The flags that override `[serve]` keys, kept for reloads.
    fn overrides(&self) -> ServeOverrides {
        ServeOverrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            policy: self.policy.clone(),
            admin_listen: self.admin_listen,
            metrics_listen: self.metrics_listen,
        }
    }
}

pub(crate) fn run_serve(args: ServeArgs) -> Result<ExitCode> {
    let config_path = args.config.clone();
    let policy_flag = args.policy.clone();
    let overrides = args.overrides();
    let mut config = super::load_config(args.config.as_ref())?;
    overrides.apply(&mut config);
    let serve = config.serve.clone();
    crate::admin::Tokens::new(&config.admin.tokens)?;
    config.check_secret_files()?;
    config.check_descriptor_budget()?;
    std::fs::create_dir_all(&serve.data_dir)
        .with_context(|| format!("creating data directory {}", serve.data_dir.display()))?;
    let store = open_store(&config)?;
    let loader = PolicyLoader {
        config_path: config_path.clone(),
        policy_override: policy_flag,
        cache_dir: serve.data_dir.join("cache"),
    };
    // The same path a reload takes, so what starts is what a SIGHUP would load.
    let (sandbox, _, raw) = loader.load_with_text()?;
    let metrics = Arc::new(Metrics::default());
    let service = Service::new(sandbox, store.store, config.store.on_unavailable)
        .with_unavailable_gauge(metrics.store_unavailable.clone());
    if let Some(check) = store.check {
        // Serve either way: decisions get on_unavailable until Redis answers.
        service.observe_store(&check);
    }
    let service = Arc::new(service);

    // The alert policies changed through the admin API (data_dir/alert-policies.json) win
    // over [alerts] for the kinds they name.
    let policies = Arc::new(crate::alerts::AlertPolicies::load(&serve.data_dir)?);
    if crate::alerts::policies::nobody_is_notified(&policies, &config.alerts) {
        tracing::warn!(
            "no alert has a recipient: alerts are only logged; set [alerts] tenant_admins \
             (and [alerts.email]) or change the alert policies (quench alert-policy set)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("quench")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listeners = Listeners::bind(&serve).await?;
        announce("policy service", listeners.policy.local_addr()?);
        if let Some(metrics) = &listeners.metrics {
            announce("metrics", metrics.local_addr()?);
        }
        if let Some(admin) = &listeners.admin {
            announce("admin API", admin.local_addr()?);
        }
        let alerts = Arc::new(
            AlertDispatcher::start_with(
                &config.alerts,
                tokio::runtime::Handle::current(),
                policies,
            )
            .context("starting alert delivery")?,
        );
        let offload_decisions = config.store.backend == StoreBackend::Redis;
        let live = Arc::new(Live::new(config, raw, alerts)?);
        let reloader =
            Arc::new(Reloader::new(loader, service.clone()).with_live(live.clone(), overrides));
        let parts = Parts {
            service,
            metrics,
            config: serve,
            live,
            reloader: Some(reloader),
            offload_decisions,
            resilient: store.resilient,
        };
        run(listeners, parts, shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The store `config` chooses, and for Redis the result of a first check that it answers.
struct Opened {
    store: Arc<dyn StateStore>,
    check: Option<Result<(), quench_store::StoreError>>,
    /// The same store as `store` when it is a [`ResilientStore`] (always, except a Redis that
    /// did not answer at start), for the degraded-mode gauge, alert and shutdown report.
    resilient: Option<Arc<ResilientStore>>,
}

/// Either backend runs under a [`ResilientStore`]: when the disk fills, the file breaks or
/// Redis goes away, known restrictions stay enforced and counting goes on in memory (bounded)
/// until the backend takes writes again (docs/operations.md, "Failure modes").
fn open_store(config: &QuenchConfig) -> Result<Opened> {
    let data_dir = &config.serve.data_dir;
    match config.store.backend {
        StoreBackend::Embedded => {
            let dir = data_dir.join("state");
            let factory: quench_store::Factory = Box::new(move || {
                EmbeddedStore::open(&dir).map(|store| Box::new(store) as Box<dyn StateStore>)
            });
            let store = Arc::new(
                ResilientStore::new(factory)
                    .with_context(|| format!("opening the store in {}", data_dir.display()))?,
            );
            Ok(Opened {
                store: store.clone(),
                check: None,
                resilient: Some(store),
            })
        }
        StoreBackend::Redis => open_redis(config.store.redis_options()),
    }
}

fn open_redis(options: RedisOptions) -> Result<Opened> {
    let probe = RedisStore::new(options.clone()).context("[store] url")?;
    let check = probe.ping();
    if let Err(error) = &check {
        // Without a first read of the restricted index the in-memory fallback could not tell
        // which entities are restricted, and writing its memory back later could overwrite
        // them: serve on Redis directly (decisions get on_unavailable until it answers).
        tracing::warn!(
            %error,
            "Redis did not answer at start: decisions get [store] on_unavailable until it does,              and the in-memory fallback for later outages is off until quench serve restarts"
        );
        return Ok(Opened {
            store: Arc::new(probe),
            check: Some(check),
            resilient: None,
        });
    }
    drop(probe);
    tracing::info!(url = %redacted(&options.url), prefix = %options.key_prefix, "state in Redis (fleet mode)");
    let factory: quench_store::Factory = Box::new(move || {
        RedisStore::new(options.clone()).map(|store| Box::new(store) as Box<dyn StateStore>)
    });
    let store = Arc::new(ResilientStore::new(factory).context("opening the Redis store")?);
    Ok(Opened {
        store: store.clone(),
        check: Some(check),
        resilient: Some(store),
    })
}

/// `url` without its password, for logs.
fn redacted(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((credentials, host)) = rest.rsplit_once('@')
    {
        let user = credentials.split(':').next().unwrap_or_default();
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

/// Print a listener's real address on stdout (tests and scripts bind port 0 and read it).
fn announce(what: &str, addr: SocketAddr) {
    println!("quench: {what} listening on {addr}");
}
