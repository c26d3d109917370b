//! JSON renderings of statistics: a listing row, one window of a fingerprint, and
//! timestamps. Durations are milliseconds (`*_ms`, fractional), times RFC 3339 UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::stats::{QuerySnapshot, WindowStats};

/// Maps the statistics clock (seconds since the proxy started) to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Unix seconds now.
    wall: u64,
    /// Statistics seconds now.
    stats: u64,
}

impl Clock {
    pub fn new(stats_now: u64) -> Clock {
        Clock {
            wall: unix_now(),
            stats: stats_now,
        }
    }

    /// A statistics time as RFC 3339.
    pub fn format(&self, stats_time: u64) -> String {
        let ago = self.stats.saturating_sub(stats_time);
        rfc3339(self.wall.saturating_sub(ago))
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// A mean in µs as milliseconds, to the microsecond.
fn mean_ms(us: f64) -> f64 {
    us.round() / 1000.0
}

/// The 16 lower-case hex digits pg_query prints.
pub fn fingerprint_hex(fingerprint: u64) -> String {
    format!("{fingerprint:016x}")
}

fn classes(list: &[(String, u64)]) -> Value {
    let map: Map<String, Value> = list.iter().map(|(k, n)| (k.clone(), json!(n))).collect();
    Value::Object(map)
}

/// One `/api/queries` row: identity, then the window's numbers.
pub fn query_row(s: &QuerySnapshot, clock: &Clock) -> Value {
    let mut row = json!({
        "fingerprint": fingerprint_hex(s.key.fingerprint),
        "query": s.meta.normalized,
        "command": s.meta.command_label,
        "database": s.key.database,
        "user": s.key.user,
        "tables": s.meta.tables,
        "first_seen": clock.format(s.first_seen),
        "last_seen": clock.format(s.last_seen),
    });
    if let (Value::Object(row), Value::Object(numbers)) = (&mut row, window_stats(&s.stats)) {
        row.extend(numbers);
    }
    row
}

/// One window of one fingerprint.
pub fn window_stats(s: &WindowStats) -> Value {
    json!({
        "calls": s.calls,
        "errors": s.errors,
        "errors_by_class": classes(&s.errors_by_class),
        "rows": s.rows,
        "total_ms": ms(s.total_us),
        "mean_ms": mean_ms(s.mean_us),
        "min_ms": ms(s.min_us),
        "max_ms": ms(s.max_us),
        "p50_ms": ms(s.p50_us),
        "p95_ms": ms(s.p95_us),
        "p99_ms": ms(s.p99_us),
        "p999_ms": ms(s.p999_us),
        // Inside total_ms: time waiting for the pool to hand out a server. A shape
        // with a high share is starved of connections rather than slow in itself.
        "pool_wait_ms": ms(s.pool_wait_us),
        "pool_wait_share": if s.total_us == 0 { 0.0 } else {
            s.pool_wait_us as f64 / s.total_us as f64
        },
    })
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(unix: u64) -> String {
    crate::timefmt::rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(unix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
        let clock = Clock {
            wall: 100,
            stats: 10,
        };
        assert_eq!(clock.format(4), rfc3339(94));
        assert_eq!(fingerprint_hex(255), "00000000000000ff");
    }
}
