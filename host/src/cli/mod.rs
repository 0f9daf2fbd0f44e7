//! The `quench` command line: clap definitions and dispatch. Each subcommand's work lives in
//! its own module.

mod admin;
mod check;
mod policy;
mod serve;

use crate::config::QuenchConfig;
use crate::sandbox::{PolicySource, Sandbox};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Outbound-spam restriction for mail servers.
#[derive(Debug, Parser)]
#[command(
    name = "quench",
    version,
    about = "Outbound-spam restriction for mail servers",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with policy components.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Restricted users: list, get, remove (unblock). Talks to the admin API.
    #[command(subcommand)]
    BlockedSender(admin::BlockedCommand),
    /// Restricted connectors: list, get, remove (unblock). Talks to the admin API.
    #[command(subcommand)]
    BlockedConnector(admin::BlockedCommand),
    /// Restricted relayed senders (unauthenticated clients on trusted networks): list, get,
    /// remove (unblock). Talks to the admin API.
    #[command(subcommand)]
    BlockedRelay(admin::BlockedCommand),
    /// The audit log of admin actions and restrictions.
    #[command(subcommand)]
    Audit(admin::AuditCommand),
    /// Alert policies: status, recipients, daily notification limit. Talks to the admin API.
    #[command(subcommand)]
    AlertPolicy(admin::AlertPolicyCommand),
    /// Admin helpers (hash a token for the config).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Run the Postfix policy service (check_policy_service inet:127.0.0.1:10040).
    Serve(serve::ServeArgs),
    /// Generate Postfix-policy load against a server, or run the null server.
    Load(crate::load::LoadArgs),
    /// Replay JSON lines of submissions and unblocks through the policy (in-memory state).
    Simulate {
        /// quench config file; its [policy] table configures the policy.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Policy component to run instead of the embedded default.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Input file of JSON lines; standard input when absent.
        input: Option<PathBuf>,
    },
}

/// Run the command line; the exit code is 0 on success, 1 on error.
pub fn main() -> ExitCode {
    init_tracing();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("quench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("QUENCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Policy(command) => policy::run(command),
        Command::Serve(args) => serve::run_serve(args),
        Command::Load(args) => crate::load::run(args),
        Command::BlockedSender(command) => admin::run_blocked(admin::Collection::Senders, command),
        Command::BlockedConnector(command) => {
            admin::run_blocked(admin::Collection::Connectors, command)
        }
        Command::BlockedRelay(command) => admin::run_blocked(admin::Collection::Relays, command),
        Command::Audit(command) => admin::run_audit(command),
        Command::AlertPolicy(command) => admin::run_alert_policy(command),
        Command::Admin(command) => admin::run_admin(command),
        Command::Simulate {
            config,
            policy,
            input,
        } => simulate(config, policy, input),
    }
}

/// Load the config file, or the defaults when none is given.
pub(crate) fn load_config(path: Option<&PathBuf>) -> Result<QuenchConfig> {
    match path {
        Some(path) => QuenchConfig::load(path),
        None => Ok(QuenchConfig::default()),
    }
}

/// Build a sandbox from a config and an optional component file.
pub(crate) fn sandbox_for(config: &QuenchConfig, policy: Option<PathBuf>) -> Result<Sandbox> {
    let source = policy.map_or(PolicySource::Embedded, PolicySource::File);
    Sandbox::builder()
        .source(source)
        .config(config.policy_text())
        .limits(config.sandbox.clone())
        .build()
}

fn simulate(
    config: Option<PathBuf>,
    policy: Option<PathBuf>,
    input: Option<PathBuf>,
) -> Result<ExitCode> {
    let config = load_config(config.as_ref())?;
    let sandbox = sandbox_for(&config, policy)?;
    let mut simulator = crate::simulate::Simulator::new(sandbox);
    let stdout = std::io::stdout().lock();
    let errors = match input {
        Some(path) => {
            let file = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            simulator.run(std::io::BufReader::new(file), stdout)?
        }
        None => simulator.run(std::io::stdin().lock(), stdout)?,
    };
    if errors > 0 {
        eprintln!("quench: {errors} input line(s) were in error (see their `error` fields)");
    }
    Ok(ExitCode::SUCCESS)
}
