//! The proxy's durable store: its own schema (`pgsidecar`, from `migrations/`) in a
//! PostgreSQL database shared by every sidecar of a fleet.
//!
//! What lives here: slow statements, alerts, per-minute statistics, captured plans and
//! plan changes ([`events`], [`plans`]); a job queue the sidecars share ([`jobs`]);
//! migrations ([`migrate`]) and retention ([`retention`]); the store's lifecycle
//! (connect with backoff, migrate, health) in [`Link`], and the generic job runner in
//! [`runner`]. Every write is tagged with the
//! sidecar's name. The store is a side channel: callers treat its errors as something to
//! log and retry, never as a reason to fail a client's query.

pub mod events;
pub mod history;
pub mod jobs;
mod link;
pub mod migrate;
pub mod plans;
pub mod retention;
pub mod rows;
pub mod runner;

mod error;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

pub use error::StoreError;
pub use history::PlanRef;
pub use jobs::{Job, JobStatus};
pub use link::Link;
pub use migrate::{migrate, MIGRATIONS};
pub use retention::RetentionReport;
pub use rows::{
    rfc3339_ms, Alert, Level, NewPlan, Page, Plan, PlanChange, SlowEvent, Snapshot, Stored,
};

/// Connections per sidecar: the store sees batched writes and a few lists, never
/// per-query traffic.
const POOL_SIZE: usize = 4;
/// Opening a connection (TCP, startup, authentication) or waiting for a free one never
/// takes longer than this, so an unreachable store fails fast instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// First retry delay of a failed job; doubles with each attempt.
const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);

/// A handle on the store. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    sidecar: Arc<str>,
    retry_base: Duration,
    /// `host:port/dbname`, for errors (never the password).
    target: Arc<str>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("target", &self.target)
            .field("sidecar", &self.sidecar)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens a pool on the store at `url` and checks that a connection works, failing
    /// within about 5 s when the store cannot be reached. `sidecar` names this proxy in
    /// every row it writes and in the jobs it claims.
    pub async fn connect(url: &str, sidecar: &str) -> Result<Store, StoreError> {
        let mut pg = tokio_postgres::Config::from_str(url)
            .map_err(|source| StoreError::InvalidUrl { source })?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(CONNECT_TIMEOUT);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("pgsidecar store");
        }
        // The migrations' IF NOT EXISTS notices would reach the log on every start.
        if pg.get_options().is_none() {
            pg.options("-c client_min_messages=warning");
        }
        let target = describe(&pg);
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // The driver's connect timeout covers only the TCP connect; the pool's create
        // timeout also covers a server that accepts and then never answers.
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .unwrap_or_else(|e| unreachable!("pool with a runtime and timeouts builds: {e}"));
        let store = Store {
            pool,
            sidecar: Arc::from(sidecar),
            retry_base: DEFAULT_RETRY_BASE,
            target: Arc::from(target),
        };
        let client = store.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(StoreError::query("connection check"))?;
        tracing::debug!(target = %store.target, "store reachable");
        Ok(store)
    }

    /// One round trip (`SELECT 1`), for the health check.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(StoreError::query("health check"))?;
        Ok(())
    }

    /// Sets the first retry delay of a failed job (default 1 s); attempt `n` waits
    /// `base * 2^(n-1)`.
    pub fn with_retry_base(mut self, base: Duration) -> Store {
        self.retry_base = base;
        self
    }

    /// The name this sidecar writes into rows and job claims.
    pub fn sidecar(&self) -> &str {
        &self.sidecar
    }

    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|source| StoreError::Connect {
            target: self.target.to_string(),
            source,
        })
    }
}

/// `host:port/dbname` of a connection config, for messages.
fn describe(pg: &tokio_postgres::Config) -> String {
    let host = match pg.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", pg.get_dbname().unwrap_or(""))
}

/// Seconds as the `float8` that `make_interval(secs => …)` takes.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
