//! The default policy linked natively, answering with the host's types: the baseline the
//! sandbox is compared with (test vectors must agree; benches measure the sandbox's tax).
//! Only built with the `native` feature; production always runs the component.

use crate::bindings as b;
use quench_default_policy::{Policy, types as g};

/// The default policy, configured, running as plain Rust.
pub struct NativePolicy {
    policy: Policy,
}

impl NativePolicy {
    /// Parse and validate `config` as the component's `engine.create` would.
    pub fn new(config: &str) -> Result<Self, Vec<b::ConfigError>> {
        Policy::from_config(config)
            .map(|policy| NativePolicy { policy })
            .map_err(|errors| {
                errors
                    .into_iter()
                    .map(|e| b::ConfigError {
                        field: e.field,
                        message: e.message,
                    })
                    .collect()
            })
    }

    /// As `engine.state-format`.
    pub fn state_format(&self) -> &'static str {
        self.policy.state_format()
    }

    /// As `engine.evaluate`.
    pub fn evaluate(&self, state: &[u8], submission: &b::Submission, now: i64) -> b::Decision {
        let submission = g::Submission {
            entity: entity_in(&submission.entity),
            sender: submission.sender.clone(),
            recipients: submission.recipients.clone(),
            message_id: submission.message_id.clone(),
        };
        let d = self.policy.evaluate(state, &submission, now);
        b::Decision {
            verdict: b::Verdict {
                action: match d.verdict.action {
                    g::Action::Accept => b::Action::Accept,
                    g::Action::Defer => b::Action::Defer,
                    g::Action::Reject => b::Action::Reject,
                },
                reply: d.verdict.reply.map(reply_out),
            },
            state: d.state,
            restriction: d.restriction.map(restriction_out),
            change: match d.change {
                g::RestrictionChange::None => b::RestrictionChange::None,
                g::RestrictionChange::Started => b::RestrictionChange::Started,
                g::RestrictionChange::Changed => b::RestrictionChange::Changed,
                g::RestrictionChange::Lifted => b::RestrictionChange::Lifted,
            },
            alerts: d
                .alerts
                .into_iter()
                .map(|a| b::Alert {
                    name: a.name,
                    severity: match a.severity {
                        g::Severity::Informational => b::Severity::Informational,
                        g::Severity::Low => b::Severity::Low,
                        g::Severity::Medium => b::Severity::Medium,
                        g::Severity::High => b::Severity::High,
                    },
                    entity: entity_out(a.entity),
                    summary: a.summary,
                    at: a.at,
                })
                .collect(),
        }
    }

    /// As `engine.unblock`.
    pub fn unblock(
        &self,
        state: &[u8],
        request: &b::UnblockRequest,
        now: i64,
    ) -> Result<b::UnblockGranted, b::UnblockError> {
        let request = g::UnblockRequest {
            entity: entity_in(&request.entity),
            role: match request.role {
                b::Role::GlobalAdministrator => g::Role::GlobalAdministrator,
                b::Role::OrganizationManagement => g::Role::OrganizationManagement,
                b::Role::SecurityAdministrator => g::Role::SecurityAdministrator,
                b::Role::GlobalReader => g::Role::GlobalReader,
                b::Role::SecurityReader => g::Role::SecurityReader,
                b::Role::ViewOnlyOrganizationManagement => g::Role::ViewOnlyOrganizationManagement,
                b::Role::Support => g::Role::Support,
            },
            admin: request.admin.clone(),
            reason: request.reason.clone(),
            grace: grace_in(request.grace),
        };
        match self.policy.unblock(state, &request, now) {
            Ok(g) => Ok(b::UnblockGranted {
                state: g.state,
                lifted: restriction_out(g.lifted),
                unblocks_used: g.unblocks_used,
                unblocks_left: g.unblocks_left,
                recommendations: g.recommendations,
            }),
            Err(e) => Err(match e {
                g::UnblockError::NotRestricted => b::UnblockError::NotRestricted,
                g::UnblockError::RoleNotAllowed(role) => {
                    b::UnblockError::RoleNotAllowed(role_out(role))
                }
                g::UnblockError::LimitReached(l) => {
                    b::UnblockError::LimitReached(b::UnblockLimitReached {
                        used: l.used,
                        limit: l.limit,
                        window_seconds: l.window_seconds,
                        next_allowed: l.next_allowed,
                    })
                }
                g::UnblockError::NotUnblockable(why) => b::UnblockError::NotUnblockable(why),
                g::UnblockError::InvalidState(why) => b::UnblockError::InvalidState(why),
            }),
        }
    }

    /// As `engine.describe`.
    pub fn describe(
        &self,
        state: &[u8],
        entity: &b::Entity,
        now: i64,
    ) -> Result<Option<b::Restriction>, String> {
        self.policy
            .describe(state, &entity_in(entity), now)
            .map(|r| r.map(restriction_out))
    }

    /// As `engine.idle`.
    pub fn idle(&self, state: &[u8], now: i64) -> bool {
        self.policy.idle(state, now)
    }

    /// As `engine.render-bounce`.
    pub fn render_bounce(&self, request: &b::BounceRequest) -> String {
        let request = g::BounceRequest {
            reporting_mta: request.reporting_mta.clone(),
            original_sender: request.original_sender.clone(),
            recipients: request.recipients.clone(),
            original_headers: request.original_headers.clone(),
            reply: g::SmtpReply {
                code: request.reply.code,
                status: request.reply.status.clone(),
                text: request.reply.text.clone(),
            },
            restriction: request.restriction.clone().map(restriction_in),
            arrival: request.arrival,
            now: request.now,
            bounce_id: request.bounce_id.clone(),
        };
        self.policy.render_bounce(&request)
    }
}

fn role_out(role: g::Role) -> b::Role {
    match role {
        g::Role::GlobalAdministrator => b::Role::GlobalAdministrator,
        g::Role::OrganizationManagement => b::Role::OrganizationManagement,
        g::Role::SecurityAdministrator => b::Role::SecurityAdministrator,
        g::Role::GlobalReader => b::Role::GlobalReader,
        g::Role::SecurityReader => b::Role::SecurityReader,
        g::Role::ViewOnlyOrganizationManagement => b::Role::ViewOnlyOrganizationManagement,
        g::Role::Support => b::Role::Support,
    }
}

fn entity_in(e: &b::Entity) -> g::Entity {
    g::Entity {
        kind: match e.kind {
            b::EntityKind::User => g::EntityKind::User,
            b::EntityKind::Connector => g::EntityKind::Connector,
            b::EntityKind::Relay => g::EntityKind::Relay,
        },
        id: e.id.clone(),
    }
}

fn entity_out(e: g::Entity) -> b::Entity {
    b::Entity {
        kind: match e.kind {
            g::EntityKind::User => b::EntityKind::User,
            g::EntityKind::Connector => b::EntityKind::Connector,
            g::EntityKind::Relay => b::EntityKind::Relay,
        },
        id: e.id,
    }
}

fn reply_out(r: g::SmtpReply) -> b::SmtpReply {
    b::SmtpReply {
        code: r.code,
        status: r.status,
        text: r.text,
    }
}

fn restriction_out(r: g::Restriction) -> b::Restriction {
    b::Restriction {
        entity: entity_out(r.entity),
        kind: match r.kind {
            g::RestrictionKind::BlockUserForToday => b::RestrictionKind::BlockUserForToday,
            g::RestrictionKind::BlockUser => b::RestrictionKind::BlockUser,
            g::RestrictionKind::ServiceDailyLimit => b::RestrictionKind::ServiceDailyLimit,
        },
        evidence: b::Evidence {
            policy: r.evidence.policy,
            limit: r.evidence.limit,
            threshold: r.evidence.threshold,
            observed: r.evidence.observed,
            window_seconds: r.evidence.window_seconds,
            at: r.evidence.at,
            last_message_id: r.evidence.last_message_id,
            reason: r.evidence.reason,
        },
        created: r.created,
        changed: r.changed,
        expires: r.expires,
        unblocks_used: r.unblocks_used,
        unblocks_left: r.unblocks_left,
    }
}

fn restriction_in(r: b::Restriction) -> g::Restriction {
    g::Restriction {
        entity: entity_in(&r.entity),
        kind: match r.kind {
            b::RestrictionKind::BlockUserForToday => g::RestrictionKind::BlockUserForToday,
            b::RestrictionKind::BlockUser => g::RestrictionKind::BlockUser,
            b::RestrictionKind::ServiceDailyLimit => g::RestrictionKind::ServiceDailyLimit,
        },
        evidence: g::Evidence {
            policy: r.evidence.policy,
            limit: r.evidence.limit,
            threshold: r.evidence.threshold,
            observed: r.evidence.observed,
            window_seconds: r.evidence.window_seconds,
            at: r.evidence.at,
            last_message_id: r.evidence.last_message_id,
            reason: r.evidence.reason,
        },
        created: r.created,
        changed: r.changed,
        expires: r.expires,
        unblocks_used: r.unblocks_used,
        unblocks_left: r.unblocks_left,
    }
}

fn grace_in(grace: b::UnblockGrace) -> g::UnblockGrace {
    match grace {
        b::UnblockGrace::RestOfDay => g::UnblockGrace::RestOfDay,
        b::UnblockGrace::None => g::UnblockGrace::None,
    }
}
