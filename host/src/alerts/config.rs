//! The `[alerts]` table: which alert kinds notify whom, how many notifications a day, and
//! the sinks (webhook, email) that carry them. Every knob has a default that works with no
//! config at all: every alert is logged, nothing is sent anywhere.

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// The built-in alert kinds: the short id used in `[alerts.rules.ID]`, and the alert name the
/// default policy raises (EOP's alert policy names, plus quench's own `state_unreadable`).
pub const BUILT_IN_KINDS: [(&str, &str); 4] = [
    ("user_restricted", "User restricted from sending email"),
    ("limit_exceeded", "Email sending limit exceeded"),
    ("connector_suspicious", "Suspicious connector activity"),
    ("state_unreadable", "Policy state unreadable"),
];

/// The `[alerts]` table.
///
/// ```toml
/// [alerts]
/// tenant_admins = ["secops@contoso.com"] # who gets alert email, unless a rule says otherwise
/// daily_limit = 0                        # notifications per alert kind per UTC day (0: no limit)
///
/// [alerts.rules.limit_exceeded]          # one table per alert kind, all optional
/// enabled = false
///
/// [alerts.webhook]
/// url = "https://hooks.example.com/quench"
///
/// [alerts.email]
/// from = "quench@contoso.com"            # relay defaults to 127.0.0.1:25, no TLS
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// The tenant admins: who receives alert email for every kind that does not set its own
    /// `recipients`, like EOP's TenantAdmins. Empty by default: quench cannot guess an admin's
    /// address (with no recipient at all, `quench serve` warns at start and the alert
    /// policies say so).
    pub tenant_admins: Vec<String>,
    /// The old name of `tenant_admins`, still read (set one or the other).
    pub recipients: Vec<String>,
    /// Notifications (webhook calls and emails) per alert kind per UTC day, counted by the
    /// alert's own time; past it, alerts of that kind are only logged until the next UTC day.
    /// `0` means no limit, the default, as EOP's alert policies have it ("daily notification
    /// limit: No limit"); set a number per kind (`[alerts.rules.ID] daily_limit`) or through
    /// the alert-policy API to keep an outbreak from flooding a mailbox.
    pub daily_limit: u32,
    /// Alerts waiting for delivery, per queue (the dispatcher's and each sink's). When a queue
    /// is full, new alerts are dropped (logged and counted) rather than wait: a decision never
    /// waits on alert delivery. Default 1024: an outbreak restricting hundreds of users at once
    /// still fits, and the memory held stays around a megabyte.
    pub queue_capacity: usize,
    /// Per alert kind, keyed by a short id: the built-in `user_restricted`, `limit_exceeded`,
    /// `connector_suspicious` and `state_unreadable`, or an id of your choice with `name` set
    /// to the exact alert name a custom policy raises. A kind with no table uses the defaults
    /// above; an alert whose name matches no rule is treated the same way, under its name.
    pub rules: BTreeMap<String, RuleConfig>,
    /// POST each notification as JSON to a URL. Off unless the table is present.
    pub webhook: Option<WebhookConfig>,
    /// Send each notification as an email through an SMTP relay. Off unless the table is
    /// present.
    pub email: Option<EmailConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            tenant_admins: Vec::new(),
            recipients: Vec::new(),
            daily_limit: 0,
            queue_capacity: 1024,
            rules: BTreeMap::new(),
            webhook: None,
            email: None,
        }
    }
}

/// `[alerts.rules.ID]`: the settings of one alert kind. Unset fields fall back to the
/// `[alerts]` defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    /// The alert name this rule matches. Implied for the built-in ids; required for any other
    /// id (a custom policy's alert), and must then be unique.
    pub name: Option<String>,
    /// Notify at all. Default `true`, as EOP's default alert policies are on. A disabled kind
    /// is still logged (the log is the record), just never sent.
    pub enabled: bool,
    /// Email recipients of this kind, replacing `[alerts] tenant_admins` (an empty list sends
    /// this kind to the webhook only). Default: the `[alerts]` list.
    pub recipients: Option<Vec<String>>,
    /// This kind's daily notification limit (`0` = no limit). Default: `[alerts] daily_limit`.
    pub daily_limit: Option<u32>,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            name: None,
            enabled: true,
            recipients: None,
            daily_limit: None,
        }
    }
}

/// Retrying a failed delivery: the `retries` and `retry_backoff_ms` keys of each sink's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts after the first failure of a notification.
    pub retries: u32,
    /// Wait before the first retry, in milliseconds, doubled for each next one (capped at a
    /// minute).
    pub retry_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            retries: default_retries(),
            retry_backoff_ms: default_backoff(),
        }
    }
}

/// Default 3: rides out a receiver restart or a relay's brief 4xx, while a dead sink costs
/// each alert four attempts at most.
fn default_retries() -> u32 {
    3
}

/// Default 1000 ms: 1 s, 2 s, 4 s spans a typical service restart.
fn default_backoff() -> u64 {
    1000
}

impl RetryConfig {
    /// The wait before retry number `retry` (1-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u64 << retry.saturating_sub(1).min(16);
        Duration::from_millis(self.retry_backoff_ms.saturating_mul(factor).min(60_000))
    }

    fn validate(&self, table: &str) -> Result<()> {
        if self.retries > 10 {
            bail!(
                "{table}.retries: {} is too many (at most 10); a sink that fails ten times in \
                 a row is down, and retrying longer only holds up the alerts behind",
                self.retries
            );
        }
        if self.retry_backoff_ms > 60_000 {
            bail!(
                "{table}.retry_backoff_ms: {} is more than a minute (60000)",
                self.retry_backoff_ms
            );
        }
        Ok(())
    }
}

/// `[alerts.webhook]`: an HTTP POST of one JSON object per notification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST (`http://` or `https://`; HTTPS verified against the system's trust
    /// store). Required. A 2xx answer is success; 3xx and 4xx (other than 408 and 429) are
    /// permanent failures; anything else is retried.
    pub url: String,
    /// Bound on one request, connect to last byte, in seconds. Default 10: a webhook receiver
    /// answers in well under a second, and a hung one must not hold the queue for long.
    #[serde(default = "default_webhook_timeout")]
    pub timeout_secs: u64,
    /// Attempts after the first failure of a notification. Default 3: rides out a receiver
    /// restart or a brief outage, while a dead sink costs each alert four attempts at most.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Wait before the first retry, in milliseconds, doubled for each next one (capped at a
    /// minute). Default 1000: 1 s, 2 s, 4 s spans a typical service restart.
    #[serde(default = "default_backoff")]
    pub retry_backoff_ms: u64,
    /// A file holding the secret that signs every call (trailing newline ignored), so the
    /// receiver can tell quench's alerts from forgeries; the config file holds no secret. When
    /// set, each POST carries `X-Quench-Timestamp` (Unix seconds at sending) and
    /// `X-Quench-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`. Default: unsigned.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

fn default_webhook_timeout() -> u64 {
    10
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP: right for the default relay, the local MTA on 127.0.0.1.
    #[default]
    None,
    /// Upgrade with STARTTLS and refuse to send if the relay does not offer it (port 587).
    Starttls,
    /// TLS from the first byte, "submissions" (port 465).
    Implicit,
}

/// `[alerts.email]`: one email per notification, to the kind's recipients, through a relay.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The relay's host name or IP. Default `127.0.0.1`: quench runs next to an MTA, which
    /// queues and retries far better than quench could.
    #[serde(default = "default_relay")]
    pub relay: String,
    /// The relay's port. Default 25, the local MTA's smtpd.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The envelope sender and `From:`. Required: an alert must come from an address the
    /// admins' mail system accepts (and that quench's own policy should not restrict).
    pub from: String,
    /// `none` (default: plain SMTP to the local MTA), `starttls`, or `implicit`.
    #[serde(default)]
    pub tls: SmtpTls,
    /// Log in as this user (AUTH PLAIN/LOGIN). Off by default: the local MTA trusts
    /// 127.0.0.1. Needs `password_file` and a `tls` other than `none`.
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the password (trailing newline ignored), so the config file holds no
    /// secret. Read once at start.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Bound on each SMTP command, in seconds. Default 30: generous for a relay on the same
    /// host or LAN, short enough that a wedged relay gives up within a retry or two.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
    /// Attempts after the first failure of a notification. Default 3: rides out a receiver
    /// restart or a brief outage, while a dead sink costs each alert four attempts at most.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Wait before the first retry, in milliseconds, doubled for each next one (capped at a
    /// minute). Default 1000: 1 s, 2 s, 4 s spans a typical service restart.
    #[serde(default = "default_backoff")]
    pub retry_backoff_ms: u64,
}

fn default_relay() -> String {
    "127.0.0.1".into()
}

fn default_port() -> u16 {
    25
}

fn default_smtp_timeout() -> u64 {
    30
}

/// One alert kind's settings with every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The short id (`user_restricted`), or for an alert no rule names, the alert's name.
    pub kind: String,
    /// Notify at all.
    pub enabled: bool,
    /// Email recipients (validated addresses).
    pub recipients: Vec<String>,
    /// Notifications per UTC day; `None` for no limit.
    pub daily_limit: Option<u32>,
}

impl AlertsConfig {
    /// The tenant admins: `tenant_admins`, or its old name `recipients`.
    pub fn tenant_admins(&self) -> &[String] {
        if self.tenant_admins.is_empty() {
            &self.recipients
        } else {
            &self.tenant_admins
        }
    }

    /// Checks every value; an error names the offending key (`alerts.email.from: ...`).
    pub fn validate(&self) -> Result<()> {
        if self.queue_capacity == 0 || self.queue_capacity > 1_000_000 {
            bail!(
                "alerts.queue_capacity: {} is out of range (1 to 1000000)",
                self.queue_capacity
            );
        }
        validate_recipients("alerts.tenant_admins", &self.tenant_admins)?;
        validate_recipients("alerts.recipients", &self.recipients)?;
        if !self.tenant_admins.is_empty() && !self.recipients.is_empty() {
            bail!(
                "alerts.recipients: is the old name of alerts.tenant_admins; set one of them, \
                 not both"
            );
        }
        let admins_key = if self.recipients.is_empty() {
            "alerts.tenant_admins"
        } else {
            "alerts.recipients"
        };
        let mut names = BTreeSet::new();
        for (id, rule) in &self.rules {
            let key = format!("alerts.rules.{id}");
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                bail!("{key}: a rule id is lowercase letters, digits and `_`");
            }
            let name = match (built_in_name(id), &rule.name) {
                (Some(_), Some(_)) => bail!(
                    "{key}.name: `{id}` is a built-in alert kind, its name is fixed; give a \
                     custom policy's alert its own id"
                ),
                (Some(name), None) => name.to_string(),
                (None, Some(name)) if name.trim().is_empty() => {
                    bail!("{key}.name: must not be empty")
                }
                (None, Some(name)) => {
                    if let Some((builtin, _)) = BUILT_IN_KINDS.iter().find(|(_, n)| n == name) {
                        bail!(
                            "{key}.name: `{name}` is the built-in kind `{builtin}`; configure it under [alerts.rules.{builtin}]"
                        );
                    }
                    name.clone()
                }
                (None, None) => bail!(
                    "{key}: `{id}` is not a built-in alert kind ({}); a rule for a custom \
                     policy's alert needs `name`, the alert's exact name",
                    BUILT_IN_KINDS.map(|(id, _)| id).join(", ")
                ),
            };
            if !names.insert(name.clone()) {
                bail!("{key}.name: another rule already matches `{name}`");
            }
            if let Some(recipients) = &rule.recipients {
                validate_recipients(&format!("{key}.recipients"), recipients)?;
            }
        }
        if let Some(webhook) = &self.webhook {
            webhook.validate()?;
        }
        let anyone = !self.tenant_admins().is_empty()
            || self
                .rules
                .values()
                .any(|rule| rule.recipients.as_ref().is_some_and(|r| !r.is_empty()));
        match &self.email {
            Some(email) => {
                email.validate()?;
                if !anyone {
                    bail!(
                        "{admins_key}: [alerts.email] is set but no alert has a recipient; \
                         set alerts.tenant_admins or alerts.rules.ID.recipients"
                    );
                }
            }
            None if anyone => bail!(
                "{admins_key}: recipients are set but there is no [alerts.email] table \
                 to send through"
            ),
            None => {}
        }
        Ok(())
    }

    /// The settings for an alert called `name`, defaults applied. Alerts no rule names are
    /// their own kind (keyed by the name) with the `[alerts]` defaults.
    pub fn rule_for(&self, name: &str) -> Rule {
        let found = self
            .rules
            .iter()
            .find(|(id, rule)| rule.name.as_deref().or_else(|| built_in_name(id)) == Some(name));
        let (kind, rule) = match found {
            Some((id, rule)) => (id.clone(), Some(rule)),
            None => (
                built_in_id(name).map_or_else(|| name.to_string(), str::to_string),
                None,
            ),
        };
        let limit = rule.and_then(|r| r.daily_limit).unwrap_or(self.daily_limit);
        Rule {
            kind,
            enabled: rule.is_none_or(|r| r.enabled),
            recipients: rule
                .and_then(|r| r.recipients.clone())
                .unwrap_or_else(|| self.tenant_admins().to_vec()),
            daily_limit: (limit > 0).then_some(limit),
        }
    }
}

impl WebhookConfig {
    /// A webhook to `url` with the default timeout and retries.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            timeout_secs: default_webhook_timeout(),
            retries: default_retries(),
            retry_backoff_ms: default_backoff(),
            secret_file: None,
        }
    }

    fn validate(&self) -> Result<()> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| anyhow!("alerts.webhook.url: `{}` is not a URL: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            bail!(
                "alerts.webhook.url: `{}` must be an http:// or https:// URL with a host",
                self.url
            );
        }
        if !(1..=300).contains(&self.timeout_secs) {
            bail!(
                "alerts.webhook.timeout_secs: {} is out of range (1 to 300)",
                self.timeout_secs
            );
        }
        self.retry().validate("alerts.webhook")
    }

    /// The retry settings.
    pub fn retry(&self) -> RetryConfig {
        RetryConfig {
            retries: self.retries,
            retry_backoff_ms: self.retry_backoff_ms,
        }
    }
}

impl EmailConfig {
    /// Email from `from` through the default relay (127.0.0.1:25, plain SMTP).
    pub fn new(from: impl Into<String>) -> Self {
        EmailConfig {
            relay: default_relay(),
            port: default_port(),
            from: from.into(),
            tls: SmtpTls::None,
            username: None,
            password_file: None,
            timeout_secs: default_smtp_timeout(),
            retries: default_retries(),
            retry_backoff_ms: default_backoff(),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.relay.trim().is_empty() || self.relay.contains(char::is_whitespace) {
            bail!("alerts.email.relay: `{}` is not a host name", self.relay);
        }
        if self.port == 0 {
            bail!("alerts.email.port: 0 is not a port");
        }
        if let Err(e) = self.from.parse::<lettre::Address>() {
            bail!(
                "alerts.email.from: `{}` is not an email address ({e})",
                self.from
            );
        }
        if !(1..=300).contains(&self.timeout_secs) {
            bail!(
                "alerts.email.timeout_secs: {} is out of range (1 to 300)",
                self.timeout_secs
            );
        }
        match (&self.username, &self.password_file) {
            (Some(_), None) => {
                bail!("alerts.email.password_file: `username` is set, so a password file is needed")
            }
            (None, Some(_)) => {
                bail!("alerts.email.username: `password_file` is set, so a user name is needed")
            }
            (Some(_), Some(_)) if self.tls == SmtpTls::None => bail!(
                "alerts.email.tls: credentials need tls = \"starttls\" or \"implicit\"; with \
                 \"none\" the password would cross the network in clear"
            ),
            _ => {}
        }
        self.retry().validate("alerts.email")
    }

    /// The retry settings.
    pub fn retry(&self) -> RetryConfig {
        RetryConfig {
            retries: self.retries,
            retry_backoff_ms: self.retry_backoff_ms,
        }
    }
}

fn validate_recipients(key: &str, recipients: &[String]) -> Result<()> {
    for (i, recipient) in recipients.iter().enumerate() {
        if let Err(e) = recipient.parse::<lettre::Address>() {
            bail!("{key}[{i}]: `{recipient}` is not an email address ({e})");
        }
    }
    Ok(())
}

/// The alert name of a built-in kind id.
pub fn built_in_name(id: &str) -> Option<&'static str> {
    BUILT_IN_KINDS
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, name)| *name)
}

/// The built-in kind id of an alert name.
pub fn built_in_id(name: &str) -> Option<&'static str> {
    BUILT_IN_KINDS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AlertsConfig> {
        let config: AlertsConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn no_config_is_valid_and_logs_only() {
        let config = parse("").unwrap();
        assert!(config.webhook.is_none() && config.email.is_none());
        let rule = config.rule_for("User restricted from sending email");
        assert_eq!(rule.kind, "user_restricted");
        assert!(rule.enabled);
        assert_eq!(rule.daily_limit, None);
    }

    #[test]
    fn rules_override_defaults_and_custom_names_work() {
        let config = parse(
            r#"
            recipients = ["a@contoso.com"]
            daily_limit = 5
            [rules.limit_exceeded]
            enabled = false
            [rules.user_restricted]
            recipients = []
            daily_limit = 0
            [rules.mine]
            name = "My alert"
            recipients = ["b@contoso.com"]
            [email]
            from = "quench@contoso.com"
            "#,
        )
        .unwrap();
        assert!(!config.rule_for("Email sending limit exceeded").enabled);
        let restricted = config.rule_for("User restricted from sending email");
        assert_eq!(restricted.daily_limit, None);
        assert!(restricted.recipients.is_empty());
        let mine = config.rule_for("My alert");
        assert_eq!(mine.kind, "mine");
        assert_eq!(mine.recipients, ["b@contoso.com"]);
        let other = config.rule_for("Something else");
        assert_eq!(other.kind, "Something else");
        assert_eq!(other.daily_limit, Some(5));
        assert_eq!(
            config.rule_for("Policy state unreadable").recipients,
            ["a@contoso.com"]
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let retry = RetryConfig {
            retries: 3,
            retry_backoff_ms: 1000,
        };
        assert_eq!(retry.backoff(1), Duration::from_secs(1));
        assert_eq!(retry.backoff(3), Duration::from_secs(4));
        assert_eq!(retry.backoff(30), Duration::from_secs(60));
    }
}
