//! quench's configuration file (TOML). The `[policy]` table is not interpreted here: it is
//! handed to the policy component as text, which validates it (so a swapped-in policy brings
//! its own settings). Every other table belongs to the host.

use crate::sandbox::{FailAction, SandboxLimits};
use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use quench_store::RedisOptions;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuenchConfig {
    /// Settings for the policy component, passed through as TOML text.
    pub policy: toml::Table,
    /// Sandbox limits and the fail action.
    pub sandbox: SandboxLimits,
    /// `quench serve`: listeners, data directory, connection limits.
    pub serve: ServeConfig,
    /// The admin API: tokens and their roles.
    pub admin: crate::admin::AdminConfig,
    /// Alert delivery: which alerts go where, and daily notification limits.
    pub alerts: crate::alerts::AlertsConfig,
    /// Where state lives: the embedded store, or a Redis shared by a fleet of hosts.
    pub store: StoreConfig,
    /// The metrics endpoint's connection limits (issue 12).
    pub metrics: MetricsConfig,
    /// The audit log's retention.
    pub audit: AuditConfig,
    /// Non-delivery reports to restricted users.
    pub ndr: crate::ndr::NdrConfig,
}

/// The `[audit]` table. Changes on reload.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Audit records older than this many days are deleted by the retention sweep
    /// (`serve.sweep_interval_secs`); 0 keeps them forever. Default 180: what Microsoft
    /// Purview Audit (Standard) keeps for Exchange admin actions, so an admin finds in quench
    /// what they would find there, while the log stays bounded: restrictions and admin actions
    /// are a few records a day, and refused anonymous requests are sampled (at most one record
    /// per client address per minute), so 180 days is megabytes, not gigabytes.
    pub keep_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { keep_days: 180 }
    }
}

/// Which state store `quench serve` uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreBackend {
    /// A durable file in the data directory (`data_dir/state`): no server to run, exact limits
    /// for one host.
    #[default]
    Embedded,
    /// A Redis server shared by every host of a fleet, so limits hold across all of them.
    Redis,
}

/// The `[store]` table. The Redis keys (`url` to `contention_timeout_ms`) are only accepted
/// with `backend = "redis"`: set on the embedded store they would be silently ignored, and a
/// host that an operator believes shares state with its fleet would count alone.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `"embedded"` (the default: a single host needs no server, and nothing is lost to a
    /// network hop) or `"redis"` (fleet mode).
    pub backend: StoreBackend,
    /// `redis://[user:password@]host:port/db` or `redis+unix:///path`. Default
    /// `redis://127.0.0.1:6379/0`, Redis's own default address, so a Redis beside quench works
    /// with `backend = "redis"` alone.
    pub url: Option<String>,
    /// Prefix of every key quench writes. Default `quench:`; give each deployment sharing one
    /// Redis database its own prefix (every host of one fleet uses the same).
    pub key_prefix: Option<String>,
    /// How long to wait for a connection to Redis, in milliseconds. Default 1000: a local or
    /// same-datacenter Redis connects in well under a millisecond, so a second only passes when
    /// it is down, and a decision should not hold the MTA longer than that.
    pub connect_timeout_ms: Option<u64>,
    /// How long to wait for each Redis reply, in milliseconds. Default 1000, for the same
    /// reason: Redis answers quench's commands in microseconds, so a reply this late means it is
    /// stalled, and `on_unavailable` should answer instead.
    pub io_timeout_ms: Option<u64>,
    /// Idle Redis connections kept for reuse. Default 16: more than the threads a host decides
    /// on at once, so steady traffic never reconnects.
    pub max_idle_connections: Option<usize>,
    /// How long one entity's update keeps retrying while other hosts update the same entity,
    /// in milliseconds, before it counts as unavailable. Default 1000: each retry means another
    /// host's update went through, so this only runs out when one sender is hammered from very
    /// many connections for a whole second.
    pub contention_timeout_ms: Option<u64>,
    /// What a decision becomes when the store cannot write (Redis unreachable or stalled, a
    /// full or failing disk). Known restrictions are refused either way (from memory).
    /// `"open"` decides everyone else from memory (counting in memory, bounded);
    /// `"closed"` defers what the policy would accept with `451 4.7.1`, so clients retry later.
    /// A store error that is no outage (corruption), or Redis down when quench starts, gets
    /// this answer directly: `"open"` accepts, `"closed"` defers. Default `"open"`, like the
    /// sandbox's `fail_action`: a store outage should not stop a whole site's mail. It is
    /// logged, counted (`quench_store_errors_total`) and shown (`quench_store_unavailable`);
    /// choose `"closed"` where no mail may leave unchecked.
    pub on_unavailable: FailAction,
}

impl StoreConfig {
    /// The Redis connection settings, with defaults for the keys not given.
    pub fn redis_options(&self) -> RedisOptions {
        let mut options =
            RedisOptions::new(self.url.as_deref().unwrap_or("redis://127.0.0.1:6379/0"));
        if let Some(prefix) = &self.key_prefix {
            options.key_prefix = prefix.clone();
        }
        if let Some(ms) = self.connect_timeout_ms {
            options.connect_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = self.io_timeout_ms {
            options.io_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = self.max_idle_connections {
            options.max_idle_connections = n;
        }
        if let Some(ms) = self.contention_timeout_ms {
            options.contention_timeout = Duration::from_millis(ms);
        }
        options
    }

    fn validate(&self) -> Result<()> {
        let redis_keys = [
            ("url", self.url.is_some()),
            ("key_prefix", self.key_prefix.is_some()),
            ("connect_timeout_ms", self.connect_timeout_ms.is_some()),
            ("io_timeout_ms", self.io_timeout_ms.is_some()),
            ("max_idle_connections", self.max_idle_connections.is_some()),
            (
                "contention_timeout_ms",
                self.contention_timeout_ms.is_some(),
            ),
        ];
        if self.backend == StoreBackend::Embedded {
            let given: Vec<&str> = redis_keys
                .iter()
                .filter(|(_, set)| *set)
                .map(|(key, _)| *key)
                .collect();
            if !given.is_empty() {
                let verb = if given.len() == 1 { "applies" } else { "apply" };
                bail!(
                    "[store] {} {verb} only to backend = \"redis\", but the backend is \
                     \"embedded\" (the default); add backend = \"redis\" for fleet mode",
                    given.join(", ")
                );
            }
            return Ok(());
        }
        for (key, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("io_timeout_ms", self.io_timeout_ms),
            ("contention_timeout_ms", self.contention_timeout_ms),
        ] {
            if value == Some(0) {
                bail!("[store] {key} must be at least 1 (milliseconds)");
            }
        }
        // Checks the URL's form; connects to nothing.
        quench_store::RedisStore::new(self.redis_options()).context("[store] url")?;
        Ok(())
    }
}

/// Settings of `quench serve`. Every field has a default that works with no config file;
/// command-line flags override them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Where the Postfix policy service listens (`check_policy_service inet:...`). Loopback by
    /// default: the protocol has no authentication.
    pub listen: SocketAddr,
    /// Where durable state lives (embedded store, compiled-code cache).
    pub data_dir: PathBuf,
    /// A policy component to run instead of the embedded default.
    pub policy: Option<PathBuf>,
    /// Admin API listener; `None` disables the admin API.
    pub admin_listen: Option<SocketAddr>,
    /// Prometheus metrics listener (`/metrics`); `None` disables it.
    pub metrics_listen: Option<SocketAddr>,
    /// Most policy connections served at once. Postfix opens one per smtpd process
    /// (default_process_limit = 100); 1024 covers ten such hosts with headroom, while
    /// bounding memory held by idle or hostile clients.
    pub max_connections: usize,
    /// Close a connection idle this long between requests, in seconds. Postfix closes its
    /// side after `smtpd_policy_service_max_idle` = 300 s; 330 s lets Postfix close first.
    pub idle_timeout_secs: u64,
    /// A request started must be complete within this many seconds. Postfix writes a request
    /// in one go; 10 s only cuts off clients trickling bytes to hold a slot.
    pub request_timeout_secs: u64,
    /// On SIGTERM, how long in-flight requests get to finish, in seconds. Postfix's own
    /// policy timeout is 100 s, but a decision takes milliseconds: 10 s is ample.
    pub shutdown_grace_secs: u64,
    /// How often lazy (counter-only) writes are made durable, in milliseconds: the most a
    /// `kill -9` can lose of counters. Restrictions and unblocks are durable at once.
    pub flush_interval_ms: u64,
    /// How often the retention sweep deletes the state of entities the policy calls idle,
    /// in seconds; 0 turns it off. Default 3600: the default policy's states go idle a day
    /// (or an unblock window) after their last use, so an hour late costs little, and an
    /// hourly walk of the store is a small background load. In a fleet every host sweeps the
    /// shared store; that is safe (deletes are compare-and-delete), and hosts beyond the
    /// first may set 0.
    pub sweep_interval_secs: u64,
    /// Keys per page of the retention sweep. Default 256: each page is one store read, one
    /// `idle` call and (for idle states) one delete per key, a few milliseconds, and the sweep
    /// pauses between pages, so decisions never queue behind it.
    pub sweep_page_size: usize,

    // ---- issue 12 (admin/limits): write timeout of policy connections. Keep other [serve]
    // additions outside this block. ----
    /// A policy answer must be written within this many seconds, or the connection is closed.
    /// Postfix reads each answer at once (it is waiting for it), so a write only waits when
    /// the client has stopped reading: such a client would otherwise hold its slot (and its
    /// descriptor) forever, past both read timeouts. Default 10, as `request_timeout_secs`.
    /// Changes on reload.
    pub write_timeout_secs: u64,
    // ---- end of issue 12 block ----
    /// The trust boundary (issue 11): networks whose unauthenticated clients are counted, as
    /// relays, by their envelope sender (in the `relay:` key space, never a SASL user's).
    /// Default `["127.0.0.0/8", "::1/128"]`: applications on the mail host itself (a web
    /// form, cron mail) submit through loopback without logging in. Anything else that did
    /// not authenticate and is no connector of the policy (inbound mail from the internet, a
    /// forged MAIL FROM) is answered DUNNO and never counted. Changes on reload.
    pub trusted_networks: Vec<IpNet>,
    /// The domain a bare SASL login (`alice`) belongs to, so `alice` and `alice@contoso.com`
    /// are one entity. Off by default (a bare login stays a bare entity): only the operator
    /// knows which domain the SASL backend's bare names mean. Changes on reload.
    pub sasl_default_domain: Option<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 10040)),
            data_dir: PathBuf::from("./data"),
            policy: None,
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 10041))),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 10042))),
            max_connections: 1024,
            idle_timeout_secs: 330,
            request_timeout_secs: 10,
            shutdown_grace_secs: 10,
            flush_interval_ms: 1000,
            sweep_interval_secs: 3600,
            sweep_page_size: 256,
            // issue 12 (admin/limits)
            write_timeout_secs: 10,
            trusted_networks: ["127.0.0.0/8", "::1/128"]
                .iter()
                .map(|net| net.parse().expect("a valid network"))
                .collect(),
            sasl_default_domain: None,
        }
    }
}

impl QuenchConfig {
    /// Read and parse a config file; errors name the file and the offending key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in config {}", path.display()))
    }

    /// Parse config text.
    pub fn parse(text: &str) -> Result<Self> {
        let config: QuenchConfig = toml::from_str(text)?;
        config.sandbox.validate()?;
        config.alerts.validate()?;
        config.store.validate()?;
        config.validate_limits()?;
        config.ndr.validate()?;
        config.validate_trust()?;
        Ok(config)
    }

    /// The `[policy]` table as TOML text, for `engine.create`.
    pub fn policy_text(&self) -> String {
        toml::to_string(&self.policy).expect("a TOML table always serialises")
    }
}

// ---- issue 12 (admin/limits): the metrics listener's limits, the descriptor budget, secret
// files. ----

/// The `[metrics]` table: limits of the metrics listener (`serve.metrics_listen`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Most metrics connections open at once; more are closed as soon as they are accepted.
    /// Default 16: Prometheus scrapes one target over one connection, so a few scrapers and a
    /// curl fit, while a flood of connections can hold at most 16 descriptors. Needs a
    /// restart (the descriptor budget is checked at start).
    pub max_connections: usize,
    /// A request's headers must arrive within this many seconds of the connection opening (or
    /// of the previous answer, on a kept-alive connection), or it is closed. Default 10: a
    /// scraper sends its request in one packet; this only cuts off clients that hold a
    /// connection open without finishing a request. Changes on reload.
    pub header_timeout_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            max_connections: 16,
            header_timeout_secs: 10,
        }
    }
}

/// Descriptors `quench serve` needs besides its connections: stdio, the runtime's epoll and
/// wake-up descriptors, the store's files, the compiled-code cache, the alert sinks' HTTP and
/// SMTP connections and the admin API's short-lived work. 64 is several times what a running
/// server holds (about 20, counted in /proc/PID/fd); a Redis store adds its pool on top.
pub const DESCRIPTOR_MARGIN: u64 = 64;

impl QuenchConfig {
    /// The connection limits must be at least 1, and the timeouts too (0 would close every
    /// connection at once, or never time out, depending on the reader).
    /// `[serve] sasl_default_domain` must be a bare domain (it is appended to bare logins, so
    /// a stray `@` or space would make every bare login a different, malformed entity).
    fn validate_trust(&self) -> Result<()> {
        if let Some(domain) = &self.serve.sasl_default_domain {
            let normal = crate::normalize::normalize_domain(domain);
            let probe = format!("x@{normal}");
            if normal.is_empty()
                || normal.contains('@')
                || !normal.contains('.')
                || !crate::normalize::is_plausible(&probe)
            {
                bail!(
                    "serve.sasl_default_domain: `{domain}` is not a domain (expected e.g. \
                     \"contoso.com\")"
                );
            }
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<()> {
        for (key, value) in [
            ("serve.max_connections", self.serve.max_connections as u64),
            ("serve.write_timeout_secs", self.serve.write_timeout_secs),
            ("admin.max_connections", self.admin.max_connections as u64),
            ("admin.header_timeout_secs", self.admin.header_timeout_secs),
            ("admin.body_timeout_secs", self.admin.body_timeout_secs),
            ("admin.max_body_bytes", self.admin.max_body_bytes as u64),
            (
                "admin.anonymous_audit_interval_secs",
                self.admin.anonymous_audit_interval_secs,
            ),
            (
                "admin.anonymous_audit_clients",
                self.admin.anonymous_audit_clients as u64,
            ),
            (
                "admin.anonymous_audit_path_bytes",
                self.admin.anonymous_audit_path_bytes as u64,
            ),
            (
                "metrics.max_connections",
                self.metrics.max_connections as u64,
            ),
            (
                "metrics.header_timeout_secs",
                self.metrics.header_timeout_secs,
            ),
        ] {
            if value == 0 {
                bail!("{key} must be at least 1");
            }
        }
        Ok(())
    }

    /// Descriptors `quench serve` may need at once: every listener's connection limit (for
    /// the listeners that are on), the listeners themselves, a Redis pool, and
    /// [`DESCRIPTOR_MARGIN`].
    pub fn descriptors_needed(&self) -> u64 {
        let mut needed = self.serve.max_connections as u64 + 1 + DESCRIPTOR_MARGIN;
        if self.serve.admin_listen.is_some() {
            needed += self.admin.max_connections as u64 + 1;
        }
        if self.serve.metrics_listen.is_some() {
            needed += self.metrics.max_connections as u64 + 1;
        }
        if self.store.backend == StoreBackend::Redis {
            needed += self.store.redis_options().max_idle_connections as u64;
        }
        needed
    }

    /// Check the connection limits against the process's open-file limit (`RLIMIT_NOFILE`).
    /// A soft limit below what is needed is raised, up to the hard limit; when even the hard
    /// limit is too low, the error names the limits and the knobs to lower. Without this, a
    /// flood on one listener ends in `accept failed ... os error 24` on all of them.
    pub fn check_descriptor_budget(&self) -> Result<()> {
        let needed = self.descriptors_needed();
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        // `None` is RLIM_INFINITY.
        let (soft, hard) = (
            limit.current.unwrap_or(u64::MAX),
            limit.maximum.unwrap_or(u64::MAX),
        );
        if needed <= soft {
            return Ok(());
        }
        if needed <= hard {
            let raised = rustix::process::Rlimit {
                current: Some(needed),
                maximum: limit.maximum,
            };
            rustix::process::setrlimit(rustix::process::Resource::Nofile, raised).context(
                "raising the open-file limit (RLIMIT_NOFILE) to what the listeners need",
            )?;
            tracing::info!(from = soft, to = needed, "raised the open-file soft limit");
            return Ok(());
        }
        bail!(
            "the open-file limit (RLIMIT_NOFILE) is {hard}, but the connection limits need up to \
             {needed} descriptors: serve.max_connections = {}, admin.max_connections = {}, \
             metrics.max_connections = {}, plus {DESCRIPTOR_MARGIN} for the store, alerts and \
             runtime. Raise the limit (LimitNOFILE= in the systemd unit, `ulimit -n`) or lower \
             serve.max_connections",
            self.serve.max_connections,
            self.admin.max_connections,
            self.metrics.max_connections,
        )
    }

    /// Refuse secret files (`alerts.webhook.secret_file`, `alerts.email.password_file`) that
    /// other users may read: a secret readable by the group or the world is no secret, and
    /// starting with it would hide the mistake. Checked at start and on every reload.
    pub fn check_secret_files(&self) -> Result<()> {
        let webhook = self
            .alerts
            .webhook
            .as_ref()
            .and_then(|w| w.secret_file.as_ref());
        let email = self
            .alerts
            .email
            .as_ref()
            .and_then(|e| e.password_file.as_ref());
        for (key, file) in [
            ("alerts.webhook.secret_file", webhook),
            ("alerts.email.password_file", email),
            ("admin.tls_key", self.admin.tls_key.as_ref()),
        ] {
            if let Some(file) = file {
                check_secret_file(key, file)?;
            }
        }
        Ok(())
    }
}

/// `file` (named by config key `key`) must grant no permission to its group or to others
/// (mode & 0o077 == 0, as `chmod 600` or `400` leaves it).
pub fn check_secret_file(key: &str, file: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file)
        .with_context(|| format!("{key}: reading {}", file.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{key}: {} is readable or writable by other users (mode {:o}); a secret file must \
             be private to quench's user: chmod 600 {}",
            file.display(),
            mode & 0o7777,
            file.display()
        );
    }
    Ok(())
}
// ---- end of issue 12 block ----

#[cfg(test)]
mod tests {
    #[test]
    fn trust_keys_name_themselves_when_wrong() {
        for (text, key) in [
            (
                "[serve]\nsasl_default_domain = \"con toso.com\"\n",
                "serve.sasl_default_domain",
            ),
            (
                "[serve]\nsasl_default_domain = \"a@contoso.com\"\n",
                "serve.sasl_default_domain",
            ),
            (
                "[serve]\nsasl_default_domain = \"\"\n",
                "serve.sasl_default_domain",
            ),
            (
                "[serve]\ntrusted_networks = [\"10.0.0.0/33\"]\n",
                "trusted_networks",
            ),
            (
                "[serve]\ntrusted_networks = [\"not a network\"]\n",
                "trusted_networks",
            ),
        ] {
            let error = format!("{:#}", super::QuenchConfig::parse(text).unwrap_err());
            assert!(error.contains(key), "{text}: {error}");
        }
        let ok = super::QuenchConfig::parse(
            "[serve]\nsasl_default_domain = \"Contoso.COM.\"\ntrusted_networks = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n",
        )
        .unwrap();
        assert_eq!(ok.serve.trusted_networks.len(), 2);
    }

    use super::*;

    #[test]
    fn the_store_defaults_to_embedded_and_fails_open() {
        let config = QuenchConfig::parse("").unwrap();
        assert_eq!(config.store.backend, StoreBackend::Embedded);
        assert_eq!(config.store.on_unavailable, FailAction::Open);
    }

    #[test]
    fn a_redis_store_maps_every_knob() {
        let config = QuenchConfig::parse(
            r#"
[store]
backend = "redis"
url = "redis://10.0.0.5:6380/2"
key_prefix = "mx:"
connect_timeout_ms = 250
io_timeout_ms = 300
max_idle_connections = 4
contention_timeout_ms = 5000
on_unavailable = "closed"
"#,
        )
        .unwrap();
        let store = &config.store;
        assert_eq!(store.backend, StoreBackend::Redis);
        assert_eq!(store.on_unavailable, FailAction::Closed);
        let options = store.redis_options();
        assert_eq!(options.url, "redis://10.0.0.5:6380/2");
        assert_eq!(options.key_prefix, "mx:");
        assert_eq!(options.connect_timeout, Duration::from_millis(250));
        assert_eq!(options.io_timeout, Duration::from_millis(300));
        assert_eq!(options.max_idle_connections, 4);
        assert_eq!(options.contention_timeout, Duration::from_millis(5000));

        let defaults = QuenchConfig::parse("[store]\nbackend = \"redis\"\n")
            .unwrap()
            .store
            .redis_options();
        assert_eq!(defaults, RedisOptions::new("redis://127.0.0.1:6379/0"));
    }

    #[test]
    fn mistakes_in_the_store_table_are_errors() {
        for (text, expected) in [
            (
                "[store]\nbackend = \"redis\"\nurll = \"x\"\n",
                "unknown field `urll`",
            ),
            (
                "[store]\nbackend = \"memcached\"\n",
                "unknown variant `memcached`",
            ),
            (
                "[store]\non_unavailable = \"maybe\"\n",
                "unknown variant `maybe`",
            ),
            (
                "[store]\nurl = \"redis://127.0.0.1/0\"\n",
                "url applies only to backend = \"redis\"",
            ),
            (
                "[store]\nbackend = \"redis\"\nio_timeout_ms = 0\n",
                "io_timeout_ms must be at least 1",
            ),
            (
                "[store]\nbackend = \"redis\"\nurl = \"http://127.0.0.1\"\n",
                "invalid Redis URL",
            ),
        ] {
            let error = format!("{:#}", QuenchConfig::parse(text).unwrap_err());
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn limits_must_be_at_least_one_and_fit_the_descriptor_budget() {
        let error = format!(
            "{:#}",
            QuenchConfig::parse("[admin]\nmax_connections = 0\n").unwrap_err()
        );
        assert!(
            error.contains("admin.max_connections must be at least 1"),
            "{error}"
        );
        let defaults = QuenchConfig::parse("").unwrap();
        assert_eq!(
            defaults.descriptors_needed(),
            1024 + 1 + 64 + 1 + 16 + 1 + DESCRIPTOR_MARGIN
        );
        let small =
            QuenchConfig::parse("[serve]\nmax_connections = 100\nadmin_listen = \"127.0.0.1:1\"\n")
                .unwrap();
        assert_eq!(
            small.descriptors_needed(),
            100 + 1 + 64 + 1 + 16 + 1 + DESCRIPTOR_MARGIN
        );
    }

    #[test]
    fn secret_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "x").unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o640, false),
            (0o604, false),
            (0o660, false),
        ] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let checked = check_secret_file("alerts.webhook.secret_file", &file);
            assert_eq!(checked.is_ok(), ok, "mode {mode:o}: {checked:?}");
        }
        let error = format!("{:#}", check_secret_file("k", &file).unwrap_err());
        assert!(error.contains("chmod 600"), "{error}");
    }
}
