//! Issue 11, through a real `quench serve` and the compiled default policy: only what a sender
//! really submitted is counted, on the right entity. A forged MAIL FROM from outside the
//! trusted networks changes nothing for the real user; a relay on a trusted network is counted
//! in its own key space; SASL logins are one entity however they are spelled; request types
//! other than `smtpd_access_policy` are not decided.

use crate::server::{QuenchServer, admin_call};

const DUNNO: &str = "action=DUNNO";
const REFUSED: &str = "action=550 5.1.8 Access denied, bad outbound sender";
const TOKEN: &str = "trust-admin-token";

/// Three external recipients per hour, then BlockUser; bare SASL logins are in contoso.com;
/// the trusted networks are loopback (the default) and 10.0.0.0/8.
fn config() -> String {
    format!(
        r#"
[serve]
sasl_default_domain = "contoso.com"
trusted_networks = ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]

[policy]
accepted_domains = ["contoso.com"]

[[policy.outbound]]
name = "Default"
recipient_limit_external_per_hour = 3
recipient_limit_internal_per_hour = 100
recipient_limit_per_day = 100
action_when_threshold_reached = "BlockUser"

[[admin.tokens]]
name = "trust-admin"
role = "SecurityAdministrator"
token_sha256 = "{}"
"#,
        quench::admin::hash_token(TOKEN)
    )
}

#[test]
fn a_forged_sender_from_outside_changes_nothing_for_the_real_user() {
    let server = QuenchServer::start("trust-spoof", &config());
    let mut attacker = server.connect();
    // Six external recipients "from" the victim, unauthenticated, from the internet, over
    // IPv4 and IPv6, in and out of one message.
    for (i, client) in ["203.0.113.7", "2001:db8::66", "192.0.2.10"]
        .iter()
        .cycle()
        .take(6)
        .enumerate()
    {
        assert_eq!(
            attacker
                .rcpt_unauthenticated(
                    client,
                    "victim@contoso.com",
                    &format!("x{i}@fabrikam.com"),
                    &format!("spoof{}", i / 2)
                )
                .as_deref(),
            Some(DUNNO)
        );
    }
    assert_eq!(
        server.metric("quench_submissions_total{kind=\"untrusted\"}"),
        Some(6.0)
    );
    // The real user, logged in, still has the whole limit.
    let mut victim = server.connect();
    for i in 0..3 {
        assert_eq!(
            victim
                .rcpt("victim@contoso.com", &format!("v{i}@fabrikam.com"), "real")
                .as_deref(),
            Some(DUNNO),
            "recipient {i} of the real user"
        );
    }
    assert_eq!(
        victim
            .rcpt("victim@contoso.com", "v3@fabrikam.com", "real")
            .as_deref(),
        Some(REFUSED),
        "the real user's own fourth external recipient trips the limit"
    );
    assert_eq!(
        server.metric("quench_submissions_total{kind=\"user\"}"),
        Some(4.0)
    );
}

#[test]
fn a_relay_on_a_trusted_network_is_counted_apart_from_the_sasl_user() {
    let server = QuenchServer::start("trust-relay", &config());
    let mut relay = server.connect();
    // A web server on the LAN, unauthenticated, sending as app@contoso.com.
    for i in 0..3 {
        assert_eq!(
            relay
                .rcpt_unauthenticated(
                    "10.1.2.3",
                    "app@contoso.com",
                    &format!("r{i}@fabrikam.com"),
                    "web1"
                )
                .as_deref(),
            Some(DUNNO)
        );
    }
    assert_eq!(
        relay
            .rcpt_unauthenticated("10.1.2.3", "app@contoso.com", "r3@fabrikam.com", "web1")
            .as_deref(),
        Some(REFUSED),
        "the relay is counted and restricted"
    );
    assert_eq!(
        server.metric("quench_submissions_total{kind=\"relay\"}"),
        Some(4.0)
    );
    // The SASL user of the same address is another entity: not restricted, full limit.
    let mut user = server.connect();
    assert_eq!(
        user.rcpt("app@contoso.com", "u0@fabrikam.com", "sasl")
            .as_deref(),
        Some(DUNNO)
    );
    // The null sender from a trusted relay: nobody to count.
    assert_eq!(
        relay
            .rcpt_unauthenticated("127.0.0.1", "", "bounce@fabrikam.com", "nb")
            .as_deref(),
        Some(DUNNO)
    );

    // Admins see and unblock it as a relay, not as a sender.
    let admin = server.admin.unwrap();
    let (status, relays) = admin_call(admin, "GET", "/v1/blocked-relays", Some(TOKEN), None);
    assert_eq!(status, 200, "{relays}");
    let listed = relays["restrictions"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{relays}");
    assert_eq!(listed[0]["entity"], "app@contoso.com");
    assert_eq!(listed[0]["kind"], "relay");
    let (_, senders) = admin_call(admin, "GET", "/v1/blocked-senders", Some(TOKEN), None);
    assert_eq!(
        senders["restrictions"].as_array().unwrap().len(),
        0,
        "{senders}"
    );
    let (status, granted) = admin_call(
        admin,
        "POST",
        "/v1/blocked-relays/app@contoso.com/unblock",
        Some(TOKEN),
        Some(r#"{"reason":"web form fixed"}"#),
    );
    assert_eq!(status, 200, "{granted}");
    assert_eq!(
        relay
            .rcpt_unauthenticated("10.1.2.3", "app@contoso.com", "r4@fabrikam.com", "web2")
            .as_deref(),
        Some(DUNNO),
        "unblocked"
    );
}

#[test]
fn logins_are_one_entity_however_spelled_and_only_policy_requests_are_decided() {
    let server = QuenchServer::start("trust-login", &config());
    let mut client = server.connect();
    let rcpt = |client: &mut crate::server::PolicyClient, login: &str, n: usize| {
        client.ask(&[
            ("protocol_state", "RCPT"),
            ("client_address", "192.0.2.10"),
            ("sasl_method", "PLAIN"),
            ("sasl_username", login),
            ("sender", "alice@contoso.com"),
            ("recipient", &format!("a{n}@fabrikam.com")),
            ("instance", &format!("m{n}")),
        ])
    };
    // `alice` (sasl_default_domain), `ALICE@Contoso.com.` and `alice@contoso.com`: one user.
    for (n, login) in ["alice", "ALICE@Contoso.com.", "alice@contoso.com"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            rcpt(&mut client, login, n).as_deref(),
            Some(DUNNO),
            "{login}"
        );
    }
    assert_eq!(
        rcpt(&mut client, "alice", 3).as_deref(),
        Some(REFUSED),
        "the fourth external recipient of the one entity"
    );

    // Another request type is answered DUNNO and not decided.
    let before = server.metric("quench_decisions_total{kind=\"accept\"}");
    let mut other = server.connect();
    other
        .send_raw(
            b"request=junk_policy\nprotocol_state=RCPT\nsasl_username=bob@contoso.com\n\
              sender=bob@contoso.com\nrecipient=b@fabrikam.com\n\n",
        )
        .unwrap();
    assert_eq!(other.read_answer().as_deref(), Some(DUNNO));
    assert_eq!(
        server.metric("quench_decisions_total{kind=\"accept\"}"),
        before
    );
    assert_eq!(
        server.metric("quench_submissions_total{kind=\"skipped\"}"),
        Some(1.0)
    );
}

#[test]
fn an_operator_list_without_loopback_trusts_no_local_client() {
    let config = config().replace(
        "trusted_networks = [\"127.0.0.0/8\", \"::1/128\", \"10.0.0.0/8\"]",
        "trusted_networks = [\"10.0.0.0/8\"]",
    );
    let server = QuenchServer::start("trust-list", &config);
    let mut client = server.connect();
    for i in 0..5 {
        assert_eq!(
            client
                .rcpt_unauthenticated(
                    "127.0.0.1",
                    "local@contoso.com",
                    &format!("l{i}@fabrikam.com"),
                    "l"
                )
                .as_deref(),
            Some(DUNNO)
        );
    }
    assert_eq!(
        server.metric("quench_submissions_total{kind=\"untrusted\"}"),
        Some(5.0)
    );
}
