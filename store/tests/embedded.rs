//! The redb store, through real files in a temporary directory: the shared contract, reopening,
//! locking and unusable directories. Crash durability is in `embedded_crash.rs`.

use quench_store::conformance::{counter, increment, mark, record, set};
use quench_store::{AuditQuery, Durability, EmbeddedStore, StateStore, StoreError};

#[test]
fn embedded_store_conforms() {
    let root = tempfile::tempdir().unwrap();
    let mut n = 0;
    quench_store::conformance::run_all(|| {
        n += 1;
        EmbeddedStore::open(root.path().join(format!("store-{n}"))).unwrap()
    });
}

#[test]
fn reopen_keeps_state_index_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let store = EmbeddedStore::open(&data).unwrap();
        assert_eq!(store.path(), data.join("quench.redb"));
        set(
            &store,
            "user:alice@contoso.com",
            b"alice",
            Durability::Immediate,
        );
        for _ in 0..3 {
            increment(&store, "user:bob@contoso.com", Durability::Lazy);
        }
        mark(&store, "user:alice@contoso.com", true);
        mark(&store, "connector:relay-1", true);
        store
            .append_audit(&record(
                10,
                "restrict",
                Some("user:alice@contoso.com"),
                "first",
            ))
            .unwrap();
        store
            .append_audit(&record(20, "list", None, "second"))
            .unwrap();
        store.flush().unwrap();
    }
    let store = EmbeddedStore::open(&data).unwrap();
    assert_eq!(
        store.get("user:alice@contoso.com").unwrap().as_deref(),
        Some(&b"alice"[..])
    );
    assert_eq!(
        counter(&store.get("user:bob@contoso.com").unwrap().unwrap()),
        3
    );
    assert_eq!(store.entity_count().unwrap(), 2);
    assert_eq!(
        store.restricted_keys().unwrap(),
        ["connector:relay-1", "user:alice@contoso.com"]
    );
    let log = store.audit(&AuditQuery::default()).unwrap();
    assert_eq!(
        log.iter()
            .map(|r| (r.seq, r.detail.as_str()))
            .collect::<Vec<_>>(),
        [(1, "first"), (2, "second")]
    );
    // The log goes on from where it was, and the indexes still answer.
    assert_eq!(
        store
            .append_audit(&record(30, "unblock", None, ""))
            .unwrap(),
        3
    );
    let alice = store
        .audit(&AuditQuery {
            entity: Some("user:alice@contoso.com".into()),
            since: Some(5),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].detail, "first");
}

#[test]
fn lazy_writes_survive_a_clean_close_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        for _ in 0..5 {
            increment(&store, "user:carol@contoso.com", Durability::Lazy);
        }
        // No flush: dropping the store must make them durable.
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(
        counter(&store.get("user:carol@contoso.com").unwrap().unwrap()),
        5
    );
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedStore::open(dir.path()).unwrap();
    let err = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("already open"), "{message}");
    assert!(message.contains("quench.redb"), "{message}");
    drop(first);
    EmbeddedStore::open(dir.path()).expect("the lock goes with the store");
}

#[test]
fn an_unusable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the data directory should be.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = EmbeddedStore::open(&file).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("cannot create the data directory"),
        "{message}"
    );
    assert!(message.contains("not-a-dir"), "{message}");

    // A directory holding something that is not a redb file.
    let garbage = dir.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("quench.redb"), vec![0xA5; 8192]).unwrap();
    let err = EmbeddedStore::open(&garbage).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("quench.redb"), "{message}");
}

/// Issue 12: deciders (lazy counters, some immediate restrictions), unblockers and a flusher in
/// a tight loop, all at once on a real file; after drop and reopen, every key holds exactly the
/// state of its last acknowledged update and the index matches. Failed on the flush that read
/// the write buffer before beginning its transaction (an immediate write committed in between
/// was overwritten by the older buffered state).
#[test]
fn flushing_never_overwrites_a_newer_immediate_write() {
    use quench_store::stress::{self, Load};
    let dir = tempfile::tempdir().unwrap();
    let model = {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let model = stress::run(&store, &Load::default());
        model.check(&store);
        model
    };
    eprintln!(
        "{} updates, {} immediate, {} flushes",
        model.acked.values().map(|v| v.len()).sum::<usize>(),
        model.immediate_writes(),
        model.flushes
    );
    assert!(
        model.immediate_writes() > 50,
        "too few immediate writes to race"
    );
    assert!(model.flushes > 50, "too few flushes to race");
    let store = EmbeddedStore::open(dir.path()).unwrap();
    model.check(&store);
}

/// Pruning the whole audit log keeps seqs going across a reopen: the highest pruned seq is in
/// the file, not only in memory.
#[test]
fn audit_seqs_go_on_after_pruning_everything_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        for at in [10, 20, 30] {
            store
                .append_audit(&record(at, "restrict", None, ""))
                .unwrap();
        }
        assert_eq!(store.prune_audit(i64::MAX, 100).unwrap(), 3);
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(store.audit(&AuditQuery::default()).unwrap().is_empty());
    assert_eq!(
        store.append_audit(&record(40, "list", None, "")).unwrap(),
        4
    );
}

/// Selects the child role of [`the_data_directory_and_file_are_owner_only_whatever_the_umask`].
const MODES_CHILD_DIR: &str = "QUENCH_STORE_MODES_CHILD_DIR";

/// Not a test of its own: opens the store in the directory the parent names, under the umask
/// the parent's shell set. Does nothing unless [`MODES_CHILD_DIR`] is set.
#[test]
fn modes_child_role() {
    if let Ok(dir) = std::env::var(MODES_CHILD_DIR) {
        EmbeddedStore::open(dir).expect("child opens the store");
    }
}

/// The data directory is 0700 and quench.redb 0600 after an open under umask 022, both when
/// the store creates them and when they existed with looser modes.
#[test]
fn the_data_directory_and_file_are_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    let open_under_umask_022 = |dir: &std::path::Path| {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"umask 022 && exec "$0" --exact modes_child_role --nocapture"#)
            .arg(std::env::current_exe().unwrap())
            .env(MODES_CHILD_DIR, dir)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "the child could not open the store: {status:?}"
        );
    };
    // Created by the store.
    let fresh = root.path().join("fresh");
    open_under_umask_022(&fresh);
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("quench.redb")), 0o600);
    // Existing, world-readable.
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        fresh.join("quench.redb"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    open_under_umask_022(&fresh);
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("quench.redb")), 0o600);
}

/// A shared sticky directory (like /tmp) is refused as a data directory rather than made 0700
/// under everyone else.
#[test]
fn a_shared_sticky_directory_is_refused_not_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let err = EmbeddedStore::open(&shared).unwrap_err();
    assert!(err.to_string().contains("shared directory"), "{err}");
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777, "left as it was");
}
