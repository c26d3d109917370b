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
        "alerts",
        "explain_claims",
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
