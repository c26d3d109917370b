//! Slow statements: thresholds, slow events, alerts and EXPLAIN capture (the store's
//! lifecycle and job runner are in [`crate::store`], the statistics flush in
//! [`crate::stats::flush`]). The client path
//! only compares a duration with a threshold and, when slow, hands a [`SlowSample`] to a
//! bounded queue ([`Slow::submit`], never waits); one background worker does the rest.

pub mod alerts;
mod capture;
mod context;
mod jobs;
mod lists;
mod recent;
mod samples;
mod schedule;
mod start;
mod webhook;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::stats::QueryStats;
pub use crate::store::Level;

pub use capture::{CaptureInput, Capturer};
pub use context::Ctx;
pub use lists::{list, List, Listing};
pub use recent::{Recent, KEEP as RECENT_KEEP};
pub use samples::{Sampled, Samples};
pub use schedule::{capture_now, CaptureNowError, CaptureReason};
pub use start::{sidecar_id, start};

/// The worker's end of the sample queue.
pub type Receiver = mpsc::Receiver<SlowSample>;

/// Slow samples waiting for the worker; beyond this they are dropped and counted.
const QUEUE: usize = 4096;

/// Warning and critical thresholds, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub warning_us: u64,
    pub critical_us: u64,
}

/// The thresholds in force: per fingerprint over per database over global.
#[derive(Debug, Clone)]
pub struct SlowPolicy {
    global: Thresholds,
    databases: HashMap<String, Thresholds>,
    /// Per fingerprint: warning and critical, each unset when it follows the database.
    fingerprints: HashMap<u64, (Option<u64>, Option<u64>)>,
}

impl SlowPolicy {
    pub fn from_config(config: &Config) -> SlowPolicy {
        let ms = |v: u64| v.saturating_mul(1000);
        let global = Thresholds {
            warning_us: ms(config.slow_warning_ms),
            critical_us: ms(config.slow_critical_ms),
        };
        let databases = config
            .databases
            .iter()
            .map(|(name, db)| {
                let t = Thresholds {
                    warning_us: db.slow_warning_ms.map_or(global.warning_us, ms),
                    critical_us: db.slow_critical_ms.map_or(global.critical_us, ms),
                };
                (name.clone(), t)
            })
            .collect();
        // A fingerprint's unset threshold follows its database's, so overrides are kept
        // as given and completed per lookup.
        let fingerprints = config
            .slow_fingerprints
            .iter()
            .filter_map(|(hex, t)| {
                let fp = u64::from_str_radix(hex, 16).ok()?;
                Some((fp, (t.slow_warning_ms.map(ms), t.slow_critical_ms.map(ms))))
            })
            .collect();
        SlowPolicy {
            global,
            databases,
            fingerprints,
        }
    }

    pub fn thresholds(&self, database: &str, fingerprint: u64) -> Thresholds {
        let db = self.databases.get(database).copied().unwrap_or(self.global);
        match self.fingerprints.get(&fingerprint) {
            Some((warning, critical)) => Thresholds {
                warning_us: warning.unwrap_or(db.warning_us),
                critical_us: critical.unwrap_or(db.critical_us),
            },
            None => db,
        }
    }

    /// The lowest warning threshold any statement of `database` can have: anything
    /// faster needs no further look.
    pub fn floor_us(&self, database: &str) -> u64 {
        let db = self.databases.get(database).unwrap_or(&self.global);
        (self.fingerprints.values())
            .filter_map(|(warning, _)| *warning)
            .fold(db.warning_us, u64::min)
    }
}

/// One slow execution, as the client path hands it over.
pub struct SlowSample {
    pub entry: Arc<QueryStats>,
    pub application_name: Arc<str>,
    pub duration_us: u64,
    pub level: Level,
    /// This execution is the `streak`-th slow one in a row of its entry.
    pub streak: u32,
    /// Unix time, milliseconds.
    pub at_ms: i64,
    /// What EXPLAIN needs (when the statement text and the bound values were available).
    pub capture: Option<CaptureInput>,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct SlowCounters {
    pub warning: AtomicU64,
    pub critical: AtomicU64,
    pub alerts: AtomicU64,
    pub suppressed: AtomicU64,
    /// Samples dropped because the worker's queue was full.
    pub dropped: AtomicU64,
    pub plans_captured: AtomicU64,
    pub plan_failures: AtomicU64,
    pub plan_changes: AtomicU64,
    pub webhook_failures: AtomicU64,
    /// Background jobs run by this sidecar, per [`JOB_KINDS`] entry: `[done, failed]`.
    pub jobs: [[AtomicU64; 2]; JOB_KINDS.len()],
    /// Slow events and alerts dropped from the store backlog (the store was down and
    /// the backlog full); they stay in the in-memory lists.
    pub store_dropped: AtomicU64,
    /// Slow events and alerts waiting to be written to the store.
    pub store_backlog: AtomicU64,
    /// Slow executions not logged one by one (see `slow_log_interval`).
    pub log_suppressed: AtomicU64,
}

/// Job kinds counted in `pgsidecar_jobs_total`; anything else counts as `other`.
pub const JOB_KINDS: [&str; 5] = ["explain", "webhook", "flush", "retention", "other"];

impl SlowCounters {
    /// Counts one finished job of `kind`.
    pub fn count_job(&self, kind: &str, ok: bool) {
        let last = JOB_KINDS.len() - 1;
        let at = JOB_KINDS[..last].iter().position(|k| *k == kind);
        let slot = &self.jobs[at.unwrap_or(last)][usize::from(!ok)];
        slot.fetch_add(1, Ordering::Relaxed);
    }
}

/// The hub the client path submits to: the queue's sending side, the thresholds, counters and the
/// recent events kept in memory.
pub struct Slow {
    tx: mpsc::Sender<SlowSample>,
    pub policy: ArcSwap<SlowPolicy>,
    pub counters: SlowCounters,
    pub recent: Recent,
    /// The last sampled execution and plan baseline per shape, for later captures.
    pub samples: Samples,
}

impl Slow {
    /// The hub and the receiving end for [`spawn_worker`].
    pub fn new(config: &Config) -> (Arc<Slow>, mpsc::Receiver<SlowSample>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let slow = Slow {
            tx,
            policy: ArcSwap::from_pointee(SlowPolicy::from_config(config)),
            counters: SlowCounters::default(),
            recent: Recent::default(),
            samples: Samples::default(),
        };
        (Arc::new(slow), rx)
    }

    /// Hands a sample to the worker without waiting; a full queue drops it (counted).
    pub fn submit(&self, sample: SlowSample) {
        if self.tx.try_send(sample).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn reload(&self, config: &Config) {
        self.policy.store(Arc::new(SlowPolicy::from_config(config)));
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DatabaseConfig, SlowOverride};

    #[test]
    fn jobs_are_counted_by_kind_and_outcome_unknown_kinds_as_other() {
        let c = SlowCounters::default();
        c.count_job("flush", true);
        c.count_job("flush", false);
        c.count_job("explain", false);
        c.count_job("something new", false);
        let at = |kind: &str| JOB_KINDS.iter().position(|k| *k == kind).unwrap();
        let n = |kind: &str, i: usize| c.jobs[at(kind)][i].load(Ordering::Relaxed);
        assert_eq!((n("flush", 0), n("flush", 1)), (1, 1));
        assert_eq!((n("explain", 0), n("explain", 1)), (0, 1));
        assert_eq!((n("other", 0), n("other", 1)), (0, 1));
        assert_eq!(n("webhook", 1) + n("retention", 1), 0);
    }

    #[test]
    fn fingerprint_overrides_database_overrides_global() {
        let mut config = Config::default();
        config.databases.insert(
            "app".into(),
            DatabaseConfig {
                slow_warning_ms: Some(100),
                ..DatabaseConfig::default()
            },
        );
        config.slow_fingerprints.insert(
            "00000000000000ff".into(),
            SlowOverride {
                slow_warning_ms: Some(5),
                slow_critical_ms: Some(50),
            },
        );
        let p = SlowPolicy::from_config(&config);
        assert_eq!(p.thresholds("other", 1).warning_us, 500_000);
        assert_eq!(p.thresholds("app", 1).warning_us, 100_000);
        assert_eq!(p.thresholds("app", 1).critical_us, 1_000_000);
        assert_eq!(p.thresholds("app", 0xff).warning_us, 5_000);
        assert_eq!(p.floor_us("app"), 5_000);
        config.slow_fingerprints.insert(
            "00000000000000fe".into(),
            SlowOverride {
                slow_warning_ms: None,
                slow_critical_ms: Some(7_000),
            },
        );
        let p = SlowPolicy::from_config(&config);
        // An unset fingerprint threshold follows the database's, not the global one.
        assert_eq!(p.thresholds("app", 0xfe).warning_us, 100_000);
        assert_eq!(p.thresholds("app", 0xfe).critical_us, 7_000_000);
    }
}
