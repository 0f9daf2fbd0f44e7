//! UTC calendar arithmetic on Unix seconds: days, midnights, RFC 3339 and RFC 5322 dates.
//!
//! The policy has no clock; every time is a `now` the host passed in. All functions here are
//! total over `i64` (no overflow panics), because a hostile or broken host may pass anything.

use crate::types::Timestamp;

/// Seconds in a UTC day (UTC has no leap seconds in Unix time).
pub const DAY: i64 = 86_400;

/// Seconds in an hour.
pub const HOUR: i64 = 3_600;

/// The UTC day number (days since 1970-01-01) that `t` falls in.
pub fn utc_day(t: Timestamp) -> i64 {
    t.div_euclid(DAY)
}

/// The first second of the UTC day after the one `t` falls in: when a `BlockUserForToday`
/// restriction started at `t` lifts. A restriction started at 23:59:59 lifts one second later;
/// one started at 00:00:00 lifts 24 hours later.
pub fn next_utc_midnight(t: Timestamp) -> Timestamp {
    utc_day(t).saturating_add(1).saturating_mul(DAY)
}

/// Proleptic Gregorian (year, month 1..=12, day 1..=31) for a day number
/// (Howard Hinnant's `civil_from_days`). Defined for every day number `utc_day` can return.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn split(t: Timestamp) -> (i64, u32, u32, i64, i64, i64) {
    let (y, mo, d) = civil_from_days(utc_day(t));
    let secs = t.rem_euclid(DAY);
    (y, mo, d, secs / HOUR, (secs % HOUR) / 60, secs % 60)
}

/// `2026-11-23T10:00:00Z`.
pub fn rfc3339(t: Timestamp) -> String {
    let (y, mo, d, h, mi, s) = split(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `Mon, 23 Nov 2026 10:00:00 +0000` (RFC 5322 section 3.3), for Date and Arrival-Date.
pub fn rfc5322(t: Timestamp) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = split(t);
    // 1970-01-01 (day 0) was a Thursday.
    let wd = DAYS[(utc_day(t) + 4).rem_euclid(7) as usize];
    let mon = MONTHS[(mo as usize - 1) % 12];
    format!("{wd}, {d:02} {mon} {y:04} {h:02}:{mi:02}:{s:02} +0000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight_edges() {
        // 2026-11-23T00:00:00Z
        let midnight = 1_795_392_000;
        assert_eq!(rfc3339(midnight), "2026-11-23T00:00:00Z");
        for (t, want) in [
            (midnight - 1, midnight),
            (midnight, midnight + DAY),
            (midnight + 1, midnight + DAY),
            (midnight + DAY - 1, midnight + DAY),
            (-1, 0),
            (0, DAY),
        ] {
            assert_eq!(next_utc_midnight(t), want, "t={t}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc5322(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc5322(1_795_428_000), "Mon, 23 Nov 2026 10:00:00 +0000");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn total_on_extremes() {
        for t in [i64::MIN, i64::MIN + 1, -DAY, i64::MAX - 1, i64::MAX] {
            let _ = rfc3339(t);
            let _ = rfc5322(t);
            assert!(next_utc_midnight(t) >= t.min(i64::MAX - DAY) || t > i64::MAX - DAY);
        }
    }
}
