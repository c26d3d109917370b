//! The closed loop's measurements: for each fingerprint a suggestion serves, the
//! latency of its executions before the suggested index appeared and after, from the
//! proxy's own timing of every execution.
//!
//! The client path tests one bit per fingerprint (a 4096-bit table, by hash); only
//! watched shapes take the mutex, to add one value to a histogram.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use crate::stats::{Histogram, QueryStats};

const BITS: usize = 4096;

#[derive(Default)]
struct Latency {
    before: Histogram,
    after: Histogram,
    applied: bool,
}

/// p50/p95 and how many executions they come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Measured {
    pub calls: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

impl Measured {
    fn of(h: &Histogram) -> Measured {
        if h.count() == 0 {
            return Measured::default();
        }
        let [p50, p95] = h.quantiles([0.5, 0.95]);
        Measured {
            calls: h.count(),
            p50_ms: p50 as f64 / 1000.0,
            p95_ms: p95 as f64 / 1000.0,
        }
    }
}

pub struct Watch {
    bits: Box<[AtomicU64]>,
    /// fingerprint -> database -> latencies.
    map: Mutex<HashMap<u64, HashMap<String, Latency>>>,
}

impl Default for Watch {
    fn default() -> Watch {
        Watch {
            bits: (0..BITS / 64).map(|_| AtomicU64::new(0)).collect(),
            map: Mutex::new(HashMap::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bit(fingerprint: u64) -> (usize, u64) {
    let b = (fingerprint as usize) % BITS;
    (b / 64, 1u64 << (b % 64))
}

impl Watch {
    #[inline]
    pub fn record(&self, entry: &QueryStats, micros: u64) {
        let fingerprint = entry.key().fingerprint;
        let (word, mask) = bit(fingerprint);
        if self.bits[word].load(Ordering::Relaxed) & mask == 0 {
            return;
        }
        self.record_watched(entry, micros);
    }

    #[cold]
    fn record_watched(&self, entry: &QueryStats, micros: u64) {
        let key = entry.key();
        let mut map = lock(&self.map);
        let Some(l) = map
            .get_mut(&key.fingerprint)
            .and_then(|dbs| dbs.get_mut(key.database.as_str()))
        else {
            return;
        };
        if l.applied {
            l.after.record(micros);
        } else {
            l.before.record(micros);
        }
    }

    /// Starts (or keeps) watching a shape; its "before" collects from now on.
    pub fn watch(&self, database: &str, fingerprint: u64) {
        let mut map = lock(&self.map);
        let dbs = map.entry(fingerprint).or_default();
        if !dbs.contains_key(database) {
            dbs.insert(database.to_string(), Latency::default());
        }
        let (word, mask) = bit(fingerprint);
        self.bits[word].fetch_or(mask, Ordering::Relaxed);
    }

    /// The index serving this shape appeared: later executions count as "after".
    pub fn applied(&self, database: &str, fingerprint: u64) {
        let mut map = lock(&self.map);
        if let Some(l) = map
            .get_mut(&fingerprint)
            .and_then(|dbs| dbs.get_mut(database))
        {
            l.applied = true;
        }
    }

    /// (before, after) for a watched shape.
    pub fn measured(&self, database: &str, fingerprint: u64) -> Option<(Measured, Measured)> {
        let map = lock(&self.map);
        let l = map.get(&fingerprint)?.get(database)?;
        Some((Measured::of(&l.before), Measured::of(&l.after)))
    }
}
