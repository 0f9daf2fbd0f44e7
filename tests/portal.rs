//! The admin portal in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! fantoccini) through a real `quench serve`, restricted by real policy traffic. Covers
//! sign-in (bad token, good token), the list after traffic, the flyout, the full unblock flow
//! after which the next policy request is accepted, the unblock-limit message and Support's
//! override, a reader who cannot unblock (and the server's refusal), an alert-policy change
//! that takes effect, CSRF refusal, and sign-out. The list, flyout and unblock steps are
//! screenshotted (`QUENCH_UPDATE_SCREENSHOTS=1` writes them to docs/screenshots/).

use crate::browser::{Driver, click, has, screenshot, text_of};
use crate::server::{QuenchServer, admin_call};
use fantoccini::{Client, Locator};
use quench::service::Service;
use quench::{Entity, Role, Submission};
use std::time::{Duration, Instant};

const RESTRICTED: &str = "action=550 5.1.8 Access denied, bad outbound sender";

/// The policy: one external recipient an hour, BlockUser, one unblock per 30 days.
const POLICY: &str = r#"
accepted_domains = ["contoso.com"]
unblock_limit = { count = 1, window_days = 30 }

[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 1
recipient_limit_internal_per_hour = 100
recipient_limit_per_day = 100
action_when_threshold_reached = "BlockUser"

[[connectors]]
id = "partner-relay"
client_addresses = ["192.0.2.99"]
recipient_limit_external_per_hour = 1
action_when_threshold_reached = "BlockUser"
"#;

const ROLES: [(&str, &str); 4] = [
    ("org", "OrganizationManagement"),
    ("reader", "GlobalReader"),
    ("support", "Support"),
    ("secadmin", "SecurityAdministrator"),
];

fn token(who: &str) -> String {
    format!("portal-token-{who}")
}

fn config() -> String {
    let mut config = String::new();
    for line in POLICY.lines() {
        match line {
            "[[outbound]]" => config.push_str("[[policy.outbound]]\n"),
            "[[connectors]]" => config.push_str("[[policy.connectors]]\n"),
            _ if line.starts_with("accepted_domains") => {
                config.push_str("[policy]\n");
                config.push_str(line);
                config.push('\n');
            }
            _ => {
                config.push_str(line);
                config.push('\n');
            }
        }
    }
    config.push_str("\n[alerts]\ntenant_admins = [\"admins@contoso.com\"]\n[alerts.email]\nfrom = \"quench@contoso.com\"\nport = 9\nretries = 0\n");
    // Refused requests (a bad sign-in) are audited in bounded form: one record per client
    // per interval, here a second so the test need not wait a minute.
    config.push_str("\n[admin]\nanonymous_audit_interval_secs = 1\n");
    for (who, role) in ROLES {
        config.push_str(&format!(
            "\n[[admin.tokens]]\nname = \"{who}\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n",
            quench::admin::hash_token(&token(who))
        ));
    }
    config
}

/// Restrict `sender` with real policy traffic: the second external recipient trips the limit.
fn restrict(server: &QuenchServer, sender: &str) {
    let mut client = server.connect();
    client.rcpt(sender, "x1@fabrikam.com", &format!("{sender}-1"));
    let answer = client.rcpt(sender, "x2@fabrikam.com", &format!("{sender}-2"));
    assert_eq!(answer.as_deref(), Some(RESTRICTED));
}

fn base(server: &QuenchServer) -> String {
    format!("http://{}", server.admin.expect("the admin listener is on"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn sign_in(client: &Client, base: &str, token: &str) {
    client
        .goto(&format!("{base}/portal/sign-in"))
        .await
        .unwrap();
    client
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    click(client, "sign-in").await;
    // Wait for the answer (the click returns before it has loaded): another page when the
    // token was good, the sign-in page with an error when it was not.
    let start = std::time::Instant::now();
    while path(client).await == "/portal/sign-in" && !has(client, "error").await {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "no answer to the sign-in"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn sign_out(client: &Client) {
    click(client, "sign-out").await;
    // text_of waits for the sign-in page to load.
    assert_eq!(text_of(client, "notice").await, "You are signed out.");
}

async fn path(client: &Client) -> String {
    client.current_url().await.unwrap().path().to_string()
}

/// Wait (up to 15 s) until the browser is on `expected`: a click that submits a form returns
/// before the next page has loaded.
async fn wait_for_path(client: &Client, expected: &str) {
    let start = std::time::Instant::now();
    loop {
        let now = path(client).await;
        if now == expected {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "still on {now}, expected {expected}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Open `entity`'s flyout on the Users tab.
async fn open_flyout(client: &Client, base: &str, entity: &str) {
    client
        .goto(&format!("{base}/portal/restricted?kind=user"))
        .await
        .unwrap();
    client
        .find(Locator::LinkText(entity))
        .await
        .unwrap_or_else(|e| panic!("{entity} is listed: {e}"))
        .click()
        .await
        .unwrap();
    // Waits for the details flyout to open (the click returns before the page has loaded).
    text_of(client, "flyout").await;
}

/// Submit a form built by script (as another page or a tampered one would), with `fields`.
async fn post_form(client: &Client, action: &str, fields: &[(&str, &str)]) {
    let fields: Vec<serde_json::Value> = fields
        .iter()
        .map(|(k, v)| serde_json::json!([k, v]))
        .collect();
    client
        .execute(
            "window.__leaving = true; const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
             for (const [k, v] of arguments[1]) { const i = document.createElement('input');
               i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }
             document.body.appendChild(f); f.submit();",
            vec![serde_json::json!(action), serde_json::json!(fields)],
        )
        .await
        .unwrap();
    // Wait until the next page has replaced this one and finished loading.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = client
            .execute(
                "return window.__leaving === true ? 'old' : document.readyState",
                vec![],
            )
            .await
            .unwrap_or_default();
        if state == "complete" {
            break;
        }
        assert!(Instant::now() < deadline, "the form's answer loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn sign_in_list_flyout_full_unblock_flow_and_sign_out() {
    let server = QuenchServer::start("portal-flow", &config());
    restrict(&server, "alice@contoso.com");
    restrict(&server, "bob@contoso.com");
    // And a connector, restricted by the relay's own traffic.
    let mut relay = server.connect();
    for instance in ["r1", "r2"] {
        relay.ask(&[
            ("protocol_state", "RCPT"),
            ("client_address", "192.0.2.99"),
            ("sender", "newsletter@fabrikam.com"),
            ("recipient", "someone@example.net"),
            ("instance", instance),
        ]);
    }
    let base = base(&server);
    let driver = Driver::start();
    runtime().block_on(async {
        let client = driver.session(1280, 860).await;

        // Signed out, every page leads to the sign-in page.
        client.goto(&format!("{base}/")).await.unwrap();
        assert_eq!(path(&client).await, "/portal/sign-in");

        // A bad token is refused, in words, and audited in bounded form.
        sign_in(&client, &base, "not-a-token").await;
        assert_eq!(path(&client).await, "/portal/sign-in");
        assert_eq!(
            text_of(&client, "error").await,
            "That token is not recognised. Check it and try again."
        );
        assert!(!client.source().await.unwrap().contains("not-a-token"));

        // A good one signs in; the token is never in a URL.
        sign_in(&client, &base, &token("org")).await;
        wait_for_path(&client, "/portal/restricted").await;
        assert!(
            !client
                .current_url()
                .await
                .unwrap()
                .as_str()
                .contains("portal-token")
        );
        assert_eq!(
            text_of(&client, "signed-in").await,
            "org (OrganizationManagement)"
        );
        let cookies = client.get_all_cookies().await.unwrap();
        let session = cookies
            .iter()
            .find(|c| c.name() == "quench_session")
            .expect("a session cookie");
        assert_eq!(session.http_only(), Some(true));
        assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");

        // The list after real traffic: both users, a count, search narrows it.
        let table = text_of(&client, "restricted").await;
        assert!(table.contains("alice@contoso.com") && table.contains("bob@contoso.com"));
        assert!(
            table.contains("recipient_limit_external_per_hour"),
            "{table}"
        );
        assert_eq!(text_of(&client, "count").await, "2 items");
        client
            .find(Locator::Id("q"))
            .await
            .unwrap()
            .send_keys("alice")
            .await
            .unwrap();
        assert_eq!(
            text_of(&client, "count").await,
            "1 item",
            "filtered as typed"
        );
        client
            .goto(&format!("{base}/portal/restricted?kind=user&q=alice"))
            .await
            .unwrap();
        assert_eq!(
            text_of(&client, "count").await,
            "1 item",
            "filtered by the server"
        );
        client
            .goto(&format!("{base}/portal/restricted?kind=user"))
            .await
            .unwrap();
        screenshot(&client, "portal-list").await;

        // The Connectors tab lists the connector.
        client
            .find(Locator::LinkText("Connectors (1)"))
            .await
            .expect("the Connectors tab counts one")
            .click()
            .await
            .unwrap();
        assert!(
            text_of(&client, "restricted")
                .await
                .contains("partner-relay")
        );
        assert_eq!(text_of(&client, "count").await, "1 item");

        // The flyout: evidence in words, the Reason string, the timeline, the unblock limit.
        open_flyout(&client, &base, "alice@contoso.com").await;
        let evidence = text_of(&client, "evidence").await;
        assert!(
            evidence.contains("recipient_limit_external_per_hour") && evidence.contains("allows 1"),
            "{evidence}"
        );
        assert!(
            text_of(&client, "reason")
                .await
                .contains("alice@contoso.com")
        );
        assert!(
            text_of(&client, "timeline")
                .await
                .contains("Restricted by the policy.")
        );
        assert_eq!(
            text_of(&client, "unblock-limit").await,
            "0 unblocks used, 1 left in the unblock window."
        );
        screenshot(&client, "portal-flyout").await;

        // Unblock, details and recommendations, Next, Submit, Yes.
        click(&client, "unblock").await;
        let recommendations = text_of(&client, "recommendations").await;
        assert!(recommendations.contains("multifactor authentication"));
        assert!(recommendations.contains("password"));
        assert!(recommendations.contains("forwarding rules"));
        assert!(recommendations.contains("delegation"));
        screenshot(&client, "portal-unblock-1-details").await;
        click(&client, "next").await;
        client
            .find(Locator::Id("reason"))
            .await
            .unwrap()
            .send_keys("password reset, MFA on")
            .await
            .unwrap();
        screenshot(&client, "portal-unblock-2-reason").await;
        click(&client, "submit").await;
        assert!(
            text_of(&client, "confirm-question")
                .await
                .contains("alice@contoso.com")
        );
        screenshot(&client, "portal-unblock-3-confirm").await;
        click(&client, "yes").await;
        let result = text_of(&client, "result").await;
        assert!(
            result.contains("alice@contoso.com can send again"),
            "{result}"
        );
        assert!(result.contains("1 unblocks used, 0 left"), "{result}");
        screenshot(&client, "portal-unblock-4-done").await;

        // The next policy request is accepted.
        let mut policy = server.connect();
        let answer = policy.rcpt("alice@contoso.com", "x3@fabrikam.com", "alice-3");
        assert_ne!(answer.as_deref(), Some(RESTRICTED));
        assert!(answer.unwrap().starts_with("action=DUNNO"));

        // The audit log shows the unblock with its reason, and filters by action.
        client
            .goto(&format!("{base}/portal/audit?action=unblock"))
            .await
            .unwrap();
        let audit = text_of(&client, "audit").await;
        assert!(audit.contains("password reset, MFA on"), "{audit}");
        assert!(!audit.contains("list-blocked-senders"), "{audit}");

        // A phone-sized window still shows the list.
        client.set_window_size(390, 844).await.unwrap();
        client
            .goto(&format!("{base}/portal/restricted?kind=user"))
            .await
            .unwrap();
        assert!(
            text_of(&client, "restricted")
                .await
                .contains("bob@contoso.com")
        );
        screenshot(&client, "portal-phone").await;
        client.set_window_size(1280, 860).await.unwrap();

        // Sign-out ends the session: the cookie no longer opens anything.
        sign_out(&client).await;
        client
            .goto(&format!("{base}/portal/restricted"))
            .await
            .unwrap();
        assert_eq!(path(&client).await, "/portal/sign-in");
        client.close().await.unwrap();
    });
    // The bad sign-in was audited through the sampler (bounded form), the unblock in full.
    std::thread::sleep(Duration::from_millis(2500));
    let (status, body) = admin_call(
        server.admin.unwrap(),
        "GET",
        "/v1/audit",
        Some(&token("org")),
        None,
    );
    assert_eq!(status, 200);
    let records = body["records"].as_array().unwrap();
    assert!(
        records.iter().any(|r| r["action"] == "refused-requests"
            && r["detail"]
                .as_str()
                .unwrap_or("")
                .contains("/portal/sign-in")),
        "{records:#?}"
    );
    assert!(records.iter().any(|r| r["action"] == "unblock"
        && r["outcome"] == "ok"
        && r["entity"] == "user:alice@contoso.com"));
}

/// Seed `state_dir` (the embedded store) with a user unblocked 2 days ago and restricted
/// again yesterday: the unblock limit (1 per 30 days) is used up.
fn seed_limit_reached(state_dir: &std::path::Path, user: &str) {
    let store = quench_store::EmbeddedStore::open(state_dir).expect("store opens");
    let service = Service::new(
        crate::common::default_policy(POLICY),
        std::sync::Arc::new(store),
        quench::FailAction::Open,
    );
    let now = quench::time::now();
    let restrict_at = |at: i64| {
        for (i, recipient) in ["x1@fabrikam.com", "x2@fabrikam.com"].iter().enumerate() {
            service.decide(
                &Submission {
                    entity: Entity::user(user),
                    sender: user.into(),
                    recipients: vec![recipient.to_string()],
                    message_id: Some(format!("{at}-{i}")),
                },
                at + i as i64,
            );
        }
    };
    restrict_at(now - 2 * 86_400);
    let granted = service
        .unblock(
            &Entity::user(user),
            Role::OrganizationManagement,
            "org",
            "seeded",
            now - 2 * 86_400 + 60,
        )
        .unwrap();
    assert!(granted.is_ok());
    restrict_at(now - 86_400);
    let restriction = service
        .restriction(&Entity::user(user), now)
        .unwrap()
        .expect("restricted again");
    assert_eq!(restriction.unblocks_left, 0);
}

/// The time the page gives for the next allowed unblock.
async fn next_allowed(client: &Client) -> i64 {
    let next = client
        .find(Locator::Id("next-allowed"))
        .await
        .expect("the page says when the next unblock is allowed")
        .attr("datetime")
        .await
        .unwrap()
        .unwrap();
    quench::time::parse(&next).unwrap()
}

#[test]
fn unblock_limit_message_and_support_override() {
    let data = QuenchServer::fresh_dir("portal-limit-store");
    seed_limit_reached(&data.join("state"), "carol@contoso.com");
    let server = QuenchServer::start_with_data_dir("portal-limit", &config(), &data);
    let base = base(&server);
    let driver = Driver::start();
    runtime().block_on(async {
        let client = driver.session(1280, 860).await;
        sign_in(&client, &base, &token("org")).await;
        open_flyout(&client, &base, "carol@contoso.com").await;
        // Unblocked 2 days ago, 1 per 30 days: the next is allowed in 28 days.
        let expected = quench::time::now() - 2 * 86_400 + 60 + 30 * 86_400;
        let warning = text_of(&client, "limit-reached").await;
        assert!(warning.contains("1 of 1 unblocks were used"), "{warning}");
        assert!(warning.contains("contact Support"), "{warning}");
        let next = next_allowed(&client).await;
        assert!(
            (next - expected).abs() < 600,
            "next allowed {next} vs {expected}"
        );
        assert!(!has(&client, "unblock").await, "no Unblock past the limit");
        client
            .execute(
                "document.getElementById('limit-reached').scrollIntoView({block: 'center'})",
                vec![],
            )
            .await
            .unwrap();
        screenshot(&client, "portal-limit-reached").await;

        // Forcing the flow anyway: the policy refuses, and the page says when and whom to ask.
        client
            .goto(&format!(
                "{base}/portal/unblock?kind=user&entity=carol%40contoso.com&step=1"
            ))
            .await
            .unwrap();
        click(&client, "next").await;
        click(&client, "submit").await;
        click(&client, "yes").await;
        let refused = text_of(&client, "limit-reached").await;
        assert!(refused.contains("1 of 1 unblocks were used"), "{refused}");
        assert!(refused.contains("contact Support"), "{refused}");
        let next = next_allowed(&client).await;
        assert!(
            (next - expected).abs() < 600,
            "next allowed {next} vs {expected}"
        );
        sign_out(&client).await;

        // Support sees the override and uses it.
        sign_in(&client, &base, &token("support")).await;
        open_flyout(&client, &base, "carol@contoso.com").await;
        assert_eq!(
            text_of(&client, "unblock").await,
            "Unblock (Support override)"
        );
        click(&client, "unblock").await;
        click(&client, "next").await;
        click(&client, "submit").await;
        click(&client, "yes").await;
        assert!(
            text_of(&client, "result")
                .await
                .contains("carol@contoso.com can send again")
        );
        client.close().await.unwrap();
    });
    let mut policy = server.connect();
    let answer = policy.rcpt("carol@contoso.com", "x9@fabrikam.com", "carol-9");
    assert!(answer.unwrap().starts_with("action=DUNNO"));
}

#[test]
fn a_reader_cannot_unblock_and_forged_or_stale_posts_are_refused() {
    let server = QuenchServer::start("portal-reader", &config());
    restrict(&server, "dave@contoso.com");
    let base = base(&server);
    let driver = Driver::start();
    runtime().block_on(async {
        let client = driver.session(1280, 860).await;
        sign_in(&client, &base, &token("reader")).await;
        open_flyout(&client, &base, "dave@contoso.com").await;
        assert!(!has(&client, "unblock").await, "a reader sees no Unblock");
        assert!(text_of(&client, "read-only").await.contains("not unblock"));
        // The server refuses a reader's unblock anyway, even with the right CSRF token.
        client
            .goto(&format!(
                "{base}/portal/unblock?kind=user&entity=dave%40contoso.com&step=1"
            ))
            .await
            .unwrap();
        assert!(text_of(&client, "error").await.contains("GlobalReader"));
        let csrf = client
            .find(Locator::Css("input[name=csrf]"))
            .await
            .unwrap()
            .attr("value")
            .await
            .unwrap()
            .unwrap();
        post_form(
            &client,
            "/portal/unblock",
            &[
                ("csrf", &csrf),
                ("kind", "user"),
                ("entity", "dave@contoso.com"),
                ("confirm", "yes"),
            ],
        )
        .await;
        assert!(
            text_of(&client, "error")
                .await
                .contains("may read restrictions but not unblock")
        );
        // Nor may a reader change an alert policy: the page shows the settings read-only.
        client.goto(&format!("{base}/portal/alerts")).await.unwrap();
        assert!(!has(&client, "save-user_restricted").await);
        sign_out(&client).await;

        // An admin whose form carries the wrong CSRF token is refused, and nothing changes.
        sign_in(&client, &base, &token("org")).await;
        post_form(
            &client,
            "/portal/unblock",
            &[
                ("csrf", "0000"),
                ("kind", "user"),
                ("entity", "dave@contoso.com"),
                ("confirm", "yes"),
            ],
        )
        .await;
        assert!(
            text_of(&client, "error")
                .await
                .contains("security token does not match")
        );
        // Sign-out without the token is refused too (the session stays).
        post_form(&client, "/portal/sign-out", &[("csrf", "forged")]).await;
        assert!(text_of(&client, "error").await.contains("security token"));
        client
            .goto(&format!("{base}/portal/restricted"))
            .await
            .unwrap();
        assert_eq!(path(&client).await, "/portal/restricted");
        client.close().await.unwrap();
    });
    let mut policy = server.connect();
    let answer = policy.rcpt("dave@contoso.com", "x3@fabrikam.com", "dave-3");
    assert_eq!(
        answer.as_deref(),
        Some(RESTRICTED),
        "dave is still restricted"
    );
    let (_, body) = admin_call(
        server.admin.unwrap(),
        "GET",
        "/v1/audit?action=unblock",
        Some(&token("org")),
        None,
    );
    let outcomes: Vec<&str> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"forbidden"), "{outcomes:?}");
    assert!(!outcomes.contains(&"ok"), "{outcomes:?}");
}

#[test]
fn an_alert_policy_change_in_the_portal_takes_effect() {
    let server = QuenchServer::start("portal-alerts", &config());
    let base = base(&server);
    let driver = Driver::start();
    runtime().block_on(async {
        let client = driver.session(1280, 1400).await;
        sign_in(&client, &base, &token("secadmin")).await;
        client.goto(&format!("{base}/portal/alerts")).await.unwrap();
        let section = text_of(&client, "policy-user_restricted").await;
        assert!(section.contains("User restricted from sending email"));
        assert!(section.contains("admins@contoso.com"), "{section}");
        assert!(
            client
                .find(Locator::Id("nolimit-user_restricted"))
                .await
                .unwrap()
                .is_selected()
                .await
                .unwrap(),
            "No limit by default"
        );
        // Turn it off, replace the tenant admins by the SOC, limit it to 5 a day: keyboard only.
        client
            .find(Locator::Id("enabled-user_restricted"))
            .await
            .unwrap()
            .send_keys(" ")
            .await
            .unwrap();
        client
            .find(Locator::Id("remove-user_restricted-0"))
            .await
            .unwrap()
            .send_keys(" ")
            .await
            .unwrap();
        client
            .find(Locator::Id("add-user_restricted"))
            .await
            .unwrap()
            .send_keys("soc@contoso.com")
            .await
            .unwrap();
        client
            .find(Locator::Id("haslimit-user_restricted"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        client
            .find(Locator::Id("limit-user_restricted"))
            .await
            .unwrap()
            .send_keys("5")
            .await
            .unwrap();
        screenshot(&client, "portal-alert-policies").await;
        click(&client, "save-user_restricted").await;
        assert_eq!(
            text_of(&client, "message").await,
            "Saved \"User restricted from sending email\"."
        );
        let section = text_of(&client, "policy-user_restricted").await;
        assert!(section.contains("soc@contoso.com") && !section.contains("admins@contoso.com"));
        client.close().await.unwrap();
    });
    // The API sees it, and the next alert of that kind follows it (disabled: logged only).
    let (status, body) = admin_call(
        server.admin.unwrap(),
        "GET",
        "/v1/alert-policies/user_restricted",
        Some(&token("reader")),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(body["enabled"], false);
    assert_eq!(body["recipients"], serde_json::json!(["soc@contoso.com"]));
    assert_eq!(body["daily_limit"], 5);
    restrict(&server, "erin@contoso.com");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        let line = log.lines().find(|l| {
            l.contains("User restricted from sending email") && l.contains("erin@contoso.com")
        });
        if let Some(line) = line {
            assert!(line.contains("kind disabled"), "{line}");
            break;
        }
        assert!(Instant::now() < deadline, "the alert was logged:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_portal_over_tls_sets_secure_cookies() {
    let dir = QuenchServer::fresh_dir("portal-tls-keys");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (scripts/test installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = config().replace(
        "[admin]\n",
        &format!(
            "[admin]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let server = QuenchServer::start("portal-tls", &config);
    restrict(&server, "frank@contoso.com");
    let admin = server.admin.unwrap();
    // Plain HTTP to the TLS listener gets no page.
    let plain = crate::server::http_get(admin, "/portal/sign-in");
    assert!(!plain.contains("Admin token"), "{plain}");
    let driver = Driver::start();
    runtime().block_on(async {
        let client = driver.session_insecure(1280, 860).await;
        sign_in(&client, &format!("https://{admin}"), &token("org")).await;
        wait_for_path(&client, "/portal/restricted").await;
        assert!(
            text_of(&client, "restricted")
                .await
                .contains("frank@contoso.com")
        );
        let cookies = client.get_all_cookies().await.unwrap();
        let session = cookies
            .iter()
            .find(|c| c.name() == "quench_session")
            .expect("a session cookie");
        assert_eq!(session.secure(), Some(true), "Secure over TLS");
        assert_eq!(session.http_only(), Some(true));
        client.close().await.unwrap();
    });
}
