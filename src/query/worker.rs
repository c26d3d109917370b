//! A small process-wide pool of long-lived, large-stack threads that run every pg_query
//! call (the analyzer's, and any other module's via [`run`]), so the callers' stacks and
//! thread counts never matter to libpg_query.
//!
//! Why not call pg_query on the caller's thread:
//! - libpg_query sizes its stack-depth checks (which turn a too-deep tree into a parse
//!   error) from the stack left on the calling thread, with a minimum of 100 kB plus
//!   512 kB of slack it assumes is there. A pool thread always has that room, whatever
//!   the caller's stack looks like.
//! - libpg_query creates a pthread key on the first call from each thread and never
//!   deletes it; the process has 1024. Threads that come and go (tokio's blocking pool)
//!   would leak them. A fixed pool uses `THREADS` keys for the life of the process.
//!
//! A miss pays a channel round trip (a few µs) on top of the parse; misses happen once per
//! statement shape.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;

use super::parse::{self, Parsed};

const THREADS: usize = 2;
/// libpg_query's checked walks stop at 2 MiB of stack and its fingerprint walk at 100
/// tree levels; 16 MiB leaves ample room (only touched pages are committed).
const STACK_SIZE: usize = 16 << 20;

type Job = Box<dyn FnOnce() + Send>;

static POOL: OnceLock<Option<Sender<Job>>> = OnceLock::new();

/// Runs `parse::analyze(sql)` on a pool thread and waits for it. `None` when pg_query
/// cannot parse the statement, or when no pool thread could be started or it failed.
pub(crate) fn analyze(sql: &str) -> Option<Parsed> {
    let sql = sql.to_owned();
    run(move || parse::analyze(&sql)).flatten()
}

/// Runs `job` (which may call pg_query) on a pool thread and waits for its result. `None`
/// when no pool thread could be started, or when `job` panicked.
pub(crate) fn run<T, F>(job: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let pool = POOL.get_or_init(start).as_ref()?;
    let (reply, result) = mpsc::sync_channel::<Option<T>>(1);
    let job: Job = Box::new(move || {
        // pg_query's Rust side has a few indexing/cast panics on odd trees: a panic here
        // means "no result", never a dead pool thread.
        let _ = reply.send(catch_unwind(AssertUnwindSafe(job)).ok());
    });
    pool.send(job).ok()?;
    result.recv().ok().flatten()
}

fn start() -> Option<Sender<Job>> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    let mut started = 0;
    for i in 0..THREADS {
        let queue = Arc::clone(&queue);
        let spawned = thread::Builder::new()
            .name(format!("pg_query-{i}"))
            .stack_size(STACK_SIZE)
            .spawn(move || serve(&queue));
        started += usize::from(spawned.is_ok());
    }
    (started > 0).then_some(jobs)
}

fn serve(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else {
            return;
        };
        job();
    }
}
