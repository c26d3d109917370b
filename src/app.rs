//! Start-up and shutdown: builds the one `Shared` every task receives, binds the
//! listener and the admin HTTP listener, spawns the accept loop, the admin server and
//! pool maintenance on one `TaskTracker`, reloads the configuration on demand, and
//! drains on shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::config::{Config, ConfigError, Overrides, Upstream};
use crate::pool::{run_reaper, Pool, PoolKey, PoolParams};
use crate::query::Analyzer;
use crate::session::{BufferBudget, ClientRegistry, Measure, Openings};
use crate::slow::{Capturer, Slow};
use crate::stats::Registry as StatsRegistry;
use crate::store::Store;
use crate::tls::Tls;

/// Query shapes whose analysis is cached (keyed by the literal-free token stream).
const ANALYZER_CACHE: usize = 10_000;

/// Everything sessions and workers share. Built once in [`App::start`].
pub struct Shared {
    config: ArcSwap<Config>,
    upstream: ArcSwap<Upstream>,
    /// TLS acceptor and server connector, rebuilt on reload.
    tls: ArcSwap<Tls>,
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
    pub pinned_clients: [AtomicU64; 6],
    /// Fired by the first shutdown request: stop accepting, let transactions finish.
    pub shutdown: CancellationToken,
    /// Fired when `shutdown_timeout` runs out or on a second request: close everyone.
    pub force_close: CancellationToken,
    /// Statement measurement (query analysis and statistics), when `stats` is on.
    pub measure: Option<Measure>,
    /// Statement analysis, shared by all sessions whether or not `stats` is on.
    pub analyzer: Arc<Analyzer>,
    /// When the proxy started (uptime, and time zero for statistics).
    pub started: tokio::time::Instant,
    /// Slow statements: thresholds, counters, recent events, alerts and plans.
    pub slow: Arc<Slow>,
    /// The durable store, once connected and migrated (never, when off or unreachable).
    pub store: OnceLock<Store>,
    /// Side connections for EXPLAIN captures.
    pub capturer: Capturer,
    /// The SELECT result cache (inert when `[cache] mode = "off"`).
    pub cache: Arc<crate::cache::Cache>,
    /// HTTP client for alert webhooks.
    pub http: reqwest::Client,
    /// This sidecar's name in the store (host/pid/port), to tell a fleet apart.
    pub sidecar_id: String,
    /// Mirrors of the two tokens, readable without a lock on the hot path.
    draining: AtomicBool,
    forcing: AtomicBool,
    /// Where the configuration came from, for reloads.
    source: ConfigSource,
}

/// The file and command-line overrides the configuration was built from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub path: Option<PathBuf>,
    pub overrides: Overrides,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

impl Shared {
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    pub fn upstream(&self) -> Arc<Upstream> {
        self.upstream.load_full()
    }

    pub fn tls(&self) -> Arc<Tls> {
        self.tls.load_full()
    }

    /// The pool for (database, user), created on first use.
    pub fn pool(&self, database: &str, user: &str) -> Arc<Pool> {
        let key = PoolKey {
            database: database.to_string(),
            user: user.to_string(),
        };
        if let Some(pool) = self.pools.get(&key) {
            return pool.clone();
        }
        let config = self.config();
        let settings = config.pool_settings(&self.upstream(), database);
        let params = PoolParams::new(&config, settings, self.tls().server.clone());
        self.pools
            .entry(key.clone())
            .or_insert_with(|| {
                tracing::info!(pool = %key, mode = ?params.settings.mode, size = params.settings.size, "created pool");
                Pool::new(key, params)
            })
            .clone()
    }

    /// Re-reads the configuration and applies it to every pool; on error the running
    /// configuration stays and the error (naming the key) is returned.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let config = Config::load(self.source.path.as_deref(), &self.source.overrides)?;
        let upstream =
            Upstream::parse(&config.upstream).map_err(|reason| ConfigError::Invalid {
                key: "upstream".into(),
                reason,
            })?;
        let tls = Tls::from_config(&config)?;
        for pool in self.pools.iter() {
            let settings = config.pool_settings(&upstream, &pool.key.database);
            pool.update_params(PoolParams::new(&config, settings, tls.server.clone()));
        }
        self.tls.store(Arc::new(tls));
        self.slow.reload(&config);
        self.cache.reload(&config.cache);
        self.upstream.store(Arc::new(upstream));
        self.config.store(Arc::new(config));
        tracing::info!("configuration reloaded");
        Ok(())
    }

    /// A per-task view of the shutdown signals that is cheap to check on every poll.
    pub fn watch_shutdown(&self) -> ShutdownWatch {
        ShutdownWatch {
            drain: Box::pin(self.shutdown.clone().cancelled_owned()),
            force: Box::pin(self.force_close.clone().cancelled_owned()),
            registered: false,
        }
    }

    /// Starts a graceful shutdown: no new clients, open transactions may finish.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.shutdown.cancel();
    }

    /// Closes every client now.
    pub fn close_all(&self) {
        self.draining.store(true, Ordering::Release);
        self.forcing.store(true, Ordering::Release);
        self.shutdown.cancel();
        self.force_close.cancel();
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

    /// Every pool, for maintenance and reporting.
    pub fn all_pools(&self) -> Vec<Arc<Pool>> {
        self.pools.iter().map(|p| p.value().clone()).collect()
    }
}

/// Shutdown signals as seen by one task.
///
/// Polling a token's `cancelled()` future takes the token's lock every time, and every
/// session shares the token; so each future is polled once, to register this task's
/// waker, and afterwards only the tokens' atomic flags are read. A cancel wakes the
/// task through the registered waker, and the next poll sees the flag.
pub struct ShutdownWatch {
    drain: Pin<Box<WaitForCancellationFutureOwned>>,
    force: Pin<Box<WaitForCancellationFutureOwned>>,
    registered: bool,
}

impl ShutdownWatch {
    /// True when the task must stop now: forced, or draining and `at_rest`.
    /// Must be polled from the task that will wait (its waker is registered).
    pub fn poll_stop(&mut self, cx: &mut Context<'_>, shared: &Shared, at_rest: bool) -> bool {
        if !self.registered {
            // The flags are set before the tokens fire, so a cancel that lands after
            // this registration wakes us, and one that landed before shows in the flags.
            let _ = self.force.as_mut().poll(cx);
            let _ = self.drain.as_mut().poll(cx);
            self.registered = true;
        }
        let forced = shared.forcing.load(Ordering::Acquire);
        let draining = shared.draining.load(Ordering::Acquire);
        forced || (draining && at_rest)
    }
}

/// Binds the admin HTTP listener. A failure is logged and the proxy runs without it:
/// the admin server is auxiliary and must not keep clients from being served.
async fn bind_admin(address: &str) -> Option<TcpListener> {
    match TcpListener::bind(address).await {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(address, error = %e, "cannot listen for the admin HTTP server; running without it");
            None
        }
    }
}

/// A running proxy.
pub struct App {
    shared: Arc<Shared>,
    tracker: TaskTracker,
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
}

impl App {
    /// Binds the listener and starts serving. The upstream need not be reachable.
    pub async fn start(config: Config, source: ConfigSource) -> Result<App, AppError> {
        config.validate()?;
        let upstream =
            Upstream::parse(&config.upstream).map_err(|reason| ConfigError::Invalid {
                key: "upstream".into(),
                reason,
            })?;
        let tls = Tls::from_config(&config).map_err(ConfigError::from)?;
        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|source| AppError::Bind {
                    address: config.listen.clone(),
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| AppError::Bind {
            address: config.listen.clone(),
            source,
        })?;
        let unix = match &config.listen_unix_dir {
            Some(dir) => Some(crate::listener::bind_unix(dir, local_addr.port()).map_err(
                |source| {
                    AppError::Bind {
                        address: crate::tls::unix_socket_path(dir, local_addr.port())
                            .display()
                            .to_string(),
                        source,
                    }
                },
            )?),
            None => None,
        };
        let admin = bind_admin(&config.admin_listen).await;
        let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());
        let started = tokio::time::Instant::now();
        // Analysis is always on (pooling rules and the cache need it); `stats` turns on
        // only the recording.
        let analyzer = Arc::new(Analyzer::new(ANALYZER_CACHE));
        let measure = config.stats.then(|| Measure {
            analyzer: analyzer.clone(),
            registry: Arc::new(StatsRegistry::new(config.max_fingerprints)),
            clock: crate::stats::StatsClock::new(),
        });
        let (slow, slow_rx) = Slow::new(&config);
        let shared = Arc::new(Shared {
            slow,
            store: OnceLock::new(),
            capturer: Capturer::default(),
            cache: Arc::new(crate::cache::Cache::new(&config.cache)),
            http: reqwest::Client::new(),
            sidecar_id: crate::slow::sidecar_id(local_addr.port()),
            measure,
            analyzer,
            started,
            config: ArcSwap::from_pointee(config),
            upstream: ArcSwap::from_pointee(upstream),
            tls: ArcSwap::from_pointee(tls),
            pools: DashMap::new(),
            clients_registry: ClientRegistry::default(),
            openings: Openings::default(),
            buffer_budget: Arc::default(),
            auth: Authenticator::default(),
            clients: AtomicUsize::new(0),
            clients_total: AtomicU64::new(0),
            pinned_clients: Default::default(),
            shutdown: CancellationToken::new(),
            force_close: CancellationToken::new(),
            draining: AtomicBool::new(false),
            forcing: AtomicBool::new(false),
            source,
        });
        let tracker = TaskTracker::new();
        tracker.spawn(crate::listener::run(
            listener,
            shared.clone(),
            tracker.clone(),
        ));
        if let Some((listener, path)) = unix {
            tracing::info!(socket = %path.display(), "listening on a Unix socket");
            let run = crate::listener::run_unix(listener, path, shared.clone(), tracker.clone());
            tracker.spawn(run);
        }
        if let Some(admin) = admin {
            tracker.spawn(crate::admin::serve(admin, shared.clone()));
        }
        crate::slow::start(&shared, slow_rx, &tracker);
        crate::cache::start(&shared, &tracker);
        let reaper_shared = shared.clone();
        tracker.spawn(run_reaper(
            move || {
                reaper_shared.prune_pools();
                reaper_shared.all_pools()
            },
            shared.shutdown.clone(),
        ));
        tracing::info!(listen = %local_addr, admin = ?admin_addr, upstream = %shared.upstream().address(), "pgsidecar listening");
        Ok(App {
            shared,
            tracker,
            local_addr,
            admin_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the admin HTTP server listens; `None` when its address could not be bound.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Starts a graceful shutdown: no new clients, open transactions may finish.
    pub fn begin_shutdown(&self) {
        self.shared.begin_drain();
    }

    /// Closes every client at once.
    pub fn force_shutdown(&self) {
        self.shared.close_all();
    }

    /// Waits for every task to end, forcing them after `shutdown_timeout`.
    pub async fn wait(self) {
        self.tracker.close();
        let limit = self.shared.config().shutdown_timeout;
        if tokio::time::timeout(limit, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                timeout_ms = limit.as_millis() as u64,
                "shutdown timeout reached; closing remaining clients"
            );
            self.force_shutdown();
            self.tracker.wait().await;
        }
        // Every client is gone: background workers (slow statements) may end too.
        self.shared.force_close.cancel();
        tracing::info!("pgsidecar stopped");
    }
}
