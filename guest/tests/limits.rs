//! Outbound limits, actions, scoping, Send As, time edges: table-driven through the public API.

mod common;
use common::*;

/// One step of a scenario: who sends what when, and the expected verdict.
struct Step {
    at: i64,
    external: usize,
    internal: usize,
    want: V,
}

fn step(at: i64, external: usize, internal: usize, want: V) -> Step {
    Step {
        at,
        external,
        internal,
        want,
    }
}

fn mixed(external: usize, internal: usize) -> Vec<String> {
    let mut r = ext(external);
    r.extend(int(internal));
    r
}

#[test]
fn per_submitter_limits_table() {
    use V::*;
    let t = |h, m| at(0, h, m, 0);
    // (name, config (ext/h, int/h, per day, action), steps, tripped limit key of the last refusal)
    type Case = (
        &'static str,
        (u32, u32, u32, &'static str),
        Vec<Step>,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "external per hour: the submission that would pass the limit is refused",
            (3, 100, 100, "BlockUser"),
            vec![
                step(t(10, 0), 2, 0, Ok),
                step(t(10, 1), 1, 0, Ok),
                step(t(10, 2), 1, 0, Reject("5.1.8")),
            ],
            Some("recipient_limit_external_per_hour"),
        ),
        (
            "a multi-recipient submission is refused whole",
            (3, 100, 100, "BlockUser"),
            vec![
                step(t(10, 0), 2, 0, Ok),
                step(t(10, 1), 2, 0, Reject("5.1.8")),
            ],
            Some("recipient_limit_external_per_hour"),
        ),
        (
            "internal recipients do not count toward the external limit",
            (3, 100, 200, "BlockUser"),
            vec![
                step(t(10, 0), 3, 0, Ok),
                step(t(10, 1), 0, 50, Ok),
                step(t(10, 2), 0, 50, Ok),
            ],
            None,
        ),
        (
            "internal per hour",
            (100, 5, 100, "BlockUser"),
            vec![
                step(t(10, 0), 0, 5, Ok),
                step(t(10, 1), 10, 0, Ok),
                step(t(10, 2), 0, 1, Reject("5.1.8")),
            ],
            Some("recipient_limit_internal_per_hour"),
        ),
        (
            "per day counts internal and external",
            (5, 5, 8, "BlockUser"),
            vec![
                step(t(8, 0), 4, 4, Ok),
                step(t(12, 0), 0, 1, Reject("5.1.8")),
            ],
            Some("recipient_limit_per_day"),
        ),
        (
            "hourly windows slide: counts older than an hour (plus one 5-minute bucket) leave",
            (3, 100, 100, "BlockUser"),
            vec![
                step(t(10, 0), 3, 0, Ok),
                step(t(11, 5), 3, 0, Ok),
                step(t(12, 10), 3, 0, Ok),
            ],
            None,
        ),
        (
            "hourly windows never let more through than the limit within an hour",
            (3, 100, 100, "BlockUser"),
            vec![
                step(t(10, 0), 3, 0, Ok),
                step(t(10, 59), 1, 0, Reject("5.1.8")),
            ],
            Some("recipient_limit_external_per_hour"),
        ),
        (
            "Alert accepts past the limit",
            (2, 100, 100, "Alert"),
            vec![
                step(t(10, 0), 2, 0, Ok),
                step(t(10, 1), 5, 0, Ok),
                step(t(10, 2), 5, 0, Ok),
            ],
            None,
        ),
        (
            "BlockUserForToday refuses like BlockUser",
            (2, 100, 100, "BlockUserForToday"),
            vec![
                step(t(10, 0), 2, 0, Ok),
                step(t(10, 1), 1, 0, Reject("5.1.8")),
            ],
            Some("recipient_limit_external_per_hour"),
        ),
    ];
    for (name, (e, i, d, action), steps, tripped) in cases {
        let mut h = H::new(&limits_config(e, i, d, action));
        let mut last = None;
        for (n, s) in steps.iter().enumerate() {
            let dec = h.send("alice@contoso.com", mixed(s.external, s.internal), s.at);
            assert_eq!(v(&dec), s.want, "{name}: step {n}");
            last = Some(dec);
        }
        let last = last.unwrap();
        match tripped {
            Some(key) => {
                let r = last.restriction.expect(name);
                assert_eq!(r.evidence.limit, key, "{name}");
                assert_eq!(last.change, RestrictionChange::Started, "{name}");
            }
            None => assert!(last.restriction.is_none(), "{name}"),
        }
    }
}

#[test]
fn evidence_is_complete() {
    let mut h = H::new(&limits_config(3, 100, 100, "BlockUser"));
    h.send("alice@contoso.com", ext(2), at(0, 10, 0, 0));
    let d = h.send_part("alice@contoso.com", "MSG-42", ext(2), at(0, 10, 1, 0));
    let r = d.restriction.unwrap();
    assert_eq!(r.entity, user("alice@contoso.com"));
    assert_eq!(r.kind, RestrictionKind::BlockUser);
    assert_eq!(r.expires, None);
    assert_eq!(r.created, at(0, 10, 1, 0));
    let e = &r.evidence;
    assert_eq!(e.policy, "Default");
    assert_eq!(e.limit, "recipient_limit_external_per_hour");
    assert_eq!((e.threshold, e.observed, e.window_seconds), (3, 4, 3600));
    assert_eq!(e.at, at(0, 10, 1, 0));
    assert_eq!(e.last_message_id.as_deref(), Some("MSG-42"));
    let pairs: Vec<(&str, &str)> = e
        .reason
        .split(';')
        .map(|kv| kv.split_once('=').expect("key=value"))
        .collect();
    for (k, want) in [
        ("Policy", "Default"),
        ("Limit", "recipient_limit_external_per_hour"),
        ("Threshold", "3"),
        ("Observed", "4"),
        ("WindowSeconds", "3600"),
        ("At", "2026-11-23T10:01:00Z"),
        ("LastMessageId", "MSG-42"),
        ("Restriction", "BlockUser"),
        ("Expires", "never"),
    ] {
        assert!(
            pairs.contains(&(k, want)),
            "{k}={want} missing from {}",
            e.reason
        );
    }
    assert_eq!((r.unblocks_used, r.unblocks_left), (0, 3));
}

#[test]
fn restricted_entity_is_refused_whatever_its_recipients() {
    let mut h = H::new(&limits_config(1, 100, 100, "BlockUser"));
    let a = "alice@contoso.com";
    h.send(a, ext(1), at(0, 9, 0, 0));
    assert_eq!(v(&h.send(a, ext(1), at(0, 9, 1, 0))), V::Reject("5.1.8"));
    for (name, rcpts) in [
        ("none", vec![]),
        ("internal", int(1)),
        ("external", ext(1)),
        ("odd", vec!["x".into()]),
    ] {
        for day in [0, 1, 30] {
            let d = h.send(a, rcpts.clone(), at(day, 12, 0, 0));
            assert_eq!(v(&d), V::Reject("5.1.8"), "{name} day {day}");
            assert_eq!(d.change, RestrictionChange::None);
            assert!(d.restriction.is_some());
            assert!(d.alerts.is_empty(), "no repeated alerts");
        }
    }
}

#[test]
fn block_user_for_today_lifts_at_utc_midnight_to_the_second() {
    // Trip the per-day limit (3) at various times; per-day counts reset at midnight, so the
    // first second of the next day accepts again.
    for trip in [
        at(0, 0, 0, 0),
        at(0, 0, 0, 1),
        at(0, 12, 0, 0),
        at(0, 23, 59, 58),
        at(0, 23, 59, 59),
    ] {
        let mut h = H::new(&limits_config(100, 100, 3, "BlockUserForToday"));
        let a = "alice@contoso.com";
        h.send(a, int(3), trip);
        let d = h.send(a, int(1), trip);
        assert_eq!(v(&d), V::Reject("5.1.8"));
        let r = d.restriction.unwrap();
        assert_eq!(r.kind, RestrictionKind::BlockUserForToday);
        let midnight = at(1, 0, 0, 0);
        assert_eq!(r.expires, Some(midnight), "trip at {trip}");
        assert!(h.describe(&user(a), midnight - 1).is_some());
        assert!(h.describe(&user(a), midnight).is_none());
        assert_eq!(
            v(&h.send(a, int(1), midnight - 1)),
            V::Reject("5.1.8"),
            "one second before"
        );
        let d = h.send(a, int(1), midnight);
        assert_eq!(v(&d), V::Ok, "at midnight (trip at {trip})");
        assert_eq!(d.change, RestrictionChange::Lifted);
        assert!(d.restriction.is_none());
    }
}

#[test]
fn per_day_resets_at_midnight_and_hourly_windows_slide_across_it() {
    let a = "alice@contoso.com";
    // Per day (Alert, so nothing restricts): full at 23:59:59, fresh at 00:00:00.
    let mut h = H::new(&limits_config(100, 100, 2, "Alert"));
    h.send(a, int(2), at(0, 23, 59, 58));
    let d = h.send(a, int(1), at(0, 23, 59, 59));
    assert_eq!(alert_names(&d), vec!["Email sending limit exceeded"]);
    let d = h.send(a, int(2), at(1, 0, 0, 0));
    assert!(d.alerts.is_empty(), "a new UTC day: {:?}", d.alerts);

    // External per hour slides across midnight.
    let mut h = H::new(&limits_config(2, 100, 100, "BlockUser"));
    h.send(a, ext(2), at(0, 23, 50, 0));
    assert_eq!(v(&h.send(a, ext(1), at(1, 0, 10, 0))), V::Reject("5.1.8"));
}

#[test]
fn block_user_is_not_restricted_again_the_day_it_was_unblocked() {
    let a = "alice@contoso.com";
    let mut h = H::new(&limits_config(2, 100, 100, "BlockUser"));
    h.send(a, ext(2), at(0, 10, 0, 0));
    assert_eq!(v(&h.send(a, ext(1), at(0, 10, 1, 0))), V::Reject("5.1.8"));
    h.unblock(a, at(0, 10, 5, 0)).expect("unblock");
    // Far past the limits, the same UTC day: accepted.
    for (i, t) in [
        at(0, 10, 6, 0),
        at(0, 10, 7, 0),
        at(0, 18, 0, 0),
        at(0, 23, 59, 59),
    ]
    .into_iter()
    .enumerate()
    {
        let d = h.send(a, ext(2), t);
        assert_eq!(v(&d), V::Ok, "step {i}");
        assert!(d.restriction.is_none());
    }
    // The next UTC day, limits restrict again (the 23:59:59 counts are still in the hour).
    let d = h.send(a, ext(1), at(1, 0, 0, 0));
    assert_eq!(v(&d), V::Reject("5.1.8"));
    assert_eq!(d.change, RestrictionChange::Started);
}

#[test]
fn unblock_clears_the_windows_that_tripped() {
    let a = "alice@contoso.com";
    let mut h = H::new(&limits_config(3, 100, 5, "BlockUser"));
    h.send(a, ext(3), at(0, 23, 58, 0));
    h.send(a, ext(1), at(0, 23, 58, 30));
    h.unblock(a, at(0, 23, 59, 0)).unwrap();
    // The exemption ends at midnight; the counts from 23:58 would trip the hourly limit if
    // they had not been cleared.
    let d = h.send(a, ext(3), at(1, 0, 0, 30));
    assert_eq!(v(&d), V::Ok);
    // And the window counts again from there.
    assert_eq!(v(&h.send(a, ext(1), at(1, 0, 1, 0))), V::Reject("5.1.8"));
}

#[test]
fn send_as_is_held_to_the_stricter_policy_and_counts_on_the_submitter() {
    let cfg = r#"
accepted_domains = ["contoso.com"]
[[outbound]]
name = "Shared mailboxes"
priority = 0
from = ["shared@contoso.com"]
recipient_limit_external_per_hour = 100
action_when_threshold_reached = "BlockUser"
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 3
action_when_threshold_reached = "BlockUser"
"#;
    let mut h = H::new(cfg);
    let alice = "alice@contoso.com";
    // As the shared mailbox: its lenient policy (100/h) cannot lift alice's own (3/h).
    assert_eq!(
        v(&h.send_as(alice, "shared@contoso.com", ext(3), at(0, 9, 0, 0))),
        V::Ok
    );
    let d = h.send_as(alice, "Shared@Contoso.com", ext(1), at(0, 9, 1, 0));
    assert_eq!(v(&d), V::Reject("5.1.8"));
    let r = d.restriction.unwrap();
    assert_eq!(r.entity, user(alice));
    assert_eq!(
        r.evidence.policy, "Default",
        "the policy of the tripped limit"
    );
    assert_eq!((r.evidence.threshold, r.evidence.observed), (3, 4));
    // The restriction is alice's, whoever she sends as; the shared mailbox has no state.
    assert_eq!(
        v(&h.send_as(alice, alice, ext(1), at(0, 9, 3, 0))),
        V::Reject("5.1.8")
    );
    assert!(!h.states.contains_key(&user("shared@contoso.com")));
    // The shared mailbox sending for itself: its own policy.
    let mut h = H::new(cfg);
    assert_eq!(
        v(&h.send("shared@contoso.com", ext(50), at(0, 9, 0, 0))),
        V::Ok
    );
    // An empty sender (null reverse path) falls back to the entity for policy selection.
    h.send_as("shared@contoso.com", "", ext(25), at(0, 9, 1, 0));
    assert_eq!(
        v(&h.send_as("shared@contoso.com", "<>", ext(25), at(0, 9, 2, 0))),
        V::Ok
    );
}

#[test]
fn a_scoped_user_cannot_escape_by_choosing_another_sender() {
    let cfg = r#"
accepted_domains = ["contoso.com"]
[[outbound]]
name = "Strict"
from = ["svc@contoso.com"]
recipient_limit_external_per_hour = 2
action_when_threshold_reached = "BlockUser"
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 50
action_when_threshold_reached = "BlockUserForToday"
"#;
    for sender in [
        "svc2+x@contoso.com",
        "other@contoso.com",
        "someone@fabrikam.com",
        "not an address",
    ] {
        let mut h = H::new(cfg);
        let svc = "svc@contoso.com";
        assert_eq!(
            v(&h.send_as(svc, sender, ext(2), at(0, 9, 0, 0))),
            V::Ok,
            "{sender}"
        );
        let d = h.send_as(svc, sender, ext(1), at(0, 9, 0, 1));
        assert_eq!(v(&d), V::Reject("5.1.8"), "{sender}");
        let r = d.restriction.unwrap();
        assert_eq!(r.evidence.policy, "Strict", "{sender}");
        assert_eq!(r.evidence.threshold, 2, "{sender}");
        assert_eq!(
            r.kind,
            RestrictionKind::BlockUser,
            "{sender}: stronger action"
        );
        assert_eq!(r.expires, None);
    }
}

#[test]
fn stricter_of_two_policies_is_per_limit_with_the_stronger_action() {
    // The submitter's policy is strict on external mail but alerts only; the sender's is
    // strict on internal mail and blocks for the day.
    let cfg = r#"
accepted_domains = ["contoso.com"]
[[outbound]]
name = "Submitter"
from = ["alice@contoso.com"]
recipient_limit_external_per_hour = 2
recipient_limit_internal_per_hour = 100
recipient_limit_per_day = 0
action_when_threshold_reached = "Alert"
[[outbound]]
name = "Sender"
from = ["team@contoso.com"]
recipient_limit_external_per_hour = 50
recipient_limit_internal_per_hour = 3
recipient_limit_per_day = 5000
action_when_threshold_reached = "BlockUserForToday"
"#;
    let alice = "alice@contoso.com";
    let team = "team@contoso.com";
    // External: the submitter's 2, under the sender's BlockUserForToday.
    let mut h = H::new(cfg);
    h.send_as(alice, team, ext(2), at(0, 9, 0, 0));
    let d = h.send_as(alice, team, ext(1), at(0, 9, 0, 1));
    assert_eq!(v(&d), V::Reject("5.1.8"));
    let r = d.restriction.unwrap();
    assert_eq!(r.kind, RestrictionKind::BlockUserForToday);
    assert_eq!(
        (r.evidence.policy.as_str(), r.evidence.limit.as_str()),
        ("Submitter", "recipient_limit_external_per_hour")
    );
    assert!(d.alerts.iter().any(|a| a.summary.contains("\"Submitter\"")));
    // Internal: the sender's 3.
    let mut h = H::new(cfg);
    h.send_as(alice, team, int(3), at(0, 9, 0, 0));
    let r = h
        .send_as(alice, team, int(1), at(0, 9, 0, 1))
        .restriction
        .unwrap();
    assert_eq!(
        (r.evidence.policy.as_str(), r.evidence.threshold),
        ("Sender", 3)
    );
    // 0 is "no policy limit": the other policy's 1000 applies, whichever side it is on.
    for (own, other, want) in [(0, 1000, "Sender"), (1000, 0, "Submitter")] {
        let cfg = format!(
            r#"
[[outbound]]
name = "Submitter"
from = ["alice@contoso.com"]
recipient_limit_external_per_hour = 10000
recipient_limit_per_day = {own}
[[outbound]]
name = "Sender"
from = ["team@contoso.com"]
recipient_limit_external_per_hour = 10000
recipient_limit_per_day = {other}
"#
        );
        let mut h = H::new(&cfg);
        h.send_as(alice, team, ext(500), at(0, 9, 0, 0));
        h.send_as(alice, team, ext(500), at(0, 9, 1, 0));
        let r = h
            .send_as(alice, team, ext(1), at(0, 9, 2, 0))
            .restriction
            .expect("the day limit trips");
        assert_eq!(
            (
                r.evidence.policy.as_str(),
                r.evidence.limit.as_str(),
                r.evidence.threshold
            ),
            (want, "recipient_limit_per_day", 1000)
        );
    }
    // Without Send As only the submitter's own policy applies: Alert, nothing blocks.
    let mut h = H::new(cfg);
    h.send(alice, ext(2), at(0, 9, 0, 0));
    let d = h.send(alice, ext(5), at(0, 9, 0, 1));
    assert_eq!(v(&d), V::Ok);
    assert_eq!(alert_names(&d), vec!["Email sending limit exceeded"]);
}

#[test]
fn address_case_variants_are_one_address() {
    // ext limit 1, internal limit 100: a recipient classified internal never trips.
    let cfg = r#"
accepted_domains = ["Contoso.COM", "fabrikam.co.uk."]
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 1
"#;
    for (rcpt, internal) in [
        ("bob@contoso.com", true),
        ("Bob@CONTOSO.com", true),
        ("<BOB@Contoso.Com>", true),
        ("bob@contoso.com.", true),
        (" bob@contoso.com ", true),
        ("Bob <bob@contoso.com>", true),
        ("bob@FABRIKAM.CO.UK", true),
        ("bob@sub.contoso.com", false),
        ("bob@contoso.com.evil.example", false),
        ("bob@notcontoso.com", false),
        ("contoso.com", false),
        ("bob@", false),
        ("", false),
    ] {
        let mut h = H::new(cfg);
        h.send("alice@contoso.com", vec![rcpt.to_string()], at(0, 9, 0, 0));
        let second = h.send("alice@contoso.com", vec![rcpt.to_string()], at(0, 9, 1, 0));
        assert_eq!(v(&second) == V::Ok, internal, "{rcpt:?}");
    }
}

/// Which policy applies to `sender` sending as itself: trip limit 1 and read the evidence.
fn policy_for(cfg: &str, sender: &str) -> String {
    let mut h = H::new(cfg);
    for i in 0..20 {
        let d = h.send_as(sender, sender, ext(1), at(0, 9, i, 0));
        if let Some(r) = d.restriction {
            return r.evidence.policy;
        }
    }
    panic!("no restriction for {sender}");
}

#[test]
fn scoping_and_priority() {
    let cfg = r#"
accepted_domains = ["contoso.com"]
[groups]
"execs@contoso.com" = ["ceo@contoso.com", "CFO@contoso.com", "board@contoso.com"]
"board@contoso.com" = ["chair@fabrikam.com"]

[[outbound]]                     # listed first, but priority 5
name = "Late"
priority = 5
sender_domain_is = ["contoso.com"]
recipient_limit_external_per_hour = 5

[[outbound]]
name = "Execs"
priority = 0
from_member_of = ["Execs@Contoso.com"]
except_if_from = ["cfo@contoso.com"]
recipient_limit_external_per_hour = 1

[[outbound]]
name = "Sales"
priority = 1
sender_domain_is = ["sales.contoso.com"]
except_if_from_member_of = ["execs@contoso.com"]
except_if_sender_domain_is = ["interns.sales.contoso.com"]
recipient_limit_external_per_hour = 2

[[outbound]]
name = "Both"
priority = 2
from = ["x@fabrikam.com", "y@tailspin.com"]
sender_domain_is = ["fabrikam.com"]
recipient_limit_external_per_hour = 3

[[outbound]]
name = "Disabled"
priority = 3
enabled = false
sender_domain_is = ["tailspin.com"]
recipient_limit_external_per_hour = 1

[[outbound]]
name = "Everyone"
recipient_limit_external_per_hour = 7
"#;
    for (sender, want) in [
        ("ceo@contoso.com", "Execs"),
        ("CEO@CONTOSO.COM", "Execs"),
        ("chair@fabrikam.com", "Execs"), // nested group
        ("cfo@contoso.com", "Late"),     // excepted from Execs, then domain
        ("rep@sales.contoso.com", "Sales"),
        ("kid@interns.sales.contoso.com", "Everyone"),
        ("x@fabrikam.com", "Both"),
        ("y@tailspin.com", "Everyone"), // from matches but domain does not (AND)
        ("z@fabrikam.com", "Everyone"),
        ("anyone@tailspin.com", "Everyone"), // disabled policy skipped
        ("bob@contoso.com", "Late"),
        ("not-an-address", "Everyone"),
    ] {
        assert_eq!(policy_for(cfg, sender), want, "{sender}");
    }
}

#[test]
fn presets_and_service_defaults() {
    let limits = |cfg: &str| {
        let p = quench_default_policy::Policy::from_config(cfg).unwrap();
        let l = p.config().default_policy.limits;
        (
            l.external_per_hour,
            l.internal_per_hour,
            l.per_day,
            l.action.name(),
        )
    };
    for (cfg, want) in [
        ("", (500, 1000, 1000, "BlockUserForToday")),
        (
            "[[outbound]]\nname='D'\npreset='standard'",
            (500, 1000, 1000, "BlockUser"),
        ),
        (
            "[[outbound]]\nname='D'\npreset='Strict'",
            (400, 800, 800, "BlockUser"),
        ),
        (
            "[[outbound]]\nname='D'\npreset='strict'\nrecipient_limit_per_day=50\naction_when_threshold_reached='alert'",
            (400, 800, 50, "Alert"),
        ),
        (
            "[[outbound]]\nname='D'\npreset='strict'\nrecipient_limit_per_day=0",
            (400, 800, u32::MAX, "BlockUser"),
        ),
        (
            // EOP: 0 = the service defaults are used, i.e. no limit of the policy's own.
            "[[outbound]]\nname='D'\nrecipient_limit_external_per_hour=0\nrecipient_limit_internal_per_hour=0\nrecipient_limit_per_day=0",
            (u32::MAX, u32::MAX, u32::MAX, "BlockUserForToday"),
        ),
        (
            "[[outbound]]\nname='D'\nrecipient_limit_external_per_hour=10000",
            (10000, 1000, 1000, "BlockUserForToday"),
        ),
    ] {
        assert_eq!(limits(cfg), want, "{cfg}");
    }
    // The strict preset actually enforces 400 external per hour with BlockUser.
    let mut h = H::new("accepted_domains=['contoso.com']\n[[outbound]]\nname='D'\npreset='strict'");
    assert_eq!(v(&h.send("a@contoso.com", ext(400), at(0, 9, 0, 0))), V::Ok);
    let d = h.send("a@contoso.com", ext(1), at(0, 9, 1, 0));
    assert_eq!(d.restriction.unwrap().kind, RestrictionKind::BlockUser);
}

#[test]
fn alerts() {
    let a = "alice@contoso.com";
    // Restriction start: High "User restricted" and Medium "limit exceeded".
    let mut h = H::new(&limits_config(1, 100, 100, "BlockUser"));
    h.send(a, ext(1), at(0, 9, 0, 0));
    let d = h.send(a, ext(1), at(0, 9, 0, 1));
    let mut got: Vec<(&str, Severity)> = d
        .alerts
        .iter()
        .map(|x| (x.name.as_str(), x.severity))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("Email sending limit exceeded", Severity::Medium),
            ("User restricted from sending email", Severity::High)
        ]
    );
    assert!(
        d.alerts
            .iter()
            .all(|x| x.entity == user(a) && x.at == at(0, 9, 0, 1))
    );
    assert!(d.alerts[0].summary.contains(a));

    // Alert action: Medium once per limit per UTC day.
    let mut h = H::new(&limits_config(1, 1, 100, "Alert"));
    h.send(a, ext(1), at(0, 9, 0, 0));
    let n = |d: &Decision| d.alerts.len();
    assert_eq!(n(&h.send(a, ext(1), at(0, 9, 1, 0))), 1);
    assert_eq!(n(&h.send(a, ext(1), at(0, 9, 2, 0))), 0, "deduplicated");
    assert_eq!(n(&h.send(a, int(2), at(0, 9, 3, 0))), 1, "another limit");
    assert_eq!(n(&h.send(a, ext(2), at(1, 9, 0, 0))), 1, "next day");
}

#[test]
fn service_recipient_rate_limit() {
    let a = "alice@contoso.com";
    // The knob lowered to 10 so the sliding 24 h is easy to see.
    let cfg = "recipient_rate_limit = 10\n[[outbound]]\nname='D'\nrecipient_limit_external_per_hour=10000\nrecipient_limit_per_day=10000";
    let mut h = H::new(cfg);
    assert_eq!(v(&h.send(a, ext(6), at(0, 10, 0, 0))), V::Ok);
    assert_eq!(v(&h.send(a, ext(4), at(0, 22, 0, 0))), V::Ok);
    let d = h.send(a, ext(1), at(1, 1, 0, 0)); // a new UTC day, but 10 in the last 24 h
    assert_eq!(v(&d), V::Reject("5.1.90"));
    assert_eq!(
        d.verdict.reply.as_ref().unwrap().text,
        "Your message can't be sent because you've reached your daily limit for message recipients"
    );
    assert_eq!(d.verdict.reply.as_ref().unwrap().code, 550);
    let r = d.restriction.clone().unwrap();
    assert_eq!(r.kind, RestrictionKind::ServiceDailyLimit);
    assert_eq!(r.evidence.limit, "recipient_rate_limit");
    assert_eq!(
        (
            r.evidence.threshold,
            r.evidence.observed,
            r.evidence.window_seconds
        ),
        (10, 11, 86_400)
    );
    assert_eq!(
        alert_names(&d),
        vec![
            "Email sending limit exceeded",
            "User restricted from sending email"
        ]
    );
    // Lifts when the 10:00 bucket leaves the window: 10:00 + 24 h + one 1-hour bucket.
    let lifts = at(1, 11, 0, 0);
    assert_eq!(r.expires, Some(lifts));
    assert_eq!(v(&h.send(a, int(1), lifts - 1)), V::Reject("5.1.90"));
    let d = h.send(a, ext(1), lifts);
    assert_eq!((v(&d), d.change), (V::Ok, RestrictionChange::Lifted));

    // The default 10,000 over two UTC days (per-day limits reset, the service window slides).
    let cfg = "[[outbound]]\nname='D'\nrecipient_limit_external_per_hour=10000\nrecipient_limit_per_day=10000";
    let mut h = H::new(cfg);
    for (i, t) in [at(0, 20, 0, 0), at(0, 20, 30, 0), at(1, 0, 30, 0)]
        .into_iter()
        .enumerate()
    {
        for j in 0..5 {
            // 5 messages of 500 (the per-message maximum): 2,500 per step.
            let d = h.send(a, ext(500), t + j);
            assert_eq!(v(&d), V::Ok, "step {i}.{j}");
        }
    }
    // 7,500 so far; 2,500 more at 01:40 (new hour window): 10,000 exactly.
    for j in 0..5 {
        assert_eq!(v(&h.send(a, ext(500), at(1, 1, 40, j))), V::Ok);
    }
    assert_eq!(v(&h.send(a, ext(1), at(1, 1, 41, 0))), V::Reject("5.1.90"));
}

#[test]
fn message_rate_is_a_deferral_without_restriction() {
    let a = "alice@contoso.com";
    let mut h = H::new("");
    let t0 = at(0, 9, 0, 0);
    for i in 0..30 {
        assert_eq!(v(&h.send(a, int(1), t0 + i)), V::Ok, "message {i}");
    }
    let d = h.send(a, int(1), t0 + 30);
    assert_eq!(v(&d), V::Defer("4.4.2"));
    let reply = d.verdict.reply.unwrap();
    assert_eq!(
        (reply.code, reply.text.as_str()),
        (
            450,
            "Message submission rate for this client has exceeded the configured limit"
        )
    );
    assert!(d.restriction.is_none() && d.alerts.is_empty());
    // Deferred messages are not counted; a minute (plus one 10 s bucket) later it flows.
    assert_eq!(v(&h.send(a, int(1), t0 + 69)), V::Defer("4.4.2"));
    assert_eq!(v(&h.send(a, int(1), t0 + 70)), V::Ok);

    // Calls sharing a message id are one message: 100 recipients one by one in a second.
    let mut h = H::new("");
    for i in 0..100 {
        assert_eq!(
            v(&h.send_part(a, "Q1", vec![format!("r{i}@contoso.com")], t0)),
            V::Ok,
            "rcpt {i}"
        );
    }
}

#[test]
fn recipients_per_message() {
    let a = "alice@contoso.com";
    let mut h = H::new("");
    assert_eq!(v(&h.send(a, int(500), at(0, 9, 0, 0))), V::Ok);
    let d = h.send(a, int(501), at(0, 9, 1, 0));
    assert_eq!(v(&d), V::Reject("5.5.3"));
    assert!(d.restriction.is_none());
    assert_eq!(d.verdict.reply.unwrap().text, "Too many recipients");

    // Configured to 3, over a per-recipient run.
    let mut h = H::new("max_recipient_envelope_limit = 3");
    let t = at(0, 9, 0, 0);
    for i in 0..3 {
        assert_eq!(v(&h.send_part(a, "Q1", int(1), t + i)), V::Ok);
    }
    assert_eq!(v(&h.send_part(a, "Q1", int(1), t + 3)), V::Reject("5.5.3"));
    assert_eq!(
        v(&h.send_part(a, "Q2", int(3), t + 4)),
        V::Ok,
        "a new message"
    );
    assert_eq!(v(&h.send_part(a, "Q2", int(1), t + 5)), V::Reject("5.5.3"));
    assert_eq!(
        v(&h.send(a, int(3), t + 6)),
        V::Ok,
        "no id: its own message"
    );
    assert_eq!(v(&h.send(a, int(3), t + 7)), V::Ok);
    // Huge lists get the same defined answer, quickly.
    let huge: Vec<String> = (0..1_000_000)
        .map(|_| "x@fabrikam.com".to_string())
        .collect();
    assert_eq!(v(&h.send(a, huge, t + 8)), V::Reject("5.5.3"));
}

#[test]
fn connectors() {
    let cfg = r#"
accepted_domains = ["contoso.com"]
[[connectors]]
id = "Scanner-Relay"
client_addresses = ["192.0.2.10", "2001:DB8::1"]
certificate_fingerprints = ["AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01"]
recipient_limit_external_per_hour = 50
recipient_limit_per_day = 5000
action_when_threshold_reached = "BlockUser"
[[connectors]]
id = "crm"
certificate_fingerprints = ["0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]
preset = "strict"
"#;
    let mut h = H::new(cfg);
    let specs = h.policy.connectors();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].id, "Scanner-Relay");
    assert_eq!(specs[0].client_addresses, vec!["192.0.2.10", "2001:db8::1"]);
    assert_eq!(
        specs[0].certificate_fingerprints,
        vec!["ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01"]
    );
    assert!(specs[1].client_addresses.is_empty());

    // No message-rate deferral for a relay: 100 messages in a few seconds.
    let t = at(0, 9, 0, 0);
    for i in 0..50 {
        assert_eq!(
            v(&h.relay("scanner-relay", ext(1), t + i / 20)),
            V::Ok,
            "message {i}"
        );
    }
    let d = h.relay("scanner-relay", ext(1), t + 5);
    assert_eq!(v(&d), V::Reject("5.7.711"));
    assert_eq!(
        d.verdict.reply.as_ref().unwrap().text,
        "Access denied, bad inbound connector"
    );
    assert!(alert_names(&d).contains(&"Suspicious connector activity"));
    assert!(!alert_names(&d).contains(&"User restricted from sending email"));
    let r = d.restriction.unwrap();
    assert_eq!(
        (r.entity.kind, r.evidence.policy.as_str()),
        (EntityKind::Connector, "Scanner-Relay")
    );
    assert_eq!(
        v(&h.relay("scanner-relay", vec![], t + 6)),
        V::Reject("5.7.711")
    );
    // Unblock works the same way, with connector recommendations.
    let g = h
        .unblock_as(
            &connector("scanner-relay"),
            Role::OrganizationManagement,
            t + 60,
        )
        .unwrap();
    assert!(g.recommendations.iter().any(|r| r.contains("open relay")));
    assert_eq!(v(&h.relay("scanner-relay", ext(1), t + 61)), V::Ok);

    // A connector id the configuration does not know: service defaults (500 external/h).
    let mut h = H::new(cfg);
    assert_eq!(v(&h.relay("gone", ext(500), t)), V::Ok);
    assert_eq!(v(&h.relay("gone", ext(1), t + 1)), V::Reject("5.7.711"));
}

#[test]
fn clock_going_backwards_never_loosens_a_limit() {
    let a = "alice@contoso.com";
    let mut h = H::new(&limits_config(3, 100, 100, "Alert"));
    h.send(a, ext(3), at(0, 10, 0, 0));
    // The clock jumps back an hour: the 3 are still counted...
    let d = h.send(a, ext(1), at(0, 9, 0, 0));
    assert_eq!(alert_names(&d), vec!["Email sending limit exceeded"]);
    // ...and keep counting for a full window from the jump (their age restarts at zero).
    let mut h = H::new(&limits_config(3, 100, 100, "BlockUser"));
    h.send(a, ext(3), at(0, 10, 0, 0));
    assert_eq!(v(&h.send(a, int(1), at(0, 9, 0, 0))), V::Ok);
    assert_eq!(v(&h.send(a, ext(1), at(0, 9, 59, 0))), V::Reject("5.1.8"));

    // A BlockUserForToday restriction holds when the clock goes back before it started.
    let mut h = H::new(&limits_config(1, 100, 100, "BlockUserForToday"));
    h.send(a, ext(1), at(0, 10, 0, 0));
    h.send(a, ext(1), at(0, 10, 0, 1));
    for t in [at(0, 9, 0, 0), at(-5, 0, 0, 0), 0, i64::MIN] {
        assert_eq!(v(&h.send(a, ext(1), t)), V::Reject("5.1.8"), "t={t}");
    }
    assert_eq!(v(&h.send(a, int(1), at(1, 0, 0, 0))), V::Ok);
}

#[test]
fn empty_and_malformed_recipients() {
    let a = "alice@contoso.com";
    let mut h = H::new(&limits_config(2, 100, 100, "BlockUser"));
    for _ in 0..100 {
        assert_eq!(
            v(&h.send(a, vec![], at(0, 9, 0, 0))),
            V::Ok,
            "nothing to count"
        );
    }
    // Malformed recipients count as external.
    let odd = vec!["no-at".to_string(), "@".to_string(), "a@b@".to_string()];
    assert_eq!(v(&h.send(a, odd, at(0, 9, 1, 0))), V::Reject("5.1.8"));
}
