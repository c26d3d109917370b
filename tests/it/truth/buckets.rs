//! `pgsidecar_query_duration_seconds` buckets are exact edges: three `pg_sleep(0.503)`
//! through the proxy are all above `le="0.5"`.

use prometheus_parse::Value;

use crate::common::http::{samples, Http};
use crate::common::Proxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeps_just_above_half_a_second_are_above_le_half() {
    let proxy = Proxy::with(|c| c.metrics_top_queries = 1000).await;
    let client = proxy.client().await;
    // A comment makes the shape unique to this test within the shared server.
    for _ in 0..3 {
        client
            .simple_query("SELECT pg_sleep(0.503) /* truth_buckets */")
            .await
            .expect("sleep");
    }
    let scrape = Http::new(&proxy).metrics().await;
    let series = samples(&scrape, "pgsidecar_query_duration_seconds", &[]);
    let ours: Vec<_> = series
        .iter()
        .filter(|s| s.labels.get("fingerprint") != Some("other"))
        .filter_map(|s| match &s.value {
            Value::Histogram(buckets) => Some(buckets),
            _ => None,
        })
        .filter(|b| {
            b.iter()
                .any(|c| c.less_than.is_infinite() && c.count == 3.0)
        })
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "one series with the three sleeps: {series:?}"
    );
    let le = |bound: f64| {
        ours[0]
            .iter()
            .find(|c| (c.less_than - bound).abs() < 1e-9)
            .map(|c| c.count)
            .expect("bucket exported")
    };
    assert_eq!(le(0.5), 0.0, "503 ms is above 0.5 s");
    assert_eq!(le(1.0), 3.0);
    proxy.stop().await;
}
