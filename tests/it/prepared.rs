//! Named prepared statements in transaction mode: renamed per client, prepared again on
//! whichever server the client lands on (before a Bind or a Describe), closed, bounded
//! per server, and with errors in a pipeline the responses stay matched.

use tokio_postgres::Client;

use crate::common::raw::{frame, Frame, Raw};
use crate::common::{sqlstate, Proxy};

/// Another client holds a server in a transaction, so the next statement of the first
/// runs on another server than the one it prepared on (the idle list is LIFO).
async fn hold(other: &Client) {
    other.simple_query("BEGIN").await.unwrap();
}

async fn release(other: &Client) {
    other.simple_query("COMMIT").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_follow_their_client_to_any_server() {
    let proxy = Proxy::with(|c| {
        c.pool_size = 2;
        c.max_prepared_statements = 3;
    })
    .await;
    let (a, b) = (proxy.client().await, proxy.client().await);
    let mut statements = Vec::new();
    for i in 0..5 {
        statements.push(a.prepare(&format!("SELECT $1::int + {i}")).await.unwrap());
    }
    for round in 0..2 {
        hold(&b).await;
        for (i, st) in statements.iter().enumerate() {
            let row = a.query_one(st, &[&10i32]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), 10 + i as i32, "round {round}");
        }
        release(&b).await;
    }
    // Each server keeps at most max_prepared_statements of them (the oldest are closed
    // when a server is checked out; the statement counting them is one more).
    let kept: i64 = a
        .query_one(
            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgsc%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(kept <= 4, "{kept} statements kept on one server");
    // Close (dropping a statement) and preparing the same text again.
    drop(statements);
    let st = a.prepare("SELECT 42").await.unwrap();
    hold(&b).await;
    assert_eq!(a.query_one(&st, &[]).await.unwrap().get::<_, i32>(0), 42);
    release(&b).await;
    // Errors: a bad text fails at its Parse; a failing execution leaves the next one
    // matched with its own response.
    let err = a.prepare("SELEC 1").await.unwrap_err();
    assert_eq!(sqlstate(&err), "42601");
    let div = a.prepare("SELECT 1 / $1::int").await.unwrap();
    let err = a.query_one(&div, &[&0i32]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "22012");
    assert_eq!(a.query_one(&st, &[]).await.unwrap().get::<_, i32>(0), 42);
    proxy.stop().await;
}

/// `name\0sql\0` + no parameter types.
fn parse(name: &str, sql: &str) -> Vec<u8> {
    frame(b'P', format!("{name}\0{sql}\0\0\0").as_bytes())
}

fn sync() -> Vec<u8> {
    frame(b'S', b"")
}

fn tags(frames: &[Frame]) -> String {
    frames.iter().map(|(tag, _)| *tag as char).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_pipelines_on_a_server_that_never_saw_the_parse() {
    let proxy = Proxy::with(|c| c.pool_size = 2).await;
    let b = proxy.client().await;
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    // A Parse-only request is answered without a server.
    raw.send(&[parse("q", "SELECT $1::int * 2"), sync()].concat())
        .await;
    assert_eq!(tags(&raw.until_ready().await), "1Z");
    hold(&b).await;
    // Describe of the statement on a server that never saw it.
    raw.send(&[frame(b'D', b"Sq\0"), sync()].concat()).await;
    assert_eq!(tags(&raw.until_ready().await), "tTZ");
    release(&b).await;
    // A pipeline: Bind/Execute of q, an error, a statement skipped after it.
    let bind = |value: &str| {
        let mut body = b"\0q\0\0\0\0\x01".to_vec();
        body.extend_from_slice(&(value.len() as i32).to_be_bytes());
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\0\0");
        frame(b'B', &body)
    };
    let execute = frame(b'E', b"\0\0\0\0\0");
    hold(&b).await;
    let pipeline = [
        bind("21"),
        execute.clone(),
        bind("x"),
        execute.clone(),
        parse("r", "SELECT 1"),
        sync(),
        bind("5"),
        execute.clone(),
        sync(),
    ];
    raw.send(&pipeline.concat()).await;
    let first = raw.until_ready().await;
    assert_eq!(tags(&first), "2DCEZ", "the error skips the Parse of r");
    let second = raw.until_ready().await;
    assert_eq!(tags(&second), "2DCZ");
    assert_eq!(&second[1].1[6..], b"10", "q still works after the error");
    release(&b).await;
    proxy.stop().await;
}

fn bind_execute(statement: &str) -> Vec<u8> {
    [
        frame(b'B', format!("\0{statement}\0\0\0\0\0\0\0").as_bytes()),
        frame(b'D', b"P\0"),
        frame(b'E', b"\0\0\0\0\0"),
        sync(),
    ]
    .concat()
}

/// Column count of a RowDescription body.
fn columns(description: &[u8]) -> u16 {
    u16::from_be_bytes([description[0], description[1]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cached_plan_is_prepared_again_outside_transactions() {
    let proxy = Proxy::with(|c| c.pool_size = 1).await;
    let t = crate::common::unique("stale_plan");
    let direct = crate::common::direct().await;
    let create = format!("CREATE TABLE {t} (a int); INSERT INTO {t} VALUES (1)");
    direct.batch_execute(&create).await.unwrap();
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    raw.send(&[parse("q", &format!("SELECT * FROM {t}")), sync()].concat())
        .await;
    assert_eq!(tags(&raw.until_ready().await), "1Z");
    raw.send(&bind_execute("q")).await;
    let before = raw.until_ready().await;
    assert_eq!(tags(&before), "2TDCZ");
    assert_eq!(columns(&before[1].1), 1);
    // The table's shape changes under the statement.
    let alter = format!("ALTER TABLE {t} ADD COLUMN b int DEFAULT 2");
    direct.batch_execute(&alter).await.unwrap();
    raw.send(&bind_execute("q")).await;
    let after = raw.until_ready().await;
    assert_eq!(tags(&after), "2TDCZ", "retried with the new shape");
    assert_eq!(columns(&after[1].1), 2);
    // Inside a transaction a retry could repeat work: the error is the client's.
    let alter = format!("ALTER TABLE {t} ADD COLUMN c int DEFAULT 3");
    direct.batch_execute(&alter).await.unwrap();
    raw.send(&crate::common::raw::query("BEGIN")).await;
    raw.until_ready().await;
    raw.send(&bind_execute("q")).await;
    let failed = raw.until_ready().await;
    assert_eq!(tags(&failed), "EZ");
    assert_eq!(crate::common::raw::error_code(&failed[0].1), "0A000");
    raw.send(&crate::common::raw::query("ROLLBACK")).await;
    raw.until_ready().await;
    direct
        .batch_execute(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deallocate_by_name_and_all() {
    let proxy = Proxy::with(|c| c.pool_size = 2).await;
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    let query = crate::common::raw::query;
    raw.send(&[parse("q", "SELECT 1"), parse("r", "SELECT 2"), sync()].concat())
        .await;
    assert_eq!(tags(&raw.until_ready().await), "11Z");
    raw.send(&query("DEALLOCATE q")).await;
    assert_eq!(tags(&raw.until_ready().await), "CZ");
    raw.send(&bind_execute("q")).await;
    let gone = raw.until_ready().await;
    assert_eq!(tags(&gone), "EZ");
    assert_eq!(crate::common::raw::error_code(&gone[0].1), "26000");
    raw.send(&bind_execute("r")).await;
    assert_eq!(tags(&raw.until_ready().await), "2TDCZ", "r is still there");
    raw.send(&query("DEALLOCATE ALL")).await;
    assert_eq!(tags(&raw.until_ready().await), "CZ");
    raw.send(&bind_execute("r")).await;
    let gone = raw.until_ready().await;
    assert_eq!(crate::common::raw::error_code(&gone[0].1), "26000");
    // Named again after DEALLOCATE: a new statement.
    raw.send(&[parse("q", "SELECT 3"), sync()].concat()).await;
    raw.until_ready().await;
    raw.send(&bind_execute("q")).await;
    assert_eq!(tags(&raw.until_ready().await), "2TDCZ");
    proxy.stop().await;
}

/// A client that leaves takes its prepared statements with it: the next client of the
/// same server (pool_size 1) does not see their texts in pg_prepared_statements, and
/// closing them cost no request of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departed_clients_statements_are_closed_on_the_server() {
    let proxy = Proxy::with(|c| c.pool_size = 1).await;
    let marker = crate::common::unique("secret_of_client_a");
    let shown = |rows: Vec<tokio_postgres::Row>| {
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .filter(|s| s.contains(&marker))
            .count()
    };
    let listing = "SELECT statement FROM pg_prepared_statements";
    for _ in 0..3 {
        let a = proxy.client().await;
        let statement = a
            .prepare(&format!("SELECT $1::int AS {marker}"))
            .await
            .unwrap();
        let v: i32 = a.query_one(&statement, &[&7]).await.unwrap().get(0);
        assert_eq!(v, 7);
        assert_eq!(
            shown(a.query(listing, &[]).await.unwrap()),
            1,
            "A sees its own"
        );
        // tokio-postgres closes a statement when it is dropped: this one it never closes,
        // as a client that just quits (psycopg, a killed process) does not.
        std::mem::forget(statement);
        drop(a);
        let b = proxy.client().await;
        let mut left = usize::MAX;
        for _ in 0..40 {
            left = shown(b.query(listing, &[]).await.unwrap());
            if left == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            left, 0,
            "a departed client's statement text is visible to the next"
        );
        // B's own statements still work, on the same server.
        let stmt = b.prepare("SELECT $1::int + 1").await.unwrap();
        let v: i32 = b.query_one(&stmt, &[&1]).await.unwrap().get(0);
        assert_eq!(v, 2);
    }
    proxy.stop().await;
}
