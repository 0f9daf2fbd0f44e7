//! Compiles the default policy (`guest/`) to a WebAssembly component and leaves it in
//! `OUT_DIR/default_policy.wasm`, where `src/embedded.rs` includes it: `quench` runs with no
//! extra files.

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let workspace = Path::new(&manifest_dir)
        .parent()
        .expect("host/ lives inside the workspace");
    quench_build::build_policy_component(
        workspace,
        "quench-default-policy",
        &workspace.join("guest"),
        "default_policy.wasm",
    )?;
    Ok(())
}
