//! Build-script helper shared by the host (which embeds the default policy) and the test suite
//! (which builds misbehaving fixture policies): compile a policy crate of this workspace for
//! `wasm32-unknown-unknown` and turn the core module into a component with `wit-component`.
//!
//! The nested cargo gets its own `--target-dir` under `OUT_DIR` (sharing the outer one
//! deadlocks on its lock) and none of the outer build's flag variables (they are meant for the
//! host target).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The core-wasm target policies are built for: no WASI, so the component imports nothing.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Build workspace package `package` (a `cdylib`) for [`WASM_TARGET`] in release mode, turn
/// it into a component and write it to `OUT_DIR/<file_name>`. Returns that path.
///
/// Prints the `cargo:rerun-if-changed` lines for the package sources and the WIT contract.
pub fn build_policy_component(
    workspace_root: &Path,
    package: &str,
    package_dir: &Path,
    file_name: &str,
) -> Result<PathBuf> {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR is not set")?);
    for watched in [package_dir.join("src"), package_dir.join("Cargo.toml")] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace_root.join("wit").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        workspace_root.join("Cargo.lock").display()
    );

    ensure_wasm_target()?;

    let target_dir = out_dir.join("policy-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            WASM_TARGET,
            "-p",
            package,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        // What ships is code only: no debug info or name sections in the component.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        // One codegen unit and LTO: the policy is small, and every nanosecond inside it is
        // paid on every decision.
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .status()
        .with_context(|| format!("running cargo to build policy `{package}`"))?;
    if !status.success() {
        bail!("building policy `{package}` for {WASM_TARGET} failed ({status})");
    }

    let module_path = target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    let module = std::fs::read(&module_path)
        .with_context(|| format!("reading core module {}", module_path.display()))?;
    let component = componentize(&module)
        .with_context(|| format!("turning {} into a component", module_path.display()))?;
    let out = out_dir.join(file_name);
    std::fs::write(&out, component).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

/// Turn a core module carrying wit-bindgen's component-type section into a validated
/// component. No adapter: a policy must not import WASI.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(module)?
        .validate(true)
        .encode()
}

/// Make sure the active toolchain has [`WASM_TARGET`], adding it with rustup when it is
/// missing (rustup does not install `rust-toolchain.toml` targets by itself everywhere).
fn ensure_wasm_target() -> Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .context("asking rustc for its sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(WASM_TARGET).is_dir() {
        return Ok(());
    }
    println!("cargo:warning=installing the {WASM_TARGET} target with rustup");
    let added = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status();
    match added {
        Ok(status) if status.success() => Ok(()),
        _ => bail!(
            "the {WASM_TARGET} target is missing and rustup could not add it: run `rustup target add {WASM_TARGET}`"
        ),
    }
}
