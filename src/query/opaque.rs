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
use std::time::{Duration, Instant};

use super::effects::has_second_statement;
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

/// How long a verdict is trusted: a function created or replaced behind the proxy's back
/// is noticed within this time (through the proxy, at once: see [`KnownFunctions::forget_all`]).
const VERDICT_TTL: Duration = Duration::from_secs(60);

/// Words that make a function body opaque: session state, dynamic SQL, nested blocks.
const LOUD_WORDS: &[&str] = &[
    "set",
    "reset",
    "discard",
    "listen",
    "declare",
    "prepare",
    "execute",
    "create",
    "do",
    "call",
    "role",
    "authorization",
    "temp",
    "temporary",
    "load",
    "lock",
    "alter",
    "drop",
];

/// Keywords that come before `(` and are never function calls.
const NOT_CALLS: &[&str] = &[
    "return", "in", "values", "exists", "any", "all", "some", "coalesce", "nullif", "greatest",
    "least", "row", "array", "cast", "over", "filter", "within", "and", "or", "not", "on", "using",
    "as", "from", "where", "select", "when", "then", "else", "if", "elsif", "while", "case",
    "into", "by", "returns", "query", "next", "join", "table",
];

/// Per pool: for each name met before a `(`, whether calling it is known to leave no
/// session state (`true`: every function of that name is built in, or a SQL/PL/pgSQL
/// body that only calls such names and touches no session state). Reads take a shared
/// lock held for one lookup, never across `.await`.
#[derive(Debug, Default)]
pub struct KnownFunctions {
    names: RwLock<HashMap<String, (bool, Instant)>>,
}

impl KnownFunctions {
    pub fn builtin_only(&self, name: &str) -> Option<bool> {
        let names = self.names.read().unwrap_or_else(|e| e.into_inner());
        let (quiet, at) = names.get(name).copied()?;
        (at.elapsed() < VERDICT_TTL).then_some(quiet)
    }

    /// Records what the server said about `name`.
    pub fn learn(&self, name: &str, builtin_only: bool) {
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if names.len() >= MAX_KNOWN {
            names.retain(|_, (_, at)| at.elapsed() < VERDICT_TTL);
        }
        if names.len() < MAX_KNOWN || names.contains_key(name) {
            names.insert(name.to_owned(), (builtin_only, Instant::now()));
        }
    }

    /// Forgets every verdict (a client created, replaced or dropped a function).
    pub fn forget_all(&self) {
        self.names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
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
    opacity_after(sql, first_word(sql), known, out)
}

/// [`opacity`] with the first word already lexed.
pub(super) fn opacity_after(
    sql: &str,
    first: Option<&str>,
    known: &KnownFunctions,
    out: &mut Opacity,
) {
    let bytes = sql.as_bytes();
    let leading = first.is_some_and(|w| {
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
            let mut buf = [0u8; 64];
            let name = match kind {
                TokenKind::Word => fold(&sql[start..end], &mut buf),
                TokenKind::QuotedIdent => std::borrow::Cow::Owned(
                    sql[start + 1..end.saturating_sub(1).max(start + 1)].replace("\"\"", "\""),
                ),
                _ => std::borrow::Cow::Borrowed(""),
            };
            if !name.is_empty() {
                note_call(&name, known, out);
            }
        }
        previous = Some((t.kind, t.start, t.end));
    }
}

/// Notes a call of `name` (already case-folded). Allocates only for a name not yet known.
pub fn note_call(name: &str, known: &KnownFunctions, out: &mut Opacity) {
    if NOT_CALLS.contains(&name) {
        return;
    }
    if RUNS_SQL.iter().any(|s| name.contains(s)) {
        out.opaque = true;
        return;
    }
    match known.builtin_only(name) {
        Some(true) => {}
        Some(false) => out.opaque = true,
        None if out.unknown.len() >= MAX_UNKNOWN => out.opaque = true,
        None => {
            if !out.unknown.iter().any(|n| n == name) {
                out.unknown.push(name.to_owned());
            }
        }
    }
}

/// Folds an unquoted name to lower case in `buf` when it fits (no allocation), else in
/// a new string.
fn fold<'b>(word: &'b str, buf: &'b mut [u8; 64]) -> std::borrow::Cow<'b, str> {
    if !word.bytes().any(|b| b.is_ascii_uppercase()) {
        return std::borrow::Cow::Borrowed(word);
    }
    if word.len() <= buf.len() {
        let folded = &mut buf[..word.len()];
        folded.copy_from_slice(word.as_bytes());
        folded.make_ascii_lowercase();
        if let Ok(s) = std::str::from_utf8(folded) {
            return std::borrow::Cow::Borrowed(s);
        }
    }
    std::borrow::Cow::Owned(word.to_ascii_lowercase())
}

/// Whether a SQL or PL/pgSQL function body (`prosrc`) provably leaves no session state:
/// none of [`LOUD_WORDS`], and every name it calls already known to be quiet.
/// Conservative: `UPDATE … SET` counts as loud too.
pub fn quiet_body(body: &str, known: &KnownFunctions) -> bool {
    let bytes = body.as_bytes();
    let mut lexer = Lexer::new(body);
    let mut previous: Option<(usize, usize)> = None;
    while let Some(t) = lexer.next_token() {
        match t.kind {
            TokenKind::Word => {
                let word = &body[t.start..t.end];
                if LOUD_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w)) {
                    return false;
                }
                previous = Some((t.start, t.end));
                continue;
            }
            TokenKind::Punct if &bytes[t.start..t.end] == b"(" => {
                if let Some((start, end)) = previous {
                    let mut buf = [0u8; 64];
                    let name = fold(&body[start..end], &mut buf);
                    let runs_sql = RUNS_SQL.iter().any(|s| name.contains(s));
                    let keyword = NOT_CALLS.contains(&name.as_ref());
                    if runs_sql || (!keyword && known.builtin_only(&name) != Some(true)) {
                        return false;
                    }
                }
            }
            TokenKind::QuotedIdent => return false,
            _ => {}
        }
        previous = None;
    }
    true
}

/// True for DDL that can change what a function name does (`CREATE OR REPLACE
/// FUNCTION`, `DROP PROCEDURE`, ...): the pool's verdicts are then forgotten.
pub fn changes_functions(sql: &str) -> bool {
    changes_functions_after(sql, first_word(sql))
}

/// [`changes_functions`] with the first word already lexed.
pub(super) fn changes_functions_after(sql: &str, first: Option<&str>) -> bool {
    let ddl = first.is_some_and(|w| {
        ["create", "alter", "drop"]
            .iter()
            .any(|k| w.eq_ignore_ascii_case(k))
    });
    ddl && {
        let lower = sql.to_ascii_lowercase();
        lower.contains("function") || lower.contains("procedure") || lower.contains("schema")
    }
}

/// The statement's first token when it is a word: the three questions above each start
/// from it, so it is lexed once and handed to each.
pub(super) fn first_word(sql: &str) -> Option<&str> {
    let mut lexer = Lexer::new(sql);
    let t = lexer.next_token()?;
    (t.kind == TokenKind::Word).then(|| &sql[t.start..t.end])
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
        assert_eq!(out.unknown, ["count", "f", "Odd"]);
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
        known.forget_all();
        assert!(check("SELECT count(*)", &known).any());
    }

    #[test]
    fn quiet_bodies_call_only_quiet_names() {
        let known = KnownFunctions::default();
        known.learn("abs", true);
        let quiet = " BEGIN RETURN (SELECT abs(abalance) FROM a WHERE aid = $1); END ";
        assert!(quiet_body(quiet, &known));
        for loud in [
            "BEGIN PERFORM set_config('x', '1', false); RETURN 1; END",
            "BEGIN EXECUTE 'SET ROLE app'; RETURN 1; END",
            "BEGIN CREATE TEMP TABLE t (a int); RETURN 1; END",
            "SELECT pg_advisory_lock(1)",
            "SELECT other_fn(1)",
            "UPDATE t SET a = 1",
        ] {
            assert!(!quiet_body(loud, &known), "{loud}");
        }
        assert!(changes_functions("create or replace function f() ..."));
        assert!(!changes_functions("SELECT 'drop function'"));
    }
}
