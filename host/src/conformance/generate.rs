//! Reproducible hostile inputs: submissions, state bytes and clocks from a seeded ChaCha
//! generator. Empty and huge recipient lists, malformed and unicode addresses, control
//! characters, relays next to users of the same address, message-id continuations, a clock that jumps, stalls and runs backwards,
//! and state that is empty, the policy's own, truncated, bit-flipped or random.

use crate::{Entity, EntityKind, Submission, Timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// 2026-11-23T10:00:00Z: where the generated clock starts.
pub(crate) const START: Timestamp = 1_795_428_000;

/// Well-formed entities, reused so states chain across calls.
const USERS: &[&str] = &[
    "alice@contoso.com",
    "bob@fabrikam.com",
    "carol@sub.contoso.com",
];

/// Addresses no honest generator would write.
const ODD_ADDRESSES: &[&str] = &[
    "",
    "@",
    "no-at-sign",
    "<>",
    "a@b@c",
    "  spaced out @ example.com ",
    "<Bob@Fabrikam.COM>",
    "line\r\nbreak@example.com",
    "nul\0byte@example.com",
    "用户@例子.广告",
    "josé@exämple.de",
    "😀@🦀.rs",
    "\u{202e}moc.live@evil",
    "quoted\"local\"@example.com",
    "trailing.dot@example.com.",
    "@@@@@@@@",
    "a@[192.0.2.1]",
    "-- =_boundary --@example.com",
];

/// Times that break naive date arithmetic.
const ODD_TIMES: &[Timestamp] = &[
    0,
    -1,
    i64::MIN,
    i64::MIN + 1,
    i64::MAX,
    i64::MAX - 1,
    253_402_300_799, // 9999-12-31T23:59:59Z
    -62_135_596_800, // 0001-01-01T00:00:00Z
    4_102_444_800,   // 2100-01-01
    1_795_478_399,   // one second before a UTC midnight
];

/// Where a case's state came from (for failure reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateKind {
    /// What the policy returned last time for this entity.
    Previous,
    /// A new entity.
    Empty,
    /// The previous state with bytes flipped, cut or appended.
    Mutated,
    /// Random bytes.
    Random,
    /// Random bytes at the host's state size cap.
    Huge,
}

/// One generated call.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    /// The state passed in.
    pub(crate) state: Vec<u8>,
    /// Where it came from.
    pub(crate) state_kind: StateKind,
    /// The submission.
    pub(crate) submission: Submission,
    /// The clock.
    pub(crate) now: Timestamp,
}

impl Case {
    /// A one-line description for failure reports.
    pub(crate) fn summary(&self) -> String {
        let s = &self.submission;
        let longest = s.recipients.iter().map(String::len).max().unwrap_or(0);
        format!(
            "entity {:?} {}, {} recipient(s) (longest {} bytes, first {}), message id {}, {} state of {} bytes, now {}",
            s.entity.kind,
            super::clip(&format!("{:?}", s.entity.id), 40),
            s.recipients.len(),
            longest,
            super::clip(
                &format!(
                    "{:?}",
                    s.recipients.first().map(String::as_str).unwrap_or("")
                ),
                40
            ),
            super::clip(&format!("{:?}", s.message_id), 40),
            format!("{:?}", self.state_kind).to_lowercase(),
            self.state.len(),
            self.now
        )
    }
}

/// The generator: a seeded stream of cases, chaining each entity's state.
pub(crate) struct Generator {
    rng: ChaCha8Rng,
    clock: Timestamp,
    counter: u64,
    last_message_id: Option<String>,
    /// The last state the policy returned, per entity key.
    states: HashMap<String, Vec<u8>>,
    max_state_bytes: usize,
}

impl Generator {
    /// A generator for `seed`; huge states are made `max_state_bytes` long.
    pub(crate) fn new(seed: u64, max_state_bytes: usize) -> Self {
        Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            clock: START,
            counter: 0,
            last_message_id: None,
            states: HashMap::new(),
            max_state_bytes,
        }
    }

    /// Remember what the policy returned for an entity, for later cases to pass back.
    pub(crate) fn returned(&mut self, entity: &Entity, state: Vec<u8>) {
        self.states.insert(entity.key(), state);
    }

    /// The next case.
    pub(crate) fn next_case(&mut self) -> Case {
        self.counter += 1;
        let entity = self.entity();
        let sender = match self.rng.random_range(0..10) {
            0..7 => entity.id.clone(),
            7..9 => USERS[self.rng.random_range(0..USERS.len())].to_string(),
            _ => self.address(),
        };
        let recipients = self.recipients();
        let message_id = self.message_id();
        let now = self.now();
        let (state, state_kind) = self.state(&entity);
        Case {
            state,
            state_kind,
            submission: Submission {
                entity,
                sender,
                recipients,
                message_id,
            },
            now,
        }
    }

    fn entity(&mut self) -> Entity {
        match self.rng.random_range(0..20) {
            0..14 => Entity::user(USERS[self.rng.random_range(0..USERS.len())]),
            // A relay with a user's address: its own entity (and, for a 0.1.0 policy, shown
            // to it as that user, yet its results must name the relay).
            14 => Entity::relay(USERS[self.rng.random_range(0..USERS.len())]),
            15..17 => Entity::connector("relay-1"),
            17 => Entity {
                kind: EntityKind::User,
                id: self.address(),
            },
            _ => Entity {
                kind: EntityKind::Connector,
                id: self.text(0..300),
            },
        }
    }

    fn recipients(&mut self) -> Vec<String> {
        let count = match self.rng.random_range(0..100) {
            0..10 => 0,
            10..60 => self.rng.random_range(1..=5),
            60..85 => self.rng.random_range(6..=100),
            85..97 => self.rng.random_range(101..=600),
            _ => self.rng.random_range(1_000..=5_000),
        };
        (0..count).map(|_| self.address()).collect()
    }

    fn address(&mut self) -> String {
        let n = self.rng.random_range(0..100_000u32);
        match self.rng.random_range(0..20) {
            0..10 => format!("user{n}@ext{}.example", n % 17),
            10..13 => format!("colleague{n}@contoso.com"),
            13..16 => ODD_ADDRESSES[self.rng.random_range(0..ODD_ADDRESSES.len())].to_string(),
            16..18 => {
                let local = self.text(0..40);
                let domain = self.text(0..40);
                format!("{local}@{domain}")
            }
            18 => format!(
                "{}@example.com",
                "a".repeat(self.rng.random_range(300..10_000))
            ),
            _ => self.text(0..200),
        }
    }

    /// Random text: ASCII, controls, multi-byte and astral characters.
    fn text(&mut self, len: std::ops::Range<usize>) -> String {
        let len = self.rng.random_range(len);
        (0..len)
            .map(|_| match self.rng.random_range(0..10) {
                0..6 => char::from(self.rng.random_range(0x20u8..0x7f)),
                6 => char::from(self.rng.random_range(0u8..0x20)),
                7 => char::from_u32(self.rng.random_range(0xa0..0xd800)).unwrap_or('?'),
                8 => char::from_u32(self.rng.random_range(0x1_0000..0x11_0000)).unwrap_or('?'),
                _ => ['@', '<', '>', '"', '\\', '.', ';', '\r', '\n'][self.rng.random_range(0..9)],
            })
            .collect()
    }

    fn message_id(&mut self) -> Option<String> {
        let id = match self.rng.random_range(0..10) {
            0..4 => None,
            4..8 => Some(format!("kit-{}", self.counter)),
            8 => self.last_message_id.clone(),
            _ => Some(self.text(0..2_000)),
        };
        self.last_message_id = id.clone();
        id
    }

    fn now(&mut self) -> Timestamp {
        match self.rng.random_range(0..100) {
            0..70 => self.clock += self.rng.random_range(0..300),
            70..80 => self.clock -= self.rng.random_range(1..86_400),
            80..90 => self.clock += self.rng.random_range(3_600..3 * 86_400),
            90..95 => {}
            _ => return ODD_TIMES[self.rng.random_range(0..ODD_TIMES.len())],
        }
        self.clock
    }

    fn state(&mut self, entity: &Entity) -> (Vec<u8>, StateKind) {
        let previous = self.states.get(&entity.key()).cloned().unwrap_or_default();
        match self.rng.random_range(0..100) {
            0..55 => (previous, StateKind::Previous),
            55..70 => (Vec::new(), StateKind::Empty),
            70..82 => (self.mutate(previous), StateKind::Mutated),
            82..95 => {
                let len = self.rng.random_range(1..512);
                (self.bytes(len), StateKind::Random)
            }
            _ => (self.bytes(self.max_state_bytes), StateKind::Huge),
        }
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.rng.random()).collect()
    }

    fn mutate(&mut self, mut state: Vec<u8>) -> Vec<u8> {
        if state.is_empty() {
            return self.bytes(8);
        }
        match self.rng.random_range(0..4) {
            0 => {
                let at = self.rng.random_range(0..state.len());
                state[at] ^= 1 << self.rng.random_range(0..8);
            }
            1 => {
                let len = self.rng.random_range(0..state.len());
                state.truncate(len);
            }
            2 => {
                let extra = self.rng.random_range(1..64);
                let tail = self.bytes(extra);
                state.extend(tail);
            }
            _ => {
                // Keep the first byte (a version tag, often) and scramble the rest.
                for b in state.iter_mut().skip(1) {
                    *b = self.rng.random();
                }
            }
        }
        state
    }
}
