//! The Redis store against a real `redis-server` started on a free loopback port in a
//! temporary directory (no persistence) and stopped at the end: the shared contract, several
//! hosts contending for one key, Redis stopped, stalled and restarted.

#![cfg(feature = "redis")]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use quench_store::conformance::{counter, increment, mark, record, set};
use quench_store::{
    AuditQuery, Durability, RedisOptions, RedisStore, ResilientStore, StateStore, StoreError,
    Update,
};

/// A `redis-server` child process; killed and reaped when dropped.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free port. Fails (never skips) when `redis-server` is missing.
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Self::spawn(port, dir.path());
        let server = Self {
            child,
            port,
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    fn spawn(port: u16, dir: &Path) -> Child {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run redis-server ({err}): the Redis tests need it; install it with \
                     `apt-get install redis-server` (scripts/test does)"
                )
            })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Waits until the server answers PING (it needs a moment after spawning).
    fn wait_ready(&self) {
        let store = RedisStore::new(RedisOptions::new(self.url())).unwrap();
        for _ in 0..400 {
            if store.ping().is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server on port {} never answered", self.port);
    }

    /// Kills the server (SIGKILL) and starts a new, empty one on the same port.
    fn restart_after_kill(&mut self) {
        self.kill();
        self.child = Self::spawn(self.port, self._dir.path());
        self.wait_ready();
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A store with its own key prefix, so stores on one server never see each other's keys.
fn store(server: &RedisServer, prefix: &str) -> RedisStore {
    let mut options = RedisOptions::new(server.url());
    options.key_prefix = format!("test:{prefix}:");
    RedisStore::new(options).unwrap()
}

#[test]
fn redis_store_conforms() {
    let server = RedisServer::start();
    let n = AtomicUsize::new(0);
    quench_store::conformance::run_all(|| {
        store(
            &server,
            &format!("conformance-{}", n.fetch_add(1, Ordering::SeqCst)),
        )
    });
}

#[test]
fn hosts_sharing_redis_never_lose_an_update_and_see_each_others_unblocks() {
    const HOSTS: usize = 4;
    const THREADS_PER_HOST: usize = 4;
    const INCREMENTS: u64 = 100;
    let server = RedisServer::start();
    // Each store is a host: its own connection pool. Same prefix: shared state. A generous
    // contention timeout, so a loaded test machine (threads descheduled mid-update) cannot
    // turn this exactness test into a timing test.
    let hosts: Vec<RedisStore> = (0..HOSTS)
        .map(|_| {
            let mut options = RedisOptions::new(server.url());
            options.key_prefix = "test:fleet:".into();
            options.contention_timeout = Duration::from_secs(30);
            RedisStore::new(options).unwrap()
        })
        .collect();
    thread::scope(|scope| {
        for host in &hosts {
            for _ in 0..THREADS_PER_HOST {
                scope.spawn(move || {
                    for _ in 0..INCREMENTS {
                        increment(host, "user:shared@contoso.com", Durability::Lazy);
                    }
                });
            }
        }
    });
    let total = (HOSTS * THREADS_PER_HOST) as u64 * INCREMENTS;
    for host in &hosts {
        assert_eq!(
            counter(&host.get("user:shared@contoso.com").unwrap().unwrap()),
            total,
            "every host sees every increment, none lost"
        );
    }
    assert_eq!(hosts[2].entity_count().unwrap(), 1);

    // Restrict through host 0, unblock through host 1: host 3 sees each on its next read.
    hosts[0]
        .update("user:alice@contoso.com", &mut |_| Update {
            state: Some(b"restricted".to_vec()),
            durability: Durability::Immediate,
            restricted: Some(true),
        })
        .unwrap();
    assert_eq!(
        hosts[3].restricted_keys().unwrap(),
        ["user:alice@contoso.com"]
    );
    hosts[1]
        .update("user:alice@contoso.com", &mut |state| {
            assert_eq!(state, b"restricted", "host 1 decides on host 0's write");
            Update {
                state: Some(b"unblocked".to_vec()),
                durability: Durability::Immediate,
                restricted: Some(false),
            }
        })
        .unwrap();
    assert!(hosts[3].restricted_keys().unwrap().is_empty());
    assert_eq!(
        hosts[3].get("user:alice@contoso.com").unwrap().as_deref(),
        Some(&b"unblocked"[..])
    );
    hosts[2]
        .append_audit(&record(
            1,
            "unblock",
            Some("user:alice@contoso.com"),
            "by host 2",
        ))
        .unwrap();
    let log = hosts[0].audit(&AuditQuery::default()).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].detail, "by host 2");
}

/// Every operation of the trait, expecting each to fail as unavailable.
fn assert_all_unavailable(store: &RedisStore, why: &str) {
    let results: Vec<(&str, Result<(), StoreError>)> = vec![
        ("ping", store.ping()),
        ("get", store.get("user:alice@contoso.com").map(drop)),
        (
            "update",
            store.update("user:alice@contoso.com", &mut |_| Update {
                state: Some(b"x".to_vec()),
                durability: Durability::Immediate,
                restricted: None,
            }),
        ),
        ("restricted_keys", store.restricted_keys().map(drop)),
        (
            "append_audit",
            store.append_audit(&record(1, "get", None, "")).map(drop),
        ),
        ("audit", store.audit(&AuditQuery::default()).map(drop)),
        ("entity_count", store.entity_count().map(drop)),
    ];
    for (operation, result) in results {
        match result {
            Err(StoreError::Unavailable(err)) => {
                assert!(format!("{err:#}").contains("Redis"), "{operation}: {err:#}");
            }
            other => panic!("{operation} with Redis {why}: expected Unavailable, got {other:?}"),
        }
    }
}

#[test]
fn redis_killed_gives_unavailable_then_service_resumes_on_its_own() {
    let mut server = RedisServer::start();
    let store = store(&server, "outage");
    set(
        &store,
        "user:alice@contoso.com",
        b"before",
        Durability::Immediate,
    );
    // Several idle connections in the pool, all of which the kill makes stale.
    thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| store.get("user:alice@contoso.com").unwrap());
        }
    });

    server.kill();
    assert_all_unavailable(&store, "down");

    // A new, empty Redis on the same address: the same store object works again.
    server.restart_after_kill();
    assert_eq!(store.get("user:alice@contoso.com").unwrap(), None);
    increment(&store, "user:bob@contoso.com", Durability::Lazy);
    mark(&store, "user:bob@contoso.com", true);
    assert_eq!(store.restricted_keys().unwrap(), ["user:bob@contoso.com"]);
    assert_eq!(
        store
            .append_audit(&record(1, "restrict", None, ""))
            .unwrap(),
        1
    );
}

#[test]
fn stalled_redis_times_out_instead_of_hanging_and_recovers() {
    let server = RedisServer::start();
    let mut options = RedisOptions::new(server.url());
    options.key_prefix = "test:stall:".into();
    options.io_timeout = Duration::from_millis(200);
    options.connect_timeout = Duration::from_millis(200);
    let store = RedisStore::new(options).unwrap();
    set(
        &store,
        "user:alice@contoso.com",
        b"before",
        Durability::Immediate,
    );

    // SIGSTOP: the socket accepts, nothing answers (a hung or swapping Redis).
    server.signal("-STOP");
    let stalled = std::panic::catch_unwind(|| assert_all_unavailable(&store, "stalled"));
    server.signal("-CONT");
    stalled.unwrap();

    assert_eq!(
        store.get("user:alice@contoso.com").unwrap().as_deref(),
        Some(&b"before"[..])
    );
    set(
        &store,
        "user:alice@contoso.com",
        b"after",
        Durability::Immediate,
    );
    assert_eq!(
        store.get("user:alice@contoso.com").unwrap().as_deref(),
        Some(&b"after"[..])
    );
}

#[test]
fn a_bad_url_is_a_clear_error_and_nothing_listening_is_unavailable() {
    let err = RedisStore::new(RedisOptions::new("http://127.0.0.1:6379")).unwrap_err();
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
    assert!(err.to_string().contains("invalid Redis URL"), "{err}");

    // A port nobody listens on (bound, then released).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = RedisStore::new(RedisOptions::new(format!("redis://127.0.0.1:{port}"))).unwrap();
    let err = store.ping().unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("cannot connect to Redis"), "{err}");
}

#[test]
fn clear_states_forgets_this_prefixes_state_and_index_only() {
    let server = RedisServer::start();
    // A prefix with glob characters: unescaped, its `SCAN MATCH` pattern would also match the
    // neighbour's keys (`*` matching `b`).
    let cleared = store(&server, "c*");
    let neighbour = store(&server, "cb");
    // More entities than one SCAN batch, some restricted, plus audit records.
    const ENTITIES: usize = 1_234;
    for i in 0..ENTITIES {
        let key = format!("user:u{i}@contoso.com");
        increment(&cleared, &key, Durability::Lazy);
        if i % 100 == 0 {
            mark(&cleared, &key, true);
        }
    }
    // Restricted without state: the index entry goes too.
    mark(&cleared, "user:marked-only@contoso.com", true);
    cleared
        .append_audit(&record(1, "restrict", Some("user:u0@contoso.com"), "kept"))
        .unwrap();
    increment(&neighbour, "user:u1@contoso.com", Durability::Lazy);
    mark(&neighbour, "user:u1@contoso.com", true);
    assert_eq!(cleared.entity_count().unwrap(), ENTITIES as u64);
    assert_eq!(cleared.restricted_keys().unwrap().len(), ENTITIES / 100 + 2);

    cleared.clear_states().unwrap();

    assert_eq!(cleared.entity_count().unwrap(), 0);
    assert!(cleared.restricted_keys().unwrap().is_empty());
    for i in [0, 1, 617, ENTITIES - 1] {
        assert_eq!(
            cleared.get(&format!("user:u{i}@contoso.com")).unwrap(),
            None
        );
    }
    let audit = cleared.audit(&AuditQuery::default()).unwrap();
    assert_eq!(audit.len(), 1, "the audit log stays");
    assert_eq!(audit[0].detail, "kept");
    // The neighbouring prefix is untouched.
    assert_eq!(
        counter(&neighbour.get("user:u1@contoso.com").unwrap().unwrap()),
        1
    );
    assert_eq!(
        neighbour.restricted_keys().unwrap(),
        ["user:u1@contoso.com"]
    );
    assert_eq!(neighbour.entity_count().unwrap(), 1);

    // The cleared store starts afresh and counts from zero again; clearing twice is fine.
    increment(&cleared, "user:u0@contoso.com", Durability::Lazy);
    assert_eq!(
        counter(&cleared.get("user:u0@contoso.com").unwrap().unwrap()),
        1
    );
    assert_eq!(cleared.entity_count().unwrap(), 1);
    cleared.clear_states().unwrap();
    cleared.clear_states().unwrap();
    assert_eq!(cleared.entity_count().unwrap(), 0);
}

/// Issue 12: concurrent deciders, unblockers and flushes on a real Redis; every key ends with
/// exactly its last acknowledged update's state and the index matches.
#[test]
fn concurrent_updates_and_flushes_match_the_sequential_model() {
    use quench_store::stress::{self, Load};
    let server = RedisServer::start();
    let store = store(&server, "stress");
    let model = stress::run(&store, &Load::default());
    assert!(model.immediate_writes() > 50, "too few immediate writes");
    model.check(&store);
}

/// Issue 12: contention on one key ends in a counted answer. Two hosts (two `RedisStore`s on
/// one server, default options), 32 threads each, all incrementing one key: every update
/// succeeds (no `Unavailable`, no `Contended`) and the final counter is the number of updates.
/// Before per-key locks and the Redis lock, updates here failed with `Unavailable` after a
/// second of lost compare-and-sets.
#[test]
fn sixty_four_threads_on_two_hosts_updating_one_key_are_all_counted() {
    const HOSTS: usize = 2;
    const THREADS_PER_HOST: usize = 32;
    const UPDATES: u64 = 40;
    const DECISION: Duration = Duration::from_micros(200);
    let server = RedisServer::start();
    let hosts: Vec<RedisStore> = (0..HOSTS).map(|_| store(&server, "hot")).collect();
    let started = std::time::Instant::now();
    let failures = std::sync::Mutex::new(Vec::new());
    thread::scope(|scope| {
        for host in &hosts {
            for _ in 0..THREADS_PER_HOST {
                let failures = &failures;
                scope.spawn(move || {
                    for _ in 0..UPDATES {
                        let result = host.update("user:hot@contoso.com", &mut |state| {
                            // A policy's decision takes a while (a WebAssembly call): the
                            // window in which another host's write makes this one lose.
                            thread::sleep(DECISION);
                            Update {
                                state: Some((counter(state) + 1).to_le_bytes().to_vec()),
                                durability: Durability::Lazy,
                                restricted: None,
                            }
                        });
                        if let Err(err) = result {
                            failures.lock().unwrap().push(format!("{err:#}"));
                        }
                    }
                });
            }
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} updates failed, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    let total = (HOSTS * THREADS_PER_HOST) as u64 * UPDATES;
    assert_eq!(
        counter(&hosts[0].get("user:hot@contoso.com").unwrap().unwrap()),
        total,
        "every update counted exactly once"
    );
    eprintln!("{total} updates of one key in {:?}", started.elapsed());
}

/// Issue 12: an update that cannot get its turn within `contention_timeout` fails with the
/// distinct `Contended` (the host answers it with a temporary refusal), not `Unavailable`,
/// and writes nothing. Here another "host" (redis-cli) holds the entity's lock.
#[test]
fn an_update_that_never_gets_its_turn_is_contended_not_unavailable() {
    let server = RedisServer::start();
    let mut options = RedisOptions::new(server.url());
    options.key_prefix = "test:held:".into();
    options.contention_timeout = Duration::from_millis(300);
    let store = RedisStore::new(options).unwrap();
    set(
        &store,
        "user:hot@contoso.com",
        b"before",
        Durability::Immediate,
    );
    let held = Command::new("redis-cli")
        .args(["-p", &server.port.to_string()])
        .args(["SET", "test:held:lock:user:hot@contoso.com", "another-host"])
        .args(["PX", "60000"])
        .output()
        .expect("redis-cli (installed with redis-server)");
    assert!(held.status.success(), "{held:?}");
    let err = store
        .update("user:hot@contoso.com", &mut |_| Update {
            state: Some(b"after".to_vec()),
            durability: Durability::Immediate,
            restricted: Some(true),
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Contended(_)), "{err:?}");
    assert!(err.to_string().contains("kept it busy"), "{err}");
    assert_eq!(
        store.get("user:hot@contoso.com").unwrap().as_deref(),
        Some(&b"before"[..]),
        "a contended update writes nothing"
    );
    assert!(store.restricted_keys().unwrap().is_empty());
}

/// A `ResilientStore` over a `RedisStore` with its own prefix on `server`.
fn resilient(server: &RedisServer, prefix: &str) -> ResilientStore {
    let url = server.url();
    let prefix = format!("test:{prefix}:");
    ResilientStore::new(Box::new(move || {
        let mut options = RedisOptions::new(url.clone());
        options.key_prefix = prefix.clone();
        Ok(Box::new(RedisStore::new(options)?) as Box<dyn StateStore>)
    }))
    .unwrap()
}

fn restricted_update(restricted: bool) -> impl FnMut(&[u8]) -> Update {
    move |state| Update {
        state: Some(if restricted {
            [state, b"+R"].concat()
        } else {
            [state, b"+U"].concat()
        }),
        durability: Durability::Immediate,
        restricted: Some(restricted),
    }
}

/// Issue 12 with Redis down (killed, then an empty one started on the same port): known
/// restrictions stay, an unblock and a new restriction made meanwhile are kept in memory, and
/// everything is written to the new Redis once it answers.
#[test]
fn redis_down_under_resilient_store_keeps_enforcing_and_writes_back() {
    let mut server = RedisServer::start();
    let store = resilient(&server, "resilient");
    store
        .update("user:known@contoso.com", &mut restricted_update(true))
        .unwrap();
    store
        .update("user:lifted@contoso.com", &mut restricted_update(true))
        .unwrap();
    increment(&store, "user:counted@contoso.com", Durability::Lazy);

    server.kill();
    increment(&store, "user:counted@contoso.com", Durability::Lazy);
    assert!(store.degraded());
    store
        .update("user:lifted@contoso.com", &mut restricted_update(false))
        .unwrap();
    store
        .update("user:new@contoso.com", &mut restricted_update(true))
        .unwrap();
    store
        .append_audit(&record(
            1,
            "unblock",
            Some("user:lifted@contoso.com"),
            "while down",
        ))
        .unwrap();
    store.flush().unwrap();
    assert!(store.degraded());
    assert_eq!(
        store.restricted_keys().unwrap(),
        ["user:known@contoso.com", "user:new@contoso.com"]
    );
    assert_eq!(
        store.get("user:known@contoso.com").unwrap().as_deref(),
        Some(&b"+R"[..]),
        "a known restriction is answered from memory"
    );
    let unsaved = store.unsaved();
    assert_eq!(
        (unsaved.restrictions, unsaved.unblocks),
        (1, 1),
        "{unsaved:?}"
    );

    server.restart_after_kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.degraded() {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        thread::sleep(Duration::from_millis(50));
        store.flush().unwrap();
    }
    // The new Redis has what was decided while the old one was down (the old one's data
    // is gone: it ran without persistence).
    let plain = store_with_prefix(&server, "test:resilient:");
    assert_eq!(plain.restricted_keys().unwrap(), ["user:new@contoso.com"]);
    assert_eq!(
        plain.get("user:lifted@contoso.com").unwrap().as_deref(),
        Some(&b"+R+U"[..])
    );
    assert_eq!(
        counter(&plain.get("user:counted@contoso.com").unwrap().unwrap()),
        1,
        "the increment made while down (the one before died with the old Redis)"
    );
    let log = plain.audit(&AuditQuery::default()).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].detail, "while down");
}

fn store_with_prefix(server: &RedisServer, prefix: &str) -> RedisStore {
    let mut options = RedisOptions::new(server.url());
    options.key_prefix = prefix.to_owned();
    RedisStore::new(options).unwrap()
}

/// The degraded mode's bounds, with Redis down: past `MAX_OVERLAY_KEYS` new keys are decided
/// but not kept, while restrictions still are; past `MAX_QUEUED_AUDIT` the oldest records
/// that are not restrictions or unblocks are dropped and counted.
#[test]
fn degraded_memory_is_bounded_but_restrictions_are_always_kept() {
    use quench_store::{MAX_OVERLAY_KEYS, MAX_QUEUED_AUDIT};
    let mut server = RedisServer::start();
    let store = resilient(&server, "bounded");
    server.kill();
    for i in 0..MAX_OVERLAY_KEYS {
        increment(&store, &format!("user:u{i}@contoso.com"), Durability::Lazy);
    }
    assert!(store.degraded());
    assert_eq!(store.unsaved().states, MAX_OVERLAY_KEYS);
    // Full: a new key is decided (on empty state) but not kept...
    let mut seen = None;
    store
        .update("user:late@contoso.com", &mut |state| {
            seen = Some(state.to_vec());
            Update {
                state: Some(b"late".to_vec()),
                durability: Durability::Lazy,
                restricted: None,
            }
        })
        .unwrap();
    assert_eq!(seen.as_deref(), Some(&[][..]));
    assert_eq!(store.unsaved().dropped_states, 1);
    // ...a key already kept keeps counting...
    increment(&store, "user:u0@contoso.com", Durability::Lazy);
    assert_eq!(
        counter(&store.get("user:u0@contoso.com").unwrap().unwrap()),
        2
    );
    // ...and a restriction is always kept.
    store
        .update("user:late@contoso.com", &mut restricted_update(true))
        .unwrap();
    assert_eq!(store.unsaved().states, MAX_OVERLAY_KEYS + 1);
    assert_eq!(store.unsaved().restrictions, 1);
    assert_eq!(store.restricted_keys().unwrap(), ["user:late@contoso.com"]);

    store
        .append_audit(&record(
            0,
            "restrict",
            Some("user:late@contoso.com"),
            "kept",
        ))
        .unwrap();
    for i in 0..MAX_QUEUED_AUDIT {
        store
            .append_audit(&record(i as i64, "list", None, ""))
            .unwrap();
    }
    let unsaved = store.unsaved();
    assert_eq!(unsaved.audit_records, MAX_QUEUED_AUDIT);
    assert_eq!(
        unsaved.dropped_audit_records, 1,
        "one list record made room"
    );
}

/// When Redis stalls, updates of one key queued behind each other on a host fail together as
/// unavailable once the first finds out, instead of each waiting out its own I/O timeout in
/// turn (20 × 200 ms here), and never as contended.
#[test]
fn a_stalled_redis_fails_a_queue_of_updates_of_one_key_at_once() {
    const THREADS: usize = 20;
    let server = RedisServer::start();
    let mut options = RedisOptions::new(server.url());
    options.key_prefix = "test:queue:".into();
    options.io_timeout = Duration::from_millis(200);
    options.connect_timeout = Duration::from_millis(200);
    let store = RedisStore::new(options).unwrap();
    increment(&store, "user:hot@contoso.com", Durability::Lazy);
    server.signal("-STOP");
    let started = std::time::Instant::now();
    let results: Vec<Result<(), StoreError>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    store.update("user:hot@contoso.com", &mut |state| Update {
                        state: Some((counter(state) + 1).to_le_bytes().to_vec()),
                        durability: Durability::Lazy,
                        restricted: None,
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    server.signal("-CONT");
    for result in &results {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "expected Unavailable: {result:?}"
        );
    }
    assert!(
        elapsed < Duration::from_millis(2_000),
        "the queue waited {elapsed:?}, as if each update timed out in turn"
    );
}
