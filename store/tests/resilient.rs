//! [`ResilientStore`] over real backends: the shared contract, and a real full filesystem (a
//! 2 MiB tmpfs, mounted by the test, which runs as root) under an embedded store.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use quench_store::conformance::{counter, increment, record};
use quench_store::full_disk::{Tmpfs, fill};
use quench_store::{
    AuditQuery, Durability, EmbeddedStore, MemoryStore, ResilientStore, StateStore, Update,
};

fn embedded_factory(dir: PathBuf) -> quench_store::Factory {
    Box::new(move || EmbeddedStore::open(&dir).map(|store| Box::new(store) as Box<dyn StateStore>))
}

#[test]
fn resilient_store_over_memory_conforms() {
    quench_store::conformance::run_all(|| {
        ResilientStore::new(Box::new(|| Ok(Box::new(MemoryStore::new())))).unwrap()
    });
}

#[test]
fn resilient_store_over_embedded_conforms() {
    let root = tempfile::tempdir().unwrap();
    let mut n = 0;
    quench_store::conformance::run_all(|| {
        n += 1;
        ResilientStore::new(embedded_factory(root.path().join(format!("store-{n}")))).unwrap()
    });
}

#[test]
fn a_backend_that_cannot_open_at_start_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let _holder = EmbeddedStore::open(root.path()).unwrap();
    let err = ResilientStore::new(embedded_factory(root.path().to_owned())).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("first open"), "{text}");
    assert!(text.contains("already open"), "{text}");
}

/// A restriction's state: a recognisable 600-byte blob naming the key (big enough that
/// a few hundred of them need new pages in the file).
fn restricted_state(key: &str) -> Vec<u8> {
    let mut state = key.as_bytes().to_vec();
    state.resize(600, b'r');
    state
}

fn restrict(store: &dyn StateStore, key: &str) {
    store
        .update(key, &mut |_| Update {
            state: Some(restricted_state(key)),
            durability: Durability::Immediate,
            restricted: Some(true),
        })
        .unwrap_or_else(|err| panic!("restriction of {key}: {err:#}"));
}

/// Issue 12 on a real full disk: known restrictions stay restricted, new ones are kept in
/// memory, counters keep counting, and once space is freed, everything reaches the file.
#[test]
fn a_full_disk_does_not_stop_enforcement_and_everything_reaches_the_file_after() {
    let tmpfs = Tmpfs::mount("2m");
    let data = tmpfs.path().join("data");
    // What the file must hold in the end: key -> state, and the restricted keys.
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut restricted: Vec<String> = Vec::new();
    let mut increments = 0u64;
    let mut audit_details = Vec::new();
    let counted = "user:counted@contoso.com";
    let known = "user:known@contoso.com";
    let filler;
    {
        let store = ResilientStore::new(embedded_factory(data.clone())).unwrap();
        restrict(&store, known);
        expected.insert(known.into(), restricted_state(known));
        restricted.push(known.into());
        for _ in 0..10 {
            increment(&store, counted, Durability::Lazy);
            increments += 1;
        }
        store.flush().unwrap();
        assert!(!store.degraded());

        filler = fill(tmpfs.path());
        // Keep deciding: restrictions of new keys (they need new pages), counters, audit.
        let mut after_degraded = 0;
        for i in 0..5_000 {
            let key = format!("user:new{i}@contoso.com");
            restrict(&store, &key);
            expected.insert(key.clone(), restricted_state(&key));
            restricted.push(key.clone());
            increment(&store, counted, Durability::Lazy);
            increments += 1;
            let detail = format!("restriction {i}");
            store
                .append_audit(&record(i, "restrict", Some(&key), &detail))
                .unwrap();
            audit_details.push(detail);
            store.flush().unwrap();
            if store.degraded() {
                after_degraded += 1;
                if after_degraded == 50 {
                    break;
                }
            }
        }
        assert!(store.degraded(), "5,000 restrictions never filled the disk");
        let unsaved = store.unsaved();
        eprintln!("degraded; {unsaved:?}");
        assert!(unsaved.restrictions >= 50, "{unsaved:?}");
        assert!(unsaved.audit_records >= 50, "{unsaved:?}");
        assert_eq!(unsaved.dropped_states, 0);

        // Known restrictions are answered, from memory, and stay restricted.
        let listed = store.restricted_keys().unwrap();
        for key in &restricted {
            assert!(listed.contains(key), "{key} no longer restricted");
            assert_eq!(
                store.get(key).unwrap().as_deref(),
                Some(restricted_state(key).as_slice())
            );
        }
        // Counters keep counting.
        assert_eq!(counter(&store.get(counted).unwrap().unwrap()), increments);
        store
            .update(counted, &mut |state| {
                assert_eq!(counter(state), increments, "decided on the latest count");
                Update {
                    state: None,
                    durability: Durability::Lazy,
                    restricted: None,
                }
            })
            .unwrap();

        // Free the disk: the next flushes (every second in a host) write everything back.
        std::fs::remove_file(&filler).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while store.degraded() {
            assert!(Instant::now() < deadline, "never recovered: {store:?}");
            std::thread::sleep(Duration::from_millis(50));
            store.flush().unwrap();
        }
        assert_eq!(store.unsaved().states, 0);
        assert_eq!(store.unsaved().audit_records, 0);
    }
    expected.insert(counted.into(), increments.to_le_bytes().to_vec());

    // Everything is in the file: reopen it without the wrapper.
    let store = EmbeddedStore::open(&data).unwrap();
    for (key, state) in &expected {
        assert_eq!(
            store.get(key).unwrap().as_deref(),
            Some(state.as_slice()),
            "{key} did not reach the file"
        );
    }
    restricted.sort();
    assert_eq!(store.restricted_keys().unwrap(), restricted);
    let log: Vec<String> = store
        .audit(&AuditQuery::default())
        .unwrap()
        .into_iter()
        .map(|r| r.detail)
        .collect();
    assert_eq!(log, audit_details, "every audit record, in order");
}

/// The issue 12 load (deciders, unblockers, a flush loop) through the wrapper over a real
/// file: the wrapper's own locking and restricted cache lose nothing either.
#[test]
fn resilient_store_under_the_concurrent_load_matches_the_model() {
    use quench_store::stress::{self, Load};
    let dir = tempfile::tempdir().unwrap();
    let model = {
        let store = ResilientStore::new(embedded_factory(dir.path().to_owned())).unwrap();
        let model = stress::run(&store, &Load::default());
        model.check(&store);
        model
    };
    assert!(model.immediate_writes() > 50, "too few immediate writes");
    model.check(&EmbeddedStore::open(dir.path()).unwrap());
}

/// The issue 12 load (deciders, unblockers, a flush loop) while the disk under the file fills
/// up and is freed again: degraded mode starts and ends under concurrent updates, and in the
/// end the file holds exactly the model's last state of every key. A grower thread restricts
/// new keys with big states meanwhile, so the file must grow into the full disk.
#[test]
fn the_concurrent_load_across_a_full_disk_episode_matches_the_model() {
    use quench_store::stress::{self, Load};
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmpfs = Tmpfs::mount("2m");
    let data = tmpfs.path().join("data");
    let store = ResilientStore::new(embedded_factory(data.clone())).unwrap();
    let load = Load {
        duration: Duration::from_secs(3),
        ..Load::default()
    };
    let was_degraded = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let (model, grown) = std::thread::scope(|scope| {
        let grower = scope.spawn(|| {
            let mut grown = Vec::new();
            let start = Instant::now();
            let mut filler = None;
            while !stop.load(Ordering::SeqCst) {
                let elapsed = start.elapsed();
                if filler.is_none() && elapsed > Duration::from_millis(300) {
                    filler = Some(fill(tmpfs.path()));
                }
                if elapsed > Duration::from_millis(1_500)
                    && let Some(path) = filler.take()
                {
                    std::fs::remove_file(path).unwrap();
                }
                if store.degraded() {
                    was_degraded.store(true, Ordering::SeqCst);
                }
                // Only while the disk is full: the 2 MiB must not run out for good.
                if filler.is_some() && grown.len() < 1_000 {
                    let key = format!("user:grown{}@contoso.com", grown.len());
                    restrict(&store, &key);
                    grown.push(key);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            if let Some(path) = filler {
                std::fs::remove_file(path).unwrap();
            }
            grown
        });
        let model = stress::run(&store, &load);
        stop.store(true, Ordering::SeqCst);
        (model, grower.join().unwrap())
    });
    assert!(
        was_degraded.load(Ordering::SeqCst),
        "the disk never filled up under the load ({} keys grown)",
        grown.len()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.degraded() {
        assert!(Instant::now() < deadline, "never recovered: {store:?}");
        std::thread::sleep(Duration::from_millis(50));
        store.flush().unwrap();
    }
    eprintln!(
        "{} updates, {} immediate, {} flushes, {} grown keys; {:?}",
        model.acked.values().map(|v| v.len()).sum::<usize>(),
        model.immediate_writes(),
        model.flushes,
        grown.len(),
        store.unsaved()
    );
    model.check(&store);
    drop(store);
    let file = EmbeddedStore::open(&data).unwrap();
    model.check(&file);
    let restricted = file.restricted_keys().unwrap();
    for key in &grown {
        assert_eq!(
            file.get(key).unwrap().as_deref(),
            Some(restricted_state(key).as_slice()),
            "{key} did not reach the file"
        );
        assert!(restricted.contains(key), "{key} not restricted");
    }
}
