//! Query analysis: what each forwarded statement is (fingerprint, normalized text,
//! command type, tables read and written), cheap enough for the proxy's hot path.
//!
//! Simple-protocol text goes through [`split_statements`], a lexer that splits it into
//! statements and hashes each one's token stream with literals stripped. [`Analyzer`]
//! caches the analysis by that hash, so pg_query (≈ 10 µs to parse, more for long
//! statements) runs once per statement shape, not once per statement. Named prepared
//! statements are analyzed once per Parse with [`Analyzer::analyze_text`].
//!
//! Nothing here panics or fails on any input: text pg_query cannot parse, or that is
//! nested too deeply to hand to it, is still analyzed from its tokens
//! (`parsed == false`). Literal values are never stored: normalized texts carry `$n`.

mod analyzer;
pub mod classify;
mod effects;
mod fallback;
mod hash;
pub(crate) mod lexer;
mod node_tree;
mod opaque;
mod parse;
mod redact;
mod split;
#[cfg(test)]
mod tests;
pub mod volatility;
pub(crate) mod worker;

use std::fmt::Write as _;

pub use analyzer::{Analyzer, MAX_PARSE_DEPTH};
pub use classify::{classify, FunctionName, Safety};
pub use effects::{
    session_effects, text_effects, PinReason, SessionEffects, TextEffects, PIN_REASONS,
};
pub use hash::{FastHasher, FastMap};
pub use node_tree::NodeRefs;
pub use opaque::{changes_functions, note_call, opacity, quiet_body, KnownFunctions, Opacity};
pub use redact::redact_literals;
pub use split::{split_statements, Statement, Statements};

/// The kind of a statement, for per-command statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// SELECT, VALUES, TABLE (a data-modifying WITH still counts as SELECT).
    Select,
    Insert,
    /// UPDATE and MERGE.
    Update,
    Delete,
    Copy,
    /// CREATE, ALTER, DROP, TRUNCATE, GRANT, COMMENT, SELECT INTO and the like.
    Ddl,
    /// Everything else: SET, SHOW, EXPLAIN, VACUUM, DO, CALL, PREPARE, FETCH, ...
    Utility,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT, PREPARE TRANSACTION, ...
    Transaction,
}

impl Command {
    pub fn as_str(&self) -> &'static str {
        match self {
            Command::Select => "SELECT",
            Command::Insert => "INSERT",
            Command::Update => "UPDATE",
            Command::Delete => "DELETE",
            Command::Copy => "COPY",
            Command::Ddl => "DDL",
            Command::Utility => "UTILITY",
            Command::Transaction => "TRANSACTION",
        }
    }
}

/// The analysis of one statement shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryInfo {
    /// pg_query's fingerprint; for unparsed statements the lexer's shape hash.
    pub fingerprint: u64,
    /// The statement with every constant replaced by `$n` and comments removed.
    pub normalized: String,
    pub command: Command,
    /// Relations read, as written (schema-qualified if written so), sorted, deduplicated.
    pub tables_read: Vec<String>,
    /// Relations written by DML, COPY FROM, or changed by DDL (the target of CREATE,
    /// ALTER, DROP, TRUNCATE, SELECT INTO, ...).
    pub tables_written: Vec<String>,
    /// False when pg_query could not parse the statement (or it was too deeply nested).
    pub parsed: bool,
}

impl QueryInfo {
    /// The fingerprint as 16 lower-case hex digits, as pg_query prints it.
    pub fn fingerprint_hex(&self) -> String {
        let mut hex = String::with_capacity(16);
        let _ = write!(hex, "{:016x}", self.fingerprint);
        hex
    }
}
