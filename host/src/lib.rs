//! quench: outbound-spam restriction for mail servers.
//!
//! The restriction logic is a WebAssembly component (the `quench:policy` WIT world); this
//! library is the host side: [`sandbox`] loads a policy component into wasmtime and runs it
//! under limits, [`bindings`] holds the contract's types. A Rust MTA can embed it without an
//! async runtime:
//!
//! ```no_run
//! use quench::{Entity, Sandbox, Submission};
//!
//! let policy = Sandbox::builder().config("").build()?;
//! let submission = Submission {
//!     entity: Entity::user("<Alice@Contoso.com>"),
//!     sender: "alice@contoso.com".into(),
//!     recipients: vec!["bob@fabrikam.com".into()],
//!     message_id: Some("queue-id-1".into()),
//! };
//! let state = Vec::new(); // what the last decision for this entity returned
//! let decided = policy.decide(&state, &submission, 1_795_000_000);
//! // store decided.decision.state for the entity; answer the client with the verdict
//! # anyhow::Ok(())
//! ```

pub mod admin;
pub mod alerts;
pub mod bindings;
pub mod cli;
pub mod componentize;
pub mod config;
pub mod conformance;
pub mod embedded;
pub mod load;
pub mod metrics;
#[cfg(feature = "native")]
pub mod native;
pub mod ndr;
/// Address normalisation: the `quench-address` crate, shared with the default policy.
pub use quench_address as normalize;
pub mod reload;
pub mod retention;
pub mod sandbox;
pub mod serve;
pub mod service;
pub mod simulate;
pub mod time;
pub mod view;

pub use bindings::*;
pub use sandbox::{Decided, FailAction, PolicySource, Sandbox, SandboxError, SandboxLimits};
