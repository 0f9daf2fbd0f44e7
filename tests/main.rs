//! quench's integration tests, in one test binary.
//!
//! Each module below was once its own binary; they are one now because every test binary links
//! wasmtime, tokio, axum and the rest of the host: sixteen such binaries of about 350 MB each
//! (with full debug info) left a 9.5 GB `target/`, and CI's linker died of SIGBUS on a full disk.
//! One binary, with the debug-info settings in `Cargo.toml`, leaves 2.8 GB. One module per
//! subject, named as before; run one with `cargo test --test integration fleet::` (a module) or
//! `cargo test --test integration fleet::unblock` (a test whose path contains that text).
//!
//! The behaviour scenarios stay in their own binary (`tests/scenarios.rs`, own runner).

#[path = "support/browser.rs"]
mod browser;
mod common;
#[path = "support/postfix.rs"]
mod postfix;
#[path = "common/server.rs"]
mod server;

mod admin_api;
mod admin_limits;
mod admin_reload;
mod alerts;
mod bounce;
mod code_cache;
mod component_contract;
mod conformance_kit;
mod contract_compat;
mod fleet;
mod ndr;
mod portal;
mod postfix_e2e;
mod postfix_harness;
mod reload;
mod retention;
mod sandbox_faults;
mod serve_faults;
mod serve_protocol;
mod simulate_cli;
mod store_outage;
mod trust_boundary;
mod unblock_limit;
mod vectors;
