//! One decision through the host API (`Service::decide`: store read, sandboxed policy, store
//! write), on the in-memory store and on the durable embedded store, over many senders.

use criterion::{Criterion, criterion_group, criterion_main};
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

criterion_group!(benches, decide);
criterion_main!(benches);
