//! What the slow-statement workers share: the configuration in force, the hub the
//! client path submits to, the store link, the EXPLAIN side connections, the statistics
//! (for latency baselines) and where background tasks run. Built once at start-up;
//! the admin API and the console use it to list and capture on request.

use std::sync::Arc;

use super::{Capturer, Slow};
use crate::background::Background;
use crate::config::{Config, Live, Upstream};
use crate::stats::Measure;
use crate::store::Link;

/// The slow-statement pipeline's context (shared by the worker, the jobs and the
/// listings).
pub struct Ctx {
    live: Arc<Live>,
    /// Thresholds, counters, recent events, alerts and plans.
    pub slow: Arc<Slow>,
    /// The durable store, once connected and migrated.
    pub store: Arc<Link>,
    /// Side connections for EXPLAIN captures.
    pub capturer: Capturer,
    /// Statement statistics, when `stats` is on (latency baselines of captures).
    pub measure: Option<Measure>,
    /// HTTP client for alert webhooks.
    pub http: reqwest::Client,
    /// This sidecar's name in the store (host/pid/port), to tell a fleet apart.
    pub sidecar_id: String,
    /// Where the workers and their jobs run.
    pub background: Background,
}

impl Ctx {
    pub fn new(
        live: Arc<Live>,
        slow: Arc<Slow>,
        measure: Option<Measure>,
        sidecar_id: String,
        background: Background,
    ) -> Ctx {
        Ctx {
            live,
            slow,
            store: Arc::default(),
            capturer: Capturer::default(),
            measure,
            http: reqwest::Client::new(),
            sidecar_id,
            background,
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.live.config()
    }

    pub fn upstream(&self) -> Arc<Upstream> {
        self.live.upstream()
    }
}
