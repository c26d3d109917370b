//! The tracker's side of slow-statement detection: compare, count the streak, and hand
//! a slow execution (with what EXPLAIN needs) to the slow worker.

use std::sync::Arc;

use super::queue::{Queue, Source};
use crate::slow::{unix_ms, CaptureInput, Level, Slow, SlowSample};
use crate::stats::QueryStats;

/// What a session needs to report slow executions.
pub struct SlowHook {
    pub slow: Arc<Slow>,
    /// Anything faster than this is not slow for this session's database, whatever
    /// its fingerprint (fixed at login; reloads apply to new sessions).
    pub floor_us: u64,
    pub application_name: Arc<str>,
}

impl SlowHook {
    pub fn new(slow: Arc<Slow>, database: &str, application_name: &str) -> SlowHook {
        let floor_us = slow.policy.load().floor_us(database);
        SlowHook {
            slow,
            floor_us,
            application_name: application_name.into(),
        }
    }

    /// An execution at or over the floor: slow by its own thresholds or not.
    #[cold]
    pub(super) fn slow_execution(
        &self,
        database: &str,
        entry: &Arc<QueryStats>,
        source: &Source,
        micros: u64,
        q: &Queue,
    ) {
        let t = self
            .slow
            .policy
            .load()
            .thresholds(database, entry.key().fingerprint);
        if micros < t.warning_us {
            entry.note_fast();
            return;
        }
        let level = if micros >= t.critical_us {
            Level::Critical
        } else {
            Level::Warning
        };
        // Warnings too: a warning-level shape, an alert or a later request may need
        // the values to re-plan it (this is the cold path: slow executions only).
        let capture = capture_input(source, q);
        self.slow.submit(SlowSample {
            entry: entry.clone(),
            application_name: self.application_name.clone(),
            duration_us: micros,
            level,
            streak: entry.note_slow(),
            at_ms: unix_ms(),
            capture,
        });
    }
}

fn capture_input(source: &Source, q: &Queue) -> Option<CaptureInput> {
    match source {
        Source::None => None,
        Source::Text(range) => {
            let text = std::str::from_utf8(q.bytes(range)).ok()?;
            Some(CaptureInput::text(text))
        }
        Source::Bound { stmt, bind } => {
            CaptureInput::bound(stmt.sql(), &stmt.param_types, q.bytes(bind))
        }
    }
}
