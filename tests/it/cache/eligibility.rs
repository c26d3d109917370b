//! The eligibility proof against the real server: one case per relation kind and
//! function rule of cache-correctness.md (items 2, 4, 7, 8, 13–16, 21), resolved with the
//! session's role and search_path.

use pgsidecar::cache::analyze::{analyze, Subject, Verdict};
use pgsidecar::cache::reason::Refusal;

use super::CacheDb;

const SETUP: &str = "\
CREATE TABLE t (id int PRIMARY KEY, v text, at timestamptz); \
CREATE TABLE u (id int); \
CREATE SCHEMA other; CREATE TABLE other.t (id int, w text); \
CREATE TABLE secret (id int, tenant text); ALTER TABLE secret ENABLE ROW LEVEL SECURITY; \
CREATE UNLOGGED TABLE ul (id int); \
CREATE MATERIALIZED VIEW mv AS SELECT * FROM u; \
CREATE SEQUENCE seq; \
CREATE VIEW v AS SELECT t.id, u.id AS uid FROM t JOIN u USING (id); \
CREATE VIEW vv AS SELECT id, random() AS r FROM t; \
CREATE TABLE p (id int, k int) PARTITION BY RANGE (id); \
CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100); \
CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200); \
CREATE FUNCTION imm(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1'; \
CREATE FUNCTION vol(int) RETURNS int LANGUAGE sql AS 'SELECT $1 + 1'; \
CREATE FUNCTION stab(int) RETURNS int LANGUAGE sql STABLE AS 'SELECT count(*)::int FROM u'; \
DO $r$ BEGIN CREATE ROLE cache_reader_role; \
 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $r$; GRANT SELECT ON ALL TABLES IN SCHEMA public TO cache_reader_role";

async fn verdict(db: &CacheDb, search_path: &str, text: &str) -> Verdict {
    verdict_as(db, "postgres", search_path, text, &[]).await
}

async fn verdict_as(
    db: &CacheDb,
    role: &str,
    search_path: &str,
    text: &str,
    param_types: &[u32],
) -> Verdict {
    let mut client = db.client().await;
    let subject = Subject {
        database: db.name.clone(),
        role: role.into(),
        search_path: search_path.into(),
        text: text.into(),
        param_types: param_types.to_vec(),
    };
    pgsidecar::cache::syntax::check(text)?;
    analyze(&mut client, &subject).await.expect("analysis runs")
}

async fn oid(db: &CacheDb, name: &str) -> u32 {
    db.client()
        .await
        .query_one(&format!("SELECT '{name}'::regclass::oid"), &[])
        .await
        .unwrap()
        .get(0)
}

fn refused(v: &Verdict) -> Refusal {
    v.as_ref()
        .err()
        .copied()
        .unwrap_or_else(|| panic!("expected a refusal, got {v:?}"))
}

#[tokio::test]
async fn relations_are_resolved_with_the_sessions_search_path() {
    let db = CacheDb::create(SETUP).await;
    db.install().await;
    let public = verdict(&db, "public", "SELECT * FROM t WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(&*public.tables, &[oid(&db, "public.t").await]);
    assert_eq!(public.names, ["public.t"]);
    let other = verdict(&db, "other, public", "SELECT * FROM t WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(&*other.tables, &[oid(&db, "other.t").await]);
    // "$user" resolves with the session's role (no schema of that name: public).
    let as_role = verdict_as(
        &db,
        "cache_reader_role",
        "\"$user\", public",
        "SELECT v FROM t",
        &[],
    )
    .await;
    assert_eq!(&*as_role.unwrap().tables, &[oid(&db, "public.t").await]);
    // A missing table or a permission error is the session's error, not a cache entry.
    let denied = verdict_as(&db, "cache_reader_role", "other", "SELECT * FROM t", &[]).await;
    assert_eq!(refused(&denied), Refusal::AnalysisFailed);
    assert_eq!(
        refused(&verdict(&db, "public", "SELECT * FROM nope").await),
        Refusal::AnalysisFailed
    );
    // Typed parameters.
    let typed = verdict_as(
        &db,
        "postgres",
        "public",
        "SELECT v FROM t WHERE id = $1",
        &[23],
    )
    .await;
    assert!(typed.is_ok(), "{typed:?}");
}

#[tokio::test]
async fn relation_kinds_that_escape_invalidation_are_refused() {
    let db = CacheDb::create(SETUP).await;
    db.install().await;
    for (sql, reason) in [
        ("SELECT * FROM secret", Refusal::RowSecurity),
        ("SELECT * FROM ul", Refusal::Unlogged),
        ("SELECT * FROM mv", Refusal::MaterializedView),
        ("SELECT last_value FROM seq", Refusal::Sequence),
        ("SELECT relname FROM pg_class", Refusal::SystemCatalog),
        (
            "SELECT * FROM information_schema.tables",
            Refusal::SystemCatalog,
        ),
        ("SELECT * FROM t FOR UPDATE", Refusal::LockingClause),
        (
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            Refusal::WriteCte,
        ),
        ("SELECT * INTO x FROM t", Refusal::SelectInto),
        (
            "SELECT * FROM t TABLESAMPLE system (5)",
            Refusal::UnseededTablesample,
        ),
    ] {
        assert_eq!(refused(&verdict(&db, "public", sql).await), reason, "{sql}");
    }
    // A table created after the install is covered by the event trigger; one whose
    // trigger was dropped is not.
    let c = db.client().await;
    c.batch_execute("CREATE TABLE later (id int); DROP TRIGGER pgsidecar_cache_notify ON u")
        .await
        .unwrap();
    assert!(verdict(&db, "public", "SELECT * FROM later").await.is_ok());
    assert_eq!(
        refused(&verdict(&db, "public", "SELECT * FROM u").await),
        Refusal::NotCovered
    );
}

#[tokio::test]
async fn temporary_tables_shadowing_a_table_are_never_resolved_to_it() {
    let db = CacheDb::create(SETUP).await;
    db.install().await;
    // The side connection cannot see another session's temp table: a session whose
    // search_path names pg_temp first resolves nothing there, and a temp table of the
    // side connection itself is refused.
    let mut c = db.client().await;
    c.batch_execute("CREATE TEMP TABLE t (x int)")
        .await
        .unwrap();
    let subject = Subject {
        database: db.name.clone(),
        role: "postgres".into(),
        search_path: "pg_temp, public".into(),
        text: "SELECT * FROM t".into(),
        param_types: vec![],
    };
    let v = analyze(&mut c, &subject).await.unwrap();
    assert_eq!(refused(&v), Refusal::Temporary);
}

#[tokio::test]
async fn views_expand_to_their_tables_and_partitions_to_their_ancestry() {
    let db = CacheDb::create(SETUP).await;
    db.install().await;
    let (t, u) = (oid(&db, "t").await, oid(&db, "u").await);
    let mut expected = vec![t, u];
    expected.sort();
    let view = verdict(&db, "public", "SELECT * FROM v").await.unwrap();
    assert_eq!(&*view.tables, expected.as_slice());
    assert_eq!(
        refused(&verdict(&db, "public", "SELECT * FROM vv").await),
        Refusal::VolatileFunction
    );
    let (p, p1, p2) = (
        oid(&db, "p").await,
        oid(&db, "p1").await,
        oid(&db, "p2").await,
    );
    let mut all = vec![p, p1, p2];
    all.sort();
    // Reading the parent reads every partition; reading a partition depends on its
    // parent too (a write through the parent fires only the parent's trigger).
    assert_eq!(
        &*verdict(&db, "public", "SELECT * FROM p")
            .await
            .unwrap()
            .tables,
        all.as_slice()
    );
    let child = verdict(&db, "public", "SELECT * FROM p1").await.unwrap();
    assert!(
        child.tables.contains(&p1) && child.tables.contains(&p),
        "{child:?}"
    );
}

#[tokio::test]
async fn only_immutable_functions_may_run() {
    let db = CacheDb::create(SETUP).await;
    db.install().await;
    for sql in [
        "SELECT lower(v), count(*) FROM t GROUP BY 1",
        "SELECT imm(id) FROM t",
        "SELECT * FROM t WHERE at < '2024-01-01'::timestamptz",
        "SELECT v || 'x' FROM t",
        "SELECT x FROM generate_series(1, 3) x",
        "SELECT to_timestamp(0::float8)",
    ] {
        let v = verdict(&db, "public", sql).await;
        assert!(v.is_ok(), "{sql}: {v:?}");
    }
    for sql in [
        "SELECT random()",
        "SELECT now()",
        "SELECT vol(id) FROM t",
        "SELECT stab(1)",
        "SELECT nextval('seq')",
        "SELECT currval('seq')",
        "SELECT current_setting('work_mem')",
        "SELECT pg_advisory_lock(1)",
        "SELECT set_config('x.y', '1', false)",
        "SELECT * FROM t WHERE at < now() - interval '1 day'",
        "SELECT CURRENT_USER",
        "SELECT (SELECT random()) FROM t",
        // `int || text` is a STABLE SQL function (anytextcat): refused, fail closed.
        "SELECT id || 'x' FROM t",
    ] {
        assert_eq!(
            refused(&verdict(&db, "public", sql).await),
            Refusal::VolatileFunction,
            "{sql}"
        );
    }
    // A function that turns volatile is refused once the verdicts are recomputed (DDL
    // clears them; here the analysis simply runs again).
    db.client()
        .await
        .batch_execute("ALTER FUNCTION imm(int) VOLATILE")
        .await
        .unwrap();
    assert_eq!(
        refused(&verdict(&db, "public", "SELECT imm(id) FROM t").await),
        Refusal::VolatileFunction
    );
}
