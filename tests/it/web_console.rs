//! The web console (`/ui/`) in a real browser: Debian's chromium driven by Selenium
//! (`tests/e2e/console_check.py`) against an in-process proxy holding 10,000
//! fingerprints, a slow query with two captured plans (a plan change between them),
//! errors, alerts, and a small live workload. The script checks every page against
//! `/api`, sorts and filters the queries table, logs in with the token, measures
//! scrolling, and leaves a screenshot of each page in `target/console-shots/`.
//! Its `SCROLL {...}` line reports the per-frame figures (shown with --nocapture).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common::http::Http;
use crate::common::{direct, unique, Proxy};
use crate::e2e_clients::{run, text};

const TOKEN: &str = "console-test-token";
const SEEDS: usize = 10_000;

/// A table big enough that counting one value scans for tens of milliseconds.
async fn big_table() -> String {
    let name = unique("console");
    let sql = format!(
        "CREATE TABLE {name} (id int PRIMARY KEY, v int, t text);
         INSERT INTO {name} SELECT g, g % 1000, md5(g::text) FROM generate_series(1, 400000) g;
         ANALYZE {name}"
    );
    direct()
        .await
        .batch_execute(&sql)
        .await
        .expect("create the table");
    name
}

/// 10,000 distinct statement shapes, 100 to a Query message.
async fn seed(proxy: &Proxy) {
    let client = proxy.client().await;
    for batch in 0..SEEDS / 100 {
        let sql: String = (batch * 100..(batch + 1) * 100)
            .map(|i| format!("SELECT seed_c{i} FROM (SELECT 1 AS seed_c{i}) s;"))
            .collect();
        client.simple_query(&sql).await.expect("seed statements");
    }
}

/// Slow counts (captured), an update, point reads and errors; then the table stops
/// allowing parallel scans, so the next capture of the count has another plan.
async fn workload(proxy: &Proxy, table: &str) {
    let client = proxy.client().await;
    let count = format!("SELECT count(*) FROM {table} WHERE v = $1");
    for phase in 0..2 {
        if phase == 1 {
            let sql = format!("ALTER TABLE {table} SET (parallel_workers = 0)");
            direct().await.batch_execute(&sql).await.expect("alter");
        }
        for i in 0..4 {
            client.query_one(&count, &[&(i * 7)]).await.expect("count");
            let update = format!("UPDATE {table} SET t = 'x' WHERE id = $1");
            client.execute(&update, &[&i]).await.expect("update");
            let read = format!("SELECT id, t FROM {table} WHERE id = $1");
            client.query(&read, &[&i]).await.expect("read");
            assert!(client.simple_query("SELECT 1/0").await.is_err());
            // Captures of one fingerprint are at least explain_interval apart.
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }
}

/// The plan hashes captured for the count on `table`.
async fn count_plans(http: &Http, table: &str) -> Vec<String> {
    let (_, page) = http.json("/api/plans?limit=100").await;
    let rows = page["data"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .filter(|p| (p["query"].as_str()).is_some_and(|q| q.contains(table) && q.contains("count")))
        .filter_map(|p| p["plan_hash"].as_str().map(str::to_string))
        .collect()
}

/// A few cheap statements a second on one connection until `stop` fires.
fn background(proxy: &Proxy, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let url = proxy.url("postgres", "postgres");
    tokio::spawn(async move {
        let client = crate::common::connect(&url).await;
        while !stop.is_cancelled() {
            let _ = client.simple_query("SELECT 1").await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_console_in_a_real_browser() {
    let proxy = Proxy::with(|c| {
        c.admin_token = Some(TOKEN.into());
        c.max_fingerprints = 12_000;
        c.slow_warning_ms = 5;
        c.slow_critical_ms = 10;
        c.explain_interval = Duration::from_millis(500);
    })
    .await;
    let http = Http::with_token(&proxy, TOKEN);
    let table = big_table().await;
    seed(&proxy).await;
    let (_, status) = http.json("/api/status").await;
    assert!(
        status["fingerprints_tracked"].as_u64() >= Some(SEEDS as u64),
        "{status}"
    );
    workload(&proxy, &table).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let hashes: BTreeSet<String> = count_plans(&http, &table).await.into_iter().collect();
        if hashes.len() >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no plan change captured: {hashes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stop = CancellationToken::new();
    let live = background(&proxy, stop.clone());

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/e2e/console_check.py");
    let shots = root.join("target/console-shots");
    let admin = format!("http://{}", proxy.app.admin_addr().expect("admin"));
    let args = [
        &*script.to_string_lossy(),
        &admin,
        TOKEN,
        &table,
        &*shots.to_string_lossy(),
    ];
    let out = tokio::time::timeout(Duration::from_secs(600), run("python3", &args))
        .await
        .expect("the browser check ends within 10 minutes");
    let (stdout, stderr) = text(&out);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "console_check.py failed ({}); it needs chromium, chromium-driver and the selenium \
         module (.ci/run installs them):\n{stdout}{stderr}",
        out.status
    );
    assert!(stdout.contains("console check passed"), "{stdout}{stderr}");
    let scroll: Value = serde_json::from_str(
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("SCROLL "))
            .expect("scroll figures"),
    )
    .expect("scroll figures are JSON");
    assert!(
        scroll["fingerprints"].as_u64() >= Some(SEEDS as u64),
        "{scroll}"
    );
    stop.cancel();
    let _ = live.await;
    let sql = format!("DROP TABLE {table}");
    direct().await.batch_execute(&sql).await.expect("drop");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_console_says_when_the_store_is_down() {
    let proxy = Proxy::with(|c| {
        c.store = true;
        c.store_url = Some("postgres://postgres@127.0.0.1:1/nowhere".into());
    })
    .await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/e2e/console_check.py");
    let shots = root.join("target/console-shots");
    let admin = format!("http://{}", proxy.app.admin_addr().expect("admin"));
    let args = [
        &*script.to_string_lossy(),
        "--store-down",
        &admin,
        &*shots.to_string_lossy(),
    ];
    let out = tokio::time::timeout(Duration::from_secs(300), run("python3", &args))
        .await
        .expect("the browser check ends within 5 minutes");
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success() && stdout.contains("console check passed"),
        "console_check.py --store-down failed ({}):\n{stdout}{stderr}",
        out.status
    );
    proxy.stop().await;
}
