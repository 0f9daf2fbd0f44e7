//! One table of test vectors, run against the default policy twice: natively (the guest crate
//! linked as plain Rust) and through the sandbox (the compiled component in wasmtime). Every
//! step must give identical answers, byte for byte (state included), and the answers the
//! table expects.

use crate::common::{MONDAY_10AM, default_policy};
use quench::native::NativePolicy;
use quench::{Action, Entity, Role, Sandbox, Submission, UnblockRequest};
use std::collections::HashMap;

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// 2026-11-24T00:00:00Z, the midnight after [`MONDAY_10AM`].
const TUESDAY_MIDNIGHT: i64 = MONDAY_10AM - 10 * HOUR + DAY;

/// What a step expects.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Accepted.
    Accept,
    /// Refused with this enhanced status.
    Refuse(Action, &'static str),
    /// Unblock granted.
    Unblocked,
    /// Unblock denied.
    Denied,
    /// Only that native and sandboxed agree (no fixed answer).
    Agree,
}

enum Step {
    Send {
        at: i64,
        submitter: &'static str,
        sender: &'static str,
        recipients: &'static [&'static str],
        expect: Expect,
    },
    Unblock {
        at: i64,
        entity: &'static str,
        role: Role,
        expect: Expect,
    },
    /// Replace the entity's stored state with these bytes (both sides).
    Corrupt {
        entity: &'static str,
        bytes: &'static [u8],
    },
}

use Expect::*;
use Step::*;

fn send(
    at: i64,
    submitter: &'static str,
    recipients: &'static [&'static str],
    expect: Expect,
) -> Step {
    Send {
        at,
        submitter,
        sender: submitter,
        recipients,
        expect,
    }
}

const BLOCK_USER: &str = r#"
accepted_domains = ["contoso.com"]
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 3
recipient_limit_internal_per_hour = 5
recipient_limit_per_day = 6
action_when_threshold_reached = "BlockUser"
"#;

const FOR_TODAY: &str = r#"
accepted_domains = ["contoso.com"]
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 2
recipient_limit_internal_per_hour = 2
recipient_limit_per_day = 2
action_when_threshold_reached = "BlockUserForToday"
"#;

const ALERT_ONLY: &str = r#"
accepted_domains = ["contoso.com"]
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 1
recipient_limit_internal_per_hour = 1
recipient_limit_per_day = 1
action_when_threshold_reached = "Alert"
"#;

const DENIED_5_1_8: Expect = Refuse(Action::Reject, "5.1.8");

fn cases() -> Vec<(&'static str, &'static str, Vec<Step>)> {
    let t = MONDAY_10AM;
    vec![
        (
            "external hourly limit restricts with BlockUser until unblocked",
            BLOCK_USER,
            vec![
                send(t, "a@contoso.com", &["x1@fabrikam.com"], Accept),
                send(t + 1, "a@contoso.com", &["x2@fabrikam.com"], Accept),
                send(t + 2, "a@contoso.com", &["x3@fabrikam.com"], Accept),
                send(t + 3, "a@contoso.com", &["x4@fabrikam.com"], DENIED_5_1_8),
                send(
                    t + 4,
                    "a@contoso.com",
                    &["colleague@contoso.com"],
                    DENIED_5_1_8,
                ),
                send(
                    t + 2 * HOUR,
                    "a@contoso.com",
                    &["x5@fabrikam.com"],
                    DENIED_5_1_8,
                ),
                send(t + DAY, "a@contoso.com", &["x6@fabrikam.com"], DENIED_5_1_8),
                Unblock {
                    at: t + DAY + 1,
                    entity: "a@contoso.com",
                    role: Role::GlobalReader,
                    expect: Denied,
                },
                Unblock {
                    at: t + DAY + 2,
                    entity: "a@contoso.com",
                    role: Role::SecurityAdministrator,
                    expect: Unblocked,
                },
                send(t + DAY + 3, "a@contoso.com", &["x7@fabrikam.com"], Accept),
                Unblock {
                    at: t + DAY + 4,
                    entity: "a@contoso.com",
                    role: Role::SecurityAdministrator,
                    expect: Denied,
                },
            ],
        ),
        (
            "a multi-recipient message that crosses the limit is refused whole",
            BLOCK_USER,
            vec![
                send(
                    t,
                    "b@contoso.com",
                    &["x1@fabrikam.com", "x2@fabrikam.com"],
                    Accept,
                ),
                send(
                    t + 1,
                    "b@contoso.com",
                    &["x3@fabrikam.com", "x4@fabrikam.com"],
                    DENIED_5_1_8,
                ),
            ],
        ),
        (
            "internal recipients count against the internal limit only",
            BLOCK_USER,
            vec![
                send(
                    t,
                    "c@contoso.com",
                    &["i1@contoso.com", "i2@CONTOSO.com"],
                    Accept,
                ),
                send(
                    t + 1,
                    "c@contoso.com",
                    &["i3@contoso.com", "x1@fabrikam.com"],
                    Accept,
                ),
                send(
                    t + 2,
                    "c@contoso.com",
                    &["x2@fabrikam.com", "x3@fabrikam.com"],
                    Accept,
                ),
                // 7 recipients today would pass the daily limit of 6.
                send(
                    t + 3,
                    "c@contoso.com",
                    &["i4@contoso.com", "i5@contoso.com"],
                    DENIED_5_1_8,
                ),
            ],
        ),
        (
            "BlockUserForToday lifts at the next UTC midnight, to the second",
            FOR_TODAY,
            vec![
                send(
                    TUESDAY_MIDNIGHT - 30,
                    "d@contoso.com",
                    &["x1@fabrikam.com"],
                    Accept,
                ),
                send(
                    TUESDAY_MIDNIGHT - 20,
                    "d@contoso.com",
                    &["x2@fabrikam.com"],
                    Accept,
                ),
                send(
                    TUESDAY_MIDNIGHT - 10,
                    "d@contoso.com",
                    &["x3@fabrikam.com"],
                    DENIED_5_1_8,
                ),
                send(
                    TUESDAY_MIDNIGHT - 1,
                    "d@contoso.com",
                    &["i@contoso.com"],
                    DENIED_5_1_8,
                ),
                send(
                    TUESDAY_MIDNIGHT + DAY,
                    "d@contoso.com",
                    &["x4@fabrikam.com"],
                    Accept,
                ),
            ],
        ),
        (
            "Alert accepts the crossing submission",
            ALERT_ONLY,
            vec![
                send(t, "e@contoso.com", &["x1@fabrikam.com"], Accept),
                send(t + 1, "e@contoso.com", &["x2@fabrikam.com"], Accept),
                send(t + 2, "e@contoso.com", &["x3@fabrikam.com"], Accept),
            ],
        ),
        (
            "Send As: counts land on the submitter, not the From address",
            BLOCK_USER,
            vec![
                Send {
                    at: t,
                    submitter: "f@contoso.com",
                    sender: "shared@contoso.com",
                    recipients: &["x1@fabrikam.com", "x2@fabrikam.com", "x3@fabrikam.com"],
                    expect: Accept,
                },
                send(t + 1, "f@contoso.com", &["x4@fabrikam.com"], DENIED_5_1_8),
                send(t + 2, "shared@contoso.com", &["x5@fabrikam.com"], Accept),
            ],
        ),
        (
            "odd input gets a defined answer",
            BLOCK_USER,
            vec![
                send(t, "g@contoso.com", &[], Agree),
                send(t + 1, "g@contoso.com", &["not an address", "@", ""], Agree),
                send(t - DAY, "g@contoso.com", &["x1@fabrikam.com"], Agree),
                Corrupt {
                    entity: "g@contoso.com",
                    bytes: b"\xff\x00garbage",
                },
                send(t + 2, "g@contoso.com", &["x2@fabrikam.com"], Agree),
                Corrupt {
                    entity: "g@contoso.com",
                    bytes: b"",
                },
                send(t + 3, "g@contoso.com", &["x3@fabrikam.com"], Accept),
            ],
        ),
    ]
}

struct Runner {
    native: NativePolicy,
    sandboxed: Sandbox,
    native_states: HashMap<String, Vec<u8>>,
    sandbox_states: HashMap<String, Vec<u8>>,
}

impl Runner {
    fn new(config: &str) -> Self {
        Runner {
            native: NativePolicy::new(config).expect("config is valid natively"),
            sandboxed: default_policy(config),
            native_states: HashMap::new(),
            sandbox_states: HashMap::new(),
        }
    }

    fn step(&mut self, case: &str, index: usize, step: &Step) {
        let at_step = format!("{case}, step {index}");
        match step {
            Send {
                at,
                submitter,
                sender,
                recipients,
                expect,
            } => {
                let submission = Submission {
                    entity: Entity::user(submitter),
                    sender: quench::normalize::normalize(sender),
                    recipients: recipients
                        .iter()
                        .map(|r| quench::normalize::normalize(r))
                        .collect(),
                    message_id: Some(format!("msg-{index}")),
                };
                let key = submission.entity.key();
                let native_state = self.native_states.get(&key).cloned().unwrap_or_default();
                let sandbox_state = self.sandbox_states.get(&key).cloned().unwrap_or_default();
                let native = self.native.evaluate(&native_state, &submission, *at);
                let sandboxed = self
                    .sandboxed
                    .evaluate(&sandbox_state, &submission, *at)
                    .unwrap_or_else(|e| panic!("{at_step}: the sandbox failed: {e}"));
                assert_eq!(native, sandboxed, "{at_step}: native and sandboxed differ");
                let status = sandboxed.verdict.reply.as_ref().map(|r| r.status.as_str());
                match expect {
                    Accept => assert_eq!(
                        sandboxed.verdict.action,
                        Action::Accept,
                        "{at_step}: {:?}",
                        sandboxed.verdict
                    ),
                    Refuse(action, want) => {
                        assert_eq!(sandboxed.verdict.action, *action, "{at_step}");
                        assert_eq!(status, Some(*want), "{at_step}");
                    }
                    Agree => {}
                    Unblocked | Denied => unreachable!("not a send expectation"),
                }
                self.native_states.insert(key.clone(), native.state);
                self.sandbox_states.insert(key, sandboxed.state);
            }
            Unblock {
                at,
                entity,
                role,
                expect,
            } => {
                let request = UnblockRequest {
                    entity: Entity::user(entity),
                    role: *role,
                    admin: "vectors".into(),
                    reason: "test".into(),
                    grace: quench::UnblockGrace::RestOfDay,
                };
                let key = request.entity.key();
                let native_state = self.native_states.get(&key).cloned().unwrap_or_default();
                let sandbox_state = self.sandbox_states.get(&key).cloned().unwrap_or_default();
                let native = self.native.unblock(&native_state, &request, *at);
                let sandboxed = self
                    .sandboxed
                    .unblock(&sandbox_state, &request, *at)
                    .unwrap_or_else(|e| panic!("{at_step}: the sandbox failed: {e}"));
                assert_eq!(native, sandboxed, "{at_step}: native and sandboxed differ");
                match (expect, &sandboxed) {
                    (Unblocked, Ok(_)) | (Denied, Err(_)) | (Agree, _) => {}
                    _ => panic!("{at_step}: expected {expect:?}, got {sandboxed:?}"),
                }
                if let (Ok(native), Ok(sandboxed)) = (native, sandboxed) {
                    self.native_states.insert(key.clone(), native.state);
                    self.sandbox_states.insert(key, sandboxed.state);
                }
            }
            Corrupt { entity, bytes } => {
                let key = Entity::user(entity).key();
                self.native_states.insert(key.clone(), bytes.to_vec());
                self.sandbox_states.insert(key, bytes.to_vec());
            }
        }
    }
}

impl Runner {
    /// Native and sandboxed `idle` agree on every state held, from the vectors' day to weeks
    /// later; returns how many of the answers were "idle".
    fn idle_agrees(&self, at_step: &str) -> usize {
        let mut idle = 0;
        for (key, state) in &self.sandbox_states {
            for later in [0, 3_600, 26 * 3_600, 3 * 86_400, 40 * 86_400] {
                let now = MONDAY_10AM + later;
                let native = self.native.idle(&self.native_states[key], now);
                let sandboxed = self
                    .sandboxed
                    .idle(state, now)
                    .unwrap_or_else(|e| panic!("{at_step}: the sandbox failed: {e}"));
                assert_eq!(native, sandboxed, "{at_step}: idle of {key} at +{later} s");
                idle += usize::from(sandboxed);
            }
        }
        idle
    }
}

#[test]
fn native_and_sandboxed_policies_agree_on_every_vector() {
    let mut idle = 0;
    for (name, config, steps) in cases() {
        let mut runner = Runner::new(config);
        for (index, step) in steps.iter().enumerate() {
            runner.step(name, index, step);
            idle += runner.idle_agrees(&format!("{name}, step {index}"));
        }
    }
    assert!(
        idle > 0,
        "some vector states go idle, so both answers were seen"
    );
}

#[test]
fn describe_and_bounce_agree_native_and_sandboxed() {
    let mut runner = Runner::new(BLOCK_USER);
    for (index, step) in cases().remove(0).2.iter().take(4).enumerate() {
        runner.step("describe", index, step);
    }
    let entity = Entity::user("a@contoso.com");
    let key = entity.key();
    let native = runner
        .native
        .describe(&runner.native_states[&key], &entity, MONDAY_10AM + 10);
    let sandboxed = runner
        .sandboxed
        .describe(&runner.sandbox_states[&key], &entity, MONDAY_10AM + 10)
        .unwrap();
    assert_eq!(native, sandboxed);
    let restriction = sandboxed.unwrap().expect("a@contoso.com is restricted");
    assert_eq!(
        restriction.evidence.limit,
        "recipient_limit_external_per_hour"
    );
    assert_eq!(
        (
            restriction.evidence.threshold,
            restriction.evidence.observed
        ),
        (3, 4)
    );

    let request = quench::BounceRequest {
        reporting_mta: "mx.contoso.com".into(),
        original_sender: "a@contoso.com".into(),
        recipients: vec!["x4@fabrikam.com".into()],
        original_headers: "From: a@contoso.com\r\nSubject: hi\r\n".into(),
        reply: quench::SmtpReply {
            code: 550,
            status: "5.1.8".into(),
            text: "Access denied, bad outbound sender".into(),
        },
        restriction: Some(restriction),
        arrival: MONDAY_10AM + 3,
        now: MONDAY_10AM + 4,
        bounce_id: "bounce-1".into(),
    };
    assert_eq!(
        runner.native.render_bounce(&request),
        runner.sandboxed.render_bounce(&request).unwrap()
    );
}
