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

use std::collections::HashMap;
use std::sync::Arc;

use tokio::time::Instant;

use crate::protocol::read_cstr;
use crate::query::{Analyzer, QueryInfo};
use crate::stats::{CommandKind, Outcome, QueryMeta, QueryStats, Registry, StatKey, StatsClock};
use queue::{InFlight, Prepared, Queue, Source};

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

/// A portal: its statement and the values it was bound with (`complete` is false when
/// only the start of a streamed Bind was seen).
struct Portal {
    stmt: Arc<Prepared>,
    bind: Vec<u8>,
    complete: bool,
}

pub struct Tracker {
    measure: Measure,
    database: String,
    user: String,
    /// Prepared statement name ("" is the unnamed one) to what it is.
    statements: HashMap<String, Arc<Prepared>>,
    portals: HashMap<String, Portal>,
    /// Shortcuts to statistics entries, by fingerprint and by lexer hash (bounded;
    /// cleared when full). An evicted entry found here is looked up again.
    local: HashMap<u64, Arc<QueryStats>>,
    by_shape: HashMap<u64, Arc<QueryStats>>,
    /// The last shape seen, checked before `by_shape`: a session mostly repeats itself,
    /// and this sits in the tracker's own (warm) memory rather than a map's buffer.
    last_shape: Option<(u64, Arc<QueryStats>)>,
    inflight: Queue,
    /// Requests read from the client so far, and requests the server has finished.
    requests_sent: u64,
    requests_done: u64,
    /// When the server last completed a statement (start of the next one's own time).
    last_completion: Option<Instant>,
    slow: Option<SlowHook>,
    /// Index advisor and N+1 detection: told about every completed statement.
    pub advisor: Option<crate::advisor::Observer>,
}

impl Tracker {
    pub fn new(measure: Measure, database: &str, user: &str, slow: Option<SlowHook>) -> Tracker {
        Tracker {
            measure,
            database: database.to_string(),
            user: user.to_string(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            local: HashMap::new(),
            by_shape: HashMap::new(),
            last_shape: None,
            inflight: Queue::default(),
            requests_sent: 0,
            requests_done: 0,
            last_completion: None,
            slow,
            advisor: None,
        }
    }

    /// A whole client frame (tag and body) on its way to the server.
    pub fn client_frame(&mut self, tag: u8, body: &[u8]) {
        match tag {
            b'Q' => {
                if let Some(sql) = cstr(body) {
                    let now = Instant::now();
                    for stmt in crate::query::split_statements(sql) {
                        let entry = self.entry_for_statement(&stmt);
                        let source = self.keep_text(stmt.text);
                        self.push(Some(entry), now, source);
                    }
                }
                self.requests_sent += 1;
            }
            b'P' => self.parse(body),
            b'B' => self.bind(body, true),
            b'E' => {
                let portal = cstr(body).unwrap_or("");
                let Some(p) = self.portals.get(portal) else {
                    self.push(None, Instant::now(), Source::None);
                    return;
                };
                let (entry, stmt) = (p.stmt.entry.clone(), p.stmt.clone());
                let source = match (p.complete, &self.slow) {
                    (true, Some(_)) => match self.inflight.keep(&p.bind) {
                        Some(bind) => Source::Bound { stmt, bind },
                        None => Source::None,
                    },
                    _ => Source::None,
                };
                self.push(Some(entry), Instant::now(), source);
            }
            b'C' => {
                let mut pos = 1;
                if let Some(name) = read_cstr(body, &mut pos) {
                    match body.first() {
                        Some(b'S') => self.statements.remove(name).map(drop),
                        _ => self.portals.remove(name).map(drop),
                    };
                }
            }
            b'S' | b'F' => self.requests_sent += 1,
            _ => {}
        }
    }

    fn parse(&mut self, body: &[u8]) {
        let mut pos = 0;
        let name = read_cstr(body, &mut pos).unwrap_or("");
        let Some(sql) = read_cstr(body, &mut pos) else {
            return;
        };
        if sql.trim().is_empty() {
            self.statements.remove(name);
            return;
        }
        let types = body.get(pos..).unwrap_or_default();
        // The unnamed statement is re-parsed with the same text on every query by many
        // drivers: keep what is there instead of analyzing and allocating again.
        if let Some(existing) = self.statements.get(name) {
            let same = &*existing.sql == sql
                && param_types(types).eq(existing.param_types.iter().copied())
                && !existing.entry.is_evicted();
            if same {
                return;
            }
        }
        let param_types: Vec<u32> = param_types(types).collect();
        let info = self.measure.analyzer.analyze_text(sql);
        let entry = self.entry_for(&info);
        let prepared = Prepared {
            entry,
            sql: sql.into(),
            param_types: param_types.into(),
        };
        self.statements.insert(name.to_string(), Arc::new(prepared));
    }

    /// The start of a Bind (the whole frame when `complete`, else its first bytes when
    /// it is streamed): the portal and statement names, and the values when complete.
    pub fn bind(&mut self, body: &[u8], complete: bool) {
        let mut pos = 0;
        let (Some(portal), Some(statement)) =
            (read_cstr(body, &mut pos), read_cstr(body, &mut pos))
        else {
            return;
        };
        let Some(stmt) = self.statements.get(statement).cloned() else {
            self.portals.remove(portal);
            return;
        };
        // Values beyond what the arena could keep are never explained: don't copy them.
        let rest = body.get(pos..).unwrap_or_default();
        let complete = complete && rest.len() <= queue::ARENA_MAX;
        let values = if complete && self.slow.is_some() {
            rest
        } else {
            &[]
        };
        match self.portals.get_mut(portal) {
            Some(p) => {
                p.stmt = stmt;
                p.bind.clear();
                p.bind.extend_from_slice(values);
                p.complete = complete;
            }
            None => {
                let p = Portal {
                    stmt,
                    bind: values.to_vec(),
                    complete,
                };
                self.portals.insert(portal.to_string(), p);
            }
        }
    }

    /// A whole server frame on its way to the client.
    pub fn server_frame(&mut self, tag: u8, body: &[u8]) {
        match tag {
            b'C' => self.complete(rows_of(body), Outcome::Ok),
            b's' => self.complete(0, Outcome::Ok),
            b'E' => {
                let sqlstate = sqlstate_of(body);
                self.complete(0, Outcome::Error { sqlstate });
            }
            b'Z' => {
                self.requests_done += 1;
                let done = self.requests_done;
                // Statements of finished requests that never completed were skipped by
                // the server after an error: they did not run.
                while self.inflight.front().is_some_and(|f| f.request < done) {
                    self.inflight.pop();
                }
                self.inflight.settle();
                // Portals end with their transaction; drop the named ones once nothing
                // more is on its way (drivers that name portals would grow the map).
                let idle = body.first() == Some(&b'I') && done == self.requests_sent;
                if idle && self.portals.len() > 1 {
                    self.portals.retain(|name, _| name.is_empty());
                }
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
            if let Some(observer) = &mut self.advisor {
                observer.completed(slow::seen(entry, &done.source, &self.inflight, micros, now));
            }
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

    fn keep_text(&mut self, text: &str) -> Source {
        if self.slow.is_none() {
            return Source::None;
        }
        self.inflight
            .keep(text.as_bytes())
            .map_or(Source::None, Source::Text)
    }

    /// The entry for a simple-protocol statement. Repeated shapes are found by the
    /// lexer's hash in the session's own memory: no shared cache, no registry lookup.
    fn entry_for_statement(&mut self, stmt: &crate::query::Statement<'_>) -> Arc<QueryStats> {
        if let Some((hash, entry)) = &self.last_shape {
            if *hash == stmt.hash && !entry.is_evicted() {
                return entry.clone();
            }
        }
        let entry = match self.by_shape.get(&stmt.hash) {
            Some(entry) if !entry.is_evicted() => entry.clone(),
            _ => {
                let info = self.measure.analyzer.analyze(stmt);
                let entry = self.entry_for(&info);
                if self.by_shape.len() >= LOCAL_ENTRIES {
                    self.by_shape.clear();
                }
                self.by_shape.insert(stmt.hash, entry.clone());
                entry
            }
        };
        self.last_shape = Some((stmt.hash, entry.clone()));
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

/// The parameter type OIDs at the end of a Parse body.
fn param_types(rest: &[u8]) -> impl Iterator<Item = u32> + '_ {
    let n = rest
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    rest.get(2..)
        .unwrap_or_default()
        .chunks_exact(4)
        .take(n as usize)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
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
