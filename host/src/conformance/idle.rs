//! Check `idle`: a state the policy calls idle answers like no state. The host deletes idle
//! state in the background, so a policy that calls a restricted or still-counting state idle
//! would let that entity start over. The check builds states the way traffic does (a light
//! sender, an entity driven into a restriction, the same entity after a support unblock),
//! asks `idle` at times from the same second to a year later, and wherever the answer is yes
//! runs the kept state and an empty one through the same submissions, comparing verdicts,
//! replies and restriction records step by step.

use super::drive;
use super::generate::START;
use super::{Finding, Loaded};
use crate::{Decision, Entity, Role, Sandbox, Submission, Timestamp, UnblockRequest};

/// How long after a state's last call `idle` is asked: at once, after the windows a policy
/// typically keeps (an hour, a day), and after unblock windows (a week, 40 days, a year).
const PROBES: &[Timestamp] = &[
    0,
    3_600,
    86_400 + 3_600,
    2 * 86_400,
    8 * 86_400,
    40 * 86_400,
    366 * 86_400,
];
/// Submissions run side by side after an idle answer.
const FOLLOW_UP: u32 = 6;

/// Run the check.
pub(crate) fn check(loaded: &Loaded) -> Finding {
    let sandbox = &loaded.warm;
    let states = match histories(sandbox) {
        Ok(states) => states,
        Err(why) => return Finding::fail(why),
    };
    let (mut probed, mut idle) = (0, 0);
    for (label, entity, state, last) in &states {
        for offset in PROBES {
            let at = last + offset;
            probed += 1;
            match sandbox.idle(state, at) {
                Ok(false) => continue,
                Ok(true) => idle += 1,
                Err(fault) => {
                    return Finding::fail(format!(
                        "{label}, {offset} s later: idle failed: {}",
                        super::fault(&fault)
                    ));
                }
            }
            if let Err(why) = same_answers(sandbox, entity, state, at) {
                return Finding::fail(format!(
                    "{label}: idle says the state can go {offset} s after its last call, but {why}"
                ));
            }
        }
    }
    if idle == 0 {
        return Finding::pass(format!(
            "{probed} probes, none idle: correct, but the host will keep every entity's state forever"
        ));
    }
    Finding::pass(format!(
        "{probed} probes of {} states; the {idle} idle ones answered like no state for {FOLLOW_UP} submissions each",
        states.len()
    ))
}

/// (label, entity, state, time of its last call) for each history.
type History = (&'static str, Entity, Vec<u8>, Timestamp);

fn histories(sandbox: &Sandbox) -> Result<Vec<History>, String> {
    let light = Entity::user("light@quench-check.invalid");
    let mut state = Vec::new();
    let mut now = START;
    for step in 0..3 {
        now = START + step * 600;
        state = evaluate(sandbox, &state, &submission(&light, 2, step as u32), now)?.state;
    }
    let mut out = vec![("a light sender", light, state, now)];

    let heavy = Entity::user("heavy@quench-check.invalid");
    let Some(driven) = drive::to_restriction(sandbox, &heavy, Vec::new(), START, "idle")? else {
        return Ok(out);
    };
    let restricted = driven.decision.state;
    out.push((
        "an entity driven into a restriction",
        heavy.clone(),
        restricted.clone(),
        driven.now,
    ));
    let request = UnblockRequest {
        entity: heavy.clone(),
        role: Role::Support,
        admin: "conformance-kit".into(),
        reason: "idle check".into(),
        grace: crate::bindings::UnblockGrace::RestOfDay,
    };
    let unblocked_at = driven.now + 60;
    if let Ok(Ok(granted)) = sandbox.unblock(&restricted, &request, unblocked_at) {
        out.push((
            "the same entity after an unblock",
            heavy,
            granted.state,
            unblocked_at,
        ));
    }
    Ok(out)
}

/// Run `state` and no state through the same submissions from `at`; `Err` names the first
/// difference.
fn same_answers(
    sandbox: &Sandbox,
    entity: &Entity,
    state: &[u8],
    at: Timestamp,
) -> Result<(), String> {
    let (mut kept, mut fresh) = (state.to_vec(), Vec::new());
    let mut now = at;
    for step in 0..FOLLOW_UP {
        // Growing batches, so a limit the kept state still counts toward is reached.
        let sub = submission(entity, 5 << step, 100 + step);
        let a = evaluate(sandbox, &kept, &sub, now)?;
        let b = evaluate(sandbox, &fresh, &sub, now)?;
        if a.verdict != b.verdict {
            return Err(format!(
                "submission {step} gets {:?} {} with it and {:?} {} without it",
                a.verdict.action,
                reply(&a),
                b.verdict.action,
                reply(&b)
            ));
        }
        if a.restriction != b.restriction {
            return Err(format!(
                "submission {step} reports a different restriction with it ({}) than without ({})",
                restriction(&a),
                restriction(&b)
            ));
        }
        (kept, fresh) = (a.state, b.state);
        now += 60;
    }
    Ok(())
}

fn submission(entity: &Entity, recipients: usize, tag: u32) -> Submission {
    Submission {
        entity: entity.clone(),
        sender: entity.id.clone(),
        recipients: (0..recipients)
            .map(|i| format!("idle{tag}.{i}@ext{}.quench-check.invalid", i % 5))
            .collect(),
        message_id: Some(format!("idle-{tag}")),
    }
}

fn evaluate(
    sandbox: &Sandbox,
    state: &[u8],
    sub: &Submission,
    now: Timestamp,
) -> Result<Decision, String> {
    sandbox
        .evaluate(state, sub, now)
        .map_err(|fault| format!("evaluate failed: {}", super::fault(&fault)))
}

fn reply(d: &Decision) -> String {
    d.verdict
        .reply
        .as_ref()
        .map(|r| format!("{} {}", r.code, r.status))
        .unwrap_or_default()
}

fn restriction(d: &Decision) -> String {
    d.restriction
        .as_ref()
        .map(|r| format!("{:?} by {}", r.kind, r.evidence.limit))
        .unwrap_or_else(|| "none".into())
}
