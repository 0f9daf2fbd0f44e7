//! Shared test harness: a policy, an in-memory state store and helpers for times and
//! recipients. Every test goes through the public API only, like the host does.
#![allow(dead_code)]

use std::collections::HashMap;

use quench_default_policy::Policy;
pub use quench_default_policy::types::*;

/// 2026-11-23T00:00:00Z, a Monday.
pub const DAY0: i64 = 1_795_392_000;
pub const DAY: i64 = 86_400;
pub const HOUR: i64 = 3_600;

/// Time of day on day `d` after [`DAY0`].
pub fn at(d: i64, h: i64, m: i64, s: i64) -> i64 {
    DAY0 + d * DAY + h * HOUR + m * 60 + s
}

pub fn user(id: &str) -> Entity {
    Entity {
        kind: EntityKind::User,
        id: id.to_string(),
    }
}

pub fn connector(id: &str) -> Entity {
    Entity {
        kind: EntityKind::Connector,
        id: id.to_string(),
    }
}

/// The envelope sender of an unauthenticated client on a trusted network.
pub fn relayed(id: &str) -> Entity {
    Entity {
        kind: EntityKind::Relay,
        id: id.to_string(),
    }
}

/// `n` distinct external recipients (fabrikam.com), numbered from `from`.
pub fn ext(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}@fabrikam.com")).collect()
}

/// `n` distinct internal recipients (contoso.com).
pub fn int(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}@contoso.com")).collect()
}

/// A policy plus a state store keyed by entity.
pub struct H {
    pub policy: Policy,
    pub states: HashMap<Entity, Vec<u8>>,
}

impl H {
    pub fn new(config: &str) -> H {
        let policy =
            Policy::from_config(config).unwrap_or_else(|e| panic!("config rejected: {e:#?}"));
        H {
            policy,
            states: HashMap::new(),
        }
    }

    pub fn state(&self, e: &Entity) -> Vec<u8> {
        self.states.get(e).cloned().unwrap_or_default()
    }

    /// Evaluate and store the new state.
    pub fn submit(&mut self, sub: Submission, now: i64) -> Decision {
        let d = self.policy.evaluate(&self.state(&sub.entity), &sub, now);
        self.states.insert(sub.entity.clone(), d.state.clone());
        d
    }

    /// `who` sends as itself, one message (no id).
    pub fn send(&mut self, who: &str, recipients: Vec<String>, now: i64) -> Decision {
        self.send_as(who, who, recipients, now)
    }

    /// `who` authenticates and sends with From `sender` (Send As).
    pub fn send_as(
        &mut self,
        who: &str,
        sender: &str,
        recipients: Vec<String>,
        now: i64,
    ) -> Decision {
        self.submit(
            Submission {
                entity: user(who),
                sender: sender.to_string(),
                recipients,
                message_id: None,
            },
            now,
        )
    }

    /// One call of a per-recipient run for message `id`.
    pub fn send_part(
        &mut self,
        who: &str,
        id: &str,
        recipients: Vec<String>,
        now: i64,
    ) -> Decision {
        self.submit(
            Submission {
                entity: user(who),
                sender: who.to_string(),
                recipients,
                message_id: Some(id.to_string()),
            },
            now,
        )
    }

    /// A relay entity (unauthenticated, trusted network) sends with envelope sender `id`.
    pub fn send_relayed(
        &mut self,
        id: &str,
        message_id: Option<&str>,
        recipients: Vec<String>,
        now: i64,
    ) -> Decision {
        self.submit(
            Submission {
                entity: relayed(id),
                sender: id.to_string(),
                recipients,
                message_id: message_id.map(str::to_string),
            },
            now,
        )
    }

    /// A connector relays one message.
    pub fn relay(&mut self, id: &str, recipients: Vec<String>, now: i64) -> Decision {
        self.submit(
            Submission {
                entity: connector(id),
                sender: "app@contoso.com".into(),
                recipients,
                message_id: None,
            },
            now,
        )
    }

    /// Unblock; on success the new state is stored.
    pub fn unblock_as(
        &mut self,
        e: &Entity,
        role: Role,
        now: i64,
    ) -> Result<UnblockGranted, UnblockError> {
        let req = UnblockRequest {
            entity: e.clone(),
            role,
            admin: "admin@contoso.com".into(),
            reason: "test".into(),
            grace: Default::default(),
        };
        let r = self.policy.unblock(&self.state(e), &req, now);
        if let Ok(g) = &r {
            self.states.insert(e.clone(), g.state.clone());
        }
        r
    }

    pub fn unblock(&mut self, who: &str, now: i64) -> Result<UnblockGranted, UnblockError> {
        self.unblock_as(&user(who), Role::SecurityAdministrator, now)
    }

    pub fn describe(&self, e: &Entity, now: i64) -> Option<Restriction> {
        self.policy
            .describe(&self.state(e), e, now)
            .expect("readable state")
    }
}

/// The outcome of a decision in a compact, comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V {
    Ok,
    Defer(&'static str),
    Reject(&'static str),
}

pub fn v(d: &Decision) -> V {
    let status = d
        .verdict
        .reply
        .as_ref()
        .map(|r| r.status.clone())
        .unwrap_or_default();
    let known = ["5.1.8", "5.1.90", "5.7.711", "4.4.2", "5.5.3"];
    let s: &'static str = known.into_iter().find(|k| *k == status).unwrap_or("other");
    match d.verdict.action {
        Action::Accept => V::Ok,
        Action::Defer => V::Defer(s),
        Action::Reject => V::Reject(s),
    }
}

pub fn alert_names(d: &Decision) -> Vec<&str> {
    d.alerts.iter().map(|a| a.name.as_str()).collect()
}

/// A config with one default policy of the given limits and action, and contoso.com accepted.
pub fn limits_config(external: u32, internal: u32, per_day: u32, action: &str) -> String {
    format!(
        r#"accepted_domains = ["contoso.com"]
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = {external}
recipient_limit_internal_per_hour = {internal}
recipient_limit_per_day = {per_day}
action_when_threshold_reached = "{action}"
"#
    )
}

/// xorshift64*: deterministic, dependency-free randomness for the tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}
