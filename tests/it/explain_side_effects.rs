//! EXPLAIN ANALYZE is default-deny: a volatile function reached any way the planner can
//! reach it (a call, an operator, attribute notation, a cast, a domain check, an
//! aggregate, a view, a default, a trigger, an index expression) keeps the capture to a
//! plain EXPLAIN. Each side effect is written through dblink, which neither the capture's
//! read-only transaction nor its rollback can stop, and must happen exactly once: when
//! the client ran the statement, never again when the proxy explained it.

use pgsidecar::explain::{capture, CapturedPlan, ExplainLimits, ExplainRequest};
use tokio::sync::OnceCell;
use tokio_postgres::Client;

use crate::common::{database_url, direct, init_logging, unique};

/// `CREATE EXTENSION dblink` once per test binary (tests run in parallel, and a
/// concurrent CREATE EXTENSION fails on the catalog's unique index).
async fn dblink(client: &Client) {
    static READY: OnceCell<()> = OnceCell::const_new();
    READY
        .get_or_init(|| async {
            for _ in 0..5 {
                if client
                    .batch_execute("CREATE EXTENSION IF NOT EXISTS dblink")
                    .await
                    .is_ok()
                {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            panic!("cannot create extension dblink (postgresql-contrib)");
        })
        .await;
}

/// A log table and a volatile function `{name}_hit()` that adds a row to it through
/// dblink (a separate connection, so the write commits whatever the caller does).
async fn side_effect(client: &Client, prefix: &str) -> (String, String) {
    init_logging();
    dblink(client).await;
    let name = unique(prefix);
    let conn = database_url().replace('\'', "''");
    client
        .batch_execute(&format!(
            "CREATE TABLE {name}_log (at timestamptz DEFAULT now());
             CREATE FUNCTION {name}_hit() RETURNS boolean LANGUAGE sql VOLATILE
             SECURITY DEFINER AS $$
               SELECT dblink_exec('{conn}', 'INSERT INTO {name}_log DEFAULT VALUES') IS NOT NULL
             $$;
             CREATE TABLE {name} (id int PRIMARY KEY, v int);
             INSERT INTO {name} VALUES (1, 1);"
        ))
        .await
        .unwrap();
    (name.clone(), format!("{name}_log"))
}

async fn hits(client: &Client, log: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {log}");
    client.query_one(&sql, &[]).await.unwrap().get(0)
}

/// Runs `sql` once as the client would, then captures its plan: the side effect must
/// have happened exactly once, and the plan must not be analyzed.
async fn once(client: &Client, log: &str, sql: &str) -> CapturedPlan {
    once_as(client, log, sql, None).await
}

/// `once` as the client's `role`.
async fn once_as(client: &Client, log: &str, sql: &str, role: Option<&str>) -> CapturedPlan {
    let run = match role {
        Some(role) => format!("SET ROLE {role}; {sql}; RESET ROLE"),
        None => sql.to_owned(),
    };
    client.batch_execute(&run).await.unwrap();
    assert_eq!(hits(client, log).await, 1, "the client's run: {sql}");
    let req = ExplainRequest {
        sql: sql.to_owned(),
        role: role.map(str::to_owned),
        ..ExplainRequest::default()
    };
    let plan = capture(client, &req, &ExplainLimits::default())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(hits(client, log).await, 1, "EXPLAIN ran it again: {sql}");
    assert!(!plan.analyzed, "{sql}: analyzed");
    plan
}

fn reason(plan: &CapturedPlan) -> &str {
    plan.downgrade_reason.as_deref().unwrap_or_default()
}

#[tokio::test]
async fn a_direct_call_and_an_operator_run_once() {
    let client = direct().await;
    let (t, log) = side_effect(&client, "se_call").await;
    let plan = once(&client, &log, &format!("SELECT {t}_hit()")).await;
    assert!(
        reason(&plan).contains("volatile function"),
        "{}",
        reason(&plan)
    );

    // Operator names are per schema: each test makes its own schema.
    let (t, log) = side_effect(&client, "se_op").await;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {t}_eq(int, int) RETURNS boolean LANGUAGE sql VOLATILE
               AS $$ SELECT {t}_hit() AND $1 = $2 $$;
             CREATE SCHEMA {t}_s;
             CREATE OPERATOR {t}_s.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = {t}_eq)"
        ))
        .await
        .unwrap();
    let sql = format!("SELECT * FROM {t} WHERE v OPERATOR({t}_s.===) 1");
    let plan = once(&client, &log, &sql).await;
    assert!(
        reason(&plan).contains("volatile function"),
        "{}",
        reason(&plan)
    );
}

#[tokio::test]
async fn attribute_notation_a_cast_and_a_domain_check_run_once() {
    let client = direct().await;
    let (t, log) = side_effect(&client, "se_attr").await;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {t}_volfn({t}) RETURNS boolean LANGUAGE sql VOLATILE
               AS $$ SELECT {t}_hit() $$"
        ))
        .await
        .unwrap();
    // `s.volfn` reads like a column; the server resolves it to a call.
    let plan = once(&client, &log, &format!("SELECT s.{t}_volfn FROM {t} s")).await;
    assert!(
        reason(&plan).contains("volatile function"),
        "{}",
        reason(&plan)
    );

    let (t, log) = side_effect(&client, "se_cast").await;
    client
        .batch_execute(&format!(
            "CREATE TYPE {t}_tag AS (x int);
             CREATE FUNCTION {t}_to_tag(int) RETURNS {t}_tag LANGUAGE sql VOLATILE
               AS $$ SELECT ROW($1)::{t}_tag WHERE {t}_hit() $$;
             CREATE CAST (int AS {t}_tag) WITH FUNCTION {t}_to_tag(int)"
        ))
        .await
        .unwrap();
    let plan = once(&client, &log, &format!("SELECT v::{t}_tag FROM {t}")).await;
    assert!(
        reason(&plan).contains("volatile function"),
        "{}",
        reason(&plan)
    );

    let (t, log) = side_effect(&client, "se_domain").await;
    client
        .batch_execute(&format!(
            "CREATE DOMAIN {t}_d AS int CHECK ({t}_hit() AND VALUE > 0)"
        ))
        .await
        .unwrap();
    let plan = once(&client, &log, &format!("SELECT v::{t}_d FROM {t}")).await;
    assert!(
        reason(&plan).contains("volatile function"),
        "{}",
        reason(&plan)
    );
}

#[tokio::test]
async fn an_aggregate_a_view_and_a_policy_run_once() {
    let client = direct().await;
    let (t, log) = side_effect(&client, "se_agg").await;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {t}_step(int, int) RETURNS int LANGUAGE sql VOLATILE
               AS $$ SELECT $1 + $2 WHERE {t}_hit() $$;
             CREATE AGGREGATE {t}_sum(int) (SFUNC = {t}_step, STYPE = int, INITCOND = '0')"
        ))
        .await
        .unwrap();
    let plan = once(&client, &log, &format!("SELECT {t}_sum(v) FROM {t}")).await;
    assert!(reason(&plan).contains("aggregate"), "{}", reason(&plan));

    let (t, log) = side_effect(&client, "se_view").await;
    client
        .batch_execute(&format!(
            "CREATE VIEW {t}_v AS SELECT id FROM {t} WHERE {t}_hit();
             CREATE VIEW {t}_vv AS SELECT * FROM {t}_v"
        ))
        .await
        .unwrap();
    let plan = once(&client, &log, &format!("SELECT * FROM {t}_vv")).await;
    assert!(
        reason(&plan).contains("volatile function"),
        "{}",
        reason(&plan)
    );

    // Superusers bypass row security: the client is an ordinary role.
    let (t, log) = side_effect(&client, "se_policy").await;
    client
        .batch_execute(&format!(
            "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
             CREATE POLICY {t}_p ON {t} FOR SELECT USING ({t}_hit());
             CREATE ROLE {t}_r; GRANT SELECT ON {t} TO {t}_r"
        ))
        .await
        .unwrap();
    let role = format!("{t}_r");
    let sql = format!("SELECT * FROM {t}");
    let plan = once_as(&client, &log, &sql, Some(&role)).await;
    assert!(
        reason(&plan).contains("volatile function"),
        "{}",
        reason(&plan)
    );
    client
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn defaults_triggers_and_index_expressions_run_once() {
    let client = direct().await;
    let (t, log) = side_effect(&client, "se_default").await;
    client
        .batch_execute(&format!(
            "CREATE TABLE {t}_d (id int, ok boolean DEFAULT {t}_hit())"
        ))
        .await
        .unwrap();
    let plan = once(&client, &log, &format!("INSERT INTO {t}_d (id) VALUES (1)")).await;
    assert_eq!(reason(&plan), "not a SELECT");

    let (t, log) = side_effect(&client, "se_trigger").await;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {t}_trg() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN PERFORM {t}_hit(); RETURN NEW; END $$;
             CREATE TRIGGER {t}_t BEFORE UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION {t}_trg()"
        ))
        .await
        .unwrap();
    let plan = once(&client, &log, &format!("UPDATE {t} SET v = v + 1")).await;
    assert_eq!(reason(&plan), "not a SELECT");

    // An index expression must be IMMUTABLE; one that lies still runs only on writes.
    let (t, log) = side_effect(&client, "se_index").await;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {t}_key(int) RETURNS int LANGUAGE sql IMMUTABLE
               AS $$ SELECT $1 WHERE {t}_hit() $$;
             CREATE INDEX ON {t} ({t}_key(v))"
        ))
        .await
        .unwrap();
    client
        .batch_execute(&format!("TRUNCATE {t}_log"))
        .await
        .unwrap();
    let plan = once(&client, &log, &format!("INSERT INTO {t} VALUES (2, 2)")).await;
    assert_eq!(reason(&plan), "not a SELECT");
}

#[tokio::test]
async fn stable_and_immutable_functions_and_operators_are_analyzed() {
    let client = direct().await;
    let (t, _log) = side_effect(&client, "se_pure").await;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {t}_double(int) RETURNS int LANGUAGE sql IMMUTABLE
               AS $$ SELECT $1 * 2 $$;
             CREATE FUNCTION {t}_eq(int, int) RETURNS boolean LANGUAGE sql STABLE
               AS $$ SELECT $1 = $2 $$;
             CREATE SCHEMA {t}_s;
             CREATE OPERATOR {t}_s.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = {t}_eq);
             CREATE VIEW {t}_v AS SELECT id, {t}_double(v) AS d FROM {t}"
        ))
        .await
        .unwrap();
    let sql = format!(
        "SELECT s.id, {t}_double(s.v), now(), count(*) OVER () FROM {t} s JOIN {t}_v w          ON w.id = s.id WHERE s.v OPERATOR({t}_s.===) $1 ORDER BY s.v::text"
    );
    let req = ExplainRequest {
        sql,
        param_types: vec![23],
        params: vec![Some(bytes::Bytes::from_static(b"1"))],
        ..ExplainRequest::default()
    };
    let plan = capture(&client, &req, &ExplainLimits::default())
        .await
        .unwrap();
    assert!(plan.analyzed, "{:?}", plan.downgrade_reason);
}
