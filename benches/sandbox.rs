//! The sandbox's cost, measured against its floors:
//! - `decision/*`: one decision by the default policy natively (plain Rust), through the
//!   sandbox, and the bare crossing of the boundary with the same argument shapes (a policy
//!   that does nothing); ratios: sandboxed / native (the sandbox tax) and policy logic /
//!   crossing.
//! - `instance/*`: a fresh instance per call (instantiate + configure + one call), with the
//!   pooling allocator and with on-demand allocation.
//! - `cold_start/*`: loading a policy from scratch: compiling vs loading cached code.
//! - `bounce/*`: rendering an RFC 3464 bounce, native and sandboxed.

use criterion::{Criterion, criterion_group, criterion_main};
use quench::native::NativePolicy;
use quench::sandbox::{Allocation, PolicySource, Sandbox, SandboxLimits};
use quench::{BounceRequest, Entity, SmtpReply, Submission};
use std::hint::black_box;

/// 2026-11-23T10:00:00Z.
const NOW: i64 = 1_795_428_000;

const CONFIG: &str = r#"accepted_domains = ["contoso.com"]"#;

fn submission(i: u64) -> Submission {
    Submission {
        entity: Entity::user("alice@contoso.com"),
        sender: "alice@contoso.com".into(),
        recipients: vec![format!(
            "r{}@{}",
            i % 7,
            if i.is_multiple_of(2) {
                "fabrikam.com"
            } else {
                "contoso.com"
            }
        )],
        message_id: Some(format!("msg-{}", i / 3)),
    }
}

/// A typical user's state: a few dozen recipients over the last hours.
fn warm_state(policy: &NativePolicy) -> Vec<u8> {
    let mut state = Vec::new();
    for i in 0..40 {
        state = policy
            .evaluate(&state, &submission(i), NOW - 4 * 3600 + i as i64 * 300)
            .state;
    }
    state
}

fn sandbox(source: PolicySource, allocation: Allocation, limits: SandboxLimits) -> Sandbox {
    Sandbox::builder()
        .source(source)
        .config(CONFIG)
        .allocation(allocation)
        .limits(limits)
        .build()
        .expect("the policy loads")
}

fn decision(c: &mut Criterion) {
    let native = NativePolicy::new(CONFIG).expect("valid config");
    let state = warm_state(&native);
    let sandboxed = sandbox(
        PolicySource::Embedded,
        Allocation::Pooling,
        SandboxLimits::default(),
    );
    let floor = sandbox(
        PolicySource::File(env!("QUENCH_BENCH_GUEST_FLOOR").into()),
        Allocation::Pooling,
        SandboxLimits::default(),
    );
    let one = submission(41);
    assert_eq!(
        native.evaluate(&state, &one, NOW),
        sandboxed.evaluate(&state, &one, NOW).unwrap(),
        "the bench compares equal work"
    );
    let mut group = c.benchmark_group("decision");
    group.bench_function("native", |b| {
        b.iter(|| native.evaluate(black_box(&state), black_box(&one), NOW))
    });
    group.bench_function("sandboxed", |b| {
        b.iter(|| {
            sandboxed
                .evaluate(black_box(&state), black_box(&one), NOW)
                .unwrap()
        })
    });
    group.bench_function("bare_crossing", |b| {
        b.iter(|| {
            floor
                .evaluate(black_box(&state), black_box(&one), NOW)
                .unwrap()
        })
    });
    group.finish();
}

fn instances(c: &mut Criterion) {
    // recycle_after_calls = 1: every call gets a fresh instance (instantiate, configure, call).
    let fresh = SandboxLimits {
        recycle_after_calls: 1,
        ready_instances: 1,
        ..SandboxLimits::default()
    };
    let pooled = sandbox(PolicySource::Embedded, Allocation::Pooling, fresh.clone());
    let on_demand = sandbox(PolicySource::Embedded, Allocation::OnDemand, fresh);
    let one = submission(1);
    let mut group = c.benchmark_group("instance");
    group.bench_function("fresh_per_call_pooling", |b| {
        b.iter(|| pooled.evaluate(&[], black_box(&one), NOW).unwrap())
    });
    group.bench_function("fresh_per_call_on_demand", |b| {
        b.iter(|| on_demand.evaluate(&[], black_box(&one), NOW).unwrap())
    });
    group.finish();
}

fn cold_start(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("a temp dir");
    let one_instance = SandboxLimits {
        ready_instances: 1,
        ..SandboxLimits::default()
    };
    // Warm the cache once.
    Sandbox::builder()
        .cache_dir(cache.path())
        .limits(one_instance.clone())
        .build()
        .unwrap();
    let mut group = c.benchmark_group("cold_start");
    group.sample_size(10);
    group.bench_function("compile", |b| {
        b.iter(|| {
            Sandbox::builder()
                .limits(one_instance.clone())
                .allocation(Allocation::OnDemand)
                .build()
                .unwrap()
        })
    });
    group.bench_function("cached_code", |b| {
        b.iter(|| {
            Sandbox::builder()
                .cache_dir(cache.path())
                .limits(one_instance.clone())
                .allocation(Allocation::OnDemand)
                .build()
                .unwrap()
        })
    });
    group.finish();
}

fn bounce(c: &mut Criterion) {
    let native = NativePolicy::new(CONFIG).expect("valid config");
    let sandboxed = sandbox(
        PolicySource::Embedded,
        Allocation::Pooling,
        SandboxLimits::default(),
    );
    let request = BounceRequest {
        reporting_mta: "mx1.contoso.com".into(),
        original_sender: "alice@contoso.com".into(),
        recipients: vec!["bob@fabrikam.com".into(), "carol@fabrikam.com".into()],
        original_headers: "From: Alice <alice@contoso.com>\r\nTo: bob@fabrikam.com\r\nSubject: Invoice\r\nMessage-ID: <1@contoso.com>\r\n".into(),
        reply: SmtpReply {
            code: 550,
            status: "5.1.8".into(),
            text: "Access denied, bad outbound sender".into(),
        },
        restriction: None,
        arrival: NOW,
        now: NOW + 1,
        bounce_id: "b-1".into(),
    };
    let mut group = c.benchmark_group("bounce");
    group.bench_function("native", |b| {
        b.iter(|| native.render_bounce(black_box(&request)))
    });
    group.bench_function("sandboxed", |b| {
        b.iter(|| sandboxed.render_bounce(black_box(&request)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, decision, instances, cold_start, bounce);
criterion_main!(benches);
