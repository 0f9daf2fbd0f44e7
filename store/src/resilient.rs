//! [`ResilientStore`]: keeps enforcing when the backend cannot write (disk full, I/O errors, a
//! redb file that refuses writes after one, Redis down), and writes back what it kept in memory
//! when the backend takes writes again.
//!
//! # What it does
//! - **Known restrictions are always answered from memory.** It keeps the state of every key in
//!   the restricted index (loaded when it opens, kept current by every update through it), so
//!   a restricted entity stays restricted even when the backend cannot be read.
//! - **Degraded mode.** When the backend fails with an outage ([`StoreError::Unavailable`], or
//!   an error whose cause is an I/O error), the store switches to degraded mode: updates run
//!   against an in-memory overlay (a key's state is the overlay's, else the restricted cache's,
//!   else the backend's if it can still be read, else empty) and audit records go to an
//!   in-memory queue. Both are bounded: [`MAX_OVERLAY_KEYS`] keys (past it a new key is decided
//!   on its known state but not kept, so its counting fails open, while a restriction or
//!   unblock is always kept) and [`MAX_QUEUED_AUDIT`] records (past it the oldest record that
//!   is not a restriction or unblock is dropped, and counted).
//! - **Recovery.** [`StateStore::flush`] (the host calls it every second) retries the backend
//!   with exponential backoff, [`FIRST_RETRY`] doubling to [`MAX_RETRY`]: first a flush of the
//!   backend as it is; if that fails, the backend is dropped (releasing the embedded store's
//!   file lock) and a new one is opened with the factory. Once one takes writes, the overlay
//!   is written back (every key's state and restricted-index change, immediate writes
//!   durably), then the queued audit records in order, and degraded mode ends.
//!
//! # What is lost if the process dies while degraded
//! Everything [`ResilientStore::unsaved`] counts: the states decided while degraded (counters,
//! and restrictions and unblocks, which the backend never saw), and the queued audit records.
//! The host logs it on SIGTERM. Also lost, as a flush failure always loses them: lazy counter
//! writes the backend had buffered when it failed, if it has to be reopened (a redb file that
//! refused a write must be).
//!
//! # Limits
//! - Audit queries, entity counts, key walks and pruning go to the backend only: while it is
//!   down they fail, and queued records show up once written back. While degraded, a queued
//!   record gets a provisional seq (one above the last seq this store saw); written back, it
//!   gets the backend's next seq.
//! - Over Redis, the restricted cache knows the restrictions in the index at open and those
//!   made or lifted through this host; another host's change reaches it only through this
//!   host's next update of that key. Written back, the overlay's state of a key replaces the
//!   state other hosts wrote meanwhile.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::anyhow;

use crate::{AuditQuery, AuditRecord, Durability, KeyPage, StateStore, StoreError, Update};

/// Builds (opens) the backend; called once by [`ResilientStore::new`] and again to reopen a
/// backend that failed.
pub type Factory = Box<dyn Fn() -> Result<Box<dyn StateStore>, StoreError> + Send + Sync>;

/// Keys the degraded-mode overlay holds at most. 100,000: the entities a large site sees in a
/// day, at about 100 bytes of state each some 10-20 MB, which a sidecar can afford for an
/// outage, while a flood of forged senders cannot grow it without bound.
pub const MAX_OVERLAY_KEYS: usize = 100_000;

/// Audit records queued in memory at most while degraded. 10,000: hours of admin actions and
/// restrictions at a busy site, a few MB.
pub const MAX_QUEUED_AUDIT: usize = 10_000;

/// First wait before the backend is retried after it failed. 100 ms: a brief hiccup (a Redis
/// failover) ends degraded mode at the next flush.
pub const FIRST_RETRY: Duration = Duration::from_millis(100);

/// Longest wait between retries. 10 s: a full disk is freed by a person, so retrying more often
/// gains little, and each retry of a broken backend (reopening a redb file, walking it) costs
/// real work.
pub const MAX_RETRY: Duration = Duration::from_secs(10);

/// Per-key lock shards of the wrapper: an update holds its key's shard while it runs on the
/// backend or the overlay and updates the restricted cache, so the cache follows the order in
/// which updates of a key applied. 64, like the stores' own shards.
const SHARDS: usize = 64;

/// What is held only in memory: lost if the process dies now (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unsaved {
    /// Keys whose state was decided while degraded and not yet written back.
    pub states: usize,
    /// Of those, keys restricted while degraded (a restriction the backend has not seen).
    pub restrictions: usize,
    /// Of those, keys unblocked while degraded.
    pub unblocks: usize,
    /// Audit records queued while degraded.
    pub audit_records: usize,
    /// Updates of new keys decided but not kept because the overlay was full (since open).
    pub dropped_states: u64,
    /// Audit records dropped because the queue was full (since open).
    pub dropped_audit_records: u64,
}

/// One key's writes while degraded, merged.
#[derive(Debug, Clone)]
struct Pending {
    /// The key's state (`None`: it has none, only an index change).
    state: Option<Vec<u8>>,
    /// The last index change.
    restricted: Option<bool>,
    /// Whether any of the writes was immediate.
    immediate: bool,
}

/// When the backend is retried next.
#[derive(Debug)]
struct Retry {
    at: Instant,
    delay: Duration,
}

/// A [`StateStore`] over a backend that may fail; see the module docs.
pub struct ResilientStore {
    factory: Factory,
    /// `None` while a failed backend is being replaced (or could not be reopened).
    backend: RwLock<Option<Box<dyn StateStore>>>,
    hasher: std::hash::RandomState,
    keys: Box<[Mutex<()>]>,
    /// Updates and appends hold it shared; ending degraded mode holds it exclusively to write
    /// back what the last in-flight degraded updates kept.
    gate: RwLock<()>,
    degraded: AtomicBool,
    /// Whether backend reads are worth trying while degraded (a full disk still reads; a
    /// stopped Redis does not, and should not cost a timeout per decision).
    reads_work: AtomicBool,
    retry: Mutex<Retry>,
    /// One recovery at a time.
    recovering: Mutex<()>,
    overlay: Mutex<HashMap<String, Pending>>,
    /// State of every restricted key (`None`: restricted without state). Read on every
    /// update (is the key restricted?), written only when a restricted key changes.
    restricted: RwLock<HashMap<String, Option<Vec<u8>>>>,
    audit_queue: Mutex<VecDeque<AuditRecord>>,
    /// The highest audit seq this store saw (the backend's at open, then each append's).
    last_seq: AtomicU64,
    /// Whether the next recovery must reopen the backend even if it flushes: a write back
    /// into it failed (a redb file may flush with nothing to write yet refuse every write).
    reopen: AtomicBool,
    dropped_states: AtomicU64,
    dropped_audit: AtomicU64,
}

impl std::fmt::Debug for ResilientStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientStore")
            .field("degraded", &self.degraded())
            .field("unsaved", &self.unsaved())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every value behind these locks is changed in single steps that leave it consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether `err` means the backend cannot be reached or written (degrade and retry) rather
/// than a bug or corruption (pass it on): [`StoreError::Unavailable`], or an error caused by
/// an I/O error somewhere in its chain.
pub fn is_outage(err: &StoreError) -> bool {
    match err {
        StoreError::Unavailable(_) => true,
        StoreError::Contended(_) => false,
        StoreError::Other(err) => err.chain().any(|cause| cause.is::<std::io::Error>()),
    }
}

impl ResilientStore {
    /// Opens the backend with `factory` and loads the state of every restricted key. The first
    /// open must succeed: a store that cannot start is a configuration problem to report, not
    /// an outage to ride out.
    pub fn new(factory: Factory) -> Result<Self, StoreError> {
        let opened = |err: StoreError| -> StoreError {
            let err = match err {
                StoreError::Unavailable(e) | StoreError::Other(e) | StoreError::Contended(e) => e,
            };
            StoreError::Other(err.context("the resilient store's first open of its backend"))
        };
        let backend = factory().map_err(opened)?;
        let mut restricted = HashMap::new();
        for key in backend.restricted_keys().map_err(opened)? {
            let state = backend.get(&key).map_err(opened)?;
            restricted.insert(key, state);
        }
        let newest = AuditQuery {
            limit: Some(1),
            ..AuditQuery::default()
        };
        let last_seq = backend
            .audit(&newest)
            .map_err(opened)?
            .last()
            .map_or(0, |r| r.seq);
        Ok(Self {
            factory,
            backend: RwLock::new(Some(backend)),
            hasher: std::hash::RandomState::new(),
            keys: (0..SHARDS).map(|_| Mutex::new(())).collect(),
            gate: RwLock::new(()),
            degraded: AtomicBool::new(false),
            reads_work: AtomicBool::new(true),
            retry: Mutex::new(Retry {
                at: Instant::now(),
                delay: FIRST_RETRY,
            }),
            recovering: Mutex::new(()),
            overlay: Mutex::default(),
            restricted: RwLock::new(restricted),
            audit_queue: Mutex::default(),
            last_seq: AtomicU64::new(last_seq),
            reopen: AtomicBool::new(false),
            dropped_states: AtomicU64::new(0),
            dropped_audit: AtomicU64::new(0),
        })
    }

    /// Whether the backend failed and updates are kept in memory until it recovers.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::SeqCst)
    }

    /// What is held only in memory now (for the host to log, e.g. on SIGTERM).
    pub fn unsaved(&self) -> Unsaved {
        let overlay = lock(&self.overlay);
        Unsaved {
            states: overlay.len(),
            restrictions: overlay
                .values()
                .filter(|p| p.restricted == Some(true))
                .count(),
            unblocks: overlay
                .values()
                .filter(|p| p.restricted == Some(false))
                .count(),
            audit_records: lock(&self.audit_queue).len(),
            dropped_states: self.dropped_states.load(Ordering::Relaxed),
            dropped_audit_records: self.dropped_audit.load(Ordering::Relaxed),
        }
    }

    fn key_lock(&self, key: &str) -> MutexGuard<'_, ()> {
        lock(&self.keys[(self.hasher.hash_one(key) % SHARDS as u64) as usize])
    }

    fn gate(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `op` on the backend; an outage (or no backend) gives `None` and switches to
    /// degraded mode, other errors pass through.
    fn on_backend<T>(
        &self,
        op: impl FnOnce(&dyn StateStore) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let backend = self.backend.read().unwrap_or_else(PoisonError::into_inner);
        let Some(backend) = backend.as_deref() else {
            self.degrade();
            return Ok(None);
        };
        match op(backend) {
            Ok(value) => Ok(Some(value)),
            Err(err) if is_outage(&err) => {
                self.degrade();
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    fn degrade(&self) {
        if !self.degraded.swap(true, Ordering::SeqCst) {
            let mut retry = lock(&self.retry);
            retry.delay = FIRST_RETRY;
            retry.at = Instant::now() + FIRST_RETRY;
        }
    }

    /// Keeps the restricted cache in step with an applied update of `key` whose resulting
    /// state is `state`.
    fn cache(&self, key: &str, state: Option<Vec<u8>>, restricted: Option<bool>) {
        if restricted.is_none() && !self.cached(key) {
            return;
        }
        let mut cache = self
            .restricted
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match restricted {
            Some(true) => {
                cache.insert(key.to_owned(), state);
            }
            Some(false) => {
                cache.remove(key);
            }
            None => {
                if let Some(cached) = cache.get_mut(key)
                    && state.is_some()
                {
                    *cached = state;
                }
            }
        }
    }

    /// Whether `key` is in the restricted cache.
    fn cached(&self, key: &str) -> bool {
        self.restricted
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key)
    }

    /// The cached state of restricted `key`: `None` when it is not restricted.
    fn cached_state(&self, key: &str) -> Option<Option<Vec<u8>>> {
        self.restricted
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// The state a degraded update of `key` starts from.
    fn degraded_base(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(pending) = lock(&self.overlay).get(key) {
            return Ok(pending.state.clone());
        }
        if let Some(state) = self.cached_state(key) {
            return Ok(state);
        }
        if !self.reads_work.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let backend = self.backend.read().unwrap_or_else(PoisonError::into_inner);
        let Some(backend) = backend.as_deref() else {
            return Ok(None);
        };
        match backend.get(key) {
            Ok(state) => Ok(state),
            Err(err) if is_outage(&err) => {
                self.reads_work.store(false, Ordering::SeqCst);
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// An update while degraded (the caller holds the gate and the key's lock).
    fn update_degraded(
        &self,
        key: &str,
        decide: &mut dyn FnMut(&[u8]) -> Update,
    ) -> Result<(), StoreError> {
        let base = self.degraded_base(key)?;
        let update = decide(base.as_deref().unwrap_or_default());
        if update.state.is_none() && update.restricted.is_none() {
            return Ok(());
        }
        let state = update.state.or(base);
        {
            let mut overlay = lock(&self.overlay);
            let room = overlay.len() < MAX_OVERLAY_KEYS;
            match overlay.get_mut(key) {
                Some(pending) => {
                    pending.state.clone_from(&state);
                    pending.restricted = update.restricted.or(pending.restricted);
                    pending.immediate |= update.durability == Durability::Immediate;
                }
                None if room || update.restricted.is_some() => {
                    overlay.insert(
                        key.to_owned(),
                        Pending {
                            state: state.clone(),
                            restricted: update.restricted,
                            immediate: update.durability == Durability::Immediate,
                        },
                    );
                }
                None => {
                    self.dropped_states.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.cache(key, state, update.restricted);
        Ok(())
    }

    /// Queues `record` while degraded; returns its provisional seq.
    fn queue_audit(&self, record: &AuditRecord) -> u64 {
        let mut queue = lock(&self.audit_queue);
        if queue.len() >= MAX_QUEUED_AUDIT {
            let victim = queue
                .iter()
                .position(|r| !is_enforcement(r))
                .unwrap_or(usize::MAX);
            if victim == usize::MAX && !is_enforcement(record) {
                // Only restrictions and unblocks queued: the newcomer goes instead.
                self.dropped_audit.fetch_add(1, Ordering::Relaxed);
                return self.last_seq.fetch_add(1, Ordering::SeqCst) + 1;
            }
            if victim != usize::MAX {
                queue.remove(victim);
                self.dropped_audit.fetch_add(1, Ordering::Relaxed);
            }
        }
        queue.push_back(record.clone());
        self.last_seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// In degraded mode and due: gets a backend that takes writes, writes back the overlay and
    /// the audit queue, and ends degraded mode. `force` ignores the backoff (at drop).
    fn recover(&self, force: bool) -> Result<(), StoreError> {
        let Ok(_one) = self.recovering.try_lock() else {
            return Ok(());
        };
        {
            let retry = lock(&self.retry);
            if !force && Instant::now() < retry.at {
                return Ok(());
            }
        }
        let result = self.try_recover();
        if let Err(err) = &result {
            let mut retry = lock(&self.retry);
            retry.delay = (retry.delay * 2).min(MAX_RETRY);
            retry.at = Instant::now() + retry.delay;
            if !is_outage(err) {
                return result;
            }
        }
        Ok(())
    }

    fn try_recover(&self) -> Result<(), StoreError> {
        // The backend as it is, if it takes writes; otherwise a new one.
        let flushed = match self
            .backend
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
        {
            Some(backend) => backend.flush(),
            None => Err(StoreError::Unavailable(anyhow!("no backend"))),
        };
        if flushed.is_err() || self.reopen.load(Ordering::SeqCst) {
            let mut slot = self.backend.write().unwrap_or_else(PoisonError::into_inner);
            // Drop the old one first: the embedded store holds a file lock.
            drop(slot.take());
            *slot = Some((self.factory)()?);
            self.reopen.store(false, Ordering::SeqCst);
        }
        self.reads_work.store(true, Ordering::SeqCst);
        if let Err(err) = self.write_back() {
            self.reopen.store(true, Ordering::SeqCst);
            return Err(err);
        }
        // No update or append runs while the gate is held exclusively: write back what the
        // last degraded ones kept meanwhile, then end degraded mode.
        let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        self.write_back()?;
        self.degraded.store(false, Ordering::SeqCst);
        lock(&self.retry).delay = FIRST_RETRY;
        Ok(())
    }

    /// Writes the overlay and the audit queue to the backend; each entry leaves memory only
    /// once the backend has it.
    fn write_back(&self) -> Result<(), StoreError> {
        let backend = self.backend.read().unwrap_or_else(PoisonError::into_inner);
        let backend = backend
            .as_deref()
            .ok_or_else(|| StoreError::Unavailable(anyhow!("no backend")))?;
        let keys: Vec<String> = lock(&self.overlay).keys().cloned().collect();
        for key in keys {
            // No update of the key runs while it is written back.
            let _key = self.key_lock(&key);
            let Some(pending) = lock(&self.overlay).get(&key).cloned() else {
                continue;
            };
            backend.update(&key, &mut |_| Update {
                state: pending.state.clone(),
                durability: if pending.immediate {
                    Durability::Immediate
                } else {
                    Durability::Lazy
                },
                restricted: pending.restricted,
            })?;
            lock(&self.overlay).remove(&key);
        }
        loop {
            let Some(record) = lock(&self.audit_queue).front().cloned() else {
                break;
            };
            let seq = backend.append_audit(&record)?;
            self.last_seq.fetch_max(seq, Ordering::SeqCst);
            lock(&self.audit_queue).pop_front();
        }
        backend.flush()
    }
}

/// Whether an audit record is a restriction or an unblock: the records kept when the queue
/// overflows.
fn is_enforcement(record: &AuditRecord) -> bool {
    matches!(record.action.as_str(), "restrict" | "unblock")
}

impl StateStore for ResilientStore {
    fn degraded(&self) -> bool {
        ResilientStore::degraded(self)
    }

    fn update(&self, key: &str, decide: &mut dyn FnMut(&[u8]) -> Update) -> Result<(), StoreError> {
        let _gate = self.gate();
        let _key = self.key_lock(key);
        if !self.degraded() {
            let cached = self.cached(key);
            let mut applied: Option<(Option<Vec<u8>>, Option<bool>)> = None;
            let done = self.on_backend(|backend| {
                backend.update(key, &mut |state| {
                    let update = decide(state);
                    let needs_state = update.restricted == Some(true) || cached;
                    let result = match &update.state {
                        Some(new) => Some(new.clone()),
                        None if needs_state && !state.is_empty() => Some(state.to_vec()),
                        None => None,
                    };
                    applied = Some((result, update.restricted));
                    update
                })
            })?;
            if done.is_some() {
                if let Some((state, restricted)) = applied {
                    self.cache(key, state, restricted);
                }
                return Ok(());
            }
        }
        self.update_degraded(key, decide)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if self.degraded() {
            if let Some(pending) = lock(&self.overlay).get(key) {
                return Ok(pending.state.clone());
            }
            if let Some(state) = self.cached_state(key) {
                return Ok(state);
            }
        }
        match self.on_backend(|backend| backend.get(key))? {
            Some(state) => Ok(state),
            None => match self.cached_state(key) {
                Some(state) => Ok(state),
                None => Err(StoreError::Unavailable(anyhow!(
                    "read of {key}: the backend is unavailable and the key is not restricted"
                ))),
            },
        }
    }

    /// From the backend while it answers and nothing is held in memory; otherwise from the
    /// restricted cache, which has every restriction made through this store.
    fn restricted_keys(&self) -> Result<Vec<String>, StoreError> {
        if !self.degraded()
            && let Some(keys) = self.on_backend(|backend| backend.restricted_keys())?
        {
            return Ok(keys);
        }
        let mut keys: Vec<String> = self
            .restricted
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        keys.sort_unstable();
        Ok(keys)
    }

    fn append_audit(&self, record: &AuditRecord) -> Result<u64, StoreError> {
        let _gate = self.gate();
        if !self.degraded()
            && let Some(seq) = self.on_backend(|backend| backend.append_audit(record))?
        {
            self.last_seq.fetch_max(seq, Ordering::SeqCst);
            return Ok(seq);
        }
        Ok(self.queue_audit(record))
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.backend_only("audit query", |backend| backend.audit(query))
    }

    /// Healthy: the backend's flush (a failure switches to degraded mode). Degraded: a retry
    /// of the backend when due (see the module docs). Never fails for an outage.
    fn flush(&self) -> Result<(), StoreError> {
        if !self.degraded() {
            self.on_backend(|backend| backend.flush())?;
        }
        if self.degraded() {
            self.recover(false)?;
        }
        Ok(())
    }

    fn entity_count(&self) -> Result<u64, StoreError> {
        self.backend_only("entity count", |backend| backend.entity_count())
    }

    fn scan_keys(&self, cursor: Option<&str>, limit: usize) -> Result<KeyPage, StoreError> {
        self.backend_only("walk of entity keys", |backend| {
            backend.scan_keys(cursor, limit)
        })
    }

    /// Degraded: keeps every key (retention can wait for the backend).
    fn remove_if(
        &self,
        key: &str,
        forget: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<bool, StoreError> {
        let _gate = self.gate();
        let _key = self.key_lock(key);
        if self.degraded() || lock(&self.overlay).contains_key(key) {
            return Ok(false);
        }
        let removed = self
            .on_backend(|backend| backend.remove_if(key, forget))?
            .unwrap_or(false);
        if removed {
            self.restricted
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(key);
        }
        Ok(removed)
    }

    fn prune_audit(&self, before: i64, max: usize) -> Result<u64, StoreError> {
        self.backend_only("audit pruning", |backend| backend.prune_audit(before, max))
    }

    /// Only while the backend is healthy (a reset must reach the file or the server).
    fn clear_states(&self) -> Result<(), StoreError> {
        let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        self.backend_only("clearing all state", |backend| backend.clear_states())?;
        lock(&self.overlay).clear();
        self.restricted
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(())
    }
}

impl ResilientStore {
    /// An operation only the backend can answer: refused while degraded.
    fn backend_only<T>(
        &self,
        what: &str,
        op: impl FnOnce(&dyn StateStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if !self.degraded()
            && let Some(value) = self.on_backend(op)?
        {
            return Ok(value);
        }
        Err(StoreError::Unavailable(anyhow!(
            "{what}: the backend is unavailable (the store is degraded)"
        )))
    }
}

impl Drop for ResilientStore {
    /// One last write-back attempt, ignoring the backoff, so a clean shutdown after the
    /// backend recovered loses nothing.
    fn drop(&mut self) {
        if self.degraded() {
            let _ = self.recover(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_told_from_other_failures() {
        let io = || std::io::Error::from_raw_os_error(28); // ENOSPC
        assert!(is_outage(&StoreError::Unavailable(anyhow!("down"))));
        assert!(is_outage(&StoreError::Other(
            anyhow::Error::new(io()).context("commit")
        )));
        assert!(!is_outage(&StoreError::Other(anyhow!("corrupt page"))));
        assert!(
            !is_outage(&StoreError::Contended(anyhow!("busy"))),
            "contention is answered, not ridden out in memory"
        );
    }
}
