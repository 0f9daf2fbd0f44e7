//! The exact SMTP replies the policy gives, EOP texts where EOP has one.

use crate::types::SmtpReply;

fn reply(code: u16, status: &str, text: &str) -> SmtpReply {
    SmtpReply {
        code,
        status: status.to_string(),
        text: text.to_string(),
    }
}

/// A user restricted by an outbound policy (EOP's text, NDR code 5.1.8).
pub fn bad_outbound_sender() -> SmtpReply {
    reply(550, "5.1.8", "Access denied, bad outbound sender")
}

/// A user over the service's daily recipient rate limit (EOP's 5.1.90 text).
pub fn daily_recipient_limit() -> SmtpReply {
    reply(
        550,
        "5.1.90",
        "Your message can't be sent because you've reached your daily limit for message recipients",
    )
}

/// A restricted inbound connector (EOP's 5.7.711 text).
pub fn bad_inbound_connector() -> SmtpReply {
    reply(550, "5.7.711", "Access denied, bad inbound connector")
}

/// Over the service's messages-per-minute rate: a temporary deferral (Exchange's text for
/// `MessageRateLimit`, with 450 so clients retry rather than drop the connection).
pub fn submission_rate_exceeded() -> SmtpReply {
    reply(
        450,
        "4.4.2",
        "Message submission rate for this client has exceeded the configured limit",
    )
}

/// More recipients in one message than `max_recipient_envelope_limit` allows (permanent).
pub fn too_many_recipients() -> SmtpReply {
    reply(550, "5.5.3", "Too many recipients")
}
