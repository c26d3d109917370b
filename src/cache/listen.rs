//! The invalidation channel: per database, one side connection that LISTENs on
//! `pgsidecar_cache` (never inside a transaction, so the server's notification queue
//! is never held back by it) and applies what the triggers of [`super::install`]
//! NOTIFY: `w,<table oid>,<µs>` moves that table's generation, `d,<µs>` (DDL) flushes
//! the database, `h,<µs>` is a heartbeat this listener sends itself every half lag
//! bound, so a stalled channel shows even when nobody writes.
//!
//! Fail closed: a database is served from the cache only while its listener is
//! listening and current. When the connection drops, a notification arrives later than
//! `notify_lag_bound` after its commit, or no heartbeat returns within the bound, the
//! database is flushed and bypasses the cache until a heartbeat returns in time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::reason::Source;
use super::Cache;
use crate::state::Running;

/// The channel the triggers NOTIFY.
pub const CHANNEL: &str = "pgsidecar_cache";
/// Notifications buffered between the connection and the listener loop; a full buffer
/// counts as lag (fail closed).
const BUFFER: usize = 4096;
const HEARTBEAT: &str = "SELECT pg_catalog.pg_notify('pgsidecar_cache', 'h,' || \
     ((extract(epoch FROM pg_catalog.clock_timestamp()) * 1000000)::bigint)::text)";

/// One database's listener state.
#[derive(Default)]
struct State {
    listening: AtomicBool,
}

/// Every database's listener.
#[derive(Default)]
pub struct Listeners {
    by_db: DashMap<String, Arc<State>>,
    starter: OnceLock<mpsc::Sender<String>>,
}

impl Listeners {
    /// True when `database` may be served from the cache. The first call for a
    /// database starts its listener (the answer is false until it listens).
    pub fn listening(&self, database: &str) -> bool {
        if let Some(state) = self.by_db.get(database) {
            return state.listening.load(Ordering::Acquire);
        }
        let Some(starter) = self.starter.get() else {
            return false;
        };
        if starter.try_send(database.to_owned()).is_ok() {
            self.by_db.insert(database.to_owned(), Arc::default());
        }
        false
    }

    /// Whether each database seen so far is listening, for `/api/cache`.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, bool> {
        self.by_db
            .iter()
            .map(|s| (s.key().clone(), s.listening.load(Ordering::Acquire)))
            .collect()
    }

    /// Sets a database's state without a listener: for unit tests of the lookup path.
    #[doc(hidden)]
    pub fn force(&self, database: &str, listening: bool) {
        self.state(database)
            .listening
            .store(listening, Ordering::Release);
    }

    fn state(&self, database: &str) -> Arc<State> {
        self.by_db.entry(database.to_owned()).or_default().clone()
    }

    /// Starts the task that starts listeners, on the app's tracker; everything ends
    /// when `stop` fires.
    pub fn start(
        shared: Arc<Running>,
        cache: Arc<Cache>,
        tracker: &TaskTracker,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let (tx, mut rx) = mpsc::channel::<String>(64);
        if cache.listeners.starter.set(tx).is_err() {
            return;
        }
        let spawner = tracker.clone();
        tracker.spawn(async move {
            while let Some(database) = tokio::select! {
                db = rx.recv() => db,
                () = stop.cancelled() => None,
            } {
                let pg = super::conn::pg_config(&shared, &database);
                let run = Listener {
                    state: cache.listeners.state(&database),
                    cache: cache.clone(),
                    database,
                    stop: stop.clone(),
                };
                spawner.spawn(run.run(pg));
            }
        });
    }
}

/// The listener of one database.
pub struct Listener {
    state: Arc<State>,
    cache: Arc<Cache>,
    database: String,
    stop: CancellationToken,
}

impl Listener {
    /// Listens until `stop`, reconnecting with a growing pause (up to 5 s).
    async fn run(self, pg: tokio_postgres::Config) {
        let mut pause = Duration::from_millis(100);
        while !self.stop.is_cancelled() {
            match self.session(&pg).await {
                Ok(()) => pause = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(database = %self.database, target = %super::conn::describe(&pg), error = %e, "cache listener cannot listen; the database bypasses the cache");
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
            self.fail_closed("listener connection lost");
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.stop.cancelled() => return,
            }
        }
    }

    /// Stops serving the database from the cache and flushes it. While it is not
    /// listening no ticket is issued, so only the transition needs the flush (it also
    /// voids tickets still in flight).
    fn fail_closed(&self, why: &str) {
        if self.state.listening.swap(false, Ordering::AcqRel) {
            tracing::warn!(database = %self.database, why, "cache invalidation channel not current: flushed, bypassing until it is");
            self.cache
                .invalidate_database(&self.database, Source::FailClosed);
        }
    }

    /// One connection's life: LISTEN, heartbeats, notifications; returns when it drops.
    async fn session(&self, pg: &tokio_postgres::Config) -> Result<(), super::CacheError> {
        let (client, mut connection) =
            pg.connect(tokio_postgres::NoTls).await.map_err(|source| {
                super::CacheError::Connect {
                    target: super::conn::describe(pg),
                    source,
                }
            })?;
        let (tx, mut rx) = mpsc::channel::<String>(BUFFER);
        let overflow = Arc::new(AtomicBool::new(false));
        let flag = overflow.clone();
        let driver = tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx.try_send(n.payload().to_owned()).is_err() {
                            flag.store(true, Ordering::Release);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        let sql = |what| move |source| super::CacheError::Sql { what, source };
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(sql("LISTEN"))?;
        let bound = self.cache.config().notify_lag_bound;
        let mut tick = tokio::time::interval(bound / 2);
        let mut last_beat = Instant::now();
        let result = loop {
            tokio::select! {
                payload = rx.recv() => match payload {
                    Some(p) => {
                        if self.apply(&p, bound) {
                            last_beat = Instant::now();
                        }
                    }
                    None => break Ok(()),
                },
                _ = tick.tick() => {
                    if overflow.swap(false, Ordering::AcqRel) {
                        self.fail_closed("notification buffer overflowed");
                    }
                    if last_beat.elapsed() > bound {
                        self.fail_closed("no heartbeat within notify_lag_bound");
                    }
                    if let Err(e) = client.batch_execute(HEARTBEAT).await {
                        break Err(sql("heartbeat")(e));
                    }
                }
                () = self.stop.cancelled() => break Ok(()),
            }
        };
        driver.abort();
        result
    }

    /// Applies one payload; true for a heartbeat that came back in time.
    fn apply(&self, payload: &str, bound: Duration) -> bool {
        let mut parts = payload.split(',');
        let kind = parts.next().unwrap_or("");
        let (table, sent) = match kind {
            "w" => (
                parts.next().and_then(|t| t.parse::<u32>().ok()),
                parts.next(),
            ),
            _ => (None, parts.next()),
        };
        let lag = sent.and_then(|s| s.parse::<u64>().ok()).map(lag_since);
        if let Some(lag) = lag {
            self.cache.stats.lag(lag);
        }
        let late = lag.is_none_or(|lag| lag > bound);
        match (kind, table) {
            ("w", Some(oid)) => {
                self.cache
                    .invalidate_tables(&self.database, &[oid], Source::Notify)
            }
            ("h", _) => {}
            ("d", _) => self.cache.invalidate_database(&self.database, Source::Ddl),
            // Not ours, or malformed: assume anything changed.
            _ => self
                .cache
                .invalidate_database(&self.database, Source::Notify),
        }
        if late {
            self.fail_closed("a notification arrived later than notify_lag_bound");
            return false;
        }
        if kind == "h" && !self.state.listening.swap(true, Ordering::AcqRel) {
            tracing::info!(database = %self.database, "cache invalidation channel listening");
        }
        kind == "h"
    }
}

/// Time from `micros` since the epoch (the server's clock at the write) to now.
fn lag_since(micros: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64;
    Duration::from_micros(now.saturating_sub(micros))
}
