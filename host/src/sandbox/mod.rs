//! The wasmtime harness: load a policy component once, keep configured instances ready, and run
//! every call under a deadline and a memory cap. A policy that traps, loops or bloats costs
//! the one call; its instance is dropped and the next call gets a fresh one.
//!
//! A component may implement the current contract, `quench:policy@0.2.0`, or the previous one,
//! 0.1.0 ([`ContractVersion`], read from the interface it exports). Either way the sandbox
//! speaks 0.2.0 types to its callers; a 0.1.0 policy's calls go through `compat.rs`, which
//! converts (a relay entity reaches it as a user; results about that entity name the relay).
//!
//! ```no_run
//! use quench::sandbox::{PolicySource, Sandbox};
//! use quench::{Entity, Submission};
//!
//! let sandbox = Sandbox::builder()
//!     .source(PolicySource::Embedded)
//!     .config("accepted_domains = [\"contoso.com\"]")
//!     .build()?;
//! let submission = Submission {
//!     entity: Entity::user("alice@contoso.com"),
//!     sender: "alice@contoso.com".into(),
//!     recipients: vec!["bob@fabrikam.com".into()],
//!     message_id: None,
//! };
//! let decided = sandbox.decide(&[], &submission, 1_795_000_000);
//! println!("{:?}", decided.decision.verdict);
//! # anyhow::Ok(())
//! ```

mod compat;
mod compile;
mod epoch;
pub mod limits;
mod pool;

pub use compile::{Allocation, cache_path, component_hash};
pub use limits::{FailAction, SandboxLimits};
pub use pool::ContractVersion;

use crate::bindings::{
    Action, BounceRequest, ConfigError, ConnectorSpec, Decision, Entity, Restriction,
    RestrictionChange, RestrictionPolicyPre, SmtpReply, Submission, Timestamp, UnblockError,
    UnblockGranted, UnblockRequest, Verdict, v0_1,
};
use anyhow::{Context, Result};
use epoch::EpochTicker;
use pool::{Bindings, Instance, Pool};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::component::{Component, Linker};

/// Where a policy component comes from.
#[derive(Debug, Clone)]
pub enum PolicySource {
    /// The default policy built into this binary.
    Embedded,
    /// A component file (`.wasm`).
    File(PathBuf),
    /// Component bytes already in memory.
    Bytes(Vec<u8>),
}

impl PolicySource {
    /// The component's bytes.
    pub fn load(&self) -> Result<std::borrow::Cow<'static, [u8]>> {
        Ok(match self {
            PolicySource::Embedded => crate::embedded::DEFAULT_POLICY.into(),
            PolicySource::File(path) => std::fs::read(path)
                .with_context(|| format!("reading policy component {}", path.display()))?
                .into(),
            PolicySource::Bytes(bytes) => bytes.clone().into(),
        })
    }
}

/// Why a call into the policy produced no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The configuration was refused by the policy.
    #[error("policy configuration is invalid: {}", format_config_errors(.0))]
    Config(Vec<ConfigError>),
    /// The call ran past its deadline.
    #[error("policy call exceeded its deadline of {0} ms")]
    Deadline(u64),
    /// The policy trapped (a panic, an out-of-bounds access, memory growth past the cap...).
    #[error("policy trapped: {0:#}")]
    Trap(anyhow::Error),
    /// The policy answered, but the answer breaks the contract's limits.
    #[error("policy returned an invalid answer: {0}")]
    InvalidOutput(String),
    /// No instance could be had: the live-instance limit is reached.
    #[error("no policy instance available (max_instances = {0} are all in use)")]
    NoInstance(u32),
}

fn format_config_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Counters of what the sandbox has done, for metrics.
#[derive(Debug, Default)]
pub struct SandboxStats {
    /// Calls that completed normally.
    pub calls: AtomicU64,
    /// Calls that trapped (not counting deadlines).
    pub traps: AtomicU64,
    /// Calls stopped at their deadline.
    pub deadlines: AtomicU64,
    /// Answers refused as invalid.
    pub invalid_outputs: AtomicU64,
    /// Instances created (pre-warmed, on demand, or replacing a dropped one).
    pub instantiations: AtomicU64,
}

/// A decision together with the fault that replaced it, if the policy failed.
#[derive(Debug)]
pub struct Decided {
    /// What to answer: the policy's decision, or the fail action's.
    pub decision: Decision,
    /// Why the policy's own decision is missing; `None` when it answered.
    pub fault: Option<SandboxError>,
}

/// A component linked against the contract version it exports, ready to instantiate.
enum Pre {
    /// `quench:policy@0.2.0` (or a semver-compatible 0.2.x): the current bindings.
    V0_2(RestrictionPolicyPre<pool::StoreData>),
    /// `quench:policy@0.1.0`: the previous contract's bindings, converted in `compat`.
    V0_1(v0_1::RestrictionPolicyPre<pool::StoreData>),
}

/// A loaded policy: compiled code, configuration and ready instances.
pub struct Sandbox {
    engine: wasmtime::Engine,
    pre: Pre,
    config: String,
    limits: SandboxLimits,
    pool: Pool,
    stats: SandboxStats,
    component_hash: String,
    state_format: String,
    connectors: Vec<ConnectorSpec>,
    _ticker: EpochTicker,
}

/// Builds a [`Sandbox`]; every setting has a working default.
#[derive(Debug, Clone, Default)]
pub struct SandboxBuilder {
    source: Option<PolicySource>,
    config: String,
    limits: SandboxLimits,
    allocation: Allocation,
    cache_dir: Option<PathBuf>,
}

impl SandboxBuilder {
    /// The component to load (default: the embedded default policy).
    pub fn source(mut self, source: PolicySource) -> Self {
        self.source = Some(source);
        self
    }

    /// The policy's configuration text (the `[policy]` table as TOML; default: empty).
    pub fn config(mut self, config: impl Into<String>) -> Self {
        self.config = config.into();
        self
    }

    /// Resource limits and the fail action.
    pub fn limits(mut self, limits: SandboxLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How instance memory is allocated (default: pooling).
    pub fn allocation(mut self, allocation: Allocation) -> Self {
        self.allocation = allocation;
        self
    }

    /// Cache compiled code in this directory (default: no cache, compile every time).
    pub fn cache_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cache_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Compile (or load cached code), link, instantiate the ready instances and validate the
    /// configuration in the first one.
    pub fn build(self) -> Result<Sandbox> {
        self.limits.validate()?;
        let bytes = self.source.unwrap_or(PolicySource::Embedded).load()?;
        let engine = compile::engine(&self.limits, self.allocation)?;
        let component = compile::compile(&engine, &bytes, self.cache_dir.as_deref())?;
        Sandbox::from_component(engine, component, &bytes, self.config, self.limits)
    }
}

impl Sandbox {
    /// Start building a sandbox.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    fn from_component(
        engine: wasmtime::Engine,
        component: Component,
        bytes: &[u8],
        config: String,
        limits: SandboxLimits,
    ) -> Result<Sandbox> {
        // An empty linker: a component importing anything fails here, by name.
        let linker = Linker::<pool::StoreData>::new(&engine);
        let instance_pre = linker
            .instantiate_pre(&component)
            .wasm_context("linking the policy (a policy may import nothing)")?;
        let pre = match ContractVersion::exported_by(&engine, &component)? {
            ContractVersion::V0_2 => Pre::V0_2(
                RestrictionPolicyPre::new(instance_pre)
                    .wasm_context("the component's quench:policy/policy@0.2.0 export does not match the contract (wit/policy.wit)")?,
            ),
            ContractVersion::V0_1 => Pre::V0_1(
                v0_1::RestrictionPolicyPre::new(instance_pre)
                    .wasm_context("the component's quench:policy/policy@0.1.0 export does not match that contract (wit/compat/v0.1.0)")?,
            ),
        };
        let ticker = EpochTicker::start(engine.clone(), limits.epoch_tick())
            .context("starting the epoch ticker thread")?;
        let mut sandbox = Sandbox {
            engine,
            pre,
            config,
            limits,
            pool: Pool::new(),
            stats: SandboxStats::default(),
            component_hash: component_hash(bytes),
            state_format: String::new(),
            connectors: Vec::new(),
            _ticker: ticker,
        };
        let mut first = sandbox.instantiate()?;
        let (state_format, connectors) = match &first.bindings {
            Bindings::V0_2(b) => {
                let policy = b.quench_policy_policy().engine();
                (
                    policy.call_state_format(&mut first.store, first.engine),
                    policy.call_connectors(&mut first.store, first.engine),
                )
            }
            Bindings::V0_1(b) => (
                compat::state_format(b, &mut first.store, first.engine),
                compat::connectors(b, &mut first.store, first.engine),
            ),
        };
        sandbox.state_format =
            state_format.wasm_context("asking the policy for its state format")?;
        sandbox.connectors = connectors.wasm_context("asking the policy for its connectors")?;
        sandbox.pool.add_ready(first);
        for _ in 1..sandbox.limits.ready_instances {
            let instance = sandbox.instantiate()?;
            sandbox.pool.add_ready(instance);
        }
        Ok(sandbox)
    }

    fn instantiate(&self) -> Result<Instance, SandboxError> {
        self.stats.instantiations.fetch_add(1, Ordering::Relaxed);
        let mut store = pool::new_store(&self.engine, &self.limits);
        let (bindings, created) = match &self.pre {
            Pre::V0_2(pre) => {
                let bindings = pre
                    .instantiate(&mut store)
                    .map_err(|e| self.classify(e.into()))?;
                let created = bindings
                    .quench_policy_policy()
                    .engine()
                    .call_create(&mut store, &self.config);
                (Bindings::V0_2(bindings), created)
            }
            Pre::V0_1(pre) => {
                let bindings = pre
                    .instantiate(&mut store)
                    .map_err(|e| self.classify(e.into()))?;
                let created = compat::create(&bindings, &mut store, &self.config);
                (Bindings::V0_1(bindings), created)
            }
        };
        let created = created.map_err(|e| self.classify(e.into()))?;
        let engine = created.map_err(SandboxError::Config)?;
        Ok(Instance::new(store, bindings, engine))
    }

    /// Run `call` on a ready instance under the deadline; drop the instance if it fails.
    fn call<R>(
        &self,
        call: impl FnOnce(&mut Instance) -> wasmtime::Result<R>,
    ) -> Result<R, SandboxError> {
        let mut lease = self.pool.checkout(&self.limits, || self.instantiate())?;
        let instance = lease.instance.as_mut().expect("a lease holds its instance");
        instance
            .store
            .set_epoch_deadline(self.limits.deadline_ticks());
        match call(instance) {
            Ok(answer) => {
                self.stats.calls.fetch_add(1, Ordering::Relaxed);
                self.pool.checkin(lease, &self.limits);
                Ok(answer)
            }
            // Dropping the lease drops the trapped store.
            Err(error) => Err(self.classify(error.into())),
        }
    }

    fn classify(&self, error: anyhow::Error) -> SandboxError {
        if let Some(wasmtime::Trap::Interrupt) = error.downcast_ref::<wasmtime::Trap>() {
            self.stats.deadlines.fetch_add(1, Ordering::Relaxed);
            SandboxError::Deadline(self.limits.deadline_ms)
        } else {
            self.stats.traps.fetch_add(1, Ordering::Relaxed);
            SandboxError::Trap(error)
        }
    }

    fn invalid(&self, why: String) -> SandboxError {
        self.stats.invalid_outputs.fetch_add(1, Ordering::Relaxed);
        SandboxError::InvalidOutput(why)
    }

    /// Evaluate one submission: the policy's decision, or why there is none. A submission
    /// with more than `max_recipients` recipients is refused here, without calling the policy
    /// (see [`SandboxLimits::max_recipients`]).
    pub fn evaluate(
        &self,
        state: &[u8],
        submission: &Submission,
        now: Timestamp,
    ) -> Result<Decision, SandboxError> {
        if submission.recipients.len() > self.limits.max_recipients {
            return Ok(Decision {
                verdict: Verdict {
                    action: Action::Reject,
                    reply: Some(SmtpReply {
                        code: 550,
                        status: "5.5.3".into(),
                        text: "Too many recipients".into(),
                    }),
                },
                state: state.to_vec(),
                restriction: None,
                change: RestrictionChange::None,
                alerts: Vec::new(),
            });
        }
        let decision = self.call(|i| match &i.bindings {
            Bindings::V0_2(b) => b.quench_policy_policy().engine().call_evaluate(
                &mut i.store,
                i.engine,
                state,
                submission,
                now,
            ),
            Bindings::V0_1(b) => {
                compat::evaluate(b, &mut i.store, i.engine, state, submission, now)
            }
        })?;
        if decision.state.len() > self.limits.max_state_bytes {
            return Err(self.invalid(format!(
                "state of {} bytes exceeds max_state_bytes = {}",
                decision.state.len(),
                self.limits.max_state_bytes
            )));
        }
        if decision.verdict.action != Action::Accept && decision.verdict.reply.is_none() {
            return Err(self.invalid("a refusal without an SMTP reply".into()));
        }
        Ok(decision)
    }

    /// Evaluate, answering with the fail action when the policy fails. The entity's state is
    /// kept as it was on failure, so a broken call never loses a restriction.
    pub fn decide(&self, state: &[u8], submission: &Submission, now: Timestamp) -> Decided {
        match self.evaluate(state, submission, now) {
            Ok(decision) => Decided {
                decision,
                fault: None,
            },
            Err(fault) => {
                tracing::warn!(entity = %submission.entity.key(), error = %fault, "policy failed; answering with the fail action");
                Decided {
                    decision: self.fail_decision(state),
                    fault: Some(fault),
                }
            }
        }
    }

    /// The decision the configured fail action gives, keeping `state`.
    pub fn fail_decision(&self, state: &[u8]) -> Decision {
        self.limits.fail_action.decision(state)
    }

    /// Ask the policy to lift a restriction.
    pub fn unblock(
        &self,
        state: &[u8],
        request: &UnblockRequest,
        now: Timestamp,
    ) -> Result<Result<UnblockGranted, UnblockError>, SandboxError> {
        let answer = self.call(|i| match &i.bindings {
            Bindings::V0_2(b) => b.quench_policy_policy().engine().call_unblock(
                &mut i.store,
                i.engine,
                state,
                request,
                now,
            ),
            Bindings::V0_1(b) => compat::unblock(b, &mut i.store, i.engine, state, request, now),
        })?;
        if let Ok(granted) = &answer
            && granted.state.len() > self.limits.max_state_bytes
        {
            return Err(self.invalid(format!(
                "state of {} bytes exceeds max_state_bytes",
                granted.state.len()
            )));
        }
        Ok(answer)
    }

    /// The entity's restriction at `now`, if any.
    pub fn describe(
        &self,
        state: &[u8],
        entity: &Entity,
        now: Timestamp,
    ) -> Result<Result<Option<Restriction>, String>, SandboxError> {
        self.call(|i| match &i.bindings {
            Bindings::V0_2(b) => b.quench_policy_policy().engine().call_describe(
                &mut i.store,
                i.engine,
                state,
                entity,
                now,
            ),
            Bindings::V0_1(b) => compat::describe(b, &mut i.store, i.engine, state, entity, now),
        })
    }

    /// Whether `state` is equivalent to no state at `now` and later, so the store may drop
    /// it (see the WIT `idle`). Only the background sweep asks.
    pub fn idle(&self, state: &[u8], now: Timestamp) -> Result<bool, SandboxError> {
        self.call(|i| match &i.bindings {
            Bindings::V0_2(b) => {
                b.quench_policy_policy()
                    .engine()
                    .call_idle(&mut i.store, i.engine, state, now)
            }
            Bindings::V0_1(b) => compat::idle(b, &mut i.store, i.engine, state, now),
        })
    }

    /// Render an RFC 3464 bounce for a refused message.
    pub fn render_bounce(&self, request: &BounceRequest) -> Result<String, SandboxError> {
        self.call(|i| match &i.bindings {
            Bindings::V0_2(b) => b.quench_policy_policy().engine().call_render_bounce(
                &mut i.store,
                i.engine,
                request,
            ),
            Bindings::V0_1(b) => compat::render_bounce(b, &mut i.store, i.engine, request),
        })
    }

    /// The contract version the component implements (the one it was loaded with).
    pub fn contract_version(&self) -> ContractVersion {
        match self.pre {
            Pre::V0_2(_) => ContractVersion::V0_2,
            Pre::V0_1(_) => ContractVersion::V0_1,
        }
    }

    /// The state format the policy writes (e.g. `quench-default/1`).
    pub fn state_format(&self) -> &str {
        &self.state_format
    }

    /// The connectors the policy's configuration defines.
    pub fn connectors(&self) -> &[ConnectorSpec] {
        &self.connectors
    }

    /// SHA-256 of the loaded component, hex.
    pub fn component_hash(&self) -> &str {
        &self.component_hash
    }

    /// The limits this sandbox runs under.
    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    /// What the sandbox has done so far.
    pub fn stats(&self) -> &SandboxStats {
        &self.stats
    }

    /// Instances alive now (ready plus in use).
    pub fn live_instances(&self) -> usize {
        self.pool.live()
    }
}

/// wasmtime's `Error` is not a `std::error::Error`, so anyhow's `Context` does not apply to
/// it; this converts and adds the context in one step.
pub(crate) trait WasmContext<T> {
    fn wasm_context(self, what: &'static str) -> Result<T>;
}

impl<T> WasmContext<T> for wasmtime::Result<T> {
    fn wasm_context(self, what: &'static str) -> Result<T> {
        self.map_err(anyhow::Error::from).context(what)
    }
}
