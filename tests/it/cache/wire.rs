//! The cache in the request pipeline, through the proxy with real clients (simple
//! protocol): hits answered without a server, read-your-writes through this sidecar,
//! writes from elsewhere, transactions, roles, settings, temporary tables shadowing a
//! table, volatile functions and locking clauses (cache-correctness.md items 1, 4, 5,
//! 7, 8, 10, 11, 13, 18).

use std::sync::atomic::Ordering;
use std::time::Duration;

use pgsidecar::cache::config::CacheMode;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::CacheDb;

const SETUP: &str = "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'); \
    DO $r$ BEGIN CREATE ROLE cache_other_login LOGIN; \
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $r$";

async fn one(client: &Client, sql: &str) -> String {
    let rows = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("NULL").to_owned()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Runs `sql` until it is answered from the cache (analysis and listener are async).
async fn until_hit(proxy: &crate::common::Proxy, client: &Client, sql: &str) -> String {
    let cache = &proxy.app.shared().cache;
    for _ in 0..500 {
        let before = cache.stats.hits.load(Ordering::Relaxed);
        let v = one(client, sql).await;
        if cache.stats.hits.load(Ordering::Relaxed) > before {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = &cache.stats;
    let counts = |a: &[std::sync::atomic::AtomicU64]| {
        a.iter()
            .map(|x| x.load(Ordering::Relaxed))
            .collect::<Vec<_>>()
    };
    panic!(
        "{sql}: never a hit; misses {:?} bypass {:?}",
        counts(&s.misses),
        counts(&s.bypass)
    );
}

fn hits(proxy: &crate::common::Proxy) -> u64 {
    proxy.app.shared().cache.stats.hits.load(Ordering::Relaxed)
}

#[tokio::test]
async fn hits_need_no_server_and_writes_through_the_sidecar_are_read_at_once() {
    let db = CacheDb::create(SETUP).await;
    db.install().await;
    let proxy = db.proxy(CacheMode::Auto, None).await;
    let url = proxy.url("postgres", &db.name);
    let (reader, writer) = (
        crate::common::connect(&url).await,
        crate::common::connect(&url).await,
    );
    let sql = "SELECT v FROM t WHERE id = 1";
    assert_eq!(until_hit(&proxy, &reader, sql).await, "a");
    // A hit answers without a server: the pool has checked out nothing new.
    let pool = proxy.app.shared().pool(&db.name, "postgres");
    let checkouts = format!("{:?}", pool.key);
    let before = hits(&proxy);
    for _ in 0..20 {
        assert_eq!(one(&reader, sql).await, "a");
    }
    assert_eq!(hits(&proxy), before + 20, "{checkouts}");
    // Read-your-writes: the write is invalidated before the writer's ReadyForQuery.
    one(&writer, "UPDATE t SET v = 'b' WHERE id = 1").await;
    assert_eq!(one(&reader, sql).await, "b");
    // In a transaction: its own uncommitted write, never the cache.
    assert_eq!(until_hit(&proxy, &reader, sql).await, "b");
    writer
        .batch_execute("BEGIN; UPDATE t SET v = 'c' WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(one(&writer, sql).await, "c");
    assert_eq!(one(&reader, sql).await, "b", "uncommitted");
    writer.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        one(&reader, sql).await,
        "c",
        "committed through the sidecar"
    );
    // A write from elsewhere shows within the channel's lag.
    assert_eq!(until_hit(&proxy, &reader, sql).await, "c");
    db.client()
        .await
        .batch_execute("UPDATE t SET v = 'd' WHERE id = 1")
        .await
        .unwrap();
    let mut seen = String::new();
    for _ in 0..100 {
        seen = one(&reader, sql).await;
        if seen == "d" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, "d");
    proxy.stop().await;
}

#[tokio::test]
async fn roles_settings_and_temporary_tables_never_share_an_entry() {
    let db = CacheDb::create(SETUP).await;
    db.install().await;
    let proxy = db.proxy(CacheMode::Auto, None).await;
    let owner = crate::common::connect(&proxy.url("postgres", &db.name)).await;
    let sql = "SELECT v FROM t WHERE id = 1";
    assert_eq!(until_hit(&proxy, &owner, sql).await, "a");
    // Another login without privileges gets its own error, not the owner's rows.
    let other = crate::common::connect(&proxy.url("cache_other_login", &db.name)).await;
    let err = other.simple_query(sql).await.unwrap_err();
    assert_eq!(crate::common::sqlstate(&err), "42501");
    // A session that changes a setting bypasses from then on.
    let tz = crate::common::connect(&proxy.url("postgres", &db.name)).await;
    one(&tz, "SET TimeZone = 'Asia/Tokyo'").await;
    let before = hits(&proxy);
    for _ in 0..5 {
        assert_eq!(one(&tz, sql).await, "a");
    }
    assert_eq!(hits(&proxy), before, "no hit after SET");
    // A temporary table shadowing t is read, never the cached public.t.
    let temp = crate::common::connect(&proxy.url("postgres", &db.name)).await;
    temp.batch_execute("CREATE TEMP TABLE t (id int, v text); INSERT INTO t VALUES (1, 'temp')")
        .await
        .unwrap();
    assert_eq!(one(&temp, sql).await, "temp");
    assert_eq!(one(&temp, sql).await, "temp");
    proxy.stop().await;
}

#[tokio::test]
async fn volatile_functions_and_locking_clauses_always_run() {
    let db = CacheDb::create(SETUP).await;
    db.install().await;
    let proxy = db.proxy(CacheMode::Auto, None).await;
    let client = crate::common::connect(&proxy.url("postgres", &db.name)).await;
    assert_eq!(
        until_hit(&proxy, &client, "SELECT v FROM t WHERE id = 1").await,
        "a"
    );
    let before = hits(&proxy);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        seen.insert(one(&client, "SELECT random()::text FROM t WHERE id = 1").await);
        one(&client, "SELECT v FROM t WHERE id = 1 FOR UPDATE").await;
        one(&client, "SELECT clock_timestamp()::text").await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(hits(&proxy), before);
    assert!(seen.len() > 1);
    let misses = &proxy.app.shared().cache.stats.misses;
    let volatile = pgsidecar::cache::reason::Refusal::VolatileFunction.index();
    assert!(misses[volatile].load(Ordering::Relaxed) > 0);
    proxy.stop().await;
}
