//! `pgsidecar cache install` / `uninstall`: triggers on every permanent table, new
//! tables covered by the event trigger, NOTIFY payloads, idempotence, and removal.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::AsyncMessage;

use super::CacheDb;

const SETUP: &str = "CREATE TABLE a (id int PRIMARY KEY, v text); \
    CREATE TABLE p (id int, k int) PARTITION BY RANGE (id); \
    CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100); \
    CREATE UNLOGGED TABLE u (x int); CREATE SCHEMA s; CREATE TABLE s.b (x int)";

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a notification")
        .unwrap()
}

async fn covered(db: &CacheDb) -> Vec<String> {
    let rows = db
        .client()
        .await
        .query(
            "SELECT tgrelid::regclass::text FROM pg_trigger \
             WHERE tgname = 'pgsidecar_cache_notify' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn install_covers_permanent_tables_and_uninstall_removes_everything() {
    let db = CacheDb::create(SETUP).await;
    let message = db.install().await;
    assert!(message.contains("4 tables covered"), "{message}");
    assert_eq!(covered(&db).await, ["a", "p", "p1", "s.b"]);
    // Idempotent.
    db.install().await;
    assert_eq!(covered(&db).await.len(), 4);
    // New tables are covered by the event trigger; temporary ones are not.
    let c = db.client().await;
    c.batch_execute("CREATE TABLE n (x int); CREATE TEMP TABLE t (x int)")
        .await
        .unwrap();
    assert_eq!(covered(&db).await, ["a", "n", "p", "p1", "s.b"]);
    let pg: tokio_postgres::Config = db.url.parse().unwrap();
    let message = pgsidecar::cache::install::run(&pg, false).await.unwrap();
    assert!(message.contains("removed"), "{message}");
    assert!(covered(&db).await.is_empty());
    let left: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'pgsidecar%') \
             + (SELECT count(*) FROM pg_namespace WHERE nspname = 'pgsidecar_cache')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    // Uninstall twice is fine.
    pgsidecar::cache::install::run(&pg, false).await.unwrap();
}

#[tokio::test]
async fn writes_truncate_and_ddl_notify_with_the_table_oid() {
    let db = CacheDb::create(SETUP).await;
    db.install().await;
    let (listener, mut connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    listener
        .batch_execute("LISTEN pgsidecar_cache")
        .await
        .unwrap();
    let writer = db.client().await;
    let oid = |name: &'static str| {
        let w = &writer;
        async move {
            let o: u32 = w
                .query_one(&format!("SELECT '{name}'::regclass::oid"), &[])
                .await
                .unwrap()
                .get(0);
            o
        }
    };
    let (a, p, p1) = (oid("a").await, oid("p").await, oid("p1").await);
    writer
        .batch_execute("INSERT INTO a VALUES (1, 'x')")
        .await
        .unwrap();
    assert!(next(&mut rx).await.starts_with(&format!("w,{a},")));
    writer.batch_execute("UPDATE a SET v = 'y'").await.unwrap();
    assert!(next(&mut rx).await.starts_with(&format!("w,{a},")));
    // A write through the parent notifies the parent.
    writer
        .batch_execute("INSERT INTO p VALUES (5, 1)")
        .await
        .unwrap();
    assert!(next(&mut rx).await.starts_with(&format!("w,{p},")));
    // TRUNCATE fires no row triggers; the statement trigger sees it, on every table.
    writer.batch_execute("TRUNCATE p").await.unwrap();
    let mut got = vec![next(&mut rx).await, next(&mut rx).await];
    got.sort();
    assert!(
        got.iter().any(|g| g.starts_with(&format!("w,{p},"))),
        "{got:?}"
    );
    assert!(
        got.iter().any(|g| g.starts_with(&format!("w,{p1},"))),
        "{got:?}"
    );
    // A rolled-back write notifies nothing; DDL and GRANT notify "d".
    writer
        .batch_execute("BEGIN; DELETE FROM a; ROLLBACK")
        .await
        .unwrap();
    writer
        .batch_execute("GRANT SELECT ON a TO PUBLIC")
        .await
        .unwrap();
    assert!(next(&mut rx).await.starts_with("d,"));
    writer
        .batch_execute("ALTER TABLE a ADD COLUMN w int")
        .await
        .unwrap();
    assert!(next(&mut rx).await.starts_with("d,"));
    // The payload's time is the server's clock in microseconds.
    writer.batch_execute("DELETE FROM a").await.unwrap();
    let payload = next(&mut rx).await;
    let micros: u64 = payload.rsplit(',').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(now.abs_diff(micros) < 5_000_000, "{payload}");
}

#[tokio::test]
async fn the_console_installs_and_uninstalls() {
    let db = CacheDb::create(SETUP).await;
    let name = db.name.clone();
    let proxy = crate::common::Proxy::with(|c| {
        c.upstream = db.url.clone();
        c.admin_users = vec!["postgres".into()];
    })
    .await;
    let console = crate::common::connect(&proxy.url("postgres", "pgsidecar")).await;
    let rows = console
        .simple_query(&format!("CACHE INSTALL {name}"))
        .await
        .unwrap();
    let text: String = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect();
    assert!(text.contains("4 tables covered"), "{text}");
    assert_eq!(covered(&db).await.len(), 4);
    console
        .simple_query(&format!("CACHE UNINSTALL {name}"))
        .await
        .unwrap();
    assert!(covered(&db).await.is_empty());
    let err = console.simple_query("CACHE DROP").await.unwrap_err();
    assert_eq!(crate::common::sqlstate(&err), "42601");
    proxy.stop().await;
}
