//! The alerts the policy raises, with EOP's alert policy names.

use crate::limits::LimitKey;
use crate::restriction::{describe_expiry, describe_trip};
use crate::state::StoredRestriction;
use crate::types::{Alert, Entity, EntityKind, Severity, Timestamp};

/// EOP's alert when a user lands on the restricted entities list.
pub const USER_RESTRICTED: &str = "User restricted from sending email";
/// EOP's alert when a sending limit is hit (also under the `Alert` action).
pub const LIMIT_EXCEEDED: &str = "Email sending limit exceeded";
/// Raised instead of [`USER_RESTRICTED`] when the restricted entity is a connector.
pub const SUSPICIOUS_CONNECTOR: &str = "Suspicious connector activity";
/// Raised when an entity's stored state could not be read (quench's own alert).
pub const STATE_UNREADABLE: &str = "Policy state unreadable";

fn alert(name: &str, severity: Severity, entity: &Entity, summary: String, at: Timestamp) -> Alert {
    Alert {
        name: name.to_string(),
        severity,
        entity: entity.clone(),
        summary,
        at,
    }
}

/// High: a restriction started (a user, a relay, or a connector).
pub fn restricted(entity: &Entity, r: &StoredRestriction) -> Alert {
    let (name, what, check) = match entity.kind {
        EntityKind::User => (
            USER_RESTRICTED,
            "User",
            "Check the account for compromise before unblocking it.".to_string(),
        ),
        // A relay has no account: what sends is a host on the trusted network.
        EntityKind::Relay => (
            USER_RESTRICTED,
            "Relayed sender",
            format!(
                "It is the envelope sender of mail from an unauthenticated client on a trusted network, not a signed-in user: find the host that sends as it (the MTA log has its client address) and check it for a compromised web application, script or device before unblocking it with `quench blocked-relay remove {} --reason \"...\"`.",
                entity.id
            ),
        ),
        EntityKind::Connector => (
            SUSPICIOUS_CONNECTOR,
            "Connector",
            "Check the account for compromise before unblocking it.".to_string(),
        ),
    };
    let summary = format!(
        "{what} {} was restricted from sending email: {}. The restriction {}. {check}",
        entity.id,
        describe_trip(r),
        describe_expiry(r),
    );
    alert(name, Severity::High, entity, summary, r.at)
}

/// Medium: a limit was hit. `consequence` says what happened to the submission.
pub fn limit_exceeded(
    entity: &Entity,
    policy: &str,
    key: LimitKey,
    threshold: u32,
    observed: u32,
    consequence: &str,
    at: Timestamp,
) -> Alert {
    let who = match entity.kind {
        EntityKind::Relay => format!("Relayed sender {}", entity.id),
        EntityKind::User | EntityKind::Connector => entity.id.clone(),
    };
    let summary = format!(
        "{who} hit {} of policy \"{policy}\": {observed} recipients {} against a limit of {threshold}. {consequence}",
        key.key(),
        key.window_words(),
    );
    alert(LIMIT_EXCEEDED, Severity::Medium, entity, summary, at)
}

/// High: stored state was unreadable; what was salvaged.
pub fn state_unreadable(
    entity: &Entity,
    why: &str,
    kept_restriction: bool,
    at: Timestamp,
) -> Alert {
    let kept = if kept_restriction {
        "Its restriction was recovered and still applies; its counters were reset."
    } else {
        "Nothing could be recovered: its counters, unblock history and any restriction were reset."
    };
    let summary = format!(
        "The policy state of {} could not be read ({why}). {kept}",
        entity.id
    );
    alert(STATE_UNREADABLE, Severity::High, entity, summary, at)
}
