//! RFC 3464 bounces, parsed back with a MIME parser (mail-parser).

mod common;
use common::*;
use mail_parser::{MessageParser, MimeHeaders};

fn reply(code: u16, status: &str, text: &str) -> SmtpReply {
    SmtpReply {
        code,
        status: status.into(),
        text: text.into(),
    }
}

fn request(reply: SmtpReply, restriction: Option<Restriction>) -> BounceRequest {
    BounceRequest {
        reporting_mta: "mx1.contoso.com".into(),
        original_sender: "alice@contoso.com".into(),
        recipients: vec!["bob@fabrikam.com".into(), "carol@contoso.com".into()],
        original_headers: "From: Alice <alice@contoso.com>\r\nTo: bob@fabrikam.com\r\nSubject: Quarterly numbers\r\nMessage-ID: <orig-1@contoso.com>\r\n\r\nbody must not appear\r\n".into(),
        reply,
        restriction,
        arrival: at(0, 10, 0, 0),
        now: at(0, 10, 0, 5),
        bounce_id: "b-123".into(),
    }
}

fn restricted() -> Restriction {
    let mut h = H::new(&limits_config(1, 100, 100, "BlockUser"));
    h.send("alice@contoso.com", ext(1), at(0, 9, 0, 0));
    h.send_part("alice@contoso.com", "Q-9", ext(1), at(0, 9, 1, 0))
        .restriction
        .unwrap()
}

fn policy() -> quench_default_policy::Policy {
    quench_default_policy::Policy::from_config("").unwrap()
}

/// Structural checks every bounce must pass; returns (human text, status text, headers text).
fn check(raw: &str) -> (String, String, String) {
    assert!(!raw.replace("\r\n", "").contains('\n'), "bare LF");
    assert!(!raw.replace("\r\n", "").contains('\r'), "bare CR");
    assert!(
        raw.split("\r\n").all(|l| l.len() <= 998),
        "line over 998 octets"
    );
    let msg = MessageParser::default()
        .parse(raw.as_bytes())
        .expect("parses");
    let ct = msg.content_type().expect("content type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let root = msg.root_part();
    let parts = root.sub_parts().expect("multipart");
    assert_eq!(parts.len(), 3, "three parts");
    let part = |i: usize| msg.part(parts[i]).unwrap();
    let kind = |i: usize| {
        let ct = part(i).content_type().unwrap();
        format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
    };
    assert_eq!(kind(0), "text/plain");
    assert!(
        ["message/delivery-status", "message/global-delivery-status"].contains(&kind(1).as_str())
    );
    assert!(["text/rfc822-headers", "message/global-headers"].contains(&kind(2).as_str()));
    let text = |i: usize| String::from_utf8_lossy(part(i).contents()).into_owned();
    (text(0), text(1), text(2))
}

#[test]
fn restricted_user_bounce() {
    let raw = policy().render_bounce(&request(
        reply(550, "5.1.8", "Access denied, bad outbound sender"),
        Some(restricted()),
    ));
    let (human, status, headers) = check(&raw);
    let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
    assert_eq!(msg.subject(), Some("Undeliverable: Quarterly numbers"));
    assert_eq!(msg.message_id(), Some("b-123@mx1.contoso.com"));
    assert_eq!(
        msg.from().unwrap().first().unwrap().address(),
        Some("MAILER-DAEMON@mx1.contoso.com")
    );
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("alice@contoso.com")
    );
    assert!(msg.date().is_some());
    assert_eq!(
        msg.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    assert_eq!(msg.in_reply_to().as_text(), Some("orig-1@contoso.com"));

    for needle in [
        "Reporting-MTA: dns; mx1.contoso.com",
        "Arrival-Date: Mon, 23 Nov 2026 10:00:00 +0000",
        "Final-Recipient: rfc822; bob@fabrikam.com",
        "Final-Recipient: rfc822; carol@contoso.com",
        "Action: failed",
        "Status: 5.1.8",
        "Diagnostic-Code: smtp; 550 5.1.8 Access denied, bad outbound sender",
    ] {
        assert!(status.contains(needle), "{needle} missing from:\n{status}");
    }
    assert_eq!(status.matches("Final-Recipient:").count(), 2);
    assert!(
        headers.contains("Subject: Quarterly numbers") && !headers.contains("body must not appear")
    );
    for needle in [
        "weren't recognized as a valid sender",
        "for you, the sender",
        "for your email admin",
        "recipient_limit_external_per_hour",
        "Q-9",
        "Policy=Default;",
        "MFA",
        "`quench blocked-sender remove alice@contoso.com --reason \"...\"`",
        "Remove-BlockedSenderAddress",
    ] {
        assert!(human.contains(needle), "{needle} missing from:\n{human}");
    }
}

#[test]
fn unblock_command_names_the_restricted_entity() {
    // Send As: the restriction is on the submitter; the bounce goes to the envelope sender.
    let mut r = restricted();
    r.entity = user("delegate@contoso.com");
    let mut req = request(
        reply(550, "5.1.8", "Access denied, bad outbound sender"),
        Some(r),
    );
    req.original_sender = "shared@contoso.com".into();
    let (human, _, _) = check(&policy().render_bounce(&req));
    assert!(
        human.contains("`quench blocked-sender remove delegate@contoso.com --reason \"...\"`"),
        "{human}"
    );

    // Without a restriction record: the sender; without a sender: a placeholder.
    let mut req = request(
        reply(550, "5.1.8", "Access denied, bad outbound sender"),
        None,
    );
    let (human, _, _) = check(&policy().render_bounce(&req));
    assert!(human.contains("quench blocked-sender remove alice@contoso.com --reason"));
    req.original_sender = String::new();
    let (human, _, _) = check(&policy().render_bounce(&req));
    assert!(human.contains("quench blocked-sender remove ADDRESS --reason"));

    // A connector: its id from the restriction, else a placeholder.
    let mut r = restricted();
    r.entity = connector("scanner-relay");
    let req = request(
        reply(550, "5.7.711", "Access denied, bad inbound connector"),
        Some(r),
    );
    let (human, _, _) = check(&policy().render_bounce(&req));
    assert!(
        human.contains("`quench blocked-connector remove scanner-relay --reason \"...\"`"),
        "{human}"
    );
    let req = request(
        reply(550, "5.7.711", "Access denied, bad inbound connector"),
        None,
    );
    let (human, _, _) = check(&policy().render_bounce(&req));
    assert!(
        human.contains("`quench blocked-connector remove ID --reason \"...\"`"),
        "{human}"
    );

    // Hostile ids cannot break the line.
    let mut r = restricted();
    r.entity = user("evil@contoso.com\r\nBcc: victim@example.com");
    let req = request(
        reply(550, "5.1.8", "Access denied, bad outbound sender"),
        Some(r),
    );
    let raw = policy().render_bounce(&req);
    let (human, _, _) = check(&raw);
    assert!(
        human.contains(
            "quench blocked-sender remove evil@contoso.comBcc:victim@example.com --reason"
        )
    );
    assert!(!raw.contains("\r\nBcc:"));
}

#[test]
fn explanation_follows_the_reply() {
    for (r, needle) in [
        (
            reply(
                550,
                "5.1.90",
                "Your message can't be sent because you've reached your daily limit for message recipients",
            ),
            "daily limit for message recipients",
        ),
        (
            reply(550, "5.7.711", "Access denied, bad inbound connector"),
            "connector",
        ),
        (
            reply(550, "5.5.3", "Too many recipients"),
            "at most 500 recipients",
        ),
        (
            reply(
                450,
                "4.4.2",
                "Message submission rate for this client has exceeded the configured limit",
            ),
            "per minute",
        ),
        (
            reply(554, "5.7.1", "Something else"),
            "refused your message",
        ),
    ] {
        let raw = policy().render_bounce(&request(r.clone(), None));
        let (human, status, _) = check(&raw);
        assert!(
            human.contains(needle),
            "{}: {needle} missing:\n{human}",
            r.status
        );
        assert!(status.contains(&format!("Status: {}", r.status)));
    }
}

#[test]
fn hostile_input_cannot_inject_headers_or_parts() {
    let mut req = request(
        reply(550, "5.1.8\r\nX-Evil: 1", "text\r\nBcc: victim@example.com"),
        None,
    );
    req.original_sender = "alice@contoso.com\r\nBcc: victim@example.com".into();
    req.reporting_mta = "mx\r\nX-Injected: yes".into();
    req.bounce_id = "id\r\nX-Injected: 2\"; boundary=x".into();
    req.recipients = vec![
        "bob@fabrikam.com\r\nFinal-Recipient: rfc822; forged@example.com".into(),
        "\r\n".into(),
        "x".repeat(5_000),
    ];
    req.original_headers =
        "Subject: hi\r\n--=_quench_idX-Injected2boundaryx\r\nContent-Type: text/html\r\n\r\nX"
            .into();
    let raw = policy().render_bounce(&req);
    let (_, status, headers) = check(&raw);
    let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
    for name in ["Bcc", "X-Evil", "X-Injected"] {
        assert!(msg.header_raw(name).is_none(), "{name} injected:\n{raw}");
    }
    let blocks = status
        .split("\r\n")
        .filter(|l| l.starts_with("Final-Recipient:"))
        .count();
    assert_eq!(
        blocks, 2,
        "one block per usable recipient, nothing forged:\n{status}"
    );
    assert!(!status.contains("\r\nFinal-Recipient: rfc822; forged"));
    assert!(status.contains("Status: 5.0.0"), "invalid status replaced");
    assert!(
        headers.contains("--=_quench_idX-Injected2boundaryx"),
        "kept as content; boundary changed"
    );
}

#[test]
fn odd_but_legal_inputs() {
    // Non-ASCII subject and recipient, no recipients, empty sender, empty everything.
    let mut req = request(
        reply(550, "5.1.8", "Access denied, bad outbound sender"),
        None,
    );
    req.original_headers = "Subject: Prüfbericht für März — ünïcødé\r\n".into();
    req.recipients = vec!["jörg@bücher.de".into()];
    let raw = policy().render_bounce(&req);
    check(&raw);
    let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
    assert_eq!(
        msg.subject(),
        Some("Undeliverable: Prüfbericht für März — ünïcødé")
    );
    assert!(raw.contains("Final-Recipient: utf-8; jörg@bücher.de"));

    let empty = BounceRequest {
        reporting_mta: String::new(),
        original_sender: String::new(),
        recipients: vec![],
        original_headers: String::new(),
        reply: reply(0, "", ""),
        restriction: None,
        arrival: i64::MIN,
        now: i64::MAX,
        bounce_id: String::new(),
    };
    let raw = policy().render_bounce(&empty);
    let (_, status, _) = check(&raw);
    assert!(status.contains("Final-Recipient: rfc822; unknown@invalid"));
    assert!(raw.contains("To: undisclosed-recipients:;"));
}

#[test]
fn restricted_relay_bounce() {
    // A relay (unauthenticated client on a trusted network) restricted as app@contoso.com.
    let mut h = H::new(&limits_config(1, 100, 100, "BlockUserForToday"));
    h.send_relayed("app@contoso.com", None, ext(1), at(0, 9, 0, 0));
    let r = h
        .send_relayed("app@contoso.com", Some("Q-5"), ext(1), at(0, 9, 1, 0))
        .restriction
        .unwrap();
    assert_eq!(r.entity, relayed("app@contoso.com"));
    let mut req = request(
        reply(550, "5.1.8", "Access denied, bad outbound sender"),
        Some(r),
    );
    req.original_sender = "app@contoso.com".into();
    let (human, status, _) = check(&policy().render_bounce(&req));
    assert!(status.contains("Status: 5.1.8"));
    for needle in [
        "trusted network",
        "without signing in",
        "web application, script or device",
        "after 2026-11-24T00:00:00Z",
        "Q-5",
        "`quench blocked-relay remove app@contoso.com --reason \"...\"`",
    ] {
        assert!(human.contains(needle), "{needle} missing from:\n{human}");
    }
    for absent in ["blocked-sender", "MFA", "password"] {
        assert!(!human.contains(absent), "{absent} in:\n{human}");
    }
}
