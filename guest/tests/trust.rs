//! Who is counted and how: relays (unauthenticated senders on a trusted network) in their own
//! key space with a user's limits, and routing syntax in recipients.

mod common;
use common::*;

#[test]
fn routing_syntax_recipients_are_external() {
    // External limit 1, internal 100: a recipient classified internal never trips.
    let cfg = r#"
accepted_domains = ["contoso.com", "evil.example"]
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 1
"#;
    for (rcpt, internal) in [
        ("x@contoso.com", true),
        ("x%evil.example@contoso.com", false),
        ("evil.example!x@contoso.com", false),
        ("@relay.contoso.com:x@contoso.com", false),
        ("<@a.contoso.com,@b.contoso.com:x@contoso.com>", false),
        ("\"x@y\"@contoso.com", false),
        ("X%Evil.Example@Contoso.COM.", false),
    ] {
        let mut h = H::new(cfg);
        h.send("alice@contoso.com", vec![rcpt.to_string()], at(0, 9, 0, 0));
        let second = h.send("alice@contoso.com", vec![rcpt.to_string()], at(0, 9, 1, 0));
        assert_eq!(v(&second) == V::Ok, internal, "{rcpt:?}");
    }
}

const CFG: &str = r#"
accepted_domains = ["contoso.com"]
[[outbound]]
name = "Web apps"
from = ["app@contoso.com"]
recipient_limit_external_per_hour = 3
action_when_threshold_reached = "BlockUser"
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 10
action_when_threshold_reached = "BlockUser"
"#;

#[test]
fn a_relay_has_its_own_counts_and_a_users_limits_and_reply() {
    let mut h = H::new(CFG);
    let app = "app@contoso.com";
    let t = at(0, 9, 0, 0);
    assert_eq!(v(&h.send_relayed(app, None, ext(3), t)), V::Ok);
    // The SASL user of the same address has untouched counts.
    assert_eq!(v(&h.send(app, ext(3), t + 1)), V::Ok);
    // The relay's fourth: its policy (chosen by its envelope sender) trips, with 5.1.8.
    let d = h.send_relayed(app, Some("q-7"), ext(1), t + 2);
    assert_eq!(v(&d), V::Reject("5.1.8"));
    let r = d.restriction.clone().unwrap();
    assert_eq!(r.entity, relayed(app));
    assert_eq!(r.evidence.policy, "Web apps");
    assert_eq!(r.evidence.last_message_id.as_deref(), Some("q-7"));
    let restricted = d
        .alerts
        .iter()
        .find(|a| a.name == "User restricted from sending email")
        .expect("the restriction alert");
    assert!(
        restricted
            .summary
            .starts_with("Relayed sender app@contoso.com"),
        "{}",
        restricted.summary
    );
    for needle in [
        "trusted network",
        "web application, script or device",
        "quench blocked-relay remove app@contoso.com",
    ] {
        assert!(restricted.summary.contains(needle), "{needle}");
    }
    let exceeded = d
        .alerts
        .iter()
        .find(|a| a.name == "Email sending limit exceeded")
        .unwrap();
    assert!(
        exceeded
            .summary
            .starts_with("Relayed sender app@contoso.com hit")
    );
    // The relay is restricted, the user of the same address is not.
    assert!(h.describe(&relayed(app), t + 3).is_some());
    assert!(h.describe(&user(app), t + 3).is_none());
}

#[test]
fn relay_and_user_restrictions_are_apart() {
    let mut h = H::new(CFG);
    let app = "app@contoso.com";
    let t = at(0, 9, 0, 0);
    h.send_relayed(app, None, ext(3), t);
    assert_eq!(
        v(&h.send_relayed(app, None, ext(1), t + 1)),
        V::Reject("5.1.8")
    );
    assert!(h.describe(&relayed(app), t + 2).is_some());
    assert!(h.describe(&user(app), t + 2).is_none());
    assert_eq!(v(&h.send(app, ext(1), t + 2)), V::Ok);
    // Unblocking the relay gives the relay's own recommendations.
    let g = h
        .unblock_as(&relayed(app), Role::SecurityAdministrator, t + 3)
        .unwrap();
    assert_eq!(g.lifted.entity, relayed(app));
    let recs = g.recommendations.join("\n");
    assert!(recs.contains("host on the trusted network"), "{recs}");
    assert!(recs.contains("web application, script or device"), "{recs}");
    assert!(!recs.contains("password"), "{recs}");
    assert_eq!(v(&h.send_relayed(app, None, ext(1), t + 4)), V::Ok);
}

#[test]
fn a_relay_gets_the_service_message_rate() {
    let mut h = H::new(CFG);
    let t = at(0, 9, 0, 0);
    for i in 0..30 {
        let d = h.send_relayed("web@contoso.com", Some(&format!("m{i}")), int(1), t);
        assert_eq!(v(&d), V::Ok, "{i}");
    }
    let d = h.send_relayed("web@contoso.com", Some("m30"), int(1), t);
    assert_eq!(v(&d), V::Defer("4.4.2"));
    // A continuing message is not deferred.
    let d = h.send_relayed("web@contoso.com", Some("m29"), int(1), t + 1);
    assert_eq!(v(&d), V::Ok);
}
