//! Pool limits: a checkout that waits too long gets 53300 naming the pool and stays
//! connected; max_client_conn is enforced; many clients share a small pool without errors.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::common::{sqlstate, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_answers_53300_and_client_can_retry() {
    let proxy = Proxy::with(|c| {
        c.pool_size = 1;
        c.checkout_timeout = Duration::from_millis(500);
    })
    .await;
    let holder = proxy.client().await;
    holder.batch_execute("BEGIN").await.unwrap();

    let waiter = proxy.client().await;
    let started = Instant::now();
    let err = waiter.simple_query("SELECT 1").await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(sqlstate(&err), "53300");
    let message = err.as_db_error().unwrap().message().to_string();
    assert!(
        message.starts_with("pgsidecar: no server connection for postgres/postgres within 5"),
        "{message}"
    );
    assert!(message.ends_with("ms (pool_size 1, all busy)"), "{message}");
    assert!(waited >= Duration::from_millis(500) && waited < Duration::from_secs(3));

    // Extended protocol gets the same error, and after the holder commits the waiting
    // client is served on the same connection.
    let err = waiter.query_one("SELECT $1::int", &[&1]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "53300");
    holder.batch_execute("COMMIT").await.unwrap();
    let row = waiter.query_one("SELECT $1::int", &[&3]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_client_conn_rejects_the_extra_client() {
    let proxy = Proxy::with(|c| c.max_client_conn = 2).await;
    let a = proxy.client().await;
    let b = proxy.client().await;
    let err = crate::common::try_connect(&proxy.url("postgres", "postgres"))
        .await
        .expect_err("third client refused");
    assert_eq!(sqlstate(&err), "53300");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "too many client connections (max_client_conn 2)"
    );
    drop(a);
    // The slot frees up once a client leaves.
    let mut admitted = false;
    for _ in 0..50 {
        if crate::common::try_connect(&proxy.url("postgres", "postgres"))
            .await
            .is_ok()
        {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "a client is admitted after another leaves");
    b.simple_query("SELECT 1").await.unwrap();
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_share_four_servers() {
    let proxy = Proxy::with(|c| c.pool_size = 4).await;
    let url = proxy.url("postgres", "postgres");
    let tasks = (0..64).map(|i| {
        let url = url.clone();
        tokio::spawn(async move {
            let mut client = crate::common::connect(&url).await;
            for j in 0..20 {
                let tx = client.transaction().await?;
                let v: i32 = tx
                    .query_one("SELECT $1::int + $2::int", &[&i, &j])
                    .await?
                    .get(0);
                assert_eq!(v, i + j);
                tx.commit().await?;
                client.simple_query("SELECT 1").await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        })
    });
    for result in join_all(tasks).await {
        result.unwrap().unwrap();
    }
    // Never more than pool_size servers were opened.
    let pool = proxy.app.shared().pool("postgres", "postgres");
    assert!(
        pool.counters
            .open
            .load(std::sync::atomic::Ordering::Relaxed)
            <= 4
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_checkout_in_an_unsynced_batch_errors_then_syncs() {
    use crate::common::raw::{error_code, frame, Raw};
    let proxy = Proxy::with(|c| {
        c.pool_size = 1;
        c.checkout_timeout = Duration::from_millis(200);
    })
    .await;
    let holder = proxy.client().await;
    holder.batch_execute("BEGIN").await.unwrap();
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    let mut batch = frame(b'P', b"\0SELECT 1\0\0\0");
    batch.extend(frame(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]));
    batch.extend(frame(b'E', &[0, 0, 0, 0, 0]));
    batch.extend(frame(b'H', b""));
    raw.send(&batch).await;
    let (tag, body) = raw.recv().await.unwrap();
    assert_eq!((tag, error_code(&body).as_str()), (b'E', "53300"));
    // Messages up to the Sync are skipped; the Sync gets ReadyForQuery.
    raw.send(&frame(b'E', &[0, 0, 0, 0, 0])).await;
    raw.send(&frame(b'S', b"")).await;
    assert_eq!(raw.recv().await.unwrap(), (b'Z', b"I".to_vec()));
    holder.batch_execute("COMMIT").await.unwrap();
    raw.send(&crate::common::raw::query("SELECT 5")).await;
    let frames = raw.until_ready().await;
    assert!(frames.iter().any(|f| f.0 == b'D' && f.1.ends_with(b"5")));
    proxy.stop().await;
}
