//! Analyses by statement: the verdicts of [`super::analyze`] keyed by what a session
//! resolves a statement with (database, role, search_path, text, parameter types),
//! computed in the background through a bounded queue so a lookup never waits on a
//! side connection. Cleared on DDL (a view, a policy or a function's volatility may
//! have changed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use tokio::sync::mpsc;

use super::analyze::{self, Analysis, Subject};
use super::reason::Refusal;
use super::Request;
use crate::state::Running;

/// Statements whose verdict is kept; the least recently used go first.
const MAX_VERDICTS: u64 = 10_000;
/// Analyses waiting to run; past it a request just goes uncached this time.
const QUEUE: usize = 256;
/// Analyses running at once (each holds one side connection).
const CONCURRENCY: usize = 2;

/// A verdict as lookups see it.
pub type Ready = Result<Arc<Analysis>, Refusal>;

/// The verdicts, and the queue of statements still to analyze.
pub struct Verdicts {
    done: moka::sync::Cache<Box<[u8]>, Ready>,
    pending: DashMap<Box<[u8]>, ()>,
    queue: OnceLock<mpsc::Sender<Job>>,
    /// Moves on every clear: an analysis that started before it is not recorded.
    epoch: AtomicU64,
}

/// One statement to analyze.
struct Job {
    key: Box<[u8]>,
    subject: Subject,
    epoch: u64,
}

impl Default for Verdicts {
    fn default() -> Self {
        Verdicts {
            done: moka::sync::Cache::builder()
                .max_capacity(MAX_VERDICTS)
                .time_to_live(Duration::from_secs(600))
                .build(),
            pending: DashMap::new(),
            queue: OnceLock::new(),
            epoch: AtomicU64::new(0),
        }
    }
}

fn subject_key(req: &Request<'_>) -> Box<[u8]> {
    super::key::encode(&super::key::KeyParts {
        database: req.database,
        session_user: "",
        current_role: req.current_role,
        search_path: req.search_path,
        settings: [0; 32],
        relations: &[],
        text: req.text,
        param_types: req.param_types,
        param_formats: &[],
        params: &[],
        result_formats: &[],
    })
}

impl Verdicts {
    /// The verdict for `req`'s statement; `None` while it is being analyzed (the
    /// analysis is queued on the first call).
    pub fn get(&self, req: &Request<'_>) -> Option<Ready> {
        let key = subject_key(req);
        if let Some(ready) = self.done.get(&key) {
            return Some(ready);
        }
        let queue = self.queue.get()?;
        if self.pending.contains_key(&key) {
            return None;
        }
        let subject = Subject {
            database: req.database.to_owned(),
            role: req.current_role.to_owned(),
            search_path: req.search_path.to_owned(),
            text: req.text.to_owned(),
            param_types: req.param_types.to_vec(),
        };
        let job = Job {
            key: key.clone(),
            subject,
            epoch: self.epoch.load(Ordering::Acquire),
        };
        if queue.try_send(job).is_ok() {
            self.pending.insert(key, ());
        }
        None
    }

    /// Records a verdict, unless a clear happened since the analysis started;
    /// `None` (a transient failure) only lets the next lookup try again.
    fn finish(&self, job: &Job, ready: Option<Ready>) {
        if let Some(ready) = ready {
            if self.epoch.load(Ordering::Acquire) == job.epoch {
                self.done.insert(job.key.clone(), ready);
            }
        }
        self.pending.remove(&job.key);
    }

    /// Records a verdict for `req` directly (tests, and statements proven elsewhere).
    pub fn put_for(&self, req: &Request<'_>, ready: Ready) {
        self.done.insert(subject_key(req), ready);
    }

    pub fn clear_database(&self, _database: &str) {
        // Verdicts are cheap to recompute and DDL is rare: all of them go.
        self.clear();
    }

    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.done.invalidate_all();
    }

    /// Starts the analysis worker on the app's tracker.
    pub fn start(
        shared: Arc<Running>,
        cache: Arc<super::Cache>,
        tracker: &tokio_util::task::TaskTracker,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let (tx, rx) = mpsc::channel(QUEUE);
        if cache.verdicts.queue.set(tx).is_err() {
            return;
        }
        tracker.spawn(run(shared, cache, rx, tracker.clone(), stop));
    }
}

async fn run(
    shared: Arc<Running>,
    cache: Arc<super::Cache>,
    mut rx: mpsc::Receiver<Job>,
    tracker: tokio_util::task::TaskTracker,
    stop: tokio_util::sync::CancellationToken,
) {
    let pools: DashMap<String, deadpool_postgres::Pool> = DashMap::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let pools = Arc::new(pools);
    loop {
        let job = tokio::select! {
            job = rx.recv() => job,
            () = stop.cancelled() => None,
        };
        let Some(job) = job else { return };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (shared, cache, pools) = (shared.clone(), cache.clone(), pools.clone());
        tracker.spawn(async move {
            let ready = verdict(&shared, &pools, &job.subject).await;
            if let Some(Ok(analysis)) = &ready {
                cache.register_names(&job.subject.database, analysis);
            }
            cache.verdicts.finish(&job, ready);
            drop(permit);
        });
    }
}

/// The verdict, or `None` when no side connection could tell (try again later).
async fn verdict(
    shared: &Running,
    pools: &DashMap<String, deadpool_postgres::Pool>,
    subject: &Subject,
) -> Option<Ready> {
    let text = subject.text.clone();
    match tokio::task::spawn_blocking(move || super::syntax::check(&text)).await {
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => return Some(Err(refusal)),
        Err(_) => return Some(Err(Refusal::AnalysisFailed)),
    }
    let pool = pools
        .entry(subject.database.clone())
        .or_insert_with(|| side_pool(shared, &subject.database))
        .clone();
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(e) => {
            tracing::debug!(database = %subject.database, error = %e, "cache analysis: no side connection");
            return None;
        }
    };
    match analyze::analyze(&mut client, subject).await {
        Ok(verdict) => Some(verdict.map(Arc::new)),
        Err(e) => {
            tracing::debug!(database = %subject.database, error = %e, "cache analysis failed");
            None
        }
    }
}

fn side_pool(shared: &Running, database: &str) -> deadpool_postgres::Pool {
    let pg = super::conn::pg_config(shared, database);
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(CONCURRENCY)
        .wait_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .unwrap_or_else(|e| unreachable!("pool with a runtime and timeouts builds: {e}"))
}
