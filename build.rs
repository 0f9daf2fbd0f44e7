//! Builds the policies the integration tests load besides the embedded default: the
//! misbehaving fixture (`tests/guests/misbehaving`), the 0.1.0 fixture (`tests/guests/v0_1`:
//! the default policy under the previous contract), the example policy
//! (`examples/policies/strict-ratio`), and the benches' no-logic floor
//! (`benches/guests/floor`). The tests and benches find them through the `QUENCH_TEST_GUEST_*`
//! environment variables.

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let root = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = Path::new(&root);
    // The 0.1.0 fixture wraps the default policy's sources.
    println!(
        "cargo:rerun-if-changed={}",
        root.join("guest/src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("guest/Cargo.toml").display()
    );
    for (package, dir, file, env) in [
        (
            "quench-misbehaving-policy",
            "tests/guests/misbehaving",
            "misbehaving_policy.wasm",
            "QUENCH_TEST_GUEST_MISBEHAVING",
        ),
        (
            "quench-v0-1-policy",
            "tests/guests/v0_1",
            "v0_1_policy.wasm",
            "QUENCH_TEST_GUEST_V0_1",
        ),
        (
            "quench-strict-ratio-policy",
            "examples/policies/strict-ratio",
            "strict_ratio_policy.wasm",
            "QUENCH_TEST_GUEST_STRICT_RATIO",
        ),
        (
            "quench-floor-policy",
            "benches/guests/floor",
            "floor_policy.wasm",
            "QUENCH_BENCH_GUEST_FLOOR",
        ),
    ] {
        let built = quench_build::build_policy_component(root, package, &root.join(dir), file)?;
        println!("cargo:rustc-env={env}={}", built.display());
    }
    Ok(())
}
