//! A server is clean before anyone else gets it: abandoned and failed transactions are
//! rolled back, session-mode servers are reset, startup settings do not leak.

use std::time::Duration;

use pgsidecar::config::PoolMode;

use crate::common::raw::{query, Raw};
use crate::common::{direct, unique, Proxy};

/// Waits until no server session of the test server is in `state` for `app`.
async fn wait_no_backend_in(state: &str, marker: &str) -> bool {
    let admin = direct().await;
    for _ in 0..100 {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = $1 AND query LIKE $2",
                &[&state, &format!("%{marker}%")],
            )
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_client_leaves_no_open_transaction() {
    let proxy = Proxy::with(|c| c.pool_size = 1).await;
    let table = unique("abandoned");
    let setup = proxy.client().await;
    setup
        .batch_execute(&format!("CREATE TABLE {table} (a int)"))
        .await
        .unwrap();
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    raw.send(&query(&format!(
        "BEGIN; INSERT INTO {table} VALUES (1) /* {table} */"
    )))
    .await;
    let frames = raw.until_ready().await;
    assert_eq!(frames.last().unwrap(), &(b'Z', b"T".to_vec()));
    drop(raw); // killed mid-transaction

    assert!(
        wait_no_backend_in("idle in transaction", &table).await,
        "server left idle in transaction"
    );
    // The only server (pool_size 1) is usable and the insert was rolled back.
    let n: i64 = setup
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    setup
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_transaction_left_behind_is_rolled_back() {
    let proxy = Proxy::with(|c| c.pool_size = 1).await;
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    raw.send(&query("BEGIN; SELECT 1/0")).await;
    let frames = raw.until_ready().await;
    assert_eq!(frames.last().unwrap(), &(b'Z', b"E".to_vec()));
    drop(raw);
    let next = proxy.client().await;
    let row = next
        .query_one("SELECT pg_catalog.txid_current_if_assigned() IS NULL", &[])
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "next client starts outside any transaction"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_resets_the_server_between_clients() {
    let proxy = Proxy::with(|c| {
        c.pool_mode = PoolMode::Session;
        c.pool_size = 1;
    })
    .await;
    let first = proxy.client().await;
    first
        .batch_execute("SET statement_timeout = '17s'; PREPARE p AS SELECT 1")
        .await
        .unwrap();
    let pid: i32 = first
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    drop(first);
    let second = {
        let mut attempt = None;
        for _ in 0..50 {
            let c = proxy.client().await;
            let p: i32 = c
                .query_one("SELECT pg_backend_pid()", &[])
                .await
                .unwrap()
                .get(0);
            if p == pid {
                attempt = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        attempt.expect("the same server is reused")
    };
    let timeout: String = second
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(timeout, "0", "DISCARD ALL reset the setting");
    let prepared: i64 = second
        .query_one(
            "SELECT count(*) FROM pg_prepared_statements WHERE name = 'p'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(prepared, 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_settings_do_not_leak_between_clients() {
    let proxy = Proxy::with(|c| c.pool_size = 1).await;
    let url = proxy.url("postgres", "postgres");
    let a = crate::common::connect(&format!(
        "{url}?application_name=alpha&options=-c%20statement_timeout%3D1234"
    ))
    .await;
    let b = crate::common::connect(&format!("{url}?application_name=beta")).await;
    for _ in 0..3 {
        let row = a
            .query_one(
                "SELECT current_setting('application_name'), current_setting('statement_timeout')",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, &str>(0), "alpha");
        assert_eq!(row.get::<_, &str>(1), "1234ms");
        let row = b
            .query_one(
                "SELECT current_setting('application_name'), current_setting('statement_timeout')",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, &str>(0), "beta");
        assert_eq!(row.get::<_, &str>(1), "0", "a's option leaked into b");
    }
    // A client's own SET of a reported parameter follows it too.
    a.batch_execute("SET application_name = 'alpha2'")
        .await
        .unwrap();
    let n: String = b
        .query_one("SHOW application_name", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, "beta");
    let n: String = a
        .query_one("SHOW application_name", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, "alpha2");
    proxy.stop().await;
}
