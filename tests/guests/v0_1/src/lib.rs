//! A 0.1.0 policy for the compatibility tests: the default policy (`guest/`), exported under
//! the previous contract `quench:policy@0.1.0` (`wit/compat/v0.1.0`), the way a policy built
//! before 0.2.0 looks to a host. It knows no `relay` entity kind: a host gives it a relay's
//! submissions as a `user`.
//!
//! Only the glue differs from `guest/src/component.rs`: the 0.1.0 bindings, and no relay case.

#[cfg(target_arch = "wasm32")]
mod component {
    use policy::types as t;
    use quench_default_policy as policy;

    wit_bindgen::generate!({
        path: "../../../wit/compat/v0.1.0",
        world: "restriction-policy",
    });

    use exports::quench::policy::policy as w;

    struct Component;

    export!(Component);

    impl w::Guest for Component {
        type Engine = policy::Policy;
    }

    impl w::GuestEngine for policy::Policy {
        fn create(config: String) -> Result<w::Engine, Vec<w::ConfigError>> {
            policy::Policy::from_config(&config)
                .map(w::Engine::new)
                .map_err(|errors| errors.into_iter().map(Into::into).collect())
        }

        fn state_format(&self) -> String {
            policy::Policy::state_format(self).to_string()
        }

        fn connectors(&self) -> Vec<w::ConnectorSpec> {
            policy::Policy::connectors(self)
                .into_iter()
                .map(|c| w::ConnectorSpec {
                    id: c.id,
                    client_addresses: c.client_addresses,
                    certificate_fingerprints: c.certificate_fingerprints,
                })
                .collect()
        }

        fn evaluate(&self, state: Vec<u8>, submission: w::Submission, now: i64) -> w::Decision {
            let submission = t::Submission {
                entity: submission.entity.into(),
                sender: submission.sender,
                recipients: submission.recipients,
                message_id: submission.message_id,
            };
            policy::Policy::evaluate(self, &state, &submission, now).into()
        }

        fn unblock(
            &self,
            state: Vec<u8>,
            request: w::UnblockRequest,
            now: i64,
        ) -> Result<w::UnblockGranted, w::UnblockError> {
            let request = t::UnblockRequest {
                entity: request.entity.into(),
                role: request.role.into(),
                admin: request.admin,
                reason: request.reason,
                // 0.1.0 has no grace choice: EOP's rest-of-day exemption.
                grace: t::UnblockGrace::RestOfDay,
            };
            policy::Policy::unblock(self, &state, &request, now)
                .map(|g| w::UnblockGranted {
                    state: g.state,
                    lifted: g.lifted.into(),
                    unblocks_used: g.unblocks_used,
                    unblocks_left: g.unblocks_left,
                    recommendations: g.recommendations,
                })
                .map_err(Into::into)
        }

        fn describe(
            &self,
            state: Vec<u8>,
            entity: w::Entity,
            now: i64,
        ) -> Result<Option<w::Restriction>, String> {
            policy::Policy::describe(self, &state, &entity.into(), now).map(|r| r.map(Into::into))
        }

        fn idle(&self, state: Vec<u8>, now: i64) -> bool {
            policy::Policy::idle(self, &state, now)
        }

        fn render_bounce(&self, request: w::BounceRequest) -> String {
            let request = t::BounceRequest {
                reporting_mta: request.reporting_mta,
                original_sender: request.original_sender,
                recipients: request.recipients,
                original_headers: request.original_headers,
                reply: request.reply.into(),
                restriction: request.restriction.map(Into::into),
                arrival: request.arrival,
                now: request.now,
                bounce_id: request.bounce_id,
            };
            policy::Policy::render_bounce(self, &request)
        }
    }

    /// Converts between a pure enum and its generated twin, both ways, case by case.
    macro_rules! mirror_enum {
        ($pure:ty, $wit:ty, [$($case:ident),* $(,)?]) => {
            impl From<$pure> for $wit {
                fn from(value: $pure) -> Self {
                    match value { $(<$pure>::$case => <$wit>::$case,)* }
                }
            }
            impl From<$wit> for $pure {
                fn from(value: $wit) -> Self {
                    match value { $(<$wit>::$case => <$pure>::$case,)* }
                }
            }
        };
    }

    // 0.1.0 has no relay: the policy only ever sees (and so only returns) users and connectors.
    impl From<t::EntityKind> for w::EntityKind {
        fn from(value: t::EntityKind) -> Self {
            match value {
                t::EntityKind::User | t::EntityKind::Relay => w::EntityKind::User,
                t::EntityKind::Connector => w::EntityKind::Connector,
            }
        }
    }

    impl From<w::EntityKind> for t::EntityKind {
        fn from(value: w::EntityKind) -> Self {
            match value {
                w::EntityKind::User => t::EntityKind::User,
                w::EntityKind::Connector => t::EntityKind::Connector,
            }
        }
    }
    mirror_enum!(t::Action, w::Action, [Accept, Defer, Reject]);
    mirror_enum!(
        t::RestrictionKind,
        w::RestrictionKind,
        [BlockUserForToday, BlockUser, ServiceDailyLimit]
    );
    mirror_enum!(
        t::RestrictionChange,
        w::RestrictionChange,
        [None, Started, Changed, Lifted]
    );
    mirror_enum!(t::Severity, w::Severity, [Informational, Low, Medium, High]);
    // 0.1.0 has no Global Administrator; the pure type's is OrganizationManagement here.
    impl From<t::Role> for w::Role {
        fn from(value: t::Role) -> Self {
            match value {
                t::Role::GlobalAdministrator | t::Role::OrganizationManagement => {
                    w::Role::OrganizationManagement
                }
                t::Role::SecurityAdministrator => w::Role::SecurityAdministrator,
                t::Role::GlobalReader => w::Role::GlobalReader,
                t::Role::SecurityReader => w::Role::SecurityReader,
                t::Role::ViewOnlyOrganizationManagement => w::Role::ViewOnlyOrganizationManagement,
                t::Role::Support => w::Role::Support,
            }
        }
    }
    impl From<w::Role> for t::Role {
        fn from(value: w::Role) -> Self {
            match value {
                w::Role::OrganizationManagement => t::Role::OrganizationManagement,
                w::Role::SecurityAdministrator => t::Role::SecurityAdministrator,
                w::Role::GlobalReader => t::Role::GlobalReader,
                w::Role::SecurityReader => t::Role::SecurityReader,
                w::Role::ViewOnlyOrganizationManagement => t::Role::ViewOnlyOrganizationManagement,
                w::Role::Support => t::Role::Support,
            }
        }
    }

    impl From<w::Entity> for t::Entity {
        fn from(e: w::Entity) -> Self {
            t::Entity {
                kind: e.kind.into(),
                id: e.id,
            }
        }
    }

    impl From<t::Entity> for w::Entity {
        fn from(e: t::Entity) -> Self {
            w::Entity {
                kind: e.kind.into(),
                id: e.id,
            }
        }
    }

    impl From<t::SmtpReply> for w::SmtpReply {
        fn from(r: t::SmtpReply) -> Self {
            w::SmtpReply {
                code: r.code,
                status: r.status,
                text: r.text,
            }
        }
    }

    impl From<w::SmtpReply> for t::SmtpReply {
        fn from(r: w::SmtpReply) -> Self {
            t::SmtpReply {
                code: r.code,
                status: r.status,
                text: r.text,
            }
        }
    }

    impl From<t::Evidence> for w::Evidence {
        fn from(e: t::Evidence) -> Self {
            w::Evidence {
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

    impl From<w::Evidence> for t::Evidence {
        fn from(e: w::Evidence) -> Self {
            t::Evidence {
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

    impl From<t::Restriction> for w::Restriction {
        fn from(r: t::Restriction) -> Self {
            w::Restriction {
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

    impl From<w::Restriction> for t::Restriction {
        fn from(r: w::Restriction) -> Self {
            t::Restriction {
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

    impl From<t::Decision> for w::Decision {
        fn from(d: t::Decision) -> Self {
            w::Decision {
                verdict: w::Verdict {
                    action: d.verdict.action.into(),
                    reply: d.verdict.reply.map(Into::into),
                },
                state: d.state,
                restriction: d.restriction.map(Into::into),
                change: d.change.into(),
                alerts: d
                    .alerts
                    .into_iter()
                    .map(|a| w::Alert {
                        name: a.name,
                        severity: a.severity.into(),
                        entity: a.entity.into(),
                        summary: a.summary,
                        at: a.at,
                    })
                    .collect(),
            }
        }
    }

    impl From<t::UnblockError> for w::UnblockError {
        fn from(e: t::UnblockError) -> Self {
            match e {
                t::UnblockError::NotRestricted => w::UnblockError::NotRestricted,
                t::UnblockError::RoleNotAllowed(role) => {
                    w::UnblockError::RoleNotAllowed(role.into())
                }
                t::UnblockError::LimitReached(l) => {
                    w::UnblockError::LimitReached(w::UnblockLimitReached {
                        used: l.used,
                        limit: l.limit,
                        window_seconds: l.window_seconds,
                        next_allowed: l.next_allowed,
                    })
                }
                t::UnblockError::NotUnblockable(why) => w::UnblockError::NotUnblockable(why),
                t::UnblockError::InvalidState(why) => w::UnblockError::InvalidState(why),
            }
        }
    }

    impl From<t::ConfigError> for w::ConfigError {
        fn from(e: t::ConfigError) -> Self {
            w::ConfigError {
                field: e.field,
                message: e.message,
            }
        }
    }
}
