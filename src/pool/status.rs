//! One pool's status, computed in one place: every renderer (`SHOW POOLS`,
//! `/api/pools`, `/metrics`, the console's history) reads a [`Status`] instead of
//! deriving counts from the pool itself. Client counts come from the client registry
//! (which lives above pools) and are passed in as a [`ClientCounts`] row.

use std::sync::atomic::Ordering;

use super::{Pool, PoolKey, WAIT_BUCKETS};
use crate::config::PoolMode;

/// Clients of one pool by state, as PgBouncer counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounts {
    /// Holding a server.
    pub active: u64,
    /// Waiting for a server.
    pub waiting: u64,
    /// Between transactions, holding no server.
    pub idle: u64,
}

impl ClientCounts {
    pub fn add(&mut self, other: ClientCounts) {
        self.active += other.active;
        self.waiting += other.waiting;
        self.idle += other.idle;
    }
}

/// Server connections of a pool by state. A server being tested was taken off the idle
/// list, so it is not counted as active.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerCounts {
    /// Open connections, whatever their state.
    pub open: usize,
    pub active: usize,
    /// Idle, ready to be checked out.
    pub idle: usize,
    /// Of the idle ones, those idle past `server_check_delay` (checked before reuse:
    /// PgBouncer's `sv_used`).
    pub idle_used: usize,
    pub testing: usize,
    pub login: usize,
}

/// Everything the renderers show of one pool, read once.
#[derive(Debug, Clone)]
pub struct Status {
    pub key: PoolKey,
    pub mode: PoolMode,
    pub size: usize,
    pub min_size: usize,
    pub paused: bool,
    pub servers: ServerCounts,
    pub clients: ClientCounts,
    pub checkouts: u64,
    pub checkout_timeouts: u64,
    pub connect_errors: u64,
    pub tls_logins: u64,
    pub channel_bound: u64,
    /// Checkout waits: cumulative counts per [`WAIT_BUCKETS`] bound, and all of them.
    pub wait_cumulative: [u64; WAIT_BUCKETS.len()],
    pub wait_count: u64,
    pub wait_us_total: u64,
    /// The longest checkout wait since start.
    pub wait_us_max: u64,
}

impl Status {
    /// The status of `pool`, with `clients` counted by the caller.
    pub fn of(pool: &Pool, clients: ClientCounts) -> Status {
        let params = pool.params();
        let c = &pool.counters;
        let (wait_cumulative, wait_count) = c.wait_histogram();
        Status {
            key: pool.key.clone(),
            mode: params.settings.mode,
            size: params.settings.size,
            min_size: params.settings.min_size,
            paused: pool.is_paused(),
            servers: server_counts(pool, params.check_delay),
            clients,
            checkouts: c.checkouts.load(Ordering::Relaxed),
            checkout_timeouts: c.checkout_timeouts.load(Ordering::Relaxed),
            connect_errors: c.connect_errors.load(Ordering::Relaxed),
            tls_logins: c.tls_logins.load(Ordering::Relaxed),
            channel_bound: c.channel_bound_logins.load(Ordering::Relaxed),
            wait_cumulative,
            wait_count,
            wait_us_total: c.wait_us_total.load(Ordering::Relaxed),
            wait_us_max: c.wait_us_max.load(Ordering::Relaxed),
        }
    }

    /// The mean checkout wait, microseconds (0 before the first).
    pub fn avg_wait_us(&self) -> u64 {
        self.wait_us_total.checked_div(self.wait_count).unwrap_or(0)
    }

    /// `session` or `transaction`.
    pub fn mode_name(&self) -> &'static str {
        mode_name(self.mode)
    }
}

/// `session` or `transaction`, as every renderer spells it.
pub fn mode_name(mode: PoolMode) -> &'static str {
    match mode {
        PoolMode::Session => "session",
        PoolMode::Transaction => "transaction",
    }
}

/// One look at the idle list (its length and how many are past the check delay) and
/// the counters.
fn server_counts(pool: &Pool, check_delay: std::time::Duration) -> ServerCounts {
    let c = &pool.counters;
    let idle = pool.idle_servers();
    let testing = c.testing.load(Ordering::Relaxed);
    let open = c.open.load(Ordering::Relaxed);
    ServerCounts {
        open,
        active: open.saturating_sub(idle.len()).saturating_sub(testing),
        idle: idle.len(),
        idle_used: idle.iter().filter(|s| s.2 > check_delay).count(),
        testing,
        login: c.logging_in.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{Config, ServerTlsMode, Upstream};
    use crate::pool::PoolParams;
    use crate::tls::ServerTls;

    fn pool() -> Arc<Pool> {
        let config = Config::default();
        let upstream = Upstream::parse(&config.upstream).unwrap();
        let tls = Arc::new(ServerTls::new(ServerTlsMode::Disable, None).unwrap());
        let settings = config.pool_settings(&upstream, "app");
        let key = PoolKey {
            database: "app".into(),
            user: "u".into(),
        };
        Pool::new(
            key,
            PoolParams::new(&config, settings, tls),
            Default::default(),
        )
    }

    #[test]
    fn status_reads_the_counters_once_and_carries_the_clients() {
        let pool = pool();
        let c = &pool.counters;
        c.open.store(5, Ordering::Relaxed);
        c.testing.store(1, Ordering::Relaxed);
        c.logging_in.store(2, Ordering::Relaxed);
        c.checkouts.store(9, Ordering::Relaxed);
        c.wait_us_total.store(3_000, Ordering::Relaxed);
        c.wait_us_max.store(2_500, Ordering::Relaxed);
        let clients = ClientCounts {
            active: 1,
            waiting: 2,
            idle: 3,
        };
        let status = Status::of(&pool, clients);
        // Nothing idle: five open, one of them being tested.
        assert_eq!(
            status.servers,
            ServerCounts {
                open: 5,
                active: 4,
                idle: 0,
                idle_used: 0,
                testing: 1,
                login: 2
            }
        );
        assert_eq!(status.clients, clients);
        assert_eq!((status.checkouts, status.wait_us_max), (9, 2_500));
        assert_eq!(status.mode_name(), "transaction");
        assert_eq!(status.size, Config::default().pool_size);
        assert!(!status.paused);
    }

    #[test]
    fn the_mean_wait_is_zero_before_any_wait() {
        let status = Status::of(&pool(), ClientCounts::default());
        assert_eq!(status.avg_wait_us(), 0);
        let mut sum = ClientCounts::default();
        sum.add(ClientCounts {
            active: 1,
            waiting: 0,
            idle: 2,
        });
        sum.add(ClientCounts {
            active: 0,
            waiting: 4,
            idle: 0,
        });
        assert_eq!((sum.active, sum.waiting, sum.idle), (1, 4, 2));
    }
}
