//! The cache's counters: hits, misses by reason, bypasses by reason, evictions by
//! cause, invalidations by source, the invalidation lag histogram, and per-fingerprint
//! hits, misses, bytes and time saved (bounded: at most [`MAX_FINGERPRINTS`] shapes,
//! the rest under fingerprint 0). Atomics only; read at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use super::reason::{Bypass, Eviction, Refusal, Source};

/// Fingerprints tracked one by one; past it, new ones are summed under 0.
pub const MAX_FINGERPRINTS: usize = 1000;

/// Upper bounds of the invalidation lag histogram, in seconds.
pub const LAG_BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

/// One fingerprint's counters.
#[derive(Default, Debug)]
pub struct ShapeStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Bytes of its entries stored (cumulative).
    pub bytes: AtomicU64,
    /// Upstream time the hits did not spend, in microseconds.
    pub saved_us: AtomicU64,
}

/// Every counter of the cache.
#[derive(Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: [AtomicU64; 22],
    pub bypass: [AtomicU64; 6],
    pub evictions: [AtomicU64; 4],
    pub invalidations: [AtomicU64; 5],
    /// Cumulative counts per bound of [`LAG_BOUNDS`], then +Inf.
    pub lag_buckets: [AtomicU64; 13],
    pub lag_sum_us: AtomicU64,
    pub shapes: DashMap<u64, ShapeStats>,
}

impl CacheStats {
    pub fn miss(&self, reason: Refusal, fingerprint: u64) {
        self.misses[reason.index()].fetch_add(1, Ordering::Relaxed);
        self.shape(fingerprint, |s| s.misses.fetch_add(1, Ordering::Relaxed));
    }

    pub fn hit(&self, fingerprint: u64, saved: Duration) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.shape(fingerprint, |s| {
            s.hits.fetch_add(1, Ordering::Relaxed);
            s.saved_us
                .fetch_add(saved.as_micros() as u64, Ordering::Relaxed)
        });
    }

    pub fn stored(&self, fingerprint: u64, bytes: usize) {
        self.shape(fingerprint, |s| {
            s.bytes.fetch_add(bytes as u64, Ordering::Relaxed)
        });
    }

    pub fn bypass(&self, reason: Bypass) {
        self.bypass[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn evicted(&self, cause: Eviction) {
        self.evictions[cause.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn invalidated(&self, source: Source) {
        self.invalidations[source.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// One notification's commit-to-receipt time.
    pub fn lag(&self, lag: Duration) {
        let secs = lag.as_secs_f64();
        let slot = LAG_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LAG_BOUNDS.len());
        self.lag_buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.lag_sum_us
            .fetch_add(lag.as_micros() as u64, Ordering::Relaxed);
    }

    fn shape(&self, fingerprint: u64, f: impl FnOnce(&ShapeStats) -> u64) {
        if let Some(s) = self.shapes.get(&fingerprint) {
            f(&s);
            return;
        }
        let key = match self.shapes.len() < MAX_FINGERPRINTS {
            true => fingerprint,
            false => 0,
        };
        f(&self.shapes.entry(key).or_default());
    }

    /// Per-bucket counts of the lag histogram (not cumulative) and its total.
    pub fn lag_counts(&self) -> ([u64; 13], u64) {
        let counts = std::array::from_fn(|i| self.lag_buckets[i].load(Ordering::Relaxed));
        let total = counts.iter().sum();
        (counts, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_fit_the_label_lists() {
        let s = CacheStats::default();
        assert_eq!(s.misses.len(), Refusal::ALL.len());
        assert_eq!(s.bypass.len(), Bypass::ALL.len());
        assert_eq!(s.evictions.len(), Eviction::ALL.len());
        assert_eq!(s.invalidations.len(), Source::ALL.len());
        assert_eq!(s.lag_buckets.len(), LAG_BOUNDS.len() + 1);
    }

    #[test]
    fn lag_lands_in_its_bucket_and_shapes_are_bounded() {
        let s = CacheStats::default();
        s.lag(Duration::from_micros(300));
        s.lag(Duration::from_millis(15));
        s.lag(Duration::from_secs(60));
        let (counts, total) = s.lag_counts();
        assert_eq!((counts[0], counts[5], counts[12], total), (1, 1, 1, 3));
        for fp in 1..=(MAX_FINGERPRINTS as u64 + 10) {
            s.miss(Refusal::NotCachedYet, fp);
        }
        assert_eq!(s.shapes.len(), MAX_FINGERPRINTS + 1);
        assert_eq!(s.shapes.get(&0).unwrap().misses.load(Ordering::Relaxed), 10);
    }
}
