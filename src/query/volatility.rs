//! Proof that executing a SELECT runs nothing volatile, from the server's own resolution
//! of it: the statement is compiled into a SQL function body (`BEGIN ATOMIC`, in a
//! transaction that is rolled back), whose stored query tree names every function,
//! operator, aggregate, type and relation by OID ([`NodeRefs`]). Views, row-security
//! policies and domain checks are followed into their own trees; foreign tables, unknown
//! node kinds and anything else unresolved count as unsafe (default-deny).

use std::collections::BTreeSet;

use tokio_postgres::Client;

use tokio_postgres::types::Type;

use super::NodeRefs;

/// Views nested deeper than this (or domains over domains) are not followed.
const MAX_ROUNDS: usize = 8;

/// The stored tree of the probe function, in the same session and transaction.
const BODY: &str = "SELECT p.prosqlbody::text FROM pg_catalog.pg_proc p \
     WHERE p.proname = 'pgsidecar_probe' AND p.pronamespace = pg_catalog.pg_my_temp_schema()";

/// More trees to read and relations/types to follow, for the relations in $1 and the
/// types in $2.
const EXPAND: &str = "\
SELECT 'foreign', c.oid::regclass::text, NULL FROM pg_catalog.pg_class c \
 WHERE c.oid = ANY($1) AND c.relkind = 'f' \
UNION ALL SELECT 'relation', i.inhparent::regclass::text, i.inhrelid::text \
 FROM pg_catalog.pg_inherits i WHERE i.inhparent = ANY($1) \
UNION ALL SELECT 'tree', r.ev_class::regclass::text, r.ev_action::text \
 FROM pg_catalog.pg_rewrite r WHERE r.ev_class = ANY($1) AND r.ev_type = '1' \
UNION ALL SELECT 'tree', p.polrelid::regclass::text, p.polqual::text \
 FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid \
 WHERE p.polrelid = ANY($1) AND c.relrowsecurity AND p.polcmd IN ('r', '*') \
 AND p.polqual IS NOT NULL \
UNION ALL SELECT 'tree', k.contypid::regtype::text, k.conbin::text \
 FROM pg_catalog.pg_constraint k WHERE k.contypid = ANY($2) AND k.conbin IS NOT NULL \
UNION ALL SELECT 'type', t.oid::regtype::text, t.typbasetype::text \
 FROM pg_catalog.pg_type t WHERE t.oid = ANY($2) AND t.typtype = 'd'";

/// The first function that is volatile or missing among the functions ($1), the
/// operators' functions ($2), the aggregates' support functions ($3) and the types'
/// input and output functions ($4); no row when every one is IMMUTABLE or STABLE.
const VERDICT: &str = "\
WITH f(fn, via) AS ( \
 SELECT o, NULL::text FROM unnest($1::oid[]) o \
 UNION ALL SELECT o.oprcode::oid, 'operator ' || o.oid::regoperator::text \
  FROM pg_catalog.pg_operator o WHERE o.oid = ANY($2) \
 UNION ALL SELECT s.fn::oid, 'aggregate ' || a.aggfnoid::regprocedure::text \
  FROM pg_catalog.pg_aggregate a, unnest(ARRAY[a.aggtransfn, a.aggfinalfn, a.aggcombinefn, \
  a.aggserialfn, a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn]) s(fn) \
  WHERE a.aggfnoid = ANY($3) \
 UNION ALL SELECT s.fn::oid, 'type ' || t.oid::regtype::text \
  FROM pg_catalog.pg_type t, unnest(ARRAY[t.typinput, t.typoutput]) s(fn) \
  WHERE t.oid = ANY($4)) \
SELECT CASE WHEN p.oid IS NULL THEN 'unknown function ' || f.fn::text \
 ELSE 'volatile function ' || p.oid::regprocedure::text END \
 || coalesce(' (' || f.via || ')', '') \
 FROM f LEFT JOIN pg_catalog.pg_proc p ON p.oid = f.fn \
 WHERE f.fn <> 0 AND (p.oid IS NULL OR p.provolatile = 'v') \
UNION ALL SELECT 'unknown operator ' || o::text FROM unnest($2::oid[]) o \
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_operator x WHERE x.oid = o) \
LIMIT 1";

/// Compiles `sql` into a temporary SQL function inside the transaction the
/// caller opened (read-write, rolled back by the caller) and returns its stored tree.
/// Runs nothing of the statement: a function body is only parsed and analyzed.
pub async fn probe_tree(
    client: &Client,
    sql: &str,
    types: &[Type],
) -> Result<String, tokio_postgres::Error> {
    let statement = client.prepare_typed(sql, types).await?;
    let oids: Vec<u32> = statement.params().iter().map(|t| t.oid()).collect();
    let names: Vec<String> = if oids.is_empty() {
        Vec::new()
    } else {
        let sql = "SELECT pg_catalog.format_type(o, NULL) \
                   FROM unnest($1::oid[]) WITH ORDINALITY u(o, n) ORDER BY n";
        let rows = client.query(sql, &[&oids]).await?;
        rows.iter().map(|row| row.get(0)).collect()
    };
    // The text is one SELECT (classify checked that with PostgreSQL's own grammar); the
    // newline ends a trailing `--` comment. The extended protocol runs one statement only.
    let body = sql.trim_end().trim_end_matches(';');
    let create = format!(
        "CREATE FUNCTION pg_temp.pgsidecar_probe({}) RETURNS void LANGUAGE sql \
         BEGIN ATOMIC\n{body}\n; END",
        names.join(", ")
    );
    client.execute(&create, &[]).await?;
    let row = client.query_one(BODY, &[]).await?;
    Ok(row.get::<_, Option<String>>(0).unwrap_or_default())
}

/// Why executing `tree` might run something volatile, or `None` when every function
/// it can reach is proven IMMUTABLE or STABLE.
pub async fn unsafe_tree(
    client: &Client,
    tree: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    let mut refs = NodeRefs::default();
    refs.scan(tree);
    let (mut seen_relations, mut seen_types) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..MAX_ROUNDS {
        if let Some(node) = &refs.unknown {
            return Ok(Some(format!("cannot verify a {node} node")));
        }
        let relations: Vec<u32> = refs
            .relations
            .difference(&seen_relations)
            .copied()
            .collect();
        let types: Vec<u32> = refs.types.difference(&seen_types).copied().collect();
        if relations.is_empty() && types.is_empty() {
            return verdict(client, &refs).await;
        }
        seen_relations.extend(relations.iter().copied());
        seen_types.extend(types.iter().copied());
        for row in client.query(EXPAND, &[&relations, &types]).await? {
            let (kind, name, value): (&str, String, Option<String>) =
                (row.get(0), row.get(1), row.get(2));
            let value = value.unwrap_or_default();
            match kind {
                "foreign" => return Ok(Some(format!("reads foreign table {name}"))),
                "relation" => refs.relations.extend(value.parse::<u32>().ok()),
                "type" => refs.types.extend(value.parse::<u32>().ok()),
                _ => refs.scan(&value),
            }
        }
    }
    Ok(Some(
        "views or domains nested too deeply to verify".to_owned(),
    ))
}

async fn verdict(
    client: &Client,
    refs: &NodeRefs,
) -> Result<Option<String>, tokio_postgres::Error> {
    let list = |set: &BTreeSet<u32>| set.iter().copied().collect::<Vec<u32>>();
    let (functions, operators) = (list(&refs.functions), list(&refs.operators));
    let (aggregates, types) = (list(&refs.aggregates), list(&refs.types));
    let rows = client
        .query(VERDICT, &[&functions, &operators, &aggregates, &types])
        .await?;
    Ok(rows.first().map(|row| row.get(0)))
}
