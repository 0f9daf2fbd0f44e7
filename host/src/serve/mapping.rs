//! From a Postfix policy request to a submission: the trust boundary (who is counted, on which
//! key) and what the policy sees.
//!
//! quench hooks at RCPT time, one request per recipient, so each recipient is classified
//! internal or external and the crossing recipient is the one refused; Postfix's `instance`
//! attribute ties one message's requests together (the policy counts one message per
//! instance, however they interleave with the entity's other messages).
//!
//! **Who is counted.** Only a sender quench can vouch for, in this order:
//! 1. a SASL-authenticated client: the entity is the login (`user:`), whatever envelope sender
//!    it chose (Send As: the policy sees that sender too, and the stricter policy wins);
//! 2. a connector the policy defines (by client address or certificate fingerprint);
//! 3. an unauthenticated client on `[serve] trusted_networks`: the envelope sender, as a
//!    `relay:` entity, a key space of its own, so a relay can never restrict, or be counted
//!    with, the SASL user of the same address.
//!
//! Everything else (inbound mail from the internet, a forged MAIL FROM on port 25) is answered
//! DUNNO and never counted: whoever can reach the SMTP port could otherwise restrict any user
//! by naming them as sender.

use crate::bindings::{Entity, Submission};
use crate::config::ServeConfig;
use crate::normalize;
use crate::service::LoadedPolicy;
use quench_postfix_policy::{ProtocolState, Request, RequestType};
use std::net::IpAddr;

/// Why a request is answered DUNNO without asking the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A request type other than `smtpd_access_policy` (Postfix sends no other; a newer or
    /// foreign client might): nothing quench knows how to decide.
    NotPolicyRequest,
    /// Not at RCPT: quench decides per recipient only.
    NotRcpt,
    /// The null sender (bounces) from an unauthenticated relay: nobody to count.
    NullSender,
    /// Not authenticated, no connector, not from a trusted network: quench cannot vouch for
    /// the sender, so it counts nothing.
    Untrusted,
}

impl Skip {
    /// The label the `quench_submissions_total` metric counts it under.
    pub fn label(self) -> &'static str {
        match self {
            Skip::Untrusted => "untrusted",
            Skip::NotPolicyRequest | Skip::NotRcpt | Skip::NullSender => "skipped",
        }
    }
}

/// Build the submission for `request`, or say why there is none.
pub fn submission(
    request: &Request,
    policy: &LoadedPolicy,
    serve: &ServeConfig,
) -> Result<Submission, Skip> {
    if request.request != RequestType::SmtpdAccessPolicy {
        return Err(Skip::NotPolicyRequest);
    }
    if request.protocol_state != Some(ProtocolState::Rcpt) {
        return Err(Skip::NotRcpt);
    }
    let sender = normalize::normalize(&request.sender);
    let login = request.sasl_username.trim();
    let entity = if !login.is_empty() {
        Entity {
            kind: crate::bindings::EntityKind::User,
            id: normalize::login(login, serve.sasl_default_domain.as_deref()),
        }
    } else if let Some(id) =
        policy.connector_for(&request.client_address, &request.ccert_fingerprint)
    {
        Entity::connector(id)
    } else if trusted(&request.client_address, serve) {
        if sender.is_empty() {
            return Err(Skip::NullSender);
        }
        Entity::relay(&sender)
    } else {
        return Err(Skip::Untrusted);
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

/// Whether `client_address` (as Postfix writes it: `192.0.2.1`, `2001:db8::1`) is on one of
/// the trusted networks. An address that does not parse is not trusted; an IPv4-mapped IPv6
/// address counts as its IPv4 address.
fn trusted(client_address: &str, serve: &ServeConfig) -> bool {
    let raw = client_address.trim();
    let raw = raw.strip_prefix("IPv6:").unwrap_or(raw);
    let Ok(ip) = raw.parse::<IpAddr>() else {
        return false;
    };
    let ip = ip.to_canonical();
    serve.trusted_networks.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(networks: &[&str]) -> ServeConfig {
        ServeConfig {
            trusted_networks: networks.iter().map(|n| n.parse().unwrap()).collect(),
            ..ServeConfig::default()
        }
    }

    #[test]
    fn trusted_networks_match_v4_v6_and_mapped_addresses_only() {
        let default = ServeConfig::default();
        assert!(trusted("127.0.0.1", &default));
        assert!(trusted("127.8.9.10", &default));
        assert!(trusted("::1", &default));
        assert!(trusted("::ffff:127.0.0.1", &default));
        assert!(!trusted("192.0.2.10", &default));
        assert!(!trusted("", &default));
        assert!(!trusted("unknown", &default));
        assert!(!trusted("2001:db8::1", &default));
        let lan = serve(&["10.0.0.0/8", "2001:db8::/32"]);
        assert!(trusted("10.1.2.3", &lan));
        assert!(trusted("IPv6:2001:db8::1", &lan));
        assert!(
            !trusted("127.0.0.1", &lan),
            "an operator's list replaces the default"
        );
        assert!(!trusted("11.0.0.1", &lan));
    }
}
