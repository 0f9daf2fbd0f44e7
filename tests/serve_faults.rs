//! A misbehaving policy behind a real `quench serve`: each fault (endless loop, trap, memory
//! bomb, oversize state) costs the one request it hit, answered with the configured fail
//! action; the socket keeps answering, other connections are served meanwhile, and the
//! metrics count every fault by kind.

use crate::server::{PolicyClient, QuenchServer};

fn config(fail_action: &str) -> String {
    format!(
        "[serve]\npolicy = \"{}\"\n\n[sandbox]\nfail_action = \"{fail_action}\"\ndeadline_ms = 200\nmemory_bytes = 16777216\n",
        env!("QUENCH_TEST_GUEST_MISBEHAVING")
    )
}

#[test]
fn faults_cost_one_request_each_and_the_server_keeps_answering() {
    let server = QuenchServer::start("faults-open", &config("open"));
    let policy = server.policy;

    // While one connection's request loops until its deadline, others are answered.
    let looping = std::thread::spawn(move || {
        PolicyClient::connect(policy).rcpt("a@contoso.com", "loop@fabrikam.com", "l1")
    });
    let others: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut client = PolicyClient::connect(policy);
                (0..20)
                    .map(|r| {
                        client.rcpt(
                            &format!("u{i}@contoso.com"),
                            &format!("ok{r}@fabrikam.com"),
                            "m",
                        )
                    })
                    .filter(|a| a.as_deref() == Some("action=DUNNO"))
                    .count()
            })
        })
        .collect();
    for other in others {
        assert_eq!(other.join().unwrap(), 20, "every healthy request answered");
    }
    assert_eq!(
        looping.join().unwrap().as_deref(),
        Some("action=DUNNO"),
        "fail-open"
    );

    let mut client = server.connect();
    for recipient in [
        "trap@fabrikam.com",
        "grow@fabrikam.com",
        "garbage@fabrikam.com",
        "noreply@fabrikam.com",
    ] {
        assert_eq!(
            client.rcpt("b@contoso.com", recipient, "f").as_deref(),
            Some("action=DUNNO"),
            "{recipient} is answered with the fail action on the same connection"
        );
        assert_eq!(
            client
                .rcpt("b@contoso.com", "fine@fabrikam.com", "g")
                .as_deref(),
            Some("action=DUNNO"),
            "and the next request after {recipient} is answered by the policy"
        );
    }
    let metrics = server.metrics_text();
    for line in [
        "quench_policy_faults_total{kind=\"deadline\"} 1",
        "quench_policy_faults_total{kind=\"trap\"} 2",
        "quench_policy_faults_total{kind=\"invalid_output\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[test]
fn fail_closed_answers_a_temporary_deferral() {
    let server = QuenchServer::start("faults-closed", &config("closed"));
    let mut client = server.connect();
    assert_eq!(
        client
            .rcpt("a@contoso.com", "trap@fabrikam.com", "t")
            .as_deref(),
        Some("action=451 4.7.1 Policy temporarily unavailable, try again later")
    );
    assert_eq!(
        client
            .rcpt("a@contoso.com", "fine@fabrikam.com", "u")
            .as_deref(),
        Some("action=DUNNO")
    );
}
