//! Unblock: roles, the unblock limit, the support override, what an unblock returns.

mod common;
use common::*;

const A: &str = "alice@contoso.com";

/// Restrict alice on day `d` (external limit 1, BlockUser).
fn trip(h: &mut H, d: i64) {
    h.send(A, ext(1), at(d, 9, 0, 0));
    let dec = h.send(A, ext(1), at(d, 9, 0, 1));
    assert_eq!(v(&dec), V::Reject("5.1.8"), "trip on day {d}");
}

fn cfg(count: u32, days: u32) -> String {
    format!(
        "unblock_limit = {{ count = {count}, window_days = {days} }}\n{}",
        limits_config(1, 100, 100, "BlockUser")
    )
}

#[test]
fn roles() {
    for (role, allowed) in [
        (Role::OrganizationManagement, true),
        (Role::SecurityAdministrator, true),
        (Role::Support, true),
        (Role::GlobalReader, false),
        (Role::SecurityReader, false),
        (Role::ViewOnlyOrganizationManagement, false),
    ] {
        let mut h = H::new(&cfg(3, 30));
        trip(&mut h, 0);
        let r = h.unblock_as(&user(A), role, at(0, 10, 0, 0));
        if allowed {
            assert!(r.is_ok(), "{role:?}: {r:?}");
        } else {
            assert_eq!(r.unwrap_err(), UnblockError::RoleNotAllowed(role));
            assert!(
                h.describe(&user(A), at(0, 10, 0, 0)).is_some(),
                "still restricted"
            );
        }
    }
}

#[test]
fn unblock_limit_and_support_override() {
    let mut h = H::new(&cfg(2, 30));
    let window = 30 * DAY;
    trip(&mut h, 0);
    let g = h.unblock(A, at(0, 10, 0, 0)).unwrap();
    assert_eq!((g.unblocks_used, g.unblocks_left), (1, 1));
    trip(&mut h, 1); // not again the same day: trip on later days
    let g = h.unblock(A, at(1, 10, 0, 0)).unwrap();
    assert_eq!((g.unblocks_used, g.unblocks_left), (2, 0));
    trip(&mut h, 2);
    let r = h.describe(&user(A), at(2, 9, 30, 0)).unwrap();
    assert_eq!((r.unblocks_used, r.unblocks_left), (2, 0));
    for role in [Role::OrganizationManagement, Role::SecurityAdministrator] {
        let err = h.unblock_as(&user(A), role, at(2, 10, 0, 0)).unwrap_err();
        assert_eq!(
            err,
            UnblockError::LimitReached(UnblockLimitReached {
                used: 2,
                limit: 2,
                window_seconds: window as u32,
                next_allowed: at(0, 10, 0, 0) + window,
            })
        );
    }
    // Support may go past the limit; it counts.
    let g = h
        .unblock_as(&user(A), Role::Support, at(2, 10, 0, 0))
        .unwrap();
    assert_eq!((g.unblocks_used, g.unblocks_left), (3, 0));
    // Three in the window now: the next admin unblock waits until the second one ages out.
    trip(&mut h, 3);
    match h.unblock(A, at(3, 10, 0, 0)).unwrap_err() {
        UnblockError::LimitReached(l) => {
            assert_eq!((l.used, l.next_allowed), (3, at(1, 10, 0, 0) + window))
        }
        e => panic!("{e:?}"),
    }
    // One second before the oldest leaves the window: still refused; at that second: allowed.
    let first_leaves = at(0, 10, 0, 0) + window;
    assert_still_restricted(&h, first_leaves - 1);
    assert!(matches!(
        h.unblock(A, first_leaves - 1),
        Err(UnblockError::LimitReached(_))
    ));
    assert!(h.unblock(A, at(1, 10, 0, 0) + window).is_ok());
}

/// BlockUser holds until an unblock.
fn assert_still_restricted(h: &H, t: i64) {
    assert!(h.describe(&user(A), t).is_some());
}

#[test]
fn not_restricted_and_service_limit_unblockable() {
    let mut h = H::new(&cfg(3, 30));
    assert_eq!(
        h.unblock(A, at(0, 9, 0, 0)).unwrap_err(),
        UnblockError::NotRestricted
    );
    h.send(A, ext(1), at(0, 9, 0, 0));
    assert_eq!(
        h.unblock(A, at(0, 9, 0, 0)).unwrap_err(),
        UnblockError::NotRestricted
    );
    // A BlockUserForToday restriction that has expired is not there to unblock.
    let mut h = H::new(&limits_config(1, 100, 100, "BlockUserForToday"));
    trip(&mut h, 0);
    assert!(h.unblock(A, at(0, 23, 0, 0)).is_ok());
    trip(&mut h, 1);
    assert_eq!(
        h.unblock(A, at(2, 0, 0, 0)).unwrap_err(),
        UnblockError::NotRestricted
    );
    // Service daily limit: lifts by itself, and (as in EOP) an admin may lift it earlier,
    // which counts against the unblock limit and clears the 24-hour window that tripped.
    let mut h = H::new("recipient_rate_limit = 1");
    h.send(A, ext(1), at(0, 9, 0, 0));
    let d = h.send(A, ext(1), at(0, 9, 1, 0));
    assert_eq!(
        d.restriction.unwrap().kind,
        RestrictionKind::ServiceDailyLimit
    );
    let g = h
        .unblock_as(&user(A), Role::GlobalAdministrator, at(0, 9, 2, 0))
        .unwrap();
    assert_eq!(g.lifted.kind, RestrictionKind::ServiceDailyLimit);
    assert_eq!(g.unblocks_used, 1);
    assert!(h.send(A, ext(1), at(0, 9, 3, 0)).restriction.is_none());
}

#[test]
fn granted_unblock_returns_lifted_record_and_recommendations() {
    let mut h = H::new(&cfg(3, 30));
    trip(&mut h, 0);
    let g = h.unblock(A, at(0, 11, 0, 0)).unwrap();
    assert_eq!(g.lifted.entity, user(A));
    assert_eq!(g.lifted.kind, RestrictionKind::BlockUser);
    assert_eq!(g.lifted.created, at(0, 9, 0, 1));
    assert_eq!(g.lifted.changed, at(0, 11, 0, 0));
    assert_eq!(g.lifted.evidence.limit, "recipient_limit_external_per_hour");
    let all = g.recommendations.join(" ").to_lowercase();
    for needle in [
        "password",
        "multifactor",
        "forwarding",
        "inbox rules",
        "delegates",
        "sign-in logs",
    ] {
        assert!(all.contains(needle), "recommendations mention {needle}");
    }
    assert!(h.describe(&user(A), at(0, 11, 0, 0)).is_none());
    assert_eq!(
        h.unblock(A, at(0, 11, 0, 1)).unwrap_err(),
        UnblockError::NotRestricted
    );
}

#[test]
fn unreadable_state() {
    let p = quench_default_policy::Policy::from_config("").unwrap();
    let req = UnblockRequest {
        entity: user(A),
        role: Role::Support,
        admin: "x".into(),
        reason: "y".into(),
        grace: Default::default(),
    };
    for bytes in [vec![0u8], vec![2, 0, 0], vec![1, 1, 200], vec![1, 0, 0, 0]] {
        assert!(
            matches!(
                p.unblock(&bytes, &req, 0),
                Err(UnblockError::InvalidState(_))
            ),
            "{bytes:?}"
        );
        assert!(p.describe(&bytes, &user(A), 0).is_err(), "{bytes:?}");
    }
    // Readers are refused before the state is even looked at.
    let reader = UnblockRequest {
        role: Role::GlobalReader,
        ..req
    };
    assert_eq!(
        p.unblock(&[9, 9], &reader, 0).unwrap_err(),
        UnblockError::RoleNotAllowed(Role::GlobalReader)
    );
}
