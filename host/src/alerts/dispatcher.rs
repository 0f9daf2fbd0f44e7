//! The alert dispatcher: takes alerts from decisions without ever waiting, and delivers them
//! in the background.
//!
//! ```text
//! submit (any thread, try_send) ──> [queue] ──> dispatcher task: log every alert,
//!                                                  rule on/off, daily limit
//!                                                  ├─ try_send ─> [queue] ─> webhook worker
//!                                                  └─ try_send ─> [queue] ─> email worker
//! ```
//! Every queue is bounded (`alerts.queue_capacity`); a full queue drops the alert (logged and
//! counted) instead of waiting, so a dead sink costs alerts, never decisions. Each sink's worker
//! retries with backoff on its own, so one dead sink does not delay the other.

use super::config::{AlertsConfig, RetryConfig};
use super::email::EmailSink;
use super::limit::{Admission, DailyLimiter};
use super::policies::AlertPolicies;
use super::sink::{self, Job, Notification, Sink, severity_name};
use super::stats::{AlertStats, Counters, SinkCounters, bump};
use super::webhook::WebhookSink;
use crate::bindings::{Alert, Severity};
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Delivers the alerts the policy raises to the log, a webhook and email. Share it (it is
/// `Send + Sync`; wrap it in an `Arc`) and call [`submit`](Self::submit) from any thread,
/// including blocking decision threads.
pub struct AlertDispatcher {
    queue: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    closed: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    policies: Arc<AlertPolicies>,
}

enum Command {
    Alert(Alert),
    Flush(oneshot::Sender<()>),
}

/// One notification sink as the dispatcher task sees it.
struct SinkQueue {
    name: &'static str,
    jobs: mpsc::Sender<Job>,
    counters: Arc<SinkCounters>,
    wants: fn(&Notification) -> bool,
}

impl AlertDispatcher {
    /// Validates `config`, builds the sinks it configures (reading the SMTP password file, if
    /// any) and spawns the delivery tasks on `runtime`. The runtime needs its time driver
    /// (`enable_all`). Fails on an invalid config or a sink that cannot be built; never
    /// contacts a sink.
    pub fn start(config: &AlertsConfig, runtime: Handle) -> Result<Self> {
        Self::start_with(config, runtime, Arc::new(AlertPolicies::in_memory()))
    }

    /// [`start`](Self::start), reading each kind's settings through `policies` (the alert
    /// policies changed live through the admin API, shared across reloads).
    pub fn start_with(
        config: &AlertsConfig,
        runtime: Handle,
        policies: Arc<AlertPolicies>,
    ) -> Result<Self> {
        config.validate()?;
        let counters = Arc::new(Counters::default());
        let capacity = config.queue_capacity;
        let mut tasks = Vec::new();
        let mut sinks = Vec::new();
        if let Some(webhook) = &config.webhook {
            let sink = WebhookSink::new(webhook).context("starting the alert webhook")?;
            sinks.push(spawn_sink(
                &runtime,
                sink,
                webhook.retry(),
                capacity,
                counters.webhook.clone(),
                &mut tasks,
            ));
        }
        if let Some(email) = &config.email {
            let sink = EmailSink::new(email).context("starting the alert email")?;
            sinks.push(spawn_sink(
                &runtime,
                sink,
                email.retry(),
                capacity,
                counters.email.clone(),
                &mut tasks,
            ));
        }
        let (queue, commands) = mpsc::channel(capacity);
        tasks.push(runtime.spawn(dispatch(
            commands,
            config.clone(),
            policies.clone(),
            sinks,
            counters.clone(),
        )));
        Ok(AlertDispatcher {
            queue,
            counters,
            closed: AtomicBool::new(false),
            tasks: Mutex::new(tasks),
            policies,
        })
    }

    /// The alert policies this dispatcher reads.
    pub fn policies(&self) -> &Arc<AlertPolicies> {
        &self.policies
    }

    /// Queues `alert` for delivery and returns at once: it never waits, never blocks and
    /// never fails the caller. Returns `false` when the alert was dropped (the queue is full,
    /// or the dispatcher was shut down); drops are counted and logged (the 1st, 2nd, 4th,
    /// 8th... so a flood does not flood the log too).
    pub fn submit(&self, alert: &Alert) -> bool {
        let queued = !self.closed.load(Ordering::Acquire)
            && self.queue.try_send(Command::Alert(alert.clone())).is_ok();
        if queued {
            bump(&self.counters.submitted);
        } else {
            let dropped = bump(&self.counters.dropped);
            if dropped.is_power_of_two() {
                tracing::warn!(
                    alert = %alert.name, entity = %alert.entity.key(), dropped_so_far = dropped,
                    closed = self.closed.load(Ordering::Relaxed),
                    "alert dropped: the alert queue is full or shut down (alerts.queue_capacity)"
                );
            }
        }
        queued
    }

    /// What happened to alerts so far.
    pub fn stats(&self) -> AlertStats {
        self.counters.snapshot()
    }

    /// Waits, at most `wait`, until every alert submitted before the call has been logged and
    /// every resulting notification delivered or given up on (retries included). Returns
    /// whether that happened in time. New alerts may be submitted meanwhile.
    pub async fn flush(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let (done, finished) = oneshot::channel();
        match tokio::time::timeout_at(deadline, self.queue.send(Command::Flush(done))).await {
            Ok(Ok(())) => {}
            _ => return false,
        }
        matches!(
            tokio::time::timeout_at(deadline, finished).await,
            Ok(Ok(()))
        )
    }

    /// Graceful shutdown: refuses new alerts (they count as dropped), waits at most `wait`
    /// for the queued ones as [`flush`](Self::flush) does, then stops the delivery tasks.
    /// Returns whether everything was delivered or given up on in time; what was not is
    /// logged and left in [`SinkStats::pending`](super::SinkStats::pending). Calling it again
    /// returns `false` at once.
    pub async fn shutdown(&self, wait: Duration) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        let drained = self.flush(wait).await;
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        let stats = self.stats();
        if drained {
            tracing::info!(
                webhook_delivered = stats.webhook.delivered,
                email_delivered = stats.email.delivered,
                "alert delivery stopped; every queued alert was handled"
            );
        } else {
            tracing::warn!(
                webhook_abandoned = stats.webhook.pending(),
                email_abandoned = stats.email.pending(),
                wait_secs = wait.as_secs_f64(),
                "alert delivery stopped before every queued notification was sent"
            );
        }
        drained
    }
}

fn spawn_sink<S: Sink>(
    runtime: &Handle,
    sink: S,
    retry: RetryConfig,
    capacity: usize,
    counters: Arc<SinkCounters>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> SinkQueue {
    let (jobs, receiver) = mpsc::channel(capacity);
    tasks.push(runtime.spawn(sink::run(sink, retry, receiver, counters.clone())));
    SinkQueue {
        name: S::NAME,
        jobs,
        counters,
        wants: S::wants,
    }
}

async fn dispatch(
    mut commands: mpsc::Receiver<Command>,
    config: AlertsConfig,
    policies: Arc<AlertPolicies>,
    sinks: Vec<SinkQueue>,
    counters: Arc<Counters>,
) {
    let mut limiter = DailyLimiter::new();
    while let Some(command) = commands.recv().await {
        match command {
            Command::Alert(alert) => {
                let rule = policies.rule_for(&config, &alert.name);
                handle(&alert, rule, &sinks, &counters, &mut limiter)
            }
            Command::Flush(done) => {
                // Behind everything queued so far in each sink; answered when all are through.
                let mut acks = Vec::new();
                for sink in &sinks {
                    let (ack, acked) = oneshot::channel();
                    if sink.jobs.send(Job::Flush(ack)).await.is_ok() {
                        acks.push(acked);
                    }
                }
                tokio::spawn(async move {
                    for acked in acks {
                        let _ = acked.await;
                    }
                    let _ = done.send(());
                });
            }
        }
    }
}

fn handle(
    alert: &Alert,
    rule: super::Rule,
    sinks: &[SinkQueue],
    counters: &Counters,
    limiter: &mut DailyLimiter,
) {
    let notify = if !rule.enabled {
        bump(&counters.disabled);
        "no (kind disabled)"
    } else if sinks.is_empty() {
        "no (no webhook or email configured)"
    } else {
        match limiter.admit(&rule.kind, alert.at, rule.daily_limit) {
            Admission::Notify { .. } => "yes",
            Admission::Suppress { first } => {
                bump(&counters.suppressed);
                if first {
                    tracing::warn!(
                        kind = %rule.kind, daily_limit = rule.daily_limit.unwrap_or(0),
                        day = %crate::time::format(alert.at.div_euclid(86_400) * 86_400),
                        "alert kind reached its daily notification limit; further alerts of \
                         this kind are only logged until the next UTC day"
                    );
                }
                "no (daily notification limit reached)"
            }
        }
    };
    log(alert, &rule.kind, notify);
    bump(&counters.log.delivered);
    bump(&counters.log.queued);
    if notify != "yes" {
        return;
    }
    bump(&counters.notified);
    let notification = Arc::new(Notification {
        alert: alert.clone(),
        kind: rule.kind,
        recipients: rule.recipients,
    });
    for sink in sinks {
        if !(sink.wants)(&notification) {
            continue;
        }
        match sink.jobs.try_send(Job::Deliver(notification.clone())) {
            Ok(()) => {
                bump(&sink.counters.queued);
            }
            Err(_) => {
                let dropped = bump(&sink.counters.dropped);
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        sink = sink.name, kind = %notification.kind,
                        entity = %alert.entity.key(), dropped_so_far = dropped,
                        "alert notification dropped: the sink's queue is full (it is down or slow)"
                    );
                }
            }
        }
    }
}

/// The log sink: every alert, notified or not, is one event. High and Medium alerts are
/// warnings, Low and Informational ones info.
fn log(alert: &Alert, kind: &str, notify: &str) {
    let time = crate::time::format(alert.at);
    let entity = alert.entity.key();
    let severity = severity_name(alert.severity);
    match alert.severity {
        Severity::High | Severity::Medium => tracing::warn!(
            alert = %alert.name, kind, severity, entity = %entity, at = %time,
            summary = %alert.summary, notify, "alert"
        ),
        Severity::Low | Severity::Informational => tracing::info!(
            alert = %alert.name, kind, severity, entity = %entity, at = %time,
            summary = %alert.summary, notify, "alert"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dispatcher_can_be_shared_across_threads() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<AlertDispatcher>();
    }
}
