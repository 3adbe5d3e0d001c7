//! Formatting capture timestamps as UTC date and time (RFC 3339), without a clock.

use std::time::Duration;

const SECS_PER_DAY: u64 = 86_400;

/// Formats a time since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn rfc3339(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let days = secs / SECS_PER_DAY;
    let rem = secs % SECS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_nanos()
    )
}

/// Seconds between two capture times, negative when `t` is before `start`.
pub fn relative_seconds(start: Duration, t: Duration) -> f64 {
    if t >= start {
        (t - start).as_secs_f64()
    } else {
        -(start - t).as_secs_f64()
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01, by shifting the year to
/// start on March 1 so that the leap day ends it (400-year eras of 146 097 days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(Duration::new(951_782_400, 5)),
            "2000-02-29T00:00:00.000000005Z",
            "leap day of a century leap year"
        );
        assert_eq!(
            rfc3339(Duration::new(1_764_786_659, 0)),
            "2025-12-03T18:30:59.000000000Z"
        );
    }

    #[test]
    fn relative_time_can_be_negative() {
        assert_eq!(
            relative_seconds(Duration::new(10, 0), Duration::new(11, 500_000_000)),
            1.5
        );
        assert_eq!(
            relative_seconds(Duration::new(10, 0), Duration::new(9, 0)),
            -1.0
        );
    }
}
