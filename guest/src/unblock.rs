//! `unblock` (EOP's Remove-BlockedSenderAddress) and `describe` (Get-BlockedSenderAddress).

use crate::config::Config;
use crate::limits::MAX_UNBLOCK_HISTORY;
use crate::restriction::{self, unblock_usage};
use crate::state::{self, StoredKind};
use crate::time::utc_day;
use crate::types::*;

/// What to check before trusting a user account again (EOP's guidance for a compromised
/// account).
pub const USER_RECOMMENDATIONS: &[&str] = &[
    "Reset the account's password and sign it out of all sessions.",
    "Require multifactor authentication (MFA) for the account.",
    "Check the mailbox for forwarding (to external addresses in particular) and for inbox rules that forward, delete or hide messages.",
    "Review mailbox delegates and Send As / Send on Behalf permissions.",
    "Review the account's sign-in logs for unfamiliar locations, devices, apps or legacy protocols.",
    "Scan the user's devices for malware and review recently sent items for spam.",
];

/// What to check before trusting a connector again.
pub const CONNECTOR_RECOMMENDATIONS: &[&str] = &[
    "Check the relaying host for compromise and for open relay (unauthenticated submission).",
    "Review which applications and devices relay through it and their recent volume.",
    "Rotate the connector's certificate or credentials if they may have leaked.",
    "Check the relay's queues and logs for spam that is still waiting to be sent.",
];

/// What to check before trusting a relay again: the envelope sender of an unauthenticated
/// client on a trusted network has no account to secure; the host behind it is the suspect.
pub const RELAY_RECOMMENDATIONS: &[&str] = &[
    "Find the host on the trusted network that sends with this envelope sender: the MTA's log shows the client address of its refused messages.",
    "Check that host for a compromised web application, script or device (a contact form, a CMS plugin, a cron job, a printer or scanner) and for leaked credentials.",
    "Check the MTA's queue for spam from this sender that is still waiting to be sent.",
    "Consider making the host authenticate (SASL) or defining it as a connector, so its mail is counted on an identity you can trace.",
];

/// Lift a restriction if the role and the unblock limit allow it.
pub fn unblock(
    cfg: &Config,
    bytes: &[u8],
    req: &UnblockRequest,
    now: Timestamp,
) -> Result<UnblockGranted, UnblockError> {
    match req.role {
        Role::GlobalAdministrator
        | Role::OrganizationManagement
        | Role::SecurityAdministrator
        | Role::Support => {}
        role @ (Role::GlobalReader
        | Role::SecurityReader
        | Role::ViewOnlyOrganizationManagement) => {
            return Err(UnblockError::RoleNotAllowed(role));
        }
    }
    let mut st = state::decode(bytes).map_err(|d| UnblockError::InvalidState(d.why))?;
    let Some(r) = st.restriction.clone().filter(|r| r.active(now)) else {
        return Err(UnblockError::NotRestricted);
    };
    let window = cfg.unblock.window_seconds();
    let since = now.saturating_sub(window);
    st.unblocks.retain(|&t| t > since);
    st.unblocks.sort_unstable();
    let (used, _) = unblock_usage(cfg, &st.unblocks, now);
    if used >= cfg.unblock.count && req.role != Role::Support {
        // The oldest unblock whose expiry brings `used` below the limit.
        let idx = (used - cfg.unblock.count) as usize;
        let next_allowed = st
            .unblocks
            .get(idx)
            .map_or(now, |&t| t.saturating_add(window))
            .max(now);
        return Err(UnblockError::LimitReached(UnblockLimitReached {
            used,
            limit: cfg.unblock.count,
            window_seconds: u32::try_from(window).unwrap_or(u32::MAX),
            next_allowed,
        }));
    }

    st.unblocks.push(now);
    if st.unblocks.len() > MAX_UNBLOCK_HISTORY {
        st.unblocks.remove(0);
    }
    st.restriction = None;
    // EOP: exempt from the outbound policy's limits for the rest of the day, unless the admin
    // chose no grace. The service limits apply either way.
    st.exempt_day = match req.grace {
        UnblockGrace::RestOfDay => Some(utc_day(now)),
        UnblockGrace::None => None,
    };
    st.counters.advance(now);
    // Clear the windows that tripped: the policy's, and for a service-limit restriction the
    // service's 24-hour recipient window too (else the next submission trips it again).
    st.counters.clear_policy_windows();
    if r.kind == StoredKind::ServiceDailyLimit {
        st.counters.rate_day.clear();
    }
    // Tripping again after an unblock alerts again.
    st.counters.alerted = 0;

    let (unblocks_used, unblocks_left) = unblock_usage(cfg, &st.unblocks, now);
    let mut lifted = restriction::record(&r, &req.entity, (unblocks_used, unblocks_left));
    lifted.changed = now;
    let recommendations = match req.entity.kind {
        EntityKind::User => USER_RECOMMENDATIONS,
        EntityKind::Relay => RELAY_RECOMMENDATIONS,
        EntityKind::Connector => CONNECTOR_RECOMMENDATIONS,
    };
    Ok(UnblockGranted {
        state: state::encode(&st),
        lifted,
        unblocks_used,
        unblocks_left,
        recommendations: recommendations.iter().map(|s| s.to_string()).collect(),
    })
}

/// The entity's restriction at `now`, if any. Unreadable state is an error (never a guess).
pub fn describe(
    cfg: &Config,
    bytes: &[u8],
    entity: &Entity,
    now: Timestamp,
) -> Result<Option<Restriction>, String> {
    let st = state::decode(bytes).map_err(|d| d.why)?;
    Ok(st
        .restriction
        .as_ref()
        .filter(|r| r.active(now))
        .map(|r| restriction::record(r, entity, unblock_usage(cfg, &st.unblocks, now))))
}
