//! Arbitrary submissions, state bytes and admin requests into the default policy component
//! through `quench::Sandbox`, the way a host calls it.
//!
//! Checks that no call traps, overruns its deadline, bloats memory or returns an answer the
//! sandbox refuses (oversize state, a refusal without a reply): any such fault panics. And
//! that the component answers exactly what the same policy linked natively answers: the
//! native copy is instrumented, so it also steers libFuzzer through the policy's branches
//! (the component's JIT-compiled code gives the fuzzer no coverage of its own).
//!
//! One input is a short session: up to 8 calls against one entity, each passing the state
//! the previous call returned, a fuzzer-chosen one, or a mutation of it.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use quench::native::NativePolicy;
use quench::sandbox::{Allocation, Sandbox, SandboxLimits};
use quench::{
    BounceRequest, Decision, Entity, EntityKind, Role, SmtpReply, Submission, UnblockError,
    UnblockGranted, UnblockRequest,
};
use std::sync::OnceLock;

/// Configurations the fuzzer picks from: the service defaults, and a tight one (low limits,
/// `BlockUser`, an accepted domain, a connector) so restrictions and unblocks are reached.
const CONFIGS: [&str; 2] = [
    "",
    r#"
accepted_domains = ["contoso.com"]
max_recipient_envelope_limit = 20
message_rate_limit = 5
unblock_limit = { count = 2, window_days = 3 }

[[outbound]]
name = "Tight"
recipient_limit_external_per_hour = 10
recipient_limit_internal_per_hour = 20
recipient_limit_per_day = 30
action_when_threshold_reached = "BlockUser"

[[connectors]]
id = "relay-1"
client_addresses = ["192.0.2.10"]
recipient_limit_external_per_hour = 10
action_when_threshold_reached = "BlockUser"
"#,
];

struct Policy {
    sandbox: Sandbox,
    native: NativePolicy,
}

fn policies() -> &'static [Policy] {
    static POLICIES: OnceLock<Vec<Policy>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        CONFIGS
            .iter()
            .map(|config| Policy {
                sandbox: Sandbox::builder()
                    .config(*config)
                    // A generous deadline: a fuzzing machine is loaded, and a real loop is
                    // caught whatever the deadline.
                    .limits(SandboxLimits {
                        deadline_ms: 1_000,
                        ready_instances: 1,
                        ..SandboxLimits::default()
                    })
                    .allocation(Allocation::OnDemand)
                    .build()
                    .expect("the default policy loads"),
                native: NativePolicy::new(config).expect("the config is valid"),
            })
            .collect()
    })
}

#[derive(Debug, Arbitrary)]
enum StateInput {
    /// What the previous call returned.
    Previous,
    /// Fuzzer bytes.
    Raw(Vec<u8>),
    /// The previous state with one byte changed and possibly cut.
    Mutated { at: u16, xor: u8, cut: Option<u16> },
}

#[derive(Debug, Arbitrary)]
enum Op {
    Evaluate {
        sender: String,
        recipients: Vec<String>,
        message_id: Option<String>,
    },
    Describe,
    Idle,
    Unblock {
        role: u8,
        admin: String,
    },
    Bounce {
        recipients: Vec<String>,
        headers: String,
        code: u16,
        status: String,
        text: String,
        bounce_id: String,
    },
}

#[derive(Debug, Arbitrary)]
struct Call {
    state: StateInput,
    /// Seconds after the previous call (negative: the clock ran backwards).
    advance: i32,
    /// Use this absolute time instead (extremes, far past and future).
    absolute: Option<i64>,
    op: Op,
}

#[derive(Debug, Arbitrary)]
struct Session {
    config: bool,
    connector: bool,
    id: String,
    calls: Vec<Call>,
}

fuzz_target!(|session: Session| {
    let policy = &policies()[usize::from(session.config)];
    let (sandbox, native) = (&policy.sandbox, &policy.native);
    let entity = if session.connector {
        Entity {
            kind: EntityKind::Connector,
            id: session.id,
        }
    } else {
        Entity::user(&session.id)
    };
    let mut previous: Vec<u8> = Vec::new();
    let mut clock: i64 = 1_795_428_000;
    for call in session.calls.into_iter().take(8) {
        clock = clock.saturating_add(i64::from(call.advance));
        let now = call.absolute.unwrap_or(clock);
        let state = match call.state {
            StateInput::Previous => previous.clone(),
            StateInput::Raw(bytes) => bytes,
            StateInput::Mutated { at, xor, cut } => {
                let mut s = previous.clone();
                if !s.is_empty() {
                    let i = usize::from(at) % s.len();
                    s[i] ^= xor;
                }
                if let Some(cut) = cut {
                    s.truncate(usize::from(cut));
                }
                s
            }
        };
        match call.op {
            Op::Evaluate {
                sender,
                recipients,
                message_id,
            } => {
                let submission = Submission {
                    entity: entity.clone(),
                    sender,
                    recipients,
                    message_id,
                };
                let decision = sandbox
                    .evaluate(&state, &submission, now)
                    .unwrap_or_else(|fault| panic!("evaluate faulted: {fault:#}"));
                assert_eq!(
                    comparable(decision.clone()),
                    comparable(native.evaluate(&state, &submission, now)),
                    "component and native policy disagree"
                );
                previous = decision.state;
            }
            Op::Describe => {
                let described = sandbox
                    .describe(&state, &entity, now)
                    .unwrap_or_else(|fault| panic!("describe faulted: {fault:#}"));
                assert_eq!(
                    described.map_err(drop),
                    native.describe(&state, &entity, now).map_err(drop)
                );
            }
            Op::Idle => {
                let idle = sandbox
                    .idle(&state, now)
                    .unwrap_or_else(|fault| panic!("idle faulted: {fault:#}"));
                assert_eq!(idle, native.idle(&state, now), "idle disagrees");
            }
            Op::Unblock { role, admin } => {
                let request = UnblockRequest {
                    entity: entity.clone(),
                    role: Role::ALL[usize::from(role) % Role::ALL.len()],
                    admin,
                    reason: String::new(),
                    grace: quench::UnblockGrace::RestOfDay,
                };
                let answer = sandbox
                    .unblock(&state, &request, now)
                    .unwrap_or_else(|fault| panic!("unblock faulted: {fault:#}"));
                assert_eq!(
                    unblock_comparable(answer.clone()),
                    unblock_comparable(native.unblock(&state, &request, now))
                );
                if let Ok(granted) = answer {
                    previous = granted.state;
                }
            }
            Op::Bounce {
                recipients,
                headers,
                code,
                status,
                text,
                bounce_id,
            } => {
                let restriction = sandbox
                    .describe(&state, &entity, now)
                    .ok()
                    .and_then(|d| d.ok().flatten());
                let request = BounceRequest {
                    reporting_mta: "mx.example".into(),
                    original_sender: entity.id.clone(),
                    recipients,
                    original_headers: headers,
                    reply: SmtpReply { code, status, text },
                    restriction,
                    arrival: now,
                    now,
                    bounce_id,
                };
                let bounce = sandbox
                    .render_bounce(&request)
                    .unwrap_or_else(|fault| panic!("render-bounce faulted: {fault:#}"));
                assert_eq!(bounce, native.render_bounce(&request));
            }
        }
    }
});

/// A decision without the alerts' human-readable summaries. For unreadable state those quote
/// the decoder's error, which differs between wasm32 and the native build (postcard reads
/// lengths as `usize`, 32 bits in the component): a wording difference, not a decision one.
fn comparable(mut decision: Decision) -> Decision {
    for alert in &mut decision.alerts {
        alert.summary.clear();
    }
    decision
}

/// An unblock answer without the wording of `invalid-state` (see [`comparable`]).
fn unblock_comparable(
    answer: Result<UnblockGranted, UnblockError>,
) -> Result<UnblockGranted, UnblockError> {
    answer.map_err(|error| match error {
        UnblockError::InvalidState(_) => UnblockError::InvalidState(String::new()),
        other => other,
    })
}
