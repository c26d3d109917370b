//! EXPLAIN captures in memory-only mode: a SELECT is analyzed with the value the
//! client bound; an UPDATE and a DELETE are explained without ANALYZE and leave the
//! table exactly as the client's own statement did.

use serde_json::Value;

use super::{eventually, plans_for, table};
use crate::common::http::Http;
use crate::common::{direct, Proxy};

/// A proxy where every statement is critical (thresholds 0), so every shape is captured.
async fn capturing_proxy() -> Proxy {
    Proxy::with(|c| {
        c.slow_warning_ms = 0;
        c.slow_critical_ms = 0;
    })
    .await
}

async fn wait_plan(http: &Http, table: &str, verb: &str) -> Value {
    let find = || async {
        let plans = plans_for(http, table).await;
        let verb_of = |p: &Value| p["query"].as_str().unwrap_or_default().starts_with(verb);
        plans.into_iter().find(verb_of)
    };
    let what = format!("a {verb} plan on {table}");
    eventually(&what, 20, || async { find().await.is_some() }).await;
    find().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_is_analyzed_with_the_bound_value() {
    let proxy = capturing_proxy().await;
    let http = Http::new(&proxy);
    let t = table("slowcap", 1000).await;
    let client = proxy.client().await;
    let sql = format!("SELECT id FROM {t} WHERE v = $1");
    let rows = client.query(&sql, &[&4242i32]).await.unwrap();
    assert!(rows.is_empty());
    let plan = wait_plan(&http, &t, "SELECT").await;
    assert_eq!(plan["analyzed"], true, "{plan}");
    assert!(plan["actual_ms"].as_f64().is_some(), "{plan}");
    assert_eq!(plan["plan_hash"].as_str().unwrap().len(), 16);
    // The plan ran with the real value, but constants are private by default.
    let text = plan["plan"].to_string();
    assert!(
        !text.contains("4242"),
        "the bound value is redacted: {text}"
    );
    assert!(text.contains("(v = ?)"), "{text}");
    // Literals are private by default: the values are not kept with the plan.
    assert!(plan.get("params").is_none_or(Value::is_null), "{plan}");
    proxy.stop().await;

    // Unless asked for: then the bound value (int4, binary) is kept, as hex.
    let proxy = Proxy::with(|c| {
        c.slow_warning_ms = 0;
        c.slow_critical_ms = 0;
        c.explain_store_params = true;
    })
    .await;
    let http = Http::new(&proxy);
    let sql = format!("SELECT id FROM {t} WHERE v = $1 OR id = $1");
    proxy.client().await.query(&sql, &[&4242i32]).await.unwrap();
    let plan = wait_plan(&http, &t, "SELECT").await;
    assert_eq!(plan["params"], serde_json::json!(["\\x00001092"]), "{plan}");
    let text = plan["plan"].to_string();
    assert!(text.contains("4242"), "verbatim when asked for: {text}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_explained_without_analyze_and_run_once() {
    let proxy = capturing_proxy().await;
    let http = Http::new(&proxy);
    let t = table("slowcap", 1000).await;
    let client = proxy.client().await;
    let updated = client
        .execute(
            &format!("UPDATE {t} SET v = v + 1 WHERE id <= $1"),
            &[&10i32],
        )
        .await
        .unwrap();
    assert_eq!(updated, 10);
    let deleted = client
        .execute(&format!("DELETE FROM {t} WHERE id > $1"), &[&990i32])
        .await
        .unwrap();
    assert_eq!(deleted, 10);
    for verb in ["UPDATE", "DELETE"] {
        let plan = wait_plan(&http, &t, verb).await;
        assert_eq!(plan["analyzed"], false, "{plan}");
        assert!(plan["actual_ms"].is_null(), "{plan}");
    }
    let check = direct().await;
    let row = check
        .query_one(&format!("SELECT count(*), sum(v)::int8 FROM {t}"), &[])
        .await
        .unwrap();
    let (count, sum): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(count, 990, "only the client's DELETE removed rows");
    assert_eq!(
        sum,
        (1..=990).sum::<i64>() + 10,
        "only the client's UPDATE changed v"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utility_statements_are_recorded_but_never_explained() {
    let proxy = capturing_proxy().await;
    let http = Http::new(&proxy);
    let t = crate::common::unique("slowcap_utility");
    let client = proxy.client().await;
    client
        .batch_execute(&format!("CREATE TABLE {t} (id int, v text)"))
        .await
        .unwrap();
    let sink = client
        .copy_in::<_, bytes::Bytes>(&format!("COPY {t} FROM STDIN"))
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    use futures_util::SinkExt;
    sink.send(bytes::Bytes::from_static(b"1\tone\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 1);
    // A SELECT after them: its plan shows the worker got past the utility statements.
    proxy
        .client()
        .await
        .query(
            &format!("SELECT * FROM {t} WHERE id = $1 AND pg_sleep(0.01) IS NOT NULL"),
            &[&1i32],
        )
        .await
        .unwrap();
    wait_plan(&http, &t, "SELECT").await;
    let (_, slow) = http.json("/api/slow?limit=100").await;
    let slow = slow.to_string();
    assert!(slow.contains(&format!("CREATE TABLE {t}")), "{slow}");
    assert!(slow.contains(&format!("COPY {t}")), "{slow}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let plans = plans_for(&http, &t).await;
    assert_eq!(plans.len(), 1, "only the SELECT has a plan: {plans:?}");
    let scrape = http.metrics().await;
    let failures = crate::common::http::one(&scrape, "pgsidecar_plan_capture_failures_total", &[]);
    assert_eq!(failures, 0.0, "no EXPLAIN of a utility statement was tried");
    proxy.stop().await;
}
