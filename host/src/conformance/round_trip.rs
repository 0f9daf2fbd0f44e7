//! Check `state-round-trip`: the state a policy returns is state it accepts back. Along a
//! realistic history (an entity sending until it is restricted, and on), every returned
//! state is described without error, by this instance and by a fresh one; `describe` agrees
//! with `evaluate` about the restriction; `unblock` never calls it unreadable; and the state
//! format is named.

use super::generate::START;
use super::{Finding, Loaded};
use crate::{Action, Entity, Role, Submission, UnblockError, UnblockRequest};

/// Submissions in the history.
const STEPS: u32 = 60;

/// Run the check.
pub(crate) fn check(loaded: &Loaded) -> Finding {
    let format = loaded.warm.state_format();
    if format.trim().is_empty() {
        return Finding::fail("state-format is empty: hosts cannot tell state encodings apart");
    }
    if loaded.fresh.state_format() != format {
        return Finding::fail(format!(
            "state-format differs between instances ({format:?} vs {:?})",
            loaded.fresh.state_format()
        ));
    }
    let entity = Entity::user("round-trip@quench-check.invalid");
    match loaded.warm.describe(&[], &entity, START) {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(_))) => {
            return Finding::fail("a new entity (empty state) is described as restricted");
        }
        Ok(Err(why)) => {
            return Finding::fail(format!(
                "empty state (a new entity) is refused by describe: {why}"
            ));
        }
        Err(fault) => {
            return Finding::fail(format!(
                "describe of empty state failed: {}",
                super::fault(&fault)
            ));
        }
    }

    let mut state = Vec::new();
    let (mut restricted, mut largest) = (0, 0);
    for step in 0..STEPS {
        let now = START + i64::from(step) * 120;
        let submission = Submission {
            entity: entity.clone(),
            sender: entity.id.clone(),
            recipients: (0..25)
                .map(|i| format!("rt{step}.{i}@ext{}.quench-check.invalid", i % 5))
                .collect(),
            message_id: Some(format!("round-trip-{step}")),
        };
        let decision = match loaded.warm.evaluate(&state, &submission, now) {
            Ok(d) => d,
            Err(fault) => {
                return Finding::fail(format!(
                    "step {step}: evaluate failed: {}",
                    super::fault(&fault)
                ));
            }
        };
        if let Some(why) = super::validity::problem(&decision, &submission, loaded.warm.limits()) {
            return Finding::fail(format!("step {step}: invalid answer: {why}"));
        }
        state = decision.state;
        largest = largest.max(state.len());
        for (which, sandbox) in [("", &loaded.warm), (" by a fresh instance", &loaded.fresh)] {
            let described = match sandbox.describe(&state, &entity, now) {
                Ok(Ok(d)) => d,
                Ok(Err(why)) => {
                    return Finding::fail(format!(
                        "step {step}: the state evaluate returned ({} bytes) is refused{which}: {why}",
                        state.len()
                    ));
                }
                Err(fault) => {
                    return Finding::fail(format!(
                        "step {step}: describe failed{which}: {}",
                        super::fault(&fault)
                    ));
                }
            };
            if described.is_some() != decision.restriction.is_some() {
                return Finding::fail(format!(
                    "step {step}: evaluate says {} but describe of its state{which} says {}",
                    restricted_words(decision.restriction.is_some()),
                    restricted_words(described.is_some())
                ));
            }
        }
        if decision.restriction.is_some() && decision.verdict.action != Action::Accept {
            restricted += 1;
        }
        let request = UnblockRequest {
            entity: entity.clone(),
            role: Role::SecurityAdministrator,
            admin: "conformance-kit".into(),
            reason: "round trip".into(),
            grace: crate::bindings::UnblockGrace::RestOfDay,
        };
        if let Ok(Err(UnblockError::InvalidState(why))) = loaded.warm.unblock(&state, &request, now)
        {
            return Finding::fail(format!(
                "step {step}: unblock calls the policy's own state unreadable: {why}"
            ));
        }
    }
    Finding::pass(format!(
        "{STEPS} returned states (format {format}, up to {largest} bytes, {restricted} of them restricted) read back by describe on warm and fresh instances, in agreement with evaluate"
    ))
}

fn restricted_words(restricted: bool) -> &'static str {
    if restricted {
        "restricted"
    } else {
        "not restricted"
    }
}
