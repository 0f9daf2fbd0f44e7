//! Check `total`: `evaluate` answers every generated submission (no trap, no deadline, no
//! memory bomb) with a valid answer, and `describe` and `unblock` survive the same states.

use super::generate::Generator;
use super::{Finding, KitOptions, Loaded, validity};
use crate::{Action, Entity, Role, UnblockRequest};

/// Run the check.
pub(crate) fn check(loaded: &Loaded, options: &KitOptions) -> Finding {
    let sandbox = &loaded.warm;
    let limits = sandbox.limits().clone();
    let mut generator = Generator::new(options.seed, limits.max_state_bytes);
    let (mut accepted, mut deferred, mut rejected, mut restricted) = (0, 0, 0, 0);
    for index in 0..options.cases {
        let case = generator.next_case();
        let failed = |what: String| {
            Finding::fail(format!(
                "case {index} (seed {}): {what}; input: {}",
                options.seed,
                case.summary()
            ))
        };
        let decision = match sandbox.evaluate(&case.state, &case.submission, case.now) {
            Ok(decision) => decision,
            Err(fault) => return failed(format!("evaluate failed: {}", super::fault(&fault))),
        };
        if let Some(why) = validity::problem(&decision, &case.submission, &limits) {
            return failed(format!("invalid answer: {why}"));
        }
        match decision.verdict.action {
            Action::Accept => accepted += 1,
            Action::Defer => deferred += 1,
            Action::Reject => rejected += 1,
        }
        if decision.restriction.is_some() {
            restricted += 1;
        }
        let entity: &Entity = &case.submission.entity;
        // describe and unblock must be total over the same inputs (their answers may be
        // errors: unreadable state is reported, not trapped on).
        if let Err(fault) = sandbox.describe(&case.state, entity, case.now) {
            return failed(format!("describe failed: {}", super::fault(&fault)));
        }
        if index % 4 == 0 {
            let request = UnblockRequest {
                entity: entity.clone(),
                role: Role::ALL[index / 4 % Role::ALL.len()],
                admin: "conformance-kit".into(),
                reason: case.submission.sender.clone(),
                grace: crate::bindings::UnblockGrace::RestOfDay,
            };
            if let Err(fault) = sandbox.unblock(&case.state, &request, case.now) {
                return failed(format!("unblock failed: {}", super::fault(&fault)));
            }
        }
        generator.returned(entity, decision.state);
    }
    Finding::pass(format!(
        "{} generated submissions answered validly ({accepted} accepted, {deferred} deferred, {rejected} rejected, {restricted} with a restriction); describe and unblock total on the same states",
        options.cases
    ))
}
