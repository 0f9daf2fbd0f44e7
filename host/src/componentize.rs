//! Turning a policy's core wasm module (what `cargo build --target wasm32-unknown-unknown`
//! writes for a `cdylib` using wit-bindgen) into a component: `quench policy componentize`.
//! The same step the build applies to the default policy, with no WASI adapter: a policy
//! must import nothing.

use anyhow::{Context, Result};

/// Encode `core` (a core module carrying wit-bindgen's component-type section) as a
/// validated component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>> {
    if is_component(core) {
        anyhow::bail!("this is already a component; check it with `quench policy check`");
    }
    wit_component::ComponentEncoder::default()
        .module(core)
        .context("reading the core module (built with wit-bindgen for the quench:policy world?)")?
        .validate(true)
        .encode()
        .context("encoding the component (a policy built for wasm32-wasip* imports WASI, which the sandbox does not grant: build for wasm32-unknown-unknown)")
}

/// True when `bytes` start with a component's preamble (layer 1, where a core module's
/// preamble has version 1 and layer 0).
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm") && bytes.get(6..8) == Some(&[1, 0])
}
