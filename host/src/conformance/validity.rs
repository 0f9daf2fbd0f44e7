//! What makes an answer valid beyond "it came back": the rules of the contract a host relies
//! on when it acts on a decision.

use crate::sandbox::SandboxLimits;
use crate::{Action, Decision, RestrictionChange, SmtpReply, Submission};

/// The first way `decision` breaks the contract for `submission`, if any.
pub(crate) fn problem(
    decision: &Decision,
    submission: &Submission,
    limits: &SandboxLimits,
) -> Option<String> {
    if decision.state.len() > limits.max_state_bytes {
        return Some(format!(
            "state of {} bytes is over max_state_bytes = {}",
            decision.state.len(),
            limits.max_state_bytes
        ));
    }
    let reply = decision.verdict.reply.as_ref();
    match (decision.verdict.action, reply) {
        (Action::Accept, Some(reply)) => {
            return Some(format!(
                "an accept carries a reply ({}); the contract says none",
                reply.line()
            ));
        }
        (Action::Accept, None) => {}
        (action, None) => return Some(format!("a {action:?} without an SMTP reply")),
        (Action::Defer, Some(reply)) => {
            if let Some(why) = reply_problem(reply, 4) {
                return Some(format!("a deferral's reply {why}"));
            }
        }
        (Action::Reject, Some(reply)) => {
            if let Some(why) = reply_problem(reply, 5) {
                return Some(format!("a rejection's reply {why}"));
            }
        }
    }
    if let Some(r) = &decision.restriction {
        if r.entity != submission.entity {
            return Some(format!(
                "the restriction names entity {:?}, not the submission's {:?}",
                r.entity.id, submission.entity.id
            ));
        }
        if r.evidence.observed <= r.evidence.threshold {
            return Some(format!(
                "evidence observed {} is not above its threshold {} (limit `{}`)",
                r.evidence.observed, r.evidence.threshold, r.evidence.limit
            ));
        }
    }
    if matches!(
        decision.change,
        RestrictionChange::Started | RestrictionChange::Changed
    ) && decision.restriction.is_none()
    {
        return Some(format!(
            "change is {:?} but no restriction is returned",
            decision.change
        ));
    }
    None
}

/// A reply must be of the action's class: `class`xx and `class`.x.x.
fn reply_problem(reply: &SmtpReply, class: u16) -> Option<String> {
    if reply.code / 100 != class {
        return Some(format!("has code {}, expected {class}xx", reply.code));
    }
    let parts: Vec<&str> = reply.status.split('.').collect();
    let valid = parts.len() == 3
        && parts[0] == class.to_string()
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if !valid {
        return Some(format!(
            "has enhanced status {:?}, expected {class}.x.x (RFC 3463)",
            reply.status
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, status: &str) -> SmtpReply {
        SmtpReply {
            code,
            status: status.into(),
            text: "x".into(),
        }
    }

    #[test]
    fn replies_must_match_the_action_class() {
        assert_eq!(reply_problem(&reply(550, "5.1.8"), 5), None);
        assert_eq!(reply_problem(&reply(451, "4.7.1"), 4), None);
        assert!(reply_problem(&reply(451, "4.7.1"), 5).is_some());
        assert!(reply_problem(&reply(550, "4.1.8"), 5).is_some());
        assert!(reply_problem(&reply(550, "5.1"), 5).is_some());
        assert!(reply_problem(&reply(550, "5.1.8888"), 5).is_some());
    }
}
