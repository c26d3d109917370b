//! The proof that a SELECT may be cached, from the server's own resolution of it on a
//! side connection, as the session would resolve it (its role, its search_path): the
//! statement is compiled into a temporary SQL function (`BEGIN ATOMIC`, rolled back),
//! whose stored tree names every relation, function, operator, aggregate and type by
//! OID ([`NodeRefs`]). Then, default-deny:
//! - every relation is a permanent, non-catalog table or partitioned table without row
//!   security and with the invalidation trigger; views are expanded to their trees (and
//!   the view's own functions checked); inheritance children are read too;
//! - every function and aggregate support function is IMMUTABLE; an operator's
//!   function may also be a built-in STABLE one (those read only the output settings,
//!   which are in the key: `timestamptz < date`, `text || int`);
//! - no domain with a check, no type whose output functions are user-defined and not
//!   IMMUTABLE, and no node kind the scan does not know.
//!
//! The result lists the tables an entry depends on: the tables read, plus their
//! inheritance ancestors (a write through a parent fires only the parent's trigger).

use std::collections::BTreeSet;

use tokio_postgres::types::Type;
use tokio_postgres::Client;

use super::reason::Refusal;
use crate::query::NodeRefs;

/// Views nested deeper than this (or inheritance deeper) are not followed.
const MAX_ROUNDS: usize = 8;

/// What the session resolves the statement with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    pub database: String,
    /// The session's current role (`SET ROLE` included).
    pub role: String,
    pub search_path: String,
    pub text: String,
    /// From Parse; 0 lets the server infer.
    pub param_types: Vec<u32>,
}

/// A statement proven cacheable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// Tables whose writes invalidate it (sorted, unique).
    pub tables: std::sync::Arc<[u32]>,
    /// `schema.name` of the tables read, for `table` rules.
    pub names: Vec<String>,
    /// (bare name, OID) of every table it depends on: how a write through this sidecar,
    /// which names its tables as written, finds their OIDs.
    pub named: Vec<(String, u32)>,
}

pub type Verdict = Result<Analysis, Refusal>;

const BODY: &str = "SELECT p.prosqlbody::text FROM pg_catalog.pg_proc p \
     WHERE p.proname = 'pgsidecar_cache_probe' \
     AND p.pronamespace = pg_catalog.pg_my_temp_schema()";

/// Takes the session's role ($1) and search_path ($2). An empty search_path is the login
/// default: the role's (in this database, then anywhere), the database's, the server's.
const SESSION: &str = "\
SELECT pg_catalog.set_config('role', $1, true), \
 pg_catalog.set_config('search_path', CASE WHEN $2 <> '' THEN $2 ELSE coalesce( \
 (SELECT o.option_value FROM pg_catalog.pg_db_role_setting s, \
   pg_catalog.pg_options_to_table(s.setconfig) o \
   WHERE s.setrole = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = $1) \
   AND s.setdatabase IN (0, (SELECT d.oid FROM pg_catalog.pg_database d \
     WHERE d.datname = pg_catalog.current_database())) \
   AND o.option_name = 'search_path' ORDER BY s.setdatabase DESC LIMIT 1), \
 (SELECT o.option_value FROM pg_catalog.pg_db_role_setting s, \
   pg_catalog.pg_options_to_table(s.setconfig) o WHERE s.setrole = 0 \
   AND s.setdatabase = (SELECT d.oid FROM pg_catalog.pg_database d \
     WHERE d.datname = pg_catalog.current_database()) \
   AND o.option_name = 'search_path'), \
 (SELECT reset_val FROM pg_catalog.pg_settings WHERE name = 'search_path')) END, true)";

/// One row per relation in $1.
const RELATIONS: &str = "\
SELECT c.oid, c.relkind::text, c.relpersistence::text, \
 c.relrowsecurity OR c.relforcerowsecurity, n.nspname::text, c.relname::text, \
 EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid \
  AND t.tgname = 'pgsidecar_cache_notify' AND t.tgenabled <> 'D'), \
 (SELECT r.ev_action::text FROM pg_catalog.pg_rewrite r \
  WHERE r.ev_class = c.oid AND r.ev_type = '1'), \
 ARRAY(SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid), \
 ARRAY(SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid) \
 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
 WHERE c.oid = ANY($1)";

/// How many of the functions ($1), operators ($2), aggregates ($3) and types ($4) fail
/// the rules in the module header.
const VERDICT: &str = "\
WITH f(fn, kind) AS ( \
 SELECT o, 'f' FROM unnest($1::oid[]) o \
 UNION ALL SELECT o.oprcode::oid, 'o' FROM pg_catalog.pg_operator o WHERE o.oid = ANY($2) \
 UNION ALL SELECT s.fn::oid, 'f' FROM pg_catalog.pg_aggregate a, unnest(ARRAY[a.aggtransfn, \
  a.aggfinalfn, a.aggcombinefn, a.aggserialfn, a.aggdeserialfn, a.aggmtransfn, \
  a.aggminvtransfn, a.aggmfinalfn]) s(fn) WHERE a.aggfnoid = ANY($3) \
 UNION ALL SELECT s.fn::oid, 't' FROM pg_catalog.pg_type t, \
  unnest(ARRAY[t.typoutput, t.typsend]) s(fn) WHERE t.oid = ANY($4)) \
SELECT (SELECT count(*) FROM f LEFT JOIN pg_catalog.pg_proc p ON p.oid = f.fn \
  WHERE f.fn <> 0 AND (p.oid IS NULL OR NOT (p.provolatile = 'i' \
   OR (f.kind <> 'f' AND p.pronamespace = 'pg_catalog'::regnamespace \
       AND p.prolang = 12 AND p.provolatile = 's')))) \
 + (SELECT count(*) FROM unnest($2::oid[]) o \
  WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_operator x WHERE x.oid = o)) \
 + (SELECT count(*) FROM pg_catalog.pg_type t WHERE t.oid = ANY($4) AND t.typtype = 'd' \
  AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid))";

/// Analyzes `subject` on `client` inside a transaction that is always rolled back.
pub async fn analyze(
    client: &mut Client,
    subject: &Subject,
) -> Result<Verdict, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL statement_timeout = '5s'; SET LOCAL lock_timeout = '1s'")
        .await?;
    tx.query(SESSION, &[&subject.role, &subject.search_path])
        .await?;
    let tree = match probe_tree(&tx, subject).await {
        Ok(tree) => tree,
        // The session would get an error too (no such table, permission): not cached.
        Err(e) if e.as_db_error().is_some() => return Ok(Err(Refusal::AnalysisFailed)),
        Err(e) => return Err(e),
    };
    let verdict = prove(&tx, &tree).await?;
    tx.rollback().await?;
    Ok(verdict)
}

/// The stored tree of the statement compiled as a temporary function body.
async fn probe_tree(
    client: &tokio_postgres::Transaction<'_>,
    subject: &Subject,
) -> Result<String, tokio_postgres::Error> {
    let types: Vec<Type> = subject
        .param_types
        .iter()
        .map(|oid| Type::from_oid(*oid).unwrap_or(Type::UNKNOWN))
        .collect();
    let statement = client.prepare_typed(&subject.text, &types).await?;
    let oids: Vec<u32> = statement.params().iter().map(|t| t.oid()).collect();
    let names: Vec<String> = match oids.is_empty() {
        true => Vec::new(),
        false => {
            let sql = "SELECT pg_catalog.format_type(o, NULL) \
                       FROM unnest($1::oid[]) WITH ORDINALITY u(o, n) ORDER BY n";
            let rows = client.query(sql, &[&oids]).await?;
            rows.iter().map(|row| row.get(0)).collect()
        }
    };
    // One SELECT (the syntax check ran first); the newline ends a trailing comment.
    let body = subject.text.trim_end().trim_end_matches(';');
    let create = format!(
        "CREATE FUNCTION pg_temp.pgsidecar_cache_probe({}) RETURNS void LANGUAGE sql \
         BEGIN ATOMIC\n{body}\n; END",
        names.join(", ")
    );
    client.batch_execute(&create).await?;
    let row = client.query_one(BODY, &[]).await?;
    Ok(row.get::<_, Option<String>>(0).unwrap_or_default())
}

/// What the relation walk collected.
#[derive(Default)]
struct Walk {
    refs: NodeRefs,
    seen: BTreeSet<u32>,
    tables: BTreeSet<u32>,
    names: Vec<String>,
    named: Vec<(String, u32)>,
}

async fn prove(
    client: &tokio_postgres::Transaction<'_>,
    tree: &str,
) -> Result<Verdict, tokio_postgres::Error> {
    let mut walk = Walk::default();
    walk.refs.scan(tree);
    for _ in 0..MAX_ROUNDS {
        if walk.refs.unknown.is_some() {
            return Ok(Err(Refusal::Unverifiable));
        }
        let next: Vec<u32> = walk
            .refs
            .relations
            .difference(&walk.seen)
            .copied()
            .collect();
        if next.is_empty() {
            return verdict(client, walk).await;
        }
        walk.seen.extend(next.iter().copied());
        let rows = client.query(RELATIONS, &[&next]).await?;
        if rows.len() != next.len() {
            // A relation the catalog no longer has (dropped meanwhile).
            return Ok(Err(Refusal::Unverifiable));
        }
        for row in &rows {
            if let Err(refusal) = walk.relation(row) {
                return Ok(Err(refusal));
            }
        }
    }
    Ok(Err(Refusal::Unverifiable))
}

impl Walk {
    /// Checks one relation row and queues what it leads to.
    fn relation(&mut self, row: &tokio_postgres::Row) -> Result<(), Refusal> {
        let oid: u32 = row.get(0);
        let (kind, persistence): (String, String) = (row.get(1), row.get(2));
        let (rls, schema, name): (bool, String, String) = (row.get(3), row.get(4), row.get(5));
        let (covered, view): (bool, Option<String>) = (row.get(6), row.get(7));
        let (children, parents): (Vec<u32>, Vec<u32>) = (row.get(8), row.get(9));
        if schema == "pg_catalog"
            || schema == "information_schema"
            || schema.starts_with("pg_toast")
        {
            return Err(Refusal::SystemCatalog);
        }
        match (persistence.as_str(), kind.as_str()) {
            ("t", _) => return Err(Refusal::Temporary),
            (_, "v") => {
                self.refs
                    .scan(view.as_deref().unwrap_or("{UNREADABLE_VIEW}"));
                return Ok(());
            }
            ("u", _) => return Err(Refusal::Unlogged),
            (_, "m") => return Err(Refusal::MaterializedView),
            (_, "f") => return Err(Refusal::Foreign),
            (_, "S") => return Err(Refusal::Sequence),
            ("p", "r" | "p") => {}
            _ => return Err(Refusal::Unverifiable),
        }
        if schema.starts_with("pg_temp") {
            return Err(Refusal::Temporary);
        }
        if rls {
            return Err(Refusal::RowSecurity);
        }
        if !covered {
            return Err(Refusal::NotCovered);
        }
        self.tables.insert(oid);
        self.names.push(format!("{schema}.{name}"));
        self.named.push((name, oid));
        // Children are read with their parent; parents are only dependencies, but
        // going through the same walk checks them the same way (a parent of a
        // covered table is a covered table).
        self.refs.relations.extend(children);
        self.refs.relations.extend(parents);
        Ok(())
    }
}

async fn verdict(
    client: &tokio_postgres::Transaction<'_>,
    walk: Walk,
) -> Result<Verdict, tokio_postgres::Error> {
    let list = |set: &BTreeSet<u32>| set.iter().copied().collect::<Vec<u32>>();
    let refs = &walk.refs;
    let (functions, operators) = (list(&refs.functions), list(&refs.operators));
    let (aggregates, types) = (list(&refs.aggregates), list(&refs.types));
    let row = client
        .query_one(VERDICT, &[&functions, &operators, &aggregates, &types])
        .await?;
    if row.get::<_, i64>(0) > 0 {
        return Ok(Err(Refusal::VolatileFunction));
    }
    let mut names = walk.names;
    names.sort();
    names.dedup();
    Ok(Ok(Analysis {
        tables: walk.tables.into_iter().collect::<Vec<u32>>().into(),
        names,
        named: walk.named,
    }))
}
