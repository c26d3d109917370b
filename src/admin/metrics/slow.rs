//! Slow-statement families: `pgsidecar_slow_queries_total{level}`,
//! `pgsidecar_alerts_total`, `pgsidecar_alerts_suppressed_total`,
//! `pgsidecar_slow_samples_dropped_total`, `pgsidecar_plans_captured_total`,
//! `pgsidecar_plan_capture_failures_total`, `pgsidecar_plan_changes_total`,
//! `pgsidecar_alert_webhook_failures_total` and `pgsidecar_store_up`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use super::family::{Family, Spec};
use crate::app::Shared;
use crate::slow::SlowCounters;

const fn counter(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Spec {
    Spec {
        name,
        help,
        kind: MetricType::COUNTER,
        labels,
    }
}

const SLOW: Spec = counter(
    "pgsidecar_slow_queries_total",
    "Statements over slow_warning_ms, by level (critical: over slow_critical_ms)",
    &["level"],
);
/// Plain counters: the spec and the field of [`SlowCounters`] it reads.
type Plain = (Spec, fn(&SlowCounters) -> &AtomicU64);
const PLAIN: [Plain; 8] = [
    (
        counter("pgsidecar_alerts_total", "Slow-query alerts fired", &[]),
        |c| &c.alerts,
    ),
    (
        counter(
            "pgsidecar_slow_log_suppressed_total",
            "Slow executions not written to the log one by one (the first per fingerprint per slow_log_interval is)",
            &[],
        ),
        |c| &c.log_suppressed,
    ),
    (
        counter(
            "pgsidecar_alerts_suppressed_total",
            "Alerts not fired because the fingerprint was in its cooldown",
            &[],
        ),
        |c| &c.suppressed,
    ),
    (
        counter(
            "pgsidecar_slow_samples_dropped_total",
            "Slow executions not processed because the worker's queue was full",
            &[],
        ),
        |c| &c.dropped,
    ),
    (
        counter(
            "pgsidecar_plans_captured_total",
            "EXPLAIN plans captured",
            &[],
        ),
        |c| &c.plans_captured,
    ),
    (
        counter(
            "pgsidecar_plan_capture_failures_total",
            "EXPLAIN captures that failed",
            &[],
        ),
        |c| &c.plan_failures,
    ),
    (
        counter(
            "pgsidecar_plan_changes_total",
            "Captured plans whose shape differs from the fingerprint's previous plan",
            &[],
        ),
        |c| &c.plan_changes,
    ),
    (
        counter(
            "pgsidecar_alert_webhook_failures_total",
            "Alert webhooks given up on after their retries",
            &[],
        ),
        |c| &c.webhook_failures,
    ),
];
const STORE_UP: Spec = Spec {
    name: "pgsidecar_store_up",
    help: "1 when the store is connected and migrated, 0 in memory-only mode",
    kind: MetricType::GAUGE,
    labels: &[],
};

pub struct SlowCollector {
    shared: Arc<Shared>,
    descs: Vec<Desc>,
}

impl SlowCollector {
    pub fn new(shared: Arc<Shared>) -> prometheus::Result<SlowCollector> {
        let specs = [&SLOW, &STORE_UP]
            .into_iter()
            .chain(PLAIN.iter().map(|p| &p.0));
        Ok(SlowCollector {
            shared,
            descs: specs.map(|s| s.desc()).collect::<Result<_, _>>()?,
        })
    }
}

impl Collector for SlowCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let c = &self.shared.slow.counters;
        let mut slow = Family::new(&SLOW);
        slow.counter(&["warning"], c.warning.load(Ordering::Relaxed) as f64);
        slow.counter(&["critical"], c.critical.load(Ordering::Relaxed) as f64);
        let mut families = vec![slow];
        for (spec, field) in &PLAIN {
            let mut family = Family::new(spec);
            family.counter(&[], field(c).load(Ordering::Relaxed) as f64);
            families.push(family);
        }
        let mut up = Family::new(&STORE_UP);
        up.gauge(
            &[],
            if self.shared.store.get().is_some() {
                1.0
            } else {
                0.0
            },
        );
        families.push(up);
        families.into_iter().map(Family::finish).collect()
    }
}
