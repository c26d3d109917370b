//! What the sidecars observed: slow statements, alerts and per-minute statistics.
//! Batches go in as one statement each (arrays unnested server-side), so a flush costs
//! one round trip whatever its size.

use std::time::SystemTime;

use super::rows::{self, Alert, Page, SlowEvent, Snapshot, Stored};
use super::{Store, StoreError};

const INSERT_SLOW: &str = "INSERT INTO pgsidecar.slow_events
    (at, sidecar, database, username, fingerprint, query, duration_ms, level, application_name)
SELECT at, $1, database, username, fingerprint, query, duration_ms, level, application_name
FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::float8[], $8::text[], $9::text[])
    AS t(at, database, username, fingerprint, query, duration_ms, level, application_name)";

const INSERT_SNAPSHOTS: &str = "INSERT INTO pgsidecar.stats_snapshots
    (at, sidecar, database, username, fingerprint, query, command, calls, errors, rows,
     total_ms, p50_ms, p95_ms, p99_ms, max_ms)
SELECT date_trunc('minute', at), $1, database, username, fingerprint, query, command,
       calls, errors, rows, total_ms, p50_ms, p95_ms, p99_ms, max_ms
FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::int8[], $9::int8[], $10::int8[], $11::float8[], $12::float8[],
            $13::float8[], $14::float8[], $15::float8[])
    AS t(at, database, username, fingerprint, query, command, calls, errors, rows,
         total_ms, p50_ms, p95_ms, p99_ms, max_ms)
ON CONFLICT (at, sidecar, database, username, fingerprint) DO NOTHING";

const INSERT_ALERT: &str = "INSERT INTO pgsidecar.alerts
    (at, sidecar, database, username, fingerprint, query, level, consecutive, duration_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id";

/// Newest first, below a keyset cursor; `$1` is the cursor (or NULL), `$2` the limit.
const LIST_SLOW: &str = "SELECT id, at, sidecar, database, username, fingerprint, query,
       duration_ms, level, application_name
FROM pgsidecar.slow_events
WHERE $1::int8 IS NULL OR id < $1
ORDER BY id DESC
LIMIT $2";

const LIST_ALERTS: &str = "SELECT id, at, sidecar, database, username, fingerprint, query,
       level, consecutive, duration_ms
FROM pgsidecar.alerts
WHERE $1::int8 IS NULL OR id < $1
ORDER BY id DESC
LIMIT $2";

/// One array per column of a batch.
fn column<'a, T, U>(rows: &'a [T], f: impl Fn(&'a T) -> U) -> Vec<U> {
    rows.iter().map(f).collect()
}

impl Store {
    /// Stores a batch of slow statements in one statement; returns how many were stored.
    pub async fn insert_slow_events(&self, events: &[SlowEvent]) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(INSERT_SLOW)
            .await
            .map_err(StoreError::query("insert slow events"))?;
        let at: Vec<SystemTime> = column(events, |e| e.at);
        let database = column(events, |e| e.database.as_str());
        let username = column(events, |e| e.username.as_str());
        let fingerprint = column(events, |e| e.fingerprint.as_str());
        let query = column(events, |e| e.query.as_str());
        let duration = column(events, |e| e.duration_ms);
        let level = column(events, |e| e.level.as_str());
        let app = column(events, |e| e.application_name.as_deref());
        let sidecar: &str = &self.sidecar;
        client
            .execute(
                &stmt,
                &[
                    &sidecar,
                    &at,
                    &database,
                    &username,
                    &fingerprint,
                    &query,
                    &duration,
                    &level,
                    &app,
                ],
            )
            .await
            .map_err(StoreError::query("insert slow events"))
    }

    /// Stores a batch of per-minute statistics in one statement, each `at` truncated to
    /// its minute; returns how many were stored. Idempotent: a (minute, sidecar,
    /// database, user, fingerprint) already stored is left as it is (not counted).
    pub async fn insert_snapshots(&self, snapshots: &[Snapshot]) -> Result<u64, StoreError> {
        if snapshots.is_empty() {
            return Ok(0);
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(INSERT_SNAPSHOTS)
            .await
            .map_err(StoreError::query("insert snapshots"))?;
        let s = snapshots;
        let at: Vec<SystemTime> = column(s, |r| r.at);
        let database = column(s, |r| r.database.as_str());
        let username = column(s, |r| r.username.as_str());
        let fingerprint = column(s, |r| r.fingerprint.as_str());
        let query = column(s, |r| r.query.as_str());
        let command = column(s, |r| r.command.as_str());
        let (calls, errors, rows) = (
            column(s, |r| r.calls),
            column(s, |r| r.errors),
            column(s, |r| r.rows),
        );
        let total = column(s, |r| r.total_ms);
        let (p50, p95, p99, max) = (
            column(s, |r| r.p50_ms),
            column(s, |r| r.p95_ms),
            column(s, |r| r.p99_ms),
            column(s, |r| r.max_ms),
        );
        let sidecar: &str = &self.sidecar;
        client
            .execute(
                &stmt,
                &[
                    &sidecar,
                    &at,
                    &database,
                    &username,
                    &fingerprint,
                    &query,
                    &command,
                    &calls,
                    &errors,
                    &rows,
                    &total,
                    &p50,
                    &p95,
                    &p99,
                    &max,
                ],
            )
            .await
            .map_err(StoreError::query("insert snapshots"))
    }

    /// Stores one alert and returns its id.
    pub async fn insert_alert(&self, alert: &Alert) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let sidecar: &str = &self.sidecar;
        let row = client
            .query_one(
                INSERT_ALERT,
                &[
                    &alert.at,
                    &sidecar,
                    &alert.database,
                    &alert.username,
                    &alert.fingerprint,
                    &alert.query,
                    &alert.level.as_str(),
                    &alert.consecutive,
                    &alert.duration_ms,
                ],
            )
            .await
            .map_err(StoreError::query("insert alert"))?;
        Ok(row.get(0))
    }

    /// Slow statements, newest first, with ids below `before_id` when given.
    pub async fn list_slow(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Page<Stored<SlowEvent>>, StoreError> {
        let limit = rows::page_limit(limit);
        let client = self.client().await?;
        let found = client
            .query(LIST_SLOW, &[&before_id, &(limit + 1)])
            .await
            .map_err(StoreError::query("list slow events"))?;
        let items = found
            .iter()
            .map(rows::slow_event)
            .collect::<Result<_, _>>()?;
        Ok(Page::from_rows(items, limit, |r: &Stored<SlowEvent>| r.id))
    }

    /// Alerts, newest first, with ids below `before_id` when given.
    pub async fn list_alerts(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Page<Stored<Alert>>, StoreError> {
        let limit = rows::page_limit(limit);
        let client = self.client().await?;
        let found = client
            .query(LIST_ALERTS, &[&before_id, &(limit + 1)])
            .await
            .map_err(StoreError::query("list alerts"))?;
        let items = found.iter().map(rows::alert).collect::<Result<_, _>>()?;
        Ok(Page::from_rows(items, limit, |r: &Stored<Alert>| r.id))
    }
}
