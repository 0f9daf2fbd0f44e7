//! `quench simulate`: replay JSON lines of submissions and unblocks through the sandboxed
//! policy and the same decision service `quench serve` uses, over an in-memory store, one JSON
//! answer line per input line. Policy authors use it for what-if runs; the tests use it to
//! drive whole scenarios.
//!
//! Input lines (see the README for the full format):
//! `{"at":"2026-11-23T10:00:00Z","sender":"a@contoso.com","recipients":["b@fabrikam.com"]}`
//! `{"at":"2026-11-23T11:00:00Z","unblock":"a@contoso.com","role":"SecurityAdministrator","reason":"reset password"}`

use crate::bindings::{
    Action, Entity, RestrictionChange, Role, Severity, Submission, UnblockError,
};
use crate::normalize;
use crate::sandbox::{FailAction, Sandbox};
use crate::service::Service;
use crate::view::RestrictionView;
use anyhow::{Context, Result, bail};
use quench_store::MemoryStore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, Write};
use std::sync::Arc;

/// One input line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    at: String,
    sender: Option<String>,
    submitter: Option<String>,
    connector: Option<String>,
    relay: Option<String>,
    #[serde(default)]
    recipients: Vec<String>,
    message_id: Option<String>,
    unblock: Option<String>,
    unblock_connector: Option<String>,
    unblock_relay: Option<String>,
    role: Option<String>,
    reason: Option<String>,
    /// `"rest-of-day"` (default) or `"none"`.
    grace: Option<String>,
    admin: Option<String>,
}

/// The answer to one submission line. Fields serialise in this order, so the output reads
/// the same whatever features `serde_json` is built with.
#[derive(Debug, Clone, Serialize)]
pub struct SubmissionAnswer {
    /// The entity the counts and any restriction land on (normalised).
    pub entity: String,
    /// `accept`, `defer` or `reject`.
    pub verdict: &'static str,
    /// The SMTP reply line for `defer` and `reject`.
    pub reply: Option<String>,
    /// The entity's restriction after this submission.
    pub restricted: Option<RestrictionView>,
    /// `none`, `started`, `changed` or `lifted`.
    pub change: &'static str,
    /// Alerts raised by this submission.
    pub alerts: Vec<AlertView>,
    /// Why the policy's own answer is missing (the fail action answered instead).
    pub fault: Option<String>,
}

/// An alert as `quench simulate` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    /// E.g. "User restricted from sending email".
    pub name: String,
    /// `Informational`, `Low`, `Medium` or `High`.
    pub severity: Severity,
    /// One paragraph for the notification body.
    pub summary: String,
}

/// The answer to one unblock line.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum UnblockAnswer {
    /// The restriction was lifted.
    Granted {
        /// The unblocked entity (normalised).
        entity: String,
        /// Always `ok`.
        unblock: &'static str,
        /// Always null.
        error: Option<String>,
        /// The restriction that was lifted (`changed` is the unblock time).
        lifted: Box<RestrictionView>,
        /// Unblocks counted in the unblock window, this one included.
        unblocks_used: u32,
        /// Unblocks an unblocking role may still do in the window.
        unblocks_left: u32,
        /// What to check before trusting the entity again.
        recommendations: Vec<String>,
    },
    /// The policy refused the unblock.
    Denied {
        /// The entity (normalised).
        entity: String,
        /// Always `denied`.
        unblock: &'static str,
        /// Why, in words an admin can act on.
        error: String,
    },
}

/// The answer to one input line.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// A submission line's answer.
    Submission(Box<SubmissionAnswer>),
    /// An unblock line's answer.
    Unblock(UnblockAnswer),
    /// A line that could not be run.
    Error {
        /// What was wrong with the line.
        error: String,
    },
}

/// An answer with its input line number, as `run` writes it.
#[derive(Serialize)]
struct Numbered<'a> {
    line: usize,
    #[serde(flatten)]
    answer: &'a Answer,
}

/// Replays lines against one policy through the same [`Service`] `quench serve` uses, over
/// an in-memory store.
pub struct Simulator {
    service: Service,
}

impl Simulator {
    /// A simulator with empty state.
    pub fn new(policy: Sandbox) -> Self {
        Simulator {
            service: Service::new(policy, Arc::new(MemoryStore::new()), FailAction::Open),
        }
    }

    /// Run every line of `input`, writing one answer line each to `output`. Bad lines get an
    /// error line and the run goes on. Returns how many lines were in error.
    pub fn run(&mut self, input: impl BufRead, mut output: impl Write) -> Result<usize> {
        let mut errors = 0;
        for (index, line) in input.lines().enumerate() {
            let line = line.context("reading simulation input")?;
            if line.trim().is_empty() {
                continue;
            }
            let answer = self.answer(&line);
            if matches!(answer, Answer::Error { .. }) {
                errors += 1;
            }
            let numbered = Numbered {
                line: index + 1,
                answer: &answer,
            };
            let text = serde_json::to_string(&numbered).context("encoding an answer")?;
            writeln!(output, "{text}").context("writing simulation output")?;
        }
        Ok(errors)
    }

    /// Run one line; a line that cannot be run gets [`Answer::Error`].
    pub fn answer(&mut self, line: &str) -> Answer {
        match self.try_answer(line) {
            Ok(answer) => answer,
            Err(error) => Answer::Error {
                error: format!("{error:#}"),
            },
        }
    }

    /// Run one line and return its answer as JSON (without the line number).
    pub fn step(&mut self, line: &str) -> Result<Value> {
        let answer = self.try_answer(line)?;
        Ok(serde_json::to_value(answer)?)
    }

    fn try_answer(&mut self, line: &str) -> Result<Answer> {
        let line: Line = serde_json::from_str(line).context("not a simulation line")?;
        let now = crate::time::parse(&line.at)?;
        if line.unblock.is_some()
            || line.unblock_connector.is_some()
            || line.unblock_relay.is_some()
        {
            return Ok(Answer::Unblock(self.unblock(line, now)?));
        }
        let sender = line
            .sender
            .as_deref()
            .context("a submission line needs `sender`")?;
        let entity = match (&line.connector, &line.submitter, &line.relay) {
            (Some(connector), None, None) => Entity::connector(connector),
            (None, Some(submitter), None) => Entity::user(submitter),
            (None, None, Some(relay)) => Entity::relay(relay),
            (None, None, None) => Entity::user(sender),
            _ => bail!("give one of `submitter`, `connector` and `relay`, not several"),
        };
        let submission = Submission {
            entity,
            sender: normalize::normalize(sender),
            recipients: line
                .recipients
                .iter()
                .map(|r| normalize::normalize(r))
                .collect(),
            message_id: line.message_id,
        };
        let decided = self.service.decide(&submission, now);
        let decision = decided.decision;
        Ok(Answer::Submission(Box::new(SubmissionAnswer {
            entity: submission.entity.id,
            verdict: match decision.verdict.action {
                Action::Accept => "accept",
                Action::Defer => "defer",
                Action::Reject => "reject",
            },
            reply: decision.verdict.reply.map(|r| r.line()),
            restricted: decision.restriction.as_ref().map(RestrictionView::from),
            change: change_name(decision.change),
            alerts: decision
                .alerts
                .into_iter()
                .map(|a| AlertView {
                    name: a.name,
                    severity: a.severity,
                    summary: a.summary,
                })
                .collect(),
            fault: decided.fault.map(|f| f.to_string()),
        })))
    }

    fn unblock(&mut self, line: Line, now: i64) -> Result<UnblockAnswer> {
        let entity = match (&line.unblock, &line.unblock_connector, &line.unblock_relay) {
            (Some(user), None, None) => Entity::user(user),
            (None, Some(connector), None) => Entity::connector(connector),
            (None, None, Some(relay)) => Entity::relay(relay),
            _ => {
                bail!("give one of `unblock`, `unblock_connector` and `unblock_relay`, not several")
            }
        };
        let role = parse_role(
            line.role
                .as_deref()
                .context("an unblock line needs `role`")?,
        )?;
        let admin = line.admin.unwrap_or_else(|| "simulate".into());
        let reason = line.reason.unwrap_or_default();
        let grace = match line.grace.as_deref() {
            None | Some("rest-of-day") => crate::bindings::UnblockGrace::RestOfDay,
            Some("none") => crate::bindings::UnblockGrace::None,
            Some(other) => bail!("`grace` is \"rest-of-day\" or \"none\", not {other:?}"),
        };
        let answer = self
            .service
            .unblock_with_grace(&entity, role, &admin, &reason, grace, now)?;
        Ok(match answer {
            Ok(granted) => {
                let lifted = Box::new(RestrictionView::from(&granted.lifted));
                UnblockAnswer::Granted {
                    entity: entity.id,
                    unblock: "ok",
                    error: None,
                    lifted,
                    unblocks_used: granted.unblocks_used,
                    unblocks_left: granted.unblocks_left,
                    recommendations: granted.recommendations,
                }
            }
            Err(error) => UnblockAnswer::Denied {
                entity: entity.id,
                unblock: "denied",
                error: describe_unblock_error(&error),
            },
        })
    }
}

/// How a decision changed the restriction, in one lower-case word.
pub fn change_name(change: RestrictionChange) -> &'static str {
    match change {
        RestrictionChange::None => "none",
        RestrictionChange::Started => "started",
        RestrictionChange::Changed => "changed",
        RestrictionChange::Lifted => "lifted",
    }
}

/// Parse a role by its Exchange name (`SecurityAdministrator`), case-insensitively.
pub fn parse_role(name: &str) -> Result<Role> {
    Role::ALL
        .into_iter()
        .find(|role| role.to_string().eq_ignore_ascii_case(name))
        .with_context(|| {
            let known: Vec<String> = Role::ALL.iter().map(Role::to_string).collect();
            format!("unknown role `{name}` (known: {})", known.join(", "))
        })
}

/// An unblock refusal in words an admin can act on.
pub fn describe_unblock_error(error: &UnblockError) -> String {
    match error {
        UnblockError::NotRestricted => "the entity is not restricted".into(),
        UnblockError::RoleNotAllowed(role) => format!("the {role} role may not unblock"),
        UnblockError::LimitReached(limit) => format!(
            "unblock limit reached: {} of {} unblocks used in the last {} days; the next is allowed at {} (or ask the Support role)",
            limit.used,
            limit.limit,
            limit.window_seconds / 86_400,
            crate::time::format(limit.next_allowed)
        ),
        UnblockError::NotUnblockable(why) => format!("cannot be unblocked: {why}"),
        UnblockError::InvalidState(why) => format!("stored state is unreadable: {why}"),
    }
}
