//! When a plan is captured, and why: a critical execution, an alert, a warning-level
//! shape at a lower rate, a latency shift against the last plan's window, or a request
//! (`POST /api/plans/capture`, `EXPLAIN FINGERPRINT`). Every automatic capture is rate
//! limited twice: here per (database, fingerprint), and fleet-wide by the store's
//! `explain_claims` with the same interval.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::jobs::{self, CaptureJob};
use super::samples::{shifted, Sampled};
use super::Ctx;
use crate::config::Config;
use crate::stats::{CommandKind, Window};
use crate::store::Plan;

/// Capture times kept before the expired ones are swept (O(n), so not per call).
const EXPLAINED_SWEEP_AT: usize = 10_000;

/// Why a plan was captured (stored with it and with a plan change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureReason {
    Critical,
    Alert,
    Warning,
    Manual,
    Latency,
}

impl CaptureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureReason::Critical => "critical",
            CaptureReason::Alert => "alert",
            CaptureReason::Warning => "warning",
            CaptureReason::Manual => "manual",
            CaptureReason::Latency => "latency",
        }
    }

    /// How often this reason may capture one fingerprint; zero = never (automatic) or
    /// always (manual).
    fn interval(self, config: &Config) -> Duration {
        match self {
            CaptureReason::Warning => config.explain_warning_interval,
            CaptureReason::Manual => Duration::ZERO,
            _ => config.explain_interval,
        }
    }
}

/// The worker's side: local rate limits and the in-memory capture queue.
pub(super) struct Scheduler {
    /// When a capture was last scheduled per (database, fingerprint).
    explained: HashMap<(String, u64), Instant>,
    captures: mpsc::Sender<CaptureJob>,
}

impl Scheduler {
    pub fn new(captures: mpsc::Sender<CaptureJob>) -> Scheduler {
        Scheduler {
            explained: HashMap::new(),
            captures,
        }
    }

    /// Schedules a capture of `sampled` for `reason` unless one was scheduled within
    /// the reason's interval (here, then fleet-wide in the store).
    pub async fn schedule(&mut self, ctx: &Ctx, sampled: &Sampled, reason: CaptureReason) {
        let config = ctx.config();
        let interval = reason.interval(&config);
        if interval.is_zero() {
            return;
        }
        // Only SELECT, INSERT, UPDATE, DELETE (and MERGE) have plans: a COPY, DDL or other
        // utility statement fails under EXPLAIN with 42601, so its slow event is the
        // whole record and no job is queued.
        if sampled.entry.meta().command == CommandKind::Other {
            tracing::debug!(reason = reason.as_str(), "not explainable; no capture");
            return;
        }
        let key = sampled.entry.key();
        let id = (key.database.clone(), key.fingerprint);
        let now = Instant::now();
        let recent = |t: &Instant| now.saturating_duration_since(*t) < interval;
        if self.explained.get(&id).is_some_and(recent) {
            return;
        }
        if self.explained.len() >= EXPLAINED_SWEEP_AT {
            let keep = config.explain_interval.max(config.explain_warning_interval);
            self.explained
                .retain(|_, t| now.saturating_duration_since(*t) < keep);
        }
        self.explained.insert(id, now);
        let job = job_for(ctx, sampled, reason);
        match ctx.store.usable() {
            Some(store) => jobs::enqueue_capture(store, job, interval).await,
            None => {
                if self.captures.try_send(job).is_err() {
                    tracing::debug!("EXPLAIN capture queue full; skipped");
                }
            }
        }
    }

    /// Re-captures every shape whose 5-minute p50 moved by more than
    /// `explain_latency_factor` against the window of its last plan.
    pub async fn check_latency(&mut self, ctx: &Ctx) {
        let factor = ctx.config().explain_latency_factor;
        let Some(measure) = ctx.measure.as_ref().filter(|_| factor > 0.0) else {
            return;
        };
        let now = measure.clock.now();
        for (sampled, baseline_us) in ctx.slow.samples.with_baselines() {
            let stats = sampled.entry.window_stats(Window::Min5, now);
            if stats.calls > 0 && shifted(baseline_us, stats.p50_us, factor) {
                let key = sampled.entry.key();
                tracing::info!(database = %key.database, fingerprint = %format!("{:016x}", key.fingerprint),
                    baseline_ms = baseline_us as f64 / 1000.0, p50_ms = stats.p50_us as f64 / 1000.0,
                    "latency moved since the last plan; capturing again");
                self.schedule(ctx, &sampled, CaptureReason::Latency).await;
            }
        }
    }
}

/// The job for `sampled`, with the shape's 5-minute p50 now, which also becomes the
/// baseline later latency shifts are measured against.
fn job_for(ctx: &Ctx, sampled: &Sampled, reason: CaptureReason) -> CaptureJob {
    let key = sampled.entry.key();
    let p50_us = ctx.measure.as_ref().map(|m| {
        let stats = sampled.entry.window_stats(Window::Min5, m.clock.now());
        stats.p50_us
    });
    if let Some(p50) = p50_us.filter(|p| *p > 0) {
        ctx.slow
            .samples
            .set_baseline(&key.database, key.fingerprint, p50);
    }
    CaptureJob {
        database: key.database.clone(),
        user: key.user.clone(),
        fingerprint: format!("{:016x}", key.fingerprint),
        query: sampled.entry.meta().normalized.clone(),
        input: sampled.input.clone(),
        reason: Some(reason),
        p50_ms: p50_us.filter(|p| *p > 0).map(|p| p as f64 / 1000.0),
    }
}

/// Why a capture on request did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CaptureNowError {
    #[error("fingerprint {0:016x} has no sampled execution since the proxy started (only slow executions are sampled)")]
    NoSample(u64),
    #[error("the capture failed: {0}")]
    Failed(String),
}

/// Captures the plan of `fingerprint` now, with its last sampled parameters, and
/// returns it (stored like any other). The claim is taken so automatic captures of
/// the fleet count it, but a request is never refused for a recent capture.
pub async fn capture_now(
    ctx: &Arc<Ctx>,
    database: Option<&str>,
    fingerprint: u64,
) -> Result<Plan, CaptureNowError> {
    let sampled = (ctx.slow.samples.last(database, fingerprint))
        .ok_or(CaptureNowError::NoSample(fingerprint))?;
    let job = job_for(ctx, &sampled, CaptureReason::Manual);
    if let Some(store) = ctx.store.usable() {
        let claim = store.try_claim_explain(&job.database, &job.fingerprint, Duration::ZERO);
        if let Err(e) = jobs::bounded(claim).await {
            tracing::debug!(error = %e, "cannot record the claim of a requested capture");
        }
    }
    jobs::capture(ctx, &job)
        .await
        .map_err(CaptureNowError::Failed)
}
