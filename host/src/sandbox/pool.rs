//! Ready instances: each one a store, its instantiated policy and the policy's configured
//! `engine` resource. A call checks one out, uses it and hands it back; a trap or a recycle
//! drops it instead (a store that trapped refuses further calls), and the next call gets a
//! fresh one.

use super::SandboxError;
use super::limits::SandboxLimits;
use crate::bindings::{RestrictionPolicy, v0_1};
use anyhow::Result;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmtime::component::ResourceAny;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};

/// What each store carries: only its resource limits (the policy imports nothing).
pub(crate) struct StoreData {
    limits: StoreLimits,
}

/// The contract versions this host loads: the current one and the previous minor one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ContractVersion {
    /// `quench:policy@0.1.0` (`wit/compat/v0.1.0`): no `relay` entity kind.
    #[serde(rename = "0.1.0")]
    V0_1,
    /// `quench:policy@0.2.0` (`wit/policy.wit`), the current contract.
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl ContractVersion {
    /// Every version this host loads, the preferred (newest) first.
    pub const ALL: [ContractVersion; 2] = [ContractVersion::V0_2, ContractVersion::V0_1];

    /// The version, `0.2.0`.
    pub fn version(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "0.1.0",
            ContractVersion::V0_2 => "0.2.0",
        }
    }

    /// The interface a policy of this version exports, `quench:policy/policy@0.2.0`.
    pub fn interface(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => v0_1::INTERFACE,
            ContractVersion::V0_2 => crate::bindings::INTERFACE,
        }
    }

    /// The version `component` exports: the newest of [`ALL`](Self::ALL) whose interface it
    /// exports (wasmtime matches semver-compatible names, so `@0.2.3` is 0.2.0's). An error
    /// naming the supported versions and what the component exports instead, if none.
    pub fn exported_by(
        engine: &wasmtime::Engine,
        component: &wasmtime::component::Component,
    ) -> Result<Self> {
        if let Some(version) = Self::ALL
            .into_iter()
            .find(|v| component.get_export_index(None, v.interface()).is_some())
        {
            return Ok(version);
        }
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        anyhow::bail!(
            "the component implements no contract version this host loads: it must export {} (0.2.0) or {} (0.1.0); it exports {}",
            ContractVersion::V0_2.interface(),
            ContractVersion::V0_1.interface(),
            if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            }
        )
    }
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.version())
    }
}

/// An instance's typed exports, in the contract version the component implements. Calls
/// match on it: the 0.2.0 arm calls straight through, the 0.1.0 arm converts (`compat`).
pub(crate) enum Bindings {
    V0_2(RestrictionPolicy),
    V0_1(v0_1::RestrictionPolicy),
}

/// One live policy instance.
pub(crate) struct Instance {
    pub(crate) store: Store<StoreData>,
    pub(crate) bindings: Bindings,
    /// The policy's `engine` resource, created from the config once per instance.
    pub(crate) engine: ResourceAny,
    calls: u64,
}

/// The ready instances and the count of live ones.
pub(crate) struct Pool {
    ready: Mutex<Vec<Instance>>,
    live: AtomicUsize,
}

/// A checked-out instance; counts as live until dropped.
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    pub(crate) instance: Option<Instance>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // An instance still held here was not handed back: it trapped or is recycled.
        if self.instance.take().is_some() {
            self.pool.live.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Pool {
    pub(crate) fn new() -> Self {
        Pool {
            ready: Mutex::new(Vec::new()),
            live: AtomicUsize::new(0),
        }
    }

    /// Take a ready instance, or make one with `create` if none is ready and the live count
    /// allows it.
    pub(crate) fn checkout(
        &self,
        limits: &SandboxLimits,
        create: impl FnOnce() -> Result<Instance, SandboxError>,
    ) -> Result<Lease<'_>, SandboxError> {
        let ready = self.ready.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let instance = match ready {
            Some(instance) => instance,
            None => {
                let live = self.live.fetch_add(1, Ordering::AcqRel);
                if live >= limits.max_instances as usize {
                    self.live.fetch_sub(1, Ordering::AcqRel);
                    return Err(SandboxError::NoInstance(limits.max_instances));
                }
                match create() {
                    Ok(instance) => instance,
                    Err(error) => {
                        self.live.fetch_sub(1, Ordering::AcqRel);
                        return Err(error);
                    }
                }
            }
        };
        Ok(Lease {
            pool: self,
            instance: Some(instance),
        })
    }

    /// Hand an instance back after a successful call, unless it is due for recycling or
    /// enough instances are ready already.
    pub(crate) fn checkin(&self, mut lease: Lease<'_>, limits: &SandboxLimits) {
        let Some(mut instance) = lease.instance.take() else {
            return;
        };
        instance.calls += 1;
        if instance.calls < limits.recycle_after_calls {
            let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
            if ready.len() < limits.ready_instances.max(1) {
                ready.push(instance);
                return;
            }
        }
        drop(instance);
        self.live.fetch_sub(1, Ordering::AcqRel);
    }

    /// Put a freshly made instance in the ready list (pre-warming).
    pub(crate) fn add_ready(&self, instance: Instance) {
        self.live.fetch_add(1, Ordering::AcqRel);
        self.ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(instance);
    }

    /// Instances alive now (ready plus in use).
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }
}

impl Instance {
    pub(crate) fn new(store: Store<StoreData>, bindings: Bindings, engine: ResourceAny) -> Self {
        Instance {
            store,
            bindings,
            engine,
            calls: 0,
        }
    }
}

/// A store with the memory cap and the epoch deadline trap configured.
pub(crate) fn new_store(engine: &wasmtime::Engine, limits: &SandboxLimits) -> Store<StoreData> {
    let data = StoreData {
        limits: StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .trap_on_grow_failure(true)
            .instances(4)
            .build(),
    };
    let mut store = Store::new(engine, data);
    store.limiter(|data| &mut data.limits);
    store.epoch_deadline_trap();
    store.set_epoch_deadline(limits.deadline_ticks());
    store
}
