//! Statement statistics through the proxy: exact counts per query shape across the
//! simple, extended and prepared protocols; errors and rows; percentiles of known
//! latencies.

use std::time::Duration;

use pgsidecar::stats::{QuerySnapshot, Window};

use crate::common::{sqlstate, Proxy};

fn snapshot(proxy: &Proxy) -> Vec<QuerySnapshot> {
    let measure = proxy.app.shared().measure.as_ref().expect("stats on");
    let now = measure.clock.now();
    measure.registry.snapshot(Window::All, now)
}

fn find<'a>(snap: &'a [QuerySnapshot], needle: &str) -> Vec<&'a QuerySnapshot> {
    snap.iter()
        .filter(|s| s.meta.normalized.contains(needle))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shapes_counted_exactly_across_protocols() {
    let proxy = Proxy::with(|_| {}).await;
    let client = proxy.client().await;
    // Shape 1, simple protocol, different literals (one multi-statement string too).
    for i in 0..5 {
        client
            .simple_query(&format!(
                "SELECT relname FROM pg_class WHERE relname = 'x{i}'"
            ))
            .await
            .unwrap();
    }
    client
        .simple_query("SELECT relname FROM pg_class WHERE relname = 'a'; SELECT relname FROM pg_class WHERE relname = 'b'")
        .await
        .unwrap();
    // Shape 2, extended protocol (a Parse per call).
    for i in 0..4 {
        client
            .query(
                "SELECT nspname FROM pg_namespace WHERE oid = $1::oid",
                &[&(i as u32)],
            )
            .await
            .unwrap();
    }
    // Shape 3, one prepared statement executed three times.
    let stmt = client
        .prepare("SELECT typname FROM pg_type WHERE typname = $1")
        .await
        .unwrap();
    for name in ["int4", "text", "bool"] {
        let rows = client.query(&stmt, &[&name]).await.unwrap();
        assert_eq!(rows.len(), 1);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let snap = snapshot(&proxy);
    let one = find(&snap, "FROM pg_class WHERE relname");
    let two = find(&snap, "FROM pg_namespace WHERE oid");
    let three = find(&snap, "FROM pg_type WHERE typname");
    assert_eq!((one.len(), two.len(), three.len()), (1, 1, 1), "{snap:#?}");
    assert_eq!(one[0].calls, 7);
    assert_eq!(two[0].calls, 4);
    assert_eq!(three[0].calls, 3);
    assert_eq!(three[0].rows, 3);
    for s in [one[0], two[0], three[0]] {
        assert_eq!(s.meta.command_label, "SELECT");
        assert_eq!(format!("{:016x}", s.key.fingerprint).len(), 16);
        assert!(s.p50_us > 0 && s.p50_us <= s.p99_us && s.p99_us <= s.max_us.max(s.p99_us));
        assert!(!s.meta.normalized.contains("x1") && !s.meta.normalized.contains("int4"));
    }
    assert!(one[0].meta.tables.iter().any(|t| t == "pg_class"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_known_latencies() {
    let proxy = Proxy::with(|_| {}).await;
    let client = proxy.client().await;
    for _ in 0..3 {
        let err = client.simple_query("SELECT 1/0").await.unwrap_err();
        assert_eq!(sqlstate(&err), "22012");
    }
    // A pipeline where the first statement fails: the skipped ones are not counted.
    let _ = client
        .batch_execute("SELECT 1/0; SELECT pg_sleep(0)")
        .await
        .unwrap_err();
    for ms in [20u64, 40, 60, 80, 100] {
        client
            .simple_query(&format!("SELECT pg_sleep({})", ms as f64 / 1000.0))
            .await
            .unwrap();
    }
    let snap = snapshot(&proxy);
    let div = find(&snap, "SELECT $1/$2");
    assert_eq!(div.len(), 1, "{snap:#?}");
    assert_eq!((div[0].calls, div[0].errors), (4, 4));
    assert_eq!(div[0].errors_by_class, vec![("22".to_string(), 4)]);
    let sleep = find(&snap, "pg_sleep");
    assert_eq!(sleep.len(), 1);
    assert_eq!(sleep[0].calls, 5, "the skipped pg_sleep(0) did not run");
    let s = sleep[0];
    // Known latencies 20..100 ms (plus a little proxy and server time).
    assert!(s.min_us >= 20_000 && s.min_us < 30_000, "{s:?}");
    assert!(s.max_us >= 100_000 && s.max_us < 130_000, "{s:?}");
    assert!(s.p50_us >= 59_000 && s.p50_us < 75_000, "{s:?}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprints_are_bounded_and_evictions_counted() {
    let proxy = Proxy::with(|c| c.max_fingerprints = 3).await;
    let client = proxy.client().await;
    let shapes = [
        "SELECT attname FROM pg_attribute LIMIT 1",
        "SELECT proname FROM pg_proc LIMIT 1",
        "SELECT relname FROM pg_class LIMIT 1",
        "SELECT nspname FROM pg_namespace LIMIT 1",
        "SELECT typname FROM pg_type LIMIT 1",
    ];
    for sql in shapes {
        client.simple_query(sql).await.unwrap();
    }
    let registry = &proxy.app.shared().measure.as_ref().unwrap().registry;
    assert_eq!(registry.tracked(), 3);
    assert_eq!(registry.evicted(), 2);
    // The proxy keeps serving and counting after evictions.
    client
        .simple_query("SELECT attname FROM pg_attribute LIMIT 1")
        .await
        .unwrap();
    assert_eq!(registry.tracked(), 3);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_can_be_turned_off() {
    let proxy = Proxy::with(|c| c.stats = false).await;
    let client = proxy.client().await;
    client.simple_query("SELECT 1").await.unwrap();
    assert!(proxy.app.shared().measure.is_none());
    proxy.stop().await;
}
