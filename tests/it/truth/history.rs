//! The statistics history is labelled with the wall-clock minute its traffic ran in,
//! whatever second the proxy started at, and a flush written twice is stored once.
//!
//! As the check: the proxy starts at second :50 of a minute, traffic runs at
//! once (minute W) and again just after W+1 begins. With minutes counted from the
//! proxy's start (the old behaviour) both bursts fell into one row labelled W; here W's
//! row holds exactly the first burst. `stats::clock`'s unit tests pin the same case
//! with an injected wall-clock start.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgsidecar::store::{Snapshot, Store};

use crate::common::http::{one, Http};
use crate::common::Proxy;
use crate::slow::eventually;
use crate::store::TestDb;

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// Sleeps until `second` seconds into the next wall-clock minute.
async fn next_minute_at(second: u64) {
    let now = unix_now();
    let target = Duration::from_secs((now.as_secs() / 60 + 1) * 60 + second);
    tokio::time::sleep(target - now).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_carry_the_wall_clock_minute_of_their_traffic_once() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let second = unix_now().as_secs() % 60;
    if second != 50 {
        let wait = (50 + 60 - second) % 60;
        let now = unix_now();
        let target = Duration::from_secs(now.as_secs() + wait);
        tokio::time::sleep(target - now).await;
    }
    let started_at = unix_now().as_secs();
    let proxy = Proxy::with(|c| {
        c.store = true;
        c.store_url = Some(url);
        c.stats_flush_interval = Duration::from_secs(1);
    })
    .await;
    let http = Http::new(&proxy);
    let tag = crate::common::unique("truth_history");
    let sql = format!("SELECT 1 AS {tag}");
    let client = proxy.client().await;
    assert_eq!(started_at % 60, 50, "the proxy started at second :50");
    let minute = started_at / 60;
    for _ in 0..3 {
        client.simple_query(&sql).await.unwrap();
    }
    assert_eq!(
        unix_now().as_secs() / 60,
        minute,
        "the first burst stayed in its minute"
    );
    // The store connects in the background; the completed minute waits in memory.
    eventually("the store connected", 20, || async {
        one(&http.metrics().await, "pgsidecar_store_up", &[]) == 1.0
    })
    .await;
    next_minute_at(1).await;
    for _ in 0..5 {
        client.simple_query(&sql).await.unwrap();
    }
    let store = db.client().await;
    let rows_sql =
        "SELECT extract(epoch FROM at)::int8, calls, sidecar FROM pgsidecar.stats_snapshots
                    WHERE query LIKE '%' || $1 || '%' ORDER BY at";
    eventually("the first minute's row", 30, || async {
        !store.query(rows_sql, &[&tag]).await.unwrap().is_empty()
    })
    .await;
    let rows = store.query(rows_sql, &[&tag]).await.unwrap();
    let first: (i64, i64) = (rows[0].get(0), rows[0].get(1));
    assert_eq!(
        first,
        ((minute * 60) as i64, 3),
        "the minute of the first burst, and only it"
    );

    // The API shows the same row over a window.
    let (status, page) = http.json("/api/history?window=15m&limit=100").await;
    assert_eq!(status, 200, "{page}");
    let listed: Vec<_> = (page["data"].as_array().unwrap().iter())
        .filter(|r| r["query"].as_str().unwrap_or_default().contains(&tag))
        .collect();
    assert!(listed.iter().any(|r| r["calls"] == 3), "{page}");
    http.rejects("/api/history?window=forever", "invalid window")
        .await;

    // The same minute flushed again (a retried job) is stored once.
    let sidecar: String = rows[0].get(2);
    let again = Store::connect(&db.url, &sidecar).await.unwrap();
    let snapshot = Snapshot {
        at: UNIX_EPOCH + Duration::from_secs(minute * 60),
        database: "postgres".into(),
        username: "postgres".into(),
        fingerprint: listed[0]["fingerprint"].as_str().unwrap().into(),
        query: sql.clone(),
        command: "SELECT".into(),
        calls: 3,
        errors: 0,
        rows: 3,
        total_ms: 1.0,
        p50_ms: 0.1,
        p95_ms: 0.1,
        p99_ms: 0.1,
        max_ms: 0.1,
    };
    assert_eq!(again.insert_snapshots(&[snapshot]).await.unwrap(), 0);
    let rows = store.query(rows_sql, &[&tag]).await.unwrap();
    let at_first: Vec<i64> = rows
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .filter(|at| *at == (minute * 60) as i64)
        .collect();
    assert_eq!(at_first.len(), 1, "one row per minute and shape");
    proxy.stop().await;
}
