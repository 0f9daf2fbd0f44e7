//! Counters of what happened to alerts, readable at any time for metrics and tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the dispatcher's counters (all since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertStats {
    /// Alerts `submit` queued.
    pub submitted: u64,
    /// Alerts `submit` dropped: the queue was full, or the dispatcher was shut down.
    pub dropped: u64,
    /// Alerts of a kind whose rule has `enabled = false`: logged, not notified.
    pub disabled: u64,
    /// Alerts over their kind's daily notification limit: logged, not notified.
    pub suppressed: u64,
    /// Alerts handed to the notification sinks (enabled and within the daily limit).
    pub notified: u64,
    /// The log sink: `delivered` counts alerts logged (every alert `submit` queued, whether
    /// notified or not).
    pub log: SinkStats,
    /// The webhook sink (all zero when there is no `[alerts.webhook]`).
    pub webhook: SinkStats,
    /// The email sink (all zero when there is no `[alerts.email]`).
    pub email: SinkStats,
}

/// What one sink did with the notifications handed to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Notifications the sink accepted into its queue.
    pub queued: u64,
    /// Notifications delivered (webhook: a 2xx answer; email: the relay took the message).
    pub delivered: u64,
    /// Notifications given up on: a permanent error, or every retry failed.
    pub failed: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
    /// Notifications not even queued: the sink's queue was full (it is down or slow).
    pub dropped: u64,
}

impl SinkStats {
    /// Queued and not yet delivered or failed: in the queue, being attempted, or (after a
    /// shutdown that ran out of time) abandoned.
    pub fn pending(&self) -> u64 {
        self.queued.saturating_sub(self.delivered + self.failed)
    }
}

/// The live counters behind [`SinkStats`].
#[derive(Debug, Default)]
pub(crate) struct SinkCounters {
    pub queued: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub retries: AtomicU64,
    pub dropped: AtomicU64,
}

impl SinkCounters {
    pub fn snapshot(&self) -> SinkStats {
        SinkStats {
            queued: load(&self.queued),
            delivered: load(&self.delivered),
            failed: load(&self.failed),
            retries: load(&self.retries),
            dropped: load(&self.dropped),
        }
    }
}

/// The live counters behind [`AlertStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub submitted: AtomicU64,
    pub dropped: AtomicU64,
    pub disabled: AtomicU64,
    pub suppressed: AtomicU64,
    pub notified: AtomicU64,
    pub log: SinkCounters,
    pub webhook: Arc<SinkCounters>,
    pub email: Arc<SinkCounters>,
}

impl Counters {
    pub fn snapshot(&self) -> AlertStats {
        AlertStats {
            submitted: load(&self.submitted),
            dropped: load(&self.dropped),
            disabled: load(&self.disabled),
            suppressed: load(&self.suppressed),
            notified: load(&self.notified),
            log: self.log.snapshot(),
            webhook: self.webhook.snapshot(),
            email: self.email.snapshot(),
        }
    }
}

/// Adds one; returns the new value.
pub(crate) fn bump(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed) + 1
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
