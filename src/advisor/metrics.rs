//! The advisor's `/metrics` families, read at scrape time:
//! `pgsidecar_n_plus_one_total` (N+1 occurrences), `pgsidecar_advisor_passes_total`,
//! `pgsidecar_advisor_pass_failures_total`, `pgsidecar_advisor_last_pass_seconds`,
//! `pgsidecar_advisor_suggestions{validated}`, `pgsidecar_advisor_drop_candidates`,
//! `pgsidecar_advisor_sampled_statements`, and `pgsidecar_advisor_hypopg{database}`
//! (1 when HypoPG costs suggestions there, 0 when they fall back to the heuristic).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, IntCounter, IntGauge, IntGaugeVec, Opts};

use super::state::lock;
use super::Advisor;

pub struct AdvisorCollector {
    advisor: Arc<Advisor>,
    n_plus_one: IntCounter,
    passes: IntCounter,
    failures: IntCounter,
    last_pass: Gauge,
    suggestions: IntGaugeVec,
    drops: IntGauge,
    sampled: IntGauge,
    hypopg: IntGaugeVec,
    descs: Vec<Desc>,
}

/// Registers the advisor's families; nothing when the advisor is off.
pub fn register(
    registry: &prometheus::Registry,
    advisor: Option<&Arc<Advisor>>,
) -> prometheus::Result<()> {
    match advisor {
        Some(a) => registry.register(Box::new(AdvisorCollector::new(a.clone())?)),
        None => Ok(()),
    }
}

impl AdvisorCollector {
    fn new(advisor: Arc<Advisor>) -> prometheus::Result<AdvisorCollector> {
        let n_plus_one = IntCounter::new("pgsidecar_n_plus_one_total", "N+1 patterns seen: one fingerprint run n_plus_one_threshold times or more with different parameters after another statement")?;
        let passes = IntCounter::new("pgsidecar_advisor_passes_total", "Index advisor passes run")?;
        let failures = IntCounter::new(
            "pgsidecar_advisor_pass_failures_total",
            "Databases an advisor pass could not analyse",
        )?;
        let last_pass = Gauge::new(
            "pgsidecar_advisor_last_pass_seconds",
            "How long the last advisor pass took",
        )?;
        let suggestions = IntGaugeVec::new(
            Opts::new("pgsidecar_advisor_suggestions", "Indexes suggested by the last pass; validated=\"false\" are heuristic (GIN, or no HypoPG)"),
            &["validated"],
        )?;
        let drops = IntGauge::new(
            "pgsidecar_advisor_drop_candidates",
            "Unused, duplicate or invalid indexes found by the last pass",
        )?;
        let sampled = IntGauge::new(
            "pgsidecar_advisor_sampled_statements",
            "Statement shapes with parameter samples in memory",
        )?;
        let hypopg = IntGaugeVec::new(
            Opts::new("pgsidecar_advisor_hypopg", "1 when HypoPG validates suggestions in the database, 0 when the advisor falls back to heuristics"),
            &["database"],
        )?;
        let mut descs = Vec::new();
        for c in [
            &n_plus_one as &dyn Collector,
            &passes,
            &failures,
            &last_pass,
            &suggestions,
            &drops,
            &sampled,
            &hypopg,
        ] {
            descs.extend(c.desc().into_iter().cloned());
        }
        Ok(AdvisorCollector {
            advisor,
            n_plus_one,
            passes,
            failures,
            last_pass,
            suggestions,
            drops,
            sampled,
            hypopg,
            descs,
        })
    }
}

impl Collector for AdvisorCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let state = self.advisor.state();
        let c = &state.counters;
        let set = |counter: &IntCounter, v: u64| counter.inc_by(v.saturating_sub(counter.get()));
        set(&self.n_plus_one, state.patterns.total());
        set(&self.passes, c.passes.load(Relaxed));
        set(&self.failures, c.pass_failures.load(Relaxed));
        self.last_pass
            .set(c.last_pass_ms.load(Relaxed) as f64 / 1000.0);
        let all = c.suggestions.load(Relaxed);
        let heuristic = c.heuristic_suggestions.load(Relaxed);
        self.suggestions
            .with_label_values(&["true"])
            .set(all - heuristic);
        self.suggestions
            .with_label_values(&["false"])
            .set(heuristic);
        self.drops.set(c.drop_candidates.load(Relaxed));
        self.sampled.set(state.samples.shapes() as i64);
        self.hypopg.reset();
        for (db, on) in lock(&state.hypopg).iter() {
            self.hypopg.with_label_values(&[db]).set(i64::from(*on));
        }
        let mut out = Vec::new();
        for m in [
            &self.n_plus_one as &dyn Collector,
            &self.passes,
            &self.failures,
            &self.last_pass,
            &self.suggestions,
            &self.drops,
            &self.sampled,
            &self.hypopg,
        ] {
            out.extend(m.collect());
        }
        out
    }
}
