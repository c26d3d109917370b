//! Narrow entry points for the coverage-guided fuzz targets in `fuzz/` (not an API: the
//! items here exist so that an outside crate can reach crate-private code).
//!
//! Framing and startup decoding are public already (`protocol::frame`,
//! `protocol::startup`); what is added is the SQL lexer's token stream and the
//! per-statement tracker the relay feeds with the server's frames.

use std::sync::Arc;

use crate::protocol::tags::Backend;
use crate::query::lexer::{Lexer, TokenKind};
use crate::query::Analyzer;
use crate::session::statements::Statements;
use crate::session::track::{self, Measure, Tracker};
use crate::stats::{Registry, Window};

/// One token of the SQL lexer: its kind (as the lexer names it) and its byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LexToken {
    pub kind: &'static str,
    pub start: usize,
    pub end: usize,
}

/// Every token the lexer finds in `sql`, in order (whitespace and comments skipped).
pub fn tokens(sql: &str) -> Vec<LexToken> {
    let mut lexer = Lexer::new(sql);
    std::iter::from_fn(|| lexer.next_token())
        .map(|t| LexToken {
            kind: kind_name(t.kind),
            start: t.start,
            end: t.end,
        })
        .collect()
}

fn kind_name(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Word => "Word",
        TokenKind::QuotedIdent => "QuotedIdent",
        TokenKind::Literal => "Literal",
        TokenKind::Param => "Param",
        TokenKind::Operator => "Operator",
        TokenKind::Punct => "Punct",
        TokenKind::Semicolon => "Semicolon",
    }
}

/// The SQLSTATE the relay reads from an ErrorResponse body (`00000` when it has none).
pub fn sqlstate_of(error_body: &[u8]) -> [u8; 5] {
    track::sqlstate_of(error_body)
}

/// A statement tracker with its own registry, fed the frames the relay hands it.
pub struct TrackerHarness {
    tracker: Tracker,
    statements: Statements,
    analyzer: Arc<Analyzer>,
    registry: Arc<Registry>,
}

impl TrackerHarness {
    /// A tracker with a fresh registry. The analyzer may be shared between runs: it is
    /// a cache whose answers do not depend on what it holds, and building one per input
    /// costs more than the input.
    pub fn new(analyzer: Arc<Analyzer>) -> TrackerHarness {
        let registry = Arc::new(Registry::new(1000));
        let measure = Measure {
            analyzer: analyzer.clone(),
            registry: registry.clone(),
            clock: crate::stats::StatsClock::new(),
        };
        TrackerHarness {
            tracker: Tracker::new(measure, "db", "user", None),
            statements: Statements::new(None),
            analyzer,
            registry,
        }
    }

    /// A whole client frame (tag and body), as the relay passes it on.
    pub fn client_frame(&mut self, tag: u8, body: &[u8]) {
        let (t, s, a) = (&mut self.tracker, &mut self.statements, &self.analyzer);
        crate::session::pipeline::track::observe_frame(t, s, a, tag, body);
    }

    /// The first bytes of a Bind too big to wait for.
    pub fn streamed_bind(&mut self, body_start: &[u8]) {
        let header = [b'B', 0, 0, 0, 0];
        self.statements.rewrite_bind_start(&header, body_start);
    }

    /// A whole server frame; the relay passes only these tags on.
    pub fn server_frame(&mut self, tag: u8, body: &[u8]) {
        if matches!(tag, b'C' | b'E' | b's' | b'Z') {
            self.tracker.server_frame(Backend::of(tag), body);
        }
    }

    /// The proxy answered every waiting request with an error itself.
    pub fn fail_waiting(&mut self, error_body: &[u8]) {
        self.tracker.fail_waiting(track::sqlstate_of(error_body));
    }

    /// Executions recorded so far, and how many of them failed.
    pub fn recorded(&self) -> (u64, u64) {
        let rows = self.registry.snapshot(Window::All, 0);
        rows.iter().fold((0, 0), |(calls, errors), r| {
            (calls + r.calls, errors + r.errors)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_kinds_and_ranges() {
        let toks = tokens("select $1, 'a';");
        let kinds: Vec<_> = toks.iter().map(|t| t.kind).collect();
        assert_eq!(kinds, ["Word", "Param", "Punct", "Literal", "Semicolon"]);
        assert_eq!((toks[3].start, toks[3].end), (11, 14));
    }

    #[tokio::test]
    async fn the_harness_records_what_the_server_completes() {
        let mut h = TrackerHarness::new(Arc::new(Analyzer::new(10)));
        h.client_frame(b'Q', b"select 1; select 1/0\0");
        h.server_frame(b'C', b"SELECT 1\0");
        h.server_frame(b'E', b"SERROR\0C22012\0Mdivision by zero\0\0");
        h.server_frame(b'Z', b"I");
        assert_eq!(h.recorded(), (2, 1));
        assert_eq!(&sqlstate_of(b"C22012\0\0"), b"22012");
    }
}
