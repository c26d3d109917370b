//! Graceful shutdown: idle clients are closed with 57P01, open transactions may finish
//! (up to shutdown_timeout), new clients are refused.

use std::time::{Duration, Instant};

use crate::common::raw::{error_code, error_message, query, Raw};
use crate::common::{direct, unique, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_transaction_commits_during_shutdown() {
    let proxy = Proxy::with(|c| c.shutdown_timeout = Duration::from_secs(10)).await;
    let table = unique("drain");
    let admin = direct().await;
    admin
        .batch_execute(&format!("CREATE TABLE {table} (a int)"))
        .await
        .unwrap();
    let (mut busy, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    busy.send(&query(&format!("BEGIN; INSERT INTO {table} VALUES (1)")))
        .await;
    busy.until_ready().await;
    let (mut idle, _) = Raw::login(proxy.addr, "postgres", "postgres").await;

    let addr = proxy.addr;
    let Proxy { app, .. } = proxy;
    app.begin_shutdown();
    let waiter = tokio::spawn(app.wait());

    // The idle client is told why and closed.
    let (tag, body) = idle.recv().await.expect("a goodbye message");
    assert_eq!(tag, b'E');
    assert_eq!(error_code(&body), "57P01");
    assert_eq!(error_message(&body), "pgsidecar is shutting down");
    assert!(idle.recv().await.is_none(), "idle client closed");

    // New clients are refused.
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "listener closed");

    // The open transaction finishes, then its client is closed too.
    busy.send(&query("COMMIT")).await;
    let frames = busy.until_ready().await;
    assert!(frames.iter().any(|f| f.0 == b'C' && f.1 == b"COMMIT\0"));
    let (tag, body) = busy.recv().await.expect("goodbye after commit");
    assert_eq!((tag, error_code(&body).as_str()), (b'E', "57P01"));
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("drain completes once transactions end")
        .unwrap();
    let n: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the transaction committed");
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_closes_lingering_transactions() {
    let proxy = Proxy::with(|c| c.shutdown_timeout = Duration::from_millis(400)).await;
    let (mut lingering, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    lingering.send(&query("BEGIN")).await;
    lingering.until_ready().await;
    let started = Instant::now();
    let Proxy { app, .. } = proxy;
    app.begin_shutdown();
    app.wait().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let (tag, body) = lingering.recv().await.expect("goodbye");
    assert_eq!((tag, error_code(&body).as_str()), (b'E', "57P01"));
}
