//! What a pool counts about itself, for SHOW POOLS / SHOW STATS and /metrics: open
//! connections by state, waiting clients, checkouts, timeouts, errors, and a histogram
//! of checkout waits. All atomics: updated on the hot path without locks.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds (seconds) of the checkout-wait histogram buckets; a last bucket counts
/// everything above.
pub const WAIT_BUCKETS: [f64; 9] = [0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

#[derive(Debug, Default)]
pub struct PoolCounters {
    /// Open server connections, idle or not (maintained by `ServerConn`'s drop).
    pub open: Arc<AtomicUsize>,
    /// Connections being opened (TCP connect and login).
    pub logging_in: AtomicUsize,
    /// Idle connections being checked with a round trip before reuse.
    pub testing: AtomicUsize,
    pub waiting_clients: AtomicUsize,
    pub checkouts: AtomicU64,
    pub checkout_timeouts: AtomicU64,
    pub connect_errors: AtomicU64,
    /// Server logins over TLS.
    pub tls_logins: AtomicU64,
    /// Server logins that used SCRAM-SHA-256-PLUS (channel binding).
    pub channel_bound_logins: AtomicU64,
    /// Sum of checkout waits in microseconds, for averages.
    pub wait_us_total: AtomicU64,
    /// Longest wait of a client currently waiting is not tracked; this is the longest
    /// wait seen since start, in microseconds (PgBouncer's `maxwait` analogue).
    pub wait_us_max: AtomicU64,
    /// Checkout waits by bucket (`WAIT_BUCKETS`, then +Inf); not cumulative.
    wait_buckets: [AtomicU64; WAIT_BUCKETS.len() + 1],
}

impl PoolCounters {
    /// Records one checkout's wait.
    pub fn record_wait(&self, waited: Duration) {
        let secs = waited.as_secs_f64();
        let bucket = WAIT_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(WAIT_BUCKETS.len());
        self.wait_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let us = waited.as_micros() as u64;
        self.wait_us_total.fetch_add(us, Ordering::Relaxed);
        self.wait_us_max.fetch_max(us, Ordering::Relaxed);
    }

    /// Cumulative counts per `WAIT_BUCKETS` bound plus the total (+Inf), Prometheus style.
    pub fn wait_histogram(&self) -> ([u64; WAIT_BUCKETS.len()], u64) {
        let mut cumulative = [0u64; WAIT_BUCKETS.len()];
        let mut running = 0;
        for (i, slot) in cumulative.iter_mut().enumerate() {
            running += self.wait_buckets[i].load(Ordering::Relaxed);
            *slot = running;
        }
        let total = running + self.wait_buckets[WAIT_BUCKETS.len()].load(Ordering::Relaxed);
        (cumulative, total)
    }
}

/// Increments a gauge for as long as it lives.
pub struct GaugeGuard<'a>(&'a AtomicUsize);

impl<'a> GaugeGuard<'a> {
    pub fn new(gauge: &'a AtomicUsize) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_histogram_is_cumulative() {
        let c = PoolCounters::default();
        c.record_wait(Duration::from_micros(50));
        c.record_wait(Duration::from_millis(3));
        c.record_wait(Duration::from_secs(9));
        let (cumulative, total) = c.wait_histogram();
        assert_eq!(cumulative[0], 1);
        assert_eq!(cumulative[2], 2);
        assert_eq!(cumulative[WAIT_BUCKETS.len() - 1], 2);
        assert_eq!(total, 3);
        assert_eq!(c.wait_us_max.load(Ordering::Relaxed), 9_000_000);
    }
}
