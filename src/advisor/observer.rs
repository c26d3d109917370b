//! The client path's only contact with the advisor: one [`Observer`] per session,
//! told about each completed statement. It keeps a few fields for N+1 detection and,
//! now and then, copies a statement's values into the shared [`Samples`].
//!
//! Cost: a hash of the bound bytes (or the text), a few compares, and two atomic loads;
//! no allocation unless a sample is taken (the first few per fingerprint, then one in
//! `resample_every`) or a run ends as an N+1 pattern.

use std::sync::Arc;

use tokio::time::Instant;

use super::patterns::Occurrence;
use super::samples::Sample;
use super::state::State;
use crate::stats::{CommandKind, QueryStats};

/// What the tracker knows about one completed statement.
pub struct Seen<'a> {
    pub entry: &'a Arc<QueryStats>,
    /// The statement text: with its literals (simple protocol) or `$n` (extended).
    pub sql: &'a str,
    /// Extended protocol: the Parse types and the Bind body after the names.
    pub bound: Option<(&'a [u32], &'a [u8])>,
    pub micros: u64,
    pub at: Instant,
}

/// Consecutive executions of one fingerprint after a "source" statement.
#[derive(Default)]
struct Run {
    source: u64,
    fingerprint: u64,
    count: u32,
    distinct: u32,
    last_hash: u64,
    spent_us: u64,
    trace: u64,
    traced: bool,
}

/// One session's observer (not shared; lives in the session's tracker).
pub struct Observer {
    state: Arc<State>,
    database: Arc<str>,
    calls: u32,
    in_tx: bool,
    last_at: Option<Instant>,
    run: Run,
}

impl Observer {
    pub(super) fn new(state: Arc<State>, database: &str) -> Observer {
        Observer {
            state,
            database: database.into(),
            calls: 0,
            in_tx: false,
            last_at: None,
            run: Run::default(),
        }
    }

    /// One completed statement.
    #[inline]
    pub fn completed(&mut self, seen: Seen<'_>) {
        let fingerprint = seen.entry.key().fingerprint;
        if seen.entry.meta().command == CommandKind::Other && self.transaction_edge(&seen) {
            return;
        }
        let gap = self.last_at.map(|t| seen.at.saturating_duration_since(t));
        self.last_at = Some(seen.at);
        if !self.in_tx && gap.is_some_and(|g| g > self.state.config.n_plus_one_window) {
            self.end_run(0);
        }
        let trace = trace_id(seen.sql);
        // sqlcommenter: statements of another request are never one pattern.
        let other_trace = trace.is_some_and(|t| !self.run.traced || t != self.run.trace);
        if other_trace && self.run.count > 0 {
            self.end_run(0);
        }
        let hash = match seen.bound {
            Some((_, bind)) => hash_bytes(bind),
            None => hash_bytes(seen.sql.as_bytes()),
        };
        if fingerprint == self.run.fingerprint && self.run.count > 0 {
            let run = &mut self.run;
            run.count += 1;
            run.spent_us += seen.micros;
            if hash != run.last_hash {
                run.distinct += 1;
                run.last_hash = hash;
            }
        } else {
            let source = self.run.fingerprint;
            self.end_run(source);
            self.run = Run {
                source,
                fingerprint,
                count: 1,
                distinct: 1,
                last_hash: hash,
                spent_us: seen.micros,
                trace: trace.unwrap_or(0),
                traced: trace.is_some(),
            };
        }
        self.calls = self.calls.wrapping_add(1);
        let state = &*self.state;
        if state.samples.wants(seen.entry, self.calls) {
            state.samples.keep(seen.entry, Sample::of(&seen));
        }
        state.watch.record(seen.entry, seen.micros);
    }

    /// BEGIN/START and COMMIT/ROLLBACK/END end a run; true when `seen` was one.
    #[cold]
    fn transaction_edge(&mut self, seen: &Seen<'_>) -> bool {
        let meta = seen.entry.meta();
        if meta.command_label != "TRANSACTION" {
            return false;
        }
        let first = meta.normalized.split_whitespace().next().unwrap_or("");
        let begin = first.eq_ignore_ascii_case("begin") || first.eq_ignore_ascii_case("start");
        let end = ["commit", "rollback", "end", "abort"]
            .iter()
            .any(|w| first.eq_ignore_ascii_case(w));
        if begin || end {
            self.end_run(0);
            self.in_tx = begin;
            self.last_at = Some(seen.at);
            return true;
        }
        false
    }

    /// Ends the current run, reporting it when it is an N+1 pattern; the next run's
    /// source is `next_source`.
    fn end_run(&mut self, next_source: u64) {
        let run = std::mem::take(&mut self.run);
        self.run.fingerprint = 0;
        self.run.source = next_source;
        let threshold = self.state.config.n_plus_one_threshold;
        if run.count >= threshold && run.distinct >= threshold {
            self.state.patterns.occurred(Occurrence {
                database: &self.database,
                source: run.source,
                fingerprint: run.fingerprint,
                count: run.count,
                spent_us: run.spent_us,
                in_transaction: self.in_tx,
                traced: run.traced,
            });
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.end_run(0);
    }
}

/// FNV-1a over 8-byte words: cheap, and only ever compared with itself.
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The trace id of a sqlcommenter `traceparent='00-<32 hex>-<16 hex>-<2 hex>'`, hashed.
fn trace_id(sql: &str) -> Option<u64> {
    let at = sql.find("traceparent")?;
    let rest = sql.get(at + "traceparent".len()..)?;
    let start = rest.find("00-")? + 3;
    let id = rest.get(start..start + 32)?;
    id.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| hash_bytes(id.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sqlcommenter_trace_ids() {
        let a =
            "SELECT 1 /*traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/";
        let b =
            "SELECT 1 /*traceparent='00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/";
        assert!(trace_id(a).is_some());
        assert_ne!(trace_id(a), trace_id(b));
        assert_eq!(trace_id("SELECT 1"), None);
        assert_eq!(trace_id("SELECT 'traceparent'"), None);
    }
}
