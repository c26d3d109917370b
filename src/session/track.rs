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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::time::Instant;

use crate::protocol::read_cstr;
use crate::query::{Analyzer, QueryInfo};
use crate::stats::{CommandKind, Outcome, QueryMeta, QueryStats, Registry, StatKey};

/// Entries kept in the per-session shortcut from fingerprint to statistics entry.
const LOCAL_ENTRIES: usize = 256;

/// The shared pieces measurement needs.
#[derive(Clone)]
pub struct Measure {
    pub analyzer: Arc<Analyzer>,
    pub registry: Arc<Registry>,
    /// Time zero for the registry's `now` (seconds).
    pub epoch: Instant,
}

struct InFlight {
    entry: Arc<QueryStats>,
    started: Instant,
    request: u64,
}

pub struct Tracker {
    measure: Measure,
    database: String,
    user: String,
    /// Prepared statement name ("" is the unnamed one) to its entry.
    statements: HashMap<String, Arc<QueryStats>>,
    portals: HashMap<String, Arc<QueryStats>>,
    /// Shortcuts to statistics entries, by fingerprint and by lexer hash (bounded;
    /// cleared when full). An evicted entry found here is looked up again.
    local: HashMap<u64, Arc<QueryStats>>,
    by_shape: HashMap<u64, Arc<QueryStats>>,
    inflight: VecDeque<InFlight>,
    /// Requests read from the client so far, and requests the server has finished.
    requests_sent: u64,
    requests_done: u64,
    /// When the server last completed a statement (start of the next one's own time).
    last_completion: Option<Instant>,
}

impl Tracker {
    pub fn new(measure: Measure, database: &str, user: &str) -> Tracker {
        Tracker {
            measure,
            database: database.to_string(),
            user: user.to_string(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            local: HashMap::new(),
            by_shape: HashMap::new(),
            inflight: VecDeque::new(),
            requests_sent: 0,
            requests_done: 0,
            last_completion: None,
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
                        self.push(entry, now);
                    }
                }
                self.requests_sent += 1;
            }
            b'P' => {
                let mut pos = 0;
                let name = read_cstr(body, &mut pos).unwrap_or("");
                if let Some(sql) = read_cstr(body, &mut pos) {
                    if sql.trim().is_empty() {
                        self.statements.remove(name);
                    } else {
                        let info = self.measure.analyzer.analyze_text(sql);
                        let entry = self.entry_for(&info);
                        self.statements.insert(name.to_string(), entry);
                    }
                }
            }
            b'B' => self.bind(body),
            b'E' => {
                let portal = cstr(body).unwrap_or("");
                if let Some(entry) = self.portals.get(portal).cloned() {
                    self.push(entry, Instant::now());
                }
            }
            b'C' => {
                let mut pos = 1;
                if let Some(name) = read_cstr(body, &mut pos) {
                    match body.first() {
                        Some(b'S') => self.statements.remove(name),
                        _ => self.portals.remove(name),
                    };
                }
            }
            b'S' | b'F' => self.requests_sent += 1,
            _ => {}
        }
    }

    /// The start of a Bind (the whole frame, or its first bytes when it is streamed):
    /// only the portal and statement names are read.
    pub fn bind(&mut self, body: &[u8]) {
        let mut pos = 0;
        let (Some(portal), Some(statement)) =
            (read_cstr(body, &mut pos), read_cstr(body, &mut pos))
        else {
            return;
        };
        match self.statements.get(statement).cloned() {
            Some(entry) => {
                self.portals.insert(portal.to_string(), entry);
            }
            None => {
                self.portals.remove(portal);
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
                    self.inflight.pop_front();
                }
                // `last_completion` stays at the last statement's completion: close
                // enough to this ReadyForQuery, and it spares a clock read.
            }
            _ => {}
        }
    }

    /// Every waiting request was answered by the proxy itself with an error (no server
    /// could be had): their statements count as failed with `sqlstate`.
    pub fn fail_waiting(&mut self, sqlstate: [u8; 5]) {
        let now = Instant::now();
        let secs = now.duration_since(self.measure.epoch).as_secs();
        for done in self.inflight.drain(..) {
            let micros = now.duration_since(done.started).as_micros() as u64;
            self.measure
                .registry
                .record(&done.entry, micros, 0, Outcome::Error { sqlstate }, secs);
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
        let Some(done) = self.inflight.pop_front() else {
            return;
        };
        let started = match self.last_completion {
            Some(prev) if prev > done.started => prev,
            _ => done.started,
        };
        self.last_completion = Some(now);
        let micros = now.duration_since(started).as_micros() as u64;
        let secs = now.duration_since(self.measure.epoch).as_secs();
        self.measure
            .registry
            .record(&done.entry, micros, rows, outcome, secs);
    }

    fn push(&mut self, entry: Arc<QueryStats>, now: Instant) {
        self.inflight.push_back(InFlight {
            entry,
            started: now,
            request: self.requests_sent,
        });
    }

    /// The entry for a simple-protocol statement. Repeated shapes are found by the
    /// lexer's hash in the session's own map: no shared cache, no registry lookup.
    fn entry_for_statement(&mut self, stmt: &crate::query::Statement<'_>) -> Arc<QueryStats> {
        if let Some(entry) = self.by_shape.get(&stmt.hash) {
            if !entry.is_evicted() {
                return entry.clone();
            }
        }
        let info = self.measure.analyzer.analyze(stmt);
        let entry = self.entry_for(&info);
        if self.by_shape.len() >= LOCAL_ENTRIES {
            self.by_shape.clear();
        }
        self.by_shape.insert(stmt.hash, entry.clone());
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
        let now = Instant::now().duration_since(self.measure.epoch).as_secs();
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
mod tests {
    use super::rows_of;

    #[test]
    fn rows_from_command_tags() {
        assert_eq!(rows_of(b"SELECT 5\0"), 5);
        assert_eq!(rows_of(b"INSERT 0 7\0"), 7);
        assert_eq!(rows_of(b"CREATE TABLE\0"), 0);
        assert_eq!(rows_of(b"garbage"), 0);
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release --lib track_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn track_cost() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let measure = Measure {
                analyzer: Arc::new(Analyzer::new(1000)),
                registry: Arc::new(Registry::new(5000)),
                epoch: Instant::now(),
            };
            let mut t = Tracker::new(measure, "db", "user");
            let n = 200_000;
            let started = std::time::Instant::now();
            for i in 0..n {
                let q = format!(
                    "SELECT abalance FROM pgbench_accounts WHERE aid = {};\0",
                    i % 100_000
                );
                t.client_frame(b'Q', q.as_bytes());
                t.server_frame(b'C', b"SELECT 1\0");
                t.server_frame(b'Z', b"I");
            }
            let per = started.elapsed().as_nanos() / n;
            println!("tracker cost per simple query: {per} ns (includes a format! of the query)");
        });
    }
}
