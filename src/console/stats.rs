//! `SHOW STATS` and `SHOW STATS_TOTALS` (PgBouncer's per-database totals and averages,
//! from the pools' counters and the statement statistics) and `SHOW QUERIES` (the statement shapes that took the
//! most time, with their percentiles).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::command::{QueryListing, QueryOrder};
use super::session::Failure;
use super::wire::{ms, Cell, Kind, ResultSet};
use crate::state::Running;
use crate::stats::{AggregateSnapshot, QuerySnapshot, Window};

use Kind::{Float8, Int8, Text};

const STATS_COLUMNS: &[(&str, Kind)] = &[
    ("database", Text),
    ("total_server_assignment_count", Int8),
    ("total_xact_count", Int8),
    ("total_query_count", Int8),
    ("total_received", Int8),
    ("total_sent", Int8),
    ("total_xact_time", Int8),
    ("total_query_time", Int8),
    ("total_wait_time", Int8),
    ("avg_server_assignment_count", Int8),
    ("avg_xact_count", Int8),
    ("avg_query_count", Int8),
    ("avg_recv", Int8),
    ("avg_sent", Int8),
    ("avg_xact_time", Int8),
    ("avg_query_time", Int8),
    ("avg_wait_time", Int8),
    ("p50_query_time", Int8),
    ("p95_query_time", Int8),
    ("p99_query_time", Int8),
];

/// What one database's row is made of.
#[derive(Default)]
struct DbTotals {
    checkouts: u64,
    wait_us: u64,
    calls: u64,
    total_us: u64,
    /// p50, p95 and p99 of each command kind that ran.
    kinds: Vec<[u64; 3]>,
}

impl DbTotals {
    fn add_aggregate(&mut self, a: &AggregateSnapshot) {
        self.calls += a.calls;
        self.total_us += a.total_us;
        if a.calls > 0 {
            self.kinds.push([a.p50_us, a.p95_us, a.p99_us]);
        }
    }

    /// database, assignments, transactions, queries, bytes in and out (not tracked),
    /// transaction time, query time, wait time.
    fn total_cells(&self, database: String) -> Vec<Cell> {
        vec![
            database.into(),
            self.checkouts.into(),
            self.checkouts.into(),
            self.calls.into(),
            0u64.into(),
            0u64.into(),
            self.total_us.into(),
            self.total_us.into(),
            self.wait_us.into(),
        ]
    }

    /// The database's percentiles. Statistics keep histograms per command kind, and a
    /// quantile of a mix lies between the kinds' quantiles: exact with one kind, else the
    /// largest of the kinds' (an upper bound).
    fn percentiles(&self) -> [u64; 3] {
        let mut out = [0; 3];
        for p in &self.kinds {
            for (slot, v) in out.iter_mut().zip(p) {
                *slot = (*slot).max(*v);
            }
        }
        out
    }
}

/// What every database did since start, sorted by name.
fn totals(state: &Running) -> BTreeMap<String, DbTotals> {
    let mut dbs: BTreeMap<String, DbTotals> = BTreeMap::new();
    for pool in state.all_pools() {
        let t = dbs.entry(pool.key.database.clone()).or_default();
        t.checkouts += pool.counters.checkouts.load(Ordering::Relaxed);
        t.wait_us += pool.counters.wait_us_total.load(Ordering::Relaxed);
    }
    if let Some(measure) = &state.measure {
        let now = state.stats_now();
        for a in measure.registry.aggregates(Window::All, now) {
            dbs.entry(a.database.clone()).or_default().add_aggregate(&a);
        }
    }
    dbs
}

/// One row per database. Totals are since start, averages over the proxy's uptime
/// (PgBouncer averages over `stats_period`): counts per second, times per operation, in
/// microseconds. A transaction is a server checkout (exact in transaction mode); query
/// counts and times come from the statement statistics (zero when `stats` is off).
/// Bytes received and sent are not tracked and show 0. Transaction time is the time
/// of the statements run in it (idle time inside transactions is not measured).
pub fn show_stats(state: &Running) -> ResultSet {
    let uptime = state.started.elapsed().as_secs().max(1);
    let per = |total: u64, n: u64| total.checked_div(n).unwrap_or(0);
    let mut rs = ResultSet::new(STATS_COLUMNS);
    for (database, t) in totals(state) {
        let [p50, p95, p99] = t.percentiles();
        let mut row = t.total_cells(database);
        row.extend([
            per(t.checkouts, uptime).into(),
            per(t.checkouts, uptime).into(),
            per(t.calls, uptime).into(),
            0u64.into(),
            0u64.into(),
            per(t.total_us, t.checkouts).into(),
            per(t.total_us, t.calls).into(),
            per(t.wait_us, t.checkouts).into(),
            p50.into(),
            p95.into(),
            p99.into(),
        ]);
        rs.push(row);
    }
    rs
}

const TOTALS_COLUMNS: &[(&str, Kind)] = &[
    ("database", Text),
    ("server_assignment_count", Int8),
    ("xact_count", Int8),
    ("query_count", Int8),
    ("bytes_received", Int8),
    ("bytes_sent", Int8),
    ("xact_time", Int8),
    ("query_time", Int8),
    ("wait_time", Int8),
];

/// SHOW STATS's totals under PgBouncer's SHOW STATS_TOTALS names (what
/// pgbouncer_exporter reads).
pub fn show_stats_totals(state: &Running) -> ResultSet {
    let mut rs = ResultSet::new(TOTALS_COLUMNS);
    for (database, t) in totals(state) {
        rs.push(t.total_cells(database));
    }
    rs
}

const QUERY_COLUMNS: &[(&str, Kind)] = &[
    ("fingerprint", Text),
    ("database", Text),
    ("user", Text),
    ("command", Text),
    ("calls", Int8),
    ("errors", Int8),
    ("rows", Int8),
    ("total_ms", Float8),
    ("mean_ms", Float8),
    ("p50_ms", Float8),
    ("p95_ms", Float8),
    ("p99_ms", Float8),
    ("query", Text),
];

/// The first `limit` statement shapes of `window` by `by`, high to low.
pub fn show_queries(state: &Running, listing: QueryListing) -> Result<ResultSet, Failure> {
    let Some(measure) = &state.measure else {
        return Err(Failure::new(
            "55000",
            "pgsidecar: statement statistics are off (stats = false)",
        ));
    };
    let now = state.stats_now();
    let mut rs = ResultSet::new(QUERY_COLUMNS);
    let mut snapshot = measure.registry.snapshot(listing.window, now);
    // Stable: ties keep the registry's order (most total time first).
    snapshot.sort_by(|a, b| order_value(listing.by, b).total_cmp(&order_value(listing.by, a)));
    for q in snapshot.iter().filter(|q| q.calls > 0).take(listing.limit) {
        rs.push(vec![
            format!("{:016x}", q.key.fingerprint).into(),
            q.key.database.as_str().into(),
            q.key.user.as_str().into(),
            q.meta.command_label.as_str().into(),
            q.calls.into(),
            q.errors.into(),
            q.rows.into(),
            ms(q.total_us as f64),
            ms(q.mean_us),
            ms(q.p50_us as f64),
            ms(q.p95_us as f64),
            ms(q.p99_us as f64),
            q.meta.normalized.as_str().into(),
        ]);
    }
    Ok(rs)
}

fn order_value(by: QueryOrder, q: &QuerySnapshot) -> f64 {
    match by {
        QueryOrder::Total => q.total_us as f64,
        QueryOrder::Calls => q.calls as f64,
        QueryOrder::Mean => q.mean_us,
        QueryOrder::P50 => q.p50_us as f64,
        QueryOrder::P95 => q.p95_us as f64,
        QueryOrder::P99 => q.p99_us as f64,
        QueryOrder::Max => q.max_us as f64,
        QueryOrder::Errors => q.errors as f64,
        QueryOrder::Rows => q.rows as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_kind_are_exact_and_of_many_an_upper_bound() {
        let mut t = DbTotals::default();
        assert_eq!(t.percentiles(), [0, 0, 0]);
        t.kinds.push([5, 9, 12]);
        assert_eq!(t.percentiles(), [5, 9, 12]);
        t.kinds.push([7, 8, 30]);
        assert_eq!(t.percentiles(), [7, 9, 30]);
    }
}
