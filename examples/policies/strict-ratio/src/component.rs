//! The WIT glue: exports [`crate::Policy`] as the `quench:policy/policy` interface. Only
//! conversions live here; every decision is made in [`crate::rule`].

wit_bindgen::generate!({
    path: "../../../wit",
    world: "restriction-policy",
});

use crate::rule::{Authority, LIMIT_KEY, Outcome, POLICY_NAME, Restricted, UnblockRefusal};
use crate::window::WINDOW_SECONDS;
use exports::quench::policy::policy as w;

struct Component;
export!(Component);

impl w::Guest for Component {
    type Engine = crate::Policy;
}

/// What an admin should check before trusting the account again.
const RECOMMENDATIONS: &[&str] = &[
    "Reset the account's password and require multifactor authentication.",
    "Look for forwarding rules and unfamiliar sign-ins.",
    "Review the account's recently sent items for spam.",
];

fn restriction(policy: &crate::Policy, entity: w::Entity, r: Restricted) -> w::Restriction {
    w::Restriction {
        entity,
        kind: w::RestrictionKind::BlockUser,
        evidence: w::Evidence {
            policy: POLICY_NAME.into(),
            limit: LIMIT_KEY.into(),
            threshold: policy.settings().external_per_hour,
            observed: r.trip.external,
            window_seconds: WINDOW_SECONDS,
            at: r.trip.at,
            last_message_id: r.trip.message_id,
            reason: r.reason,
        },
        created: r.trip.at,
        changed: r.trip.at,
        expires: None,
        unblocks_used: r.unblocks_used,
        unblocks_left: r.unblocks_left,
    }
}

fn refusal(entity: &w::Entity) -> w::SmtpReply {
    let (status, text) = match entity.kind {
        w::EntityKind::User | w::EntityKind::Relay => {
            ("5.1.8", "Access denied, bad outbound sender")
        }
        w::EntityKind::Connector => ("5.7.711", "Access denied, bad inbound connector"),
    };
    w::SmtpReply {
        code: 550,
        status: status.into(),
        text: text.into(),
    }
}

impl w::GuestEngine for crate::Policy {
    fn create(config: String) -> Result<w::Engine, Vec<w::ConfigError>> {
        crate::Policy::from_config(&config)
            .map(w::Engine::new)
            .map_err(|errors| {
                errors
                    .into_iter()
                    .map(|e| w::ConfigError {
                        field: e.field,
                        message: e.message,
                    })
                    .collect()
            })
    }

    fn state_format(&self) -> String {
        crate::state::FORMAT.into()
    }

    fn connectors(&self) -> Vec<w::ConnectorSpec> {
        Vec::new()
    }

    fn evaluate(&self, state: Vec<u8>, submission: w::Submission, now: i64) -> w::Decision {
        let evaluated = crate::Policy::evaluate(
            self,
            &state,
            &submission.recipients,
            submission.message_id.as_deref(),
            now,
        );
        let entity = submission.entity;
        let (verdict, restricted, change, alerts) = match evaluated.outcome {
            Outcome::Accepted => (
                w::Verdict {
                    action: w::Action::Accept,
                    reply: None,
                },
                None,
                w::RestrictionChange::None,
                Vec::new(),
            ),
            Outcome::Refused {
                restriction: r,
                started,
            } => {
                let alerts = if started {
                    vec![w::Alert {
                        name: "User restricted from sending email".into(),
                        severity: w::Severity::High,
                        entity: entity.clone(),
                        summary: format!(
                            "{} was restricted from sending email: {} external against {} internal recipients in the last hour ({}).",
                            entity.id, r.trip.external, r.trip.internal, r.reason
                        ),
                        at: now,
                    }]
                } else {
                    Vec::new()
                };
                let change = if started {
                    w::RestrictionChange::Started
                } else {
                    w::RestrictionChange::None
                };
                (
                    w::Verdict {
                        action: w::Action::Reject,
                        reply: Some(refusal(&entity)),
                    },
                    Some(restriction(self, entity, r)),
                    change,
                    alerts,
                )
            }
        };
        w::Decision {
            verdict,
            state: evaluated.state,
            restriction: restricted,
            change,
            alerts,
        }
    }

    fn unblock(
        &self,
        state: Vec<u8>,
        request: w::UnblockRequest,
        now: i64,
    ) -> Result<w::UnblockGranted, w::UnblockError> {
        let authority = match request.role {
            w::Role::GlobalAdministrator
            | w::Role::OrganizationManagement
            | w::Role::SecurityAdministrator => Authority::WithinLimit,
            w::Role::Support => Authority::PastLimit,
            w::Role::GlobalReader
            | w::Role::SecurityReader
            | w::Role::ViewOnlyOrganizationManagement => Authority::ReadOnly,
        };
        match crate::Policy::unblock(self, &state, authority, now) {
            Ok(granted) => Ok(w::UnblockGranted {
                state: granted.state,
                unblocks_used: granted.lifted.unblocks_used,
                unblocks_left: granted.lifted.unblocks_left,
                lifted: w::Restriction {
                    changed: now,
                    ..restriction(self, request.entity, granted.lifted)
                },
                recommendations: RECOMMENDATIONS.iter().map(|s| s.to_string()).collect(),
            }),
            Err(UnblockRefusal::ReadOnly) => Err(w::UnblockError::RoleNotAllowed(request.role)),
            Err(UnblockRefusal::NotRestricted) => Err(w::UnblockError::NotRestricted),
            Err(UnblockRefusal::InvalidState(why)) => Err(w::UnblockError::InvalidState(why)),
            Err(UnblockRefusal::LimitReached {
                used,
                limit,
                window_seconds,
                next_allowed,
            }) => Err(w::UnblockError::LimitReached(w::UnblockLimitReached {
                used,
                limit,
                window_seconds,
                next_allowed,
            })),
        }
    }

    fn describe(
        &self,
        state: Vec<u8>,
        entity: w::Entity,
        now: i64,
    ) -> Result<Option<w::Restriction>, String> {
        Ok(crate::Policy::describe(self, &state, now)?.map(|r| restriction(self, entity, r)))
    }

    fn idle(&self, state: Vec<u8>, now: i64) -> bool {
        crate::Policy::idle(self, &state, now)
    }

    fn render_bounce(&self, request: w::BounceRequest) -> String {
        crate::bounce::render(&crate::bounce::Request {
            reporting_mta: request.reporting_mta,
            original_sender: request.original_sender,
            recipients: request.recipients,
            code: request.reply.code,
            status: request.reply.status,
            text: request.reply.text,
            reason: request.restriction.map(|r| r.evidence.reason),
            arrival: request.arrival,
            now: request.now,
            bounce_id: request.bounce_id,
        })
    }
}
