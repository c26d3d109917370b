//! Parameter samples: up to N recent executions per (database, fingerprint), with the
//! values they were bound with (extended protocol) or their original text (simple
//! protocol, literals included). Memory only; exported only with `explain_store_params`.
//!
//! The client path asks [`Samples::wants`] first: one atomic load in a small table of
//! per-slot counts, so a fingerprint that has its samples costs nothing until its next
//! resample turn. The map's mutex is taken only to keep a sample, never across `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::observer::Seen;
use crate::slow::CaptureInput;
use crate::stats::QueryStats;

/// Slots of the "has enough samples" table (fingerprints share a slot by hash).
const SLOTS: usize = 4096;
/// Larger statements (text plus values) are not sampled.
const MAX_SAMPLE_BYTES: usize = 16 * 1024;

/// One execution, ready to be explained again.
pub struct Sample(pub CaptureInput);

impl Sample {
    /// `None` when the statement is too large or its Bind was cut short.
    pub fn of(seen: &Seen<'_>) -> Option<Sample> {
        let size = seen.sql.len() + seen.bound.map_or(0, |(_, b)| b.len());
        if size > MAX_SAMPLE_BYTES || seen.sql.is_empty() {
            return None;
        }
        let input = match seen.bound {
            Some((types, bind)) => CaptureInput::bound(seen.sql, types, bind)?,
            None => CaptureInput::text(seen.sql),
        };
        Some(Sample(input))
    }
}

/// The samples of one shape.
#[derive(Clone)]
pub struct Kept {
    pub entry: Arc<QueryStats>,
    pub inputs: Vec<CaptureInput>,
}

pub struct Samples {
    per: usize,
    max: usize,
    resample_every: u32,
    full: Box<[AtomicU8]>,
    map: Mutex<HashMap<(String, u64), Kept>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn slot(fingerprint: u64) -> usize {
    (fingerprint as usize) % SLOTS
}

impl Samples {
    pub fn new(per: usize, max: usize, resample_every: u32) -> Samples {
        Samples {
            per: per.min(u8::MAX as usize),
            max,
            resample_every: resample_every.max(1),
            full: (0..SLOTS).map(|_| AtomicU8::new(0)).collect(),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this execution should be sampled (`calls` counts the session's
    /// statements, so resampling is spread over sessions).
    #[inline]
    pub fn wants(&self, entry: &QueryStats, calls: u32) -> bool {
        let have = self.full[slot(entry.key().fingerprint)].load(Ordering::Relaxed);
        (have as usize) < self.per || calls.is_multiple_of(self.resample_every)
    }

    #[cold]
    pub fn keep(&self, entry: &Arc<QueryStats>, sample: Option<Sample>) {
        let Some(Sample(input)) = sample else {
            return;
        };
        let fingerprint = entry.key().fingerprint;
        let key = (entry.key().database.clone(), fingerprint);
        let mut map = lock(&self.map);
        if !map.contains_key(&key) && map.len() >= self.max {
            map.retain(|_, k| !k.entry.is_evicted());
            if map.len() >= self.max {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, k)| k.entry.last_seen())
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    map.remove(&oldest);
                }
            }
        }
        let kept = map.entry(key).or_insert_with(|| Kept {
            entry: entry.clone(),
            inputs: Vec::new(),
        });
        kept.entry = entry.clone();
        kept.inputs.push(input);
        if kept.inputs.len() > self.per {
            let extra = kept.inputs.len() - self.per;
            kept.inputs.drain(..extra);
        }
        let n = kept.inputs.len().min(u8::MAX as usize) as u8;
        self.full[slot(fingerprint)].fetch_max(n, Ordering::Relaxed);
    }

    /// Every sampled shape, copied out (for a pass; the lock is held only to copy).
    pub fn all(&self) -> Vec<Kept> {
        lock(&self.map).values().cloned().collect()
    }

    /// Shapes with samples.
    pub fn shapes(&self) -> usize {
        lock(&self.map).len()
    }
}
