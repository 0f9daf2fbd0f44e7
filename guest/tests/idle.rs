//! `idle`: when a state may be deleted. The promise behind it: an idle state and no state get
//! the same answers, at the time asked and later. Checked on concrete timelines and on random
//! histories, by running both side by side.

mod common;
use common::*;
use quench_default_policy::Policy;

#[test]
fn a_quiet_sender_becomes_idle_once_every_window_has_drained() {
    let mut h = H::new(&limits_config(10, 10, 100, "BlockUser"));
    let a = "alice@contoso.com";
    let t = at(0, 9, 0, 0);
    assert_eq!(v(&h.send(a, ext(3), t)), V::Ok);
    let state = h.state(&user(a));
    assert!(!h.policy.idle(&state, t), "just counted");
    assert!(
        !h.policy.idle(&state, t + 2 * HOUR),
        "the hour has drained, the day has not"
    );
    assert!(
        !h.policy.idle(&state, t + 23 * HOUR),
        "the 24-hour service rate still counts"
    );
    assert!(
        h.policy.idle(&state, t + 26 * HOUR),
        "every window has drained"
    );
    assert!(h.policy.idle(&[], t), "no state is idle");
}

#[test]
fn block_user_is_never_idle_until_unblocked() {
    let mut h = H::new(&limits_config(1, 10, 100, "BlockUser"));
    let a = "alice@contoso.com";
    let t = at(0, 9, 0, 0);
    h.send(a, ext(1), t);
    assert_eq!(v(&h.send(a, ext(1), t + 1)), V::Reject("5.1.8"));
    let state = h.state(&user(a));
    for later in [t + DAY, t + 30 * DAY, t + 400 * DAY] {
        assert!(!h.policy.idle(&state, later), "restricted at {later}");
    }
}

#[test]
fn an_unblock_keeps_state_for_the_unblock_window() {
    let cfg = format!(
        "unblock_limit = {{ count = 2, window_days = 7 }}\n{}",
        limits_config(1, 10, 100, "BlockUser")
    );
    let mut h = H::new(&cfg);
    let a = "alice@contoso.com";
    let t = at(0, 9, 0, 0);
    h.send(a, ext(1), t);
    h.send(a, ext(1), t + 1);
    h.unblock(a, t + 60).expect("unblock allowed");
    let state = h.state(&user(a));
    assert!(
        !h.policy.idle(&state, t + 3 * DAY),
        "the unblock still counts"
    );
    assert!(
        h.policy.idle(&state, t + 8 * DAY),
        "the unblock left the 7-day window"
    );
}

#[test]
fn block_user_for_today_lifts_and_then_the_state_goes_idle() {
    let mut h = H::new(&limits_config(1, 10, 100, "BlockUserForToday"));
    let a = "alice@contoso.com";
    let t = at(0, 9, 0, 0);
    h.send(a, ext(1), t);
    h.send(a, ext(1), t + 1);
    let state = h.state(&user(a));
    assert!(
        !h.policy.idle(&state, at(0, 23, 0, 0)),
        "restricted until midnight"
    );
    assert!(h.policy.idle(&state, at(2, 0, 0, 0)), "lifted and drained");
}

#[test]
fn unreadable_and_clock_skewed_states_are_not_idle() {
    let h = H::new("");
    for garbage in [&[0u8][..], &[9, 9, 9], &[1, 1]] {
        assert!(!h.policy.idle(garbage, at(100, 0, 0, 0)), "{garbage:?}");
    }
    let mut h = H::new(&limits_config(10, 10, 100, "BlockUser"));
    let a = "alice@contoso.com";
    h.send(a, ext(1), at(5, 9, 0, 0));
    // Asked at a time before the state's latest time (the clock went back): keep it.
    assert!(!h.policy.idle(&h.state(&user(a)), at(1, 0, 0, 0)));
}

fn random_submission(r: &mut Rng, who: &Entity) -> Submission {
    let n = 1 + r.below(3) as usize;
    let recipients = (0..n)
        .map(|i| match r.below(2) {
            0 => format!("x{i}@fabrikam.com"),
            _ => format!("r{i}@contoso.com"),
        })
        .collect();
    Submission {
        entity: who.clone(),
        sender: who.id.clone(),
        recipients,
        message_id: match r.below(3) {
            0 => None,
            n => Some(format!("M{n}")),
        },
    }
}

/// The answer a host acts on: verdict, reply and the restriction record.
fn answer(d: &Decision) -> (Verdict, Option<Restriction>) {
    (d.verdict.clone(), d.restriction.clone())
}

#[test]
fn an_idle_state_answers_like_no_state_on_random_histories() {
    let cfg = r#"
accepted_domains = ["contoso.com"]
unblock_limit = { count = 2, window_days = 2 }
max_recipient_envelope_limit = 4
[[outbound]]
name = "tight"
from = ["alice@contoso.com"]
recipient_limit_external_per_hour = 3
recipient_limit_per_day = 6
action_when_threshold_reached = "BlockUserForToday"
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 4
recipient_limit_internal_per_hour = 5
action_when_threshold_reached = "BlockUser"
"#;
    let p = Policy::from_config(cfg).unwrap();
    let mut r = Rng(0x5eed_1d1e);
    let mut idle_seen = 0;
    for history in 0..300 {
        let who = user(if history % 2 == 0 {
            "alice@contoso.com"
        } else {
            "bob@contoso.com"
        });
        // A random history: sends, sometimes an unblock, over up to three days.
        let mut state = Vec::new();
        let mut t = at(0, r.below(24) as i64, 0, 0);
        for _ in 0..r.below(40) {
            t += r.below(4 * HOUR as u64) as i64;
            if r.below(8) == 0 {
                let req = UnblockRequest {
                    entity: who.clone(),
                    role: Role::Support,
                    admin: "a".into(),
                    reason: "r".into(),
                    grace: Default::default(),
                };
                if let Ok(g) = p.unblock(&state, &req, t) {
                    state = g.state;
                }
            } else {
                state = p
                    .evaluate(&state, &random_submission(&mut r, &who), t)
                    .state;
            }
        }
        // Ask at a later time; where the policy says idle, run the kept state and no state
        // side by side through the same future.
        let probe = t + r.below(5 * DAY as u64) as i64;
        if !p.idle(&state, probe) {
            continue;
        }
        idle_seen += 1;
        let (mut kept, mut fresh) = (state, Vec::new());
        let mut now = probe;
        for step in 0..12 {
            let sub = random_submission(&mut r, &who);
            let a = p.evaluate(&kept, &sub, now);
            let b = p.evaluate(&fresh, &sub, now);
            assert_eq!(answer(&a), answer(&b), "history {history}, step {step}");
            assert_eq!(
                p.describe(&a.state, &who, now),
                p.describe(&b.state, &who, now)
            );
            (kept, fresh) = (a.state, b.state);
            now += r.below(600) as i64;
        }
    }
    assert!(
        idle_seen > 50,
        "the histories reach idle often enough ({idle_seen})"
    );
}
