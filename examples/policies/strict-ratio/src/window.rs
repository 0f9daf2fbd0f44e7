//! The sliding hour: external and internal recipient counts in twelve five-minute buckets.
//! Coarse on purpose: the state stays a few dozen bytes, and a five-minute granularity is
//! well below what an hourly limit cares about.

use serde::{Deserialize, Serialize};

/// Width of one bucket in seconds.
pub const BUCKET_SECONDS: i64 = 300;
/// Buckets in the window: 12 × 5 min = one hour.
pub const BUCKETS: usize = 12;
/// The window's length in seconds.
pub const WINDOW_SECONDS: u32 = (BUCKET_SECONDS as u32) * BUCKETS as u32;

/// One bucket: its index (`now / BUCKET_SECONDS`) and its counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Which five minutes, counted from the Unix epoch.
    pub index: i64,
    /// External recipients counted in it.
    pub external: u32,
    /// Internal recipients counted in it.
    pub internal: u32,
}

/// The window: at most [`BUCKETS`] buckets, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The buckets still inside the hour.
    pub buckets: Vec<Bucket>,
}

impl Window {
    /// Move the window to `now`: drop buckets older than an hour. Counts the clock puts "in
    /// the future" (the host's clock stepped back) are folded into the current bucket, so a
    /// clock step neither loses counts nor pins them in the future.
    pub fn advance(&mut self, now: i64) {
        let current = now.div_euclid(BUCKET_SECONDS);
        let oldest = current.saturating_sub(BUCKETS as i64 - 1);
        let mut ahead = Bucket {
            index: current,
            external: 0,
            internal: 0,
        };
        self.buckets.retain(|b| {
            if b.index > current {
                ahead.external = ahead.external.saturating_add(b.external);
                ahead.internal = ahead.internal.saturating_add(b.internal);
                false
            } else {
                b.index >= oldest
            }
        });
        if ahead.external > 0 || ahead.internal > 0 {
            self.add(now, ahead.external, ahead.internal);
        }
    }

    /// Count recipients at `now` (after [`Window::advance`]).
    pub fn add(&mut self, now: i64, external: u32, internal: u32) {
        let index = now.div_euclid(BUCKET_SECONDS);
        match self.buckets.iter_mut().find(|b| b.index == index) {
            Some(b) => {
                b.external = b.external.saturating_add(external);
                b.internal = b.internal.saturating_add(internal);
            }
            None => {
                self.buckets.push(Bucket {
                    index,
                    external,
                    internal,
                });
                self.buckets.sort_by_key(|b| b.index);
                if self.buckets.len() > BUCKETS {
                    self.buckets.remove(0);
                }
            }
        }
    }

    /// (external, internal) over the window.
    pub fn totals(&self) -> (u32, u32) {
        self.buckets.iter().fold((0u32, 0u32), |(e, i), b| {
            (e.saturating_add(b.external), i.saturating_add(b.internal))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_age_out_after_an_hour_and_survive_a_clock_step_back() {
        let mut w = Window::default();
        w.advance(10_000);
        w.add(10_000, 5, 1);
        w.advance(10_000 + 3_000);
        w.add(10_000 + 3_000, 2, 0);
        assert_eq!(w.totals(), (7, 1));
        w.advance(10_000 + 3_700);
        assert_eq!(w.totals(), (2, 0), "the first bucket is over an hour old");
        w.advance(5_000);
        assert_eq!(w.totals(), (2, 0), "a step back keeps the counts");
        assert_eq!(w.buckets.len(), 1);
    }
}
