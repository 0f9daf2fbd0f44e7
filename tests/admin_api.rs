//! The admin API through the real HTTP server of `quench serve`: every role against every
//! endpoint (allowed and denied), 401 without a token, audit of every call, and the CLI
//! (`quench blocked-sender ...`, `quench audit list`) end to end.

use crate::server::{QuenchServer, admin_call as http};
use serde_json::Value;
use std::process::Command;

const ROLES: [&str; 7] = [
    "GlobalAdministrator",
    "OrganizationManagement",
    "SecurityAdministrator",
    "GlobalReader",
    "SecurityReader",
    "ViewOnlyOrganizationManagement",
    "Support",
];

fn token(role: &str) -> String {
    format!("token-for-{role}")
}

/// One external recipient per hour; every role has a token.
fn config() -> String {
    let mut config = String::from(
        r#"
[policy]
accepted_domains = ["contoso.com"]
unblock_limit = { count = 3, window_days = 30 }

[[policy.outbound]]
name = "Default"
recipient_limit_external_per_hour = 1
recipient_limit_internal_per_hour = 100
recipient_limit_per_day = 100
action_when_threshold_reached = "BlockUser"

[[policy.connectors]]
id = "relay-1"
client_addresses = ["192.0.2.99"]
recipient_limit_external_per_hour = 1
action_when_threshold_reached = "BlockUser"
"#,
    );
    for role in ROLES {
        config.push_str(&format!(
            "\n[[admin.tokens]]\nname = \"{role}-admin\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n",
            quench::admin::hash_token(&token(role))
        ));
    }
    config
}

/// Restrict `sender` by sending two external recipients.
fn restrict(server: &QuenchServer, sender: &str) {
    let mut client = server.connect();
    client.rcpt(sender, "x1@fabrikam.com", &format!("{sender}-1"));
    let answer = client.rcpt(sender, "x2@fabrikam.com", &format!("{sender}-2"));
    assert_eq!(
        answer.as_deref(),
        Some("action=550 5.1.8 Access denied, bad outbound sender")
    );
}

fn restrict_connector(server: &QuenchServer) {
    let mut client = server.connect();
    for instance in ["r1", "r2"] {
        client.ask(&[
            ("protocol_state", "RCPT"),
            ("client_address", "192.0.2.99"),
            ("sender", "newsletter@fabrikam.com"),
            ("recipient", "someone@example.net"),
            ("instance", instance),
        ]);
    }
}

#[test]
fn every_role_against_every_endpoint() {
    let server = QuenchServer::start("admin-roles", &config());
    let admin = server.admin.expect("the admin API is on");
    for role in ROLES {
        restrict(&server, &format!("{}@contoso.com", role.to_lowercase()));
    }
    restrict_connector(&server);

    let reads = [
        "/v1/blocked-senders",
        "/v1/blocked-senders/globalreader@contoso.com",
        "/v1/blocked-connectors",
        "/v1/blocked-connectors/relay-1",
        "/v1/audit",
    ];
    for path in reads {
        let (status, body) = http(admin, "GET", path, None, None);
        assert_eq!(status, 401, "{path} without a token: {body}");
        let (status, _) = http(admin, "GET", path, Some("not-a-token"), None);
        assert_eq!(status, 401, "{path} with a wrong token");
        for role in ROLES {
            let (status, body) = http(admin, "GET", path, Some(&token(role)), None);
            assert_eq!(status, 200, "{role} reads {path}: {body}");
        }
    }
    let (_, listing) = http(
        admin,
        "GET",
        "/v1/blocked-senders",
        Some(&token("GlobalReader")),
        None,
    );
    assert_eq!(
        listing["restrictions"].as_array().unwrap().len(),
        ROLES.len()
    );
    let (_, one) = http(
        admin,
        "GET",
        "/v1/blocked-senders/GlobalReader@Contoso.com",
        Some(&token("GlobalReader")),
        None,
    );
    assert_eq!(one["entity"], "globalreader@contoso.com");
    assert_eq!(one["limit"], "recipient_limit_external_per_hour");
    assert_eq!(
        (one["threshold"].as_u64(), one["observed"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(one["expires"], "until unblocked");
    assert!(
        one["reason"]
            .as_str()
            .unwrap()
            .contains("recipient_limit_external_per_hour")
    );

    let reason = r#"{"reason":"password reset, MFA enforced"}"#;
    for role in ROLES {
        let path = format!(
            "/v1/blocked-senders/{}@contoso.com/unblock",
            role.to_lowercase()
        );
        let (status, _) = http(admin, "POST", &path, None, Some(reason));
        assert_eq!(status, 401, "unblock without a token");
        let (status, body) = http(admin, "POST", &path, Some(&token(role)), Some(reason));
        let may = matches!(
            role,
            "GlobalAdministrator" | "OrganizationManagement" | "SecurityAdministrator" | "Support"
        );
        if may {
            assert_eq!(status, 200, "{role} unblocks: {body}");
            assert_eq!(body["unblocks_used"], 1);
            assert!(!body["recommendations"].as_array().unwrap().is_empty());
        } else {
            assert_eq!(status, 403, "{role} may not unblock: {body}");
        }
    }
    let (status, body) = http(
        admin,
        "POST",
        "/v1/blocked-connectors/relay-1/unblock",
        Some(&token("SecurityReader")),
        Some(reason),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = http(
        admin,
        "POST",
        "/v1/blocked-connectors/relay-1/unblock",
        Some(&token("SecurityAdministrator")),
        Some(reason),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        admin,
        "POST",
        "/v1/blocked-senders/globalreader@contoso.com/unblock",
        Some(&token("Support")),
        Some("{}"),
    );
    // No reason is fine, as with Remove-BlockedSenderAddress; the audit record says so.
    assert_eq!(status, 200, "{body}");

    // Unblocked users send again at once: no propagation delay.
    let mut client = server.connect();
    assert_eq!(
        client
            .rcpt(
                "securityadministrator@contoso.com",
                "c@contoso.com",
                "after"
            )
            .as_deref(),
        Some("action=DUNNO")
    );

    // Every call was audited, allowed or not.
    let (_, audit) = http(
        admin,
        "GET",
        "/v1/audit?limit=10000",
        Some(&token("Support")),
        None,
    );
    let records = audit["records"].as_array().unwrap();
    let count = |action: &str, outcome: &str| {
        records
            .iter()
            .filter(|r| r["action"] == action && r["outcome"] == outcome)
            .count()
    };
    assert_eq!(
        count("unblock", "ok"),
        6,
        "five users (one without a reason) and the connector"
    );
    assert!(records.iter().any(|r| {
        r["action"] == "unblock"
            && r["entity"] == "user:globalreader@contoso.com"
            && r["detail"]
                .as_str()
                .unwrap()
                .starts_with("no reason given;")
    }));
    assert_eq!(
        count("unblock", "forbidden"),
        4,
        "three reader roles and one connector try"
    );
    // Refused requests (17 without a valid token) are counted, and audited in bounded form:
    // sampled, one record per client per minute standing for all of them.
    assert_eq!(count("unblock", "unauthenticated"), 0);
    assert!(count("refused-requests", "sampled") >= 1);
    assert_eq!(
        server.metric("quench_admin_refused_requests_total{kind=\"unauthenticated\"}"),
        Some(17.0)
    );
    assert_eq!(count("restrict", "ok"), 8, "seven users and the connector");
    assert_eq!(count("list-blocked-senders", "ok"), 8);
    assert!(records.iter().any(|r| {
        r["action"] == "unblock"
            && r["actor"] == "Support-admin"
            && r["detail"]
                .as_str()
                .unwrap()
                .contains("password reset, MFA enforced")
    }));
}

fn quench(server: &QuenchServer, role: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(args)
        .env(
            "QUENCH_ADMIN_URL",
            format!("http://{}", server.admin.unwrap()),
        )
        .env("QUENCH_TOKEN", token(role))
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn cli_lists_gets_removes_and_audits() {
    let server = QuenchServer::start("admin-cli", &config());
    restrict(&server, "alice@contoso.com");

    let (ok, out, err) = quench(&server, "GlobalReader", &["blocked-sender", "list"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("alice@contoso.com") && out.contains("BlockUser"),
        "{out}"
    );

    let (ok, out, _) = quench(
        &server,
        "GlobalReader",
        &["blocked-sender", "get", "Alice@Contoso.com", "--json"],
    );
    assert!(ok);
    let view: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(view["unblocks_left"], 3);

    let (ok, _, err) = quench(
        &server,
        "GlobalReader",
        &[
            "blocked-sender",
            "remove",
            "alice@contoso.com",
            "--reason",
            "trying",
        ],
    );
    assert!(!ok, "a reader cannot unblock");
    assert!(
        err.contains("403") && err.contains("may not unblock"),
        "{err}"
    );

    let (ok, out, err) = quench(
        &server,
        "SecurityAdministrator",
        &[
            "blocked-sender",
            "remove",
            "alice@contoso.com",
            "--reason",
            "password reset",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("alice@contoso.com unblocked") && out.contains("2 left"),
        "{out}"
    );

    let (ok, _, err) = quench(
        &server,
        "GlobalReader",
        &["blocked-sender", "get", "alice@contoso.com"],
    );
    assert!(!ok && err.contains("not restricted"), "{err}");

    let (ok, out, err) = quench(
        &server,
        "SecurityReader",
        &[
            "audit",
            "list",
            "--entity",
            "user:alice@contoso.com",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let audit: Value = serde_json::from_str(&out).unwrap();
    let actions: Vec<(&str, &str)> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(actions.contains(&("restrict", "ok")), "{actions:?}");
    assert!(actions.contains(&("unblock", "forbidden")), "{actions:?}");
    assert!(actions.contains(&("unblock", "ok")), "{actions:?}");

    let (ok, _, err) = quench(&server, "Nobody", &["blocked-sender", "list"]);
    assert!(!ok && err.contains("401"), "{err}");
}

/// Alert policies (issue 13, item 4): every role reads them, OrganizationManagement and
/// SecurityAdministrator change them, every call is audited, a change is live and survives
/// a restart, the config file gives the initial values (tenant admins, no daily limit), and
/// the CLI mirrors the API.
#[test]
fn alert_policies_for_every_role_live_audited_and_kept_across_restart() {
    let server = QuenchServer::start("admin-alert-policies", &config());
    let admin = server.admin.expect("the admin API is on");
    // No recipients at all: the server said so at start, and so does each policy.
    assert!(
        server.log().contains("no alert has a recipient"),
        "{}",
        server.log()
    );
    for role in ROLES {
        let (status, body) = http(admin, "GET", "/v1/alert-policies", Some(&token(role)), None);
        assert_eq!(status, 200, "{role} reads the alert policies");
        let policies = body["policies"].as_array().unwrap();
        let restricted = policies
            .iter()
            .find(|p| p["id"] == "user_restricted")
            .expect("the built-in kinds are listed");
        assert_eq!(restricted["name"], "User restricted from sending email");
        assert_eq!(restricted["enabled"], true);
        assert_eq!(
            restricted["daily_limit"],
            Value::Null,
            "EOP's default: No limit"
        );
        assert!(
            restricted["warning"]
                .as_str()
                .unwrap()
                .contains("no recipients")
        );
        let (status, _) = http(
            admin,
            "GET",
            "/v1/alert-policies/User%20restricted%20from%20sending%20email",
            Some(&token(role)),
            None,
        );
        assert_eq!(status, 200, "by name too");
    }
    for (i, role) in ROLES.iter().enumerate() {
        let body = format!(r#"{{"daily_limit": {}}}"#, i + 1);
        let (status, answer) = http(
            admin,
            "PUT",
            "/v1/alert-policies/limit_exceeded",
            Some(&token(role)),
            Some(&body),
        );
        let allowed = matches!(
            *role,
            "GlobalAdministrator" | "OrganizationManagement" | "SecurityAdministrator"
        );
        assert_eq!(status, if allowed { 200 } else { 403 }, "{role}: {answer}");
        if allowed {
            assert_eq!(answer["daily_limit"], i + 1);
        } else {
            assert!(
                answer["error"]
                    .as_str()
                    .unwrap()
                    .contains("may not change alert policies")
            );
        }
    }
    let org = token("OrganizationManagement");
    let (status, answer) = http(
        admin,
        "PUT",
        "/v1/alert-policies/user_restricted",
        Some(&org),
        Some(r#"{"enabled": false, "recipients": ["soc@contoso.com"], "daily_limit": null}"#),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["enabled"], false);
    assert_eq!(answer["recipients"], serde_json::json!(["soc@contoso.com"]));
    assert_eq!(answer["recipients_are_tenant_admins"], false);
    assert_eq!(answer["daily_limit"], Value::Null);
    // Refused changes: a bad address, an unknown policy, an unknown field.
    let (status, answer) = http(
        admin,
        "PUT",
        "/v1/alert-policies/user_restricted",
        Some(&org),
        Some(r#"{"recipients": ["not an address"]}"#),
    );
    assert_eq!(status, 400, "{answer}");
    let (status, _) = http(
        admin,
        "PUT",
        "/v1/alert-policies/nope",
        Some(&org),
        Some("{}"),
    );
    assert_eq!(status, 404);
    let (status, _) = http(
        admin,
        "PUT",
        "/v1/alert-policies/user_restricted",
        Some(&org),
        Some(r#"{"colour": "red"}"#),
    );
    assert_eq!(status, 422);

    // Live: the next alert of the kind follows the change (disabled: logged only).
    restrict(&server, "alice@contoso.com");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server
        .log()
        .lines()
        .any(|l| l.contains("User restricted from sending email") && l.contains("kind disabled"))
    {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // Audited: every change, allowed or refused, with who and what.
    let (_, audit) = http(
        admin,
        "GET",
        "/v1/audit?action=change-alert-policy",
        Some(&org),
        None,
    );
    let records = audit["records"].as_array().unwrap();
    assert!(records.iter().any(|r| r["outcome"] == "ok"
        && r["actor"] == "OrganizationManagement-admin"
        && r["detail"].as_str().unwrap().contains(
            "user_restricted: enabled=false recipients=[soc@contoso.com] daily_limit=none"
        )));
    assert_eq!(
        records
            .iter()
            .filter(|r| r["outcome"] == "forbidden")
            .count(),
        4,
        "{records:#?}"
    );

    // Kept across a restart (the saved settings win over the config file).
    let server = server.kill9_and_restart();
    let admin = server.admin.unwrap();
    let (_, after) = http(
        admin,
        "GET",
        "/v1/alert-policies/user_restricted",
        Some(&token("GlobalReader")),
        None,
    );
    assert_eq!(after["enabled"], false);
    assert_eq!(after["recipients"], serde_json::json!(["soc@contoso.com"]));
    assert_eq!(after["changed_live"], true);

    // The CLI mirrors it.
    let (ok, out, err) = quench(
        &server,
        "SecurityAdministrator",
        &[
            "alert-policy",
            "set",
            "user_restricted",
            "--enable",
            "--daily-limit",
            "7",
            "--recipients",
            "a@contoso.com,b@contoso.com",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("On") && out.contains("a@contoso.com, b@contoso.com"),
        "{out}"
    );
    let (ok, out, err) = quench(
        &server,
        "GlobalReader",
        &["alert-policy", "get", "user_restricted", "--json"],
    );
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["daily_limit"], 7);
    assert_eq!(shown["enabled"], true);
    let (ok, _, err) = quench(
        &server,
        "GlobalReader",
        &["alert-policy", "set", "user_restricted", "--disable"],
    );
    assert!(!ok && err.contains("403"), "{err}");
    let (ok, out, _) = quench(&server, "GlobalReader", &["alert-policy", "list"]);
    assert!(ok && out.contains("Email sending limit exceeded"), "{out}");
}
