//! Whether the functions a SELECT calls are safe to execute again: a `pg_proc` lookup on
//! the capture connection.

use tokio_postgres::Client;

use super::FunctionName;

/// Every function with one of the names, in any schema; matched against the calls in Rust.
const LOOKUP: &str = "SELECT n.nspname::text, p.proname::text, p.provolatile = 'v' \
     FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
     WHERE p.proname = ANY($1::text[])";

/// Views (whose rules run their own functions) and tables with row security (whose
/// policies do), among the relations a query reads; CTE names do not resolve and drop out.
const RELATIONS: &str = "SELECT c.relname::text FROM pg_catalog.pg_class c \
     WHERE c.oid = ANY(ARRAY(SELECT pg_catalog.to_regclass(r) FROM unnest($1::text[]) r)) \
     AND (c.relkind = 'v' OR c.relrowsecurity)";

/// Why reading `relations` might execute functions the statement does not name: a view
/// or row-level security. Conservative: any view counts, whatever it calls.
pub(crate) async fn unsafe_relation(
    client: &Client,
    relations: &[FunctionName],
) -> Result<Option<String>, tokio_postgres::Error> {
    if relations.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = relations.iter().map(qualified).collect();
    let rows = client.query(RELATIONS, &[&names]).await?;
    Ok(rows.first().map(|row| {
        let name: String = row.get(0);
        format!("reads view or row-security table {name}")
    }))
}

/// `schema.name` quoted for `to_regclass`, so case and odd characters survive.
fn qualified(name: &FunctionName) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    match &name.schema {
        Some(schema) => format!("{}.{}", quote(schema), quote(&name.name)),
        None => quote(&name.name),
    }
}

/// One `pg_proc` row.
#[derive(Debug)]
struct Proc {
    schema: String,
    name: String,
    volatile: bool,
}

/// Why executing calls to `functions` might not be safe, or `None` when every one of them
/// is known and none volatile.
///
/// Conservative on purpose: an unqualified name counts as volatile if any function of
/// that name in any schema is (the capture connection's search_path may not be the
/// client's), and every overload counts (the call's argument types are not known here).
pub(crate) async fn unsafe_function(
    client: &Client,
    functions: &[FunctionName],
) -> Result<Option<String>, tokio_postgres::Error> {
    if functions.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
    let rows = client.query(LOOKUP, &[&names]).await?;
    let procs: Vec<Proc> = rows
        .iter()
        .map(|row| Proc {
            schema: row.get(0),
            name: row.get(1),
            volatile: row.get(2),
        })
        .collect();
    Ok(judge(functions, &procs))
}

fn judge(functions: &[FunctionName], procs: &[Proc]) -> Option<String> {
    for function in functions {
        let mut matching = procs.iter().filter(|p| {
            p.name == function.name && function.schema.as_ref().is_none_or(|s| *s == p.schema)
        });
        let Some(first) = matching.next() else {
            return Some(format!("unknown function {function}"));
        };
        if first.volatile || matching.any(|p| p.volatile) {
            return Some(format!("volatile function {function}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(schema: &str, name: &str, volatile: bool) -> Proc {
        Proc {
            schema: schema.into(),
            name: name.into(),
            volatile,
        }
    }

    fn call(schema: Option<&str>, name: &str) -> FunctionName {
        FunctionName {
            schema: schema.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn volatile_or_unknown_functions_are_unsafe() {
        let procs = [
            proc("pg_catalog", "lower", false),
            proc("pg_catalog", "random", true),
            proc("app", "lower", true),
        ];
        assert_eq!(judge(&[], &procs), None);
        assert_eq!(judge(&[call(Some("pg_catalog"), "lower")], &procs), None);
        assert_eq!(
            judge(&[call(None, "lower")], &procs).as_deref(),
            Some("volatile function lower")
        );
        assert_eq!(
            judge(&[call(None, "random")], &procs).as_deref(),
            Some("volatile function random")
        );
        assert_eq!(
            judge(&[call(Some("other"), "lower")], &procs).as_deref(),
            Some("unknown function other.lower")
        );
        assert_eq!(
            judge(&[call(None, "nope")], &procs).as_deref(),
            Some("unknown function nope")
        );
    }
}
