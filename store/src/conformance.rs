//! The behaviour every [`StateStore`] must show, as a test kit (the `conformance` feature).
//!
//! Each check takes a fresh, empty store and panics, saying what broke, when the store
//! misbehaves. [`run_all`] runs every check, each on a new store from a factory. A backend's
//! tests call it:
//!
//! ```no_run
//! # #[cfg(feature = "conformance")]
//! quench_store::conformance::run_all(|| quench_store::MemoryStore::new());
//! ```
//!
//! Checks go through the trait only, so they run unchanged against any backend (memory, the
//! redb file, a real Redis) and any wrapper a host puts around one.

use std::collections::BTreeSet;
use std::thread;

use crate::{AuditQuery, AuditRecord, Durability, StateStore, Update};

/// Threads hammering one key in [`concurrent_updates_are_atomic`]: more than the cores of the
/// machines tests run on, so updates really interleave.
pub const THREADS: usize = 8;
/// Increments per thread in [`concurrent_updates_are_atomic`].
pub const INCREMENTS_PER_THREAD: u64 = 200;

/// One check: takes a fresh, empty store, panics when it misbehaves.
pub type Check = fn(&dyn StateStore);

/// Runs every check, each on a new empty store from `new_store`.
pub fn run_all<S: StateStore>(mut new_store: impl FnMut() -> S) {
    let checks: &[(&str, Check)] = &[
        ("missing_key_reads_empty", missing_key_reads_empty),
        (
            "update_stores_and_passes_state",
            update_stores_and_passes_state,
        ),
        ("keys_and_states_are_opaque", keys_and_states_are_opaque),
        ("both_durabilities_apply", both_durabilities_apply),
        ("restricted_index", restricted_index),
        (
            "concurrent_updates_are_atomic",
            concurrent_updates_are_atomic,
        ),
        ("audit_append_assigns_seq", audit_append_assigns_seq),
        ("audit_query_filters", audit_query_filters),
        ("concurrent_audit_appends", concurrent_audit_appends),
        ("scan_walks_every_key", scan_walks_every_key),
        (
            "remove_if_removes_what_it_is_told",
            remove_if_removes_what_it_is_told,
        ),
        (
            "prune_audit_deletes_the_oldest",
            prune_audit_deletes_the_oldest,
        ),
    ];
    for (name, check) in checks {
        eprintln!("conformance: {name}");
        let store = new_store();
        check(&store);
    }
}

/// An update that sets `key` to `state`.
pub fn set(store: &dyn StateStore, key: &str, state: &[u8], durability: Durability) {
    store
        .update(key, &mut |_| Update {
            state: Some(state.to_vec()),
            durability,
            restricted: None,
        })
        .unwrap_or_else(|err| panic!("update of {key}: {err}"));
}

/// Adds `key` to the restricted index (`true`) or removes it, without touching its state.
pub fn mark(store: &dyn StateStore, key: &str, restricted: bool) {
    store
        .update(key, &mut |_| Update {
            state: None,
            durability: Durability::Immediate,
            restricted: Some(restricted),
        })
        .unwrap_or_else(|err| panic!("index update of {key}: {err}"));
}

/// Increments the little-endian u64 counter in the state of `key` (empty state = 0).
pub fn increment(store: &dyn StateStore, key: &str, durability: Durability) {
    store
        .update(key, &mut |state| Update {
            state: Some((counter(state) + 1).to_le_bytes().to_vec()),
            durability,
            restricted: None,
        })
        .unwrap_or_else(|err| panic!("increment of {key}: {err}"));
}

/// The counter [`increment`] keeps in a state.
pub fn counter(state: &[u8]) -> u64 {
    match state {
        [] => 0,
        bytes => u64::from_le_bytes(
            bytes
                .try_into()
                .unwrap_or_else(|_| panic!("counter state has {} bytes, not 8", bytes.len())),
        ),
    }
}

/// An audit record as a caller builds it (seq 0).
pub fn record(at: i64, action: &str, entity: Option<&str>, detail: &str) -> AuditRecord {
    AuditRecord {
        seq: 0,
        at,
        actor: "policy".to_owned(),
        action: action.to_owned(),
        entity: entity.map(str::to_owned),
        outcome: "ok".to_owned(),
        detail: detail.to_owned(),
    }
}

/// A key never written reads as `None`, reaches `decide` as empty state, and a no-op update
/// creates nothing.
pub fn missing_key_reads_empty(store: &dyn StateStore) {
    assert_eq!(store.get("user:nobody@contoso.com").unwrap(), None);
    let mut seen = None;
    store
        .update("user:nobody@contoso.com", &mut |state| {
            seen = Some(state.to_vec());
            Update {
                state: None,
                durability: Durability::Lazy,
                restricted: None,
            }
        })
        .unwrap();
    assert_eq!(seen, Some(Vec::new()), "decide must see empty state");
    assert_eq!(store.get("user:nobody@contoso.com").unwrap(), None);
    assert_eq!(store.entity_count().unwrap(), 0);
    assert!(store.restricted_keys().unwrap().is_empty());
    assert!(store.audit(&AuditQuery::default()).unwrap().is_empty());
    store.flush().unwrap();
}

/// An update stores its state, the next one sees it, `state: None` keeps it.
pub fn update_stores_and_passes_state(store: &dyn StateStore) {
    set(store, "user:alice@contoso.com", b"one", Durability::Lazy);
    assert_eq!(
        store.get("user:alice@contoso.com").unwrap().as_deref(),
        Some(&b"one"[..])
    );
    let mut seen = Vec::new();
    store
        .update("user:alice@contoso.com", &mut |state| {
            seen = state.to_vec();
            Update {
                state: Some(b"two".to_vec()),
                durability: Durability::Immediate,
                restricted: None,
            }
        })
        .unwrap();
    assert_eq!(seen, b"one", "decide must see the stored state");
    store
        .update("user:alice@contoso.com", &mut |_| Update {
            state: None,
            durability: Durability::Immediate,
            restricted: None,
        })
        .unwrap();
    assert_eq!(
        store.get("user:alice@contoso.com").unwrap().as_deref(),
        Some(&b"two"[..]),
        "state: None must keep the stored state"
    );
    set(store, "user:bob@contoso.com", b"bob", Durability::Lazy);
    assert_eq!(store.entity_count().unwrap(), 2);
    assert_eq!(
        store.get("user:alice@contoso.com").unwrap().as_deref(),
        Some(&b"two"[..]),
        "keys must not share state"
    );
}

/// Any bytes are a state (including none at all), any string is a key.
pub fn keys_and_states_are_opaque(store: &dyn StateStore) {
    let every_byte: Vec<u8> = (0..=255).collect();
    let large: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let keys = [
        "user:ÅSA.Öberg@exämple.se",
        "connector:relay 1",
        "user:\"quoted\"@x",
        "",
    ];
    for (i, key) in keys.iter().enumerate() {
        set(store, key, &every_byte[i..], Durability::Lazy);
    }
    set(
        store,
        "user:large@contoso.com",
        &large,
        Durability::Immediate,
    );
    set(store, "user:empty@contoso.com", b"", Durability::Immediate);
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            store.get(key).unwrap().as_deref(),
            Some(&every_byte[i..]),
            "state of {key:?}"
        );
    }
    assert_eq!(store.get("user:large@contoso.com").unwrap(), Some(large));
    assert_eq!(
        store.get("user:empty@contoso.com").unwrap(),
        Some(Vec::new()),
        "an empty state is stored, not absent"
    );
    assert_eq!(store.entity_count().unwrap(), keys.len() as u64 + 2);
}

/// Lazy and immediate writes are both visible at once; `flush` succeeds with or without
/// pending lazy writes.
pub fn both_durabilities_apply(store: &dyn StateStore) {
    store.flush().unwrap();
    for i in 0..10 {
        increment(store, "user:lazy@contoso.com", Durability::Lazy);
        increment(store, "user:immediate@contoso.com", Durability::Immediate);
        if i % 3 == 0 {
            store.flush().unwrap();
        }
    }
    store.flush().unwrap();
    store.flush().unwrap();
    for key in ["user:lazy@contoso.com", "user:immediate@contoso.com"] {
        assert_eq!(counter(&store.get(key).unwrap().unwrap()), 10, "{key}");
    }
}

/// The restricted index: adds and removes with the update that decides them, lists sorted,
/// idempotent, independent of the state.
pub fn restricted_index(store: &dyn StateStore) {
    mark(store, "user:carol@contoso.com", true);
    store
        .update("user:alice@contoso.com", &mut |_| Update {
            state: Some(b"restricted".to_vec()),
            durability: Durability::Immediate,
            restricted: Some(true),
        })
        .unwrap();
    mark(store, "user:bob@contoso.com", true);
    mark(store, "user:bob@contoso.com", true);
    assert_eq!(
        store.restricted_keys().unwrap(),
        [
            "user:alice@contoso.com",
            "user:bob@contoso.com",
            "user:carol@contoso.com"
        ],
        "sorted, each key once"
    );
    assert_eq!(
        store.entity_count().unwrap(),
        1,
        "an index change alone stores no state"
    );
    assert_eq!(store.get("user:bob@contoso.com").unwrap(), None);

    store
        .update("user:alice@contoso.com", &mut |state| {
            assert_eq!(state, b"restricted");
            Update {
                state: Some(b"unblocked".to_vec()),
                durability: Durability::Immediate,
                restricted: Some(false),
            }
        })
        .unwrap();
    mark(store, "user:nobody@contoso.com", false);
    assert_eq!(
        store.restricted_keys().unwrap(),
        ["user:bob@contoso.com", "user:carol@contoso.com"]
    );
    assert_eq!(
        store.get("user:alice@contoso.com").unwrap().as_deref(),
        Some(&b"unblocked"[..])
    );
    mark(store, "user:bob@contoso.com", false);
    mark(store, "user:carol@contoso.com", false);
    assert!(store.restricted_keys().unwrap().is_empty());
}

/// [`THREADS`] threads increment one shared key (and each its own key, and toggle its own
/// restricted entry) [`INCREMENTS_PER_THREAD`] times: no increment may be lost.
pub fn concurrent_updates_are_atomic(store: &dyn StateStore) {
    thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                let own = format!("user:t{t}@contoso.com");
                for i in 0..INCREMENTS_PER_THREAD {
                    // Mostly counters (lazy), now and then a restriction (immediate).
                    let durability = if i % 50 == 0 {
                        Durability::Immediate
                    } else {
                        Durability::Lazy
                    };
                    increment(store, "user:shared@contoso.com", durability);
                    store
                        .update(&own, &mut |state| Update {
                            state: Some((counter(state) + 1).to_le_bytes().to_vec()),
                            durability,
                            restricted: Some(i % 2 == 0),
                        })
                        .unwrap();
                }
            });
        }
    });
    let total = THREADS as u64 * INCREMENTS_PER_THREAD;
    assert_eq!(
        counter(&store.get("user:shared@contoso.com").unwrap().unwrap()),
        total,
        "lost increments on a shared key"
    );
    for t in 0..THREADS {
        let own = format!("user:t{t}@contoso.com");
        assert_eq!(
            counter(&store.get(&own).unwrap().unwrap()),
            INCREMENTS_PER_THREAD
        );
    }
    // The last update of each thread had i odd, so it removed its key.
    assert!(store.restricted_keys().unwrap().is_empty());
    assert_eq!(store.entity_count().unwrap(), THREADS as u64 + 1);
    store.flush().unwrap();
}

/// Appends get strictly increasing seqs from 1 (whatever seq the caller passed) and come back
/// exactly as given.
pub fn audit_append_assigns_seq(store: &dyn StateStore) {
    let mut given = record(
        1_700_000_000,
        "restrict",
        Some("user:alice@contoso.com"),
        "",
    );
    given.seq = 999;
    given.detail = "recipients per hour 501 > 500; last message <abc@contoso.com> \"é\"".into();
    let first = store.append_audit(&given).unwrap();
    assert!(first >= 1, "seq starts at 1, got {first}");
    let mut seqs = vec![first];
    for i in 1..5 {
        seqs.push(
            store
                .append_audit(&record(1_700_000_000 + i, "list", None, ""))
                .unwrap(),
        );
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs must increase: {seqs:?}"
    );
    let all = store.audit(&AuditQuery::default()).unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        seqs,
        "oldest first"
    );
    assert_eq!(
        all[0],
        AuditRecord {
            seq: first,
            ..given
        }
    );
    assert_eq!(all[1].entity, None);
}

/// Queries by since, entity, action and limit, alone and together; always oldest first, and a
/// limit keeps the newest matches.
pub fn audit_query_filters(store: &dyn StateStore) {
    // Times deliberately out of order (hosts' clocks differ): since filters on `at`, order is
    // by seq.
    let log = [
        (100, "restrict", Some("user:alice@contoso.com")),
        (90, "list", None),
        (200, "unblock", Some("user:alice@contoso.com")),
        (150, "restrict", Some("user:bob@contoso.com")),
        (300, "restrict", Some("user:alice@contoso.com")),
        (250, "get", Some("user:bob@contoso.com")),
        (50, "restrict", Some("user:carol@contoso.com")),
    ];
    let mut seqs = Vec::new();
    for (i, (at, action, entity)) in log.iter().enumerate() {
        seqs.push(
            store
                .append_audit(&record(*at, action, *entity, &format!("#{i}")))
                .unwrap(),
        );
    }
    let details = |query: AuditQuery| -> Vec<String> {
        let found = store.audit(&query).unwrap();
        let found_seqs: Vec<u64> = found.iter().map(|r| r.seq).collect();
        let mut sorted = found_seqs.clone();
        sorted.sort_unstable();
        assert_eq!(found_seqs, sorted, "oldest first for {query:?}");
        found.into_iter().map(|r| r.detail).collect()
    };
    let alice = Some("user:alice@contoso.com".to_owned());
    assert_eq!(
        details(AuditQuery::default()),
        ["#0", "#1", "#2", "#3", "#4", "#5", "#6"]
    );
    assert_eq!(
        details(AuditQuery {
            since: Some(150),
            ..Default::default()
        }),
        ["#2", "#3", "#4", "#5"],
        "since is inclusive"
    );
    assert_eq!(
        details(AuditQuery {
            entity: alice.clone(),
            ..Default::default()
        }),
        ["#0", "#2", "#4"]
    );
    assert_eq!(
        details(AuditQuery {
            action: Some("restrict".into()),
            ..Default::default()
        }),
        ["#0", "#3", "#4", "#6"]
    );
    assert_eq!(
        details(AuditQuery {
            limit: Some(2),
            ..Default::default()
        }),
        ["#5", "#6"],
        "limit keeps the newest"
    );
    assert_eq!(
        details(AuditQuery {
            entity: alice.clone(),
            action: Some("restrict".into()),
            ..Default::default()
        }),
        ["#0", "#4"]
    );
    assert_eq!(
        details(AuditQuery {
            entity: alice.clone(),
            since: Some(150),
            ..Default::default()
        }),
        ["#2", "#4"]
    );
    assert_eq!(
        details(AuditQuery {
            entity: alice.clone(),
            limit: Some(1),
            ..Default::default()
        }),
        ["#4"]
    );
    assert_eq!(
        details(AuditQuery {
            since: Some(100),
            action: Some("restrict".into()),
            limit: Some(2),
            ..Default::default()
        }),
        ["#3", "#4"]
    );
    assert_eq!(
        details(AuditQuery {
            limit: Some(100),
            ..Default::default()
        })
        .len(),
        7
    );
    assert!(
        details(AuditQuery {
            limit: Some(0),
            ..Default::default()
        })
        .is_empty()
    );
    assert!(
        details(AuditQuery {
            entity: Some("user:nobody@contoso.com".into()),
            ..Default::default()
        })
        .is_empty()
    );
    assert!(
        details(AuditQuery {
            since: Some(301),
            ..Default::default()
        })
        .is_empty()
    );
    assert!(
        details(AuditQuery {
            entity: Some("user:bob@contoso.com".into()),
            action: Some("unblock".into()),
            ..Default::default()
        })
        .is_empty()
    );
    let first = store
        .audit(&AuditQuery {
            entity: alice,
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(first[0].seq, seqs[4], "records carry their seq");
}

/// Appends from several threads: every one is kept, each with its own seq.
pub fn concurrent_audit_appends(store: &dyn StateStore) {
    const PER_THREAD: usize = 25;
    let seqs: Vec<u64> = thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                scope.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let entity = format!("user:t{t}@contoso.com");
                            store
                                .append_audit(&record(i as i64, "restrict", Some(&entity), ""))
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), THREADS * PER_THREAD, "seqs must be unique");
    let all = store.audit(&AuditQuery::default()).unwrap();
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<BTreeSet<_>>(),
        unique,
        "every append is in the log"
    );
    let one = store
        .audit(&AuditQuery {
            entity: Some("user:t3@contoso.com".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(one.len(), PER_THREAD);
    assert_eq!(
        one.iter().map(|r| r.at).collect::<Vec<_>>(),
        (0..PER_THREAD as i64).collect::<Vec<_>>(),
        "one thread's appends stay in its order"
    );
}

/// Keys written by [`scan_walks_every_key`]: several pages of every backend's page size.
pub const SCAN_KEYS: usize = 1_234;

/// A walk with a small page size returns every key with state (duplicates allowed), keys
/// with only a restricted-index entry are not keys with state, and the walk ends.
pub fn scan_walks_every_key(store: &dyn StateStore) {
    let mut written = BTreeSet::new();
    for i in 0..SCAN_KEYS {
        let key = format!("user:s{i}@contoso.com");
        let durability = if i % 3 == 0 {
            Durability::Immediate
        } else {
            Durability::Lazy
        };
        set(store, &key, b"x", durability);
        written.insert(key);
    }
    mark(store, "user:index-only@contoso.com", true);
    store.flush().unwrap();
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    for page_number in 0.. {
        assert!(page_number < 10 * SCAN_KEYS, "the walk does not end");
        let page = store
            .scan_keys(cursor.as_deref(), 100)
            .unwrap_or_else(|err| panic!("page {page_number} of the walk: {err}"));
        seen.extend(page.keys);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen, written,
        "the walk returns exactly the keys with state"
    );
}

/// `remove_if` deletes a key (state and index entry) only when its closure says so, never
/// asks about a key without state, and a removed key reads as new.
pub fn remove_if_removes_what_it_is_told(store: &dyn StateStore) {
    let idle = |state: &[u8]| state == b"idle";
    set(
        store,
        "user:quiet@contoso.com",
        b"idle",
        Durability::Immediate,
    );
    set(
        store,
        "user:busy@contoso.com",
        b"busy",
        Durability::Immediate,
    );
    store
        .update("user:lifted@contoso.com", &mut |_| Update {
            state: Some(b"idle".to_vec()),
            durability: Durability::Immediate,
            restricted: Some(true),
        })
        .unwrap();
    store.flush().unwrap();
    assert_eq!(store.entity_count().unwrap(), 3);

    let mut asked = Vec::new();
    let mut forget = |state: &[u8]| {
        asked.push(state.to_vec());
        idle(state)
    };
    assert!(
        store
            .remove_if("user:quiet@contoso.com", &mut forget)
            .unwrap()
    );
    assert!(
        !store
            .remove_if("user:busy@contoso.com", &mut forget)
            .unwrap()
    );
    assert!(
        store
            .remove_if("user:lifted@contoso.com", &mut forget)
            .unwrap()
    );
    assert!(
        !store
            .remove_if("user:never@contoso.com", &mut forget)
            .unwrap()
    );
    assert_eq!(
        asked,
        [&b"idle"[..], b"busy", b"idle"],
        "asked once per key with state, with that state"
    );

    assert_eq!(store.get("user:quiet@contoso.com").unwrap(), None);
    assert_eq!(store.get("user:lifted@contoso.com").unwrap(), None);
    assert_eq!(
        store.get("user:busy@contoso.com").unwrap().as_deref(),
        Some(&b"busy"[..])
    );
    assert!(
        store.restricted_keys().unwrap().is_empty(),
        "the index entry goes with the state"
    );
    assert_eq!(store.entity_count().unwrap(), 1);
    store
        .update("user:quiet@contoso.com", &mut |state| {
            assert!(state.is_empty(), "a removed key starts from empty state");
            Update {
                state: Some(b"again".to_vec()),
                durability: Durability::Immediate,
                restricted: None,
            }
        })
        .unwrap();
    assert_eq!(store.entity_count().unwrap(), 2);
    store.flush().unwrap();
}

/// `prune_audit` deletes at most `max` records older than `before`, oldest first, with their
/// index entries (entity and time queries no longer find them), and later appends still get
/// seqs above every seq assigned before, even when the newest record was pruned.
pub fn prune_audit_deletes_the_oldest(store: &dyn StateStore) {
    // (at, entity): times out of seq order, like hosts with different clocks.
    let log = [
        (100, Some("user:a@contoso.com")),
        (300, Some("user:b@contoso.com")),
        (200, Some("user:a@contoso.com")),
        (400, None),
        (500, Some("user:a@contoso.com")),
    ];
    let seqs: Vec<u64> = log
        .iter()
        .map(|&(at, entity)| {
            store
                .append_audit(&record(at, "restrict", entity, &format!("at {at}")))
                .unwrap()
        })
        .collect();
    assert_eq!(
        store.prune_audit(1_000, 0).unwrap(),
        0,
        "max 0 deletes nothing"
    );
    assert_eq!(store.prune_audit(100, 10).unwrap(), 0, "nothing before 100");

    // Before 450 are at 100, 200, 300, 400: the oldest two (100, 200) go first.
    assert_eq!(store.prune_audit(450, 2).unwrap(), 2);
    let left = |query: &AuditQuery| -> Vec<i64> {
        store.audit(query).unwrap().iter().map(|r| r.at).collect()
    };
    assert_eq!(left(&AuditQuery::default()), [300, 400, 500]);
    assert_eq!(
        left(&AuditQuery {
            entity: Some("user:a@contoso.com".into()),
            ..Default::default()
        }),
        [500],
        "the entity index forgets pruned records"
    );
    assert_eq!(
        left(&AuditQuery {
            since: Some(0),
            ..Default::default()
        }),
        [300, 400, 500],
        "the time index forgets pruned records"
    );
    // The rest before 450: two, though ten were allowed.
    assert_eq!(store.prune_audit(450, 10).unwrap(), 2);
    assert_eq!(left(&AuditQuery::default()), [500]);

    // Prune everything, including the newest record: seqs still go on.
    assert_eq!(store.prune_audit(i64::MAX, 10).unwrap(), 1);
    assert!(store.audit(&AuditQuery::default()).unwrap().is_empty());
    let next = store
        .append_audit(&record(600, "unblock", Some("user:a@contoso.com"), ""))
        .unwrap();
    assert!(
        next > *seqs.last().unwrap(),
        "seq {next} after pruning reuses one already given ({seqs:?})"
    );
    assert_eq!(left(&AuditQuery::default()), [600]);
}
