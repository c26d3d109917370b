//! Slow statements, alerts and snapshots: batched inserts, keyset pages, retention.

use std::collections::HashSet;

use pgsidecar::store::{Alert, Level, Snapshot, Store};

use super::{at_ms, count, slow_event, TestDb};

fn alert(i: u64) -> Alert {
    Alert {
        at: at_ms(1_700_000_000_000 + i),
        database: "app".into(),
        username: "bob".into(),
        fingerprint: "fp".into(),
        query: "SELECT pg_sleep($1)".into(),
        level: Level::Critical,
        consecutive: i as i32,
        duration_ms: 2500.0,
    }
}

fn snapshot(fingerprint: &str, at_ms_since_epoch: u64) -> Snapshot {
    Snapshot {
        at: at_ms(at_ms_since_epoch),
        database: "app".into(),
        username: "alice".into(),
        fingerprint: fingerprint.into(),
        query: "SELECT $1".into(),
        command: "SELECT".into(),
        calls: 10,
        errors: 1,
        rows: 10,
        total_ms: 12.5,
        p50_ms: 1.0,
        p95_ms: 2.0,
        p99_ms: 3.0,
        max_ms: 4.0,
    }
}

#[tokio::test]
async fn slow_events_page_newest_first() {
    let db = TestDb::create().await;
    let store = db.migrated("side-1").await;
    let events: Vec<_> = (0..25).map(slow_event).collect();
    assert_eq!(store.insert_slow_events(&events).await.unwrap(), 25);
    assert_eq!(store.insert_slow_events(&[]).await.unwrap(), 0);

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_slow(cursor, 10).await.unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items);
        cursor = page.next_before_id;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(sizes, vec![10, 10, 5]);
    let ids: Vec<i64> = seen.iter().map(|r| r.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first: {ids:?}"
    );
    // The batch kept its order, every field survived, and the sidecar was stamped.
    let stored: Vec<_> = seen.iter().rev().map(|r| r.row.clone()).collect();
    assert_eq!(stored, events);
    assert!(seen.iter().all(|r| r.sidecar == "side-1"));
    let json = serde_json::to_value(&seen[0]).unwrap();
    assert_eq!(json["at"], "2023-11-14T22:13:44.000Z");
    assert_eq!(json["level"], "warning");
}

#[tokio::test]
async fn alerts_page_and_round_trip() {
    let db = TestDb::create().await;
    let store = db.migrated("a").await;
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(store.insert_alert(&alert(i)).await.unwrap());
    }
    let first = store.list_alerts(None, 3).await.unwrap();
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.items[0].id, ids[4]);
    assert_eq!(first.items[0].row, alert(5));
    let rest = store.list_alerts(first.next_before_id, 3).await.unwrap();
    assert_eq!(
        rest.items.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![ids[1], ids[0]]
    );
    assert_eq!(rest.next_before_id, None);
}

#[tokio::test]
async fn snapshots_are_batched_and_truncated_to_the_minute() {
    let db = TestDb::create().await;
    let store = db.migrated("a").await;
    // 2023-11-14T22:13:20.500Z and a minute later.
    let batch = [
        snapshot("fp1", 1_700_000_000_500),
        snapshot("fp2", 1_700_000_000_500),
        snapshot("fp1", 1_700_000_060_500),
    ];
    assert_eq!(store.insert_snapshots(&batch).await.unwrap(), 3);
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT to_char(at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS'), sidecar, calls, p99_ms
             FROM pgsidecar.stats_snapshots ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, i64, f64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(got[0], ("22:13:00.000".into(), "a".into(), 10, 3.0));
    assert_eq!(got[2].0, "22:14:00.000");
    assert_eq!(got.len(), 3);
}

/// Backdates every row of `table` whose id is even by `days` days.
async fn backdate(db: &TestDb, table: &str, column: &str, days: i32) {
    let sql = format!(
        "UPDATE pgsidecar.{table} SET {column} = now() - make_interval(days => $1) WHERE id % 2 = 0"
    );
    db.client().await.execute(&sql, &[&days]).await.unwrap();
}

async fn seed(store: &Store) {
    let now = std::time::SystemTime::now();
    let events: Vec<_> = (0..4)
        .map(|i| pgsidecar::store::SlowEvent {
            at: now,
            ..slow_event(i)
        })
        .collect();
    store.insert_slow_events(&events).await.unwrap();
    for i in 0..4 {
        store
            .insert_alert(&Alert {
                at: now,
                ..alert(i)
            })
            .await
            .unwrap();
    }
    // One row per shape: a (minute, sidecar, database, user, fingerprint) is unique.
    let snaps: Vec<_> = (0..4)
        .map(|i| Snapshot {
            at: now,
            ..snapshot(&format!("fp{i}"), 0)
        })
        .collect();
    store.insert_snapshots(&snaps).await.unwrap();
    for hash in ["h1", "h2", "h1", "h2"] {
        store
            .insert_plan(&super::plans::plan("fp", hash))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn retention_deletes_only_old_rows() {
    let db = TestDb::create().await;
    let store = db.migrated("a").await;
    seed(&store).await;
    for (table, column) in [
        ("slow_events", "at"),
        ("alerts", "at"),
        ("stats_snapshots", "at"),
        ("plans", "captured_at"),
        ("plan_changes", "at"),
    ] {
        backdate(&db, table, column, 31).await;
    }
    // Jobs: done 8 days ago (goes), failed 8 days ago (goes), done 6 days ago (stays),
    // pending since long ago (stays: not finished).
    let mut jobs = Vec::new();
    for _ in 0..4 {
        jobs.push(
            store
                .enqueue("explain", serde_json::json!({}), None)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let client = db.client().await;
    let set =
        "UPDATE pgsidecar.jobs SET status = $2, finished_at = now() - make_interval(days => $3)
               WHERE id = $1";
    client.execute(set, &[&jobs[0], &"done", &8]).await.unwrap();
    client
        .execute(set, &[&jobs[1], &"failed", &8])
        .await
        .unwrap();
    client.execute(set, &[&jobs[2], &"done", &6]).await.unwrap();
    client
        .execute(
            "UPDATE pgsidecar.jobs SET created_at = now() - interval '60 days' WHERE id = $1",
            &[&jobs[3]],
        )
        .await
        .unwrap();

    let report = store.retention(30).await.unwrap();
    assert_eq!(
        (
            report.slow_events,
            report.alerts,
            report.stats_snapshots,
            report.plans
        ),
        (2, 2, 2, 2)
    );
    assert_eq!(report.plan_changes, 1, "3 changes, ids 1..=3, one even");
    assert_eq!(report.jobs, 2);

    let left: HashSet<i64> = client
        .query("SELECT id FROM pgsidecar.jobs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, HashSet::from([jobs[2], jobs[3]]));
    let old = count(
        &client,
        "SELECT count(*) FROM pgsidecar.slow_events WHERE at < now() - interval '30 days'",
    )
    .await;
    assert_eq!(old, 0);
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgsidecar.slow_events").await,
        2
    );
    // A second pass finds nothing more.
    assert_eq!(store.retention(30).await.unwrap().slow_events, 0);
}
