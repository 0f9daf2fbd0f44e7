//! Driving an entity into a restriction the way a compromised account would: message after
//! message to many external recipients, until the policy refuses with a restriction. The
//! driver adapts to what it meets: a deferral (a rate limit) makes it wait, a refusal
//! without a restriction (e.g. too many recipients per message) makes it send fewer per
//! message.

use super::validity;
use crate::{Action, Decision, Entity, Sandbox, Submission, Timestamp};

/// Submissions sent at most before giving up.
pub(crate) const MAX_SUBMISSIONS: u32 = 300;
/// Recipients per message to start with.
const BATCH: usize = 25;
/// Seconds between messages: 30 messages an hour, under any sane per-minute rate.
const SPACING: Timestamp = 120;

/// An entity the driver restricted.
pub(crate) struct Driven {
    /// The decision that carried the restriction (a refusal).
    pub(crate) decision: Decision,
    /// When.
    pub(crate) now: Timestamp,
    /// Submissions it took.
    pub(crate) sent: u32,
}

/// Send from `entity`, starting with `state` at `start`, until restricted. `Ok(None)` when
/// [`MAX_SUBMISSIONS`] went through without a restriction; `Err` when the policy failed or
/// answered invalidly.
pub(crate) fn to_restriction(
    sandbox: &Sandbox,
    entity: &Entity,
    mut state: Vec<u8>,
    start: Timestamp,
    tag: &str,
) -> Result<Option<Driven>, String> {
    let mut now = start;
    let mut batch = BATCH;
    for sent in 1..=MAX_SUBMISSIONS {
        let submission = Submission {
            entity: entity.clone(),
            sender: entity.id.clone(),
            recipients: (0..batch)
                .map(|i| format!("{tag}{sent}.{i}@ext{}.quench-check.invalid", i % 5))
                .collect(),
            message_id: Some(format!("{tag}-{sent}")),
        };
        let decision = sandbox
            .evaluate(&state, &submission, now)
            .map_err(|fault| {
                format!(
                    "submission {sent} at {now}: evaluate failed: {}",
                    super::fault(&fault)
                )
            })?;
        if let Some(why) = validity::problem(&decision, &submission, sandbox.limits()) {
            return Err(format!("submission {sent} at {now}: invalid answer: {why}"));
        }
        match decision.verdict.action {
            Action::Reject if decision.restriction.is_some() => {
                return Ok(Some(Driven {
                    decision,
                    now,
                    sent,
                }));
            }
            Action::Defer => now += 5 * 60,
            Action::Reject => batch = (batch / 2).max(1),
            Action::Accept => {}
        }
        state = decision.state;
        now += SPACING;
    }
    Ok(None)
}
