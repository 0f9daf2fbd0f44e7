//! Check `bounce`: `render-bounce` writes a delivery status notification a mail system can
//! parse (RFC 3464, parsed back with mail-parser): multipart/report with
//! report-type=delivery-status, a human-readable first part, and a message/delivery-status
//! part with a per-message group (Reporting-MTA) and one group per refused recipient
//! (Final-Recipient, Action, Status). Once for a real refusal, once for a hostile request,
//! which must neither trap nor let a recipient inject a header.

use super::drive;
use super::generate::START;
use super::{Finding, Loaded, clip};
use crate::{BounceRequest, Entity, Restriction, SmtpReply};
use mail_parser::{MessageParser, MimeHeaders};

/// Run the check.
pub(crate) fn check(loaded: &Loaded) -> Finding {
    let sandbox = &loaded.warm;
    let entity = Entity::user("bounce@quench-check.invalid");
    let (reply, restriction, origin) =
        match drive::to_restriction(sandbox, &entity, Vec::new(), START, "bounce") {
            Err(why) => return Finding::fail(format!("driving to a refusal: {why}")),
            Ok(Some(driven)) => (
                driven
                    .decision
                    .verdict
                    .reply
                    .clone()
                    .expect("a refusal has a reply"),
                driven.decision.restriction.clone(),
                "the policy's own refusal",
            ),
            Ok(None) => (
                SmtpReply {
                    code: 550,
                    status: "5.1.8".into(),
                    text: "Access denied, bad outbound sender".into(),
                },
                None,
                "a made-up 5.1.8 refusal (the policy never restricted)",
            ),
        };
    let recipients = vec![
        "bob@fabrikam.com".to_string(),
        "carol@northwind.example".to_string(),
    ];
    let honest = request(
        &entity,
        recipients.clone(),
        reply.clone(),
        restriction.clone(),
    );
    let raw = match sandbox.render_bounce(&honest) {
        Ok(raw) => raw,
        Err(fault) => {
            return Finding::fail(format!("render-bounce failed: {}", super::fault(&fault)));
        }
    };
    let groups = match parse(&raw, false) {
        Ok(groups) => groups,
        Err(why) => return Finding::fail(format!("for {origin}: {why}")),
    };
    for recipient in &recipients {
        let listed = groups.iter().any(|g| {
            field(g, "final-recipient").is_some_and(|v| v.to_ascii_lowercase().contains(recipient))
        });
        if !listed {
            return Finding::fail(format!("no Final-Recipient group for {recipient}"));
        }
    }
    if let Some(g) = groups
        .iter()
        .find(|g| field(g, "status") != Some(reply.status.as_str()))
    {
        return Finding::fail(format!(
            "a recipient's Status is {:?}, the refusal's enhanced status is {}",
            field(g, "status"),
            reply.status
        ));
    }

    let hostile = BounceRequest {
        reporting_mta: "mx\r\nBcc: injected@evil.example".into(),
        original_sender: "alice@contoso.com\r\nBcc: injected@evil.example".into(),
        recipients: vec![
            "victim@fabrikam.com\r\nBcc: injected@evil.example".into(),
            "用户@例子.广告".into(),
            "--=_boundary".into(),
            String::new(),
        ],
        original_headers: "Subject: \u{0}\r\n\r\nX-Injected: yes\r\n".repeat(50),
        reply: SmtpReply {
            code: 0,
            status: "garbage\r\nBcc: x".into(),
            text: "\r\n\r\n--".into(),
        },
        restriction: restriction.clone(),
        arrival: i64::MIN,
        now: i64::MAX,
        bounce_id: "\r\n--".into(),
    };
    let raw = match sandbox.render_bounce(&hostile) {
        Ok(raw) => raw,
        Err(fault) => {
            return Finding::fail(format!(
                "render-bounce failed on a hostile request: {}",
                super::fault(&fault)
            ));
        }
    };
    if let Err(why) = parse(&raw, true) {
        return Finding::fail(format!("for a hostile request: {why}"));
    }
    Finding::pass(format!(
        "for {origin}: multipart/report; report-type=delivery-status, text part first, message/delivery-status with Reporting-MTA and a Final-Recipient/Action/Status group per recipient; a hostile request still parses and injects no header"
    ))
}

fn request(
    entity: &Entity,
    recipients: Vec<String>,
    reply: SmtpReply,
    restriction: Option<Restriction>,
) -> BounceRequest {
    BounceRequest {
        reporting_mta: "mx.quench-check.invalid".into(),
        original_sender: entity.id.clone(),
        recipients,
        original_headers: "From: <bounce@quench-check.invalid>\r\nSubject: Quarterly numbers\r\nMessage-ID: <kit-1@quench-check.invalid>\r\n\r\nbody\r\n".into(),
        reply,
        restriction,
        arrival: START,
        now: START + 5,
        bounce_id: "kit-bounce-1".into(),
    }
}

/// One field group of a delivery-status body: (lower-case name, value) pairs.
type Group = Vec<(String, String)>;

fn field<'a>(group: &'a Group, name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Parse a bounce; return its per-recipient groups. `hostile`: also check that nothing was
/// injected, and accept message/global-delivery-status (unicode recipients).
fn parse(raw: &str, hostile: bool) -> Result<Vec<Group>, String> {
    if raw.replace("\r\n", "").contains(['\r', '\n']) {
        return Err("the message has bare CR or LF line ends (RFC 5322 wants CRLF)".into());
    }
    if let Some(line) = raw.split("\r\n").find(|l| l.len() > 998) {
        return Err(format!("a line is {} octets long (over 998)", line.len()));
    }
    let message = MessageParser::default()
        .parse(raw.as_bytes())
        .ok_or("mail-parser cannot parse it as a message")?;
    if hostile && message.header_raw("Bcc").is_some() {
        return Err("a Bcc header was injected through the request".into());
    }
    let ct = message
        .content_type()
        .ok_or("no Content-Type header (expected multipart/report)")?;
    if (ct.ctype(), ct.subtype()) != ("multipart", Some("report")) {
        return Err(format!(
            "Content-Type is {}/{}, expected multipart/report",
            ct.ctype(),
            ct.subtype().unwrap_or("")
        ));
    }
    if !ct
        .attribute("report-type")
        .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    {
        return Err(format!(
            "report-type is {:?}, expected delivery-status",
            ct.attribute("report-type")
        ));
    }
    let parts = message
        .root_part()
        .sub_parts()
        .ok_or("multipart/report without parts")?;
    let kind = |id: u32| {
        message
            .part(id)
            .and_then(|p| p.content_type())
            .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_ascii_lowercase())
            .unwrap_or_else(|| "text/plain".into())
    };
    let first = parts.first().ok_or("multipart/report without parts")?;
    if !kind(*first).starts_with("text/") {
        return Err(format!(
            "the first part is {}, RFC 3464 wants a human-readable text part",
            kind(*first)
        ));
    }
    let accepted: &[&str] = if hostile {
        &["message/delivery-status", "message/global-delivery-status"]
    } else {
        &["message/delivery-status"]
    };
    let status = parts
        .iter()
        .find(|id| accepted.contains(&kind(**id).as_str()))
        .and_then(|id| message.part(*id))
        .ok_or_else(|| {
            let kinds: Vec<String> = parts.iter().map(|id| kind(*id)).collect();
            format!(
                "no {} part (parts: {})",
                accepted.join(" or "),
                kinds.join(", ")
            )
        })?;
    let body = String::from_utf8_lossy(status.contents()).into_owned();
    let mut groups = groups(&body);
    if groups.is_empty() || field(&groups[0], "reporting-mta").is_none() {
        return Err(format!(
            "the delivery-status part has no Reporting-MTA in its per-message group: {}",
            clip(&body, 120)
        ));
    }
    let recipients = groups.split_off(1);
    if recipients.is_empty() {
        return Err("the delivery-status part has no per-recipient group".into());
    }
    for (i, group) in recipients.iter().enumerate() {
        for name in ["final-recipient", "action", "status"] {
            if field(group, name).is_none_or(|v| v.trim().is_empty()) {
                return Err(format!(
                    "per-recipient group {} lacks {name}: {}",
                    i + 1,
                    clip(&format!("{group:?}"), 120)
                ));
            }
        }
        let action = field(group, "action").unwrap_or("").to_ascii_lowercase();
        if !["failed", "delayed", "delivered", "relayed", "expanded"].contains(&action.as_str()) {
            return Err(format!("Action {action:?} is not an RFC 3464 action"));
        }
        let status = field(group, "status").unwrap_or("");
        let parts: Vec<&str> = status.split('.').collect();
        let valid = parts.len() == 3
            && ["2", "4", "5"].contains(&parts[0])
            && parts
                .iter()
                .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
        if !valid {
            return Err(format!("Status {status:?} is not an RFC 3463 status code"));
        }
    }
    Ok(recipients)
}

/// Split a delivery-status body into field groups (blank-line separated), unfolding
/// continuation lines.
fn groups(body: &str) -> Vec<Group> {
    let mut groups = Vec::new();
    let mut group: Group = Vec::new();
    for line in body.lines() {
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(std::mem::take(&mut group));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = group.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_groups_split_on_blank_lines_and_unfold() {
        let body = "Reporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822;\r\n a@b\r\nAction: failed\r\nStatus: 5.1.8\r\n\r\n\r\nFinal-Recipient: rfc822; c@d\r\n";
        let g = groups(body);
        assert_eq!(g.len(), 3);
        assert_eq!(field(&g[0], "reporting-mta"), Some("dns; mx"));
        assert_eq!(field(&g[1], "final-recipient"), Some("rfc822; a@b"));
        assert_eq!(field(&g[1], "status"), Some("5.1.8"));
        assert_eq!(field(&g[2], "action"), None);
    }

    #[test]
    fn a_plain_message_is_not_a_report() {
        let raw = "From: a@b\r\nSubject: x\r\n\r\nhello\r\n";
        assert!(parse(raw, false).unwrap_err().contains("multipart/report"));
        assert!(parse("a\nb", false).unwrap_err().contains("bare CR or LF"));
    }
}
