//! Bindings for the previous contract, `quench:policy@0.1.0` (`wit/compat/v0.1.0`), and the
//! conversions between its types and the current ones, so a policy built against 0.1.0 keeps
//! loading. Only the sandbox uses them (`sandbox/compat.rs`): everything above it speaks 0.2.0.
//!
//! The two contracts differ in one type: 0.2.0 adds `entity-kind::relay`. Lowering a relay
//! gives a 0.1.0 `user` of the same id (the old policy counts and restricts it with a user's
//! limits and reply); lifting never produces a relay by itself. Because the old policy echoes
//! the entity it was given, a result naming the lowered form of the entity the host asked about
//! is given that entity back ([`keep_asked`]), so a relay's restriction stays `relay:<id>`.

wasmtime::component::bindgen!({
    path: "../wit/compat/v0.1.0",
    world: "restriction-policy",
});

use super as cur;
use exports::quench::policy::policy as old;

/// The interface a 0.1.0 policy exports.
pub(crate) const INTERFACE: &str = "quench:policy/policy@0.1.0";

/// Converts between an enum of one contract and its twin in the other, both ways, case by
/// case (the enums that did not change).
macro_rules! mirror_enum {
    ($name:ident, [$($case:ident),* $(,)?]) => {
        impl From<cur::$name> for old::$name {
            fn from(value: cur::$name) -> Self {
                match value { $(cur::$name::$case => old::$name::$case,)* }
            }
        }
        impl From<old::$name> for cur::$name {
            fn from(value: old::$name) -> Self {
                match value { $(old::$name::$case => cur::$name::$case,)* }
            }
        }
    };
}

mirror_enum!(Action, [Accept, Defer, Reject]);
mirror_enum!(
    RestrictionKind,
    [BlockUserForToday, BlockUser, ServiceDailyLimit]
);
mirror_enum!(RestrictionChange, [None, Started, Changed, Lifted]);
mirror_enum!(Severity, [Informational, Low, Medium, High]);
/// 0.1.0 has no Global Administrator: it has OrganizationManagement's rights, so an old
/// policy sees that role.
impl From<cur::Role> for old::Role {
    fn from(role: cur::Role) -> Self {
        match role {
            cur::Role::GlobalAdministrator | cur::Role::OrganizationManagement => {
                old::Role::OrganizationManagement
            }
            cur::Role::SecurityAdministrator => old::Role::SecurityAdministrator,
            cur::Role::GlobalReader => old::Role::GlobalReader,
            cur::Role::SecurityReader => old::Role::SecurityReader,
            cur::Role::ViewOnlyOrganizationManagement => old::Role::ViewOnlyOrganizationManagement,
            cur::Role::Support => old::Role::Support,
        }
    }
}

impl From<old::Role> for cur::Role {
    fn from(role: old::Role) -> Self {
        match role {
            old::Role::OrganizationManagement => cur::Role::OrganizationManagement,
            old::Role::SecurityAdministrator => cur::Role::SecurityAdministrator,
            old::Role::GlobalReader => cur::Role::GlobalReader,
            old::Role::SecurityReader => cur::Role::SecurityReader,
            old::Role::ViewOnlyOrganizationManagement => cur::Role::ViewOnlyOrganizationManagement,
            old::Role::Support => cur::Role::Support,
        }
    }
}

/// 0.1.0 has no relay: a relay is a user to an old policy.
impl From<cur::EntityKind> for old::EntityKind {
    fn from(kind: cur::EntityKind) -> Self {
        match kind {
            cur::EntityKind::User | cur::EntityKind::Relay => old::EntityKind::User,
            cur::EntityKind::Connector => old::EntityKind::Connector,
        }
    }
}

impl From<old::EntityKind> for cur::EntityKind {
    fn from(kind: old::EntityKind) -> Self {
        match kind {
            old::EntityKind::User => cur::EntityKind::User,
            old::EntityKind::Connector => cur::EntityKind::Connector,
        }
    }
}

impl From<&cur::Entity> for old::Entity {
    fn from(e: &cur::Entity) -> Self {
        old::Entity {
            kind: e.kind.into(),
            id: e.id.clone(),
        }
    }
}

impl From<old::Entity> for cur::Entity {
    fn from(e: old::Entity) -> Self {
        cur::Entity {
            kind: e.kind.into(),
            id: e.id,
        }
    }
}

/// `entity`, lifted from an old policy's answer about `asked`: `asked` itself when `entity` is
/// `asked` as the old policy was given it (a relay it saw as a user), else as it came.
pub(crate) fn keep_asked(entity: &mut cur::Entity, asked: &cur::Entity) {
    if entity.id == asked.id
        && old::EntityKind::from(entity.kind) == old::EntityKind::from(asked.kind)
    {
        entity.kind = asked.kind;
    }
}

impl From<&cur::Submission> for old::Submission {
    fn from(s: &cur::Submission) -> Self {
        old::Submission {
            entity: (&s.entity).into(),
            sender: s.sender.clone(),
            recipients: s.recipients.clone(),
            message_id: s.message_id.clone(),
        }
    }
}

impl From<&cur::SmtpReply> for old::SmtpReply {
    fn from(r: &cur::SmtpReply) -> Self {
        old::SmtpReply {
            code: r.code,
            status: r.status.clone(),
            text: r.text.clone(),
        }
    }
}

impl From<old::SmtpReply> for cur::SmtpReply {
    fn from(r: old::SmtpReply) -> Self {
        cur::SmtpReply {
            code: r.code,
            status: r.status,
            text: r.text,
        }
    }
}

impl From<&cur::Evidence> for old::Evidence {
    fn from(e: &cur::Evidence) -> Self {
        old::Evidence {
            policy: e.policy.clone(),
            limit: e.limit.clone(),
            threshold: e.threshold,
            observed: e.observed,
            window_seconds: e.window_seconds,
            at: e.at,
            last_message_id: e.last_message_id.clone(),
            reason: e.reason.clone(),
        }
    }
}

impl From<old::Evidence> for cur::Evidence {
    fn from(e: old::Evidence) -> Self {
        cur::Evidence {
            policy: e.policy,
            limit: e.limit,
            threshold: e.threshold,
            observed: e.observed,
            window_seconds: e.window_seconds,
            at: e.at,
            last_message_id: e.last_message_id,
            reason: e.reason,
        }
    }
}

impl From<&cur::Restriction> for old::Restriction {
    fn from(r: &cur::Restriction) -> Self {
        old::Restriction {
            entity: (&r.entity).into(),
            kind: r.kind.into(),
            evidence: (&r.evidence).into(),
            created: r.created,
            changed: r.changed,
            expires: r.expires,
            unblocks_used: r.unblocks_used,
            unblocks_left: r.unblocks_left,
        }
    }
}

impl From<old::Restriction> for cur::Restriction {
    fn from(r: old::Restriction) -> Self {
        cur::Restriction {
            entity: r.entity.into(),
            kind: r.kind.into(),
            evidence: r.evidence.into(),
            created: r.created,
            changed: r.changed,
            expires: r.expires,
            unblocks_used: r.unblocks_used,
            unblocks_left: r.unblocks_left,
        }
    }
}

impl From<old::Alert> for cur::Alert {
    fn from(a: old::Alert) -> Self {
        cur::Alert {
            name: a.name,
            severity: a.severity.into(),
            entity: a.entity.into(),
            summary: a.summary,
            at: a.at,
        }
    }
}

impl From<old::Decision> for cur::Decision {
    fn from(d: old::Decision) -> Self {
        cur::Decision {
            verdict: cur::Verdict {
                action: d.verdict.action.into(),
                reply: d.verdict.reply.map(Into::into),
            },
            state: d.state,
            restriction: d.restriction.map(Into::into),
            change: d.change.into(),
            alerts: d.alerts.into_iter().map(Into::into).collect(),
        }
    }
}

impl cur::Decision {
    /// Give the entities of a decision about `asked` back their kind (see [`keep_asked`]).
    pub(crate) fn keep_asked(&mut self, asked: &cur::Entity) {
        if let Some(r) = &mut self.restriction {
            keep_asked(&mut r.entity, asked);
        }
        for alert in &mut self.alerts {
            keep_asked(&mut alert.entity, asked);
        }
    }
}

impl From<&cur::UnblockRequest> for old::UnblockRequest {
    fn from(r: &cur::UnblockRequest) -> Self {
        old::UnblockRequest {
            entity: (&r.entity).into(),
            role: r.role.into(),
            admin: r.admin.clone(),
            reason: r.reason.clone(),
            // 0.1.0 has no grace choice: an old policy always grants its own (the rest of the
            // day, for the default policy).
        }
    }
}

impl From<old::UnblockGranted> for cur::UnblockGranted {
    fn from(g: old::UnblockGranted) -> Self {
        cur::UnblockGranted {
            state: g.state,
            lifted: g.lifted.into(),
            unblocks_used: g.unblocks_used,
            unblocks_left: g.unblocks_left,
            recommendations: g.recommendations,
        }
    }
}

impl From<old::UnblockLimitReached> for cur::UnblockLimitReached {
    fn from(l: old::UnblockLimitReached) -> Self {
        cur::UnblockLimitReached {
            used: l.used,
            limit: l.limit,
            window_seconds: l.window_seconds,
            next_allowed: l.next_allowed,
        }
    }
}

impl From<old::UnblockError> for cur::UnblockError {
    fn from(e: old::UnblockError) -> Self {
        match e {
            old::UnblockError::NotRestricted => cur::UnblockError::NotRestricted,
            old::UnblockError::RoleNotAllowed(role) => {
                cur::UnblockError::RoleNotAllowed(role.into())
            }
            old::UnblockError::LimitReached(l) => cur::UnblockError::LimitReached(l.into()),
            old::UnblockError::NotUnblockable(why) => cur::UnblockError::NotUnblockable(why),
            old::UnblockError::InvalidState(why) => cur::UnblockError::InvalidState(why),
        }
    }
}

impl From<old::ConfigError> for cur::ConfigError {
    fn from(e: old::ConfigError) -> Self {
        cur::ConfigError {
            field: e.field,
            message: e.message,
        }
    }
}

impl From<old::ConnectorSpec> for cur::ConnectorSpec {
    fn from(c: old::ConnectorSpec) -> Self {
        cur::ConnectorSpec {
            id: c.id,
            client_addresses: c.client_addresses,
            certificate_fingerprints: c.certificate_fingerprints,
        }
    }
}

impl From<&cur::BounceRequest> for old::BounceRequest {
    fn from(r: &cur::BounceRequest) -> Self {
        old::BounceRequest {
            reporting_mta: r.reporting_mta.clone(),
            original_sender: r.original_sender.clone(),
            recipients: r.recipients.clone(),
            original_headers: r.original_headers.clone(),
            reply: (&r.reply).into(),
            restriction: r.restriction.as_ref().map(Into::into),
            arrival: r.arrival,
            now: r.now,
            bounce_id: r.bounce_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_is_lowered_to_a_user_and_lifted_back_only_for_the_entity_asked_about() {
        let relay = cur::Entity::relay("app@contoso.com");
        let lowered = old::Entity::from(&relay);
        assert_eq!(lowered.kind, old::EntityKind::User);
        assert_eq!(lowered.id, "app@contoso.com");

        // Lifting alone never makes a relay.
        let mut lifted = cur::Entity::from(lowered);
        assert_eq!(lifted.kind, cur::EntityKind::User);
        // About the relay asked for: the host's entity comes back.
        keep_asked(&mut lifted, &relay);
        assert_eq!(lifted, relay);
        assert_eq!(lifted.key(), "relay:app@contoso.com");

        // Anything else stays as the policy said.
        let mut other = cur::Entity::user("someone@contoso.com");
        keep_asked(&mut other, &relay);
        assert_eq!(other.key(), "user:someone@contoso.com");
        let mut connector = cur::Entity::connector("app@contoso.com");
        keep_asked(&mut connector, &relay);
        assert_eq!(connector.kind, cur::EntityKind::Connector);
        let user = cur::Entity::user("app@contoso.com");
        let mut echoed = cur::Entity::from(old::Entity::from(&user));
        keep_asked(&mut echoed, &user);
        assert_eq!(echoed, user);
    }
}
