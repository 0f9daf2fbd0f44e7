//! Bucketed sliding windows.
//!
//! A window of length `W = N * B` seconds is kept as the counts of its `N + 1` most recent
//! buckets of `B` seconds, newest first (`counts[0]` is the bucket holding the entity's latest
//! time). Summing all `N + 1` buckets covers every event of the last `W` seconds, plus at most
//! one bucket of older events: the count is never lower than the true sliding count (so a
//! limit is never exceeded in any window of length `W`) and is conservative by at most one
//! bucket. Trailing (oldest) zero buckets are not stored, so a quiet entity costs one byte per
//! window.

/// The shape of one kind of window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Bucket length in seconds.
    pub bucket_seconds: i64,
    /// Buckets per window length (`N`); `N + 1` are kept.
    pub buckets: usize,
}

/// Hourly limits: 5-minute buckets (13 kept). Conservative by at most 5 minutes, at most
/// 13 counters per window.
pub const HOUR: WindowSpec = WindowSpec {
    bucket_seconds: 300,
    buckets: 12,
};

/// The service's 24-hour recipient rate: 1-hour buckets (25 kept). Conservative by at most
/// an hour, which matters little for a 10,000-recipient daily cap.
pub const DAY: WindowSpec = WindowSpec {
    bucket_seconds: 3_600,
    buckets: 24,
};

/// The service's messages-per-minute rate: 10-second buckets (7 kept). Conservative by at
/// most 10 seconds of deferral.
pub const MINUTE: WindowSpec = WindowSpec {
    bucket_seconds: 10,
    buckets: 6,
};

impl WindowSpec {
    /// The window length in seconds.
    pub const fn window_seconds(&self) -> i64 {
        self.bucket_seconds * self.buckets as i64
    }

    /// The bucket number of time `t`.
    pub fn bucket_of(&self, t: i64) -> i64 {
        t.div_euclid(self.bucket_seconds)
    }
}

/// Move a window from time `from` to the later time `to`: older buckets shift out. A `to`
/// before `from` (clock going backwards) leaves the counts as they are, which treats them as
/// if they happened at `to`: later, never earlier, so no limit is loosened.
pub fn advance(counts: &mut Vec<u32>, spec: WindowSpec, from: i64, to: i64) {
    let shift = spec.bucket_of(to).saturating_sub(spec.bucket_of(from));
    if shift <= 0 {
        return;
    }
    let keep = spec.buckets + 1;
    if shift >= keep as i64 {
        counts.clear();
        return;
    }
    let shift = shift as usize;
    counts.truncate(keep - shift);
    counts.splice(0..0, std::iter::repeat_n(0, shift));
    trim(counts);
}

/// Drop trailing zero buckets (they carry no information).
pub fn trim(counts: &mut Vec<u32>) {
    while counts.last() == Some(&0) {
        counts.pop();
    }
}

/// The count in the window (saturating).
pub fn total(counts: &[u32]) -> u32 {
    counts.iter().fold(0u32, |a, &c| a.saturating_add(c))
}

/// Add `n` events at the window's latest time.
pub fn add(counts: &mut Vec<u32>, n: u32) {
    if n == 0 {
        return;
    }
    match counts.first_mut() {
        Some(c) => *c = c.saturating_add(n),
        None => counts.push(n),
    }
}

/// The earliest time at or after `now` at which the window's count is at most `target`, for a
/// window whose latest time is `now`. Bucket `counts[i]` leaves the sum when the current
/// bucket number passes its own by more than `N`.
pub fn drops_to(counts: &[u32], spec: WindowSpec, now: i64, target: u32) -> i64 {
    let mut remaining = total(counts);
    if remaining <= target {
        return now;
    }
    let current = spec.bucket_of(now);
    for (i, &c) in counts.iter().enumerate().rev() {
        remaining = remaining.saturating_sub(c);
        if remaining <= target {
            let bucket = current.saturating_sub(i as i64);
            let leaves = bucket.saturating_add(spec.buckets as i64 + 1);
            return leaves.saturating_mul(spec.bucket_seconds);
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events at the given times, counted at `at`, with the window's latest time moving along.
    fn count_at(spec: WindowSpec, events: &[(i64, u32)], at: i64) -> u32 {
        let mut counts = Vec::new();
        let mut last = events.first().map_or(at, |e| e.0);
        for &(t, n) in events {
            advance(&mut counts, spec, last, t);
            last = last.max(t);
            add(&mut counts, n);
        }
        advance(&mut counts, spec, last, at);
        total(&counts)
    }

    #[test]
    fn never_undercounts_and_overcounts_by_at_most_one_bucket() {
        let spec = HOUR;
        let w = spec.window_seconds();
        for start in [0i64, 1, 299, 300, 301, 1_795_392_000, -7] {
            for age in [
                0i64,
                1,
                w - 301,
                w - 300,
                w - 1,
                w,
                w + 1,
                w + 299,
                w + 300,
                w + 600,
            ] {
                let c = count_at(spec, &[(start, 1)], start + age);
                if age < w {
                    assert_eq!(c, 1, "start {start} age {age}: must still count");
                }
                if age >= w + spec.bucket_seconds {
                    assert_eq!(c, 0, "start {start} age {age}: must have left");
                }
            }
        }
    }

    #[test]
    fn drops_to_matches_counting() {
        let spec = DAY;
        let events = [(0i64, 5u32), (3_700, 3), (7_300, 2)];
        let now = 8_000;
        let mut counts = Vec::new();
        let mut last = 0;
        for &(t, n) in &events {
            advance(&mut counts, spec, last, t);
            last = t;
            add(&mut counts, n);
        }
        advance(&mut counts, spec, last, now);
        for target in 0..10 {
            let t = drops_to(&counts, spec, now, target);
            assert!(
                count_at(spec, &events, t) <= target,
                "target {target} at {t}"
            );
            if t > now {
                assert!(
                    count_at(spec, &events, t - 1) > target,
                    "target {target}: not earliest"
                );
            }
        }
    }

    #[test]
    fn backwards_keeps_counts() {
        let mut counts = vec![4, 0, 2];
        advance(&mut counts, MINUTE, 1_000, 10);
        assert_eq!(counts, vec![4, 0, 2]);
        advance(&mut counts, MINUTE, i64::MIN, i64::MAX);
        assert!(counts.is_empty());
    }
}
