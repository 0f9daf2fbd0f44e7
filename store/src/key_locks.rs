//! One update of a key at a time in this process: a fixed set of lock slots, a key's slot
//! chosen by its hash (bounded memory: keys that share a slot just take turns).
//!
//! Waiting is bounded by a deadline (a `std::sync::Mutex` cannot time out, so each slot is a
//! flag under a mutex with a condition variable), and a waiter learns when the holder found
//! the backend unavailable, so an outage fails a queue of waiters at once instead of one
//! timeout after another.

use std::hash::BuildHasher;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Lock slots. 256: far more than the threads a host decides on, so two hot keys rarely share
/// a slot, and a fixed 256 × (mutex + condvar) ≈ 20 KiB whatever the number of keys.
const SLOTS: usize = 256;

#[derive(Debug, Default)]
struct State {
    held: bool,
    /// How many holders of this slot ended with the backend unavailable.
    outages: u64,
}

#[derive(Debug, Default)]
struct Slot {
    state: Mutex<State>,
    freed: Condvar,
}

/// Why a wait for a key's lock ended without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The deadline passed while other updates of the key (or its slot) ran.
    TimedOut,
    /// An update that held the lock meanwhile found the backend unavailable.
    Outage,
}

/// The per-key locks of one store.
#[derive(Debug)]
pub(crate) struct KeyLocks {
    hasher: std::hash::RandomState,
    slots: Box<[Slot]>,
}

/// A held key lock; released when dropped.
#[derive(Debug)]
pub(crate) struct KeyGuard<'a> {
    slot: &'a Slot,
    outage: bool,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state is two plain fields, consistent whatever panicked while it was locked.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KeyLocks {
    pub(crate) fn new() -> Self {
        Self {
            hasher: std::hash::RandomState::new(),
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
        }
    }

    /// Waits until `key`'s slot is free (or `deadline`) and takes it.
    pub(crate) fn lock(&self, key: &str, deadline: Instant) -> Result<KeyGuard<'_>, Refused> {
        let slot = &self.slots[(self.hasher.hash_one(key) % SLOTS as u64) as usize];
        let mut state = lock(&slot.state);
        let outages = state.outages;
        while state.held {
            let now = Instant::now();
            if now >= deadline {
                return Err(Refused::TimedOut);
            }
            state = slot
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if state.outages != outages {
                return Err(Refused::Outage);
            }
        }
        state.held = true;
        Ok(KeyGuard {
            slot,
            outage: false,
        })
    }
}

impl KeyGuard<'_> {
    /// Tells the waiters, when this guard is released, that the backend was unavailable.
    pub(crate) fn outage(&mut self) {
        self.outage = true;
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.slot.state);
        state.held = false;
        if self.outage {
            state.outages += 1;
            drop(state);
            self.slot.freed.notify_all();
        } else {
            drop(state);
            self.slot.freed.notify_one();
        }
    }
}
