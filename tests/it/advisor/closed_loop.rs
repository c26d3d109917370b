//! The closed loop: once the suggested index exists (created here, by the test, as an
//! operator would), the next pass notices it and the measured p95 of the statement it
//! serves, from the proxy's own timings, falls.

use super::{advice, conversations, proxy, through};
use crate::common::http::Http;
use crate::store::TestDb;

const QUERY: &str = "SELECT id, title FROM conversations WHERE session_key = $1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_a_suggestion_lowers_the_measured_p95() {
    let db = TestDb::create().await;
    let direct = conversations(&db, 60_000, &["hypopg"]).await;
    let proxy = proxy().await;
    let client = through(&proxy, &db).await;
    let run = |n: usize| {
        let client = &client;
        async move {
            for i in 0..n {
                let key = format!("key-{i}");
                client.query(QUERY, &[&key]).await.unwrap();
            }
        }
    };
    run(5).await;
    let http = Http::new(&proxy);
    let (_, items) = advice(&http).await;
    let s = items
        .iter()
        .find(|i| i["kind"] == "create" && super::keys(i) == ["session_key"])
        .unwrap_or_else(|| panic!("{items:#?}"))
        .clone();
    run(30).await;
    // As an operator would: the suggested statement, as printed.
    direct
        .batch_execute(s["sql"].as_str().unwrap())
        .await
        .unwrap();
    let (_, items) = advice(&http).await;
    run(30).await;
    let (status, page) = http.json("/api/advice?kind=create").await;
    assert_eq!(status, 200);
    let applied = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == s["name"])
        .unwrap_or_else(|| panic!("{items:#?}"));
    assert_eq!(applied["applied_as"], s["name"], "{applied:#}");
    let served = &applied["serves"][0];
    let before = &served["measured_before"];
    let after = &served["measured_after"];
    assert!(before["calls"].as_u64().unwrap() >= 30, "{served:#}");
    assert_eq!(after["calls"].as_u64().unwrap(), 30, "{served:#}");
    let (b, a) = (
        before["p95_ms"].as_f64().unwrap(),
        after["p95_ms"].as_f64().unwrap(),
    );
    assert!(a < b / 2.0, "p95 {b} ms before, {a} ms after: {served:#}");
    proxy.stop().await;
}
