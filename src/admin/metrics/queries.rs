//! Statement families, computed from the statistics registry at scrape time:
//! `pgsidecar_query_duration_seconds{database, command, fingerprint}` (the top
//! `metrics_top_queries` fingerprints by all-time total time get their own series,
//! the rest of each (database, command) is `fingerprint="other"`),
//! `pgsidecar_query_info{fingerprint, query}`, `pgsidecar_queries_total{database,
//! command, outcome}`, `pgsidecar_query_rows_total{database, command}`,
//! `pgsidecar_fingerprints_tracked` and `pgsidecar_fingerprints_evicted_total`.
//! `command` is the aggregate kind: SELECT, INSERT, UPDATE, DELETE or OTHER.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use super::duration::{DurationBook, Series, Shape, Source, BOUNDS};
use super::family::{Family, Spec};
use crate::app::Shared;
use crate::stats::{AggregateSnapshot, CommandKind, QuerySnapshot, StatKey, Window};

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

pub const SPECS: [&Spec; 6] = [&DURATION, &INFO, &QUERIES, &ROWS, &TRACKED, &EVICTED];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SeriesKey {
    Entry(StatKey),
    Other(String, CommandKind),
}

/// A (database, command kind) group.
type Group = (String, CommandKind);

pub struct QueryCollector {
    shared: Arc<Shared>,
    descs: Vec<Desc>,
    book: Mutex<DurationBook<SeriesKey>>,
}

impl QueryCollector {
    pub fn new(shared: Arc<Shared>) -> prometheus::Result<QueryCollector> {
        Ok(QueryCollector {
            shared,
            descs: SPECS.iter().map(|s| s.desc()).collect::<Result<_, _>>()?,
            book: Mutex::new(DurationBook::default()),
        })
    }
}

impl Collector for QueryCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(measure) = &self.shared.measure else {
            return Vec::new();
        };
        let registry = &measure.registry;
        let now = measure.epoch.elapsed().as_secs();
        // Entries before aggregates: an aggregate then holds at least its entries' calls.
        let all = registry.snapshot(Window::All, now);
        let recent = registry.snapshot(Window::Min1, now);
        let aggregates = registry.aggregates(Window::All, now);
        let recent_aggregates = registry.aggregates(Window::Min1, now);
        let top = self.shared.config().metrics_top_queries;
        let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
        let (duration, info) = durations(
            &mut book,
            &all,
            &recent,
            &aggregates,
            &recent_aggregates,
            top,
        );
        let mut tracked = Family::new(&TRACKED);
        tracked.gauge(&[], registry.tracked() as f64);
        let mut evicted = Family::new(&EVICTED);
        evicted.counter(&[], registry.evicted() as f64);
        let (queries, rows) = totals(&aggregates);
        [duration, info, queries, rows, tracked, evicted]
            .into_iter()
            .map(Family::finish)
            .collect()
    }
}

/// `pgsidecar_queries_total` and `pgsidecar_query_rows_total` from the aggregates,
/// which count every statement, including those of evicted entries.
fn totals(aggregates: &[AggregateSnapshot]) -> (Family, Family) {
    let mut queries = Family::new(&QUERIES);
    let mut rows = Family::new(&ROWS);
    for a in aggregates {
        let (db, cmd) = (a.database.as_str(), a.command.as_str());
        queries.counter(&[db, cmd, "ok"], a.calls.saturating_sub(a.errors) as f64);
        queries.counter(&[db, cmd, "error"], a.errors as f64);
        rows.counter(&[db, cmd], a.rows as f64);
    }
    (queries, rows)
}

/// The `top` (database, command, fingerprint) series by all-time total time, with the
/// entries (one per user) that make up each.
fn top_series(all: &[QuerySnapshot], top: usize) -> BTreeMap<(Group, u64), Vec<&QuerySnapshot>> {
    let mut by_series: HashMap<(Group, u64), Vec<&QuerySnapshot>> = HashMap::new();
    for s in all.iter().filter(|s| s.calls > 0) {
        let group = (s.key.database.clone(), s.meta.command);
        by_series
            .entry((group, s.key.fingerprint))
            .or_default()
            .push(s);
    }
    let mut ranked: Vec<((Group, u64), Vec<&QuerySnapshot>)> = by_series.into_iter().collect();
    let total = |entries: &[&QuerySnapshot]| entries.iter().map(|s| s.total_us).sum::<u64>();
    ranked.sort_by(|a, b| total(&b.1).cmp(&total(&a.1)).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(top);
    ranked.into_iter().collect()
}

/// The duration histograms and the info family.
fn durations(
    book: &mut DurationBook<SeriesKey>,
    all: &[QuerySnapshot],
    recent: &[QuerySnapshot],
    aggregates: &[AggregateSnapshot],
    recent_aggregates: &[AggregateSnapshot],
    top: usize,
) -> (Family, Family) {
    let recent: HashMap<&StatKey, Shape> = recent
        .iter()
        .map(|s| (&s.key, Shape::of_query(s)))
        .collect();
    let recent_groups: HashMap<Group, Shape> = (recent_aggregates.iter())
        .map(|a| ((a.database.clone(), a.command), Shape::of_aggregate(a)))
        .collect();
    let mut duration = Family::new(&DURATION);
    let mut info = Family::new(&INFO);
    let mut info_done = std::collections::HashSet::new();
    // What the top series took from each group, for its "other" remainder.
    let mut taken: HashMap<Group, (u64, u64)> = HashMap::new();
    book.begin();
    for ((group, fingerprint), entries) in top_series(all, top) {
        let mut series = Series::default();
        for s in &entries {
            let src = Source {
                calls: s.calls,
                sum_us: s.total_us,
                recent: recent.get(&s.key).copied().unwrap_or_default(),
                all: Shape::of_query(s),
            };
            series.add(book.observe(SeriesKey::Entry(s.key.clone()), &src));
        }
        let used = taken.entry(group.clone()).or_default();
        *used = (used.0 + series.calls, used.1 + series.sum_us);
        let hex = format!("{fingerprint:016x}");
        emit(&mut duration, &group, &hex, &series);
        if info_done.insert(fingerprint) {
            info.gauge(&[&hex, &truncate(&entries[0].meta.normalized)], 1.0);
        }
    }
    for a in aggregates {
        let group = (a.database.clone(), a.command);
        let (calls, sum_us) = taken.get(&group).copied().unwrap_or_default();
        let src = Source {
            calls: a.calls.saturating_sub(calls),
            sum_us: a.total_us.saturating_sub(sum_us),
            recent: recent_groups.get(&group).copied().unwrap_or_default(),
            all: Shape::of_aggregate(a),
        };
        let series = book.observe(SeriesKey::Other(group.0.clone(), group.1), &src);
        emit(&mut duration, &group, "other", series);
    }
    book.sweep();
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
    fn truncates_on_a_character_boundary() {
        assert_eq!(truncate("SELECT 1"), "SELECT 1");
        let long = "é".repeat(INFO_TEXT_CHARS + 5);
        let cut = truncate(&long);
        assert_eq!(cut.chars().count(), INFO_TEXT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
