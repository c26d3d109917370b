//! Simple and extended query protocol through the proxy: parameters in text and binary,
//! pipelines, multi-statement strings with an error in the middle, transactions.

use futures_util::future::try_join_all;

use crate::common::{sqlstate, unique, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_and_extended_queries() {
    let proxy = Proxy::with(|_| {}).await;
    let client = proxy.client().await;

    // Simple protocol, several result sets.
    let messages = client
        .simple_query("SELECT 1 AS a; SELECT 'x' AS b, NULL AS c")
        .await
        .unwrap();
    let rows: Vec<_> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get("a"), Some("1"));
    assert_eq!(rows[1].get("b"), Some("x"));
    assert_eq!(rows[1].get("c"), None);

    // Extended protocol: tokio-postgres sends int/text/bytea parameters in binary.
    let row = client
        .query_one(
            "SELECT $1::int8 + 1, upper($2::text), length($3::bytea), $4::float8",
            &[&41i64, &"abc", &vec![0u8, 1, 2, 255], &1.5f64],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
    assert_eq!(row.get::<_, &str>(1), "ABC");
    assert_eq!(row.get::<_, i32>(2), 4);
    assert_eq!(row.get::<_, f64>(3), 1.5);

    // A named prepared statement reused on one connection.
    let stmt = client.prepare("SELECT $1::int4 * 2").await.unwrap();
    for i in 0..20 {
        let r = client.query_one(&stmt, &[&i]).await.unwrap();
        assert_eq!(r.get::<_, i32>(0), i * 2);
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_arrive_in_order() {
    let proxy = Proxy::with(|c| c.pool_size = 2).await;
    let client = proxy.client().await;
    let stmt = client
        .prepare("SELECT $1::int4, pg_backend_pid()")
        .await
        .unwrap();
    // tokio-postgres pipelines concurrent queries on one connection: many
    // Bind/Execute/Sync batches in flight before the first answer.
    let futures = (0..200).map(|i| {
        let client = &client;
        let stmt = &stmt;
        async move {
            let row = client.query_one(stmt, &[&i]).await?;
            Ok::<_, tokio_postgres::Error>((i, row.get::<_, i32>(0)))
        }
    });
    for (sent, got) in try_join_all(futures).await.unwrap() {
        assert_eq!(sent, got);
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_statement_string_stops_at_the_error() {
    let proxy = Proxy::with(|_| {}).await;
    let client = proxy.client().await;
    let table = unique("multi");
    client
        .batch_execute(&format!("CREATE TABLE {table} (a int)"))
        .await
        .unwrap();
    // Implicit transaction: the error in the middle rolls back the first insert and the
    // last statement never runs.
    let err = client
        .batch_execute(&format!(
            "INSERT INTO {table} VALUES (1); SELECT 1/0; INSERT INTO {table} VALUES (2)"
        ))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22012");
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
    // The connection is usable afterwards and not left in a transaction.
    let row = client.query_one("SELECT 7", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_keep_their_server_and_errors_inside_them() {
    let proxy = Proxy::with(|c| c.pool_size = 2).await;
    let mut client = proxy.client().await;
    let tx = client.transaction().await.unwrap();
    let pid: i32 = tx
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    // Other clients keep the pool busy meanwhile; our transaction stays on its server.
    let other = proxy.client().await;
    other.simple_query("SELECT 1").await.unwrap();
    let again: i32 = tx
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pid, again);
    let err = tx.query_one("SELECT 1/0", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "22012");
    let err = tx.query_one("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(
        sqlstate(&err),
        "25P02",
        "failed transaction must stay failed"
    );
    tx.rollback().await.unwrap();
    let ok: i32 = client.query_one("SELECT 5", &[]).await.unwrap().get(0);
    assert_eq!(ok, 5);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_and_notifications_are_relayed() {
    let proxy = Proxy::with(|c| c.pool_mode = pgsidecar::config::PoolMode::Session).await;
    let (client, mut connection) =
        tokio_postgres::connect(&proxy.url("postgres", "postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        use futures_util::StreamExt;
        while let Some(Ok(message)) = stream.next().await {
            let _ = tx.send(message);
        }
    });
    client
        .batch_execute("DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$")
        .await
        .unwrap();
    client.batch_execute("LISTEN pgsidecar_test").await.unwrap();
    client
        .batch_execute("NOTIFY pgsidecar_test, 'payload'")
        .await
        .unwrap();
    let mut saw_notice = false;
    let mut saw_notification = false;
    while let Ok(Some(message)) =
        tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv()).await
    {
        match message {
            tokio_postgres::AsyncMessage::Notice(n) => {
                saw_notice |= n.message() == "hello from plpgsql"
            }
            tokio_postgres::AsyncMessage::Notification(n) => {
                saw_notification |= n.payload() == "payload"
            }
            _ => {}
        }
        if saw_notice && saw_notification {
            break;
        }
    }
    assert!(saw_notice, "NoticeResponse relayed");
    assert!(saw_notification, "NotificationResponse relayed");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_pipelines_flush_and_function_call() {
    use crate::common::raw::{frame, Raw};
    let proxy = Proxy::with(|c| c.pool_size = 1).await;
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    let parse = |sql: &str| {
        let mut b = vec![0u8];
        b.extend_from_slice(sql.as_bytes());
        b.extend_from_slice(&[0, 0, 0]);
        frame(b'P', &b)
    };
    let bind = frame(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]);
    let execute = frame(b'E', &[0, 0, 0, 0, 0]);
    // Three statements pipelined before one Sync.
    let mut batch = Vec::new();
    for i in 1..=3 {
        batch.extend(parse(&format!("SELECT {i}")));
        batch.extend(&bind);
        batch.extend(&execute);
    }
    batch.extend(frame(b'S', b""));
    raw.send(&batch).await;
    let frames = raw.until_ready().await;
    let rows: Vec<_> = frames.iter().filter(|f| f.0 == b'D').collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(frames.last().unwrap(), &(b'Z', b"I".to_vec()));

    // Flush without Sync: results come back, and the server stays with this client
    // (another client must wait) until the Sync.
    let mut batch = parse("SELECT 42");
    batch.extend(&bind);
    batch.extend(&execute);
    batch.extend(frame(b'H', b""));
    raw.send(&batch).await;
    let mut seen = Vec::new();
    while !seen.iter().any(|f: &(u8, Vec<u8>)| f.0 == b'C') {
        seen.push(raw.recv().await.unwrap());
    }
    assert!(seen.iter().any(|f| f.0 == b'D' && f.1.ends_with(b"42")));
    let other = proxy.client().await;
    let blocked = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        other.simple_query("SELECT 1"),
    )
    .await;
    assert!(blocked.is_err(), "server was released before the Sync");
    raw.send(&frame(b'S', b"")).await;
    assert_eq!(raw.until_ready().await.last().unwrap().0, b'Z');
    other.simple_query("SELECT 1").await.unwrap();

    // FunctionCall: abs(int4) is OID 1397; one text argument, text result.
    let mut body = 1397i32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 1, 0, 0]); // one format code: text
    body.extend_from_slice(&[0, 1]); // one argument
    body.extend_from_slice(&2i32.to_be_bytes());
    body.extend_from_slice(b"-7");
    body.extend_from_slice(&[0, 0]); // result format text
    raw.send(&frame(b'F', &body)).await;
    let frames = raw.until_ready().await;
    let result = frames
        .iter()
        .find(|f| f.0 == b'V')
        .expect("FunctionCallResponse");
    assert_eq!(&result.1[4..], b"7");
    proxy.stop().await;
}
