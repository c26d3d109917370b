//! Per-statement measurement for one client: which statement each server response
//! belongs to, and how long it took.
//!
//! Client messages push work in order (each statement of a Query, each Execute); server
//! responses complete it in the same order (CommandComplete, ErrorResponse,
//! PortalSuspended). Every entry carries the number of the request (Query, Sync or
//! FunctionCall) it belongs to, so that the statements a server skips after an error
//! are dropped at that request's ReadyForQuery instead of being matched with later
//! responses. A statement's time runs from its arrival, or from the previous
//! statement's completion in the same request when that is later (a multi-statement
//! Query or a pipeline runs its statements one after another), to its completion.

mod queue;
mod slow;

use std::sync::{Arc, OnceLock};

use tokio::time::Instant;

use super::statements::simple::SimpleQuery;
use super::statements::Portal;
use crate::protocol::read_cstr;
use crate::protocol::tags::Backend;
use crate::query::{Analyzer, FastMap, QueryInfo};
use crate::stats::{CommandKind, Outcome, QueryMeta, QueryStats, Registry, StatKey, StatsClock};
use queue::{InFlight, Queue, Source};

pub use slow::SlowHook;

/// Entries kept in the per-session shortcut from fingerprint to statistics entry.
const LOCAL_ENTRIES: usize = 256;

/// The shared pieces measurement needs.
#[derive(Clone)]
pub struct Measure {
    pub analyzer: Arc<Analyzer>,
    pub registry: Arc<Registry>,
    /// The registry's `now` (seconds; minutes are wall-clock minutes).
    pub clock: StatsClock,
}

pub struct Tracker {
    measure: Measure,
    database: String,
    user: String,
    /// Shortcuts to statistics entries by fingerprint (bounded; cleared when full), for
    /// statements whose own entry was evicted. An evicted entry found here is looked up
    /// again.
    local: FastMap<u64, Arc<QueryStats>>,
    inflight: Queue,
    /// Requests read from the client so far, and requests the server has finished.
    requests_sent: u64,
    requests_done: u64,
    /// When the server last completed a statement (start of the next one's own time).
    last_completion: Option<Instant>,
    slow: Option<SlowHook>,
}

impl Tracker {
    pub fn new(measure: Measure, database: &str, user: &str, slow: Option<SlowHook>) -> Tracker {
        Tracker {
            measure,
            database: database.to_string(),
            user: user.to_string(),
            local: FastMap::default(),
            inflight: Queue::default(),
            requests_sent: 0,
            requests_done: 0,
            last_completion: None,
            slow,
        }
    }

    /// Bind values are kept (for EXPLAIN of a slow execution).
    pub fn keeps_values(&self) -> bool {
        self.slow.is_some()
    }

    /// A Query (`text` without its NUL): each of its statements, in order. A text
    /// that is not UTF-8 (`query` is `None`) still counts as a request.
    pub fn query(&mut self, query: Option<&SimpleQuery>, text: &[u8]) {
        if let Some(query) = query {
            let now = Instant::now();
            for part in query.parts() {
                let entry = self.stats(&part.shape.stats, &part.shape.info);
                let range = part.text.start as usize..part.text.end as usize;
                let source = self.keep_text(text.get(range).unwrap_or_default());
                self.push(Some(entry), now, source);
            }
        }
        self.requests_sent += 1;
    }

    /// An Execute of `portal` (`None`: a portal the registry does not know, as after
    /// SQL PREPARE or an empty statement: it still takes its place among the responses).
    pub fn execute(&mut self, portal: Option<&Portal>) {
        let Some(p) = portal.filter(|p| !p.stmt.blank) else {
            self.push(None, Instant::now(), Source::None);
            return;
        };
        let entry = self.stats(&p.stmt.stats, &p.stmt.info);
        let source = match (p.complete, &self.slow) {
            (true, Some(_)) => match self.inflight.keep(&p.values) {
                Some(bind) => Source::Bound {
                    stmt: p.stmt.clone(),
                    bind,
                },
                None => Source::None,
            },
            _ => Source::None,
        };
        self.push(Some(entry), Instant::now(), source);
    }

    /// A Sync or FunctionCall: a request ends.
    pub fn request_end(&mut self) {
        self.requests_sent += 1;
    }

    /// A whole server frame on its way to the client.
    pub fn server_frame(&mut self, tag: Backend, body: &[u8]) {
        match tag {
            Backend::CommandComplete => self.complete(rows_of(body), Outcome::Ok),
            Backend::PortalSuspended => self.complete(0, Outcome::Ok),
            Backend::ErrorResponse => {
                let sqlstate = sqlstate_of(body);
                self.complete(0, Outcome::Error { sqlstate });
            }
            Backend::ReadyForQuery => {
                self.requests_done += 1;
                let done = self.requests_done;
                // Statements of finished requests that never completed were skipped by
                // the server after an error: they did not run.
                while self.inflight.front().is_some_and(|f| f.request < done) {
                    self.inflight.pop();
                }
                self.inflight.settle();
                // `last_completion` stays at the last statement's completion: close
                // enough to this ReadyForQuery, and it spares a clock read.
            }
            _ => {}
        }
    }

    /// The statements in flight waited `waited` for the pool to hand out a server.
    pub fn pool_waited(&mut self, waited: std::time::Duration) {
        let us = waited.as_micros() as u64;
        if us > 0 {
            self.inflight.add_wait(us);
        }
    }

    /// Every waiting request was answered by the proxy itself with an error (no server
    /// could be had): their statements count as failed with `sqlstate`.
    pub fn fail_waiting(&mut self, sqlstate: [u8; 5]) {
        let now = Instant::now();
        let secs = self.measure.clock.at(now);
        let registry = &self.measure.registry;
        for done in self.inflight.drain() {
            let micros = now.duration_since(done.started).as_micros() as u64;
            if let Some(entry) = &done.entry {
                registry.record(entry, micros, 0, Outcome::Error { sqlstate }, secs);
            }
        }
        self.requests_done = self.requests_sent;
    }

    fn complete(&mut self, rows: u64, outcome: Outcome) {
        let now = Instant::now();
        let current = self.requests_done;
        // Only a statement of the request the server is answering can complete.
        if self.inflight.front().is_none_or(|f| f.request != current) {
            return;
        }
        let Some(done) = self.inflight.pop() else {
            return;
        };
        let started = match self.last_completion {
            Some(prev) if prev > done.started => prev,
            _ => done.started,
        };
        self.last_completion = Some(now);
        if let Some(entry) = &done.entry {
            let micros = now.duration_since(started).as_micros() as u64;
            let secs = self.measure.clock.at(now);
            // Pool wait before `started` (pipelined behind an earlier statement) is
            // not part of this statement's time; record_with_wait clamps it.
            self.measure.registry.record_with_wait(
                entry,
                micros,
                done.wait_us,
                rows,
                outcome,
                secs,
            );
            if let Some(hook) = &self.slow {
                if micros >= hook.floor_us {
                    hook.slow_execution(
                        &self.database,
                        entry,
                        &done.source,
                        micros,
                        &self.inflight,
                    );
                } else {
                    entry.note_fast();
                }
            }
        }
        self.inflight.settle();
    }

    fn push(&mut self, entry: Option<Arc<QueryStats>>, now: Instant, source: Source) {
        self.inflight.push(InFlight {
            entry,
            started: now,
            request: self.requests_sent,
            source,
            wait_us: 0,
        });
    }

    fn keep_text(&mut self, text: &[u8]) -> Source {
        if self.slow.is_none() {
            return Source::None;
        }
        self.inflight.keep(text).map_or(Source::None, Source::Text)
    }

    /// A statement's statistics entry: the one it found before unless evicted since.
    fn stats(
        &mut self,
        cell: &OnceLock<Arc<QueryStats>>,
        info: &Arc<QueryInfo>,
    ) -> Arc<QueryStats> {
        if let Some(entry) = cell.get() {
            if !entry.is_evicted() {
                return entry.clone();
            }
        }
        let entry = self.entry_for(info);
        let _ = cell.set(entry.clone());
        entry
    }

    fn entry_for(&mut self, info: &Arc<QueryInfo>) -> Arc<QueryStats> {
        if let Some(entry) = self.local.get(&info.fingerprint) {
            if !entry.is_evicted() {
                return entry.clone();
            }
        }
        if self.local.len() >= LOCAL_ENTRIES {
            self.local.clear();
        }
        let key = StatKey {
            database: self.database.clone(),
            user: self.user.clone(),
            fingerprint: info.fingerprint,
        };
        let now = self.measure.clock.now();
        let entry = self.measure.registry.entry(&key, || meta_of(info), now);
        self.local.insert(info.fingerprint, entry.clone());
        entry
    }
}

fn meta_of(info: &QueryInfo) -> QueryMeta {
    use crate::query::Command;
    let command = match info.command {
        Command::Select => CommandKind::Select,
        Command::Insert => CommandKind::Insert,
        Command::Update => CommandKind::Update,
        Command::Delete => CommandKind::Delete,
        _ => CommandKind::Other,
    };
    let mut tables = info.tables_read.clone();
    for t in &info.tables_written {
        if !tables.contains(t) {
            tables.push(t.clone());
        }
    }
    tables.sort();
    QueryMeta {
        normalized: info.normalized.clone(),
        command,
        command_label: info.command.as_str().to_string(),
        tables,
    }
}

/// The SQLSTATE of an ErrorResponse body (`00000` when it has none).
pub fn sqlstate_of(error_body: &[u8]) -> [u8; 5] {
    let fields = crate::protocol::messages::parse_error_fields(error_body);
    let mut sqlstate = [b'0'; 5];
    for (slot, byte) in sqlstate.iter_mut().zip(fields.code.bytes()) {
        *slot = byte;
    }
    sqlstate
}

fn cstr(body: &[u8]) -> Option<&str> {
    let mut pos = 0;
    read_cstr(body, &mut pos)
}

/// Rows from a CommandComplete tag: its last word when numeric (`SELECT 5`,
/// `INSERT 0 5`, `UPDATE 3`, `COPY 100`).
fn rows_of(body: &[u8]) -> u64 {
    cstr(body)
        .and_then(|tag| tag.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
