//! Unblock-limit bypass attempts fail, through the real service (sandboxed policy over the
//! durable embedded store): address case variants count as one entity, a restart between
//! unblocks forgets nothing, and of two concurrent unblocks with one left exactly one wins.

use crate::common::{MONDAY_10AM, default_policy};
use quench::service::Service;
use quench::{Entity, Role, Submission, UnblockError};
use quench_store::EmbeddedStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DAY: i64 = 86_400;

const CONFIG: &str = r#"
accepted_domains = ["contoso.com"]
unblock_limit = { count = 2, window_days = 30 }
[[outbound]]
name = "Default"
recipient_limit_external_per_hour = 1
recipient_limit_internal_per_hour = 100
recipient_limit_per_day = 100
action_when_threshold_reached = "BlockUser"
"#;

fn data_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("unblock-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn open(dir: &Path) -> Service {
    let store = EmbeddedStore::open(dir).expect("store opens");
    Service::new(
        default_policy(CONFIG),
        Arc::new(store),
        quench::FailAction::Open,
    )
}

/// Send two external recipients as `spelling` at `at`: the second restricts.
fn restrict(service: &Service, spelling: &str, at: i64) {
    for (i, recipient) in ["x1@fabrikam.com", "x2@fabrikam.com"]
        .into_iter()
        .enumerate()
    {
        let submission = Submission {
            entity: Entity::user(spelling),
            sender: quench::normalize::normalize(spelling),
            recipients: vec![recipient.into()],
            message_id: Some(format!("{at}-{i}")),
        };
        service.decide(&submission, at + i as i64);
    }
    let restriction = service
        .restriction(&Entity::user(spelling), at + 2)
        .unwrap();
    assert!(restriction.is_some(), "{spelling} is restricted at {at}");
}

#[test]
fn case_variants_and_restarts_do_not_reset_the_unblock_limit() {
    let dir = data_dir("variants");
    let admin = |service: &Service, spelling: &str, at: i64| {
        service.unblock(
            &Entity::user(spelling),
            Role::SecurityAdministrator,
            "sec-admin",
            "reset",
            at,
        )
    };

    let service = open(&dir);
    restrict(&service, "alice@contoso.com", MONDAY_10AM);
    let first = admin(&service, "alice@contoso.com", MONDAY_10AM + 60)
        .unwrap()
        .unwrap();
    assert_eq!((first.unblocks_used, first.unblocks_left), (1, 1));
    drop(service); // restart

    let service = open(&dir);
    restrict(&service, "ALICE@contoso.com", MONDAY_10AM + DAY);
    let second = admin(&service, "<Alice@Contoso.COM>", MONDAY_10AM + DAY + 60)
        .unwrap()
        .unwrap();
    assert_eq!((second.unblocks_used, second.unblocks_left), (2, 0));
    drop(service); // restart

    let service = open(&dir);
    restrict(&service, "alice@CONTOSO.com", MONDAY_10AM + 2 * DAY);
    match admin(&service, " alice@contoso.com ", MONDAY_10AM + 2 * DAY + 60).unwrap() {
        Err(UnblockError::LimitReached(limit)) => {
            assert_eq!((limit.used, limit.limit), (2, 2));
            assert_eq!(
                limit.next_allowed,
                MONDAY_10AM + 60 + 30 * DAY,
                "the first unblock ages out"
            );
        }
        other => panic!("the limit must hold: {other:?}"),
    }
    // Support may still unblock.
    let support = service
        .unblock(
            &Entity::user("alice@contoso.com"),
            Role::Support,
            "support",
            "escalated",
            MONDAY_10AM + 2 * DAY + 120,
        )
        .unwrap();
    assert!(support.is_ok(), "{support:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn two_concurrent_unblocks_with_one_left_exactly_one_succeeds() {
    let dir = data_dir("concurrent");
    let service = Arc::new(open(&dir));
    restrict(&service, "bob@contoso.com", MONDAY_10AM);
    service
        .unblock(
            &Entity::user("bob@contoso.com"),
            Role::OrganizationManagement,
            "om",
            "first",
            MONDAY_10AM + 60,
        )
        .unwrap()
        .unwrap();
    restrict(&service, "bob@contoso.com", MONDAY_10AM + DAY);

    for round in 0..5 {
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = ["BOB@contoso.com", "bob@CONTOSO.com"]
            .into_iter()
            .map(|spelling| {
                let service = service.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    service
                        .unblock(
                            &Entity::user(spelling),
                            Role::SecurityAdministrator,
                            spelling,
                            "race",
                            MONDAY_10AM + DAY + 60,
                        )
                        .unwrap()
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let granted = results.iter().filter(|r| r.is_ok()).count();
        if round == 0 {
            assert_eq!(
                granted, 1,
                "exactly one of the racing unblocks wins: {results:?}"
            );
        } else {
            assert_eq!(granted, 0, "nothing left to unblock: {results:?}");
        }
    }
    let audit = service
        .store()
        .audit(&quench_store::AuditQuery {
            action: Some("unblock".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(audit.iter().filter(|r| r.outcome == "ok").count(), 2);
    assert_eq!(audit.iter().filter(|r| r.outcome == "denied").count(), 9);
    std::fs::remove_dir_all(&dir).ok();
}
