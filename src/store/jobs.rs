//! The job queue the sidecars of a fleet share: enqueue with an optional dedupe key,
//! claim with `FOR UPDATE SKIP LOCKED` so claimers never block each other or get the
//! same job, retry with exponential backoff, and recover jobs of a sidecar that died.
//!
//! A job moves pending → running (claim) → done (complete) or back to pending (fail,
//! stale) until its attempts run out, then failed. Every transition is one UPDATE
//! guarded by the status it expects, so a late call from a sidecar that lost its claim
//! changes nothing.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;

use super::rows::{self, opt_time, time, Page};
use super::{secs, Store, StoreError};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    fn parse(value: &str) -> Result<JobStatus, StoreError> {
        match value {
            "pending" => Ok(JobStatus::Pending),
            "running" => Ok(JobStatus::Running),
            "done" => Ok(JobStatus::Done),
            "failed" => Ok(JobStatus::Failed),
            other => Err(rows::unexpected("job status", other)),
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    /// `Null` once cleared with [`Store::clear_payload`].
    pub payload: Value,
    pub status: JobStatus,
    /// Claims so far, including the current one.
    pub attempts: i32,
    pub max_attempts: i32,
    /// Not claimable before this time.
    #[serde(serialize_with = "time")]
    pub run_at: SystemTime,
    pub dedupe_key: Option<String>,
    /// The last failure, kept after a successful retry too.
    pub error: Option<String>,
    pub claimed_by: Option<String>,
    #[serde(serialize_with = "time")]
    pub created_at: SystemTime,
    #[serde(serialize_with = "opt_time")]
    pub started_at: Option<SystemTime>,
    #[serde(serialize_with = "opt_time")]
    pub finished_at: Option<SystemTime>,
}

macro_rules! job_columns {
    () => {
        "id, kind, payload::text AS payload, status, attempts, max_attempts, run_at,
         dedupe_key, error, claimed_by, created_at, started_at, finished_at"
    };
}

const ENQUEUE: &str = "INSERT INTO pgsidecar.jobs (kind, payload, dedupe_key)
VALUES ($1, $2::text::jsonb, $3)
ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
RETURNING id";

/// `= ANY(ARRAY(...))` rather than `IN (...)` guarantees the locking subquery runs once,
/// whatever plan the outer UPDATE gets.
const CLAIM: &str = concat!(
    "UPDATE pgsidecar.jobs
SET status = 'running', attempts = attempts + 1, claimed_by = $1, started_at = now(),
    finished_at = NULL
WHERE id = ANY(ARRAY(
    SELECT id FROM pgsidecar.jobs
    WHERE status = 'pending' AND run_at <= now()
    ORDER BY run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED))
RETURNING ",
    job_columns!()
);

/// A finished job keeps no payload: an EXPLAIN job's holds the client's values, and
/// flushes are large.
const COMPLETE: &str = "UPDATE pgsidecar.jobs SET status = 'done', finished_at = now(),
    payload = NULL
WHERE id = $1 AND status = 'running' AND claimed_by = $2";

/// Back to pending after `base * 2^(attempts-1)` while attempts remain, else failed.
/// The exponent is capped so a large `max_attempts` cannot overflow the interval.
const FAIL: &str = "UPDATE pgsidecar.jobs SET
    status = CASE WHEN attempts < max_attempts THEN 'pending' ELSE 'failed' END,
    run_at = CASE WHEN attempts < max_attempts
        THEN now() + make_interval(secs => $4 * power(2, least(attempts, 31) - 1))
        ELSE run_at END,
    finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE now() END,
    payload = CASE WHEN attempts < max_attempts THEN payload END,
    error = $3
WHERE id = $1 AND status = 'running' AND claimed_by = $2
RETURNING status";

/// A running job whose claimer went quiet counts the attempt it used: a job that kills
/// every sidecar that runs it ends as failed instead of looping.
const REQUEUE_STALE: &str = "UPDATE pgsidecar.jobs SET
    status = CASE WHEN attempts < max_attempts THEN 'pending' ELSE 'failed' END,
    run_at = now(),
    finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE now() END,
    payload = CASE WHEN attempts < max_attempts THEN payload END,
    error = 'abandoned by ' || coalesce(claimed_by, 'an unknown sidecar')
WHERE status = 'running' AND started_at < now() - make_interval(secs => $1)";

const CLEAR_PAYLOAD: &str = "UPDATE pgsidecar.jobs SET payload = NULL WHERE id = $1";

const GET: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM pgsidecar.jobs WHERE id = $1"
);

const LIST: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM pgsidecar.jobs
WHERE ($1::int8 IS NULL OR id < $1) AND ($2::text IS NULL OR status = $2)
ORDER BY id DESC
LIMIT $3"
);

fn job(row: &Row) -> Result<Job, StoreError> {
    let payload: Option<&str> = row.get("payload");
    Ok(Job {
        id: row.get("id"),
        kind: row.get("kind"),
        payload: match payload {
            Some(text) => rows::json("job payload", text)?,
            None => Value::Null,
        },
        status: JobStatus::parse(row.get("status"))?,
        attempts: row.get("attempts"),
        max_attempts: row.get("max_attempts"),
        run_at: row.get("run_at"),
        dedupe_key: row.get("dedupe_key"),
        error: row.get("error"),
        claimed_by: row.get("claimed_by"),
        created_at: row.get("created_at"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
    })
}

impl Store {
    /// Adds a pending job, runnable now. With a `dedupe_key` that another job already
    /// holds (pending, running or finished and not yet removed by retention), nothing is
    /// added and the result is `None`.
    pub async fn enqueue(
        &self,
        kind: &str,
        payload: Value,
        dedupe_key: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(ENQUEUE, &[&kind, &payload.to_string(), &dedupe_key])
            .await
            .map_err(StoreError::query("enqueue job"))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Claims up to `limit` runnable jobs for this sidecar, oldest `run_at` first. Jobs
    /// another claimer holds are skipped, not waited for.
    pub async fn claim(&self, limit: u32) -> Result<Vec<Job>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(CLAIM)
            .await
            .map_err(StoreError::query("claim jobs"))?;
        let sidecar: &str = &self.sidecar;
        let found = client
            .query(&stmt, &[&sidecar, &i64::from(limit)])
            .await
            .map_err(StoreError::query("claim jobs"))?;
        let mut jobs = found.iter().map(job).collect::<Result<Vec<_>, _>>()?;
        // RETURNING has no order of its own.
        jobs.sort_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    /// Marks a job this sidecar is running as done; false when it no longer holds it.
    pub async fn complete(&self, id: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let sidecar: &str = &self.sidecar;
        let n = client
            .execute(COMPLETE, &[&id, &sidecar])
            .await
            .map_err(StoreError::query("complete job"))?;
        Ok(n == 1)
    }

    /// Records a failure of a job this sidecar is running: it becomes pending again
    /// after the backoff while attempts remain, else failed. Returns the new status, or
    /// `None` when this sidecar no longer holds the job.
    pub async fn fail(&self, id: i64, error: &str) -> Result<Option<JobStatus>, StoreError> {
        let client = self.client().await?;
        let sidecar: &str = &self.sidecar;
        let row = client
            .query_opt(FAIL, &[&id, &sidecar, &error, &secs(self.retry_base)])
            .await
            .map_err(StoreError::query("fail job"))?;
        row.map(|r| JobStatus::parse(r.get(0))).transpose()
    }

    /// Returns running jobs claimed longer than `older_than` ago to pending (their
    /// sidecar died mid-job), or to failed when they were on their last attempt. Returns
    /// how many were touched.
    pub async fn requeue_stale(&self, older_than: Duration) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(REQUEUE_STALE, &[&secs(older_than)])
            .await
            .map_err(StoreError::query("requeue stale jobs"))?;
        if n > 0 {
            tracing::warn!(jobs = n, "requeued jobs abandoned by their sidecar");
        }
        Ok(n)
    }

    /// Drops a job's payload (private parameter values, once no longer needed).
    pub async fn clear_payload(&self, id: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(CLEAR_PAYLOAD, &[&id])
            .await
            .map_err(StoreError::query("clear job payload"))?;
        Ok(n == 1)
    }

    /// One job by id.
    pub async fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(GET, &[&id])
            .await
            .map_err(StoreError::query("get job"))?;
        row.as_ref().map(job).transpose()
    }

    /// Jobs, newest first, optionally only those in one status.
    pub async fn list_jobs(
        &self,
        status: Option<JobStatus>,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Page<Job>, StoreError> {
        let limit = rows::page_limit(limit);
        let client = self.client().await?;
        let status = status.map(JobStatus::as_str);
        let found = client
            .query(LIST, &[&before_id, &status, &(limit + 1)])
            .await
            .map_err(StoreError::query("list jobs"))?;
        let items = found.iter().map(job).collect::<Result<_, _>>()?;
        Ok(Page::from_rows(items, limit, |j: &Job| j.id))
    }
}
