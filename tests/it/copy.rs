//! COPY through the proxy, both directions, both protocols: 100k rows byte-identical to
//! a direct COPY.

use bytes::Bytes;
use futures_util::{SinkExt, TryStreamExt};

use crate::common::raw::{frame, query, Raw};
use crate::common::{direct, unique, Proxy};

const ROWS: i64 = 100_000;

async fn copy_out(client: &tokio_postgres::Client, sql: &str) -> Vec<u8> {
    let stream = client.copy_out(sql).await.unwrap();
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out_match_direct_copy() {
    let proxy = Proxy::with(|_| {}).await;
    let through = proxy.client().await;
    let straight = direct().await;
    let source = format!(
        "COPY (SELECT g, md5(g::text), now()::date - g FROM generate_series(1, {ROWS}) g) TO STDOUT"
    );
    let expected = copy_out(&straight, &source).await;
    let got = copy_out(&through, &source).await;
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "COPY TO STDOUT through the proxy differs");

    // COPY FROM STDIN (extended protocol, as tokio-postgres does it), then read back.
    let table = unique("copy_in");
    through
        .batch_execute(&format!("CREATE TABLE {table} (a int, b text, c date)"))
        .await
        .unwrap();
    let sink = through
        .copy_in(&format!("COPY {table} FROM STDIN"))
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    for chunk in expected.chunks(100_000) {
        sink.send(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    let written = sink.finish().await.unwrap();
    assert_eq!(written, ROWS as u64);
    let back = copy_out(&straight, &format!("COPY {table} TO STDOUT")).await;
    assert!(back == expected, "rows copied in through the proxy differ");
    straight
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_protocol_copy_and_copy_fail() {
    let proxy = Proxy::with(|_| {}).await;
    let table = unique("copy_simple");
    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    raw.send(&query(&format!("CREATE TABLE {table} (a int, b text)")))
        .await;
    raw.until_ready().await;

    raw.send(&query(&format!("COPY {table} FROM STDIN"))).await;
    assert_eq!(raw.recv().await.unwrap().0, b'G', "CopyInResponse");
    let mut data = Vec::new();
    for i in 0..ROWS {
        data.extend_from_slice(format!("{i}\trow {i}\n").as_bytes());
    }
    for chunk in data.chunks(65_536) {
        raw.send(&frame(b'd', chunk)).await;
    }
    raw.send(&frame(b'c', b"")).await;
    let frames = raw.until_ready().await;
    let complete = frames
        .iter()
        .find(|f| f.0 == b'C')
        .expect("CommandComplete");
    assert_eq!(complete.1, format!("COPY {ROWS}\0").into_bytes());
    assert_eq!(frames.last().unwrap(), &(b'Z', b"I".to_vec()));

    // CopyFail aborts the copy with an error and leaves the connection usable.
    raw.send(&query(&format!("COPY {table} FROM STDIN"))).await;
    assert_eq!(raw.recv().await.unwrap().0, b'G');
    raw.send(&frame(b'd', b"1\tone\n")).await;
    raw.send(&frame(b'f', b"client changed its mind\0")).await;
    let frames = raw.until_ready().await;
    assert!(
        frames.iter().any(|f| f.0 == b'E'),
        "ErrorResponse after CopyFail"
    );

    raw.send(&query(&format!("COPY {table} TO STDOUT"))).await;
    let frames = raw.until_ready().await;
    let out: Vec<u8> = frames
        .iter()
        .filter(|f| f.0 == b'd')
        .flat_map(|f| f.1.clone())
        .collect();
    assert!(out == data, "simple-protocol COPY round trip differs");
    raw.send(&query(&format!("DROP TABLE {table}"))).await;
    raw.until_ready().await;
    proxy.stop().await;
}
