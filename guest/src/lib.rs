//! quench's default restriction policy: Exchange Online Protection's outbound spam
//! "Restricted users" behaviour as a pure function of (configuration, entity state, submission,
//! time). No I/O, no clock, no randomness; it compiles natively for tests and benches and to
//! `wasm32-unknown-unknown` for the sandbox, where `component.rs` exports it.
//!
//! Module map (one job each):
//! - [`config`]: parse and validate the `[policy]` TOML table; [`limits`]: limit keys,
//!   presets, service defaults; [`scope`]: which outbound policy applies to a sender.
//! - [`state`]: per-entity state and its versioned encoding; [`window`]: bucketed sliding
//!   windows; [`time`]: UTC days, midnights, date formats; [`addr`]: address normalisation.
//! - [`evaluate`]: one submission; [`unblock`]: admin unblock and describe;
//!   [`restriction`]: restriction records and Reason strings; [`alert`]: alerts;
//!   [`reply`]: the SMTP replies; [`bounce`]: RFC 3464 bounces.
//!
//! The behaviour is documented for operators in `docs/policy.md`.

pub mod types;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod component;

/// Address normalisation: the `quench-address` crate the host uses too (one set of rules).
pub use quench_address as addr;
pub mod alert;
pub mod bounce;
pub mod config;
pub mod evaluate;
pub mod limits;
pub mod reply;
pub mod restriction;
pub mod scope;
pub mod state;
pub mod time;
pub mod unblock;
pub mod window;

use types::*;

/// A policy instance: configuration parsed and validated once, then used for many calls.
#[derive(Debug, Clone)]
pub struct Policy {
    config: config::Config,
}

impl Policy {
    /// Parse and validate configuration text (the `[policy]` table as TOML). Every problem
    /// found is reported, each naming its key as a dotted path. Empty text is valid.
    pub fn from_config(text: &str) -> Result<Policy, Vec<ConfigError>> {
        config::parse(text).map(|config| Policy { config })
    }

    /// The validated configuration.
    pub fn config(&self) -> &config::Config {
        &self.config
    }

    /// The encoding of the state this policy writes: `quench-default/2` (it also reads
    /// `quench-default/1` states, see [`state`]).
    pub fn state_format(&self) -> &'static str {
        state::FORMAT
    }

    /// The connectors the configuration defines.
    pub fn connectors(&self) -> Vec<ConnectorSpec> {
        self.config
            .connectors
            .iter()
            .map(|c| ConnectorSpec {
                id: c.id.clone(),
                client_addresses: c.client_addresses.clone(),
                certificate_fingerprints: c.certificate_fingerprints.clone(),
            })
            .collect()
    }

    /// Evaluate one submission for one entity. Never panics, whatever the input.
    pub fn evaluate(&self, state: &[u8], submission: &Submission, now: Timestamp) -> Decision {
        evaluate::evaluate(&self.config, state, submission, now)
    }

    /// Lift an entity's restriction, if the role and the unblock limit allow it.
    pub fn unblock(
        &self,
        state: &[u8],
        request: &UnblockRequest,
        now: Timestamp,
    ) -> Result<UnblockGranted, UnblockError> {
        unblock::unblock(&self.config, state, request, now)
    }

    /// The entity's restriction at `now`, if any; `Err` for unreadable state.
    pub fn describe(
        &self,
        state: &[u8],
        entity: &Entity,
        now: Timestamp,
    ) -> Result<Option<Restriction>, String> {
        unblock::describe(&self.config, state, entity, now)
    }

    /// Whether `state` is equivalent to no state at `now` and later, so the host may delete
    /// it. Unreadable state is never idle.
    pub fn idle(&self, state: &[u8], now: Timestamp) -> bool {
        state::decode(state).is_ok_and(|st| st.idle(now, self.config.unblock.window_seconds()))
    }

    /// Render an RFC 3464 bounce for a refused message.
    pub fn render_bounce(&self, request: &BounceRequest) -> String {
        bounce::render(request, self.config.max_recipients_per_message)
    }
}
