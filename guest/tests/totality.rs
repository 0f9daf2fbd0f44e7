//! Totality: garbage state, extreme times, random inputs. Nothing may panic (a panic is a
//! trap in the sandbox), and every answer is a defined one.

mod common;
use common::*;
use quench_default_policy::Policy;

const ADDRS: &[&str] = &[
    "alice@contoso.com",
    "ALICE@CONTOSO.COM",
    "<bob@fabrikam.com>",
    "",
    "@",
    "no-at",
    "a@b@c",
    "x@contoso.com.",
    "jörg@bücher.de",
    "\r\nBcc: x@y",
    "\u{0}",
    "<>",
    "   ",
    "a@[192.0.2.1]",
];

fn random_submission(r: &mut Rng) -> Submission {
    let n = match r.below(10) {
        0 => 0,
        1 => 1 + r.below(1_200) as usize,
        _ => 1 + r.below(4) as usize,
    };
    Submission {
        entity: if r.below(5) == 0 {
            connector(r.pick::<&str>(&["relay", "RELAY", "unknown", ""]))
        } else {
            user(r.pick::<&str>(ADDRS))
        },
        sender: r.pick(ADDRS).to_string(),
        recipients: (0..n).map(|_| r.pick(ADDRS).to_string()).collect(),
        message_id: match r.below(3) {
            0 => None,
            1 => Some(format!("Q{}", r.below(3))),
            _ => Some("é".repeat(r.below(300) as usize)),
        },
    }
}

fn random_time(r: &mut Rng, t: i64) -> i64 {
    match r.below(20) {
        0 => i64::MIN,
        1 => i64::MAX,
        2 => 0,
        3 => t - r.below(100_000) as i64,
        _ => t + r.below(4_000) as i64,
    }
}

#[test]
fn random_sequences_never_panic() {
    let cfg = r#"
accepted_domains = ["contoso.com"]
unblock_limit = { count = 2, window_days = 1 }
[[outbound]]
name = "tight"
from = ["alice@contoso.com"]
recipient_limit_external_per_hour = 3
recipient_limit_per_day = 5
action_when_threshold_reached = "BlockUserForToday"
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 4
action_when_threshold_reached = "BlockUser"
[[connectors]]
id = "relay"
client_addresses = ["192.0.2.1"]
recipient_limit_external_per_hour = 2
"#;
    let p = Policy::from_config(cfg).unwrap();
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut state: Vec<u8> = Vec::new();
    let mut t = at(0, 0, 0, 0);
    let roles = [
        Role::OrganizationManagement,
        Role::Support,
        Role::GlobalReader,
        Role::SecurityAdministrator,
    ];
    for i in 0..20_000 {
        t = random_time(&mut r, t)
            .clamp(at(-10, 0, 0, 0), at(400, 0, 0, 0))
            .max(t - 10_000);
        let now = if r.below(50) == 0 {
            random_time(&mut r, t)
        } else {
            t
        };
        if r.below(40) == 0 {
            // Corrupt the state now and then.
            let pos = r.below(state.len() as u64 + 1) as usize;
            if pos < state.len() {
                state[pos] = r.next() as u8;
            } else {
                state.push(r.next() as u8);
            }
        }
        let sub = random_submission(&mut r);
        match r.below(10) {
            0 => {
                let req = UnblockRequest {
                    entity: sub.entity.clone(),
                    role: *r.pick(&roles),
                    admin: "a".into(),
                    reason: "r".into(),
                    grace: Default::default(),
                };
                if let Ok(g) = p.unblock(&state, &req, now) {
                    state = g.state;
                }
            }
            1 => {
                let _ = p.describe(&state, &sub.entity, now);
            }
            _ => {
                let d = p.evaluate(&state, &sub, now);
                assert_eq!(
                    d.verdict.reply.is_none(),
                    d.verdict.action == Action::Accept,
                    "step {i}"
                );
                if let Some(rs) = &d.restriction {
                    if d.change == RestrictionChange::Started {
                        assert!(rs.evidence.observed > rs.evidence.threshold, "step {i}");
                    }
                    assert_eq!(
                        p.describe(&d.state, &sub.entity, now).unwrap().as_ref(),
                        Some(rs)
                    );
                }
                assert!(
                    p.describe(&d.state, &sub.entity, now).is_ok(),
                    "evaluate writes readable state"
                );
                state = d.state;
            }
        }
    }
}

#[test]
fn garbage_state_gets_a_defined_answer() {
    let p = Policy::from_config("").unwrap();
    let mut r = Rng(42);
    let sub = Submission {
        entity: user("a@contoso.com"),
        sender: "a@contoso.com".into(),
        recipients: ext(1),
        message_id: None,
    };
    for len in 0..200usize {
        for _ in 0..20 {
            let bytes: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
            let d = p.evaluate(&bytes, &sub, at(0, 9, 0, 0));
            let readable = p.describe(&bytes, &sub.entity, 0).is_ok();
            if !readable {
                assert!(
                    d.alerts.iter().any(
                        |a| a.name == "Policy state unreadable" && a.severity == Severity::High
                    )
                );
            }
            assert!(
                p.describe(&d.state, &sub.entity, 0).is_ok(),
                "rewritten state is readable"
            );
        }
    }
}

#[test]
fn damaged_restricted_state_keeps_the_restriction() {
    let mut h = H::new(&limits_config(1, 100, 100, "BlockUser"));
    let a = "alice@contoso.com";
    h.send(a, ext(1), at(0, 9, 0, 0));
    h.send(a, ext(1), at(0, 9, 0, 1));
    let good = h.state(&user(a));
    let p = &h.policy;
    // Truncated after the restriction, or with trailing garbage: still restricted.
    let damaged = vec![
        good[..good.len() - 1].to_vec(),
        good[..good.len() - 3].to_vec(),
        good[..good.len() - 10].to_vec(),
        [good.clone(), vec![7, 7]].concat(),
    ];
    for bytes in damaged {
        let sub = Submission {
            entity: user(a),
            sender: a.into(),
            recipients: int(1),
            message_id: None,
        };
        let d = p.evaluate(&bytes, &sub, at(0, 10, 0, 0));
        assert_eq!(v(&d), V::Reject("5.1.8"));
        assert!(d.alerts.iter().any(|x| x.name == "Policy state unreadable"));
        assert!(
            d.alerts[0].summary.contains("restriction was recovered"),
            "{bytes:?}: {}",
            d.alerts[0].summary
        );
        assert!(p.describe(&bytes, &user(a), 0).is_err());
        assert!(
            p.describe(&d.state, &user(a), at(0, 10, 0, 0))
                .unwrap()
                .is_some()
        );
    }
}

#[test]
fn random_config_text_never_panics() {
    let pieces = [
        "[[outbound]]\n",
        "name = 'x'\n",
        "priority = 99999999999999\n",
        "from = [1, 'a@b.c']\n",
        "[groups]\n",
        "g = ['g']\n",
        "h = ['g', 'h']\n",
        "from_member_of = ['g']\n",
        "[[connectors]]\n",
        "id = 'c'\n",
        "client_addresses = ['::1', '1.2.3.4', '']\n",
        "certificate_fingerprints = [':']\n",
        "unblock_limit = { count = 1 }\n",
        "accepted_domains = ['.', '..', 'a..b']\n",
        "= =\n",
        "\u{0}",
        "recipient_limit_per_day = -9223372036854775808\n",
        "[policy]\n",
        "preset = 'strict'\n",
    ];
    let mut r = Rng(7);
    for _ in 0..3_000 {
        let n = r.below(8);
        let text: String = (0..n).map(|_| *r.pick(&pieces)).collect();
        if let Err(errs) = Policy::from_config(&text) {
            assert!(!errs.is_empty());
        }
    }
}
