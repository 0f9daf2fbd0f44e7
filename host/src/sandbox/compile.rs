//! Engine configuration and compilation, with an on-disk cache of compiled code keyed by the
//! component's SHA-256 and the engine's compatibility hash (wasmtime version and settings), so
//! a restart loads native code in milliseconds instead of compiling again.

use super::WasmContext;
use super::limits::SandboxLimits;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How instances get their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Pre-reserved slots (wasmtime's pooling allocator): instantiation reuses memory
    /// mappings, the fastest way to get a fresh instance after a trap or a recycle.
    #[default]
    Pooling,
    /// Map memory for every instance as it is created.
    OnDemand,
}

/// Build the engine every policy of one host shares.
pub fn engine(limits: &SandboxLimits, allocation: Allocation) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Deadlines: cheaper than fuel (a check at loop heads and calls, no counting).
    config.epoch_interruption(true);
    if allocation == Allocation::Pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_instances)
            .total_core_instances(limits.max_instances)
            .total_memories(limits.max_instances)
            .total_tables(limits.max_instances)
            .max_memory_size(limits.memory_bytes);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config).wasm_context("creating the wasmtime engine")
}

/// The SHA-256 of a component, hex: its identity in caches, logs and reload checks.
pub fn component_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Compile `bytes`, or load the compiled code cached for them under `cache_dir`.
///
/// The cache directory must be as trusted as the binary: cached code is loaded as native
/// code (wasmtime checks the header's version and settings, not the code itself). Writes go
/// through a temporary file and a rename, so a crash never leaves a torn entry.
pub fn compile(engine: &Engine, bytes: &[u8], cache_dir: Option<&Path>) -> Result<Component> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, bytes).wasm_context("compiling the policy component");
    };
    let path = cache_path(engine, bytes, dir);
    if let Ok(cached) = std::fs::read(&path) {
        // Read into memory rather than mmap the file: another process rewriting or truncating
        // the entry must not be able to pull code out from under a running instance (SIGBUS).
        // SAFETY: the file was written by `Engine::precompile_component` of an engine with
        // the same compatibility hash (it is in the file name), in a directory the operator
        // trusts as much as the binary; wasmtime re-checks version and settings on load.
        match unsafe { Component::deserialize(engine, &cached) } {
            Ok(component) => return Ok(component),
            Err(error) => tracing::warn!(
                path = %path.display(),
                %error,
                "ignoring unusable cached policy code; compiling again"
            ),
        }
    }
    let compiled = engine
        .precompile_component(bytes)
        .wasm_context("compiling the policy component")?;
    if let Err(error) = write_atomically(dir, &path, &compiled) {
        tracing::warn!(path = %path.display(), %error, "could not cache compiled policy code");
    }
    // SAFETY: `compiled` was produced just now by this engine.
    unsafe { Component::deserialize(engine, &compiled) }
        .wasm_context("loading compiled policy code")
}

/// `<dir>/<component sha256>-<engine compatibility hash>.cwasm`.
pub fn cache_path(engine: &Engine, bytes: &[u8], dir: &Path) -> PathBuf {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let engine_hash = hex::encode(&hasher.0.finalize()[..8]);
    dir.join(format!("{}-{engine_hash}.cwasm", component_hash(bytes)))
}

fn write_atomically(dir: &Path, path: &Path, data: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Feeds `Hash` output into SHA-256: a stable digest of the engine's compatibility hash
/// (std's `DefaultHasher` is not promised to be stable across Rust releases).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
