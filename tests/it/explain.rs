//! EXPLAIN capture against the real server: ANALYZE only where it cannot change anything,
//! the client's parameters as bound, the limits honoured, and a plan hash that follows
//! the plan's shape.

use std::time::{Duration, Instant};

use bytes::Bytes;
use pgsidecar::explain::{capture, CapturedPlan, ExplainError, ExplainLimits, ExplainRequest};
use tokio_postgres::Client;

use crate::common::{direct, init_logging, unique};

/// A fresh table `name (id int primary key, v int)` holding ids and values 1..=rows.
async fn table(client: &Client, prefix: &str, rows: i32) -> String {
    init_logging();
    let name = unique(prefix);
    client
        .batch_execute(&format!(
            "CREATE TABLE {name} (id int PRIMARY KEY, v int);
             INSERT INTO {name} SELECT g, g FROM generate_series(1, {rows}) g;
             ANALYZE {name};"
        ))
        .await
        .unwrap();
    name
}

async fn count(client: &Client, table: &str) -> i64 {
    let row = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap();
    row.get(0)
}

fn text_request(sql: String) -> ExplainRequest {
    ExplainRequest {
        sql,
        ..ExplainRequest::default()
    }
}

/// `sql` with one int4 parameter bound as text.
fn int_request(sql: String, value: i32) -> ExplainRequest {
    ExplainRequest {
        sql,
        param_types: vec![23],
        params: vec![Some(Bytes::from(value.to_string()))],
        param_formats: vec![],
        role: None,
    }
}

async fn run(client: &Client, req: &ExplainRequest) -> CapturedPlan {
    capture(client, req, &ExplainLimits::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", req.sql))
}

fn assert_plain(plan: &CapturedPlan, reason_part: &str) {
    assert!(!plan.analyzed, "{:?}", plan.plan);
    assert_eq!(plan.actual_ms, None);
    let reason = plan.downgrade_reason.as_deref().unwrap_or_default();
    assert!(reason.contains(reason_part), "reason {reason:?}");
}

#[tokio::test]
async fn select_with_text_parameter_is_analyzed_with_its_value() {
    let client = direct().await;
    let t = table(&client, "explain_text", 100).await;
    let plan = run(
        &client,
        &int_request(format!("SELECT * FROM {t} WHERE v = $1"), 42),
    )
    .await;
    assert!(plan.analyzed, "{:?}", plan.downgrade_reason);
    assert_eq!(plan.downgrade_reason, None);
    assert!(plan.actual_ms.is_some_and(|ms| ms >= 0.0));
    assert!(plan.total_cost > 0.0);
    assert_eq!(plan.plan_hash.len(), 16);
    let shown = plan.plan.to_string();
    assert!(shown.contains("= 42)"), "{shown}");
    assert!(shown.contains("Actual Rows"), "{shown}");

    // An unspecified type (OID 0) is inferred by the server, as it was for the client.
    let mut req = int_request(format!("SELECT * FROM {t} WHERE v = $1"), 7);
    req.param_types = vec![0];
    let plan = run(&client, &req).await;
    assert!(plan.analyzed);
    assert!(plan.plan.to_string().contains("= 7)"));
}

#[tokio::test]
async fn select_with_binary_parameter_is_analyzed_with_its_value() {
    let client = direct().await;
    let t = table(&client, "explain_binary", 100).await;
    let req = ExplainRequest {
        sql: format!("SELECT id FROM {t} WHERE v = $1 AND id > $2"),
        param_types: vec![23, 23],
        params: vec![
            Some(Bytes::copy_from_slice(&42i32.to_be_bytes())),
            Some(Bytes::copy_from_slice(&3i32.to_be_bytes())),
        ],
        param_formats: vec![1],
        role: None,
    };
    let plan = run(&client, &req).await;
    assert!(plan.analyzed, "{:?}", plan.downgrade_reason);
    assert!(plan.actual_ms.is_some());
    let shown = plan.plan.to_string();
    assert!(shown.contains("= 42)") && shown.contains("> 3)"), "{shown}");
}

#[tokio::test]
async fn delete_is_explained_without_running_it() {
    let client = direct().await;
    let t = table(&client, "explain_delete", 5).await;
    let plan = run(
        &client,
        &int_request(format!("DELETE FROM {t} WHERE id > $1"), 0),
    )
    .await;
    assert_plain(&plan, "not a SELECT");
    assert!(plan.plan.to_string().contains("\"Operation\":\"Delete\""));
    assert_eq!(count(&client, &t).await, 5);
}

#[tokio::test]
async fn update_is_explained_without_running_it() {
    let client = direct().await;
    let t = table(&client, "explain_update", 5).await;
    let req = int_request(format!("UPDATE {t} SET v = v + $1"), 100);
    let plan = run(&client, &req).await;
    assert_plain(&plan, "not a SELECT");
    let row = client
        .query_one(&format!("SELECT sum(v)::int FROM {t}"), &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 15);
}

#[tokio::test]
async fn volatile_user_function_downgrades_and_its_table_is_untouched() {
    let client = direct().await;
    let log = table(&client, "explain_fnlog", 0).await;
    let f = unique("explain_writer");
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {f}() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
             BEGIN INSERT INTO {log} VALUES (1, 1); RETURN 1; END $$"
        ))
        .await
        .unwrap();
    let plan = run(&client, &text_request(format!("SELECT {f}()"))).await;
    assert_plain(&plan, &format!("volatile function {f}"));
    assert_eq!(count(&client, &log).await, 0);

    let plan = run(&client, &text_request(format!("SELECT public.{f}() + 1"))).await;
    assert_plain(&plan, "volatile function");
    assert_eq!(count(&client, &log).await, 0);
}

#[tokio::test]
async fn random_and_unknown_functions_downgrade() {
    let client = direct().await;
    let plan = run(&client, &text_request("SELECT random() < 2".into())).await;
    assert_plain(&plan, "volatile function random");

    // The server rejects an unknown function while planning, but only after the lookup
    // has already refused to analyze it.
    let err = capture(
        &client,
        &text_request("SELECT no_such_function_anywhere()".into()),
        &ExplainLimits::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.sqlstate(), Some("42883"), "{err}");
    assert!(!err.connection_unusable());

    let plan = run(&client, &text_request("SELECT lower('A'), now()".into())).await;
    assert!(plan.analyzed, "{:?}", plan.downgrade_reason);
}

#[tokio::test]
async fn select_for_update_is_plain() {
    let client = direct().await;
    let t = table(&client, "explain_lock", 5).await;
    let plan = run(
        &client,
        &int_request(format!("SELECT * FROM {t} WHERE id = $1 FOR UPDATE"), 1),
    )
    .await;
    assert_plain(&plan, "locking clause");
    assert!(plan.plan.to_string().contains("LockRows"));
}

#[tokio::test]
async fn multiple_statements_are_refused_by_the_server() {
    let client = direct().await;
    let t = table(&client, "explain_multi", 5).await;
    let req = text_request(format!("SELECT 1; DELETE FROM {t}"));
    let err = capture(&client, &req, &ExplainLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("42601"), "{err}");
    assert_eq!(count(&client, &t).await, 5);
}

#[tokio::test]
async fn statement_timeout_is_honoured_and_the_connection_stays_usable() {
    let client = direct().await;
    // pg_sleep is volatile, so calling it directly is only planned, never executed...
    let plan = run(&client, &text_request("SELECT pg_sleep(5)".into())).await;
    assert_plain(&plan, "volatile function pg_sleep");
    // ...but a function that claims to be STABLE is run, and hits the limit.
    let f = unique("explain_slow");
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {f}() RETURNS int LANGUAGE plpgsql STABLE AS $$
             BEGIN PERFORM pg_sleep(5); RETURN 1; END $$"
        ))
        .await
        .unwrap();
    let limits = ExplainLimits {
        statement_timeout: Duration::from_millis(200),
        ..ExplainLimits::default()
    };
    let started = Instant::now();
    let err = capture(&client, &text_request(format!("SELECT {f}()")), &limits)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExplainError::Timeout {
                which: "statement_timeout",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!err.connection_unusable());

    // Rolled back: no transaction, no read-only mode, no leftover timeout.
    let settings = client
        .query_one(
            "SELECT current_setting('transaction_read_only'), \
             current_setting('statement_timeout'), now() = statement_timestamp()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(settings.get::<_, String>(0), "off");
    assert_ne!(settings.get::<_, String>(1), "200ms");
    let plan = run(&client, &text_request("SELECT 1".into())).await;
    assert!(plan.analyzed);
}

#[tokio::test]
async fn plan_hash_follows_the_plan_shape() {
    let client = direct().await;
    let t = table(&client, "explain_hash", 50_000).await;
    let sql = format!("SELECT * FROM {t} WHERE v = $1");
    let before = run(&client, &int_request(sql.clone(), 42)).await;
    assert!(
        before.plan.to_string().contains("Seq Scan"),
        "{}",
        before.plan
    );
    // Other values and other costs: the same plan.
    let again = run(&client, &int_request(sql.clone(), 4_242)).await;
    assert_eq!(before.plan_hash, again.plan_hash);
    assert_ne!(before.plan, again.plan);

    client
        .batch_execute(&format!("CREATE INDEX ON {t} (v); ANALYZE {t};"))
        .await
        .unwrap();
    let after = run(&client, &int_request(sql, 42)).await;
    assert!(after.plan.to_string().contains("Index"), "{}", after.plan);
    assert_ne!(before.plan_hash, after.plan_hash);
}

#[tokio::test]
async fn views_and_row_security_are_followed() {
    let client = direct().await;
    let log = table(&client, "explain_viewlog", 0).await;
    let f = unique("explain_hidden");
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {f}() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
             BEGIN INSERT INTO {log} VALUES (1, 1); RETURN 1; END $$;
             CREATE VIEW {f}_v AS SELECT {f}() AS x;"
        ))
        .await
        .unwrap();
    // The text calls no function, but the view does: only planned, never run.
    let limits = ExplainLimits::default();
    let plan = capture(
        &client,
        &text_request(format!("SELECT * FROM {f}_v")),
        &limits,
    )
    .await
    .unwrap();
    assert!(!plan.analyzed);
    let reason = plan.downgrade_reason.unwrap_or_default();
    assert!(
        reason.contains(&format!("volatile function {f}")),
        "{reason}"
    );
    assert_eq!(count(&client, &log).await, 0);
    // Row-level security policies may call functions too; a policy calling none is no
    // reason to downgrade (tests/it/explain_side_effects.rs has one that does).
    let secured = table(&client, "explain_rls", 3).await;
    client
        .batch_execute(&format!(
            "ALTER TABLE {secured} ENABLE ROW LEVEL SECURITY;
             CREATE POLICY {secured}_p ON {secured} USING (v > 0)"
        ))
        .await
        .unwrap();
    let sql = format!("SELECT * FROM {secured} WHERE v = 1");
    let plan = capture(&client, &text_request(sql), &limits).await.unwrap();
    assert!(plan.analyzed, "{:?}", plan.downgrade_reason);
    // A plain table and a CTE name are no reason to downgrade.
    let plain = table(&client, "explain_plain", 3).await;
    let sql = format!("WITH w AS (SELECT * FROM {plain}) SELECT * FROM w");
    let plan = capture(&client, &text_request(sql), &limits).await.unwrap();
    assert!(plan.analyzed, "{:?}", plan.downgrade_reason);
    // Advisory locks a function took do not outlive the capture.
    let locked = capture(
        &client,
        &text_request("SELECT pg_catalog.pg_advisory_lock(777001)".into()),
        &limits,
    )
    .await
    .unwrap();
    assert!(!locked.analyzed, "pg_advisory_lock is volatile");
}
