//! The sandbox's knobs. Every default says why it is what it is; `quench serve` exposes them
//! in the `[sandbox]` table of its config.

use crate::bindings::{Action, Decision, RestrictionChange, SmtpReply, Verdict};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a decision becomes when the policy cannot answer (trap, deadline, memory cap,
/// invalid output, no instance available).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FailAction {
    /// Accept the submission (Postfix `DUNNO`): mail keeps flowing while the policy is broken.
    /// The default, because a policy bug should not stop a whole site's mail; the failure is
    /// logged and counted so it is noticed.
    #[default]
    Open,
    /// Defer the submission with a temporary 4xx: nothing leaves unchecked, clients retry.
    Closed,
}

impl FailAction {
    /// The decision this action gives in place of the policy's, keeping `state` (a failed
    /// call must never lose what the store holds): accept, or `451 4.7.1` deferral.
    pub fn decision(self, state: &[u8]) -> Decision {
        let verdict = match self {
            FailAction::Open => Verdict {
                action: Action::Accept,
                reply: None,
            },
            FailAction::Closed => Verdict {
                action: Action::Defer,
                reply: Some(SmtpReply {
                    code: 451,
                    status: "4.7.1".into(),
                    text: "Policy temporarily unavailable, try again later".into(),
                }),
            },
        };
        Decision {
            verdict,
            state: state.to_vec(),
            restriction: None,
            change: RestrictionChange::None,
            alerts: Vec::new(),
        }
    }
}

/// Resource limits for each policy call and instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxLimits {
    /// Wall-clock budget of one call into the policy, in milliseconds. The default policy
    /// decides in microseconds; 50 ms is thousands of times that, yet short enough that a
    /// looping policy costs one SMTP transaction a barely noticeable pause.
    pub deadline_ms: u64,
    /// How often the epoch ticker advances, in milliseconds: the deadline's resolution. 5 ms
    /// keeps the ticker thread's cost negligible while overshooting a deadline by at most 5 ms.
    pub epoch_tick_ms: u64,
    /// Linear-memory cap per instance, in bytes. The default policy needs well under 2 MiB;
    /// 32 MiB leaves room for custom policies with lookup tables while bounding a memory bomb.
    pub memory_bytes: usize,
    /// Instances kept ready (instantiated, configured) between calls. Two per core of a
    /// typical MTA host: enough that concurrent decisions rarely instantiate on demand.
    pub ready_instances: usize,
    /// Most instances alive at once (ready plus in use); sizes the pooling allocator. A call
    /// that would exceed it gets the fail action instead of exhausting host memory.
    pub max_instances: u32,
    /// Recycle an instance after this many calls, so a slow leak inside a policy never
    /// accumulates. 10,000 calls amortises instantiation (tens of microseconds) to nothing.
    pub recycle_after_calls: u64,
    /// Largest state a policy may return, in bytes. Per-entity state is meant to be small
    /// (the default policy writes under 256 bytes); 64 KiB catches a runaway policy before it
    /// bloats the store.
    pub max_state_bytes: usize,
    /// Most recipients one submission may carry into the policy. A longer list is refused
    /// by the host (`550 5.5.3 Too many recipients`) without calling the policy: otherwise a
    /// huge list could run a call past its deadline and, under fail-open, through unchecked.
    /// 1,000 is the largest per-message limit Exchange allows; Postfix hooks per recipient,
    /// so only embedders passing whole messages ever come near it.
    pub max_recipients: usize,
    /// What a decision becomes when the policy fails.
    pub fail_action: FailAction,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            deadline_ms: 50,
            epoch_tick_ms: 5,
            memory_bytes: 32 << 20,
            ready_instances: 4,
            max_instances: 128,
            recycle_after_calls: 10_000,
            max_state_bytes: 64 << 10,
            max_recipients: 1000,
            fail_action: FailAction::Open,
        }
    }
}

impl SandboxLimits {
    /// The deadline in epoch ticks, rounded up, at least one.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        self.deadline_ms.div_ceil(self.epoch_tick_ms.max(1)).max(1)
    }

    /// The epoch tick as a duration (at least 1 ms).
    pub(crate) fn epoch_tick(&self) -> Duration {
        Duration::from_millis(self.epoch_tick_ms.max(1))
    }

    /// Check the knobs make sense together.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.deadline_ms > 0, "sandbox.deadline_ms must be above 0");
        anyhow::ensure!(
            self.epoch_tick_ms > 0,
            "sandbox.epoch_tick_ms must be above 0"
        );
        anyhow::ensure!(
            self.memory_bytes >= 1 << 16,
            "sandbox.memory_bytes must be at least one wasm page (65536)"
        );
        anyhow::ensure!(
            self.max_instances > 0,
            "sandbox.max_instances must be above 0"
        );
        anyhow::ensure!(
            self.recycle_after_calls > 0,
            "sandbox.recycle_after_calls must be above 0"
        );
        Ok(())
    }
}
