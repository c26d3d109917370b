//! Reads for charts: every statement of one completed minute merged into one histogram
//! (a point of the web console's overview), and one entry's latency distribution.

use std::sync::Arc;

use super::registry::{lock, AggGroup, Registry};
use super::snapshot::WindowStats;
use super::window::Acc;
use super::{StatKey, Window};

impl Registry {
    /// Every statement recorded in the completed minute `minute` (minutes since time
    /// zero), evicted entries included (it reads the aggregates), with the percentiles
    /// of the merged histogram. All zero once the minute tier no longer keeps it (the
    /// last 5 minutes are kept).
    pub fn minute_total(&self, minute: u64, now: u64) -> WindowStats {
        let groups: Vec<Arc<AggGroup>> = (self.aggregates.iter())
            .map(|g| g.value().clone())
            .collect();
        let mut acc = Acc::new();
        for group in &groups {
            for shard in group.shards.iter() {
                lock(&shard.0).read_minute(minute, now, &mut acc);
            }
        }
        WindowStats::from_acc(&acc)
    }

    /// One entry's samples in `window` at or below each of `bounds_us` (ascending),
    /// with the window's total last; `None` when the entry is not tracked.
    pub fn cumulative(
        &self,
        key: &StatKey,
        window: Window,
        now: u64,
        bounds_us: &[u64],
    ) -> Option<Vec<u64>> {
        let entry = self.entries.get(key).map(|e| e.value().clone())?;
        let mut acc = Acc::new();
        lock(&entry.inner).read(window, now, &mut acc);
        let mut counts = acc.hist.cumulative(bounds_us);
        counts.push(acc.hist.count());
        Some(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CommandKind, Outcome, QueryMeta};
    use super::*;

    fn meta() -> QueryMeta {
        QueryMeta {
            normalized: "SELECT $1".into(),
            command: CommandKind::Select,
            command_label: "SELECT".into(),
            tables: vec![],
        }
    }

    #[test]
    fn merges_a_minute_and_reads_a_histogram() {
        let reg = Registry::new(10);
        let key = |fp| StatKey {
            database: "db".into(),
            user: "u".into(),
            fingerprint: fp,
        };
        let a = reg.entry(&key(1), meta, 0);
        let b = reg.entry(&key(2), meta, 0);
        for i in 1..=90u64 {
            reg.record(&a, i * 1000, 1, Outcome::Ok, 10);
        }
        for _ in 0..10 {
            reg.record(&b, 500_000, 1, Outcome::Ok, 20);
        }
        // Minute 0 is still current at second 59: nothing completed yet.
        assert_eq!(reg.minute_total(0, 59).calls, 0);
        let total = reg.minute_total(0, 61);
        assert_eq!((total.calls, total.rows), (100, 100));
        assert!(total.p50_us.abs_diff(50_000) <= 500, "{}", total.p50_us);
        assert!(total.p95_us.abs_diff(500_000) <= 5_000, "{}", total.p95_us);
        let counts = (reg.cumulative(&key(1), Window::Hour1, 61, &[10_000, 100_000])).unwrap();
        assert_eq!(counts, vec![10, 90, 90]);
        assert!(reg.cumulative(&key(3), Window::Hour1, 61, &[1]).is_none());
    }
}
