//! A concurrent load with a model to check it against (the `conformance` feature): the test
//! behind "no restriction or unblock is ever lost" (issue 12).
//!
//! Deciders make lazy counter updates and now and then an immediate restriction, unblockers
//! make immediate unblocks, and a flusher calls [`StateStore::flush`] in a tight loop, all at
//! once on a few keys (so every shard and every key is contended). Each key's state is a
//! [`Versioned`]: the update closure increments its version, so the final version of a key
//! is the number of updates applied to it, and an older state written over a newer one (a
//! lazily buffered counter overwriting an immediate write) shows as a version that is too
//! low, a restriction flag that went back, or an index that disagrees with the state.
//!
//! [`run`] drives the load and returns the [`Model`]: every acknowledged update, in per-key
//! version order. [`Model::check`] compares a store (e.g. reopened after the load) with it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Durability, StateStore, Update};

/// The state the load keeps per key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Versioned {
    /// Updates applied to the key: incremented by every update closure.
    pub version: u64,
    /// The version of the last immediate write (restriction or unblock) of the key.
    pub immediate: u64,
    /// Whether the last immediate write restricted the key (it must then be in the index).
    pub restricted: bool,
}

impl Versioned {
    /// The state bytes: version, immediate version (little-endian u64s), restricted flag.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(17);
        bytes.extend_from_slice(&self.version.to_le_bytes());
        bytes.extend_from_slice(&self.immediate.to_le_bytes());
        bytes.push(u8::from(self.restricted));
        bytes
    }

    /// Reads [`encode`](Self::encode)'s bytes; empty state is the default.
    pub fn decode(bytes: &[u8]) -> Self {
        if bytes.is_empty() {
            return Self::default();
        }
        assert_eq!(bytes.len(), 17, "not a stress-test state: {bytes:?}");
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        Self {
            version: word(0),
            immediate: word(8),
            restricted: bytes[16] == 1,
        }
    }
}

/// What one update does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A counter-only update: lazy, leaves the index alone.
    Count,
    /// An immediate write that restricts the key (adds it to the index).
    Restrict,
    /// An immediate write that unblocks the key (removes it from the index).
    Unblock,
}

/// Applies `op` to `key` through `store`; returns the state the store acknowledged (the one
/// the last run of the closure computed: a retrying backend applies only that one).
pub fn apply(store: &dyn StateStore, key: &str, op: Op) -> Versioned {
    let mut applied = Versioned::default();
    store
        .update(key, &mut |bytes| {
            let mut state = Versioned::decode(bytes);
            state.version += 1;
            let (durability, restricted) = match op {
                Op::Count => (Durability::Lazy, None),
                Op::Restrict => (Durability::Immediate, Some(true)),
                Op::Unblock => (Durability::Immediate, Some(false)),
            };
            if let Some(flag) = restricted {
                state.immediate = state.version;
                state.restricted = flag;
            }
            applied = state;
            Update {
                state: Some(state.encode()),
                durability,
                restricted,
            }
        })
        .unwrap_or_else(|err| panic!("{op:?} of {key}: {err:#}"));
    applied
}

/// The shape of the load.
#[derive(Debug, Clone)]
pub struct Load {
    /// Keys updated (few, so keys and shards are contended).
    pub keys: usize,
    /// Threads making counter updates and, one in [`Load::restrict_every`], restrictions.
    pub deciders: usize,
    /// Threads making unblocks (and a few counter updates in between).
    pub unblockers: usize,
    /// A decider's update is a restriction one time in this many.
    pub restrict_every: u64,
    /// Whether a thread calls `flush` in a tight loop meanwhile.
    pub flusher: bool,
    /// How long the load runs.
    pub duration: Duration,
}

impl Default for Load {
    /// 8 keys, 4 deciders, 2 unblockers, a restriction in 10 decisions, a flusher, 2 s: on a
    /// 2-core machine this gives thousands of immediate writes and flushes racing each other.
    fn default() -> Self {
        Self {
            keys: 8,
            deciders: 4,
            unblockers: 2,
            restrict_every: 10,
            flusher: true,
            duration: Duration::from_secs(2),
        }
    }
}

/// The key the load names `i`.
pub fn key(i: usize) -> String {
    format!("user:stress{i}@contoso.com")
}

/// A small xorshift generator: the load needs variety, not quality.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every update the load had acknowledged, per key, by version.
#[derive(Debug, Default)]
pub struct Model {
    /// Key -> version -> the acknowledged state with that version.
    pub acked: BTreeMap<String, BTreeMap<u64, Versioned>>,
    /// Flushes that returned Ok.
    pub flushes: u64,
    /// (key, version) acknowledged more than once: the key's state went back to an older
    /// version and was counted up again (a lost update).
    pub repeated: Vec<(String, u64)>,
}

impl Model {
    /// Acknowledged immediate writes.
    pub fn immediate_writes(&self) -> usize {
        self.acked
            .values()
            .flat_map(|versions| versions.values())
            .filter(|state| state.immediate == state.version)
            .count()
    }

    /// Panics unless `store` holds, for every key, exactly the state of its last acknowledged
    /// update, with one version per acknowledged update (none lost, none applied twice), and a
    /// restricted index that matches the last immediate write of every key.
    pub fn check(&self, store: &dyn StateStore) {
        assert!(
            self.repeated.is_empty(),
            "versions acknowledged twice (a state went back to an older version): {:?}",
            &self.repeated[..self.repeated.len().min(10)]
        );
        let index = store.restricted_keys().expect("restricted_keys");
        for (key, versions) in &self.acked {
            let versions_acked = versions.len() as u64;
            let (&last, expected) = versions.last_key_value().expect("a key with updates");
            assert_eq!(
                last, versions_acked,
                "{key}: versions must be 1..=n, one per acknowledged update"
            );
            let stored = store
                .get(key)
                .expect("get")
                .unwrap_or_else(|| panic!("{key}: state lost"));
            let stored = Versioned::decode(&stored);
            assert_eq!(
                stored, *expected,
                "{key}: the store holds another state than the last acknowledged update's \
                 (version {} of {versions_acked}: an older write overwrote a newer one)",
                stored.version
            );
            assert_eq!(
                index.contains(key),
                expected.restricted,
                "{key}: the restricted index disagrees with the last immediate write \
                 (version {})",
                expected.immediate
            );
        }
    }
}

/// Runs `load` against `store` and returns what was acknowledged.
pub fn run(store: &dyn StateStore, load: &Load) -> Model {
    run_observed(store, load, &|_, _, _, _| {})
}

/// Called by [`run_observed`] on a load thread: thread number, key, operation, and `None`
/// just before the update or `Some(state)` once it is acknowledged.
pub type Observer = dyn Fn(usize, &str, Op, Option<Versioned>) + Sync;

/// [`run`], telling `observe` about every update before it starts and when it is
/// acknowledged (a crash test's child prints these so its parent knows what was promised).
pub fn run_observed(store: &dyn StateStore, load: &Load, observe: &Observer) -> Model {
    let acked = Mutex::new(Model::default());
    let stop = AtomicBool::new(false);
    let flushes = AtomicU64::new(0);
    let record = |key: &str, state: Versioned| {
        let mut model = acked.lock().unwrap_or_else(|p| p.into_inner());
        let previous = model
            .acked
            .entry(key.to_owned())
            .or_default()
            .insert(state.version, state);
        if previous.is_some() {
            model.repeated.push((key.to_owned(), state.version));
        }
    };
    let deadline = Instant::now() + load.duration;
    thread::scope(|scope| {
        for thread in 0..load.deciders + load.unblockers {
            let unblocker = thread >= load.deciders;
            let record = &record;
            scope.spawn(move || {
                let mut rng = Rng::new(thread as u64 + 1);
                while Instant::now() < deadline {
                    let key = key(rng.below(load.keys as u64) as usize);
                    let roll = rng.below(load.restrict_every.max(1));
                    let op = match (unblocker, roll) {
                        (false, 0) => Op::Restrict,
                        (true, 0..=2) => Op::Unblock,
                        _ => Op::Count,
                    };
                    observe(thread, &key, op, None);
                    let state = apply(store, &key, op);
                    observe(thread, &key, op, Some(state));
                    record(&key, state);
                }
            });
        }
        if load.flusher {
            let (stop, flushes) = (&stop, &flushes);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    store.flush().expect("flush");
                    flushes.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        // The deciders stop at the deadline; the flusher keeps racing them until they have.
        thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
    });
    let mut model = acked.into_inner().unwrap_or_else(|p| p.into_inner());
    model.flushes = flushes.into_inner();
    model
}
