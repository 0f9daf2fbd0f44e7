//! Shared helpers for the integration tests: loading the real components into the real
//! sandbox, and building submissions.
#![allow(dead_code)] // the integration tests and the scenario runner each use a subset

use quench::sandbox::{Allocation, PolicySource, Sandbox, SandboxLimits};
use quench::{Entity, Submission};

/// 2026-11-23T10:00:00Z, a Monday: the tests' "now" unless they say otherwise.
pub const MONDAY_10AM: i64 = 1_795_428_000;

/// The misbehaving fixture component, built by the root build script.
pub fn misbehaving_component() -> PolicySource {
    PolicySource::File(env!("QUENCH_TEST_GUEST_MISBEHAVING").into())
}

/// Where the tests cache compiled policy code (so each test does not compile again).
pub fn cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("quench-code-cache")
}

/// The embedded default policy with `config`, under default limits.
pub fn default_policy(config: &str) -> Sandbox {
    Sandbox::builder()
        .config(config)
        .allocation(Allocation::OnDemand)
        .cache_dir(cache_dir())
        .build()
        .expect("the default policy loads")
}

/// A sandbox for `source` under `limits`.
pub fn sandbox(source: PolicySource, config: &str, limits: SandboxLimits) -> Sandbox {
    Sandbox::builder()
        .source(source)
        .config(config)
        .limits(limits)
        .cache_dir(cache_dir())
        .build()
        .expect("the component loads")
}

/// A submission by `submitter` with `recipients`, From = submitter.
pub fn submission(submitter: &str, recipients: &[&str]) -> Submission {
    Submission {
        entity: Entity::user(submitter),
        sender: quench::normalize::normalize(submitter),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        message_id: None,
    }
}
