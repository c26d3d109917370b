//! One row of pool figures per (database, user), with the cardinality bound of
//! `/metrics`: the [`MAX_POOL_SERIES`] busiest pools (by checkouts) get series of their
//! own, the rest are summed under `database="(other)", user="(other)"`.

use crate::pool::{Status, WAIT_BUCKETS};

/// Pools shown one by one; beyond this they are summed into one `(other)` row.
pub const MAX_POOL_SERIES: usize = 100;
/// The label value of the summed row.
pub const OTHER: &str = "(other)";

/// What `/metrics` reports of one pool (or of the pools summed as `(other)`).
pub struct PoolRow {
    pub database: String,
    pub user: String,
    /// Servers active, idle, testing, logging in.
    pub servers: [usize; 4],
    pub size: usize,
    pub paused: usize,
    pub checkouts: u64,
    pub wait_cumulative: [u64; WAIT_BUCKETS.len()],
    pub wait_count: u64,
    pub wait_sum: f64,
    pub timeouts: u64,
    pub connect_errors: u64,
    pub tls_logins: u64,
    pub channel_bound: u64,
}

impl PoolRow {
    fn of(pool: &Status) -> PoolRow {
        let s = &pool.servers;
        PoolRow {
            database: pool.key.database.clone(),
            user: pool.key.user.clone(),
            servers: [s.active, s.idle, s.testing, s.login],
            size: pool.size,
            paused: usize::from(pool.paused),
            checkouts: pool.checkouts,
            wait_cumulative: pool.wait_cumulative,
            wait_count: pool.wait_count,
            wait_sum: pool.wait_us_total as f64 / 1e6,
            timeouts: pool.checkout_timeouts,
            connect_errors: pool.connect_errors,
            tls_logins: pool.tls_logins,
            channel_bound: pool.channel_bound,
        }
    }

    fn add(&mut self, other: &PoolRow) {
        for (a, b) in self.servers.iter_mut().zip(other.servers) {
            *a += b;
        }
        for (a, b) in self.wait_cumulative.iter_mut().zip(other.wait_cumulative) {
            *a += b;
        }
        self.size += other.size;
        self.paused += other.paused;
        self.checkouts += other.checkouts;
        self.wait_count += other.wait_count;
        self.wait_sum += other.wait_sum;
        self.timeouts += other.timeouts;
        self.connect_errors += other.connect_errors;
        self.tls_logins += other.tls_logins;
        self.channel_bound += other.channel_bound;
    }
}

/// Rows for `pools`: the busiest [`MAX_POOL_SERIES`] as they are, then (when there are
/// more) one `(other)` row summing the rest.
pub fn rows(pools: &[Status]) -> Vec<PoolRow> {
    let mut rows: Vec<PoolRow> = pools.iter().map(PoolRow::of).collect();
    if rows.len() <= MAX_POOL_SERIES {
        return rows;
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.checkouts));
    let rest = rows.split_off(MAX_POOL_SERIES);
    let mut other = PoolRow {
        database: OTHER.into(),
        user: OTHER.into(),
        ..PoolRow::of_nothing()
    };
    for row in &rest {
        other.add(row);
    }
    rows.push(other);
    rows
}

impl PoolRow {
    fn of_nothing() -> PoolRow {
        PoolRow {
            database: String::new(),
            user: String::new(),
            servers: [0; 4],
            size: 0,
            paused: 0,
            checkouts: 0,
            wait_cumulative: [0; WAIT_BUCKETS.len()],
            wait_count: 0,
            wait_sum: 0.0,
            timeouts: 0,
            connect_errors: 0,
            tls_logins: 0,
            channel_bound: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use std::sync::atomic::Ordering;

    use super::*;
    use crate::config::{Config, ServerTlsMode, Upstream};
    use crate::pool::{ClientCounts, Pool, PoolKey, PoolParams};
    use crate::tls::ServerTls;

    fn pool(database: &str, checkouts: u64) -> Status {
        let config = Config::default();
        let upstream = Upstream::parse(&config.upstream).unwrap();
        let tls = Arc::new(ServerTls::new(ServerTlsMode::Disable, None).unwrap());
        let settings = config.pool_settings(&upstream, database);
        let key = PoolKey {
            database: database.into(),
            user: "u".into(),
        };
        let pool = Pool::new(
            key,
            PoolParams::new(&config, settings, tls),
            Default::default(),
        );
        pool.counters.checkouts.store(checkouts, Ordering::Relaxed);
        pool.counters.connect_errors.store(1, Ordering::Relaxed);
        Status::of(&pool, ClientCounts::default())
    }

    #[test]
    fn the_busiest_pools_are_shown_and_the_rest_summed() {
        let few: Vec<_> = (0..3).map(|i| pool(&format!("db{i}"), i)).collect();
        assert_eq!(rows(&few).len(), 3);
        let many: Vec<_> = (0..MAX_POOL_SERIES as u64 + 50)
            .map(|i| pool(&format!("db{i}"), i))
            .collect();
        let rows = rows(&many);
        assert_eq!(rows.len(), MAX_POOL_SERIES + 1);
        let other = rows.last().unwrap();
        assert_eq!(
            (other.database.as_str(), other.user.as_str()),
            (OTHER, OTHER)
        );
        // The 50 quietest (checkouts 0..50) are summed; the busiest keep their own rows.
        assert_eq!(other.checkouts, (0..50).sum::<u64>());
        assert_eq!(other.connect_errors, 50);
        assert!(rows.iter().any(|r| r.database == "db149"));
        assert!(!rows.iter().any(|r| r.database == "db0"));
    }
}
