//! `quench serve` over a real socket: the Postfix policy protocol, connection reuse, malformed
//! input (answered by closing, never by half an answer), concurrency, metrics, graceful
//! shutdown, and durability across `kill -9`.

use crate::server::{PolicyClient, QuenchServer};

/// Two external recipients per hour, then BlockUser; connector relay-1 at 192.0.2.99.
const CONFIG: &str = r#"
[policy]
accepted_domains = ["contoso.com"]

[[policy.outbound]]
name = "Default"
recipient_limit_external_per_hour = 2
recipient_limit_internal_per_hour = 100
recipient_limit_per_day = 100
action_when_threshold_reached = "BlockUser"

[[policy.connectors]]
id = "relay-1"
client_addresses = ["192.0.2.99"]
recipient_limit_external_per_hour = 1
recipient_limit_internal_per_hour = 100
recipient_limit_per_day = 100
action_when_threshold_reached = "BlockUser"
"#;

const DENIED: &str = "action=550 5.1.8 Access denied, bad outbound sender";

#[test]
fn requests_on_one_connection_cross_the_limit_and_stay_refused() {
    let server = QuenchServer::start("reuse", CONFIG);
    let mut client = server.connect();
    assert_eq!(
        client
            .rcpt("a@contoso.com", "x1@fabrikam.com", "m1")
            .as_deref(),
        Some("action=DUNNO")
    );
    assert_eq!(
        client
            .rcpt("a@contoso.com", "x2@fabrikam.com", "m1")
            .as_deref(),
        Some("action=DUNNO")
    );
    assert_eq!(
        client
            .rcpt("a@contoso.com", "x3@fabrikam.com", "m1")
            .as_deref(),
        Some(DENIED)
    );
    // Restricted: even an internal recipient, from another spelling of the address.
    assert_eq!(
        client
            .rcpt("<A@Contoso.COM>", "c@contoso.com", "m2")
            .as_deref(),
        Some(DENIED)
    );
    // Other senders are unaffected.
    assert_eq!(
        client
            .rcpt("b@contoso.com", "x1@fabrikam.com", "m3")
            .as_deref(),
        Some("action=DUNNO")
    );
}

#[test]
fn sasl_user_is_counted_and_connectors_get_5_7_711() {
    let server = QuenchServer::start("entities", CONFIG);
    let mut client = server.connect();
    // Send As: two SASL sessions of one user with different From addresses share the count.
    for (sender, instance, expected) in [
        ("shared@contoso.com", "s1", "action=DUNNO"),
        ("other@contoso.com", "s2", "action=DUNNO"),
        ("shared@contoso.com", "s3", DENIED),
    ] {
        let answer = client.ask(&[
            ("protocol_state", "RCPT"),
            ("sasl_method", "PLAIN"),
            ("sasl_username", "Alice@Contoso.com"),
            ("sender", sender),
            ("recipient", "x@fabrikam.com"),
            ("instance", instance),
        ]);
        assert_eq!(answer.as_deref(), Some(expected), "{sender} {instance}");
    }
    let relay = |client: &mut PolicyClient, instance: &str| {
        client.ask(&[
            ("protocol_state", "RCPT"),
            ("client_address", "192.0.2.99"),
            ("sender", "newsletter@fabrikam.com"),
            ("recipient", "someone@example.net"),
            ("instance", instance),
        ])
    };
    assert_eq!(relay(&mut client, "r1").as_deref(), Some("action=DUNNO"));
    assert_eq!(
        relay(&mut client, "r2").as_deref(),
        Some("action=550 5.7.711 Access denied, bad inbound connector")
    );
}

#[test]
fn non_rcpt_stages_and_bounces_are_not_counted() {
    let server = QuenchServer::start("stages", CONFIG);
    let mut client = server.connect();
    for _ in 0..5 {
        let answer = client.ask(&[
            ("protocol_state", "MAIL"),
            ("sender", "a@contoso.com"),
            ("recipient", ""),
        ]);
        assert_eq!(answer.as_deref(), Some("action=DUNNO"));
        assert_eq!(
            client.rcpt("", "x@fabrikam.com", "bounce").as_deref(),
            Some("action=DUNNO")
        );
    }
    assert_eq!(
        client
            .rcpt("a@contoso.com", "x1@fabrikam.com", "m")
            .as_deref(),
        Some("action=DUNNO")
    );
}

#[test]
fn malformed_input_closes_the_connection_without_an_answer() {
    let server = QuenchServer::start("malformed", CONFIG);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "no equals sign",
            b"request=smtpd_access_policy\nthis line has no equals\n\n".to_vec(),
        ),
        ("oversize line", {
            let mut line = b"request=smtpd_access_policy\nsender=".to_vec();
            line.extend(std::iter::repeat_n(b'a', 100_000));
            line.extend(b"\n\n");
            line
        }),
        ("flood of attributes", {
            let mut flood = b"request=smtpd_access_policy\n".to_vec();
            for i in 0..10_000 {
                flood.extend(format!("x{i}=1\n").as_bytes());
            }
            flood.push(b'\n');
            flood
        }),
    ];
    for (what, bytes) in cases {
        let mut client = server.connect();
        let _ = client.send_raw(&bytes);
        assert_eq!(
            client.read_answer(),
            None,
            "{what}: closed without an answer"
        );
    }
    // Invalid UTF-8 is answered (decoded lossily), not dropped: a fail-open site must not
    // let one 8-bit byte bypass the limits.
    let mut client = server.connect();
    client
        .send_raw(b"request=smtpd_access_policy\nprotocol_state=RCPT\nsender=caf\xe9@contoso.com\nrecipient=x@fabrikam.com\n\n")
        .unwrap();
    assert_eq!(client.read_answer().as_deref(), Some("action=DUNNO"));
    // A client that disconnects mid-request costs nothing.
    let mut quitter = server.connect();
    quitter
        .send_raw(b"request=smtpd_access_policy\nsender=a@")
        .unwrap();
    drop(quitter);
    let mut client = server.connect();
    assert_eq!(
        client
            .rcpt("z@contoso.com", "x@fabrikam.com", "z")
            .as_deref(),
        Some("action=DUNNO")
    );
    let metrics = server.metrics_text();
    assert!(
        metrics.contains("quench_protocol_errors_total{kind=\"missing_equals\"} 1"),
        "{metrics}"
    );
}

#[test]
fn many_concurrent_connections_are_served_and_counted_exactly() {
    let server = QuenchServer::start("concurrent", CONFIG);
    let policy = server.policy;
    // 40 connections, each for its own sender, 5 recipients each: exactly 2 accepted apiece.
    let handles: Vec<_> = (0..40)
        .map(|i| {
            std::thread::spawn(move || {
                let mut client = PolicyClient::connect(policy);
                let sender = format!("user{i}@contoso.com");
                (0..5)
                    .map(|r| client.rcpt(&sender, &format!("x{r}@fabrikam.com"), &format!("m{i}")))
                    .filter(|answer| answer.as_deref() == Some("action=DUNNO"))
                    .count()
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), 2);
    }
    // One sender over many connections at once: the limit still holds exactly.
    let handles: Vec<_> = (0..10)
        .map(|i| {
            std::thread::spawn(move || {
                PolicyClient::connect(policy).rcpt(
                    "hot@contoso.com",
                    &format!("x{i}@fabrikam.com"),
                    &format!("h{i}"),
                )
            })
        })
        .collect();
    let accepted = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|answer| answer.as_deref() == Some("action=DUNNO"))
        .count();
    assert_eq!(accepted, 2);
    let metrics = server.metrics_text();
    assert!(
        metrics.contains("quench_decisions_total{kind=\"accept\"} 82"),
        "{metrics}"
    );
    assert!(
        metrics.contains("quench_restrictions_total{kind=\"started\"} 41"),
        "{metrics}"
    );
}

#[test]
fn restrictions_survive_kill_9_and_sigterm_shuts_down_cleanly() {
    let server = QuenchServer::start("durable", CONFIG);
    let mut client = server.connect();
    client.rcpt("d@contoso.com", "x1@fabrikam.com", "m1");
    client.rcpt("d@contoso.com", "x2@fabrikam.com", "m1");
    assert_eq!(
        client
            .rcpt("d@contoso.com", "x3@fabrikam.com", "m1")
            .as_deref(),
        Some(DENIED)
    );
    drop(client);

    let mut server = server.kill9_and_restart();
    let mut client = server.connect();
    assert_eq!(
        client
            .rcpt("d@contoso.com", "c@contoso.com", "m2")
            .as_deref(),
        Some(DENIED),
        "the restriction came back after kill -9"
    );
    drop(client);
    let status = server.terminate();
    assert!(
        status.success(),
        "graceful exit: {status:?}\n{}",
        server.log()
    );
    assert!(server.log().contains("stopped"), "{}", server.log());
}
