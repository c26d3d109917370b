//! Timestamps shown to operators (admin API, console, webhooks) and written to the
//! store, formatted in one place with `humantime`: RFC 3339 UTC to the millisecond or
//! the second, and PgBouncer's `YYYY-MM-DD HH:MM:SS UTC`.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use humantime::Rfc3339Timestamp;

/// The Gregorian calendar repeats every 400 years (146,097 days): a time before 1970 is
/// formatted that many years later and its year put back, since `humantime` formats
/// only times after the epoch.
const CYCLE: Duration = Duration::from_secs(146_097 * 86_400);
/// The last second `humantime` formats (9999-12-31T23:59:59Z); later times show as it.
const LAST: Duration = Duration::from_secs(253_402_300_799);

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_ms(t: SystemTime) -> String {
    format(t, humantime::format_rfc3339_millis)
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(t: SystemTime) -> String {
    format(t, humantime::format_rfc3339_seconds)
}

/// `YYYY-MM-DD HH:MM:SS UTC`, PgBouncer's timestamp format.
pub fn pgbouncer(t: SystemTime) -> String {
    let mut s = rfc3339(t);
    s.replace_range(10..11, " ");
    s.truncate(s.len() - 1);
    s.push_str(" UTC");
    s
}

/// The wall-clock time of Unix milliseconds `ms` (negative: before 1970).
pub fn from_unix_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

fn format(t: SystemTime, how: fn(SystemTime) -> Rfc3339Timestamp) -> String {
    let mut out = String::with_capacity(24);
    match t.duration_since(UNIX_EPOCH) {
        Ok(since) => {
            let _ = write!(out, "{}", how(UNIX_EPOCH + since.min(LAST)));
        }
        Err(before) => {
            let cycles = before.duration().as_secs() / CYCLE.as_secs() + 1;
            let shifted = t + CYCLE * cycles as u32;
            let _ = write!(out, "{}", how(shifted));
            let year: i64 = out[..4].parse().unwrap_or(0) - 400 * cycles as i64;
            out.replace_range(..4, &format!("{year:04}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_milliseconds_seconds_and_pgbouncer_style() {
        let t = from_unix_ms(1_700_000_000_123);
        assert_eq!(rfc3339_ms(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(pgbouncer(t), "2023-11-14 22:13:20 UTC");
        assert_eq!(rfc3339_ms(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn times_before_1970_and_after_9999_still_format() {
        assert_eq!(rfc3339_ms(from_unix_ms(-1)), "1969-12-31T23:59:59.999Z");
        // 1900 was not a leap year; the shifted year (2300) is not either.
        assert_eq!(
            rfc3339(from_unix_ms(-2_203_891_200_000)),
            "1900-03-01T00:00:00Z"
        );
        let far = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59Z");
    }
}
