//! Retention: deleting the state of entities the policy calls idle.
//!
//! Every sender quench ever sees gets a state, and without retention the store grows with
//! each of them forever: a site's churn, or a hostile client cycling envelope senders, would
//! fill the disk. Only the policy knows when a state has stopped mattering (its windows, its
//! restriction, its unblock history), so the sweep walks the store a page at a time and asks
//! the policy's `idle` about each state; a state called idle is deleted together with its
//! restricted-index entry, atomically with respect to decisions on that entity (a state that
//! changed since it was read is kept). The audit log is never touched.
//!
//! The sweep runs in the background (`quench serve` every `[serve] sweep_interval_secs`),
//! never on the decision path. A policy fault on one state (a trap, the deadline) keeps that
//! state and is counted; a store error ends the sweep, and the next one starts over.
//!
//! The audit log has its own retention, [`prune_audit`]: records older than `[audit]
//! keep_days` are deleted, oldest first, in batches.

use crate::bindings::Timestamp;
use crate::service::Service;
use anyhow::{Context, Result};

/// What a sweep (or one page of it) did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// States the policy was asked about.
    pub examined: u64,
    /// States deleted as idle.
    pub removed: u64,
    /// States kept because the policy failed on them (trap, deadline).
    pub faults: u64,
}

impl SweepReport {
    fn add(&mut self, other: SweepReport) {
        self.examined += other.examined;
        self.removed += other.removed;
        self.faults += other.faults;
    }
}

/// Sweep one page of the store's keys, starting at `cursor` (`None` for the first page).
/// Returns what it did and the cursor of the next page (`None` when the walk is done). Each
/// page uses the policy in force when it starts.
pub fn sweep_page(
    service: &Service,
    cursor: Option<&str>,
    page_size: usize,
    now: Timestamp,
) -> Result<(SweepReport, Option<String>)> {
    let store = service.store();
    let page = store
        .scan_keys(cursor, page_size)
        .context("listing entity keys for the retention sweep")?;
    let policy = service.policy();
    let mut report = SweepReport::default();
    for key in &page.keys {
        let mut fault = None;
        let removed = store
            .remove_if(key, &mut |state| {
                report.examined += 1;
                match policy.sandbox.idle(state, now) {
                    Ok(idle) => idle,
                    Err(error) => {
                        fault = Some(error);
                        false
                    }
                }
            })
            .with_context(|| format!("retention sweep of {key}"))?;
        if removed {
            report.removed += 1;
        }
        if let Some(error) = fault {
            report.faults += 1;
            tracing::warn!(%key, %error, "policy failed on idle; state kept");
        }
    }
    Ok((report, page.next))
}

/// Sweep the whole store at `now`, `page_size` keys at a time. `after_page` gets each page's
/// report and ends the sweep early by returning `false` (shutdown); it is also where a caller
/// counts and paces.
pub fn sweep(
    service: &Service,
    page_size: usize,
    now: Timestamp,
    mut after_page: impl FnMut(&SweepReport) -> bool,
) -> Result<SweepReport> {
    let mut total = SweepReport::default();
    let mut cursor: Option<String> = None;
    loop {
        let (report, next) = sweep_page(service, cursor.as_deref(), page_size, now)?;
        total.add(report);
        let go_on = after_page(&report);
        match next {
            Some(next) if go_on => cursor = Some(next),
            _ => return Ok(total),
        }
    }
}

/// Audit records deleted per store call of the audit retention: small enough that one call
/// is a short write transaction, large enough that a backlog of a year of sampled noise
/// (hundreds of thousands of records) goes in a few hundred calls.
pub const AUDIT_PRUNE_BATCH: usize = 1_000;

/// Delete the audit records older than `keep_days` days before `now` (`keep_days` 0: keep
/// everything), in batches of [`AUDIT_PRUNE_BATCH`]; between batches `keep_going` may pause
/// and says whether to go on. Returns how many records were deleted.
pub fn prune_audit(
    service: &Service,
    keep_days: u32,
    now: Timestamp,
    mut keep_going: impl FnMut() -> bool,
) -> Result<u64> {
    if keep_days == 0 {
        return Ok(0);
    }
    let before = now - i64::from(keep_days) * 86_400;
    let mut total = 0;
    loop {
        let removed = service
            .store()
            .prune_audit(before, AUDIT_PRUNE_BATCH)
            .context("pruning the audit log")?;
        total += removed;
        if removed < AUDIT_PRUNE_BATCH as u64 || !keep_going() {
            return Ok(total);
        }
    }
}
