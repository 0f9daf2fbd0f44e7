//! Live reload (SIGHUP or the admin API's `POST /v1/policy/reload`): read the config file
//! again, validate everything before anything changes (compile, link and configure the policy,
//! compare state formats, check the tokens, the `[alerts]` table and its secret files, and
//! refuse changes that need a restart), then put it all in force at once: the policy, the
//! admin tokens (a removed token is refused from the next request), `[alerts]`, and the
//! timeouts of `[serve]`, `[admin]` and `[metrics]`. A refused reload changes nothing and says
//! why; decisions in flight finish on the policy they started with.
//!
//! What needs a restart: the listen addresses, the data directory, `[store]`, the connection
//! limits (`serve`, `admin` and `metrics` `max_connections`: the descriptor budget is checked
//! at start), the flush and sweep schedules, and any `[serve]` key not listed in
//! [`LIVE_SERVE_KEYS`].

use crate::admin::Tokens;
use crate::alerts::{AlertDispatcher, AlertStats, AlertsConfig};
use crate::bindings::Alert;
use crate::config::QuenchConfig;
use crate::sandbox::{PolicySource, Sandbox};
use crate::service::Service;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Where a server's policy comes from, so it can be loaded again the same way.
#[derive(Debug, Clone)]
pub struct PolicyLoader {
    /// The config file, re-read on every load (`None`: defaults).
    pub config_path: Option<PathBuf>,
    /// `--policy` given on the command line, which wins over the config's `serve.policy`.
    pub policy_override: Option<PathBuf>,
    /// Where compiled code is cached.
    pub cache_dir: PathBuf,
}

impl PolicyLoader {
    /// Read the config and build (compile, link, configure) the policy it names.
    pub fn load(&self) -> Result<(Sandbox, QuenchConfig)> {
        let (sandbox, config, _) = self.load_with_text()?;
        Ok((sandbox, config))
    }

    /// [`load`](Self::load), and the config file's text as a TOML table (empty without a
    /// file), read once with the config, so reloads can tell which keys changed.
    pub fn load_with_text(&self) -> Result<(Sandbox, QuenchConfig, toml::Table)> {
        let (config, raw) = match &self.config_path {
            Some(path) => {
                let config = QuenchConfig::load(path)?;
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config {}", path.display()))?;
                let raw = toml::from_str(&text)
                    .with_context(|| format!("in config {}", path.display()))?;
                (config, raw)
            }
            None => (QuenchConfig::default(), toml::Table::new()),
        };
        let policy = self
            .policy_override
            .clone()
            .or_else(|| config.serve.policy.clone());
        let sandbox = Sandbox::builder()
            .source(policy.map_or(PolicySource::Embedded, PolicySource::File))
            .config(config.policy_text())
            .limits(config.sandbox.clone())
            .cache_dir(&self.cache_dir)
            .build()?;
        Ok((sandbox, config, raw))
    }
}

/// What a reload did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Swapped {
    /// SHA-256 of the component that was in force.
    pub previous: String,
    /// SHA-256 of the component now in force.
    pub current: String,
    /// The contract version the new policy implements.
    pub contract: crate::sandbox::ContractVersion,
    /// The state format the new policy writes.
    pub state_format: String,
    /// Whether every entity's state was reset (the formats differed).
    pub reset_state: bool,
    /// The config keys besides the policy's whose new values were put in force (`admin.tokens`,
    /// `alerts.recipients`, `serve.idle_timeout_secs`, ...).
    #[serde(default)]
    pub settings: Vec<String>,
}

/// Reloads one service's policy, and with [`with_live`](Self::with_live) the rest of the
/// config; one reload at a time.
pub struct Reloader {
    loader: PolicyLoader,
    service: Arc<Service>,
    live: Option<(Arc<Live>, ServeOverrides)>,
    busy: Mutex<()>,
}

impl Reloader {
    /// A reloader for `service`, loading with `loader`.
    pub fn new(loader: PolicyLoader, service: Arc<Service>) -> Self {
        Reloader {
            loader,
            service,
            live: None,
            busy: Mutex::new(()),
        }
    }

    /// Reload the live settings too: tokens, `[alerts]` and the timeouts, with the command
    /// line's `overrides` applied on top of the file as at start.
    pub fn with_live(mut self, live: Arc<Live>, overrides: ServeOverrides) -> Self {
        self.live = Some((live, overrides));
        self
    }

    /// Load and validate the policy (and the live settings) again and put them in force. With
    /// `reset_state`, a policy whose state format differs from the running one's is accepted
    /// and every entity's state is cleared (restrictions and counts are lost; the audit log
    /// stays).
    pub fn reload(&self, reset_state: bool) -> Result<Swapped> {
        let _one_at_a_time = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let (next, mut config, raw) = self
            .loader
            .load_with_text()
            .context("the new policy was refused; the running one keeps serving")?;
        let Some((live, overrides)) = &self.live else {
            return swap(&self.service, next, reset_state);
        };
        overrides.apply(&mut config);
        let prepared = live
            .prepare(config, raw, overrides)
            .context("the new config was refused; the running one stays in force")?;
        let mut swapped = swap(&self.service, next, reset_state)?;
        swapped.settings = live.apply(prepared);
        if !swapped.settings.is_empty() {
            tracing::info!(settings = ?swapped.settings, "settings reloaded");
        }
        Ok(swapped)
    }
}

// ---- the live settings ----

/// The `[serve]` keys that take effect on reload; every other `[serve]` key (including ones
/// added later) needs a restart, and a reload that changes one is refused.
pub const LIVE_SERVE_KEYS: [&str; 7] = [
    "policy",
    "trusted_networks",
    "sasl_default_domain",
    "idle_timeout_secs",
    "request_timeout_secs",
    "write_timeout_secs",
    "shutdown_grace_secs",
];

/// `[admin]` and `[metrics]` keys that need a restart (the rest are live).
const RESTART_HTTP_KEYS: [&str; 1] = ["max_connections"];

/// The `[admin]` keys that need a restart: the connection cap, and TLS (the listener's
/// acceptor and the portal's Secure cookies are set up at start).
const RESTART_ADMIN_KEYS: [&str; 3] = ["max_connections", "tls_cert", "tls_key"];

/// The command line's overrides of `[serve]` keys, applied to the file at start and on every
/// reload (so the file's values of these keys never matter while they are given).
#[derive(Debug, Clone, Default)]
pub struct ServeOverrides {
    /// `--listen`.
    pub listen: Option<std::net::SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--policy`.
    pub policy: Option<PathBuf>,
    /// `--admin-listen`.
    pub admin_listen: Option<std::net::SocketAddr>,
    /// `--metrics-listen`.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl ServeOverrides {
    /// Put the overrides into `config`.
    pub fn apply(&self, config: &mut QuenchConfig) {
        let serve = &mut config.serve;
        if let Some(listen) = self.listen {
            serve.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            serve.data_dir = dir.clone();
        }
        if let Some(policy) = &self.policy {
            serve.policy = Some(policy.clone());
        }
        if let Some(addr) = self.admin_listen {
            serve.admin_listen = Some(addr);
        }
        if let Some(addr) = self.metrics_listen {
            serve.metrics_listen = Some(addr);
        }
    }

    fn overrides(&self, key: &str) -> bool {
        match key {
            "listen" => self.listen.is_some(),
            "data_dir" => self.data_dir.is_some(),
            "policy" => self.policy.is_some(),
            "admin_listen" => self.admin_listen.is_some(),
            "metrics_listen" => self.metrics_listen.is_some(),
            _ => false,
        }
    }
}

/// The settings a running server reads at each use, so a reload changes them for the next
/// request: the effective config, the admin tokens, and the alert dispatcher.
pub struct Live {
    config: RwLock<Arc<QuenchConfig>>,
    raw: Mutex<toml::Table>,
    tokens: RwLock<Arc<Tokens>>,
    alerts: Arc<LiveAlerts>,
}

/// A reload checked and built, not yet in force.
pub struct Prepared {
    config: QuenchConfig,
    raw: toml::Table,
    tokens: Tokens,
    alerts: Option<AlertDispatcher>,
    changed: Vec<String>,
}

impl Live {
    /// The settings a server started with: `config` (overrides applied), the config file as
    /// read (`raw`), and the dispatcher started from `config.alerts`.
    pub fn new(
        config: QuenchConfig,
        raw: toml::Table,
        alerts: Arc<AlertDispatcher>,
    ) -> Result<Self> {
        let tokens = Tokens::new(&config.admin.tokens)?;
        let grace = Duration::from_secs(config.serve.shutdown_grace_secs);
        Ok(Live {
            config: RwLock::new(Arc::new(config)),
            raw: Mutex::new(raw),
            tokens: RwLock::new(Arc::new(tokens)),
            alerts: Arc::new(LiveAlerts::new(alerts, grace)),
        })
    }

    /// The config in force.
    pub fn config(&self) -> Arc<QuenchConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The admin tokens in force.
    pub fn tokens(&self) -> Arc<Tokens> {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The alert dispatcher in force, behind a handle that follows reloads.
    pub fn alerts(&self) -> &Arc<LiveAlerts> {
        &self.alerts
    }

    /// Check `config` (read from `raw`) against the running one and build what it needs,
    /// changing nothing yet. Refused: a changed key that needs a restart, bad tokens, a bad
    /// `[alerts]` table or a secret file others may read.
    pub fn prepare(
        &self,
        config: QuenchConfig,
        raw: toml::Table,
        overrides: &ServeOverrides,
    ) -> Result<Prepared> {
        let running_raw = self.raw.lock().unwrap_or_else(|p| p.into_inner()).clone();
        needs_no_restart(&running_raw, &raw, overrides)?;
        config.check_secret_files()?;
        let tokens = Tokens::new(&config.admin.tokens)?;
        let running = self.config();
        let alerts = if alerts_fingerprint(&running.alerts)? != alerts_fingerprint(&config.alerts)?
        {
            Some(
                AlertDispatcher::start_with(
                    &config.alerts,
                    tokio::runtime::Handle::try_current()
                        .context("reloading [alerts] needs the server's runtime")?,
                    self.alerts.current().policies().clone(),
                )
                .context("starting alert delivery with the new [alerts]")?,
            )
        } else {
            None
        };
        let changed = changed_keys(&running_raw, &raw);
        Ok(Prepared {
            config,
            raw,
            tokens,
            alerts,
            changed,
        })
    }

    /// Put a prepared reload in force; returns the config keys that changed.
    pub fn apply(&self, prepared: Prepared) -> Vec<String> {
        *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(prepared.tokens);
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(prepared.config);
        *self.raw.lock().unwrap_or_else(|p| p.into_inner()) = prepared.raw;
        if let Some(dispatcher) = prepared.alerts {
            self.alerts.replace(dispatcher);
        }
        prepared.changed
    }
}

/// The alert dispatcher, replaceable by a reload. A replaced dispatcher is shut down in the
/// background (its queued alerts are still delivered, within the shutdown grace), and its
/// counts are kept so the metrics never go backwards. The daily notification counts start
/// afresh with the new `[alerts]`.
pub struct LiveAlerts {
    current: RwLock<Arc<AlertDispatcher>>,
    /// Counts of dispatchers shut down, and the ones still shutting down.
    retired: Mutex<(AlertStats, Vec<Arc<AlertDispatcher>>)>,
    grace: Duration,
}

impl LiveAlerts {
    /// A handle on `dispatcher`; replaced dispatchers get `grace` to deliver what they hold.
    pub fn new(dispatcher: Arc<AlertDispatcher>, grace: Duration) -> Self {
        LiveAlerts {
            current: RwLock::new(dispatcher),
            retired: Mutex::new((AlertStats::default(), Vec::new())),
            grace,
        }
    }

    /// The dispatcher in force.
    pub fn current(&self) -> Arc<AlertDispatcher> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Queue an alert (see [`AlertDispatcher::submit`]).
    pub fn submit(&self, alert: &Alert) -> bool {
        self.current().submit(alert)
    }

    /// What happened to alerts since start, across reloads.
    pub fn stats(&self) -> AlertStats {
        let mut total = self.current().stats();
        let retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        add_stats(&mut total, &retired.0);
        for old in &retired.1 {
            add_stats(&mut total, &old.stats());
        }
        total
    }

    /// Shut down the dispatcher in force (see [`AlertDispatcher::shutdown`]).
    pub async fn shutdown(&self, wait: Duration) -> bool {
        self.current().shutdown(wait).await
    }

    fn replace(self: &Arc<Self>, next: AlertDispatcher) {
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|p| p.into_inner()),
            Arc::new(next),
        );
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .push(old.clone());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            old.shutdown(this.grace).await;
            let mut retired = this.retired.lock().unwrap_or_else(|p| p.into_inner());
            retired.1.retain(|d| !Arc::ptr_eq(d, &old));
            add_stats(&mut retired.0, &old.stats());
        });
    }
}

fn add_stats(total: &mut AlertStats, more: &AlertStats) {
    total.submitted += more.submitted;
    total.dropped += more.dropped;
    total.disabled += more.disabled;
    total.suppressed += more.suppressed;
    total.notified += more.notified;
    for (sum, add) in [
        (&mut total.log, &more.log),
        (&mut total.webhook, &more.webhook),
        (&mut total.email, &more.email),
    ] {
        sum.queued += add.queued;
        sum.delivered += add.delivered;
        sum.failed += add.failed;
        sum.retries += add.retries;
        sum.dropped += add.dropped;
    }
}

/// What identifies an `[alerts]` setup: the table and the contents of its secret files (a
/// rotated secret is picked up by a reload too). The dispatcher is only rebuilt when it
/// changes, so an unrelated reload keeps the daily notification counts.
fn alerts_fingerprint(alerts: &AlertsConfig) -> Result<String> {
    let mut print = format!("{alerts:?}");
    let files = [
        alerts.webhook.as_ref().and_then(|w| w.secret_file.clone()),
        alerts.email.as_ref().and_then(|e| e.password_file.clone()),
    ];
    for file in files.into_iter().flatten() {
        let secret = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        print.push_str(&crate::admin::hash_token(&hex::encode(secret)));
    }
    Ok(print)
}

/// Refuse a reload that changes a key only a restart can apply; the error names the key.
fn needs_no_restart(
    running: &toml::Table,
    next: &toml::Table,
    overrides: &ServeOverrides,
) -> Result<()> {
    let mut needs = Vec::new();
    for key in changed_in::<crate::config::ServeConfig>(running, next, "serve") {
        if !LIVE_SERVE_KEYS.contains(&key.as_str()) && !overrides.overrides(&key) {
            needs.push(format!("serve.{key}"));
        }
    }
    for key in changed_in::<crate::admin::AdminConfig>(running, next, "admin") {
        if RESTART_ADMIN_KEYS.contains(&key.as_str()) {
            needs.push(format!("admin.{key}"));
        }
    }
    for key in changed_in::<crate::config::MetricsConfig>(running, next, "metrics") {
        if RESTART_HTTP_KEYS.contains(&key.as_str()) {
            needs.push(format!("metrics.{key}"));
        }
    }
    for key in changed_in::<crate::config::StoreConfig>(running, next, "store") {
        needs.push(format!("store.{key}"));
    }
    for key in changed_in::<crate::ndr::NdrConfig>(running, next, "ndr") {
        needs.push(format!("ndr.{key}"));
    }
    if !needs.is_empty() {
        bail!(
            "{} changed, which needs a restart of quench serve (listeners, the data directory, \
             the store and the connection limits are fixed while it runs); the running config \
             stays in force: put the old value back, or restart to apply it",
            needs.join(", ")
        );
    }
    Ok(())
}

/// The keys of `[table]` whose effective value differs between `running` and `next`: a key
/// written in one file and left out of the other differs only when the value written is not
/// the default.
fn changed_in<T: DeserializeOwned + std::fmt::Debug>(
    running: &toml::Table,
    next: &toml::Table,
    table: &str,
) -> Vec<String> {
    let empty = toml::Table::new();
    let section = |config: &toml::Table| match config.get(table) {
        Some(toml::Value::Table(t)) => t.clone(),
        _ => empty.clone(),
    };
    let (old, new) = (section(running), section(next));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|key| {
            let (a, b) = (old.get(*key), new.get(*key));
            a != b && effective::<T>(key, a) != effective::<T>(key, b)
        })
        .cloned()
        .collect()
}

/// `key = value` alone, read as `T` with every other key at its default, printed; the raw
/// value when that does not parse.
fn effective<T: DeserializeOwned + std::fmt::Debug>(
    key: &str,
    value: Option<&toml::Value>,
) -> String {
    let mut table = toml::Table::new();
    if let Some(value) = value {
        table.insert(key.to_string(), value.clone());
    }
    match toml::Value::Table(table).try_into::<T>() {
        Ok(parsed) => format!("{parsed:?}"),
        Err(_) => format!("{value:?}"),
    }
}

/// The `table.key` names whose raw value differs between two config files (for the reload's
/// report; `[policy]` is the policy's own and reported as `policy`).
fn changed_keys(running: &toml::Table, next: &toml::Table) -> Vec<String> {
    let mut changed = Vec::new();
    let mut tables: Vec<&String> = running.keys().chain(next.keys()).collect();
    tables.sort();
    tables.dedup();
    for table in tables {
        let (a, b) = (running.get(table), next.get(table));
        if a == b {
            continue;
        }
        let empty = toml::Value::Table(toml::Table::new());
        let (a, b) = match (a, b) {
            (None, Some(toml::Value::Table(_))) => (Some(&empty), b),
            (Some(toml::Value::Table(_)), None) => (a, Some(&empty)),
            _ => (a, b),
        };
        match (a, b) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) if table != "policy" => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    if a.get(key) != b.get(key) {
                        changed.push(format!("{table}.{key}"));
                    }
                }
            }
            _ => changed.push(table.clone()),
        }
    }
    changed
}

/// Whether a policy writing state format `new` reads the stored states of format `old`: the
/// same format, or a later version of the same family (`quench-default/2` after
/// `quench-default/1`), which the contract obliges to read its earlier versions. Going back to
/// an earlier version, or to another family, cannot read what is stored.
pub fn reads_format(new: &str, old: &str) -> bool {
    if new == old {
        return true;
    }
    let version = |format: &str| {
        let (family, version) = format.rsplit_once('/')?;
        Some((family.to_string(), version.parse::<u64>().ok()?))
    };
    matches!(
        (version(new), version(old)),
        (Some((new_family, new_version)), Some((old_family, old_version)))
            if new_family == old_family && new_version > old_version
    )
}

/// Put `next` in force on `service` if it reads the stored states (see [`reads_format`]), or if
/// `reset_state`.
pub fn swap(service: &Service, next: Sandbox, reset_state: bool) -> Result<Swapped> {
    let running = service.policy();
    let (old, new) = (running.sandbox.state_format(), next.state_format());
    let formats_differ = !reads_format(new, old);
    if formats_differ {
        if !reset_state {
            bail!(
                "the new policy writes state format `{new}` but the running one wrote `{old}`: \
                 the new policy could not read the stored state, so the swap is refused; reload \
                 with reset_state to start every entity afresh (their restrictions are lost)"
            );
        }
        service
            .store()
            .clear_states()
            .context("resetting state for the new policy")?;
    }
    let swapped = Swapped {
        previous: running.sandbox.component_hash().to_string(),
        current: next.component_hash().to_string(),
        contract: next.contract_version(),
        state_format: new.to_string(),
        reset_state: formats_differ,
        settings: Vec::new(),
    };
    service.replace_policy(next);
    tracing::info!(previous = %swapped.previous, current = %swapped.current, contract = %swapped.contract, state_format = %swapped.state_format, reset = swapped.reset_state, "policy reloaded");
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn later_versions_of_a_format_family_read_earlier_ones_only() {
        assert!(reads_format("quench-default/2", "quench-default/1"));
        assert!(reads_format("quench-default/2", "quench-default/2"));
        assert!(reads_format("quench-default/10", "quench-default/9"));
        assert!(!reads_format("quench-default/1", "quench-default/2"));
        assert!(!reads_format("strict-ratio/2", "quench-default/1"));
        assert!(!reads_format("quench-default/x", "quench-default/1"));
        assert!(!reads_format("custom", "quench-default/1"));
        assert!(reads_format("custom", "custom"));
    }

    #[test]
    fn restart_keys_are_refused_by_name_and_live_keys_pass() {
        let running = table("[serve]\nidle_timeout_secs = 300\n");
        let none = ServeOverrides::default();
        let live = table(
            "[serve]\nidle_timeout_secs = 60\nwrite_timeout_secs = 3\n[admin]\nheader_timeout_secs = 1\n[alerts]\ndaily_limit = 5\n",
        );
        needs_no_restart(&running, &live, &none).unwrap();
        for (text, key) in [
            ("[serve]\nmax_connections = 10\n", "serve.max_connections"),
            ("[serve]\nlisten = \"127.0.0.1:1\"\n", "serve.listen"),
            ("[store]\nbackend = \"redis\"\n", "store.backend"),
            ("[admin]\nmax_connections = 2\n", "admin.max_connections"),
            (
                "[metrics]\nmax_connections = 2\n",
                "metrics.max_connections",
            ),
        ] {
            let error = needs_no_restart(&running, &table(text), &none).unwrap_err();
            let error = format!("{error:#}");
            assert!(
                error.contains(key) && error.contains("needs a restart"),
                "{error}"
            );
        }
        // Written out at its default value: no change. Given on the command line: not the
        // file's to change.
        needs_no_restart(&running, &table("[serve]\nmax_connections = 1024\n"), &none).unwrap();
        let flag = ServeOverrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..ServeOverrides::default()
        };
        needs_no_restart(
            &running,
            &table("[serve]\nlisten = \"127.0.0.1:1\"\n"),
            &flag,
        )
        .unwrap();
    }

    #[test]
    fn changed_keys_name_table_and_key() {
        let running = table("[serve]\nidle_timeout_secs = 300\n[policy]\na = 1\n");
        let next =
            table("[serve]\nidle_timeout_secs = 60\n[policy]\na = 2\n[alerts]\ndaily_limit = 5\n");
        assert_eq!(
            changed_keys(&running, &next),
            ["alerts.daily_limit", "policy", "serve.idle_timeout_secs"]
        );
    }
}
