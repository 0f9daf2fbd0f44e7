//! Issue 13: the NDR reaches the restricted user's inbox. A real Postfix delivers contoso.com
//! to a local mailbox and asks quench at RCPT time; quench's `[ndr] relay` is that Postfix.
//! The NDR lands in the user's mailbox with the documented wording, a second refusal within
//! the hour sends none, and mail *to* the restricted user from outside is still delivered.

use crate::postfix::{Mail, PostfixOptions, PrivatePostfix};
use crate::server::QuenchServer;
use mail_parser::{MessageParser, MimeHeaders};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// The user-facing wording of EOP's NDR for 5.1.8, which the default policy renders.
const EOP_TEXT: &str = "Your message couldn't be delivered because you weren't recognized as a valid sender. The most common reason for this is that your email address is suspected of sending spam and it's no longer allowed to send email. Contact your email admin for assistance. Remote Server returned '550 5.1.8 Access denied, bad outbound sender'";

fn config(relay_port: u16) -> String {
    format!(
        r#"
[serve]
sasl_default_domain = "contoso.com"

[policy]
accepted_domains = ["contoso.com"]

[[policy.outbound]]
name = "Default"
recipient_limit_external_per_hour = 2
recipient_limit_internal_per_hour = 100
recipient_limit_per_day = 100
action_when_threshold_reached = "BlockUser"

[ndr]
relay = "smtp://127.0.0.1:{relay_port}"
reporting_mta = "mx.contoso.com"
"#
    )
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn a_refused_restricted_user_gets_one_ndr_an_hour_and_still_receives_mail() {
    // Postfix first (quench's config names its port), pointed at the address quench will take.
    let policy = free_addr();
    let postfix = PrivatePostfix::start(PostfixOptions {
        xclient: true,
        deliver_domain: Some("contoso.com".into()),
        ..PostfixOptions::with_policy(policy)
    })
    .expect("a private Postfix starts");
    let quench = QuenchServer::start_on("ndr", &config(postfix.port()), policy);

    let send = |to: &str| {
        postfix
            .swaks(&Mail::new("alice@contoso.com", &[to]).xclient_login("alice"))
            .unwrap()
    };
    for to in ["x1@fabrikam.com", "x2@fabrikam.com"] {
        assert!(send(to).accepted());
    }
    // The third external recipient trips the limit: refused in session, and an NDR follows.
    let refused = send("x3@fabrikam.com");
    let reply = refused.rcpt_reply("x3@fabrikam.com").unwrap();
    assert_eq!(
        (reply.code, reply.enhanced.as_deref()),
        (550, Some("5.1.8")),
        "{}",
        refused.transcript
    );
    let mailbox = postfix
        .wait_for_mailbox(1, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e:#}\n--- quench ---\n{}", quench.log()));
    assert_eq!(mailbox.len(), 1);
    let ndr = &mailbox[0];
    assert_eq!(
        ndr.header("Return-Path").as_deref(),
        Some("<>"),
        "sent with the null sender: never answered with another bounce"
    );
    assert!(
        ndr.header("To")
            .unwrap_or_default()
            .contains("alice@contoso.com"),
        "{}",
        ndr.raw
    );
    let raw = ndr.raw.replace('\n', "\r\n");
    let message = MessageParser::default()
        .parse(raw.as_bytes())
        .expect("mail-parser parses the NDR");
    let ct = message.content_type().expect("a Content-Type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    let parts = message.root_part().sub_parts().expect("multipart").to_vec();
    let human = String::from_utf8_lossy(message.part(parts[0]).unwrap().contents())
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        human.contains(EOP_TEXT),
        "the user-facing part carries EOP's wording:\n{human}"
    );
    let status = String::from_utf8_lossy(message.part(parts[1]).unwrap().contents()).into_owned();
    assert!(status.contains("Status: 5.1.8"), "{status}");

    // A second refusal within the hour: refused again, no second NDR.
    let again = send("x4@fabrikam.com");
    assert!(!again.accepted());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(postfix.mailbox().len(), 1, "one NDR per entity per hour");
    assert_eq!(quench.metric("quench_ndr_total{kind=\"sent\"}"), Some(1.0));
    assert_eq!(
        quench.metric("quench_ndr_total{kind=\"suppressed\"}"),
        Some(1.0)
    );

    // Mail to the restricted user from the internet is still delivered.
    let inbound = postfix
        .swaks(
            &Mail::new("partner@fabrikam.example", &["alice@contoso.com"])
                .xclient_addr("203.0.113.25")
                .header("Subject", "still reachable"),
        )
        .unwrap();
    assert!(inbound.accepted(), "{}", inbound.transcript);
    let mailbox = postfix
        .wait_for_mailbox(2, Duration::from_secs(30))
        .unwrap();
    assert_eq!(
        mailbox[1].header("Subject").as_deref(),
        Some("still reachable")
    );
}
