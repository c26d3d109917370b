//! A client that leaves in the middle of something (COPY IN, COPY OUT, a batch without
//! Sync, a half-sent message, a failed transaction) never wedges its server: with
//! `pool_size = 1` the next client gets a working server and no lock is left behind.

use std::time::Duration;

use pgsidecar::config::PoolMode;

use crate::common::raw::{frame, query, Raw};
use crate::common::{direct, unique, Proxy};

const TERMINATE: &[u8] = b"X\0\0\0\x04";

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Parse, Bind and Execute of `sql` (unnamed), without Sync.
fn unsynced(sql: &str) -> Vec<u8> {
    let mut parse = cstr("");
    parse.extend(cstr(sql));
    parse.extend(0i16.to_be_bytes());
    let mut bind = cstr("");
    bind.extend(cstr(""));
    bind.extend([0u8; 6]);
    let mut execute = cstr("");
    execute.extend(0i32.to_be_bytes());
    let mut out = frame(b'P', &parse);
    out.extend(frame(b'B', &bind));
    out.extend(frame(b'E', &execute));
    out
}

fn sync() -> Vec<u8> {
    frame(b'S', &[])
}

/// A proxy with one server, and a fresh table `t` created through it.
async fn setup(mode: PoolMode) -> (Proxy, String) {
    let proxy = Proxy::with(|c| {
        c.pool_size = 1;
        c.pool_mode = mode;
        c.checkout_timeout = Duration::from_secs(5);
    })
    .await;
    let table = unique("depart");
    direct()
        .await
        .batch_execute(&format!("CREATE TABLE {table} (a int)"))
        .await
        .unwrap();
    (proxy, table)
}

/// The next client gets the only server within a few seconds and can use it; nobody
/// holds a lock on `table`, which can then be dropped. Returns the row count left.
async fn next_client_is_clean(proxy: &Proxy, table: &str) -> i64 {
    let next = tokio::time::timeout(Duration::from_secs(8), async {
        let client = proxy.client().await;
        client.query_one("SELECT 1", &[]).await.map(|_| client)
    })
    .await
    .expect("next client served within 8 s (the server was not returned)")
    .expect("next client's query works");
    let admin = direct().await;
    let mut locks: i64 = -1;
    for _ in 0..100 {
        locks = admin
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE relation = $1::text::regclass \
                 AND pid <> pg_backend_pid()",
                &[&table],
            )
            .await
            .unwrap()
            .get(0);
        if locks == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(locks, 0, "a lock on {table} outlived its client");
    let copying: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE $1 AND state = 'active' \
             AND pid <> pg_backend_pid()",
            &[&format!("%{table}%")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(copying, 0, "a server is still busy with {table}");
    let rows: i64 = next
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0);
    admin
        .batch_execute(&format!("SET lock_timeout = '2s'; DROP TABLE {table}"))
        .await
        .expect("table droppable: no lock left");
    rows
}

async fn copy_in_then_leave(mode: PoolMode, extended: bool, terminate: bool) {
    let (proxy, table) = setup(mode).await;
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    let sql = format!("COPY {table} FROM STDIN");
    if extended {
        let mut batch = unsynced(&sql);
        batch.extend(sync());
        raw.send(&batch).await;
    } else {
        raw.send(&query(&sql)).await;
    }
    loop {
        let (tag, _) = raw.recv().await.expect("CopyInResponse");
        if tag == b'G' {
            break;
        }
        assert_ne!(tag, b'E', "COPY failed to start");
    }
    raw.send(&frame(b'd', b"1\n2\n")).await;
    if terminate {
        raw.send(TERMINATE).await;
    }
    drop(raw);
    assert_eq!(next_client_is_clean(&proxy, &table).await, 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_in_simple_copy_in_frees_the_server() {
    copy_in_then_leave(PoolMode::Transaction, false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_in_extended_copy_in_frees_the_server() {
    copy_in_then_leave(PoolMode::Transaction, true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eof_in_copy_in_frees_the_server() {
    copy_in_then_leave(PoolMode::Transaction, true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_in_copy_in_frees_the_server_in_session_mode() {
    copy_in_then_leave(PoolMode::Session, true, true).await;
    copy_in_then_leave(PoolMode::Session, false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_in_copy_out_frees_the_server() {
    let (proxy, table) = setup(PoolMode::Transaction).await;
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    raw.send(&query(&format!(
        "BEGIN; LOCK {table}; COPY (SELECT g, repeat('x', 100) FROM generate_series(1, 2000000) g) TO STDOUT"
    )))
    .await;
    loop {
        let (tag, _) = raw.recv().await.expect("copy data");
        if tag == b'd' {
            break;
        }
    }
    raw.send(TERMINATE).await;
    // The client stops reading and leaves its socket open for a while.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(next_client_is_clean(&proxy, &table).await, 0);
    drop(raw);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_after_batch_without_sync_frees_the_server() {
    let (proxy, table) = setup(PoolMode::Transaction).await;
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    let mut batch = unsynced(&format!("INSERT INTO {table} VALUES (1)"));
    batch.extend(frame(b'H', &[]));
    raw.send(&batch).await;
    // The insert ran (ParseComplete, BindComplete, CommandComplete) and holds its lock.
    let mut completes = 0;
    while completes < 1 {
        let (tag, body) = raw.recv().await.expect("answers to the flushed batch");
        assert_ne!(tag, b'E', "{}", String::from_utf8_lossy(&body));
        completes += usize::from(tag == b'C');
    }
    raw.send(TERMINATE).await;
    drop(raw);
    // Never synced, never committed.
    assert_eq!(next_client_is_clean(&proxy, &table).await, 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_message_frees_the_server() {
    let (proxy, table) = setup(PoolMode::Transaction).await;
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    raw.send(&query(&format!("BEGIN; LOCK {table}"))).await;
    raw.until_ready().await;
    let whole = query(&format!("INSERT INTO {table} VALUES (1)"));
    raw.send(&whole[..whole.len() / 2]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(raw);
    assert_eq!(next_client_is_clean(&proxy, &table).await, 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_in_failed_transaction_frees_the_server() {
    let (proxy, table) = setup(PoolMode::Transaction).await;
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    raw.send(&query(&format!(
        "BEGIN; INSERT INTO {table} VALUES (1); LOCK {table}; SELECT 1/0"
    )))
    .await;
    let frames = raw.until_ready().await;
    assert_eq!(frames.last().unwrap(), &(b'Z', b"E".to_vec()));
    raw.send(TERMINATE).await;
    drop(raw);
    assert_eq!(next_client_is_clean(&proxy, &table).await, 0);
    proxy.stop().await;
}
