//! From a stored restriction to the typed record hosts list and admins read, including the
//! EOP-style `Reason` string.

use crate::config::Config;
use crate::limits::LimitKey;
use crate::state::{StoredKind, StoredRestriction};
use crate::time::rfc3339;
use crate::types::{Entity, Evidence, Restriction, Timestamp};

/// The evidence `policy` of a restriction by the service's own limits (not an outbound policy).
pub const SERVICE_POLICY: &str = "service";

/// Unblocks counted in the rolling unblock window at `now`, and how many are left.
/// Unblocks dated after `now` (the clock went back) still count.
pub fn unblock_usage(cfg: &Config, unblocks: &[Timestamp], now: Timestamp) -> (u32, u32) {
    let since = now.saturating_sub(cfg.unblock.window_seconds());
    let used = unblocks.iter().filter(|&&t| t > since).count();
    let used = u32::try_from(used).unwrap_or(u32::MAX);
    (used, cfg.unblock.count.saturating_sub(used))
}

/// The typed restriction record.
pub fn record(
    stored: &StoredRestriction,
    entity: &Entity,
    (unblocks_used, unblocks_left): (u32, u32),
) -> Restriction {
    Restriction {
        entity: entity.clone(),
        kind: stored.kind.into(),
        evidence: evidence(stored),
        created: stored.at,
        changed: stored.at,
        expires: stored.expires,
        unblocks_used,
        unblocks_left,
    }
}

/// The evidence of a stored restriction, with its `Reason` string.
pub fn evidence(stored: &StoredRestriction) -> Evidence {
    Evidence {
        policy: stored.policy.clone(),
        limit: stored.limit.key().to_string(),
        threshold: stored.threshold,
        observed: stored.observed,
        window_seconds: stored.limit.window_seconds(),
        at: stored.at,
        last_message_id: stored.message_id.clone(),
        reason: reason(stored),
    }
}

/// Name of a stored kind, as in the WIT enum (and EOP's actions).
pub fn kind_name(kind: StoredKind) -> &'static str {
    match kind {
        StoredKind::BlockUserForToday => "BlockUserForToday",
        StoredKind::BlockUser => "BlockUser",
        StoredKind::ServiceDailyLimit => "ServiceDailyLimit",
    }
}

/// `Policy=Default;Limit=recipient_limit_external_per_hour;Threshold=500;Observed=501;
/// WindowSeconds=3600;At=2026-11-23T10:00:00Z;LastMessageId=4XyZ;Restriction=BlockUser;
/// Expires=never` (one line). Values are cleaned of `;`, `=` and control characters so the
/// string always splits back into the same pairs.
pub fn reason(r: &StoredRestriction) -> String {
    let expires = r.expires.map_or_else(|| "never".to_string(), rfc3339);
    let message = r
        .message_id
        .as_deref()
        .map_or_else(|| "none".to_string(), clean);
    format!(
        "Policy={};Limit={};Threshold={};Observed={};WindowSeconds={};At={};LastMessageId={};Restriction={};Expires={}",
        clean(&r.policy),
        r.limit.key(),
        r.threshold,
        r.observed,
        r.limit.window_seconds(),
        rfc3339(r.at),
        message,
        kind_name(r.kind),
        expires,
    )
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == ';' || c == '=' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// One sentence on what tripped, for alerts and bounces.
pub fn describe_trip(r: &StoredRestriction) -> String {
    let what = match r.limit {
        LimitKey::ExternalPerHour => "external recipients",
        LimitKey::InternalPerHour => "internal recipients",
        LimitKey::PerDay | LimitKey::RecipientRate => "recipients",
    };
    let scope = if r.policy == SERVICE_POLICY {
        "the service's recipient rate limit".to_string()
    } else {
        format!("policy \"{}\"", r.policy)
    };
    format!(
        "{} {what} {} would exceed the limit of {} ({}, {scope}) at {}",
        r.observed,
        r.limit.window_words(),
        r.threshold,
        r.limit.key(),
        rfc3339(r.at),
    )
}

/// When the restriction lifts, in words.
pub fn describe_expiry(r: &StoredRestriction) -> String {
    match r.expires {
        Some(t) => format!("lifts by itself at {}", rfc3339(t)),
        None => "lasts until an admin unblocks it".to_string(),
    }
}
