//! Per-entity state: what it holds, how it moves with time, and its versioned encoding.
//!
//! Encoding (`quench-default/2`): one version byte (`2`), then four postcard values in this
//! order: the restriction, the unblock history, the exempt day, the counters. The order is
//! deliberate: what must never be forgotten comes first, so a truncated or partly damaged state
//! still yields its restriction and unblock history (see [`decode`]).
//!
//! `quench-default/1` (version byte `1`) had the same layout except that the counters kept one
//! "current message" (an 8-byte id hash and its recipients) instead of the list of messages in
//! flight. [`decode`] still reads it, turning that message into a one-entry list, so states
//! written by the previous policy lose nothing; [`encode`] always writes version 2.

use serde::{Deserialize, Serialize};

use crate::limits::{LimitKey, MAX_UNBLOCK_HISTORY};
use crate::time::utc_day;
use crate::types::{RestrictionKind, Timestamp};
use crate::window::{self, WindowSpec};

/// The state format name the engine reports.
pub const FORMAT: &str = "quench-default/2";
/// The version byte in front of every encoded state.
pub const VERSION: u8 = 2;
/// The version byte of `quench-default/1` states, which [`decode`] still reads.
pub const VERSION_1: u8 = 1;
/// Messages in flight kept per entity ([`Counters::messages`]).
///
/// A message is in flight while its client still sends recipients for it. One sender rarely has
/// more than a few at once: a mail client submits over one or two connections, an application
/// or a bulk job over a handful (Postfix lets one client have at most
/// `smtpd_client_connection_count_limit` = 50 connections, half of its default
/// `default_process_limit` of 100, and each connection has one message in its RCPT phase at a
/// time). 16 covers twice the 8 parallel messages per sender that the fleet test drives, and
/// costs at most 16 x 8 bytes. Past it the least recently seen message is forgotten: should it
/// continue, it counts as a new message, once more against the message rate (the stricter
/// side), and its recipients count again from 0 for the per-message limit. Every recipient
/// still counts in every recipient window, and a sender that keeps more than 16 messages in
/// flight to dodge the per-message limit makes each call a new message, which the message
/// rate (30 a minute) defers within seconds.
pub const MAX_IN_FLIGHT: usize = 16;
/// Messages in flight kept for a connector: a relaying host carries many senders' messages
/// at once, up to one per connection, and Postfix allows one client 50
/// (`smtpd_client_connection_count_limit`); 64 covers that, at most 64 x 8 bytes for the few
/// connector entities. (The message rate does not apply to connectors, so for them a
/// forgotten message only restarts its per-message total.)
pub const MAX_IN_FLIGHT_CONNECTOR: usize = 64;
/// Seconds a message stays in flight after its last call: 10 minutes.
///
/// The calls of one message come one SMTP command apart, and Postfix drops a client that is
/// silent for longer than `smtpd_timeout` (300 s) at any command; a message whose last call was
/// longer ago than that can no longer get another recipient. Twice that leaves room for a
/// milter's end-of-message call after a slow DATA phase, for policy requests queued behind
/// others and for clock skew between the hosts of a fleet. A call after that counts as a new
/// message, which errs on the strict side (one more message in the minute).
pub const IN_FLIGHT_SECONDS: u32 = 600;
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

/// A message in flight: one the entity had recipients accepted for recently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// [`message_hash`] of the message id (4 bytes; the id itself can be long).
    pub id: [u8; 4],
    /// Recipients accepted for this message so far.
    pub recipients: u32,
    /// Seconds from the message's last accepted call to the entity's latest time
    /// ([`Counters::last`]): 0 for a message of the latest call. Relative, so it stays one or
    /// two bytes; [`Counters::advance`] ages it.
    pub age: u32,
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
    /// The messages in flight, most recently seen first, at most [`MAX_IN_FLIGHT`] (for a
    /// connector [`MAX_IN_FLIGHT_CONNECTOR`]), none
    /// older than [`IN_FLIGHT_SECONDS`]: for per-message recipient totals and for counting a
    /// message once however its calls interleave with the entity's other messages.
    pub messages: Vec<InFlight>,
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
            // Messages age with the latest time; one unseen for longer than a message can be
            // in flight is over (a later call with its id is a new message).
            let elapsed = u32::try_from(now.saturating_sub(last)).unwrap_or(u32::MAX);
            for m in &mut self.messages {
                m.age = m.age.saturating_add(elapsed);
            }
            self.messages.retain(|m| m.age <= IN_FLIGHT_SECONDS);
        }
        self.last = now;
    }

    /// Recipients accepted so far for the message in flight with id hash `id`, if it is one.
    pub fn in_flight(&self, id: [u8; 4]) -> Option<u32> {
        self.messages
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.recipients)
    }

    /// Record an accepted call of message `id`, which now has `recipients` in all, as seen at
    /// the latest time: it moves to the front, and past `keep` messages ([`MAX_IN_FLIGHT`],
    /// or [`MAX_IN_FLIGHT_CONNECTOR`] for a connector) the least recently seen is forgotten.
    pub fn saw_message(&mut self, id: [u8; 4], recipients: u32, keep: usize) {
        self.messages.retain(|m| m.id != id);
        self.messages.insert(
            0,
            InFlight {
                id,
                recipients,
                age: 0,
            },
        );
        self.messages.truncate(keep);
    }

    /// Whether nothing is counted any more: every window empty, no recipients today, no
    /// alert sent today, no message in flight. Call after [`Counters::advance`].
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
            && self.messages.is_empty()
    }

    /// Clear the outbound-policy windows (external and internal hour, today): what an
    /// unblock does. The service windows are never cleared.
    pub fn clear_policy_windows(&mut self) {
        self.external_hour.clear();
        self.internal_hour.clear();
        self.today = 0;
    }

    /// Bring decoded (untrusted) counters into shape: no window longer than it can be, the
    /// messages in flight bounded, in order and none expired.
    fn sanitize(&mut self) {
        for (counts, spec) in self.windows() {
            counts.truncate(spec.buckets + 1);
            window::trim(counts);
        }
        self.messages.retain(|m| m.age <= IN_FLIGHT_SECONDS);
        self.messages.sort_by_key(|m| m.age);
        self.messages.truncate(MAX_IN_FLIGHT_CONNECTOR);
    }
}

/// The counters as `quench-default/1` wrote them: one current message, not a list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CountersV1 {
    last: Timestamp,
    external_hour: Vec<u32>,
    internal_hour: Vec<u32>,
    today: u32,
    rate_day: Vec<u32>,
    messages_minute: Vec<u32>,
    message: Option<CurrentMessageV1>,
    alerted: u8,
}

/// `quench-default/1`'s message of the entity's last accepted call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct CurrentMessageV1 {
    /// FNV-1a 64 of the message id.
    id: [u8; 8],
    recipients: u32,
}

impl From<CountersV1> for Counters {
    /// The v1 message was the one of the entity's latest call, so it is in flight with age 0,
    /// under the 4-byte hash the same id gets now ([`fold_hash`] of the same FNV-1a 64).
    fn from(c: CountersV1) -> Self {
        Counters {
            last: c.last,
            external_hour: c.external_hour,
            internal_hour: c.internal_hour,
            today: c.today,
            rate_day: c.rate_day,
            messages_minute: c.messages_minute,
            messages: c
                .message
                .map(|m| InFlight {
                    id: fold_hash(m.id),
                    recipients: m.recipients,
                    age: 0,
                })
                .into_iter()
                .collect(),
            alerted: c.alerted,
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

/// Encode a state (always the current version). Never fails: postcard cannot fail on these types, and if it somehow did
/// the parts written so far are still a readable prefix.
pub fn encode(state: &State) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    let out = postcard::to_extend(&state.restriction, out).unwrap_or_else(|_| vec![VERSION]);
    let out = postcard::to_extend(&state.unblocks, out).unwrap_or_default();
    let out = postcard::to_extend(&state.exempt_day, out).unwrap_or_default();
    postcard::to_extend(&state.counters, out).unwrap_or_default()
}

/// Decode a state. Empty bytes are a new entity. A `quench-default/1` state is read and
/// converted (see the module notes). Anything else that is not a complete state is
/// [`Damaged`], carrying whatever leading parts decoded.
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
    if version != VERSION && version != VERSION_1 {
        return damaged(
            state,
            format!("unknown state version {version} (expected {VERSION} or {VERSION_1})"),
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
    if version == VERSION_1 {
        let v1: CountersV1;
        part!(v1, "counters");
        state.counters = v1.into();
    } else {
        part!(state.counters, "counters");
    }
    state.counters.sanitize();
    if !rest.is_empty() {
        let n = rest.len();
        return damaged(state, format!("{n} unexpected trailing bytes"));
    }
    Ok(state)
}

/// FNV-1a 64 of a message id, as `quench-default/1` stored it.
fn fnv1a64(id: &str) -> [u8; 8] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.to_le_bytes()
}

/// Fold an FNV-1a 64 hash to 4 bytes (high half XOR low half).
fn fold_hash(h: [u8; 8]) -> [u8; 4] {
    std::array::from_fn(|i| h[i] ^ h[i + 4])
}

/// The 4-byte hash a message id is kept under: FNV-1a 64, folded.
///
/// 4 bytes are enough. Ids are only compared among one entity's messages in flight, at most
/// [`MAX_IN_FLIGHT`]: a new id takes a live one's hash with a chance of at most 16 in 2^32
/// (about 4 in a billion messages). Such a collision makes the new message a continuation of
/// the other: it is not counted against the message rate (one message too few in a minute)
/// and its recipients add to the other's per-message total (stricter). Every recipient still
/// counts in every recipient window, so no recipient limit is loosened. Ids are chosen by the
/// host (Postfix `instance`, a queue id), not by the client; a host passing one id for many
/// messages gets the same effect without any collision, capped by the per-message limit.
pub fn message_hash(id: &str) -> [u8; 4] {
    fold_hash(fnv1a64(id))
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
                messages: vec![
                    InFlight {
                        id: message_hash("x"),
                        recipients: 2,
                        age: 0,
                    },
                    InFlight {
                        id: message_hash("y"),
                        recipients: 300,
                        age: 170,
                    },
                ],
                alerted: 0,
            },
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        assert_eq!(encode(&s)[0], 2);
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
        for bytes in [
            &[0u8][..],
            &[3],
            &[255, 1, 2],
            &[1, 9, 9, 9],
            &[1, 1],
            &[2, 9, 9, 9],
            &[2, 1],
        ] {
            assert!(decode(bytes).is_err(), "{bytes:?}");
        }
    }

    /// The 4-byte hash is the folded FNV-1a 64 that `quench-default/1` stored, so a message
    /// in flight across the upgrade keeps its identity.
    #[test]
    fn message_hash_folds_the_v1_hash() {
        // FNV-1a 64 of "" is its offset basis; of "a", a published test vector.
        assert_eq!(u64::from_le_bytes(fnv1a64("")), 0xcbf2_9ce4_8422_2325);
        assert_eq!(u64::from_le_bytes(fnv1a64("a")), 0xaf63_dc4c_8601_ec8c);
        let h = 0xaf63_dc4c_8601_ec8cu64;
        let folded = ((h >> 32) ^ (h & 0xffff_ffff)) as u32;
        assert_eq!(message_hash("a"), folded.to_le_bytes());
        assert_ne!(message_hash("Q1"), message_hash("Q2"));
    }

    /// States written by the `quench-default/1` policy (commit 3ec15ea), byte for byte.
    mod v1 {
        /// alice: 2 external at 09:00 (no id), then message "4XyZ1abc" with 3 internal at
        /// 09:30:00 and 1 external at 09:30:05 (limit 5 external per hour, BlockUser).
        pub const BUSY: &[u8] = &[
            1, 0, 0, 0, 186, 158, 160, 176, 13, 7, 1, 0, 0, 0, 0, 0, 2, 1, 3, 6, 1, 6, 1, 1, 1, 11,
            190, 168, 175, 212, 60, 238, 169, 4, 0,
        ];
        /// bob: 3 + 3 external ("Q1", "Q2") at 10:00, unblocked at 10:05, "Q3" with 2
        /// internal at 10:06.
        pub const UNBLOCKED: &[u8] = &[
            1, 0, 1, 152, 191, 160, 176, 13, 1, 216, 196, 2, 144, 192, 160, 176, 13, 0, 1, 2, 2, 1,
            5, 1, 1, 1, 221, 169, 207, 181, 7, 21, 63, 9, 2, 1,
        ];
        /// carol: "Q9" with 3 external at 10:00:00, "Q10" with 3 more at 10:00:01, which
        /// tripped the limit and restricted her.
        pub const RESTRICTED: &[u8] = &[
            1, 1, 1, 7, 68, 101, 102, 97, 117, 108, 116, 0, 5, 6, 194, 186, 160, 176, 13, 1, 3, 81,
            49, 48, 0, 0, 0, 194, 186, 160, 176, 13, 1, 3, 0, 3, 1, 3, 1, 1, 1, 223, 152, 207, 181,
            7, 11, 63, 9, 3, 1,
        ];
    }

    const DAY0: Timestamp = 1_795_392_000;

    #[test]
    fn reads_v1_states() {
        let busy = decode(v1::BUSY).expect("a v1 state decodes");
        assert_eq!(busy.restriction, None);
        assert!(busy.unblocks.is_empty());
        assert_eq!(busy.exempt_day, None);
        let c = &busy.counters;
        assert_eq!(c.last, DAY0 + 9 * 3600 + 30 * 60 + 5);
        assert_eq!(window::total(&c.external_hour), 3);
        assert_eq!(window::total(&c.internal_hour), 3);
        assert_eq!(c.today, 6);
        assert_eq!(window::total(&c.rate_day), 6);
        assert_eq!(window::total(&c.messages_minute), 1);
        assert_eq!(c.alerted, 0);
        assert_eq!(
            c.messages,
            vec![InFlight {
                id: message_hash("4XyZ1abc"),
                recipients: 4,
                age: 0,
            }]
        );
        assert_eq!(c.in_flight(message_hash("4XyZ1abc")), Some(4));

        let unblocked = decode(v1::UNBLOCKED).expect("a v1 state decodes");
        assert_eq!(unblocked.restriction, None);
        assert_eq!(unblocked.unblocks, vec![DAY0 + 10 * 3600 + 5 * 60]);
        assert_eq!(unblocked.exempt_day, Some(DAY0 / 86_400));
        assert_eq!(unblocked.counters.today, 2);
        assert_eq!(unblocked.counters.in_flight(message_hash("Q3")), Some(2));
        assert_eq!(unblocked.counters.messages.len(), 1);

        let restricted = decode(v1::RESTRICTED).expect("a v1 state decodes");
        let r = restricted.restriction.as_ref().expect("the restriction");
        assert_eq!(r.kind, StoredKind::BlockUser);
        assert_eq!(r.policy, "Default");
        assert_eq!(r.limit, LimitKey::ExternalPerHour);
        assert_eq!((r.threshold, r.observed), (5, 6));
        assert_eq!(r.at, DAY0 + 10 * 3600 + 1);
        assert_eq!(r.message_id.as_deref(), Some("Q10"));
        assert_eq!(r.expires, None);
        assert_eq!(restricted.counters.in_flight(message_hash("Q9")), Some(3));

        // Re-encoded as v2, they read back the same, and are smaller.
        for (old, state) in [
            (v1::BUSY, busy),
            (v1::UNBLOCKED, unblocked),
            (v1::RESTRICTED, restricted),
        ] {
            let new = encode(&state);
            assert_eq!(new[0], VERSION);
            assert_eq!(decode(&new).as_ref(), Ok(&state));
            assert!(new.len() < old.len(), "{} vs {}", new.len(), old.len());
        }
    }

    /// A v1 state built field by field with the v1 layout (not only the recorded bytes).
    #[test]
    fn reads_a_v1_state_built_with_the_v1_layout() {
        let s = sample();
        let v1 = CountersV1 {
            last: s.counters.last,
            external_hour: s.counters.external_hour.clone(),
            internal_hour: s.counters.internal_hour.clone(),
            today: s.counters.today,
            rate_day: s.counters.rate_day.clone(),
            messages_minute: s.counters.messages_minute.clone(),
            message: Some(CurrentMessageV1 {
                id: fnv1a64("x"),
                recipients: 2,
            }),
            alerted: 4,
        };
        let mut bytes = vec![VERSION_1];
        bytes = postcard::to_extend(&s.restriction, bytes).unwrap();
        bytes = postcard::to_extend(&s.unblocks, bytes).unwrap();
        bytes = postcard::to_extend(&s.exempt_day, bytes).unwrap();
        bytes = postcard::to_extend(&v1, bytes).unwrap();
        let got = decode(&bytes).expect("decodes");
        let mut want = s.clone();
        want.counters.messages.truncate(1);
        want.counters.alerted = 4;
        assert_eq!(got, want);
        // Without a current message: no message in flight.
        let mut bytes = vec![VERSION_1, 0, 0, 0];
        bytes = postcard::to_extend(&CountersV1::default(), bytes).unwrap();
        assert_eq!(decode(&bytes), Ok(State::default()));
        // A damaged v1 state salvages like a v2 one.
        let err = decode(&v1::RESTRICTED[..v1::RESTRICTED.len() - 3]).unwrap_err();
        assert!(err.salvaged.restriction.is_some());
    }

    #[test]
    fn messages_in_flight_age_expire_and_evict() {
        let mut c = Counters {
            last: DAY0,
            ..Counters::default()
        };
        c.saw_message(message_hash("a"), 1, MAX_IN_FLIGHT);
        c.advance(DAY0 + 100);
        c.saw_message(message_hash("b"), 2, MAX_IN_FLIGHT);
        assert_eq!(c.messages[0].id, message_hash("b"));
        assert_eq!(c.messages[1].age, 100);
        // Seeing "a" again moves it to the front with its new total.
        c.saw_message(message_hash("a"), 5, MAX_IN_FLIGHT);
        assert_eq!(c.in_flight(message_hash("a")), Some(5));
        assert_eq!(c.messages.len(), 2);
        assert_eq!((c.messages[0].age, c.messages[1].age), (0, 0));
        // 600 s unseen still in flight; 601 s over.
        c.advance(DAY0 + 100 + 600);
        assert_eq!(c.messages.len(), 2);
        c.advance(DAY0 + 100 + 601);
        assert!(c.messages.is_empty());
        assert!(c.quiet());
        // Past MAX_IN_FLIGHT the least recently seen goes.
        for i in 0..=MAX_IN_FLIGHT {
            c.advance(DAY0 + 1_000 + i as Timestamp);
            c.saw_message(message_hash(&format!("m{i}")), 1, MAX_IN_FLIGHT);
        }
        assert_eq!(c.messages.len(), MAX_IN_FLIGHT);
        assert_eq!(c.in_flight(message_hash("m0")), None);
        assert_eq!(c.in_flight(message_hash("m1")), Some(1));
        // A clock set back keeps the ages (the messages stay in flight longer, not shorter).
        let ages: Vec<u32> = c.messages.iter().map(|m| m.age).collect();
        c.advance(DAY0);
        assert_eq!(c.messages.iter().map(|m| m.age).collect::<Vec<_>>(), ages);
    }

    #[test]
    fn decoded_messages_are_sanitised() {
        let mut s = State::default();
        s.counters.messages = (0..40u32)
            .map(|i| InFlight {
                id: i.to_le_bytes(),
                recipients: i,
                age: 1_000 - i * 25,
            })
            .collect();
        let got = decode(&encode(&s)).unwrap();
        let m = &got.counters.messages;
        assert_eq!(m.len(), 24, "the expired ones dropped");
        assert!(m.iter().all(|m| m.age <= IN_FLIGHT_SECONDS));
        assert!(m.windows(2).all(|w| w[0].age <= w[1].age));
        assert_eq!(m[0].age, 25);
        // A huge list is cut to the largest any entity keeps.
        s.counters.messages = (0..10_000u32)
            .map(|i| InFlight {
                id: i.to_le_bytes(),
                recipients: 1,
                age: i % 600,
            })
            .collect();
        let got = decode(&encode(&s)).unwrap();
        assert_eq!(got.counters.messages.len(), MAX_IN_FLIGHT_CONNECTOR);
        // 17 of each age: the 64 youngest are ages 0 to 3.
        assert!(got.counters.messages.iter().all(|m| m.age <= 3));
    }
}
