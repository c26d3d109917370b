//! Statements whose session effects the proxy cannot see in their text, for transaction
//! pooling: `DO`, `CALL`, SQL `EXECUTE`, and calls of functions that are not built in
//! (a function body may `SET ROLE`, `set_config(…, false)`, take an advisory lock,
//! create a temporary table or `LISTEN`). Such a transaction is checked on its server
//! before the server goes back to the pool.
//!
//! Which names are built-in functions only is learned from the server and kept per pool
//! in [`KnownFunctions`], so a statement calling only built-ins (`count(`, `lower(`,
//! `coalesce(`, and words such as `IN (` or a table name before a column list) costs no
//! round trip once its names are known. A text without `(` costs one byte scan.

use std::collections::HashMap;
use std::sync::RwLock;

use super::lexer::{Lexer, TokenKind};

/// Names remembered per pool; past this, unknown names stay unknown (and checked).
const MAX_KNOWN: usize = 4096;
/// Names collected per transaction for the server to classify.
pub const MAX_UNKNOWN: usize = 32;

/// Built-ins that run SQL given as text (so may call anything): always opaque.
const RUNS_SQL: [&str; 2] = ["to_xml", "xmlschema"];

/// What the text of one request shows about opacity.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Opacity {
    /// DO, CALL, EXECUTE, a built-in that runs SQL, or a function known not to be built
    /// in.
    pub opaque: bool,
    /// Called names not yet known (lower-cased unless quoted): opaque until the server
    /// says they are built-ins only.
    pub unknown: Vec<String>,
}

impl Opacity {
    /// True when the transaction must be checked before its server is given back.
    pub fn any(&self) -> bool {
        self.opaque || !self.unknown.is_empty()
    }
}

/// Per pool: for each name met before a `(`, whether every function of that name is
/// built in (`true`: no function outside `pg_catalog` has it). Reads take a shared lock
/// held for one lookup, never across `.await`.
#[derive(Debug, Default)]
pub struct KnownFunctions {
    names: RwLock<HashMap<String, bool>>,
}

impl KnownFunctions {
    pub fn builtin_only(&self, name: &str) -> Option<bool> {
        let names = self.names.read().unwrap_or_else(|e| e.into_inner());
        names.get(name).copied()
    }

    /// Records what the server said about `name`.
    pub fn learn(&self, name: &str, builtin_only: bool) {
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if names.len() < MAX_KNOWN || names.contains_key(name) {
            names.insert(name.to_owned(), builtin_only);
        }
    }

    pub fn len(&self) -> usize {
        self.names.read().map(|n| n.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Looks at `sql` for opaque statements, adding to `out`.
pub fn opacity(sql: &str, known: &KnownFunctions, out: &mut Opacity) {
    let bytes = sql.as_bytes();
    let leading = first_word(sql).is_some_and(|w| {
        ["do", "call", "execute"]
            .iter()
            .any(|k| w.eq_ignore_ascii_case(k))
    });
    if !leading && !bytes.contains(&b'(') && !has_second_statement(bytes) {
        return;
    }
    let mut lexer = Lexer::new(sql);
    let mut previous: Option<(TokenKind, usize, usize)> = None;
    let mut statement_start = true;
    while let Some(t) = lexer.next_token() {
        if statement_start && t.kind == TokenKind::Word {
            let word = &sql[t.start..t.end];
            if ["do", "call", "execute"]
                .iter()
                .any(|k| word.eq_ignore_ascii_case(k))
            {
                out.opaque = true;
            }
        }
        statement_start = t.kind == TokenKind::Semicolon;
        let paren = t.kind == TokenKind::Punct && &bytes[t.start..t.end] == b"(";
        if let (true, Some((kind, start, end))) = (paren, previous) {
            let name = match kind {
                TokenKind::Word => sql[start..end].to_ascii_lowercase(),
                TokenKind::QuotedIdent => {
                    sql[start + 1..end.saturating_sub(1).max(start + 1)].replace("\"\"", "\"")
                }
                _ => String::new(),
            };
            if !name.is_empty() {
                note_call(name, known, out);
            }
        }
        previous = Some((t.kind, t.start, t.end));
    }
}

fn note_call(name: String, known: &KnownFunctions, out: &mut Opacity) {
    if RUNS_SQL.iter().any(|s| name.contains(s)) {
        out.opaque = true;
        return;
    }
    match known.builtin_only(&name) {
        Some(true) => {}
        Some(false) => out.opaque = true,
        None if out.unknown.len() >= MAX_UNKNOWN => out.opaque = true,
        None => {
            if !out.unknown.contains(&name) {
                out.unknown.push(name);
            }
        }
    }
}

fn first_word(sql: &str) -> Option<&str> {
    let mut lexer = Lexer::new(sql);
    let t = lexer.next_token()?;
    (t.kind == TokenKind::Word).then(|| &sql[t.start..t.end])
}

fn has_second_statement(bytes: &[u8]) -> bool {
    match bytes.iter().position(|&b| b == b';') {
        Some(i) => bytes[i + 1..]
            .iter()
            .any(|b| !b.is_ascii_whitespace() && *b != b';'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, known: &KnownFunctions) -> Opacity {
        let mut out = Opacity::default();
        opacity(sql, known, &mut out);
        out
    }

    #[test]
    fn do_call_and_execute_are_opaque() {
        let known = KnownFunctions::default();
        for sql in [
            "DO $$ BEGIN PERFORM 1; END $$",
            "call app.proc(1)",
            "EXECUTE q (1)",
            "SELECT 1; DO $$ BEGIN END $$",
        ] {
            assert!(check(sql, &known).opaque, "{sql}");
        }
        assert!(!check("SELECT 'do' FROM t WHERE a = $1", &known).any());
        assert!(!check(
            "SELECT abalance FROM pgbench_accounts WHERE aid = 7;",
            &known
        )
        .any());
    }

    #[test]
    fn calls_are_unknown_until_learned() {
        let known = KnownFunctions::default();
        let out = check(
            "SELECT count(*), app.f(1), \"Odd\"(2) FROM t WHERE a IN (1)",
            &known,
        );
        assert_eq!(out.unknown, ["count", "f", "Odd", "in"]);
        assert!(!out.opaque);
        for name in ["count", "in", "Odd"] {
            known.learn(name, true);
        }
        known.learn("f", false);
        let out = check("SELECT count(*) FROM t WHERE a IN (1)", &known);
        assert!(!out.any(), "{out:?}");
        assert!(check("SELECT f(1)", &known).opaque);
        assert!(check("SELECT query_to_xml('select 1', true, true, '')", &known).opaque);
        // Names inside strings and comments are not calls.
        assert!(!check("SELECT 'f(1)' -- g(2)\n", &known).any());
    }
}
