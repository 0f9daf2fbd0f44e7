//! JSON views for people and scripts: restriction records with RFC 3339 times and the
//! Exchange-style names, shared by `quench simulate` and the admin API.

use crate::bindings::{Restriction, RestrictionKind};
use crate::time::format;
use serde::Serialize;

/// A restriction as listings show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RestrictionView {
    /// The address or connector id.
    pub entity: String,
    /// `user` or `connector`.
    pub kind: &'static str,
    /// `BlockUserForToday`, `BlockUser` or `ServiceDailyLimit`.
    pub restriction: &'static str,
    /// The Exchange-style `key=value;...` Reason string.
    pub reason: String,
    /// The outbound policy (or connector) whose limit tripped.
    pub policy: String,
    /// The limit's configuration key.
    pub limit: String,
    /// The limit's value.
    pub threshold: u32,
    /// The count the tripping submission would have reached.
    pub observed: u32,
    /// The limit's window, in seconds.
    pub window_seconds: u32,
    /// When the limit tripped.
    pub at: String,
    /// The message that tripped it, if known.
    pub last_message_id: Option<String>,
    /// When the restriction started.
    pub created: String,
    /// When it last changed.
    pub changed: String,
    /// When it lifts by itself, or "until unblocked".
    pub expires: String,
    /// Unblocks used in the current unblock window.
    pub unblocks_used: u32,
    /// Unblocks left in that window.
    pub unblocks_left: u32,
}

impl From<&Restriction> for RestrictionView {
    fn from(r: &Restriction) -> Self {
        RestrictionView {
            entity: r.entity.id.clone(),
            kind: r.entity.kind.name(),
            restriction: kind_name(r.kind),
            reason: r.evidence.reason.clone(),
            policy: r.evidence.policy.clone(),
            limit: r.evidence.limit.clone(),
            threshold: r.evidence.threshold,
            observed: r.evidence.observed,
            window_seconds: r.evidence.window_seconds,
            at: format(r.evidence.at),
            last_message_id: r.evidence.last_message_id.clone(),
            created: format(r.created),
            changed: format(r.changed),
            expires: r
                .expires
                .map(format)
                .unwrap_or_else(|| "until unblocked".into()),
            unblocks_used: r.unblocks_used,
            unblocks_left: r.unblocks_left,
        }
    }
}

/// The Exchange name of a restriction kind.
pub fn kind_name(kind: RestrictionKind) -> &'static str {
    match kind {
        RestrictionKind::BlockUserForToday => "BlockUserForToday",
        RestrictionKind::BlockUser => "BlockUser",
        RestrictionKind::ServiceDailyLimit => "ServiceDailyLimit",
    }
}
