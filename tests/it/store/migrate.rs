//! Migrations: all at once, then idempotent; safe when several sidecars start together.

use pgsidecar::store::{self, MIGRATIONS};

use super::{count, TestDb};

fn all_versions() -> Vec<String> {
    MIGRATIONS.iter().map(|m| m.version.to_string()).collect()
}

#[tokio::test]
async fn applies_everything_once_then_nothing() {
    let db = TestDb::create().await;
    let store = db.store("a").await;
    assert_eq!(store.migrate().await.unwrap(), all_versions());
    assert_eq!(store.migrate().await.unwrap(), Vec::<String>::new());
    assert_eq!(store::migrate(&db.url).await.unwrap(), Vec::<String>::new());

    let client = db.client().await;
    let recorded: Vec<String> = client
        .query(
            "SELECT version FROM pgsidecar.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(recorded, all_versions());
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'pgsidecar' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected = [
        "advice_outcomes",
        "alerts",
        "explain_claims",
        "index_snapshots",
        "jobs",
        "plan_changes",
        "plans",
        "schema_migrations",
        "slow_events",
        "stats_snapshots",
    ];
    assert_eq!(tables, expected);
    // The advisory lock is released, not left on a pooled connection.
    let locks = count(
        &client,
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
         WHERE l.locktype = 'advisory' AND d.datname = current_database()",
    )
    .await;
    assert_eq!(locks, 0);
}

#[tokio::test]
async fn concurrent_migrations_apply_each_version_once() {
    let db = TestDb::create().await;
    let mut stores = Vec::new();
    for i in 0..4 {
        stores.push(db.store(&format!("sidecar{i}")).await);
    }
    let results = futures_util::future::join_all(stores.iter().map(|s| s.migrate())).await;
    let mut applied: Vec<String> = results
        .into_iter()
        .flat_map(|r| r.expect("every concurrent migrate succeeds"))
        .collect();
    applied.sort();
    assert_eq!(
        applied,
        all_versions(),
        "each version applied by exactly one caller"
    );
    let client = db.client().await;
    let recorded = count(&client, "SELECT count(*) FROM pgsidecar.schema_migrations").await;
    assert_eq!(recorded as usize, MIGRATIONS.len());
}

/// 0003 makes a statistics row unique per (minute, sidecar, shape): a history written
/// twice by an older version keeps its first copy, and the migration applies.
#[tokio::test]
async fn the_history_key_migration_keeps_one_copy_of_duplicates() {
    let db = TestDb::create().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE SCHEMA pgsidecar;
             CREATE TABLE pgsidecar.schema_migrations (
                 version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .unwrap();
    for m in &MIGRATIONS[..2] {
        client.batch_execute(m.sql).await.unwrap();
        client
            .execute(
                "INSERT INTO pgsidecar.schema_migrations (version) VALUES ($1)",
                &[&m.version],
            )
            .await
            .unwrap();
    }
    let dup = "INSERT INTO pgsidecar.stats_snapshots (at, sidecar, database, username,
        fingerprint, query, command, calls, errors, rows, total_ms, p50_ms, p95_ms, p99_ms, max_ms)
        VALUES ('2026-01-01 10:00Z', 's', 'db', 'u', 'fp', 'SELECT 1', 'SELECT', $1, 0, 0, 1, 1, 1, 1, 1)";
    for calls in [7i64, 7, 9] {
        client.execute(dup, &[&calls]).await.unwrap();
    }
    let applied = db.store("a").await.migrate().await.unwrap();
    assert_eq!(applied[0], "0003_observability", "{applied:?}");
    let kept = client
        .query("SELECT calls FROM pgsidecar.stats_snapshots", &[])
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].get::<_, i64>(0), 7, "the first copy");
    let again = client.execute(dup, &[&8i64]).await;
    assert!(again.is_err(), "the unique key holds");
}
