//! The invalidation channel end to end, driving the cache's lookup/fill API the way the
//! request pipeline does: writes from a client that bypasses the proxy, DDL, the fill
//! race forced with a server-side delay, and listener loss (fail closed).

use std::time::Duration;

use bytes::Bytes;
use pgsidecar::cache::config::CacheMode;
use pgsidecar::cache::{Cache, Outcome, Request};

use super::{eventually, CacheDb};

const SETUP: &str = "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')";

fn request<'a>(db: &'a str, text: &'a str) -> Request<'a> {
    Request {
        database: db,
        session_user: "postgres",
        current_role: "postgres",
        search_path: "public",
        settings: [0; 32],
        text,
        fingerprint: 7,
        param_types: &[],
        param_formats: &[],
        params: &[],
        result_formats: &[],
    }
}

/// Looks up until the analysis is done and the answer is a miss or a hit.
async fn settle(cache: &Cache, req: &Request<'_>) -> Outcome {
    let start = tokio::time::Instant::now();
    loop {
        match cache.lookup(req) {
            Outcome::Skip if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            other => return other,
        }
    }
}

fn is_hit(o: &Outcome) -> bool {
    matches!(o, Outcome::Hit(_))
}

async fn fill(cache: &Cache, req: &Request<'_>) {
    match settle(cache, req).await {
        Outcome::Miss(ticket) => cache.fill(
            ticket,
            Some(Bytes::from_static(b"rows")),
            Duration::from_millis(1),
        ),
        _ => panic!("expected a miss"),
    }
    assert!(is_hit(&cache.lookup(req)));
}

#[tokio::test]
async fn writes_from_anywhere_and_ddl_invalidate() {
    let db = CacheDb::create(SETUP).await;
    db.install().await;
    let proxy = db.proxy(CacheMode::Auto, None).await;
    let cache = proxy.app.shared().cache.clone();
    let req = request(&db.name, "SELECT v FROM t WHERE id = 1");
    fill(&cache, &req).await;
    let direct = db.client().await;
    let started = std::time::Instant::now();
    direct.batch_execute("UPDATE t SET v = 'b'").await.unwrap();
    assert!(eventually(Duration::from_secs(2), || !is_hit(&cache.lookup(&req))).await);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "invalidation took {took:?}");
    // A write to another table leaves the entry alone.
    fill(&cache, &req).await;
    direct
        .batch_execute("CREATE TABLE other (x int); INSERT INTO other VALUES (1)")
        .await
        .unwrap();
    // (CREATE TABLE is DDL: it flushes the database; fill again and write only `other`.)
    assert!(eventually(Duration::from_secs(2), || !is_hit(&cache.lookup(&req))).await);
    fill(&cache, &req).await;
    direct
        .batch_execute("INSERT INTO other VALUES (2)")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(is_hit(&cache.lookup(&req)), "a write to another table");
    // TRUNCATE invalidates.
    direct.batch_execute("TRUNCATE t").await.unwrap();
    assert!(eventually(Duration::from_secs(2), || !is_hit(&cache.lookup(&req))).await);
    let (counts, total) = cache.stats.lag_counts();
    assert!(total > 0, "{counts:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn the_fill_race_is_lost_by_a_result_older_than_a_commit() {
    let db = CacheDb::create(SETUP).await;
    db.install().await;
    let proxy = db.proxy(CacheMode::Auto, None).await;
    let cache = proxy.app.shared().cache.clone();
    let text = "SELECT v FROM t WHERE id = 1";
    let req = request(&db.name, text);
    let Outcome::Miss(ticket) = settle(&cache, &req).await else {
        panic!("miss")
    };
    // The read starts (its snapshot is taken) and is held at the server by a delay;
    // meanwhile a direct write commits and its notification is applied.
    let reader = db.client().await;
    let read = tokio::spawn(async move {
        let row = reader
            .query_one("SELECT v, pg_sleep(0.5)::text FROM t WHERE id = 1", &[])
            .await
            .unwrap();
        row.get::<_, String>(0)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    db.client()
        .await
        .batch_execute("UPDATE t SET v = 'new'")
        .await
        .unwrap();
    let old = read.await.unwrap();
    assert_eq!(old, "a", "the read's snapshot predates the write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    cache.fill(ticket, Some(Bytes::from(old)), Duration::from_millis(500));
    assert!(
        !is_hit(&cache.lookup(&req)),
        "the old result must not be stored"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn losing_the_listener_flushes_and_bypasses_until_it_is_back() {
    let db = CacheDb::create(SETUP).await;
    db.install().await;
    let proxy = db.proxy(CacheMode::Auto, None).await;
    let cache = proxy.app.shared().cache.clone();
    let req = request(&db.name, "SELECT v FROM t WHERE id = 1");
    fill(&cache, &req).await;
    let killed: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'pgsidecar cache' AND query LIKE '%pg_notify%' \
             AND datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "the listener's connection");
    assert!(
        eventually(Duration::from_secs(2), || !cache.listeners.snapshot()
            [&db.name])
        .await,
        "the database stops listening"
    );
    assert!(
        matches!(cache.lookup(&req), Outcome::Skip),
        "bypass while not listening"
    );
    // Back: listening again, and the old entry is gone (writes may have been missed).
    assert!(
        eventually(Duration::from_secs(5), || cache.listeners.snapshot()
            [&db.name])
        .await
    );
    assert!(!is_hit(&settle(&cache, &req).await));
    proxy.stop().await;
}
