//! Without HypoPG the advisor still answers, from the heuristic, and says so: in the
//! pass summary, on each suggestion, and in `/metrics`.

use super::{advice, conversations, proxy, through};
use crate::common::http::Http;
use crate::store::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_hypopg_suggestions_are_heuristic_and_say_so() {
    let db = TestDb::create().await;
    conversations(&db, 20_000, &[]).await;
    let proxy = proxy().await;
    let client = through(&proxy, &db).await;
    for i in 0..3 {
        let key = format!("missing-{i}");
        client
            .query(
                "SELECT id FROM conversations WHERE session_key = $1",
                &[&key],
            )
            .await
            .unwrap();
    }
    let http = Http::new(&proxy);
    let (pass, items) = advice(&http).await;
    let run = &pass["databases"][0];
    assert_eq!(run["hypopg"], false, "{pass}");
    assert!(
        run["fallback"]
            .as_str()
            .unwrap()
            .contains("HypoPG is not installed"),
        "{pass}"
    );
    let s = items
        .iter()
        .find(|i| i["kind"] == "create" && super::keys(i) == ["session_key"])
        .unwrap_or_else(|| panic!("{items:#?}"));
    assert_eq!(s["validated"], false);
    assert!(s["label"]
        .as_str()
        .unwrap()
        .starts_with("heuristic, not validated: HypoPG is not installed"));

    let metrics = http.metrics().await;
    let hypopg = metrics
        .samples
        .iter()
        .find(|s| {
            s.metric == "pgsidecar_advisor_hypopg"
                && s.labels.get("database") == Some(db.name.as_str())
        })
        .expect("hypopg gauge for the database");
    assert!(
        matches!(hypopg.value, prometheus_parse::Value::Gauge(v) if v == 0.0),
        "{hypopg:?}"
    );
    proxy.stop().await;
}
