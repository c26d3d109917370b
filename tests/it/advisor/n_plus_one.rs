//! N+1 detection: a psycopg loop that fetches each conversation's chunks one by one
//! inside a transaction is flagged with its source statement, count and time; the same
//! data fetched with one `= ANY(%s)` query is not. `/metrics` counts occurrences.

use std::process::Command;

use super::{conversations, proxy};
use crate::common::http::Http;
use crate::store::TestDb;

const SCRIPT: &str = r#"
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    # N+1: one query for the parents, then one per parent, in one transaction.
    with conn.transaction():
        ids = [r[0] for r in conn.execute("SELECT id FROM conversations ORDER BY id LIMIT 12")]
        for i in ids:
            conn.execute("SELECT body FROM chunks WHERE conversation_id = %s", (i,)).fetchall()
    # Batched: the same data in one query.
    with conn.transaction():
        ids = [r[0] for r in conn.execute("SELECT id FROM conversations ORDER BY id DESC LIMIT 12")]
        conn.execute("SELECT conversation_id, body FROM chunks WHERE conversation_id = ANY(%s)", (ids,)).fetchall()
print("ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psycopg_loop_is_flagged_and_a_batched_query_is_not() {
    let db = TestDb::create().await;
    conversations(&db, 1_000, &[]).await;
    let proxy = proxy().await;
    let url = proxy.url("postgres", &db.name);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", SCRIPT, &url])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let http = Http::new(&proxy);
    let (status, insights) = http.json("/api/insights").await;
    assert_eq!(status, 200, "{insights}");
    let data = insights["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "only the loop: {insights:#}");
    let p = &data[0];
    assert_eq!(p["kind"], "n_plus_one");
    assert_eq!(p["database"], db.name.as_str());
    assert!(
        p["query"]
            .as_str()
            .unwrap()
            .contains("conversation_id = $1"),
        "{p}"
    );
    assert!(
        p["source_query"]
            .as_str()
            .unwrap()
            .contains("FROM conversations"),
        "{p}"
    );
    assert_eq!(p["occurrences"], 1);
    assert_eq!(p["executions"], 12);
    assert_eq!(p["in_transaction"], true);
    assert!(p["time_ms"].as_f64().unwrap() > 0.0);
    assert!(p["hint"].as_str().unwrap().contains("= ANY($1)"));

    let metrics = http.metrics().await;
    let total = metrics
        .samples
        .iter()
        .find(|s| s.metric == "pgsidecar_n_plus_one_total")
        .expect("family present");
    assert!(
        matches!(total.value, prometheus_parse::Value::Counter(v) if v == 1.0),
        "{total:?}"
    );
    http.rejects("/api/insights?cursor=junk", "invalid cursor")
        .await;
    http.rejects("/api/insights?colour=red", "unknown parameter")
        .await;
    proxy.stop().await;
}
