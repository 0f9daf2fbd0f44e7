//! `evaluate`: one submission against one entity's state.
//!
//! Order of checks (the first that applies answers):
//! 1. an active restriction: 5.1.8 (user, relay), 5.7.711 (connector) or 5.1.90 (service
//!    daily limit), whatever the recipients;
//! 2. no recipients: accept, nothing counted;
//! 3. the per-message recipient limit, over the message's calls while it is in flight
//!    (however they interleave with other messages): 5.5.3, nothing counted;
//! 4. the service message rate (users, relays): 4.4.2 deferral for a new message (an id not
//!    in flight, or no id), nothing counted; a call continuing a message is never deferred;
//! 5. the outbound policy's (or connector's) limits, for a user or relay the stricter of the
//!    submitter's and the sender's policies (`applied`): under a blocking action the
//!    submission is refused and starts the restriction; under `Alert`, or on the day of an
//!    admin unblock, it goes on with an alert;
//! 6. the service recipient rate (users, relays): 5.1.90 and a self-lifting restriction;
//! 7. accept and count: the recipients in every window, a new message in the message rate,
//!    and the message (if it has an id) as seen now in the messages in flight.

use crate::addr;
use crate::alert;
use crate::config::Config;
use crate::limits::{LimitKey, Limits, OutboundAction};
use crate::reply;
use crate::restriction::{self, SERVICE_POLICY};
use crate::scope;
use crate::state::{self, StoredKind, StoredRestriction};
use crate::time::{next_utc_midnight, utc_day};
use crate::types::*;
use crate::window;

/// The limits that apply to a submission, and, per limit, the policy (or connector) that set
/// it, for the evidence.
struct Applied<'a> {
    limits: Limits,
    /// Who set `external_per_hour`, `internal_per_hour` and `per_day`, in that order.
    sources: [&'a str; 3],
}

impl<'a> Applied<'a> {
    fn one(name: &'a str, limits: Limits) -> Self {
        Applied {
            limits,
            sources: [name; 3],
        }
    }

    /// The stricter of two policies, limit by limit: the lower threshold (on a tie, `self`'s),
    /// and the stronger action. A limit of 0 in the configuration is the service default's
    /// value by now (see `config`), and is compared as that number.
    fn stricter(self, other: Applied<'a>) -> Self {
        let mut out = self;
        for (i, key) in POLICY_LIMITS.into_iter().enumerate() {
            if other.limits.threshold(key) < out.limits.threshold(key) {
                out.limits.set_threshold(key, other.limits.threshold(key));
                out.sources[i] = other.sources[i];
            }
        }
        out.limits.action = out.limits.action.stronger(other.limits.action);
        out
    }

    /// Who set limit `key`.
    fn source(&self, key: LimitKey) -> &'a str {
        let i = POLICY_LIMITS.iter().position(|&k| k == key).unwrap_or(0);
        self.sources[i]
    }
}

/// The outbound policy's limits, in the order they are checked.
const POLICY_LIMITS: [LimitKey; 3] = [
    LimitKey::ExternalPerHour,
    LimitKey::InternalPerHour,
    LimitKey::PerDay,
];

/// The limits for a submission. A connector has its own. For a user (or relay) the policy is
/// chosen by who submits: the scoped policy of the submitter (`entity.id`, for a relay its
/// envelope sender) and, when the submission's `sender` is another address (Send As), the
/// stricter of that and the sender's policy, so no envelope sender can choose a more lenient
/// policy than the submitter's own. A blank submitter or sender leaves the other alone.
fn applied<'a>(cfg: &'a Config, sub: &'a Submission) -> Applied<'a> {
    match sub.entity.kind {
        EntityKind::Connector => {
            let id = sub.entity.id.trim();
            match cfg
                .connectors
                .iter()
                .find(|c| c.id.eq_ignore_ascii_case(id))
            {
                Some(c) => Applied::one(&c.id, c.limits),
                // A connector the configuration no longer lists: service defaults.
                None => Applied::one(id, Limits::SERVICE_DEFAULT),
            }
        }
        EntityKind::User | EntityKind::Relay => {
            let submitter = addr::normalize(&sub.entity.id);
            let sender = addr::normalize(&sub.sender);
            let policy = |who: &str| {
                let p = scope::select(cfg, who);
                Applied::one(&p.name, p.limits)
            };
            match (
                submitter.is_empty(),
                sender.is_empty() || sender == submitter,
            ) {
                (false, true) => policy(&submitter),
                (false, false) => policy(&submitter).stricter(policy(&sender)),
                (true, false) => policy(&sender),
                (true, true) => policy(""),
            }
        }
    }
}

/// Split recipients into (external, internal). Internal: the domain is an accepted domain and
/// the address has no routing syntax (`%`, `!`, a source route `@a:b@c`: an accepted domain
/// would relay it on elsewhere). Malformed recipients (no domain) count as external, the
/// stricter side.
fn classify(cfg: &Config, recipients: &[String]) -> (u32, u32) {
    let internal = recipients
        .iter()
        .filter(|r| {
            let n = addr::normalize(r);
            !addr::has_routing_syntax(&n)
                && addr::domain(&n).is_some_and(|d| cfg.accepted_domains.contains(d))
        })
        .count();
    let external = recipients.len() - internal;
    (external as u32, internal as u32)
}

/// The reply for a submission of a restricted entity.
fn restricted_reply(kind: StoredKind, entity: EntityKind) -> SmtpReply {
    match (kind, entity) {
        (StoredKind::ServiceDailyLimit, _) => reply::daily_recipient_limit(),
        (_, EntityKind::Connector) => reply::bad_inbound_connector(),
        (_, EntityKind::User | EntityKind::Relay) => reply::bad_outbound_sender(),
    }
}

struct Outcome {
    action: Action,
    reply: Option<SmtpReply>,
    change: RestrictionChange,
}

/// Evaluate one submission. Total: any state bytes and any submission give a decision.
pub fn evaluate(cfg: &Config, bytes: &[u8], sub: &Submission, now: Timestamp) -> Decision {
    let mut alerts = Vec::new();
    let mut st = match state::decode(bytes) {
        Ok(s) => s,
        Err(d) => {
            let kept = d.salvaged.restriction.is_some();
            alerts.push(alert::state_unreadable(&sub.entity, &d.why, kept, now));
            d.salvaged
        }
    };
    st.counters.advance(now);
    let today = utc_day(now);
    if st.exempt_day.is_some_and(|d| d < today) {
        st.exempt_day = None;
    }
    let since = now.saturating_sub(cfg.unblock.window_seconds());
    st.unblocks.retain(|&t| t > since);

    let outcome = decide(cfg, &mut st, sub, now, &mut alerts);
    let restriction = st.restriction.as_ref().filter(|r| r.active(now)).map(|r| {
        restriction::record(
            r,
            &sub.entity,
            restriction::unblock_usage(cfg, &st.unblocks, now),
        )
    });
    Decision {
        verdict: Verdict {
            action: outcome.action,
            reply: outcome.reply,
        },
        state: state::encode(&st),
        restriction,
        change: outcome.change,
        alerts,
    }
}

fn decide(
    cfg: &Config,
    st: &mut state::State,
    sub: &Submission,
    now: Timestamp,
    alerts: &mut Vec<Alert>,
) -> Outcome {
    let refuse = |action, reply, change| Outcome {
        action,
        reply: Some(reply),
        change,
    };

    // 1. An active restriction answers everything; an expired one is lifted here.
    let mut change = RestrictionChange::None;
    if let Some(r) = &st.restriction {
        if r.active(now) {
            return refuse(
                Action::Reject,
                restricted_reply(r.kind, sub.entity.kind),
                change,
            );
        }
        st.restriction = None;
        change = RestrictionChange::Lifted;
    }

    // 2. Nothing to send (e.g. a host checking at MAIL FROM): accept, count nothing.
    let accept = |change| Outcome {
        action: Action::Accept,
        reply: None,
        change,
    };
    if sub.recipients.is_empty() {
        return accept(change);
    }

    // 3. Recipients per message, over the calls sharing the message id while it is in
    // flight, however they interleave with the entity's other messages.
    let id_hash = sub.message_id.as_deref().map(state::message_hash);
    let continuing = id_hash.and_then(|h| st.counters.in_flight(h));
    let n = u32::try_from(sub.recipients.len()).unwrap_or(u32::MAX);
    let message_total = continuing.unwrap_or(0).saturating_add(n);
    if message_total > cfg.max_recipients_per_message {
        return refuse(Action::Reject, reply::too_many_recipients(), change);
    }

    // 4. Messages per minute (users): only a new message counts and can be deferred.
    let is_user = matches!(sub.entity.kind, EntityKind::User | EntityKind::Relay);
    if is_user
        && continuing.is_none()
        && window::total(&st.counters.messages_minute) >= cfg.message_rate_limit
    {
        return refuse(Action::Defer, reply::submission_rate_exceeded(), change);
    }

    // 5. The outbound policy's (or connector's) limits.
    let (external, internal) = classify(cfg, &sub.recipients);
    let applied = applied(cfg, sub);
    let c = &st.counters;
    // In POLICY_LIMITS order.
    let checks = [
        (
            LimitKey::ExternalPerHour,
            external,
            window::total(&c.external_hour),
        ),
        (
            LimitKey::InternalPerHour,
            internal,
            window::total(&c.internal_hour),
        ),
        (LimitKey::PerDay, n, c.today),
    ];
    let tripped: Vec<(LimitKey, u32, u32)> = checks
        .into_iter()
        .filter(|&(_, add, _)| add > 0)
        .map(|(key, add, current)| {
            (
                key,
                applied.limits.threshold(key),
                current.saturating_add(add),
            )
        })
        .filter(|&(_, threshold, observed)| observed > threshold)
        .collect();
    let exempt = st.exempt_day == Some(utc_day(now));
    let blocking = match applied.limits.action {
        OutboundAction::BlockUser => Some(StoredKind::BlockUser),
        OutboundAction::BlockUserForToday => Some(StoredKind::BlockUserForToday),
        OutboundAction::Alert => None,
    };
    let consequence = match (blocking, exempt) {
        (Some(_), false) => "The submission was refused and the sender restricted.",
        (Some(_), true) => {
            "Accepted: an admin unblocked the sender earlier this UTC day, so outbound-policy limits do not restrict it again until UTC midnight."
        }
        (None, _) => "Accepted (action Alert).",
    };
    for &(key, threshold, observed) in &tripped {
        if st.counters.alerted & key.alert_bit() == 0 {
            st.counters.alerted |= key.alert_bit();
            alerts.push(alert::limit_exceeded(
                &sub.entity,
                applied.source(key),
                key,
                threshold,
                observed,
                consequence,
                now,
            ));
        }
    }
    if let (Some(&(key, threshold, observed)), Some(kind), false) =
        (tripped.first(), blocking, exempt)
    {
        let r = StoredRestriction {
            kind,
            policy: applied.source(key).to_string(),
            limit: key,
            threshold,
            observed,
            at: now,
            message_id: sub.message_id.as_deref().map(state::cap_message_id),
            expires: (kind == StoredKind::BlockUserForToday).then(|| next_utc_midnight(now)),
        };
        alerts.push(alert::restricted(&sub.entity, &r));
        let reply = restricted_reply(kind, sub.entity.kind);
        st.restriction = Some(r);
        return refuse(Action::Reject, reply, RestrictionChange::Started);
    }

    // 6. The service recipient rate (users): refuse, restrict until the window drains enough
    // for this submission to fit.
    let rate = window::total(&st.counters.rate_day);
    let limit = cfg.recipient_rate_limit;
    if is_user && rate.saturating_add(n) > limit {
        let observed = rate.saturating_add(n);
        let key = LimitKey::RecipientRate;
        if st.counters.alerted & key.alert_bit() == 0 {
            st.counters.alerted |= key.alert_bit();
            let consequence =
                "The submission was refused (5.1.90) until the 24-hour window has room again.";
            alerts.push(alert::limit_exceeded(
                &sub.entity,
                SERVICE_POLICY,
                key,
                limit,
                observed,
                consequence,
                now,
            ));
        }
        let target = limit.saturating_sub(n);
        let lifts = window::drops_to(&st.counters.rate_day, window::DAY, now, target);
        let r = StoredRestriction {
            kind: StoredKind::ServiceDailyLimit,
            policy: SERVICE_POLICY.to_string(),
            limit: key,
            threshold: limit,
            observed,
            at: now,
            message_id: sub.message_id.as_deref().map(state::cap_message_id),
            expires: Some(lifts.max(now.saturating_add(1))),
        };
        // EOP adds a user over a service limit to Restricted users too, with the same alert.
        alerts.push(alert::restricted(&sub.entity, &r));
        st.restriction = Some(r);
        return refuse(
            Action::Reject,
            reply::daily_recipient_limit(),
            RestrictionChange::Started,
        );
    }

    // 7. Accept and count.
    let c = &mut st.counters;
    window::add(&mut c.external_hour, external);
    window::add(&mut c.internal_hour, internal);
    c.today = c.today.saturating_add(n);
    window::add(&mut c.rate_day, n);
    if continuing.is_none() {
        window::add(&mut c.messages_minute, 1);
    }
    if let Some(id) = id_hash {
        let keep = match sub.entity.kind {
            EntityKind::Connector => state::MAX_IN_FLIGHT_CONNECTOR,
            EntityKind::User | EntityKind::Relay => state::MAX_IN_FLIGHT,
        };
        c.saw_message(id, message_total, keep);
    }
    accept(change)
}
