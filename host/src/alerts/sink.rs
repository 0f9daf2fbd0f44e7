//! What the notification sinks (webhook, email) share: the notification they carry, how they
//! report failure, and the worker that feeds one sink from its own queue and retries with
//! backoff. Each sink has its own worker, so a dead webhook never delays email.

use super::config::RetryConfig;
use super::stats::{SinkCounters, bump};
use crate::bindings::{Alert, EntityKind, Severity};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// One alert to notify about, with the settings of its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The alert as the policy raised it.
    pub alert: Alert,
    /// Its kind's id (`user_restricted`), or its name when no rule names it.
    pub kind: String,
    /// Email recipients for this kind (may be empty: webhook only).
    pub recipients: Vec<String>,
}

/// Why a delivery attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth retrying: connection refused, timeout, a 5xx or an SMTP 4xx.
    Transient(anyhow::Error),
    /// Retrying cannot help: a 4xx from the webhook, an SMTP 5xx, a message that cannot be
    /// built.
    Permanent(anyhow::Error),
}

/// A notification sink.
pub(crate) trait Sink: Send + Sync + 'static {
    /// The sink's name in logs (`webhook`, `email`).
    const NAME: &'static str;

    /// Whether this notification is for this sink at all (email: it has recipients).
    fn wants(notification: &Notification) -> bool;

    /// One delivery attempt.
    fn deliver(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// What a sink's queue carries.
pub(crate) enum Job {
    Deliver(Arc<Notification>),
    /// Answered once every job queued before it is done.
    Flush(oneshot::Sender<()>),
}

/// Feeds `sink` from `jobs` until the queue closes.
pub(crate) async fn run<S: Sink>(
    sink: S,
    retry: RetryConfig,
    mut jobs: mpsc::Receiver<Job>,
    counters: Arc<SinkCounters>,
) {
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Deliver(notification) => {
                deliver_with_retry(&sink, &notification, retry, &counters).await
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

async fn deliver_with_retry<S: Sink>(
    sink: &S,
    notification: &Notification,
    retry: RetryConfig,
    counters: &SinkCounters,
) {
    let alert = &notification.alert;
    let entity = alert.entity.key();
    let mut retries = 0;
    loop {
        match sink.deliver(notification).await {
            Ok(()) => {
                bump(&counters.delivered);
                tracing::debug!(sink = S::NAME, kind = %notification.kind, entity = %entity, "alert notification delivered");
                return;
            }
            Err(Failure::Transient(error)) if retries < retry.retries => {
                retries += 1;
                bump(&counters.retries);
                let wait = retry.backoff(retries);
                tracing::warn!(
                    sink = S::NAME, kind = %notification.kind, entity = %entity,
                    error = %format!("{error:#}"), retry = retries, of = retry.retries,
                    wait_ms = wait.as_millis() as u64,
                    "alert notification failed; retrying"
                );
                tokio::time::sleep(wait).await;
            }
            Err(Failure::Transient(error)) => {
                bump(&counters.failed);
                tracing::error!(
                    sink = S::NAME, kind = %notification.kind, entity = %entity,
                    alert = %alert.name, error = %format!("{error:#}"), attempts = retries + 1,
                    "alert notification failed; giving up"
                );
                return;
            }
            Err(Failure::Permanent(error)) => {
                bump(&counters.failed);
                tracing::error!(
                    sink = S::NAME, kind = %notification.kind, entity = %entity,
                    alert = %alert.name, error = %format!("{error:#}"),
                    "alert notification refused; not retried"
                );
                return;
            }
        }
    }
}

/// An error with its sources, `: `-joined: lettre's and reqwest's errors keep the useful part
/// (connection refused, the server's reply, a timeout) in their sources.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `High`, `Medium`, ...: the spelling admins see.
pub fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Informational => "Informational",
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
    }
}

/// `user`, `connector` or `relay` ([`EntityKind::name`]).
pub fn entity_kind_name(kind: EntityKind) -> &'static str {
    kind.name()
}
