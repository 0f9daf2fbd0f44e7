//! [`EmbeddedStore`]: the durable embedded default, one [redb] file in the data directory.
//!
//! # Durability, and the redb guarantees it rests on (redb 4.6)
//! - Every update of a key runs under that key's write-buffer shard lock, and every write to
//!   the file is one redb write transaction (redb allows one writer at a time), so updates are
//!   atomic per key, and the state, the restricted index and the audit indexes change
//!   together.
//! - [`Durability::Immediate`] updates and audit appends commit with
//!   `redb::Durability::Immediate`: "Commits with this durability level are guaranteed to be
//!   persistent as soon as `WriteTransaction::commit` returns" (redb docs, `enum Durability`).
//!   redb writes the new commit slot with checksums and `fsync`s before `commit` returns.
//! - [`Durability::Lazy`] updates that leave the restricted index alone are held in memory
//!   (`write_buffer.rs`) and read from there, and [`flush`] writes all of them in one
//!   immediate transaction. The host calls `flush` every second and at shutdown; dropping the
//!   store flushes too. A crash loses at most the writes since the last flush. A flush begins
//!   its write transaction before it reads the buffer, so a buffered counter state never
//!   overwrites a newer immediate write of the same key (`EmbeddedStore::flush_round` says
//!   how, and why the other order lost restrictions and reverted unblocks).
//! - Lazy updates that do change the index commit with `redb::Durability::None`: "Commits with
//!   this durability level will not be persisted to disk unless followed by a commit with
//!   `Durability::Immediate`" (same page). So any later immediate write, and [`flush`], which
//!   makes an empty immediate commit when lazy commits are pending, persists them all.
//! - After a crash (`kill -9`, power loss) the file is consistent: "in the event of a crash the
//!   database is still guaranteed to be consistent, and will return to either the last
//!   non-durable commit or the last full commit that was made" (redb design doc, "Non-durable
//!   commits"); a torn durable commit is detected by its checksums and the previous commit slot
//!   is used ("1-phase + checksum durable commits").
//!
//! # Knobs left at redb's defaults, and why
//! - Two-phase commit stays off: redb's default 1-phase commit with checksums is crash-safe; the
//!   two-phase variant only defends against an attacker who controls page-flush order and can
//!   crash the machine mid-`fsync`, and costs a second `fsync` on every immediate write.
//! - Quick-repair stays off: it makes every commit save the allocator state (and commit in two
//!   phases) so that reopening after a crash skips a walk of the whole file. quench's file is
//!   small (about 180 bytes per tracked entity: 18 MB for 100,000 entities) and that walk
//!   takes well under a second, which is cheaper than a slower write on every restriction.
//!
//! [redb]: https://docs.rs/redb
//! [`flush`]: StateStore::flush

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::anyhow;
use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};

use crate::audit_filter::{Newest, Plan};
use crate::write_buffer::WriteBuffer;
use crate::{AuditQuery, AuditRecord, Durability, KeyPage, StateStore, StoreError, Update};

/// The database file inside the data directory.
const FILE_NAME: &str = "quench.redb";

/// Entity key -> the policy's opaque state.
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
/// Entity keys in the restricted index (a set: the value is empty).
const RESTRICTED: TableDefinition<&str, ()> = TableDefinition::new("restricted");
/// Audit seq -> the record as JSON (readable with any redb tool, and tolerant of new fields).
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// (entity, seq): the audit records about an entity, for "why was this user restricted".
const AUDIT_BY_ENTITY: TableDefinition<(&str, u64), ()> = TableDefinition::new("audit_by_entity");
/// (at, seq): the audit records since a time.
const AUDIT_BY_TIME: TableDefinition<(i64, u64), ()> = TableDefinition::new("audit_by_time");
/// Store metadata: `schema` -> the layout version of the tables above.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Flush transactions per [`StateStore::flush`] call at most: the first writes every shard
/// that was free, the next ones retry shards that were busy (usually held by an update waiting
/// for the first transaction's writer lock, free once it committed). Three bound the `fsync`s
/// a flush costs; anything still busy stays buffered for the next flush, a second later.
const FLUSH_ROUNDS: usize = 3;

/// How often a flush tries a busy buffer shard within one transaction before skipping it. A
/// lazy update holds its shard for a map insert (well under a microsecond), so a few tries
/// with a yield in between catch it; an update waiting for the writer lock will not let go
/// until the transaction ends, so more tries would only waste time.
const FLUSH_SHARD_TRIES: usize = 4;

/// `META` key: the highest seq `prune_audit` ever deleted, so that appends after the newest
/// record was pruned do not give its seq again. (Absent: nothing pruned yet; the layout
/// version stays 1, since a file without it reads the same.)
const PRUNED_SEQ: &str = "audit_pruned_seq";

/// The table layout this code reads and writes; a file with another version is refused rather
/// than misread.
const SCHEMA_VERSION: u64 = 1;

/// Tuning for [`EmbeddedStore::open_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// Upper bound, in bytes, of redb's page cache. Default 64 MiB: the whole file of a site with
    /// 100,000 tracked entities (about 18 MB) stays in memory, so decisions never wait for disk
    /// reads, while a huge site does not grow quench's memory without bound (redb's own default
    /// is 1 GiB, too much for a sidecar next to an MTA). The cache fills only as pages are read.
    pub cache_bytes: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The durable embedded store: a redb database in `DIR/quench.redb`. See the module docs for
/// the durability guarantees and the redb documentation they rest on.
///
/// Only one process (and one `EmbeddedStore` in it) may have a data directory open: a second
/// open fails with a clear error. The lock is released when the process exits, even by
/// `kill -9`.
pub struct EmbeddedStore {
    db: Database,
    file: PathBuf,
    /// Whether lazy (non-durable) commits may be waiting for a durable one. Set before a lazy
    /// commit, while its write transaction still holds redb's writer lock, so a `flush` that
    /// clears it always commits after that write.
    lazy_pending: AtomicBool,
    /// Counter-only writes not yet on disk.
    buffer: WriteBuffer,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating it if needed) the store in the data directory `dir`, with the default
    /// [`EmbeddedOptions`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, &EmbeddedOptions::default())
    }

    /// Opens (creating it if needed) the store in the data directory `dir`. The directory is
    /// made mode 0700 and the file 0600 (owner only), whatever the umask, also when they
    /// already existed with other modes.
    ///
    /// Fails with [`StoreError::Unavailable`] when the directory cannot be created or written,
    /// or when another process (or another store in this one) has it open, and with
    /// [`StoreError::Other`] when the file is not a quench store this version can read.
    pub fn open_with(dir: impl AsRef<Path>, options: &EmbeddedOptions) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|err| {
            StoreError::Unavailable(anyhow!(err).context(format!(
                "cannot create the data directory {}",
                dir.display()
            )))
        })?;
        restrict_mode(dir, DIR_MODE)?;
        let file = dir.join(FILE_NAME);
        let created = !file.exists();
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(&file)
            .map_err(|err| open_error(&file, err))?;
        restrict_mode(&file, FILE_MODE)?;
        if created {
            // The new file's directory entry must reach the disk too, or a power loss could
            // lose the whole file even after durable commits into it.
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|err| {
                    StoreError::Unavailable(
                        anyhow!(err)
                            .context(format!("cannot sync the data directory {}", dir.display())),
                    )
                })?;
        }
        let store = Self {
            db,
            file,
            lazy_pending: AtomicBool::new(false),
            buffer: WriteBuffer::new(),
        };
        store.init_schema()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The state of `key` in the file (not the write buffer).
    fn read_state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let context = || format!("read of {key}");
        let txn = self.read_txn(&context())?;
        let state = txn
            .open_table(STATE)
            .map_err(|e| redb_error(context(), e))?;
        let value = state.get(key).map_err(|e| redb_error(context(), e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Write `update` for `key` to the file in one transaction.
    fn commit(&self, key: &str, update: &Update) -> Result<(), StoreError> {
        let context = || format!("update of {key}");
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| redb_error(context(), e))?;
        if update.state.is_none() && update.restricted.is_none() {
            return txn.abort().map_err(|e| redb_error(context(), e));
        }
        if update.durability == Durability::Lazy {
            txn.set_durability(redb::Durability::None)
                .map_err(|e| redb_error(context(), e))?;
            self.lazy_pending.store(true, Ordering::SeqCst);
        }
        {
            if let Some(new_state) = &update.state {
                let mut state = txn
                    .open_table(STATE)
                    .map_err(|e| redb_error(context(), e))?;
                state
                    .insert(key, new_state.as_slice())
                    .map_err(|e| redb_error(context(), e))?;
            }
            if let Some(restricted) = update.restricted {
                let mut index = txn
                    .open_table(RESTRICTED)
                    .map_err(|e| redb_error(context(), e))?;
                if restricted {
                    index
                        .insert(key, ())
                        .map_err(|e| redb_error(context(), e))?;
                } else {
                    index.remove(key).map_err(|e| redb_error(context(), e))?;
                }
            }
        }
        txn.commit().map_err(|e| redb_error(context(), e))
    }

    /// Creates the tables (so read transactions always find them) and checks the layout version.
    fn init_schema(&self) -> Result<(), StoreError> {
        let context = || format!("cannot initialise {}", self.file.display());
        let txn = self
            .db
            .begin_write()
            .map_err(|e| redb_error(context(), e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| redb_error(context(), e))?;
            let version = meta
                .get("schema")
                .map_err(|e| redb_error(context(), e))?
                .map(|v| v.value());
            match version {
                None => {
                    meta.insert("schema", SCHEMA_VERSION)
                        .map_err(|e| redb_error(context(), e))?;
                }
                Some(SCHEMA_VERSION) => {}
                Some(other) => {
                    return Err(StoreError::Other(anyhow!(
                        "{} has store layout version {other}; this quench reads version \
                         {SCHEMA_VERSION}",
                        self.file.display()
                    )));
                }
            }
            txn.open_table(STATE)
                .map_err(|e| redb_error(context(), e))?;
            txn.open_table(RESTRICTED)
                .map_err(|e| redb_error(context(), e))?;
            txn.open_table(AUDIT)
                .map_err(|e| redb_error(context(), e))?;
            txn.open_table(AUDIT_BY_ENTITY)
                .map_err(|e| redb_error(context(), e))?;
            txn.open_table(AUDIT_BY_TIME)
                .map_err(|e| redb_error(context(), e))?;
        }
        txn.commit().map_err(|e| redb_error(context(), e))
    }

    /// One flush transaction over the buffer shards `shards`; returns the shards that were busy
    /// (left buffered for the next round or the next flush).
    ///
    /// The write transaction is begun first. It holds redb's single-writer lock, so no other
    /// commit (an immediate restriction or unblock in particular) can land between reading the
    /// buffer and committing it: every buffered state copied here is the newest state of its
    /// key, and a newer immediate write of that key (which takes the key's shard lock, then
    /// waits for the writer lock) commits after this transaction, on top of it. A lazily
    /// buffered counter state therefore never overwrites a newer immediate write. Reading the
    /// buffer before beginning the transaction (as an earlier version did) let an immediate
    /// update commit in between and be overwritten by the older buffered state: a lost
    /// restriction, or a reverted unblock.
    ///
    /// Shards are only tried, never waited for: an update holding its shard may be waiting for
    /// this transaction's writer lock. A busy shard is tried again [`FLUSH_SHARD_TRIES`] times
    /// (a lazy update holds it only for a map insert) and otherwise skipped.
    fn flush_round(&self, shards: &[usize]) -> Result<Vec<usize>, StoreError> {
        let context = |n: usize| format!("flush of {n} buffered states");
        let txn = self
            .db
            .begin_write()
            .map_err(|e| redb_error(context(0), e))?;
        // Under the writer lock: every lazy commit that set this has committed already.
        let pending = self.lazy_pending.swap(false, Ordering::SeqCst);
        let mut buffered = Vec::new();
        let mut busy = shards.to_vec();
        for attempt in 0..FLUSH_SHARD_TRIES {
            if attempt > 0 {
                std::thread::yield_now();
            }
            busy.retain(|&index| !self.buffer.try_collect(index, &mut buffered));
            if busy.is_empty() {
                break;
            }
        }
        if buffered.is_empty() && !pending {
            txn.abort().map_err(|e| redb_error(context(0), e))?;
            return Ok(busy);
        }
        let written = (|| {
            {
                let mut state = txn
                    .open_table(STATE)
                    .map_err(|e| redb_error(context(buffered.len()), e))?;
                for (key, bytes, _) in &buffered {
                    state
                        .insert(key.as_str(), bytes.as_slice())
                        .map_err(|e| redb_error(context(buffered.len()), e))?;
                }
            }
            // An immediate commit (the default): it also persists every earlier non-durable one.
            txn.commit()
                .map_err(|e| redb_error(context(buffered.len()), e))
        })();
        if let Err(err) = written {
            self.lazy_pending.fetch_or(pending, Ordering::SeqCst);
            return Err(err);
        }
        self.buffer.retire(&buffered);
        Ok(busy)
    }

    fn read_txn(&self, what: &str) -> Result<redb::ReadTransaction, StoreError> {
        self.db
            .begin_read()
            .map_err(|e| redb_error(format!("{what}: cannot begin a read transaction"), e))
    }
}

/// The data directory's mode: owner only. The store holds who was restricted and why, and
/// the audit log of admin actions; nobody else on the host needs to read them.
const DIR_MODE: u32 = 0o700;
/// The database file's mode: owner read and write only, for the same reason.
const FILE_MODE: u32 = 0o600;

/// Sets `path`'s permission bits to `mode` unless they are already exactly that, whatever
/// the umask gave it (a directory or file created by an older quench, or by hand, is
/// tightened too).
fn restrict_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |err: std::io::Error| {
        StoreError::Unavailable(anyhow!(err).context(format!(
            "cannot set the mode of {} to {mode:o}",
            path.display()
        )))
    };
    let current = fs::metadata(path).map_err(fail)?.permissions().mode() & 0o7777;
    if current & 0o1000 != 0 {
        // A sticky directory is shared (`/tmp`): tightening it would break everyone else.
        return Err(StoreError::Other(anyhow!(
            "{} is a shared directory (sticky bit set, like /tmp): give quench a data \
             directory of its own, e.g. /var/lib/quench",
            path.display()
        )));
    }
    if current != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(fail)?;
    }
    Ok(())
}

/// Says what went wrong opening the database file, and what to do about it.
fn open_error(file: &Path, err: DatabaseError) -> StoreError {
    match err {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            StoreError::Unavailable(anyhow!(
                "{} is already open in another process (or another store in this one): stop \
                 the other quench, or give this one its own data directory",
                file.display()
            ))
        }
        DatabaseError::Storage(redb::StorageError::Io(io)) => StoreError::Unavailable(
            anyhow!(io).context(format!("cannot open the state database {}", file.display())),
        ),
        other => StoreError::Other(
            anyhow!(other).context(format!("cannot open the state database {}", file.display())),
        ),
    }
}

/// A redb error with what was being done: I/O failures are [`StoreError::Unavailable`] (the
/// disk is gone or full), and so is redb's refusal of every write after one (`PreviousIo`:
/// the database must be closed and reopened, which a wrapper such as
/// [`ResilientStore`](crate::ResilientStore) does); everything else is [`StoreError::Other`].
fn redb_error(context: String, err: impl Into<redb::Error>) -> StoreError {
    let err: redb::Error = err.into();
    if matches!(err, redb::Error::Io(_) | redb::Error::PreviousIo) {
        StoreError::Unavailable(anyhow!(err).context(context))
    } else {
        StoreError::Other(anyhow!(err).context(context))
    }
}

fn decode_audit(bytes: &[u8], seq: u64) -> Result<AuditRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|err| {
        StoreError::Other(anyhow!(err).context(format!("audit record {seq} is not valid JSON")))
    })
}

/// Offers the audit record `seq`, named by an index, to `newest`; true when no more are needed.
fn offer_seq(
    log: &redb::ReadOnlyTable<u64, &[u8]>,
    newest: &mut Newest<'_>,
    seq: u64,
) -> Result<bool, StoreError> {
    let bytes = log
        .get(seq)
        .map_err(|e| redb_error("audit query".to_owned(), e))?
        .ok_or_else(|| {
            StoreError::Other(anyhow!(
                "the audit index names record {seq}, which is missing"
            ))
        })?;
    Ok(newest.offer(&decode_audit(bytes.value(), seq)?))
}

impl StateStore for EmbeddedStore {
    /// Holds every buffer shard (so no update runs and nothing is buffered meanwhile), drops
    /// the buffered writes, and empties the tables in one durable transaction. The shards are
    /// taken before redb's writer lock, the order updates use, so this cannot deadlock with
    /// them; a concurrent flush never waits for a shard, and one that read a shard before this
    /// took it commits before this transaction begins, so it cannot bring cleared state back.
    fn clear_states(&self) -> Result<(), StoreError> {
        let mut shards = self.buffer.lock_all();
        for shard in &mut shards {
            shard.clear();
        }
        let context = || "clearing all state".to_string();
        let txn = self
            .db
            .begin_write()
            .map_err(|e| redb_error(context(), e))?;
        // Empty the tables rather than delete them: readers expect them to exist.
        txn.open_table(STATE)
            .map_err(|e| redb_error(context(), e))?
            .retain(|_, _| false)
            .map_err(|e| redb_error(context(), e))?;
        txn.open_table(RESTRICTED)
            .map_err(|e| redb_error(context(), e))?
            .retain(|_, _| false)
            .map_err(|e| redb_error(context(), e))?;
        txn.commit().map_err(|e| redb_error(context(), e))?;
        drop(shards);
        Ok(())
    }

    fn update(&self, key: &str, decide: &mut dyn FnMut(&[u8]) -> Update) -> Result<(), StoreError> {
        let mut shard = self.buffer.shard(key);
        let buffered = shard.get(key).map(|pending| pending.state.clone());
        let on_disk = match &buffered {
            Some(_) => None,
            None => self.read_state(key)?,
        };
        let current = buffered
            .as_deref()
            .or(on_disk.as_deref())
            .unwrap_or_default();
        let update = decide(current);
        if update.durability == Durability::Lazy && update.restricted.is_none() {
            if let Some(state) = update.state {
                self.buffer.put(
                    &mut shard,
                    key,
                    state,
                    buffered.is_none() && on_disk.is_none(),
                );
            }
            return Ok(());
        }
        // A durable write carries the buffered state along when the update keeps the state.
        let state = update.state.or(buffered);
        self.commit(
            key,
            &Update {
                state,
                durability: update.durability,
                restricted: update.restricted,
            },
        )?;
        shard.remove(key);
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(pending) = self.buffer.shard(key).get(key) {
            return Ok(Some(pending.state.clone()));
        }
        self.read_state(key)
    }

    /// Keys in order, `limit` per page, from the file. Keys whose only state is still in the
    /// write buffer (written in the last second) are on disk by the next flush.
    fn scan_keys(&self, cursor: Option<&str>, limit: usize) -> Result<KeyPage, StoreError> {
        use std::ops::Bound;
        let context = || "walk of entity keys".to_owned();
        let txn = self.read_txn(&context())?;
        let table = txn
            .open_table(STATE)
            .map_err(|e| redb_error(context(), e))?;
        let start = cursor.map_or(Bound::Unbounded, Bound::Excluded);
        let range = table
            .range::<&str>((start, Bound::Unbounded))
            .map_err(|e| redb_error(context(), e))?;
        let limit = limit.max(1);
        let mut keys = Vec::with_capacity(limit.min(4096));
        for entry in range.take(limit) {
            let (key, _) = entry.map_err(|e| redb_error(context(), e))?;
            keys.push(key.value().to_owned());
        }
        let next = (keys.len() == limit).then(|| keys[limit - 1].clone());
        Ok(KeyPage { keys, next })
    }

    /// A key with a buffered write was written within the last second: it is kept without
    /// asking. Otherwise the state on disk is asked about and deleted in one lazy commit
    /// (made durable by the next flush), under the key's buffer lock so no update interleaves.
    /// No flush can write the key back either: a flush writes only buffered keys, and this key
    /// is not buffered and cannot become so while its shard is held (issue 12's flush race
    /// does not apply).
    fn remove_if(
        &self,
        key: &str,
        forget: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<bool, StoreError> {
        let shard = self.buffer.shard(key);
        if shard.contains_key(key) {
            return Ok(false);
        }
        let Some(state) = self.read_state(key)? else {
            return Ok(false);
        };
        if !forget(&state) {
            return Ok(false);
        }
        let context = || format!("removal of {key}");
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| redb_error(context(), e))?;
        txn.set_durability(redb::Durability::None)
            .map_err(|e| redb_error(context(), e))?;
        self.lazy_pending.store(true, Ordering::SeqCst);
        {
            txn.open_table(STATE)
                .map_err(|e| redb_error(context(), e))?
                .remove(key)
                .map_err(|e| redb_error(context(), e))?;
            txn.open_table(RESTRICTED)
                .map_err(|e| redb_error(context(), e))?
                .remove(key)
                .map_err(|e| redb_error(context(), e))?;
        }
        txn.commit().map_err(|e| redb_error(context(), e))?;
        drop(shard);
        Ok(true)
    }

    fn restricted_keys(&self) -> Result<Vec<String>, StoreError> {
        let context = || "listing of restricted entities".to_owned();
        let txn = self.read_txn(&context())?;
        let index = txn
            .open_table(RESTRICTED)
            .map_err(|e| redb_error(context(), e))?;
        let entries = index.iter().map_err(|e| redb_error(context(), e))?;
        entries
            .map(|entry| {
                entry
                    .map(|(key, _)| key.value().to_owned())
                    .map_err(|e| redb_error(context(), e))
            })
            .collect()
    }

    fn append_audit(&self, record: &AuditRecord) -> Result<u64, StoreError> {
        let context = || format!("audit append ({} {})", record.action, record.outcome);
        let txn = self
            .db
            .begin_write()
            .map_err(|e| redb_error(context(), e))?;
        let seq = {
            let mut log = txn
                .open_table(AUDIT)
                .map_err(|e| redb_error(context(), e))?;
            let last = log.last().map_err(|e| redb_error(context(), e))?;
            let pruned = txn
                .open_table(META)
                .map_err(|e| redb_error(context(), e))?
                .get(PRUNED_SEQ)
                .map_err(|e| redb_error(context(), e))?
                .map_or(0, |v| v.value());
            let seq = last.map_or(0, |(seq, _)| seq.value()).max(pruned) + 1;
            let stored = AuditRecord {
                seq,
                ..record.clone()
            };
            let json = serde_json::to_vec(&stored)
                .map_err(|e| StoreError::Other(anyhow!(e).context(context())))?;
            log.insert(seq, json.as_slice())
                .map_err(|e| redb_error(context(), e))?;
            seq
        };
        {
            let mut by_time = txn
                .open_table(AUDIT_BY_TIME)
                .map_err(|e| redb_error(context(), e))?;
            by_time
                .insert((record.at, seq), ())
                .map_err(|e| redb_error(context(), e))?;
        }
        if let Some(entity) = record.entity.as_deref() {
            let mut by_entity = txn
                .open_table(AUDIT_BY_ENTITY)
                .map_err(|e| redb_error(context(), e))?;
            by_entity
                .insert((entity, seq), ())
                .map_err(|e| redb_error(context(), e))?;
        }
        txn.commit().map_err(|e| redb_error(context(), e))?;
        Ok(seq)
    }

    /// One durable transaction: the oldest `max` entries of the time index before `before`,
    /// their records and entity index entries, and the highest seq deleted (for later appends).
    fn prune_audit(&self, before: i64, max: usize) -> Result<u64, StoreError> {
        let context = || format!("audit pruning before {before}");
        let err = |e: redb::StorageError| redb_error(context(), e);
        if max == 0 {
            return Ok(0);
        }
        let txn = self
            .db
            .begin_write()
            .map_err(|e| redb_error(context(), e))?;
        let deleted = {
            let mut by_time = txn
                .open_table(AUDIT_BY_TIME)
                .map_err(|e| redb_error(context(), e))?;
            let doomed = by_time
                .range(..(before, 0))
                .map_err(err)?
                .take(max)
                .map(|entry| entry.map(|(key, _)| key.value()).map_err(err))
                .collect::<Result<Vec<(i64, u64)>, StoreError>>()?;
            let mut log = txn
                .open_table(AUDIT)
                .map_err(|e| redb_error(context(), e))?;
            let mut by_entity = txn
                .open_table(AUDIT_BY_ENTITY)
                .map_err(|e| redb_error(context(), e))?;
            let mut highest = 0;
            for &(at, seq) in &doomed {
                by_time.remove((at, seq)).map_err(err)?;
                let record = log.remove(seq).map_err(err)?.ok_or_else(|| {
                    StoreError::Other(anyhow!(
                        "the audit time index names record {seq}, which is missing"
                    ))
                })?;
                if let Some(entity) = decode_audit(record.value(), seq)?.entity {
                    by_entity.remove((entity.as_str(), seq)).map_err(err)?;
                }
                highest = highest.max(seq);
            }
            let mut meta = txn.open_table(META).map_err(|e| redb_error(context(), e))?;
            let pruned = meta.get(PRUNED_SEQ).map_err(err)?.map_or(0, |v| v.value());
            if highest > pruned {
                meta.insert(PRUNED_SEQ, highest).map_err(err)?;
            }
            doomed.len() as u64
        };
        txn.commit().map_err(|e| redb_error(context(), e))?;
        Ok(deleted)
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let context = || "audit query".to_owned();
        let err = |e: redb::StorageError| redb_error(context(), e);
        let txn = self.read_txn(&context())?;
        let log = txn
            .open_table(AUDIT)
            .map_err(|e| redb_error(context(), e))?;
        let mut newest = Newest::new(query);
        if newest.is_full() {
            return Ok(newest.finish());
        }
        match Plan::of(query) {
            Plan::Entity(entity) => {
                let index = txn
                    .open_table(AUDIT_BY_ENTITY)
                    .map_err(|e| redb_error(context(), e))?;
                for entry in index
                    .range((entity, 0)..=(entity, u64::MAX))
                    .map_err(err)?
                    .rev()
                {
                    let (key, _) = entry.map_err(err)?;
                    if offer_seq(&log, &mut newest, key.value().1)? {
                        break;
                    }
                }
            }
            Plan::Since(since) => {
                let index = txn
                    .open_table(AUDIT_BY_TIME)
                    .map_err(|e| redb_error(context(), e))?;
                // Times need not grow with seq (hosts' clocks differ), so collect, then go
                // newest (highest seq) first.
                let mut seqs = index
                    .range((since, 0)..)
                    .map_err(err)?
                    .map(|entry| entry.map(|(key, _)| key.value().1).map_err(err))
                    .collect::<Result<Vec<u64>, StoreError>>()?;
                seqs.sort_unstable_by(|a, b| b.cmp(a));
                for seq in seqs {
                    if offer_seq(&log, &mut newest, seq)? {
                        break;
                    }
                }
            }
            Plan::All => {
                for entry in log.iter().map_err(err)?.rev() {
                    let (seq, bytes) = entry.map_err(err)?;
                    if newest.offer(&decode_audit(bytes.value(), seq.value())?) {
                        break;
                    }
                }
            }
        }
        Ok(newest.finish())
    }

    /// Writes the buffered counter states in one durable transaction that is begun *before*
    /// the buffer is read; see `EmbeddedStore::flush_round` for why that order matters. A
    /// buffer shard that an update keeps busy through all `FLUSH_ROUNDS` stays buffered for
    /// the next flush (a second later in a host); with no concurrent updates (at shutdown,
    /// on drop) every write is flushed.
    fn flush(&self) -> Result<(), StoreError> {
        let mut remaining: Vec<usize> = (0..self.buffer.shard_count()).collect();
        for _ in 0..FLUSH_ROUNDS {
            remaining = self.flush_round(&remaining)?;
            if remaining.is_empty() {
                break;
            }
        }
        Ok(())
    }

    fn entity_count(&self) -> Result<u64, StoreError> {
        let context = || "entity count".to_owned();
        let txn = self.read_txn(&context())?;
        let state = txn
            .open_table(STATE)
            .map_err(|e| redb_error(context(), e))?;
        let on_disk = state.len().map_err(|e| redb_error(context(), e))?;
        Ok(on_disk + self.buffer.fresh_count())
    }
}

impl Drop for EmbeddedStore {
    /// Makes pending lazy writes durable, so a clean shutdown loses nothing even if the host
    /// forgot its final `flush`. An error here has nobody to go to; the next open recovers to
    /// the last durable commit.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
