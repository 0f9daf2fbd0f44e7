//! The daily notification limit: at most N notifications per alert kind per UTC day, the day
//! taken from the alert's own time (so a replay or a late alert counts against the day it
//! happened, and tests need no clock). Counts live in memory: a restart starts them afresh.

use crate::bindings::Timestamp;
use std::collections::BTreeMap;

const DAY: i64 = 86_400;

/// What the limiter says about one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Notify; this is the `nth` notification of its kind that day (1-based).
    Notify {
        /// The count including this one.
        nth: u32,
    },
    /// Over the limit: do not notify. `first` is set for the first alert suppressed in its
    /// kind's day, so the log can say so once loudly.
    Suppress {
        /// First suppression of this kind this day.
        first: bool,
    },
}

/// Counts notifications per (kind, UTC day).
#[derive(Debug, Default)]
pub struct DailyLimiter {
    /// (kind, day number since the epoch) -> (notified, suppressed).
    counts: BTreeMap<(String, i64), (u32, u32)>,
    /// The latest day seen; days before `latest - 1` are forgotten.
    latest: i64,
}

impl DailyLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts an alert of `kind` at `at` against `limit` (`None`: no limit, always notify).
    pub fn admit(&mut self, kind: &str, at: Timestamp, limit: Option<u32>) -> Admission {
        let day = at.div_euclid(DAY);
        if day > self.latest {
            self.latest = day;
            // Keep yesterday too: alerts from just before midnight may still be arriving.
            let horizon = day - 1;
            self.counts.retain(|(_, d), _| *d >= horizon);
        }
        let entry = self.counts.entry((kind.to_string(), day)).or_default();
        match limit {
            Some(limit) if entry.0 >= limit => {
                entry.1 += 1;
                Admission::Suppress {
                    first: entry.1 == 1,
                }
            }
            _ => {
                entry.0 = entry.0.saturating_add(1);
                Admission::Notify { nth: entry.0 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONDAY: i64 = 1_795_046_400; // a UTC midnight

    #[test]
    fn limit_holds_per_kind_per_utc_day() {
        let mut limiter = DailyLimiter::new();
        assert_eq!(
            limiter.admit("a", MONDAY, Some(2)),
            Admission::Notify { nth: 1 }
        );
        assert_eq!(
            limiter.admit("a", MONDAY + DAY - 1, Some(2)),
            Admission::Notify { nth: 2 }
        );
        assert_eq!(
            limiter.admit("a", MONDAY + 5, Some(2)),
            Admission::Suppress { first: true }
        );
        assert_eq!(
            limiter.admit("a", MONDAY + 6, Some(2)),
            Admission::Suppress { first: false }
        );
        // Another kind has its own count; the next UTC day starts afresh.
        assert_eq!(
            limiter.admit("b", MONDAY, Some(2)),
            Admission::Notify { nth: 1 }
        );
        assert_eq!(
            limiter.admit("a", MONDAY + DAY, Some(2)),
            Admission::Notify { nth: 1 }
        );
        // A late alert from the day before still counts against that day.
        assert_eq!(
            limiter.admit("a", MONDAY + 7, Some(2)),
            Admission::Suppress { first: false }
        );
        assert_eq!(
            limiter.admit("a", MONDAY, None),
            Admission::Notify { nth: 3 }
        );
    }

    #[test]
    fn old_days_are_forgotten() {
        let mut limiter = DailyLimiter::new();
        for day in 0..10 {
            limiter.admit("a", MONDAY + day * DAY, Some(1));
        }
        assert_eq!(limiter.counts.len(), 2);
    }
}
