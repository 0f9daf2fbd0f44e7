//! Lazy state writes held in memory until the next flush.
//!
//! A counter-only update (`Durability::Lazy`, no change to the restricted index) does not need
//! the disk before it is answered: the store contract lets it be lost within about a second.
//! Keeping such writes here, and writing them all in one durable transaction per flush, takes
//! a write transaction off every decision (a lazy redb commit cost ~12 µs; an update here is a
//! map insert under one of 64 locks). Every update of a key goes through its shard lock, which
//! keeps updates atomic per key. A flush copies shards only with `try_lock`, while it holds
//! redb's writer lock (see `EmbeddedStore::flush_round` for why, and why it never blocks).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Shards of the buffer: enough that concurrent decisions for different senders rarely
/// share a lock, few enough that a flush walks them quickly.
const SHARDS: usize = 64;

/// A buffered state and when it was written, so a flush can tell whether it was overwritten
/// while the flush ran.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) state: Vec<u8>,
    generation: u64,
    /// The key had no stored state when first buffered (for entity counts).
    pub(crate) fresh: bool,
}

/// The buffered writes, by key.
#[derive(Debug)]
pub(crate) struct WriteBuffer {
    hasher: std::hash::RandomState,
    shards: Box<[Mutex<HashMap<String, Pending>>]>,
    generation: AtomicU64,
}

/// One shard, locked: the unit of per-key atomicity.
pub(crate) type Shard<'a> = MutexGuard<'a, HashMap<String, Pending>>;

/// What a flush wrote: key, state, generation.
pub(crate) type Snapshot = Vec<(String, Vec<u8>, u64)>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WriteBuffer {
    pub(crate) fn new() -> Self {
        WriteBuffer {
            hasher: std::hash::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            generation: AtomicU64::new(0),
        }
    }

    /// Lock the shard `key` lives in.
    pub(crate) fn shard(&self, key: &str) -> Shard<'_> {
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        lock(&self.shards[index])
    }

    /// Buffer `state` for `key` in its (locked) shard.
    pub(crate) fn put(&self, shard: &mut Shard<'_>, key: &str, state: Vec<u8>, fresh: bool) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let fresh = shard.get(key).map_or(fresh, |p| p.fresh);
        shard.insert(
            key.to_owned(),
            Pending {
                state,
                generation,
                fresh,
            },
        );
    }

    /// How many shards [`try_collect`](Self::try_collect) can be asked about.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// A copy of the buffered writes of shard `index`, appended to `out`, or `false` (and
    /// nothing copied) when the shard is locked right now. Never blocks: a flush calls this
    /// while it holds redb's writer lock, and an update holds its shard lock while it waits for
    /// that writer lock, so blocking here could deadlock. The entries stay buffered (and
    /// readable) until [`retire`](Self::retire) after they are on disk.
    pub(crate) fn try_collect(&self, index: usize, out: &mut Snapshot) -> bool {
        let shard = match self.shards[index].try_lock() {
            Ok(shard) => shard,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return false,
        };
        for (key, pending) in shard.iter() {
            out.push((key.clone(), pending.state.clone(), pending.generation));
        }
        true
    }

    /// Locks every shard, in index order (the order `clear_states` needs to shut out every
    /// update while it empties the file).
    pub(crate) fn lock_all(&self) -> Vec<Shard<'_>> {
        self.shards.iter().map(lock).collect()
    }

    /// Forget the entries a flush wrote, unless they changed since the flush copied them
    /// (those stay for the next flush, no longer fresh: an older version is on disk now).
    pub(crate) fn retire(&self, written: &Snapshot) {
        for (key, _, generation) in written {
            let mut shard = self.shard(key);
            match shard.get_mut(key) {
                Some(pending) if pending.generation == *generation => {
                    shard.remove(key);
                }
                Some(pending) => pending.fresh = false,
                None => {}
            }
        }
    }

    /// Buffered keys that have no state on disk yet.
    pub(crate) fn fresh_count(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| lock(shard).values().filter(|p| p.fresh).count() as u64)
            .sum()
    }
}
