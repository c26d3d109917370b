//! Slow-statement families: `pgsidecar_slow_queries_total{level}`,
//! `pgsidecar_alerts_total`, `pgsidecar_alerts_suppressed_total`,
//! `pgsidecar_slow_samples_dropped_total`, `pgsidecar_plans_captured_total`,
//! `pgsidecar_plan_capture_failures_total`, `pgsidecar_plan_changes_total`,
//! `pgsidecar_alert_webhook_failures_total`, `pgsidecar_jobs_total{kind, outcome}`
//! (background jobs this sidecar ran: done or failed), `pgsidecar_store_up`,
//! `pgsidecar_store_enabled` (the configuration asks for a store: with `store_up`, what
//! tells "store down" from "memory only"), `pgsidecar_store_backlog` and
//! `pgsidecar_store_backlog_dropped_total`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use super::family::{Family, Spec};
use crate::slow::{SlowCounters, JOB_KINDS};
use crate::state::Running;

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
const PLAIN: [Plain; 9] = [
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
    (
        counter(
            "pgsidecar_store_backlog_dropped_total",
            "Slow events and alerts dropped from the store backlog while the store was down (kept in memory only)",
            &[],
        ),
        |c| &c.store_dropped,
    ),
];
const STORE_UP: Spec = Spec {
    name: "pgsidecar_store_up",
    help: "1 when the store is connected, migrated and answered its last health check",
    kind: MetricType::GAUGE,
    labels: &[],
};
const STORE_BACKLOG: Spec = Spec {
    name: "pgsidecar_store_backlog",
    help: "Slow events and alerts waiting to be written to the store",
    kind: MetricType::GAUGE,
    labels: &[],
};

const JOBS: Spec = counter(
    "pgsidecar_jobs_total",
    "Background jobs (EXPLAIN captures, webhooks, flushes, retention) this sidecar ran, by outcome",
    &["kind", "outcome"],
);
const STORE_ENABLED: Spec = Spec {
    name: "pgsidecar_store_enabled",
    help: "1 when the configuration asks for a store (store = true)",
    kind: MetricType::GAUGE,
    labels: &[],
};

pub struct SlowCollector {
    state: Arc<Running>,
    descs: Vec<Desc>,
}

impl SlowCollector {
    pub fn new(state: Arc<Running>) -> prometheus::Result<SlowCollector> {
        let specs = [&SLOW, &STORE_UP, &JOBS, &STORE_ENABLED, &STORE_BACKLOG]
            .into_iter()
            .chain(PLAIN.iter().map(|p| &p.0));
        Ok(SlowCollector {
            state,
            descs: specs.map(|s| s.desc()).collect::<Result<_, _>>()?,
        })
    }
}

impl Collector for SlowCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let c = &self.state.slow.counters;
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
        let usable = self.state.slow_ctx.store.usable().is_some();
        up.gauge(&[], if usable { 1.0 } else { 0.0 });
        families.push(up);
        let mut enabled = Family::new(&STORE_ENABLED);
        let on = self.state.config().store;
        enabled.gauge(&[], if on { 1.0 } else { 0.0 });
        families.push(enabled);
        let mut jobs = Family::new(&JOBS);
        for (kind, slots) in JOB_KINDS.iter().zip(&c.jobs) {
            for (outcome, n) in ["done", "failed"].iter().zip(slots) {
                jobs.counter(&[kind, outcome], n.load(Ordering::Relaxed) as f64);
            }
        }
        families.push(jobs);
        let mut backlog = Family::new(&STORE_BACKLOG);
        backlog.gauge(&[], c.store_backlog.load(Ordering::Relaxed) as f64);
        families.push(backlog);
        families.into_iter().map(Family::finish).collect()
    }
}
