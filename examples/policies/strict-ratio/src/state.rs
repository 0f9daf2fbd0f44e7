//! Per-entity state and its encoding: one version byte, then postcard. The host stores the
//! bytes without reading them; [`FORMAT`] tells it which encoding they are in, so a policy
//! swap that would misread them is refused. Bump both when the layout changes.

use crate::window::{BUCKETS, Window};
use serde::{Deserialize, Serialize};

/// The state format identifier reported by `engine.state-format`.
pub const FORMAT: &str = "quench-strict-ratio/1";
/// The first byte of every encoded state.
pub const VERSION: u8 = 1;
/// Unblock times kept: above the largest `unblock_limit`, so support-role unblocks past the
/// limit are still counted, small enough to bound the state.
pub const MAX_UNBLOCKS: usize = 64;
/// Longest message id kept as evidence.
pub const MAX_MESSAGE_ID: usize = 128;

/// Why an entity is restricted: the facts at the moment the rule tripped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trip {
    /// When.
    pub at: i64,
    /// External recipients in the hour, counting the refused submission.
    pub external: u32,
    /// Internal recipients in the hour.
    pub internal: u32,
    /// The message that tripped it, if the host gave an id.
    pub message_id: Option<String>,
}

/// Everything the policy remembers about one entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Recipients in the last hour.
    pub window: Window,
    /// The active restriction (it lasts until an admin unblocks).
    pub restriction: Option<Trip>,
    /// Times of admin unblocks, oldest first.
    pub unblocks: Vec<i64>,
}

/// Encode for the host to store.
pub fn encode(state: &State) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.extend(postcard::to_allocvec(state).unwrap_or_default());
    out
}

/// Decode what [`encode`] wrote. Empty bytes are a new entity. Anything else that does not
/// decode, or breaks the encoder's own bounds, is an error saying why.
pub fn decode(bytes: &[u8]) -> Result<State, String> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Ok(State::default());
    };
    if version != VERSION {
        return Err(format!(
            "not a {FORMAT} state (version byte {version}, expected {VERSION})"
        ));
    }
    let state: State =
        postcard::from_bytes(rest).map_err(|e| format!("unreadable {FORMAT} state: {e}"))?;
    let bounded = state.window.buckets.len() <= BUCKETS
        && state.unblocks.len() <= MAX_UNBLOCKS
        && state.restriction.as_ref().is_none_or(|r| {
            r.message_id
                .as_ref()
                .is_none_or(|m| m.len() <= MAX_MESSAGE_ID)
        });
    if !bounded {
        return Err(format!("{FORMAT} state out of bounds"));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let mut s = State::default();
        s.window.add(1_000, 3, 4);
        s.unblocks.push(7);
        assert_eq!(decode(&encode(&s)).unwrap(), s);
        assert_eq!(decode(&[]).unwrap(), State::default());
        assert!(decode(&[9, 1, 2]).is_err());
        assert!(decode(&[VERSION, 0xff, 0xff, 0xff]).is_err());
    }
}
