//! `SHOW SLOW`, `SHOW ALERTS` and `SHOW JOBS`: the latest rows of the slow-statement
//! lists (store, or memory without one), newest first.

use serde_json::Value;

use super::session::Failure;
use super::wire::{Cell, Kind, ResultSet};
use crate::state::Running;

use crate::slow::{capture_now, CaptureNowError, List};

use Kind::{Float8, Int8, Text};

/// Rows each command shows.
const ROWS: usize = 100;

const SLOW_COLUMNS: &[(&str, Kind)] = &[
    ("id", Int8),
    ("at", Text),
    ("database", Text),
    ("username", Text),
    ("fingerprint", Text),
    ("level", Text),
    ("duration_ms", Float8),
    ("application_name", Text),
    ("sidecar", Text),
    ("query", Text),
];

const ALERT_COLUMNS: &[(&str, Kind)] = &[
    ("id", Int8),
    ("at", Text),
    ("database", Text),
    ("username", Text),
    ("fingerprint", Text),
    ("level", Text),
    ("consecutive", Int8),
    ("duration_ms", Float8),
    ("sidecar", Text),
    ("query", Text),
];

const JOB_COLUMNS: &[(&str, Kind)] = &[
    ("id", Int8),
    ("kind", Text),
    ("status", Text),
    ("attempts", Int8),
    ("max_attempts", Int8),
    ("run_at", Text),
    ("claimed_by", Text),
    ("created_at", Text),
    ("finished_at", Text),
    ("error", Text),
];

const PLAN_COLUMNS: &[(&str, Kind)] = &[
    ("id", Int8),
    ("captured_at", Text),
    ("database", Text),
    ("fingerprint", Text),
    ("reason", Text),
    ("plan_hash", Text),
    ("analyzed", Text),
    ("fallback_reason", Text),
    ("total_cost", Float8),
    ("actual_ms", Float8),
    ("p50_ms", Float8),
    ("sidecar", Text),
    ("query", Text),
];

/// The plan itself last, as JSON text.
const EXPLAIN_COLUMNS: &[(&str, Kind)] = &[
    ("id", Int8),
    ("database", Text),
    ("fingerprint", Text),
    ("plan_hash", Text),
    ("analyzed", Text),
    ("fallback_reason", Text),
    ("total_cost", Float8),
    ("actual_ms", Float8),
    ("plan", Text),
];

/// `SHOW PLANS [fingerprint]`: the latest plans, newest first.
pub async fn show_plans(state: &Running, fingerprint: Option<u64>) -> Result<ResultSet, Failure> {
    let list = List::Plans {
        fingerprint: fingerprint.map(|f| format!("{f:016x}")),
        database: None,
    };
    table(state, list, PLAN_COLUMNS).await
}

/// `EXPLAIN FINGERPRINT <fp> [database]`: captures the plan now with the shape's last
/// sampled values (55000 when there are none, 58000 when EXPLAIN failed).
pub async fn explain_fingerprint(
    state: &Running,
    fingerprint: u64,
    database: Option<&str>,
) -> Result<ResultSet, Failure> {
    let plan = capture_now(&state.slow_ctx, database, fingerprint)
        .await
        .map_err(|e| match e {
            CaptureNowError::NoSample(_) => Failure::new("55000", format!("pgsidecar: {e}")),
            CaptureNowError::Failed(_) => Failure::new("58000", format!("pgsidecar: {e}")),
        })?;
    let mut row = serde_json::to_value(&plan).unwrap_or(Value::Null);
    row["plan"] = Value::String(serde_json::to_string_pretty(&plan.plan.plan).unwrap_or_default());
    let mut rs = ResultSet::new(EXPLAIN_COLUMNS);
    rs.push(
        EXPLAIN_COLUMNS
            .iter()
            .map(|(name, _)| cell(&row[*name]))
            .collect(),
    );
    Ok(rs)
}

pub async fn show_slow(state: &Running) -> Result<ResultSet, Failure> {
    table(state, List::Slow, SLOW_COLUMNS).await
}

pub async fn show_alerts(state: &Running) -> Result<ResultSet, Failure> {
    table(state, List::Alerts, ALERT_COLUMNS).await
}

pub async fn show_jobs(state: &Running) -> Result<ResultSet, Failure> {
    table(state, List::Jobs { status: None }, JOB_COLUMNS).await
}

async fn table(
    state: &Running,
    list: List,
    columns: &[(&'static str, Kind)],
) -> Result<ResultSet, Failure> {
    let listing = crate::slow::list(&state.slow_ctx, &list, None, ROWS)
        .await
        .map_err(|e| Failure::new("58000", format!("pgsidecar: cannot read the store: {e}")))?;
    let mut rs = ResultSet::new(columns);
    for row in &listing.rows {
        rs.push(columns.iter().map(|(name, _)| cell(&row[*name])).collect());
    }
    Ok(rs)
}

fn cell(value: &Value) -> Cell {
    match value {
        Value::Null => Cell::Null,
        Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}
