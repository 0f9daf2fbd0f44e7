//! **strict-ratio**: an example quench restriction policy, and the template for writing one.
//!
//! The rule: a sender is restricted (until an admin unblocks it) when, over the last hour,
//! its external recipients exceed `external_per_hour` **and** outnumber its internal
//! recipients by more than `max_external_ratio` to one. A busy account that mostly writes to
//! colleagues keeps sending; one that suddenly sprays the outside world does not.
//!
//! Like every quench policy it is a pure function of (configuration, the entity's state, the
//! submission, `now`): no I/O, no clock, no randomness. The crate is laid out so the rule can
//! be unit-tested natively and the WebAssembly glue stays thin:
//!
//! - [`config`]: the `[policy]` table, validated with one readable error per problem;
//! - [`state`]: the per-entity state and its versioned encoding ([`state::FORMAT`]);
//! - [`window`]: the sliding hour of external/internal counts;
//! - [`rule`]: evaluate, unblock, describe, idle, in plain Rust types;
//! - [`bounce`]: the RFC 3464 delivery status notification;
//! - [`time`]: date formatting;
//! - `component` (wasm32 only): the `wit-bindgen` glue exporting it all as `quench:policy`.

pub mod bounce;
pub mod config;
pub mod rule;
pub mod state;
pub mod time;
pub mod window;

#[cfg(target_arch = "wasm32")]
mod component;

pub use config::{ConfigError, Settings};
pub use rule::{Authority, Evaluated, Outcome, Restricted, UnblockRefusal, Unblocked};

/// A configured policy instance: what the component's `engine` resource holds.
#[derive(Debug, Clone)]
pub struct Policy {
    settings: Settings,
}

impl Policy {
    /// Parse and validate the `[policy]` table (TOML text). Every problem is reported.
    pub fn from_config(text: &str) -> Result<Policy, Vec<ConfigError>> {
        config::parse(text).map(|settings| Policy { settings })
    }

    /// The validated settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// One submission's recipients for one entity. Never panics, whatever the input.
    pub fn evaluate(
        &self,
        state: &[u8],
        recipients: &[String],
        message_id: Option<&str>,
        now: i64,
    ) -> Evaluated {
        rule::evaluate(&self.settings, state, recipients, message_id, now)
    }

    /// Lift the entity's restriction if `authority` and the unblock limit allow it.
    pub fn unblock(
        &self,
        state: &[u8],
        authority: Authority,
        now: i64,
    ) -> Result<Unblocked, UnblockRefusal> {
        rule::unblock(&self.settings, state, authority, now)
    }

    /// Whether the state may be deleted: it answers like no state from `now` on.
    pub fn idle(&self, state: &[u8], now: i64) -> bool {
        rule::idle(&self.settings, state, now)
    }

    /// The entity's restriction, if any; `Err` for unreadable state.
    pub fn describe(&self, state: &[u8], now: i64) -> Result<Option<Restricted>, String> {
        rule::describe(&self.settings, state, now)
    }
}
