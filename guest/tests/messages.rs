//! A message counts once, however its recipients interleave with the entity's other messages:
//! the messages in flight (per-message totals, the message rate, expiry, eviction) and the
//! migration of `quench-default/1` states.

mod common;
use common::*;

const CFG: &str = r#"
accepted_domains = ["contoso.com"]
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 10000
recipient_limit_internal_per_hour = 10000
recipient_limit_per_day = 10000
"#;

fn one(i: usize) -> Vec<String> {
    vec![format!("r{i}@contoso.com")]
}

#[test]
fn interleaved_messages_count_once_each() {
    // Two connections of one user, RCPT by RCPT: 20 + 20 recipients, alternating.
    let mut h = H::new(CFG);
    let a = "alice@contoso.com";
    let t = at(0, 10, 0, 0);
    for i in 0..20 {
        for id in ["inst-A", "inst-B"] {
            let d = h.send_part(a, id, one(i), t + i as i64);
            assert_eq!(v(&d), V::Ok, "{id} rcpt {i}");
        }
    }
    // Two messages in the minute: 28 more new ones fit (without ids, so the two stay in
    // flight), the 31st is deferred.
    for m in 0..28 {
        let d = h.send(a, one(m), t + 30);
        assert_eq!(v(&d), V::Ok, "message {m}");
    }
    let d = h.send_part(a, "one-too-many", one(0), t + 31);
    assert_eq!(v(&d), V::Defer("4.4.2"));
    // But the two interleaved messages may still continue.
    assert_eq!(v(&h.send_part(a, "inst-A", one(99), t + 32)), V::Ok);
    assert_eq!(v(&h.send_part(a, "inst-B", one(99), t + 33)), V::Ok);
}

#[test]
fn forty_messages_interleaved_in_pairs_are_admitted() {
    // 40 messages x 5 recipients over 2 minutes, two in flight at a time, alternating:
    // 20 messages a minute, under the rate of 30, so every call is accepted.
    let mut h = H::new(CFG);
    let a = "alice@contoso.com";
    let mut t = at(0, 10, 0, 0);
    for pair in 0..20 {
        for r in 0..5 {
            for m in [2 * pair, 2 * pair + 1] {
                let d = h.send_part(a, &format!("Q{m}"), one(r), t);
                assert_eq!(v(&d), V::Ok, "message {m} rcpt {r}");
            }
        }
        t += 6;
    }
}

#[test]
fn per_message_limit_adds_up_across_interleaving() {
    let cfg = format!("max_recipient_envelope_limit = 10\n{CFG}");
    let mut h = H::new(&cfg);
    let a = "alice@contoso.com";
    let t = at(0, 10, 0, 0);
    for i in 0..10 {
        assert_eq!(v(&h.send_part(a, "A", one(i), t)), V::Ok);
        assert_eq!(v(&h.send_part(a, "B", one(i), t)), V::Ok);
    }
    assert_eq!(v(&h.send_part(a, "A", one(10), t)), V::Reject("5.5.3"));
    assert_eq!(v(&h.send_part(a, "B", one(10), t)), V::Reject("5.5.3"));
    // A refused call is not counted: A stays at 10.
    assert_eq!(v(&h.send_part(a, "A", one(11), t + 1)), V::Reject("5.5.3"));
    assert_eq!(v(&h.send_part(a, "C", ext(10), t + 1)), V::Ok);
}

#[test]
fn no_message_id_is_a_message_per_call() {
    let mut h = H::new(CFG);
    let a = "alice@contoso.com";
    let t = at(0, 10, 0, 0);
    for i in 0..30 {
        assert_eq!(v(&h.send(a, one(i), t)), V::Ok, "{i}");
    }
    assert_eq!(v(&h.send(a, one(30), t)), V::Defer("4.4.2"));
}

#[test]
fn more_than_sixteen_in_flight_forgets_the_least_recently_seen() {
    let mut h = H::new(CFG);
    let a = "alice@contoso.com";
    let t = at(0, 10, 0, 0);
    // 17 messages, one recipient each: the first is forgotten.
    for m in 0..17 {
        assert_eq!(v(&h.send_part(a, &format!("M{m}"), one(0), t)), V::Ok);
    }
    // M1..M16 continue without counting a message: 17 so far, 13 left in the minute.
    for m in 1..17 {
        assert_eq!(v(&h.send_part(a, &format!("M{m}"), one(1), t + 1)), V::Ok);
    }
    // M0 counts again (the 18th), so 12 more new messages fit, then a deferral.
    assert_eq!(v(&h.send_part(a, "M0", one(1), t + 2)), V::Ok);
    for m in 0..12 {
        let d = h.send_part(a, &format!("N{m}"), one(0), t + 3);
        assert_eq!(v(&d), V::Ok, "N{m}");
    }
    assert_eq!(v(&h.send_part(a, "N12", one(0), t + 3)), V::Defer("4.4.2"));
}

#[test]
fn a_message_unseen_for_ten_minutes_is_over() {
    let cfg = format!("message_rate_limit = 1\n{CFG}");
    let mut h = H::new(&cfg);
    let a = "alice@contoso.com";
    let t = at(0, 10, 0, 0);
    assert_eq!(v(&h.send_part(a, "slow", one(0), t)), V::Ok);
    // Within the minute a new message is deferred (rate 1), a continuation is not.
    assert_eq!(
        v(&h.send_part(a, "other", one(0), t + 5)),
        V::Defer("4.4.2")
    );
    // 600 s after its last call it still continues (nothing counted: still in flight).
    assert_eq!(v(&h.send_part(a, "slow", one(1), t + 600)), V::Ok);
    assert_eq!(v(&h.send_part(a, "slow", one(2), t + 1_200)), V::Ok);
    // 601 s after: a new message. It counts in the minute, so a next new one is deferred.
    assert_eq!(v(&h.send_part(a, "slow", one(3), t + 1_801)), V::Ok);
    assert_eq!(
        v(&h.send_part(a, "other", one(0), t + 1_802)),
        V::Defer("4.4.2")
    );
    assert_eq!(v(&h.send_part(a, "slow", one(4), t + 1_803)), V::Ok);
}

#[test]
fn messages_are_per_entity() {
    let cfg = format!("message_rate_limit = 1\n{CFG}");
    let mut h = H::new(&cfg);
    let t = at(0, 10, 0, 0);
    assert_eq!(v(&h.send_part("alice@contoso.com", "Q", one(0), t)), V::Ok);
    // Bob's message with the same id is his own, new message.
    assert_eq!(v(&h.send_part("bob@contoso.com", "Q", one(0), t)), V::Ok);
    assert_eq!(
        v(&h.send_part("bob@contoso.com", "R", one(0), t)),
        V::Defer("4.4.2")
    );
}

/// A state the `quench-default/1` policy wrote: alice's message "4XyZ1abc" in flight with 4
/// recipients at 09:30:05, 1 message in the minute (see `state.rs` for its decoding).
const V1_BUSY: &[u8] = &[
    1, 0, 0, 0, 186, 158, 160, 176, 13, 7, 1, 0, 0, 0, 0, 0, 2, 1, 3, 6, 1, 6, 1, 1, 1, 11, 190,
    168, 175, 212, 60, 238, 169, 4, 0,
];

#[test]
fn a_v1_state_continues_its_message_after_the_upgrade() {
    let cfg = "accepted_domains = ['contoso.com']\nmax_recipient_envelope_limit = 6\nmessage_rate_limit = 2\n[[outbound]]\nname = 'Default'\nrecipient_limit_external_per_hour = 5\naction_when_threshold_reached = 'BlockUser'";
    let mut h = H::new(cfg);
    let a = "alice@contoso.com";
    h.states.insert(user(a), V1_BUSY.to_vec());
    assert!(h.describe(&user(a), at(0, 9, 30, 6)).is_none());
    // The message continues: 4 + 2 = 6 fits the per-message limit, no message counted.
    let d = h.send_part(a, "4XyZ1abc", int(2), at(0, 9, 30, 6));
    assert_eq!(v(&d), V::Ok);
    assert!(d.alerts.is_empty(), "no state-unreadable alert");
    assert_eq!(d.state[0], 2, "written back as v2");
    assert_eq!(
        v(&h.send_part(a, "4XyZ1abc", int(1), at(0, 9, 30, 7))),
        V::Reject("5.5.3")
    );
    // The minute held 1 message: one new message fits (rate 2), the next is deferred.
    assert_eq!(v(&h.send_part(a, "new", int(1), at(0, 9, 30, 8))), V::Ok);
    assert_eq!(
        v(&h.send_part(a, "newer", int(1), at(0, 9, 30, 9))),
        V::Defer("4.4.2")
    );
    // The hour's 3 external recipients carried over: 2 more trip the limit of 5.
    let d = h.send(a, ext(2), at(0, 9, 45, 0));
    assert_eq!(v(&d), V::Ok);
    let d = h.send(a, ext(1), at(0, 9, 45, 1));
    assert_eq!(v(&d), V::Reject("5.1.8"));
    assert_eq!(d.restriction.unwrap().evidence.observed, 6);
}

#[test]
fn a_restricted_v1_state_stays_restricted() {
    let restricted: &[u8] = &[
        1, 1, 1, 7, 68, 101, 102, 97, 117, 108, 116, 0, 5, 6, 194, 186, 160, 176, 13, 1, 3, 81, 49,
        48, 0, 0, 0, 194, 186, 160, 176, 13, 1, 3, 0, 3, 1, 3, 1, 1, 1, 223, 152, 207, 181, 7, 11,
        63, 9, 3, 1,
    ];
    let mut h = H::new(&limits_config(5, 100, 100, "BlockUser"));
    let c = user("carol@contoso.com");
    h.states.insert(c.clone(), restricted.to_vec());
    let r = h.describe(&c, at(3, 0, 0, 0)).expect("still restricted");
    assert_eq!(r.evidence.last_message_id.as_deref(), Some("Q10"));
    let d = h.send("carol@contoso.com", int(1), at(3, 0, 0, 0));
    assert_eq!(v(&d), V::Reject("5.1.8"));
    assert!(h.unblock("carol@contoso.com", at(3, 0, 0, 1)).is_ok());
}

#[test]
fn a_connector_keeps_sixty_four_messages_in_flight() {
    let cfg = format!("max_recipient_envelope_limit = 2\n{CFG}");
    let mut h = H::new(&cfg);
    let t = at(0, 10, 0, 0);
    let part = |id: String, rcpt: usize| Submission {
        entity: connector("scanner-relay"),
        sender: "app@contoso.com".into(),
        recipients: one(rcpt),
        message_id: Some(id),
    };
    // 65 messages of one recipient each, from many senders at once.
    for m in 0..65 {
        assert_eq!(v(&h.submit(part(format!("C{m}"), 0), t)), V::Ok);
    }
    // C1..C64 are in flight: a second recipient fits, a third does not.
    for m in 1..65 {
        assert_eq!(v(&h.submit(part(format!("C{m}"), 1), t + 1)), V::Ok);
    }
    assert_eq!(
        v(&h.submit(part("C64".into(), 2), t + 2)),
        V::Reject("5.5.3")
    );
    // C0 was forgotten (the 65th): it starts again.
    assert_eq!(v(&h.submit(part("C0".into(), 1), t + 2)), V::Ok);
    assert_eq!(v(&h.submit(part("C0".into(), 2), t + 2)), V::Ok);
    assert_eq!(
        v(&h.submit(part("C0".into(), 3), t + 2)),
        V::Reject("5.5.3")
    );
}
