//! RFC 3464 delivery status notifications (multipart/report; report-type=delivery-status).
//!
//! Everything in the request is untrusted text. Header values are cleaned of CR, LF and other
//! control characters (so nothing can inject a header or a MIME part), lines are kept under
//! RFC 5322's 998-octet limit, and the MIME boundary is checked against every part's content.

use crate::restriction::{describe_trip, reason};
use crate::state::{StoredKind, StoredRestriction};
use crate::time::{rfc3339, rfc5322};
use crate::types::{BounceRequest, EntityKind, RestrictionKind, SmtpReply};

/// Longest address kept (RFC 5321's path limit is 256 octets; a little slack for UTF-8).
const MAX_ADDRESS: usize = 320;
/// Per-recipient blocks written at most; the human part says how many more were refused.
const MAX_RECIPIENT_BLOCKS: usize = 1_000;
/// Recipients listed by name in the human-readable part.
const MAX_LISTED_RECIPIENTS: usize = 20;
/// Bytes of the original header section kept: enough for any real header section.
const MAX_ORIGINAL_HEADERS: usize = 64 * 1024;
/// RFC 5322 line limit, without CRLF.
const MAX_LINE: usize = 998;
/// Longest original Subject echoed in ours.
const MAX_SUBJECT: usize = 200;

const CRLF: &str = "\r\n";

/// Render the complete bounce message: header section and body, CRLF line ends.
/// `max_recipients` is the configured recipients-per-message limit (for the 5.5.3 text).
pub fn render(req: &BounceRequest, max_recipients: u32) -> String {
    let mta = host_name(&req.reporting_mta);
    let id = bounce_id(req);
    let sender = clean_address(&req.original_sender);
    let mut recipients: Vec<String> = req
        .recipients
        .iter()
        .map(|r| clean_address(r))
        .filter(|r| !r.is_empty())
        .collect();
    let refused = recipients.len();
    recipients.truncate(MAX_RECIPIENT_BLOCKS);
    let reply = clean_reply(&req.reply);
    let headers = original_headers(&req.original_headers);

    let human = human_part(req, &reply, &sender, &recipients, refused, max_recipients);
    let status = status_part(&mta, req.arrival, &reply, &recipients);
    let global = !recipients.iter().all(|r| r.is_ascii());

    let mut boundary = format!("=_quench_{id}");
    let mut n = 0u32;
    while [&human, &status, &headers]
        .iter()
        .any(|part| part.contains(&boundary))
    {
        n += 1;
        boundary = format!("=_quench_{id}_{n}");
    }

    let mut out = String::with_capacity(human.len() + status.len() + headers.len() + 1024);
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str(CRLF);
    };
    header(
        "From",
        &format!("Mail Delivery System <MAILER-DAEMON@{mta}>"),
    );
    if sender.is_empty() {
        header("To", "undisclosed-recipients:;");
    } else {
        header("To", &format!("<{sender}>"));
    }
    header("Subject", &subject(&req.original_headers));
    header("Date", &rfc5322(req.now));
    header("Message-ID", &format!("<{id}@{mta}>"));
    if let Some(original) = original_message_id(&req.original_headers) {
        header("In-Reply-To", &original);
        header("References", &original);
    }
    header("Auto-Submitted", "auto-replied");
    header("MIME-Version", "1.0");
    header(
        "Content-Type",
        &format!("multipart/report; report-type=delivery-status;{CRLF}\tboundary=\"{boundary}\""),
    );
    out.push_str(CRLF);
    out.push_str("This is a MIME-formatted delivery status notification (RFC 3464).");
    out.push_str(CRLF);

    let ascii_or_8bit = |s: &str| if s.is_ascii() { "7bit" } else { "8bit" };
    let mut part = |content_type: &str, encoding: &str, body: &str| {
        out.push_str(CRLF);
        out.push_str("--");
        out.push_str(&boundary);
        out.push_str(CRLF);
        out.push_str("Content-Type: ");
        out.push_str(content_type);
        out.push_str(CRLF);
        out.push_str("Content-Transfer-Encoding: ");
        out.push_str(encoding);
        out.push_str(CRLF);
        out.push_str(CRLF);
        out.push_str(body);
    };
    part("text/plain; charset=utf-8", ascii_or_8bit(&human), &human);
    let status_type = if global {
        "message/global-delivery-status"
    } else {
        "message/delivery-status"
    };
    part(status_type, ascii_or_8bit(&status), &status);
    let headers_type = if headers.is_ascii() {
        "text/rfc822-headers"
    } else {
        "message/global-headers"
    };
    part(headers_type, ascii_or_8bit(&headers), &headers);
    out.push_str(CRLF);
    out.push_str("--");
    out.push_str(&boundary);
    out.push_str("--");
    out.push_str(CRLF);
    out
}

/// Keep host-name characters (and address-literal brackets); `localhost` if nothing is left.
fn host_name(raw: &str) -> String {
    let h: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-_[]:".contains(*c))
        .take(253)
        .collect();
    if h.is_empty() {
        "localhost".to_string()
    } else {
        h
    }
}

/// The bounce id as a token safe in Message-ID and the boundary; derived from the request
/// when the host gave nothing usable.
fn bounce_id(req: &BounceRequest) -> String {
    let id: String = req
        .bounce_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-_".contains(*c))
        .take(56)
        .collect();
    if !id.is_empty() {
        return id;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let seed = format!(
        "{}|{}|{}|{:?}",
        req.arrival, req.now, req.original_sender, req.recipients
    );
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("dsn{h:016x}")
}

/// An address with nothing that could break a header or a field: no controls, no white
/// space, no angle brackets; capped in length.
fn clean_address(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace() && *c != '<' && *c != '>')
        .collect();
    truncate(&mut s, MAX_ADDRESS);
    s
}

/// Cut at a character boundary at or below `max` bytes.
fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Text without control characters, on one line.
fn one_line(raw: &str, max: usize) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(&mut s, max);
    s.trim().to_string()
}

/// The reply with a valid code, an enhanced status of the same class, and one-line text.
fn clean_reply(r: &SmtpReply) -> SmtpReply {
    let code = if (200..=599).contains(&r.code) {
        r.code
    } else {
        550
    };
    let class = (code / 100).to_string();
    let status = r.status.trim();
    let valid = {
        let parts: Vec<&str> = status.split('.').collect();
        parts.len() == 3
            && parts[0] == class
            && parts[1..]
                .iter()
                .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let status = if valid {
        status.to_string()
    } else {
        format!("{class}.0.0")
    };
    SmtpReply {
        code,
        status,
        text: one_line(&r.text, 900),
    }
}

fn address_type(a: &str) -> &'static str {
    if a.is_ascii() { "rfc822" } else { "utf-8" }
}

fn status_part(mta: &str, arrival: i64, reply: &SmtpReply, recipients: &[String]) -> String {
    let mut s = String::new();
    s.push_str(&format!("Reporting-MTA: dns; {mta}{CRLF}"));
    s.push_str(&format!("Arrival-Date: {}{CRLF}", rfc5322(arrival)));
    let unknown = ["unknown@invalid".to_string()];
    let list = if recipients.is_empty() {
        &unknown[..]
    } else {
        recipients
    };
    for r in list {
        s.push_str(CRLF);
        s.push_str(&format!("Final-Recipient: {}; {r}{CRLF}", address_type(r)));
        s.push_str(&format!("Action: failed{CRLF}"));
        s.push_str(&format!("Status: {}{CRLF}", reply.status));
        s.push_str(&format!(
            "Diagnostic-Code: smtp; {} {} {}{CRLF}",
            reply.code, reply.status, reply.text
        ));
    }
    s
}

/// The original header section: up to its first empty line, CRLF line ends, no other control
/// characters than TAB, lines cut to 998 octets, the whole capped.
fn original_headers(raw: &str) -> String {
    let mut out = String::new();
    for line in raw.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            break;
        }
        let mut l: String = line
            .chars()
            .filter(|&c| c == '\t' || !c.is_control())
            .collect();
        truncate(&mut l, MAX_LINE);
        if out.len() + l.len() + 2 > MAX_ORIGINAL_HEADERS {
            break;
        }
        out.push_str(&l);
        out.push_str(CRLF);
    }
    out
}

/// Unfolded value of the first header `name` in a raw header section.
fn header_value(raw: &str, name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in raw.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            break;
        }
        let continuation = line.starts_with(' ') || line.starts_with('\t');
        match (&mut value, continuation) {
            (Some(v), true) => v.push_str(line),
            (Some(_), false) => break,
            (None, false) => {
                if let Some((n, v)) = line.split_once(':')
                    && n.trim().eq_ignore_ascii_case(name)
                {
                    value = Some(v.to_string());
                }
            }
            (None, true) => {}
        }
    }
    value
}

fn original_message_id(raw: &str) -> Option<String> {
    let v = header_value(raw, "Message-ID")?;
    let v = v.trim();
    let inner = v.strip_prefix('<')?.strip_suffix('>')?;
    let ok = !inner.is_empty()
        && inner.len() <= 250
        && inner.contains('@')
        && inner
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '<' && c != '>');
    ok.then(|| format!("<{inner}>"))
}

/// `Undeliverable: <original subject>`, RFC 2047-encoded when not ASCII.
fn subject(raw_headers: &str) -> String {
    let original = header_value(raw_headers, "Subject")
        .map(|s| one_line(&s, MAX_SUBJECT))
        .unwrap_or_default();
    let text = if original.is_empty() {
        "Undeliverable: your message couldn't be delivered".to_string()
    } else {
        format!("Undeliverable: {original}")
    };
    if text.is_ascii() {
        text
    } else {
        encode_words(&text)
    }
}

/// RFC 2047 `B` encoded words of at most 75 characters, folded onto continuation lines.
fn encode_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
    }
    words.join(&format!("{CRLF} "))
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What kind of refusal this is, for the explanation.
enum Case<'a> {
    Restricted(Option<&'a StoredRestriction>),
    Relay(Option<&'a StoredRestriction>),
    Connector,
    DailyLimit,
    TooManyRecipients,
    Rate,
    Other,
}

fn human_part(
    req: &BounceRequest,
    reply: &SmtpReply,
    sender: &str,
    recipients: &[String],
    refused: usize,
    max_recipients: u32,
) -> String {
    // The restriction's facts, as the record gave them (kept as a StoredRestriction-like view
    // for the shared sentence builders).
    let stored = req.restriction.as_ref().map(|r| StoredRestriction {
        kind: match r.kind {
            RestrictionKind::BlockUserForToday => StoredKind::BlockUserForToday,
            RestrictionKind::BlockUser => StoredKind::BlockUser,
            RestrictionKind::ServiceDailyLimit => StoredKind::ServiceDailyLimit,
        },
        policy: one_line(&r.evidence.policy, 64),
        limit: limit_key(&r.evidence.limit),
        threshold: r.evidence.threshold,
        observed: r.evidence.observed,
        at: r.evidence.at,
        message_id: r
            .evidence
            .last_message_id
            .as_deref()
            .map(|m| one_line(m, 128)),
        expires: r.expires,
    });
    let relay = req
        .restriction
        .as_ref()
        .is_some_and(|r| r.entity.kind == EntityKind::Relay);
    let case = match (reply.status.as_str(), stored.as_ref().map(|s| s.kind)) {
        ("5.1.90", _) | (_, Some(StoredKind::ServiceDailyLimit)) => Case::DailyLimit,
        ("5.7.711", _) => Case::Connector,
        ("5.1.8", _) | (_, Some(_)) if relay => Case::Relay(stored.as_ref()),
        ("5.1.8", _) | (_, Some(_)) => Case::Restricted(stored.as_ref()),
        ("5.5.3", _) => Case::TooManyRecipients,
        ("4.4.2", _) => Case::Rate,
        _ => Case::Other,
    };

    let mut t = String::new();
    let mut line = |s: &str| {
        t.push_str(s);
        t.push_str(CRLF);
    };
    if !matches!(case, Case::Restricted(_)) {
        line("Your message couldn't be delivered.");
        line("");
    }
    let (what, user_fix, admin_fix): (String, Vec<String>, Vec<String>) = match case {
        Case::Restricted(r) => {
            let until = match r.and_then(|r| r.expires) {
                Some(e) => format!("You can send again after {} (UTC midnight).", rfc3339(e)),
                None => "The restriction lasts until your email admin removes it.".to_string(),
            };
            (
                // EOP's wording for 5.1.8, word for word (the NDR reference quotes it).
                format!(
                    "Your message couldn't be delivered because you weren't recognized as a valid sender. The most common reason for this is that your email address is suspected of sending spam and it's no longer allowed to send email. Contact your email admin for assistance. Remote Server returned '{} {} {}'",
                    reply.code, reply.status, reply.text
                ),
                vec![
                    "Contact your email admin and tell them you got this message.".to_string(),
                    until,
                    "Messages you send while restricted are refused; there is no need to resend them now.".to_string(),
                ],
                vec![
                    "Check the account for compromise: reset its password, require MFA, look for forwarding and inbox rules, delegates, and unusual sign-ins.".to_string(),
                    format!("Then remove the restriction with `quench blocked-sender remove {} --reason \"...\"` (the equivalent of Remove-BlockedSenderAddress). Unblocks per account are limited; past the limit only the support role can unblock.", unblock_target(req, EntityKind::User, sender, "ADDRESS")),
                ],
            )
        }
        Case::Relay(r) => {
            let until = match r.and_then(|r| r.expires) {
                Some(e) => format!("Mail from this address can be sent again after {} (UTC midnight).", rfc3339(e)),
                None => "The restriction lasts until your email admin removes it.".to_string(),
            };
            (
                "Your message was refused: it came from a host on the trusted network that relays mail without signing in (a web server, an application, a printer or scanner), and mail with this sender address went over its outbound limits, so the address is restricted from sending email. The most common reason is a compromised web application, script or device sending spam.".to_string(),
                vec![
                    "Contact your email admin and tell them you got this message.".to_string(),
                    until,
                    "Messages sent with this address while it is restricted are refused; there is no need to resend them now.".to_string(),
                ],
                vec![
                    "Find the host on the trusted network that sends with this address (the MTA log has its client address) and check it for a compromised web application, script or device.".to_string(),
                    format!("Then remove the restriction with `quench blocked-relay remove {} --reason \"...\"`. Unblocks per address are limited; past the limit only the support role can unblock.", unblock_target(req, EntityKind::Relay, sender, "ADDRESS")),
                ],
            )
        }
        Case::Connector => (
            "The connector (relay host) your message came through is restricted from sending email because its traffic exceeded its limits.".to_string(),
            vec!["Contact your email admin; your own account is not the problem.".to_string()],
            vec![
                "Check the relay host for compromise or open relay, and the applications that send through it.".to_string(),
                format!("Then remove the connector's restriction with `quench blocked-connector remove {} --reason \"...\"`.", unblock_target(req, EntityKind::Connector, "", "ID")),
            ],
        ),
        Case::DailyLimit => {
            let when = stored
                .as_ref()
                .and_then(|r| r.expires)
                .map_or_else(|| "as the 24-hour window moves".to_string(), |e| format!("at {}", rfc3339(e)));
            (
                "You've reached the daily limit for message recipients: the service allows a fixed number of recipients per account in any 24 hours.".to_string(),
                vec![
                    format!("Wait: the limit lifts by itself {when}. Then send the message again."),
                    "To reach many people, use a distribution list or a bulk mail service.".to_string(),
                ],
                vec!["This is a service limit; admins can't lift it. If the volume was not expected, check the account for compromise.".to_string()],
            )
        }
        Case::TooManyRecipients => (
            format!("Your message had too many recipients: at most {max_recipients} recipients are allowed per message."),
            vec!["Send the message again to fewer recipients, in several messages, or use a distribution list.".to_string()],
            vec!["The limit is max_recipient_envelope_limit in quench's policy configuration.".to_string()],
        ),
        Case::Rate => (
            "Your account submitted messages faster than the service allows per minute.".to_string(),
            vec!["Wait a minute and send the message again.".to_string()],
            vec!["The limit is message_rate_limit in quench's policy configuration. If the rate was not expected, check the account for compromise.".to_string()],
        ),
        Case::Other => (
            "The mail server refused your message.".to_string(),
            vec!["Check the recipients and try again later; if it keeps happening, contact your email admin.".to_string()],
            vec!["See the diagnostic code below.".to_string()],
        ),
    };
    line(&what);
    line("");
    line("What happened");
    if !sender.is_empty() {
        line(&format!("  Sender: {sender}"));
    }
    for r in recipients.iter().take(MAX_LISTED_RECIPIENTS) {
        line(&format!("  Recipient: {r}"));
    }
    if refused > MAX_LISTED_RECIPIENTS {
        line(&format!(
            "  ... and {} more recipients",
            refused - MAX_LISTED_RECIPIENTS
        ));
    }
    line(&format!(
        "  Server reply: {} {} {}",
        reply.code, reply.status, reply.text
    ));
    if let Some(r) = &stored {
        line(&format!("  Why: {}.", describe_trip(r)));
        if let Some(m) = &r.message_id {
            line(&format!("  Message that tripped the limit: {m}"));
        }
        line(&format!("  Reason: {}", reason(r)));
    }
    line("");
    line("How to fix it (for you, the sender)");
    for s in &user_fix {
        line(&format!("  - {s}"));
    }
    line("");
    line("How to fix it (for your email admin)");
    for s in &admin_fix {
        line(&format!("  - {s}"));
    }
    t
}

/// What to name in the unblock command: the restricted entity when the request carries a
/// restriction of that kind (under Send As it is the submitter, not the envelope sender),
/// else `fallback` (the sender, for users), else a placeholder. Cleaned like an address, so
/// it can't break the line.
fn unblock_target(
    req: &BounceRequest,
    kind: EntityKind,
    fallback: &str,
    placeholder: &str,
) -> String {
    let from_restriction = req
        .restriction
        .as_ref()
        .filter(|r| r.entity.kind == kind)
        .map(|r| clean_address(&r.entity.id))
        .filter(|id| !id.is_empty());
    from_restriction
        .or_else(|| Some(fallback.to_string()).filter(|f| !f.is_empty()))
        .unwrap_or_else(|| placeholder.to_string())
}

fn limit_key(key: &str) -> crate::limits::LimitKey {
    use crate::limits::LimitKey;
    [
        LimitKey::ExternalPerHour,
        LimitKey::InternalPerHour,
        LimitKey::PerDay,
        LimitKey::RecipientRate,
    ]
    .into_iter()
    .find(|k| k.key() == key)
    .unwrap_or(LimitKey::PerDay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn reply_cleaning() {
        let r = |code, status: &str, text: &str| SmtpReply {
            code,
            status: status.into(),
            text: text.into(),
        };
        assert_eq!(clean_reply(&r(550, "5.1.8", "x")).status, "5.1.8");
        assert_eq!(clean_reply(&r(550, "4.1.8", "x")).status, "5.0.0");
        assert_eq!(clean_reply(&r(450, "bogus", "x")).status, "4.0.0");
        assert_eq!(clean_reply(&r(9, "5.1.8", "a\r\nB: c")).code, 550);
        assert_eq!(clean_reply(&r(9, "5.1.8", "a\r\nB: c")).text, "a  B: c");
    }
}
