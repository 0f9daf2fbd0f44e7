//! The kit's report: one line per check, PASS/FAIL/SKIP with a reason, printable and JSON.

use serde::Serialize;
use std::fmt;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    /// The component does what the contract asks.
    Pass,
    /// It does not; the reason says where and how.
    Fail,
    /// The check could not be exercised (e.g. the policy never restricted); not a failure.
    Skip,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        })
    }
}

/// An outcome and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Pass, fail or skip.
    pub outcome: Outcome,
    /// One line: what was exercised, or what went wrong and on which input.
    pub reason: String,
}

impl Finding {
    /// A pass, with what was verified.
    pub fn pass(reason: impl Into<String>) -> Self {
        Finding {
            outcome: Outcome::Pass,
            reason: reason.into(),
        }
    }

    /// A failure, with what went wrong.
    pub fn fail(reason: impl Into<String>) -> Self {
        Finding {
            outcome: Outcome::Fail,
            reason: reason.into(),
        }
    }

    /// A skip, with why the check could not run.
    pub fn skip(reason: impl Into<String>) -> Self {
        Finding {
            outcome: Outcome::Skip,
            reason: reason.into(),
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Short stable name, e.g. `deterministic`: what tests and scripts match on.
    pub id: &'static str,
    /// What the check verifies, in a few words.
    pub title: &'static str,
    /// The outcome and its reason.
    #[serde(flatten)]
    pub finding: Finding,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The component checked (its path, or "embedded default").
    pub component: String,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The contract version it implements (`0.2.0`, `0.1.0`), when that could be told.
    pub contract: Option<crate::sandbox::ContractVersion>,
    /// Its state format, when it loaded.
    pub state_format: Option<String>,
    /// The generator's seed: the same seed replays the same submissions.
    pub seed: u64,
    /// Generated submissions per generated-input check.
    pub cases: usize,
    /// The checks, in order.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// True when no check failed (skips are not failures).
    pub fn passed(&self) -> bool {
        self.checks
            .iter()
            .all(|c| c.finding.outcome != Outcome::Fail)
    }

    /// The result of the check named `id`.
    pub fn check(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }

    fn count(&self, outcome: Outcome) -> usize {
        self.checks
            .iter()
            .filter(|c| c.finding.outcome == outcome)
            .count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "quench policy check: {}", self.component)?;
        writeln!(
            f,
            "  sha256 {}, contract {}, state format {}, seed {}, {} generated submissions per check",
            self.sha256,
            self.contract
                .map_or("(none this host loads)".to_string(), |v| v.to_string()),
            self.state_format.as_deref().unwrap_or("(did not load)"),
            self.seed,
            self.cases
        )?;
        writeln!(f)?;
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        for c in &self.checks {
            writeln!(f, "{}  {:width$}  {}", c.finding.outcome, c.id, c.title)?;
            writeln!(f, "      {:width$}  {}", "", c.finding.reason)?;
        }
        writeln!(f)?;
        write!(
            f,
            "{} checks: {} passed, {} failed, {} skipped",
            self.checks.len(),
            self.count(Outcome::Pass),
            self.count(Outcome::Fail),
            self.count(Outcome::Skip)
        )
    }
}
