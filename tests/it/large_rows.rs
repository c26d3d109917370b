//! Big values stream through: a 20 MB bytea row out of the server and into it.

use crate::common::{unique, Proxy};

const BIG: usize = 20 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_megabyte_row_both_ways() {
    let proxy = Proxy::with(|_| {}).await;
    let client = proxy.client().await;

    // Out of the server: one DataRow of 20 MB.
    let row = client
        .query_one("SELECT decode(repeat('ab', $1), 'hex')", &[&(BIG as i32)])
        .await
        .unwrap();
    let value: Vec<u8> = row.get(0);
    assert_eq!(value.len(), BIG);
    assert!(value.iter().all(|&b| b == 0xab));

    // Into the server: one Bind message of 20 MB, then read back its checksum.
    let table = unique("big");
    client
        .batch_execute(&format!("CREATE TABLE {table} (v bytea)"))
        .await
        .unwrap();
    let payload: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    client
        .execute(&format!("INSERT INTO {table} VALUES ($1)"), &[&payload])
        .await
        .unwrap();
    let back: Vec<u8> = client
        .query_one(&format!("SELECT v FROM {table}"), &[])
        .await
        .unwrap()
        .get(0);
    assert!(back == payload, "20 MB bytea round trip differs");
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_query_text_passes_whole() {
    let proxy = Proxy::with(|_| {}).await;
    let client = proxy.client().await;
    // A 2 MB statement: larger than the relay's buffers, sent as one Query message.
    let literal = "x".repeat(2 * 1024 * 1024);
    let sql = format!("SELECT length('{literal}')");
    let rows = client.simple_query(&sql).await.unwrap();
    let row = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .unwrap();
    assert_eq!(row.get(0), Some("2097152"));
    proxy.stop().await;
}
