//! The statistics history: every completed minute of every active fingerprint goes to
//! the store once, as one `flush` job per minute (any sidecar of the fleet may write
//! it), labelled with its own start, never the partial current minute.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::Measure;
use crate::store::{self, Store};

/// Minutes at most flushed at once after a pause (the minute tier keeps only that many).
const CATCH_UP: u64 = 4;

/// Checks every `every` (`stats_flush_interval`, a minute) for completed minutes not
/// yet flushed, until `stop`.
pub async fn run(measure: Measure, store: Store, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut flushed: Option<u64> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        flush_completed_minutes(&measure, &store, &mut flushed).await;
    }
}

/// Queues a flush for each completed minute after `flushed`.
async fn flush_completed_minutes(measure: &Measure, store: &Store, flushed: &mut Option<u64>) {
    let now = measure.clock.now();
    let Some(last_complete) = (now / 60).checked_sub(1) else {
        return;
    };
    let first = flushed
        .map_or(last_complete, |f| f + 1)
        .max(last_complete.saturating_sub(CATCH_UP));
    for minute in first..=last_complete {
        // Statistics minutes are wall-clock minutes (`StatsClock`): the label is exact.
        let at_ms = measure.clock.minute_start_unix_ms(minute);
        let rows = minute_rows(measure, minute, now, at_ms);
        if !rows.is_empty() {
            if let Err(e) = store.enqueue("flush", json!({ "rows": rows }), None).await {
                tracing::warn!(error = %e, "cannot queue the statistics flush");
            }
        }
        *flushed = Some(minute);
    }
}

/// Runs a `flush` job: writes its rows to `stats_snapshots`.
pub async fn write(store: &Store, payload: &Value) -> Result<(), String> {
    let rows: Vec<FlushRow> =
        serde_json::from_value(payload["rows"].clone()).map_err(|e| format!("bad payload: {e}"))?;
    let rows: Vec<store::Snapshot> = rows.into_iter().map(FlushRow::into_snapshot).collect();
    (store.insert_snapshots(&rows).await)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// One entry's minute, as carried in a `flush` job's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlushRow {
    at_ms: i64,
    database: String,
    username: String,
    fingerprint: String,
    query: String,
    command: String,
    calls: i64,
    errors: i64,
    rows: i64,
    total_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl FlushRow {
    pub fn into_snapshot(self) -> store::Snapshot {
        store::Snapshot {
            at: std::time::UNIX_EPOCH + Duration::from_millis(self.at_ms.max(0) as u64),
            database: self.database,
            username: self.username,
            fingerprint: self.fingerprint,
            query: self.query,
            command: self.command,
            calls: self.calls,
            errors: self.errors,
            rows: self.rows,
            total_ms: self.total_ms,
            p50_ms: self.p50_ms,
            p95_ms: self.p95_ms,
            p99_ms: self.p99_ms,
            max_ms: self.max_ms,
        }
    }
}

fn minute_rows(measure: &Measure, minute: u64, now: u64, at_ms: i64) -> Vec<FlushRow> {
    let ms = |us: u64| us as f64 / 1000.0;
    (measure.registry.minute(minute, now).into_iter())
        .map(|s| FlushRow {
            at_ms,
            database: s.key.database.clone(),
            username: s.key.user.clone(),
            fingerprint: format!("{:016x}", s.key.fingerprint),
            query: s.meta.normalized.clone(),
            command: s.meta.command_label.clone(),
            calls: s.calls as i64,
            errors: s.errors as i64,
            rows: s.rows as i64,
            total_ms: ms(s.total_us),
            p50_ms: ms(s.p50_us),
            p95_ms: ms(s.p95_us),
            p99_ms: ms(s.p99_us),
            max_ms: ms(s.max_us),
        })
        .collect()
}
