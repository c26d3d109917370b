//! `pgsidecar_query_duration_seconds` buckets, kept monotone between scrapes.
//!
//! The statistics registry keeps 1%-accurate histograms but exposes, per entry and per
//! (database, command) aggregate, only counts, exact sum/min/max and the p50, p95,
//! p99 and p99.9 of a window. Bucket counts are therefore estimated, and so that they
//! behave as Prometheus counters (never decreasing, `+Inf` equal to `_count`), each
//! series is accumulated here: calls that arrived since the previous scrape are spread
//! over the buckets following the recent (`1m`) distribution of their source, or the
//! all-time one when the last minute does not hold that many calls. A new series, or
//! one whose source count went down (an entry evicted and re-created, a fingerprint
//! moving into or out of the top N), starts over from the all-time distribution.
//! `_count` and `_sum` are always exact.
//!
//! The spread interpolates the cumulative distribution linearly between (min, 0),
//! (p50, 0.5), (p95, 0.95), (p99, 0.99), (p99.9, 0.999) and (max, 1); a statement
//! whose calls all take the same time lands exactly in its bucket.

use std::collections::HashMap;
use std::hash::Hash;

use crate::stats::{AggregateSnapshot, QuerySnapshot};

/// Bucket upper bounds in seconds (`+Inf` is implicit).
pub const BOUNDS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub type Buckets = [u64; BOUNDS.len()];

/// A distribution known by its count, exact extremes and a few quantiles.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Shape {
    pub calls: u64,
    /// `(value in µs, fraction of samples at or below it)`, ascending in both.
    knots: [(f64, f64); 6],
}

impl Shape {
    fn from_parts(calls: u64, min: u64, q: [u64; 4], max: u64) -> Shape {
        let fractions = [0.0, 0.5, 0.95, 0.99, 0.999, 1.0];
        let values = [min, q[0], q[1], q[2], q[3], max];
        let mut knots = [(0.0, 0.0); 6];
        let mut floor = 0u64;
        for (i, knot) in knots.iter_mut().enumerate() {
            // Quantiles are clamped to min..=max already; keep them ascending anyway.
            floor = floor.max(values[i]);
            *knot = (floor as f64, fractions[i]);
        }
        Shape { calls, knots }
    }

    pub fn of_query(s: &QuerySnapshot) -> Shape {
        let q = [s.p50_us, s.p95_us, s.p99_us, s.p999_us];
        Shape::from_parts(s.calls, s.min_us, q, s.max_us)
    }

    pub fn of_aggregate(s: &AggregateSnapshot) -> Shape {
        let q = [s.p50_us, s.p95_us, s.p99_us, s.p999_us];
        Shape::from_parts(s.calls, s.min_us, q, s.max_us)
    }

    /// Estimated fraction of samples at or below `x` µs.
    fn cdf(&self, x: f64) -> f64 {
        let Some(i) = self.knots.iter().rposition(|&(v, _)| v <= x) else {
            return 0.0;
        };
        let (v0, q0) = self.knots[i];
        match self.knots.get(i + 1) {
            None => 1.0,
            Some(&(v1, q1)) => q0 + (q1 - q0) * (x - v0) / (v1 - v0),
        }
    }

    /// Adds `n` samples of this shape to cumulative `buckets`.
    fn spread(&self, n: u64, buckets: &mut Buckets) {
        for (bucket, &le) in buckets.iter_mut().zip(&BOUNDS) {
            let share = (self.cdf(le * 1e6) * n as f64).round() as u64;
            *bucket += share.min(n);
        }
    }
}

/// Where one series' numbers come from at this scrape.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// Exact all-time calls and total time of the series.
    pub calls: u64,
    pub sum_us: u64,
    pub recent: Shape,
    pub all: Shape,
}

/// One exported histogram series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub calls: u64,
    pub sum_us: u64,
    pub buckets: Buckets,
    seen: u64,
}

impl Series {
    /// Adds another series into this one (several users' entries of one fingerprint).
    pub fn add(&mut self, other: &Series) {
        self.calls += other.calls;
        self.sum_us += other.sum_us;
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }
}

/// Every series' accumulated buckets, from one scrape to the next.
pub struct DurationBook<K> {
    series: HashMap<K, Series>,
    scrape: u64,
}

impl<K> Default for DurationBook<K> {
    fn default() -> Self {
        DurationBook {
            series: HashMap::new(),
            scrape: 0,
        }
    }
}

impl<K: Hash + Eq> DurationBook<K> {
    /// Starts a scrape: series not observed until [`Self::sweep`] are forgotten.
    pub fn begin(&mut self) {
        self.scrape += 1;
    }

    pub fn observe(&mut self, key: K, src: &Source) -> &Series {
        let scrape = self.scrape;
        let series = self.series.entry(key).or_default();
        let fresh = series.seen == 0 || src.calls < series.calls;
        if fresh {
            series.buckets = [0; BOUNDS.len()];
            src.all.spread(src.calls, &mut series.buckets);
        } else if src.calls > series.calls {
            let delta = src.calls - series.calls;
            let shape = if src.recent.calls >= delta {
                &src.recent
            } else {
                &src.all
            };
            shape.spread(delta, &mut series.buckets);
        }
        series.calls = src.calls;
        series.sum_us = src.sum_us;
        series.seen = scrape;
        series
    }

    /// Ends a scrape, dropping the series it did not observe.
    pub fn sweep(&mut self) {
        let scrape = self.scrape;
        self.series.retain(|_, s| s.seen == scrape);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(calls: u64, us: u64) -> Shape {
        Shape::from_parts(calls, us, [us; 4], us)
    }

    fn source(calls: u64, recent: Shape, all: Shape) -> Source {
        Source {
            calls,
            sum_us: calls * 10,
            recent,
            all,
        }
    }

    #[test]
    fn identical_samples_land_in_their_bucket() {
        let mut b = [0; BOUNDS.len()];
        flat(4, 3000).spread(4, &mut b);
        assert_eq!(b[..4], [0, 0, 0, 4]);
        assert!(b[3..].iter().all(|&n| n == 4));
    }

    #[test]
    fn spread_is_cumulative_and_bounded() {
        let s = Shape::from_parts(1000, 100, [800, 4000, 20_000, 90_000], 2_000_000);
        let mut b = [0; BOUNDS.len()];
        s.spread(1000, &mut b);
        assert!(b.windows(2).all(|w| w[0] <= w[1]), "{b:?}");
        assert!(b[1] > 400 && b[1] < 600, "about half under 1 ms: {b:?}");
        assert_eq!(b[BOUNDS.len() - 1], 1000);
    }

    #[test]
    fn series_never_decrease_until_their_source_does() {
        let mut book = DurationBook::default();
        book.begin();
        let first = book
            .observe("q", &source(10, flat(10, 200), flat(10, 200)))
            .clone();
        assert_eq!(first.buckets[0], 10);
        book.begin();
        // 5 more calls, now slow: earlier buckets keep their counts.
        let second = book
            .observe("q", &source(15, flat(5, 40_000), flat(15, 200)))
            .clone();
        assert!(first
            .buckets
            .iter()
            .zip(&second.buckets)
            .all(|(a, b)| a <= b));
        assert_eq!(
            (second.buckets[0], second.buckets[BOUNDS.len() - 1]),
            (10, 15)
        );
        book.begin();
        let reset = book
            .observe("q", &source(3, flat(3, 200), flat(3, 200)))
            .clone();
        assert_eq!(reset.buckets[0], 3);
        book.sweep();
        book.begin();
        book.sweep();
        assert!(book.series.is_empty());
    }
}
