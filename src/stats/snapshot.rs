//! What reads return: plain, owned numbers for one window of one entry, one entry in
//! every window, or one (database, command kind) aggregate.

use std::sync::Arc;

use super::counters::class_name;
use super::window::Acc;
use super::{CommandKind, QueryMeta, StatKey, Window};

/// One window's numbers. Percentiles are nearest-rank, within 1% of the exact value of
/// the samples in the window; everything else is exact. All zero when `calls == 0`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowStats {
    pub calls: u64,
    pub errors: u64,
    /// `(2-character SQLSTATE class, count)`, sorted by class; `"??"` collects classes
    /// beyond the first 15 distinct ones.
    pub errors_by_class: Vec<(String, u64)>,
    pub rows: u64,
    pub total_us: u64,
    pub min_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    /// Of `total_us`, the time statements waited for a pool's server.
    pub pool_wait_us: u64,
}

impl WindowStats {
    pub(crate) fn from_acc(acc: &Acc) -> WindowStats {
        let c = &acc.c;
        if c.calls == 0 {
            return WindowStats::default();
        }
        let [p50_us, p95_us, p99_us, p999_us] = acc.hist.quantiles([0.5, 0.95, 0.99, 0.999]);
        WindowStats {
            calls: c.calls,
            errors: c.errors,
            errors_by_class: acc
                .classes
                .iter()
                .map(|(k, n)| (class_name(k), n))
                .collect(),
            rows: c.rows,
            total_us: c.total_us,
            min_us: c.min_us,
            max_us: c.max_us,
            mean_us: c.total_us as f64 / c.calls as f64,
            p50_us,
            p95_us,
            p99_us,
            p999_us,
            pool_wait_us: c.wait_us,
        }
    }
}

/// One entry in one window (a row of the admin listing). The window's numbers are
/// `stats`; they are also readable directly (`snapshot.calls`) through `Deref`.
#[derive(Clone, Debug)]
pub struct QuerySnapshot {
    pub key: StatKey,
    pub meta: Arc<QueryMeta>,
    pub stats: WindowStats,
    pub first_seen: u64,
    pub last_seen: u64,
}

impl QuerySnapshot {
    pub(crate) fn new(
        key: StatKey,
        meta: Arc<QueryMeta>,
        stats: WindowStats,
        seen: (u64, u64),
    ) -> Self {
        QuerySnapshot {
            key,
            meta,
            stats,
            first_seen: seen.0,
            last_seen: seen.1,
        }
    }
}

impl std::ops::Deref for QuerySnapshot {
    type Target = WindowStats;
    fn deref(&self) -> &WindowStats {
        &self.stats
    }
}

/// One entry in every window, in [`Window::LIST`] order.
#[derive(Clone, Debug)]
pub struct QueryDetail {
    pub key: StatKey,
    pub meta: Arc<QueryMeta>,
    pub windows: Vec<(Window, WindowStats)>,
    pub first_seen: u64,
    pub last_seen: u64,
}

/// All statements of one command kind in one database, evicted entries included. The
/// numbers are `stats`, also readable directly through `Deref`.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateSnapshot {
    pub database: String,
    pub command: CommandKind,
    pub stats: WindowStats,
}

impl AggregateSnapshot {
    pub(crate) fn new(database: String, command: CommandKind, stats: WindowStats) -> Self {
        AggregateSnapshot {
            database,
            command,
            stats,
        }
    }
}

impl std::ops::Deref for AggregateSnapshot {
    type Target = WindowStats;
    fn deref(&self) -> &WindowStats {
        &self.stats
    }
}
