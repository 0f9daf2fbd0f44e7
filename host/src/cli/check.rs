//! `quench policy check` (the conformance kit) and `quench policy componentize` (core module
//! to component): the policy author's commands.

use super::load_config;
use crate::conformance::{self, KitOptions};
use crate::sandbox::PolicySource;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `quench policy check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The policy component to check (`.wasm`).
    file: PathBuf,
    /// quench config file: its [policy] table configures the component, its [sandbox] table
    /// sets the limits every call runs under.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed of the generated inputs; the same seed replays the same submissions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Generated submissions for the `total` check (up to 200 of them for `deterministic`).
    #[arg(long, default_value_t = 500)]
    cases: usize,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `quench policy componentize`.
#[derive(Debug, Args)]
pub(crate) struct ComponentizeArgs {
    /// The core module cargo built (`target/wasm32-unknown-unknown/release/<crate>.wasm`).
    core: PathBuf,
    /// Where to write the component.
    #[arg(long)]
    out: PathBuf,
}

/// Run the kit and print its report; exit code 1 when any check failed.
pub(crate) fn run_check(args: CheckArgs) -> Result<ExitCode> {
    let config = load_config(args.config.as_ref())?;
    let options = KitOptions {
        source: PolicySource::File(args.file),
        config: config.policy_text(),
        limits: config.sandbox.clone(),
        seed: args.seed,
        cases: args.cases,
    };
    let report = conformance::run(&options);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Turn a core module into a policy component.
pub(crate) fn run_componentize(args: ComponentizeArgs) -> Result<ExitCode> {
    let core = std::fs::read(&args.core)
        .with_context(|| format!("reading core module {}", args.core.display()))?;
    let component = crate::componentize::componentize(&core)
        .with_context(|| format!("componentizing {}", args.core.display()))?;
    std::fs::write(&args.out, &component)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote a policy component ({} bytes, sha256 {}) to {}\ncheck it with: quench policy check {}",
        component.len(),
        crate::sandbox::component_hash(&component),
        args.out.display(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
