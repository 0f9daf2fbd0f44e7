//! The default policy component, built from `guest/` by `build.rs` and embedded in the binary.

/// The default policy as a WebAssembly component (imports nothing).
pub const DEFAULT_POLICY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/default_policy.wasm"));
