//! Dates from Unix seconds, without a date library (policies have no clock and need none).

const DAY: i64 = 86_400;
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// (year, month 1..=12, day 1..=31, seconds into the day) of a Unix time, proleptic
/// Gregorian (Howard Hinnant's days-to-civil algorithm). Total over all of `i64`.
fn civil(secs: i64) -> (i64, u32, u32, i64) {
    let days = secs.div_euclid(DAY);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs.rem_euclid(DAY))
}

/// `2026-11-23T10:00:00Z`.
pub fn rfc3339(secs: i64) -> String {
    let (y, mo, d, s) = civil(secs);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `Mon, 23 Nov 2026 10:00:00 +0000`, for the Date header.
pub fn rfc5322(secs: i64) -> String {
    let (y, mo, d, s) = civil(secs);
    let weekday = WEEKDAYS[secs.div_euclid(DAY).rem_euclid(7) as usize];
    format!(
        "{weekday}, {d} {} {y:04} {:02}:{:02}:{:02} +0000",
        MONTHS[(mo - 1) as usize],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_428_000), "2026-11-23T10:00:00Z");
        assert_eq!(rfc5322(1_795_428_000), "Mon, 23 Nov 2026 10:00:00 +0000");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        // Total: no panic at the extremes.
        rfc5322(i64::MIN);
        rfc5322(i64::MAX);
    }
}
