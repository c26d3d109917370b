//! Start-up and shutdown: builds the one `Shared` the client-facing tasks receive (only
//! services whose types live below those tasks) and the slow pipeline's own context,
//! binds the listener and the admin HTTP listener, spawns the accept loop, the admin
//! server and pool maintenance on the clients' `TaskTracker` and the background workers
//! on a second one, reloads the configuration on demand, and drains on shutdown: first
//! the clients, then the workers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use arc_swap::ArcSwap;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

use crate::background::Background;
use crate::config::{Config, ConfigError, Live, Overrides};
use crate::pool::{run_reaper, Pool, PoolKey, PoolParams};
use crate::query::Analyzer;
use crate::slow::Slow;
use crate::state::Running;
use crate::stats::{Measure, Registry as StatsRegistry};
use crate::tls::Tls;

/// Query shapes whose analysis is cached (keyed by the literal-free token stream).
const ANALYZER_CACHE: usize = 10_000;

/// How long shutdown waits for the background workers (the slow worker's last writes)
/// once every client is gone; what is still running then is dropped.
const WORKERS_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// What the client-facing tasks share: the running [`Running`] (which the admin server
/// and the console narrow to a context of their own) plus TLS, the shutdown signals and
/// where the configuration came from. Built once in [`App::start`].
pub struct Shared {
    state: Arc<Running>,
    /// TLS acceptor and server connector, rebuilt on reload.
    tls: ArcSwap<Tls>,
    /// Fired by the first shutdown request: stop accepting, let transactions finish.
    pub shutdown: CancellationToken,
    /// Fired when `shutdown_timeout` runs out or on a second request: close everyone.
    pub force_close: CancellationToken,
    /// Where pools run their background work (on the workers' tracker, ending at drain).
    pool_background: Background,
    /// Mirrors of the two tokens, readable without a lock on the hot path.
    draining: AtomicBool,
    forcing: AtomicBool,
    /// Where the configuration came from, for reloads.
    source: ConfigSource,
}

/// Sessions reach the running state through `Shared` until they get a context of their
/// own (the request pipeline's work); everything else takes [`Running`] directly.
impl std::ops::Deref for Shared {
    type Target = Running;

    fn deref(&self) -> &Running {
        &self.state
    }
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
    /// The running state, for the admin server and the console.
    pub fn state(&self) -> &Arc<Running> {
        &self.state
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
                Pool::new(key, params, self.pool_background.clone())
            })
            .clone()
    }

    /// Re-reads the configuration and applies it to every pool; on error the running
    /// configuration stays and the error (naming the key) is returned.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let config = Config::load(self.source.path.as_deref(), &self.source.overrides)?;
        let upstream = crate::config::parse_upstream(&config)?;
        let tls = Tls::from_config(&config)?;
        for pool in self.pools.iter() {
            let settings = config.pool_settings(&upstream, &pool.key.database);
            pool.update_params(PoolParams::new(&config, settings, tls.server.clone()));
        }
        self.tls.store(Arc::new(tls));
        self.slow.reload(&config);
        self.state.cache.reload(&config.cache);
        self.state.live.store(config, upstream);
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

/// A running proxy.
pub struct App {
    shared: Arc<Shared>,
    /// The accept loops, sessions, the admin server and the reaper.
    tracker: TaskTracker,
    /// Background work: the slow worker, the store and its jobs, pool top-ups.
    workers: TaskTracker,
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
}

impl Shared {
    /// The services, with the slow pipeline's context on the `workers` tracker.
    fn build(
        config: Config,
        tls: Tls,
        source: ConfigSource,
        port: u16,
        workers: &TaskTracker,
    ) -> Result<(Shared, crate::slow::Receiver), ConfigError> {
        // Analysis is always on (pooling rules and the cache need it); `stats` turns on
        // only the recording.
        let analyzer = Arc::new(Analyzer::new(ANALYZER_CACHE));
        let measure = config.stats.then(|| Measure {
            analyzer: analyzer.clone(),
            registry: Arc::new(StatsRegistry::new(config.max_fingerprints)),
            clock: crate::stats::StatsClock::new(),
        });
        let (slow, slow_rx) = Slow::new(&config);
        let advisor = crate::advisor::Advisor::new(&config.advisor);
        let cache = Arc::new(crate::cache::Cache::new(&config.cache));
        let live = Arc::new(Live::new(config)?);
        let (shutdown, force_close) = (CancellationToken::new(), CancellationToken::new());
        // The slow worker keeps recording while clients drain; it ends when they are closed.
        let slow_background = Background::new(workers.clone(), force_close.clone());
        let sidecar_id = crate::slow::sidecar_id(port);
        let slow_ctx = crate::slow::Ctx::new(
            live.clone(),
            slow,
            measure.clone(),
            sidecar_id,
            slow_background,
        );
        let shared = Shared {
            state: Arc::new(Running::new(
                live,
                measure,
                analyzer,
                advisor,
                cache,
                Arc::new(slow_ctx),
            )),
            pool_background: Background::new(workers.clone(), shutdown.clone()),
            tls: ArcSwap::from_pointee(tls),
            shutdown,
            force_close,
            draining: AtomicBool::new(false),
            forcing: AtomicBool::new(false),
            source,
        };
        Ok((shared, slow_rx))
    }
}

impl App {
    /// Binds the listener and starts serving. The upstream need not be reachable.
    pub async fn start(config: Config, source: ConfigSource) -> Result<App, AppError> {
        config.validate()?;
        crate::config::parse_upstream(&config)?;
        let tls = Tls::from_config(&config).map_err(ConfigError::from)?;
        let listeners = crate::listener::Listeners::bind(&config).await?;
        let (local_addr, admin_addr) = (
            listeners.local_addr,
            (listeners.admin.as_ref()).and_then(|l| l.local_addr().ok()),
        );
        let workers = TaskTracker::new();
        let (shared, slow_rx) = Shared::build(config, tls, source, local_addr.port(), &workers)?;
        let shared = Arc::new(shared);
        let tracker = TaskTracker::new();
        spawn_tasks(&shared, &tracker, listeners);
        crate::slow::start(&shared.slow_ctx, slow_rx, shared.shutdown.clone());
        crate::advisor::start(shared.state(), &workers, shared.shutdown.clone());
        crate::cache::start(shared.state(), &workers, shared.shutdown.clone());
        tracing::info!(listen = %local_addr, admin = ?admin_addr, upstream = %shared.upstream().address(), "pgsidecar listening");
        Ok(App {
            shared,
            tracker,
            workers,
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
        self.workers.close();
        if tokio::time::timeout(WORKERS_GRACE, self.workers.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                still_running = self.workers.len(),
                "background work still running at exit; dropping it"
            );
        }
        tracing::info!("pgsidecar stopped");
    }
}

/// The accept loops, the admin server and the pool reaper, on the clients' tracker.
fn spawn_tasks(shared: &Arc<Shared>, tracker: &TaskTracker, listeners: crate::listener::Listeners) {
    let run = crate::listener::run(listeners.tcp, shared.clone(), tracker.clone());
    tracker.spawn(run);
    if let Some((listener, path)) = listeners.unix {
        tracing::info!(socket = %path.display(), "listening on a Unix socket");
        let run = crate::listener::run_unix(listener, path, shared.clone(), tracker.clone());
        tracker.spawn(run);
    }
    if let Some(admin) = listeners.admin {
        let serve = crate::admin::serve(admin, shared.state().clone(), shared.shutdown.clone());
        tracker.spawn(serve);
    }
    let reaper_shared = shared.clone();
    tracker.spawn(run_reaper(
        move || {
            reaper_shared.prune_pools();
            reaper_shared.all_pools()
        },
        shared.shutdown.clone(),
    ));
}
