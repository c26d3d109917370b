//! What the statement text alone decides: one SELECT without a locking clause, a
//! data-modifying CTE, INTO, an unseeded TABLESAMPLE or an SQL value function
//! (`CURRENT_USER`, `CURRENT_TIMESTAMP`, …); and the `pgsidecar:cache` /
//! `pgsidecar:nocache` hints in comments. Functions, operators and relations are proven
//! by the server's own resolution afterwards ([`super::analyze`]).
//!
//! The walk goes over the tree's serde form, as the EXPLAIN classifier does, so every
//! field of every node is visited without a hand-written list of node kinds.

use std::time::Duration;

use pg_query::NodeEnum;
use serde_json::{Map, Value};

use super::reason::Refusal;
use crate::query::worker;
use crate::query::{split_statements, MAX_PARSE_DEPTH};

/// A statement's hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    None,
    /// `/* pgsidecar:nocache */` anywhere in the text.
    NoCache,
    /// `/* pgsidecar:cache */` or `/* pgsidecar:cache ttl=60s */` before the statement.
    Cache(Option<Duration>),
}

/// The hint of `sql`. A `cache` hint counts only in the comments before the first token
/// (a literal holding the same text must not opt in); `nocache` counts anywhere, since
/// narrowing is always safe.
pub fn hint(sql: &str) -> Hint {
    if sql.contains("pgsidecar:nocache") {
        return Hint::NoCache;
    }
    let mut rest = sql.trim_start();
    while let Some(body) = rest.strip_prefix("/*") {
        let Some(end) = body.find("*/") else {
            return Hint::None;
        };
        let comment = body[..end].trim();
        if let Some(args) = comment.strip_prefix("pgsidecar:cache") {
            if !args.is_empty() && !args.starts_with(' ') {
                return Hint::None;
            }
            return Hint::Cache(ttl_arg(args));
        }
        rest = body[end + 2..].trim_start();
    }
    Hint::None
}

fn ttl_arg(args: &str) -> Option<Duration> {
    let value = args
        .split_whitespace()
        .find_map(|a| a.strip_prefix("ttl="))?;
    humantime_serde::re::humantime::parse_duration(value)
        .ok()
        .filter(|d| !d.is_zero())
}

/// Checks one statement text; blocks briefly (pg_query runs on the parser threads).
pub fn check(sql: &str) -> Result<(), Refusal> {
    if split_statements(sql).any(|stmt| stmt.depth > MAX_PARSE_DEPTH) {
        return Err(Refusal::Unparsable);
    }
    let sql = sql.to_owned();
    worker::run(move || check_now(&sql)).unwrap_or(Err(Refusal::Unparsable))
}

fn check_now(sql: &str) -> Result<(), Refusal> {
    let parsed = pg_query::parse(sql, 0).map_err(|_| Refusal::Unparsable)?;
    let stmts = &parsed.protobuf.stmts;
    let [raw] = stmts.as_slice() else {
        return Err(match stmts.is_empty() {
            true => Refusal::NotSelect,
            false => Refusal::MultipleStatements,
        });
    };
    let Some(NodeEnum::SelectStmt(select)) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
        return Err(Refusal::NotSelect);
    };
    if select.into_clause.is_some() {
        return Err(Refusal::SelectInto);
    }
    let tree = serde_json::to_value(select).map_err(|_| Refusal::Unparsable)?;
    walk(&tree)
}

fn walk(value: &Value) -> Result<(), Refusal> {
    match value {
        Value::Object(fields) => walk_object(fields),
        Value::Array(items) => items.iter().try_for_each(walk),
        _ => Ok(()),
    }
}

/// An object is a node wrapper (`{"FuncCall": {...}}`) or a node's fields.
fn walk_object(fields: &Map<String, Value>) -> Result<(), Refusal> {
    for (key, value) in fields {
        match key.as_str() {
            "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => {
                return Err(Refusal::WriteCte)
            }
            "locking_clause" if value.as_array().is_some_and(|a| !a.is_empty()) => {
                return Err(Refusal::LockingClause)
            }
            "LockingClause" => return Err(Refusal::LockingClause),
            "into_clause" if !value.is_null() => return Err(Refusal::SelectInto),
            "RangeTableSample" if value.get("repeatable").is_none_or(Value::is_null) => {
                return Err(Refusal::UnseededTablesample)
            }
            // CURRENT_USER, CURRENT_TIMESTAMP, LOCALTIME, CURRENT_SCHEMA, ...: session
            // state or the clock, never in the server's function list.
            "SqlvalueFunction" => return Err(Refusal::VolatileFunction),
            _ => {}
        }
        walk(value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_selects_pass() {
        for sql in [
            "SELECT * FROM t WHERE id = $1",
            "select a from s.t join u using (id) order by 1 limit 5",
            "VALUES (1)",
            "TABLE t",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "SELECT * FROM t TABLESAMPLE bernoulli (10) REPEATABLE (42)",
        ] {
            assert_eq!(check(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn unsafe_selects_are_refused_with_their_reason() {
        for (sql, reason) in [
            ("SELECT * FROM t FOR UPDATE", Refusal::LockingClause),
            (
                "SELECT * FROM (SELECT * FROM t FOR SHARE) s",
                Refusal::LockingClause,
            ),
            (
                "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
                Refusal::WriteCte,
            ),
            ("SELECT * INTO n FROM t", Refusal::SelectInto),
            (
                "SELECT * FROM t TABLESAMPLE system (1)",
                Refusal::UnseededTablesample,
            ),
            ("SELECT CURRENT_USER", Refusal::VolatileFunction),
            (
                "SELECT * FROM t WHERE d < current_date",
                Refusal::VolatileFunction,
            ),
            ("SELECT 1; SELECT 2", Refusal::MultipleStatements),
            ("UPDATE t SET a = 1", Refusal::NotSelect),
            ("SET x = 1", Refusal::NotSelect),
            ("", Refusal::NotSelect),
            ("SELEC 1", Refusal::Unparsable),
        ] {
            assert_eq!(check(sql), Err(reason), "{sql}");
        }
        let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(check(&deep), Err(Refusal::Unparsable));
    }

    #[test]
    fn hints_opt_in_only_before_the_statement() {
        assert_eq!(
            hint("/* pgsidecar:cache ttl=60s */ SELECT 1"),
            Hint::Cache(Some(Duration::from_secs(60)))
        );
        assert_eq!(
            hint("/* app */ /* pgsidecar:cache */ SELECT 1"),
            Hint::Cache(None)
        );
        assert_eq!(hint("SELECT '/* pgsidecar:cache */'"), Hint::None);
        assert_eq!(hint("SELECT 1 /* pgsidecar:nocache */"), Hint::NoCache);
        assert_eq!(
            hint("/* pgsidecar:cache ttl=1m */ SELECT 1 -- pgsidecar:nocache"),
            Hint::NoCache
        );
        assert_eq!(hint("/* pgsidecar:cachex */ SELECT 1"), Hint::None);
        assert_eq!(hint("/* unterminated"), Hint::None);
    }
}
