//! When a run of slow executions becomes an alert: `alert_consecutive` in a row fire
//! one, then the fingerprint stays quiet for `alert_cooldown` (suppressed ones counted).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What to do with one slow execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough slow executions in a row yet.
    Quiet,
    /// Fire an alert.
    Fire,
    /// An alert would fire, but one fired within the cooldown.
    Suppressed,
}

/// Per (database, fingerprint) cooldown state. The streak itself is counted on the
/// statistics entry by the client path, which also sees the fast executions that end it.
pub struct AlertGate {
    consecutive: u32,
    cooldown: Duration,
    last_fired: HashMap<(String, u64), Instant>,
}

/// Entries kept before expired cooldowns are swept (a sweep is O(n), so not per call).
const SWEEP_AT: usize = 10_000;

impl AlertGate {
    pub fn new(consecutive: u32, cooldown: Duration) -> AlertGate {
        AlertGate {
            consecutive: consecutive.max(1),
            cooldown,
            last_fired: HashMap::new(),
        }
    }

    /// Applies new settings; cooldowns already running keep their start.
    pub fn configure(&mut self, consecutive: u32, cooldown: Duration) {
        self.consecutive = consecutive.max(1);
        self.cooldown = cooldown;
    }

    /// Judges a slow execution that is the `streak`-th slow one in a row.
    pub fn judge(
        &mut self,
        database: &str,
        fingerprint: u64,
        streak: u32,
        now: Instant,
    ) -> Verdict {
        if streak < self.consecutive {
            return Verdict::Quiet;
        }
        let key = (database.to_string(), fingerprint);
        if let Some(fired) = self.last_fired.get(&key) {
            if now.saturating_duration_since(*fired) < self.cooldown {
                return Verdict::Suppressed;
            }
        }
        if self.last_fired.len() >= SWEEP_AT {
            let cooldown = self.cooldown;
            self.last_fired
                .retain(|_, fired| now.saturating_duration_since(*fired) < cooldown);
        }
        self.last_fired.insert(key, now);
        Verdict::Fire
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_the_streak_then_suppresses_within_cooldown() {
        let mut gate = AlertGate::new(3, Duration::from_secs(600));
        let t0 = Instant::now();
        assert_eq!(gate.judge("db", 1, 1, t0), Verdict::Quiet);
        assert_eq!(gate.judge("db", 1, 2, t0), Verdict::Quiet);
        assert_eq!(gate.judge("db", 1, 3, t0), Verdict::Fire);
        assert_eq!(gate.judge("db", 1, 4, t0), Verdict::Suppressed);
        // Another fingerprint and another database have their own cooldowns.
        assert_eq!(gate.judge("db", 2, 3, t0), Verdict::Fire);
        assert_eq!(gate.judge("other", 1, 3, t0), Verdict::Fire);
        let later = t0 + Duration::from_secs(601);
        assert_eq!(gate.judge("db", 1, 5, later), Verdict::Fire);
    }

    #[test]
    fn a_broken_streak_starts_over() {
        let mut gate = AlertGate::new(2, Duration::ZERO);
        let t0 = Instant::now();
        assert_eq!(gate.judge("db", 1, 1, t0), Verdict::Quiet);
        assert_eq!(gate.judge("db", 1, 2, t0), Verdict::Fire);
        // With no cooldown every execution past the streak fires.
        assert_eq!(gate.judge("db", 1, 3, t0), Verdict::Fire);
    }
}
