//! The limits the policy counts, their configuration keys, windows and service defaults, and
//! the outbound actions and presets.

use serde::{Deserialize, Serialize};

use crate::time::{DAY, HOUR};

/// Largest value a per-policy recipient limit may take (EOP's own maximum).
pub const MAX_POLICY_LIMIT: u32 = 10_000;

/// Service default for `recipient_limit_external_per_hour` when it is 0 or unset: the
/// `standard` preset's value, so "0 = service default" is a sane, documented number.
pub const DEFAULT_EXTERNAL_PER_HOUR: u32 = 500;
/// Service default for `recipient_limit_internal_per_hour` (the `standard` preset's value).
pub const DEFAULT_INTERNAL_PER_HOUR: u32 = 1_000;
/// Service default for `recipient_limit_per_day` (the `standard` preset's value).
pub const DEFAULT_PER_DAY: u32 = 1_000;

/// Service recipient rate: recipients per sliding 24 hours per user (Exchange Online's
/// recipient rate limit). Configurable as `recipient_rate_limit`, 1..=10000.
pub const DEFAULT_RECIPIENT_RATE_LIMIT: u32 = 10_000;
/// Service message rate: messages per sliding minute per user before deferral (Exchange
/// Online's `MessageRateLimit`). Configurable as `message_rate_limit`, 1..=10000.
pub const DEFAULT_MESSAGE_RATE_LIMIT: u32 = 30;
/// Recipients per message (Exchange Online's default `MaxRecipientEnvelopeLimit`).
/// Configurable as `max_recipient_envelope_limit`, 1..=1000.
pub const DEFAULT_MAX_RECIPIENTS_PER_MESSAGE: u32 = 500;
/// Upper bound of `max_recipient_envelope_limit`.
pub const MAX_RECIPIENTS_PER_MESSAGE: u32 = 1_000;

/// Default unblocks per entity per unblock window. Three lets an admin recover from an honest
/// mistake twice more after the first unblock, while a repeatedly compromised account forces
/// an escalation to the support role.
pub const DEFAULT_UNBLOCK_COUNT: u32 = 3;
/// Default unblock window in days (rolling): a month, EOP's order of magnitude.
pub const DEFAULT_UNBLOCK_WINDOW_DAYS: u32 = 30;
/// Upper bound of `unblock_limit.count`; the state keeps at most [`MAX_UNBLOCK_HISTORY`] times.
pub const MAX_UNBLOCK_COUNT: u32 = 50;
/// Upper bound of `unblock_limit.window_days` (a year).
pub const MAX_UNBLOCK_WINDOW_DAYS: u32 = 365;
/// Unblock times kept per entity: above [`MAX_UNBLOCK_COUNT`] so support-role unblocks past
/// the limit are still counted, small enough to bound the state.
pub const MAX_UNBLOCK_HISTORY: usize = 64;

/// Which limit tripped. Stored in state as a one-byte tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LimitKey {
    /// External recipients per sliding hour.
    ExternalPerHour,
    /// Internal recipients per sliding hour.
    InternalPerHour,
    /// Recipients per UTC calendar day (resets at 00:00:00 UTC).
    PerDay,
    /// The service's recipients per sliding 24 hours.
    RecipientRate,
}

impl LimitKey {
    /// The configuration key of the limit, as evidence names it.
    pub fn key(self) -> &'static str {
        match self {
            LimitKey::ExternalPerHour => "recipient_limit_external_per_hour",
            LimitKey::InternalPerHour => "recipient_limit_internal_per_hour",
            LimitKey::PerDay => "recipient_limit_per_day",
            LimitKey::RecipientRate => "recipient_rate_limit",
        }
    }

    /// The length of the limit's window in seconds.
    pub fn window_seconds(self) -> u32 {
        match self {
            LimitKey::ExternalPerHour | LimitKey::InternalPerHour => HOUR as u32,
            LimitKey::PerDay | LimitKey::RecipientRate => DAY as u32,
        }
    }

    /// Words for the window, for human-readable texts.
    pub fn window_words(self) -> &'static str {
        match self {
            LimitKey::ExternalPerHour | LimitKey::InternalPerHour => "in the last hour",
            LimitKey::PerDay => "today (UTC)",
            LimitKey::RecipientRate => "in the last 24 hours",
        }
    }

    /// The bit of this limit in the once-per-UTC-day alert mask.
    pub fn alert_bit(self) -> u8 {
        match self {
            LimitKey::ExternalPerHour => 1,
            LimitKey::InternalPerHour => 2,
            LimitKey::PerDay => 4,
            LimitKey::RecipientRate => 8,
        }
    }
}

/// What an outbound policy does when a limit is reached (EOP's `ActionWhenThresholdReached`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboundAction {
    /// Restrict until the next UTC midnight.
    BlockUserForToday,
    /// Restrict until an admin unblocks.
    BlockUser,
    /// Accept and alert.
    Alert,
}

impl OutboundAction {
    /// The action when a policy sets neither an action nor a preset: EOP's default outbound
    /// policy restricts the user until the following day.
    pub const DEFAULT: OutboundAction = OutboundAction::BlockUserForToday;

    /// The configuration spelling.
    pub fn name(self) -> &'static str {
        match self {
            OutboundAction::BlockUserForToday => "BlockUserForToday",
            OutboundAction::BlockUser => "BlockUser",
            OutboundAction::Alert => "Alert",
        }
    }

    /// How strong the action is: `BlockUser` > `BlockUserForToday` > `Alert`.
    fn strength(self) -> u8 {
        match self {
            OutboundAction::Alert => 0,
            OutboundAction::BlockUserForToday => 1,
            OutboundAction::BlockUser => 2,
        }
    }

    /// The stronger of two actions (when two policies apply, the stricter wins).
    pub fn stronger(self, other: OutboundAction) -> OutboundAction {
        if other.strength() > self.strength() {
            other
        } else {
            self
        }
    }

    /// Parse a configuration value, case-insensitively.
    pub fn parse(s: &str) -> Option<OutboundAction> {
        [
            OutboundAction::BlockUserForToday,
            OutboundAction::BlockUser,
            OutboundAction::Alert,
        ]
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// A policy limit set to 0 in the configuration: EOP's "the service defaults are used", i.e. the
/// policy adds no limit of its own (no count reaches it) and only the service limits apply.
pub const NO_LIMIT: u32 = u32::MAX;

/// Effective limits of one outbound policy or connector, with 0 already resolved to
/// [`NO_LIMIT`] (so every limit here is at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// External recipients per sliding hour.
    pub external_per_hour: u32,
    /// Internal recipients per sliding hour.
    pub internal_per_hour: u32,
    /// Recipients per UTC day.
    pub per_day: u32,
    /// What happens when one of them is reached.
    pub action: OutboundAction,
}

impl Limits {
    /// quench's defaults: what a limit left out of the configuration means (the `standard`
    /// preset's numbers). An explicit 0 means [`NO_LIMIT`] instead.
    pub const SERVICE_DEFAULT: Limits = Limits {
        external_per_hour: DEFAULT_EXTERNAL_PER_HOUR,
        internal_per_hour: DEFAULT_INTERNAL_PER_HOUR,
        per_day: DEFAULT_PER_DAY,
        action: OutboundAction::DEFAULT,
    };

    /// The threshold of one of the policy limits.
    pub fn threshold(&self, key: LimitKey) -> u32 {
        match key {
            LimitKey::ExternalPerHour => self.external_per_hour,
            LimitKey::InternalPerHour => self.internal_per_hour,
            LimitKey::PerDay => self.per_day,
            LimitKey::RecipientRate => u32::MAX,
        }
    }

    /// Set one of the policy limits (the service recipient rate is not one: ignored).
    pub fn set_threshold(&mut self, key: LimitKey, value: u32) {
        match key {
            LimitKey::ExternalPerHour => self.external_per_hour = value,
            LimitKey::InternalPerHour => self.internal_per_hour = value,
            LimitKey::PerDay => self.per_day = value,
            LimitKey::RecipientRate => {}
        }
    }
}

/// A named bundle of limits and action (EOP's preset security policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// The configuration spelling (`preset = "strict"`), matched case-insensitively.
    pub name: &'static str,
    /// The values it sets.
    pub limits: Limits,
}

/// The presets: `standard` (500 external/h, 1000 internal/h, 1000/day) and `strict`
/// (400/800/800), both `BlockUser`, like EOP's Standard and Strict preset policies.
pub const PRESETS: [Preset; 2] = [
    Preset {
        name: "standard",
        limits: Limits {
            external_per_hour: 500,
            internal_per_hour: 1_000,
            per_day: 1_000,
            action: OutboundAction::BlockUser,
        },
    },
    Preset {
        name: "strict",
        limits: Limits {
            external_per_hour: 400,
            internal_per_hour: 800,
            per_day: 800,
            action: OutboundAction::BlockUser,
        },
    },
];

/// Find a preset by name, case-insensitively.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
}
