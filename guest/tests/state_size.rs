//! State size per entity, measured (the numbers docs/policy.md quotes).

mod common;
use common::*;

#[test]
fn typical_and_busy_entities_stay_small() {
    let mut h = H::new("accepted_domains = ['contoso.com']");
    let a = "alice@contoso.com";
    // A typical office user: 40 messages over a working day, 1 to 3 recipients, a third
    // internal, each via a per-recipient run with a queue id.
    let mut max = 0;
    for i in 0..40i64 {
        let t = at(0, 8, 0, 0) + i * 15 * 60;
        let n = 1 + (i % 3) as usize;
        let rcpts = if i % 3 == 0 { int(n) } else { ext(n) };
        for (j, r) in rcpts.into_iter().enumerate() {
            h.send_part(a, &format!("4Xq{i:05}"), vec![r], t + j as i64);
            max = max.max(h.state(&user(a)).len());
        }
    }
    let typical = h.state(&user(a)).len();
    println!("typical entity: {typical} bytes at the end of the day, {max} at most");
    assert!(max < 128, "typical entity state {max} bytes");

    // A busy sender with messages in flight: 8 messages at once over 8 connections, 20
    // recipients each, their calls interleaved, a batch every 2 minutes for an hour (so
    // earlier batches are still in flight, up to the cap of 16).
    let mut h = H::new("accepted_domains = ['contoso.com']");
    let b = "bulk@contoso.com";
    let mut in_flight_max = 0;
    for batch in 0..30i64 {
        let t = at(0, 9, 0, 0) + batch * 120;
        for r in 0..20usize {
            for m in 0..8 {
                let rcpt = if r % 2 == 0 { int(r + 1) } else { ext(r + 1) };
                h.send_part(
                    b,
                    &format!("4Xq{batch:03}{m}"),
                    vec![rcpt[r].clone()],
                    t + r as i64,
                );
                in_flight_max = in_flight_max.max(h.state(&user(b)).len());
            }
        }
    }
    println!("busy sender, 8 messages in flight per batch: {in_flight_max} bytes at most");
    assert!(in_flight_max < 256, "in-flight state {in_flight_max} bytes");

    // A connector relaying 64 messages at once (the most it keeps in flight), ids of 11
    // characters, 10 recipients each, calls spread over two minutes.
    let mut h = H::new("accepted_domains = ['contoso.com']");
    let relay = connector("scanner-relay");
    for r in 0..10usize {
        for m in 0..64i64 {
            let sub = Submission {
                entity: relay.clone(),
                sender: format!("user{m}@contoso.com"),
                recipients: vec![ext(r + 1)[r].clone()],
                message_id: Some(format!("4Xq{m:08}")),
            };
            h.submit(sub, at(0, 9, 0, 0) + (r as i64) * 12 + m / 8);
        }
    }
    let connector_state = h.state(&relay).len();
    println!("connector with 64 messages in flight: {connector_state} bytes");
    assert!(
        connector_state < 600,
        "connector state {connector_state} bytes"
    );

    // Worst case: every bucket of every window in use with multi-byte counts, a restriction
    // with a long message id, and a full unblock history.
    let cfg = "accepted_domains = ['contoso.com']\nunblock_limit = { count = 50, window_days = 365 }\n[[outbound]]\nname = 'Default'\nrecipient_limit_external_per_hour = 10000\nrecipient_limit_internal_per_hour = 10000\nrecipient_limit_per_day = 10000";
    let mut h = H::new(cfg);
    for i in 0..24 * 60i64 {
        let t = at(0, 0, 0, 0) + i * 60;
        let rcpts = if i % 2 == 0 { ext(3) } else { int(3) };
        h.send(a, rcpts, t);
    }
    let busy = h.state(&user(a)).len();
    println!("busy entity (every bucket in use): {busy} bytes");
    assert!(busy < 256, "busy entity state {busy} bytes");
    // Then restrict it (limits lowered) with a long message id and unblock it on 50 days:
    // the unblock history is full and the counts are multi-byte.
    let cfg = "accepted_domains = ['contoso.com']\nunblock_limit = { count = 50, window_days = 365 }\n[[outbound]]\nname = 'A policy name of sixty-four characters, the longest allowed...'\nrecipient_limit_external_per_hour = 400\naction_when_threshold_reached = 'BlockUser'";
    let mut h2 = H::new(cfg);
    h2.states = h.states.clone();
    let long_id = "x".repeat(500);
    let mut worst = 0;
    for d in 1..=50 {
        for k in 0..4 {
            h2.send(a, int(250), at(d, 11, 0, k));
        }
        h2.send(a, ext(400), at(d, 12, 0, 0));
        let dec = h2.send_part(a, &long_id, ext(1), at(d, 12, 0, 1));
        assert_eq!(v(&dec), V::Reject("5.1.8"), "day {d}");
        worst = worst.max(h2.state(&user(a)).len());
        h2.unblock_as(&user(a), Role::Support, at(d, 13, 0, 0))
            .unwrap();
        worst = worst.max(h2.state(&user(a)).len());
    }
    println!(
        "worst case seen (restricted, 64-char policy name, 128-byte message id, 50 unblocks): {worst} bytes"
    );
    assert!(worst < 1024, "worst case {worst} bytes");
}
