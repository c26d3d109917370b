//! tokio-postgres and sqlx in process: 32 connections on a pool of 4 servers, each with
//! named prepared statements (tokio-postgres `prepare`, sqlx's statement cache), its own
//! `SET statement_timeout` read back in every transaction, committed transactions, failed
//! ones rolled back, and COPY in and out. A SET that these drivers prepare by name and
//! execute in a later request is not followed yet: see the ignored
//! `*_set_prepared_then_executed` tests.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::{SinkExt, TryStreamExt};
use sqlx::{Connection, Executor, PgConnection};
use tokio::task::JoinSet;

use super::POOL_SIZE;
use crate::common::{connect, direct, sqlstate, unique, Proxy};

const CONNECTIONS: usize = 32;
/// Committed transactions per connection; every fifth is followed by a failed one.
const TRANSACTIONS: usize = 20;
const COPY_ROWS: usize = 1000;

/// A different timeout per connection, so a setting leaking to another client shows
/// (never whole seconds, which SHOW prints as "4s").
fn timeout(n: usize) -> String {
    format!("{}ms", 4001 + 3 * n)
}

fn row_id(n: usize, i: usize) -> i32 {
    (10_000 + n * TRANSACTIONS + i) as i32
}

/// Creates the table directly on the server; the drivers fill it through the proxy.
async fn create_table(prefix: &str) -> String {
    let table = unique(prefix);
    direct()
        .await
        .batch_execute(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, v text)"
        ))
        .await
        .unwrap();
    table
}

/// Checks what the connections left behind, straight on the server, and drops the table.
async fn check_table_and_drop(table: &str) {
    let server = direct().await;
    let count = |sql: String| {
        let server = &server;
        async move { server.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let committed = count(format!("SELECT count(*) FROM {table} WHERE id >= 10000")).await;
    assert_eq!(
        committed,
        (CONNECTIONS * TRANSACTIONS) as i64,
        "every commit kept"
    );
    let rolled_back = count(format!("SELECT count(*) FROM {table} WHERE id < 0")).await;
    assert_eq!(rolled_back, 0, "inserts of failed transactions rolled back");
    server
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

/// The servers the connections saw are the pool's, never more than its size.
fn check_pool(proxy: &Proxy, pids: &HashSet<i32>) {
    assert!(
        pids.len() <= POOL_SIZE,
        "{CONNECTIONS} connections on at most {POOL_SIZE} servers: {pids:?}"
    );
    let pool = proxy.app.shared().pool("postgres", "postgres");
    let open = pool.counters.open.load(Ordering::Relaxed);
    assert!(open <= POOL_SIZE, "servers opened: {open}");
}

/// Joins the workers; a panic in one fails the test with its message.
async fn join_all(mut workers: JoinSet<HashSet<i32>>) -> HashSet<i32> {
    let mut pids = HashSet::new();
    while let Some(done) = workers.join_next().await {
        pids.extend(done.expect("worker"));
    }
    pids
}

async fn tokio_postgres_worker(url: String, table: String, n: usize) -> HashSet<i32> {
    let mut client = connect(&url).await;
    let timeout = timeout(n);
    // batch_execute (a simple Query): the extended-protocol path of execute() is the
    // ignored tokio_postgres_set_prepared_then_executed.
    let set = format!("SET statement_timeout = '{timeout}'");
    client.batch_execute(&set).await.unwrap();
    let pid = client.prepare("SELECT pg_backend_pid()").await.unwrap();
    let insert = format!("INSERT INTO {table} (id, v) VALUES ($1, $2)");
    let insert = client.prepare(&insert).await.unwrap();
    let show = client.prepare("SHOW statement_timeout").await.unwrap();
    let divide = client.prepare("SELECT 10 / $1::int").await.unwrap();
    let label = format!("t{n}");
    let mut pids = HashSet::new();
    for i in 0..TRANSACTIONS {
        let tx = client.transaction().await.unwrap();
        let first: i32 = tx.query_one(&pid, &[]).await.unwrap().get(0);
        tx.execute(&insert, &[&row_id(n, i), &label]).await.unwrap();
        // Transaction pooling keeps a transaction on one server.
        let again: i32 = tx.query_one(&pid, &[]).await.unwrap().get(0);
        assert_eq!(first, again, "connection {n}: one server per transaction");
        let shown: String = tx.query_one(&show, &[]).await.unwrap().get(0);
        assert_eq!(shown, timeout, "connection {n} sees its own setting");
        tx.commit().await.unwrap();
        pids.insert(first);
        if i % 5 == 0 {
            let tx = client.transaction().await.unwrap();
            tx.execute(&insert, &[&-row_id(n, i), &label])
                .await
                .unwrap();
            let err = tx.query_one(&divide, &[&0i32]).await.unwrap_err();
            assert_eq!(sqlstate(&err), "22012", "{err}");
            let err = tx.query_one(&show, &[]).await.unwrap_err();
            assert_eq!(
                sqlstate(&err),
                "25P02",
                "aborted transaction refuses: {err}"
            );
            tx.rollback().await.unwrap();
        }
        // Outside a transaction each statement may land on another server; query with
        // a text prepares (and closes) a statement of its own each time.
        let q: i32 = client.query_one(&divide, &[&5i32]).await.unwrap().get(0);
        assert_eq!(q, 2);
        let next: i32 = client
            .query_one("SELECT $1::int + 1", &[&(i as i32)])
            .await
            .unwrap()
            .get(0);
        assert_eq!(next, i as i32 + 1);
    }
    pids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_tokio_postgres() {
    let proxy = Proxy::with(|c| c.pool_size = POOL_SIZE).await;
    let table = create_table("drv_tokio_pg").await;
    let url = proxy.url("postgres", "postgres");

    // COPY in and out, then a statement on the same connection.
    let client = proxy.client().await;
    let rows: String = (1..=COPY_ROWS)
        .map(|i| format!("{}\trow {i}\n", -(i as i64)))
        .collect();
    let sink = client
        .copy_in(&format!("COPY {table} (id, v) FROM STDIN"))
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    sink.send(Bytes::from(rows.clone())).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), COPY_ROWS as u64);
    let out = format!("COPY (SELECT id, v FROM {table} ORDER BY id DESC) TO STDOUT");
    let chunks: Vec<Bytes> = client
        .copy_out(&out)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        chunks.concat() == rows.as_bytes(),
        "COPY TO returns what went in"
    );
    let deleted = client
        .execute(&format!("DELETE FROM {table} WHERE id < 0"), &[])
        .await
        .unwrap();
    assert_eq!(deleted, COPY_ROWS as u64, "usable after COPY");
    drop(client);

    let mut workers = JoinSet::new();
    for n in 0..CONNECTIONS {
        workers.spawn(tokio_postgres_worker(url.clone(), table.clone(), n));
    }
    let pids = join_all(workers).await;
    check_pool(&proxy, &pids);
    check_table_and_drop(&table).await;
    proxy.stop().await;
}

/// The SQLSTATE of a sqlx error, if the server sent one.
fn code(e: &sqlx::Error) -> String {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
        .unwrap_or_default()
}

async fn sqlx_worker(url: String, table: String, n: usize) -> HashSet<i32> {
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let timeout = timeout(n);
    // A plain &str runs as a simple Query: sqlx::query(..) (Parse, then Bind/Execute in
    // the next request) is the ignored sqlx_set_prepared_then_executed.
    let set = format!("SET statement_timeout = '{timeout}'");
    conn.execute(set.as_str()).await.unwrap();
    let insert = format!("INSERT INTO {table} (id, v) VALUES ($1, $2)");
    let pid = || sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()");
    let show = || sqlx::query_scalar::<_, String>("SHOW statement_timeout");
    let divide = |d: i32| sqlx::query_scalar::<_, i32>("SELECT 10 / $1::int").bind(d);
    let label = format!("t{n}");
    let mut pids = HashSet::new();
    for i in 0..TRANSACTIONS {
        let mut tx = conn.begin().await.unwrap();
        let first = pid().fetch_one(&mut *tx).await.unwrap();
        sqlx::query(&insert)
            .bind(row_id(n, i))
            .bind(&label)
            .execute(&mut *tx)
            .await
            .unwrap();
        // Transaction pooling keeps a transaction on one server.
        let again = pid().fetch_one(&mut *tx).await.unwrap();
        assert_eq!(first, again, "connection {n}: one server per transaction");
        let shown = show().fetch_one(&mut *tx).await.unwrap();
        assert_eq!(shown, timeout, "connection {n} sees its own setting");
        tx.commit().await.unwrap();
        pids.insert(first);
        if i % 5 == 0 {
            let mut tx = conn.begin().await.unwrap();
            sqlx::query(&insert)
                .bind(-row_id(n, i))
                .bind(&label)
                .execute(&mut *tx)
                .await
                .unwrap();
            let err = divide(0).fetch_one(&mut *tx).await.unwrap_err();
            assert_eq!(code(&err), "22012", "{err}");
            let err = show().fetch_one(&mut *tx).await.unwrap_err();
            assert_eq!(code(&err), "25P02", "aborted transaction refuses: {err}");
            tx.rollback().await.unwrap();
        }
        // Outside a transaction each cached statement may run on another server.
        assert_eq!(divide(5).fetch_one(&mut conn).await.unwrap(), 2);
        let next = sqlx::query_scalar::<_, i32>("SELECT $1::int + 1")
            .bind(i as i32)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(next, i as i32 + 1);
    }
    conn.close().await.unwrap();
    pids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_sqlx() {
    let proxy = Proxy::with(|c| c.pool_size = POOL_SIZE).await;
    let table = create_table("drv_sqlx").await;
    let url = proxy.url("postgres", "postgres");

    // COPY in and out, then a statement on the same connection.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let rows: String = (1..=COPY_ROWS)
        .map(|i| format!("{}\trow {i}\n", -(i as i64)))
        .collect();
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} (id, v) FROM STDIN"))
        .await
        .unwrap();
    copy.send(rows.as_bytes()).await.unwrap();
    assert_eq!(copy.finish().await.unwrap(), COPY_ROWS as u64);
    let out = format!("COPY (SELECT id, v FROM {table} ORDER BY id DESC) TO STDOUT");
    let chunks: Vec<Bytes> = conn
        .copy_out_raw(&out)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        chunks.concat() == rows.as_bytes(),
        "COPY TO returns what went in"
    );
    let deleted = sqlx::query(&format!("DELETE FROM {table} WHERE id < 0"))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        deleted.rows_affected(),
        COPY_ROWS as u64,
        "usable after COPY"
    );
    conn.close().await.unwrap();

    let mut workers = JoinSet::new();
    for n in 0..CONNECTIONS {
        workers.spawn(sqlx_worker(url.clone(), table.clone(), n));
    }
    let pids = join_all(workers).await;
    check_pool(&proxy, &pids);
    check_table_and_drop(&table).await;
    proxy.stop().await;
}

const SEEN: &str = "SELECT current_setting('statement_timeout'), pg_backend_pid()";

/// What a client sees of statement_timeout, and on which server.
async fn timeout_and_pid(client: &tokio_postgres::Client) -> (String, i32) {
    let row = client.query_one(SEEN, &[]).await.unwrap();
    (row.get(0), row.get(1))
}

/// After `a` ran `SET statement_timeout = '4321ms'` on the pool's only server, `b` gets
/// that server and must not see the setting; `a_after` (a's next statement, on the same
/// server again) must still see it.
async fn check_set_followed<F: std::future::Future<Output = (String, i32)>>(
    b: &tokio_postgres::Client,
    a_pid: i32,
    a_after: impl FnOnce() -> F,
) {
    let (b_sees, b_pid) = timeout_and_pid(b).await;
    assert_eq!(b_pid, a_pid, "one server");
    assert_eq!(b_sees, "0", "a's SET stayed behind on its server");
    let (a_sees, _) = a_after().await;
    assert_eq!(a_sees, "4321ms", "a's SET did not follow it");
}

// tokio-postgres execute() and sqlx query() send a statement as Parse (named), Describe,
// Sync, then Bind, Execute, Sync in a second request: the SET runs in a request with no
// Parse in it, so the proxy must notice it at the Bind (it remembers which prepared
// statements may change settings) to read the settings back afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_set_prepared_then_executed() {
    let proxy = Proxy::with(|c| c.pool_size = 1).await;
    let (a, b) = (proxy.client().await, proxy.client().await);
    a.execute("SET statement_timeout = '4321ms'", &[])
        .await
        .unwrap();
    let (seen, a_pid) = timeout_and_pid(&a).await;
    assert_eq!(seen, "4321ms");
    check_set_followed(&b, a_pid, || timeout_and_pid(&a)).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_set_prepared_then_executed() {
    let proxy = Proxy::with(|c| c.pool_size = 1).await;
    let mut a = PgConnection::connect(&proxy.url("postgres", "postgres"))
        .await
        .unwrap();
    let b = proxy.client().await;
    sqlx::query("SET statement_timeout = '4321ms'")
        .execute(&mut a)
        .await
        .unwrap();
    let seen = || sqlx::query_as::<_, (String, i32)>(SEEN);
    let (timeout, a_pid) = seen().fetch_one(&mut a).await.unwrap();
    assert_eq!(timeout, "4321ms");
    check_set_followed(&b, a_pid, || async {
        seen().fetch_one(&mut a).await.unwrap()
    })
    .await;
    proxy.stop().await;
}
