//! The cache's `/metrics` families, read from [`super::stats`] at scrape time:
//! `pgsidecar_cache_hits_total`, `_misses_total{reason}`, `_bypass_total{reason}`,
//! `_evictions_total{cause}`, `_invalidations_total{source}`, `_bytes`, `_entries`,
//! `_invalidation_lag_seconds` (histogram: a notification's commit-to-receipt time) and
//! `_hit_ratio{fingerprint}` for the top fingerprints by lookups.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use super::reason::{Bypass, Eviction, Refusal, Source};
use super::stats::LAG_BOUNDS;
use super::Cache;
use crate::admin::metrics::family::{Family, Spec};

/// Fingerprints shown one by one in `_hit_ratio`.
const TOP: usize = 20;

const fn spec(
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    labels: &'static [&'static str],
) -> Spec {
    Spec {
        name,
        help,
        kind,
        labels,
    }
}

const HITS: Spec = spec(
    "pgsidecar_cache_hits_total",
    "Requests answered from the cache, without a server",
    MetricType::COUNTER,
    &[],
);
const MISSES: Spec = spec("pgsidecar_cache_misses_total", "Cache lookups that went to the server, by why (not_cached_yet for an eligible statement without a usable entry)", MetricType::COUNTER, &["reason"]);
const BYPASS: Spec = spec(
    "pgsidecar_cache_bypass_total",
    "Requests that skipped the cache, by why",
    MetricType::COUNTER,
    &["reason"],
);
const EVICTIONS: Spec = spec(
    "pgsidecar_cache_evictions_total",
    "Entries that left the cache, by cause",
    MetricType::COUNTER,
    &["cause"],
);
const INVALIDATIONS: Spec = spec(
    "pgsidecar_cache_invalidations_total",
    "Invalidations applied, by source",
    MetricType::COUNTER,
    &["source"],
);
const BYTES: Spec = spec(
    "pgsidecar_cache_bytes",
    "Bytes held by cache entries (keys and stored messages)",
    MetricType::GAUGE,
    &[],
);
const ENTRIES: Spec = spec(
    "pgsidecar_cache_entries",
    "Entries in the cache",
    MetricType::GAUGE,
    &[],
);
const LAG: Spec = spec(
    "pgsidecar_cache_invalidation_lag_seconds",
    "From a write's trigger (or a heartbeat) to this sidecar receiving its notification",
    MetricType::HISTOGRAM,
    &[],
);
const RATIO: Spec = spec(
    "pgsidecar_cache_hit_ratio",
    "Hits over lookups of the top fingerprints by lookups (0000000000000000: the rest)",
    MetricType::GAUGE,
    &["fingerprint"],
);

/// Reads the cache at scrape time.
pub struct CacheCollector {
    cache: Arc<Cache>,
    descs: Vec<Desc>,
}

impl CacheCollector {
    pub fn new(cache: Arc<Cache>) -> prometheus::Result<CacheCollector> {
        let specs = [
            &HITS,
            &MISSES,
            &BYPASS,
            &EVICTIONS,
            &INVALIDATIONS,
            &BYTES,
            &ENTRIES,
            &LAG,
            &RATIO,
        ];
        Ok(CacheCollector {
            cache,
            descs: specs.iter().map(|s| s.desc()).collect::<Result<_, _>>()?,
        })
    }
}

fn labelled<T: Copy>(
    spec: &Spec,
    all: &[T],
    label: fn(T) -> &'static str,
    counts: &[AtomicU64],
) -> Family {
    let mut family = Family::new(spec);
    for (value, n) in all.iter().zip(counts) {
        family.counter(&[label(*value)], n.load(Ordering::Relaxed) as f64);
    }
    family
}

impl Collector for CacheCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let s = &self.cache.stats;
        let mut hits = Family::new(&HITS);
        hits.counter(&[], s.hits.load(Ordering::Relaxed) as f64);
        let (entries, bytes) = self.cache.size();
        let mut bytes_family = Family::new(&BYTES);
        bytes_family.gauge(&[], bytes as f64);
        let mut entries_family = Family::new(&ENTRIES);
        entries_family.gauge(&[], entries as f64);
        let families = [
            hits,
            labelled(&MISSES, Refusal::ALL, Refusal::as_str, &s.misses),
            labelled(&BYPASS, Bypass::ALL, Bypass::as_str, &s.bypass),
            labelled(&EVICTIONS, Eviction::ALL, Eviction::as_str, &s.evictions),
            labelled(
                &INVALIDATIONS,
                Source::ALL,
                Source::as_str,
                &s.invalidations,
            ),
            bytes_family,
            entries_family,
            self.lag(),
            self.ratios(),
        ];
        families.into_iter().map(Family::finish).collect()
    }
}

impl CacheCollector {
    fn lag(&self) -> Family {
        let (counts, total) = self.cache.stats.lag_counts();
        let cumulative: Vec<u64> = counts
            .iter()
            .take(LAG_BOUNDS.len())
            .scan(0, |acc, n| {
                *acc += n;
                Some(*acc)
            })
            .collect();
        let sum = self.cache.stats.lag_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let mut family = Family::new(&LAG);
        family.histogram(&[], &LAG_BOUNDS, &cumulative, total, sum);
        family
    }

    fn ratios(&self) -> Family {
        let mut family = Family::new(&RATIO);
        for (fp, hits, lookups) in super::api::top_shapes(&self.cache, TOP) {
            if lookups > 0 {
                family.gauge(&[&format!("{fp:016x}")], hits as f64 / lookups as f64);
            }
        }
        family
    }
}
