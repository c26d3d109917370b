//! Index advice and workload insights, built on what the proxy sees: every statement
//! with its real values, its call counts and latencies.
//!
//! - Sessions feed an [`Observer`] (the client path's only hook): parameter samples
//!   ([`samples`]), N+1 runs ([`patterns`]) and closed-loop latencies ([`watch`]).
//! - A pass ([`pass`], in the background every `interval`, or on request) runs on side
//!   connections, never a client's: candidates from the parse tree ([`tree`],
//!   [`candidates`]), costed on the sampled values with HypoPG ([`hypo`]) and selected
//!   greedily, GIN and no-HypoPG fallbacks labelled heuristic; index health ([`health`])
//!   snapshotted into the store ([`store`]); applied suggestions measured before/after.
//! - Outputs: `/api/advice`, `/api/insights` ([`api`]), `SHOW ADVICE`/`SHOW INDEXES`
//!   ([`console`]), `pgsidecar advise` ([`cli`]), `/metrics` ([`metrics`]).
//!
//! Nothing is ever created or dropped: suggestions are statements for a human.

pub mod api;
mod candidates;
mod catalog;
pub mod cli;
pub mod config;
pub mod console;
mod follow;
mod health;
mod hypo;
pub mod metrics;
mod observer;
mod pass;
mod patterns;
pub mod report;
mod samples;
mod select;
mod state;
mod store;
mod tree;
mod watch;

use std::sync::{Arc, OnceLock};

use crate::stats::{Registry, StatsClock};
use crate::store::Store;

pub use config::AdvisorConfig;
pub use observer::{Observer, Seen};
pub use report::Report;

/// Why a pass could not run.
#[derive(Debug, thiserror::Error)]
pub enum AdvisorError {
    #[error("the advisor is disabled ([advisor] enabled = false) or statistics are off")]
    Disabled,
    #[error("no side connection to database {database:?}: {reason}")]
    Connect { database: String, reason: String },
    #[error("advisor query failed in database {database:?}: {source}")]
    Query {
        database: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// Where a database's side connection goes: host, port, server-side name, and the
/// proxy's own identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: Option<String>,
}

/// Where a database's side connection goes (`None` once the proxy is gone).
pub type TargetFn = Box<dyn Fn(&str) -> Option<Target> + Send + Sync>;

/// The advisor's narrow view of the rest of the proxy.
pub struct Env {
    pub registry: Arc<Registry>,
    pub clock: StatsClock,
    /// The side-connection target for a database as clients name it.
    pub target: TargetFn,
    /// The store, once connected.
    pub store: Box<dyn Fn() -> Option<Store> + Send + Sync>,
    pub explain_store_params: bool,
}

/// The advisor: shared state plus, once started, its environment.
pub struct Advisor {
    state: Arc<state::State>,
    env: OnceLock<Env>,
    pools: dashmap::DashMap<Target, deadpool_postgres::Pool>,
}

impl Advisor {
    /// `None` when disabled.
    pub fn new(config: &AdvisorConfig) -> Option<Arc<Advisor>> {
        config.enabled.then(|| {
            Arc::new(Advisor {
                state: Arc::new(state::State::new(config.clone())),
                env: OnceLock::new(),
                pools: dashmap::DashMap::new(),
            })
        })
    }

    /// A session's observer.
    pub fn observer(&self, database: &str) -> Observer {
        Observer::new(self.state.clone(), database)
    }

    /// Sets the environment and spawns the background passes on `tracker`; they end
    /// when `stop` fires.
    pub fn start(
        self: &Arc<Self>,
        env: Env,
        tracker: &tokio_util::task::TaskTracker,
        stop: tokio_util::sync::CancellationToken,
    ) {
        if self.env.set(env).is_err() {
            return;
        }
        let interval = self.state.config.interval;
        if interval.is_zero() {
            return;
        }
        let me = self.clone();
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                if let Err(e) = me.run_pass().await {
                    tracing::warn!(error = %e, "advisor pass failed");
                }
            }
        });
    }

    /// Runs a full pass now (waiting for one in progress) and returns its report.
    pub async fn run_pass(&self) -> Result<Arc<Report>, AdvisorError> {
        let env = self.env.get().ok_or(AdvisorError::Disabled)?;
        let _one = self.state.running.lock().await;
        let report = Arc::new(pass::run(self, env).await);
        *state::lock(&self.state.report) = Some(report.clone());
        Ok(report)
    }

    /// The last pass's report with live closed-loop measurements, if a pass ran.
    pub fn report(&self) -> Option<Report> {
        let report = state::lock(&self.state.report).clone()?;
        let mut report = (*report).clone();
        follow::measure(&self.state, &mut report);
        Some(report)
    }

    pub fn patterns(&self) -> Vec<patterns::Pattern> {
        self.state.patterns.list()
    }

    /// The normalized text of a fingerprint in a database, if the statistics have it.
    pub fn query_text(&self, database: &str, fingerprint: u64) -> Option<String> {
        let env = self.env.get()?;
        env.registry
            .get(Some(database), fingerprint, env.clock.now())
            .first()
            .map(|d| d.meta.normalized.clone())
    }

    fn state(&self) -> &state::State {
        &self.state
    }
}

/// Builds the advisor's narrow environment from the running proxy (the only place the
/// advisor sees it) and starts its background passes on `tracker`, ending at `stop`.
pub fn start(
    shared: &Arc<crate::state::Running>,
    tracker: &tokio_util::task::TaskTracker,
    stop: tokio_util::sync::CancellationToken,
) {
    let (Some(advisor), Some(measure)) = (&shared.advisor, &shared.measure) else {
        return;
    };
    let for_target = Arc::downgrade(shared);
    let for_store = Arc::downgrade(shared);
    let env = Env {
        registry: measure.registry.clone(),
        clock: measure.clock,
        target: Box::new(move |database| {
            let shared = for_target.upgrade()?;
            let upstream = shared.upstream();
            let settings = shared.config().pool_settings(&upstream, database);
            Some(Target {
                host: settings.host,
                port: settings.port,
                dbname: settings.server_dbname,
                user: upstream.user.clone(),
                password: upstream.password.clone(),
            })
        }),
        store: Box::new(move || {
            for_store
                .upgrade()
                .and_then(|s| s.slow_ctx.store.get().cloned())
        }),
        explain_store_params: shared.config().explain_store_params,
    };
    advisor.start(env, tracker, stop);
}
