//! Per-entity state: what it holds, how it moves with time, and its versioned encoding.
//!
//! Encoding (`quench-default/1`): one version byte (`1`), then four postcard values in this
//! order: the restriction, the unblock history, the exempt day, the counters. The order is
//! deliberate: what must never be forgotten comes first, so a truncated or partly damaged state
//! still yields its restriction and unblock history (see [`decode`]).

use serde::{Deserialize, Serialize};

use crate::limits::{LimitKey, MAX_UNBLOCK_HISTORY};
use crate::time::utc_day;
use crate::types::{RestrictionKind, Timestamp};
use crate::window::{self, WindowSpec};

/// The state format name the engine reports.
pub const FORMAT: &str = "quench-default/1";
/// The version byte in front of every encoded state.
pub const VERSION: u8 = 1;
/// Longest message id kept as evidence (longer ones are cut at a character boundary): ids are
/// host queue ids or Message-IDs, well under this; the cap bounds the state.
pub const MAX_MESSAGE_ID_LEN: usize = 128;

/// A restriction as stored. The typed record (`types::Restriction`) is derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRestriction {
    /// What kind of restriction.
    pub kind: StoredKind,
    /// Name of the outbound policy or connector whose limit tripped.
    pub policy: String,
    /// Which limit tripped.
    pub limit: LimitKey,
    /// The limit's value.
    pub threshold: u32,
    /// The count the refused submission would have reached.
    pub observed: u32,
    /// When it tripped (also when the restriction started).
    pub at: Timestamp,
    /// The message that tripped it, capped at [`MAX_MESSAGE_ID_LEN`].
    pub message_id: Option<String>,
    /// When it lifts by itself, if it does.
    pub expires: Option<Timestamp>,
}

/// [`RestrictionKind`] with a stable one-byte encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredKind {
    /// Until the next UTC midnight.
    BlockUserForToday,
    /// Until an admin unblocks.
    BlockUser,
    /// The service recipient rate; lifts as the 24-hour window drains.
    ServiceDailyLimit,
}

impl From<StoredKind> for RestrictionKind {
    fn from(k: StoredKind) -> Self {
        match k {
            StoredKind::BlockUserForToday => RestrictionKind::BlockUserForToday,
            StoredKind::BlockUser => RestrictionKind::BlockUser,
            StoredKind::ServiceDailyLimit => RestrictionKind::ServiceDailyLimit,
        }
    }
}

impl StoredRestriction {
    /// Whether the restriction is in force at `now`.
    pub fn active(&self, now: Timestamp) -> bool {
        self.expires.is_none_or(|e| now < e)
    }
}

/// The message the entity's last accepted submission belonged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentMessage {
    /// FNV-1a 64 hash of the message id (the id itself can be long).
    pub id: [u8; 8],
    /// Recipients accepted for this message so far.
    pub recipients: u32,
}

/// The counting windows. All windows share one "latest time", `last`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// The entity's latest time: the `now` of the last call (see [`Counters::advance`]).
    pub last: Timestamp,
    /// External recipients, sliding hour ([`window::HOUR`] buckets).
    pub external_hour: Vec<u32>,
    /// Internal recipients, sliding hour.
    pub internal_hour: Vec<u32>,
    /// Recipients in the UTC day of `last` (the per-day limit resets at UTC midnight).
    pub today: u32,
    /// Recipients, sliding 24 hours, for the service recipient rate ([`window::DAY`]).
    pub rate_day: Vec<u32>,
    /// Messages, sliding minute, for the service message rate ([`window::MINUTE`]).
    pub messages_minute: Vec<u32>,
    /// The message in progress, for per-message recipient totals and message counting.
    pub message: Option<CurrentMessage>,
    /// Limits already alerted on in the UTC day of `last` ([`LimitKey::alert_bit`]).
    pub alerted: u8,
}

impl Counters {
    fn windows(&mut self) -> [(&mut Vec<u32>, WindowSpec); 4] {
        [
            (&mut self.external_hour, window::HOUR),
            (&mut self.internal_hour, window::HOUR),
            (&mut self.rate_day, window::DAY),
            (&mut self.messages_minute, window::MINUTE),
        ]
    }

    /// Move the counters to `now`. Forward: old buckets leave the windows and the day count
    /// resets when the UTC day changes. Backwards (the clock was set back): nothing is
    /// dropped; the stored counts are taken as having happened at `now`, which only delays
    /// their expiry, so a limit is never loosened by a clock change.
    pub fn advance(&mut self, now: Timestamp) {
        let last = self.last;
        if now > last {
            for (counts, spec) in self.windows() {
                window::advance(counts, spec, last, now);
            }
            if utc_day(now) != utc_day(last) {
                self.today = 0;
                self.alerted = 0;
            }
            // No SMTP transaction spans a day: after a day of silence the same message id is
            // a new message (this keeps a quiet entity's state equivalent to no state).
            if now.saturating_sub(last) >= window::DAY.window_seconds() {
                self.message = None;
            }
        }
        self.last = now;
    }

    /// Whether nothing is counted any more: every window empty, no recipients today, no
    /// alert sent today, no message in progress. Call after [`Counters::advance`].
    pub fn quiet(&self) -> bool {
        [
            &self.external_hour,
            &self.internal_hour,
            &self.rate_day,
            &self.messages_minute,
        ]
        .into_iter()
        .all(|counts| window::total(counts) == 0)
            && self.today == 0
            && self.alerted == 0
            && self.message.is_none()
    }

    /// Clear the outbound-policy windows (external and internal hour, today): what an
    /// unblock does. The service windows are never cleared.
    pub fn clear_policy_windows(&mut self) {
        self.external_hour.clear();
        self.internal_hour.clear();
        self.today = 0;
    }

    /// Bring decoded (untrusted) counters into shape: no window longer than it can be.
    fn sanitize(&mut self) {
        for (counts, spec) in self.windows() {
            counts.truncate(spec.buckets + 1);
            window::trim(counts);
        }
    }
}

/// Everything the policy keeps about one entity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// The current (or last, until noticed expired) restriction.
    pub restriction: Option<StoredRestriction>,
    /// Times of unblocks still inside the unblock window, oldest first, at most
    /// [`MAX_UNBLOCK_HISTORY`].
    pub unblocks: Vec<Timestamp>,
    /// The UTC day on which an admin unblocked the entity: outbound-policy limits do not
    /// restrict it again until that day ends.
    pub exempt_day: Option<i64>,
    /// The counting windows.
    pub counters: Counters,
}

impl State {
    /// Whether this state is equivalent to no state at `now` and later (the WIT `idle`): no
    /// restriction in force, no unblock inside the unblock window (`unblock_window` seconds),
    /// no exempt day still running, nothing counted. An expired restriction does not keep a
    /// state: with it, the next decision only reports the lift.
    pub fn idle(&self, now: Timestamp, unblock_window: i64) -> bool {
        if self.restriction.as_ref().is_some_and(|r| r.active(now)) {
            return false;
        }
        let since = now.saturating_sub(unblock_window);
        if self.unblocks.iter().any(|&t| t > since) {
            return false;
        }
        if self.exempt_day.is_some_and(|day| day >= utc_day(now)) {
            return false;
        }
        // A clock set back leaves later counts in place; such a state is not idle yet.
        if self.counters.last > now {
            return false;
        }
        let mut counters = self.counters.clone();
        counters.advance(now);
        counters.quiet()
    }
}

/// Why a state could not be read, and what could be recovered from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    /// What went wrong.
    pub why: String,
    /// The leading parts that did decode (restriction first), the rest fresh.
    pub salvaged: State,
}

/// Encode a state. Never fails: postcard cannot fail on these types, and if it somehow did
/// the parts written so far are still a readable prefix.
pub fn encode(state: &State) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    let out = postcard::to_extend(&state.restriction, out).unwrap_or_else(|_| vec![VERSION]);
    let out = postcard::to_extend(&state.unblocks, out).unwrap_or_default();
    let out = postcard::to_extend(&state.exempt_day, out).unwrap_or_default();
    postcard::to_extend(&state.counters, out).unwrap_or_default()
}

/// Decode a state. Empty bytes are a new entity. Anything else that is not a complete
/// `quench-default/1` state is [`Damaged`], carrying whatever leading parts decoded.
pub fn decode(bytes: &[u8]) -> Result<State, Box<Damaged>> {
    let mut state = State::default();
    let Some((&version, mut rest)) = bytes.split_first() else {
        return Ok(state);
    };
    let damaged = |state: State, why: String| {
        Err(Box::new(Damaged {
            why,
            salvaged: state,
        }))
    };
    if version != VERSION {
        return damaged(
            state,
            format!("unknown state version {version} (expected {VERSION})"),
        );
    }
    macro_rules! part {
        ($field:expr, $name:literal) => {
            match postcard::take_from_bytes(rest) {
                Ok((value, tail)) => {
                    $field = value;
                    rest = tail;
                }
                // The decoder's own message is not quoted: it differs between the native
                // build and wasm (lengths are read as `usize`), and the answer must not.
                Err(_) => return damaged(state, format!("cannot read the {}", $name)),
            }
        };
    }
    part!(state.restriction, "restriction");
    part!(state.unblocks, "unblock history");
    if state.unblocks.len() > MAX_UNBLOCK_HISTORY {
        let excess = state.unblocks.len() - MAX_UNBLOCK_HISTORY;
        state.unblocks.drain(..excess);
    }
    part!(state.exempt_day, "exempt day");
    part!(state.counters, "counters");
    state.counters.sanitize();
    if !rest.is_empty() {
        let n = rest.len();
        return damaged(state, format!("{n} unexpected trailing bytes"));
    }
    Ok(state)
}

/// FNV-1a 64 of a message id: stable, tiny, and good enough to tell consecutive ids apart.
pub fn message_hash(id: &str) -> [u8; 8] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.to_le_bytes()
}

/// Cut a message id to [`MAX_MESSAGE_ID_LEN`] bytes at a character boundary.
pub fn cap_message_id(id: &str) -> String {
    let mut end = id.len().min(MAX_MESSAGE_ID_LEN);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    id[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            restriction: Some(StoredRestriction {
                kind: StoredKind::BlockUser,
                policy: "Default".into(),
                limit: LimitKey::ExternalPerHour,
                threshold: 500,
                observed: 501,
                at: 1_795_428_000,
                message_id: Some("4XyZ1abc".into()),
                expires: None,
            }),
            unblocks: vec![1_795_000_000],
            exempt_day: Some(20_779),
            counters: Counters {
                last: 1_795_428_000,
                external_hour: vec![3, 0, 1],
                internal_hour: vec![2],
                today: 40,
                rate_day: vec![5, 7, 9],
                messages_minute: vec![1],
                message: Some(CurrentMessage {
                    id: message_hash("x"),
                    recipients: 2,
                }),
                alerted: 0,
            },
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        assert_eq!(decode(&encode(&s)), Ok(s));
        assert_eq!(decode(&encode(&State::default())), Ok(State::default()));
        assert_eq!(decode(&[]), Ok(State::default()));
    }

    #[test]
    fn truncation_salvages_the_restriction() {
        let s = sample();
        let bytes = encode(&s);
        let mut salvaged_restriction = 0;
        for cut in 1..bytes.len() {
            let err = decode(&bytes[..cut]).expect_err("truncated state must not decode");
            if err.salvaged.restriction == s.restriction {
                salvaged_restriction += 1;
            }
        }
        assert!(salvaged_restriction > 0);
        let err = decode(&bytes[..bytes.len() - 1]).unwrap_err();
        assert_eq!(err.salvaged.restriction, s.restriction);
        assert_eq!(err.salvaged.unblocks, s.unblocks);
    }

    #[test]
    fn foreign_versions_and_garbage() {
        for bytes in [&[0u8][..], &[2], &[255, 1, 2], &[1, 9, 9, 9], &[1, 1]] {
            assert!(decode(bytes).is_err(), "{bytes:?}");
        }
    }
}
