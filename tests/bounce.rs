//! RFC 3464 bounces rendered by the default policy *through the sandbox*
//! (`Sandbox::render_bounce`), for restrictions the sandboxed policy itself decided, parsed
//! back with a MIME parser (mail-parser): the multipart/report structure, the human-readable
//! explanation, the machine-readable delivery status and the original headers; and hostile
//! input that must not inject headers or parts.

use crate::common::{MONDAY_10AM, default_policy};
use mail_parser::{Message, MessageParser, MimeHeaders};
use quench::{BounceRequest, Entity, Restriction, Sandbox, SmtpReply, Submission};

const CONFIG: &str = r#"
accepted_domains = ["contoso.com"]
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 2
action_when_threshold_reached = "BlockUser"
[[connectors]]
id = "scanner-relay"
client_addresses = ["192.0.2.10"]
recipient_limit_external_per_hour = 2
action_when_threshold_reached = "BlockUser"
"#;

const ORIGINAL_HEADERS: &str = "From: Alice <alice@contoso.com>\r\nTo: Bob <bob@fabrikam.com>\r\nSubject: Quarterly numbers\r\nDate: Mon, 23 Nov 2026 09:59:58 +0000\r\nMessage-ID: <orig-1@contoso.com>\r\n\r\nThe body must not appear in the bounce.\r\n";

/// Restrict `entity` by sending three external recipients at once; returns the refusal's
/// reply and the restriction record, as the sandboxed policy decided them.
fn restrict(policy: &Sandbox, entity: Entity) -> (SmtpReply, Restriction) {
    let submission = Submission {
        entity,
        sender: "alice@contoso.com".into(),
        recipients: vec![
            "bob@fabrikam.com".into(),
            "carol@fabrikam.com".into(),
            "dave@fabrikam.com".into(),
        ],
        message_id: Some("Q-42".into()),
    };
    let decided = policy.decide(&[], &submission, MONDAY_10AM);
    assert!(decided.fault.is_none(), "{:?}", decided.fault);
    let decision = decided.decision;
    (
        decision.verdict.reply.expect("a refusal has a reply"),
        decision.restriction.expect("restricted"),
    )
}

fn request(reply: SmtpReply, restriction: Option<Restriction>) -> BounceRequest {
    BounceRequest {
        reporting_mta: "mx1.contoso.com".into(),
        original_sender: "alice@contoso.com".into(),
        recipients: vec![
            "bob@fabrikam.com".into(),
            "carol@fabrikam.com".into(),
            "dave@fabrikam.com".into(),
        ],
        original_headers: ORIGINAL_HEADERS.into(),
        reply,
        restriction,
        arrival: MONDAY_10AM,
        now: MONDAY_10AM + 5,
        bounce_id: "b-7".into(),
    }
}

fn render(policy: &Sandbox, request: &BounceRequest) -> String {
    policy
        .render_bounce(request)
        .expect("the sandboxed policy renders the bounce")
}

/// A bounce taken apart.
struct Bounce {
    human: String,
    /// The per-message fields, then one field list per recipient.
    status: Vec<Vec<(String, String)>>,
    status_type: String,
    headers: String,
    headers_type: String,
}

/// Parse a rendered bounce and check what every bounce must satisfy.
fn parse(raw: &str) -> (Message<'_>, Bounce) {
    assert!(!raw.replace("\r\n", "").contains('\n'), "bare LF:\n{raw}");
    assert!(!raw.replace("\r\n", "").contains('\r'), "bare CR:\n{raw}");
    assert!(raw.split("\r\n").all(|l| l.len() <= 998), "line over 998");
    let message = MessageParser::default()
        .parse(raw.as_bytes())
        .expect("mail-parser parses the bounce");
    let ct = message.content_type().expect("a Content-Type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let parts = message.root_part().sub_parts().expect("multipart").to_vec();
    assert_eq!(parts.len(), 3, "human, delivery-status, headers:\n{raw}");
    let part = |i: usize| message.part(parts[i]).expect("part");
    let kind = |i: usize| {
        let ct = part(i).content_type().expect("part Content-Type");
        format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
    };
    let text = |i: usize| String::from_utf8_lossy(part(i).contents()).into_owned();
    assert_eq!(kind(0), "text/plain");
    assert_eq!(
        part(0).content_type().unwrap().attribute("charset"),
        Some("utf-8")
    );
    let bounce = Bounce {
        human: text(0),
        status: status_groups(&text(1)),
        status_type: kind(1),
        headers: text(2),
        headers_type: kind(2),
    };
    (message, bounce)
}

/// RFC 3464's delivery-status body: groups of header-style fields separated by empty lines.
fn status_groups(body: &str) -> Vec<Vec<(String, String)>> {
    body.split("\r\n\r\n")
        .filter(|g| !g.trim().is_empty())
        .map(|group| {
            let mut fields: Vec<(String, String)> = Vec::new();
            for line in group.split("\r\n").filter(|l| !l.is_empty()) {
                if line.starts_with([' ', '\t']) {
                    let last = fields.last_mut().expect("a continuation follows a field");
                    last.1.push_str(line);
                    continue;
                }
                let (name, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("not a field: {line:?}"));
                fields.push((name.trim().to_string(), value.trim().to_string()));
            }
            fields
        })
        .collect()
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn restricted_user_bounce_parses_and_explains() {
    let policy = default_policy(CONFIG);
    let (reply, restriction) = restrict(&policy, Entity::user("alice@contoso.com"));
    assert_eq!(reply.line(), "550 5.1.8 Access denied, bad outbound sender");
    let raw = render(&policy, &request(reply, Some(restriction)));
    let (message, bounce) = parse(&raw);

    // The header section.
    assert_eq!(
        message.from().unwrap().first().unwrap().address(),
        Some("MAILER-DAEMON@mx1.contoso.com")
    );
    assert_eq!(
        message.to().unwrap().first().unwrap().address(),
        Some("alice@contoso.com")
    );
    assert_eq!(message.subject(), Some("Undeliverable: Quarterly numbers"));
    assert_eq!(message.message_id(), Some("b-7@mx1.contoso.com"));
    assert_eq!(message.in_reply_to().as_text(), Some("orig-1@contoso.com"));
    assert_eq!(message.references().as_text(), Some("orig-1@contoso.com"));
    assert_eq!(
        message.date().map(|d| d.to_rfc3339()),
        Some("2026-11-23T10:00:05Z".into())
    );
    assert_eq!(
        message.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    assert_eq!(
        message.header_raw("MIME-Version").map(str::trim),
        Some("1.0")
    );

    // The human-readable part: what happened, with the evidence, and how to fix it.
    contains_all(
        &bounce.human,
        &[
            // EOP's wording for 5.1.8, word for word.
            "Your message couldn't be delivered because you weren't recognized as a valid sender. The most common reason for this is that your email address is suspected of sending spam and it's no longer allowed to send email. Contact your email admin for assistance. Remote Server returned '550 5.1.8 Access denied, bad outbound sender'",
            "Sender: alice@contoso.com",
            "Recipient: bob@fabrikam.com",
            "Recipient: dave@fabrikam.com",
            "Server reply: 550 5.1.8 Access denied, bad outbound sender",
            "3 external recipients in the last hour would exceed the limit of 2",
            "recipient_limit_external_per_hour",
            "Message that tripped the limit: Q-42",
            "Reason: Policy=Default;Limit=recipient_limit_external_per_hour;Threshold=2;Observed=3;WindowSeconds=3600;At=2026-11-23T10:00:00Z;LastMessageId=Q-42;Restriction=BlockUser;Expires=never",
            "How to fix it (for you, the sender)",
            "The restriction lasts until your email admin removes it.",
            "How to fix it (for your email admin)",
            "reset its password, require MFA",
            "`quench blocked-sender remove alice@contoso.com --reason \"...\"`",
            "Remove-BlockedSenderAddress",
            "only the support role can unblock",
        ],
    );

    // The machine-readable part: per message, then per recipient.
    assert_eq!(bounce.status_type, "message/delivery-status");
    let (per_message, per_recipient) = bounce.status.split_first().expect("groups");
    assert_eq!(
        field(per_message, "Reporting-MTA"),
        Some("dns; mx1.contoso.com")
    );
    assert_eq!(
        field(per_message, "Arrival-Date"),
        Some("Mon, 23 Nov 2026 10:00:00 +0000")
    );
    let recipients: Vec<_> = per_recipient
        .iter()
        .map(|g| field(g, "Final-Recipient").unwrap())
        .collect();
    assert_eq!(
        recipients,
        [
            "rfc822; bob@fabrikam.com",
            "rfc822; carol@fabrikam.com",
            "rfc822; dave@fabrikam.com"
        ]
    );
    for group in per_recipient {
        assert_eq!(field(group, "Action"), Some("failed"));
        assert_eq!(field(group, "Status"), Some("5.1.8"));
        assert_eq!(
            field(group, "Diagnostic-Code"),
            Some("smtp; 550 5.1.8 Access denied, bad outbound sender")
        );
    }

    // The original header section, and nothing of the body.
    assert_eq!(bounce.headers_type, "text/rfc822-headers");
    contains_all(
        &bounce.headers,
        &[
            "Subject: Quarterly numbers",
            "Message-ID: <orig-1@contoso.com>",
        ],
    );
    assert!(!bounce.headers.contains("body must not appear"));
}

#[test]
fn connector_and_daily_limit_bounces_explain_their_case() {
    let policy = default_policy(CONFIG);

    // A connector restricted by the sandboxed policy: 5.7.711 and the connector command.
    let (reply, restriction) = restrict(&policy, Entity::connector("Scanner-Relay"));
    assert_eq!(
        reply.line(),
        "550 5.7.711 Access denied, bad inbound connector"
    );
    let raw = render(&policy, &request(reply, Some(restriction)));
    let (_, bounce) = parse(&raw);
    contains_all(
        &bounce.human,
        &[
            "The connector (relay host) your message came through is restricted",
            "your own account is not the problem",
            "open relay",
            "`quench blocked-connector remove scanner-relay --reason \"...\"`",
        ],
    );
    assert!(!bounce.human.contains("blocked-sender"));
    assert_eq!(field(&bounce.status[1], "Status"), Some("5.7.711"));

    // The service's daily recipient limit: lifts by itself, admins can't lift it.
    let policy = default_policy("recipient_rate_limit = 2");
    let (reply, restriction) = restrict(&policy, Entity::user("alice@contoso.com"));
    assert_eq!(reply.status, "5.1.90");
    let lifts = quench::time::format(restriction.expires.expect("lifts by itself"));
    let raw = render(&policy, &request(reply, Some(restriction)));
    let (_, bounce) = parse(&raw);
    contains_all(
        &bounce.human,
        &[
            "You've reached the daily limit for message recipients",
            &format!("the limit lifts by itself at {lifts}"),
            "admins can't lift it",
            "Reason: Policy=service;Limit=recipient_rate_limit;",
        ],
    );
    for group in &bounce.status[1..] {
        assert_eq!(
            field(group, "Diagnostic-Code"),
            Some(
                "smtp; 550 5.1.90 Your message can't be sent because you've reached your daily limit for message recipients"
            )
        );
    }
}

#[test]
fn hostile_input_cannot_inject_headers_or_parts() {
    let policy = default_policy(CONFIG);
    let (reply, mut restriction) = restrict(&policy, Entity::user("alice@contoso.com"));
    restriction.entity.id = "alice@contoso.com\r\nX-Injected-Entity: 1".into();
    restriction.evidence.policy = "Default\r\nX-Injected-Policy: 1".into();
    restriction.evidence.last_message_id = Some("Q-42\r\n\r\n--fake".into());
    let mut req = request(reply, Some(restriction));
    req.reply.text = "Access denied\r\nBcc: victim@example.com".into();
    req.reply.status = "5.1.8\r\nX-Evil: 1".into();
    req.original_sender = "alice@contoso.com\r\nBcc: victim@example.com".into();
    req.reporting_mta = "mx1\r\nX-Injected-Mta: yes".into();
    req.bounce_id = "b\r\nX-Injected-Id: 2\"; boundary=evil".into();
    req.recipients = vec![
        "bob@fabrikam.com\r\nFinal-Recipient: rfc822; forged@example.com".into(),
        "\r\n".into(),
        "carol@fabrikam.com".into(),
    ];
    req.original_headers = "Subject: hi\r\nX-Fold: a\r\n\tb\r\n--=_quench_bX-Injected-Id2boundaryevil\r\nContent-Type: text/html\r\n\r\n<script>body</script>".into();

    let raw = render(&policy, &req);
    let (message, bounce) = parse(&raw);
    for name in [
        "Bcc",
        "X-Evil",
        "X-Injected-Mta",
        "X-Injected-Id",
        "X-Injected-Entity",
        "X-Injected-Policy",
    ] {
        assert!(
            message.header_raw(name).is_none(),
            "{name} injected:\n{raw}"
        );
    }
    for group in &bounce.status {
        for (name, _) in group {
            assert!(
                [
                    "Reporting-MTA",
                    "Arrival-Date",
                    "Final-Recipient",
                    "Action",
                    "Status",
                    "Diagnostic-Code"
                ]
                .contains(&name.as_str()),
                "unexpected delivery-status field {name}:\n{raw}"
            );
        }
    }
    let finals: Vec<_> = bounce.status[1..]
        .iter()
        .map(|g| field(g, "Final-Recipient").unwrap())
        .collect();
    assert_eq!(
        finals,
        [
            "rfc822; bob@fabrikam.comFinal-Recipient:rfc822;forged@example.com",
            "rfc822; carol@fabrikam.com"
        ],
        "one block per usable recipient, nothing forged"
    );
    assert_eq!(
        field(&bounce.status[1], "Status"),
        Some("5.0.0"),
        "an invalid status is replaced"
    );
    // The original headers stay content of their part: the fake boundary did not split it.
    assert!(
        bounce
            .headers
            .contains("--=_quench_bX-Injected-Id2boundaryevil")
    );
    assert!(!bounce.headers.contains("<script>"));
    assert!(!bounce.human.contains("\r\nX-Injected"));
    assert!(!raw.contains("\r\n--fake"));
}
