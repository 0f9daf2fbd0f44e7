//! [`RedisStore`]: fleet mode, many quench hosts sharing one Redis (the `redis` feature).
//!
//! # Atomicity across hosts
//! [`StateStore::update`] is an optimistic compare-and-set: read the state (`GET`), run the
//! closure, then one Lua script checks that the state is still exactly what was read and, only
//! then, writes the new state and the restricted-index change together. Scripts run atomically
//! in Redis, so no other host's update can slip in between the check and the write; on a
//! conflict the update re-reads and re-decides (the closure runs again, which the trait allows).
//! N hosts therefore never let more through than the limit: every decision is made on the
//! latest state and applied only if that state is still current.
//!
//! # Contention ends in a counted answer
//! A hot entity (one sender blasting through many connections, on many hosts) must not turn
//! lost compare-and-sets into errors, which the host would answer as an outage (by default
//! with an accept that nobody counted). So:
//! - **One host never competes with itself.** Updates of one key on one `RedisStore` go one at
//!   a time (`key_locks.rs`: a fixed set of 256 lock slots chosen by the key's hash, so memory
//!   stays bounded); only different hosts can race.
//! - **Hosts take turns when they keep colliding.** After [`OPTIMISTIC_ATTEMPTS`] lost
//!   compare-and-sets, an update takes the entity's Redis lock (`SET P lock:<entity> token NX
//!   PX ttl`) and then reads, decides and writes; the update script refuses any other update's
//!   write while the lock is held (so a lock holder's compare-and-set cannot lose) and
//!   releases the lock with the write; an update that decides nothing releases it with a
//!   compare-and-delete script. Other hosts wait for the lock with a short random backoff. The
//!   whole read-decide-write cannot move into Redis, because the decision is the policy's
//!   (a WebAssembly guest in the host).
//! - The lock orders updates but correctness never rests on it: the write is still a
//!   compare-and-set, so a lock that expires under a stalled holder ([`LOCK_MARGIN`]) costs a
//!   retry, never a lost update. A host that dies holding a lock delays that entity's other
//!   updates until the lock expires (about 2.25 s with the default timeouts).
//! - Waiting (for this host's turn, then for the lock) is bounded by
//!   [`RedisOptions::contention_timeout`]; past it the update fails with
//!   [`StoreError::Contended`], which the host answers with a temporary refusal. Only a real
//!   outage (connection refused or dropped, an I/O timeout, Redis loading or read-only) gives
//!   [`StoreError::Unavailable`]; when one update of a key finds Redis unavailable, the
//!   updates of that key queued behind it on this host fail the same way at once instead of
//!   each waiting for its own timeout.
//!
//! A lazy write never overwrites a newer immediate write: the two are not told apart here,
//! nothing is buffered in the host ([`StateStore::flush`] has nothing to write), and every write
//! is a compare-and-set against the exact state its decision read, so a write decided on an
//! older state is refused and decided again on the newer one.
//!
//! # Failures
//! Every command has a bounded connect and I/O timeout ([`RedisOptions`]). An unreachable,
//! stopped or slow Redis gives [`StoreError::Unavailable`] (the host applies its configured
//! fail-open or fail-closed behaviour); the connection that failed is discarded and the next
//! operation connects afresh, so service resumes by itself when Redis is back. Idle pooled
//! connections that Redis has closed meanwhile are replaced transparently: a read retries once
//! on a fresh connection, and a write is sent only on a connection that has just answered.
//! A write whose reply is lost (Redis dies after executing it) is reported as unavailable and
//! not retried, so it is never applied twice.
//!
//! # Durability
//! What survives a Redis crash is Redis's own persistence configuration: run it with
//! `appendonly yes` and `appendfsync always` for restrictions and audit records that survive
//! like the embedded store's, or `appendfsync everysec` to lose at most about a second of
//! writes. [`StateStore::flush`] has nothing to do: every write is on the server when it
//! returns. [`Durability`](crate::Durability) is therefore not distinguished here.
//!
//! # Key layout
//! Under [`RedisOptions::key_prefix`] (`P`): `P state:<entity>` (the state bytes), `P restricted`
//! (a set), `P entities` (count of entities with state), `P audit:seq` (the last seq),
//! `P audit:log` (hash seq -> the record as JSON), `P audit:time` (sorted set of seqs by time)
//! and `P audit:entity:<entity>` (sorted set of that entity's seqs). The scripts touch several
//! keys, so this is for a single Redis (with replicas or Sentinel), not Redis Cluster.

use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use redis::{Client, Connection, RedisError, RedisResult, Script, ServerErrorKind};

use crate::audit_filter::{Newest, Plan};
use crate::key_locks::{KeyLocks, Refused};
use crate::{AuditQuery, AuditRecord, KeyPage, StateStore, StoreError, Update};

/// Compare-and-set of one entity's state and its restricted-index entry, respecting the
/// entity's contention lock.
///
/// KEYS: state, restricted set, entity counter, the entity's lock. ARGV: `-` (no state
/// expected) or `=` (ARGV[2] expected), `-` (keep the state) or `=` (store ARGV[4]),
/// `+`/`-`/`` (index change), the entity key, this update's lock token (`` when it holds no
/// lock). Returns 1 when applied, 0 when the state changed since it was read, -1 when another
/// update holds the entity's lock. A lock this update holds is released either way.
const UPDATE_SCRIPT: &str = r"
local lock = redis.call('GET', KEYS[4])
if lock and lock ~= ARGV[7] then return -1 end
if lock then redis.call('DEL', KEYS[4]) end
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '-' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
if ARGV[3] == '=' then
  redis.call('SET', KEYS[1], ARGV[4])
  if not current then redis.call('INCR', KEYS[3]) end
end
if ARGV[5] == '+' then
  redis.call('SADD', KEYS[2], ARGV[6])
elseif ARGV[5] == '-' then
  redis.call('SREM', KEYS[2], ARGV[6])
end
return 1
";

/// Releases an entity's contention lock if this update still holds it (compare-and-delete:
/// a lock that expired and was taken by another host is left alone).
///
/// KEYS: the lock. ARGV: this update's token.
const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Appends one audit record: the next seq, the record, its time and entity index entries.
///
/// KEYS: seq counter, log hash, time index[, entity index]. ARGV: the record as JSON, its time.
/// Returns the seq.
const APPEND_SCRIPT: &str = r"
local seq = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], seq)
if KEYS[4] then redis.call('ZADD', KEYS[4], seq, seq) end
return seq
";

/// Deletes one batch of state keys found by `SCAN`, keeping the entity count and the
/// restricted index in step with what was actually deleted.
///
/// KEYS: entity counter, restricted set, then the state keys. ARGV: the entity key of each
/// state key, in the same order. Returns how many states were deleted.
const CLEAR_BATCH_SCRIPT: &str = r"
local deleted = 0
for i = 3, #KEYS do
  if redis.call('DEL', KEYS[i]) == 1 then
    deleted = deleted + 1
    redis.call('SREM', KEYS[2], ARGV[i - 2])
  end
end
if deleted > 0 then
  if redis.call('DECRBY', KEYS[1], deleted) <= 0 then redis.call('DEL', KEYS[1]) end
end
return deleted
";

/// Drops restricted-index entries whose entity has no state (left behind by a clear racing
/// an update that marked without writing state).
///
/// KEYS: restricted set, then the state key of each member. ARGV: the members, in order.
const CLEAR_INDEX_SCRIPT: &str = r"
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('SREM', KEYS[1], ARGV[i - 1]) end
end
return 1
";

/// Deletes one entity's state if it is still exactly what the retention sweep judged idle,
/// with its restricted-index entry and the entity count.
///
/// KEYS: state, restricted set, entity counter. ARGV: the state that was read, the entity key.
/// Returns 1 when deleted, 0 when the state changed (the entity is active again: kept).
const REMOVE_IF_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('DECR', KEYS[3]) <= 0 then redis.call('DEL', KEYS[3]) end
return 1
";

/// Deletes audit records and their index entries; the seq counter is left alone, so seqs
/// keep increasing after pruning.
///
/// KEYS: log hash, time index, then one entity index per record (the time index again for a
/// record without entity). ARGV: the seqs, in the same order. Returns how many records were
/// deleted (a record another host pruned meanwhile is not counted twice).
const PRUNE_SCRIPT: &str = r"
local deleted = 0
for i = 1, #ARGV do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    deleted = deleted + 1
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('ZREM', KEYS[i + 2], ARGV[i])
  end
end
return deleted
";

/// Audit records fetched per round trip when scanning the log.
const AUDIT_BATCH: usize = 256;

/// Compare-and-set attempts an update makes before it takes the entity's Redis lock. Three:
/// one lost race is normal under load, and each loss means another host's update went through;
/// a third loss in a row means the key is hot across hosts, and queueing on a lock then costs
/// less than more rounds of read, decide and lose.
const OPTIMISTIC_ATTEMPTS: u32 = 3;

/// How long an entity's Redis lock lives past the I/O timeouts its holder may spend (a `GET`
/// and the update script, each up to [`RedisOptions::io_timeout`]): 250 ms covers the policy's
/// decision (milliseconds at most). The lock only orders contending updates; correctness
/// rests on the compare-and-set, so a lock that expires under a slow holder is harmless, and
/// one left by a host that died frees itself after this.
const LOCK_MARGIN: Duration = Duration::from_millis(250);

/// Keys asked for per `SCAN` step (and so at most deleted per script run) by
/// [`StateStore::clear_states`]: small enough that each script holds Redis for well under a
/// millisecond, so other hosts' decisions are not stalled while one host resets state.
const CLEAR_BATCH: usize = 500;

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port/db`, or `redis+unix:///path/to/socket`. (TLS,
    /// `rediss://`, would need the redis crate's TLS feature, which is not enabled.) Redis 6.2 or
    /// newer: the audit queries use `ZRANGE ... BYSCORE/REV`.
    pub url: String,
    /// Prefix of every key quench writes. Default `quench:`; give each quench deployment that
    /// shares one Redis database its own.
    pub key_prefix: String,
    /// How long to wait for a TCP connection and the handshake. Default 1 s: a local or
    /// same-datacenter Redis connects in well under a millisecond, so a second only passes when
    /// it is down or unreachable, and a decision should not wait longer than that.
    pub connect_timeout: Duration,
    /// How long to wait for each reply. Default 1 s, for the same reason: Redis answers these
    /// commands in microseconds; an answer this late means it is stalled (or busy with a slow
    /// command), and the host should fall back to its configured behaviour rather than hold
    /// the MTA's connection.
    pub io_timeout: Duration,
    /// Idle connections kept for reuse. Default 16: more than the threads a host runs
    /// decisions on, so steady traffic never reconnects; extra connections opened under a burst
    /// are closed when returned to a full pool.
    pub max_idle_connections: usize,
    /// How long an update may wait for its turn (behind updates of the same entity on this
    /// host, then for the entity's Redis lock against other hosts) before it gives up with
    /// [`StoreError::Contended`]. Default 5 s: updates of one entity go one at a time on a
    /// host and queue on a lock across hosts, so each waits for at most one update per other
    /// contender (about a millisecond each); seconds of waiting mean something is badly wrong,
    /// and the MTA's client should be told to retry rather than be held longer.
    pub contention_timeout: Duration,
}

impl RedisOptions {
    /// The defaults, for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "quench:".to_owned(),
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
            max_idle_connections: 16,
            contention_timeout: Duration::from_secs(5),
        }
    }
}

/// A store in a Redis shared by many quench hosts. See the module docs for atomicity, failure
/// handling and durability.
pub struct RedisStore {
    client: Client,
    options: RedisOptions,
    idle: Mutex<Vec<Connection>>,
    update_script: Script,
    append_script: Script,
    clear_batch_script: Script,
    clear_index_script: Script,
    remove_if_script: Script,
    unlock_script: Script,
    prune_script: Script,
    /// One update of a key at a time on this host.
    key_locks: KeyLocks,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("addr", &self.client.get_connection_info().addr())
            .field("key_prefix", &self.options.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `options`. Checks the URL but does not connect: a host may start while
    /// Redis is down and is served as soon as it comes up. Call [`RedisStore::ping`] to check
    /// it now.
    pub fn new(options: RedisOptions) -> Result<Self, StoreError> {
        let client = Client::open(options.url.as_str()).map_err(|err| {
            StoreError::Other(anyhow!(err).context(format!(
                "invalid Redis URL {:?} (expected redis://host:port/db)",
                options.url
            )))
        })?;
        Ok(Self {
            client,
            options,
            idle: Mutex::new(Vec::new()),
            update_script: Script::new(UPDATE_SCRIPT),
            append_script: Script::new(APPEND_SCRIPT),
            clear_batch_script: Script::new(CLEAR_BATCH_SCRIPT),
            clear_index_script: Script::new(CLEAR_INDEX_SCRIPT),
            remove_if_script: Script::new(REMOVE_IF_SCRIPT),
            unlock_script: Script::new(UNLOCK_SCRIPT),
            prune_script: Script::new(PRUNE_SCRIPT),
            key_locks: KeyLocks::new(),
        })
    }

    /// Checks that Redis answers.
    pub fn ping(&self) -> Result<(), StoreError> {
        let mut lease = self.lease(|| "ping".to_owned())?;
        lease.run(Step::Read, ping)?;
        Ok(())
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.options.key_prefix.clone();
        for part in parts {
            key.push_str(part);
        }
        key
    }

    /// A connection for one operation: an idle one if any, else a new one.
    fn lease<'s>(&'s self, what: impl Fn() -> String + 's) -> Result<Lease<'s>, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (conn, proven) = match idle {
            Some(conn) => (conn, false),
            None => (self.connect(&what)?, true),
        };
        Ok(Lease {
            store: self,
            conn: Some(conn),
            proven,
            what: Box::new(what),
        })
    }

    fn connect(&self, what: &dyn Fn() -> String) -> Result<Connection, StoreError> {
        let fail = |err: RedisError| {
            StoreError::Unavailable(anyhow!(err).context(format!(
                "{}: cannot connect to Redis at {}",
                what(),
                self.client.get_connection_info().addr()
            )))
        };
        let conn = self
            .client
            .get_connection_with_timeout(self.options.connect_timeout)
            .map_err(fail)?;
        conn.set_read_timeout(Some(self.options.io_timeout))
            .map_err(fail)?;
        conn.set_write_timeout(Some(self.options.io_timeout))
            .map_err(fail)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.options.max_idle_connections {
            idle.push(conn);
        }
    }

    /// Waits a random while, longer after each failed attempt, so contending hosts spread out.
    fn backoff(attempt: u32) {
        if attempt == 0 {
            return;
        }
        let ceiling_micros = (10u64 << attempt.min(7)).min(1_000);
        let jitter = std::hash::RandomState::new().hash_one(attempt) % ceiling_micros;
        std::thread::sleep(Duration::from_micros(jitter + 1));
    }

    /// The update against other hosts: up to [`OPTIMISTIC_ATTEMPTS`] compare-and-sets, then
    /// in turn under the entity's Redis lock until `deadline`.
    fn update_shared(
        &self,
        key: &str,
        decide: &mut dyn FnMut(&[u8]) -> Update,
        deadline: Instant,
    ) -> Result<(), StoreError> {
        let state_key = self.key(&["state:", key]);
        let restricted_key = self.key(&["restricted"]);
        let entities_key = self.key(&["entities"]);
        let lock_key = self.key(&["lock:", key]);
        let mut lease = self.lease(|| format!("update of {key}"))?;
        let mut attempt = 0;
        loop {
            let token = if attempt < OPTIMISTIC_ATTEMPTS {
                Self::backoff(attempt);
                String::new()
            } else {
                self.take_lock(&mut lease, key, &lock_key, deadline)?
            };
            attempt += 1;
            let current = lease.run(Step::Read, |c| {
                redis::cmd("GET")
                    .arg(&state_key)
                    .query::<Option<Vec<u8>>>(c)
            })?;
            let update = decide(current.as_deref().unwrap_or_default());
            if update.state.is_none() && update.restricted.is_none() {
                if !token.is_empty() {
                    self.unlock(&mut lease, &lock_key, &token)?;
                }
                return Ok(());
            }
            let mut invocation = self.update_script.prepare_invoke();
            invocation
                .key(&state_key)
                .key(&restricted_key)
                .key(&entities_key)
                .key(&lock_key);
            match &current {
                Some(state) => invocation.arg("=").arg(state.as_slice()),
                None => invocation.arg("-").arg(""),
            };
            match &update.state {
                Some(state) => invocation.arg("=").arg(state.as_slice()),
                None => invocation.arg("-").arg(""),
            };
            let index = match update.restricted {
                Some(true) => "+",
                Some(false) => "-",
                None => "",
            };
            invocation.arg(index).arg(key).arg(&token);
            let applied = lease.run(Step::Write, |c| invocation.invoke::<i64>(c))?;
            if applied == 1 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.contended(key, attempt));
            }
        }
    }

    /// Takes `key`'s Redis lock (`SET lock token NX PX ttl`), waiting for other hosts' holders
    /// until `deadline`; returns the token that proves it is this update's.
    fn take_lock(
        &self,
        lease: &mut Lease<'_>,
        key: &str,
        lock_key: &str,
        deadline: Instant,
    ) -> Result<String, StoreError> {
        let token = lock_token();
        let ttl = self.options.io_timeout * 2 + LOCK_MARGIN;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let mut tries = 0;
        loop {
            let taken = lease.run(Step::Write, |c| {
                redis::cmd("SET")
                    .arg(lock_key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query::<Option<String>>(c)
            })?;
            if taken.is_some() {
                return Ok(token);
            }
            if Instant::now() >= deadline {
                return Err(self.contended(key, tries));
            }
            tries += 1;
            Self::backoff(tries);
        }
    }

    /// Releases `key`'s Redis lock if `token` still holds it.
    fn unlock(&self, lease: &mut Lease<'_>, lock_key: &str, token: &str) -> Result<(), StoreError> {
        let mut invocation = self.unlock_script.prepare_invoke();
        invocation.key(lock_key).arg(token);
        lease.run(Step::Write, |c| invocation.invoke::<i64>(c))?;
        Ok(())
    }

    fn contended(&self, key: &str, attempts: u32) -> StoreError {
        StoreError::Contended(anyhow!(
            "update of {key}: other hosts' updates of it kept it busy for {:?} ({attempts} \
             attempts)",
            self.options.contention_timeout
        ))
    }

    fn audit_seqs(&self, lease: &mut Lease<'_>, plan: Plan<'_>) -> Result<Seqs, StoreError> {
        Ok(match plan {
            Plan::Entity(entity) => {
                let index = self.key(&["audit:entity:", entity]);
                Seqs::Listed(
                    lease
                        .run(Step::Read, |c| {
                            redis::cmd("ZRANGE")
                                .arg(&index)
                                .arg(0)
                                .arg(-1)
                                .arg("REV")
                                .query::<Vec<u64>>(c)
                        })?
                        .into_iter(),
                )
            }
            Plan::Since(since) => {
                let index = self.key(&["audit:time"]);
                let mut seqs = lease.run(Step::Read, |c| {
                    redis::cmd("ZRANGE")
                        .arg(&index)
                        .arg(since)
                        .arg("+inf")
                        .arg("BYSCORE")
                        .query::<Vec<u64>>(c)
                })?;
                // Times need not grow with seq (hosts' clocks differ): newest seq first.
                seqs.sort_unstable_by(|a, b| b.cmp(a));
                Seqs::Listed(seqs.into_iter())
            }
            Plan::All => {
                let counter = self.key(&["audit:seq"]);
                let last = lease.run(Step::Read, |c| {
                    redis::cmd("GET").arg(&counter).query::<Option<u64>>(c)
                })?;
                Seqs::Countdown((1..=last.unwrap_or(0)).rev())
            }
        })
    }
}

/// Audit seqs to fetch, newest first.
enum Seqs {
    Listed(std::vec::IntoIter<u64>),
    Countdown(std::iter::Rev<std::ops::RangeInclusive<u64>>),
}

impl Iterator for Seqs {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        match self {
            Seqs::Listed(seqs) => seqs.next(),
            Seqs::Countdown(seqs) => seqs.next(),
        }
    }
}

/// What a command does, which decides whether it may be retried on a fresh connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Reads only: safe to send again.
    Read,
    /// Changes data: sent once, and only on a connection that has answered in this lease.
    Write,
}

/// One operation's connection. Returned to the pool when dropped, unless a command failed.
struct Lease<'s> {
    store: &'s RedisStore,
    /// `None` once discarded after an error.
    conn: Option<Connection>,
    /// Whether the connection has answered in this lease (so it is not a stale idle one).
    proven: bool,
    what: Box<dyn Fn() -> String + 's>,
}

impl Lease<'_> {
    /// Runs `command`. A stale idle connection (closed by Redis while pooled) is replaced and a
    /// read retried once; a write is preceded by a `PING` on an unproven connection, so it is
    /// never sent on a dead one and never sent twice.
    fn run<T>(
        &mut self,
        step: Step,
        mut command: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        if step == Step::Write && !self.proven {
            self.run(Step::Read, ping)?;
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.store.connect(&*self.what)?),
        };
        match command(conn) {
            Ok(value) => {
                self.proven = true;
                Ok(value)
            }
            Err(err) if step == Step::Read && !self.proven && err.is_connection_dropped() => {
                let conn = self.conn.insert(self.store.connect(&*self.what)?);
                self.proven = true;
                command(conn).map_err(|err| self.fail(err))
            }
            Err(err) => Err(self.fail(err)),
        }
    }

    /// Discards the connection (its state is unknown after an error) and says what happened.
    fn fail(&mut self, err: RedisError) -> StoreError {
        self.conn = None;
        let unavailable = err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || matches!(
                err.kind(),
                redis::ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
            )
            || err.code() == Some("BUSY");
        let err = anyhow!(err).context(format!("{} (Redis)", (self.what)()));
        if unavailable {
            StoreError::Unavailable(err)
        } else {
            StoreError::Other(err)
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.store.give_back(conn);
        }
    }
}

/// A token no other update (on any host) holds: the process id, a per-process counter and a
/// randomly seeded hash of both.
fn lock_token() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pid = std::process::id();
    let salt = std::hash::RandomState::new().hash_one((pid, n));
    format!("{pid:x}-{n:x}-{salt:016x}")
}

fn ping(conn: &mut Connection) -> RedisResult<String> {
    redis::cmd("PING").query(conn)
}

fn decode_audit(bytes: &[u8], seq: u64) -> Result<AuditRecord, StoreError> {
    let record: AuditRecord = serde_json::from_slice(bytes).map_err(|err| {
        StoreError::Other(anyhow!(err).context(format!("audit record {seq} is not valid JSON")))
    })?;
    Ok(AuditRecord { seq, ..record })
}

/// One `SCAN cursor MATCH pattern COUNT count` step: the next cursor (0 when done) and the
/// keys found.
fn scan_step(
    lease: &mut Lease<'_>,
    cursor: u64,
    pattern: &str,
    count: usize,
) -> Result<(u64, Vec<Vec<u8>>), StoreError> {
    lease.run(Step::Read, |c| {
        redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count)
            .query(c)
    })
}

/// `text` with the glob characters of `SCAN ... MATCH` escaped, so it matches only itself.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl StateStore for RedisStore {
    /// Deletes every `P state:*` key (found with `SCAN`, deleted in batches of
    /// `CLEAR_BATCH` by a script that keeps the entity count and the restricted index in
    /// step), then drops whatever is left in the restricted index without state. Other
    /// prefixes and the audit log are untouched.
    ///
    /// Not one atomic step: Redis keeps serving other hosts meanwhile (a single script over
    /// millions of keys would stall the fleet). An update another host makes during the
    /// clear may survive it; reset state while the fleet runs one policy version.
    fn clear_states(&self) -> Result<(), StoreError> {
        let state_prefix = self.key(&["state:"]);
        let pattern = format!("{}*", glob_escape(&state_prefix));
        let entities_key = self.key(&["entities"]);
        let restricted_key = self.key(&["restricted"]);
        let mut lease = self.lease(|| "clearing all state".to_owned())?;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys) = scan_step(&mut lease, cursor, &pattern, CLEAR_BATCH)?;
            if !keys.is_empty() {
                let mut invocation = self.clear_batch_script.prepare_invoke();
                invocation.key(&entities_key).key(&restricted_key);
                for key in &keys {
                    invocation.key(key.as_slice());
                }
                for key in &keys {
                    invocation.arg(&key[state_prefix.len()..]);
                }
                lease.run(Step::Write, |c| invocation.invoke::<i64>(c))?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let members = lease.run(Step::Read, |c| {
            redis::cmd("SMEMBERS")
                .arg(&restricted_key)
                .query::<Vec<Vec<u8>>>(c)
        })?;
        for chunk in members.chunks(CLEAR_BATCH) {
            let mut invocation = self.clear_index_script.prepare_invoke();
            invocation.key(&restricted_key);
            for member in chunk {
                let mut state_key = state_prefix.clone().into_bytes();
                state_key.extend_from_slice(member);
                invocation.key(state_key);
            }
            for member in chunk {
                invocation.arg(member.as_slice());
            }
            lease.run(Step::Write, |c| invocation.invoke::<i64>(c))?;
        }
        Ok(())
    }

    /// One update of `key` at a time on this host (a per-key lock, waited for up to
    /// [`RedisOptions::contention_timeout`]), then `RedisStore::update_shared` against the
    /// other hosts. See the module docs.
    fn update(&self, key: &str, decide: &mut dyn FnMut(&[u8]) -> Update) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.options.contention_timeout;
        let mut turn = self.key_locks.lock(key, deadline).map_err(|refused| match refused {
            Refused::TimedOut => StoreError::Contended(anyhow!(
                "update of {key}: other updates of it on this host held it for {:?}",
                self.options.contention_timeout
            )),
            Refused::Outage => StoreError::Unavailable(anyhow!(
                "update of {key}: Redis was unavailable to the update of it just before this one"
            )),
        })?;
        let result = self.update_shared(key, decide, deadline);
        if matches!(result, Err(StoreError::Unavailable(_))) {
            turn.outage();
        }
        result
    }

    /// `SCAN` over `P state:*`, `limit` as its `COUNT` hint; the cursor is Redis's. Like
    /// `SCAN`, it may return a key twice and returns every key present for the whole walk.
    fn scan_keys(&self, cursor: Option<&str>, limit: usize) -> Result<KeyPage, StoreError> {
        let state_prefix = self.key(&["state:"]);
        let pattern = format!("{}*", glob_escape(&state_prefix));
        let cursor: u64 = match cursor {
            None => 0,
            Some(c) => c
                .parse()
                .map_err(|_| StoreError::Other(anyhow!("not a Redis SCAN cursor: {c:?}")))?,
        };
        let mut lease = self.lease(|| "walk of entity keys".to_owned())?;
        let (next, keys) = scan_step(&mut lease, cursor, &pattern, limit.max(1))?;
        let keys = keys
            .iter()
            .filter_map(|k| k.strip_prefix(state_prefix.as_bytes()))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        Ok(KeyPage {
            keys,
            next: (next != 0).then(|| next.to_string()),
        })
    }

    /// Reads the state, asks `forget`, and deletes by compare-and-delete: a state another
    /// host changed meanwhile is kept (its entity is active), so there is no retry.
    fn remove_if(
        &self,
        key: &str,
        forget: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<bool, StoreError> {
        let state_key = self.key(&["state:", key]);
        let mut lease = self.lease(|| format!("removal of {key}"))?;
        let Some(state) = lease.run(Step::Read, |c| {
            redis::cmd("GET")
                .arg(&state_key)
                .query::<Option<Vec<u8>>>(c)
        })?
        else {
            return Ok(false);
        };
        if !forget(&state) {
            return Ok(false);
        }
        let mut invocation = self.remove_if_script.prepare_invoke();
        invocation
            .key(&state_key)
            .key(self.key(&["restricted"]))
            .key(self.key(&["entities"]))
            .arg(state.as_slice())
            .arg(key);
        Ok(lease.run(Step::Write, |c| invocation.invoke::<i64>(c))? == 1)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let state_key = self.key(&["state:", key]);
        let mut lease = self.lease(|| format!("read of {key}"))?;
        lease.run(Step::Read, |c| {
            redis::cmd("GET")
                .arg(&state_key)
                .query::<Option<Vec<u8>>>(c)
        })
    }

    fn restricted_keys(&self) -> Result<Vec<String>, StoreError> {
        let set = self.key(&["restricted"]);
        let mut lease = self.lease(|| "listing of restricted entities".to_owned())?;
        let mut keys = lease.run(Step::Read, |c| {
            redis::cmd("SMEMBERS").arg(&set).query::<Vec<String>>(c)
        })?;
        keys.sort_unstable();
        Ok(keys)
    }

    fn append_audit(&self, record: &AuditRecord) -> Result<u64, StoreError> {
        let what = || format!("audit append ({} {})", record.action, record.outcome);
        // The seq is the hash field; the stored JSON keeps 0.
        let json = serde_json::to_vec(&AuditRecord {
            seq: 0,
            ..record.clone()
        })
        .map_err(|err| StoreError::Other(anyhow!(err).context(what())))?;
        let mut invocation = self.append_script.prepare_invoke();
        invocation
            .key(self.key(&["audit:seq"]))
            .key(self.key(&["audit:log"]))
            .key(self.key(&["audit:time"]));
        if let Some(entity) = &record.entity {
            invocation.key(self.key(&["audit:entity:", entity]));
        }
        invocation.arg(json).arg(record.at);
        let mut lease = self.lease(what)?;
        lease.run(Step::Write, |c| invocation.invoke::<u64>(c))
    }

    /// In batches of `AUDIT_BATCH`: the oldest seqs from the time index (`ZRANGE ... BYSCORE
    /// LIMIT`), their records (for the entity index to clean), then a script that deletes each
    /// record with its index entries. Not one atomic step across batches; each batch is.
    /// Records with the same `at` go in Redis's order for equal scores (by seq as text), not
    /// strictly by seq.
    fn prune_audit(&self, before: i64, max: usize) -> Result<u64, StoreError> {
        let log = self.key(&["audit:log"]);
        let by_time = self.key(&["audit:time"]);
        let mut lease = self.lease(|| format!("audit pruning before {before}"))?;
        let mut deleted = 0u64;
        let mut left = max;
        while left > 0 {
            let batch = left.min(AUDIT_BATCH);
            let seqs = lease.run(Step::Read, |c| {
                redis::cmd("ZRANGE")
                    .arg(&by_time)
                    .arg("-inf")
                    .arg(format!("({before}"))
                    .arg("BYSCORE")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(batch)
                    .query::<Vec<u64>>(c)
            })?;
            if seqs.is_empty() {
                break;
            }
            let records = lease.run(Step::Read, |c| {
                redis::cmd("HMGET")
                    .arg(&log)
                    .arg(&seqs)
                    .query::<Vec<Option<Vec<u8>>>>(c)
            })?;
            let mut invocation = self.prune_script.prepare_invoke();
            invocation.key(&log).key(&by_time);
            for (seq, bytes) in seqs.iter().zip(&records) {
                let entity = match bytes {
                    Some(bytes) => decode_audit(bytes, *seq)?.entity,
                    None => None,
                };
                match entity {
                    Some(entity) => invocation.key(self.key(&["audit:entity:", &entity])),
                    None => invocation.key(&by_time),
                };
                invocation.arg(*seq);
            }
            let n = lease.run(Step::Write, |c| invocation.invoke::<u64>(c))?;
            // A seq whose record is gone (trimmed by an operator) still leaves the time index.
            let orphans: Vec<u64> = seqs
                .iter()
                .zip(&records)
                .filter(|(_, bytes)| bytes.is_none())
                .map(|(seq, _)| *seq)
                .collect();
            if !orphans.is_empty() {
                lease.run(Step::Write, |c| {
                    redis::cmd("ZREM")
                        .arg(&by_time)
                        .arg(&orphans)
                        .query::<u64>(c)
                })?;
            }
            deleted += n;
            left -= seqs.len();
            if seqs.len() < batch {
                break;
            }
        }
        Ok(deleted)
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut newest = Newest::new(query);
        if newest.is_full() {
            return Ok(newest.finish());
        }
        let log = self.key(&["audit:log"]);
        let mut lease = self.lease(|| "audit query".to_owned())?;
        let mut seqs = self.audit_seqs(&mut lease, Plan::of(query))?;
        loop {
            let batch: Vec<u64> = seqs.by_ref().take(AUDIT_BATCH).collect();
            if batch.is_empty() {
                break;
            }
            let records = lease.run(Step::Read, |c| {
                redis::cmd("HMGET")
                    .arg(&log)
                    .arg(&batch)
                    .query::<Vec<Option<Vec<u8>>>>(c)
            })?;
            // A seq without a record was trimmed from the log by an operator: skip it.
            for (seq, bytes) in batch.iter().zip(records) {
                if let Some(bytes) = bytes
                    && newest.offer(&decode_audit(&bytes, *seq)?)
                {
                    return Ok(newest.finish());
                }
            }
        }
        Ok(newest.finish())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn entity_count(&self) -> Result<u64, StoreError> {
        let counter = self.key(&["entities"]);
        let mut lease = self.lease(|| "entity count".to_owned())?;
        let count = lease.run(Step::Read, |c| {
            redis::cmd("GET").arg(&counter).query::<Option<u64>>(c)
        })?;
        Ok(count.unwrap_or(0))
    }
}
