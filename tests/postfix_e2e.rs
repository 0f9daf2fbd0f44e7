//! quench serve behind a real Postfix (a private instance on loopback, mail discarded), driven
//! with swaks: under the limit is accepted; the message that crosses the limit and every later
//! one get `550 5.1.8` at the SMTP client; a restricted connector gets 5.7.711; an admin's
//! `quench blocked-sender remove` lets the user's next message through at once.

use crate::postfix::{Mail, PostfixOptions, PrivatePostfix};
use crate::server::QuenchServer;
use std::process::Command;

const ADMIN_TOKEN: &str = "e2e-security-admin-token";

fn config() -> String {
    format!(
        r#"
[serve]
# Bare SASL logins (`alice`) are alice@contoso.com.
sasl_default_domain = "contoso.com"

[policy]
accepted_domains = ["contoso.com"]

[[policy.outbound]]
name = "Default"
recipient_limit_external_per_hour = 3
recipient_limit_internal_per_hour = 100
recipient_limit_per_day = 100
action_when_threshold_reached = "BlockUser"

[[policy.connectors]]
id = "partner-relay"
client_addresses = ["127.0.0.2"]
recipient_limit_external_per_hour = 2
action_when_threshold_reached = "BlockUser"

[[admin.tokens]]
name = "e2e-admin"
role = "SecurityAdministrator"
token_sha256 = "{}"
"#,
        quench::admin::hash_token(ADMIN_TOKEN)
    )
}

fn start() -> (QuenchServer, PrivatePostfix) {
    let quench = QuenchServer::start("postfix-e2e", &config());
    let options = PostfixOptions {
        xclient: true,
        ..PostfixOptions::with_policy(quench.policy)
    };
    let postfix = PrivatePostfix::start(options).expect("a private Postfix starts");
    (quench, postfix)
}

/// The reply the client saw to RCPT TO `recipient`.
fn rcpt_line(postfix: &PrivatePostfix, mail: &Mail, recipient: &str) -> String {
    let outcome = postfix.swaks(mail).expect("swaks runs");
    outcome
        .rcpt_reply(recipient)
        .unwrap_or_else(|| panic!("no RCPT reply for {recipient}:\n{}", outcome.transcript))
        .line()
        .to_string()
}

#[test]
fn users_cross_their_limit_get_5_1_8_and_an_unblock_lets_them_send_again() {
    let (quench, postfix) = start();

    // Under the limit: accepted, the whole message goes through.
    let outcome = postfix
        .swaks(
            &Mail::new("alice@contoso.com", &["x1@fabrikam.com", "x2@fabrikam.com"])
                .xclient_login("alice@contoso.com"),
        )
        .unwrap();
    assert!(outcome.accepted(), "{}", outcome.transcript);
    let end = outcome.end_of_data.as_ref().expect("the message was sent");
    assert_eq!(end.code, 250, "{}", outcome.transcript);

    // The message that crosses the limit: the crossing recipient is refused with 5.1.8.
    let outcome = postfix
        .swaks(
            &Mail::new("alice@contoso.com", &["x3@fabrikam.com", "x4@fabrikam.com"])
                .xclient_login("alice@contoso.com"),
        )
        .unwrap();
    assert_eq!(outcome.rcpt_reply("x3@fabrikam.com").unwrap().code, 250);
    let refused = outcome.rcpt_reply("x4@fabrikam.com").unwrap();
    assert_eq!(
        (refused.code, refused.enhanced.as_deref()),
        (550, Some("5.1.8")),
        "{}",
        outcome.transcript
    );
    assert!(
        refused.text.contains("Access denied, bad outbound sender"),
        "{}",
        refused.line()
    );

    // Every later message, to any recipient, internal too.
    for recipient in ["x5@fabrikam.com", "colleague@contoso.com"] {
        let line = rcpt_line(
            &postfix,
            &Mail::new("Alice@Contoso.com", &[recipient]).xclient_login("Alice@Contoso.com"),
            recipient,
        );
        assert!(line.starts_with("550 5.1.8 "), "{line}");
    }
    // Another user is unaffected.
    let line = rcpt_line(
        &postfix,
        &Mail::new("bob@contoso.com", &["x1@fabrikam.com"]).xclient_login("bob@contoso.com"),
        "x1@fabrikam.com",
    );
    assert!(line.starts_with("250"), "{line}");

    // The admin unblocks with the CLI; the very next message is accepted.
    let removed = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args([
            "blocked-sender",
            "remove",
            "alice@contoso.com",
            "--reason",
            "password reset, MFA on",
        ])
        .env(
            "QUENCH_ADMIN_URL",
            format!("http://{}", quench.admin.unwrap()),
        )
        .env("QUENCH_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let outcome = postfix
        .swaks(&Mail::new("alice@contoso.com", &["x6@fabrikam.com"]).xclient_login("alice"))
        .unwrap();
    assert!(outcome.accepted(), "{}", outcome.transcript);
    assert_eq!(outcome.end_of_data.as_ref().unwrap().code, 250);
}

#[test]
fn sasl_users_are_counted_across_from_addresses_and_connectors_get_5_7_711() {
    let (_quench, postfix) = start();

    // Send As: the SASL login is counted, whatever From address it uses.
    for (i, from) in [
        "carol@contoso.com",
        "shared@contoso.com",
        "carol@contoso.com",
    ]
    .into_iter()
    .enumerate()
    {
        let recipient = format!("s{i}@fabrikam.com");
        let line = rcpt_line(
            &postfix,
            &Mail::new(from, &[recipient.as_str()]).xclient_login("carol"),
            &recipient,
        );
        assert!(line.starts_with("250"), "{from}: {line}");
    }
    let line = rcpt_line(
        &postfix,
        &Mail::new("shared@contoso.com", &["s4@fabrikam.com"]).xclient_login("carol"),
        "s4@fabrikam.com",
    );
    assert!(line.starts_with("550 5.1.8 "), "{line}");
    // The shared mailbox itself, sending as itself, is not restricted.
    let line = rcpt_line(
        &postfix,
        &Mail::new("shared@contoso.com", &["s5@fabrikam.com"]),
        "s5@fabrikam.com",
    );
    assert!(line.starts_with("250"), "{line}");

    // A connector (identified by client address 127.0.0.2) over its limit: 5.7.711.
    let relay = |to: &str| Mail::new("news@partner.example", &[to]).local_interface("127.0.0.2");
    for to in ["r1@example.net", "r2@example.net"] {
        let line = rcpt_line(&postfix, &relay(to), to);
        assert!(line.starts_with("250"), "{line}");
    }
    for to in ["r3@example.net", "r4@example.net"] {
        let line = rcpt_line(&postfix, &relay(to), to);
        assert!(
            line.starts_with("550 5.7.711 ")
                && line.contains("Access denied, bad inbound connector"),
            "{line}"
        );
    }
}

/// Issue 11 behind a real Postfix: a forged MAIL FROM from an internet client (XCLIENT
/// ADDR, no login: what port 25 sees) changes nothing for the real user; the real user's
/// authenticated submission (XCLIENT LOGIN: what the submission port sees) is counted; an
/// unauthenticated application on the trusted loopback is counted as a relay, apart from the
/// SASL user of the same address.
#[test]
fn a_spoofed_sender_changes_nothing_the_sasl_user_is_counted_and_a_trusted_relay_too() {
    let (quench, postfix) = start();

    // The attacker: six recipients "from" the victim, from the internet, unauthenticated.
    let spoof = Mail::new(
        "victim@contoso.com",
        &[
            "v1@contoso.com",
            "v2@contoso.com",
            "v3@contoso.com",
            "e1@fabrikam.com",
            "e2@fabrikam.com",
            "e3@fabrikam.com",
        ],
    )
    .xclient_addr("203.0.113.7");
    let outcome = postfix.swaks(&spoof).unwrap();
    for recipient in &spoof.to {
        let reply = outcome
            .rcpt_reply(recipient)
            .unwrap_or_else(|| panic!("no reply for {recipient}:\n{}", outcome.transcript));
        assert_ne!(
            reply.enhanced.as_deref(),
            Some("5.1.8"),
            "quench does not restrict on a forged sender:\n{}",
            outcome.transcript
        );
    }
    assert_eq!(
        quench.metric("quench_submissions_total{kind=\"untrusted\"}"),
        Some(6.0),
        "quench saw the six requests and counted none"
    );

    // The real user, logged in: the whole limit (3 external) is still theirs.
    let real = |to: &str| Mail::new("victim@contoso.com", &[to]).xclient_login("victim");
    for to in ["r1@fabrikam.com", "r2@fabrikam.com", "r3@fabrikam.com"] {
        let line = rcpt_line(&postfix, &real(to), to);
        assert!(line.starts_with("250"), "{to}: {line}");
    }
    let line = rcpt_line(&postfix, &real("r4@fabrikam.com"), "r4@fabrikam.com");
    assert!(line.starts_with("550 5.1.8 "), "{line}");

    // An application on the mail host, unauthenticated over loopback: a relay, counted.
    let app = |to: &str| Mail::new("app@contoso.com", &[to]);
    for to in ["a1@fabrikam.com", "a2@fabrikam.com", "a3@fabrikam.com"] {
        let line = rcpt_line(&postfix, &app(to), to);
        assert!(line.starts_with("250"), "{to}: {line}");
    }
    let line = rcpt_line(&postfix, &app("a4@fabrikam.com"), "a4@fabrikam.com");
    assert!(
        line.starts_with("550 5.1.8 "),
        "the relay is restricted: {line}"
    );
    // The SASL user app@contoso.com is another entity.
    let line = rcpt_line(
        &postfix,
        &Mail::new("app@contoso.com", &["u1@fabrikam.com"]).xclient_login("app"),
        "u1@fabrikam.com",
    );
    assert!(line.starts_with("250"), "{line}");
    let listed = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["blocked-relay", "list", "--json"])
        .env(
            "QUENCH_ADMIN_URL",
            format!("http://{}", quench.admin.unwrap()),
        )
        .env("QUENCH_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let entities: Vec<&str> = listed["restrictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["entity"].as_str().unwrap())
        .collect();
    assert_eq!(entities, ["app@contoso.com"]);
}
