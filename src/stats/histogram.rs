//! Latency buckets with a 1% relative-error guarantee, and the dense mergeable
//! [`Histogram`] that windows, aggregates and tests read quantiles from.
//!
//! Why not the `hdrhistogram` crate: its counts array is dense. At 2 significant digits
//! up to 1 hour it holds ~2,000 counters (16 KB); a fingerprint keeps ~45 windowed
//! slots, so 5,000 fingerprints would need gigabytes. Here a bucket is a `u16` index
//! into a fixed table, the table is close to the minimum number of buckets a 1% bound
//! allows (1,119 up to 2^36 µs ≈ 19 h, against ~1,050 for exact log buckets), and the
//! windowed slots store only the buckets they touched (see `slot`).

/// The guarantee: every value in a bucket is within 1/ALPHA_DIV of the bucket's
/// representative, relative to the value itself.
const ALPHA_DIV: u64 = 100;

/// Values above this share the last bucket; quantiles are clamped to the exact max, so
/// only statements longer than ~19 hours lose the error bound.
pub const MAX_TRACKED_US: u64 = 1 << 36;

/// Bucket `[lo, hi]` starting at `lo`, with representative `rep`, built greedily in
/// integers so the bound is exact: `(rep - lo) * 100 <= lo` and `(hi - rep) * 100 <= hi`.
const fn bucket_from(lo: u64) -> (u64, u64) {
    let rep = lo + lo / ALPHA_DIV;
    let hi = rep * ALPHA_DIV / (ALPHA_DIV - 1);
    (rep, hi)
}

/// The bounds (µs) that `/metrics` exports as `le` edges. Each is the exact upper end of
/// a bucket, so a value one microsecond above a bound lands in the next bucket and
/// [`Histogram::cumulative`] at these bounds counts exactly the values at or below them.
pub const EXPORT_BOUNDS_US: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// [`bucket_from`], cut short at the first export bound inside it. Cutting keeps the
/// 1% bound: the representative only moves down (to `hi` at most) and `hi - rep` only
/// shrinks, so both integer inequalities still hold.
const fn split_bucket_from(lo: u64) -> (u64, u64) {
    let (mut rep, mut hi) = bucket_from(lo);
    let mut k = 0;
    while k < EXPORT_BOUNDS_US.len() {
        let edge = EXPORT_BOUNDS_US[k];
        if lo <= edge && edge < hi {
            hi = edge;
            if rep > hi {
                rep = hi;
            }
            break;
        }
        k += 1;
    }
    (rep, hi)
}

const fn count_buckets() -> usize {
    let mut lo = 0;
    let mut n = 0;
    while lo <= MAX_TRACKED_US {
        n += 1;
        lo = split_bucket_from(lo).1 + 1;
    }
    n
}

/// Number of buckets (1,119: 1,115 from the 1% rule, 4 more from the splits at the
/// export bounds).
pub const BUCKETS: usize = count_buckets();

/// `(lower bounds, representatives)` of every bucket, ascending.
const fn build_tables() -> ([u64; BUCKETS], [u64; BUCKETS]) {
    let mut lower = [0u64; BUCKETS];
    let mut rep = [0u64; BUCKETS];
    let mut lo = 0;
    let mut i = 0;
    while i < BUCKETS {
        let (r, hi) = split_bucket_from(lo);
        lower[i] = lo;
        rep[i] = r;
        lo = hi + 1;
        i += 1;
    }
    (lower, rep)
}

const TABLES: ([u64; BUCKETS], [u64; BUCKETS]) = build_tables();
static LOWER: [u64; BUCKETS] = TABLES.0;
static REP: [u64; BUCKETS] = TABLES.1;

/// Buckets `0..=EXACT` hold exactly one value each (bucket `i` is `[i, i]`), so small
/// values index directly.
const EXACT: u64 = {
    let mut i = 0;
    while TABLES.0[i + 1] == i as u64 + 1 {
        i += 1;
    }
    i as u64
};

/// `OCTAVE[e]` is the bucket holding `2^e`: a value in `[2^e, 2^(e+1))` lies in buckets
/// `OCTAVE[e]..=OCTAVE[e + 1]`, about 36 of them, so lookup is a 6-step search.
static OCTAVE: [u16; 37] = {
    let mut out = [0u16; 37];
    let mut e = 0;
    let mut i = 0;
    while e < 37 {
        while i + 1 < BUCKETS && TABLES.0[i + 1] <= 1u64 << e {
            i += 1;
        }
        out[e] = i as u16;
        e += 1;
    }
    out
};

/// The bucket holding `v` microseconds. No allocation, no float math.
#[inline]
pub fn bucket_of(v: u64) -> usize {
    if v <= EXACT {
        return v as usize;
    }
    if v >= LOWER[BUCKETS - 1] {
        return BUCKETS - 1;
    }
    // v < LOWER[BUCKETS - 1] <= 2^36, so e <= 35 and OCTAVE[e + 1] exists.
    let e = (63 - v.leading_zeros()) as usize;
    let (a, b) = (OCTAVE[e] as usize, OCTAVE[e + 1] as usize);
    a + LOWER[a..=b].partition_point(|&lo| lo <= v) - 1
}

/// The largest value bucket `i` holds.
#[inline]
fn upper(i: usize) -> u64 {
    LOWER.get(i + 1).map_or(u64::MAX, |next| next - 1)
}

/// The value reported for anything in bucket `i`.
#[inline]
pub fn representative(i: usize) -> u64 {
    REP[i]
}

/// Nearest-rank: the 1-based rank of quantile `q` among `n` values, `ceil(q * n)`
/// clamped to `1..=n`. `q` is taken in parts per million so 0.999 is exact.
pub fn rank(q: f64, n: u64) -> u64 {
    let ppm = (q.clamp(0.0, 1.0) * 1e6).round() as u128;
    let r = (n as u128 * ppm).div_ceil(1_000_000) as u64;
    r.clamp(1, n.max(1))
}

/// A dense histogram over all [`BUCKETS`]: ~9 KB, used on read paths (windows merge
/// their slots into one) and wherever histograms are merged. Quantiles are within 1% of
/// the exact nearest-rank value of the recorded samples, clamped to the exact min/max.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        self.add_bucket(bucket_of(v), 1);
        self.widen(v, v);
    }

    /// Adds `n` samples to bucket `i` without touching min/max (the caller knows them
    /// exactly from its counters and passes them to [`Histogram::widen`]).
    pub(crate) fn add_bucket(&mut self, i: usize, n: u64) {
        self.counts[i] += n;
        self.total += n;
    }

    /// Extends the exact range of recorded values.
    pub(crate) fn widen(&mut self, min: u64, max: u64) {
        self.min = self.min.min(min);
        self.max = self.max.max(max);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.widen(other.min, other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Samples at or below each of `bounds_us` (ascending), Prometheus style: the
    /// buckets lying wholly at or below the bound. Exact for [`EXPORT_BOUNDS_US`] (each
    /// ends a bucket); for any other bound the bucket straddling it is left out, so a
    /// count never includes a value above its bound.
    pub fn cumulative(&self, bounds_us: &[u64]) -> Vec<u64> {
        let mut out = Vec::with_capacity(bounds_us.len());
        let mut seen = 0u64;
        let mut next = 0usize;
        for &bound in bounds_us {
            while next < BUCKETS && upper(next) <= bound {
                seen += self.counts[next];
                next += 1;
            }
            out.push(seen);
        }
        out
    }

    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.min = u64::MAX;
        self.max = 0;
    }

    pub fn quantile(&self, q: f64) -> u64 {
        self.quantiles([q])[0]
    }

    /// Several quantiles in one pass; `qs` must be ascending. Empty histogram: zeros.
    pub fn quantiles<const K: usize>(&self, qs: [f64; K]) -> [u64; K] {
        let mut out = [0u64; K];
        if self.total == 0 {
            return out;
        }
        let mut seen = 0u64;
        let mut k = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            // Invariant: out[..k] are done; ranks ascend with qs, so one pass suffices.
            while k < K && rank(qs[k], self.total) <= seen {
                out[k] = representative(i).clamp(self.min, self.max);
                k += 1;
            }
            if k == K {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn cumulative_counts_at_bounds() {
        let mut h = Histogram::new();
        for v in [400, 900, 1_500, 60_000, 60_000, 2_000_000] {
            h.record(v);
        }
        let c = h.cumulative(&[500, 1_000, 50_000, 100_000, 1_000_000, 10_000_000]);
        assert_eq!(c, vec![1, 2, 3, 5, 5, 6]);
        assert_eq!(Histogram::new().cumulative(&[1, 2]), vec![0, 0]);
    }

    #[test]
    fn export_bounds_are_exact_edges() {
        for &b in &EXPORT_BOUNDS_US {
            assert_eq!(upper(bucket_of(b)), b, "bound {b} ends its bucket");
            assert_eq!(bucket_of(b + 1), bucket_of(b) + 1, "{b} + 1 µs is above it");
        }
        // Values just above each bound land above it; values at the bound stay in it.
        for (k, &b) in EXPORT_BOUNDS_US.iter().enumerate() {
            let mut h = Histogram::new();
            h.record(b);
            h.record(b + 1);
            h.record(b + b / 100);
            let c = h.cumulative(&EXPORT_BOUNDS_US);
            assert_eq!(c[k], 1, "le={b}: only the value at the bound");
            assert!(k == 0 || c[k - 1] == 0, "le below {b}");
        }
        // The case: 503 ms is not at or below 0.5 s.
        let mut h = Histogram::new();
        (0..3).for_each(|_| h.record(503_000));
        let c = h.cumulative(&EXPORT_BOUNDS_US);
        assert_eq!(c[9], 0);
        assert_eq!(c[10], 3);
        // A bound that is not an edge never counts a value above it.
        let mut h = Histogram::new();
        h.record(123_457);
        assert_eq!(h.cumulative(&[123_456]), vec![0]);
    }

    #[test]
    fn every_bucket_meets_the_bound() {
        assert_eq!(BUCKETS, 1119);
        for i in 0..BUCKETS - 1 {
            let (lo, hi, rep) = (LOWER[i], LOWER[i + 1] - 1, REP[i]);
            assert!(lo <= rep && rep <= hi, "bucket {i}");
            assert!(
                (rep - lo) * ALPHA_DIV <= lo && (hi - rep) * ALPHA_DIV <= hi,
                "{i}"
            );
            for v in [lo, hi, (lo + hi) / 2] {
                assert_eq!(bucket_of(v), i, "value {v}");
            }
        }
        assert!(LOWER[BUCKETS - 1] <= MAX_TRACKED_US);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert!(
            bucket_of(3_600_000_000) < BUCKETS - 1,
            "an hour is inside the bound"
        );
    }

    /// Nearest-rank from sorted samples, written independently of `rank`.
    fn exact(sorted: &[u64], permille: u64) -> u64 {
        let n = sorted.len() as u64;
        let r = (n * permille).div_ceil(1000).max(1);
        sorted[(r - 1) as usize]
    }

    fn check(name: &str, mut samples: Vec<u64>) {
        let mut h = Histogram::new();
        samples.iter().for_each(|&v| h.record(v));
        samples.sort_unstable();
        let got = h.quantiles([0.5, 0.95, 0.99, 0.999]);
        for (g, permille) in got.into_iter().zip([500, 950, 990, 999]) {
            let want = exact(&samples, permille);
            let err = (g as f64 - want as f64).abs() / want.max(1) as f64;
            assert!(err <= 0.01, "{name} p{permille}: got {g}, exact {want}");
        }
        assert_eq!(h.count(), samples.len() as u64);
    }

    fn lognormal(rng: &mut StdRng, median: f64, sigma: f64) -> u64 {
        // Box-Muller: one standard normal from two uniforms.
        let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (median * (sigma * z).exp()).round().max(1.0) as u64
    }

    #[test]
    fn quantiles_within_one_percent() {
        let mut rng = StdRng::seed_from_u64(7);
        let uniform = (0..200_000).map(|_| rng.gen_range(1..=100_000)).collect();
        check("uniform", uniform);
        let logn = (0..200_000)
            .map(|_| lognormal(&mut rng, 2_000.0, 1.5))
            .collect();
        check("lognormal", logn);
        let bimodal = (0..200_000)
            .map(|_| match rng.gen_bool(0.95) {
                true => lognormal(&mut rng, 1_000.0, 0.2),
                false => lognormal(&mut rng, 500_000.0, 0.2),
            })
            .collect();
        check("bimodal", bimodal);
        check("constant", vec![4_321; 10_000]);
        check("tiny", (0..1_000).map(|_| rng.gen_range(0..5)).collect());
        check("hours", (1..=1_000).map(|i| i * 3_600_000).collect());
        check("single", vec![1]);
    }

    #[test]
    fn merge_equals_union() {
        let mut rng = StdRng::seed_from_u64(11);
        let (mut a, mut b, mut both) = (Histogram::new(), Histogram::new(), Histogram::new());
        for i in 0..50_000 {
            let v = lognormal(&mut rng, 800.0, 2.0);
            both.record(v);
            if i % 3 == 0 { &mut a } else { &mut b }.record(v);
        }
        a.merge(&b);
        assert_eq!(a, both);
        let qs = [0.5, 0.95, 0.99, 0.999];
        assert_eq!(a.quantiles(qs), both.quantiles(qs));
    }

    #[test]
    fn empty_and_rank_edges() {
        assert_eq!(Histogram::new().quantile(0.99), 0);
        assert_eq!(rank(0.999, 1000), 999);
        assert_eq!(rank(0.5, 1), 1);
        assert_eq!(rank(0.0, 10), 1);
        assert_eq!(rank(1.0, 10), 10);
    }
}
