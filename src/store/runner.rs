//! The generic job runner: claims due jobs from `pgsidecar.jobs` one at a time (any
//! sidecar of a fleet may take any job), hands each to a [`Handler`] by kind, and records
//! how it went. Claims abandoned by a sidecar that died are requeued. What a kind means
//! is the handler's business; the runner only knows the queue.

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{Job, Store};

/// Jobs one claim takes: one, so a claim's start is its job's start (a batch would age
/// its last job while the first ones run, and another sidecar could take it over).
const CLAIM_BATCH: u32 = 1;
/// How often the queue is looked at.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// What runs the jobs of each kind.
pub trait Handler: Send + Sync {
    /// Runs one job; an error is recorded on the job (and retried by the store).
    fn run(
        &self,
        store: &Store,
        kind: &str,
        payload: &Value,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// How long a claim may last before its job counts as abandoned.
    fn stale_after(&self) -> Duration;

    /// Called once per finished job (for counters).
    fn finished(&self, kind: &str, ok: bool);
}

/// Claims and runs jobs until `stop`.
pub async fn run<H: Handler>(store: Store, handler: H, stop: CancellationToken) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = store.requeue_stale(handler.stale_after()).await {
            tracing::debug!(error = %e, "cannot requeue stale jobs");
        }
        // Run what is due, one claim at a time, until nothing is left or shutdown.
        while !stop.is_cancelled() {
            let jobs = match store.claim(CLAIM_BATCH).await {
                Ok(jobs) if !jobs.is_empty() => jobs,
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot claim jobs");
                    break;
                }
            };
            for job in jobs {
                finish(&handler, &store, &job).await;
            }
        }
    }
}

/// Runs a claimed job and records how it went. The store drops the payload (an EXPLAIN
/// job's holds the client's parameter values) once the job will not run again.
async fn finish<H: Handler>(handler: &H, store: &Store, job: &Job) {
    let outcome = handler.run(store, &job.kind, &job.payload).await;
    handler.finished(&job.kind, outcome.is_ok());
    let recorded = match outcome {
        Ok(()) => store.complete(job.id).await.map(drop),
        Err(e) => {
            tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempts, error = %e, "job failed");
            store.fail(job.id, &e).await.map(drop)
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(job = job.id, error = %e, "cannot record the job's outcome");
    }
}

/// Queues the day's `retention` job every `every` until `stop`.
pub async fn schedule_retention(store: Store, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        queue_retention(&store).await;
    }
}

/// Queues today's `retention` job; the day's dedupe key lets one sidecar of a fleet
/// queue it, however often this is called.
async fn queue_retention(store: &Store) {
    let day = super::rfc3339_ms(std::time::SystemTime::now());
    let key = format!("retention:{}", &day[..10]);
    if let Err(e) = store.enqueue("retention", json!({}), Some(&key)).await {
        tracing::debug!(error = %e, "cannot queue the retention job");
    }
}

/// Runs a `retention` job: deletes what is older than `days`.
pub async fn run_retention(store: &Store, days: u32) -> Result<(), String> {
    let report = store.retention(days).await.map_err(|e| e.to_string())?;
    tracing::info!(?report, "retention cleanup done");
    Ok(())
}
