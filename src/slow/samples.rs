//! What later captures need, kept per (database, fingerprint): the last sampled slow
//! execution (its user, text and bound values, so a capture on demand or after a
//! latency shift can re-plan it) and the 5-minute p50 when its last plan was captured
//! (the baseline a latency shift is measured against). Bounded; the values never
//! leave memory unless `explain_store_params` stores them with a plan.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::capture::CaptureInput;
use crate::stats::QueryStats;

/// Shapes remembered at most; beyond, entries the statistics evicted are swept and, if
/// that frees nothing, new shapes are not remembered until some are.
const KEEP: usize = 10_000;

/// Inputs larger than this (text plus values) are not remembered: 10,000 shapes of
/// huge statements must not pin gigabytes. Their own execution is still captured.
const MAX_SAMPLE_BYTES: usize = 64 * 1024;

/// The last sampled execution of one shape.
#[derive(Clone)]
pub struct Sampled {
    pub entry: Arc<QueryStats>,
    pub input: CaptureInput,
}

type Key = (String, u64);

/// Both maps sit behind std mutexes: they are held for a map operation only, never
/// across an `.await`.
#[derive(Default)]
pub struct Samples {
    last: Mutex<HashMap<Key, Sampled>>,
    /// 5-minute p50 (µs) when the shape's last plan was captured.
    baselines: Mutex<HashMap<Key, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Samples {
    pub fn remember(&self, entry: &Arc<QueryStats>, input: &CaptureInput) {
        let size = input.sql.len() + input.params.iter().flatten().map(Vec::len).sum::<usize>();
        if size > MAX_SAMPLE_BYTES {
            return;
        }
        let key = (entry.key().database.clone(), entry.key().fingerprint);
        let mut last = lock(&self.last);
        if last.len() >= KEEP && !last.contains_key(&key) {
            last.retain(|_, s| !s.entry.is_evicted());
            if last.len() >= KEEP {
                return;
            }
        }
        let sampled = Sampled {
            entry: entry.clone(),
            input: input.clone(),
        };
        last.insert(key, sampled);
    }

    /// The last sample of `fingerprint` in `database`, or in any database when `None`
    /// (the busiest entry's, when several databases ran it).
    pub fn last(&self, database: Option<&str>, fingerprint: u64) -> Option<Sampled> {
        let last = lock(&self.last);
        match database {
            Some(db) => last.get(&(db.to_string(), fingerprint)).cloned(),
            None => last
                .iter()
                .filter(|((_, fp), _)| *fp == fingerprint)
                .max_by_key(|((db, _), s)| (s.entry.last_seen(), db.clone()))
                .map(|(_, s)| s.clone()),
        }
    }

    pub fn set_baseline(&self, database: &str, fingerprint: u64, p50_us: u64) {
        let mut baselines = lock(&self.baselines);
        if baselines.len() >= KEEP {
            let last = lock(&self.last);
            baselines.retain(|k, _| last.contains_key(k));
        }
        if baselines.len() < KEEP {
            baselines.insert((database.to_string(), fingerprint), p50_us);
        }
    }

    /// Every shape with a baseline and a sample to re-plan: `(sample, baseline p50 µs)`.
    pub fn with_baselines(&self) -> Vec<(Sampled, u64)> {
        let baselines: Vec<(Key, u64)> = lock(&self.baselines)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let last = lock(&self.last);
        baselines
            .into_iter()
            .filter_map(|(k, p50)| last.get(&k).map(|s| (s.clone(), p50)))
            .collect()
    }
}

/// True when `now_us` moved from `baseline_us` by more than `factor` either way.
pub fn shifted(baseline_us: u64, now_us: u64, factor: f64) -> bool {
    if factor <= 1.0 || baseline_us == 0 || now_us == 0 {
        return false;
    }
    let ratio = now_us as f64 / baseline_us as f64;
    ratio > factor || ratio < 1.0 / factor
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::stats::{CommandKind, QueryMeta, Registry, StatKey};

    fn entry(registry: &Registry, database: &str, fingerprint: u64) -> Arc<QueryStats> {
        let key = StatKey {
            database: database.into(),
            user: "u".into(),
            fingerprint,
        };
        let meta = || QueryMeta {
            normalized: "SELECT $1".into(),
            command: CommandKind::Select,
            command_label: "SELECT".into(),
            tables: Vec::new(),
        };
        registry.entry(&key, meta, 0)
    }

    #[test]
    fn remembers_the_last_small_sample_per_database_and_shape() {
        let registry = Registry::new(10);
        let samples = Samples::default();
        let a = entry(&registry, "app", 7);
        samples.remember(&a, &CaptureInput::text("SELECT 1"));
        samples.remember(&a, &CaptureInput::text("SELECT 2"));
        let huge = CaptureInput::text(&"x".repeat(MAX_SAMPLE_BYTES + 1));
        samples.remember(&a, &huge);
        let last = samples.last(Some("app"), 7).expect("kept");
        assert_eq!(last.input.sql, "SELECT 2", "the last one that fits");
        assert!(samples.last(Some("other"), 7).is_none());
        assert_eq!(samples.last(None, 7).unwrap().input.sql, "SELECT 2");
        assert!(samples.with_baselines().is_empty());
        samples.set_baseline("app", 7, 1_000);
        assert_eq!(samples.with_baselines()[0].1, 1_000);
    }

    #[test]
    fn shifts_beyond_the_factor_either_way() {
        assert!(shifted(627_000, 2_800, 2.0));
        assert!(shifted(1_000, 2_001, 2.0));
        assert!(!shifted(1_000, 2_000, 2.0));
        assert!(!shifted(1_000, 501, 2.0));
        assert!(shifted(1_000, 499, 2.0));
        assert!(!shifted(1_000, 1_000_000, 0.0), "0 is off");
        assert!(!shifted(0, 5, 2.0), "no baseline");
    }
}
