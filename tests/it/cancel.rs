//! Cancel requests reach the server running the client's query, through the proxy's own
//! cancel keys; in session mode the key carries the real server pid.

use std::time::{Duration, Instant};

use pgsidecar::config::PoolMode;
use tokio_postgres::NoTls;

use crate::common::{sqlstate, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_long_query_quickly() {
    let proxy = Proxy::with(|c| c.pool_size = 2).await;
    let client = proxy.client().await;
    let token = client.cancel_token();
    let started = Instant::now();
    let query = tokio::spawn(async move {
        let r = client.simple_query("SELECT pg_sleep(10)").await;
        (r, client)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(NoTls).await.unwrap();
    let (result, client) = query.await.unwrap();
    let err = result.unwrap_err();
    assert_eq!(sqlstate(&err), "57014", "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(1300),
        "cancel took {:?}",
        started.elapsed()
    );
    // The client carries on, and the next query is not cancelled.
    let row = client.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    // Cancelling an idle client does nothing to anyone.
    token.cancel_query(NoTls).await.unwrap();
    let row = client.query_one("SELECT 2", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_key_is_the_real_backend_pid() {
    let proxy = Proxy::with(|c| c.pool_mode = PoolMode::Session).await;
    let (mut raw, greeting) =
        crate::common::raw::Raw::login(proxy.addr, "postgres", "postgres").await;
    let key = greeting
        .iter()
        .find(|f| f.0 == b'K')
        .expect("BackendKeyData");
    let pid = i32::from_be_bytes([key.1[0], key.1[1], key.1[2], key.1[3]]);
    raw.send(&crate::common::raw::query("SELECT pg_backend_pid()"))
        .await;
    let frames = raw.until_ready().await;
    let row = frames.iter().find(|f| f.0 == b'D').expect("DataRow");
    let text = String::from_utf8_lossy(&row.1[6..]).to_string();
    assert_eq!(text, pid.to_string());
    proxy.stop().await;
}
