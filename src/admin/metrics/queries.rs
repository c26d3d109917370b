//! Statement families, computed from the statistics registry at scrape time:
//! `pgsidecar_query_duration_seconds{database, command, fingerprint}` (the top
//! `metrics_top_queries` fingerprints by all-time total time get their own series,
//! the rest of each (database, command) is `fingerprint="other"`),
//! `pgsidecar_query_info{fingerprint, query}`, `pgsidecar_queries_total{database,
//! command, outcome}`, `pgsidecar_query_errors_total{database, class}` (by SQLSTATE
//! class), `pgsidecar_query_rows_total{database, command}`,
//! `pgsidecar_fingerprints_tracked` and `pgsidecar_fingerprints_evicted_total`.
//! `command` is the aggregate kind: SELECT, INSERT, UPDATE, DELETE or OTHER.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use super::family::{Family, Spec};
use crate::state::Running;
use crate::stats::{CommandKind, ExportGroup, ExportRow};

/// Longest normalized text carried in `pgsidecar_query_info` (characters).
const INFO_TEXT_CHARS: usize = 200;

const DURATION: Spec = Spec {
    name: "pgsidecar_query_duration_seconds",
    help: "Statement duration, from arrival at the proxy to completion",
    kind: MetricType::HISTOGRAM,
    labels: &["database", "command", "fingerprint"],
};
const INFO: Spec = Spec {
    name: "pgsidecar_query_info",
    help: "Normalized text of the fingerprints that have their own duration series",
    kind: MetricType::GAUGE,
    labels: &["fingerprint", "query"],
};
const QUERIES: Spec = Spec {
    name: "pgsidecar_queries_total",
    help: "Statements completed, by outcome (ok or error)",
    kind: MetricType::COUNTER,
    labels: &["database", "command", "outcome"],
};
const ERRORS: Spec = Spec {
    name: "pgsidecar_query_errors_total",
    help: "Statements that failed, by SQLSTATE class (first two characters)",
    kind: MetricType::COUNTER,
    labels: &["database", "class"],
};
const ROWS: Spec = Spec {
    name: "pgsidecar_query_rows_total",
    help: "Rows returned or affected by statements",
    kind: MetricType::COUNTER,
    labels: &["database", "command"],
};
const TRACKED: Spec = Spec {
    name: "pgsidecar_fingerprints_tracked",
    help: "Query shapes (database, user, fingerprint) with statistics now",
    kind: MetricType::GAUGE,
    labels: &[],
};
const EVICTED: Spec = Spec {
    name: "pgsidecar_fingerprints_evicted_total",
    help: "Query shapes dropped to stay within max_fingerprints",
    kind: MetricType::COUNTER,
    labels: &[],
};

pub const SPECS: [&Spec; 7] = [
    &DURATION, &INFO, &QUERIES, &ERRORS, &ROWS, &TRACKED, &EVICTED,
];

type Group = (String, CommandKind);

/// Bucket upper bounds in seconds (`+Inf` is implicit), and the same in microseconds.
pub const BOUNDS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// The statistics histograms end a bucket exactly at each of these, so every `le` count
/// is exact (a value 1 µs above a bound is counted above it).
const BOUNDS_US: [u64; 15] = crate::stats::EXPORT_BOUNDS_US;

/// One exported duration series: exact counts from the statistics' histograms.
#[derive(Debug, Clone, Default, PartialEq)]
struct Series {
    calls: u64,
    sum_us: u64,
    buckets: Vec<u64>,
}

impl Series {
    fn add(&mut self, calls: u64, sum_us: u64, buckets: &[u64]) {
        self.calls += calls;
        self.sum_us += sum_us;
        self.buckets.resize(buckets.len(), 0);
        for (mine, theirs) in self.buckets.iter_mut().zip(buckets) {
            *mine += theirs;
        }
    }

    /// What is left of `whole` once `part` is taken out (never below zero).
    fn remainder(whole: &ExportGroup, part: Option<&Series>) -> Series {
        let empty = Series::default();
        let part = part.unwrap_or(&empty);
        let buckets = whole
            .buckets
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(part.buckets.get(i).copied().unwrap_or(0)))
            .collect();
        Series {
            calls: whole.calls.saturating_sub(part.calls),
            sum_us: whole.total_us.saturating_sub(part.sum_us),
            buckets,
        }
    }
}

pub struct QueryCollector {
    state: Arc<Running>,
    descs: Vec<Desc>,
}

impl QueryCollector {
    pub fn new(state: Arc<Running>) -> prometheus::Result<QueryCollector> {
        Ok(QueryCollector {
            state,
            descs: SPECS.iter().map(|s| s.desc()).collect::<Result<_, _>>()?,
        })
    }
}

impl Collector for QueryCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(measure) = &self.state.measure else {
            return Vec::new();
        };
        let registry = &measure.registry;
        let now = self.state.stats_now();
        let (rows, groups) = registry.export(now, &BOUNDS_US);
        let top = self.state.config().metrics_top_queries;
        let (duration, info) = durations(&rows, &groups, top);
        let mut tracked = Family::new(&TRACKED);
        tracked.gauge(&[], registry.tracked() as f64);
        let mut evicted = Family::new(&EVICTED);
        evicted.counter(&[], registry.evicted() as f64);
        let (queries, row_counts) = totals(&groups);
        let errors = error_classes(&groups);
        [
            duration, info, queries, errors, row_counts, tracked, evicted,
        ]
        .into_iter()
        .map(Family::finish)
        .collect()
    }
}

fn totals(groups: &[ExportGroup]) -> (Family, Family) {
    let mut queries = Family::new(&QUERIES);
    let mut rows = Family::new(&ROWS);
    for g in groups {
        let (db, cmd) = (g.database.as_str(), g.command.as_str());
        queries.counter(&[db, cmd, "ok"], g.calls.saturating_sub(g.errors) as f64);
        queries.counter(&[db, cmd, "error"], g.errors as f64);
        rows.counter(&[db, cmd], g.rows as f64);
    }
    (queries, rows)
}

/// Errors per (database, SQLSTATE class), summed over command kinds.
fn error_classes(groups: &[ExportGroup]) -> Family {
    let mut sums: std::collections::BTreeMap<(&str, &str), u64> = Default::default();
    for g in groups {
        for (class, n) in &g.classes {
            *sums
                .entry((g.database.as_str(), class.as_str()))
                .or_default() += n;
        }
    }
    let mut family = Family::new(&ERRORS);
    for ((db, class), n) in sums {
        family.counter(&[db, class], n as f64);
    }
    family
}

/// Per (database, command, fingerprint) series (users summed), the top `top` by total
/// time, most first.
fn top_series(rows: &[ExportRow], top: usize) -> Vec<((Group, u64), Series, &ExportRow)> {
    let mut by_series: HashMap<(Group, u64), (Series, &ExportRow)> = HashMap::new();
    for r in rows.iter().filter(|r| r.calls > 0) {
        let key = ((r.key.database.clone(), r.meta.command), r.key.fingerprint);
        let slot = by_series
            .entry(key)
            .or_insert_with(|| (Series::default(), r));
        slot.0.add(r.calls, r.total_us, &r.buckets);
    }
    let mut ranked: Vec<_> = by_series.into_iter().map(|(k, (s, r))| (k, s, r)).collect();
    ranked.sort_by(|a, b| b.1.sum_us.cmp(&a.1.sum_us).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(top);
    ranked
}

/// The duration histograms (top fingerprints, then `other` per database and command
/// holding the rest, evicted entries included) and the info family.
fn durations(rows: &[ExportRow], groups: &[ExportGroup], top: usize) -> (Family, Family) {
    let mut duration = Family::new(&DURATION);
    let mut info = Family::new(&INFO);
    let mut info_done = std::collections::HashSet::new();
    let mut taken: HashMap<Group, Series> = HashMap::new();
    for ((group, fingerprint), series, row) in top_series(rows, top) {
        taken
            .entry(group.clone())
            .or_default()
            .add(series.calls, series.sum_us, &series.buckets);
        let hex = format!("{fingerprint:016x}");
        emit(&mut duration, &group, &hex, &series);
        if info_done.insert(fingerprint) {
            info.gauge(&[&hex, &truncate(&row.meta.normalized)], 1.0);
        }
    }
    for g in groups {
        let group = (g.database.clone(), g.command);
        let other = Series::remainder(g, taken.get(&group));
        emit(&mut duration, &group, "other", &other);
    }
    (duration, info)
}

fn emit(family: &mut Family, group: &Group, fingerprint: &str, series: &Series) {
    let labels = [group.0.as_str(), group.1.as_str(), fingerprint];
    let sum = series.sum_us as f64 / 1e6;
    family.histogram(&labels, &BOUNDS, &series.buckets, series.calls, sum);
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(INFO_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes_are_summed_over_commands_per_database() {
        let group = |database: &str, command, classes: &[(&str, u64)]| ExportGroup {
            database: database.into(),
            command,
            calls: 0,
            errors: classes.iter().map(|c| c.1).sum(),
            rows: 0,
            total_us: 0,
            buckets: Vec::new(),
            classes: classes.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
        };
        let groups = [
            group("app", CommandKind::Select, &[("42", 2), ("57", 1)]),
            group("app", CommandKind::Insert, &[("23", 4), ("42", 1)]),
            group("other", CommandKind::Select, &[("42", 7)]),
        ];
        let family = error_classes(&groups).finish();
        let samples: Vec<(String, String, f64)> = family
            .get_metric()
            .iter()
            .map(|m| {
                let l = m.get_label();
                let (db, class) = (l[0].value().to_string(), l[1].value().to_string());
                (db, class, m.get_counter().get_value())
            })
            .collect();
        let want = [
            ("app", "23", 4.0),
            ("app", "42", 3.0),
            ("app", "57", 1.0),
            ("other", "42", 7.0),
        ];
        let want: Vec<_> = (want.iter())
            .map(|(d, c, n)| (d.to_string(), c.to_string(), *n))
            .collect();
        assert_eq!(samples, want);
    }

    #[test]
    fn truncates_on_a_character_boundary() {
        assert_eq!(truncate("SELECT 1"), "SELECT 1");
        let long = "é".repeat(INFO_TEXT_CHARS + 5);
        let cut = truncate(&long);
        assert_eq!(cut.chars().count(), INFO_TEXT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
