//! Issue 12 through a real `quench serve` whose data directory is on a small tmpfs the test
//! fills: enforcement goes on from memory, the gauge and an alert say so at once, what was
//! kept in memory reaches the file once space is freed, and SIGTERM on a full disk exits
//! cleanly and says what could not be saved.

use crate::server::{PolicyClient, QuenchServer};
use quench_store::full_disk::{Tmpfs, fill};
use std::time::{Duration, Instant};

/// One external recipient per hour, then BlockUser: every second external recipient makes a
/// durable restriction (a new page in the file, so the full disk is noticed at once).
const CONFIG: &str = r#"
[serve]
flush_interval_ms = 100
sweep_interval_secs = 0

[policy]
accepted_domains = ["contoso.com"]

[[policy.outbound]]
name = "Default"
recipient_limit_external_per_hour = 1
recipient_limit_internal_per_hour = 1000
recipient_limit_per_day = 1000
action_when_threshold_reached = "BlockUser"
"#;

const REFUSED: &str = "action=550 5.1.8 Access denied, bad outbound sender";

/// Send two external recipients from `user` (one message); the second trips the limit.
fn restrict(client: &mut PolicyClient, user: &str) -> Option<String> {
    client.rcpt(user, "a@fabrikam.com", user);
    client.rcpt(user, "b@fabrikam.com", user)
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_full_disk_keeps_enforcing_alerts_and_writes_back_after() {
    let tmpfs = Tmpfs::mount("2m");
    let server = QuenchServer::start_with_data_dir("outage", CONFIG, &tmpfs.path().join("data"));
    let mut client = server.connect();
    assert_eq!(
        restrict(&mut client, "known@contoso.com").as_deref(),
        Some(REFUSED)
    );
    assert_eq!(server.metric("quench_store_unavailable"), Some(0.0));

    // Fill the disk, then keep restricting new users until the store notices.
    let filler = fill(tmpfs.path());
    let mut restricted_while_full = Vec::new();
    for i in 0..5_000 {
        let user = format!("new{i}@contoso.com");
        assert_eq!(
            restrict(&mut client, &user).as_deref(),
            Some(REFUSED),
            "{user} is restricted while the disk is full"
        );
        restricted_while_full.push(user);
        if i % 20 == 19 && server.metric("quench_store_unavailable") == Some(1.0) {
            break;
        }
    }
    assert_eq!(
        server.metric("quench_store_unavailable"),
        Some(1.0),
        "5,000 durable restrictions never filled a 2 MiB disk"
    );
    // More decisions while degraded: counted in memory, restricted, known ones still refused.
    for i in 0..20 {
        let user = format!("degraded{i}@contoso.com");
        assert_eq!(restrict(&mut client, &user).as_deref(), Some(REFUSED));
        restricted_while_full.push(user);
    }
    assert_eq!(
        client
            .rcpt("known@contoso.com", "c@contoso.com", "k2")
            .as_deref(),
        Some(REFUSED),
        "a restriction stored before the disk filled is still enforced"
    );
    // The next flush (every 100 ms here) reports what is held only in memory, logs and
    // raises the alert.
    wait_for("the unsaved gauge", Duration::from_secs(10), || {
        server.metric("quench_store_unsaved{kind=\"restrictions\"}") >= Some(20.0)
    });
    wait_for(
        "the log line and the alert",
        Duration::from_secs(10),
        || {
            let log = server.log();
            log.contains("the store stopped taking writes") && log.contains("Store unavailable")
        },
    );

    // Free the disk: the store recovers (retry backoff is at most 10 s) and writes back.
    std::fs::remove_file(&filler).unwrap();
    wait_for("recovery", Duration::from_secs(30), || {
        server.metric("quench_store_unavailable") == Some(0.0)
    });
    assert_eq!(
        server.metric("quench_store_unsaved{kind=\"states\"}"),
        Some(0.0)
    );
    // Durable: after kill -9, every restriction made while the disk was full is still there.
    let server = server.kill9_and_restart();
    let mut client = server.connect();
    for user in restricted_while_full
        .iter()
        .rev()
        .take(30)
        .chain(["known@contoso.com".to_string()].iter())
    {
        assert_eq!(
            client.rcpt(user, "x@contoso.com", "after").as_deref(),
            Some(REFUSED),
            "{user} is still restricted after the write-back and a kill -9"
        );
    }
}

#[test]
fn sigterm_on_a_full_disk_exits_cleanly_and_says_what_was_not_saved() {
    let tmpfs = Tmpfs::mount("2m");
    let mut server =
        QuenchServer::start_with_data_dir("outage-term", CONFIG, &tmpfs.path().join("data"));
    let mut client = server.connect();
    let _filler = fill(tmpfs.path());
    for i in 0..5_000 {
        restrict(&mut client, &format!("u{i}@contoso.com"));
        if i % 20 == 19 && server.metric("quench_store_unavailable") == Some(1.0) {
            break;
        }
    }
    assert_eq!(server.metric("quench_store_unavailable"), Some(1.0));
    drop(client);
    let status = server.terminate();
    let log = server.log();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(
        log.contains("held only in memory and are lost"),
        "the log says what could not be saved:\n{log}"
    );
}
