//! [`MemoryStore`]: everything in process memory, for `quench simulate`, tests and benches.

use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::audit_filter::Newest;
use crate::{AuditQuery, AuditRecord, KeyPage, StateStore, StoreError, Update};

/// How many independently locked shards hold the entity states. Updates of keys in different
/// shards never wait for each other; 64 is far more than the cores of any host quench runs on,
/// so two busy keys rarely share a shard, while costing only 64 small maps.
const SHARDS: usize = 64;

/// Some of the entity states, under one lock.
type Shard = Mutex<HashMap<String, Vec<u8>>>;

/// An in-process store. Nothing survives the process; [`StateStore::flush`] does nothing.
///
/// Per-key atomicity comes from sharded mutexes: an update locks only the shard of its key, runs
/// the closure and applies its result under that lock. The restricted index and the audit log
/// each have their own lock, always taken after a shard lock, never before.
///
/// A lazy write never overwrites a newer immediate write: both kinds are applied to the same
/// map under the key's shard lock, in the order they run, and nothing is buffered for later
/// ([`StateStore::flush`] has nothing to write), so no older state can be written afterwards.
#[derive(Debug)]
pub struct MemoryStore {
    hasher: std::hash::RandomState,
    shards: Box<[Shard]>,
    restricted: Mutex<BTreeSet<String>>,
    audit: Mutex<AuditLog>,
}

/// The audit log in seq order, and the last seq assigned (pruning never lowers it, so seqs
/// keep strictly increasing).
#[derive(Debug, Default)]
struct AuditLog {
    records: Vec<AuditRecord>,
    last_seq: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            hasher: std::hash::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            restricted: Mutex::default(),
            audit: Mutex::default(),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, Vec<u8>>> {
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        lock(&self.shards[index])
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Locks `mutex`, ignoring poisoning: a panicking `decide` closure runs before anything is
/// written, so the data behind a poisoned lock is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StateStore for MemoryStore {
    fn clear_states(&self) -> Result<(), StoreError> {
        for shard in self.shards.iter() {
            lock(shard).clear();
        }
        lock(&self.restricted).clear();
        Ok(())
    }

    fn update(&self, key: &str, decide: &mut dyn FnMut(&[u8]) -> Update) -> Result<(), StoreError> {
        let mut shard = self.shard(key);
        let update = decide(shard.get(key).map(Vec::as_slice).unwrap_or_default());
        if let Some(state) = update.state {
            shard.insert(key.to_owned(), state);
        }
        match update.restricted {
            Some(true) => {
                lock(&self.restricted).insert(key.to_owned());
            }
            Some(false) => {
                lock(&self.restricted).remove(key);
            }
            None => {}
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.shard(key).get(key).cloned())
    }

    /// One shard per page, whatever `limit` says; the cursor is the next shard's index.
    fn scan_keys(&self, cursor: Option<&str>, _limit: usize) -> Result<KeyPage, StoreError> {
        let index = match cursor {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| {
                StoreError::Other(anyhow::anyhow!("not a memory-store cursor: {c:?}"))
            })?,
        };
        let Some(shard) = self.shards.get(index) else {
            return Ok(KeyPage::default());
        };
        let mut keys: Vec<String> = lock(shard).keys().cloned().collect();
        keys.sort_unstable();
        let next = (index + 1 < SHARDS).then(|| (index + 1).to_string());
        Ok(KeyPage { keys, next })
    }

    fn remove_if(
        &self,
        key: &str,
        forget: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<bool, StoreError> {
        let mut shard = self.shard(key);
        let Some(state) = shard.get(key) else {
            return Ok(false);
        };
        if !forget(state) {
            return Ok(false);
        }
        shard.remove(key);
        lock(&self.restricted).remove(key);
        Ok(true)
    }

    fn restricted_keys(&self) -> Result<Vec<String>, StoreError> {
        Ok(lock(&self.restricted).iter().cloned().collect())
    }

    fn append_audit(&self, record: &AuditRecord) -> Result<u64, StoreError> {
        let mut log = lock(&self.audit);
        log.last_seq += 1;
        let seq = log.last_seq;
        log.records.push(AuditRecord {
            seq,
            ..record.clone()
        });
        Ok(seq)
    }

    fn prune_audit(&self, before: i64, max: usize) -> Result<u64, StoreError> {
        let mut log = lock(&self.audit);
        let mut old: Vec<(i64, u64)> = log
            .records
            .iter()
            .filter(|r| r.at < before)
            .map(|r| (r.at, r.seq))
            .collect();
        old.sort_unstable();
        old.truncate(max);
        let doomed: std::collections::HashSet<u64> = old.iter().map(|&(_, seq)| seq).collect();
        log.records.retain(|r| !doomed.contains(&r.seq));
        Ok(doomed.len() as u64)
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let log = lock(&self.audit);
        let mut newest = Newest::new(query);
        for record in log.records.iter().rev() {
            if newest.offer(record) {
                break;
            }
        }
        Ok(newest.finish())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn entity_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .shards
            .iter()
            .map(|shard| lock(shard).len() as u64)
            .sum())
    }
}
