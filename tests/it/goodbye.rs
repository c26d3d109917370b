//! How connections end: every client the proxy closes hears why first (57P01 during a
//! drain, even one that sent a query right after its COMMIT), and a server's own FATAL
//! is relayed alone, never followed by a second error of the proxy's.

use std::time::Duration;

use pgsidecar::config::PoolMode;

use crate::common::raw::{error_code, query, Raw};
use crate::common::{direct, Proxy};

/// Frames until EOF (a reset counts as EOF).
async fn frames_until_eof(raw: &mut Raw) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while let Some(frame) = raw.recv().await {
        frames.push(frame);
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_says_57p01_to_clients_that_query_right_after_commit() {
    const CLIENTS: usize = 8;
    let proxy = Proxy::with(|c| {
        c.pool_size = CLIENTS;
        c.shutdown_timeout = Duration::from_secs(10);
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
        raw.send(&query("BEGIN; SELECT 1")).await;
        raw.until_ready().await;
        clients.push(raw);
    }
    let Proxy { app, .. } = proxy;
    app.begin_shutdown();
    let waiter = tokio::spawn(app.wait());
    let tasks: Vec<_> = (clients.into_iter())
        .map(|mut raw| {
            tokio::spawn(async move {
                raw.send(&query("COMMIT")).await;
                let commit = raw.until_ready().await;
                assert!(commit.iter().any(|f| f == &(b'C', b"COMMIT\0".to_vec())));
                // Straight after the commit, before the goodbye can be read.
                let next = format!("SELECT '{}'", "x".repeat(50_000));
                let _ = raw.stream.try_write(&query(&next));
                let frames = frames_until_eof(&mut raw).await;
                let goodbye = frames.iter().find(|f| f.0 == b'E');
                let code = goodbye.map(|f| error_code(&f.1));
                assert_eq!(code.as_deref(), Some("57P01"), "frames: {frames:?}");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("every client heard 57P01");
    }
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("drain completes")
        .unwrap();
}

async fn server_death_is_reported_once(mode: PoolMode) {
    let proxy = Proxy::with(|c| c.pool_mode = mode).await;
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    raw.send(&query("BEGIN; SELECT pg_backend_pid()")).await;
    let frames = raw.until_ready().await;
    let row = frames.iter().find(|f| f.0 == b'D').expect("a row");
    let pid: i32 = String::from_utf8_lossy(&row.1[6..]).parse().unwrap();
    direct()
        .await
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let frames = tokio::time::timeout(Duration::from_secs(5), frames_until_eof(&mut raw))
        .await
        .expect("connection closed after the server's FATAL");
    let errors: Vec<String> = (frames.iter())
        .filter(|f| f.0 == b'E')
        .map(|f| error_code(&f.1))
        .collect();
    assert_eq!(
        errors,
        ["57P01"],
        "exactly the server's own FATAL: {frames:?}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_fatal_is_relayed_alone_in_transaction_mode() {
    server_death_is_reported_once(PoolMode::Transaction).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_fatal_is_relayed_alone_in_session_mode() {
    server_death_is_reported_once(PoolMode::Session).await;
}
