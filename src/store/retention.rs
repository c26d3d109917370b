//! Retention: how long observations and finished jobs are kept.

use serde::Serialize;

use super::{Store, StoreError};

/// Finished jobs are kept this long whatever the retention: long enough to see what
/// ran, short enough that their dedupe keys free up.
const FINISHED_JOB_DAYS: i32 = 7;

/// Rows deleted by one retention pass, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    pub slow_events: u64,
    pub plans: u64,
    pub plan_changes: u64,
    pub alerts: u64,
    pub stats_snapshots: u64,
    pub jobs: u64,
    pub explain_claims: u64,
}

/// (table, time column) of everything kept for `retention_days`. Explain claims older
/// than that are long expired; deleting them keeps the table to live queries.
const OBSERVATIONS: [(&str, &str); 6] = [
    ("slow_events", "at"),
    ("plans", "captured_at"),
    ("plan_changes", "at"),
    ("alerts", "at"),
    ("stats_snapshots", "at"),
    ("explain_claims", "claimed_at"),
];

const DELETE_JOBS: &str = "DELETE FROM pgsidecar.jobs
WHERE status IN ('done', 'failed') AND finished_at < now() - make_interval(days => $1)";

impl Store {
    /// Deletes observations older than `retention_days` and jobs that finished more
    /// than 7 days ago. Each table is its own statement, so a pass interrupted halfway
    /// keeps what it already deleted.
    pub async fn retention(&self, retention_days: u32) -> Result<RetentionReport, StoreError> {
        let days = i32::try_from(retention_days).unwrap_or(i32::MAX);
        let client = self.client().await?;
        let mut counts = [0u64; 6];
        for (count, (table, column)) in counts.iter_mut().zip(OBSERVATIONS) {
            // Table and column names come from the constant above, never from input.
            let sql = format!(
                "DELETE FROM pgsidecar.{table} WHERE {column} < now() - make_interval(days => $1)"
            );
            *count = client
                .execute(&sql, &[&days])
                .await
                .map_err(StoreError::query("retention"))?;
        }
        let jobs = client
            .execute(DELETE_JOBS, &[&FINISHED_JOB_DAYS])
            .await
            .map_err(StoreError::query("retention"))?;
        let [slow_events, plans, plan_changes, alerts, stats_snapshots, explain_claims] = counts;
        let report = RetentionReport {
            slow_events,
            plans,
            plan_changes,
            alerts,
            stats_snapshots,
            jobs,
            explain_claims,
        };
        tracing::info!(?report, retention_days, "store retention pass");
        Ok(report)
    }
}
