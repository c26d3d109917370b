//! The proxy's running state: the configuration in force, the pools, the clients, the
//! statistics and the slow pipeline. Sessions write it; the status renderers (SHOW,
//! `/api`, `/metrics`) read it. Every field's type lives below the tasks that use it,
//! so the admin server and the console take this, not the app.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use dashmap::DashMap;

use crate::auth::Authenticator;
use crate::clients::{BufferBudget, ClientRegistry, Openings, PIN_REASONS};
use crate::config::{Config, Live, Upstream};
use crate::pool::{ClientCounts, Pool, PoolKey, Status};
use crate::query::Analyzer;
use crate::slow::Slow;
use crate::stats::{Measure, StatsClock};

/// See the module documentation. Built once in `App::start`.
pub struct Running {
    pub(crate) live: Arc<Live>,
    pub pools: DashMap<PoolKey, Arc<Pool>>,
    /// Logged-in clients: state, cancel keys.
    pub clients_registry: ClientRegistry,
    /// Connections that have not logged in yet (their own limit; the oldest is shed).
    pub openings: Openings,
    /// Client bytes buffered but not yet forwarded, against `client_buffer_budget`.
    pub buffer_budget: Arc<BufferBudget>,
    pub auth: Authenticator,
    /// Clients connected now.
    pub clients: AtomicUsize,
    /// Clients ever accepted.
    pub clients_total: AtomicU64,
    /// Clients pinned to their server, by reason (in the order of `PIN_REASONS`).
    pub pinned_clients: [AtomicU64; PIN_REASONS.len()],
    /// Statement measurement (statistics), when `stats` is on.
    pub measure: Option<Measure>,
    /// Statement analysis, shared by all sessions whether or not `stats` is on.
    pub analyzer: Arc<Analyzer>,
    /// Index advice and workload insights (`None` when `[advisor] enabled = false`).
    pub advisor: Option<Arc<crate::advisor::Advisor>>,
    /// The SELECT result cache (inert when `[cache] mode = "off"`).
    pub cache: Arc<crate::cache::Cache>,
    /// When the proxy started (uptime).
    pub started: tokio::time::Instant,
    /// The statistics clock: the one "now" of every statistics reading (the registry's
    /// own, when `stats` is on).
    pub clock: StatsClock,
    /// Slow statements: thresholds, counters, recent events, alerts and plans.
    pub slow: Arc<Slow>,
    /// The slow pipeline's context: the store link, captures and listings on request.
    pub slow_ctx: Arc<crate::slow::Ctx>,
}

impl Running {
    pub fn new(
        live: Arc<Live>,
        measure: Option<Measure>,
        analyzer: Arc<Analyzer>,
        advisor: Option<Arc<crate::advisor::Advisor>>,
        cache: Arc<crate::cache::Cache>,
        slow_ctx: Arc<crate::slow::Ctx>,
    ) -> Running {
        Running {
            live,
            pools: DashMap::new(),
            clients_registry: ClientRegistry::default(),
            openings: Openings::default(),
            buffer_budget: Arc::default(),
            auth: Authenticator::default(),
            clients: AtomicUsize::new(0),
            clients_total: AtomicU64::new(0),
            pinned_clients: Default::default(),
            clock: measure.as_ref().map_or_else(StatsClock::new, |m| m.clock),
            measure,
            analyzer,
            advisor,
            cache,
            started: tokio::time::Instant::now(),
            slow: slow_ctx.slow.clone(),
            slow_ctx,
        }
    }

    /// Statistics seconds now (see [`StatsClock`]).
    pub fn stats_now(&self) -> u64 {
        self.clock.now()
    }

    pub fn config(&self) -> Arc<Config> {
        self.live.config()
    }

    pub fn upstream(&self) -> Arc<Upstream> {
        self.live.upstream()
    }

    /// Every pool, for maintenance and reporting.
    pub fn all_pools(&self) -> Vec<Arc<Pool>> {
        self.pools.iter().map(|p| p.value().clone()).collect()
    }

    /// Every pool's [`Status`], sorted by (database, user), and the client counts of
    /// every (database, user) clients logged in to (a pair may have clients and no
    /// pool yet). Clients are counted once for all pools.
    pub fn status(&self) -> (Vec<Status>, HashMap<PoolKey, ClientCounts>) {
        let clients = self.clients_registry.counts_by_pool();
        let mut pools: Vec<Status> = (self.pools.iter())
            .map(|p| {
                let counts = clients.get(p.key()).copied().unwrap_or_default();
                Status::of(p.value(), counts)
            })
            .collect();
        pools.sort_by(|a, b| a.key.cmp(&b.key));
        (pools, clients)
    }

    /// Forgets pools nobody uses and that hold no server (see [`Pool::is_forgettable`]),
    /// so logins naming databases that do not exist leave nothing behind.
    pub fn prune_pools(&self) {
        self.pools.retain(|key, pool| {
            let forget = Pool::is_forgettable(pool);
            if forget {
                tracing::debug!(pool = %key, logged_in = pool.ever_logged_in(), "forgetting unused pool");
            }
            !forget
        });
    }
}
