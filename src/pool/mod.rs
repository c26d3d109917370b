//! Server connection pools, one per (database, user): checkout with a timeout, return,
//! health checks, and the cleanup that keeps a dirty server from reaching another client.
//!
//! Capacity is a semaphore of `pool_size` permits. A checked-out server holds a permit and
//! an idle one does not; a new connection is opened only when no idle one exists, so open
//! connections never exceed `pool_size`. The idle list is LIFO so that surplus connections
//! age out through `server_idle_timeout`.

mod counters;
mod error;
mod guard;
pub mod login;
pub mod owners;
mod reaper;
pub mod server;
pub mod side;
mod status;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

pub use counters::{PoolCounters, WAIT_BUCKETS};
pub use error::{PoolError, ServerError};
pub use guard::PooledServer;
pub use login::ServerAuth;
pub use reaper::run_reaper;
pub use server::{ServerConn, ServerTarget};
pub use status::{mode_name, ClientCounts, ServerCounts, Status};

use crate::background::Background;
use crate::config::{Config, PoolMode, PoolSettings};
use crate::tls::ServerTls;
use counters::GaugeGuard;

/// A pool's identity: the database as clients name it, and the user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolKey {
    pub database: String,
    pub user: String,
}

impl std::fmt::Display for PoolKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.database, self.user)
    }
}

/// Everything a pool needs from the configuration, swapped whole on reload.
#[derive(Debug, Clone)]
pub struct PoolParams {
    pub settings: PoolSettings,
    pub checkout_timeout: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub lifetime: Duration,
    pub check_delay: Duration,
    pub reset_query: String,
    /// How to talk TLS to the server (shared by every pool).
    pub server_tls: Arc<ServerTls>,
}

impl PoolParams {
    pub fn new(config: &Config, settings: PoolSettings, server_tls: Arc<ServerTls>) -> PoolParams {
        PoolParams {
            settings,
            checkout_timeout: config.checkout_timeout,
            connect_timeout: config.server_connect_timeout,
            idle_timeout: config.server_idle_timeout,
            lifetime: config.server_lifetime,
            check_delay: config.server_check_delay,
            reset_query: config.server_reset_query.clone(),
            server_tls,
        }
    }
}

/// The ParameterStatus values a fresh server greets with, in order.
pub type Greeting = Arc<Vec<(String, String)>>;

pub struct Pool {
    pub key: PoolKey,
    params: ArcSwap<PoolParams>,
    semaphore: Arc<Semaphore>,
    // Boxed on purpose: connections move in and out on every checkout.
    #[allow(clippy::vec_box)]
    idle: Mutex<Vec<Box<ServerConn>>>,
    auth: Mutex<ServerAuth>,
    /// Set when a login with `auth` was refused: the credentials are dropped, and the next
    /// client login of this pool's user is checked by the server again.
    auth_rejected: AtomicBool,
    /// Parameters a fresh server reports at login, for logins that need no server.
    welcome: Mutex<Option<Greeting>>,
    pub counters: PoolCounters,
    /// PAUSE: new checkouts wait until RESUME.
    paused: AtomicBool,
    resumed: Notify,
    /// Function names known to be built-ins only (or not), for transaction mode's check
    /// of opaque statements ([`crate::query::opacity`]).
    pub functions: Arc<crate::query::KnownFunctions>,
    /// Owners of the renamed prepared statements on this pool's servers.
    pub owners: owners::StatementOwners,
    /// A server login for this pool has succeeded at least once.
    logged_in: AtomicBool,
    /// Where the pool's own background work runs (shrinking, topping up).
    background: Background,
}

impl Pool {
    pub fn new(key: PoolKey, params: PoolParams, background: Background) -> Arc<Pool> {
        let size = params.settings.size;
        Arc::new(Pool {
            key,
            params: ArcSwap::from_pointee(params),
            semaphore: Arc::new(Semaphore::new(size)),
            idle: Mutex::new(Vec::new()),
            auth: Mutex::new(ServerAuth::None),
            auth_rejected: AtomicBool::new(false),
            welcome: Mutex::new(None),
            counters: PoolCounters::default(),
            paused: AtomicBool::new(false),
            resumed: Notify::new(),
            functions: Arc::default(),
            owners: owners::StatementOwners::default(),
            logged_in: AtomicBool::new(false),
            background,
        })
    }

    pub fn params(&self) -> Arc<PoolParams> {
        self.params.load_full()
    }

    pub fn mode(&self) -> PoolMode {
        self.params.load().settings.mode
    }

    /// Applies reloaded settings; a smaller size takes effect as servers come back.
    pub fn update_params(self: &Arc<Self>, new: PoolParams) {
        let old = self.params.swap(Arc::new(new.clone()));
        let (old_size, new_size) = (old.settings.size, new.settings.size);
        if new_size > old_size {
            self.semaphore.add_permits(new_size - old_size);
        } else if new_size < old_size {
            let surplus = (old_size - new_size) as u32;
            let semaphore = self.semaphore.clone();
            // Waits for checked-out servers to come back; cancelled at shutdown, when
            // the size no longer matters.
            self.background.spawn(async move {
                if let Ok(permits) = semaphore.acquire_many_owned(surplus).await {
                    permits.forget();
                }
            });
        }
    }

    /// Remembers credentials that can log in to the server for this pool's user.
    pub fn offer_auth(&self, auth: ServerAuth) {
        if auth.is_some() {
            *lock(&self.auth) = auth;
        }
    }

    /// True (once) when a server login with this pool's credentials was refused since the
    /// last call: what pass-through kept for the user is stale.
    pub fn take_auth_rejected(&self) -> bool {
        self.auth_rejected.swap(false, Ordering::AcqRel)
    }

    pub fn welcome(&self) -> Option<Greeting> {
        lock(&self.welcome).clone()
    }

    pub fn idle_count(&self) -> usize {
        lock(&self.idle).len()
    }

    /// Servers currently handed out (including ones being cleaned up).
    pub fn active_count(&self) -> usize {
        let open = self.counters.open.load(Ordering::Relaxed);
        open.saturating_sub(self.idle_count())
    }

    /// PAUSE: new checkouts wait (up to `checkout_timeout`) until `resume`; returns once
    /// no server is in use, or after `limit`, whichever comes first. True when idle.
    pub async fn pause(&self, limit: Duration) -> bool {
        self.paused.store(true, Ordering::Release);
        tracing::info!(pool = %self.key, "pool paused");
        let deadline = Instant::now() + limit;
        while self.active_count() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::Release);
        self.resumed.notify_waiters();
        tracing::info!(pool = %self.key, "pool resumed");
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Idle servers: (pid, age, idle time), for SHOW SERVERS.
    pub fn idle_servers(&self) -> Vec<(i32, Duration, Duration)> {
        let now = Instant::now();
        lock(&self.idle)
            .iter()
            .map(|s| {
                (
                    s.pid,
                    now.duration_since(s.created),
                    now.duration_since(s.last_used),
                )
            })
            .collect()
    }

    /// Waits up to `checkout_timeout` for a server; a broken idle server is replaced.
    pub async fn checkout(self: &Arc<Self>) -> Result<PooledServer, PoolError> {
        let params = self.params();
        let fast = match self.paused.load(Ordering::Acquire) {
            false => self.semaphore.clone().try_acquire_owned().ok(),
            true => None,
        };
        let (permit, waited) = match fast {
            Some(permit) => (permit, Duration::ZERO),
            None => {
                let started = Instant::now();
                let permit = self.wait_for_permit(&params, started).await?;
                (permit, started.elapsed())
            }
        };
        self.counters.record_wait(waited);
        self.counters.checkouts.fetch_add(1, Ordering::Relaxed);
        loop {
            let candidate = lock(&self.idle).pop();
            let Some(mut server) = candidate else {
                let server = self.open_server(&params).await?;
                return Ok(PooledServer::new(server, permit, self.clone(), waited));
            };
            if !self.reusable(&mut server, &params).await {
                server.terminate();
                continue;
            }
            return Ok(PooledServer::new(server, permit, self.clone(), waited));
        }
    }

    async fn wait_for_permit(
        &self,
        params: &PoolParams,
        started: Instant,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, PoolError> {
        let _waiting = GaugeGuard::new(&self.counters.waiting_clients);
        let acquire = async {
            // A paused pool holds new checkouts until RESUME.
            while self.paused.load(Ordering::Acquire) {
                let resumed = self.resumed.notified();
                if !self.paused.load(Ordering::Acquire) {
                    break;
                }
                resumed.await;
            }
            self.semaphore.clone().acquire_owned().await
        };
        let acquired = tokio::time::timeout(params.checkout_timeout, acquire).await;
        match acquired {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.counters
                    .checkout_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                Err(PoolError::Timeout {
                    pool: self.key.to_string(),
                    waited_ms: started.elapsed().as_millis(),
                    size: params.settings.size,
                })
            }
        }
    }

    async fn reusable(&self, server: &mut ServerConn, params: &PoolParams) -> bool {
        let now = Instant::now();
        let idle_for = now.duration_since(server.last_used);
        if now.duration_since(server.created) > params.lifetime || !server.still_usable(idle_for) {
            return false;
        }
        if idle_for > params.check_delay {
            let _testing = GaugeGuard::new(&self.counters.testing);
            if let Err(e) = server.ping(params.connect_timeout).await {
                tracing::info!(pool = %self.key, error = %e, "idle server failed its check; replacing it");
                return false;
            }
        }
        true
    }

    /// Opens a new server connection (the caller holds a permit for it).
    async fn open_server(&self, params: &PoolParams) -> Result<Box<ServerConn>, ServerError> {
        let target = self.target(params);
        let auth = lock(&self.auth).clone();
        let _login = GaugeGuard::new(&self.counters.logging_in);
        let opened = login::open(
            &target,
            &auth,
            &params.server_tls,
            params.connect_timeout,
            self.counters.open.clone(),
        )
        .await;
        match opened {
            Ok(server) => {
                self.logged_in.store(true, Ordering::Relaxed);
                tracing::debug!(pool = %self.key, pid = server.pid, tls = server.stream.is_tls(), channel_binding = server.channel_binding, "opened server connection");
                if server.stream.is_tls() {
                    self.counters.tls_logins.fetch_add(1, Ordering::Relaxed);
                }
                if server.channel_binding {
                    self.counters
                        .channel_bound_logins
                        .fetch_add(1, Ordering::Relaxed);
                }
                let welcome = server
                    .reported
                    .values()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                *lock(&self.welcome) = Some(Arc::new(welcome));
                Ok(server)
            }
            Err(e) => {
                self.counters.connect_errors.fetch_add(1, Ordering::Relaxed);
                if e.is_auth_rejection() {
                    // A password changed on the server takes effect here: forget the old
                    // credentials so the next login is checked by the server.
                    *lock(&self.auth) = ServerAuth::None;
                    self.auth_rejected.store(true, Ordering::Release);
                }
                tracing::warn!(pool = %self.key, address = %target.address(), error = %e, "server login failed");
                Err(e)
            }
        }
    }

    fn target(&self, params: &PoolParams) -> ServerTarget {
        ServerTarget {
            host: params.settings.host.clone(),
            port: params.settings.port,
            dbname: params.settings.server_dbname.clone(),
            user: self.key.user.clone(),
        }
    }

    /// True when nothing but the pool map refers to `pool` and it holds no server: it
    /// can be forgotten. A pool that never logged in to its server (a database or user
    /// that does not exist) goes at once; one that did once its servers have aged out
    /// (`server_idle_timeout`), since its counters are worth keeping while it is in use.
    pub fn is_forgettable(pool: &Arc<Pool>) -> bool {
        Arc::strong_count(pool) == 1
            && pool.counters.open.load(Ordering::Relaxed) == 0
            && pool.counters.logging_in.load(Ordering::Relaxed) == 0
            && !pool.is_paused()
    }

    /// Whether a server login for this pool ever succeeded.
    pub fn ever_logged_in(&self) -> bool {
        self.logged_in.load(Ordering::Relaxed)
    }

    /// Puts a clean server on the idle list.
    fn push_idle(&self, mut server: Box<ServerConn>) {
        server.last_used = Instant::now();
        lock(&self.idle).push(server);
    }
}

/// Locks a std mutex, recovering from poisoning: every critical section here is a few
/// field updates that leave the data consistent even if a panic interrupted them.
/// None of these locks is ever held across an `.await`.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
