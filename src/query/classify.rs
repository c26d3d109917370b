//! Safe-SELECT classification: which statements change nothing when executed (so EXPLAIN
//! ANALYZE may run them, and the cache may keep their results), by a walk over
//! pg_query's parse tree.
//!
//! The walk goes over the tree's serde form (pg_query's protobuf structs derive
//! `Serialize`) rather than matching node types by hand: a hand-written walk has to know
//! every node that can hold an expression, and missing one would hide a function call or
//! a locking clause. Serializing visits every field of every node by construction.

use std::fmt;

use pg_query::NodeEnum;
use serde_json::{Map, Value};

use super::worker;
use super::{split_statements, MAX_PARSE_DEPTH};

/// What a capture may do with a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Safety {
    /// A plain query: executing it changes nothing, unless one of `functions` does, or
    /// a view or row-security policy among `relations` runs functions of its own (the
    /// caller checks both first).
    Analyze {
        functions: Vec<FunctionName>,
        relations: Vec<FunctionName>,
    },
    /// Only plan it: executing it could change something, or it could not be analyzed.
    PlainOnly { reason: &'static str },
}

/// A function (or relation) by name, as written (identifiers already case-folded by the
/// parser).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionName {
    /// The schema when the call was qualified (`pg_catalog.now()`).
    pub schema: Option<String>,
    pub name: String,
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Classifies one statement text. Blocks briefly: pg_query runs on the parser threads.
pub fn classify(sql: &str) -> Safety {
    // Same guard as the analyzer: very deep nesting is not handed to pg_query at all.
    if split_statements(sql).any(|stmt| stmt.depth > MAX_PARSE_DEPTH) {
        return plain("nested too deeply to analyze");
    }
    let sql = sql.to_owned();
    worker::run(move || classify_now(&sql)).unwrap_or(plain("could not be parsed"))
}

fn plain(reason: &'static str) -> Safety {
    Safety::PlainOnly { reason }
}

/// The classification itself; must run on a parser thread.
fn classify_now(sql: &str) -> Safety {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return plain("could not be parsed");
    };
    let stmts = &parsed.protobuf.stmts;
    let [raw] = stmts.as_slice() else {
        return plain(if stmts.is_empty() {
            "empty statement"
        } else {
            "multiple statements"
        });
    };
    let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
        return plain("empty statement");
    };
    let NodeEnum::SelectStmt(select) = node else {
        return plain("not a SELECT");
    };
    if select.into_clause.is_some() {
        return plain("SELECT INTO creates a table");
    }
    let Ok(tree) = serde_json::to_value(select) else {
        return plain("could not be parsed");
    };
    let mut found = Found::default();
    found.walk(&tree);
    if let Some(reason) = found.unsafe_reason {
        return plain(reason);
    }
    for names in [&mut found.functions, &mut found.relations] {
        names.sort();
        names.dedup();
    }
    Safety::Analyze {
        functions: found.functions,
        relations: found.relations,
    }
}

/// What the walk has seen so far.
#[derive(Default)]
struct Found {
    unsafe_reason: Option<&'static str>,
    functions: Vec<FunctionName>,
    relations: Vec<FunctionName>,
}

impl Found {
    fn walk(&mut self, value: &Value) {
        match value {
            Value::Object(fields) => self.walk_object(fields),
            Value::Array(items) => items.iter().for_each(|item| self.walk(item)),
            _ => {}
        }
    }

    /// An object is a node wrapper (`{"FuncCall": {...}}`, the serde form of the node
    /// oneof) or a node's fields; both are checked by key.
    fn walk_object(&mut self, fields: &Map<String, Value>) {
        for (key, value) in fields {
            match key.as_str() {
                "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => {
                    self.unsafe_reason = Some("data-modifying statement in WITH");
                }
                // A field of SelectStmt (also of the unwrapped larg/rarg of a UNION).
                "locking_clause" if non_empty(value) => {
                    self.unsafe_reason = Some("locking clause (FOR UPDATE/SHARE)");
                }
                "LockingClause" => self.unsafe_reason = Some("locking clause (FOR UPDATE/SHARE)"),
                "into_clause" if !value.is_null() => {
                    self.unsafe_reason = Some("SELECT INTO creates a table");
                }
                "RangeVar" => {
                    let name = value.get("relname").and_then(Value::as_str);
                    let schema = value.get("schemaname").and_then(Value::as_str);
                    if let Some(name) = name.filter(|n| !n.is_empty()) {
                        self.relations.push(FunctionName {
                            schema: schema.filter(|s| !s.is_empty()).map(str::to_owned),
                            name: name.to_owned(),
                        });
                    }
                }
                "FuncCall" => {
                    if let Some(name) = function_name(value) {
                        self.functions.push(name);
                    } else {
                        self.unsafe_reason = Some("function call with an unreadable name");
                    }
                }
                _ => {}
            }
            if self.unsafe_reason.is_some() {
                return;
            }
            self.walk(value);
        }
    }
}

fn non_empty(value: &Value) -> bool {
    value.as_array().is_some_and(|items| !items.is_empty())
}

/// `funcname` is a list of String nodes: `[name]` or `[schema, name]` (a three-part
/// `db.schema.name` keeps its last two parts; the server rejects another database).
fn function_name(call: &Value) -> Option<FunctionName> {
    let parts: Vec<&str> = call
        .get("funcname")?
        .as_array()?
        .iter()
        .map(|part| part.pointer("/node/String/sval").and_then(Value::as_str))
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [name] => Some(FunctionName {
            schema: None,
            name: (*name).to_owned(),
        }),
        [.., schema, name] => Some(FunctionName {
            schema: Some((*schema).to_owned()),
            name: (*name).to_owned(),
        }),
        [] => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn functions(sql: &str) -> Vec<String> {
        match classify(sql) {
            Safety::Analyze { functions, .. } => {
                functions.iter().map(ToString::to_string).collect()
            }
            other => panic!("{sql}: expected Analyze, got {other:?}"),
        }
    }

    fn assert_plain(sql: &str) -> &'static str {
        match classify(sql) {
            Safety::PlainOnly { reason } => reason,
            other => panic!("{sql}: expected PlainOnly, got {other:?}"),
        }
    }

    #[test]
    fn plain_selects_may_be_analyzed() {
        assert!(functions("SELECT * FROM t WHERE id = $1").is_empty());
        assert!(functions("select a, b from s.t join u using (id) order by 1 limit 5").is_empty());
        assert!(functions("VALUES (1), (2)").is_empty());
        assert!(functions("TABLE t").is_empty());
        assert!(functions("WITH x AS (SELECT 1) SELECT * FROM x UNION SELECT 2;").is_empty());
    }

    #[test]
    fn functions_are_listed_wherever_they_are_called() {
        assert_eq!(
            functions(
                "SELECT lower(name), count(*) FROM t, generate_series(1, 3) g \
                 WHERE id IN (SELECT pg_catalog.abs(x) FROM u) AND CASE WHEN a THEN MyFn(1) END \
                 GROUP BY 1 ORDER BY \"Quoted\"(2)"
            ),
            [
                "Quoted",
                "count",
                "generate_series",
                "lower",
                "myfn",
                "pg_catalog.abs"
            ]
        );
        assert_eq!(functions("SELECT random()"), ["random"]);
        assert_eq!(
            functions("WITH c AS (SELECT nextval('s')) SELECT * FROM c"),
            ["nextval"]
        );
    }

    #[test]
    fn locking_clauses_forbid_analyze() {
        for sql in [
            "SELECT * FROM t FOR UPDATE",
            "SELECT * FROM t WHERE id = 1 FOR NO KEY UPDATE SKIP LOCKED",
            "SELECT * FROM t FOR KEY SHARE",
            "SELECT * FROM (SELECT * FROM t FOR SHARE) s",
            "SELECT * FROM t WHERE id IN (SELECT id FROM u FOR SHARE OF u)",
            "WITH l AS (SELECT * FROM t FOR UPDATE) SELECT * FROM l",
            "(SELECT * FROM t FOR UPDATE) UNION ALL SELECT * FROM u",
        ] {
            assert_eq!(
                assert_plain(sql),
                "locking clause (FOR UPDATE/SHARE)",
                "{sql}"
            );
        }
    }

    #[test]
    fn data_modifying_ctes_forbid_analyze() {
        for sql in [
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT * FROM i",
            "WITH a AS (SELECT 1), u AS (UPDATE t SET x = 1 RETURNING x) SELECT 1",
            "SELECT * FROM t WHERE id IN \
             (WITH d AS (DELETE FROM u RETURNING id) SELECT id FROM d)",
            "WITH m AS (MERGE INTO t USING u ON t.id = u.id \
             WHEN MATCHED THEN DELETE RETURNING t.id) SELECT * FROM m",
        ] {
            assert_eq!(
                assert_plain(sql),
                "data-modifying statement in WITH",
                "{sql}"
            );
        }
    }

    #[test]
    fn select_into_is_plain() {
        assert_eq!(
            assert_plain("SELECT * INTO new_t FROM t"),
            "SELECT INTO creates a table"
        );
    }

    #[test]
    fn everything_but_select_is_plain() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "INSERT INTO t SELECT * FROM u",
            "UPDATE t SET a = 1 WHERE id = $1",
            "DELETE FROM t",
            "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
            "CREATE TABLE x (id int)",
            "CREATE TABLE x AS SELECT 1",
            "DROP TABLE t",
            "TRUNCATE t",
            "VACUUM t",
            "EXPLAIN ANALYZE SELECT 1",
            "SET work_mem = '1GB'",
            "CALL p()",
            "DO $$ BEGIN END $$",
        ] {
            assert_eq!(assert_plain(sql), "not a SELECT", "{sql}");
        }
    }

    #[test]
    fn unparsable_and_multi_statement_text_is_plain() {
        assert_eq!(assert_plain("SELEC * FROM"), "could not be parsed");
        assert_eq!(
            assert_plain("SELECT 1; DELETE FROM t"),
            "multiple statements"
        );
        assert_eq!(assert_plain("SELECT 1; SELECT 2"), "multiple statements");
        assert_eq!(assert_plain(""), "empty statement");
        let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert_plain(&deep);
    }
}
