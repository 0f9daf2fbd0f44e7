//! The rule, in plain Rust: evaluate a submission, lift a restriction, describe one. The WIT
//! glue (`component.rs`) turns these results into contract records.

use crate::config::Settings;
use crate::state::{self, MAX_MESSAGE_ID, MAX_UNBLOCKS, State, Trip};
use crate::time::rfc3339;
use crate::window::WINDOW_SECONDS;

/// The policy's name in evidence and Reason strings.
pub const POLICY_NAME: &str = "strict-ratio";
/// The limit named in evidence (the configuration key of N).
pub const LIMIT_KEY: &str = "external_per_hour";

/// What an admin's role allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// May read only.
    ReadOnly,
    /// May unblock within the unblock limit.
    WithinLimit,
    /// May unblock past the unblock limit (the support role).
    PastLimit,
}

/// A restriction as the rule reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restricted {
    /// The facts that tripped it.
    pub trip: Trip,
    /// Unblocks counted in the current unblock window.
    pub unblocks_used: u32,
    /// Unblocks an admin may still do in it.
    pub unblocks_left: u32,
    /// The facts as a `key=value;...` Reason string.
    pub reason: String,
}

/// What `evaluate` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Let the submission through.
    Accepted,
    /// Refuse it: the entity is restricted (`started`: by this very submission).
    Refused {
        /// The restriction.
        restriction: Restricted,
        /// Whether this submission tripped it.
        started: bool,
    },
}

/// `evaluate`'s answer: the outcome and the entity's new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluated {
    /// Accept or refuse.
    pub outcome: Outcome,
    /// The state to store.
    pub state: Vec<u8>,
}

/// A granted unblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unblocked {
    /// The state to store (restriction lifted, the hour's counts cleared).
    pub state: Vec<u8>,
    /// The restriction that was lifted, with the usage after this unblock.
    pub lifted: Restricted,
}

/// Why an unblock was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnblockRefusal {
    /// The role may only read.
    ReadOnly,
    /// Nothing to lift.
    NotRestricted,
    /// The unblock limit is used up.
    LimitReached {
        /// Unblocks in the window.
        used: u32,
        /// The limit.
        limit: u32,
        /// The window in seconds.
        window_seconds: u32,
        /// When an admin may unblock again.
        next_allowed: i64,
    },
    /// The stored state is unreadable.
    InvalidState(String),
}

/// Is `recipient` in an accepted domain? Malformed addresses are external (the strict side).
pub fn is_internal(settings: &Settings, recipient: &str) -> bool {
    let address = recipient
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    address.rsplit_once('@').is_some_and(|(_, domain)| {
        settings
            .accepted_domains
            .contains(&domain.trim_end_matches('.').to_ascii_lowercase())
    })
}

/// Evaluate one submission. Unreadable state is treated as a new entity: the contract asks
/// for a defined answer, and the host never hands out state it did not get from us.
pub fn evaluate(
    settings: &Settings,
    bytes: &[u8],
    recipients: &[String],
    message_id: Option<&str>,
    now: i64,
) -> Evaluated {
    let mut st = state::decode(bytes).unwrap_or_default();
    st.window.advance(now);
    if let Some(trip) = st.restriction.clone() {
        return Evaluated {
            outcome: Outcome::Refused {
                restriction: restricted(settings, &st, trip, now),
                started: false,
            },
            state: state::encode(&st),
        };
    }
    let internal = recipients
        .iter()
        .filter(|r| is_internal(settings, r))
        .count();
    let external = u32::try_from(recipients.len() - internal).unwrap_or(u32::MAX);
    let internal = u32::try_from(internal).unwrap_or(u32::MAX);
    let (hour_external, hour_internal) = st.window.totals();
    let (hour_external, hour_internal) = (
        hour_external.saturating_add(external),
        hour_internal.saturating_add(internal),
    );
    if trips(settings, hour_external, hour_internal) {
        let trip = Trip {
            at: now,
            external: hour_external,
            internal: hour_internal,
            message_id: message_id.map(|m| clip(m, MAX_MESSAGE_ID)),
        };
        st.restriction = Some(trip.clone());
        return Evaluated {
            outcome: Outcome::Refused {
                restriction: restricted(settings, &st, trip, now),
                started: true,
            },
            state: state::encode(&st),
        };
    }
    st.window.add(now, external, internal);
    Evaluated {
        outcome: Outcome::Accepted,
        state: state::encode(&st),
    }
}

/// The rule: more than N external recipients, and more than R external per internal one.
pub fn trips(settings: &Settings, external: u32, internal: u32) -> bool {
    external > settings.external_per_hour
        && u128::from(external) * 1000
            > u128::from(settings.max_external_ratio_milli) * u128::from(internal)
}

/// Lift a restriction if the authority and the unblock limit allow it.
pub fn unblock(
    settings: &Settings,
    bytes: &[u8],
    authority: Authority,
    now: i64,
) -> Result<Unblocked, UnblockRefusal> {
    if authority == Authority::ReadOnly {
        return Err(UnblockRefusal::ReadOnly);
    }
    let mut st = state::decode(bytes).map_err(UnblockRefusal::InvalidState)?;
    let Some(trip) = st.restriction.take() else {
        return Err(UnblockRefusal::NotRestricted);
    };
    let window = settings.unblock_window_seconds();
    st.unblocks.retain(|&t| t > now.saturating_sub(window));
    let used = st.unblocks.len() as u32;
    if used >= settings.unblock_limit && authority != Authority::PastLimit {
        // The unblock whose expiry brings `used` below the limit.
        st.unblocks.sort_unstable();
        let oldest = st
            .unblocks
            .get((used - settings.unblock_limit) as usize)
            .copied()
            .unwrap_or(now);
        return Err(UnblockRefusal::LimitReached {
            used,
            limit: settings.unblock_limit,
            window_seconds: u32::try_from(window).unwrap_or(u32::MAX),
            next_allowed: oldest.saturating_add(window).max(now),
        });
    }
    st.unblocks.push(now);
    if st.unblocks.len() > MAX_UNBLOCKS {
        st.unblocks.remove(0);
    }
    // Clear the hour that tripped, so stale counts do not restrict again a minute later.
    st.window = Default::default();
    let lifted = restricted(settings, &st, trip, now);
    Ok(Unblocked {
        state: state::encode(&st),
        lifted,
    })
}

/// The entity's restriction, if any.
pub fn describe(settings: &Settings, bytes: &[u8], now: i64) -> Result<Option<Restricted>, String> {
    let st = state::decode(bytes)?;
    Ok(st
        .restriction
        .clone()
        .map(|trip| restricted(settings, &st, trip, now)))
}

/// Whether the state is equivalent to no state at `now` and later, so the host may delete
/// it: not restricted, no unblock left in the unblock window, nothing counted in the hour
/// (counts the clock put ahead of `now` are folded in by `advance`, so they keep it).
/// Unreadable state is never idle: it may hold a restriction.
pub fn idle(settings: &Settings, bytes: &[u8], now: i64) -> bool {
    let Ok(mut st) = state::decode(bytes) else {
        return false;
    };
    let since = now.saturating_sub(settings.unblock_window_seconds());
    st.window.advance(now);
    st.restriction.is_none()
        && st.unblocks.iter().all(|&t| t <= since)
        && st.window.totals() == (0, 0)
}

fn restricted(settings: &Settings, st: &State, trip: Trip, now: i64) -> Restricted {
    let since = now.saturating_sub(settings.unblock_window_seconds());
    let used = st.unblocks.iter().filter(|&&t| t > since).count() as u32;
    Restricted {
        reason: reason(settings, &trip),
        trip,
        unblocks_used: used,
        unblocks_left: settings.unblock_limit.saturating_sub(used),
    }
}

/// `Policy=strict-ratio;Limit=external_per_hour;Threshold=200;External=250;Internal=10;...`
pub fn reason(settings: &Settings, trip: &Trip) -> String {
    let r = settings.max_external_ratio_milli;
    let mut s = format!(
        "Policy={POLICY_NAME};Limit={LIMIT_KEY};Threshold={};External={};Internal={};MaxExternalRatio={}.{:03};Window={}s;At={}",
        settings.external_per_hour,
        trip.external,
        trip.internal,
        r / 1000,
        r % 1000,
        WINDOW_SECONDS,
        rfc3339(trip.at)
    );
    if let Some(m) = &trip.message_id {
        s.push_str(";MessageId=");
        s.push_str(m);
    }
    s
}

/// Keep printable characters, at most `max` bytes.
fn clip(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_428_000;

    fn settings() -> Settings {
        crate::config::parse(
            "accepted_domains = [\"contoso.com\"]\nexternal_per_hour = 10\nmax_external_ratio = 2\nunblock_limit = 1\n",
        )
        .unwrap()
    }

    fn to(n: usize, domain: &str) -> Vec<String> {
        (0..n).map(|i| format!("r{i}@{domain}")).collect()
    }

    #[test]
    fn volume_alone_does_not_restrict_when_internal_mail_dominates() {
        let s = settings();
        let mut state = Vec::new();
        // 8 internal, then 12 external: 12 > 10 but 12 <= 2 × 8.
        state = evaluate(&s, &state, &to(8, "contoso.com"), None, NOW).state;
        let e = evaluate(&s, &state, &to(12, "fabrikam.com"), None, NOW + 60);
        assert_eq!(e.outcome, Outcome::Accepted);
        // 6 more external: 18 > 10 and 18 > 16: restricted.
        let e = evaluate(&s, &e.state, &to(6, "fabrikam.com"), Some("m-3"), NOW + 120);
        let Outcome::Refused {
            restriction,
            started,
        } = e.outcome
        else {
            panic!("expected a restriction");
        };
        assert!(started);
        assert_eq!(
            (restriction.trip.external, restriction.trip.internal),
            (18, 8)
        );
        assert!(
            restriction.reason.contains("MessageId=m-3"),
            "{}",
            restriction.reason
        );
        // It lasts, even an hour later, until unblocked.
        let again = evaluate(&s, &e.state, &[], None, NOW + 7_200);
        assert!(matches!(
            again.outcome,
            Outcome::Refused { started: false, .. }
        ));
    }

    #[test]
    fn unblock_limit_then_support_only() {
        let s = settings();
        let trip = |state: &[u8], at| evaluate(&s, state, &to(11, "x.example"), None, at).state;
        let state = trip(&[], NOW);
        assert_eq!(
            unblock(&s, &state, Authority::ReadOnly, NOW),
            Err(UnblockRefusal::ReadOnly)
        );
        let granted = unblock(&s, &state, Authority::WithinLimit, NOW).unwrap();
        assert_eq!(
            (granted.lifted.unblocks_used, granted.lifted.unblocks_left),
            (1, 0)
        );
        assert_eq!(describe(&s, &granted.state, NOW), Ok(None));
        let state = trip(&granted.state, NOW + 60);
        assert!(matches!(
            unblock(&s, &state, Authority::WithinLimit, NOW + 60),
            Err(UnblockRefusal::LimitReached {
                used: 1,
                limit: 1,
                ..
            })
        ));
        assert!(unblock(&s, &state, Authority::PastLimit, NOW + 60).is_ok());
        // A week later the window has moved on.
        assert!(unblock(&s, &state, Authority::WithinLimit, NOW + 8 * 86_400).is_ok());
    }

    #[test]
    fn garbage_state_is_a_new_entity_for_evaluate_and_an_error_for_describe() {
        let s = settings();
        let e = evaluate(
            &s,
            b"\x01\xff\xff\xff\xff",
            &to(1, "x.example"),
            None,
            i64::MIN,
        );
        assert_eq!(e.outcome, Outcome::Accepted);
        assert!(describe(&s, b"\x07junk", NOW).is_err());
        evaluate(&s, &[], &to(1, "x.example"), None, i64::MAX);
    }
}
