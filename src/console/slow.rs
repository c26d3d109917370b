//! `SHOW SLOW`, `SHOW ALERTS` and `SHOW JOBS`: the latest rows of the slow-statement
//! lists (store, or memory without one), newest first.

use serde_json::Value;

use super::session::Failure;
use super::wire::{Cell, Kind, ResultSet};
use crate::app::Shared;
use crate::slow::List;

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

pub async fn show_slow(shared: &Shared) -> Result<ResultSet, Failure> {
    table(shared, List::Slow, SLOW_COLUMNS).await
}

pub async fn show_alerts(shared: &Shared) -> Result<ResultSet, Failure> {
    table(shared, List::Alerts, ALERT_COLUMNS).await
}

pub async fn show_jobs(shared: &Shared) -> Result<ResultSet, Failure> {
    table(shared, List::Jobs { status: None }, JOB_COLUMNS).await
}

async fn table(
    shared: &Shared,
    list: List,
    columns: &[(&'static str, Kind)],
) -> Result<ResultSet, Failure> {
    let listing = crate::slow::list(shared, &list, None, ROWS)
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
