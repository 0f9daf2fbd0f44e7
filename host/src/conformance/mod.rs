//! The conformance kit behind `quench policy check`: runs the contract suite against any
//! policy component and reports PASS/FAIL/SKIP per check, each with a reason.
//!
//! | id                 | verifies                                                                 |
//! |--------------------|--------------------------------------------------------------------------|
//! | `contract`         | imports nothing; exports `quench:policy/policy@0.2.0` (or `@0.1.0`) with every function |
//! | `config-errors`    | bad config (unknown key, unknown table, TOML syntax) is refused readably  |
//! | `total`            | `evaluate` answers every generated submission, validly, in time          |
//! | `deterministic`    | the same inputs give the same outputs, warm instance or fresh            |
//! | `state-round-trip` | returned state is read back (by `describe`, by a fresh instance)         |
//! | `unblock-limit`    | readers are refused, unblocks stop at the limit, support goes past it    |
//! | `idle`             | a state `idle` lets the host delete answers exactly like no state       |
//! | `bounce`           | `render-bounce` writes an RFC 3464 multipart/report                      |
//!
//! Every call goes through [`crate::Sandbox`] under the configured limits, so a trap, a loop
//! or a memory bomb costs one call and is reported as a FAIL naming the input; the kit itself
//! never dies of a broken policy. Generated inputs come from a ChaCha generator seeded with
//! [`KitOptions::seed`]: a failure is reproduced by running again with the same seed.
//!
//! ```no_run
//! use quench::conformance::{KitOptions, run};
//! use quench::PolicySource;
//!
//! let report = run(&KitOptions::new(PolicySource::File("my_policy.wasm".into())));
//! println!("{report}");
//! assert!(report.passed());
//! ```

mod bounce;
mod config_errors;
mod contract;
mod determinism;
mod drive;
mod generate;
mod idle;
mod report;
mod round_trip;
mod totality;
mod unblock_limit;
mod validity;

pub use report::{CheckResult, Finding, Outcome, Report};

use crate::sandbox::{Allocation, PolicySource, Sandbox, SandboxLimits};
use anyhow::Result;
use std::path::Path;

/// What to check and how hard.
#[derive(Debug, Clone)]
pub struct KitOptions {
    /// The component under test.
    pub source: PolicySource,
    /// Its configuration (the `[policy]` table as TOML text). The kit checks the component
    /// as configured; `config-errors` adds bad keys to it.
    pub config: String,
    /// Sandbox limits every call runs under (the `[sandbox]` table of the config file).
    pub limits: SandboxLimits,
    /// Seed of the input generator. Default 1.
    pub seed: u64,
    /// Generated submissions for `total` (and up to 200 of them for `deterministic`).
    /// Default 500: a few seconds, yet enough to hit every input class many times.
    pub cases: usize,
}

impl KitOptions {
    /// Check `source` with an empty config, default limits, seed 1 and 500 cases.
    pub fn new(source: PolicySource) -> Self {
        KitOptions {
            source,
            config: String::new(),
            limits: SandboxLimits::default(),
            seed: 1,
            cases: 500,
        }
    }
}

/// The checks in report order: id and title.
const CHECKS: &[(&str, &str)] = &[
    (
        "contract",
        "imports nothing; exports quench:policy/policy@0.2.0 (or @0.1.0) with every function",
    ),
    (
        "config-errors",
        "bad config is refused with readable errors naming the key",
    ),
    (
        "total",
        "evaluate answers every generated submission, validly, within the limits",
    ),
    (
        "deterministic",
        "same inputs, same outputs: warm instance, fresh instance, repeated call",
    ),
    (
        "state-round-trip",
        "returned state is accepted back: describe and a fresh instance read it",
    ),
    (
        "unblock-limit",
        "readers cannot unblock; unblocks stop at the limit; support goes past it",
    ),
    (
        "idle",
        "a state idle lets the host delete answers exactly like no state",
    ),
    (
        "bounce",
        "render-bounce writes an RFC 3464 multipart/report delivery-status",
    ),
];

/// How the kit builds sandboxes: the component, its limits and a private compiled-code
/// cache, so each extra sandbox (fresh instances, bad configs) skips compilation.
pub(crate) struct Subject<'a> {
    options: &'a KitOptions,
    bytes: &'a [u8],
    cache: &'a Path,
}

impl Subject<'_> {
    /// A sandbox of the component under test with `config` and `limits`.
    pub(crate) fn sandbox(&self, config: &str, limits: SandboxLimits) -> Result<Sandbox> {
        Sandbox::builder()
            .source(PolicySource::Bytes(self.bytes.to_vec()))
            .config(config)
            .limits(limits)
            .allocation(Allocation::OnDemand)
            .cache_dir(self.cache)
            .build()
    }

    /// The configured limits, with one ready instance (the kit calls from one thread).
    pub(crate) fn limits(&self) -> SandboxLimits {
        SandboxLimits {
            ready_instances: 1,
            ..self.options.limits.clone()
        }
    }

    /// Limits under which every call gets a brand-new instance.
    pub(crate) fn fresh_limits(&self) -> SandboxLimits {
        SandboxLimits {
            recycle_after_calls: 1,
            ..self.limits()
        }
    }
}

/// The sandboxes the generated-input checks share.
pub(crate) struct Loaded {
    /// Instances reused call after call (as in production).
    pub(crate) warm: Sandbox,
    /// A new instance for every call.
    pub(crate) fresh: Sandbox,
}

/// Run every check and report.
pub fn run(options: &KitOptions) -> Report {
    let name = match &options.source {
        PolicySource::Embedded => "embedded default policy".to_string(),
        PolicySource::File(path) => path.display().to_string(),
        PolicySource::Bytes(bytes) => format!("component of {} bytes", bytes.len()),
    };
    let mut report = Report {
        component: name,
        sha256: String::new(),
        contract: None,
        state_format: None,
        seed: options.seed,
        cases: options.cases,
        checks: Vec::new(),
    };
    let bytes = match options.source.load() {
        Ok(bytes) => bytes,
        Err(error) => {
            let reason = format!("cannot read the component: {error:#}");
            report.checks = CHECKS
                .iter()
                .map(|(id, title)| result(id, title, Finding::fail(&reason)))
                .collect();
            return report;
        }
    };
    report.sha256 = crate::sandbox::component_hash(&bytes);
    let cache = tempfile::Builder::new().prefix("quench-check-").tempdir();
    let cache_path = match &cache {
        Ok(dir) => dir.path().to_path_buf(),
        Err(_) => std::env::temp_dir(),
    };
    let subject = Subject {
        options,
        bytes: &bytes,
        cache: &cache_path,
    };
    let loaded = subject
        .sandbox(&options.config, subject.limits())
        .and_then(|warm| {
            let fresh = subject.sandbox(&options.config, subject.fresh_limits())?;
            Ok(Loaded { warm, fresh })
        })
        .map_err(|e| format!("the policy did not load with the given config: {e:#}"));
    let (contract_finding, contract_version) = contract::inspect(&bytes);
    report.contract = contract_version;
    if let Ok(loaded) = &loaded {
        report.state_format = Some(loaded.warm.state_format().to_string());
        report.contract = Some(loaded.warm.contract_version());
    }

    let mut contract_finding = Some(contract_finding);
    for (id, title) in CHECKS {
        let finding = match *id {
            "contract" => contract_finding.take().expect("one contract check"),
            "config-errors" => config_errors::check(&subject),
            _ => match &loaded {
                Err(why) => Finding::fail(why.clone()),
                Ok(loaded) => match *id {
                    "total" => totality::check(loaded, options),
                    "deterministic" => determinism::check(loaded, options),
                    "state-round-trip" => round_trip::check(loaded),
                    "unblock-limit" => unblock_limit::check(loaded),
                    "idle" => idle::check(loaded),
                    "bounce" => bounce::check(loaded),
                    _ => unreachable!("every check id is dispatched"),
                },
            },
        };
        report.checks.push(result(id, title, finding));
    }
    report
}

/// Only the `contract` check, on a component's bytes: what a host can run before loading a
/// component (e.g. on reload) without executing any of it.
pub fn check_contract(bytes: &[u8]) -> Finding {
    contract::check(bytes)
}

fn result(id: &'static str, title: &'static str, finding: Finding) -> CheckResult {
    CheckResult { id, title, finding }
}

/// Cut `text` to about `max` characters for a one-line reason.
pub(crate) fn clip(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// A sandbox fault on one line: a trap by its cause (the wasm backtrace is left out: it
/// names functions by index only, and the input that caused it is reported instead).
pub(crate) fn fault(fault: &crate::SandboxError) -> String {
    match fault {
        crate::SandboxError::Trap(error) => format!("policy trapped: {}", error.root_cause()),
        other => clip(&other.to_string(), 300),
    }
}
