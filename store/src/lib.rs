//! quench's state stores. A store keeps, per entity key (`user:alice@contoso.com`,
//! `connector:relay-1`), the policy's opaque state bytes, an index of the entities that may be
//! restricted (for listings), and the append-only audit log. It never parses policy state.
//!
//! Every backend implements [`StateStore`]; the host picks one from its config. The contract
//! every backend keeps:
//! - [`StateStore::update`] is atomic per key: concurrent updates of one key are serialised
//!   (the closure may run more than once on backends that retry, so it must be pure).
//! - A write with [`Durability::Immediate`] is durable when `update` returns (it survives
//!   `kill -9`); a [`Durability::Lazy`] write may be lost if the process dies within about a
//!   second, until the next [`StateStore::flush`] or immediate write.
//! - Audit records are durable when `append_audit` returns; their seqs start at 1 and strictly
//!   increase in append order.
//! - The restricted index changes in the same atomic step as the state whose update decided it.
//!
//! Durability is the backend's: [`MemoryStore`] keeps nothing, [`EmbeddedStore`] `fsync`s
//! (surviving power loss too), and `RedisStore` has every write on the Redis server when it
//! returns, kept across a Redis crash as Redis's own persistence settings say.
//!
//! Backends: [`MemoryStore`] (in-process: `quench simulate`, tests, benches), [`EmbeddedStore`]
//! (the durable default, a redb file in the data directory) and, with the `redis` feature,
//! `RedisStore` (fleet mode: many hosts share one Redis). [`ResilientStore`] wraps any of them
//! so that a full disk, I/O errors or a Redis outage do not stop enforcement. The
//! `conformance` feature adds
//! the `conformance` module, the behaviour every backend must show, as a test kit.

mod audit_filter;
#[cfg(feature = "conformance")]
pub mod conformance;
mod embedded;
#[cfg(feature = "conformance")]
pub mod full_disk;
#[cfg(feature = "redis")]
mod key_locks;
mod memory;
#[cfg(feature = "redis")]
mod redis_store;
mod resilient;
#[cfg(feature = "conformance")]
pub mod stress;
mod write_buffer;

pub use embedded::{EmbeddedOptions, EmbeddedStore};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis_store::{RedisOptions, RedisStore};
pub use resilient::{
    FIRST_RETRY, Factory, MAX_OVERLAY_KEYS, MAX_QUEUED_AUDIT, MAX_RETRY, ResilientStore, Unsaved,
    is_outage,
};

use serde::{Deserialize, Serialize};

/// How durable a state write must be before `update` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Counters only: may be lost if the process dies before the next flush (about a second).
    Lazy,
    /// Restrictions and unblocks: on stable storage before `update` returns.
    Immediate,
}

/// What the closure given to [`StateStore::update`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The new state; `None` leaves the stored state as it is. `Some(vec![])` stores an empty
    /// state (the key then has state and counts in [`StateStore::entity_count`]).
    pub state: Option<Vec<u8>>,
    /// How durable the write must be.
    pub durability: Durability,
    /// Change to the restricted index: `Some(true)` adds the key, `Some(false)` removes it,
    /// `None` leaves it.
    pub restricted: Option<bool>,
}

/// One audit record: who did what to which entity, when and why, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log, assigned by the store: from 1, strictly increasing in append order.
    /// Ignored in records given to `append_audit` (pass 0).
    pub seq: u64,
    /// When, seconds since the Unix epoch (UTC).
    pub at: i64,
    /// Who: an admin token's name, or `policy` for restrictions the policy started.
    pub actor: String,
    /// What: e.g. `restrict`, `unblock`, `list`, `get`, `reload`.
    pub action: String,
    /// The entity key concerned, if any.
    pub entity: Option<String>,
    /// How it ended: `ok`, `denied`, `forbidden`, `unauthenticated`, `error`.
    pub outcome: String,
    /// Why / details (the admin's reason, the Reason string, the error text).
    pub detail: String,
}

/// Which audit records to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only records at or after this time (`at >= since`).
    pub since: Option<i64>,
    /// Only records about this entity key.
    pub entity: Option<String>,
    /// Only records of this action.
    pub action: Option<String>,
    /// At most this many records (the newest ones), oldest first.
    pub limit: Option<usize>,
}

/// One page of a walk over every key with state ([`StateStore::scan_keys`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Entity keys on this page.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` when the walk is complete.
    pub next: Option<String>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend is unreachable or timed out (Redis down, disk gone).
    #[error("store unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// Anything else (corruption, a bug): the message says what.
    #[error("store error: {0:#}")]
    Other(anyhow::Error),
    /// The store works, but other updates of the same entity kept this one from its turn for
    /// longer than the store's generous bound (Redis: `RedisOptions::contention_timeout`,
    /// default 5 s). Nothing was written. The host must answer it with a temporary refusal
    /// (4xx: the client retries), never with an accept: an accept here would be a message the
    /// entity's counters never saw.
    #[error("store contended: {0:#}")]
    Contended(anyhow::Error),
}

/// A backend for per-entity state, the restricted index and the audit log.
pub trait StateStore: Send + Sync {
    /// Atomically read the state of `key` (empty when none), let `decide` compute the update,
    /// and apply it. Fails with [`StoreError::Contended`] (nothing written) only when other
    /// updates of the key kept it from its turn past the backend's bound.
    fn update(&self, key: &str, decide: &mut dyn FnMut(&[u8]) -> Update) -> Result<(), StoreError>;

    /// The state stored for `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Keys currently in the restricted index, sorted.
    fn restricted_keys(&self) -> Result<Vec<String>, StoreError>;

    /// Append a record to the audit log (durably); returns its sequence number.
    fn append_audit(&self, record: &AuditRecord) -> Result<u64, StoreError>;

    /// Audit records matching `query`, oldest first.
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// Make every lazy write durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Whether the store is answering from memory because its backend cannot be written
    /// (a [`ResilientStore`] in degraded mode): updates succeed but are not durable. Plain
    /// backends are never degraded; they fail instead.
    fn degraded(&self) -> bool {
        false
    }

    /// How many entities have stored state.
    fn entity_count(&self) -> Result<u64, StoreError>;

    /// A page of the walk over every key with state: start with `cursor = None`, then pass
    /// the previous page's [`KeyPage::next`] until it is `None`. `limit` is the page size the
    /// caller would like (a backend may return somewhat more or fewer). A key that has state
    /// for the whole walk is returned at least once (possibly twice on Redis); keys written
    /// or removed during the walk may or may not be. Used by the retention sweep.
    fn scan_keys(&self, cursor: Option<&str>, limit: usize) -> Result<KeyPage, StoreError>;

    /// Atomically read `key`'s state and, if `forget` says so, delete the state and the key's
    /// restricted-index entry; returns whether it was deleted. A key with no state is not
    /// deleted (`forget` is not asked), and a backend may keep, without asking, a key written
    /// since the last [`StateStore::flush`] (it is active anyway). The deletion may be lazy (lost in a crash within about
    /// a second): that only keeps a state that could have gone. Used by the retention sweep
    /// with the policy's `idle` as `forget`.
    fn remove_if(
        &self,
        key: &str,
        forget: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<bool, StoreError>;

    /// Deletes up to `max` audit records with `at < before`, oldest (lowest `at`, then lowest
    /// seq) first, with their index entries; returns how many were deleted. Seqs of records
    /// appended later still go on from the highest seq ever assigned, pruned or not. Used by
    /// the audit retention (a host calls it in batches until it returns less than `max`).
    /// The deletion is durable when it returns.
    fn prune_audit(&self, before: i64, max: usize) -> Result<u64, StoreError> {
        let _ = (before, max);
        Err(StoreError::Other(anyhow::anyhow!(
            "this store cannot prune the audit log"
        )))
    }

    /// Forget every entity's state and the restricted index (the audit log stays). Used
    /// when an operator swaps in a policy with another state format and asks to reset
    /// state; durable when it returns.
    fn clear_states(&self) -> Result<(), StoreError> {
        Err(StoreError::Other(anyhow::anyhow!(
            "this store cannot clear state"
        )))
    }
}
