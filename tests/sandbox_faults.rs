//! A misbehaving policy costs one decision, never the host: each fault (trap, endless loop,
//! memory bomb, oversize state, refusal without a reply) is answered with the fail action, its
//! instance is dropped, and the very next call on the same sandbox is answered correctly.

use crate::common;

use crate::common::{MONDAY_10AM, misbehaving_component, sandbox, submission};
use quench::sandbox::{FailAction, SandboxError, SandboxLimits};
use quench::{Action, Sandbox};

fn limits(fail_action: FailAction) -> SandboxLimits {
    SandboxLimits {
        deadline_ms: 100,
        memory_bytes: 8 << 20,
        ready_instances: 1,
        fail_action,
        ..SandboxLimits::default()
    }
}

/// A well-behaved call: the fixture accepts and counts its calls in the state.
fn assert_healthy(policy: &Sandbox, state: &[u8]) -> Vec<u8> {
    let decision = policy
        .evaluate(
            state,
            &submission("a@contoso.com", &["ok@fabrikam.com"]),
            MONDAY_10AM,
        )
        .expect("a well-behaved call succeeds");
    assert_eq!(decision.verdict.action, Action::Accept);
    let before = state
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
    assert_eq!(decision.state, (before + 1).to_le_bytes().to_vec());
    decision.state
}

fn fault(policy: &Sandbox, recipient: &str) -> SandboxError {
    policy
        .evaluate(
            b"\x07\0\0\0",
            &submission("a@contoso.com", &[recipient]),
            MONDAY_10AM,
        )
        .expect_err("the fault surfaces as an error")
}

#[test]
fn each_fault_costs_one_decision_and_the_next_call_is_answered() {
    let policy = sandbox(misbehaving_component(), "", limits(FailAction::Open));
    let mut state = assert_healthy(&policy, &[]);

    let trap = fault(&policy, "trap@fabrikam.com");
    assert!(matches!(trap, SandboxError::Trap(_)), "{trap}");
    state = assert_healthy(&policy, &state);

    let deadline = fault(&policy, "loop@fabrikam.com");
    assert!(
        matches!(deadline, SandboxError::Deadline(100)),
        "{deadline}"
    );
    state = assert_healthy(&policy, &state);

    let bomb = fault(&policy, "grow@fabrikam.com");
    assert!(matches!(bomb, SandboxError::Trap(_)), "{bomb}");
    state = assert_healthy(&policy, &state);

    let garbage = fault(&policy, "garbage@fabrikam.com");
    assert!(
        matches!(garbage, SandboxError::InvalidOutput(_)),
        "{garbage}"
    );
    state = assert_healthy(&policy, &state);

    let noreply = fault(&policy, "noreply@fabrikam.com");
    assert!(
        matches!(noreply, SandboxError::InvalidOutput(_)),
        "{noreply}"
    );
    assert_healthy(&policy, &state);

    let stats = policy.stats();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.traps.load(Relaxed), 2, "trap and memory bomb");
    assert_eq!(stats.deadlines.load(Relaxed), 1);
    assert_eq!(stats.invalid_outputs.load(Relaxed), 2);
    assert_eq!(
        stats.calls.load(Relaxed),
        8,
        "six healthy calls and two invalid answers"
    );
    assert!(
        policy.live_instances() <= 1,
        "dropped instances are not kept alive"
    );
}

#[test]
fn fail_open_accepts_and_keeps_the_state() {
    let policy = sandbox(misbehaving_component(), "", limits(FailAction::Open));
    let state = b"\x05\0\0\0".to_vec();
    for recipient in [
        "trap@x.test",
        "loop@x.test",
        "grow@x.test",
        "garbage@x.test",
    ] {
        let decided = policy.decide(
            &state,
            &submission("a@contoso.com", &[recipient]),
            MONDAY_10AM,
        );
        assert!(decided.fault.is_some(), "{recipient} faults");
        assert_eq!(decided.decision.verdict.action, Action::Accept);
        assert_eq!(decided.decision.verdict.reply, None);
        assert_eq!(
            decided.decision.state, state,
            "the entity's state survives the fault"
        );
    }
}

#[test]
fn fail_closed_defers_with_a_temporary_reply() {
    let policy = sandbox(misbehaving_component(), "", limits(FailAction::Closed));
    let decided = policy.decide(
        &[],
        &submission("a@contoso.com", &["loop@x.test"]),
        MONDAY_10AM,
    );
    assert!(matches!(decided.fault, Some(SandboxError::Deadline(_))));
    assert_eq!(decided.decision.verdict.action, Action::Defer);
    let reply = decided
        .decision
        .verdict
        .reply
        .expect("a deferral carries a reply");
    assert_eq!((reply.code, reply.status.as_str()), (451, "4.7.1"));
}

#[test]
fn concurrent_calls_are_unaffected_by_a_looping_one() {
    let policy = std::sync::Arc::new(sandbox(
        misbehaving_component(),
        "",
        SandboxLimits {
            deadline_ms: 300,
            ready_instances: 4,
            ..SandboxLimits::default()
        },
    ));
    let looping = {
        let policy = policy.clone();
        std::thread::spawn(move || {
            policy.evaluate(
                &[],
                &submission("a@contoso.com", &["loop@x.test"]),
                MONDAY_10AM,
            )
        })
    };
    // While one instance spins until its deadline, others keep answering.
    for _ in 0..50 {
        assert_healthy(&policy, &[]);
    }
    assert!(matches!(
        looping.join().unwrap(),
        Err(SandboxError::Deadline(300))
    ));
}

#[test]
fn a_policy_that_traps_or_refuses_its_config_fails_to_load_with_the_reason() {
    let invalid = quench::Sandbox::builder()
        .source(misbehaving_component())
        .config("invalid")
        .build()
        .err()
        .expect("config errors refuse the load");
    let message = format!("{invalid:#}");
    assert!(
        message.contains("mode: the fixture was asked to refuse its config"),
        "{message}"
    );

    let trapping = quench::Sandbox::builder()
        .source(misbehaving_component())
        .config("trap")
        .build()
        .err()
        .expect("a trap in create refuses the load");
    assert!(format!("{trapping:#}").contains("trapped"), "{trapping:#}");
}

#[test]
fn instances_are_recycled_after_their_call_budget() {
    let policy = sandbox(
        misbehaving_component(),
        "",
        SandboxLimits {
            recycle_after_calls: 3,
            ready_instances: 1,
            ..SandboxLimits::default()
        },
    );
    use std::sync::atomic::Ordering::Relaxed;
    let before = policy.stats().instantiations.load(Relaxed);
    let mut state = Vec::new();
    for _ in 0..9 {
        state = assert_healthy(&policy, &state);
    }
    // 9 calls at 3 per instance: the pre-warmed one, then two fresh ones.
    assert_eq!(policy.stats().instantiations.load(Relaxed) - before, 2);
}

#[test]
fn a_huge_recipient_list_is_refused_by_the_host_not_waved_through() {
    // Under fail-open, a list big enough to run the policy past its deadline would otherwise
    // be accepted unchecked.
    let policy = common::default_policy("");
    let recipients: Vec<String> = (0..200_000).map(|i| format!("r{i}@fabrikam.com")).collect();
    let mut huge = submission("a@contoso.com", &[]);
    huge.recipients = recipients;
    let decided = policy.decide(b"state", &huge, MONDAY_10AM);
    assert!(decided.fault.is_none());
    assert_eq!(decided.decision.verdict.action, Action::Reject);
    assert_eq!(decided.decision.verdict.reply.unwrap().status, "5.5.3");
    assert_eq!(
        decided.decision.state, b"state",
        "nothing counted, nothing lost"
    );
}
