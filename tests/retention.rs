//! Retention: the sweep deletes what the sandboxed policy calls idle, and nothing else. Through
//! the host API over the durable embedded store with the real default policy (time passed in,
//! so a day goes by in a call), with a policy that traps on `idle`, and through a running
//! `quench serve` whose sweep runs on its own.

use crate::common::{MONDAY_10AM, default_policy, misbehaving_component, sandbox, submission};
use crate::server::QuenchServer;
use quench::retention::{self, SweepReport};
use quench::sandbox::{FailAction, SandboxLimits};
use quench::service::Service;
use quench::{Action, Entity, Role};
use quench_store::{EmbeddedStore, MemoryStore, StateStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

const CONFIG: &str = r#"
accepted_domains = ["contoso.com"]
unblock_limit = { count = 3, window_days = 2 }
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 2
action_when_threshold_reached = "BlockUser"
"#;

fn sweep(service: &Service, now: i64) -> SweepReport {
    // A page size below the entity count, so the walk takes several pages.
    retention::sweep(service, 2, now, |_| true).expect("the sweep runs")
}

fn send(service: &Service, who: &str, to: &str, now: i64) -> Action {
    service
        .decide(&submission(who, &[to]), now)
        .decision
        .verdict
        .action
}

#[test]
fn the_sweep_deletes_idle_state_and_keeps_restrictions_and_unblock_history() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn StateStore> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let service = Service::new(default_policy(CONFIG), store.clone(), FailAction::Open);
    let t0 = MONDAY_10AM;

    for who in ["quiet1@contoso.com", "quiet2@contoso.com"] {
        assert_eq!(send(&service, who, "x@fabrikam.com", t0), Action::Accept);
    }
    for who in ["blocked@contoso.com", "unblocked@contoso.com"] {
        for i in 0..3 {
            send(&service, who, &format!("x{i}@fabrikam.com"), t0);
        }
    }
    let unblocked = Entity::user("unblocked@contoso.com");
    service
        .unblock(
            &unblocked,
            Role::SecurityAdministrator,
            "alice",
            "test",
            t0 + 60,
        )
        .unwrap()
        .expect("the unblock is allowed");
    store.flush().unwrap();
    assert_eq!(store.entity_count().unwrap(), 4);

    // An hour on, every state still counts.
    let report = sweep(&service, t0 + HOUR);
    assert_eq!((report.examined, report.removed, report.faults), (4, 0, 0));

    // A day on, the quiet senders' windows have drained; the restriction and the unblock
    // (inside its two-day window) keep theirs.
    let report = sweep(&service, t0 + DAY + 2 * HOUR);
    assert_eq!((report.examined, report.removed), (4, 2));
    assert_eq!(store.get("user:quiet1@contoso.com").unwrap(), None);
    assert!(store.get("user:unblocked@contoso.com").unwrap().is_some());
    assert_eq!(store.entity_count().unwrap(), 2);

    // Past the unblock window only the restriction is left, still listed and still refusing.
    let later = t0 + 3 * DAY;
    let report = sweep(&service, later);
    assert_eq!((report.examined, report.removed), (2, 1));
    assert_eq!(store.entity_count().unwrap(), 1);
    let listed: Vec<String> = service
        .restrictions(later)
        .unwrap()
        .into_iter()
        .map(|r| r.entity.id)
        .collect();
    assert_eq!(listed, ["blocked@contoso.com"]);
    assert_eq!(
        send(&service, "blocked@contoso.com", "y@fabrikam.com", later),
        Action::Reject
    );

    // A swept sender starts afresh: its full hourly allowance, then the limit holds again.
    assert_eq!(
        send(&service, "quiet1@contoso.com", "a@fabrikam.com", later),
        Action::Accept
    );
    assert_eq!(
        send(&service, "quiet1@contoso.com", "b@fabrikam.com", later),
        Action::Accept
    );
    assert_eq!(
        send(&service, "quiet1@contoso.com", "c@fabrikam.com", later),
        Action::Reject
    );

    // The sweep's deletions are durable: a reopened store has the same entities.
    drop(service);
    drop(store);
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(reopened.get("user:quiet2@contoso.com").unwrap(), None);
    assert!(reopened.get("user:blocked@contoso.com").unwrap().is_some());
}

#[test]
fn a_policy_that_fails_on_idle_keeps_every_state() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let limits = SandboxLimits {
        deadline_ms: 100,
        ..SandboxLimits::default()
    };
    let service = Service::new(
        sandbox(misbehaving_component(), "", limits.clone()),
        store.clone(),
        FailAction::Open,
    );
    for i in 0..3 {
        send(
            &service,
            &format!("u{i}@contoso.com"),
            "x@fabrikam.com",
            MONDAY_10AM,
        );
    }
    for mode in ["trap", "loop"] {
        service.replace_policy(sandbox(
            misbehaving_component(),
            &format!("mode = \"{mode}\""),
            limits.clone(),
        ));
        let report = sweep(&service, MONDAY_10AM + 400 * DAY);
        assert_eq!(
            (report.examined, report.removed, report.faults),
            (3, 0, 3),
            "mode {mode}"
        );
        assert_eq!(store.entity_count().unwrap(), 3, "mode {mode}");
    }
}

#[test]
fn quench_serve_sweeps_on_its_own_and_a_swept_sender_starts_afresh() {
    // The fixture's `eager-idle` mode refuses an entity that has state and calls every state
    // idle: once the server's own sweep has run, its senders are accepted again.
    let server = QuenchServer::start(
        "retention",
        &format!(
            "[serve]\npolicy = \"{}\"\nsweep_interval_secs = 1\nflush_interval_ms = 100\n\n[policy]\nmode = \"eager-idle\"\n",
            env!("QUENCH_TEST_GUEST_MISBEHAVING")
        ),
    );
    let mut client = server.connect();
    for i in 0..3 {
        let who = format!("s{i}@contoso.com");
        assert_eq!(
            client.rcpt(&who, "x@fabrikam.com", "m1").as_deref(),
            Some("action=DUNNO")
        );
        assert!(
            client
                .rcpt(&who, "y@fabrikam.com", "m2")
                .is_some_and(|a| a.starts_with("action=550 5.1.8")),
            "refused while it has state"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while server
        .metric("quench_retention_total{kind=\"removed\"}")
        .unwrap_or(0.0)
        < 3.0
    {
        assert!(
            Instant::now() < deadline,
            "the sweep did not remove the states:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    while server.metric("quench_entities") != Some(0.0) {
        assert!(Instant::now() < deadline, "entities not counted as 0");
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..3 {
        assert_eq!(
            client
                .rcpt(&format!("s{i}@contoso.com"), "z@fabrikam.com", "m3")
                .as_deref(),
            Some("action=DUNNO"),
            "swept, so new again"
        );
    }
}

/// `[audit] keep_days`: records older than the cut-off are deleted in batches, newer ones
/// and everything with `keep_days = 0` stay.
#[test]
fn audit_retention_deletes_records_older_than_keep_days() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn StateStore> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let service = Service::new(default_policy(""), store.clone(), FailAction::Open);
    let day = 86_400;
    // 1,100 records 200 days old (more than one batch), 10 from yesterday.
    for i in 0..1_100 {
        service
            .audit(
                "admin",
                "unblock",
                None,
                "ok",
                &format!("old {i}"),
                MONDAY_10AM - 200 * day,
            )
            .unwrap();
    }
    for i in 0..10 {
        service
            .audit(
                "admin",
                "unblock",
                None,
                "ok",
                &format!("new {i}"),
                MONDAY_10AM - day,
            )
            .unwrap();
    }
    assert_eq!(
        retention::prune_audit(&service, 0, MONDAY_10AM, || true).unwrap(),
        0
    );
    let mut batches = 0;
    let pruned = retention::prune_audit(&service, 180, MONDAY_10AM, || {
        batches += 1;
        true
    })
    .unwrap();
    assert_eq!(pruned, 1_100);
    assert_eq!(
        batches,
        1,
        "one pause between two batches of at most {}",
        retention::AUDIT_PRUNE_BATCH
    );
    let left = store.audit(&quench_store::AuditQuery::default()).unwrap();
    assert_eq!(left.len(), 10);
    assert!(left.iter().all(|r| r.detail.starts_with("new ")));
}
