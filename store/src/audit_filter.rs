//! The audit query semantics every backend shares: which index to start from, which records
//! match, and "the newest `limit` matches, oldest first".

use crate::{AuditQuery, AuditRecord};

/// Where a backend should start looking for the records of a query: the narrowest index that
/// covers it. Every record a plan yields is still checked with [`Newest::offer`], so a plan only
/// has to yield a superset of the matches, newest (highest seq) first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan<'q> {
    /// The records about this entity (the per-entity index): an admin asking "why".
    Entity(&'q str),
    /// The records at or after this time (the time index).
    Since(i64),
    /// The whole log, newest first.
    All,
}

impl<'q> Plan<'q> {
    /// The plan for `query`: the entity index when there is an entity (an entity has few
    /// records), else the time index when there is a lower bound, else the whole log.
    pub(crate) fn of(query: &'q AuditQuery) -> Self {
        match (&query.entity, query.since) {
            (Some(entity), _) => Plan::Entity(entity),
            (None, Some(since)) => Plan::Since(since),
            (None, None) => Plan::All,
        }
    }
}

/// Collects the newest `limit` records matching a query from records offered newest first.
#[derive(Debug)]
pub(crate) struct Newest<'q> {
    query: &'q AuditQuery,
    found: Vec<AuditRecord>,
}

impl<'q> Newest<'q> {
    pub(crate) fn new(query: &'q AuditQuery) -> Self {
        Self {
            query,
            found: Vec::new(),
        }
    }

    /// Whether `limit` matches have been found (nothing more needs to be offered).
    pub(crate) fn is_full(&self) -> bool {
        self.query
            .limit
            .is_some_and(|limit| self.found.len() >= limit)
    }

    /// Offer the next record, newest first; keeps it if it matches. Returns whether the
    /// collection is now full.
    pub(crate) fn offer(&mut self, record: &AuditRecord) -> bool {
        if !self.is_full() && matches(record, self.query) {
            self.found.push(record.clone());
        }
        self.is_full()
    }

    /// The matches, oldest first.
    pub(crate) fn finish(mut self) -> Vec<AuditRecord> {
        self.found.reverse();
        self.found
    }
}

/// Whether `record` passes the filters of `query` (its limit aside).
fn matches(record: &AuditRecord, query: &AuditQuery) -> bool {
    query.since.is_none_or(|since| record.at >= since)
        && query
            .entity
            .as_deref()
            .is_none_or(|entity| record.entity.as_deref() == Some(entity))
        && query
            .action
            .as_deref()
            .is_none_or(|action| record.action == action)
}
