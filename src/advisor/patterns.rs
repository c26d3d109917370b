//! N+1 patterns as sessions report them: one entry per (database, source fingerprint,
//! repeated fingerprint), with how often it happened, the executions per occurrence and
//! the time spent. Bounded: past `max_patterns` the least frequent pattern is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use crate::slow::unix_ms;

/// One N+1 pattern, accumulated over its occurrences.
#[derive(Debug, Clone, Serialize)]
pub struct Pattern {
    pub database: String,
    /// The statement right before the repeated one (0 when the run opened its
    /// transaction or request).
    #[serde(serialize_with = "super::report::hex")]
    pub source: u64,
    #[serde(serialize_with = "super::report::hex")]
    pub fingerprint: u64,
    pub occurrences: u64,
    /// Executions of the repeated statement, over all occurrences and at most in one.
    pub executions: u64,
    pub max_per_occurrence: u32,
    /// Server time of those executions, in milliseconds.
    pub time_ms: f64,
    /// Seen inside a transaction (else: within the window on one connection).
    pub in_transaction: bool,
    /// Grouped by the statements' sqlcommenter `traceparent`.
    pub by_traceparent: bool,
    pub last_seen_ms: i64,
}

pub struct Patterns {
    max: usize,
    total: AtomicU64,
    map: Mutex<HashMap<(String, u64, u64), Pattern>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One run that crossed the threshold, as the observer saw it.
pub struct Occurrence<'a> {
    pub database: &'a str,
    pub source: u64,
    pub fingerprint: u64,
    pub count: u32,
    pub spent_us: u64,
    pub in_transaction: bool,
    pub traced: bool,
}

impl Patterns {
    pub fn new(max: usize) -> Patterns {
        Patterns {
            max,
            total: AtomicU64::new(0),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Occurrences ever reported (`pgsidecar_n_plus_one_total`).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    #[cold]
    pub fn occurred(&self, o: Occurrence<'_>) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let key = (o.database.to_string(), o.source, o.fingerprint);
        let mut map = lock(&self.map);
        if !map.contains_key(&key) && map.len() >= self.max {
            let rarest = map
                .iter()
                .min_by_key(|(_, p)| (p.occurrences, p.last_seen_ms))
                .map(|(k, _)| k.clone());
            if let Some(k) = rarest {
                map.remove(&k);
            }
        }
        let p = map.entry(key).or_insert_with(|| Pattern {
            database: o.database.to_string(),
            source: o.source,
            fingerprint: o.fingerprint,
            occurrences: 0,
            executions: 0,
            max_per_occurrence: 0,
            time_ms: 0.0,
            in_transaction: o.in_transaction,
            by_traceparent: o.traced,
            last_seen_ms: 0,
        });
        p.occurrences += 1;
        p.executions += u64::from(o.count);
        p.max_per_occurrence = p.max_per_occurrence.max(o.count);
        p.time_ms += o.spent_us as f64 / 1000.0;
        p.in_transaction |= o.in_transaction;
        p.by_traceparent |= o.traced;
        p.last_seen_ms = unix_ms();
    }

    /// Every pattern, most time spent first.
    pub fn list(&self) -> Vec<Pattern> {
        let mut all: Vec<Pattern> = lock(&self.map).values().cloned().collect();
        all.sort_by(|a, b| {
            b.time_ms
                .total_cmp(&a.time_ms)
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        all
    }
}
