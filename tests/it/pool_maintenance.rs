//! Pool upkeep: idle timeout, lifetime, min_pool_size, health of idle servers, and
//! per-database pool modes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use pgsidecar::config::{DatabaseConfig, PoolMode};

use crate::common::{direct, Proxy};

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_servers_close_after_idle_timeout_and_min_pool_size_stays() {
    let proxy = Proxy::with(|c| {
        c.server_idle_timeout = Duration::from_millis(300);
        c.min_pool_size = 1;
    })
    .await;
    let url = proxy.url("postgres", "postgres");
    let clients: Vec<_> =
        futures_util::future::join_all((0..3).map(|_| crate::common::connect(&url))).await;
    // Three concurrent transactions open three servers.
    let txs = futures_util::future::join_all(clients.iter().map(|c| async move {
        c.batch_execute("BEGIN; SELECT pg_sleep(0.05); COMMIT")
            .await
    }))
    .await;
    assert!(txs.iter().all(|r| r.is_ok()));
    let pool = proxy.app.shared().pool("postgres", "postgres");
    assert!(pool.counters.open.load(Ordering::Relaxed) >= 1);
    // The idle ones are closed, down to min_pool_size.
    wait_until("idle servers to close", || {
        pool.counters.open.load(Ordering::Relaxed) == 1
    })
    .await;
    // ... and min_pool_size stays open even with nothing to do.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(pool.counters.open.load(Ordering::Relaxed), 1);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_lifetime_replaces_old_servers() {
    let proxy = Proxy::with(|c| {
        c.pool_size = 1;
        c.server_lifetime = Duration::from_millis(200);
    })
    .await;
    let client = proxy.client().await;
    let first: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let second: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(first, second, "a server past its lifetime is not reused");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_idle_server_never_reaches_a_client() {
    let proxy = Proxy::with(|c| {
        c.pool_size = 1;
        c.server_check_delay = Duration::from_millis(100);
    })
    .await;
    let client = proxy.client().await;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    // Kill the idle pooled server behind the proxy's back.
    let admin = direct().await;
    let killed: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The same client goes on, on a new server.
    let next: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(pid, next);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_mode_can_differ_per_database() {
    let proxy = Proxy::with(|c| {
        c.pool_size = 2;
        c.databases.insert(
            "test".into(),
            DatabaseConfig {
                pool_mode: Some(PoolMode::Session),
                ..DatabaseConfig::default()
            },
        );
    })
    .await;
    let session = crate::common::connect(&proxy.url("postgres", "test")).await;
    let a: i32 = session
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let other = crate::common::connect(&proxy.url("postgres", "test")).await;
    let b: i32 = other
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(a, b, "session mode: each client keeps its own server");
    let again: i32 = session
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(a, again);
    let pool = proxy.app.shared().pool("test", "postgres");
    assert_eq!(pool.mode(), PoolMode::Session);
    assert_eq!(
        proxy.app.shared().pool("postgres", "postgres").mode(),
        PoolMode::Transaction
    );
    proxy.stop().await;
}
