//! The advisor's shared in-memory state: what sessions feed (samples, N+1 patterns,
//! closed-loop latencies), the suggestions being followed, the last report, and the
//! counters `/metrics` shows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::config::AdvisorConfig;
use super::patterns::Patterns;
use super::report::{Report, Suggestion};
use super::samples::Samples;
use super::watch::Watch;

#[derive(Default)]
pub struct Counters {
    pub passes: AtomicU64,
    pub pass_failures: AtomicU64,
    pub last_pass_ms: AtomicU64,
    pub suggestions: AtomicI64,
    pub heuristic_suggestions: AtomicI64,
    pub drop_candidates: AtomicI64,
}

pub struct State {
    pub config: AdvisorConfig,
    pub samples: Samples,
    pub patterns: Patterns,
    pub watch: Watch,
    pub counters: Counters,
    /// Per database: whether HypoPG was there at the last pass.
    pub hypopg: Mutex<HashMap<String, bool>>,
    /// Every suggestion made so far (by database and name), for the closed loop.
    pub followed: Mutex<Vec<Suggestion>>,
    pub report: Mutex<Option<Arc<Report>>>,
    /// One pass at a time.
    pub running: tokio::sync::Mutex<()>,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    pub fn new(config: AdvisorConfig) -> State {
        State {
            samples: Samples::new(
                config.samples_per_fingerprint,
                config.max_sampled_fingerprints,
                config.resample_every,
            ),
            patterns: Patterns::new(config.max_patterns),
            watch: Watch::default(),
            counters: Counters::default(),
            hypopg: Mutex::new(HashMap::new()),
            followed: Mutex::new(Vec::new()),
            report: Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
            config,
        }
    }
}
