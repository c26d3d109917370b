//! The statistics clock: seconds since the start of the wall-clock minute in which the
//! proxy started, so statistics minutes are wall-clock minutes (`hh:mm:00`–`hh:mm:59`)
//! whatever second the proxy started at, and every sidecar of a fleet labels the same
//! interval with the same minute.
//!
//! Time runs on a monotonic `Instant` (a wall-clock step does not reorder samples);
//! only the origin comes from the wall clock, read once at start.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct StatsClock {
    /// The instant the clock was made.
    epoch: Instant,
    /// Milliseconds from the start of the wall-clock minute to `epoch`.
    offset_ms: u64,
    /// Unix milliseconds of statistics time zero (a whole minute).
    zero_unix_ms: i64,
}

impl StatsClock {
    /// A clock starting now.
    pub fn new() -> StatsClock {
        StatsClock::starting_at(Instant::now(), SystemTime::now())
    }

    /// A clock whose `epoch` happened at wall-clock time `wall` (injected by tests).
    pub fn starting_at(epoch: Instant, wall: SystemTime) -> StatsClock {
        let unix_ms = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let offset_ms = unix_ms % 60_000;
        StatsClock {
            epoch,
            offset_ms,
            zero_unix_ms: (unix_ms - offset_ms) as i64,
        }
    }

    /// Statistics seconds now.
    pub fn now(&self) -> u64 {
        self.at(Instant::now())
    }

    /// Statistics seconds at `t` (an instant before the clock's epoch counts as its
    /// epoch).
    #[inline]
    pub fn at(&self, t: Instant) -> u64 {
        let ms = t.saturating_duration_since(self.epoch).as_millis() as u64;
        (ms + self.offset_ms) / 1000
    }

    /// Unix milliseconds at which statistics minute `minute` begins (a whole minute).
    pub fn minute_start_unix_ms(&self, minute: u64) -> i64 {
        self.zero_unix_ms + (minute * 60_000) as i64
    }

    /// The wall-clock time of statistics second `secs`.
    pub fn wall(&self, secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.zero_unix_ms.max(0) as u64 + secs * 1000)
    }
}

impl Default for StatsClock {
    fn default() -> Self {
        StatsClock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-05 21:06:50 UTC.
    const AT_50: u64 = 1_796_504_810;

    #[test]
    fn a_proxy_started_at_second_50_counts_wall_clock_minutes() {
        assert_eq!(AT_50 % 60, 50);
        let epoch = Instant::now();
        let clock = StatsClock::starting_at(epoch, UNIX_EPOCH + Duration::from_secs(AT_50));
        assert_eq!(clock.at(epoch), 50);
        // 21:06:59.9 is still minute 0; 21:07:00 starts minute 1.
        assert_eq!(clock.at(epoch + Duration::from_millis(9_900)) / 60, 0);
        assert_eq!(clock.at(epoch + Duration::from_secs(10)) / 60, 1);
        assert_eq!(clock.at(epoch + Duration::from_secs(69)) / 60, 1);
        assert_eq!(clock.at(epoch + Duration::from_secs(70)) / 60, 2);
        let minute_1 = (AT_50 + 10) * 1000;
        assert_eq!(clock.minute_start_unix_ms(1), minute_1 as i64);
        assert_eq!(clock.wall(60), UNIX_EPOCH + Duration::from_millis(minute_1));
    }

    #[test]
    fn sub_second_offsets_line_up() {
        let epoch = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_millis(AT_50 * 1000 + 9_700);
        let clock = StatsClock::starting_at(epoch, wall);
        // 300 ms later the wall clock reads hh:mm+1:00.000.
        assert_eq!(clock.at(epoch + Duration::from_millis(299)), 59);
        assert_eq!(clock.at(epoch + Duration::from_millis(300)), 60);
    }
}
