//! The decision service: one policy (swappable) over one state store. Every way into quench
//! (the Postfix server, the admin API, an embedding MTA) goes through here, so every decision
//! and every unblock reads and writes state the same way, atomically per entity, and leaves
//! the same audit trail.

use crate::bindings::{
    Action, Decision, Entity, EntityKind, Restriction, RestrictionChange, Role, Submission,
    Timestamp, UnblockError, UnblockGrace, UnblockGranted, UnblockRequest,
};
use crate::normalize;
use crate::sandbox::{FailAction, Sandbox, SandboxError};
use anyhow::{Context, Result};
use prometheus_client::metrics::gauge::Gauge;
use quench_store::{AuditRecord, Durability, StateStore, StoreError, Update};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A loaded policy and the connector lookup derived from it once per load.
pub struct LoadedPolicy {
    /// The sandboxed policy.
    pub sandbox: Sandbox,
    by_address: HashMap<String, String>,
    by_fingerprint: HashMap<String, String>,
}

impl LoadedPolicy {
    /// Index the policy's connectors by client address and certificate fingerprint.
    pub fn new(sandbox: Sandbox) -> Self {
        let mut by_address = HashMap::new();
        let mut by_fingerprint = HashMap::new();
        for connector in sandbox.connectors() {
            for address in &connector.client_addresses {
                by_address.insert(address.trim().to_lowercase(), connector.id.clone());
            }
            for fingerprint in &connector.certificate_fingerprints {
                by_fingerprint.insert(normalize_fingerprint(fingerprint), connector.id.clone());
            }
        }
        LoadedPolicy {
            sandbox,
            by_address,
            by_fingerprint,
        }
    }

    /// The connector a client address or certificate fingerprint belongs to, if any.
    pub fn connector_for(&self, address: &str, fingerprint: &str) -> Option<&str> {
        let by_fp = (!fingerprint.is_empty())
            .then(|| self.by_fingerprint.get(&normalize_fingerprint(fingerprint)))
            .flatten();
        by_fp
            .or_else(|| self.by_address.get(&address.trim().to_lowercase()))
            .map(String::as_str)
    }
}

/// Fingerprints compare as lower-case hex without colons.
fn normalize_fingerprint(fingerprint: &str) -> String {
    fingerprint
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// What one decision came to, with anything that went wrong on the way.
#[derive(Debug)]
pub struct Outcome {
    /// The decision answered (the policy's, or the fail action's).
    pub decision: Decision,
    /// The policy failed and the fail action answered.
    pub fault: Option<SandboxError>,
    /// The store failed and the store's `on_unavailable` action answered.
    pub store_error: Option<StoreError>,
}

/// How often a store outage is logged again while it lasts (the first failure and the
/// recovery are always logged): often enough to see it continue, not once per decision.
const OUTAGE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Whether the store is answering, for logs and the `quench_store_unavailable` gauge.
#[derive(Default)]
struct StoreHealth {
    /// The last store operation failed as unavailable.
    down: AtomicBool,
    /// A decision is trying the store while it is down (see [`StoreHealth::admit`]).
    probing: AtomicBool,
    /// Decisions answered with `on_unavailable` since the outage was last logged.
    unlogged: AtomicU64,
    /// When the outage was last logged.
    last_logged: Mutex<Option<Instant>>,
    /// 1 while down, 0 otherwise (a metrics gauge, when one is attached).
    gauge: Gauge,
    /// A decision found the store degraded since [`Service::take_degraded_seen`] last asked.
    degraded_seen: AtomicBool,
}

/// A decision's leave to use the store; while the store is down, the one probe in flight.
struct Admitted<'h>(Option<&'h AtomicBool>);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if let Some(probing) = self.0 {
            probing.store(false, Ordering::Release);
        }
    }
}

impl StoreHealth {
    /// Whether a decision may use the store. While it is down, one decision at a time tries it
    /// (and ends the outage if it answers); the others get `None` and answer with
    /// `on_unavailable` at once, instead of each waiting out the timeouts of a stalled store
    /// while the MTA's connections queue behind them.
    fn admit(&self) -> Option<Admitted<'_>> {
        if !self.down.load(Ordering::Relaxed) {
            return Some(Admitted(None));
        }
        self.probing
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Admitted(Some(&self.probing)))
    }

    /// Note an operation's outcome; logs the start and end of an outage.
    fn observe<T>(&self, result: &Result<T, StoreError>, on_unavailable: FailAction) {
        match result {
            Ok(_) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    self.gauge.set(0);
                    let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
                    tracing::info!(
                        failures_since_last_log = unlogged,
                        "store available again; deciding normally"
                    );
                }
            }
            Err(StoreError::Unavailable(error)) => {
                let now = Instant::now();
                let first = !self.down.swap(true, Ordering::Relaxed);
                self.gauge.set(1);
                let mut last = self.last_logged.lock().unwrap_or_else(|p| p.into_inner());
                let due = last.is_none_or(|at| now.duration_since(at) >= OUTAGE_LOG_INTERVAL);
                if first || due {
                    *last = Some(now);
                    let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
                    tracing::warn!(
                        error = %format!("{error:#}"),
                        on_unavailable = action_name(on_unavailable),
                        failures_since_last_log = unlogged,
                        "store unavailable; answering decisions with on_unavailable until it \
                         answers again"
                    );
                } else {
                    self.unlogged.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error @ StoreError::Contended(_)) => {
                // Not an outage: the store answers, this entity is just too busy. The decision
                // is deferred (see `decide_with`), never accepted uncounted.
                tracing::warn!(%error, "store contended; deferring this decision");
            }
            Err(error @ StoreError::Other(_)) => {
                tracing::warn!(%error, on_unavailable = action_name(on_unavailable), "store failed");
            }
        }
    }
}

/// `on_unavailable` as the config spells it, for logs.
fn action_name(action: FailAction) -> &'static str {
    match action {
        FailAction::Open => "open",
        FailAction::Closed => "closed",
    }
}

/// The decision service.
pub struct Service {
    policy: RwLock<Arc<LoadedPolicy>>,
    store: Arc<dyn StateStore>,
    on_unavailable: FailAction,
    health: StoreHealth,
}

impl Service {
    /// A service over `policy` and `store`. When the store fails, a decision becomes what
    /// `on_unavailable` says (the `[store]` table's knob): accept, or defer with `451 4.7.1`.
    pub fn new(policy: Sandbox, store: Arc<dyn StateStore>, on_unavailable: FailAction) -> Self {
        Service {
            policy: RwLock::new(Arc::new(LoadedPolicy::new(policy))),
            store,
            on_unavailable,
            health: StoreHealth::default(),
        }
    }

    /// Show the store's availability on `gauge` (1 while unavailable, 0 otherwise): the
    /// metrics' `quench_store_unavailable`.
    pub fn with_unavailable_gauge(mut self, gauge: Gauge) -> Self {
        gauge.set(self.health.gauge.get());
        self.health.gauge = gauge;
        self
    }

    /// Whether the last store operation failed as unavailable (it is retried on every call:
    /// this clears as soon as one succeeds).
    pub fn store_unavailable(&self) -> bool {
        self.health.down.load(Ordering::Relaxed)
    }

    /// Whether a decision found the store degraded (deciding from memory) since the last
    /// call: an outage shorter than the flush interval is still reported.
    pub fn take_degraded_seen(&self) -> bool {
        self.health.degraded_seen.swap(false, Ordering::Relaxed)
    }

    /// Note the outcome of a store operation made outside this service (e.g. a startup
    /// check), for the logs and the gauge.
    pub fn observe_store<T>(&self, result: &Result<T, StoreError>) {
        self.health.observe(result, self.on_unavailable);
    }

    /// The decision the store's `on_unavailable` action gives.
    pub fn unavailable_decision(&self) -> Decision {
        self.on_unavailable.decision(&[])
    }

    /// The policy in force (cheap: an `Arc` clone). Calls already running keep theirs.
    pub fn policy(&self) -> Arc<LoadedPolicy> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Put a new policy in force; calls in flight finish on the old one.
    pub fn replace_policy(&self, policy: Sandbox) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(LoadedPolicy::new(policy));
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// Decide one submission: read the entity's state, evaluate, write the new state (durably
    /// when the restriction changed), index and audit restriction changes.
    pub fn decide(&self, submission: &Submission, now: Timestamp) -> Outcome {
        self.decide_with(&self.policy(), submission, now)
    }

    /// [`decide`](Self::decide) on a policy the caller already holds (from
    /// [`policy`](Self::policy)), so one request is mapped and decided by the same policy and
    /// the policy lock is taken once per request.
    pub fn decide_with(
        &self,
        policy: &LoadedPolicy,
        submission: &Submission,
        now: Timestamp,
    ) -> Outcome {
        let key = submission.entity.key();
        // Held until the outcome is observed, so the next probe starts after this one's news.
        let Some(_admitted) = self.health.admit() else {
            self.health.unlogged.fetch_add(1, Ordering::Relaxed);
            return Outcome {
                decision: self.unavailable_decision(),
                fault: None,
                store_error: Some(StoreError::Unavailable(anyhow::anyhow!(
                    "the store is unavailable and another decision is checking whether it is back"
                ))),
            };
        };
        // Degraded store (deciding from memory) and `on_unavailable = closed`: known
        // restrictions still refuse, but what the policy would accept is deferred, and not
        // counted (the client's retry will be). Asked inside the update: the update that finds
        // the backend down switches the store to degraded before it decides from memory.
        let closed = self.on_unavailable == FailAction::Closed;
        let mut deferred = false;
        let mut decided = None;
        let stored = self.store.update(&key, &mut |state| {
            let outcome = policy.sandbox.decide(state, submission, now);
            if closed && outcome.decision.verdict.action == Action::Accept && self.store.degraded()
            {
                deferred = true;
                decided = Some(outcome);
                return Update {
                    state: None,
                    durability: Durability::Lazy,
                    restricted: None,
                };
            }
            deferred = false;
            let change = outcome.decision.change;
            let update = Update {
                // A failed call keeps the stored state as it was.
                state: outcome
                    .fault
                    .is_none()
                    .then(|| outcome.decision.state.clone()),
                durability: match change {
                    RestrictionChange::None => Durability::Lazy,
                    _ => Durability::Immediate,
                },
                restricted: match change {
                    RestrictionChange::Started | RestrictionChange::Changed => Some(true),
                    RestrictionChange::Lifted => Some(false),
                    RestrictionChange::None => None,
                },
            };
            decided = Some(outcome);
            update
        });
        self.health.observe(&stored, self.on_unavailable);
        if self.store.degraded() {
            // At once, not at the next flush (which also sets it back when the store recovers).
            self.health.gauge.set(1);
            self.health.degraded_seen.store(true, Ordering::Relaxed);
        }
        match (stored, decided) {
            (Ok(()), Some(_)) if deferred => Outcome {
                decision: FailAction::Closed.decision(&[]),
                fault: None,
                store_error: Some(StoreError::Unavailable(anyhow::anyhow!(
                    "the store is degraded (deciding from memory) and on_unavailable is closed"
                ))),
            },
            (Ok(()), Some(outcome)) => {
                if matches!(
                    outcome.decision.change,
                    RestrictionChange::Started | RestrictionChange::Changed
                ) {
                    self.audit_restriction(&outcome.decision, now);
                }
                Outcome {
                    decision: outcome.decision,
                    fault: outcome.fault,
                    store_error: None,
                }
            }
            (Err(error @ StoreError::Contended(_)), _) => Outcome {
                // Whatever `on_unavailable` says: accepting here would let a message through
                // that the entity's counters never saw. The client retries.
                decision: FailAction::Closed.decision(&[]),
                fault: None,
                store_error: Some(error),
            },
            (Err(error), _) => {
                tracing::debug!(entity = %key, %error, "store failed; answering with on_unavailable");
                Outcome {
                    decision: self.unavailable_decision(),
                    fault: None,
                    store_error: Some(error),
                }
            }
            (Ok(()), None) => unreachable!("a successful update ran the closure"),
        }
    }

    fn audit_restriction(&self, decision: &Decision, now: Timestamp) {
        let Some(restriction) = &decision.restriction else {
            return;
        };
        let record = AuditRecord {
            seq: 0,
            at: now,
            actor: "policy".into(),
            action: "restrict".into(),
            entity: Some(restriction.entity.key()),
            outcome: "ok".into(),
            detail: restriction.evidence.reason.clone(),
        };
        if let Err(error) = self.store.append_audit(&record) {
            tracing::error!(%error, entity = %restriction.entity.key(), "could not audit a restriction");
        }
    }

    /// Ask the policy to lift `entity`'s restriction for an admin with `role`, with the
    /// default grace (the rest of the UTC day exempt from the outbound policy's limits, as in
    /// EOP). The answer takes effect on the entity's very next decision. Audited either way.
    pub fn unblock(
        &self,
        entity: &Entity,
        role: Role,
        admin: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Result<UnblockGranted, UnblockError>> {
        self.unblock_with_grace(entity, role, admin, reason, UnblockGrace::RestOfDay, now)
    }

    /// [`unblock`](Self::unblock) with the admin's choice of `grace` (`None`: the limits apply
    /// from the next submission).
    pub fn unblock_with_grace(
        &self,
        entity: &Entity,
        role: Role,
        admin: &str,
        reason: &str,
        grace: UnblockGrace,
        now: Timestamp,
    ) -> Result<Result<UnblockGranted, UnblockError>> {
        let policy = self.policy();
        let request = UnblockRequest {
            entity: entity.clone(),
            role,
            admin: admin.to_string(),
            reason: reason.to_string(),
            grace,
        };
        let mut answer = None;
        let stored = self.store.update(&entity.key(), &mut |state| {
            let result = policy.sandbox.unblock(state, &request, now);
            let update = match &result {
                Ok(Ok(granted)) => Update {
                    state: Some(granted.state.clone()),
                    durability: Durability::Immediate,
                    restricted: Some(false),
                },
                _ => Update {
                    state: None,
                    durability: Durability::Lazy,
                    restricted: None,
                },
            };
            answer = Some(result);
            update
        });
        self.health.observe(&stored, self.on_unavailable);
        let answer = match (stored, answer) {
            (Ok(()), Some(answer)) => answer.map_err(anyhow::Error::from),
            (Err(error), _) => Err(anyhow::Error::from(error)),
            (Ok(()), None) => unreachable!("a successful update ran the closure"),
        };
        let why = match reason.trim() {
            "" => "no reason given".to_string(),
            reason => format!("reason: {reason}"),
        };
        let (outcome, detail) = match &answer {
            Ok(Ok(granted)) => (
                "ok",
                format!(
                    "{why}; lifted {}; unblocks used {}, left {}",
                    granted.lifted.evidence.reason, granted.unblocks_used, granted.unblocks_left
                ),
            ),
            Ok(Err(error)) => (
                "denied",
                format!("{why}; {}", crate::simulate::describe_unblock_error(error)),
            ),
            Err(error) => ("error", format!("{why}; {error:#}")),
        };
        self.audit(admin, "unblock", Some(entity.key()), outcome, &detail, now)
            .context("auditing the unblock")?;
        answer
    }

    /// Ask the policy whether `role` could unblock `entity` now, changing nothing (no state
    /// written, nothing audited): the portal uses it to say, before an admin starts the unblock
    /// steps, that the unblock limit is reached and when the next unblock is allowed. The
    /// policy alone decides, exactly as for [`unblock`](Self::unblock).
    pub fn unblock_preview(
        &self,
        entity: &Entity,
        role: Role,
        now: Timestamp,
    ) -> Result<Result<(), UnblockError>> {
        let policy = self.policy();
        let request = UnblockRequest {
            entity: entity.clone(),
            role,
            admin: "preview".to_string(),
            reason: "preview".to_string(),
            grace: UnblockGrace::RestOfDay,
        };
        let mut answer = None;
        let stored = self.store.update(&entity.key(), &mut |state| {
            answer = Some(policy.sandbox.unblock(state, &request, now));
            Update {
                state: None,
                durability: Durability::Lazy,
                restricted: None,
            }
        });
        match (stored, answer) {
            (Ok(()), Some(answer)) => Ok(answer.map_err(anyhow::Error::from)?.map(|_| ())),
            (Err(error), _) => Err(anyhow::Error::from(error)),
            (Ok(()), None) => unreachable!("a successful update ran the closure"),
        }
    }

    /// Append an audit record.
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        entity: Option<String>,
        outcome: &str,
        detail: &str,
        now: Timestamp,
    ) -> Result<u64> {
        Ok(self.store.append_audit(&AuditRecord {
            seq: 0,
            at: now,
            actor: actor.into(),
            action: action.into(),
            entity,
            outcome: outcome.into(),
            detail: detail.into(),
        })?)
    }

    /// `entity`'s restriction at `now`, if any.
    pub fn restriction(&self, entity: &Entity, now: Timestamp) -> Result<Option<Restriction>> {
        let Some(state) = self.store.get(&entity.key())? else {
            return Ok(None);
        };
        let described = self.policy().sandbox.describe(&state, entity, now)?;
        described.map_err(|why| anyhow::anyhow!("state of {} is unreadable: {why}", entity.key()))
    }

    /// Every restriction in force at `now`, users and connectors, by entity key.
    pub fn restrictions(&self, now: Timestamp) -> Result<Vec<Restriction>> {
        let mut out = Vec::new();
        for key in self.store.restricted_keys()? {
            let Some(entity) = entity_from_key(&key) else {
                tracing::warn!(%key, "ignoring a malformed key in the restricted index");
                continue;
            };
            match self.restriction(&entity, now) {
                Ok(Some(restriction)) => out.push(restriction),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%key, error = %format!("{error:#}"), "cannot describe")
                }
            }
        }
        Ok(out)
    }
}

/// Parse a store key (`user:<id>`, `connector:<id>`) back into an entity.
pub fn entity_from_key(key: &str) -> Option<Entity> {
    let (kind, id) = key.split_once(':')?;
    let kind = EntityKind::from_name(kind)?;
    Some(Entity {
        kind,
        id: normalize::normalize(id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::Action;
    use crate::sandbox::Allocation;
    use quench_store::AuditQuery;
    use std::sync::mpsc;

    /// A store whose updates fail as unavailable until it is `up`; while told to `stall`,
    /// they first wait for a word on `release` (a Redis that accepts and then hangs).
    struct FlakyStore {
        calls: AtomicU64,
        stall: AtomicBool,
        up: AtomicBool,
        release: Mutex<mpsc::Receiver<()>>,
    }

    impl StateStore for FlakyStore {
        fn update(
            &self,
            _: &str,
            decide: &mut dyn FnMut(&[u8]) -> Update,
        ) -> Result<(), StoreError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.stall.load(Ordering::SeqCst) {
                self.release.lock().unwrap().recv().unwrap();
            }
            if self.up.load(Ordering::SeqCst) {
                decide(&[]);
                return Ok(());
            }
            Err(StoreError::Unavailable(anyhow::anyhow!("down")))
        }
        fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        fn restricted_keys(&self) -> Result<Vec<String>, StoreError> {
            Ok(Vec::new())
        }
        fn append_audit(&self, _: &AuditRecord) -> Result<u64, StoreError> {
            Ok(1)
        }
        fn audit(&self, _: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
            Ok(Vec::new())
        }
        fn flush(&self) -> Result<(), StoreError> {
            Ok(())
        }
        fn entity_count(&self) -> Result<u64, StoreError> {
            Ok(0)
        }
        fn scan_keys(
            &self,
            _: Option<&str>,
            _: usize,
        ) -> Result<quench_store::KeyPage, StoreError> {
            Ok(quench_store::KeyPage::default())
        }
        fn remove_if(&self, _: &str, _: &mut dyn FnMut(&[u8]) -> bool) -> Result<bool, StoreError> {
            Ok(false)
        }
    }

    fn submission() -> Submission {
        Submission {
            entity: Entity::user("alice@contoso.com"),
            sender: "alice@contoso.com".into(),
            recipients: vec!["bob@fabrikam.com".into()],
            message_id: None,
        }
    }

    #[test]
    fn while_the_store_is_down_one_decision_at_a_time_waits_for_it() {
        let (release, released) = mpsc::channel();
        let store = Arc::new(FlakyStore {
            calls: AtomicU64::new(0),
            stall: AtomicBool::new(false),
            up: AtomicBool::new(false),
            release: Mutex::new(released),
        });
        let policy = Sandbox::builder()
            .allocation(Allocation::OnDemand)
            .build()
            .unwrap();
        let service = Service::new(policy, store.clone(), FailAction::Closed);
        let deferred = |outcome: &Outcome| {
            outcome.store_error.is_some()
                && outcome.decision.verdict.action == Action::Defer
                && outcome.decision.verdict.reply.as_ref().map(|r| r.code) == Some(451)
        };

        // The first failure marks the store down.
        assert!(deferred(&service.decide(&submission(), 0)));
        assert!(service.store_unavailable());
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);

        // The next decision probes the store, which hangs; meanwhile every other decision is
        // answered at once without touching the store.
        store.stall.store(true, Ordering::SeqCst);
        std::thread::scope(|scope| {
            let probe = scope.spawn(|| service.decide(&submission(), 0));
            while store.calls.load(Ordering::SeqCst) < 2 {
                std::thread::yield_now();
            }
            for _ in 0..5 {
                assert!(deferred(&service.decide(&submission(), 0)));
            }
            assert_eq!(
                store.calls.load(Ordering::SeqCst),
                2,
                "only the probe waits"
            );
            release.send(()).unwrap();
            assert!(deferred(&probe.join().unwrap()));
        });

        // The probe is over: the next decision is the next probe.
        store.stall.store(false, Ordering::SeqCst);
        assert!(deferred(&service.decide(&submission(), 0)));
        assert_eq!(store.calls.load(Ordering::SeqCst), 3);

        // Once a probe gets through, the outage is over and every decision uses the store.
        store.up.store(true, Ordering::SeqCst);
        for calls in 4..7 {
            let outcome = service.decide(&submission(), 0);
            assert!(outcome.store_error.is_none(), "{outcome:?}");
            assert_eq!(outcome.decision.verdict.action, Action::Accept);
            assert!(!service.store_unavailable());
            assert_eq!(store.calls.load(Ordering::SeqCst), calls);
        }
    }
}
