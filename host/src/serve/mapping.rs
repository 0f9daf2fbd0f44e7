//! From a Postfix policy request to a submission: who is counted, which policy applies.
//!
//! quench hooks at RCPT time, one request per recipient, so each recipient is classified
//! internal or external and the crossing recipient is the one refused; Postfix's `instance`
//! attribute ties one message's requests together (the policy counts one message per
//! instance). The entity is the SASL user when the client authenticated, else a connector the
//! policy defines (by client address or certificate fingerprint), else the envelope sender.

use crate::bindings::{Entity, Submission};
use crate::normalize;
use crate::service::LoadedPolicy;
use quench_postfix_policy::{ProtocolState, Request};

/// Why a request is answered without asking the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not at RCPT: quench decides per recipient only.
    NotRcpt,
    /// The null sender (bounces) from an unauthenticated, unknown client: nobody to count.
    NullSender,
}

/// Build the submission for `request`, or say why there is none.
pub fn submission(request: &Request, policy: &LoadedPolicy) -> Result<Submission, Skip> {
    if request.protocol_state != Some(ProtocolState::Rcpt) {
        return Err(Skip::NotRcpt);
    }
    let sender = normalize::normalize(&request.sender);
    let entity = if !request.sasl_username.trim().is_empty() {
        Entity::user(&request.sasl_username)
    } else if let Some(id) =
        policy.connector_for(&request.client_address, &request.ccert_fingerprint)
    {
        Entity::connector(id)
    } else if !sender.is_empty() {
        Entity::user(&sender)
    } else {
        return Err(Skip::NullSender);
    };
    let instance = request.instance.trim();
    Ok(Submission {
        sender: if sender.is_empty() {
            entity.id.clone()
        } else {
            sender
        },
        entity,
        recipients: vec![normalize::normalize(&request.recipient)],
        message_id: (!instance.is_empty()).then(|| instance.to_string()),
    })
}
