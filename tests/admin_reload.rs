//! Reloading everything that can change on a running `quench serve` (issue 12): a removed
//! token is refused right after SIGHUP, a changed role takes effect, `[alerts]` and the
//! timeouts change live, and a change that needs a restart is refused by name while the
//! running config stays in force. Real HTTP, a real SIGHUP.

use crate::server::{QuenchServer, admin_call as http};
use std::time::{Duration, Instant};

const OWNER: &str = "admin-reload-owner";
const TEMP: &str = "admin-reload-temporary";

fn config(temp_role: Option<&str>, extra: &str) -> String {
    let mut config = format!(
        r#"
{extra}
[policy]
accepted_domains = ["contoso.com"]
[[policy.outbound]]
name = "Default"
recipient_limit_external_per_hour = 1
recipient_limit_internal_per_hour = 100
recipient_limit_per_day = 1000
action_when_threshold_reached = "BlockUser"

[[admin.tokens]]
name = "owner"
role = "OrganizationManagement"
token_sha256 = "{}"
"#,
        quench::admin::hash_token(OWNER)
    );
    if let Some(role) = temp_role {
        config.push_str(&format!(
            "\n[[admin.tokens]]\nname = \"temporary\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n",
            quench::admin::hash_token(TEMP)
        ));
    }
    config
}

/// Poll `check` for up to ten seconds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn admin_reload_on_sighup_removes_tokens_and_changes_roles() {
    let server = QuenchServer::start("admin-reload-tokens", &config(Some("GlobalReader"), ""));
    let admin = server.admin.unwrap();
    let reload = "/v1/policy/reload";
    assert_eq!(
        http(admin, "GET", "/v1/blocked-senders", Some(TEMP), None).0,
        200
    );
    assert_eq!(http(admin, "POST", reload, Some(TEMP), None).0, 403);

    // A changed role takes effect.
    server.rewrite_config(&config(Some("OrganizationManagement"), ""));
    server.sighup();
    eventually("the new role applies", || {
        http(admin, "POST", reload, Some(TEMP), None).0 == 200
    });

    // A removed token is refused from the reload on.
    server.rewrite_config(&config(None, ""));
    server.sighup();
    eventually("the removed token is refused", || {
        http(admin, "GET", "/v1/blocked-senders", Some(TEMP), None).0 == 401
    });
    assert_eq!(
        http(admin, "GET", "/v1/blocked-senders", Some(OWNER), None).0,
        200
    );
    assert!(
        server.log().contains("settings reloaded"),
        "{}",
        server.log()
    );
}

#[test]
fn admin_reload_through_the_api_reports_settings_and_refuses_restart_keys() {
    let server = QuenchServer::start("admin-reload-api", &config(Some("GlobalReader"), ""));
    let admin = server.admin.unwrap();
    let reload = "/v1/policy/reload";

    // Live keys: applied, and named in the answer.
    let live = "[serve]\nidle_timeout_secs = 60\nwrite_timeout_secs = 5\n[admin]\nheader_timeout_secs = 3\n";
    server.rewrite_config(&config(None, live));
    let (status, body) = http(admin, "POST", reload, Some(OWNER), None);
    assert_eq!(status, 200, "{body}");
    let settings: Vec<&str> = body["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for key in [
        "admin.tokens",
        "serve.idle_timeout_secs",
        "serve.write_timeout_secs",
        "admin.header_timeout_secs",
    ] {
        assert!(settings.contains(&key), "{key} in {settings:?}");
    }
    assert_eq!(
        http(admin, "GET", "/v1/blocked-senders", Some(TEMP), None).0,
        401
    );

    // The new idle timeout holds for policy connections at once.
    server.rewrite_config(&config(None, "[serve]\nidle_timeout_secs = 1\n"));
    assert_eq!(http(admin, "POST", reload, Some(OWNER), None).0, 200);
    let mut client = server.connect();
    assert!(
        client
            .rcpt("idle@contoso.com", "a@contoso.com", "idle")
            .is_some()
    );
    let started = Instant::now();
    assert_eq!(client.read_answer(), None, "closed after the idle timeout");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Keys that need a restart: refused by name; nothing of that file applies.
    for (extra, key) in [
        ("[serve]\nmax_connections = 10\n", "serve.max_connections"),
        (
            "[serve]\nsweep_interval_secs = 5\n",
            "serve.sweep_interval_secs",
        ),
        ("[admin]\nmax_connections = 5\n", "admin.max_connections"),
        ("[store]\nbackend = \"redis\"\n", "store.backend"),
    ] {
        server.rewrite_config(&config(Some("OrganizationManagement"), extra));
        let (status, body) = http(admin, "POST", reload, Some(OWNER), None);
        assert_eq!(status, 409, "{extra}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(key) && error.contains("needs a restart"),
            "{key}: {error}"
        );
        assert!(
            error.contains("the running config stays in force"),
            "{error}"
        );
        assert_eq!(
            http(admin, "GET", "/v1/blocked-senders", Some(TEMP), None).0,
            401,
            "the refused file's token was not applied"
        );
    }
    // The same key at its running value is no change.
    server.rewrite_config(&config(None, "[serve]\nmax_connections = 1024\n"));
    let (status, body) = http(admin, "POST", reload, Some(OWNER), None);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn admin_reload_applies_alerts() {
    let server = QuenchServer::start("admin-reload-alerts", &config(None, ""));
    let admin = server.admin.unwrap();
    let restrict = |sender: &str| {
        let mut client = server.connect();
        client.rcpt(sender, "x1@fabrikam.com", &format!("{sender}-1"));
        client.rcpt(sender, "x2@fabrikam.com", &format!("{sender}-2"));
    };
    let disabled = || {
        server
            .metric("quench_alerts{kind=\"disabled\"}")
            .unwrap_or(0.0)
    };
    let submitted = || {
        server
            .metric("quench_alerts{kind=\"submitted\"}")
            .unwrap_or(0.0)
    };
    restrict("first@contoso.com");
    eventually("the first alerts are handled", || submitted() > 0.0);
    assert_eq!(disabled(), 0.0);
    let before = submitted();

    let off = "[alerts.rules.user_restricted]\nenabled = false\n\
               [alerts.rules.limit_exceeded]\nenabled = false\n";
    server.rewrite_config(&config(None, off));
    let (status, body) = http(admin, "POST", "/v1/policy/reload", Some(OWNER), None);
    assert_eq!(status, 200, "{body}");
    assert!(
        body["settings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "alerts.rules"),
        "{body}"
    );
    restrict("second@contoso.com");
    eventually("alerts of the disabled kinds are not notified", || {
        disabled() > 0.0
    });
    // The counts carry over the swap of dispatchers.
    assert!(submitted() > before);
}
