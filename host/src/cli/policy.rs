//! `quench policy ...`: write out the embedded default component, show what a component is,
//! check and componentize one (`check.rs`), reload the server's.

use super::{load_config, sandbox_for};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Write the embedded default policy component to a file, for inspection.
    Default {
        /// Where to write the component (`.wasm`).
        #[arg(long)]
        out: PathBuf,
    },
    /// Reload the running server's policy and config (admin API; OrganizationManagement).
    /// The new policy is validated first; a bad one is refused and the old one keeps serving.
    Reload {
        /// Accept a policy whose state format differs, clearing every entity's state.
        #[arg(long)]
        reset_state: bool,
        #[command(flatten)]
        api: super::admin::ApiArgs,
    },
    /// Run the conformance kit against a policy component: PASS/FAIL/SKIP per check, exit
    /// code 1 on any failure.
    Check(super::check::CheckArgs),
    /// Turn a policy's core wasm module (cargo's wasm32-unknown-unknown output) into a
    /// component.
    Componentize(super::check::ComponentizeArgs),
    /// Load a component (default: the embedded one) with a config and print what it is.
    Info {
        /// Component file; the embedded default when absent.
        file: Option<PathBuf>,
        /// quench config file whose [policy] table configures the component.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

pub(crate) fn run(command: PolicyCommand) -> Result<ExitCode> {
    match command {
        PolicyCommand::Default { out } => {
            std::fs::write(&out, crate::embedded::DEFAULT_POLICY)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote the default policy component ({} bytes, sha256 {}) to {}",
                crate::embedded::DEFAULT_POLICY.len(),
                crate::sandbox::component_hash(crate::embedded::DEFAULT_POLICY),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Reload { reset_state, api } => super::admin::run_reload(reset_state, api),
        PolicyCommand::Check(args) => super::check::run_check(args),
        PolicyCommand::Componentize(args) => super::check::run_componentize(args),
        PolicyCommand::Info { file, config } => {
            let config = load_config(config.as_ref())?;
            let sandbox = sandbox_for(&config, file)?;
            println!("sha256:       {}", sandbox.component_hash());
            println!("contract:     {}", sandbox.contract_version());
            println!("state format: {}", sandbox.state_format());
            println!("connectors:   {}", sandbox.connectors().len());
            for connector in sandbox.connectors() {
                println!(
                    "  {} (addresses: {}; certificates: {})",
                    connector.id,
                    connector.client_addresses.join(", "),
                    connector.certificate_fingerprints.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
