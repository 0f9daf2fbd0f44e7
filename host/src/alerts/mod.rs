//! Alert delivery (issue 5): the alerts the policy raises in its decisions ("User restricted
//! from sending email", "Email sending limit exceeded", ...) go to the log, a webhook and
//! email, each kind on or off with its own recipients and daily notification limit.
//!
//! [`AlertDispatcher::start`] spawns the delivery tasks on a tokio runtime;
//! [`AlertDispatcher::submit`] hands it an alert from any thread without ever waiting, so
//! delivery never slows a decision. The `[alerts]` config table is [`AlertsConfig`]; the
//! operator's guide is `docs/alerts.md`.
//!
//! One module per job: [`config`] (the table and its validation), [`dispatcher`] (queues,
//! the log sink, shutdown), [`limit`] (the daily notification limit), [`webhook`] and
//! [`email`] (the sinks), `sink` (what they share: the retry loop), [`stats`] (counters).

pub mod config;
pub mod dispatcher;
pub mod email;
pub mod limit;
pub mod operational;
pub mod policies;
mod sink;
pub mod stats;
pub mod webhook;

pub use config::{
    AlertsConfig, EmailConfig, RetryConfig, Rule, RuleConfig, SmtpTls, WebhookConfig,
};
pub use dispatcher::AlertDispatcher;
pub use policies::{AlertPolicies, PolicyChange, PolicyView};
pub use sink::{Notification, entity_kind_name, severity_name};
pub use stats::{AlertStats, SinkStats};
