//! Live policy swap on a running `quench serve`: reloads under load answer every request, a
//! bad policy is refused with the reason while the old one keeps serving, a policy with another
//! state format is refused unless the operator resets state, and only OrganizationManagement
//! may reload. Every attempt is audited.

use crate::server;

use crate::server::{PolicyClient, QuenchServer};
use serde_json::Value;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const OWNER: &str = "reload-owner-token";
const READER: &str = "reload-reader-token";

fn config(external_per_hour: u32, extra: &str) -> String {
    format!(
        r#"
{extra}
[policy]
accepted_domains = ["contoso.com"]
[[policy.outbound]]
name = "Default"
recipient_limit_external_per_hour = {external_per_hour}
recipient_limit_internal_per_hour = 100
recipient_limit_per_day = 1000
action_when_threshold_reached = "BlockUser"

[[admin.tokens]]
name = "owner"
role = "OrganizationManagement"
token_sha256 = "{}"

[[admin.tokens]]
name = "reader"
role = "GlobalReader"
token_sha256 = "{}"
"#,
        quench::admin::hash_token(OWNER),
        quench::admin::hash_token(READER)
    )
}

fn post(addr: SocketAddr, path: &str, token: &str, body: &str) -> (u16, Value) {
    server::admin_call(addr, "POST", path, Some(token), Some(body))
}

/// Wait until 50 more requests were answered; fail (rather than hang) if traffic stops.
fn wait_for_traffic(answered: &AtomicUsize) {
    let before = answered.load(Ordering::Relaxed);
    for _ in 0..60_000 {
        if answered.load(Ordering::Relaxed) >= before + 50 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("traffic stopped: no 50 answers within a minute");
}

#[test]
fn reloads_under_load_answer_every_request() {
    let server = QuenchServer::start("reload-load", &config(1000, ""));
    let admin = server.admin.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, answered, policy) = (stop.clone(), answered.clone(), server.policy);
            std::thread::spawn(move || {
                let mut client = PolicyClient::connect(policy);
                let mut failures = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let sender = format!("load{w}-{}@contoso.com", i % 50);
                    match client.rcpt(&sender, &format!("r{i}@contoso.com"), &format!("{w}-{i}")) {
                        Some(answer) if answer.starts_with("action=") => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failures.push(format!("request {i}: {other:?}")),
                    }
                }
                failures
            })
        })
        .collect();

    let mut reloads = 0;
    for round in 0..6 {
        // Wait for some traffic between reloads.
        wait_for_traffic(&answered);
        server.rewrite_config(&config(1000 + round, ""));
        if round % 3 == 2 {
            server.sighup();
        } else {
            let (status, body) = post(admin, "/v1/policy/reload", OWNER, "{}");
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["reset_state"], false);
        }
        reloads += 1;
    }
    wait_for_traffic(&answered);
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let failures = worker.join().unwrap();
        assert!(
            failures.is_empty(),
            "requests failed during reloads: {failures:?}"
        );
    }
    let metrics = server.metrics_text();
    assert!(
        !metrics.contains("quench_policy_faults_total{"),
        "no policy faults: {metrics}"
    );
    // A SIGHUP reload is asynchronous: wait (bounded) for the last one to be logged.
    let mut log = server.log();
    for _ in 0..200 {
        if log.matches("policy reloaded").count() >= reloads {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        log = server.log();
    }
    assert_eq!(log.matches("policy reloaded").count(), reloads, "{log}");
}

#[test]
fn a_bad_policy_is_refused_and_the_old_one_keeps_serving() {
    let server = QuenchServer::start("reload-bad", &config(1, ""));
    let admin = server.admin.unwrap();
    let mut client = server.connect();
    assert_eq!(
        client
            .rcpt("a@contoso.com", "x1@fabrikam.com", "1")
            .as_deref(),
        Some("action=DUNNO")
    );

    let (status, body) = post(admin, "/v1/policy/reload", READER, "{}");
    assert_eq!(status, 403, "{body}");

    server.rewrite_config(&config(1, "").replace(
        "recipient_limit_per_day = 1000",
        "recipient_limit_per_day = 1000\nrecipient_limit_per_fortnight = 3",
    ));
    let (status, body) = post(admin, "/v1/policy/reload", OWNER, "{}");
    assert_eq!(status, 409, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("recipient_limit_per_fortnight"), "{error}");
    assert!(error.contains("running one keeps serving"), "{error}");
    // The same through the CLI: non-zero exit, the reason on stderr.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["policy", "reload"])
        .env("QUENCH_ADMIN_URL", format!("http://{admin}"))
        .env("QUENCH_TOKEN", OWNER)
        .output()
        .unwrap();
    assert!(!cli.status.success());
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(
        stderr.contains("409") && stderr.contains("recipient_limit_per_fortnight"),
        "{stderr}"
    );

    server.rewrite_config(&config(1, "[serve]\npolicy = \"/nonexistent/policy.wasm\""));
    let (status, body) = post(admin, "/v1/policy/reload", OWNER, "{}");
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/policy.wasm"),
        "{body}"
    );

    // The old policy (one external recipient per hour) still decides.
    assert_eq!(
        client
            .rcpt("a@contoso.com", "x2@fabrikam.com", "2")
            .as_deref(),
        Some("action=550 5.1.8 Access denied, bad outbound sender")
    );
}

#[test]
fn another_state_format_needs_an_explicit_reset() {
    let server = QuenchServer::start("reload-format", &config(1, ""));
    let admin = server.admin.unwrap();
    let mut client = server.connect();
    client.rcpt("a@contoso.com", "x1@fabrikam.com", "1");
    assert_eq!(
        client
            .rcpt("a@contoso.com", "x2@fabrikam.com", "2")
            .as_deref(),
        Some("action=550 5.1.8 Access denied, bad outbound sender")
    );

    // The fixture takes no settings: the same tokens, no [policy] table.
    let tokens = &config(1, "")[config(1, "").find("[[admin.tokens]]").unwrap()..];
    server.rewrite_config(&format!(
        "[serve]\npolicy = \"{}\"\n{tokens}",
        env!("QUENCH_TEST_GUEST_MISBEHAVING")
    ));
    let (status, body) = post(admin, "/v1/policy/reload", OWNER, "{}");
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("state format"),
        "{body}"
    );
    assert_eq!(
        client
            .rcpt("a@contoso.com", "x3@fabrikam.com", "3")
            .as_deref(),
        Some("action=550 5.1.8 Access denied, bad outbound sender"),
        "still the old policy, state intact"
    );

    let (status, body) = post(
        admin,
        "/v1/policy/reload",
        OWNER,
        r#"{"reset_state": true}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reset_state"], true);
    assert_eq!(body["state_format"], "quench-misbehaving/1");
    assert_eq!(body["contract"], "0.2.0");
    // The fixture accepts everything; the old restriction is gone with the old state.
    assert_eq!(
        client
            .rcpt("a@contoso.com", "x4@fabrikam.com", "4")
            .as_deref(),
        Some("action=DUNNO")
    );

    let audit = server::http_get_with_token(admin, "/v1/audit?action=reload", OWNER);
    let records: Value = serde_json::from_str(&audit).unwrap();
    let outcomes: Vec<&str> = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["refused", "ok"]);
}
