//! The slow-statement worker: turns samples into events, alerts and EXPLAIN captures,
//! off the client path. With a store, deliveries and captures become durable jobs
//! ([`super::jobs`]); without one they run here, in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::alerts::{AlertGate, Verdict};
use super::jobs::{self, CaptureJob};
use super::samples::Sampled;
use super::schedule::{CaptureReason, Scheduler};
use super::Ctx;
use super::{Level, Slow, SlowSample};
use crate::store::{Alert, SlowEvent};

/// Captures waiting to run in memory-only mode; more are skipped (the next slow
/// execution after `explain_interval` tries again).
const CAPTURE_QUEUE: usize = 16;
/// Log times kept before the expired ones are swept (O(n), so not per call).
const LOGGED_SWEEP_AT: usize = 10_000;
/// Seconds between checks of the shapes' latency against their last plan's window.
const LATENCY_CHECK_TICKS: u64 = 5;
/// Slow events written to the store in one statement, at most every second.
const EVENT_BATCH: usize = 200;
/// Slow events (and, apart, alerts) kept for the store while it is down; past this the
/// oldest are dropped from the backlog (counted; they stay in the in-memory lists).
const BACKLOG: usize = 10_000;

struct Worker {
    ctx: Arc<Ctx>,
    slow: Arc<Slow>,
    gate: AlertGate,
    scheduler: Scheduler,
    /// Per (database, fingerprint): when `slow statement` was last logged, and the
    /// slow executions not logged since.
    logged: HashMap<(String, u64), (Instant, u64)>,
    /// Slow events and alerts not yet written to the store (bounded by [`BACKLOG`]).
    events: VecDeque<SlowEvent>,
    alerts: VecDeque<Alert>,
}

/// Starts the worker; it ends at shutdown. Returns the queue of captures to run in
/// memory (used while there is no store).
pub fn spawn_worker(
    ctx: Arc<Ctx>,
    mut rx: mpsc::Receiver<SlowSample>,
) -> mpsc::Receiver<CaptureJob> {
    let config = ctx.config();
    let stop = ctx.background.stop().clone();
    let background = ctx.background.clone();
    let (captures, capture_rx) = mpsc::channel(CAPTURE_QUEUE);
    let slow = ctx.slow.clone();
    let mut worker = Worker {
        gate: AlertGate::new(config.alert_consecutive, config.alert_cooldown),
        ctx,
        slow,
        scheduler: Scheduler::new(captures),
        logged: HashMap::new(),
        events: VecDeque::new(),
        alerts: VecDeque::new(),
    };
    // Runs to its end (not dropped at the stop) so that the last events are written.
    background.spawn_to_end(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                sample = rx.recv() => match sample {
                    Some(sample) => worker.handle(sample).await,
                    None => break,
                },
                _ = tick.tick() => {
                    worker.flush_events().await;
                    ticks += 1;
                    if ticks.is_multiple_of(LATENCY_CHECK_TICKS) {
                        worker.scheduler.check_latency(&worker.ctx).await;
                    }
                }
                _ = stop.cancelled() => break,
            }
        }
        worker.flush_events().await;
    });
    capture_rx
}

impl Worker {
    async fn handle(&mut self, sample: SlowSample) {
        let config = self.ctx.config();
        self.gate
            .configure(config.alert_consecutive, config.alert_cooldown);
        let key = sample.entry.key();
        let meta = sample.entry.meta();
        let fingerprint = format!("{:016x}", key.fingerprint);
        let duration_ms = sample.duration_us as f64 / 1000.0;
        let counter = match sample.level {
            Level::Warning => &self.slow.counters.warning,
            Level::Critical => &self.slow.counters.critical,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(not_logged) = self.log_now(key, config.slow_log_interval) {
            tracing::warn!(
                database = %key.database, user = %key.user, %fingerprint, duration_ms,
                level = %sample.level, streak = sample.streak, not_logged,
                query = %meta.normalized, "slow statement"
            );
        }
        let event = SlowEvent {
            at: at_of(sample.at_ms),
            database: key.database.clone(),
            username: key.user.clone(),
            fingerprint: fingerprint.clone(),
            query: meta.normalized.clone(),
            duration_ms,
            level: sample.level,
            application_name: Some(sample.application_name.to_string()),
        };
        self.slow
            .recent
            .push_event(&self.ctx.sidecar_id, event.clone());
        if config.store {
            keep(&mut self.events, event, &self.slow);
            self.report_backlog();
            if self.events.len() >= EVENT_BATCH {
                self.flush_events().await;
            }
        }
        let fired = self.alert(&sample, &fingerprint, duration_ms).await;
        // This execution's values when readable (remembered for later captures), else
        // the last sampled ones of the shape.
        let sampled = match sample.capture {
            Some(input) => {
                self.slow.samples.remember(&sample.entry, &input);
                Some(Sampled {
                    entry: sample.entry.clone(),
                    input,
                })
            }
            None => (self.slow.samples).last(Some(&key.database), key.fingerprint),
        };
        let reason = match sample.level {
            _ if fired && config.explain_on_alert => CaptureReason::Alert,
            Level::Critical => CaptureReason::Critical,
            Level::Warning => CaptureReason::Warning,
        };
        if let Some(sampled) = sampled {
            self.scheduler.schedule(&self.ctx, &sampled, reason).await;
        }
    }

    /// `Some(executions not logged since the last line)` when this slow execution of
    /// `key` is the first in `interval`; `None` (and counted) otherwise.
    fn log_now(&mut self, key: &crate::stats::StatKey, interval: Duration) -> Option<u64> {
        let now = Instant::now();
        let id = (key.database.clone(), key.fingerprint);
        match self.logged.get_mut(&id) {
            Some((at, skipped)) if now.saturating_duration_since(*at) < interval => {
                *skipped += 1;
                self.slow
                    .counters
                    .log_suppressed
                    .fetch_add(1, Ordering::Relaxed);
                None
            }
            Some((at, skipped)) => {
                *at = now;
                Some(std::mem::take(skipped))
            }
            None => {
                if self.logged.len() >= LOGGED_SWEEP_AT {
                    self.logged
                        .retain(|_, (at, _)| now.saturating_duration_since(*at) < interval);
                }
                self.logged.insert(id, (now, 0));
                Some(0)
            }
        }
    }

    /// Judges the alert gate; true when an alert fired.
    async fn alert(&mut self, sample: &SlowSample, fingerprint: &str, duration_ms: f64) -> bool {
        let key = sample.entry.key();
        let now = Instant::now();
        match self
            .gate
            .judge(&key.database, key.fingerprint, sample.streak, now)
        {
            Verdict::Quiet => return false,
            Verdict::Suppressed => {
                self.slow
                    .counters
                    .suppressed
                    .fetch_add(1, Ordering::Relaxed);
                return false;
            }
            Verdict::Fire => {}
        }
        self.slow.counters.alerts.fetch_add(1, Ordering::Relaxed);
        let alert = Alert {
            at: at_of(sample.at_ms),
            database: key.database.clone(),
            username: key.user.clone(),
            fingerprint: fingerprint.to_string(),
            query: sample.entry.meta().normalized.clone(),
            level: sample.level,
            consecutive: sample.streak as i32,
            duration_ms,
        };
        self.slow
            .recent
            .push_alert(&self.ctx.sidecar_id, alert.clone());
        tracing::error!(
            database = %alert.database, fingerprint = %alert.fingerprint,
            consecutive = alert.consecutive, duration_ms, query = %alert.query,
            "slow query alert"
        );
        if self.ctx.config().store {
            keep(&mut self.alerts, alert.clone(), &self.slow);
            self.report_backlog();
            self.flush_events().await;
        }
        jobs::deliver_webhook(&self.ctx, alert).await;
        true
    }

    /// Writes the backlog to the store when it is usable; what fails stays for later
    /// and marks the store down until its health check passes.
    fn report_backlog(&self) {
        let backlog = (self.events.len() + self.alerts.len()) as u64;
        (self.slow.counters.store_backlog).store(backlog, Ordering::Relaxed);
    }

    async fn flush_events(&mut self) {
        self.report_backlog();
        if self.events.is_empty() && self.alerts.is_empty() {
            return;
        }
        let Some(store) = self.ctx.store.usable() else {
            return;
        };
        while let Some(alert) = self.alerts.front() {
            if let Err(e) = jobs::bounded(store.insert_alert(alert)).await {
                tracing::warn!(error = %e, kept = self.alerts.len(), "cannot store alerts; keeping them for later");
                self.report_backlog();
                return self.ctx.store.note_failure();
            }
            self.alerts.pop_front();
        }
        while !self.events.is_empty() {
            let n = self.events.len().min(EVENT_BATCH);
            let batch: Vec<SlowEvent> = self.events.range(..n).cloned().collect();
            if let Err(e) = jobs::bounded(store.insert_slow_events(&batch)).await {
                tracing::warn!(error = %e, kept = self.events.len(), "cannot store slow events; keeping them for later");
                self.report_backlog();
                return self.ctx.store.note_failure();
            }
            self.events.drain(..n);
        }
        self.report_backlog();
    }
}

/// Adds `item` to a store backlog, dropping (and counting) the oldest past [`BACKLOG`].
fn keep<T>(backlog: &mut VecDeque<T>, item: T, slow: &Slow) {
    if backlog.len() >= BACKLOG {
        backlog.pop_front();
        slow.counters.store_dropped.fetch_add(1, Ordering::Relaxed);
    }
    backlog.push_back(item);
}

fn at_of(unix_ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_millis(unix_ms.max(0) as u64)
}
