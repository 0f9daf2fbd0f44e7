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
use quench_store::{EmbeddedStore, RedisStore, StateStore};
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
            AlertDispatcher::start(&config.alerts, tokio::runtime::Handle::current())
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
        };
        run(listeners, parts, shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The store `config` chooses, and for Redis the result of a first check that it answers.
struct Opened {
    store: Arc<dyn StateStore>,
    check: Option<Result<(), quench_store::StoreError>>,
}

fn open_store(config: &QuenchConfig) -> Result<Opened> {
    let data_dir = &config.serve.data_dir;
    Ok(match config.store.backend {
        StoreBackend::Embedded => Opened {
            store: Arc::new(
                EmbeddedStore::open(data_dir.join("state"))
                    .with_context(|| format!("opening the store in {}", data_dir.display()))?,
            ),
            check: None,
        },
        StoreBackend::Redis => {
            let options = config.store.redis_options();
            let store = RedisStore::new(options.clone()).context("[store] url")?;
            let check = store.ping();
            if check.is_ok() {
                tracing::info!(url = %redacted(&options.url), prefix = %options.key_prefix, "state in Redis (fleet mode)");
            }
            Opened {
                store: Arc::new(store),
                check: Some(check),
            }
        }
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
