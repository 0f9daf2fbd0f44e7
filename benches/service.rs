//! One decision through the host API (`Service::decide`: store read, sandboxed policy, store
//! write), on the in-memory store and on the durable embedded store, over many senders; and
//! one page of the retention sweep on the embedded store, examining states that must stay and
//! removing states that have gone idle.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use quench::retention::sweep_page;
use quench::sandbox::Sandbox;
use quench::service::Service;
use quench::{Entity, Submission};
use quench_store::{EmbeddedStore, MemoryStore, StateStore};
use std::sync::Arc;

/// 2026-11-23T10:00:00Z.
const NOW: i64 = 1_795_428_000;

/// Senders cycled through, so reads and writes touch a realistic spread of keys.
const SENDERS: u64 = 10_000;

fn service(store: Arc<dyn StateStore>) -> Service {
    let policy = Sandbox::builder()
        .config(r#"accepted_domains = ["contoso.com"]"#)
        .build()
        .expect("the default policy loads");
    Service::new(policy, store, quench::FailAction::Open)
}

fn submissions() -> impl FnMut() -> Submission {
    let mut i = 0u64;
    move || {
        i += 1;
        Submission {
            entity: Entity::user(&format!("user{}@contoso.com", i % SENDERS)),
            sender: format!("user{}@contoso.com", i % SENDERS),
            recipients: vec![format!("r{}@fabrikam.com", i % 97)],
            message_id: Some(format!("m{}", i / 3)),
        }
    }
}

fn decide(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let memory = service(Arc::new(MemoryStore::new()));
    let embedded = service(Arc::new(
        EmbeddedStore::open(dir.path()).expect("store opens"),
    ));
    let mut group = c.benchmark_group("service_decide");
    let mut next = submissions();
    group.bench_function("memory_store", |b| b.iter(|| memory.decide(&next(), NOW)));
    let mut next = submissions();
    group.bench_function("embedded_store", |b| {
        b.iter(|| embedded.decide(&next(), NOW))
    });
    group.finish();
}

/// Keys per sweep page: `[serve] sweep_page_size`'s default.
const PAGE: usize = 256;

fn retention(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Arc<dyn StateStore> =
        Arc::new(EmbeddedStore::open(dir.path()).expect("store opens"));
    let svc = service(store.clone());
    let mut next = submissions();
    for _ in 0..SENDERS {
        svc.decide(&next(), NOW);
    }
    store.flush().expect("flush");
    let mut group = c.benchmark_group("retention_sweep_page");
    // Every state was written at NOW: none is idle, the page only reads and asks.
    group.bench_function("examine_256_kept", |b| {
        b.iter(|| sweep_page(&svc, None, PAGE, NOW + 60).expect("sweep"))
    });
    // Two days on, every state is idle: the page reads, asks and deletes each one. Each
    // iteration first writes a fresh page of states (not timed).
    let mut round = 0u64;
    group.bench_function("remove_256_idle", |b| {
        b.iter_batched(
            || {
                round += 1;
                for i in 0..PAGE {
                    let who = format!("a{round:06}.{i:03}@contoso.com");
                    svc.decide(
                        &Submission {
                            entity: Entity::user(&who),
                            sender: who.clone(),
                            recipients: vec!["r@fabrikam.com".into()],
                            message_id: None,
                        },
                        NOW,
                    );
                }
                store.flush().expect("flush");
            },
            |()| {
                let (report, _) = sweep_page(&svc, None, PAGE, NOW + 2 * 86_400).expect("sweep");
                assert_eq!(report.removed, PAGE as u64, "the page was all idle");
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, decide, retention);
criterion_main!(benches);
